package thread

import (
	"testing"
	"time"
)

func TestSortBaseSubject(t *testing.T) {
	tests := []struct {
		in, want string
		reply    bool
	}{
		{"Hello", "Hello", false},
		{"Re: Hello", "Hello", true},
		{"RE: re: Re[2]: hello", "hello", true},
		{"Re[2]: hello", "hello", true},
		{"Fwd: Hello", "Hello", true},
		{"fw: Hello", "Hello", true},
		{"Hello (fwd)", "Hello", true},
		{"Hello (FWD) (fwd)  ", "Hello", true},
		{"[list] Re: Hello", "Hello", true},
		{"[list] [other] hello", "hello", false},
		{"[list]", "[list]", false},
		{"[fwd: Re: Hello]", "Hello", true},
		{"[Fwd: [list] Hello (fwd)]", "Hello", true},
		{"Re:   spaced\t\tout  text ", "spaced out text", true},
		{"=?UTF-8?Q?Re:_Gr=C3=BC=C3=9Fe?=", "Grüße", true},
		{"Reply to this", "Reply to this", false},
		{"Fwdx: no", "Fwdx: no", false},
		{"Re :x", "x", true},
		{"", "", false},
	}
	for _, tc := range tests {
		got, reply := BaseSubject(tc.in)
		if got != tc.want || reply != tc.reply {
			t.Errorf("%q: got %q %v, want %q %v", tc.in, got, reply, tc.want, tc.reply)
		}
	}
}

func TestThreadParseIDs(t *testing.T) {
	got := ParseIDs(" <a@x> <b@\r\n x>garbage <c@x (comment) <> <d@x>")
	want := []string{"a@x", "b@x", "d@x"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// threadTestMsg builds threading input; day orders by date.
func threadTestMsg(num uint32, day int, subject, id string, refs ...string) *Msg {
	base, reply := BaseSubject(subject)
	return &Msg{Num: num, Seq: num, Sent: time.Date(2025, 1, day, 0, 0, 0, 0, time.UTC), Base: upperASCII(base), Reply: reply, MsgID: id, Refs: refs}
}

func threadString(roots []*Node) string { return string(Append(nil, roots)) }

func TestThreadAppend(t *testing.T) {
	// RFC 5256 §4's example: (2)(3 6 (4 23)(44 7 96)).
	n := func(num uint32, kids ...*Node) *Node {
		x := &Node{msg: &Msg{Num: num}, children: kids}
		return x
	}
	roots := []*Node{n(2), n(3, n(6, n(4, n(23)), n(44, n(7, n(96)))))}
	if got := threadString(roots); got != "(2)(3 6 (4 23)(44 7 96))" {
		t.Errorf("got %s", got)
	}
	dummy := &Node{children: []*Node{n(3), n(5, n(6))}}
	if got := threadString([]*Node{dummy}); got != "((3)(5 6))" {
		t.Errorf("got %s", got)
	}
}

func TestThreadReferences(t *testing.T) {
	tests := []struct {
		name string
		msgs []*Msg
		want string
	}{
		{"chain", []*Msg{
			threadTestMsg(1, 1, "a", "1"),
			threadTestMsg(2, 2, "re: a", "2", "1"),
			threadTestMsg(3, 3, "re: a", "3", "1", "2"),
		}, "(1 2 3)"},
		{"arrival order does not matter", []*Msg{
			threadTestMsg(1, 3, "re: a", "3", "1", "2"),
			threadTestMsg(2, 2, "re: a", "2", "1"),
			threadTestMsg(3, 1, "a", "1"),
		}, "(3 2 1)"},
		{"siblings sorted by date", []*Msg{
			threadTestMsg(1, 1, "a", "1"),
			threadTestMsg(2, 5, "re: a", "2", "1"),
			threadTestMsg(3, 3, "re: a", "3", "1"),
		}, "(1 (3)(2))"},
		{"truncated references keep the deeper parent", []*Msg{
			threadTestMsg(1, 1, "a", "1"),
			threadTestMsg(2, 2, "b", "2", "1"),
			threadTestMsg(3, 3, "c", "3", "2"),
			threadTestMsg(4, 4, "d", "4", "1", "2", "3"),
		}, "(1 2 3 4)"},
		{"loops are not made", []*Msg{
			threadTestMsg(1, 1, "a", "1", "2"),
			threadTestMsg(2, 2, "b", "2", "1"),
		}, "(2 1)"},
		{"self reference", []*Msg{
			threadTestMsg(1, 1, "a", "1", "1"),
		}, "(1)"},
		{"duplicate and missing ids", []*Msg{
			threadTestMsg(1, 1, "a", "1"),
			threadTestMsg(2, 2, "b", "1"),
			threadTestMsg(3, 3, "c", ""),
			threadTestMsg(4, 4, "re: c", "4", "1"),
		}, "(1 4)(2)(3)"},
		{"dummy with one child is promoted, with several kept", []*Msg{
			threadTestMsg(1, 1, "a", "1", "x"),
			threadTestMsg(2, 2, "b", "2", "y"),
			threadTestMsg(3, 3, "c", "3", "y"),
		}, "(1)((2)(3))"},
		{"dummies inside a thread vanish", []*Msg{
			threadTestMsg(1, 1, "a", "1"),
			threadTestMsg(2, 2, "re: a", "2", "1", "gone1", "gone2"),
		}, "(1 2)"},
		{"subjects: a reply joins the original", []*Msg{
			threadTestMsg(1, 1, "topic", "1"),
			threadTestMsg(2, 2, "Re: topic", "2"),
		}, "(1 2)"},
		{"subjects: two originals get a dummy", []*Msg{
			threadTestMsg(1, 1, "topic", "1"),
			threadTestMsg(2, 2, "topic", "2"),
		}, "((1)(2))"},
		{"subjects: an original after its reply", []*Msg{
			threadTestMsg(1, 1, "Re: topic", "1"),
			threadTestMsg(2, 2, "topic", "2"),
		}, "(2 1)"},
		{"subjects: two replies get a dummy", []*Msg{
			threadTestMsg(1, 1, "Re: topic", "1"),
			threadTestMsg(2, 2, "Fwd: topic", "2"),
			threadTestMsg(3, 3, "topic", "3"),
		}, "(3 (1)(2))"},
		{"subjects: a dummy thread absorbs messages", []*Msg{
			threadTestMsg(1, 1, "topic", "1", "x"),
			threadTestMsg(2, 2, "topic", "2", "x"),
			threadTestMsg(3, 3, "re: topic", "3"),
			threadTestMsg(4, 4, "re: topic", "4", "y"),
			threadTestMsg(5, 5, "topic", "5", "y", "4"),
		}, "((1)(2)(3)(4 5))"},
		{"empty subjects are not gathered", []*Msg{
			threadTestMsg(1, 1, "", "1"),
			threadTestMsg(2, 2, "Re:", "2"),
		}, "(1)(2)"},
	}
	for _, tc := range tests {
		if got := threadString(References(tc.msgs)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestThreadOrderedSubject(t *testing.T) {
	msgs := []*Msg{
		threadTestMsg(1, 3, "b", ""),
		threadTestMsg(2, 1, "Re: a", ""),
		threadTestMsg(3, 2, "a", ""),
		threadTestMsg(4, 4, "re: B", ""),
		threadTestMsg(5, 5, "a", ""),
		threadTestMsg(6, 6, "c", ""),
	}
	if got := threadString(OrderedSubject(msgs)); got != "(2 (3)(5))(1 4)(6)" {
		t.Errorf("got %s", got)
	}
}

// upperASCII is the i;ascii-casemap form of s, as imapd's sortUpperASCII
// makes Msg.Base.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

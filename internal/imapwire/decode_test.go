package imapwire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

// newDecoder returns a decoder over in with a 16-byte buffer (bufio's
// minimum, so reads cross buffer boundaries) and a counter of
// continuations sent.
func newDecoder(in string, opts DecoderOptions) (*Decoder, *int) {
	n := new(int)
	d := NewDecoder(bufio.NewReaderSize(strings.NewReader(in), 16), func() error { *n++; return nil }, opts)
	return d, n
}

// errKind classifies an error the way the session has to.
func errKind(err error) string {
	var se *SyntaxError
	var le *LimitError
	var te *LiteralTooBigError
	var ne *MailboxNameError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ne):
		return "name"
	case errors.As(err, &se):
		return "syntax"
	case errors.As(err, &le):
		return "limit"
	case errors.As(err, &te):
		return "toobig"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected-eof"
	case errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, ErrCannotResync):
		return "resync"
	case errors.Is(err, ErrAuthCanceled):
		return "canceled"
	}
	return "other: " + err.Error()
}

// rest returns what the decoder has not consumed.
func rest(d *Decoder) string {
	b, _ := io.ReadAll(d.r)
	return string(b)
}

func TestReadTagAndCommand(t *testing.T) {
	for _, tc := range []struct {
		in, tag, cmd, kind string
	}{
		{"a1 NOOP\r\n", "a1", "NOOP", ""},
		{"A.b]c uid\r\n", "A.b]c", "UID", ""},
		{"* NOOP\r\n", "", "", "syntax"},
		{"a+b NOOP\r\n", "", "", "syntax"}, // "+" ends the tag; then SP expected
		{"+ NOOP\r\n", "", "", "syntax"},
		{"\r\n", "", "", "syntax"},
		{"", "", "", "eof"},
		{"abc", "", "", "unexpected-eof"},
		{"a1 {3}\r\n", "a1", "", "syntax"},
		{"a\x80 NOOP\r\n", "", "", "syntax"},
	} {
		d, _ := newDecoder(tc.in, DecoderOptions{})
		tag, err := d.ReadTag()
		if err == nil {
			err = d.SP()
		}
		var cmd string
		if err == nil {
			cmd, err = d.ReadCommand()
		}
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want kind %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil && (tag != tc.tag || cmd != tc.cmd) {
			t.Errorf("%q: got %q %q", tc.in, tag, cmd)
		}
	}
}

func TestReadAString(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
		conts          int
		opts           DecoderOptions
	}{
		{in: "abc\r\n", want: "abc"},
		{in: "a]b\r\n", want: "a]b"},
		{in: `"a b"` + "\r\n", want: "a b"},
		{in: `""` + "\r\n", want: ""},
		{in: `"q\"x\\y"` + "\r\n", want: `q"x\y`},
		{in: "\"caf\xc3\xa9\"\r\n", want: "caf\xc3\xa9"},
		{in: "{5}\r\nhe\"lo\r\n", want: "he\"lo", conts: 1},
		{in: "{0}\r\n\r\n", want: "", conts: 1},
		{in: "{5+}\r\nhello\r\n", want: "hello"},
		{in: "{2}\nab\n", want: "ab", conts: 1},
		{in: "{00003}\r\nabc\r\n", want: "abc", conts: 1},
		{in: "{3}\r\na\x00c\r\n", kind: "syntax", conts: 1},
		{in: "~{3}\r\nabc\r\n", kind: "syntax"},
		{in: `"a\b"` + "\r\n", kind: "syntax"},
		{in: "\"ab\r\n", kind: "syntax"},
		{in: "\"a\x00b\"\r\n", kind: "syntax"},
		{in: "(a)\r\n", kind: "syntax"},
		{in: "\r\n", kind: "syntax"},
		{in: "{3x}\r\nabc\r\n", kind: "syntax"},
		{in: "{}\r\n", kind: "syntax"},
		{in: "{99999999999999999999}\r\n", kind: "syntax"},
		{in: "{3}x\r\nabc\r\n", kind: "syntax"},
		{in: "{5}\r\nab", kind: "unexpected-eof", conts: 1},
		{in: "{17}\r\n", kind: "toobig", opts: DecoderOptions{MaxStringLength: 16}},
		{in: "{16}\r\n0123456789abcdef\r\n", want: "0123456789abcdef", conts: 1, opts: DecoderOptions{MaxStringLength: 16}},
		{in: `"0123456789abcdefg"` + "\r\n", kind: "limit", opts: DecoderOptions{MaxStringLength: 16}},
		{in: "{4097+}\r\n", kind: "toobig"},
		{in: "{4096+}\r\n" + strings.Repeat("x", 4096) + "\r\n", want: strings.Repeat("x", 4096)},
		{in: "{4097+}\r\n" + strings.Repeat("x", 4097) + "\r\n", want: strings.Repeat("x", 4097), opts: DecoderOptions{LiteralPlus: true}},
	} {
		d, conts := newDecoder(tc.in, tc.opts)
		got, err := d.ReadAString()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind {
			t.Errorf("%.40q: err %v, want kind %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("%.40q: got %.40q, want %.40q", tc.in, got, tc.want)
		}
		if *conts != tc.conts {
			t.Errorf("%.40q: %d continuations, want %d", tc.in, *conts, tc.conts)
		}
	}
}

func TestLiteralTooBig(t *testing.T) {
	// A refused synchronizing literal: no continuation, the command ends,
	// the next command reads normally.
	d, conts := newDecoder("a LOGIN {100}\r\nb NOOP\r\n", DecoderOptions{MaxStringLength: 50})
	d.ReadTag()
	d.SP()
	d.ReadCommand()
	d.SP()
	_, err := d.ReadAString()
	var te *LiteralTooBigError
	if !errors.As(err, &te) || te.Size != 100 || te.Max != 50 || te.NonSync || *conts != 0 {
		t.Fatalf("err %v (%+v), conts %d", err, te, *conts)
	}
	if !IsProtocolError(err) {
		t.Error("not a protocol error")
	}
	if err := d.SkipLine(); err != nil {
		t.Fatal(err)
	}
	if tag, _ := d.ReadTag(); tag != "b" {
		t.Fatalf("next tag %q", tag)
	}

	// A refused non-synchronizing literal (LITERAL- rule): its data is
	// discarded, and so is the rest of the line.
	data := strings.Repeat("z", 5000)
	d, conts = newDecoder("a LOGIN {5000+}\r\n"+data+" rest\r\nb NOOP\r\n", DecoderOptions{})
	d.ReadTag()
	d.SP()
	d.ReadCommand()
	d.SP()
	_, err = d.ReadAString()
	if !errors.As(err, &te) || !te.NonSync || !te.Minus || te.Max != MaxLiteralMinus || *conts != 0 {
		t.Fatalf("err %v (%+v)", err, te)
	}
	if err := d.SkipLine(); err != nil {
		t.Fatal(err)
	}
	if tag, _ := d.ReadTag(); tag != "b" {
		t.Fatalf("next tag %q", tag)
	}

	// Too much to discard: the session must close.
	d, _ = newDecoder("a LOGIN {5000+}\r\n"+data+"\r\n", DecoderOptions{MaxDiscard: 4000})
	d.ReadTag()
	d.SP()
	d.ReadCommand()
	d.SP()
	d.ReadAString()
	if err := d.SkipLine(); !errors.Is(err, ErrCannotResync) {
		t.Fatalf("SkipLine = %v", err)
	}
}

func TestSkipLine(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		read     func(d *Decoder) error
		opts     DecoderOptions
		kind     string
	}{
		{"bad tag", "* X\r\nb NOOP\r\n", func(d *Decoder) error { _, err := d.ReadTag(); return err }, DecoderOptions{}, "syntax"},
		{"empty line", "\r\nb NOOP\r\n", func(d *Decoder) error { _, err := d.ReadTag(); return err }, DecoderOptions{}, "syntax"},
		{"bare LF", "a\x01\nb NOOP\r\n", func(d *Decoder) error { d.ReadTag(); return d.SP() }, DecoderOptions{}, "syntax"},
		{"long line", "a " + strings.Repeat("x", 100) + "\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			_, err := d.ReadAtom()
			return err
		}, DecoderOptions{MaxLineLength: 40}, "limit"},
		{"non-sync literal later on the line", "a X y {3+}\r\nabc {4+}\r\nabcd z\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			_, err := d.ReadNumber()
			return err
		}, DecoderOptions{}, "syntax"},
		{"sync literal ends the skip", "a X y {3}\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			_, err := d.ReadNumber()
			return err
		}, DecoderOptions{}, "syntax"},
		{"after CRLF nothing to skip", "a NOOP\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			d.ReadCommand()
			if err := d.ExpectCRLF(); err != nil {
				return err
			}
			return &SyntaxError{Elem: "x", Msg: "semantic"}
		}, DecoderOptions{}, "syntax"},
		{"CR without LF", "a\rx\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			return d.ExpectCRLF()
		}, DecoderOptions{}, "syntax"},
		{"accepted literal unread", "a APPEND x {5}\r\nhello\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			d.ReadCommand()
			d.SP()
			d.ReadAtom()
			d.SP()
			l, err := d.ReadLiteral(10)
			if err != nil {
				return err
			}
			buf := make([]byte, 2)
			io.ReadFull(l, buf)
			if _, err := d.ReadAtom(); !errors.Is(err, errLiteralPending) {
				return err
			}
			return &SyntaxError{Elem: "x", Msg: "disk full"}
		}, DecoderOptions{}, "syntax"},
		{"command budget", "a " + strings.Repeat("(x)", 30) + "\r\nb NOOP\r\n", func(d *Decoder) error {
			d.ReadTag()
			d.SP()
			for {
				if err := d.ReadList(func() error { _, err := d.ReadAtom(); return err }); err != nil {
					return err
				}
			}
		}, DecoderOptions{MaxCommandSize: 40}, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := newDecoder(tc.in, tc.opts)
			if err := tc.read(d); errKind(err) != tc.kind {
				t.Fatalf("err %v, want %s", err, tc.kind)
			}
			if err := d.SkipLine(); err != nil {
				t.Fatalf("SkipLine: %v", err)
			}
			tag, err := d.ReadTag()
			if err != nil || tag != "b" {
				t.Fatalf("next tag %q, %v", tag, err)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fn   string
		want int64
		kind string
	}{
		{"0 ", "n", 0, ""},
		{"4294967295 ", "n", 4294967295, ""},
		{"4294967296 ", "n", 0, "syntax"},
		{"99999999999999999999999 ", "n", 0, "syntax"},
		{"x", "n", 0, "syntax"},
		{"0 ", "nz", 0, "syntax"},
		{"007 ", "nz", 7, ""},
		{"9223372036854775807 ", "64", 9223372036854775807, ""},
		{"9223372036854775808 ", "64", 0, "syntax"},
		{"18446744073709551616 ", "64", 0, "syntax"},
		{"0 ", "nz64", 0, "syntax"},
	} {
		d, _ := newDecoder(tc.in, DecoderOptions{})
		var got int64
		var err error
		switch tc.fn {
		case "n":
			var n uint32
			n, err = d.ReadNumber()
			got = int64(n)
		case "nz":
			var n uint32
			n, err = d.ReadNZNumber()
			got = int64(n)
		case "64":
			got, err = d.ReadNumber64()
		case "nz64":
			got, err = d.ReadNZNumber64()
		}
		if errKind(err) != tc.kind || (err == nil && got != tc.want) {
			t.Errorf("%s %q: %d, %v", tc.fn, tc.in, got, err)
		}
	}
}

func TestSeqSet(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
		resolved       string // Resolve(10) as a set
	}{
		{"1", "1", "", "1"},
		{"1:3,5", "1:3,5", "", "1:3,5"},
		{"*", "*", "", "10"},
		{"5:*", "5:*", "", "5:10"},
		{"*:5", "*:5", "", "5:10"},
		{"4:2", "4:2", "", "2:4"},
		{"1,2,3,9:7,8", "1,2,3,9:7,8", "", "1:3,7:9"},
		{"12:15", "12:15", "", "12:15"},
		{"$", "$", "", ""},
		{"0", "", "syntax", ""},
		{"1:0", "", "syntax", ""},
		{"1:", "", "syntax", ""},
		{",1", "", "syntax", ""},
		{"1,,2", "", "syntax", ""},
		{"1,", "", "syntax", ""},
		{"4294967296", "", "syntax", ""},
		{"a", "", "syntax", ""},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		s, err := d.ReadSeqSet()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err != nil {
			continue
		}
		if s.String() != tc.want {
			t.Errorf("%q: String %q", tc.in, s.String())
		}
		var nums []uint32
		for _, r := range s.Resolve(10) {
			for n := r.Start; n <= r.Stop; n++ {
				nums = append(nums, n)
			}
		}
		if got := FormatNumSet(nums); got != tc.resolved {
			t.Errorf("%q: Resolve(10) = %q, want %q", tc.in, got, tc.resolved)
		}
		for n := uint32(1); n <= 12; n++ {
			want := false
			for _, m := range nums {
				want = want || m == n
			}
			if s.Contains(n, 10) != want {
				t.Errorf("%q: Contains(%d) != %v", tc.in, n, want)
			}
		}
	}
	if (SeqSet{Ranges: []SeqRange{{1, 0}}}).Resolve(0) == nil {
		// 1:* in an empty mailbox resolves to 1, which matches nothing.
	}
	if got := (SeqSet{Ranges: []SeqRange{{0, 0}}}).Resolve(0); len(got) != 0 {
		t.Errorf("* in empty mailbox = %v", got)
	}
	if got := (SeqSet{Ranges: []SeqRange{{4294967295, 1}, {3, 4294967295}}}).Resolve(0); len(got) != 1 || got[0] != (SeqRange{1, 4294967295}) {
		t.Errorf("full range merge = %v", got)
	}
	if (SeqSet{Ranges: []SeqRange{{1, 2}}}).Dynamic() || !(SeqSet{Ranges: []SeqRange{{1, 0}}}).Dynamic() || !(SeqSet{Saved: true}).Dynamic() {
		t.Error("Dynamic")
	}
}

func TestDateTime(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{`"17-Jul-1996 02:44:25 -0700"`, "1996-07-17T02:44:25-07:00", ""},
		{`" 7-jul-1996 02:44:25 +0130"`, "1996-07-07T02:44:25+01:30", ""},
		{`"7-JUL-1996 23:59:60 +0000"`, "1996-07-07T23:59:59Z", ""},
		{`"29-Feb-2024 00:00:00 +0000"`, "2024-02-29T00:00:00Z", ""},
		{`"29-Feb-2023 00:00:00 +0000"`, "", "syntax"},
		{`"32-Jan-2024 00:00:00 +0000"`, "", "syntax"},
		{`"00-Jan-2024 00:00:00 +0000"`, "", "syntax"},
		{`"17-Jux-1996 02:44:25 -0700"`, "", "syntax"},
		{`"17-Jul-96 02:44:25 -0700"`, "", "syntax"},
		{`"17-Jul-1996 24:44:25 -0700"`, "", "syntax"},
		{`"17-Jul-1996 02:44:25 0700"`, "", "syntax"},
		{`"17-Jul-1996 02:44:25 -0760"`, "", "syntax"},
		{`"17-Jul-1996 02:44:25"`, "", "syntax"},
		{`17-Jul-1996 02:44:25 -0700`, "", "syntax"},
		{`"17-J`, "", "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		got, err := d.ReadDateTime()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil && got.Format(time.RFC3339) != tc.want {
			t.Errorf("%s: got %s", tc.in, got.Format(time.RFC3339))
		}
		if err != nil {
			// The failed read must not have eaten the line end.
			if err := d.SkipLine(); err != nil || rest(d) != "" {
				t.Errorf("%s: skip %v", tc.in, err)
			}
		}
	}
}

func TestDate(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
	}{
		{"1-Feb-1994", "1994-02-01", ""},
		{`"01-feb-1994"`, "1994-02-01", ""},
		{"31-Dec-2023", "2023-12-31", ""},
		{"31-Apr-2023", "", "syntax"},
		{`"1-Feb-1994`, "", "syntax"},
		{"1-Feb-94", "", "syntax"},
		{"123-Feb-1994", "", "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		got, err := d.ReadDate()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind || (err == nil && got.Format("2006-01-02") != tc.want) {
			t.Errorf("%s: %v, %v", tc.in, got, err)
		}
	}
}

func TestReadFlagList(t *testing.T) {
	for _, tc := range []struct {
		in    string
		flags store.Flags
		kws   string
		kind  string
	}{
		{`()`, 0, "", ""},
		{`(\Seen)`, store.FlagSeen, "", ""},
		{`(\seen \ANSWERED \Flagged \Deleted \Draft \Recent)`, store.FlagSeen | store.FlagAnswered | store.FlagFlagged | store.FlagDeleted | store.FlagDraft, "", ""},
		{`($Forwarded \Seen Junk $label1)`, store.FlagSeen, "$Forwarded Junk $label1", ""},
		{`(\Foo)`, 0, "", "syntax"},
		{`(\*)`, 0, "", "syntax"},
		{`(a%b)`, 0, "", "syntax"},
		{`(a]b)`, 0, "", "syntax"},
		{`("quoted")`, 0, "", "syntax"},
		{`(\Seen  \Draft)`, 0, "", "syntax"},
		{`(\Seen`, 0, "", "syntax"},
		{`\Seen`, 0, "", "syntax"},
		{"(\xc3\xa9)", 0, "", "syntax"},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{})
		f, kws, err := d.ReadFlagList()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.kind)
			continue
		}
		if err == nil && (f != tc.flags || strings.Join(kws, " ") != tc.kws) {
			t.Errorf("%s: got %b %q", tc.in, f, kws)
		}
	}
}

func TestReadMailbox(t *testing.T) {
	for _, tc := range []struct {
		in, want, kind string
		utf8           bool
	}{
		{in: "INBOX", want: "INBOX"},
		{in: "inbox", want: "INBOX"},
		{in: `"InBoX"`, want: "INBOX"},
		{in: "inbox/Sub", want: "INBOX/Sub"},
		{in: "inboxes", want: "inboxes"},
		{in: "Archive/2024", want: "Archive/2024"},
		{in: "Entw&APw-rfe", want: "Entwürfe"},
		{in: "&-x", want: "&x"},
		{in: "\"Entw\xc3\xbcrfe\"", want: "Entwürfe"}, // raw UTF-8 from a rev1 client
		{in: "Entw&APw-rfe", want: "Entw&APw-rfe", utf8: true},
		{in: "\"Entw\xc3\xbcrfe\"", want: "Entwürfe", utf8: true},
		{in: "\"a\xffb\"", kind: "name", utf8: true},
		{in: "\"a\xffb\"", kind: "name"},
		{in: "a&AGE-", kind: "name"},
		{in: "a&Jjo", kind: "name"},
		{in: "{3}\r\na\x01b", kind: "name"},
		{in: "\"a&AAE-b\"", kind: "name"}, // encoded U+0001
		{in: "\"a\xe2\x80\xa8b\"", kind: "name", utf8: true},
		{in: `""`, want: ""},
	} {
		d, _ := newDecoder(tc.in+"\r\n", DecoderOptions{UTF8: tc.utf8})
		got, err := d.ReadMailbox()
		if err == nil {
			err = d.ExpectCRLF()
		}
		if errKind(err) != tc.kind || (err == nil && got != tc.want) {
			t.Errorf("%q (utf8 %v): %q, %v", tc.in, tc.utf8, got, err)
		}
	}
	d, _ := newDecoder("Entw&APw-rfe Entw&APw-rfe\r\n", DecoderOptions{})
	a, _ := d.ReadMailbox()
	d.SP()
	d.SetUTF8(true)
	b, _ := d.ReadMailbox()
	if a != "Entwürfe" || b != "Entw&APw-rfe" || !d.UTF8() {
		t.Errorf("SetUTF8: %q %q", a, b)
	}
}

func TestReadNStringAndList(t *testing.T) {
	d, _ := newDecoder("NIL \"x\" nil (a b c) () (a  b)\r\n", DecoderOptions{})
	if _, isNil, err := d.ReadNString(); !isNil || err != nil {
		t.Fatal(isNil, err)
	}
	d.SP()
	if s, isNil, err := d.ReadNString(); s != "x" || isNil || err != nil {
		t.Fatal(s, isNil, err)
	}
	d.SP()
	if _, isNil, err := d.ReadNString(); !isNil || err != nil {
		t.Fatal(isNil, err)
	}
	d.SP()
	var items []string
	read := func() error { a, err := d.ReadAtom(); items = append(items, a); return err }
	if err := d.ReadList(read); err != nil || strings.Join(items, ",") != "a,b,c" {
		t.Fatal(items, err)
	}
	d.SP()
	if err := d.ReadList(read); err != nil {
		t.Fatal(err)
	}
	d.SP()
	if err := d.ReadList(read); errKind(err) != "syntax" {
		t.Fatal(err)
	}
	d, _ = newDecoder("NILS\r\n", DecoderOptions{})
	if _, _, err := d.ReadNString(); errKind(err) != "syntax" {
		t.Fatal(err)
	}
}

func TestLiteralReader(t *testing.T) {
	body := strings.Repeat("0123456789", 100)
	d, conts := newDecoder("{1000}\r\n"+body+" ~{3}\r\na\x00c {2+}\r\n\x00x\r\n", DecoderOptions{})
	l, err := d.ReadLiteral(1000)
	if err != nil || l.Size != 1000 || l.NonSync || l.Binary || *conts != 1 {
		t.Fatalf("%+v %v", l, err)
	}
	got, err := io.ReadAll(l)
	if err != nil || string(got) != body || l.Remaining() != 0 || l.HasNUL() {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if err := d.SP(); err != nil {
		t.Fatal(err)
	}
	l, err = d.ReadLiteral(3)
	if err != nil || !l.Binary || *conts != 2 {
		t.Fatalf("%+v %v", l, err)
	}
	got, _ = io.ReadAll(l)
	if string(got) != "a\x00c" || l.HasNUL() {
		t.Fatalf("%q", got)
	}
	d.SP()
	l, err = d.ReadLiteral(3)
	if err != nil || !l.NonSync || *conts != 2 {
		t.Fatalf("%+v %v", l, err)
	}
	io.ReadAll(l)
	if !l.HasNUL() {
		t.Error("NUL not noticed")
	}
	if err := d.ExpectCRLF(); err != nil {
		t.Fatal(err)
	}

	// Oversized: refused before the continuation.
	d, conts = newDecoder("{1001}\r\n", DecoderOptions{})
	if _, err := d.ReadLiteral(1000); errKind(err) != "toobig" || *conts != 0 {
		t.Fatalf("%v %d", err, *conts)
	}
	// Truncated data.
	d, _ = newDecoder("{10}\r\nabc", DecoderOptions{})
	l, _ = d.ReadLiteral(10)
	if _, err := io.ReadAll(l); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	// Discard.
	d, _ = newDecoder("{10}\r\n0123456789\r\n", DecoderOptions{})
	l, _ = d.ReadLiteral(10)
	if err := l.Discard(); err != nil {
		t.Fatal(err)
	}
	if err := d.ExpectCRLF(); err != nil {
		t.Fatal(err)
	}
	// A continuation callback error is returned as is.
	boom := errors.New("boom")
	d = NewDecoder(bufio.NewReader(strings.NewReader("{1}\r\nx")), func() error { return boom }, DecoderOptions{})
	if _, err := d.ReadLiteral(10); !errors.Is(err, boom) || IsProtocolError(err) {
		t.Fatal(err)
	}
}

func TestReadSASLAndIdle(t *testing.T) {
	d, _ := newDecoder("dGVzdA==\r\n\r\n*\r\n!!\r\n"+strings.Repeat("A", 100)+"\r\ndone\nDONEX\r\n", DecoderOptions{MaxLineLength: 50})
	if b, err := d.ReadSASLResponse(); string(b) != "test" || err != nil {
		t.Fatal(b, err)
	}
	if b, err := d.ReadSASLResponse(); len(b) != 0 || err != nil {
		t.Fatal(b, err)
	}
	if _, err := d.ReadSASLResponse(); !errors.Is(err, ErrAuthCanceled) || !IsProtocolError(err) {
		t.Fatal(err)
	}
	if _, err := d.ReadSASLResponse(); errKind(err) != "syntax" {
		t.Fatal(err)
	}
	if _, err := d.ReadSASLResponse(); errKind(err) != "limit" {
		t.Fatal(err)
	}
	if err := d.ReadIdleDone(); err != nil {
		t.Fatal(err)
	}
	if err := d.ReadIdleDone(); errKind(err) != "syntax" {
		t.Fatal(err)
	}
	if err := d.ReadIdleDone(); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
}

func TestResetAndBuffered(t *testing.T) {
	d, _ := newDecoder("a STARTTLS\r\nb NOOP\r\n", DecoderOptions{})
	d.ReadTag()
	d.SP()
	d.ReadCommand()
	d.ExpectCRLF()
	if d.Buffered() == 0 {
		t.Fatal("pipelined command not seen as buffered")
	}
	d.Reset(bufio.NewReader(strings.NewReader("c NOOP\r\n")))
	if tag, err := d.ReadTag(); tag != "c" || err != nil {
		t.Fatal(tag, err)
	}
}

func TestReadRawLineBound(t *testing.T) {
	d, _ := newDecoder(strings.Repeat("A", 200)+"\r\nDONE\r\n", DecoderOptions{MaxLineLength: 50, MaxDiscard: 100})
	if _, err := d.ReadSASLResponse(); !errors.Is(err, ErrCannotResync) || IsProtocolError(err) {
		t.Fatal(err)
	}
}

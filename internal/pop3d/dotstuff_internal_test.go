package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// stuffRef is the obvious line-by-line implementation writeDotStuffed must
// agree with.
func stuffRef(msg string, lines int64) string {
	var b strings.Builder
	inHeader := true
	for len(msg) > 0 {
		if lines >= 0 && !inHeader {
			if lines == 0 {
				break
			}
			lines--
		}
		line := msg
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			line = msg[:i+1]
		}
		msg = msg[len(line):]
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
		if line == "\r\n" || line == "\n" {
			inHeader = false
		}
	}
	s := b.String()
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\r\n"
	}
	return s + ".\r\n"
}

func stuff(t *testing.T, r io.Reader, bufSize int, lines int64) string {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriterSize(&out, 16)
	if err := writeDotStuffed(w, r, make([]byte, bufSize), lines); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return out.String()
}

var stuffCases = []struct {
	name, in, want string
}{
	{"empty", "", ".\r\n"},
	{"plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
	{"leading dot", ".a\r\n", "..a\r\n.\r\n"},
	{"lone dot", "x\r\n.\r\ny\r\n", "x\r\n..\r\ny\r\n.\r\n"},
	{"dots", "..\r\n...\r\n", "...\r\n....\r\n.\r\n"},
	{"dot not at start", "a.b\r\n a.\r\n", "a.b\r\n a.\r\n.\r\n"},
	{"no final CRLF", "a\r\n.b", "a\r\n..b\r\n.\r\n"},
	{"bare LF", "a\n.b\n", "a\n..b\n.\r\n"},
	{"CR dot", "a\r.b\r\n", "a\r.b\r\n.\r\n"},
	{"only dot", ".", "..\r\n.\r\n"},
	{"blank lines", "\r\n\r\n.\r\n", "\r\n\r\n..\r\n.\r\n"},
}

func TestWriteDotStuffed(t *testing.T) {
	for _, tc := range stuffCases {
		for _, bufSize := range []int{1, 2, 3, 7, 4096} {
			readers := map[string]io.Reader{
				"plain":   strings.NewReader(tc.in),
				"onebyte": iotest.OneByteReader(strings.NewReader(tc.in)),
				"half":    iotest.HalfReader(strings.NewReader(tc.in)),
			}
			for rn, r := range readers {
				if got := stuff(t, r, bufSize, -1); got != tc.want {
					t.Errorf("%s (buf %d, %s): got %q, want %q", tc.name, bufSize, rn, got, tc.want)
				}
			}
		}
		if ref := stuffRef(tc.in, -1); ref != tc.want {
			t.Errorf("%s: reference gives %q", tc.name, ref)
		}
	}
}

func TestWriteDotStuffedTop(t *testing.T) {
	msgs := []string{
		"",
		"A: b\r\n\r\nl1\r\nl2\r\n\r\n.l4\r\nl5",
		"A: b\r\nC: d\r\n",
		"\r\n.x\r\n",
		"A: b\n\n.l1\nl2\n",
		"A: b\r\n\r",
		"A: b\r\n\r\n",
		".A: b\r\n\r\nl1\r\n",
	}
	for _, m := range msgs {
		for lines := int64(0); lines < 7; lines++ {
			want := stuffRef(m, lines)
			for _, bufSize := range []int{1, 2, 5, 4096} {
				if got := stuff(t, iotest.HalfReader(strings.NewReader(m)), bufSize, lines); got != want {
					t.Errorf("TOP %d of %q (buf %d): got %q, want %q", lines, m, bufSize, got, want)
				}
			}
		}
	}
}

func FuzzWriteDotStuffed(f *testing.F) {
	for _, tc := range stuffCases {
		f.Add(tc.in, int64(-1), uint8(3))
	}
	f.Add("A: b\r\n\r\nl1\r\n.l2\r\n", int64(1), uint8(1))
	f.Fuzz(func(t *testing.T, in string, lines int64, bufSize uint8) {
		if lines < -1 {
			lines = -1
		}
		got := stuff(t, strings.NewReader(in), int(bufSize)+1, lines)
		if want := stuffRef(in, lines); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestWriteDotStuffedErrors(t *testing.T) {
	boom := errors.New("boom")
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	err := writeDotStuffed(w, iotest.ErrReader(boom), make([]byte, 8), -1)
	if !errors.Is(err, boom) || isWriteError(err) {
		t.Errorf("read error: %v", err)
	}
	w = bufio.NewWriterSize(failWriter{boom}, 16)
	err = writeDotStuffed(w, strings.NewReader(strings.Repeat("x\r\n", 100)), make([]byte, 8), -1)
	if !errors.Is(err, boom) || !isWriteError(err) {
		t.Errorf("write error: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct{ in, verb, args string }{
		{"STAT", "STAT", ""},
		{"stat", "STAT", ""},
		{"rEtR 1", "RETR", "1"},
		{"TOP 1 2", "TOP", "1 2"},
		{"PASS a b  c ", "PASS", "a b  c "},
		{"", "", ""},
		{"ST", "", ""},
		{"STATS", "", ""},
		{"ST4T", "", ""},
		{"\xffTAT", "", ""},
		{"US\x00R x", "", "x"},
		{" STAT", "", "STAT"},
	} {
		verb, args := splitCommand([]byte(tc.in))
		if verb != tc.verb || args != tc.args {
			t.Errorf("splitCommand(%q) = %q, %q; want %q, %q", tc.in, verb, args, tc.verb, tc.args)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  uint64
		ok bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"007", 7, true}, {"4294967295", 4294967295, true}, {"9999999999", 9999999999, true},
		{"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1a", 0, false}, {"12345678901", 0, false}, {" 1", 0, false},
	} {
		n, ok := parseNumber(tc.in)
		if n != tc.n || ok != tc.ok {
			t.Errorf("parseNumber(%q) = %d, %v", tc.in, n, ok)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ verb, args, want string }{
		{"PASS", "secret", "[redacted]"},
		{"AUTH", "PLAIN AGFsaWNlAHNlY3JldA==", "PLAIN [redacted]"},
		{"AUTH", "LOGIN", "LOGIN"},
		{"APOP", "alice c4c9334bac560ecc979e58001b3e22fb", "alice [redacted]"},
		{"RETR", "1", "1"},
	} {
		if got := redact(tc.verb, tc.args); got != tc.want {
			t.Errorf("redact(%s %s) = %q", tc.verb, tc.args, got)
		}
	}
}

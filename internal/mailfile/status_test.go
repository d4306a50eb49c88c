package mailfile

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWithStatus(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		flags Flags
		want  string
	}{
		{"unchanged", "Status: RO\nX-Status: AF\nSubject: x\n\nStatus: D\n", Seen | Answered | Flagged, "Status: RO\nX-Status: AF\nSubject: x\n\nStatus: D\n"},
		{"no flags, no fields", "Subject: x\n\nbody\n", 0, "Subject: x\n\nbody\n"},
		{"added at the end of the header", "Subject: x\nTo: y\n\nbody\n", Seen | Deleted | Draft, "Subject: x\nTo: y\nStatus: R\nX-Status: TD\n\nbody\n"},
		{"replaced in place", "Subject: x\nX-Status: D\nStatus: RO\nTo: y\n\nb\n", Flagged, "Subject: x\nX-Status: F\nTo: y\n\nb\n"},
		{"old kept", "Status: O\nSubject: x\n\nb\n", Seen, "Status: RO\nSubject: x\n\nb\n"},
		{"cleared", "Status: R\nX-Status: A\n\tfolded\nSubject: x\n\nb\n", 0, "Subject: x\n\nb\n"},
		{"no blank line", "Subject: x\n", Seen, "Subject: x\n"},
		{"body without header", "hello world\nmore\n", Flagged, "X-Status: F\nhello world\nmore\n"},
		{"empty", "", Seen, ""},
		{"passed only", "Subject: x\n\nb", Passed, "Subject: x\n\nb"},
	}
	for _, tc := range tests {
		for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader} {
			b, err := io.ReadAll(WithStatus(wrap(strings.NewReader(tc.in)), tc.flags))
			if err != nil || string(b) != tc.want {
				t.Errorf("%s: %q, %v; want %q", tc.name, b, err, tc.want)
			}
		}
	}
	// A long line streams through.
	long := "Subject: " + strings.Repeat("x", 100<<10) + "\n\n" + strings.Repeat("y", 100<<10)
	b, _ := io.ReadAll(WithStatus(strings.NewReader(long), Seen))
	if want := "Subject: " + strings.Repeat("x", 100<<10) + "\nStatus: R\n\n" + strings.Repeat("y", 100<<10); string(b) != want {
		t.Errorf("long lines: %d bytes, want %d", len(b), len(want))
	}
}

// FuzzWithStatus: the flags written are the flags read back, and a message
// whose fields already match passes unchanged.
func FuzzWithStatus(f *testing.F) {
	f.Add("Status: RO\nX-Status: AF\nSubject: x\n\nb\n", uint8(Seen|Answered))
	f.Add("Subject: x\n\n", uint8(0))
	f.Fuzz(func(t *testing.T, in string, fl uint8) {
		flags := Flags(fl) & (Seen | Answered | Flagged | Deleted | Draft)
		b, err := io.ReadAll(WithStatus(strings.NewReader(in), flags))
		if err != nil {
			t.Fatal(err)
		}
		mr := NewMboxReader(strings.NewReader("From x\n" + string(b) + "\n"))
		m, err := mr.Next()
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, m)
		if !strings.Contains(in, "\n\n") || strings.Contains(in, "\r") || strings.Contains(in, "From ") {
			return // no header end, or mbox separators: not a message WithStatus must fix
		}
		if got := m.Flags(); got != flags {
			t.Fatalf("flags %v written as %q, read back as %v", flags, b, got)
		}
		again, _ := io.ReadAll(WithStatus(strings.NewReader(string(b)), flags))
		if string(again) != string(b) {
			t.Fatalf("not idempotent: %q -> %q", b, again)
		}
	})
}

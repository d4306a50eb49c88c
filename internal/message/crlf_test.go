package message

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// crlfReference is the obvious whole-input conversion CRLFWriter must match.
func crlfReference(in []byte) []byte {
	var out []byte
	for i, c := range in {
		if c == '\n' && (i == 0 || in[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

func TestCRLFWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, ""},
		{"crlf untouched", []string{"a\r\nb\r\n"}, "a\r\nb\r\n"},
		{"bare lf", []string{"a\nb\n"}, "a\r\nb\r\n"},
		{"leading lf", []string{"\n\nx"}, "\r\n\r\nx"},
		{"bare cr kept", []string{"a\rb\r"}, "a\rb\r"},
		{"cr cr lf", []string{"a\r\r\n"}, "a\r\r\n"},
		{"cr then lf across writes", []string{"a\r", "\nb"}, "a\r\nb"},
		{"lf alone after text write", []string{"a", "\n"}, "a\r\n"},
		{"cr write then lf write", []string{"\r", "\n", "\n"}, "\r\n\r\n"},
		{"empty writes between", []string{"a\r", "", "\n"}, "a\r\n"},
		{"mixed", []string{"From: a\n", "\r\n", "body\r", "\n.\n"}, "From: a\r\n\r\nbody\r\n.\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewCRLFWriter(&out)
			for _, s := range tc.writes {
				n, err := w.Write([]byte(s))
				if err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestCRLFWriterLarge(t *testing.T) {
	in := []byte(strings.Repeat("line of text\n", 20000) + strings.Repeat("x", 3*crlfChunk) + "\n")
	var out bytes.Buffer
	n, err := NewCRLFWriter(&out).Write(in)
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(out.Bytes(), crlfReference(in)) {
		t.Error("large write differs from reference")
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestCRLFWriterError(t *testing.T) {
	boom := errors.New("disk full")
	n, err := NewCRLFWriter(failWriter{boom}).Write([]byte("a\nb"))
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("Write = %d, %v; want 0 and wrapped %v", n, err, boom)
	}
}

package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

var testFields = submitFields{
	from:      "alice@example.org",
	date:      time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
	messageID: "id1@mail.example.org",
}

const (
	addFrom  = "From: <alice@example.org>\r\n"
	addDate  = "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
	addMsgID = "Message-ID: <id1@mail.example.org>\r\n"
	addAll   = addFrom + addDate + addMsgID
)

// fix runs msg through a headerFixer, written in pieces of n bytes.
func fix(t testing.TB, msg string, n int) string {
	t.Helper()
	var out bytes.Buffer
	h := newHeaderFixer(&out, testFields)
	for p := []byte(msg); len(p) > 0; {
		k := min(n, len(p))
		if w, err := h.Write(p[:k]); err != nil || w != k {
			t.Fatalf("write: %d, %v", w, err)
		}
		p = p[k:]
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestHeaderFixer(t *testing.T) {
	full := "From: a@example.org\r\nDate: Sun, 6 Dec 2026 09:00:00 +0100\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n"
	tests := []struct{ name, in, want string }{
		{"complete", full, full},
		{"nothing", "Subject: s\r\n\r\nbody\r\n", "Subject: s\r\n" + addAll + "\r\nbody\r\n"},
		{"only from missing", "Date: x\r\nMessage-ID: <x@y>\r\nSubject: s\r\n\r\nb\r\n", "Date: x\r\nMessage-ID: <x@y>\r\nSubject: s\r\n" + addFrom + "\r\nb\r\n"},
		{"field names any case", "fRoM: a@b\r\nDATE: x\r\nmessage-id: <x@y>\r\n\r\nb\r\n", "fRoM: a@b\r\nDATE: x\r\nmessage-id: <x@y>\r\n\r\nb\r\n"},
		// RFC 5322 §4.5.x obsolete syntax: white space before the colon.
		{"space before colon", "From : a@b\r\nDate\t: x\r\nMessage-ID: <x@y>\r\n\r\nb\r\n", "From : a@b\r\nDate\t: x\r\nMessage-ID: <x@y>\r\n\r\nb\r\n"},
		// Names inside field bodies and continuation lines do not count.
		{"folded", "Subject: From: x\r\n Date: y\r\n\tMessage-ID: z\r\n\r\nFrom: body\r\n", "Subject: From: x\r\n Date: y\r\n\tMessage-ID: z\r\n" + addAll + "\r\nFrom: body\r\n"},
		{"X-From is not From", "X-From: a@b\r\nResent-Date: x\r\n\r\nb\r\n", "X-From: a@b\r\nResent-Date: x\r\n" + addAll + "\r\nb\r\n"},
		{"no header", "\r\nbody\r\n", addAll + "\r\nbody\r\n"},
		{"empty message", "", addAll + "\r\n"},
		{"header only", "Subject: s\r\n", "Subject: s\r\n" + addAll + "\r\n"},
		{"header only, no line end", "Subject: s", "Subject: s\r\n" + addAll + "\r\n"},
		{"complete header only", "From: a@b\r\nDate: x\r\nMessage-ID: <x@y>", "From: a@b\r\nDate: x\r\nMessage-ID: <x@y>"},
		// A line that is not a header field ends the header: the fields
		// and an empty line go before it.
		{"body without empty line", "Subject: s\r\nHello there\r\n", "Subject: s\r\n" + addAll + "\r\nHello there\r\n"},
		{"name with space", "From x: y\r\n\r\nb\r\n", addAll + "\r\nFrom x: y\r\n\r\nb\r\n"},
		{"mbox From_ line", "From alice@example.org Mon Dec 7 2026\r\nSubject: s\r\n\r\nb\r\n", addAll + "\r\nFrom alice@example.org Mon Dec 7 2026\r\nSubject: s\r\n\r\nb\r\n"},
		{"colon first", ": x\r\n\r\n", addAll + "\r\n: x\r\n\r\n"},
		{"long name", strings.Repeat("X", 100) + ": y\r\n\r\n", addAll + "\r\n" + strings.Repeat("X", 100) + ": y\r\n\r\n"},
		{"8-bit name", "Fröm: y\r\n\r\n", addAll + "\r\nFröm: y\r\n\r\n"},
		{"bare CR line", "Subject: s\r\n\rx\r\n", "Subject: s\r\n" + addAll + "\r\n\rx\r\n"},
		{"complete, then a non-field", full[:len(full)-len("\r\nbody\r\n")] + "body\r\n", full[:len(full)-len("\r\nbody\r\n")] + "body\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 3, 7, 1 << 20} {
				if got := fix(t, tc.in, n); got != tc.want {
					t.Fatalf("pieces of %d:\n got %q\nwant %q", n, got, tc.want)
				}
			}
		})
	}
}

// TestHeaderFixerLongHeader: a header line is not held in memory, however
// long.
func TestHeaderFixerLongHeader(t *testing.T) {
	long := "Subject: " + strings.Repeat("x", 1<<20) + "\r\n\r\nb\r\n"
	var out bytes.Buffer
	h := newHeaderFixer(&out, testFields)
	h.Write([]byte(long))
	h.Close()
	if cap(h.line) > 1024 {
		t.Errorf("held %d bytes", cap(h.line))
	}
	if want := strings.Replace(long, "\r\n\r\n", "\r\n"+addAll+"\r\n", 1); out.String() != want {
		t.Errorf("output differs")
	}
}

// FuzzHeaderFixer: the output does not depend on how the message is cut
// into writes, and it is the message with only fields from submitFields,
// and at most a line end and an empty line, added.
func FuzzHeaderFixer(f *testing.F) {
	f.Add("From: a@b\r\nDate: x\r\nMessage-ID: <x@y>\r\n\r\nb\r\n", 3)
	f.Add("Subject: s\r\n\r\nb\r\n", 1)
	f.Add("Subject: s\r\nHello\r\n", 2)
	f.Add("From : a\r\n folded\r\n\r\n", 5)
	f.Add("Subject: s", 4)
	f.Fuzz(func(t *testing.T, msg string, n int) {
		if n <= 0 || n > 1<<16 {
			n = 1
		}
		whole := fix(t, msg, 1<<30)
		if got := fix(t, msg, n); got != whole {
			t.Fatalf("pieces of %d: %q, whole: %q", n, got, whole)
		}
		if whole == msg {
			return
		}
		if !subsequence(msg, whole) {
			t.Fatalf("message changed:\n in %q\nout %q", msg, whole)
		}
		extra := len(whole) - len(msg)
		for mask := 1; mask < 8; mask++ {
			size := 0
			for i, a := range []string{addFrom, addDate, addMsgID} {
				if mask&(1<<i) != 0 {
					size += len(a)
				}
			}
			if d := extra - size; d == 0 || d == 2 || d == 4 {
				return
			}
		}
		t.Fatalf("%d bytes added:\n in %q\nout %q", extra, msg, whole)
	})
}

// subsequence reports whether s is a subsequence of t.
func subsequence(s, t string) bool {
	for i := 0; i < len(t) && len(s) > 0; i++ {
		if t[i] == s[0] {
			s = s[1:]
		}
	}
	return len(s) == 0
}

func TestStoreFailed(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("write body: %w", &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), 452},
		{fmt.Errorf("message: write crlf: %w", fmt.Errorf("write body: %w", syscall.EDQUOT)), 452},
		{fmt.Errorf("fsync body: %w", syscall.EIO), 451},
		{os.ErrNotExist, 451},
		{errors.New("queue: add: database is locked"), 451},
	} {
		var se *smtp.SMTPError
		if !errors.As(storeFailed(tc.err), &se) || se.Code != tc.code || se.Code/100 != 4 {
			t.Errorf("%v: %v, want %d", tc.err, se, tc.code)
		}
	}
}

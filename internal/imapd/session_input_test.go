package imapd_test

import (
	"io"
	"strings"
	"testing"
)

// Malformed input: every line gets an answer (untagged BAD when no tag
// parses, tagged BAD otherwise) and the session goes on; literals over
// the limit are refused before they are read (RFC 9051 §7.1.5, RFC 7888).

func TestSessionMalformedInput(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	long := strings.Repeat("x", 70<<10)
	tests := []struct {
		name, send string
		want       string // prefix of the first response line
		loggedIn   bool
	}{
		{"empty line", "\r\n", "* BAD ", false},
		{"tag with plus", "+x NOOP\r\n", "* BAD ", false},
		{"8-bit tag", "\xff\xfe NOOP\r\n", "* BAD ", false},
		{"NUL", "\x00\r\n", "* BAD ", false},
		{"NUL after tag", "a\x00 NOOP\r\n", "a BAD ", false},
		{"tag only", "a1\r\n", "a1 BAD ", false},
		{"unknown command", "a1 FROB\r\n", "a1 BAD ", false},
		{"8-bit command", "a1 NO\xc3\xa9OP\r\n", "a1 BAD ", false},
		{"arguments to NOOP", "a1 NOOP now\r\n", "a1 BAD ", false},
		{"UID with a non-UID command", "a1 UID NOOP\r\n", "a1 BAD ", false},
		{"selected-state command", "a1 FETCH 1 FLAGS\r\n", "a1 BAD ", true},
		{"bare LF", "a1 NOOP\n", "a1 OK ", false},
		{"lower case", "a1 noop\r\n", "a1 OK ", false},
		{"over-long line", "a1 NOOP " + long + "\r\n", "a1 BAD ", false},
		{"over-long tag", long + " NOOP\r\n", "* BAD ", false},
		{"huge synchronizing literal", "a1 LOGIN {999999999}\r\n", "a1 BAD [TOOBIG]", false},
		{"unterminated quoted", "a1 LOGIN \"alice\r\n", "a1 BAD ", false},
		{"8-bit quoted", "a1 LOGIN \"\xc3\xa9\" x\r\n", "a1 ", false},
		{"bad literal", "a1 LOGIN {abc}\r\n", "a1 BAD ", false},
		{"CR without LF", "a1 NOOP\rmore\r\n", "a1 BAD ", false},
		{"SELECT without argument", "a1 SELECT\r\n", "a1 BAD ", true},
		{"bad QRESYNC syntax", "a1 SELECT INBOX (QRESYNC (0 1))\r\n", "a1 BAD ", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.t = t
			if tc.loggedIn {
				c.login(sessAlice, sessPass)
			}
			c.Send(tc.send)
			l := c.Response()
			if !strings.HasPrefix(l, tc.want) {
				t.Fatalf("got %q, want %q", l, tc.want)
			}
			if strings.HasPrefix(l, "+ ") {
				t.Fatalf("continuation for refused input")
			}
			// The session is in sync: the next command gets its own reply.
			c.OK("NOOP")
		})
	}
}

// TestSessionHugeNonSyncLiteral: a non-synchronizing literal too big to
// discard ends the session (RFC 7888 §4 lets the server close).
func TestSessionHugeNonSyncLiteral(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	c := h.dial()
	// The client goes on sending its literal: the server, closing, must
	// still deliver its answer and BYE rather than reset the connection
	// under them.
	go io.WriteString(c.NetConn(), "a1 LOGIN {999999999+}\r\n"+strings.Repeat("z", 256<<10))
	if l := c.Response(); !strings.HasPrefix(l, "a1 BAD ") {
		t.Fatalf("got %q", l)
	}
	if l := c.Response(); !strings.HasPrefix(l, "* BYE ") {
		t.Fatalf("got %q", l)
	}
	c.EOF()

	// Small enough to discard: the session goes on.
	c = h.dial()
	c.Send("a1 LOGIN {70000+}\r\n" + strings.Repeat("y", 70000) + " x\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "a1 BAD") {
		t.Fatalf("got %q", l)
	}
	c.OK("NOOP")
}

// TestSessionTooManyErrors: a client that sends nothing but garbage is
// disconnected.
func TestSessionTooManyErrors(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	c := h.dial()
	var b strings.Builder
	for range 60 {
		b.WriteString("a1 FROB\r\n")
	}
	c.Send(b.String())
	n := 0
	for {
		l, err := c.ReadResponse()
		if err != nil {
			break
		}
		if strings.HasPrefix(l, "* BYE ") {
			c.EOF()
			break
		}
		if !strings.HasPrefix(l, "a1 BAD ") {
			t.Fatalf("got %q", l)
		}
		n++
	}
	if n == 0 || n >= 60 {
		t.Errorf("%d BAD replies before BYE", n)
	}
}

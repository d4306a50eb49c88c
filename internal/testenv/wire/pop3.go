package wire

import (
	"strings"
	"testing"
)

// POP3 is a raw POP3 client (RFC 1939).
type POP3 struct {
	*Conn
	// Greeting is the server's first line.
	Greeting string
}

// DialPOP3 connects to addr and reads the greeting.
func DialPOP3(t testing.TB, addr string) *POP3 {
	t.Helper()
	return NewPOP3(Dial(t, addr))
}

// NewPOP3 reads the greeting on c and fails unless it is +OK.
func NewPOP3(c *Conn) *POP3 {
	c.t.Helper()
	p := &POP3{Conn: c, Greeting: c.Line()}
	if !strings.HasPrefix(p.Greeting, "+OK ") {
		c.Fatalf("greeting %q, want +OK", p.Greeting)
	}
	return p
}

// Cmd sends a command line and returns the status line of the reply.
func (p *POP3) Cmd(line string) string {
	p.t.Helper()
	p.SendLine(line)
	return p.Line()
}

// OK sends a command and fails unless the reply is +OK; it returns the
// status line.
func (p *POP3) OK(line string) string {
	p.t.Helper()
	return p.Expect(line, "+OK")
}

// Expect sends a command and fails unless the status line starts with
// want ("-ERR [AUTH]", "+OK 2 "); it returns the status line.
func (p *POP3) Expect(line, want string) string {
	p.t.Helper()
	r := p.Cmd(line)
	if !strings.HasPrefix(r, want) {
		p.Fatalf("%s: got %q, want %q...", line, r, want)
	}
	return r
}

// Multi reads the data of a multi-line response, after its status line,
// up to the terminating ".": the raw octets with line ends kept as sent
// and the byte-stuffing undone (RFC 1939 §3).
func (p *POP3) Multi() string {
	p.t.Helper()
	var b strings.Builder
	for {
		s, err := p.readRaw()
		if err != nil {
			p.Fatalf("read multi-line: %v (got %q)", err, s)
		}
		if s == ".\r\n" {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(s, "."))
	}
}

// Lines reads a multi-line response of short lines (LIST, UIDL, CAPA).
func (p *POP3) Lines() []string {
	p.t.Helper()
	s := p.Multi()
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
}

// Login logs in with USER and PASS and returns the +OK status line.
func (p *POP3) Login(user, pass string) string {
	p.t.Helper()
	p.OK("USER " + user)
	return p.OK("PASS " + pass)
}

package wire

import (
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
)

// SMTP is a raw SMTP client (RFC 5321).
type SMTP struct {
	*Conn
	// Greeting is the text of the server's 220 greeting.
	Greeting string
}

// DialSMTP connects to addr and reads the greeting.
func DialSMTP(t testing.TB, addr string) *SMTP {
	t.Helper()
	return NewSMTP(Dial(t, addr))
}

// NewSMTP reads the greeting on c and fails unless it is 220.
func NewSMTP(c *Conn) *SMTP {
	c.t.Helper()
	s := &SMTP{Conn: c}
	s.Greeting = s.WantReply(220, "")
	return s
}

// Reply reads one reply, all its lines (RFC 5321 §4.2.1): its code and
// its text, the lines' texts joined with "\n", as net/textproto does. A
// malformed line fails the test.
func (s *SMTP) Reply() (code int, text string) {
	s.t.Helper()
	var texts []string
	for {
		l := s.Line()
		if len(l) < 3 || len(l) > 3 && l[3] != ' ' && l[3] != '-' {
			s.Fatalf("malformed reply line %q", l)
		}
		n, err := strconv.Atoi(l[:3])
		if err != nil || n < 100 || n > 599 || code != 0 && n != code {
			s.Fatalf("malformed reply line %q", l)
		}
		code = n
		if len(l) > 4 {
			texts = append(texts, l[4:])
		} else {
			texts = append(texts, "")
		}
		if len(l) == 3 || l[3] == ' ' {
			return code, strings.Join(texts, "\n")
		}
	}
}

// WantReply reads a reply and fails unless it has code and its text
// contains want; it returns the text.
func (s *SMTP) WantReply(code int, want string) string {
	s.t.Helper()
	got, text := s.Reply()
	if got != code || !strings.Contains(text, want) {
		s.Fatalf("got reply %d %q, want %d with %q", got, text, code, want)
	}
	return text
}

// Cmd sends a command line and returns the reply.
func (s *SMTP) Cmd(line string) (code int, text string) {
	s.t.Helper()
	s.SendLine(line)
	return s.Reply()
}

// OK sends a command line and fails unless the reply is 2xx; it returns
// the text.
func (s *SMTP) OK(line string) string {
	s.t.Helper()
	code, text := s.Cmd(line)
	if code/100 != 2 {
		s.Fatalf("%s: got %d %q, want 2xx", line, code, text)
	}
	return text
}

// Expect sends a command line and fails unless the reply has code and its
// text contains want; it returns the text.
func (s *SMTP) Expect(line string, code int, want string) string {
	s.t.Helper()
	s.SendLine(line)
	got, text := s.Reply()
	if got != code || !strings.Contains(text, want) {
		s.Fatalf("%s: got reply %d %q, want %d with %q", line, got, text, code, want)
	}
	return text
}

// EHLO sends EHLO name and returns the extensions the server announced,
// keywords upper-cased, each with its parameters ("" for none).
func (s *SMTP) EHLO(name string) map[string]string {
	s.t.Helper()
	text := s.Expect("EHLO "+name, 250, "")
	exts := map[string]string{}
	for _, line := range strings.Split(text, "\n")[1:] {
		k, v, _ := strings.Cut(line, " ")
		exts[strings.ToUpper(k)] = v
	}
	return exts
}

// StartTLS sends STARTTLS and, after the 220, runs the handshake (RFC
// 3207). The session starts over: send EHLO again.
func (s *SMTP) StartTLS(cfg *tls.Config) {
	s.t.Helper()
	s.Expect("STARTTLS", 220, "")
	s.UpgradeTLS(cfg)
}

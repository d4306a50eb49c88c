package wire

import (
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// IMAP is a raw IMAP client (RFC 3501, RFC 9051). Commands get the tags
// TagPrefix+"1", TagPrefix+"2", ...; responses are read whole, literals
// inlined (see the package doc).
type IMAP struct {
	*Conn
	// Greeting is the server's first response.
	Greeting string
	// TagPrefix starts every tag; "" means "t".
	TagPrefix string
	n         int
}

// DialIMAP connects to addr and reads the greeting.
func DialIMAP(t testing.TB, addr string) *IMAP {
	t.Helper()
	return NewIMAP(Dial(t, addr))
}

// NewIMAP reads the greeting on c and fails unless it is "* OK".
func NewIMAP(c *Conn) *IMAP {
	c.t.Helper()
	m := &IMAP{Conn: c}
	m.Greeting = m.Response()
	if !strings.HasPrefix(m.Greeting, "* OK ") {
		c.Fatalf("greeting %q, want * OK", m.Greeting)
	}
	return m
}

// ReadResponse reads one response: a line without its CRLF, with the
// literals it announces inlined. Unlike Response it returns errors, with
// what was read.
func (m *IMAP) ReadResponse() (string, error) {
	var b strings.Builder
	for {
		s, err := m.ReadLine()
		b.WriteString(s)
		if err != nil {
			return b.String(), err
		}
		n, ok := trailingLiteral(s)
		if !ok {
			return b.String(), nil
		}
		b.WriteString("\r\n")
		b.WriteString(m.ReadFull(n))
	}
}

// Response reads one response, literals inlined.
func (m *IMAP) Response() string {
	m.t.Helper()
	s, err := m.ReadResponse()
	if err != nil {
		m.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

// NextTag is the tag the next command will get.
func (m *IMAP) NextTag() string {
	p := m.TagPrefix
	if p == "" {
		p = "t"
	}
	return p + strconv.Itoa(m.n+1)
}

// Tag returns a fresh tag, for a command the test sends itself.
func (m *IMAP) Tag() string {
	tag := m.NextTag()
	m.n++
	return tag
}

// Cmd sends line, which may hold non-synchronizing literals ("{n+}"),
// with a fresh tag, and returns the untagged responses and the tagged
// status without its tag ("OK [READ-WRITE] done").
func (m *IMAP) Cmd(line string) (untagged []string, status string) {
	m.t.Helper()
	tag := m.Tag()
	m.SendLine(tag + " " + line)
	return m.Until(tag)
}

// Until reads responses up to the one tagged tag, and returns those
// before it and its status. Continuation requests ("+ ") are among the
// untagged ones.
func (m *IMAP) Until(tag string) (untagged []string, status string) {
	m.t.Helper()
	for {
		l := m.Response()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// OK sends a command and fails unless its status is OK; it returns the
// untagged responses.
func (m *IMAP) OK(line string) []string {
	m.t.Helper()
	return m.Expect(line, "OK")
}

// Expect sends a command and fails unless its status starts with want
// ("NO [TRYCREATE]", "BAD", "OK [APPENDUID"); it returns the untagged
// responses.
func (m *IMAP) Expect(line, want string) []string {
	m.t.Helper()
	u, status := m.Cmd(line)
	if !strings.HasPrefix(status, want) {
		m.Fatalf("%s: got %q, want %q... (untagged %q)", line, status, want, u)
	}
	return u
}

// Login sends LOGIN with user and pass as quoted strings.
func (m *IMAP) Login(user, pass string) {
	m.t.Helper()
	m.OK(fmt.Sprintf("LOGIN %s %s", Quote(user), Quote(pass)))
}

// StartTLS sends STARTTLS and, after the OK, runs the handshake.
func (m *IMAP) StartTLS(cfg *tls.Config) {
	m.t.Helper()
	m.OK("STARTTLS")
	m.UpgradeTLS(cfg)
}

// Compress sends COMPRESS DEFLATE and, after the OK, deflates (RFC 4978).
func (m *IMAP) Compress() {
	m.t.Helper()
	m.OK("COMPRESS DEFLATE")
	m.Deflate()
}

// Quote returns s as an IMAP quoted string (RFC 3501 §4.3).
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Package wire is the raw protocol client of jodmai's tests. It speaks
// SMTP, POP3 and IMAP a line at a time over a real socket and hands back
// the exact wire text, so tests can send malformed input and compare
// responses byte for byte. Conn is the line layer; SMTP, POP3 and IMAP add
// each protocol's commands and replies (Cmd, OK, Expect) on top of it.
//
// Conventions, the same for every protocol:
//
//   - Deadlines: every read and every write gets a deadline of
//     Conn.Timeout (DefaultTimeout) from its start, so a test waiting for
//     a response the server never sends fails instead of hanging.
//   - Failures: a read or write error, a line not ending in CRLF, or a
//     reply other than the one expected fails the test (t.Fatalf, so only
//     from the test's goroutine) with the tail of the transcript: the last
//     lines sent ("C: ") and received ("S: ").
//   - Lines are returned without their CRLF.
//   - IMAP literals (IMAP.Response): a response line ending in "{n}" or
//     "~{n}" is followed by "\r\n", the n octets and the rest of the
//     response, all in one string, as on the wire.
//
// A Conn is closed when the test ends. The package is a leaf (it imports
// nothing of jodmai), so tests of any package may use it.
package wire

import (
	"bufio"
	"compress/flate"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout bounds each read and write when Conn.Timeout is 0. It is
// no timing assertion, only what turns a hang into a failure: generous,
// for a loaded machine running -race.
const DefaultTimeout = 10 * time.Second

// dialTimeout bounds connecting.
const dialTimeout = 5 * time.Second

// transcriptLines is how many lines the transcript keeps, and
// transcriptWidth how much of each.
const (
	transcriptLines = 24
	transcriptWidth = 200
)

// Conn is a raw client connection.
type Conn struct {
	// Timeout bounds each read and write; 0 means DefaultTimeout.
	Timeout time.Duration

	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
	zw *flate.Writer // after Deflate
	// transcript holds the last transcriptLines lines, oldest first.
	transcript []string
}

// Dial connects to addr over TCP.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return New(t, nc)
}

// DialTLS connects to addr with implicit TLS.
func DialTLS(t testing.TB, addr string, cfg *tls.Config) *Conn {
	t.Helper()
	d := &net.Dialer{Timeout: dialTimeout}
	nc, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s with TLS: %v", addr, err)
	}
	return New(t, nc)
}

// New wraps a connection the test made itself (a TLS one, one with a
// PROXY header, one end of a pipe). It is closed when the test ends.
func New(t testing.TB, nc net.Conn) *Conn {
	t.Cleanup(func() { nc.Close() })
	return &Conn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// NetConn returns the connection under the client (the *tls.Conn after
// UpgradeTLS), for tests that write or close at a low level.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Reader returns the buffered reader under the client, for a benchmark
// that reads responses without the client's bookkeeping (transcript,
// deadlines, copies). Reads through it and through the client may be
// mixed, a whole line at a time.
func (c *Conn) Reader() *bufio.Reader { return c.r }

// Close closes the connection.
func (c *Conn) Close() { c.nc.Close() }

func (c *Conn) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// Fatalf fails the test with the message and the transcript tail.
func (c *Conn) Fatalf(format string, args ...any) {
	c.t.Helper()
	c.t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), c.Transcript())
}

// Transcript returns the last lines sent and received, one per line.
func (c *Conn) Transcript() string {
	var b strings.Builder
	b.WriteString("transcript tail:")
	for _, l := range c.transcript {
		b.WriteString("\n\t")
		b.WriteString(l)
	}
	return b.String()
}

// record adds what went over the wire to the transcript, a line per
// entry, CRLFs dropped.
func (c *Conn) record(dir, s string) {
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "" {
			continue
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) > transcriptWidth {
			l = l[:transcriptWidth] + "..."
		}
		c.transcript = append(c.transcript, dir+l)
	}
	if n := len(c.transcript) - transcriptLines; n > 0 {
		c.transcript = append(c.transcript[:0], c.transcript[n:]...)
	}
}

// Send writes s as it is (through the compressor after Deflate).
func (c *Conn) Send(s string) {
	c.t.Helper()
	c.record("C: ", s)
	c.nc.SetWriteDeadline(time.Now().Add(c.timeout()))
	var err error
	if c.zw != nil {
		if _, err = io.WriteString(c.zw, s); err == nil {
			err = c.zw.Flush()
		}
	} else {
		_, err = io.WriteString(c.nc, s)
	}
	if err != nil {
		c.Fatalf("write: %v", err)
	}
}

// SendLine writes line and a CRLF.
func (c *Conn) SendLine(line string) {
	c.t.Helper()
	c.Send(line + "\r\n")
}

// ReadLine reads one line, without its CRLF. Unlike Line it returns
// errors, a line without CRLF included, with what was read of it.
func (c *Conn) ReadLine() (string, error) {
	s, err := c.readRaw()
	if err != nil {
		return s, err
	}
	if !strings.HasSuffix(s, "\r\n") {
		return s, fmt.Errorf("line %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n"), nil
}

// readRaw reads up to and including a LF.
func (c *Conn) readRaw() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	s, err := c.r.ReadString('\n')
	if s != "" {
		c.record("S: ", s)
	}
	return s, err
}

// Line reads one line, without its CRLF.
func (c *Conn) Line() string {
	c.t.Helper()
	s, err := c.ReadLine()
	if err != nil {
		c.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

// WantLine reads one line and fails unless it starts with prefix.
func (c *Conn) WantLine(prefix string) string {
	c.t.Helper()
	s := c.Line()
	if !strings.HasPrefix(s, prefix) {
		c.Fatalf("got %q, want %q...", s, prefix)
	}
	return s
}

// ReadFull reads exactly n octets (a message body, a literal).
func (c *Conn) ReadFull(n int) string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(c.timeout()))
	buf := make([]byte, n)
	if m, err := io.ReadFull(c.r, buf); err != nil {
		c.record("S: ", string(buf[:m]))
		c.Fatalf("read %d octets: %v after %d", n, err, m)
	}
	c.record("S: ", string(buf))
	return string(buf)
}

// Buffered is how many octets were read from the connection and not yet
// consumed.
func (c *Conn) Buffered() int { return c.r.Buffered() }

// EOF asserts that the server closes the connection, after any lines
// starting with one of allow (a BYE), and closes this side as a client
// would. A reset counts as closed (the server closed with input unread);
// a line not allowed, or no end within the timeout, fails the test.
func (c *Conn) EOF(allow ...string) {
	c.t.Helper()
	defer c.nc.Close()
	for {
		s, err := c.ReadLine()
		switch {
		case err == nil:
			ok := false
			for _, a := range allow {
				ok = ok || strings.HasPrefix(s, a)
			}
			if !ok {
				c.Fatalf("want the connection closed, got %q", s)
			}
			continue
		case s != "":
			c.Fatalf("want the connection closed, got %q (%v)", s, err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.Fatalf("connection still open after %v", c.timeout())
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		default:
			c.Fatalf("want the connection closed, got error %v", err)
		}
		return
	}
}

// UpgradeTLS runs a TLS handshake over the connection, as a client does
// after the server's go-ahead to STARTTLS or STLS. Nothing may be
// buffered unread: that would be plaintext injected before the handshake.
func (c *Conn) UpgradeTLS(cfg *tls.Config) {
	c.t.Helper()
	if n := c.r.Buffered(); n != 0 {
		c.Fatalf("%d octets after the go-ahead to TLS", n)
	}
	tc := tls.Client(c.nc, cfg)
	tc.SetDeadline(time.Now().Add(c.timeout()))
	if err := tc.Handshake(); err != nil {
		c.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.record("C: ", "(TLS handshake done)")
	c.nc = tc
	c.r = bufio.NewReader(tc)
}

// Deflate switches both directions to DEFLATE (RFC 4978), as a client
// does after the server's OK to COMPRESS.
func (c *Conn) Deflate() {
	c.t.Helper()
	if n := c.r.Buffered(); n != 0 {
		c.Fatalf("%d octets after the OK to COMPRESS", n)
	}
	c.r = bufio.NewReader(flate.NewReader(c.nc))
	zw, err := flate.NewWriter(c.nc, flate.DefaultCompression)
	if err != nil {
		c.Fatalf("deflate: %v", err)
	}
	c.zw = zw
	c.record("C: ", "(DEFLATE on)")
}

// trailingLiteral reports the size of the literal a response line
// announces at its end, "{n}" or "~{n}" (RFC 3501 §4.3, RFC 3516 §4.3).
func trailingLiteral(s string) (int, bool) {
	if !strings.HasSuffix(s, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[i+1 : len(s)-1])
	if err != nil || n < 0 || n > 100<<20 {
		return 0, false
	}
	return n, true
}

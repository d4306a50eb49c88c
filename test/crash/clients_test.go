package crash

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// ioTimeout bounds every network wait of the clients: the server is local,
// so anything slower means it is gone or stuck.
const ioTimeout = 15 * time.Second

// newMessage makes a test message for marker: headers naming it, and a
// payload whose SHA-256 is in a header, so a stored copy can be checked
// byte for byte. Some payload lines start with a dot (dot-stuffing on both
// protocols); a few messages are large, to widen the window in which a
// kill finds a body half written: one in 20, and the second of each
// worker in each round (markers end in the sequence number), so that even
// a short run under -race stores body files as well as inline bodies
// (afterKill.sawBodies checks that it did).
func newMessage(rng *rand.Rand, marker string, rcpts []string) []byte {
	size := 200 + rng.IntN(4000)
	if rng.IntN(20) == 0 || strings.HasSuffix(marker, "-00001") {
		size = 64<<10 + rng.IntN(256<<10)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
	var payload bytes.Buffer
	line := make([]byte, 0, 80)
	for payload.Len() < size {
		line = line[:0]
		if rng.IntN(10) == 0 {
			line = append(line, '.')
		}
		n := 1 + rng.IntN(76)
		for range n {
			line = append(line, alphabet[rng.IntN(len(alphabet))])
		}
		payload.Write(line)
		payload.WriteString("\r\n")
	}
	sum := sha256.Sum256(payload.Bytes())
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: <crash@sender.example>\r\nTo: %s\r\nSubject: crash test %s\r\nMessage-ID: <%s@crash.test>\r\nX-Crash-Marker: %s\r\nX-Crash-Sum: %s\r\n\r\n",
		strings.Join(rcpts, ", "), marker, marker, marker, hex.EncodeToString(sum[:]))
	m.Write(payload.Bytes())
	return m.Bytes()
}

// parseStored finds the marker of a stored message (as RETR returns it,
// with the server's trace headers in front) and checks its payload
// against the checksum it carries.
func parseStored(b []byte) (marker string, err error) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return "", errors.New("no end of header")
	}
	header, payload := string(b[:i+2]), b[i+4:]
	var sum string
	for _, l := range strings.Split(header, "\r\n") {
		if v, ok := strings.CutPrefix(l, "X-Crash-Marker: "); ok {
			marker = v
		}
		if v, ok := strings.CutPrefix(l, "X-Crash-Sum: "); ok {
			sum = v
		}
	}
	if marker == "" || sum == "" {
		return marker, fmt.Errorf("no marker or checksum in header %q", header)
	}
	got := sha256.Sum256(payload)
	if hex.EncodeToString(got[:]) != sum {
		return marker, fmt.Errorf("message %s: payload of %d bytes does not match its checksum", marker, len(payload))
	}
	return marker, nil
}

// sendMail runs one SMTP transaction on c. It returns nil only when the
// server's 250 to the end of DATA was read. beforeEnd runs just before the
// end of the data goes out.
func sendMail(c *smtp.Client, conn net.Conn, from string, rcpts []string, msg []byte, beforeEnd func()) error {
	conn.SetDeadline(time.Now().Add(ioTimeout))
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	beforeEnd()
	// net/smtp's Close sends the final dot and reads the reply: nil
	// means 250.
	return w.Close()
}

// dialSMTP opens an SMTP session (greeting and EHLO read).
func dialSMTP(addr string) (*smtp.Client, net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(ioTimeout))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := c.Hello("crash.test"); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, conn, nil
}

// pop3 is a minimal POP3 client.
type pop3 struct {
	conn net.Conn
	r    *bufio.Reader
}

// errNegative is a -ERR reply.
type errNegative struct{ line string }

func (e errNegative) Error() string { return "POP3 " + e.line }

func dialPOP3(addr, user, pass string) (*pop3, error) {
	conn, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, err
	}
	p := &pop3{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	if _, err := p.reply(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := p.cmd("USER " + user); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := p.cmd("PASS " + pass); err != nil {
		conn.Close()
		return nil, err
	}
	return p, nil
}

func (p *pop3) close() { p.conn.Close() }

func (p *pop3) line() (string, error) {
	p.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	l, err := p.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return "", fmt.Errorf("POP3 line without CRLF: %q", l)
	}
	return l, nil
}

func (p *pop3) reply() (string, error) {
	l, err := p.line()
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(l, "+OK") {
		return strings.TrimRight(l, "\r\n"), nil
	}
	return "", errNegative{strings.TrimRight(l, "\r\n")}
}

func (p *pop3) cmd(c string) (string, error) {
	p.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := p.conn.Write([]byte(c + "\r\n")); err != nil {
		return "", err
	}
	return p.reply()
}

// multi reads a multi-line response body, undoing dot-stuffing (RFC 1939
// §3), and returns its bytes.
func (p *pop3) multi() ([]byte, error) {
	var b bytes.Buffer
	for {
		l, err := p.line()
		if err != nil {
			return nil, err
		}
		if l == ".\r\n" {
			return b.Bytes(), nil
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		b.WriteString(l)
	}
}

// uidl lists message number -> unique id.
func (p *pop3) uidl() (map[int]string, error) {
	if _, err := p.cmd("UIDL"); err != nil {
		return nil, err
	}
	b, err := p.multi()
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\r\n") {
		if l == "" {
			continue
		}
		var n int
		var id string
		if _, err := fmt.Sscanf(l, "%d %s", &n, &id); err != nil {
			return nil, fmt.Errorf("UIDL line %q: %w", l, err)
		}
		out[n] = id
	}
	return out, nil
}

// list lists message number -> size.
func (p *pop3) list() (map[int]int64, error) {
	if _, err := p.cmd("LIST"); err != nil {
		return nil, err
	}
	b, err := p.multi()
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\r\n") {
		if l == "" {
			continue
		}
		var n int
		var size int64
		if _, err := fmt.Sscanf(l, "%d %d", &n, &size); err != nil {
			return nil, fmt.Errorf("LIST line %q: %w", l, err)
		}
		out[n] = size
	}
	return out, nil
}

func (p *pop3) retr(n int) ([]byte, error) {
	if _, err := p.cmd(fmt.Sprintf("RETR %d", n)); err != nil {
		return nil, err
	}
	return p.multi()
}

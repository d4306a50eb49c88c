package ua

import (
	"bufio"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
)

// POP3Error is a -ERR reply.
type POP3Error struct{ Text string }

func (e *POP3Error) Error() string { return "pop3: -ERR " + e.Text }

// POP3Client is a small RFC 1939 client with CAPA (RFC 2449), STLS
// (RFC 2595), APOP and AUTH PLAIN (RFC 5034).
type POP3Client struct {
	conn      net.Conn
	r         *bufio.Reader
	Timestamp string // the greeting's APOP timestamp, with angle brackets; "" if none
	caps      map[string]string
}

// NewPOP3Client reads the greeting on conn.
func NewPOP3Client(conn net.Conn) (*POP3Client, error) {
	c := &POP3Client{conn: conn, r: bufio.NewReader(conn)}
	line, err := c.status()
	if err != nil {
		return nil, fmt.Errorf("pop3 greeting: %w", err)
	}
	// RFC 1939 §7: the timestamp is a msg-id in the greeting.
	if i := strings.IndexByte(line, '<'); i >= 0 {
		if j := strings.IndexByte(line[i:], '>'); j > 0 && strings.Contains(line[i:i+j], "@") {
			c.Timestamp = line[i : i+j+1]
		}
	}
	return c, nil
}

func (c *POP3Client) readLine() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// status reads a one-line reply and returns the text after +OK.
func (c *POP3Client) status() (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
		return strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " "), nil
	case strings.HasPrefix(line, "-ERR"):
		return "", &POP3Error{Text: strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " ")}
	}
	return "", fmt.Errorf("pop3: bad reply %q", line)
}

func (c *POP3Client) cmd(format string, args ...any) (string, error) {
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		return "", err
	}
	return c.status()
}

// multiline returns a reader of a multi-line response body, dot-unstuffed,
// with CRLF line ends, ending at the "." line.
func (c *POP3Client) multiline() io.Reader { return &dotReader{r: c.r} }

type dotReader struct {
	r    *bufio.Reader
	buf  []byte
	done bool
}

func (d *dotReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.done {
			return 0, io.EOF
		}
		line, err := d.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long line: pass it on; it cannot be the terminator.
			d.buf = append(d.buf[:0], line...)
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if string(line) == ".\r\n" || string(line) == ".\n" {
			d.done = true
			return 0, io.EOF
		}
		if line[0] == '.' {
			line = line[1:] // RFC 1939 §3: byte-stuffed
		}
		if len(line) >= 2 && line[len(line)-2] == '\r' {
			d.buf = append(d.buf[:0], line...)
		} else {
			// Be liberal: a bare LF becomes CRLF.
			d.buf = append(append(d.buf[:0], line[:len(line)-1]...), '\r', '\n')
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

// Capa sends CAPA; servers without it give an empty set.
func (c *POP3Client) Capa() (map[string]string, error) {
	if c.caps != nil {
		return c.caps, nil
	}
	c.caps = map[string]string{}
	if _, err := c.cmd("CAPA"); err != nil {
		var pe *POP3Error
		if errors.As(err, &pe) {
			return c.caps, nil
		}
		return nil, err
	}
	body, err := io.ReadAll(c.multiline())
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(body), "\r\n") {
		name, arg, _ := strings.Cut(line, " ")
		if name != "" {
			c.caps[strings.ToUpper(name)] = arg
		}
	}
	return c.caps, nil
}

// StartTLS sends STLS and upgrades the connection.
func (c *POP3Client) StartTLS(cfg *tls.Config) error {
	if _, err := c.cmd("STLS"); err != nil {
		return fmt.Errorf("pop3 stls: %w", err)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("pop3 tls: %w", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
	c.caps = nil // RFC 2595 §4: capabilities may change
	return nil
}

// User logs in with USER/PASS.
func (c *POP3Client) User(user, pass string) error {
	if _, err := c.cmd("USER %s", user); err != nil {
		return fmt.Errorf("pop3 login: %w", err)
	}
	if _, err := c.cmd("PASS %s", pass); err != nil {
		return fmt.Errorf("pop3 login: %w", err)
	}
	return nil
}

// APOP logs in with APOP (RFC 1939 §7).
func (c *POP3Client) APOP(user, secret string) error {
	if c.Timestamp == "" {
		return errors.New("pop3: server offers no APOP timestamp")
	}
	sum := md5.Sum([]byte(c.Timestamp + secret))
	if _, err := c.cmd("APOP %s %s", user, hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("pop3 apop: %w", err)
	}
	return nil
}

// AuthPlain logs in with AUTH PLAIN and an initial response (RFC 5034).
func (c *POP3Client) AuthPlain(user, pass string) error {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if _, err := c.cmd("AUTH PLAIN %s", ir); err != nil {
		return fmt.Errorf("pop3 auth: %w", err)
	}
	return nil
}

// Stat returns the message count and maildrop size.
func (c *POP3Client) Stat() (count int, size int64, err error) {
	line, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("pop3: bad STAT reply %q", line)
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("pop3: bad STAT reply %q", line)
	}
	return count, size, nil
}

// POP3Msg is one message of a LIST/UIDL listing.
type POP3Msg struct {
	Num  int
	Size int64
	UIDL string
}

func (c *POP3Client) listing(cmd string) (map[int]string, error) {
	if _, err := c.cmd(cmd); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(c.multiline())
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, line := range strings.Split(string(body), "\r\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("pop3: bad %s line %q", cmd, line)
		}
		out[n] = f[1]
	}
	return out, nil
}

// List returns every message with its size and, when the server supports
// it, its UIDL; ordered by number.
func (c *POP3Client) List(withUIDL bool) ([]POP3Msg, error) {
	sizes, err := c.listing("LIST")
	if err != nil {
		return nil, fmt.Errorf("pop3 list: %w", err)
	}
	var uidls map[int]string
	if withUIDL {
		if uidls, err = c.listing("UIDL"); err != nil {
			return nil, fmt.Errorf("pop3 uidl: %w", err)
		}
	}
	out := make([]POP3Msg, 0, len(sizes))
	for n, s := range sizes {
		size, _ := strconv.ParseInt(s, 10, 64)
		out = append(out, POP3Msg{Num: n, Size: size, UIDL: uidls[n]})
	}
	sortPOP3(out)
	return out, nil
}

func sortPOP3(m []POP3Msg) {
	sort.Slice(m, func(i, j int) bool { return m[i].Num < m[j].Num })
}

// Retr retrieves message n; the reader must be read to EOF before the next
// command.
func (c *POP3Client) Retr(n int) (io.Reader, error) {
	if _, err := c.cmd("RETR %d", n); err != nil {
		return nil, fmt.Errorf("pop3 retr %d: %w", n, err)
	}
	return c.multiline(), nil
}

// Dele marks message n deleted.
func (c *POP3Client) Dele(n int) error {
	if _, err := c.cmd("DELE %d", n); err != nil {
		return fmt.Errorf("pop3 dele %d: %w", n, err)
	}
	return nil
}

// Quit ends the session; the server then deletes the marked messages.
func (c *POP3Client) Quit() error {
	_, err := c.cmd("QUIT")
	c.conn.Close()
	if err != nil {
		return fmt.Errorf("pop3 quit: %w", err)
	}
	return nil
}

// Close drops the connection without QUIT: nothing is deleted.
func (c *POP3Client) Close() error { return c.conn.Close() }

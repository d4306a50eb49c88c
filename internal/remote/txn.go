package remote

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// mox's smtpclient sets up the session (greeting, EHLO, STARTTLS with the
// TLS policy, DANE and PKIX verification); the mail transactions are ours,
// for what mox's DeliverMultiple lacks: CHUNKING (RFC 3030) and the DSN
// parameters (RFC 3461) ENVID, RET, NOTIFY and ORCPT.

// RFC 5321 §4.5.3.2 timeouts.
const (
	cmdTimeout      = 5 * time.Minute  // MAIL, RCPT, EHLO, RSET, DATA
	dataTimeout     = 3 * time.Minute  // each write of message data
	finalTimeout    = 10 * time.Minute // the reply after the message
	quitTimeout     = 5 * time.Second
	maxReplyLine    = 4096 // RFC 5321 §4.5.3.1.5 says 512; be lenient
	maxReplyLines   = 100
	pipelineGroup   = 50 // commands written before reading their replies
	writeBufferSize = 32 * 1024
)

// reply is one SMTP reply.
type reply struct {
	code     int
	enhanced string // "5.1.1", "" if none
	line     string // the first line, without CRLF
	text     []string
}

// errReply is a malformed reply.
var errReply = errors.New("malformed SMTP reply")

// readReply reads one (possibly multi-line) reply, RFC 5321 §4.2.1.
func readReply(r *bufio.Reader) (reply, error) {
	var rp reply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return rp, fmt.Errorf("%w: more than %d lines", errReply, maxReplyLines)
		}
		line, err := readLine(r)
		if err != nil {
			return rp, err
		}
		if len(line) < 3 {
			return rp, fmt.Errorf("%w: %q", errReply, line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || line[0] == '+' {
			return rp, fmt.Errorf("%w: %q", errReply, line)
		}
		if n == 0 {
			rp.code = code
			rp.line = line
		} else if code != rp.code {
			return rp, fmt.Errorf("%w: code %d in a %d reply", errReply, code, rp.code)
		}
		sep := byte(' ')
		if len(line) > 3 {
			sep = line[3]
		}
		if sep != ' ' && sep != '-' {
			return rp, fmt.Errorf("%w: %q", errReply, line)
		}
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		rp.text = append(rp.text, text)
		if sep == ' ' {
			break
		}
	}
	rp.enhanced = enhancedCode(rp.code, rp.text[0])
	return rp, nil
}

// enhancedCode returns the RFC 3463 code at the start of text if its class
// matches code's, else "".
func enhancedCode(code int, text string) string {
	f, _, _ := strings.Cut(text, " ")
	parts := strings.Split(f, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return ""
	}
	for i, p := range parts {
		max := 3
		if i == 0 {
			max = 1
		}
		if p == "" || len(p) > max {
			return ""
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return ""
			}
		}
	}
	return f
}

// readLine reads a line ending in LF (CR LF expected) of at most
// maxReplyLine bytes, without its line end.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		b, err := r.ReadSlice('\n')
		buf = append(buf, b...)
		if len(buf) > maxReplyLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", errReply, maxReplyLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		return strings.TrimRight(string(buf), "\r\n"), nil
	}
}

// session is our side of an SMTP session that mox's client set up.
type session struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	ext  map[string]string // EHLO keywords, upper case, to their parameters
	// dirty: a transaction was started and not completed: RSET first.
	dirty bool
	// broken: the server said it is closing (421), or the session is
	// otherwise not to be used again.
	broken bool
	// probe: the session was just taken for reuse; the reply to the RSET
	// that starts its next transaction shows whether it still works.
	probe bool
	// created is when the connection was made; ip and tlsVersion are
	// for the log.
	created        time.Time
	ip, tlsVersion string
	// buf is copyData's, kept for the session's next messages.
	buf []byte
}

func (s *session) deadline(d time.Duration) {
	s.conn.SetDeadline(time.Now().Add(d))
}

// cmd writes one command line and flushes.
func (s *session) cmd(line string) error {
	s.deadline(cmdTimeout)
	if _, err := s.w.WriteString(line + "\r\n"); err != nil {
		return err
	}
	return s.w.Flush()
}

func (s *session) read(d time.Duration) (reply, error) {
	s.deadline(d)
	rp, err := readReply(s.r)
	if err != nil || rp.code == 421 {
		s.broken = true
	}
	return rp, err
}

// ehlo sends EHLO again (RFC 5321 §4.1.4 allows it; it resets any
// transaction) to learn the extensions, which mox's client keeps to itself.
func (s *session) ehlo(name string) error {
	if err := s.cmd("EHLO " + name); err != nil {
		return err
	}
	rp, err := s.read(cmdTimeout)
	if err != nil {
		return err
	}
	if rp.code != 250 {
		return fmt.Errorf("EHLO: %s", rp.line)
	}
	s.ext = map[string]string{}
	for _, t := range rp.text[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(t), " ")
		s.ext[strings.ToUpper(k)] = v
	}
	return nil
}

func (s *session) has(ext string) bool {
	_, ok := s.ext[ext]
	return ok
}

// maxSize is the SIZE limit the server announced (RFC 1870), 0 if none.
func (s *session) maxSize() int64 {
	n, _ := strconv.ParseInt(s.ext["SIZE"], 10, 64)
	return n
}

// rcptMax is LIMITS RCPTMAX (RFC 9422), 0 if none.
func (s *session) rcptMax() int {
	for _, f := range strings.Fields(s.ext["LIMITS"]) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.EqualFold(k, "RCPTMAX") {
			n, err := strconv.Atoi(v)
			if err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// quit ends the session politely, briefly.
func (s *session) quit() {
	s.deadline(quitTimeout)
	if _, err := s.w.WriteString("QUIT\r\n"); err == nil && s.w.Flush() == nil {
		readReply(s.r)
	}
}

// xtext returns v for an RFC 3461 §4 xtext parameter: unchanged if it is
// already valid xtext (as received from a client), encoded otherwise.
func xtext(v string) string {
	valid := true
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '!' || c > '~' || c == '=' {
			valid = false
			break
		}
		if c == '+' && (i+2 >= len(v) || !isUpperHex(v[i+1]) || !isUpperHex(v[i+2])) {
			valid = false
			break
		}
	}
	if valid {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '!' || c > '~' || c == '=' || c == '+' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// txnResult is the outcome of one transaction: per recipient of the batch,
// the reply that decided it, and whether it was delivered.
type txnResult struct {
	rcpt      []reply // RCPT replies, code 0 if not read
	final     reply   // MAIL failure, or the reply after the data; code 0 if none
	delivered []bool
}

// transaction runs MAIL, RCPT for rcpts, and the message with BDAT (RFC
// 3030) or DATA; commands are pipelined when the server offers PIPELINING
// (RFC 2920). An error means the connection is unusable; res holds what
// was learned before it.
func (s *session) transaction(m *Message, rcpts []Recipient, msg io.Reader, size int64) (res txnResult, err error) {
	res.rcpt = make([]reply, len(rcpts))
	res.delivered = make([]bool, len(rcpts))
	pipelining := s.has("PIPELINING")
	// RSET first after an unfinished transaction, and on a session taken
	// for reuse (probe), where its reply also shows the connection still
	// works (a staleError otherwise). Pipelined with the rest when the
	// server allows.
	rset, probe := s.dirty || s.probe, s.probe
	s.probe = false
	if rset && !pipelining {
		if err := s.cmd("RSET"); err != nil {
			return res, staleIf(probe, err)
		}
		if err := s.rsetReply(probe); err != nil {
			return res, err
		}
		rset = false
	}
	s.dirty = true
	dsn := s.has("DSN")
	var mail strings.Builder
	fmt.Fprintf(&mail, "MAIL FROM:<%s>", m.From)
	if s.has("SIZE") {
		fmt.Fprintf(&mail, " SIZE=%d", size)
	}
	if m.Has8bit {
		mail.WriteString(" BODY=8BITMIME")
	}
	if m.SMTPUTF8 {
		mail.WriteString(" SMTPUTF8")
	}
	if m.RequireTLS {
		mail.WriteString(" REQUIRETLS")
	}
	if dsn && (m.Ret == "FULL" || m.Ret == "HDRS") {
		mail.WriteString(" RET=" + m.Ret)
	}
	if dsn && m.EnvID != "" {
		mail.WriteString(" ENVID=" + xtext(m.EnvID))
	}
	lines := []string{mail.String()}
	for _, r := range rcpts {
		l := "RCPT TO:<" + r.Addr + ">"
		if dsn && r.Notify != "" {
			l += " NOTIFY=" + r.Notify
		}
		if dsn && r.ORcpt != "" {
			typ, addr, ok := strings.Cut(r.ORcpt, ";")
			if ok && typ != "" && addr != "" {
				l += " ORCPT=" + typ + ";" + xtext(addr)
			}
		}
		lines = append(lines, l)
	}

	// DATA may end the last group (RFC 2920 §3.1): one round trip less.
	chunking := s.has("CHUNKING")
	pipeData := pipelining && !chunking
	if pipeData {
		lines = append(lines, "DATA")
	}

	// Send the commands, in groups when pipelining, and read the replies.
	group := 1
	if pipelining {
		group = pipelineGroup
	}
	wire := lines // what is sent: lines, after an RSET if rset
	if rset {
		wire = append([]string{"RSET"}, lines...)
	}
	replies := make([]reply, 0, len(lines))
	for start := 0; start < len(wire); start += group {
		end := min(start+group, len(wire))
		s.deadline(cmdTimeout)
		for _, l := range wire[start:end] {
			if _, err := s.w.WriteString(l + "\r\n"); err != nil {
				return res, staleIf(rset && probe, err)
			}
		}
		if err := s.w.Flush(); err != nil {
			return res, staleIf(rset && probe, err)
		}
		for range wire[start:end] {
			if rset {
				if err := s.rsetReply(probe); err != nil {
					return res, err
				}
				rset = false
				continue
			}
			rp, err := s.read(cmdTimeout)
			if err != nil {
				return res, err
			}
			replies = append(replies, rp)
		}
		if replies[0].code != 250 {
			// MAIL refused: RCPTs already sent in this group get
			// errors (RFC 2920 §3.1); stop.
			res.final = replies[0]
			if pipeData && len(replies) == len(lines) {
				return res, s.abortData(replies[len(replies)-1])
			}
			return res, nil
		}
	}
	accepted := 0
	for i := range rcpts {
		res.rcpt[i] = replies[1+i]
		if replies[1+i].code/100 == 2 {
			accepted++
		}
	}
	if accepted == 0 {
		if pipeData {
			return res, s.abortData(replies[len(replies)-1])
		}
		return res, nil
	}

	if chunking {
		// RFC 3030 §2: one chunk, the whole message, no dot-stuffing.
		s.deadline(dataTimeout)
		if _, err := fmt.Fprintf(s.w, "BDAT %d LAST\r\n", size); err != nil {
			return res, err
		}
		n, err := s.copyData(msg, false)
		if err != nil {
			return res, err
		}
		if n != size {
			// The server waits for bytes that will not come: the
			// connection cannot be used further.
			return res, fmt.Errorf("message is %d bytes, not the %d announced", n, size)
		}
	} else {
		var rp reply
		if pipeData {
			rp = replies[len(replies)-1]
		} else {
			if err := s.cmd("DATA"); err != nil {
				return res, err
			}
			if rp, err = s.read(cmdTimeout); err != nil {
				return res, err
			}
		}
		if rp.code != 354 {
			res.final = rp
			return res, nil
		}
		if _, err := s.copyData(msg, true); err != nil {
			return res, err
		}
	}
	rp, err := s.read(finalTimeout)
	if err != nil {
		return res, err
	}
	res.final = rp
	if rp.code/100 == 2 {
		s.dirty = false
		for i := range rcpts {
			res.delivered[i] = res.rcpt[i].code/100 == 2
		}
	}
	return res, nil
}

// staleError is a session taken for reuse found not to work before
// anything was sent in it: the message can go over a new connection.
type staleError struct{ err error }

func (e *staleError) Error() string { return "connection kept for reuse is gone: " + e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

func staleIf(stale bool, err error) error {
	if stale && err != nil {
		return &staleError{err}
	}
	return err
}

// rsetReply reads the reply to RSET: anything but 250 is an error, a
// staleError for a probe.
func (s *session) rsetReply(probe bool) error {
	rp, err := s.read(cmdTimeout)
	if err == nil && rp.code != 250 {
		s.broken = true
		err = fmt.Errorf("RSET: %s", rp.line)
	}
	return staleIf(probe, err)
}

// abortData ends a DATA that was pipelined in a transaction that then
// failed: after a 354 (a server that accepts DATA without recipients),
// an empty message, whose reply is read and ignored (RFC 2920 §3.1).
func (s *session) abortData(rp reply) error {
	if rp.code != 354 {
		return nil
	}
	if err := s.cmd("."); err != nil {
		return err
	}
	_, err := s.read(finalTimeout)
	return err
}

// copyData writes the message: as is for BDAT, dot-stuffed and ended with
// "." for DATA (RFC 5321 §4.5.2), each write bounded by dataTimeout. It
// returns the number of message bytes read.
func (s *session) copyData(msg io.Reader, stuff bool) (int64, error) {
	var total int64
	if s.buf == nil {
		s.buf = make([]byte, writeBufferSize)
	}
	buf := s.buf
	bol := true     // at the beginning of a line
	last := byte(0) // the last byte written
	for {
		n, rerr := msg.Read(buf)
		if n > 0 {
			total += int64(n)
			s.deadline(dataTimeout)
			chunk := buf[:n]
			if !stuff {
				if _, err := s.w.Write(chunk); err != nil {
					return total, err
				}
			} else {
				for len(chunk) > 0 {
					if bol && chunk[0] == '.' {
						if err := s.w.WriteByte('.'); err != nil {
							return total, err
						}
					}
					i := bytes.IndexByte(chunk, '\n')
					var part []byte
					if i < 0 {
						part, chunk = chunk, nil
						bol = false
					} else {
						part, chunk = chunk[:i+1], chunk[i+1:]
						bol = true
					}
					if _, err := s.w.Write(part); err != nil {
						return total, err
					}
				}
			}
			last = buf[n-1]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, fmt.Errorf("read message: %w", rerr)
		}
	}
	if stuff {
		end := ".\r\n"
		if last != '\n' && last != 0 {
			end = "\r\n.\r\n"
		}
		if _, err := s.w.WriteString(end); err != nil {
			return total, err
		}
	}
	s.deadline(dataTimeout)
	return total, s.w.Flush()
}

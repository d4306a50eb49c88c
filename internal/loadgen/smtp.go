package loadgen

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// textConn is a line-oriented client connection.
type textConn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func newTextConn(c net.Conn, deadline time.Time) *textConn {
	// The connection deadline is a safety net against a stuck server:
	// the run's own deadline plus slack for the last replies.
	c.SetDeadline(deadline.Add(30 * time.Second))
	return &textConn{c: c, r: bufio.NewReaderSize(c, 32<<10), w: bufio.NewWriterSize(c, 32<<10)}
}

func (t *textConn) readLine() (string, error) {
	line, err := t.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (t *textConn) cmd(format string, a ...any) error {
	fmt.Fprintf(t.w, format, a...)
	t.w.WriteString("\r\n")
	return t.w.Flush()
}

// smtpReply reads a (multi-line) SMTP reply and returns its code and last
// line.
func (t *textConn) smtpReply() (int, string, error) {
	for {
		line, err := t.readLine()
		if err != nil {
			return 0, "", err
		}
		if len(line) < 3 {
			return 0, line, fmt.Errorf("bad SMTP reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, line, fmt.Errorf("bad SMTP reply %q", line)
		}
		if len(line) > 3 && line[3] == '-' {
			continue
		}
		return code, line, nil
	}
}

// expect sends a command (if cmd is not "") and checks the reply code.
func (t *textConn) expect(want int, cmd string) error {
	if cmd != "" {
		if err := t.cmd("%s", cmd); err != nil {
			return err
		}
	}
	code, line, err := t.smtpReply()
	if err != nil {
		return err
	}
	if code != want {
		return replyError{fmt.Sprintf("%s: want %d, got %q", verb(cmd), want, line)}
	}
	return nil
}

// replyError is an unexpected reply: the session may go on after RSET.
type replyError struct{ msg string }

func (e replyError) Error() string { return e.msg }

func verb(cmd string) string {
	if cmd == "" {
		return "greeting"
	}
	if i := strings.IndexAny(cmd, " :"); i > 0 {
		return cmd[:i]
	}
	return cmd
}

// Message builds a realistic message of about size bytes (CRLF line ends,
// headers like a mail client's, a dot-leading line to exercise
// dot-stuffing), already dot-stuffed for DATA and ending in "\r\n.\r\n".
// It returns the wire form and the unstuffed message size.
func Message(from, to string, n, size int) (wire []byte, msgSize int) {
	var b strings.Builder
	fmt.Fprintf(&b, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(&b, "From: Load Generator <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: load test message %d\r\n", n)
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%d.%d@loadgen.localhost>\r\n", time.Now().UnixNano(), n)
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	b.WriteString("User-Agent: jodmai-bench\r\n\r\n")
	b.WriteString(".this line starts with a dot\r\n")
	const filler = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
	for b.Len()+len(filler) <= size {
		b.WriteString(filler)
	}
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString("\r\n")
	msg := b.String()
	return []byte(strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:] + ".\r\n"), len(msg)
}

func runSMTP(ctx context.Context, cfg Config) (*Result, error) {
	var before map[string]int
	if cfg.VerifyPOP3 != "" {
		var err error
		if before, err = pop3Counts(ctx, cfg); err != nil {
			return nil, fmt.Errorf("verify before: %w", err)
		}
	}
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var t tally
	var next atomic.Int64
	accepted := make([]atomic.Int64, len(cfg.Users))
	hists := make([]Histogram, cfg.Conns)
	var wg sync.WaitGroup
	for i := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			smtpWorker(ctx, cfg, deadline, &t, &next, accepted, &hists[i])
		}()
	}
	wg.Wait()
	r := t.result("smtp", cfg, time.Since(start))
	var h Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	r.P50Ms = float64(h.Quantile(0.50).Microseconds()) / 1000
	r.P99Ms = float64(h.Quantile(0.99).Microseconds()) / 1000
	if cfg.VerifyPOP3 != "" {
		var waited time.Duration
		r.Verified, r.VerifyDetail, waited = verifySMTP(ctx, cfg, before, accepted)
		if *r.Verified {
			r.DeliveredPerSec = float64(r.Messages) / (r.Seconds + waited.Seconds())
		}
	}
	return r, nil
}

// verifySMTP compares every recipient's new POP3 message count with what
// the server accepted for it, polling up to cfg.VerifyWait.
// It returns how long it waited for messages still on their way (0 if
// the first count matched).
func verifySMTP(ctx context.Context, cfg Config, before map[string]int, accepted []atomic.Int64) (*bool, string, time.Duration) {
	// A user listed twice gets both shares.
	want := map[string]int64{}
	var sum int64
	for i, u := range cfg.Users {
		want[u] += accepted[i].Load()
		sum += accepted[i].Load()
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.VerifyWait+time.Minute)
	defer cancel()
	for polls := 1; ; polls++ {
		after, err := pop3Counts(ctx, cfg)
		ok := err == nil
		var detail []string
		if err != nil {
			detail = append(detail, err.Error())
		}
		for u, w := range want {
			if err == nil && int64(after[u]-before[u]) != w {
				ok = false
				detail = append(detail, fmt.Sprintf("%s: %d accepted, %d new in POP3 STAT", u, w, after[u]-before[u]))
			}
		}
		if ok {
			msg := fmt.Sprintf("POP3 STAT counts %d new messages over %d users, as accepted", sum, len(want))
			var waited time.Duration
			if polls > 1 {
				waited = time.Since(start)
				msg += fmt.Sprintf(", after waiting %.1fs", waited.Seconds())
			}
			return &ok, msg, waited
		}
		if time.Since(start) >= cfg.VerifyWait {
			sort.Strings(detail)
			return &ok, strings.Join(detail, "; "), time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// smtpWorker runs transactions on one connection until the count or the
// deadline is reached, reconnecting after an I/O error.
func smtpWorker(ctx context.Context, cfg Config, deadline time.Time, t *tally, next *atomic.Int64, accepted []atomic.Int64, h *Histogram) {
	for !over(ctx) && next.Load() < int64(cfg.Count) {
		c, err := dial(ctx, cfg.Addr)
		if err != nil {
			if !over(ctx) {
				t.fail("dial: %v", err)
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		err = smtpSession(ctx, cfg, newTextConn(c, deadline), t, next, accepted, h)
		c.Close()
		if _, refused := err.(replyError); refused {
			// The server refused the session itself (greeting, EHLO,
			// AUTH): retrying would only repeat it until the deadline.
			return
		}
	}
}

// smtpSession runs one connection's transactions. It returns a
// replyError if the session could not start.
func smtpSession(ctx context.Context, cfg Config, tc *textConn, t *tally, next *atomic.Int64, accepted []atomic.Int64, h *Histogram) error {
	if err := tc.expect(220, ""); err != nil {
		t.fail("%v", err)
		return err
	}
	if err := tc.expect(250, "EHLO loadgen.localhost"); err != nil {
		t.fail("%v", err)
		return err
	}
	t.ops.Add(1)
	if cfg.AuthUser != "" {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + cfg.AuthUser + "\x00" + cfg.AuthPass))
		if err := tc.expect(235, "AUTH PLAIN "+ir); err != nil {
			if re, ok := err.(replyError); ok {
				err = replyError{"AUTH PLAIN " + cfg.AuthUser + ": " + strings.TrimPrefix(re.msg, "AUTH: ")}
			}
			t.fail("%v", err)
			return err
		}
		t.ops.Add(1)
	}
	for !over(ctx) {
		n := next.Add(1) - 1
		if n >= int64(cfg.Count) {
			break
		}
		ui := int(n) % len(cfg.Users)
		rcpt := cfg.Users[ui]
		wire, _ := Message(cfg.From, rcpt, int(n), cfg.Size)
		began := time.Now()
		err := smtpTransaction(tc, cfg.From, rcpt, wire, t)
		if err != nil {
			t.fail("message %d to %s: %v", n, rcpt, err)
			if _, ok := err.(replyError); !ok {
				return nil // I/O error: reconnect
			}
			if tc.expect(250, "RSET") != nil {
				return nil
			}
			continue
		}
		h.Add(time.Since(began))
		accepted[ui].Add(1)
		t.msgs.Add(1)
		t.bytes.Add(int64(len(wire)))
	}
	if tc.expect(221, "QUIT") == nil {
		t.ops.Add(1)
	}
	return nil
}

func smtpTransaction(tc *textConn, from, rcpt string, wire []byte, t *tally) error {
	if err := tc.expect(250, "MAIL FROM:<"+from+">"); err != nil {
		return err
	}
	t.ops.Add(1)
	if err := tc.expect(250, "RCPT TO:<"+rcpt+">"); err != nil {
		return err
	}
	t.ops.Add(1)
	if err := tc.expect(354, "DATA"); err != nil {
		return err
	}
	if _, err := tc.w.Write(wire); err != nil {
		return err
	}
	if err := tc.w.Flush(); err != nil {
		return err
	}
	code, line, err := tc.smtpReply()
	if err != nil {
		return err
	}
	if code != 250 {
		return replyError{fmt.Sprintf("end of DATA: want 250, got %q", line)}
	}
	t.ops.Add(1)
	return nil
}

package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pop3OK sends a command (if not "") and checks for +OK, returning the
// status line.
func (t *textConn) pop3OK(cmd string) (string, error) {
	if cmd != "" {
		if err := t.cmd("%s", cmd); err != nil {
			return "", err
		}
	}
	line, err := t.readLine()
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "+OK") {
		return line, replyError{fmt.Sprintf("%s: want +OK, got %q", verb(cmd), line)}
	}
	return line, nil
}

// pop3Multi reads a multi-line response body up to the terminating ".",
// and returns its size after dot-unstuffing (RFC 1939 §3), with CRLF line
// ends. lines collects the lines if not nil.
func (t *textConn) pop3Multi(lines *[]string) (int64, error) {
	var n int64
	atStart := true
	for {
		chunk, err := t.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return n, err
		}
		if atStart {
			if err == nil && (string(chunk) == ".\r\n" || string(chunk) == ".\n") {
				return n, nil
			}
			if len(chunk) > 0 && chunk[0] == '.' {
				chunk = chunk[1:]
			}
			if lines != nil && err == nil {
				*lines = append(*lines, strings.TrimRight(string(chunk), "\r\n"))
			}
		}
		n += int64(len(chunk))
		atStart = err == nil
	}
}

func pop3Login(tc *textConn, user, pass string) error {
	if _, err := tc.pop3OK(""); err != nil {
		return err
	}
	if _, err := tc.pop3OK("USER " + user); err != nil {
		return err
	}
	if err := tc.cmd("PASS %s", pass); err != nil {
		return err
	}
	if line, err := tc.readLine(); err != nil {
		return err
	} else if !strings.HasPrefix(line, "+OK") {
		return replyError{fmt.Sprintf("PASS for %s: want +OK, got %q", user, line)}
	}
	return nil
}

func parseStat(line string) (count int, size int64, err error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("bad STAT reply %q", line)
	}
	count, err = strconv.Atoi(f[1])
	if err == nil {
		size, err = strconv.ParseInt(f[2], 10, 64)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("bad STAT reply %q", line)
	}
	return count, size, nil
}

// pop3Counts returns every user's message count from POP3 STAT at
// cfg.VerifyPOP3.
func pop3Counts(ctx context.Context, cfg Config) (map[string]int, error) {
	out := make(map[string]int, len(cfg.Users))
	for _, u := range cfg.Users {
		c, err := dial(ctx, cfg.VerifyPOP3)
		if err != nil {
			return nil, err
		}
		tc := newTextConn(c, time.Now())
		err = pop3Login(tc, u, cfg.Pass)
		var line string
		if err == nil {
			line, err = tc.pop3OK("STAT")
		}
		var n int
		if err == nil {
			n, _, err = parseStat(line)
		}
		if err == nil {
			tc.pop3OK("QUIT")
		}
		c.Close()
		if err != nil {
			return nil, fmt.Errorf("POP3 STAT for %s: %w", u, err)
		}
		out[u] = n
	}
	return out, nil
}

func runPOP3(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var t tally
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Connection w takes users w, w+Conns, ...: with at least
			// as many users as connections no two sessions want the
			// same maildrop at once, which POP3 refuses (RFC 1939 §8).
			for k := 0; !over(ctx); k++ {
				n := next.Add(1) - 1
				if n >= int64(cfg.Count) {
					return
				}
				user := cfg.Users[(w+k*cfg.Conns)%len(cfg.Users)]
				if err := pop3Session(ctx, cfg, deadline, user, &t); err != nil {
					if over(ctx) {
						return // cut by the deadline: not the server's fault
					}
					t.fail("pop3 session %s: %v", user, err)
				} else {
					t.sessions.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return t.result("pop3", cfg, time.Since(start)), nil
}

func pop3Session(ctx context.Context, cfg Config, deadline time.Time, user string, t *tally) error {
	c, err := dial(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	defer c.Close()
	tc := newTextConn(c, deadline)
	if err := pop3Login(tc, user, cfg.Pass); err != nil {
		return err
	}
	t.ops.Add(2)
	line, err := tc.pop3OK("STAT")
	if err != nil {
		return err
	}
	t.ops.Add(1)
	count, total, err := parseStat(line)
	if err != nil {
		return err
	}
	if _, err := tc.pop3OK("LIST"); err != nil {
		return err
	}
	var lines []string
	if _, err := tc.pop3Multi(&lines); err != nil {
		return err
	}
	t.ops.Add(1)
	if len(lines) != count {
		return fmt.Errorf("LIST has %d messages, STAT said %d", len(lines), count)
	}
	sizes := make([]int64, len(lines))
	var sum int64
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 || f[0] != strconv.Itoa(i+1) {
			return fmt.Errorf("bad LIST line %q", l)
		}
		sizes[i], err = strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return fmt.Errorf("bad LIST line %q", l)
		}
		sum += sizes[i]
	}
	if sum != total {
		return fmt.Errorf("LIST sizes add up to %d, STAT said %d", sum, total)
	}
	for i := range sizes {
		if over(ctx) {
			break
		}
		if _, err := tc.pop3OK(fmt.Sprintf("RETR %d", i+1)); err != nil {
			return err
		}
		n, err := tc.pop3Multi(nil)
		if err != nil {
			return err
		}
		t.ops.Add(1)
		// RFC 1939 §5 LIST: the size is the exact size of the message,
		// which is what RETR sends once unstuffed.
		if n != sizes[i] {
			t.fail("%s RETR %d: %d bytes, LIST said %d", user, i+1, n, sizes[i])
		}
		t.msgs.Add(1)
		t.bytes.Add(n)
		if cfg.Dele {
			if _, err := tc.pop3OK(fmt.Sprintf("DELE %d", i+1)); err != nil {
				return err
			}
			t.ops.Add(1)
		}
	}
	if _, err := tc.pop3OK("QUIT"); err != nil {
		return err
	}
	t.ops.Add(1)
	return nil
}

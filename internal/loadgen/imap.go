package loadgen

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// imapConn is an IMAP client connection: tagged commands, responses with
// literals skipped (their sizes kept).
type imapConn struct {
	*textConn
	tag int
}

// imapResp is one response: its text with each literal's bytes left out,
// and the literal sizes.
type imapResp struct {
	text     string
	literals []int64
}

var literalRE = regexp.MustCompile(`\{(\d+)\+?\}$`)

func (ic *imapConn) readResp() (imapResp, error) {
	var r imapResp
	var b strings.Builder
	for {
		line, err := ic.readLine()
		if err != nil {
			return r, err
		}
		b.WriteString(line)
		m := literalRE.FindStringSubmatch(line)
		if m == nil {
			r.text = b.String()
			return r, nil
		}
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return r, fmt.Errorf("bad literal in %q", line)
		}
		if _, err := io.CopyN(io.Discard, ic.r, n); err != nil {
			return r, err
		}
		r.literals = append(r.literals, n)
	}
}

// run sends a tagged command and returns the untagged responses; the
// tagged status must be OK.
func (ic *imapConn) run(cmd string, each func(imapResp) error) error {
	ic.tag++
	tag := "a" + strconv.Itoa(ic.tag)
	if err := ic.cmd("%s %s", tag, cmd); err != nil {
		return err
	}
	for {
		r, err := ic.readResp()
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(r.text, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return replyError{fmt.Sprintf("%s: %s", verb(cmd), rest)}
			}
			return nil
		}
		if strings.HasPrefix(r.text, "* BYE") && cmd != "LOGOUT" {
			return fmt.Errorf("%s: %s", verb(cmd), r.text)
		}
		if each != nil && strings.HasPrefix(r.text, "* ") {
			if err := each(r); err != nil {
				return err
			}
		}
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// imapLogin reads the greeting and logs in, returning the connection.
func imapLogin(ctx context.Context, addr string, deadline time.Time, user, pass string, t *tally) (*imapConn, error) {
	c, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	ic := &imapConn{textConn: newTextConn(c, deadline)}
	g, err := ic.readLine()
	if err != nil {
		c.Close()
		return nil, err
	}
	if !strings.HasPrefix(g, "* OK") {
		c.Close()
		return nil, fmt.Errorf("greeting %q", g)
	}
	if err := ic.run("LOGIN "+quote(user)+" "+quote(pass), nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("LOGIN %s: %w", user, err)
	}
	t.ops.Add(1)
	return ic, nil
}

var (
	fetchUIDRE  = regexp.MustCompile(`\bUID (\d+)`)
	fetchSizeRE = regexp.MustCompile(`\bRFC822\.SIZE (\d+)`)
)

func runIMAP(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var t tally
	var next atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !over(ctx) {
				n := next.Add(1) - 1
				if cfg.Count > 0 && n >= int64(cfg.Count) {
					return
				}
				user := cfg.Users[int(n)%len(cfg.Users)]
				if err := imapSession(ctx, cfg, deadline, user, int(n), &t); err != nil {
					if over(ctx) {
						return // cut by the deadline: not the server's fault
					}
					t.fail("imap session %s: %v", user, err)
				} else {
					t.sessions.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return t.result("imap", cfg, time.Since(start)), nil
}

func imapSession(ctx context.Context, cfg Config, deadline time.Time, user string, n int, t *tally) error {
	ic, err := imapLogin(ctx, cfg.Addr, deadline, user, cfg.Pass, t)
	if err != nil {
		return err
	}
	defer ic.c.Close()
	exists := 0
	err = ic.run("SELECT INBOX", func(r imapResp) error {
		if f := strings.Fields(r.text); len(f) == 3 && f[2] == "EXISTS" {
			exists, _ = strconv.Atoi(f[1])
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.ops.Add(1)
	sizes := map[int64]int64{}
	var uids []int64
	if exists > 0 {
		err = ic.run("FETCH 1:* (UID FLAGS RFC822.SIZE)", func(r imapResp) error {
			u, s := fetchUIDRE.FindStringSubmatch(r.text), fetchSizeRE.FindStringSubmatch(r.text)
			if u == nil || s == nil {
				return nil
			}
			uid, _ := strconv.ParseInt(u[1], 10, 64)
			size, _ := strconv.ParseInt(s[1], 10, 64)
			if _, dup := sizes[uid]; !dup {
				uids = append(uids, uid)
			}
			sizes[uid] = size
			return nil
		})
		if err != nil {
			return err
		}
		t.ops.Add(1)
		if len(uids) != exists {
			t.fail("%s: FETCH 1:* returned %d messages, SELECT said %d EXISTS", user, len(uids), exists)
		}
	}
	if over(ctx) {
		return nil
	}
	// A sample of bodies, different for each session and round.
	sample := min(cfg.Sample, len(uids))
	for round := range cfg.Rounds {
		if over(ctx) {
			return nil
		}
		var set []string
		for i := range sample {
			uid := uids[((n*cfg.Rounds+round)*sample+i)%len(uids)]
			set = append(set, strconv.FormatInt(uid, 10))
			err = ic.run(fmt.Sprintf("UID FETCH %d (BODY.PEEK[])", uid), func(r imapResp) error {
				u := fetchUIDRE.FindStringSubmatch(r.text)
				if u == nil || len(r.literals) != 1 {
					return nil
				}
				got, _ := strconv.ParseInt(u[1], 10, 64)
				if got != uid {
					return nil
				}
				// RFC 3501 §6.4.5: BODY[] is the whole message, whose
				// size RFC822.SIZE announced.
				if r.literals[0] != sizes[uid] {
					t.fail("%s UID %d: BODY[] literal %d bytes, RFC822.SIZE %d", user, uid, r.literals[0], sizes[uid])
				}
				t.msgs.Add(1)
				t.bytes.Add(r.literals[0])
				return nil
			})
			if err != nil {
				return err
			}
			t.ops.Add(1)
		}
		if len(set) > 0 {
			for _, op := range []string{"+FLAGS", "-FLAGS"} {
				if err := ic.run("UID STORE "+strings.Join(set, ",")+" "+op+" (\\Flagged)", nil); err != nil {
					return err
				}
				t.ops.Add(1)
			}
		}
	}
	if err := ic.run("LOGOUT", nil); err != nil {
		return err
	}
	t.ops.Add(1)
	return nil
}

func runIdle(ctx context.Context, cfg Config) (*Result, error) {
	var t tally
	start := time.Now()
	// Each connection gets idleOpen to log in and start IDLE (a server
	// with a costly password hash takes a while for thousands); the
	// deadlines are moved once every connection is idling.
	const idleOpen = 2 * time.Minute
	var wg sync.WaitGroup
	// Logins run idleLogins at a time. The warm-up does as many logins
	// and logouts before the first RSS reading, so that what a login
	// costs once (a password hash's memory, say argon2id's) is in the
	// baseline and not charged to the idle connections.
	const idleLogins = 8
	sem := make(chan struct{}, idleLogins)
	var rssBefore int64
	if cfg.PID > 0 {
		var warm tally
		for i := range idleLogins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if ic, err := imapLogin(ctx, cfg.Addr, time.Now().Add(idleOpen), cfg.Users[i%len(cfg.Users)], cfg.Pass, &warm); err == nil {
					ic.run("LOGOUT", nil)
					ic.c.Close()
				}
			}()
		}
		wg.Wait()
		time.Sleep(cfg.Settle)
		var err error
		if rssBefore, err = ReadTreeRSS(cfg.PID); err != nil {
			return nil, err
		}
	}
	conns := make([]*imapConn, cfg.Conns)
	// The connections open in two halves with an RSS reading between:
	// the second half's growth is the marginal cost of a connection,
	// which a Go server's heap slack from earlier work (freed but not yet
	// returned to the OS) cannot blur as it can the first reading.
	half := cfg.Conns / 2
	var rssMid, openMid int64
	var opened atomic.Int64
	for i := range conns {
		if i == half && half > 0 && cfg.PID > 0 {
			wg.Wait()
			time.Sleep(cfg.Settle)
			rssMid, _ = ReadTreeRSS(cfg.PID)
			openMid = opened.Load()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			user := cfg.Users[i%len(cfg.Users)]
			ic, err := imapLogin(ctx, cfg.Addr, time.Now().Add(idleOpen), user, cfg.Pass, &t)
			if err == nil {
				err = ic.run("SELECT INBOX", nil)
				if err == nil {
					t.ops.Add(1)
					ic.tag++
					err = ic.cmd("a%d IDLE", ic.tag)
				}
				if err == nil {
					var line string
					line, err = ic.readLine()
					for err == nil && strings.HasPrefix(line, "* ") {
						line, err = ic.readLine()
					}
					if err == nil && !strings.HasPrefix(line, "+") {
						err = fmt.Errorf("IDLE: %q", line)
					}
				}
				if err != nil {
					ic.c.Close()
				}
			}
			if err != nil {
				t.fail("idle %s: %v", user, err)
				return
			}
			t.ops.Add(1)
			opened.Add(1)
			conns[i] = ic
		}()
	}
	wg.Wait()
	var open int
	for _, ic := range conns {
		if ic != nil {
			open++
		}
	}
	t.sessions.Store(int64(open))
	held := time.Now()
	for _, ic := range conns {
		if ic != nil {
			ic.c.SetDeadline(held.Add(cfg.Duration + cfg.Settle + idleOpen))
		}
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
	}
	var rssAfter int64
	if cfg.PID > 0 {
		rssAfter, _ = ReadTreeRSS(cfg.PID)
	}
	if rest := cfg.Duration - time.Since(held); rest > 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
		}
	}
	// End IDLE and log out; a server that dropped an idle connection is an
	// error.
	for _, ic := range conns {
		if ic == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer ic.c.Close()
			tag := "a" + strconv.Itoa(ic.tag)
			if err := ic.cmd("DONE"); err != nil {
				t.fail("DONE: %v", err)
				return
			}
			for {
				r, err := ic.readResp()
				if err != nil {
					t.fail("IDLE end: %v", err)
					return
				}
				if rest, ok := strings.CutPrefix(r.text, tag+" "); ok {
					if !strings.HasPrefix(rest, "OK") {
						t.fail("IDLE: %s", rest)
						return
					}
					break
				}
			}
			t.ops.Add(1)
			if err := ic.run("LOGOUT", nil); err != nil {
				t.fail("LOGOUT: %v", err)
				return
			}
			t.ops.Add(1)
		}()
	}
	wg.Wait()
	r := t.result("idle", cfg, time.Since(start))
	if cfg.PID > 0 {
		r.RSSBeforeKB, r.RSSAfterKB = rssBefore, rssAfter
		if open > 0 {
			r.RSSPerConnKB = float64(rssAfter-rssBefore) / float64(open)
		}
		if n := int64(open) - openMid; rssMid > 0 && n > 0 {
			r.RSSMidKB = rssMid
			r.RSSMarginalKB = float64(rssAfter-rssMid) / float64(n)
		}
	}
	return r, nil
}

// Package load holds the load test: a whole jodmai in-process (testenv) with
// thousands of concurrent SMTP, POP3 and IMAP connections from several
// loopback source addresses. It checks that every connection is either
// served or refused cleanly with the protocol's refusal line, that a new
// client is served throughout, and prints the counts, the probe latencies and
// the process's peak RSS.
//
// Bounded: every socket has a deadline, the whole run has a deadline, and
// everything stops by itself.
package load

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
)

// totalConns is how many connections are held open at once. race_test.go
// lowers it under -race; JODMAI_LOAD_CONNS overrides it.
var totalConns = 2000

// loginParallel bounds the POP3/IMAP logins in flight. Each argon2id check
// costs 19 MiB and about 30 ms of CPU, and the server does not bound them
// itself: with every held connection logging in at once, peak memory would
// be 19 MiB times the number of connections.
var loginParallel = 32

const (
	// sourceIPs spread the load over 127.0.0.1..127.0.0.sourceIPs, so the
	// per-IP cap is exercised as a real cap rather than disabled.
	sourceIPs = 8
	// headroom is the global cap above totalConns: room for the probe.
	headroom = 16
	// overCap connections are opened beyond a loaded address's per-IP cap
	// and must be refused.
	overCap = 30
	// dialParallel bounds concurrent dials (the listen backlog).
	dialParallel = 128
	users        = 40
	password     = "load-test-password"
	// runBudget bounds the whole run.
	runBudget = 55 * time.Second
)

type proto int

const (
	pSMTP proto = iota
	pPOP3
	pIMAP
)

// mix gives half the connections to SMTP (no login: the cheap, common
// case) and a quarter each to POP3 and IMAP, which log in.
func mix(i int) proto { return [...]proto{pSMTP, pPOP3, pSMTP, pIMAP}[i%4] }

func (p proto) String() string { return [...]string{"smtp", "pop3", "imap"}[p] }

// refusal is the line a capped listener sends before closing.
func (p proto) refusal() string {
	return [...]string{"421 4.7.0", "-ERR [SYS/TEMP]", "* BYE [UNAVAILABLE]"}[p]
}

func (p proto) greeting() string { return [...]string{"220", "+OK", "* OK"}[p] }

type counters struct {
	opened   atomic.Int64 // greeted and held
	served   [3]atomic.Int64
	logins   atomic.Int64    // POP3 and IMAP sessions that logged in
	lastDone [3]atomic.Int64 // unix nanos of the last served exchange
	refused  [3]atomic.Int64
	errors   atomic.Int64
	errMu    sync.Mutex
	firstErr []string
}

func (c *counters) fail(format string, a ...any) {
	c.errors.Add(1)
	c.errMu.Lock()
	if len(c.firstErr) < 10 {
		c.firstErr = append(c.firstErr, fmt.Sprintf(format, a...))
	}
	c.errMu.Unlock()
}

func raiseNofile(t *testing.T, need uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	if lim.Max < need {
		t.Skipf("load test needs %d open files; the hard RLIMIT_NOFILE is %d (raise it with ulimit -Hn)", need, lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", need, err)
	}
}

func dialFrom(ctx context.Context, ip, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return d.DialContext(ctx, "tcp", addr)
}

// conn is a line-oriented client connection.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func (c *conn) line() (string, error) {
	s, err := c.r.ReadString('\n')
	return strings.TrimRight(s, "\r\n"), err
}

func (c *conn) send(s string) error {
	_, err := c.Write([]byte(s + "\r\n"))
	return err
}

// smtpReply reads a possibly multi-line SMTP reply and returns its last line.
func (c *conn) smtpReply(code string) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, code) {
			return fmt.Errorf("want %s, got %q", code, l)
		}
		if len(l) < 4 || l[3] != '-' {
			return nil
		}
	}
}

// until reads lines until one starts with prefix; a line starting with bad
// fails.
func (c *conn) until(prefix string, bad ...string) error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, prefix) {
			return nil
		}
		for _, b := range bad {
			if strings.HasPrefix(l, b) {
				return fmt.Errorf("got %q", l)
			}
		}
	}
}

func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	n := totalConns
	if s := os.Getenv("JODMAI_LOAD_CONNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < sourceIPs {
			t.Fatalf("JODMAI_LOAD_CONNS=%q", s)
		}
		n = v
	}
	n -= n % sourceIPs
	perIP := n / sourceIPs
	// Client and server side of every connection live in this process.
	raiseNofile(t, uint64(2*(n+headroom+overCap)+512))

	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) {
		c.Limits.MaxConnections = n + headroom
		c.Limits.MaxConnectionsPerIP = perIP
		c.Limits.ExemptNetworks = nil // the load comes from loopback and the per-IP cap is under test
	}})
	addrs := map[proto]string{pSMTP: env.Addr("smtp"), pPOP3: env.Addr("pop3"), pIMAP: env.Addr("imap")}
	for i := range users {
		env.AddUser(t, fmt.Sprintf("u%d@example.org", i), password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runBudget)
	defer cancel()
	start := time.Now()

	// The probe: a new client every 200 ms, rotating over the protocols,
	// from an address of its own with the global headroom left for it.
	type probeStats struct {
		served, failed int
		max, total     time.Duration
		errs           []string
	}
	var ps probeStats
	var probeMu sync.Mutex // held by the probe per attempt; the global-cap check pauses it
	probeStop := make(chan struct{})
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-probeStop:
				return
			case <-tick.C:
			}
			p := proto(i % 3)
			probeMu.Lock()
			t0 := time.Now()
			err := probe(ctx, p, addrs[p])
			d := time.Since(t0)
			probeMu.Unlock()
			if err != nil {
				ps.failed++
				if len(ps.errs) < 5 {
					ps.errs = append(ps.errs, fmt.Sprintf("%s: %v", p, err))
				}
				continue
			}
			ps.served++
			ps.total += d
			ps.max = max(ps.max, d)
		}
	}()

	// Phase 1: open n connections, read each greeting and hold them all.
	var cnt counters
	release := make(chan struct{})
	dialSem := make(chan struct{}, dialParallel)
	loginSem := make(chan struct{}, loginParallel)
	// POP3 holds the maildrop lock: a POP3 login takes a user no other
	// POP3 session is using.
	pop3Users := make(chan int, users)
	for u := range users {
		pop3Users <- u
	}
	var opened, finished sync.WaitGroup
	for i := range n {
		p := mix(i)
		ip := fmt.Sprintf("127.0.0.%d", 1+i%sourceIPs)
		user := i / 4 % users
		// Every other POP3 and IMAP connection logs in; the rest do a
		// pre-login exchange. Logins are bounded by argon2id CPU (about
		// 30 ms each), which would otherwise dominate the run.
		login := i/4%2 == 0
		opened.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			openedOnce := sync.OnceFunc(opened.Done)
			defer openedOnce()
			dialSem <- struct{}{}
			nc, err := dialFrom(ctx, ip, addrs[p])
			<-dialSem
			if err != nil {
				cnt.fail("%s dial: %v", p, err)
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(runBudget))
			c := &conn{Conn: nc, r: bufio.NewReader(nc)}
			g, err := c.line()
			if err != nil || !strings.HasPrefix(g, p.greeting()) {
				if strings.HasPrefix(g, p.refusal()) {
					cnt.refused[p].Add(1)
				}
				cnt.fail("%s greeting from %s: %q %v", p, ip, g, err)
				return
			}
			cnt.opened.Add(1)
			openedOnce()
			select {
			case <-release:
			case <-ctx.Done():
				cnt.fail("%s: run budget exceeded while held", p)
				return
			}
			if err := exchange(c, p, user, login, g, loginSem, pop3Users); err != nil {
				cnt.fail("%s exchange: %v", p, err)
				return
			}
			cnt.served[p].Add(1)
			if login && p != pSMTP {
				cnt.logins.Add(1)
			}
			cnt.lastDone[p].Store(time.Now().UnixNano())
		}()
	}
	opened.Wait()
	allOpen := time.Since(start)
	held := cnt.opened.Load()

	// Over the per-IP cap: every loaded address is full, so these must get
	// the refusal line and be closed.
	var over sync.WaitGroup
	var overRefused, overServed [3]atomic.Int64
	for i := range overCap {
		p := proto(i % 3)
		ip := fmt.Sprintf("127.0.0.%d", 1+i%sourceIPs)
		over.Add(1)
		go func() {
			defer over.Done()
			ok, err := expectRefusal(ctx, ip, addrs[p], p)
			switch {
			case ok:
				overRefused[p].Add(1)
			case err == nil:
				overServed[p].Add(1)
			default:
				cnt.fail("%s over the cap: %v", p, err)
			}
		}()
	}
	over.Wait()

	// Over the global cap: pause the probe, fill the headroom from a fresh
	// address; the next connection must be refused.
	probeMu.Lock()
	var fill []net.Conn
	globalRefused := false
	for range headroom + 1 {
		nc, err := dialFrom(ctx, "127.0.0.101", addrs[pSMTP])
		if err != nil {
			cnt.fail("global fill dial: %v", err)
			break
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		l, err := bufio.NewReader(nc).ReadString('\n')
		if strings.HasPrefix(l, pSMTP.refusal()) {
			globalRefused = true
			nc.Close()
			break
		}
		if err != nil {
			cnt.fail("global fill: %q %v", l, err)
			nc.Close()
			break
		}
		fill = append(fill, nc)
	}
	for _, c := range fill {
		c.Close()
	}
	// Let the server see those closes before the probe needs a slot again.
	time.Sleep(100 * time.Millisecond)
	probeMu.Unlock()

	// Phase 2: every held connection does its exchange.
	exStart := time.Now()
	close(release)
	finished.Wait()
	exDur := time.Since(exStart)
	close(probeStop)
	<-probeDone
	total := time.Since(start)

	rss := peakRSS()
	var served, refused int64
	for p := range 3 {
		served += cnt.served[p].Load()
		refused += overRefused[p].Load()
	}
	var avg time.Duration
	if ps.served > 0 {
		avg = ps.total / time.Duration(ps.served)
	}
	report := []string{
		fmt.Sprintf("load: %d connections held open at once (of %d; %d source addresses, per-IP cap %d, global cap %d), all open after %s",
			held, n, sourceIPs, perIP, n+headroom, allOpen.Round(time.Millisecond)),
		fmt.Sprintf("load: served smtp=%d pop3=%d imap=%d (total %d; %d POP3/IMAP logins) in %s; errors %d",
			cnt.served[pSMTP].Load(), cnt.served[pPOP3].Load(), cnt.served[pIMAP].Load(), served, cnt.logins.Load(), exDur.Round(time.Millisecond), cnt.errors.Load()),
		fmt.Sprintf("load: last exchange done after smtp=%s pop3=%s imap=%s",
			since(exStart, cnt.lastDone[pSMTP].Load()), since(exStart, cnt.lastDone[pPOP3].Load()), since(exStart, cnt.lastDone[pIMAP].Load())),
		fmt.Sprintf("load: over per-IP cap: refused 421 4.7.0=%d -ERR [SYS/TEMP]=%d * BYE [UNAVAILABLE]=%d (of %d), served instead %d; over global cap refused: %v after %d fill connections",
			overRefused[pSMTP].Load(), overRefused[pPOP3].Load(), overRefused[pIMAP].Load(), overCap,
			overServed[0].Load()+overServed[1].Load()+overServed[2].Load(), globalRefused, len(fill)),
		fmt.Sprintf("load: probe (new client every 200 ms): served %d, failed %d, latency max %s avg %s",
			ps.served, ps.failed, ps.max.Round(time.Millisecond), avg.Round(time.Millisecond)),
		fmt.Sprintf("load: peak RSS (VmHWM, server and clients in one process) %s; total run %s", rss, total.Round(time.Millisecond)),
	}
	for _, l := range report {
		t.Log(l)
		fmt.Println(l)
	}
	for _, e := range cnt.firstErr {
		t.Errorf("load error: %s", e)
	}
	for _, e := range ps.errs {
		t.Errorf("probe failed: %s", e)
	}
	if held != int64(n) {
		t.Errorf("%d of %d connections were open at once", held, n)
	}
	if served != int64(n) {
		t.Errorf("%d of %d held connections were served", served, n)
	}
	if refused != overCap {
		t.Errorf("%d of %d connections over the per-IP cap were refused", refused, overCap)
	}
	if !globalRefused {
		t.Errorf("no refusal after %d connections over the load (global cap %d)", len(fill)+1, n+headroom)
	}
	if ps.served == 0 || ps.failed > 0 {
		t.Errorf("probe: %d served, %d failed", ps.served, ps.failed)
	}
}

// exchange is each held connection's short real session.
func exchange(c *conn, p proto, user int, login bool, greeting string, loginSem chan struct{}, pop3Users chan int) error {
	addr := fmt.Sprintf("u%d@example.org", user)
	switch {
	case !login && p == pPOP3:
		if err := c.send("CAPA"); err != nil {
			return err
		}
		if err := c.until(".", "-ERR"); err != nil {
			return fmt.Errorf("CAPA: %w", err)
		}
		if err := c.send("QUIT"); err != nil {
			return err
		}
		return c.until("+OK", "-ERR")
	case !login && p == pIMAP:
		for _, s := range []struct{ cmd, tag string }{{"a CAPABILITY", "a"}, {"b NOOP", "b"}, {"c LOGOUT", "c"}} {
			if err := c.send(s.cmd); err != nil {
				return err
			}
			if err := c.until(s.tag+" OK", s.tag+" NO", s.tag+" BAD"); err != nil {
				return fmt.Errorf("%s: %w", s.cmd, err)
			}
		}
		return nil
	}
	switch p {
	case pSMTP:
		// The 220 greeting may be multi-line; the first line was read.
		if len(greeting) > 3 && greeting[3] == '-' {
			if err := c.smtpReply("220"); err != nil {
				return err
			}
		}
		steps := []struct{ cmd, code string }{
			{"EHLO load.example.net", "250"},
			{"MAIL FROM:<load@example.net>", "250"},
			{"RCPT TO:<" + addr + ">", "250"},
			{"DATA", "354"},
			{"From: load@example.net\r\nTo: " + addr + "\r\nSubject: load\r\n\r\nsmall body\r\n.", "250"},
			{"QUIT", "221"},
		}
		for _, s := range steps {
			if err := c.send(s.cmd); err != nil {
				return err
			}
			if err := c.smtpReply(s.code); err != nil {
				return fmt.Errorf("%s: %w", strings.Fields(s.cmd)[0], err)
			}
		}
	case pPOP3:
		u := <-pop3Users
		defer func() { pop3Users <- u }()
		addr = fmt.Sprintf("u%d@example.org", u)
		loginSem <- struct{}{}
		defer func() { <-loginSem }()
		for _, cmd := range []string{"USER " + addr, "PASS " + password, "STAT", "QUIT"} {
			if err := c.send(cmd); err != nil {
				return err
			}
			l, err := c.line()
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, "+OK") {
				return fmt.Errorf("%s: %q", strings.Fields(cmd)[0], l)
			}
		}
	case pIMAP:
		loginSem <- struct{}{}
		err := c.send(`a LOGIN "` + addr + `" "` + password + `"`)
		if err == nil {
			err = c.until("a OK", "a NO", "a BAD")
		}
		<-loginSem
		if err != nil {
			return fmt.Errorf("LOGIN: %w", err)
		}
		for _, s := range []struct{ cmd, tag string }{{"b SELECT INBOX", "b"}, {"c LOGOUT", "c"}} {
			if err := c.send(s.cmd); err != nil {
				return err
			}
			if err := c.until(s.tag+" OK", s.tag+" NO", s.tag+" BAD"); err != nil {
				return fmt.Errorf("%s: %w", s.cmd, err)
			}
		}
	}
	return nil
}

// expectRefusal connects and reports whether the server refused with the
// protocol's line and closed. ok=false, err=nil means it was served.
func expectRefusal(ctx context.Context, ip, addr string, p proto) (bool, error) {
	nc, err := dialFrom(ctx, ip, addr)
	if err != nil {
		return false, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(nc)
	l, err := r.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("no greeting or refusal: %q %v", l, err)
	}
	if !strings.HasPrefix(l, p.refusal()) {
		if strings.HasPrefix(l, p.greeting()) {
			return false, nil
		}
		return false, fmt.Errorf("unexpected first line %q", l)
	}
	// The server must close after the refusal.
	if extra, err := r.ReadString('\n'); err == nil {
		return false, fmt.Errorf("connection stayed open after the refusal: %q", extra)
	}
	return true, nil
}

// probe is a new client's NOOP-level exchange.
func probe(ctx context.Context, p proto, addr string) error {
	nc, err := dialFrom(ctx, "127.0.0.100", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(15 * time.Second))
	c := &conn{Conn: nc, r: bufio.NewReader(nc)}
	switch p {
	case pSMTP:
		if err := c.smtpReply("220"); err != nil {
			return err
		}
		for _, s := range []struct{ cmd, code string }{{"NOOP", "250"}, {"QUIT", "221"}} {
			if err := c.send(s.cmd); err != nil {
				return err
			}
			if err := c.smtpReply(s.code); err != nil {
				return err
			}
		}
	case pPOP3:
		if err := c.until("+OK", "-ERR"); err != nil {
			return err
		}
		if err := c.send("CAPA"); err != nil {
			return err
		}
		if err := c.until("."); err != nil {
			return err
		}
		if err := c.send("QUIT"); err != nil {
			return err
		}
		return c.until("+OK", "-ERR")
	case pIMAP:
		if err := c.until("* OK", "* BYE"); err != nil {
			return err
		}
		for _, s := range []struct{ cmd, tag string }{{"p NOOP", "p"}, {"q LOGOUT", "q"}} {
			if err := c.send(s.cmd); err != nil {
				return err
			}
			if err := c.until(s.tag+" OK", s.tag+" NO", s.tag+" BAD"); err != nil {
				return err
			}
		}
	}
	return nil
}

// peakRSS returns VmHWM from /proc/self/status.
func peakRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func since(t0 time.Time, ns int64) time.Duration {
	if ns == 0 {
		return 0
	}
	return time.Unix(0, ns).Sub(t0).Round(time.Millisecond)
}

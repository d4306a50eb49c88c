// Package loadgen is jodmai's load generator: it drives any SMTP, POP3 or
// IMAP server on loopback and verifies what it measures (every reply code is
// checked, retrieved bytes are compared with announced sizes, delivered
// messages are counted back over POP3).
//
// It only ever connects to loopback addresses (127.0.0.0/8 and ::1): Dial
// refuses anything else, so a typo cannot turn it into a flood against a
// real host. Every profile is bounded by a count and a duration and stops by
// itself.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one run's parameters. Zero values get the defaults of
// Defaults.
type Config struct {
	// Addr is the target "host:port"; the host must be loopback.
	Addr string
	// Users are the accounts: recipients for smtp, logins for pop3, imap,
	// idle.
	Users []string
	// Pass is every user's password.
	Pass string
	// Conns is the number of concurrent connections (default 8).
	Conns int
	// Count caps the work: messages for smtp, sessions for pop3 and imap
	// (default: smtp 1000, pop3 Conns, imap unbounded within Duration).
	Count int
	// Size is the smtp message size in bytes (default 4096).
	Size int
	// Duration caps the run (default 60s; idle: how long to hold).
	Duration time.Duration
	// From is the smtp envelope sender (default AuthUser, else
	// bench@localhost).
	From string
	// AuthUser and AuthPass, if set, make smtp authenticate (AUTH PLAIN).
	AuthUser, AuthPass string
	// VerifyPOP3, if set, is a POP3 address: smtp counts every
	// recipient's messages (STAT) before and after and checks the
	// difference against the accepted count.
	VerifyPOP3 string
	// VerifyWait is how long the verification polls POP3 STAT for
	// messages that are still on their way (a queueing MTA accepts before
	// it delivers); 0 reads once.
	VerifyWait time.Duration
	// Dele makes pop3 delete what it retrieved.
	Dele bool
	// Sample is how many bodies an imap session fetches (default 10).
	Sample int
	// Rounds is how many times an imap session repeats its body sample
	// and flag changes after one LOGIN/SELECT/FETCH 1:* (default 1), so
	// that a run can weigh IMAP work against the password check.
	Rounds int
	// PID is the server's process id for idle's RSS measurement, which
	// sums the process and its descendants (0: no RSS).
	PID int
	// Sink is where the relay profile's sink listens ("127.0.0.1:port").
	Sink string
	// Settle is how long idle waits after the connections are open
	// before reading RSS again (default 1s).
	Settle time.Duration
}

func (c *Config) defaults(profile string) error {
	if c.Conns <= 0 {
		c.Conns = 8
	}
	if c.Size <= 0 {
		c.Size = 4096
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.From == "" {
		// Submission servers only let a user send as themselves.
		c.From = "bench@localhost"
		if c.AuthUser != "" {
			c.From = c.AuthUser
		}
	}
	if c.Sample <= 0 {
		c.Sample = 10
	}
	if c.Rounds <= 0 {
		c.Rounds = 1
	}
	if c.Settle <= 0 {
		c.Settle = time.Second
	}
	if c.Count <= 0 {
		switch profile {
		case "smtp", "relay":
			c.Count = 1000
		case "pop3":
			c.Count = c.Conns
		}
	}
	if len(c.Users) == 0 {
		return errors.New("no users")
	}
	if _, err := loopback(c.Addr); err != nil {
		return err
	}
	if c.VerifyPOP3 != "" {
		if _, err := loopback(c.VerifyPOP3); err != nil {
			return err
		}
	}
	if c.Sink != "" {
		if _, err := loopback(c.Sink); err != nil {
			return err
		}
	}
	return nil
}

// Result is what a run measured. Rates are per second of wall-clock time
// between the first connection and the last reply.
type Result struct {
	Profile string  `json:"profile"`
	Addr    string  `json:"addr"`
	Conns   int     `json:"conns"`
	Seconds float64 `json:"seconds"`
	// Ops counts every command that got its expected reply.
	Ops int64 `json:"ops"`
	// Messages counts messages accepted (smtp) or retrieved (pop3, imap).
	Messages int64 `json:"messages"`
	// Bytes counts message bytes sent or retrieved.
	Bytes int64 `json:"bytes"`
	// Sessions counts completed sessions (pop3, imap, idle).
	Sessions int64 `json:"sessions"`
	// Errors counts unexpected replies, size mismatches and I/O errors.
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// P50Ms and P99Ms are smtp's MAIL..250 latency percentiles.
	P50Ms float64 `json:"p50_ms,omitempty"`
	P99Ms float64 `json:"p99_ms,omitempty"`
	// Verified is set when a verification ran: smtp --verify-pop3.
	Verified     *bool  `json:"verified,omitempty"`
	VerifyDetail string `json:"verify_detail,omitempty"`
	// DeliveredPerSec is smtp's end-to-end rate when verified: messages
	// over the time until the last one was counted in POP3 (a queueing MTA
	// accepts faster than it delivers).
	DeliveredPerSec float64 `json:"delivered_per_sec,omitempty"`
	// RSS fields are idle's, in KiB.
	RSSBeforeKB  int64   `json:"rss_before_kb,omitempty"`
	RSSAfterKB   int64   `json:"rss_after_kb,omitempty"`
	RSSPerConnKB float64 `json:"rss_per_conn_kb,omitempty"`
	// RSSMidKB is the reading with half the connections open, and
	// RSSMarginalKB the growth per connection over the second half.
	RSSMidKB      int64   `json:"rss_mid_kb,omitempty"`
	RSSMarginalKB float64 `json:"rss_marginal_kb,omitempty"`
}

// OK reports whether the run had no errors and no failed verification.
func (r *Result) OK() bool {
	return r.Errors == 0 && (r.Verified == nil || *r.Verified)
}

// Summary is the one human line.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d conns, %.2fs, ", r.Profile, r.Addr, r.Conns, r.Seconds)
	switch r.Profile {
	case "smtp":
		fmt.Fprintf(&b, "%d msgs, %.0f msgs/s, p50 %.2fms p99 %.2fms", r.Messages, r.MsgsPerSec, r.P50Ms, r.P99Ms)
	case "relay":
		fmt.Fprintf(&b, "%d msgs accepted at %.0f msgs/s, relayed to the sink at %.0f msgs/s", r.Messages, r.MsgsPerSec, r.DeliveredPerSec)
	case "pop3":
		fmt.Fprintf(&b, "%d sessions, %d msgs, %.0f msgs/s, %.1f MB/s", r.Sessions, r.Messages, r.MsgsPerSec, r.MBPerSec)
	case "imap":
		fmt.Fprintf(&b, "%d sessions, %d ops, %.0f ops/s, %d bodies", r.Sessions, r.Ops, r.OpsPerSec, r.Messages)
	case "idle":
		fmt.Fprintf(&b, "%d idling, rss %d -> %d -> %d KiB, %.1f KiB/conn, marginal %.1f KiB/conn", r.Sessions, r.RSSBeforeKB, r.RSSMidKB, r.RSSAfterKB, r.RSSPerConnKB, r.RSSMarginalKB)
	}
	fmt.Fprintf(&b, ", %d errors", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(&b, " (first: %s)", r.FirstError)
	}
	if r.Verified != nil {
		fmt.Fprintf(&b, ", verified=%v (%s)", *r.Verified, r.VerifyDetail)
	}
	return b.String()
}

// Run runs one profile: "smtp", "relay", "pop3", "imap" or "idle".
func Run(ctx context.Context, profile string, cfg Config) (*Result, error) {
	if err := cfg.defaults(profile); err != nil {
		return nil, err
	}
	switch profile {
	case "smtp":
		return runSMTP(ctx, cfg)
	case "pop3":
		return runPOP3(ctx, cfg)
	case "imap":
		return runIMAP(ctx, cfg)
	case "idle":
		return runIdle(ctx, cfg)
	case "relay":
		return runRelay(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown profile %q (smtp, relay, pop3, imap, idle)", profile)
}

// ErrNotLoopback is returned for a target outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("target is not a loopback address (127.0.0.0/8 or ::1)")

// loopback resolves addr and returns it with a loopback IP, or an error.
// Names are resolved once here and every address must be loopback, so the
// dial cannot go elsewhere.
func loopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", addr, err)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		ips, err = net.LookupIP(host)
		if err != nil {
			return "", fmt.Errorf("target %q: %w", addr, err)
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("target %q: no address", addr)
	}
	for _, ip := range ips {
		// IsLoopback is exactly 127.0.0.0/8 (also v4-mapped) and ::1.
		if !ip.IsLoopback() {
			return "", fmt.Errorf("%w: %s is %s", ErrNotLoopback, addr, ip)
		}
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

// dial connects to a loopback address only.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	a, err := loopback(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", a)
}

// tally is the shared counters of a run.
type tally struct {
	ops, msgs, bytes, sessions, errs atomic.Int64
	mu                               sync.Mutex
	first                            string
}

func (t *tally) fail(format string, a ...any) {
	t.errs.Add(1)
	t.mu.Lock()
	if t.first == "" {
		t.first = fmt.Sprintf(format, a...)
	}
	t.mu.Unlock()
}

func (t *tally) result(profile string, cfg Config, elapsed time.Duration) *Result {
	s := elapsed.Seconds()
	if s <= 0 {
		s = 1e-9
	}
	r := &Result{
		Profile: profile, Addr: cfg.Addr, Conns: cfg.Conns, Seconds: s,
		Ops: t.ops.Load(), Messages: t.msgs.Load(), Bytes: t.bytes.Load(),
		Sessions: t.sessions.Load(), Errors: t.errs.Load(), FirstError: t.first,
	}
	r.MsgsPerSec = float64(r.Messages) / s
	r.OpsPerSec = float64(r.Ops) / s
	r.MBPerSec = float64(r.Bytes) / s / 1e6
	return r
}

// Histogram records durations in log-linear buckets (8 per power of two,
// under 12.5% error) in constant memory, however many samples.
type Histogram struct {
	counts [512]uint64
	n      uint64
}

func bucketOf(v uint64) int {
	if v < 16 {
		return int(v)
	}
	e := bits.Len64(v) - 4 // v>>e is in [8, 15]
	return 16 + (e-1)*8 + int(v>>e) - 8
}

// lowerOf is the smallest value in bucket i.
func lowerOf(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := (i-16)/8 + 1
	m := uint64((i-16)%8 + 8)
	return m << e
}

// Add records one duration (microsecond resolution).
func (h *Histogram) Add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(uint64(us))]++
	h.n++
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the q-quantile (0 < q <= 1), as the middle of its
// bucket.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := lowerOf(i), lowerOf(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return 0
}

// ReadRSS returns a process's resident set size in KiB from
// /proc/PID/status.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// ReadTreeRSS returns the summed resident set size in KiB of a process and
// all its descendants: a server that forks per connection (Dovecot's imap)
// spends its per-connection memory in children.
func ReadTreeRSS(pid int) (int64, error) {
	total, err := ReadRSS(pid)
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the
		// parent pid is the second field after the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	todo := children[pid]
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if kb, err := ReadRSS(p); err == nil {
			total += kb
		}
		todo = append(todo, children[p]...)
	}
	return total, nil
}

// ExpandUsers makes the user list from a pattern with one %d, numbered
// from 1.
func ExpandUsers(pattern string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(pattern, i+1)
	}
	return out
}

// over reports whether the run is over: its context is done or its
// deadline has passed. The clock is checked too because a dial past the
// deadline fails at once with a timeout, possibly before the context's
// timer has fired on a loaded machine; a loop checking only ctx.Err()
// would spin and count those as server errors.
func over(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

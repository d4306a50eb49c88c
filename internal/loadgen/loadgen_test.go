package loadgen

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

const pass = "load-test-password"

func startUsers(t *testing.T, n int) (*testenv.Env, []string) {
	t.Helper()
	env := testenv.Start(t)
	users := ExpandUsers("load%d@"+testenv.Domain, n)
	for _, u := range users {
		env.AddUser(t, u, pass)
	}
	return env, users
}

func mustRun(t *testing.T, profile string, cfg Config) *Result {
	t.Helper()
	r, err := Run(context.Background(), profile, cfg)
	if err != nil {
		t.Fatalf("%s: %v", profile, err)
	}
	t.Log(r.Summary())
	return r
}

// TestProfiles runs every profile briefly against a real jodmai and checks
// that the counts add up across protocols.
func TestProfiles(t *testing.T) {
	env, users := startUsers(t, 3)
	const count = 60
	r := mustRun(t, "smtp", Config{Addr: env.Addr("smtp"), Users: users, Pass: pass, Conns: 4, Count: count, Size: 2000, Duration: time.Minute, VerifyPOP3: env.Addr("pop3")})
	if !r.OK() || r.Messages != count {
		t.Fatalf("smtp: %d messages, %d errors (%s), verified %v %s", r.Messages, r.Errors, r.FirstError, r.Verified, r.VerifyDetail)
	}
	if r.P50Ms <= 0 || r.P99Ms < r.P50Ms {
		t.Errorf("smtp latency p50 %v p99 %v", r.P50Ms, r.P99Ms)
	}
	// MAIL, RCPT, DATA per message plus EHLO and QUIT per connection.
	if r.Ops != 3*count+2*4 {
		t.Errorf("smtp ops %d, want %d", r.Ops, 3*count+2*4)
	}
	for _, u := range users {
		if got := len(env.Inbox(t, u)); got != count/len(users) {
			t.Errorf("%s has %d messages, want %d", u, got, count/len(users))
		}
	}

	p := mustRun(t, "pop3", Config{Addr: env.Addr("pop3"), Users: users, Pass: pass, Conns: 3, Count: 6, Duration: time.Minute})
	if !p.OK() || p.Sessions != 6 || p.Messages != 2*count {
		t.Fatalf("pop3: %d sessions, %d msgs, %d errors (%s)", p.Sessions, p.Messages, p.Errors, p.FirstError)
	}

	i := mustRun(t, "imap", Config{Addr: env.Addr("imap"), Users: users, Pass: pass, Conns: 3, Count: 6, Sample: 5, Duration: time.Minute})
	// LOGIN SELECT FETCH 5×UID FETCH 2×UID STORE LOGOUT.
	if !i.OK() || i.Sessions != 6 || i.Messages != 6*5 || i.Ops != 6*(4+5+2) {
		t.Fatalf("imap: %d sessions, %d bodies, %d ops, %d errors (%s)", i.Sessions, i.Messages, i.Ops, i.Errors, i.FirstError)
	}
	for _, u := range users {
		for _, m := range env.Inbox(t, u) {
			if m.Flags&store.FlagFlagged != 0 {
				t.Errorf("%s uid %d flags %v after +FLAGS/-FLAGS", u, m.UID, m.Flags)
			}
		}
	}

	// Rounds repeat the sample and the flag changes in one session.
	i = mustRun(t, "imap", Config{Addr: env.Addr("imap"), Users: users, Pass: pass, Conns: 2, Count: 2, Sample: 4, Rounds: 3, Duration: time.Minute})
	if !i.OK() || i.Sessions != 2 || i.Messages != 2*3*4 || i.Ops != 2*(4+3*(4+2)) {
		t.Fatalf("imap --rounds 3: %d sessions, %d bodies, %d ops, %d errors (%s)", i.Sessions, i.Messages, i.Ops, i.Errors, i.FirstError)
	}

	d := mustRun(t, "pop3", Config{Addr: env.Addr("pop3"), Users: users, Pass: pass, Conns: 3, Count: 3, Dele: true})
	if !d.OK() || d.Messages != count {
		t.Fatalf("pop3 --dele: %d msgs, %d errors (%s)", d.Messages, d.Errors, d.FirstError)
	}
	for _, u := range users {
		if got := len(env.Inbox(t, u)); got != 0 {
			t.Errorf("%s has %d messages after pop3 --dele", u, got)
		}
	}
}

func TestSMTPAuthSubmission(t *testing.T) {
	env, users := startUsers(t, 2)
	r := mustRun(t, "smtp", Config{Addr: env.Addr("submission"), Users: users, Pass: pass, Conns: 2, Count: 10, AuthUser: users[0], AuthPass: pass, VerifyPOP3: env.Addr("pop3")})
	if !r.OK() || r.Messages != 10 {
		t.Fatalf("submission: %s", r.Summary())
	}
	bad := mustRun(t, "smtp", Config{Addr: env.Addr("submission"), Users: users, Pass: pass, Count: 10, AuthUser: users[0], AuthPass: "wrong", Conns: 1})
	if bad.Errors == 0 || bad.Messages != 0 {
		t.Fatalf("wrong AUTH password: %s", bad.Summary())
	}
}

// TestErrorsCounted checks that what the server refuses is counted, not
// measured: unknown recipients, wrong passwords, and a verification that
// cannot match.
func TestErrorsCounted(t *testing.T) {
	env, users := startUsers(t, 1)
	mixed := append([]string{"nobody@" + testenv.Domain}, users...)
	r := mustRun(t, "smtp", Config{Addr: env.Addr("smtp"), Users: mixed, Pass: pass, Conns: 2, Count: 20})
	if r.Errors != 10 || r.Messages != 10 || r.OK() {
		t.Fatalf("smtp with an unknown recipient: %s", r.Summary())
	}
	if !strings.Contains(r.FirstError, "RCPT") {
		t.Errorf("first error %q, want the RCPT refusal", r.FirstError)
	}
	if got := len(env.Inbox(t, users[0])); got != 10 {
		t.Errorf("inbox has %d, want 10", got)
	}

	// One connection: concurrent failed logins trip a data race in
	// internal/auth (Authenticator.fail reads the counters after
	// unlocking), reported to its owner.
	p := mustRun(t, "pop3", Config{Addr: env.Addr("pop3"), Users: users, Pass: "wrong", Conns: 1, Count: 4})
	if p.Errors != 4 || p.Sessions != 0 {
		t.Fatalf("pop3 wrong password: %s", p.Summary())
	}
	i := mustRun(t, "imap", Config{Addr: env.Addr("imap"), Users: users, Pass: "wrong", Conns: 1, Count: 4})
	if i.Errors != 4 || i.Sessions != 0 {
		t.Fatalf("imap wrong password: %s", i.Summary())
	}

	// The verification catches mail that is not where the counts say:
	// here POP3 STAT is read from another server with the same users, as
	// if the first had lost what it acknowledged.
	other := testenv.Start(t)
	other.AddUser(t, users[0], pass)
	v := mustRun(t, "smtp", Config{Addr: env.Addr("smtp"), Users: users, Pass: pass, Count: 3, VerifyPOP3: other.Addr("pop3")})
	if v.Messages != 3 || v.Verified == nil || *v.Verified || v.OK() {
		t.Fatalf("verify against the wrong server: %s", v.Summary())
	}
	if _, err := Run(context.Background(), "smtp", Config{Addr: env.Addr("smtp"), Users: users, Pass: "wrong", Count: 1, VerifyPOP3: env.Addr("pop3")}); err == nil {
		t.Fatalf("verify with a wrong password: no error")
	}

	env.Stop()
	s := mustRun(t, "smtp", Config{Addr: env.Addr("smtp"), Users: users, Conns: 2, Count: 5, Duration: 2 * time.Second})
	if s.Errors == 0 || s.Messages != 0 {
		t.Fatalf("smtp to a stopped server: %s", s.Summary())
	}
}

func TestIdle(t *testing.T) {
	env, users := startUsers(t, 2)
	// The server runs in this process, so its RSS is ours.
	r := mustRun(t, "idle", Config{Addr: env.Addr("imap"), Users: users, Pass: pass, Conns: 20, Duration: 300 * time.Millisecond, Settle: 100 * time.Millisecond, PID: os.Getpid()})
	if !r.OK() || r.Sessions != 20 || r.Ops != 20*5 {
		t.Fatalf("idle: %s (ops %d)", r.Summary(), r.Ops)
	}
	if r.RSSBeforeKB <= 0 || r.RSSMidKB <= 0 || r.RSSAfterKB <= 0 {
		t.Errorf("rss %d -> %d -> %d", r.RSSBeforeKB, r.RSSMidKB, r.RSSAfterKB)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.1:25", "127.3.4.5:25", "[::1]:143", "localhost:110"} {
		if _, err := loopback(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:25", "192.0.2.1:25", "[2001:db8::1]:25", "0.0.0.0:25", "[::]:25", "example.invalid:25", "noport"} {
		if _, err := loopback(a); err == nil {
			t.Errorf("%s: accepted", a)
		}
	}
	_, err := Run(context.Background(), "smtp", Config{Addr: "192.0.2.1:25", Users: []string{"a@b"}})
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Run to 192.0.2.1: %v", err)
	}
	_, err = Run(context.Background(), "smtp", Config{Addr: "127.0.0.1:25", Users: []string{"a@b"}, VerifyPOP3: "192.0.2.1:110"})
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("verify at 192.0.2.1: %v", err)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.13 || d > 0.13 {
			t.Errorf("q%.2f = %v, want ~%v", c.q, got, c.want)
		}
	}
	for i := range 495 {
		if lowerOf(i) > lowerOf(i+1) || bucketOf(lowerOf(i)) != i {
			t.Fatalf("bucket %d: lower %d maps to %d", i, lowerOf(i), bucketOf(lowerOf(i)))
		}
	}
}

func TestMessage(t *testing.T) {
	wire, size := Message("a@b", "c@d", 1, 4096)
	if size != 4096 {
		t.Errorf("size %d", size)
	}
	if !strings.HasSuffix(string(wire), "\r\n.\r\n") || !strings.Contains(string(wire), "\r\n..this line") {
		t.Errorf("not dot-stuffed: %q", wire[len(wire)-40:])
	}
	if len(wire) != size+1+3 {
		t.Errorf("wire %d bytes, want size + 1 stuffed dot + terminator", len(wire))
	}
}

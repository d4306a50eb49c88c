package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/wait"
	"github.com/jodmai/jodmai/internal/userdb"
)

var ctx = context.Background()

const (
	alice   = "alice@example.org"
	testMsg = "From: Alice <alice@example.org>\r\nTo: Bob <bob@remote.test>\r\nSubject: queue test\r\n\r\nHello Bob,\r\nthe body line.\r\n"
)

// sent is what the fake remote received in one Deliver call.
type sent struct {
	from, domain string
	rcpts        []remote.Recipient
	header, body []byte
	msg          remote.Message
}

// fakeRemote records attempts and answers them with fn.
type fakeRemote struct {
	mu    sync.Mutex
	calls []sent
	fn    func(m *remote.Message) []remote.Result
}

func (f *fakeRemote) Deliver(ctx context.Context, m *remote.Message) []remote.Result {
	body, err := io.ReadAll(io.NewSectionReader(m.Body, 0, m.Size))
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	f.calls = append(f.calls, sent{from: m.From, domain: m.Domain, rcpts: append([]remote.Recipient(nil), m.Recipients...), header: m.Header, body: body, msg: *m})
	fn := f.fn
	f.mu.Unlock()
	return fn(m)
}

func (f *fakeRemote) set(fn func(m *remote.Message) []remote.Result) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *fakeRemote) sent() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.calls...)
}

// answer makes every recipient get r.
func answer(r remote.Result) func(m *remote.Message) []remote.Result {
	return func(m *remote.Message) []remote.Result {
		out := make([]remote.Result, len(m.Recipients))
		for i, rc := range m.Recipients {
			out[i] = r
			out[i].Addr = rc.Addr
		}
		return out
	}
}

var (
	ok      = remote.Result{Delivered: true, Code: 250, Enhanced: "2.0.0", Text: "ok", Host: "mx.remote.test"}
	temp    = remote.Result{Code: 451, Enhanced: "4.3.0", Text: "try later", Host: "mx.remote.test"}
	noUser  = remote.Result{Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "no such user", Host: "mx.remote.test"}
	connErr = remote.Result{Code: 0, Text: "connect: connection refused"}
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fakeSigner struct{}

func (fakeSigner) Sign(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, "DKIM-Signature: v=1; test=%d\r\n", len(b)), nil
}

type fixture struct {
	t     *testing.T
	dir   string
	q     *Queue
	rem   *fakeRemote
	clk   *clock
	opts  Options
	users *userdb.DB
	st    *store.Store
}

func testPolicy() config.Queue {
	return config.Queue{MaxAge: 120 * time.Hour, DelayWarning: 4 * time.Hour, RetryMin: time.Minute, RetryMax: 4 * time.Hour, MaxConcurrency: 8, MaxPerDomain: 2}
}

func setup(t *testing.T, edit func(*Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	users, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := users.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.AddAccount(ctx, alice, "alice-password-1"); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: dir, rem: &fakeRemote{fn: answer(ok)}, clk: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, users: users, st: st}
	f.opts = Options{
		Policy: testPolicy(), Hostname: "mail.example.org", Remote: f.rem,
		Local: &deliver.Deliverer{Users: users, Store: st}, Signer: fakeSigner{},
		Now: f.clk.now, Jitter: func() float64 { return 0 },
	}
	if edit != nil {
		edit(&f.opts)
	}
	f.open()
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	q, err := Open(filepath.Join(f.dir, "queue"), f.opts)
	if err != nil {
		f.t.Fatal(err)
	}
	f.q = q
	f.t.Cleanup(func() { q.Close() })
}

// body writes a smtpd-like body (Return-Path first) and returns it.
func (f *fixture) body(from, msg string) *blob.Temp {
	f.t.Helper()
	w, err := blob.Create(f.t.TempDir())
	if err != nil {
		f.t.Fatal(err)
	}
	// Same file system as the queue, for the hard link.
	w.Abort()
	w, err = f.st.NewBody()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := io.WriteString(w, "Return-Path: <"+from+">\r\n"+msg); err != nil {
		f.t.Fatal(err)
	}
	tmp, err := w.Finish()
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tmp.Remove() })
	return tmp
}

func (f *fixture) add(env Envelope) string {
	f.t.Helper()
	id, err := f.q.Add(ctx, f.body(env.From, testMsg), env)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func rcpts(addrs ...string) []remote.Recipient {
	var out []remote.Recipient
	for _, a := range addrs {
		out = append(out, remote.Recipient{Addr: a})
	}
	return out
}

// runDue runs one scheduling pass and waits for its attempts.
func (f *fixture) runDue() {
	f.t.Helper()
	if err := f.q.startDue(ctx); err != nil {
		f.t.Fatal(err)
	}
	f.q.jobs.Wait()
}

func (f *fixture) list() []MessageInfo {
	f.t.Helper()
	ms, err := f.q.List(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return ms
}

func (f *fixture) inbox(addr string) [][]byte {
	f.t.Helper()
	acc, err := f.users.Account(ctx, addr)
	if err != nil {
		f.t.Fatal(err)
	}
	a, err := f.st.Account(ctx, acc.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		f.t.Fatal(err)
	}
	msgs, err := a.Messages(ctx, mb.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		r, err := a.OpenBody(m)
		if err != nil {
			f.t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out = append(out, b)
	}
	return out
}

func TestDeliverSuccess(t *testing.T) {
	f := setup(t, nil)
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test", "carol@Remote.Test", "dan@other.test"), Sign: true, Account: alice, EnvID: "env-1", RequireTLS: true})
	f.runDue()
	calls := f.rem.sent()
	if len(calls) != 2 {
		t.Fatalf("%d attempts, want 2 (one per domain)", len(calls))
	}
	byDomain := map[string]sent{}
	for _, c := range calls {
		byDomain[c.domain] = c
	}
	r := byDomain["remote.test"]
	if len(r.rcpts) != 2 || r.rcpts[0].Addr != "bob@remote.test" || r.rcpts[1].Addr != "carol@Remote.Test" {
		t.Errorf("remote.test recipients %+v", r.rcpts)
	}
	if len(byDomain["other.test"].rcpts) != 1 {
		t.Errorf("other.test recipients %+v", byDomain["other.test"].rcpts)
	}
	for _, c := range calls {
		if string(c.body) != testMsg {
			t.Errorf("body sent %q, want the message without Return-Path", c.body)
		}
		if want := fmt.Sprintf("DKIM-Signature: v=1; test=%d\r\n", len(testMsg)); string(c.header) != want {
			t.Errorf("header %q, want %q", c.header, want)
		}
		if c.from != alice || c.msg.EnvID != "env-1" || !c.msg.RequireTLS || c.msg.Has8bit {
			t.Errorf("envelope %+v", c.msg)
		}
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty after delivery: %+v", ms)
	}
	if _, err := os.Stat(f.q.bodies.Path(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("body still there: %v", err)
	}
	f.clk.advance(24 * time.Hour)
	f.runDue()
	if n := len(f.rem.sent()); n != 2 {
		t.Errorf("%d attempts after completion, want 2", n)
	}
	if n := len(f.inbox(alice)); n != 0 {
		t.Errorf("alice got %d notices without asking", n)
	}
}

func TestBackoffThenSuccess(t *testing.T) {
	f := setup(t, func(o *Options) { o.Policy.RetryMax = 4 * time.Minute })
	f.rem.set(answer(temp))
	start := f.clk.now()
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	f.runDue()
	// Waits: 1m, 2m, 4m, 4m (capped).
	var elapsed time.Duration
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} {
		m, err := f.q.Show(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		r := m.Recipients[0]
		if r.State != Pending || r.Attempts != i+1 || r.Code != 451 || r.Text != "try later" {
			t.Fatalf("after attempt %d: %+v", i+1, r)
		}
		if want := start.Add(elapsed + wait); !r.NextAttempt.Equal(want) {
			t.Fatalf("after attempt %d: next attempt %v, want %v", i+1, r.NextAttempt, want)
		}
		f.clk.advance(wait - time.Second)
		f.runDue()
		if n := len(f.rem.sent()); n != i+1 {
			t.Fatalf("attempt before its time: %d attempts", n)
		}
		f.clk.advance(time.Second)
		elapsed += wait
		if i == 3 {
			f.rem.set(answer(ok))
		}
		f.runDue()
		if n := len(f.rem.sent()); n != i+2 {
			t.Fatalf("no attempt when due: %d attempts", n)
		}
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty: %+v", ms)
	}
}

func TestBackoffJitter(t *testing.T) {
	f := setup(t, func(o *Options) { o.Jitter = func() float64 { return 0.999 } })
	for n, base := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 9: 4 * time.Hour, 60: 4 * time.Hour} {
		d := f.q.backoff(n)
		if d < base || d > base+base/10 {
			t.Errorf("backoff(%d) = %v, want within 10%% above %v", n, d, base)
		}
	}
}

// dsnPart is one parsed part of a DSN.
type dsnPart struct {
	contentType string
	body        []byte
}

// parseDSN checks the DSN's outer header and returns its three parts and
// the per-recipient field groups of the delivery-status part.
func parseDSN(t *testing.T, raw []byte) (*mail.Message, []dsnPart, []textproto.MIMEHeader) {
	t.Helper()
	if !bytes.HasPrefix(raw, []byte("Return-Path: <>\r\n")) {
		t.Errorf("DSN does not start with a null Return-Path: %.60q", raw)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if from := m.Header.Get("From"); from != "Mail Delivery System <MAILER-DAEMON@mail.example.org>" {
		t.Errorf("From %q", from)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q (%v)", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var parts []dsnPart
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, dsnPart{p.Header.Get("Content-Type"), b})
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	if !strings.HasPrefix(parts[0].contentType, "text/plain") || parts[1].contentType != "message/delivery-status" {
		t.Errorf("part types %q, %q", parts[0].contentType, parts[1].contentType)
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(parts[1].body)))
	var groups []textproto.MIMEHeader
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			groups = append(groups, h)
		}
		if err != nil {
			break
		}
	}
	if len(groups) < 2 || groups[0].Get("Reporting-MTA") != "dns; mail.example.org" {
		t.Fatalf("delivery-status groups %v", groups)
	}
	return m, parts, groups
}

func TestPermanentFailureDSN(t *testing.T) {
	for _, ret := range []string{"", "FULL"} {
		t.Run("ret="+ret, func(t *testing.T) {
			f := setup(t, nil)
			f.rem.set(func(m *remote.Message) []remote.Result {
				// bob fails, carol is delivered: one DSN about bob only.
				return []remote.Result{withAddr(noUser, "bob@remote.test"), withAddr(ok, "carol@remote.test")}
			})
			f.add(Envelope{From: alice, Ret: ret, EnvID: "abc123", Recipients: []remote.Recipient{
				{Addr: "bob@remote.test", ORcpt: "rfc822;Bob+2Bx@remote.test"}, {Addr: "carol@remote.test"}}})
			f.runDue()
			inbox := f.inbox(alice)
			if len(inbox) != 1 {
				t.Fatalf("alice has %d messages, want the DSN", len(inbox))
			}
			m, parts, groups := parseDSN(t, inbox[0])
			if s := m.Header.Get("Subject"); s != "Undelivered Mail Returned to Sender" {
				t.Errorf("Subject %q", s)
			}
			if groups[0].Get("Original-Envelope-Id") != "abc123" || groups[0].Get("Arrival-Date") == "" {
				t.Errorf("per-message fields %v", groups[0])
			}
			if len(groups) != 2 {
				t.Fatalf("%d recipient groups, want 1", len(groups)-1)
			}
			g := groups[1]
			for k, want := range map[string]string{
				"Final-Recipient":    "rfc822; bob@remote.test",
				"Original-Recipient": "rfc822; Bob+x@remote.test",
				"Action":             "failed",
				"Status":             "5.1.1",
				"Remote-MTA":         "dns; mx.remote.test",
				"Diagnostic-Code":    "smtp; 550 5.1.1 no such user",
			} {
				if got := g.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if _, err := mail.ParseDate(g.Get("Last-Attempt-Date")); err != nil {
				t.Errorf("Last-Attempt-Date %q: %v", g.Get("Last-Attempt-Date"), err)
			}
			orig := string(parts[2].body)
			if ret == "FULL" {
				if parts[2].contentType != "message/rfc822" || orig != testMsg {
					t.Errorf("returned %q %q, want the whole message", parts[2].contentType, orig)
				}
			} else {
				if parts[2].contentType != "text/rfc822-headers" || !strings.Contains(orig, "Subject: queue test") || strings.Contains(orig, "the body line") {
					t.Errorf("returned %q %q, want the header only", parts[2].contentType, orig)
				}
			}
			if !strings.Contains(string(parts[0].body), "no such user") {
				t.Errorf("text part does not say why: %q", parts[0].body)
			}
			if ms := f.list(); len(ms) != 0 {
				t.Errorf("queue not empty: %+v", ms)
			}
		})
	}
}

func withAddr(r remote.Result, addr string) remote.Result {
	r.Addr = addr
	return r
}

func TestExpiryDSN(t *testing.T) {
	f := setup(t, func(o *Options) {
		o.Policy.MaxAge = time.Hour
		o.Policy.DelayWarning = 0
		o.Policy.RetryMax = 20 * time.Minute
	})
	f.rem.set(answer(connErr))
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	for i := 0; i < 20; i++ {
		f.runDue()
		f.clk.advance(10 * time.Minute)
	}
	if ms := f.list(); len(ms) != 0 {
		t.Fatalf("message %s still queued after MaxAge: %+v", id, ms)
	}
	attempts := len(f.rem.sent())
	if attempts < 3 || attempts > 8 {
		t.Errorf("%d attempts in an hour with 1m..20m backoff", attempts)
	}
	inbox := f.inbox(alice)
	if len(inbox) != 1 {
		t.Fatalf("alice has %d messages, want the expiry DSN", len(inbox))
	}
	_, _, groups := parseDSN(t, inbox[0])
	if g := groups[1]; g.Get("Action") != "failed" || g.Get("Status") != "4.4.7" || g.Get("Remote-MTA") != "" || !strings.Contains(g.Get("Diagnostic-Code"), "connection refused") {
		t.Errorf("recipient fields %v", g)
	}
}

func TestDelayWarning(t *testing.T) {
	for _, tc := range []struct {
		notify string
		want   int
	}{{"", 1}, {"DELAY", 1}, {"FAILURE,DELAY", 1}, {"FAILURE", 0}, {"NEVER", 0}} {
		t.Run("notify="+tc.notify, func(t *testing.T) {
			f := setup(t, func(o *Options) {
				o.Policy.DelayWarning = 30 * time.Minute
				o.Policy.RetryMax = 10 * time.Minute
			})
			f.rem.set(answer(temp))
			f.add(Envelope{From: alice, Recipients: []remote.Recipient{{Addr: "bob@remote.test", Notify: tc.notify}}})
			for i := 0; i < 12; i++ { // two hours
				f.runDue()
				f.clk.advance(10 * time.Minute)
			}
			inbox := f.inbox(alice)
			if len(inbox) != tc.want {
				t.Fatalf("alice has %d notices, want %d", len(inbox), tc.want)
			}
			if tc.want == 0 {
				return
			}
			m, _, groups := parseDSN(t, inbox[0])
			if g := groups[1]; g.Get("Action") != "delayed" || g.Get("Status") != "4.3.0" || g.Get("Will-Retry-Until") == "" {
				t.Errorf("recipient fields %v", g)
			}
			if !strings.HasPrefix(m.Header.Get("Subject"), "Delayed Mail") {
				t.Errorf("Subject %q", m.Header.Get("Subject"))
			}
			if ms := f.list(); len(ms) != 1 || ms[0].Recipients[0].State != Pending {
				t.Errorf("message not still pending after the warning: %+v", ms)
			}
		})
	}
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name    string
		from    string
		notify  string
		result  remote.Result
		action  string // "" for no DSN
		subject string
	}{
		{"never-failure", alice, "NEVER", noUser, "", ""},
		{"success-only-failure", alice, "SUCCESS", noUser, "", ""},
		{"success", alice, "SUCCESS,FAILURE", ok, "relayed", "Successful Mail Delivery Report"},
		{"default-success", alice, "", ok, "", ""},
		{"null-sender-failure", "", "", noUser, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			f.rem.set(answer(tc.result))
			f.add(Envelope{From: tc.from, Recipients: []remote.Recipient{{Addr: "bob@remote.test", Notify: tc.notify}}})
			f.runDue()
			inbox := f.inbox(alice)
			if ms := f.list(); len(ms) != 0 {
				t.Errorf("queue not empty: %+v", ms)
			}
			if tc.action == "" {
				if len(inbox) != 0 {
					t.Errorf("got %d DSNs, want none", len(inbox))
				}
				return
			}
			if len(inbox) != 1 {
				t.Fatalf("got %d DSNs, want 1", len(inbox))
			}
			m, _, groups := parseDSN(t, inbox[0])
			if groups[1].Get("Action") != tc.action || m.Header.Get("Subject") != tc.subject {
				t.Errorf("Action %q Subject %q", groups[1].Get("Action"), m.Header.Get("Subject"))
			}
		})
	}
}

func TestRemoteSenderBounce(t *testing.T) {
	f := setup(t, nil)
	f.rem.set(answer(noUser))
	f.add(Envelope{From: "x@elsewhere.test", Recipients: rcpts("bob@remote.test")})
	f.runDue()
	ms := f.list()
	if len(ms) != 1 || ms[0].From != "" || len(ms[0].Recipients) != 1 || ms[0].Recipients[0].Addr != "x@elsewhere.test" {
		t.Fatalf("want one queued bounce to x@elsewhere.test, have %+v", ms)
	}
	// The bounce bounces: nothing more, ever (no DSN about a DSN).
	f.runDue()
	calls := f.rem.sent()
	if len(calls) != 2 || calls[1].from != "" || calls[1].domain != "elsewhere.test" {
		t.Fatalf("attempts %+v", calls)
	}
	if _, _, g := parseDSN(t, append([]byte("Return-Path: <>\r\n"), calls[1].body...)); g[1].Get("Final-Recipient") != "rfc822; bob@remote.test" {
		t.Errorf("bounce content %v", g)
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty after the bounce bounced: %+v", ms)
	}
}

func TestOperatorCommands(t *testing.T) {
	f := setup(t, nil)
	f.rem.set(answer(temp))
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})

	if err := f.q.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 0 {
		t.Fatalf("held message attempted (%d)", n)
	}
	if err := f.q.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 1 {
		t.Fatalf("released message: %d attempts, want 1", n)
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 1 {
		t.Fatalf("retried before its time: %d", n)
	}
	if err := f.q.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 2 {
		t.Fatalf("after Retry: %d attempts, want 2", n)
	}
	id2 := f.add(Envelope{From: alice, Recipients: rcpts("carol@other.test")})
	f.runDue()
	if n, err := f.q.Flush(ctx); err != nil || n != 2 {
		t.Fatalf("Flush = %d, %v; want 2", n, err)
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 5 {
		t.Fatalf("after Flush: %d attempts, want 5", n)
	}
	m, err := f.q.Show(ctx, id)
	if err != nil || m.Recipients[0].Attempts != 3 || m.From != alice {
		t.Fatalf("Show: %+v, %v", m, err)
	}
	if err := f.q.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.q.bodies.Path(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted message's body still there: %v", err)
	}
	for _, op := range []func(context.Context, string) error{f.q.Delete, f.q.Hold, f.q.Release, f.q.Retry} {
		if err := op(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("op on deleted message: %v, want ErrNotFound", err)
		}
	}
	if _, err := f.q.Show(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show deleted: %v", err)
	}
	if ms := f.list(); len(ms) != 1 || ms[0].ID != id2 {
		t.Errorf("List after delete: %+v", ms)
	}
	if n := len(f.inbox(alice)); n != 0 {
		t.Errorf("a deleted message made %d DSNs", n)
	}
}

// TestReopenResumes: for a body in a file and one in the row.
func TestReopenResumes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inlineMax int64
	}{{"file", 0}, {"inline", inlineMax}} {
		t.Run(tc.name, func(t *testing.T) { testReopenResumes(t, tc.inlineMax) })
	}
}

func testReopenResumes(t *testing.T, inlineMax int64) {
	f := setup(t, nil)
	f.q.inlineMax = inlineMax
	f.rem.set(func(m *remote.Message) []remote.Result {
		if m.Domain == "a.test" {
			return answer(ok)(m)
		}
		return answer(temp)(m)
	})
	id := f.add(Envelope{From: alice, Recipients: rcpts("x@a.test", "y@b.test", "z@a.test")})
	f.runDue()
	// An orphan body (a crash between link and commit) goes at Sweep.
	orphan := blob.NewID()
	if err := f.q.bodies.Link(f.body(alice, "orphan"), orphan); err != nil {
		t.Fatal(err)
	}
	f.q.Close()

	rem2 := &fakeRemote{fn: answer(ok)}
	f.opts.Remote = rem2
	f.open()
	if err := f.q.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.q.bodies.Path(orphan)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan body survived Sweep")
	}
	if _, err := os.Stat(f.q.bodies.Path(id)); (err != nil) != (inlineMax > 0) {
		t.Errorf("queued body file after Sweep: %v (inline max %d)", err, inlineMax)
	}
	f.clk.advance(time.Hour)
	f.runDue()
	calls := rem2.sent()
	if len(calls) != 1 || calls[0].domain != "b.test" || len(calls[0].rcpts) != 1 || calls[0].rcpts[0].Addr != "y@b.test" {
		t.Fatalf("after reopen: attempts %+v, want only y@b.test", calls)
	}
	if string(calls[0].body) != testMsg {
		t.Errorf("body after reopen %q", calls[0].body)
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty: %+v", ms)
	}
}

// TestRunConcurrency runs the real scheduler: Add wakes it, and the
// global and per-domain caps hold.
func TestRunConcurrency(t *testing.T) {
	f := setup(t, func(o *Options) {
		o.Now = nil
		o.Policy.MaxConcurrency = 3
		o.Policy.MaxPerDomain = 2
	})
	gate := make(chan struct{})
	var mu sync.Mutex
	cur, maxCur := 0, 0
	curDom, maxDom := map[string]int{}, map[string]int{}
	f.rem.set(func(m *remote.Message) []remote.Result {
		mu.Lock()
		cur++
		curDom[m.Domain]++
		maxCur = max(maxCur, cur)
		maxDom[m.Domain] = max(maxDom[m.Domain], curDom[m.Domain])
		mu.Unlock()
		<-gate
		mu.Lock()
		cur--
		curDom[m.Domain]--
		mu.Unlock()
		return answer(ok)(m)
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.q.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for i := 0; i < 4; i++ {
		f.add(Envelope{From: alice, Recipients: rcpts(fmt.Sprintf("u%d@a.test", i))})
		f.add(Envelope{From: alice, Recipients: rcpts(fmt.Sprintf("u%d@b.test", i))})
	}
	wait.For(t, 10*time.Second, "three attempts in progress", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return cur == 3
	})
	time.Sleep(50 * time.Millisecond) // room for a cap violation to show
	close(gate)
	wait.For(t, 10*time.Second, "queue empty", func() bool { return len(f.list()) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if maxCur != 3 || maxDom["a.test"] > 2 || maxDom["b.test"] > 2 {
		t.Errorf("concurrency: max %d global (cap 3), per domain %v (cap 2)", maxCur, maxDom)
	}
	if n := len(f.rem.sent()); n != 8 {
		t.Errorf("%d attempts, want 8", n)
	}
}

func TestReturnPathLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"Return-Path: <a@b>\r\nFrom: x\r\n", 20},
		{"return-path: <>\r\n\r\nbody", 17},
		{"Return-Path: <a@b>\r\n\tfolded\r\nX: y\r\n", 29},
		{"From: x\r\nReturn-Path: <a@b>\r\n", 0},
		{"Return-Path: <a@b>", 0},
		{"", 0},
	} {
		if got := returnPathLen([]byte(tc.in)); got != tc.want {
			t.Errorf("returnPathLen(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestAddRefuses(t *testing.T) {
	f := setup(t, nil)
	for _, env := range []Envelope{
		{From: alice},
		{From: alice, Recipients: rcpts("nodomain")},
		{From: alice, Recipients: rcpts("a@b.test"), ID: "not-an-id"},
	} {
		if _, err := f.q.Add(ctx, f.body(alice, testMsg), env); err == nil {
			t.Errorf("Add(%+v) succeeded", env)
		}
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("refused Add left %+v", ms)
	}
}

// errSigner fails every signature with err.
type errSigner struct{ err error }

func (s errSigner) Sign(io.Reader) ([]byte, error) { return nil, s.err }

// TestAddNotSignable: a message the signer cannot sign because of what it
// is (remote.ErrNotSignable: no From field, a malformed header) is queued
// and sent unsigned, never refused; a local signing failure still fails
// Add, so the client retries.
func TestAddNotSignable(t *testing.T) {
	notSignable := fmt.Errorf("%w: dkim: message has no From header", remote.ErrNotSignable)
	f := setup(t, func(o *Options) { o.Signer = errSigner{notSignable} })
	f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test"), Sign: true, Account: alice})
	if ms := f.list(); len(ms) != 1 || ms[0].Signed {
		t.Fatalf("queued %+v, want one unsigned message", ms)
	}
	f.runDue()
	calls := f.rem.sent()
	if len(calls) != 1 || calls[0].header != nil || string(calls[0].body) != testMsg {
		t.Fatalf("sent %+v, want the message, unsigned", calls)
	}

	g := setup(t, func(o *Options) { o.Signer = errSigner{errors.New("dkim: spool message: no space left on device")} })
	if _, err := g.q.Add(ctx, g.body(alice, testMsg), Envelope{From: alice, Recipients: rcpts("bob@remote.test"), Sign: true}); err == nil {
		t.Fatal("Add succeeded after a local signing failure")
	}
	if ms := g.list(); len(ms) != 0 {
		t.Errorf("failed Add left %+v", ms)
	}
}

// brokenLocal fails every local delivery.
type brokenLocal struct{ Local }

func (brokenLocal) Deliver(context.Context, *blob.Temp, []store.Target) error {
	return errors.New("store unavailable")
}

// TestOwedNoticeSurvives: a DSN that cannot be filed stays owed (the
// message stays queued) and goes out on the next sweep, once.
func TestOwedNoticeSurvives(t *testing.T) {
	f := setup(t, nil)
	real := f.q.opts.Local
	f.q.opts.Local = brokenLocal{real}
	f.rem.set(answer(noUser))
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	f.runDue()
	m, err := f.q.Show(ctx, id)
	if err != nil || m.Recipients[0].State != Failed || m.Recipients[0].Notice != "failed" {
		t.Fatalf("after a failed DSN: %+v, %v", m, err)
	}
	if n := len(f.inbox(alice)); n != 0 {
		t.Fatalf("alice has %d messages", n)
	}
	f.q.opts.Local = real
	f.q.sendOwedNotices(ctx)
	f.q.sendOwedNotices(ctx)
	if n := len(f.inbox(alice)); n != 1 {
		t.Fatalf("alice has %d DSNs, want 1", n)
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty: %+v", ms)
	}
	if n := len(f.rem.sent()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestMissingBodyBacksOff(t *testing.T) {
	f := setup(t, nil)
	f.q.inlineMax = 0
	id := f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	if err := os.Remove(f.q.bodies.Path(id)); err != nil {
		t.Fatal(err)
	}
	f.runDue()
	f.runDue()
	m, err := f.q.Show(ctx, id)
	if err != nil || m.Recipients[0].Attempts != 1 || m.Recipients[0].State != Pending || m.Recipients[0].Code != 451 {
		t.Fatalf("after a lost body: %+v, %v", m, err)
	}
	if n := len(f.rem.sent()); n != 0 {
		t.Errorf("%d attempts reached the remote", n)
	}
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		n    noticeRow
		want string
	}{
		{noticeRow{notice: "failed", code: 550, enhanced: "5.1.1"}, "5.1.1"},
		{noticeRow{notice: "failed", code: 556, enhanced: "5.1.10"}, "5.1.10"},
		{noticeRow{notice: "failed", code: 554}, "5.0.0"},
		{noticeRow{notice: "failed", code: 0, text: "null MX"}, "5.0.0"},
		{noticeRow{notice: "failed", code: 451, enhanced: "4.3.0", expired: true}, "4.4.7"},
		{noticeRow{notice: "failed", code: 550, enhanced: "bogus"}, "5.0.0"},
		{noticeRow{notice: "delayed", code: 421, enhanced: "4.7.0"}, "4.7.0"},
		{noticeRow{notice: "delayed", code: 0}, "4.0.0"},
		{noticeRow{notice: "relayed", code: 250}, "2.0.0"},
	} {
		if got := statusOf(tc.n); got != tc.want {
			t.Errorf("statusOf(%+v) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// TestCappedDomainDoesNotStarveOthers: a backlog for a domain at its cap
// does not hide other domains' due mail.
func TestCappedDomainDoesNotStarveOthers(t *testing.T) {
	f := setup(t, func(o *Options) { o.Policy.MaxPerDomain = 1 })
	f.q.maxDue = 2
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	f.rem.set(func(m *remote.Message) []remote.Result {
		if m.Domain == "a.test" {
			<-gate
		}
		return answer(ok)(m)
	})
	for i := 0; i < 3; i++ {
		f.add(Envelope{From: alice, Recipients: rcpts(fmt.Sprintf("u%d@a.test", i))})
	}
	f.clk.advance(time.Second)
	f.add(Envelope{From: alice, Recipients: rcpts("v@b.test")})
	if err := f.q.startDue(ctx); err != nil { // starts one a.test
		t.Fatal(err)
	}
	if err := f.q.startDue(ctx); err != nil { // must reach b.test
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "b.test attempted", func() bool {
		for _, c := range f.rem.sent() {
			if c.domain == "b.test" {
				return true
			}
		}
		return false
	})
	open()
	f.q.jobs.Wait()
}

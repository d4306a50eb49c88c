package imapd_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/imapd"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/testcert"
	"github.com/jodmai/jodmai/internal/testenv/testserve"
	"github.com/jodmai/jodmai/internal/testenv/wire"
	"github.com/jodmai/jodmai/internal/userdb"
)

// The session tests' harness: a real userdb, store and authenticator in a
// temporary directory and an imapd.Server on a loopback port, so the tests
// speak IMAP over real sockets. (testenv starts the whole server; this
// harness exists for what testenv cannot do: a listener whose connections
// claim a non-loopback address, short timeouts, one server shared by
// every fuzz input.)

const (
	sessHost   = "mail.example.org"
	sessDomain = "example.org"
	sessAlice  = "alice@example.org"
	sessPass   = "password123"
	sessBob    = "bob@example.org"
)

type sessHarness struct {
	t     testing.TB
	srv   *imapd.Server
	users *userdb.DB
	store *store.Store
	addr  string
	certs *x509.CertPool
	stop  func(time.Duration) error
}

type sessOptions struct {
	// remote, if set, makes every connection claim this remote address.
	remote      net.Addr
	implicitTLS bool
	noTLS       bool
	timeout     time.Duration
	preauth     time.Duration
	maxLine     int
	log         bool
	// logs, if set, receives the server's log (text, debug level).
	logs *logBuffer
	// policy replaces the harness's fast throttling policy.
	policy *auth.Policy
}

func newSessHarness(t testing.TB, o sessOptions) *sessHarness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	users, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.CheapHashes(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.AddDomain(ctx, sessDomain); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	switch {
	case o.logs != nil:
		logger = slog.New(slog.NewTextHandler(o.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case o.log || os.Getenv("JODMAI_TEST_LOG") != "":
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	policy := auth.Policy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Window: time.Minute, IPLockoutAfter: 1 << 30, Lockout: time.Minute}
	if o.policy != nil {
		policy = *o.policy
	}
	h := &sessHarness{t: t, users: users, store: st}
	h.srv = &imapd.Server{
		Hostname:       sessHost,
		Store:          st,
		Users:          users,
		Auth:           auth.New(users, policy, logger),
		Timeout:        o.timeout,
		PreauthTimeout: o.preauth,
		MaxLineLength:  o.maxLine,
		ImplicitTLS:    o.implicitTLS,
		Log:            logger,
	}
	cert, pool := testcert.New(t, sessHost)
	h.certs = pool
	if !o.noTLS && !o.implicitTLS {
		h.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	var implicit *tls.Config
	if o.implicitTLS {
		implicit = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	// Registered first, run last: after the server has stopped.
	t.Cleanup(func() {
		st.Close()
		users.Close()
	})
	h.addr, h.stop = testserve.Start(t, h.srv, testserve.Options{Remote: o.remote, ImplicitTLS: implicit, Closed: imapd.ErrServerClosed})
	return h
}

func (h *sessHarness) shutdown(d time.Duration) error { return h.stop(d) }

func (h *sessHarness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.certs, ServerName: sessHost, MinVersion: tls.VersionTLS12}
}

// addUser creates an account. The harness's userdb hashes passwords
// cheaply (userdb.DB.CheapHashes): the tests log in hundreds of times, the
// fuzzer per input, and the production cost (19 MiB, two passes) under the
// race detector or coverage instrumentation would dominate their time. The
// testenv-based tests keep the real cost.
func (h *sessHarness) addUser(address, password string) userdb.Account {
	h.t.Helper()
	ctx := context.Background()
	acc, err := h.users.AddAccount(ctx, address, password)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.users.Authenticate(ctx, address, password); err != nil {
		h.t.Fatalf("cheap hash: %v", err)
	}
	return acc
}

// account opens the store account of address.
func (h *sessHarness) account(address string) *store.Account {
	h.t.Helper()
	return sessAccount(h.t, h.users, h.store, address)
}

func sessAccount(t testing.TB, users *userdb.DB, st *store.Store, address string) *store.Account {
	t.Helper()
	ctx := context.Background()
	acc, err := users.Account(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// deliver files raw into address's INBOX, durably, as SMTP would.
func (h *sessHarness) deliver(address, raw string) {
	h.t.Helper()
	sessDeliver(h.t, h.users, h.store, address, raw)
}

func sessDeliver(t testing.TB, users *userdb.DB, st *store.Store, address, raw string) {
	t.Helper()
	ctx := context.Background()
	acc, err := users.Account(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, raw); err != nil {
		t.Fatal(err)
	}
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	if err := st.Deliver(ctx, tmp, []store.Target{{AccountID: acc.ID}}); err != nil {
		t.Fatal(err)
	}
}

// sessMessage returns a small message with a subject.
func sessMessage(subject string) string {
	return "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHello, " + subject + ".\r\n"
}

// mailbox returns a mailbox's row and messages, straight from the store.
func sessMailbox(t testing.TB, a *store.Account, name string) (store.Mailbox, []store.Message) {
	t.Helper()
	ctx := context.Background()
	mb, err := a.Mailbox(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := a.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	return mb, msgs
}

// sessConn is the raw IMAP client of the session tests (wire.IMAP) with
// the harness's LOGIN.
type sessConn struct {
	*wire.IMAP
	t testing.TB
}

func (h *sessHarness) dial() *sessConn {
	h.t.Helper()
	return sessDial(h.t, h.addr)
}

func (h *sessHarness) dialTLS() *sessConn {
	h.t.Helper()
	return &sessConn{wire.NewIMAP(wire.DialTLS(h.t, h.addr, h.clientTLS())), h.t}
}

func sessDial(t testing.TB, addr string) *sessConn {
	t.Helper()
	return &sessConn{wire.DialIMAP(t, addr), t}
}

func sessNewConn(t testing.TB, c net.Conn) *sessConn {
	t.Helper()
	return &sessConn{wire.NewIMAP(wire.New(t, c)), t}
}

// login sends LOGIN with user and pass as they are (atoms, unquoted),
// unlike wire.IMAP.Login.
func (c *sessConn) login(user, pass string) {
	c.t.Helper()
	c.OK("LOGIN " + user + " " + pass)
}

// sessFind returns the first line starting with prefix, or "".
func sessFind(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// sessHas reports whether some line contains sub.
func sessHas(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// logBuffer collects a server's log for a test to wait on.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// Contains reports whether the log so far contains s.
func (l *logBuffer) Contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

package pop3d_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv/testserve"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/pop3d"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/testcert"
	"github.com/jodmai/jodmai/internal/testenv/wire"
	"github.com/jodmai/jodmai/internal/userdb"
)

// The harness builds a real userdb, store and authenticator in a temporary
// directory and serves a pop3d.Server on a loopback port, so the tests
// speak the wire protocol over real sockets.

const (
	testHost   = "mail.example.org"
	testDomain = "example.org"
	alice      = "alice@example.org"
	alicePass  = "password123"
	bob        = "bob@example.org"
	bobPass    = "bobpassword"
)

type harness struct {
	t       testing.TB
	srv     *pop3d.Server
	users   *userdb.DB
	store   *store.Store
	addr    string
	certs   *x509.CertPool
	certDER []byte
	stop    func(time.Duration) error
}

type harnessOptions struct {
	policy      *auth.Policy
	noTLS       bool
	implicitTLS bool
	// remote, if set, makes every accepted connection report this remote
	// address (to test the non-loopback plaintext policy).
	remote  net.Addr
	timeout time.Duration
	log     bool
	// logTo receives the server's log as JSON, at trace level.
	logTo io.Writer
	// noStore leaves Server.Store nil: every login panics in the session.
	noStore bool
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	users, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The tests log in hundreds of times: cheap password hashes.
	if err := users.CheapHashes(); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.AddDomain(ctx, testDomain); err != nil {
		t.Fatal(err)
	}
	policy := auth.Policy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Window: time.Minute, IPLockoutAfter: 1000, Lockout: time.Minute}
	if o.policy != nil {
		policy = *o.policy
	}
	logger := slog.New(slog.DiscardHandler)
	if o.log || os.Getenv("JODMAI_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	if o.logTo != nil {
		logger = slog.New(slog.NewJSONHandler(o.logTo, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	}
	h := &harness{t: t, users: users, store: st}
	h.srv = &pop3d.Server{
		Hostname:    testHost,
		Store:       st,
		Auth:        auth.New(users, policy, logger),
		Timeout:     o.timeout,
		ImplicitTLS: o.implicitTLS,
		Log:         logger,
	}
	if o.noStore {
		h.srv.Store = nil
	}
	var cert tls.Certificate
	if !o.noTLS || o.implicitTLS {
		cert, h.certs = testcert.New(t, testHost)
		h.certDER = cert.Certificate[0]
		h.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if o.implicitTLS {
		h.srv.TLSConfig = nil
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
	h.addr, h.stop = testserve.Start(t, h.srv, testserve.Options{Remote: o.remote, ImplicitTLS: implicit, Closed: pop3d.ErrServerClosed})
	return h
}

func (h *harness) shutdown(d time.Duration) error { return h.stop(d) }

func (h *harness) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: h.certs, ServerName: testHost, MinVersion: tls.VersionTLS12}
}

func (h *harness) addUser(address, password string) userdb.Account {
	h.t.Helper()
	acc, err := h.users.AddAccount(context.Background(), address, password)
	if err != nil {
		h.t.Fatal(err)
	}
	return acc
}

// deliver files raw into the INBOX of address, durably, as SMTP would.
func (h *harness) deliver(address string, raw string) {
	h.t.Helper()
	ctx := context.Background()
	acc, err := h.users.Account(ctx, address)
	if err != nil {
		h.t.Fatal(err)
	}
	w, err := h.store.NewBody()
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := io.WriteString(w, raw); err != nil {
		h.t.Fatal(err)
	}
	tmp, err := w.Finish()
	if err != nil {
		h.t.Fatal(err)
	}
	defer tmp.Remove()
	if err := h.store.Deliver(ctx, tmp, []store.Target{{AccountID: acc.ID}}); err != nil {
		h.t.Fatal(err)
	}
}

// inbox returns the messages in address's INBOX.
func (h *harness) inbox(address string) (*store.Account, store.Mailbox, []store.Message) {
	h.t.Helper()
	ctx := context.Background()
	acc, err := h.users.Account(ctx, address)
	if err != nil {
		h.t.Fatal(err)
	}
	a, err := h.store.Account(ctx, acc.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	mb, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		h.t.Fatal(err)
	}
	msgs, err := a.Messages(ctx, mb.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return a, mb, msgs
}

// dial connects in the clear and reads the greeting.
func (h *harness) dial() *wire.POP3 {
	h.t.Helper()
	return wire.DialPOP3(h.t, h.addr)
}

// dialTLS connects with implicit TLS and reads the greeting.
func (h *harness) dialTLS() *wire.POP3 {
	h.t.Helper()
	return wire.NewPOP3(wire.DialTLS(h.t, h.addr, h.clientTLS()))
}

func timestampOf(t testing.TB, greeting string) string {
	t.Helper()
	i := strings.LastIndexByte(greeting, '<')
	j := strings.LastIndexByte(greeting, '>')
	if i < 0 || j < i {
		t.Fatalf("no timestamp in greeting %q", greeting)
	}
	return greeting[i : j+1]
}

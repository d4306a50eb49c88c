package pop3d_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
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

// client is a raw POP3 client.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	// greeting is the server's first line.
	greeting string
}

func (h *harness) dial() *client {
	h.t.Helper()
	c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	return newClient(h.t, c)
}

func (h *harness) dialTLS() *client {
	h.t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", h.addr, h.clientTLS())
	if err != nil {
		h.t.Fatal(err)
	}
	return newClient(h.t, c)
}

func newClient(t testing.TB, c net.Conn) *client {
	t.Helper()
	cl := &client{t: t, conn: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	cl.greeting = cl.line()
	if !strings.HasPrefix(cl.greeting, "+OK ") {
		t.Fatalf("greeting %q", cl.greeting)
	}
	return cl
}

// line reads one response line without CRLF; it fails the test on a line
// that does not end in CRLF.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends a command line and returns the first response line.
func (c *client) cmd(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.line()
}

// ok sends a command and fails unless the reply is +OK.
func (c *client) ok(line string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, "+OK") {
		c.t.Fatalf("%s: got %q, want +OK", line, r)
	}
	return r
}

// fail sends a command and fails unless the reply starts with want (a
// "-ERR ..." prefix).
func (c *client) fail(line, want string) string {
	c.t.Helper()
	r := c.cmd(line)
	if !strings.HasPrefix(r, want) {
		c.t.Fatalf("%s: got %q, want %q", line, r, want)
	}
	return r
}

// multi reads the data of a multi-line response (after its status line)
// and returns it with dot-stuffing undone, as the raw bytes, CRLFs kept.
func (c *client) multi() string {
	c.t.Helper()
	var b strings.Builder
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read multi-line: %v (got %q so far)", err, b.String())
		}
		if s == ".\r\n" {
			return b.String()
		}
		if strings.HasPrefix(s, ".") {
			s = s[1:]
		}
		b.WriteString(s)
	}
}

// lines reads a multi-line response of short lines.
func (c *client) lines() []string {
	c.t.Helper()
	s := c.multi()
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\r\n"), "\r\n")
}

// login logs in with USER/PASS and returns the +OK line.
func (c *client) login(user, pass string) string {
	c.t.Helper()
	c.ok("USER " + user)
	return c.ok("PASS " + pass)
}

// eof asserts the server closed the connection.
func (c *client) eof() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadString('\n')
	if !errors.Is(err, io.EOF) || b != "" {
		c.t.Fatalf("want EOF, got %q, %v", b, err)
	}
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

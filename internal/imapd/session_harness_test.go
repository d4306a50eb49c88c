package imapd_test

import (
	"bufio"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/imapd"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv/testcert"
	"github.com/jodmai/jodmai/internal/testenv/testserve"
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
	if o.log || os.Getenv("JODMAI_TEST_LOG") != "" {
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

// sessConn is a raw IMAP client: it sends lines and reads responses, with
// literals inlined into their response line.
type sessConn struct {
	t        testing.TB
	c        net.Conn
	r        *bufio.Reader
	zw       *flate.Writer // after COMPRESS
	greeting string
	n        int
}

func (h *sessHarness) dial() *sessConn {
	h.t.Helper()
	return sessDial(h.t, h.addr)
}

func (h *sessHarness) dialTLS() *sessConn {
	h.t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", h.addr, h.clientTLS())
	if err != nil {
		h.t.Fatal(err)
	}
	return sessNewConn(h.t, c)
}

func sessDial(t testing.TB, addr string) *sessConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return sessNewConn(t, c)
}

func sessNewConn(t testing.TB, c net.Conn) *sessConn {
	t.Helper()
	sc := &sessConn{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { c.Close() })
	sc.greeting = sc.line()
	if !strings.HasPrefix(sc.greeting, "* OK ") {
		t.Fatalf("greeting %q", sc.greeting)
	}
	return sc
}

// sessReadTimeout bounds every read, so a test that waits for a response
// the server never sends fails instead of hanging.
const sessReadTimeout = 10 * time.Second

// line reads one response (without CRLF), literals included in place; it
// fails the test on a read error or a line not ending in CRLF.
func (c *sessConn) line() string {
	c.t.Helper()
	s, err := c.readLine()
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

func (c *sessConn) readLine() (string, error) {
	var b strings.Builder
	for {
		c.c.SetReadDeadline(time.Now().Add(sessReadTimeout))
		s, err := c.r.ReadString('\n')
		if err != nil {
			return b.String() + s, err
		}
		if !strings.HasSuffix(s, "\r\n") {
			return b.String() + s, fmt.Errorf("line does not end in CRLF")
		}
		s = strings.TrimSuffix(s, "\r\n")
		b.WriteString(s)
		n, ok := sessTrailingLiteral(s)
		if !ok {
			return b.String(), nil
		}
		b.WriteString("\r\n")
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return b.String(), err
		}
		b.Write(buf)
	}
}

// sessTrailingLiteral reports whether a response line ends in "{n}".
func sessTrailingLiteral(s string) (int, bool) {
	if !strings.HasSuffix(s, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s[i+1 : len(s)-1])
	if err != nil || n < 0 || n > 100<<20 {
		return 0, false
	}
	return n, true
}

// send writes raw bytes (through the compressor after COMPRESS).
func (c *sessConn) send(s string) {
	c.t.Helper()
	var err error
	if c.zw != nil {
		if _, err = io.WriteString(c.zw, s); err == nil {
			err = c.zw.Flush()
		}
	} else {
		_, err = io.WriteString(c.c, s)
	}
	if err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// nextTag returns a fresh tag.
func (c *sessConn) nextTag() string {
	c.n++
	return "t" + strconv.Itoa(c.n)
}

// cmd sends a command with a fresh tag and returns the untagged responses
// and the tagged reply (without the tag).
func (c *sessConn) cmd(line string) (untagged []string, reply string) {
	c.t.Helper()
	tag := c.nextTag()
	c.send(tag + " " + line + "\r\n")
	return c.until(tag)
}

// until reads responses up to the one tagged tag.
func (c *sessConn) until(tag string) (untagged []string, reply string) {
	c.t.Helper()
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// ok sends a command and fails unless the reply is OK; it returns the
// untagged responses.
func (c *sessConn) ok(line string) []string {
	c.t.Helper()
	u, r := c.cmd(line)
	if !strings.HasPrefix(r, "OK") {
		c.t.Fatalf("%s: got %q (untagged %q), want OK", line, r, u)
	}
	return u
}

// fail sends a command and fails unless the reply starts with want.
func (c *sessConn) fail(line, want string) []string {
	c.t.Helper()
	u, r := c.cmd(line)
	if !strings.HasPrefix(r, want) {
		c.t.Fatalf("%s: got %q, want %q", line, r, want)
	}
	return u
}

func (c *sessConn) login(user, pass string) {
	c.t.Helper()
	c.ok("LOGIN " + user + " " + pass)
}

// compress sends COMPRESS DEFLATE and switches this side to DEFLATE.
func (c *sessConn) compress() {
	c.t.Helper()
	c.ok("COMPRESS DEFLATE")
	c.deflate()
}

// deflate switches this side to DEFLATE after the server's OK.
func (c *sessConn) deflate() {
	c.t.Helper()
	if c.r.Buffered() != 0 {
		c.t.Fatalf("%d bytes after the COMPRESS reply", c.r.Buffered())
	}
	c.r = bufio.NewReader(flate.NewReader(c.c))
	zw, err := flate.NewWriter(c.c, flate.DefaultCompression)
	if err != nil {
		c.t.Fatal(err)
	}
	c.zw = zw
}

// startTLS sends STARTTLS and handshakes.
func (c *sessConn) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.ok("STARTTLS")
	tc := tls.Client(c.c, cfg)
	tc.SetDeadline(time.Now().Add(sessReadTimeout))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	c.c = tc
	c.r = bufio.NewReader(tc)
}

// eof asserts the server closed the connection, after any lines that
// start with allow (a BYE), and closes this side, as a client would.
func (c *sessConn) eof(allow ...string) {
	c.t.Helper()
	defer c.c.Close()
	for {
		s, err := c.readLine()
		if errors.Is(err, io.EOF) && s == "" {
			return
		}
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.t.Fatalf("connection still open (got %q)", s)
			}
			return // reset by peer also means closed
		}
		ok := false
		for _, a := range allow {
			ok = ok || strings.HasPrefix(s, a)
		}
		if !ok {
			c.t.Fatalf("want EOF, got %q", s)
		}
	}
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

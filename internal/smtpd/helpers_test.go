package smtpd_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/testenv"
)

const (
	alice     = "alice@example.org"
	bob       = "bob@example.org"
	carol     = "carol@example.org"
	alicePass = "alice-password-1"
	bobPass   = "bob-password-22"
	carolPass = "carol-password-333"
)

// newEnv starts a jodmai with three users.
func newEnv(t testing.TB) *testenv.Env {
	t.Helper()
	env := testenv.Start(t)
	env.AddUser(t, alice, alicePass)
	env.AddUser(t, bob, bobPass)
	env.AddUser(t, carol, carolPass)
	return env
}

// harness is an smtpd.Server of its own, configured by the test, over the
// directory and store of an Env, on 127.0.0.1.
type harness struct {
	srv   *smtpd.Server
	addr  string
	serve chan error
}

func newHarness(t testing.TB, env *testenv.Env, mode smtpd.Mode, edit func(*smtpd.Server)) *harness {
	t.Helper()
	srv := &smtpd.Server{
		Hostname:  env.Hostname,
		Mode:      mode,
		Deliverer: &deliver.Deliverer{Users: env.Users, Store: env.Store},
		Auth:      env.Server.Auth,
		TLSConfig: env.Server.TLS.TLSConfig(),
		Log:       testLogger(t),
	}
	if edit != nil {
		edit(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, srv, l)
}

func serveOn(t testing.TB, srv *smtpd.Server, l net.Listener) *harness {
	h := &harness{srv: srv, addr: l.Addr().String(), serve: make(chan error, 1)}
	if srv.ImplicitTLS {
		l = tls.NewListener(l, srv.TLSConfig)
	}
	go func() { h.serve <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-h.serve; !errors.Is(err, smtpd.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return h
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("JODMAI_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// client speaks raw SMTP.
type client struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, nc)
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return greet(t, nc)
}

func greet(t testing.TB, nc net.Conn) *client {
	t.Helper()
	c := &client{t: t, conn: nc, tp: textproto.NewConn(nc)}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	c.expect(220, "")
	return c
}

// reply reads one (possibly multi-line) reply.
func (c *client) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// expect reads a reply and checks its code and that its text contains
// want.
func (c *client) expect(code int, want string) string {
	c.t.Helper()
	got, msg := c.reply()
	if got != code || !strings.Contains(msg, want) {
		c.t.Fatalf("got reply %d %q, want %d with %q", got, msg, code, want)
	}
	return msg
}

// cmd sends a command line and checks the reply.
func (c *client) cmd(line string, code int, want string) string {
	c.t.Helper()
	c.write(line + "\r\n")
	return c.expect(code, want)
}

// cmd5xx sends a command line and checks for a permanent error.
func (c *client) cmd5xx(line string) {
	c.t.Helper()
	c.write(line + "\r\n")
	if code, msg := c.reply(); code/100 != 5 {
		c.t.Fatalf("%q: got %d %q, want 5xx", line, code, msg)
	}
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// ehlo returns the EHLO keywords, upper-cased, with their parameters.
func (c *client) ehlo() map[string]string {
	c.t.Helper()
	msg := c.cmd("EHLO client.example.net", 250, "")
	caps := map[string]string{}
	for _, line := range strings.Split(msg, "\n")[1:] {
		k, v, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(k)] = v
	}
	return caps
}

func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.cmd("STARTTLS", 220, "")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.tp = textproto.NewConn(tc)
}

func (c *client) authPlain(user, pass string, code int, want string) {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	c.cmd("AUTH PLAIN "+ir, code, want)
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.tp.ReadLine()
	if err == nil {
		c.t.Fatalf("connection still open, read %q", line)
	}
	if isTimeout(err) {
		c.t.Fatalf("connection still open (timeout)")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// send runs a whole transaction with DATA and returns the final reply
// text, checking code.
func (c *client) send(from string, rcpts []string, msg string, code int) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", 250, "")
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", 250, "")
	}
	c.cmd("DATA", 354, "")
	c.write(dotStuff(msg) + ".\r\n")
	return c.expect(code, "")
}

// dotStuff prepares msg (CRLF line ends, ending in CRLF) for DATA.
func dotStuff(msg string) string {
	lines := strings.SplitAfter(msg, "\r\n")
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	return b.String()
}

// trace splits a stored message into its Return-Path line, its Received
// field (unfolded lines joined with "\n") and the rest, without the
// Authentication-Results field a trusted client's message gets on MX.
func trace(t testing.TB, body []byte) (returnPath, received, rest string) {
	t.Helper()
	s := string(body)
	rp, s, ok := strings.Cut(s, "\r\n")
	if !ok || !strings.HasPrefix(rp, "Return-Path: ") {
		t.Fatalf("stored message does not start with Return-Path: %q", truncate(string(body)))
	}
	if !strings.HasPrefix(s, "Received: ") {
		t.Fatalf("no Received after Return-Path: %q", truncate(string(body)))
	}
	var lines []string
	for {
		line, after, ok := strings.Cut(s, "\r\n")
		if !ok {
			t.Fatalf("unterminated Received field")
		}
		lines = append(lines, line)
		s = after
		if !strings.HasPrefix(s, "\t") && !strings.HasPrefix(s, " ") {
			break
		}
	}
	// On MX a trusted (loopback) client's message gets this field after
	// the trace fields (authres.go).
	s = strings.TrimPrefix(s, "Authentication-Results: "+testenv.Hostname+"; none\r\n")
	return strings.TrimPrefix(rp, "Return-Path: "), strings.Join(lines, "\n"), s
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// inbox returns the bodies in an account's INBOX.
func inbox(t testing.TB, env *testenv.Env, addr string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range env.Inbox(t, addr) {
		if int64(len(m.Body)) != m.Size {
			t.Errorf("message %d: stored size %d, body has %d bytes", m.UID, m.Size, len(m.Body))
		}
		out = append(out, m.Body)
	}
	return out
}

// oneMessage checks that addr's INBOX has exactly one message and returns
// it without its trace fields, plus the Received field.
func oneMessage(t testing.TB, env *testenv.Env, addr string) (received, rest string) {
	t.Helper()
	msgs := inbox(t, env, addr)
	if len(msgs) != 1 {
		t.Fatalf("%s has %d messages, want 1", addr, len(msgs))
	}
	_, received, rest = trace(t, msgs[0])
	return received, rest
}

const simpleMsg = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHello Bob.\r\n"

// submitMsg has every field a submission adds when missing (submit.go):
// it is stored and sent unchanged.
const submitMsg = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <hello@client.example.net>\r\n\r\nHello Bob.\r\n"

package smtpd_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wire"
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

// client speaks raw SMTP: wire.SMTP and the transactions of these tests.
type client struct {
	*wire.SMTP
	t testing.TB
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	return &client{wire.DialSMTP(t, addr), t}
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	return &client{wire.NewSMTP(wire.DialTLS(t, addr, cfg)), t}
}

// ehlo returns the EHLO keywords, upper-cased, with their parameters.
func (c *client) ehlo() map[string]string {
	c.t.Helper()
	return c.EHLO("client.example.net")
}

// cmd5xx sends a command line and checks for a permanent error.
func (c *client) cmd5xx(line string) {
	c.t.Helper()
	if code, msg := c.Cmd(line); code/100 != 5 {
		c.Fatalf("%q: got %d %q, want 5xx", line, code, msg)
	}
}

func (c *client) authPlain(user, pass string, code int, want string) {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	c.Expect("AUTH PLAIN "+ir, code, want)
}

// send runs a whole transaction with DATA and returns the final reply
// text, checking code.
func (c *client) send(from string, rcpts []string, msg string, code int) string {
	c.t.Helper()
	c.Expect("MAIL FROM:<"+from+">", 250, "")
	for _, r := range rcpts {
		c.Expect("RCPT TO:<"+r+">", 250, "")
	}
	c.Expect("DATA", 354, "")
	c.Send(dotStuff(msg) + ".\r\n")
	return c.WantReply(code, "")
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

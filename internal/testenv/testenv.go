// Package testenv starts a whole jodmai in-process for tests: every listener
// on 127.0.0.1 with an ephemeral port, a temporary data directory, a
// self-signed certificate, the domain example.org, and fast login
// throttling. Tests then speak the real protocols to it over real sockets,
// with the raw client of testenv/wire, and wait for what happens in the
// background with testenv/wait.
package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/server"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// Hostname is the test server's host name.
const Hostname = "mail.example.org"

// Domain is the local domain every Env starts with.
const Domain = "example.org"

// Env is a running test server.
type Env struct {
	// Server is the running server.
	Server *server.Server
	// Users is the server's directory.
	Users *userdb.DB
	// Store is the server's mail store.
	Store *store.Store
	// Queue is the server's outbound queue.
	Queue *queue.Queue
	// DataDir is the temporary data directory.
	DataDir string
	// Config is the configuration the server runs with.
	Config *config.Config
	// Hostname is the server's host name (Hostname).
	Hostname string

	t        testing.TB
	stopOnce sync.Once
}

// Options change the environment.
type Options struct {
	// Configure, if set, edits the configuration before the server starts.
	Configure func(*config.Config)
	// AuthPolicy replaces the fast test throttling policy.
	AuthPolicy *auth.Policy
	// DataDir reuses a data directory (for restart tests); "" makes one.
	DataDir string
	// Log shows the server's logs in the test output.
	Log bool
	// Remote replaces the outbound SMTP client (a fake that records what
	// the queue sends). Nil: the server's default.
	Remote remote.Deliverer
	// QueueNow replaces the queue's clock.
	QueueNow func() time.Time
	// ACMEClient talks to the test's ACME CA (acmetest.CA.Client).
	ACMEClient *http.Client
	// Resolver replaces the server's resolver for its DNS checks
	// (resolver.New on a dnstest server).
	Resolver dns.Resolver
	// DNSCheckHTTPClient is server.Options.DNSCheckHTTPClient.
	DNSCheckHTTPClient *http.Client
}

// FastAuthPolicy throttles failed logins by milliseconds, so tests with bad
// passwords stay fast while the mechanism still runs.
var FastAuthPolicy = auth.Policy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Window: time.Minute, IPLockoutAfter: 1000, Lockout: time.Minute}

// Start starts a server with default options. It stops when the test ends.
func Start(t testing.TB) *Env { return StartWith(t, Options{}) }

// StartWith starts a server with options.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return Hostname, nil }}.Parse(nil)
	if err != nil {
		t.Fatalf("testenv: default config: %v", err)
	}
	cfg.Hostname = Hostname
	cfg.Data = dir
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", Submission: "127.0.0.1:0", Submissions: "127.0.0.1:0", POP3: "127.0.0.1:0", POP3S: "127.0.0.1:0", IMAP: "127.0.0.1:0", IMAPS: "127.0.0.1:0"}
	// Tests talk to loopback only: no DNS question leaves the machine
	// (a closed loopback port answers at once), and mail from any
	// 127.0.0.0/8 client (the load test's source addresses) is not
	// checked against DNS. Tests of those checks configure them.
	cfg.DNS.Resolver = "127.0.0.1:1"
	cfg.MsgAuth.TrustedNetworks = []string{"127.0.0.0/8", "::1/128"}
	if opts.Configure != nil {
		opts.Configure(cfg)
	}
	var log *slog.Logger
	if opts.Log || os.Getenv("JODMAI_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else {
		log = slog.New(slog.DiscardHandler)
	}
	policy := FastAuthPolicy
	if opts.AuthPolicy != nil {
		policy = *opts.AuthPolicy
	}
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, log, server.Options{AuthPolicy: &policy, Remote: opts.Remote, QueueNow: opts.QueueNow, ACMEClient: opts.ACMEClient, Resolver: opts.Resolver, DNSCheckHTTPClient: opts.DNSCheckHTTPClient})
	if err != nil {
		t.Fatalf("testenv: new server: %v", err)
	}
	if ok, _ := srv.Users.IsLocalDomain(ctx, Domain); !ok {
		if err := srv.Users.AddDomain(ctx, Domain); err != nil {
			t.Fatalf("testenv: add domain: %v", err)
		}
	}
	if err := srv.Start(); err != nil {
		srv.Shutdown(ctx)
		t.Fatalf("testenv: start: %v", err)
	}
	env := &Env{Server: srv, Users: srv.Users, Store: srv.Store, Queue: srv.Queue, DataDir: dir, Config: cfg, Hostname: Hostname, t: t}
	t.Cleanup(env.Stop)
	return env
}

// Stop shuts the server down. It runs at test cleanup and may also be
// called earlier (a restart test); calling it twice is harmless.
func (e *Env) Stop() {
	e.stopOnce.Do(e.stop)
}

func (e *Env) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Server.Shutdown(ctx); err != nil {
		e.t.Logf("testenv: shutdown: %v", err)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Addr returns "host:port" of a listener: "smtp", "submission",
// "submissions", "pop3", "pop3s", "imap", "imaps", and "http", "https",
// "metrics" when Configure turned them on.
func (e *Env) Addr(key string) string {
	a := e.Server.Addrs()[key]
	if a == nil {
		e.t.Fatalf("testenv: no %s listener", key)
	}
	return a.String()
}

// AddUser creates an account in Domain or any local domain.
func (e *Env) AddUser(t testing.TB, address, password string) userdb.Account {
	t.Helper()
	acc, err := e.Users.AddAccount(context.Background(), address, password)
	if err != nil {
		t.Fatalf("testenv: add user %s: %v", address, err)
	}
	return acc
}

// ClientTLS returns a client TLS config that trusts the server's
// certificate and names Hostname.
func (e *Env) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(filepath.Join(e.DataDir, "tls", "cert.pem"))
	if err != nil {
		e.t.Fatalf("testenv: read cert: %v", err)
	}
	for {
		var b *pem.Block
		b, pemBytes = pem.Decode(pemBytes)
		if b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			pool.AddCert(c)
		}
	}
	return &tls.Config{RootCAs: pool, ServerName: Hostname, MinVersion: tls.VersionTLS12}
}

// Deliver files raw (CRLF line ends expected) into an account's INBOX
// through the store, as SMTP would, and returns when it is durable.
func (e *Env) Deliver(t testing.TB, address string, raw []byte) {
	t.Helper()
	ctx := context.Background()
	acc, err := e.Users.Account(ctx, address)
	if err != nil {
		t.Fatalf("testenv: deliver: %v", err)
	}
	w, err := e.Store.NewBody()
	if err != nil {
		t.Fatalf("testenv: deliver: %v", err)
	}
	if _, err := w.Write(raw); err != nil {
		w.Abort()
		t.Fatalf("testenv: deliver: %v", err)
	}
	tmp, err := w.Finish()
	if err != nil {
		t.Fatalf("testenv: deliver: %v", err)
	}
	defer tmp.Remove()
	if err := e.Store.Deliver(ctx, tmp, []store.Target{{AccountID: acc.ID}}); err != nil {
		t.Fatalf("testenv: deliver: %v", err)
	}
}

// Inbox returns the messages in an account's INBOX with their bodies.
func (e *Env) Inbox(t testing.TB, address string) []Message {
	return e.Mailbox(t, address, "INBOX")
}

// Message is a stored message and its bytes.
type Message struct {
	store.Message
	Body []byte
}

// Mailbox returns the messages in an account's mailbox with their bodies.
func (e *Env) Mailbox(t testing.TB, address, mailbox string) []Message {
	t.Helper()
	ctx := context.Background()
	acc, err := e.Users.Account(ctx, address)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	a, err := e.Store.Account(ctx, acc.ID)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer a.Release()
	mb, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	msgs, err := a.Messages(ctx, mb.ID)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		f, err := a.OpenBody(m)
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		out = append(out, Message{Message: m, Body: b})
	}
	return out
}

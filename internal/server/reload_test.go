package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/server"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
	"github.com/jodmai/jodmai/internal/testenv/testcert"
)

// writeCert writes a fresh certificate for host and its key as PEM files.
func writeCert(t *testing.T, dir, name, host string) (certFile, keyFile string) {
	cert, _ := testcert.New(t, host)
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return "mail.example.org", nil }}.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = config.Listen{IMAP: "127.0.0.1:0"}
	cfg.DNS.Resolver = "127.0.0.1:1"
	cfg.TLS.Cert, cfg.TLS.Key = writeCert(t, dir, "a", "mail.example.org")
	level := new(slog.LevelVar)
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, nil, server.Options{LogLevel: level})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	first := srv.TLS.Certificate().Leaf.Raw

	next := *cfg
	next.LogLevel = slog.LevelDebug
	next.Limits.MaxConnectionsPerIP = 1
	next.Limits.ExemptNetworks = nil
	next.TLS.ACMEHosts = []string{"mail.example.org"}
	next.TLS.Cert, next.TLS.Key = writeCert(t, dir, "b", "mail.example.org")
	next.Listen.IMAP = "127.0.0.1:1"
	next.Limits.MaxMessageSize = 1 << 20
	next.Events.Keep = 2

	// A certificate that does not load: an error, and nothing applied.
	bad := next
	bad.TLS.Cert = filepath.Join(dir, "missing.crt")
	if _, err := srv.Reload(ctx, &bad); err == nil {
		t.Fatal("reload with a missing certificate file succeeded")
	}
	if level.Level() != slog.LevelInfo || !bytes.Equal(srv.TLS.Certificate().Leaf.Raw, first) {
		t.Fatal("a failed reload applied something")
	}

	res, err := srv.Reload(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"log_level", "tls.cert", "tls.key", "tls.acme_hosts", "limits.max_connections_per_ip", "limits.exempt_networks", "limits.max_message_size", "events.keep"} {
		if !slices.Contains(res.Applied, k) {
			t.Errorf("%s not applied: %+v", k, res)
		}
	}
	if !slices.Equal(res.Restart, []string{"listen.imap"}) {
		t.Errorf("restart: %v", res.Restart)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v", level.Level())
	}
	if bytes.Equal(srv.TLS.Certificate().Leaf.Raw, first) {
		t.Errorf("certificate not switched")
	}

	// One connection per IP now, loopback included.
	addr := srv.Addrs()["imap"].String()
	greet := func() string {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if g := greet(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("first connection: %q", g)
	}
	if g := greet(); !strings.HasPrefix(g, "* BYE") {
		t.Fatalf("second connection from the same IP after the cap went to 1: %q", g)
	}

	// Nothing changed: nothing applied, the certificate read again.
	res, err = srv.Reload(ctx, &next)
	if err != nil || len(res.Applied) != 0 || len(res.Restart) != 1 {
		// The restart-needing key stays different from the running
		// configuration until a restart.
		t.Fatalf("second reload: %+v %v", res, err)
	}
}

// TestReloadProtocolLimits: Reload gives the protocol limits and timeouts
// to sessions that start after it (SMTP's EHLO SIZE, IMAP's APPENDLIMIT,
// POP3's autologout timer); a session open before keeps its own.
func TestReloadProtocolLimits(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return "mail.example.org", nil }}.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", POP3: "127.0.0.1:0", IMAP: "127.0.0.1:0"}
	cfg.DNS.Resolver = "127.0.0.1:1"
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, nil, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)

	dial := func(key string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.DialTimeout("tcp", srv.Addrs()[key].String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return c, r
	}
	// ehloSize sends EHLO and returns the SIZE line.
	ehloSize := func(c net.Conn, r *bufio.Reader) string {
		t.Helper()
		c.Write([]byte("EHLO client.example\r\n"))
		size := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line[4:], "SIZE") {
				size = strings.TrimSpace(line[4:])
			}
			if line[3] == ' ' {
				return size
			}
		}
	}
	capability := func() string {
		t.Helper()
		c, r := dial("imap")
		c.Write([]byte("a CAPABILITY\r\n"))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}

	oldC, oldR := dial("smtp")
	if got := ehloSize(oldC, oldR); got != "SIZE 52428800" {
		t.Fatalf("before reload: %q", got)
	}
	if line := capability(); !strings.Contains(line, "APPENDLIMIT=52428800") {
		t.Fatalf("before reload: %q", line)
	}

	next := *cfg
	next.Limits.MaxMessageSize = 1 << 20
	next.Limits.POP3Timeout = time.Second
	res, err := srv.Reload(ctx, &next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Applied, []string{"limits.max_message_size", "limits.pop3_timeout"}) || len(res.Restart) != 0 {
		t.Errorf("reload: %+v", res)
	}

	newC, newR := dial("smtp")
	if got := ehloSize(newC, newR); got != "SIZE 1048576" {
		t.Errorf("new SMTP session after reload: %q", got)
	}
	if got := ehloSize(oldC, oldR); got != "SIZE 52428800" {
		t.Errorf("SMTP session open before the reload: %q", got)
	}
	if line := capability(); !strings.Contains(line, "APPENDLIMIT=1048576") {
		t.Errorf("new IMAP session after reload: %q", line)
	}
	// A new POP3 session is logged out after a second of silence (the
	// old timer was ten minutes; the dial's deadline is ten seconds).
	start := time.Now()
	_, r := dial("pop3")
	var err2 error
	for err2 == nil {
		_, err2 = r.ReadString('\n')
	}
	var ne net.Error
	if errors.As(err2, &ne) && ne.Timeout() {
		t.Errorf("POP3 session not closed by the new timeout (after %v): %v", time.Since(start), err2)
	}
}

// TestDNSChecker: the server's checker uses its configuration and
// resolver.
func TestDNSChecker(t *testing.T) {
	cfg, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return "mail.example.org", nil }}.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	cfg.Listen = config.Listen{}
	s := dnstest.Start(t)
	s.SetMX("example.org", dnstest.MX{Pref: 10, Host: "mail.example.org"})
	srv, err := server.New(context.Background(), cfg, nil, server.Options{Resolver: resolver.New(s.Addr(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	rs := srv.DNSChecker().Check(context.Background(), "example.org")
	if len(rs) == 0 || rs[0].Check != "MX" || rs[0].Status != dnscheck.OK {
		t.Fatalf("MX: %+v", rs)
	}
}

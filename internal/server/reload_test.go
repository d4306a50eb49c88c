package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
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
	for _, k := range []string{"log_level", "tls.cert", "tls.key", "tls.acme_hosts", "limits.max_connections_per_ip", "limits.exempt_networks", "events.keep"} {
		if !slices.Contains(res.Applied, k) {
			t.Errorf("%s not applied: %+v", k, res)
		}
	}
	if !slices.Equal(res.Restart, []string{"limits.max_message_size", "listen.imap"}) {
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
	if err != nil || len(res.Applied)+len(res.Restart) != 2 {
		// The restart-needing keys stay different from the running
		// configuration until a restart.
		t.Fatalf("second reload: %+v %v", res, err)
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

package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/server"
	"github.com/jodmai/jodmai/internal/userdb"
)

// TestQuickstart runs quickstart into a temporary directory, starts a
// server with the configuration it wrote, and logs in over IMAP with the
// password it printed.
func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "jodmai.toml")
	data := filepath.Join(dir, "data")
	r := jodmai(t, "", "", "quickstart", "--config", conf, "--data", data, "example.org", "Admin@example.org").ok(t)
	m := regexp.MustCompile(`password for admin@example.org: (\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no password printed:\n%s", r.stdout)
	}
	password := m[1]
	for _, want := range []string{"example.org. 3600 IN MX 10 mail.example.org.", "._domainkey.example.org. 3600 IN TXT", "Next steps:", "jodmai serve --config " + conf} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Never overwritten, and nothing changed by the refusal.
	before, _ := os.ReadFile(conf)
	jodmai(t, "", "", "quickstart", "--config", conf, "--data", data, "example.org").fails(t, 1, "exists")
	if after, _ := os.ReadFile(conf); string(after) != string(before) {
		t.Fatalf("config changed by a refused quickstart")
	}
	// Another config, same domain in the same data dir: refused, and no
	// config file left behind.
	conf2 := filepath.Join(dir, "other.toml")
	jodmai(t, "", "", "quickstart", "--config", conf2, "--data", data, "example.org").fails(t, 1, "already")
	if _, err := os.Stat(conf2); err == nil {
		t.Fatalf("a failed quickstart left %s", conf2)
	}

	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "mail.example.org" || cfg.Data != data || !cfg.TLS.ACME || cfg.TLS.ACMEEmail != "admin@example.org" || cfg.Listen.SMTP != ":25" {
		t.Fatalf("config: hostname %q data %q acme %v email %q smtp %q", cfg.Hostname, cfg.Data, cfg.TLS.ACME, cfg.TLS.ACMEEmail, cfg.Listen.SMTP)
	}
	if keys, err := remote.LoadKeys(data, "example.org"); err != nil || len(keys) != 2 {
		t.Fatalf("DKIM keys: %d %v", len(keys), err)
	}
	db, err := userdb.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := db.Account(ctx, "admin@example.org")
	if err != nil || !acc.Admin {
		t.Fatalf("admin account: %+v %v", acc, err)
	}
	if targets, err := db.Alias(ctx, "postmaster@example.org"); err != nil || len(targets) != 1 || targets[0] != "admin@example.org" {
		t.Fatalf("postmaster: %v %v", targets, err)
	}
	db.Close()

	// Serve it (loopback ports instead of the standard ones).
	cfg.Listen = config.Listen{IMAP: "127.0.0.1:0"}
	cfg.DNS.Resolver = "127.0.0.1:1"
	srv, err := server.New(ctx, cfg, nil, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	c, err := net.DialTimeout("tcp", srv.Addrs()["imap"].String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting %q", line)
	}
	c.Write([]byte(`a LOGIN "admin@example.org" "` + password + "\"\r\n"))
	for {
		line, err = br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "a ") {
			break
		}
	}
	if !strings.HasPrefix(line, "a OK") {
		t.Fatalf("login with the printed password: %q", line)
	}
}

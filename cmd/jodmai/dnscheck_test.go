package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

func TestDNSCheck(t *testing.T) {
	dir := t.TempDir()
	s := dnstest.Start(t)
	s.SetMX("example.org", dnstest.MX{Pref: 10, Host: "mail.example.org"})
	s.SetA("mail.example.org", "192.0.2.10")
	cfg := filepath.Join(t.TempDir(), "jodmai.toml")
	if err := os.WriteFile(cfg, []byte("hostname = \"mail.example.org\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	r := jodmai(t, dir, "", "dns-check", "--config", cfg, "--resolver", s.Addr())
	if r.code != 1 || !strings.Contains(r.stderr, "to fix") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{
		"example.org  MX ", "OK", "MISSING",
		"To publish:",
		`_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"`,
		"jodmai dkim keygen example.org",
		"_imaps._tcp.example.org. 3600 IN SRV",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

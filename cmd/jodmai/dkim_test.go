package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
)

// zoneTXT returns the value of a zone-file TXT line: its quoted strings
// joined.
func zoneTXT(t *testing.T, line string) string {
	t.Helper()
	var b strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(line, -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

func TestDKIMKeygenAndDNSRecords(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "jodmai.toml")
	if err := os.WriteFile(conf, []byte("hostname = \"mail.example.com\"\n[listen]\npop3 = \"\"\nsubmission = \":2587\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := jodmai(t, dir, "", "dkim", "keygen", "--config", conf, "Example.com").ok(t).stdout
	var txts []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " IN TXT ") {
			if !strings.Contains(line, "._domainkey.example.com. ") {
				t.Fatalf("record name: %q", line)
			}
			txts = append(txts, line)
			for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(line, -1) {
				if len(q[1]) > 255 {
					t.Fatalf("quoted string of %d bytes", len(q[1]))
				}
			}
			if _, isdkim, err := dkim.ParseRecord(zoneTXT(t, line)); err != nil || !isdkim {
				t.Fatalf("record %q: %v", zoneTXT(t, line), err)
			}
		}
	}
	if len(txts) != 2 || !strings.Contains(out, "k=ed25519") || !strings.Contains(out, "k=rsa") {
		t.Fatalf("keygen output:\n%s", out)
	}
	if !strings.Contains(out, "; warning: example.com is not a local domain") {
		t.Errorf("keygen for a domain the server does not have: no warning:\n%s", out)
	}
	jodmai(t, dir, "", "domain", "add", "--config", conf, "local.example").ok(t)
	if out := jodmai(t, dir, "", "dkim", "keygen", "--config", conf, "local.example").ok(t).stdout; strings.Contains(out, "warning") {
		t.Errorf("keygen for a local domain warns:\n%s", out)
	}

	out = jodmai(t, dir, "", "dns-records", "--config", conf, "example.com").ok(t).stdout
	for _, want := range []string{
		"example.com. 3600 IN MX 10 mail.example.com.",
		`example.com. 3600 IN TXT "v=spf1 mx ~all"`,
		txts[0], txts[1],
		`_dmarc.example.com. 3600 IN TXT "v=DMARC1;`,
		`_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=`,
		";   mx: mail.example.com",
		`_smtp._tls.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.com"`,
		"_submissions._tcp.example.com. 3600 IN SRV 0 1 465 mail.example.com.",
		"_submission._tcp.example.com. 3600 IN SRV 1 1 2587 mail.example.com.",
		"_imaps._tcp.example.com. 3600 IN SRV 2 1 993 mail.example.com.",
		"_pop3._tcp.example.com. 3600 IN SRV 0 0 0 .",
		"autoconfig.example.com. 3600 IN CNAME mail.example.com.",
		"autodiscover.example.com. 3600 IN CNAME mail.example.com.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns-records lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
	// Every line is a comment, empty, or a record.
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, ";") && !strings.Contains(line, " 3600 IN ") {
			t.Errorf("not zone-file syntax: %q", line)
		}
	}

	// No key: a hint instead of records.
	out = jodmai(t, dir, "", "dns-records", "--config", conf, "other.example").ok(t).stdout
	if !strings.Contains(out, "jodmai dkim keygen other.example") || strings.Contains(out, "_domainkey") {
		t.Errorf("no-key output:\n%s", out)
	}
	jodmai(t, dir, "", "dns-records", "--config", conf).fails(t, 2, "missing")
	jodmai(t, dir, "", "dkim", "keygen", "--config", conf, "bad..domain").fails(t, 1, "bad domain")
}

// TestDKIMRetire: a second keygen rotates (four selectors published),
// retire drops an old one from the records to publish.
func TestDKIMRetire(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, "", "dkim", "keygen", "example.org").ok(t)
	old := regexp.MustCompile(`(j\d+e)\._domainkey`).FindStringSubmatch(jodmai(t, dir, "", "dns-records", "example.org").ok(t).stdout)
	if old == nil {
		t.Fatal("no ed25519 selector")
	}
	jodmai(t, dir, "", "dkim", "keygen", "example.org").ok(t)
	if n := strings.Count(jodmai(t, dir, "", "dns-records", "example.org").ok(t).stdout, "._domainkey.example.org. "); n != 4 {
		t.Fatalf("%d DKIM records after a second keygen, want 4", n)
	}
	jodmai(t, dir, "", "dkim", "retire", "example.org", old[1]).ok(t)
	out := jodmai(t, dir, "", "dns-records", "example.org").ok(t).stdout
	if strings.Contains(out, old[1]+"._domainkey") || strings.Count(out, "._domainkey.example.org. ") != 3 {
		t.Errorf("after retiring %s:\n%s", old[1], out)
	}
	jodmai(t, dir, "", "dkim", "retire", "example.org", old[1]).fails(t, 1, "no such key")
}

package dnsrecords

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mjl-/mox/mtasts"

	"github.com/jodmai/jodmai/internal/config"
)

func testConfig(t *testing.T, file string) *config.Config {
	t.Helper()
	c, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return "mail.example.com", nil }}.Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMTASTSPolicyAndID(t *testing.T) {
	c := testConfig(t, "")
	policy := MTASTSPolicy(c)
	p, err := mtasts.ParsePolicy(policy)
	if err != nil {
		t.Fatalf("%q: %v", policy, err)
	}
	if p.Mode != mtasts.ModeTesting || p.MX[0].Domain.ASCII != "mail.example.com" || p.MaxAgeSeconds != MTASTSMaxAge {
		t.Errorf("policy %+v", p)
	}
	id := MTASTSID(policy)
	if !regexp.MustCompile(`^[a-zA-Z0-9]{1,32}$`).MatchString(id) { // RFC 8461 §3.1
		t.Errorf("id %q", id)
	}
	if id == MTASTSID(MTASTSPolicy(testConfig(t, `hostname = "mx.example.com"`))) {
		t.Error("id unchanged when the policy changes")
	}
	var b strings.Builder
	Write(&b, c, "example.com", nil)
	if !strings.Contains(b.String(), `_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=`+id+`"`) {
		t.Errorf("records lack the policy's id:\n%s", b.String())
	}
}

func TestServices(t *testing.T) {
	c := testConfig(t, "[listen]\npop3 = \"\"\nsubmission = \":2587\"\n")
	got := map[string]int{}
	for _, s := range Services(c) {
		got[s.Listener] = s.Port
	}
	want := map[string]int{"submissions": 465, "submission": 2587, "imaps": 993, "imap": 143, "pop3s": 995, "pop3": 0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d", k, got[k], v)
		}
	}
}

// TestRecordsMatchWrite: every structured record is a line Write prints,
// so dns-check and dns-records never disagree.
func TestRecordsMatchWrite(t *testing.T) {
	cfg := testConfig(t, "")
	var b strings.Builder
	Write(&b, cfg, "example.com", nil)
	lines := strings.Split(b.String(), "\n")
	for _, r := range Records(cfg, "example.com") {
		if !slices.Contains(lines, r.String()) {
			t.Errorf("record %q not printed by Write", r.String())
		}
	}
}

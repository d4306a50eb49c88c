package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/userdb"
)

const (
	sha512Hash = "{SHA512-CRYPT}$6$UDer5sgcK/6npnxU$/vepvgt4HJgMnHF3aN8jKSG.CkvMb5PHjzRQCoO8HiRS.TQVRKYYIFrqUN22Y9CLgPCLM3FcBwRqwDppkrtFm/"
	cramHash   = "{CRAM-MD5}38b57fd1a0c4b46c814aa05f20318edd71c455380655f2c0ac35c5b359528d29"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserImportCSV(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	csv := `# exported from the old server
address,password_hash,password,quota,apop_secret,admin,aliases
alice@example.org,` + sha512Hash + `,,2GiB,,true,"al@example.org, a.l@example.org"
bob@example.org,,plain pass,,apop secret x,,
carol@other.example,` + cramHash + `,,,,,
dave@example.org,{NOSUCH}abc,,,,,
erin@example.org,,,1000,,maybe,
`
	f := writeFile(t, "users.csv", csv)
	r := jodmai(t, dir, "", "user", "import", f)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (lines failed); stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"line 3: alice@example.org: created\n",
		"line 4: bob@example.org: created\n",
		"line 5: carol@other.example: error: domain other.example is not a local domain",
		"line 6: dave@example.org: error: unknown password scheme",
		"line 7: error: admin \"maybe\"",
		"5 records in ",
		"2 created, 0 updated, 0 unchanged, 3 failed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not have %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "3 records failed") {
		t.Errorf("stderr %q", r.stderr)
	}
	db := users(t, dir)
	if a, err := db.Authenticate(ctx, "alice@example.org", "correct horse"); err != nil || !a.Admin || a.QuotaBytes != 2<<30 {
		t.Errorf("alice: %+v %v", a, err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.org", "plain pass"); err != nil {
		t.Errorf("bob: %v", err)
	}
	if ts, err := db.Alias(ctx, "a.l@example.org"); err != nil || len(ts) != 1 || ts[0] != "alice@example.org" {
		t.Errorf("alias: %q %v", ts, err)
	}

	// Again, with --create-domains: carol comes in, the rest is unchanged.
	r = jodmai(t, dir, "", "user", "import", "--create-domains", f)
	for _, want := range []string{
		"line 3: alice@example.org: unchanged\n",
		"line 4: bob@example.org: unchanged\n",
		"line 5: carol@other.example: created\n",
		"1 created, 0 updated, 2 unchanged, 2 failed",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("second run: stdout does not have %q:\n%s", want, r.stdout)
		}
	}
	if r := jodmai(t, dir, "", "user", "list").ok(t); !strings.Contains(r.stdout, "admin") {
		t.Errorf("user list does not show the admin: %s", r.stdout)
	}
}

func TestUserImportJSONAndStdin(t *testing.T) {
	dir := t.TempDir()
	json := `[
  {"address": "alice@example.org", "password_hash": "` + sha512Hash + `", "quota": "1GiB", "aliases": ["al@example.org"]},
  {"address": "bob@example.org", "password": "plain pass", "quota": 5000, "admin": true},
  {"address": "carol@example.org", "password": "x", "colour": "blue"}
]`
	r := jodmai(t, dir, json, "user", "import", "--format", "json", "--create-domains", "-")
	for _, want := range []string{
		"line 2: alice@example.org: created\n",
		"line 3: bob@example.org: created\n",
		"line 4: error: json: unknown field \"colour\"",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not have %q:\n%s", want, r.stdout)
		}
	}
	// JSON Lines, changing bob's quota.
	r = jodmai(t, dir, `{"address": "bob@example.org", "quota": 6000}`+"\n", "user", "import", "--format", "json", "-").ok(t)
	if !strings.Contains(r.stdout, "line 1: bob@example.org: updated (quota)\n") {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestUserImportDovecot(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	pw := "# Dovecot passwd-file\n" +
		"alice@example.org:" + sha512Hash + ":1000:1000::/home/alice::userdb_quota_rule=*:storage=1048576\n" +
		"bob:" + cramHash + "::::::quota_rule=*:storage=2G\n" +
		"carol@example.org:$6$UDer5sgcK/6npnxU$/vepvgt4HJgMnHF3aN8jKSG.CkvMb5PHjzRQCoO8HiRS.TQVRKYYIFrqUN22Y9CLgPCLM3FcBwRqwDppkrtFm/\n" +
		"dave@example.org:{PLAIN}correct horse\n" +
		"erin@example.org:{SHA512-CRYPT}$6$broken\n" +
		"frank@example.org:\n"
	f := writeFile(t, "users.passwd", pw)
	r := jodmai(t, dir, "", "user", "import", "--domain", "example.org", f)
	for _, want := range []string{
		"line 2: alice@example.org: created\n",
		"line 3: bob@example.org: created\n",
		"line 4: carol@example.org: created\n",
		"line 5: dave@example.org: created\n",
		"line 6: erin@example.org: error: invalid {SHA512-CRYPT} hash",
		"line 7: error: no password field",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not have %q:\n%s", want, r.stdout)
		}
	}
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	db := users(t, dir)
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		a, err := db.Authenticate(ctx, u+"@example.org", "correct horse")
		if err != nil {
			t.Errorf("%s: %v", u, err)
		}
		if u == "alice" && a.QuotaBytes != 1<<30 || u == "bob" && a.QuotaBytes != 2<<30 {
			t.Errorf("%s quota %d", u, a.QuotaBytes)
		}
	}
}

// TestUserImportSpeed imports 10,000 accounts with Dovecot hashes (set
// JODMAI_IMPORT_N for another number) and logs the rate. No timing is
// asserted; BENCHMARKS.md has the measured number.
func TestUserImportSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	n := 10000
	if s := os.Getenv("JODMAI_IMPORT_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	var b strings.Builder
	b.WriteString("address,password_hash,quota,aliases\n")
	for i := range n {
		fmt.Fprintf(&b, "user%05d@school.example,%s,1GiB,u%05d@school.example\n", i, sha512Hash, i)
	}
	dir := t.TempDir()
	f := writeFile(t, "users.csv", b.String())
	start := time.Now()
	r := jodmai(t, dir, "", "user", "import", "--create-domains", "--quiet", f).ok(t)
	d := time.Since(start)
	t.Logf("%d accounts in %s: %.0f accounts/s", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	if !strings.Contains(r.stdout, fmt.Sprintf("%d created", n)) {
		t.Fatalf("stdout %q", r.stdout[max(0, len(r.stdout)-300):])
	}
	start = time.Now()
	r = jodmai(t, dir, "", "user", "import", "--quiet", f).ok(t)
	t.Logf("again, unchanged: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(r.stdout, fmt.Sprintf("%d unchanged", n)) {
		t.Fatalf("stdout %q", r.stdout)
	}
	accs, err := users(t, dir).Accounts(ctx)
	if err != nil || len(accs) != n {
		t.Fatalf("%d accounts, %v", len(accs), err)
	}
}

func FuzzUserImportParsers(f *testing.F) {
	f.Add([]byte("address,password_hash,quota,admin,aliases\na@example.org,{PLAIN}x,2GiB,true,\"b@example.org c@example.org\"\n"))
	f.Add([]byte(`[{"address": "a@example.org", "quota": "1GiB"}, {"address": "b@example.org", "quota": 5}]`))
	f.Add([]byte("a@example.org:{SHA512-CRYPT}$6$x$y::::::userdb_quota_rule=*:storage=1G\nbob:{PLAIN}x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Count(string(data), "\n") + 1
		for _, parse := range []func([]byte, string) ([]userdb.ImportRecord, []lineError){parseUsersCSV, parseUsersJSON, parseUsersDovecot} {
			recs, bad := parse(data, "example.org")
			for _, r := range recs {
				if r.Line < 1 || r.Line > lines {
					t.Fatalf("record line %d of %d", r.Line, lines)
				}
			}
			for _, b := range bad {
				if b.line < 1 || b.line > lines+1 || b.err == nil {
					t.Fatalf("error line %d of %d: %v", b.line, lines, b.err)
				}
			}
		}
	})
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

var ctx = context.Background()

type result struct {
	code           int
	stdout, stderr string
}

// jodmai runs a command line against data dir dir ("" for none).
func jodmai(t *testing.T, dir, stdin string, args ...string) result {
	t.Helper()
	if dir != "" && len(args) > 0 {
		// --data goes right after the command name(s), before other flags.
		n := 1
		if c, rest := find(args); c != nil {
			n = len(args) - len(rest)
		}
		args = append(append(append([]string{}, args[:n]...), "--data", dir), args[n:]...)
	}
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	return r
}

// fails checks the exit code and that stderr mentions every word.
func (r result) fails(t *testing.T, code int, words ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stdout %q, stderr %q)", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range words {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not mention %q", r.stderr, w)
		}
	}
}

func users(t *testing.T, dir string) *userdb.DB {
	t.Helper()
	db, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestDomainCommands(t *testing.T) {
	dir := t.TempDir()
	r := jodmai(t, dir, "", "domain", "add", "Example.ORG").ok(t)
	if r.stdout != "domain example.org added\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	jodmai(t, dir, "", "domain", "add", "second.example").ok(t)
	if r := jodmai(t, dir, "", "domain", "list").ok(t); r.stdout != "example.org\nsecond.example\n" {
		t.Errorf("domain list = %q", r.stdout)
	}
	jodmai(t, dir, "", "domain", "add", "example.org").fails(t, 1, "example.org", "already exists")
	jodmai(t, dir, "", "domain", "add", "bad..domain").fails(t, 1, "bad..domain")
	jodmai(t, dir, "", "domain", "del", "nosuch.example").fails(t, 1, "nosuch.example", "not found")

	jodmai(t, dir, "password1234\n", "user", "add", "--password-stdin", "bob@example.org").ok(t)
	jodmai(t, dir, "", "domain", "del", "example.org").fails(t, 1, "example.org", "accounts")

	jodmai(t, dir, "", "domain", "del", "second.example").ok(t)
	if r := jodmai(t, dir, "", "domain", "list").ok(t); r.stdout != "example.org\n" {
		t.Errorf("domain list after del = %q", r.stdout)
	}
}

func TestUserAdd(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)

	const pw = "s3cret password"
	r := jodmai(t, dir, pw+"\r\nsecond line ignored\n", "user", "add", "--password-stdin", "Bob@Example.org").ok(t)
	if strings.Contains(r.stdout+r.stderr, pw) {
		t.Error("the password was echoed")
	}
	if !strings.Contains(r.stdout, "Bob@example.org") {
		t.Errorf("stdout %q does not name the account", r.stdout)
	}
	db := users(t, dir)
	if _, err := db.Authenticate(ctx, "bob@example.org", pw); err != nil {
		t.Errorf("Authenticate with the stdin password: %v", err)
	}

	// No flag and stdin not a terminal: a password is generated and
	// printed once.
	r = jodmai(t, dir, "", "user", "add", "amy@example.org").ok(t)
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no generated password in %q", r.stdout)
	}
	if len(m[1]) != 20 {
		t.Errorf("generated password %q is not 20 characters", m[1])
	}
	if _, err := db.Authenticate(ctx, "amy@example.org", m[1]); err != nil {
		t.Errorf("Authenticate with the generated password: %v", err)
	}

	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		words []string
	}{
		{"duplicate", pw + "\n", []string{"--password-stdin", "BOB@example.org"}, 1, []string{"already exists"}},
		{"domain not local", pw + "\n", []string{"--password-stdin", "carl@nowhere.example"}, 1, []string{"nowhere.example", "not a local domain"}},
		{"generated, domain not local", "", []string{"carl@nowhere.example"}, 1, []string{"nowhere.example"}},
		{"empty stdin", "", []string{"--password-stdin", "carl@example.org"}, 1, []string{"empty password"}},
		{"short password", "short\n", []string{"--password-stdin", "carl@example.org"}, 1, []string{"8 characters"}},
		{"bad address", pw + "\n", []string{"--password-stdin", "carl"}, 1, []string{"carl"}},
		{"flag after argument", pw + "\n", []string{"carl@example.org", "--password-stdin"}, 2, []string{"flags must come before arguments", "usage:"}},
		{"missing address", pw + "\n", []string{"--password-stdin"}, 2, []string{"missing arguments", "usage:"}},
		{"two addresses", pw + "\n", []string{"--password-stdin", "a@example.org", "b@example.org"}, 2, []string{"too many arguments"}},
		{"unknown flag", pw + "\n", []string{"--password", "carl@example.org"}, 2, []string{"password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := jodmai(t, dir, tc.stdin, append([]string{"user", "add"}, tc.args...)...)
			r.fails(t, tc.code, tc.words...)
			if strings.Contains(r.stdout, "password:") {
				t.Errorf("a failed add printed a password: %q", r.stdout)
			}
		})
	}
	if _, err := db.Account(ctx, "carl@example.org"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("a failed user add created carl: %v", err)
	}
}

func TestUserPasswdAndAPOP(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, "old password 1\n", "user", "add", "--password-stdin", "bob@example.org").ok(t)
	db := users(t, dir)

	jodmai(t, dir, "new password 2\n", "user", "passwd", "--password-stdin", "BOB@example.org").ok(t)
	if _, err := db.Authenticate(ctx, "bob@example.org", "new password 2"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.org", "old password 1"); err == nil {
		t.Error("old password still works")
	}
	r := jodmai(t, dir, "", "user", "passwd", "bob@example.org").ok(t)
	m := regexp.MustCompile(`(?m)^password: (\S+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("user passwd without stdin printed no password: %q", r.stdout)
	}
	if _, err := db.Authenticate(ctx, "bob@example.org", m[1]); err != nil {
		t.Errorf("generated password: %v", err)
	}
	jodmai(t, dir, "new password 3\n", "user", "passwd", "--password-stdin", "nobody@example.org").fails(t, 1, "nobody@example.org", "not found")
	jodmai(t, dir, "x\n", "user", "passwd", "--password-stdin", "bob@example.org").fails(t, 1, "8 characters")

	if r := jodmai(t, dir, "", "user", "list").ok(t); !regexp.MustCompile(`(?m)^bob@example\.org\s+no\s`).MatchString(r.stdout) {
		t.Errorf("user list before apop = %q", r.stdout)
	}
	jodmai(t, dir, "apop secret 1\n", "user", "apop", "--password-stdin", "bob@example.org").ok(t)
	if _, s, err := db.APOPSecret(ctx, "bob@example.org"); err != nil || s != "apop secret 1" {
		t.Errorf("APOPSecret = %q, %v", s, err)
	}
	if r := jodmai(t, dir, "", "user", "list").ok(t); !regexp.MustCompile(`(?m)^bob@example\.org\s+yes\s`).MatchString(r.stdout) {
		t.Errorf("user list after apop = %q", r.stdout)
	}
	jodmai(t, dir, "", "user", "apop", "--clear", "bob@example.org").ok(t)
	if _, _, err := db.APOPSecret(ctx, "bob@example.org"); !errors.Is(err, userdb.ErrNoAPOP) {
		t.Errorf("APOPSecret after --clear = %v", err)
	}
	r = jodmai(t, dir, "", "user", "apop", "bob@example.org").ok(t)
	m = regexp.MustCompile(`(?m)^APOP secret: (\S+)$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("user apop without stdin printed no secret: %q", r.stdout)
	}
	if _, s, _ := db.APOPSecret(ctx, "bob@example.org"); s != m[1] {
		t.Errorf("stored APOP secret %q, printed %q", s, m[1])
	}
	jodmai(t, dir, "apop secret 1\n", "user", "apop", "--password-stdin", "nobody@example.org").fails(t, 1, "not found")
}

func TestUserListAndDel(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	for _, a := range []string{"zed@example.org", "amy@example.org"} {
		jodmai(t, dir, "password1234\n", "user", "add", "--password-stdin", a).ok(t)
	}
	r := jodmai(t, dir, "", "user", "list").ok(t)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ADDRESS") || !strings.HasPrefix(lines[1], "amy@example.org ") || !strings.HasPrefix(lines[2], "zed@example.org ") {
		t.Errorf("user list = %q", r.stdout)
	}

	// Give zed some mail so there is a directory to remove.
	acc, err := users(t, dir).Account(ctx, "zed@example.org")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := st.NewBody()
	w.Write([]byte("Subject: x\r\n\r\nbody\r\n"))
	tm, _ := w.Finish()
	if err := st.Deliver(ctx, tm, []store.Target{{AccountID: acc.ID}}); err != nil {
		t.Fatal(err)
	}
	tm.Remove()
	st.Close()
	acctDir := filepath.Join(dir, "accounts", strconv.FormatInt(acc.ID, 10))
	if _, err := os.Stat(acctDir); err != nil {
		t.Fatal(err)
	}

	jodmai(t, dir, "", "user", "del", "ZED@example.org").ok(t)
	if _, err := os.Stat(acctDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account directory survives user del: %v", err)
	}
	if _, err := users(t, dir).Account(ctx, "zed@example.org"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("account survives user del: %v", err)
	}
	if r := jodmai(t, dir, "", "user", "list").ok(t); strings.Contains(r.stdout, "zed@") {
		t.Errorf("user list after del = %q", r.stdout)
	}
	jodmai(t, dir, "", "user", "del", "zed@example.org").fails(t, 1, "zed@example.org", "not found")
	jodmai(t, dir, "", "user", "list", "extra").fails(t, 2, "too many arguments")
}

func TestAliasCommands(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, "password1234\n", "user", "add", "--password-stdin", "bob@example.org").ok(t)

	jodmai(t, dir, "", "alias", "add", "info@example.org", "bob@example.org", "ext@remote.example").ok(t)
	jodmai(t, dir, "", "alias", "add", "@example.org", "bob@example.org").ok(t)
	r := jodmai(t, dir, "", "alias", "list").ok(t)
	want := "@example.org\tbob@example.org\ninfo@example.org\tbob@example.org, ext@remote.example\n"
	if r.stdout != want {
		t.Errorf("alias list = %q, want %q", r.stdout, want)
	}
	db := users(t, dir)
	if got, err := db.Alias(ctx, "info@example.org"); err != nil || len(got) != 2 {
		t.Errorf("Alias(info) = %q, %v", got, err)
	}

	jodmai(t, dir, "", "alias", "add", "info@example.org", "bob@example.org").fails(t, 1, "already exists")
	jodmai(t, dir, "", "alias", "add", "bob@example.org", "x@remote.example").fails(t, 1, "account")
	jodmai(t, dir, "", "alias", "add", "x@other.example", "bob@example.org").fails(t, 1, "other.example", "not a local domain")
	jodmai(t, dir, "", "alias", "add", "x@example.org", "not-an-address").fails(t, 1, "not-an-address")
	jodmai(t, dir, "", "alias", "add", "x@example.org").fails(t, 2, "missing arguments")

	jodmai(t, dir, "", "alias", "del", "INFO@example.org").ok(t)
	jodmai(t, dir, "", "alias", "del", "info@example.org").fails(t, 1, "info@example.org", "not found")
	if r := jodmai(t, dir, "", "alias", "list").ok(t); r.stdout != "@example.org\tbob@example.org\n" {
		t.Errorf("alias list after del = %q", r.stdout)
	}
}

func TestConfigFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "jodmai.toml")
	if err := os.WriteFile(cfg, []byte("hostname = \"mail.example.org\"\ndata = \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jodmai(t, "", "", "domain", "add", "--config", cfg, "example.org").ok(t)
	if ds, _ := users(t, dir).Domains(ctx); len(ds) != 1 || ds[0] != "example.org" {
		t.Errorf("domain add with --config wrote %q to the configured data dir", ds)
	}
	// --data overrides the config's data.
	other := t.TempDir()
	jodmai(t, "", "", "domain", "add", "--config", cfg, "--data", other, "other.example").ok(t)
	if ds, _ := users(t, other).Domains(ctx); len(ds) != 1 || ds[0] != "other.example" {
		t.Errorf("--data did not override the config: %q", ds)
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("hostname = \"mail.example.org\"\nnosuchkey = 1\n"), 0o600)
	jodmai(t, "", "", "domain", "list", "--config", bad).fails(t, 1, "nosuchkey")
	jodmai(t, "", "", "domain", "list", "--config", filepath.Join(dir, "missing.toml")).fails(t, 1, "missing.toml")
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args  []string
		code  int
		words []string
	}{
		{[]string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`, "commands:"}},
		{[]string{"user", "frobnicate"}, 2, []string{`unknown command "user frobnicate"`, "commands:"}},
		{[]string{"user"}, 2, []string{"unknown command", "commands:"}},
		{[]string{"domain", "add", "example.org", "--data", dir}, 2, []string{"flags must come before arguments"}},
		{[]string{"domain", "add"}, 2, []string{"missing arguments", "usage: jodmai domain add"}},
		{[]string{"domain", "del", "a.example", "b.example"}, 2, []string{"too many arguments"}},
		{[]string{"domain", "list", "--nosuchflag"}, 2, []string{"nosuchflag"}},
	} {
		jodmai(t, "", "", tc.args...).fails(t, tc.code, tc.words...)
	}
	// No arguments: the overview, exit 2.
	if r := jodmai(t, "", ""); r.code != 2 || !strings.Contains(r.stdout, "commands:") {
		t.Errorf("no arguments: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, h := range []string{"help", "--help", "-h"} {
		if r := jodmai(t, "", "", h); r.code != 0 || !strings.Contains(r.stdout, "commands:") {
			t.Errorf("%s: exit %d, stdout %q", h, r.code, r.stdout)
		}
	}
	if r := jodmai(t, "", "", "version").ok(t); !strings.HasPrefix(r.stdout, "jodmai ") {
		t.Errorf("version = %q", r.stdout)
	}
}

// TestHelp: every command answers --help with its usage and flags, exit
// 0, without doing anything; "help CMD" prints the same.
func TestHelp(t *testing.T) {
	dir := t.TempDir()
	// "help CMD" has no --data: it would use ./jodmai-data if it did
	// anything.
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, c := range commands() {
		words := strings.Fields(c.name)
		args := append([]string{}, words...)
		if !c.local {
			args = append(args, "--data", dir)
		}
		r := jodmai(t, "", "", append(args, "--help")...)
		if r.code != 0 {
			t.Errorf("%s --help: exit %d", c.name, r.code)
		}
		usage := r.stdout + r.stderr
		for _, w := range []string{"usage: jodmai " + c.name, "-config", "-data", c.summary} {
			// The user agent and the load tool show only their own
			// flags: the server's --config and --data mean nothing to
			// them.
			if want := !c.local || w == c.summary || strings.HasPrefix(w, "usage"); strings.Contains(usage, w) != want {
				t.Errorf("%s --help mentions %q: %v, want %v: %q", c.name, w, !want, want, usage)
			}
		}
		h := jodmai(t, "", "", append([]string{"help"}, words...)...)
		if h.code != 0 || h.stdout != usage {
			t.Errorf("help %s: exit %d, stdout %q; want the --help text %q", c.name, h.code, h.stdout, usage)
		}
	}
	for _, tc := range []struct{ cmd, flag string }{
		{"user add", "-password-stdin"}, {"user passwd", "-password-stdin"}, {"user apop", "-clear"},
	} {
		r := jodmai(t, "", "", append(strings.Fields(tc.cmd), "--help")...)
		if !strings.Contains(r.stdout+r.stderr, tc.flag) {
			t.Errorf("%s --help does not list %s", tc.cmd, tc.flag)
		}
	}
	// --help did not create anything.
	for _, d := range []string{dir, cwd} {
		if ents, _ := os.ReadDir(d); len(ents) != 0 {
			t.Errorf("--help or help CMD wrote %d entries into %s", len(ents), d)
		}
	}
}

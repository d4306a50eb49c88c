package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// uaSetup starts a server with one user and writes an accounts file for
// it; it returns the file and the maildir.
func uaSetup(t *testing.T) (*testenv.Env, string, string, string) {
	env := testenv.Start(t)
	user := "ann@" + testenv.Domain
	env.AddUser(t, user, "password1")
	t.Setenv("JODMAI_UA_TEST_PW", "password1")
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Mail")
	accounts := filepath.Join(dir, "accounts.toml")
	cfg := fmt.Sprintf(`[accounts.home]
from = "Ann Äxample <%[1]s>"
username = "%[1]s"
password_env = "JODMAI_UA_TEST_PW"
maildir = %[2]q
tls_ca_file = %[3]q
smtp = { server = %[4]q, tls = "implicit" }
pop3 = { server = %[5]q, tls = "implicit" }
imap = { server = %[6]q, tls = "starttls" }
imap_sent = "Sent"
`, user, maildir, filepath.Join(env.DataDir, "tls", "cert.pem"), env.Addr("submissions"), env.Addr("pop3s"), env.Addr("imap"))
	if err := os.WriteFile(accounts, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return env, user, accounts, maildir
}

func TestSendFetchListRead(t *testing.T) {
	env, user, accounts, maildir := uaSetup(t)
	att := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(att, []byte("attached text\n"), 0o600)

	r := jodmai(t, "", "dry body\n", "send", "--accounts", accounts, "--to", user, "--subject", "Dry", "--dry-run").ok(t)
	if !strings.Contains(r.stdout, "Subject: Dry\r\n") || !strings.Contains(r.stdout, "dry body") {
		t.Fatalf("dry run printed %q", r.stdout)
	}
	if n := len(env.Inbox(t, user)); n != 0 {
		t.Fatalf("dry run delivered %d", n)
	}

	jodmai(t, "", "Hallo Welt, schöne Grüße\n", "send", "--accounts", accounts, "--to", user, "--subject", "Grüße", "--attach", att).ok(t)
	t.Setenv("JODMAI_ACCOUNTS", accounts) // the env var works too
	jodmai(t, "", "second\n", "send", "--to", user, "--subject", "Two").ok(t)
	// A copy of each in the local Sent folder.
	if n := len(env.Mailbox(t, user, "Sent")); n != 2 {
		t.Fatalf("server Sent holds %d", n)
	}
	r = jodmai(t, "", "", "mail", "list", "--folder", "Sent").ok(t)
	if strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("Sent list %q", r.stdout)
	}
	wait.For(t, 10*time.Second, "mail delivered", func() bool { return len(env.Inbox(t, user)) >= 2 })
	var want []string
	for _, m := range env.Inbox(t, user) {
		want = append(want, string(m.Body))
	}

	r = jodmai(t, "", "", "fetch").ok(t)
	if !strings.HasPrefix(r.stdout, "fetched 2 messages (") || !strings.HasSuffix(r.stdout, "deleted 2\n") {
		t.Fatalf("fetch said %q", r.stdout)
	}
	if n := len(env.Inbox(t, user)); n != 0 {
		t.Fatalf("server kept %d", n)
	}
	for _, w := range want {
		found := false
		ents, _ := os.ReadDir(filepath.Join(maildir, "new"))
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(maildir, "new", e.Name()))
			found = found || string(b) == w
		}
		if !found {
			t.Fatalf("message not stored byte-identical: %q", w)
		}
	}

	r = jodmai(t, "", "", "mail", "list").ok(t)
	if !strings.Contains(r.stdout, "Grüße") || !strings.Contains(r.stdout, "Two") || !strings.Contains(r.stdout, "Ann Äxample") {
		t.Fatalf("list %q", r.stdout)
	}
	n := "1"
	if strings.Index(r.stdout, "Two") < strings.Index(r.stdout, "Grüße") {
		n = "2"
	}
	r = jodmai(t, "", "", "mail", "read", n).ok(t)
	for _, w := range []string{"Subject: Grüße", "Hallo Welt, schöne Grüße", "[attachment: notes.txt (text/plain)]"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("read output %q lacks %q", r.stdout, w)
		}
	}
	jodmai(t, "", "", "mail", "read", "9").fails(t, 1, "no message 9")
	r = jodmai(t, "", "", "mail", "search", "schöne", "WELT").ok(t)
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, "Grüße") {
		t.Fatalf("search %q", r.stdout)
	}
	if r = jodmai(t, "", "", "mail", "search", "nowhere-to-be-found").ok(t); r.stdout != "" {
		t.Fatalf("search %q", r.stdout)
	}
	// Read messages lose their N(ew) mark.
	r = jodmai(t, "", "", "mail", "list").ok(t)
	if strings.Count(r.stdout, " N ") != 1 {
		t.Fatalf("after read, list %q", r.stdout)
	}

	// IMAP (STARTTLS): a new message, fetched and kept.
	env.Deliver(t, user, []byte("Subject: over imap\r\n\r\nhi\r\n"))
	r = jodmai(t, "", "", "fetch", "--imap").ok(t)
	if r.stdout != fmt.Sprintf("fetched 1 messages (%d bytes), deleted 0\n", len("Subject: over imap\r\n\r\nhi\r\n")) {
		// The server may prepend nothing for Deliver; accept any size.
		if !strings.HasPrefix(r.stdout, "fetched 1 messages") {
			t.Fatalf("imap fetch said %q", r.stdout)
		}
	}
	r = jodmai(t, "", "", "sync").ok(t)
	if !strings.HasPrefix(r.stdout, "fetched 0 messages") || !strings.Contains(r.stdout, "flags: ") {
		t.Fatalf("sync said %q", r.stdout)
	}
	jodmai(t, "", "", "fetch", "--pop3", "--imap").fails(t, 2, "exclusive")

	// --bcc: delivered, and not in the header.
	env.AddUser(t, "hid@"+testenv.Domain, "password1")
	jodmai(t, "", "secret copy\n", "send", "--to", user, "--bcc", "hid@"+testenv.Domain, "--subject", "Bcc").ok(t)
	wait.For(t, 10*time.Second, "bcc delivered", func() bool { return len(env.Inbox(t, "hid@"+testenv.Domain)) >= 1 })
	if b := string(env.Inbox(t, "hid@"+testenv.Domain)[0].Body); strings.Contains(b, "hid@") {
		t.Fatalf("bcc address in the message: %q", b)
	}
	jodmai(t, "", "", "send").fails(t, 2, "--to is required")
}

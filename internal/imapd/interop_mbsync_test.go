package imapd_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// TestInteropMbsync syncs a jodmai account with a local Maildir through
// mbsync (isync), both ways, flags and expunges included. It needs the
// mbsync program (Debian package isync).
func TestInteropMbsync(t *testing.T) {
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync not installed (Debian package isync); skipping the mbsync end-to-end test")
	}
	env := interopEnv(t)
	for _, s := range []string{"one", "two", "three"} {
		env.Deliver(t, interopUser, []byte(sessMessage(s)))
	}
	acc, err := env.Users.Account(context.Background(), interopUser)
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.Store.Account(context.Background(), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagFlagged, interopUID(t, a, "INBOX", "two"))

	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail")
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mbsyncrc")
	_, port, _ := strings.Cut(env.Addr("imaps"), "127.0.0.1:")
	conf := strings.Join([]string{
		"IMAPAccount jodmai",
		"Host 127.0.0.1",
		"Port " + port,
		"User " + interopUser,
		"Pass " + sessPass,
		"SSLType IMAPS",
		"CertificateFile " + filepath.Join(env.DataDir, "tls", "cert.pem"),
		"SystemCertificates no",
		"",
		"IMAPStore remote",
		"Account jodmai",
		"",
		"MaildirStore local",
		"Path " + maildir + "/",
		"Inbox " + filepath.Join(maildir, "INBOX"),
		"",
		"Channel sync",
		"Far :remote:",
		"Near :local:",
		"Patterns INBOX",
		"Create Both",
		"Expunge Both",
		"SyncState *",
		"Sync All",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		cmd := exec.Command(mbsync, "-c", cfg, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		t.Logf("mbsync:\n%s", out)
	}

	// 1. Down: three messages, the second flagged.
	run()
	local := interopMaildir(t, filepath.Join(maildir, "INBOX"))
	if len(local) != 3 {
		t.Fatalf("after the first sync: %d local messages, want 3: %v", len(local), local)
	}
	for subject, flags := range map[string]string{"one": "", "two": "F", "three": ""} {
		m, ok := local[subject]
		if !ok || m.flags != flags {
			t.Errorf("local %q: %+v (want flags %q)", subject, m, flags)
		}
	}

	// 2. Changes on both sides: locally "one" seen, "three" trashed, a new
	// message; on the server "two" answered.
	os.Rename(local["one"].path, interopSetFlags(local["one"].path, "S"))
	os.Rename(local["three"].path, interopSetFlags(local["three"].path, "T"))
	newMsg := "From: dave@example.org\nTo: bob@example.net\nSubject: written locally\nMessage-ID: <local@example.org>\nDate: Mon, 2 Mar 2026 11:00:00 +0000\n\nDraft body.\n"
	if err := os.WriteFile(filepath.Join(maildir, "INBOX", "new", "1700000000.1_1.host"), []byte(newMsg), 0o600); err != nil {
		t.Fatal(err)
	}
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagAnswered, interopUID(t, a, "INBOX", "two"))
	run()

	server := map[string]store.Flags{}
	for _, m := range env.Inbox(t, interopUser) {
		server[interopSubject(string(m.Body))] = m.Flags
	}
	want := map[string]store.Flags{"one": store.FlagSeen, "two": store.FlagFlagged | store.FlagAnswered, "written locally": 0}
	for subject, flags := range want {
		got, ok := server[subject]
		if !ok || got != flags {
			t.Errorf("server %q: flags %v (present %v), want %v", subject, got, ok, flags)
		}
	}
	if _, ok := server["three"]; ok || len(server) != 3 {
		t.Errorf("server INBOX after the second sync: %v", server)
	}
	local = interopMaildir(t, filepath.Join(maildir, "INBOX"))
	if m := local["two"]; m.flags != "FR" {
		t.Errorf("local two: %+v, want flags FR", m)
	}
	if len(local) != 3 {
		t.Errorf("local INBOX after the second sync: %v", local)
	}

	// 3. Nothing changed: nothing to do, and nothing breaks.
	run()
	if again := interopMaildir(t, filepath.Join(maildir, "INBOX")); len(again) != 3 {
		t.Errorf("third sync changed the Maildir: %v", again)
	}
}

type interopMaildirMsg struct {
	path, flags string
}

// interopMaildir maps the subjects of a Maildir folder's messages to
// their files and flags.
func interopMaildir(t *testing.T, dir string) map[string]interopMaildirMsg {
	t.Helper()
	out := map[string]interopMaildirMsg{}
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, sub, e.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			_, flags, _ := strings.Cut(e.Name(), ":2,")
			out[interopSubject(string(b))] = interopMaildirMsg{path: p, flags: flags}
		}
	}
	return out
}

// interopSetFlags returns the Maildir file name with flag added.
func interopSetFlags(path, flag string) string {
	dir, name := filepath.Split(path)
	base, flags, _ := strings.Cut(name, ":2,")
	fl := []byte(flags + flag)
	slices.Sort(fl)
	return filepath.Join(filepath.Dir(filepath.Clean(dir)), "cur", base+":2,"+string(fl))
}

// interopSubject returns the Subject of a message, without the "Hello,"
// prefix sessMessage subjects lack.
func interopSubject(msg string) string {
	for l := range strings.SplitSeq(strings.ReplaceAll(msg, "\r\n", "\n"), "\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
		if l == "" {
			break
		}
	}
	return ""
}

// interopUID returns the UID of the message with subject in a mailbox.
func interopUID(t *testing.T, a *store.Account, mailbox, subject string) uint32 {
	t.Helper()
	_, msgs := sessMailbox(t, a, mailbox)
	for _, m := range msgs {
		f, err := a.OpenBody(m)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if interopSubject(string(b)) == subject {
			return m.UID
		}
	}
	t.Fatalf("no message %q in %s", subject, mailbox)
	return 0
}

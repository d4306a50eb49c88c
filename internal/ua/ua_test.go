package ua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

func testAccount(t *testing.T, env *testenv.Env, user string) *Account {
	t.Helper()
	cfg := fmt.Sprintf(`
[accounts.t]
from = "Test User <%[1]s>"
username = "%[1]s"
password_env = "UNUSED_PW"
maildir = %[2]q
tls_ca_file = %[3]q
smtp = { server = %[4]q, tls = "starttls" }
pop3 = { server = %[5]q, tls = "starttls" }
imap = { server = %[6]q, tls = "implicit" }
`, user, filepath.Join(t.TempDir(), "Mail"), filepath.Join(env.DataDir, "tls", "cert.pem"),
		env.Addr("submission"), env.Addr("pop3"), env.Addr("imaps"))
	accs, err := ParseAccounts([]byte(cfg), "test")
	if err != nil {
		t.Fatal(err)
	}
	acc, err := accs.Account("")
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

func localBodies(t *testing.T, dir string) []string {
	t.Helper()
	md, err := mailfile.OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := md.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(e.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func serverBodies(t *testing.T, env *testenv.Env, user string) []string {
	var out []string
	for _, m := range env.Inbox(t, user) {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

func sendN(t *testing.T, acc *Account, to string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		from, _ := ParseAddresses([]string{acc.From})
		rcpt, _ := ParseAddresses([]string{to})
		msg, err := Compose(Draft{From: from[0], To: rcpt, Subject: fmt.Sprintf("Grüße %d", i), Body: fmt.Sprintf("hello %d\n.leading dot\nnaïve\n", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := acc.Send(ctx, "password1", from[0].Address, []string{to}, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
}

func waitInbox(t *testing.T, env *testenv.Env, user string, n int) {
	t.Helper()
	wait.For(t, 10*time.Second, fmt.Sprintf("%d messages in the inbox of %s", n, user), func() bool { return len(env.Inbox(t, user)) >= n })
}

func equalSets(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("message %d differs:\ngot  %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestSendFetchPOP3(t *testing.T) {
	env := testenv.Start(t)
	user := "ann@" + testenv.Domain
	env.AddUser(t, user, "password1")
	acc := testAccount(t, env, user)
	sendN(t, acc, user, 3)
	waitInbox(t, env, user, 3)
	want := serverBodies(t, env, user)
	ctx := context.Background()

	// --keep twice: the second run fetches nothing.
	res, err := acc.FetchPOP3(ctx, "password1", FetchOptions{Keep: true})
	if err != nil || res.Fetched != 3 || res.Deleted != 0 {
		t.Fatalf("keep fetch: %v %v", res, err)
	}
	res, err = acc.FetchPOP3(ctx, "password1", FetchOptions{Keep: true})
	if err != nil || res.Fetched != 0 {
		t.Fatalf("second keep fetch: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	if n := len(env.Inbox(t, user)); n != 3 {
		t.Fatalf("server has %d after --keep", n)
	}

	// A new message, then a deleting fetch: only the new one is downloaded,
	// all are deleted.
	sendN(t, acc, user, 1)
	waitInbox(t, env, user, 4)
	want = serverBodies(t, env, user)
	res, err = acc.FetchPOP3(ctx, "password1", FetchOptions{})
	if err != nil || res.Fetched != 1 || res.Deleted != 4 {
		t.Fatalf("delete fetch: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	if n := len(env.Inbox(t, user)); n != 0 {
		t.Fatalf("server has %d after fetch", n)
	}
	// The Sent copy is not touched by fetch: send stores nothing here
	// (the command does), so only check the summary string.
	if s := res.String(); s != "fetched 1 messages ("+fmt.Sprint(res.Bytes)+" bytes), deleted 4" {
		t.Errorf("summary %q", s)
	}
}

func TestFetchPOP3APOP(t *testing.T) {
	env := testenv.Start(t)
	user := "bob@" + testenv.Domain
	env.AddUser(t, user, "password1")
	if err := env.Users.SetAPOPSecret(context.Background(), user, "apop-secret"); err != nil {
		t.Fatal(err)
	}
	acc := testAccount(t, env, user)
	acc.APOP = true
	env.Deliver(t, user, []byte("Subject: a\r\n\r\n.dot\r\nbody\r\n"))
	want := serverBodies(t, env, user)
	res, err := acc.FetchPOP3(context.Background(), "apop-secret", FetchOptions{})
	if err != nil || res.Fetched != 1 {
		t.Fatalf("apop fetch: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	// The APOP secret is not the password: a wrong one fails.
	env.Deliver(t, user, []byte("Subject: b\r\n\r\nx\r\n"))
	if _, err := acc.FetchPOP3(context.Background(), "password1", FetchOptions{}); err == nil {
		t.Fatal("APOP with the login password succeeded")
	}
}

var errCrash = errors.New("simulated crash")

func TestFetchPOP3Interrupted(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			env := testenv.Start(t)
			user := "cat@" + testenv.Domain
			env.AddUser(t, user, "password1")
			acc := testAccount(t, env, user)
			for i := range 5 {
				env.Deliver(t, user, []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)))
			}
			want := serverBodies(t, env, user)
			ctx := context.Background()
			_, err := acc.FetchPOP3(ctx, "password1", FetchOptions{Keep: keep, AfterStore: func(n int) error {
				if n == 2 {
					return errCrash
				}
				return nil
			}})
			if !errors.Is(err, errCrash) {
				t.Fatalf("err %v", err)
			}
			if n := len(env.Inbox(t, user)); n != 5 {
				t.Fatalf("server has %d after a dropped session", n)
			}
			res, err := acc.FetchPOP3(ctx, "password1", FetchOptions{Keep: keep})
			if err != nil || res.Fetched != 3 {
				t.Fatalf("rerun: %v %v", res, err)
			}
			equalSets(t, localBodies(t, acc.Maildir), want)
		})
	}
}

func TestFetchIMAP(t *testing.T) {
	env := testenv.Start(t)
	user := "dan@" + testenv.Domain
	env.AddUser(t, user, "password1")
	acc := testAccount(t, env, user)
	for i := range 4 {
		env.Deliver(t, user, []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)))
	}
	ctx := context.Background()
	_, err := acc.FetchIMAP(ctx, "password1", FetchOptions{AfterStore: func(n int) error {
		if n == 2 {
			return errCrash
		}
		return nil
	}})
	if !errors.Is(err, errCrash) {
		t.Fatalf("err %v", err)
	}
	res, err := acc.FetchIMAP(ctx, "password1", FetchOptions{})
	if err != nil || res.Fetched != 2 {
		t.Fatalf("rerun: %v %v", res, err)
	}
	res, err = acc.FetchIMAP(ctx, "password1", FetchOptions{})
	if err != nil || res.Fetched != 0 {
		t.Fatalf("third run: %v %v", res, err)
	}
	env.Deliver(t, user, []byte("Subject: new\r\n\r\nnew\r\n"))
	want := serverBodies(t, env, user)
	res, err = acc.FetchIMAP(ctx, "password1", FetchOptions{Expunge: true})
	if err != nil || res.Fetched != 1 || res.Deleted != 5 {
		t.Fatalf("expunge run: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	if n := len(env.Inbox(t, user)); n != 0 {
		t.Fatalf("server has %d after expunge", n)
	}
	for _, m := range want {
		if strings.Contains(m, "\\Seen") {
			t.Fatal("unexpected")
		}
	}
	_ = bytes.MinRead
}

func TestFetchIMAPUIDValidityChange(t *testing.T) {
	env := testenv.Start(t)
	user := "eve@" + testenv.Domain
	env.AddUser(t, user, "password1")
	acc := testAccount(t, env, user)
	env.Deliver(t, user, []byte("Subject: one\r\n\r\n1\r\n"))
	env.Deliver(t, user, []byte("Subject: two\r\n\r\n2\r\n"))
	ctx := context.Background()
	if res, err := acc.FetchIMAP(ctx, "password1", FetchOptions{}); err != nil || res.Fetched != 2 {
		t.Fatalf("%v %v", res, err)
	}
	// Pretend the last fetch saw another UIDVALIDITY: everything comes again.
	led := filepath.Join(acc.Maildir, imapLedger)
	if err := os.WriteFile(led, []byte("D INBOX:1:99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res, err := acc.FetchIMAP(ctx, "password1", FetchOptions{}); err != nil || res.Fetched != 2 {
		t.Fatalf("after UIDVALIDITY change: %v %v", res, err)
	}
	if res, err := acc.FetchIMAP(ctx, "password1", FetchOptions{}); err != nil || res.Fetched != 0 {
		t.Fatalf("again: %v %v", res, err)
	}
}

func TestPOP3ClientUserPass(t *testing.T) {
	env := testenv.Start(t)
	user := "fay@" + testenv.Domain
	env.AddUser(t, user, "password1")
	env.Deliver(t, user, []byte("Subject: x\r\n\r\n..\r\n.\r\n"))
	acc := testAccount(t, env, user)
	acc.POP3.TLS = TLSImplicit
	acc.POP3.Server = env.Addr("pop3s")
	conn, _, err := acc.dial(context.Background(), acc.POP3)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewPOP3Client(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.User(user, "wrong-password"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.User(user, "password1"); err != nil {
		t.Fatal(err)
	}
	n, size, err := c.Stat()
	if err != nil || n != 1 {
		t.Fatalf("stat %d %d %v", n, size, err)
	}
	msgs, err := c.List(true)
	if err != nil || len(msgs) != 1 || msgs[0].UIDL == "" || msgs[0].Size != size {
		t.Fatalf("list %+v %v", msgs, err)
	}
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != "Subject: x\r\n\r\n..\r\n.\r\n" || int64(len(b)) != size {
		t.Fatalf("retr %q", b)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestSyncIMAPFlags(t *testing.T) {
	env := testenv.Start(t)
	user := "gus@" + testenv.Domain
	env.AddUser(t, user, "password1")
	acc := testAccount(t, env, user)
	env.Deliver(t, user, []byte("Subject: one\r\n\r\n1\r\n"))
	env.Deliver(t, user, []byte("Subject: two\r\n\r\n2\r\n"))
	ctx := context.Background()
	res, err := acc.SyncIMAP(ctx, "password1")
	if err != nil || res.Fetched != 2 || res.Up != 0 || res.Down != 0 {
		t.Fatalf("first sync: %v %v", res, err)
	}
	md, _ := mailfile.OpenMaildir(acc.Maildir)
	byBody := func() map[string]mailfile.MaildirEntry {
		out := map[string]mailfile.MaildirEntry{}
		ents, _ := md.List()
		for _, e := range ents {
			b, _ := os.ReadFile(e.Path)
			out[string(b)] = e
		}
		return out
	}
	// Locally: message one read. On the server: message two flagged.
	one := byBody()["Subject: one\r\n\r\n1\r\n"]
	if _, err := md.MarkSeen(one); err != nil {
		t.Fatal(err)
	}
	c, err := acc.DialIMAP(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err = acc.SyncIMAP(ctx, "password1")
	if err != nil || res.Up != 1 || res.Down != 1 {
		t.Fatalf("second sync: %v %v", res, err)
	}
	if e := byBody()["Subject: two\r\n\r\n2\r\n"]; e.Letters != "F" {
		t.Fatalf("local flags of two: %q", e.Letters)
	}
	flags, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(flags) != 1 || imapToLetters(flags[0].Flags) != "S" {
		t.Fatalf("server flags of one: %v %v", flags, err)
	}
	// A message already \Seen on the server arrives in cur/ with S.
	env.Deliver(t, user, []byte("Subject: three\r\n\r\n3\r\n"))
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if res, err := acc.FetchIMAP(ctx, "password1", FetchOptions{}); err != nil || res.Fetched != 1 {
		t.Fatalf("fetch three: %v %v", res, err)
	}
	if e := byBody()["Subject: three\r\n\r\n3\r\n"]; e.Letters != "S" || !strings.Contains(e.Path, "/cur/") {
		t.Fatalf("three stored as %+v", e)
	}
	c.Logout().Wait()
	// Unchanged: nothing to do.
	if res, err = acc.SyncIMAP(ctx, "password1"); err != nil || res.Up != 0 || res.Down != 0 || res.Fetched != 0 {
		t.Fatalf("third sync: %v %v", res, err)
	}
}

func TestMergeFlags(t *testing.T) {
	for _, tc := range []struct{ base, local, server, want string }{
		{"", "", "", ""},
		{"", "S", "", "S"},
		{"", "", "S", "S"},
		{"S", "", "S", ""},
		{"S", "S", "", ""},
		{"S", "F", "SR", "FR"},
	} {
		if got := merge(tc.base, tc.local, tc.server); got != tc.want {
			t.Errorf("merge(%q, %q, %q) = %q, want %q", tc.base, tc.local, tc.server, got, tc.want)
		}
	}
}

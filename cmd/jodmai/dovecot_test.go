package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/dovecottest"
	"github.com/jodmai/jodmai/internal/ua"
	"github.com/jodmai/jodmai/internal/userdb"
)

// A BLF-CRYPT hash of "correct horse" made by Dovecot (doveadm pw).
const bcryptHash = "{BLF-CRYPT}$2y$05$U/Yjx.97Gm7gv2uQtNIDauSGOBTmHDMJGc/OYlkLKypH6hGqgyUCe"

// dovecotServer is a private Dovecot on loopback.
type dovecotServer struct {
	dir, imap, pop3 string
}

// startDovecot starts Debian's Dovecot (when installed, as root) with the
// given passwd-file and Maildirs below dir/mail/<domain>/<user>.
func startDovecot(t *testing.T, passwd string) *dovecotServer {
	t.Helper()
	d := dovecottest.Start(t, dovecottest.Options{Passwd: passwd, MailPath: "%d/%n", AuthMechanisms: "plain login"})
	return &dovecotServer{dir: d.Dir, imap: d.IMAP, pop3: d.POP3}
}

func imapLogin(t *testing.T, addr, user, pw string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("imap dial %s: %v", addr, err)
	}
	if err := c.Login(user, pw).Wait(); err != nil {
		c.Close()
		t.Fatalf("imap login %s at %s: %v", user, addr, err)
	}
	return c
}

// boxState is what an IMAP client keeps of a mailbox to stay in sync.
type boxState struct {
	validity uint32
	next     imap.UID
	flags    map[imap.UID]string // sorted flags, without \Recent
}

func imapState(t *testing.T, c *imapclient.Client, mbox string) boxState {
	t.Helper()
	st, err := c.Status(mbox, &imap.StatusOptions{UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", mbox, err)
	}
	out := boxState{validity: st.UIDValidity, next: st.UIDNext, flags: map[imap.UID]string{}}
	sel, err := c.Select(mbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mbox, err)
	}
	if sel.NumMessages == 0 {
		return out
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", mbox, err)
	}
	for _, m := range msgs {
		var fl []string
		for _, f := range m.Flags {
			if !strings.EqualFold(string(f), `\Recent`) {
				fl = append(fl, strings.ToLower(string(f)))
			}
		}
		slices.Sort(fl)
		out.flags[m.UID] = strings.Join(fl, " ")
	}
	return out
}

func pop3UIDLs(t *testing.T, addr, user, pw string) []string {
	t.Helper()
	c, err := dialText(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := func(s string) {
		if err := c.PrintfLine("%s", s); err != nil {
			t.Fatal(err)
		}
		l, err := c.ReadLine()
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("%s at %s: %q %v", strings.Fields(s)[0], addr, l, err)
		}
	}
	if _, err := c.ReadLine(); err != nil {
		t.Fatal(err)
	}
	cmd("USER " + user)
	cmd("PASS " + pw)
	cmd("UIDL")
	lines, err := c.ReadDotLines()
	if err != nil {
		t.Fatal(err)
	}
	cmd("QUIT")
	return lines
}

// TestMoveFromDovecot moves two users from a real Dovecot to jodmai, as an
// operator would: accounts with their password hashes (user import of the
// passwd-file) and their mail (import --dovecot-root). An IMAP client and
// a POP3 client ("leave on server") that were in sync with Dovecot are in
// sync with jodmai afterwards: nothing is downloaded again, the flags are
// equal, and the old passwords work.
func TestMoveFromDovecot(t *testing.T) {
	const pw = "correct horse"
	dv := startDovecot(t, "alice@example.org:"+sha512Hash+"::::::\n"+"bob@example.org:"+bcryptHash+"::::::userdb_quota_rule=*:storage=1G\n")

	// Alice's mail, made over IMAP so Dovecot writes its own uidlist,
	// keywords and subscriptions. Dovecot's Maildir++ hierarchy separator
	// is "."; jodmai's is "/".
	c := imapLogin(t, dv.imap, "alice@example.org", pw)
	for _, mb := range []string{"Work", "Lists.go"} {
		if err := c.Create(mb, nil).Wait(); err != nil {
			t.Fatalf("create %s: %v", mb, err)
		}
	}
	appendMsg := func(mbox string, n int, flags ...imap.Flag) {
		t.Helper()
		raw := fmt.Sprintf("From: someone@example.net\r\nTo: alice@example.org\r\nSubject: %s %d\r\nMessage-ID: <%s.%d@example.net>\r\n\r\nBody %d of %s.\r\n", mbox, n, mbox, n, n, mbox)
		cmd := c.Append(mbox, int64(len(raw)), &imap.AppendOptions{Flags: flags})
		cmd.Write([]byte(raw))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append to %s: %v", mbox, err)
		}
	}
	appendMsg("INBOX", 1, imap.FlagSeen)
	appendMsg("INBOX", 2, imap.FlagSeen)
	appendMsg("INBOX", 3, imap.FlagFlagged, "$Label1")
	appendMsg("INBOX", 4, "work", imap.FlagAnswered, imap.FlagSeen)
	appendMsg("INBOX", 5)
	appendMsg("Work", 1, imap.FlagSeen, "work")
	appendMsg("Work", 2, imap.FlagDraft)
	appendMsg("Lists.go", 1, "$Label1", "urgent")
	// UID 2 expunged: UIDs 1, 3, 4, 5 and UIDNEXT 6 are left.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	for _, mb := range []string{"INBOX", "Lists.go"} {
		if err := c.Subscribe(mb).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	boxes := map[string]string{"INBOX": "INBOX", "Work": "Work", "Lists.go": "Lists/go"} // Dovecot -> jodmai
	before := map[string]boxState{}
	for dov := range boxes {
		before[dov] = imapState(t, c, dov)
	}
	c.Logout().Wait()
	c.Close()
	if st := before["INBOX"]; st.next != 6 || len(st.flags) != 4 {
		t.Fatalf("Dovecot INBOX: %+v", st)
	}

	// Bob reads with POP3, leaving mail on the server.
	c = imapLogin(t, dv.imap, "bob@example.org", pw)
	for i := 1; i <= 3; i++ {
		raw := fmt.Sprintf("Subject: pop %d\r\n\r\nbody %d\r\n", i, i)
		cmd := c.Append("INBOX", int64(len(raw)), nil)
		cmd.Write([]byte(raw))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
	c.Close()
	bobUIDLs := pop3UIDLs(t, dv.pop3, "bob@example.org", pw)

	// The clients, in sync with Dovecot.
	alice := &ua.Account{Name: "alice", Username: "alice@example.org", Maildir: filepath.Join(t.TempDir(), "Mail"),
		IMAP: &ua.Server{Server: dv.imap, TLS: ua.TLSNone}}
	if res, err := alice.SyncIMAP(ctx, pw, "INBOX", "Work"); err != nil || res.Fetched != 6 {
		t.Fatalf("alice's first sync with Dovecot: %v %v", res, err)
	}
	bob := &ua.Account{Name: "bob", Username: "bob@example.org", Maildir: filepath.Join(t.TempDir(), "Mail"),
		POP3: &ua.Server{Server: dv.pop3, TLS: ua.TLSNone}}
	if res, err := bob.FetchPOP3(ctx, pw, ua.FetchOptions{Keep: true}); err != nil || res.Fetched != 3 {
		t.Fatalf("bob's first fetch from Dovecot: %v %v", res, err)
	}

	// The move.
	env := testenv.Start(t)
	jodmai(t, env.DataDir, "", "user", "import", "--format", "dovecot", filepath.Join(dv.dir, "passwd")).ok(t)
	r := jodmai(t, env.DataDir, "", "import", "--dovecot-root", filepath.Join(dv.dir, "mail")).ok(t)
	t.Logf("import: %s", r.stdout)
	if !strings.Contains(r.stdout, "alice@example.org: imported 7 messages") || !strings.Contains(r.stdout, "bob@example.org: imported 3 messages") {
		t.Errorf("import report: %s", r.stdout)
	}
	// Again: nothing new.
	r = jodmai(t, env.DataDir, "", "import", "--dovecot-root", filepath.Join(dv.dir, "mail")).ok(t)
	if !strings.Contains(r.stdout, "alice@example.org: imported 0 messages") || !strings.Contains(r.stdout, "7 already here") {
		t.Errorf("second import report: %s", r.stdout)
	}

	// What an IMAP client sees: the same UIDVALIDITY, UIDs and flags,
	// UIDNEXT at least Dovecot's; the subscriptions as they were.
	c = imapLogin(t, env.Addr("imap"), "alice@example.org", pw)
	for dov, ours := range boxes {
		got, want := imapState(t, c, ours), before[dov]
		if got.validity != want.validity || got.next < want.next || !mapsEqual(got.flags, want.flags) {
			t.Errorf("%s (Dovecot %s): jodmai %+v, Dovecot %+v", ours, dov, got, want)
		}
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var subscribed []string
	for _, s := range subs {
		subscribed = append(subscribed, s.Mailbox)
	}
	if !slices.Contains(subscribed, "INBOX") || !slices.Contains(subscribed, "Lists/go") || slices.Contains(subscribed, "Work") {
		t.Errorf("subscribed %q, want INBOX and Lists/go, not Work", subscribed)
	}
	c.Logout().Wait()
	c.Close()
	if got := pop3UIDLs(t, env.Addr("pop3"), "bob@example.org", pw); !slices.Equal(got, bobUIDLs) {
		t.Errorf("POP3 UIDLs: jodmai %q, Dovecot %q", got, bobUIDLs)
	}

	// The same clients, pointed at jodmai: nothing to download.
	alice.IMAP.Server = env.Addr("imap")
	if res, err := alice.SyncIMAP(ctx, pw, "INBOX", "Work"); err != nil || res.Fetched != 0 || res.Up != 0 || res.Down != 0 {
		t.Errorf("alice's sync with jodmai: %v %v", res, err)
	}
	bob.POP3.Server = env.Addr("pop3")
	if res, err := bob.FetchPOP3(ctx, pw, ua.FetchOptions{Keep: true}); err != nil || res.Fetched != 0 {
		t.Errorf("bob's fetch from jodmai: %v %v", res, err)
	}

	// They logged in with their Dovecot passwords; the hashes are ours now.
	for _, u := range []string{"alice@example.org", "bob@example.org"} {
		acc, h, err := env.Users.Credentials(ctx, u)
		if err != nil || userdb.NeedsRehash(h) {
			t.Errorf("%s after login: hash %q, %v", u, h, err)
		}
		if u == "bob@example.org" && acc.QuotaBytes != 1<<30 {
			t.Errorf("bob's quota %d, want 1 GiB", acc.QuotaBytes)
		}
	}
}

func mapsEqual(a, b map[imap.UID]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

package ua

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/jodmai/jodmai/internal/testenv"

	"github.com/jodmai/jodmai/internal/mailfile"
)

// TestSyncIMAPMailboxes: sync beyond INBOX. Each mailbox is fetched into
// its Maildir++ folder and its flags synced both ways, independently of
// the others.
func TestSyncIMAPMailboxes(t *testing.T) {
	env := testenv.Start(t)
	user := "hal@" + testenv.Domain
	env.AddUser(t, user, "password1")
	acc := testAccount(t, env, user)
	ctx := context.Background()
	env.Deliver(t, user, []byte("Subject: inbox\r\n\r\ni\r\n"))

	c, err := acc.DialIMAP(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Create("Archive/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ mbox, body string }{
		{"Archive/2024", "Subject: old\r\n\r\no\r\n"},
		{"Archive/2024", "Subject: older\r\n\r\np\r\n"},
		{"Sent", "Subject: sent\r\n\r\ns\r\n"},
	} {
		app := c.Append(m.mbox, int64(len(m.body)), nil)
		app.Write([]byte(m.body))
		if err := app.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := app.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	names, err := acc.IMAPMailboxes(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"INBOX", "Sent", "Archive", "Archive/2024"} {
		if !slices.Contains(names, want) {
			t.Errorf("IMAPMailboxes = %q, lacks %q", names, want)
		}
	}

	res, err := acc.SyncIMAP(ctx, "password1", "INBOX", "Archive/2024")
	if err != nil || res.Fetched != 3 || res.Up != 0 || res.Down != 0 {
		t.Fatalf("first sync: %v %v", res, err)
	}
	root, _ := mailfile.OpenMaildir(acc.Maildir)
	archive, _ := root.Folder("Archive.2024")
	list := func(md *mailfile.Maildir) []mailfile.MaildirEntry {
		ents, err := md.List()
		if err != nil {
			t.Fatal(err)
		}
		return ents
	}
	if n := len(list(root)); n != 1 {
		t.Fatalf("%d messages in the root Maildir", n)
	}
	ents := list(archive)
	if len(ents) != 2 {
		t.Fatalf("%d messages in .Archive.2024", len(ents))
	}
	if _, err := os.Stat(filepath.Join(acc.Maildir, ".Sent")); err == nil {
		t.Error("Sent was fetched though not asked for")
	}

	// Locally: the first archived message read. On the server: the
	// second flagged. INBOX untouched.
	first := ents[0]
	if b, _ := os.ReadFile(first.Path); string(b) != "Subject: old\r\n\r\no\r\n" {
		first = ents[1]
	}
	if _, err := archive.MarkSeen(first); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("Archive/2024", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err = acc.SyncIMAP(ctx, "password1", "INBOX", "Archive/2024")
	if err != nil || res.Fetched != 0 || res.Up != 1 || res.Down != 1 {
		t.Fatalf("second sync: %v %v", res, err)
	}
	got := map[string]string{}
	for _, e := range list(archive) {
		b, _ := os.ReadFile(e.Path)
		got[string(b)] = e.Letters
	}
	if got["Subject: old\r\n\r\no\r\n"] != "S" || got["Subject: older\r\n\r\np\r\n"] != "F" {
		t.Errorf("local flags after sync: %q", got)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 2 || imapToLetters(msgs[0].Flags) != "S" || imapToLetters(msgs[1].Flags) != "F" {
		t.Fatalf("server flags: %v %v", msgs, err)
	}
	// Nothing changed: nothing to do, in any mailbox.
	if res, err = acc.SyncIMAP(ctx, "password1", "INBOX", "Archive/2024"); err != nil || res.Up != 0 || res.Down != 0 || res.Fetched != 0 {
		t.Fatalf("third sync: %v %v", res, err)
	}
	// A sync of INBOX alone leaves the archive's state alone.
	if res, err = acc.SyncIMAP(ctx, "password1"); err != nil || res.Up != 0 || res.Down != 0 {
		t.Fatalf("INBOX sync: %v %v", res, err)
	}
	c.Logout().Wait()
}

package imapd_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

func TestCopyCOPYUID(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for i := 1; i <= 5; i++ {
		flags := ""
		if i == 1 {
			flags = `(\Flagged $Label)`
		}
		c.appendMsg("INBOX", flags, mboxMsg(i))
	}
	uv := appendUIDValidity(t, c, "Archive")
	watcher := mboxLogin(t, env, addr)
	watcher.OK("SELECT Archive")
	c.OK("SELECT INBOX")

	tests := []struct{ cmd, want string }{
		{"COPY 2:4 Archive", "OK [COPYUID " + uv + " 2:4 1:3] COPY completed"},
		{"UID COPY 5,1 Archive", "OK [COPYUID " + uv + " 1,5 4:5] COPY completed"},
		{"COPY 1 nosuch", "NO [TRYCREATE]"},
		{"COPY 6 Archive", "BAD"},
		{"COPY 0 Archive", "BAD"},
		{"COPY 1", "BAD"},
		{"COPY 1 Archive extra", "BAD"},
		// RFC 9051 §6.4.9: UIDs that do not exist are not an error.
		{"UID COPY 99 Archive", "OK COPY completed"},
		// Copy within the same mailbox.
		{"COPY 5 INBOX", "OK [COPYUID " + appendUIDValidity(t, c, "INBOX") + " 5 6] COPY completed"},
	}
	for _, tc := range tests {
		u, tagged := c.Cmd(tc.cmd)
		exact := strings.HasPrefix(tc.want, "OK")
		if (exact && tagged != tc.want) || (!exact && !strings.HasPrefix(tagged, tc.want)) {
			t.Errorf("%s: %q (untagged %q), want %q", tc.cmd, tagged, u, tc.want)
		}
	}
	// COPYUID's pairing: destination UID 1 holds message 2, 5 message 5.
	arch := env.Mailbox(t, addr, "Archive")
	want := []string{mboxMsg(2), mboxMsg(3), mboxMsg(4), mboxMsg(1), mboxMsg(5)}
	if len(arch) != len(want) {
		t.Fatalf("%d messages in Archive", len(arch))
	}
	for i, m := range arch {
		if m.UID != uint32(i+1) || string(m.Body) != want[i] {
			t.Errorf("Archive UID %d: %q, want %q", m.UID, m.Body, want[i])
		}
	}
	// Flags and keywords travel with the copy.
	if m := arch[3]; m.Flags != store.FlagFlagged || len(m.Keywords) != 1 || m.Keywords[0] != "$Label" {
		t.Errorf("copied flags %v %q", m.Flags, m.Keywords)
	}
	if u := watcher.OK("NOOP"); !mboxHas(u, "* 5 EXISTS") {
		t.Errorf("session on the target: %q", u)
	}
	// The source is unchanged.
	if n := len(env.Inbox(t, addr)); n != 6 {
		t.Errorf("INBOX has %d messages", n)
	}
	// COPY works from a read-only mailbox.
	c.OK("EXAMINE INBOX")
	c.Expect("COPY 1 Archive", "OK [COPYUID "+uv+" 1 6]")
}

func TestCopyQuota(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	m1 := mboxMsg(1)
	c.appendMsg("INBOX", "", m1)
	c.appendMsg("INBOX", "", m1)
	if err := env.Users.SetQuota(context.Background(), addr, int64(3*len(m1))); err != nil {
		t.Fatal(err)
	}
	c.OK("SELECT INBOX")
	c.Expect("COPY 1:2 Trash", "NO [OVERQUOTA]")
	if n := len(env.Mailbox(t, addr, "Trash")); n != 0 {
		t.Errorf("%d messages copied over quota", n)
	}
	c.Expect("COPY 1 Trash", "OK [COPYUID ")
	// MOVE does not add to the usage.
	c.Expect("MOVE 1:2 Junk", "OK")
}

func TestMoveCOPYUIDAndExpunges(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for i := 1; i <= 6; i++ {
		c.appendMsg("INBOX", "", mboxMsg(i))
	}
	uv := appendUIDValidity(t, c, "Trash")
	source := mboxLogin(t, env, addr)
	source.OK("SELECT INBOX")
	target := mboxLogin(t, env, addr)
	target.OK("SELECT Trash")
	qr := mboxLogin(t, env, addr)
	qr.OK("ENABLE QRESYNC")
	qr.OK("SELECT INBOX")
	c.OK("SELECT INBOX")

	// RFC 6851 §4.3: COPYUID in an untagged OK, then the expunges.
	u, tagged := c.Cmd("UID MOVE 2:3 Trash")
	mboxSame(t, "UID MOVE", u, []string{"* OK [COPYUID " + uv + " 2:3 1:2] moved", "* 3 EXPUNGE", "* 2 EXPUNGE"})
	if tagged != "OK MOVE completed" {
		t.Errorf("UID MOVE: %q", tagged)
	}
	// The non-UID form sends EXPUNGE too. Messages now: UIDs 1,4,5,6.
	u, _ = c.Cmd("MOVE 2,4 Trash")
	mboxSame(t, "MOVE", u, []string{"* OK [COPYUID " + uv + " 4,6 3:4] moved", "* 4 EXPUNGE", "* 2 EXPUNGE"})

	// Other sessions: EXPUNGE on the source (highest first, each number
	// valid when sent), VANISHED with QRESYNC, EXISTS on the target.
	mboxSame(t, "source session", source.OK("NOOP"), []string{"* 6 EXPUNGE", "* 4 EXPUNGE", "* 3 EXPUNGE", "* 2 EXPUNGE", "* 2 RECENT"})
	mboxSame(t, "QRESYNC session", qr.OK("NOOP"), []string{"* VANISHED 2:4,6"})
	if u := target.OK("NOOP"); !mboxHas(u, "* 4 EXISTS") {
		t.Errorf("target session: %q", u)
	}
	if got := mboxUIDs(t, env, addr, "INBOX"); !mboxUIDsEqual(got, []uint32{1, 5}) {
		t.Errorf("INBOX UIDs %v", got)
	}
	trash := env.Mailbox(t, addr, "Trash")
	for i, want := range []string{mboxMsg(2), mboxMsg(3), mboxMsg(4), mboxMsg(6)} {
		if string(trash[i].Body) != want {
			t.Errorf("Trash UID %d: %q", trash[i].UID, trash[i].Body)
		}
	}

	// QRESYNC session's own MOVE reports VANISHED.
	u, _ = qr.Cmd("UID MOVE 5 Trash")
	mboxSame(t, "QRESYNC MOVE", u, []string{"* OK [COPYUID " + uv + " 5 5] moved", "* VANISHED 5"})

	c.Expect("MOVE 1 nosuch", "NO [TRYCREATE]")
	c.Expect("MOVE 3 Trash", "BAD")
	c.OK("EXAMINE INBOX")
	c.Expect("MOVE 1 Trash", "NO [READ-ONLY]")
	c.Expect("UID MOVE 1 Trash", "NO [READ-ONLY]")
	if got := mboxUIDs(t, env, addr, "INBOX"); !mboxUIDsEqual(got, []uint32{1}) {
		t.Errorf("INBOX UIDs %v after refused MOVEs", got)
	}
}

// A message expunged by another session but not yet announced to this one
// is refused with EXPUNGEISSUED (RFC 5530), and nothing is copied.
func TestCopyExpungeIssued(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for i := 1; i <= 3; i++ {
		c.appendMsg("INBOX", "", mboxMsg(i))
	}
	c.OK("SELECT INBOX")
	other := mboxLogin(t, env, addr)
	other.OK("SELECT INBOX")
	other.OK("UID MOVE 2 Trash")
	// A non-UID FETCH takes the change in without announcing the
	// expunge (RFC 9051 §7.5.1).
	if u, _ := c.Cmd("FETCH 1 (UID)"); len(mboxGrep(u, "* 2 EXPUNGE")) != 0 {
		t.Fatalf("EXPUNGE after FETCH: %q", u)
	}
	// The NO comes with the EXPUNGE the client was missing (COPY allows
	// it, RFC 9051 §7.5.1).
	u := c.Expect("COPY 1:3 Archive", "NO [EXPUNGEISSUED]")
	mboxSame(t, "COPY untagged", u, []string{"* 2 EXPUNGE", "* 2 RECENT"})
	if n := len(env.Mailbox(t, addr, "Archive")); n != 0 {
		t.Errorf("%d messages copied", n)
	}
	other.OK("UID MOVE 3 Trash")
	c.Cmd("FETCH 1 (UID)")
	c.Expect("UID MOVE 3 Archive", "NO [EXPUNGEISSUED]")
	// Once announced, the rest copies.
	c.Expect("COPY 1 Archive", "OK [COPYUID ")
}

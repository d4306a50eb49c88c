package imapd_test

import (
	"context"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// expungeFlag sets \Deleted on uids of a mailbox through the store, as
// another client would.
func expungeFlag(t *testing.T, a *store.Account, mailbox string, uids ...uint32) {
	t.Helper()
	ctx := context.Background()
	mb, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetFlags(ctx, mb.ID, uids, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
}

func TestExpungeRenumbering(t *testing.T) {
	env, addr := mboxUser(t)
	a := mboxAccount(t, env, addr)
	c := mboxLogin(t, env, addr)
	c.Expect("EXPUNGE", "BAD")
	for i := 1; i <= 6; i++ {
		c.appendMsg("INBOX", "", mboxMsg(i))
	}
	other := mboxLogin(t, env, addr)
	other.OK("SELECT INBOX")
	c.OK("SELECT INBOX")
	mboxSame(t, "nothing to expunge", c.OK("EXPUNGE"), nil)
	c.Expect("EXPUNGE 1", "BAD")

	expungeFlag(t, a, "INBOX", 2, 4, 5)
	// Highest first, so every number is valid when sent: 5, 4, 2. The
	// flag changes need no FETCH: those messages are gone.
	mboxSame(t, "EXPUNGE", c.OK("EXPUNGE"), []string{"* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE"})
	if got := mboxUIDs(t, env, addr, "INBOX"); !mboxUIDsEqual(got, []uint32{1, 3, 6}) {
		t.Errorf("UIDs left %v", got)
	}
	// Sequence numbers are renumbered: message 3 is now UID 6.
	c.Expect("COPY 3 Trash", "OK [COPYUID "+appendUIDValidity(t, c, "Trash")+" 6 1]")
	c.Expect("COPY 4 Trash", "BAD")
	// other selected first: the messages are recent to it, and RECENT
	// follows its count (RFC 3501 §7.3.2).
	mboxSame(t, "other session", mboxGrep(other.OK("NOOP"), "* "), []string{"* 5 EXPUNGE", "* 4 EXPUNGE", "* 2 EXPUNGE", "* 3 RECENT"})

	c.OK("EXAMINE INBOX")
	expungeFlag(t, a, "INBOX", 1)
	c.Expect("EXPUNGE", "NO [READ-ONLY]")
	c.Expect("UID EXPUNGE 1", "NO [READ-ONLY]")
	if got := mboxUIDs(t, env, addr, "INBOX"); !mboxUIDsEqual(got, []uint32{1, 3, 6}) {
		t.Errorf("UIDs left %v after read-only EXPUNGE", got)
	}
}

// RFC 4315 §2.1: UID EXPUNGE removes only \Deleted messages in the set.
func TestExpungeUIDSubset(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for i := 1; i <= 5; i++ {
		c.appendMsg("INBOX", `(\Deleted)`, mboxMsg(i))
	}
	c.appendMsg("INBOX", "", mboxMsg(6))
	c.OK("SELECT INBOX")
	mboxSame(t, "UID EXPUNGE 2:3,6", c.OK("UID EXPUNGE 2:3,6"), []string{"* 3 EXPUNGE", "* 2 EXPUNGE", "* 4 RECENT"})
	mboxSame(t, "UID EXPUNGE 99", c.OK("UID EXPUNGE 99"), nil)
	mboxSame(t, "UID EXPUNGE 5:*", c.OK("UID EXPUNGE 5:*"), []string{"* 3 EXPUNGE", "* 3 RECENT"})
	if got := mboxUIDs(t, env, addr, "INBOX"); !mboxUIDsEqual(got, []uint32{1, 4, 6}) {
		t.Errorf("UIDs left %v", got)
	}
	c.Expect("UID EXPUNGE", "BAD")
	c.Expect("UID EXPUNGE x", "BAD")
	mboxSame(t, "EXPUNGE", c.OK("EXPUNGE"), []string{"* 2 EXPUNGE", "* 1 EXPUNGE", "* 1 RECENT"})
}

// A message added (flagged \Deleted) by someone else and not yet announced
// is not expunged: no EXPUNGE may name a message the client never saw.
func TestExpungeOnlyKnownMessages(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.appendMsg("INBOX", `(\Deleted)`, mboxMsg(1))
	c.OK("SELECT INBOX")
	other := mboxLogin(t, env, addr)
	other.appendMsg("INBOX", `(\Deleted)`, mboxMsg(2))
	mboxSame(t, "EXPUNGE", c.OK("EXPUNGE"), []string{"* 1 EXPUNGE", "* 1 EXISTS", "* 1 RECENT"})
	mboxSame(t, "second EXPUNGE", c.OK("EXPUNGE"), []string{"* 1 EXPUNGE", "* 0 RECENT"})
	if n := len(env.Inbox(t, addr)); n != 0 {
		t.Errorf("%d messages left", n)
	}
}

// RFC 7162 §3.2.7, §3.2.9: with CONDSTORE/QRESYNC the completion carries
// HIGHESTMODSEQ; QRESYNC announces VANISHED.
func TestExpungeCondstore(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	for i := 1; i <= 4; i++ {
		c.appendMsg("INBOX", `(\Deleted)`, mboxMsg(i))
	}
	c.OK("ENABLE QRESYNC")
	c.OK("SELECT INBOX")
	u, tagged := c.Cmd("UID EXPUNGE 1:2")
	mboxSame(t, "VANISHED", u, []string{"* VANISHED 1:2", "* 2 RECENT"})
	hms := mboxStatusItems(t, c, "INBOX", "HIGHESTMODSEQ")
	if tagged != "OK ["+hms+"] UID EXPUNGE completed" {
		t.Errorf("UID EXPUNGE: %q, STATUS %s", tagged, hms)
	}
	u, tagged = c.Cmd("EXPUNGE")
	mboxSame(t, "VANISHED", u, []string{"* VANISHED 3:4", "* 0 RECENT"})
	if hms = mboxStatusItems(t, c, "INBOX", "HIGHESTMODSEQ"); tagged != "OK ["+hms+"] EXPUNGE completed" {
		t.Errorf("EXPUNGE: %q, STATUS %s", tagged, hms)
	}
}

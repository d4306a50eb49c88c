package imapd_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// SELECT / EXAMINE / CLOSE / UNSELECT, and how changes made by others
// reach a selected session (RFC 9051 §6.3.2, §7.5.1).

func sessSetFlags(t testing.TB, a *store.Account, mailbox string, op store.FlagOp, f store.Flags, uids ...uint32) {
	t.Helper()
	mb, _ := sessMailbox(t, a, mailbox)
	if _, err := a.SetFlags(context.Background(), mb.ID, uids, store.FlagUpdate{Op: op, Flags: f}); err != nil {
		t.Fatal(err)
	}
}

func sessExpunge(t testing.TB, a *store.Account, mailbox string, uids ...uint32) {
	t.Helper()
	mb, _ := sessMailbox(t, a, mailbox)
	if _, err := a.Expunge(context.Background(), mb.ID, uids); err != nil {
		t.Fatal(err)
	}
}

func TestSessionSelect(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 3; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	a := h.account(sessAlice)
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagSeen, 1)
	mb, _ := sessMailbox(t, a, "INBOX")

	c := h.dial()
	c.login(sessAlice, sessPass)
	u, r := c.Cmd("SELECT INBOX")
	want := []string{
		"* 3 EXISTS",
		"* 3 RECENT", // the first session to select: all are recent to it
		"* OK [UNSEEN 2] first unseen message",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] flags permitted`,
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", mb.UIDValidity),
		"* OK [UIDNEXT 4] predicted next UID",
	}
	for _, w := range want {
		if !slices.Contains(u, w) {
			t.Errorf("SELECT lacks %q: %q", w, u)
		}
	}
	if sessFind(u, "* OK [MAILBOXID (") == "" || sessFind(u, "* OK [HIGHESTMODSEQ") != "" {
		t.Errorf("SELECT: %q", u)
	}
	if r != "OK [READ-WRITE] SELECT completed" {
		t.Errorf("SELECT reply %q", r)
	}
	u, r = c.Cmd(`EXAMINE "inbox" (CONDSTORE)`)
	if r != "OK [READ-ONLY] EXAMINE completed" || !slices.Contains(u, "* OK [PERMANENTFLAGS ()] read-only mailbox") || sessCode(u, "HIGHESTMODSEQ") != mb.HighestModSeq {
		t.Errorf("EXAMINE: %q %q (HIGHESTMODSEQ %d)", u, r, mb.HighestModSeq)
	}
	c.Expect("SELECT Nonexistent", "NO [NONEXISTENT]")
	c.Expect("CLOSE", "BAD") // the failed SELECT left no mailbox selected
	c.Expect("SELECT", "BAD")
	c.Expect("SELECT INBOX (FOO)", "BAD")
	c.Expect("FETCH 1 FLAGS", "BAD") // authenticated state only

	// IMAP4rev2: no RECENT or UNSEEN, a LIST response instead.
	c2 := h.dial()
	c2.login(sessAlice, sessPass)
	c2.OK("ENABLE IMAP4rev2")
	u = c2.OK("SELECT Sent")
	if sessHas(u, "RECENT") || sessHas(u, "UNSEEN") || !slices.Contains(u, `* LIST (\Sent) "/" Sent`) {
		t.Errorf("IMAP4rev2 SELECT: %q", u)
	}
}

// TestSessionClose: CLOSE expunges \Deleted messages silently, unless the
// mailbox is read-only; UNSELECT never does (RFC 9051 §6.4.1, §6.4.2).
func TestSessionClose(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 4; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	a := h.account(sessAlice)
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagDeleted, 2)
	c := h.dial()
	c.login(sessAlice, sessPass)
	count := func() int { _, msgs := sessMailbox(t, a, "INBOX"); return len(msgs) }
	for _, cmds := range [][2]string{{"EXAMINE INBOX", "CLOSE"}, {"SELECT INBOX", "UNSELECT"}} {
		c.OK(cmds[0])
		if u := c.OK(cmds[1]); len(u) != 0 {
			t.Errorf("%s: %q", cmds[1], u)
		}
		if n := count(); n != 4 {
			t.Errorf("%s after %s expunged: %d messages left", cmds[1], cmds[0], n)
		}
	}
	c.OK("SELECT INBOX")
	if u := c.OK("CLOSE"); len(u) != 0 {
		t.Errorf("CLOSE sent %q", u)
	}
	if n := count(); n != 3 {
		t.Errorf("after CLOSE: %d messages, want 3", n)
	}
	c.Expect("CLOSE", "BAD")
	c.Expect("UNSELECT", "BAD")
}

// TestSessionConcurrentChanges: what another session (or delivery) does
// to the selected mailbox arrives at the next command: EXPUNGE before
// EXISTS, numbers valid when sent, FETCH FLAGS with MODSEQ for CONDSTORE.
func TestSessionConcurrentChanges(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 3; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	a := h.account(sessAlice)
	rev1 := h.dial()
	rev1.login(sessAlice, sessPass)
	rev1.OK("SELECT INBOX")
	cs := h.dial()
	cs.login(sessAlice, sessPass)
	cs.OK("ENABLE CONDSTORE IMAP4rev2")
	cs.OK("SELECT INBOX")

	h.deliver(sessAlice, sessMessage("message 4"))
	if u := rev1.OK("NOOP"); !slices.Equal(u, []string{"* 4 EXISTS", "* 4 RECENT"}) {
		t.Errorf("rev1 after delivery: %q", u)
	}
	if u := cs.OK("CHECK"); !slices.Equal(u, []string{"* 4 EXISTS"}) {
		t.Errorf("rev2 after delivery: %q", u)
	}

	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagSeen|store.FlagFlagged, 1, 3)
	if u := rev1.OK("NOOP"); !slices.Equal(u, []string{`* 1 FETCH (UID 1 FLAGS (\Flagged \Seen \Recent))`, `* 3 FETCH (UID 3 FLAGS (\Flagged \Seen \Recent))`}) {
		t.Errorf("rev1 after flag change: %q", u)
	}
	u := cs.OK("NOOP")
	if len(u) != 2 || !strings.HasPrefix(u[0], `* 1 FETCH (UID 1 FLAGS (\Flagged \Seen) MODSEQ (`) {
		t.Errorf("condstore after flag change: %q", u)
	}

	// Two expunged, two delivered: the EXPUNGEs (highest first) come
	// before the EXISTS that counts the survivors and the new ones.
	sessExpunge(t, a, "INBOX", 1, 3)
	h.deliver(sessAlice, sessMessage("message 5"))
	h.deliver(sessAlice, sessMessage("message 6"))
	if u := rev1.OK("NOOP"); !slices.Equal(u, []string{"* 3 EXPUNGE", "* 1 EXPUNGE", "* 4 EXISTS", "* 4 RECENT"}) {
		t.Errorf("rev1 after expunge and delivery: %q", u)
	}
	if u := cs.OK("NOOP"); !slices.Equal(u, []string{"* 3 EXPUNGE", "* 1 EXPUNGE", "* 4 EXISTS"}) {
		t.Errorf("rev2 after expunge and delivery: %q", u)
	}
	// A change in another mailbox is not reported.
	sessDeliverTo(t, h, sessAlice, "Archive")
	if u := rev1.OK("NOOP"); len(u) != 0 {
		t.Errorf("change elsewhere reported: %q", u)
	}
}

func sessDeliverTo(t testing.TB, h *sessHarness, address, mailbox string) {
	t.Helper()
	ctx := context.Background()
	acc, err := h.users.Account(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	w, err := h.store.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(sessMessage("to " + mailbox)))
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	if err := h.store.Deliver(ctx, tmp, []store.Target{{AccountID: acc.ID, Mailbox: mailbox}}); err != nil {
		t.Fatal(err)
	}
}

// TestSessionExpungeRule: RFC 9051 §7.5.1 — no EXPUNGE in the responses
// to FETCH, STORE, SEARCH (and SORT, THREAD), where the client may be
// using message numbers; the expunged message keeps its number (and
// counts in EXISTS) until a command that allows it, like NOOP. The UID
// forms may carry it.
func TestSessionExpungeRule(t *testing.T) {
	for _, qresync := range []bool{false, true} {
		t.Run(fmt.Sprintf("qresync=%v", qresync), func(t *testing.T) {
			h := newSessHarness(t, sessOptions{})
			h.addUser(sessAlice, sessPass)
			for i := 1; i <= 3; i++ {
				h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
			}
			a := h.account(sessAlice)
			c := h.dial()
			c.t = t
			c.login(sessAlice, sessPass)
			if qresync {
				c.OK("ENABLE QRESYNC")
			}
			c.OK("SELECT INBOX")
			sessExpunge(t, a, "INBOX", 1)
			h.deliver(sessAlice, sessMessage("message 4"))
			for i, cmd := range []string{"FETCH 1 (FLAGS)", "STORE 2 +FLAGS (\\Seen)", "SEARCH ALL", "SORT (DATE) UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL", "FETCH 1:* (UID)"} {
				u, _ := c.Cmd(cmd)
				if sessHas(u, "EXPUNGE") || sessHas(u, "VANISHED") {
					t.Errorf("%s announced an expunge: %q", cmd, u)
				}
				if i == 0 && sessFind(u, "* 4 EXISTS") == "" {
					t.Errorf("%s: the new message not counted with the pending one: %q", cmd, u)
				}
			}
			want := "* 1 EXPUNGE"
			if qresync {
				want = "* VANISHED 1"
			}
			if u := c.OK("NOOP"); !slices.Contains(u, want) {
				t.Errorf("NOOP: %q, want %q", u, want)
			}
			sessExpunge(t, a, "INBOX", 2)
			if u, _ := c.Cmd("UID FETCH 1:* (FLAGS)"); !sessHas(u, strings.Replace(want, "1", map[bool]string{false: "1", true: "2"}[qresync], 1)) {
				t.Errorf("UID FETCH did not announce the expunge: %q", u)
			}
		})
	}
}

// TestSessionSelectedMailboxDeleted: when another session deletes the
// mailbox this one has selected, the next command's update is a BYE
// (RFC 2180 §3.2) rather than a view of messages that no longer exist.
func TestSessionSelectedMailboxDeleted(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	a := h.account(sessAlice)
	if _, err := a.CreateMailbox(context.Background(), "Projects", ""); err != nil {
		t.Fatal(err)
	}
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("SELECT Projects")
	if err := a.DeleteMailbox(context.Background(), "Projects"); err != nil {
		t.Fatal(err)
	}
	u, _ := c.Cmd("NOOP")
	if !slices.ContainsFunc(u, func(l string) bool { return strings.HasPrefix(l, "* BYE ") }) {
		t.Fatalf("NOOP after the selected mailbox was deleted: untagged %q, want a BYE", u)
	}
}

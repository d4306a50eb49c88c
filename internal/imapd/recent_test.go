package imapd_test

import (
	"slices"
	"strings"
	"testing"
)

// TestRecent checks \Recent (RFC 3501 §2.3.2) as imaptest's select, copy
// and search-flags scripts do: exactly one session sees a message as
// recent, EXAMINE and STATUS look without claiming, new messages (delivery,
// COPY, APPEND) are recent to the first read-write session told of them,
// and an IMAP4rev2 session sees none and claims none.
func TestRecent(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("one"))
	h.deliver(sessAlice, sessMessage("two"))
	login := func() *sessConn {
		c := h.dial()
		c.login(sessAlice, sessPass)
		return c
	}
	want := func(c *sessConn, cmd string, lines ...string) []string {
		t.Helper()
		u := c.OK(cmd)
		for _, l := range lines {
			if !slices.Contains(u, l) {
				t.Errorf("%s: no %q in %q", cmd, l, u)
			}
		}
		return u
	}
	none := func(c *sessConn, cmd, sub string) {
		t.Helper()
		if u := c.OK(cmd); sessHas(u, sub) {
			t.Errorf("%s: %q in %q", cmd, sub, u)
		}
	}

	a := login()
	// EXAMINE shows them recent but leaves them for a read-write session.
	want(a, "EXAMINE INBOX", "* 2 RECENT")
	want(a, "FETCH 1:2 FLAGS", `* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`)
	a.OK("CLOSE")
	want(a, "STATUS INBOX (MESSAGES RECENT)", "* STATUS INBOX (MESSAGES 2 RECENT 2)")
	want(a, "SELECT INBOX", "* 2 RECENT")
	want(a, "SEARCH RECENT", "* SEARCH 1 2")
	want(a, "SEARCH NEW", "* SEARCH 1 2")
	want(a, "SEARCH OLD", "* SEARCH")
	want(a, `STORE 1 +FLAGS (\Seen)`, `* 1 FETCH (FLAGS (\Seen \Recent))`)
	want(a, "SEARCH NEW", "* SEARCH 2")

	// A second session: a claimed message is recent to nobody else.
	b := login()
	want(b, "SELECT INBOX", "* 0 RECENT")
	want(b, "FETCH 2 FLAGS", `* 2 FETCH (FLAGS ())`)
	want(b, "SEARCH OLD", "* SEARCH 1 2")
	want(b, "STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 0)")

	// A delivery is recent to the first session that learns of it.
	h.deliver(sessAlice, sessMessage("three"))
	want(a, "NOOP", "* 3 EXISTS", "* 3 RECENT")
	want(b, "NOOP", "* 3 EXISTS", "* 0 RECENT")
	want(a, "FETCH 3 FLAGS", `* 3 FETCH (FLAGS (\Recent))`)

	// COPY makes the copies recent in the destination; an IMAP4rev2
	// session neither sees nor claims them.
	a.OK("CREATE Dest")
	a.OK("COPY 1:2 Dest")
	r2 := login()
	r2.OK("ENABLE IMAP4rev2")
	none(r2, "SELECT Dest", "RECENT")
	none(r2, "FETCH 1:2 FLAGS", `\Recent`)
	none(r2, "SEARCH RECENT", " ALL ")
	d := login()
	want(d, "SELECT Dest", "* 2 RECENT")
	want(d, "FETCH 1 FLAGS", `* 1 FETCH (FLAGS (\Seen \Recent))`)
	// APPEND (and MOVE) into the selected mailbox: the appending session
	// is told first.
	want(d, "APPEND Dest {4+}\r\nhi\r\n", "* 3 EXISTS", "* 3 RECENT")
	a.OK("MOVE 3 Dest")
	want(d, "NOOP", "* 4 EXISTS", "* 4 RECENT")
	want(d, "SEARCH RECENT", "* SEARCH 1 2 3 4")
	// RECENT follows the count down when recent messages are expunged
	// (imaptest's checkpoints add up the sessions' RECENT counts).
	d.OK(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	want(d, "EXPUNGE", "* 1 EXPUNGE", "* 3 RECENT")
	// The claim survives UNSELECT only for the claiming session's view:
	// another session selecting later sees none.
	e := login()
	want(e, "EXAMINE Dest", "* 0 RECENT")
	want(e, "STATUS INBOX (RECENT)", "* STATUS INBOX (RECENT 0)")
	if strings.Contains(strings.Join(e.OK("FETCH 1:* FLAGS"), "\n"), `\Recent`) {
		t.Error(`\Recent shown to a second session`)
	}
}

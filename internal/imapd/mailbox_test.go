package imapd_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
)

// mboxClean deletes the mailboxes every new account starts with, except
// INBOX, and their subscriptions (which outlive DELETE), so LIST output is
// the test's own.
func mboxClean(t testing.TB, c *mboxConn) {
	t.Helper()
	for _, m := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
		c.OK("DELETE " + m)
		c.OK("UNSUBSCRIBE " + m)
	}
}

func TestMboxCreate(t *testing.T) {
	env, addr := mboxUser(t)
	pre := mboxDial(t, env)
	pre.Expect("CREATE x", "BAD")
	c := mboxLogin(t, env, addr)
	mboxClean(t, c)

	tests := []struct{ cmd, want string }{
		{"CREATE a", "OK"},
		{"CREATE a", "NO [ALREADYEXISTS]"},
		{"CREATE INBOX", "NO [ALREADYEXISTS]"},
		{"CREATE inbox", "NO [ALREADYEXISTS]"},
		{"CREATE Inbox/", "NO [ALREADYEXISTS]"},
		// RFC 9051 §6.3.4: the trailing delimiter is dropped; parents
		// are created.
		{"CREATE b/", "OK"},
		{"CREATE b", "NO [ALREADYEXISTS]"},
		{"CREATE x/y/z", "OK"},
		{"CREATE inbox/child", "OK"},
		{"CREATE a//b", "NO [CANNOT]"},
		{"CREATE /a", "NO [CANNOT]"},
		{`CREATE "a*b"`, "NO [CANNOT]"},
		{`CREATE "a%b"`, "NO [CANNOT]"},
		// RFC 6154 §3 CREATE-SPECIAL-USE.
		{`CREATE Sent (USE (\Sent))`, "OK"},
		{`CREATE Bin (USE (\trash))`, "OK"},
		{`CREATE Plain (USE ())`, "OK"},
		{`CREATE All (USE (\All))`, "NO [USEATTR]"},
		{`CREATE Two (USE (\Sent \Drafts))`, "NO [USEATTR]"},
		{`CREATE Odd (USE (\Bogus))`, "NO [USEATTR]"},
		{`CREATE Bad (FOO (\Sent))`, "BAD"},
		{"CREATE", "BAD"},
	}
	for _, tc := range tests {
		c.Expect(tc.cmd, tc.want)
	}
	// Refused CREATEs created nothing. INBOX first, then by name.
	mboxSame(t, "LIST after CREATEs", c.OK(`LIST "" *`), []string{
		`* LIST (\HasChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Trash) "/" Bin`,
		`* LIST (\HasNoChildren) "/" INBOX/child`,
		`* LIST (\HasNoChildren) "/" Plain`,
		`* LIST (\HasNoChildren \Sent) "/" Sent`,
		`* LIST (\HasNoChildren) "/" a`,
		`* LIST (\HasNoChildren) "/" b`,
		`* LIST (\HasChildren) "/" x`,
		`* LIST (\HasChildren) "/" x/y`,
		`* LIST (\HasNoChildren) "/" x/y/z`,
	})
}

func TestMboxDelete(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.OK("CREATE p/q")
	c.appendMsg("p/q", "", mboxMsg(1))
	tests := []struct{ cmd, want string }{
		{"DELETE nosuch", "NO [NONEXISTENT]"},
		{"DELETE INBOX", "NO [CANNOT]"},
		{"DELETE inbox", "NO [CANNOT]"},
		// RFC 9051 §6.3.5: a parent is refused with HASCHILDREN.
		{"DELETE p", "NO [HASCHILDREN]"},
		{"DELETE p/q", "OK"},
		{"DELETE p/q", "NO [NONEXISTENT]"},
		{"DELETE p/", "OK"},
		{"DELETE", "BAD"},
	}
	for _, tc := range tests {
		c.Expect(tc.cmd, tc.want)
	}
	if got := c.OK(`LIST "" p*`); len(got) != 0 {
		t.Errorf("deleted mailboxes still listed: %q", got)
	}

	// A recreated name gets a new UIDVALIDITY (RFC 9051 §6.3.5: UIDs of
	// the old incarnation are never reused under the same one).
	c.OK("CREATE gone")
	old := mboxStatusItems(t, c, "gone", "UIDVALIDITY")
	c.OK("DELETE gone")
	c.OK("CREATE gone")
	if now := mboxStatusItems(t, c, "gone", "UIDVALIDITY"); now == old {
		t.Errorf("recreated mailbox kept UIDVALIDITY %s", old)
	}

	// Deleting the selected mailbox ends the session after the OK.
	c.OK("SELECT gone")
	u, tagged := c.Cmd("DELETE gone")
	if tagged != "OK DELETE completed" || len(u) != 0 {
		t.Fatalf("DELETE selected: %q %q", u, tagged)
	}
	if l := c.Response(); !strings.HasPrefix(l, "* BYE ") {
		t.Errorf("after deleting the selected mailbox: %q", l)
	}
	// Another session's selected mailbox may be deleted.
	c2 := mboxLogin(t, env, addr)
	c3 := mboxLogin(t, env, addr)
	c2.OK("CREATE other")
	c3.OK("SELECT other")
	c2.OK("DELETE other")
	c3.OK("NOOP")
}

// mboxStatusItems returns the value list of a STATUS response for one
// mailbox, e.g. "UIDVALIDITY 123".
func mboxStatusItems(t testing.TB, c *mboxConn, mailbox, items string) string {
	t.Helper()
	u := c.OK("STATUS " + mailbox + " (" + items + ")")
	for _, l := range u {
		if m := mboxStatusRE.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no STATUS response: %q", u)
	return ""
}

var mboxStatusRE = regexp.MustCompile(`^\* STATUS \S+ \((.*)\)$`)

func TestMboxRename(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.OK("CREATE a/b/c")
	for i := range 3 {
		c.appendMsg("a/b", "", mboxMsg(i))
	}
	c.appendMsg("a/b/c", "", mboxMsg(9))
	vb := mboxStatusItems(t, c, "a/b", "UIDVALIDITY UIDNEXT MESSAGES")
	vc := mboxStatusItems(t, c, "a/b/c", "UIDVALIDITY UIDNEXT MESSAGES")
	uidsB := mboxUIDs(t, env, addr, "a/b")

	// A session with a/b selected keeps working across the rename.
	c2 := mboxLogin(t, env, addr)
	c2.OK("SELECT a/b")

	tests := []struct{ cmd, want string }{
		{"RENAME nosuch x", "NO [NONEXISTENT]"},
		{"RENAME a Sent", "NO [ALREADYEXISTS]"},
		{"RENAME a INBOX", "NO [ALREADYEXISTS]"},
		{"RENAME a a/b/c/d", "NO [CANNOT]"},
		{`RENAME a "z*"`, "NO [CANNOT]"},
		{"RENAME a", "BAD"},
		// The hierarchy moves, with new parents made as needed.
		{"RENAME a/b new/place/b", "OK"},
	}
	for _, tc := range tests {
		c.Expect(tc.cmd, tc.want)
	}
	mboxSame(t, "LIST after RENAME", c.OK(`LIST "" (a new*)`), []string{
		`* LIST (\HasNoChildren) "/" a`,
		`* LIST (\HasChildren) "/" new`,
		`* LIST (\HasChildren) "/" new/place`,
		`* LIST (\HasChildren) "/" new/place/b`,
		`* LIST (\HasNoChildren) "/" new/place/b/c`,
	})
	// RFC 9051 §6.3.6 / issue: RENAME keeps UIDVALIDITY and UIDs, for
	// children too.
	if got := mboxStatusItems(t, c, "new/place/b", "UIDVALIDITY UIDNEXT MESSAGES"); got != vb {
		t.Errorf("renamed mailbox status %q, was %q", got, vb)
	}
	if got := mboxStatusItems(t, c, "new/place/b/c", "UIDVALIDITY UIDNEXT MESSAGES"); got != vc {
		t.Errorf("renamed child status %q, was %q", got, vc)
	}
	if got := mboxUIDs(t, env, addr, "new/place/b"); !mboxUIDsEqual(got, uidsB) {
		t.Errorf("UIDs %v, were %v", got, uidsB)
	}
	c2.OK("NOOP")
	c.appendMsg("new/place/b", "", mboxMsg(4))
	if u := c2.OK("NOOP"); !mboxHas(u, "* 4 EXISTS") {
		t.Errorf("selected renamed mailbox: NOOP gave %q", u)
	}

	// RENAME INBOX moves its messages into a new mailbox and leaves INBOX
	// empty (RFC 9051 §6.3.6); its children stay.
	c.OK("CREATE INBOX/kid")
	c.appendMsg("INBOX", "", mboxMsg(1))
	c.appendMsg("INBOX", "", mboxMsg(2))
	inboxUIDs := mboxUIDs(t, env, addr, "INBOX")
	c3 := mboxLogin(t, env, addr)
	c3.OK("SELECT INBOX")
	c.OK("RENAME inbox INBOX/old")
	if got := mboxStatusItems(t, c, "INBOX", "MESSAGES"); got != "MESSAGES 0" {
		t.Errorf("INBOX after RENAME: %s", got)
	}
	if got := mboxUIDs(t, env, addr, "INBOX/old"); !mboxUIDsEqual(got, inboxUIDs) {
		t.Errorf("INBOX/old UIDs %v, want %v", got, inboxUIDs)
	}
	mboxSame(t, "INBOX hierarchy", c.OK(`LIST "" INBOX*`), []string{
		`* LIST (\HasChildren) "/" INBOX`,
		`* LIST (\HasNoChildren) "/" INBOX/kid`,
		`* LIST (\HasNoChildren) "/" INBOX/old`,
	})
	// The session with INBOX selected learns the messages left.
	mboxSame(t, "INBOX session", c3.OK("NOOP"), []string{"* 2 EXPUNGE", "* 1 EXPUNGE", "* 0 RECENT"})
	// New mail to INBOX gets UIDs above the old ones.
	c.appendMsg("INBOX", "", mboxMsg(3))
	if got := mboxUIDs(t, env, addr, "INBOX"); len(got) != 1 || got[0] <= inboxUIDs[len(inboxUIDs)-1] {
		t.Errorf("new INBOX UID %v after %v", got, inboxUIDs)
	}
}

func mboxUIDsEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mboxHas(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

func TestMboxSubscribe(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	mboxClean(t, c)
	c.OK("CREATE f/g/h")
	c.OK("CREATE k")
	for _, m := range []string{"INBOX", "f", "f/g", "f/g/h", "k"} {
		c.OK("UNSUBSCRIBE " + m)
	}
	c.Expect("SUBSCRIBE nosuch", "NO [NONEXISTENT]")
	// RFC 9051 §6.3.8: OK when not subscribed.
	c.OK("UNSUBSCRIBE nosuch")
	c.OK("UNSUBSCRIBE k")
	c.OK("SUBSCRIBE f/g/h")
	c.OK("SUBSCRIBE f/g/h")
	c.OK("SUBSCRIBE inbox")
	c.Expect("SUBSCRIBE", "BAD")

	mboxSame(t, "LSUB *", c.OK(`LSUB "" *`), []string{
		`* LSUB () "/" INBOX`,
		`* LSUB () "/" f/g/h`,
	})
	// RFC 3501 §6.3.9: a "%" match with subscribed children only is
	// \Noselect.
	mboxSame(t, "LSUB %", c.OK(`LSUB "" %`), []string{
		`* LSUB () "/" INBOX`,
		`* LSUB (\Noselect) "/" f`,
	})
	mboxSame(t, "LSUB f/%", c.OK(`LSUB f/ %`), []string{`* LSUB (\Noselect) "/" f/g`})
	mboxSame(t, `LSUB ""`, c.OK(`LSUB "" ""`), []string{`* LSUB (\Noselect) "/" ""`})
	mboxSame(t, "LIST (SUBSCRIBED)", c.OK(`LIST (SUBSCRIBED) "" *`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasNoChildren \Subscribed) "/" f/g/h`,
	})
	// RENAME keeps the subscription with the mailbox.
	c.OK("RENAME f/g/h f/g/i")
	mboxSame(t, "LSUB after RENAME", c.OK(`LSUB "" f*`), []string{`* LSUB () "/" f/g/i`})

	// RFC 9051 §6.3.7: DELETE leaves the name subscribed; LIST
	// (SUBSCRIBED) reports it \NonExistent (§6.3.9.8 example 5), plain
	// LIST does not list it, LSUB marks it \Noselect.
	c.OK("DELETE f/g/i")
	mboxSame(t, "LIST (SUBSCRIBED) after DELETE", c.OK(`LIST (SUBSCRIBED) "" *`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\NonExistent \Subscribed) "/" f/g/i`,
	})
	mboxSame(t, "LIST RETURN (SUBSCRIBED) after DELETE", c.OK(`LIST "" f* RETURN (SUBSCRIBED)`), []string{
		`* LIST (\HasChildren) "/" f`,
		`* LIST (\HasNoChildren) "/" f/g`,
	})
	mboxSame(t, "LIST (SUBSCRIBED RECURSIVEMATCH) after DELETE", c.OK(`LIST (SUBSCRIBED RECURSIVEMATCH) "" %`), []string{
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
		`* LIST (\HasChildren) "/" f ("CHILDINFO" ("SUBSCRIBED"))`,
	})
	mboxSame(t, "LSUB after DELETE", c.OK(`LSUB "" f/g/*`), []string{`* LSUB (\Noselect) "/" f/g/i`})
	c.Expect("SELECT f/g/i", "NO [NONEXISTENT]")
	// Created again, it is subscribed as before; unsubscribed, gone.
	c.OK("CREATE f/g/i")
	mboxSame(t, "LSUB after re-CREATE", c.OK(`LSUB "" f/g/*`), []string{`* LSUB () "/" f/g/i`})
	c.OK("DELETE f/g/i")
	c.OK("UNSUBSCRIBE f/g/i")
	mboxSame(t, "LIST (SUBSCRIBED) after UNSUBSCRIBE", c.OK(`LIST (SUBSCRIBED) "" f*`), nil)
}

func TestMboxNamespace(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	mboxSame(t, "NAMESPACE", c.OK("NAMESPACE"), []string{`* NAMESPACE (("" "/")) NIL NIL`})
	c.Expect("NAMESPACE x", "BAD")
}

func TestMboxStatus(t *testing.T) {
	env, addr := mboxUser(t, func(o *testenv.Options) {
		o.Configure = func(cfg *config.Config) { cfg.Limits.MaxMessageSize = 12345 }
	})
	c := mboxLogin(t, env, addr)
	c.OK("CREATE box")
	m1, m2, m3 := mboxMsg(1), mboxMsg(2), mboxMsg(3)
	c.appendMsg("box", `(\Seen)`, m1)
	c.appendMsg("box", `(\Deleted \Seen)`, m2)
	c.appendMsg("box", "", m3)
	uv := strings.TrimPrefix(mboxStatusItems(t, c, "box", "UIDVALIDITY"), "UIDVALIDITY ")

	u := c.OK("STATUS box (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT APPENDLIMIT DELETED-STORAGE)")
	want := "* STATUS box (MESSAGES 3 UIDNEXT 4 UIDVALIDITY " + uv + " UNSEEN 1 DELETED 1 SIZE " +
		mboxItoa(len(m1)+len(m2)+len(m3)) + " RECENT 3 APPENDLIMIT 12345 DELETED-STORAGE " + mboxItoa(len(m2)) + ")"
	mboxSame(t, "STATUS", u, []string{want})

	// MAILBOXID is what SELECT says (RFC 8474).
	id := mboxStatusItems(t, c, "box", "MAILBOXID")
	sel := c.OK("SELECT box")
	if !mboxHas(sel, "* OK ["+id+"] mailbox id") {
		t.Errorf("STATUS %s, SELECT said %q", id, sel)
	}
	if !regexp.MustCompile(`^MAILBOXID \([A-Za-z0-9_-]{1,255}\)$`).MatchString(id) {
		t.Errorf("MAILBOXID syntax: %q", id)
	}
	// STATUS on the selected mailbox is allowed; HIGHESTMODSEQ enables
	// CONDSTORE, and with a mailbox selected the client hears its
	// HIGHESTMODSEQ (RFC 7162 §3.1).
	u = c.OK("STATUS box (HIGHESTMODSEQ)")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* STATUS box (HIGHESTMODSEQ ") || !strings.HasPrefix(u[1], "* OK [HIGHESTMODSEQ ") {
		t.Errorf("STATUS HIGHESTMODSEQ: %q", u)
	}
	if u := c.OK("STATUS box (HIGHESTMODSEQ)"); len(u) != 1 {
		t.Errorf("second STATUS HIGHESTMODSEQ: %q", u)
	}

	c.Expect("STATUS nosuch (MESSAGES)", "NO [NONEXISTENT]")
	c.Expect("STATUS box (BOGUS)", "BAD")
	c.Expect("STATUS box ()", "BAD")
	c.Expect("STATUS box", "BAD")
	mboxSame(t, "STATUS INBOX", c.OK("STATUS inbox (MESSAGES)"), []string{"* STATUS INBOX (MESSAGES 0)"})
}

func mboxItoa(n int) string { return strconv.Itoa(n) }

// Mailbox names with non-ASCII characters: modified UTF-7 for IMAP4rev1
// clients, UTF-8 after ENABLE UTF8=ACCEPT or IMAP4rev2 (RFC 9051 §5.1, RFC
// 6855 §3).
func TestMboxNonASCIINames(t *testing.T) {
	env, addr := mboxUser(t)
	c := mboxLogin(t, env, addr)
	c.OK(`CREATE "Entw&APw-rfe"`)
	c.OK(`CREATE "&ZeVnLIqe-/Sub"`)
	// A name that is no modified UTF-7 is refused with NO, not BAD
	// (imaptest's atoms test), and LIST with it answers OK.
	c.Expect(`CREATE "&Jjo"`, "NO [CANNOT]")
	c.Expect(`SELECT !#$&'+,-.0123456789:;<=>?@^_`+"`"+`|[}`, "NO [CANNOT]")
	mboxSame(t, "LIST invalid UTF-7", c.OK(`LIST "" !#$&'+,-.0123456789:;<=>?@^_`+"`"+`|[}%*`), nil)
	c.OK("NOOP")
	mboxSame(t, "rev1 LIST", c.OK(`LIST "" "Entw*"`), []string{`* LIST (\HasNoChildren) "/" Entw&APw-rfe`})
	mboxSame(t, "rev1 LIST hierarchy", c.OK(`LIST "" "&ZeVnLIqe-/%"`), []string{`* LIST (\HasNoChildren) "/" &ZeVnLIqe-/Sub`})
	c.OK(`STATUS "Entw&APw-rfe" (MESSAGES)`)
	c.appendMsg(`"Entw&APw-rfe"`, "", mboxMsg(1))

	u8 := mboxLogin(t, env, addr)
	u8.OK("ENABLE UTF8=ACCEPT")
	mboxSame(t, "UTF-8 LIST", u8.OK(`LIST "" "Entw*"`), []string{`* LIST (\HasNoChildren) "/" "Entwürfe"`})
	mboxSame(t, "UTF-8 STATUS", u8.OK(`STATUS "Entwürfe" (MESSAGES)`), []string{`* STATUS "Entwürfe" (MESSAGES 1)`})
	u8.OK(`CREATE "Préféré"`)
	u8.Expect(`RENAME "Préféré" "Préféré/Ünter"`, "NO [CANNOT]")
	u8.OK(`CREATE "Préféré/Ünter"`)
	// In UTF-8 mode "&" is just a character.
	u8.OK(`CREATE "R&D"`)
	mboxSame(t, "rev1 sees UTF-7", c.OK(`LIST "" "Pr*"`), []string{
		`* LIST (\HasChildren) "/" Pr&AOk-f&AOk-r&AOk-`,
		`* LIST (\HasNoChildren) "/" Pr&AOk-f&AOk-r&AOk-/&ANw-nter`,
	})
	mboxSame(t, "rev1 sees &-", c.OK(`LIST "" "R*"`), []string{`* LIST (\HasNoChildren) "/" R&-D`})

	rev2 := mboxLogin(t, env, addr)
	rev2.OK("ENABLE IMAP4rev2")
	mboxSame(t, "rev2 LIST", rev2.OK(`LIST "" "Pr*/%"`), []string{`* LIST (\HasNoChildren) "/" "Préféré/Ünter"`})
}

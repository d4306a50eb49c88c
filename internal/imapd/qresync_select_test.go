package imapd_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
)

// sessCode returns the number in "* OK [NAME n]" among lines, or -1.
func sessCode(lines []string, name string) int64 {
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "* OK ["+name+" "); ok {
			if i := strings.IndexByte(rest, ']'); i > 0 {
				n, err := strconv.ParseInt(rest[:i], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	return -1
}

// sessResync returns the VANISHED (EARLIER) and FETCH lines of a SELECT,
// the FETCH lines with their MODSEQ values replaced by "m" so tests can
// compare them.
func sessResync(lines []string) []string {
	modseq := regexp.MustCompile(`MODSEQ \(\d+\)`)
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* VANISHED") || strings.Contains(l, " FETCH ") {
			out = append(out, modseq.ReplaceAllString(l, "MODSEQ (m)"))
		}
	}
	return out
}

// TestQresyncSelect: SELECT (QRESYNC ...) after changes made elsewhere
// reports VANISHED (EARLIER) for what was expunged and FETCH for what
// changed or arrived since the client's MODSEQ, among the UIDs it knows
// (RFC 7162 §3.2.5).
func TestQresyncSelect(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 5; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("ENABLE QRESYNC")
	u := c.OK("SELECT INBOX")
	uv, ms := sessCode(u, "UIDVALIDITY"), sessCode(u, "HIGHESTMODSEQ")
	if uv <= 0 || ms <= 0 {
		t.Fatalf("SELECT: %q", u)
	}
	c.OK("UNSELECT")

	// Changes made elsewhere: UIDs 2 and 4 expunged, 3 marked seen, 6
	// arrives.
	ctx := context.Background()
	a := h.account(sessAlice)
	mb, _ := sessMailbox(t, a, "INBOX")
	if _, err := a.Expunge(ctx, mb.ID, []uint32{2, 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetFlags(ctx, mb.ID, []uint32{3}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	h.deliver(sessAlice, sessMessage("message 6"))
	// Another session claims \Recent for message 6, so that SELECT and
	// EXAMINE below answer alike.
	claim := h.dial()
	claim.login(sessAlice, sessPass)
	claim.OK("SELECT INBOX")

	tests := []struct {
		name  string
		param string
		want  []string
	}{
		{"all known", fmt.Sprintf("(%d %d)", uv, ms), []string{
			"* VANISHED (EARLIER) 2,4",
			`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (m))`,
			"* 4 FETCH (UID 6 FLAGS () MODSEQ (m))",
		}},
		{"known uids", fmt.Sprintf("(%d %d 1:3)", uv, ms), []string{
			"* VANISHED (EARLIER) 2",
			`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (m))`,
		}},
		{"seq-match-data", fmt.Sprintf("(%d %d 1:5 (1,2 1,3))", uv, ms), []string{
			"* VANISHED (EARLIER) 4",                     // seq 2 is still UID 3: 2 is known to be gone
			`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (m))`, // 6 is not among the known UIDs
		}},
		{"seq-match-data mismatch", fmt.Sprintf("(%d %d 1:6 (2 2))", uv, ms), []string{
			"* VANISHED (EARLIER) 2,4",
			`* 2 FETCH (UID 3 FLAGS (\Seen) MODSEQ (m))`,
			"* 4 FETCH (UID 6 FLAGS () MODSEQ (m))",
		}},
		{"other uidvalidity", fmt.Sprintf("(%d %d)", uv+1, ms), nil},
		{"up to date", fmt.Sprintf("(%d %d)", uv, ms+1000), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			for _, cmd := range []string{"SELECT", "EXAMINE"} {
				u := c.OK(cmd + " INBOX (QRESYNC " + tc.param + ")")
				if sessFind(u, "* 4 EXISTS") == "" {
					t.Errorf("%s: %q", cmd, u)
				}
				if got := sessResync(u); !slices.Equal(got, tc.want) {
					t.Errorf("%s: got %q, want %q", cmd, got, tc.want)
				}
			}
		})
	}
	c.t = t

	// A malformed parameter is refused before the old mailbox is closed.
	c.OK("SELECT INBOX")
	u = c.Expect(fmt.Sprintf("SELECT Sent (QRESYNC (%d %d 1:5 (1:3 1,3)))", uv, ms), "BAD")
	if sessFind(u, "* OK [CLOSED]") != "" {
		t.Errorf("CLOSED sent for a refused SELECT: %q", u)
	}
	c.OK("UNSELECT") // still selected

	// RFC 7162 §3.2.5: the parameter needs ENABLE QRESYNC.
	c2 := h.dial()
	c2.login(sessAlice, sessPass)
	c2.Expect(fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uv, ms), "BAD")
	c2.OK("SELECT INBOX (CONDSTORE)")
}

// TestQresyncVanishedAndClosed: with QRESYNC enabled, expunges made
// elsewhere arrive as VANISHED (RFC 7162 §3.2.10) and a SELECT that
// replaces the mailbox starts with OK [CLOSED] (§3.2.11); without it they
// arrive as EXPUNGE.
func TestQresyncVanishedAndClosed(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 4; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	q := h.dial()
	q.login(sessAlice, sessPass)
	q.OK("ENABLE QRESYNC")
	q.OK("SELECT INBOX")
	plain := h.dial()
	plain.login(sessAlice, sessPass)
	plain.OK("SELECT INBOX")

	a := h.account(sessAlice)
	mb, _ := sessMailbox(t, a, "INBOX")
	if _, err := a.Expunge(context.Background(), mb.ID, []uint32{2, 3}); err != nil {
		t.Fatal(err)
	}
	if u := q.OK("NOOP"); !slices.Equal(u, []string{"* VANISHED 2:3", "* 2 RECENT"}) {
		t.Errorf("QRESYNC session: %q", u)
	}
	if u := plain.OK("NOOP"); !slices.Equal(u, []string{"* 3 EXPUNGE", "* 2 EXPUNGE"}) {
		t.Errorf("plain session: %q", u)
	}

	u := q.OK("SELECT Sent")
	if len(u) == 0 || u[0] != "* OK [CLOSED] previous mailbox closed" {
		t.Errorf("reselect with QRESYNC: %q", u)
	}
	u = plain.OK("SELECT Sent")
	if sessFind(u, "* OK [CLOSED]") != "" {
		t.Errorf("IMAP4rev1 client without QRESYNC got CLOSED: %q", u)
	}
	rev2 := h.dial()
	rev2.login(sessAlice, sessPass)
	rev2.OK("ENABLE IMAP4rev2")
	rev2.OK("EXAMINE INBOX")
	if u := rev2.OK("SELECT Sent"); len(u) == 0 || !strings.HasPrefix(u[0], "* OK [CLOSED]") {
		t.Errorf("reselect with IMAP4rev2: %q", u)
	}
}

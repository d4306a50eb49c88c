package imapd_test

import (
	"strings"
	"testing"
)

// TestKeywordsAnnounced: a keyword is announced in untagged FLAGS and
// PERMANENTFLAGS before any FETCH shows it (RFC 3501 §7.2.6), whether it
// came from this session's STORE, another session's STORE, or a COPY into
// the selected mailbox (imaptest: "Keyword used without being in FLAGS").
func TestKeywordsAnnounced(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("one"))
	h.deliver(sessAlice, sessMessage("two"))
	login := func() *sessConn {
		c := h.dial()
		c.login(sessAlice, sessPass)
		return c
	}
	// announcedFirst checks that each keyword in a FETCH line was in a
	// FLAGS line before it.
	announcedFirst := func(what string, lines []string, kws ...string) {
		t.Helper()
		flags := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "* FLAGS ") {
				flags = l
				continue
			}
			if !strings.Contains(l, " FETCH ") {
				continue
			}
			for _, k := range kws {
				if strings.Contains(l, k) && !strings.Contains(flags, k) {
					t.Errorf("%s: %q shows %s before FLAGS did (%q)", what, l, k, lines)
				}
			}
		}
		if !strings.Contains(strings.Join(lines, "\n"), "PERMANENTFLAGS (") {
			t.Errorf("%s: no PERMANENTFLAGS in %q", what, lines)
		}
	}
	a := login()
	a.OK("SELECT INBOX")
	b := login()
	b.OK("SELECT INBOX")

	u := a.OK("STORE 1 +FLAGS ($kw1)")
	announcedFirst("own STORE", u, "$kw1")
	u = b.OK("NOOP")
	announcedFirst("other's STORE", u, "$kw1")
	// Announced once: a second use needs no new FLAGS.
	if u := a.OK("STORE 2 +FLAGS ($kw1)"); sessFind(u, "* FLAGS") != "" {
		t.Errorf("keyword announced twice: %q", u)
	}
	// COPY into a mailbox another session has selected.
	a.OK("CREATE Dest")
	c := login()
	c.OK("SELECT Dest")
	a.OK("STORE 1 +FLAGS ($kw2)")
	a.OK("COPY 1 Dest")
	// Announced at once, with the EXISTS, before any FETCH.
	u = append(c.OK("NOOP"), c.OK("FETCH 1 FLAGS")...)
	announcedFirst("COPY", u, "$kw1", "$kw2")
	// A new SELECT lists them at once.
	if u := login().OK("EXAMINE INBOX"); !strings.Contains(sessFind(u, "* FLAGS "), "$kw2") {
		t.Errorf("EXAMINE: %q", u)
	}
}

// TestKeywordsSameForEverySession: a keyword set by one session and taken
// away (or its message expunged) before another session synced is still
// announced to that session, so every session of the mailbox lists the
// same keywords (imaptest's checkpoint: "Missing keyword $Label1").
func TestKeywordsSameForEverySession(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("one"))
	h.deliver(sessAlice, sessMessage("two"))
	login := func() *sessConn {
		c := h.dial()
		c.login(sessAlice, sessPass)
		return c
	}
	a := login()
	a.OK("SELECT INBOX")
	b := login()
	b.OK("SELECT INBOX")

	for _, step := range []struct {
		kw   string
		undo []string
	}{
		{"$Label1", []string{"STORE 1 -FLAGS ($Label1)"}},
		{"$Label2", []string{"STORE 2 +FLAGS (\\Deleted)", "EXPUNGE"}},
	} {
		msg := "1"
		if step.kw == "$Label2" {
			msg = "2"
		}
		if u := a.OK("STORE " + msg + " +FLAGS (" + step.kw + ")"); !strings.Contains(sessFind(u, "* FLAGS "), step.kw) {
			t.Fatalf("%s: own STORE did not announce it: %q", step.kw, u)
		}
		for _, cmd := range step.undo {
			a.OK(cmd)
		}
		if u := b.OK("NOOP"); !strings.Contains(sessFind(u, "* FLAGS "), step.kw) {
			t.Errorf("%s: the other session was not told of it: %q", step.kw, u)
		}
		// Told once.
		if u := b.OK("NOOP"); sessFind(u, "* FLAGS ") != "" {
			t.Errorf("%s: announced twice: %q", step.kw, u)
		}
	}
	// A session selecting afterwards lists them too.
	if u := login().OK("EXAMINE INBOX"); !strings.Contains(sessFind(u, "* FLAGS "), "$Label1") || !strings.Contains(sessFind(u, "* FLAGS "), "$Label2") {
		t.Errorf("EXAMINE: %q", u)
	}
}

package imapd_test

import (
	"slices"
	"testing"
)

// TestSearchFromAddress: SEARCH FROM matches the parsed address too, so a
// From with comments inside the addr-spec is found (imaptest's
// search-addresses, test 1).
func TestSearchFromAddress(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	for _, from := range []string{
		"user-from@domain.org",
		"RealFrom <user-from@domain.org>",
		"<user-from (comment)@ (comment) domain.org>",
		"user-from@domain.org (RealFrom)",
		"user-from1@domain.org, user-from2@domain.org",
		`"Real From" <USER-FROM@DOMAIN.ORG>`,
	} {
		h.deliver(sessAlice, "From: "+from+"\r\nSubject: x\r\n\r\nbody\r\n")
	}
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("SELECT INBOX")
	if u := c.OK("SEARCH FROM user-from@domain.org"); !slices.Equal(u, []string{"* SEARCH 1 2 3 4 6"}) {
		t.Errorf("SEARCH FROM: %q", u)
	}
}

// TestSortCcGroup: SORT (CC) keys on the addr-mailbox of the first Cc
// address of the ENVELOPE, which for a group is the group name (RFC 5256
// §3; imaptest's sort-addresses).
func TestSortCcGroup(t *testing.T) {
	h := newSessHarness(t, sessOptions{noTLS: true})
	h.addUser(sessAlice, sessPass)
	for _, cc := range []string{"user2@domain2.org (foo bar)", "user2: blah@domain1.org;", "user1@domain1.org"} {
		h.deliver(sessAlice, "From: a@example.org\r\nCc: "+cc+"\r\nSubject: x\r\n\r\nbody\r\n")
	}
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("SELECT INBOX")
	for cmd, want := range map[string]string{
		"SORT (CC) US-ASCII ALL":         "* SORT 3 1 2",
		"SORT (REVERSE CC) US-ASCII ALL": "* SORT 1 2 3",
	} {
		if u := c.OK(cmd); !slices.Equal(u, []string{want}) {
			t.Errorf("%s: %q, want %q", cmd, u, want)
		}
	}
}

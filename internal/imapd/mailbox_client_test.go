package imapd_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// A raw IMAP client for the mailbox, APPEND, COPY/MOVE, EXPUNGE and QUOTA
// tests: it sends command lines as given and collects the response lines,
// literals inlined, so tests compare exact wire text.

const mboxPass = "correct horse battery"

type mboxConn struct {
	*wire.IMAP
	t testing.TB
}

// mboxUser starts a server with a user and returns it with the address.
func mboxUser(t testing.TB, opts ...func(*testenv.Options)) (*testenv.Env, string) {
	t.Helper()
	var o testenv.Options
	for _, f := range opts {
		f(&o)
	}
	env := testenv.StartWith(t, o)
	addr := "bob@" + testenv.Domain
	env.AddUser(t, addr, mboxPass)
	return env, addr
}

// mboxDial connects and reads the greeting.
func mboxDial(t testing.TB, env *testenv.Env) *mboxConn {
	t.Helper()
	c := wire.DialIMAP(t, env.Addr("imap"))
	c.TagPrefix = "T"
	return &mboxConn{c, t}
}

// mboxLogin connects and logs in as addr.
func mboxLogin(t testing.TB, env *testenv.Env, addr string) *mboxConn {
	t.Helper()
	c := mboxDial(t, env)
	c.OK("LOGIN " + addr + ` "` + mboxPass + `"`)
	return c
}

// mboxSame fails unless got equals want (order matters).
func mboxSame(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// mboxGrep returns the lines with prefix.
func mboxGrep(lines []string, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// mboxAccount returns the store account of addr.
func mboxAccount(t testing.TB, env *testenv.Env, addr string) *store.Account {
	t.Helper()
	ctx := context.Background()
	u, err := env.Users.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.Store.Account(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// mboxMsg is a small message with CRLF line ends.
func mboxMsg(n int) string {
	return fmt.Sprintf("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: message %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", n, n, n)
}

// appendMsg APPENDs body to mailbox with a non-synchronizing literal and
// returns the tagged reply.
func (c *mboxConn) appendMsg(mailbox, flags, body string) string {
	c.t.Helper()
	if flags != "" {
		flags += " "
	}
	_, tagged := c.Cmd(fmt.Sprintf("APPEND %s %s{%d+}\r\n%s", mailbox, flags, len(body), body))
	if !strings.HasPrefix(tagged, "OK [APPENDUID ") {
		c.t.Fatalf("APPEND to %s: %s", mailbox, tagged)
	}
	return tagged
}

// mboxUIDs returns the UIDs of a mailbox's messages, from the store.
func mboxUIDs(t testing.TB, env *testenv.Env, addr, mailbox string) []uint32 {
	t.Helper()
	var out []uint32
	for _, m := range env.Mailbox(t, addr, mailbox) {
		out = append(out, m.UID)
	}
	return out
}

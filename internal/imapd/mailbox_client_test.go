package imapd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// A raw IMAP client for the mailbox, APPEND, COPY/MOVE, EXPUNGE and QUOTA
// tests: it sends command lines as given and collects the response lines,
// literals inlined, so tests compare exact wire text.

const mboxPass = "correct horse battery"

type mboxConn struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	seq int
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
	c, err := net.Dial("tcp", env.Addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	mc := &mboxConn{t: t, c: c, r: bufio.NewReader(c)}
	if g := mc.line(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	return mc
}

// mboxLogin connects and logs in as addr.
func mboxLogin(t testing.TB, env *testenv.Env, addr string) *mboxConn {
	t.Helper()
	c := mboxDial(t, env)
	c.ok("LOGIN " + addr + ` "` + mboxPass + `"`)
	return c
}

// line reads one response line (CRLF stripped), inlining literals.
func (c *mboxConn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (after %q)", err, b.String()+l)
		}
		if !strings.HasSuffix(l, "\r\n") {
			c.t.Fatalf("line without CRLF: %q", l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		m := mboxLiteralRE.FindStringSubmatch(l)
		if m == nil {
			return b.String()
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.t.Fatalf("read literal: %v", err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

var mboxLiteralRE = regexp.MustCompile(`~?\{(\d+)\}$`)

// write sends raw bytes.
func (c *mboxConn) write(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

// tag returns a new tag.
func (c *mboxConn) tag() string {
	c.seq++
	return fmt.Sprintf("T%d", c.seq)
}

// cmd sends "tag line" and returns the untagged responses and the tagged
// reply without its tag.
func (c *mboxConn) cmd(line string) (untagged []string, tagged string) {
	c.t.Helper()
	tag := c.tag()
	c.write(tag + " " + line + "\r\n")
	return c.until(tag)
}

// until reads responses up to the one tagged tag.
func (c *mboxConn) until(tag string) (untagged []string, tagged string) {
	c.t.Helper()
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// ok runs a command that must succeed and returns its untagged responses.
func (c *mboxConn) ok(line string) []string {
	c.t.Helper()
	u, tagged := c.cmd(line)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", line, tagged, u)
	}
	return u
}

// expect runs a command and checks that the tagged reply starts with want
// ("NO [TRYCREATE]", "BAD", "OK [APPENDUID").
func (c *mboxConn) expect(line, want string) []string {
	c.t.Helper()
	u, tagged := c.cmd(line)
	if !strings.HasPrefix(tagged, want) {
		c.t.Fatalf("%s: got %q, want %q... (untagged %q)", line, tagged, want, u)
	}
	return u
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
	_, tagged := c.cmd(fmt.Sprintf("APPEND %s %s{%d+}\r\n%s", mailbox, flags, len(body), body))
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

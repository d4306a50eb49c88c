package pop3d_test

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/pop3d"
	"github.com/jodmai/jodmai/internal/store"
)

func msg(subject, body string) string {
	return "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: " + subject + "\r\n\r\n" + body
}

var (
	msg1 = msg("one", "first message\r\n")
	msg2 = msg("two", "second\r\nmessage\r\n")
	msg3 = msg("three", "third\r\n")
)

// withMail returns a harness with alice holding msg1..msg3.
func withMail(t *testing.T, o harnessOptions) *harness {
	h := newHarness(t, o)
	h.addUser(alice, alicePass)
	for _, m := range []string{msg1, msg2, msg3} {
		h.deliver(alice, m)
	}
	return h
}

func TestGreeting(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c1, c2 := h.dial(), h.dial()
	if !strings.HasPrefix(c1.greeting, "+OK "+testHost+" POP3 ready <") {
		t.Errorf("greeting %q", c1.greeting)
	}
	ts1, ts2 := timestampOf(t, c1.greeting), timestampOf(t, c2.greeting)
	if ts1 == ts2 {
		t.Errorf("two sessions got the same APOP timestamp %s", ts1)
	}
	if !strings.HasSuffix(ts1, "@"+testHost+">") || strings.ContainsAny(ts1, " \t") {
		t.Errorf("timestamp %q: want <pid.nonce@host>", ts1)
	}
}

func TestCapa(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.ok("CAPA")
	caps := c.lines()
	for _, want := range []string{"TOP", "USER", "SASL PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL", "EXPIRE NEVER", "STLS", "IMPLEMENTATION jodmai"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA in AUTHORIZATION lacks %q: %q", want, caps)
		}
	}
	if slices.ContainsFunc(caps, func(s string) bool { return strings.HasPrefix(s, "LOGIN-DELAY") }) {
		t.Errorf("CAPA advertises LOGIN-DELAY: %q", caps)
	}
	c.fail("CAPA x", "-ERR")
	c.login(alice, alicePass)
	c.ok("capa")
	caps = c.lines()
	for _, absent := range []string{"USER", "SASL PLAIN LOGIN", "STLS"} {
		if slices.Contains(caps, absent) {
			t.Errorf("CAPA in TRANSACTION has %q: %q", absent, caps)
		}
	}
	if !slices.Contains(caps, "UIDL") || !slices.Contains(caps, "TOP") {
		t.Errorf("CAPA in TRANSACTION: %q", caps)
	}

	// Without a TLS configuration there is no STLS.
	h2 := newHarness(t, harnessOptions{noTLS: true})
	c2 := h2.dial()
	c2.ok("CAPA")
	if caps := c2.lines(); slices.Contains(caps, "STLS") {
		t.Errorf("STLS offered without TLS config: %q", caps)
	}
	c2.fail("STLS", "-ERR")
}

func TestUserPass(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.fail("PASS "+alicePass, "-ERR") // no USER first
	c.fail("USER", "-ERR")
	c.fail("STAT", "-ERR") // wrong state
	c.ok("USER " + alice)
	bad := c.fail("PASS wrong-password", "-ERR [AUTH] ")
	c.ok("USER nobody@example.org") // never reveals existence
	unknown := c.fail("PASS "+alicePass, "-ERR [AUTH] ")
	if bad != unknown || bad != "-ERR [AUTH] invalid credentials" {
		t.Errorf("wrong password %q vs unknown user %q: want the same text", bad, unknown)
	}
	c.ok("USER " + alice)
	if r := c.ok("PASS " + alicePass); r != fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", len(msg1)+len(msg2)+len(msg3)) {
		t.Errorf("login reply %q", r)
	}
	c.fail("USER "+alice, "-ERR") // wrong state
	c.fail("PASS x", "-ERR")
	c.ok("QUIT")
	c.eof()
}

func TestPasswordWithSpaces(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, "pass word with spaces")
	c := h.dial()
	c.login(alice, "pass word with spaces")
}

func TestAuthFailuresClose(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	for i := 0; i < 2; i++ {
		c.ok("USER " + alice)
		if r := c.fail("PASS nope", "-ERR [AUTH] "); r != "-ERR [AUTH] invalid credentials" {
			t.Errorf("failure %d: %q", i, r)
		}
	}
	c.ok("USER " + alice)
	c.fail("PASS nope", "-ERR [AUTH] invalid credentials")
	c.eof()
}

func TestThrottled(t *testing.T) {
	h := newHarness(t, harnessOptions{policy: &auth.Policy{Window: time.Minute, IPLockoutAfter: 1, Lockout: time.Minute}})
	h.addUser(alice, alicePass)
	c := h.dial()
	c.ok("USER " + alice)
	c.fail("PASS nope", "-ERR [AUTH] invalid credentials")
	c.ok("USER " + alice)
	c.fail("PASS "+alicePass, "-ERR [AUTH] too many failures")
	c.eof()
}

func apopDigest(timestamp, secret string) string {
	sum := md5.Sum([]byte(timestamp + secret))
	return hex.EncodeToString(sum[:])
}

func TestAPOP(t *testing.T) {
	h := withMail(t, harnessOptions{})
	h.addUser(bob, bobPass) // no APOP secret
	if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
		t.Fatal(err)
	}
	c := h.dial()
	ts := timestampOf(t, c.greeting)
	wrong := c.fail("APOP "+alice+" "+apopDigest(ts, "not-the-secret"), "-ERR [AUTH] ")
	noSecret := c.fail("APOP "+bob+" "+apopDigest(ts, bobPass), "-ERR [AUTH] ")
	unknown := c.fail("APOP nobody@example.org "+apopDigest(ts, "x"), "-ERR [AUTH] ")
	if wrong != noSecret || !strings.HasPrefix(unknown, wrong) || wrong != "-ERR [AUTH] invalid credentials" {
		t.Errorf("wrong digest %q, account without APOP %q, unknown user %q: want the same", wrong, noSecret, unknown)
	}
	c.eof() // the third failure closes the session
}

func TestAPOPSuccess(t *testing.T) {
	h := withMail(t, harnessOptions{})
	if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
		t.Fatal(err)
	}
	c := h.dial()
	ts := timestampOf(t, c.greeting)
	c.fail("APOP "+alice, "-ERR")
	c.fail("APOP nobody@example.org "+apopDigest(ts, "apop-secret-1"), "-ERR [AUTH] invalid credentials")
	// Upper-case hex is accepted too.
	if r := c.ok("APOP " + alice + " " + strings.ToUpper(apopDigest(ts, "apop-secret-1"))); !strings.Contains(r, "3 messages") {
		t.Errorf("APOP reply %q", r)
	}
	c.ok("STAT")

	// A digest over another session's timestamp does not work (replay).
	c2 := h.dial()
	c2.fail("APOP "+alice+" "+apopDigest(ts, "apop-secret-1"), "-ERR [AUTH] invalid credentials")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthPlain(t *testing.T) {
	h := withMail(t, harnessOptions{})
	h.addUser(bob, bobPass)

	c := h.dial()
	c.fail("AUTH PLAIN "+b64("\x00"+alice+"\x00wrong-password"), "-ERR [AUTH] invalid credentials")
	c.fail("AUTH PLAIN !!!notbase64", "-ERR")
	c.fail("AUTH CRAM-MD5", "-ERR")
	// Cancel.
	if r := c.cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("AUTH PLAIN without initial response: %q, want \"+ \"", r)
	}
	c.fail("*", "-ERR")
	// Bad base64 in a response.
	c.cmd("AUTH PLAIN")
	c.fail("%%%", "-ERR")
	// Initial response, lower-case mechanism name.
	if r := c.ok("AUTH plain " + b64("\x00"+alice+"\x00"+alicePass)); !strings.Contains(r, "3 messages") {
		t.Errorf("AUTH reply %q", r)
	}
	c.ok("STAT")

	c = h.dial()
	// Response after an empty challenge; authorization id = user.
	if r := c.cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("got %q", r)
	}
	c.ok(b64(bob + "\x00" + bob + "\x00" + bobPass))

	c = h.dial()
	// Another authorization identity: no proxy logins.
	c.fail("AUTH PLAIN "+b64(alice+"\x00"+bob+"\x00"+bobPass), "-ERR [AUTH]")
	// "=" is an empty initial response, which PLAIN cannot use.
	c.fail("AUTH PLAIN =", "-ERR [AUTH]")
	c.cmd("AUTH LOGIN " + b64(alice))
	c.fail(b64("wrong-password"), "-ERR [AUTH] invalid credentials; too many failures")
	c.eof() // third failure
}

func TestAuthLogin(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	if r := c.cmd("AUTH LOGIN"); r != "+ "+b64("Username:") {
		t.Fatalf("got %q", r)
	}
	if r := c.cmd(b64(alice)); r != "+ "+b64("Password:") {
		t.Fatalf("got %q", r)
	}
	c.fail(b64("wrong-password"), "-ERR [AUTH] invalid credentials")
	// With an initial response (the user name).
	if r := c.cmd("AUTH LOGIN " + b64(alice)); r != "+ "+b64("Password:") {
		t.Fatalf("got %q", r)
	}
	c.ok(b64(alicePass))
	c.ok("STAT")

	// Cancel at the password.
	c = h.dial()
	c.cmd("AUTH LOGIN " + b64(alice))
	c.fail("*", "-ERR")
	c.ok("CAPA")
	c.lines()
}

func TestAuthList(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.dial()
	c.ok("AUTH")
	if got := c.lines(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("AUTH list %q", got)
	}
}

// TestPlaintextPolicy: a client that is neither on TLS nor on loopback may
// not send a password in the clear until it has done STLS.
func TestPlaintextPolicy(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	h := withMail(t, harnessOptions{remote: remote})
	if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
		t.Fatal(err)
	}
	c := h.dial()
	c.ok("CAPA")
	caps := c.lines()
	if slices.Contains(caps, "USER") || slices.ContainsFunc(caps, func(s string) bool { return strings.HasPrefix(s, "SASL") }) {
		t.Errorf("plaintext mechanisms offered without TLS: %q", caps)
	}
	if !slices.Contains(caps, "STLS") {
		t.Errorf("no STLS: %q", caps)
	}
	want := "-ERR [AUTH] plaintext authentication requires TLS (use STLS)"
	for _, cmd := range []string{"USER " + alice, "PASS " + alicePass, "AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePass), "AUTH LOGIN"} {
		if r := c.cmd(cmd); r != want {
			t.Errorf("%s: %q, want %q", strings.Fields(cmd)[0], r, want)
		}
	}
	c.ok("AUTH")
	if got := c.lines(); len(got) != 0 {
		t.Errorf("AUTH list without TLS: %q", got)
	}
	// APOP sends no password: allowed.
	c2 := h.dial()
	c2.ok("APOP " + alice + " " + apopDigest(timestampOf(t, c2.greeting), "apop-secret-1"))
	c2.ok("QUIT")

	// After STLS, everything is available.
	c.ok("STLS")
	tc := tls.Client(c.conn, h.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.r.Reset(tc)
	c.ok("CAPA")
	caps = c.lines()
	if !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL PLAIN LOGIN") || slices.Contains(caps, "STLS") {
		t.Errorf("CAPA after STLS: %q", caps)
	}
	c.login(alice, alicePass)
	c.ok("STAT")
}

func TestSTLS(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.ok("USER " + alice)
	c.fail("STLS extra", "-ERR")
	// Commands pipelined after STLS travel in the clear and are
	// discarded.
	c.send("STLS\r\nCAPA\r\n")
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS: %q", r)
	}
	tc := tls.Client(c.conn, h.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn = tc
	c.r.Reset(tc)
	// The USER before STLS is forgotten.
	c.fail("PASS "+alicePass, "-ERR")
	c.fail("STLS", "-ERR")
	c.ok("CAPA")
	if caps := c.lines(); slices.Contains(caps, "STLS") {
		t.Errorf("STLS offered again: %q", caps)
	}
	// The next reply is NOOP's: the injected CAPA produced nothing.
	c.fail("NOOP", "-ERR")
	c.login(alice, alicePass)
	c.ok("STAT")
	c.fail("STLS", "-ERR")
	c.ok("QUIT")
}

func TestImplicitTLS(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	h := withMail(t, harnessOptions{implicitTLS: true, remote: remote})
	c := h.dialTLS()
	c.ok("CAPA")
	caps := c.lines()
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA on implicit TLS: %q", caps)
	}
	c.fail("STLS", "-ERR")
	c.login(alice, alicePass)
	c.ok("RETR 1")
	if got := c.multi(); got != msg1 {
		t.Errorf("RETR over TLS: %q", got)
	}
	c.ok("QUIT")
}

func TestTransaction(t *testing.T) {
	h := withMail(t, harnessOptions{})
	_, mb, stored := h.inbox(alice)
	c := h.dial()
	c.login(alice, alicePass)
	total := len(msg1) + len(msg2) + len(msg3)
	if r := c.ok("STAT"); r != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT %q", r)
	}
	if r := c.ok("LIST"); r != fmt.Sprintf("+OK 3 messages (%d octets)", total) {
		t.Errorf("LIST %q", r)
	}
	want := []string{"1 " + strconv.Itoa(len(msg1)), "2 " + strconv.Itoa(len(msg2)), "3 " + strconv.Itoa(len(msg3))}
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("LIST %q, want %q", got, want)
	}
	if r := c.ok("LIST 2"); r != "+OK 2 "+strconv.Itoa(len(msg2)) {
		t.Errorf("LIST 2: %q", r)
	}
	c.ok("UIDL")
	uidls := c.lines()
	for i, m := range stored {
		if uidls[i] != fmt.Sprintf("%d %s", i+1, m.UIDL(mb.UIDValidity)) {
			t.Errorf("UIDL line %q", uidls[i])
		}
	}
	if r := c.ok("UIDL 3"); r != "+OK "+uidls[2] {
		t.Errorf("UIDL 3: %q", r)
	}
	for i, m := range []string{msg1, msg2, msg3} {
		if r := c.ok(fmt.Sprintf("RETR %d", i+1)); r != fmt.Sprintf("+OK %d octets", len(m)) {
			t.Errorf("RETR %d: %q", i+1, r)
		}
		if got := c.multi(); got != m {
			t.Errorf("RETR %d: %q, want %q", i+1, got, m)
		}
	}

	// Errors. The session is renewed now and then: enough bad commands
	// end it.
	for i, cmd := range []string{"RETR", "RETR 0", "RETR 4", "RETR -1", "RETR +1", "RETR x", "RETR 1 2", "RETR 99999999999999999999",
		"LIST 0", "LIST 4", "LIST 1 2", "LIST x", "UIDL 0", "UIDL 1 2", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 4 0", "TOP", "DELE", "DELE 4", "DELE 1 1",
		"STAT 1", "NOOP 1", "RSET 1", "QUIT 1", "USER x", "PASS x", "APOP a b", "AUTH PLAIN", "STLS", "XYZZY", ""} {
		if r := c.cmd(cmd); !strings.HasPrefix(r, "-ERR") {
			t.Errorf("%q: %q, want -ERR", cmd, r)
		}
		if i%10 == 9 {
			c.ok("QUIT")
			c = loginRetry(t, h)
		}
	}
	c.ok("NOOP")

	// DELE marks; marked messages disappear from STAT/LIST/UIDL and
	// refuse every reference.
	if r := c.ok("DELE 2"); r != "+OK message 2 deleted" {
		t.Errorf("DELE: %q", r)
	}
	for _, cmd := range []string{"DELE 2", "RETR 2", "TOP 2 0", "LIST 2", "UIDL 2"} {
		c.fail(cmd, "-ERR message 2 already deleted")
	}
	if r := c.ok("STAT"); r != fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg3)) {
		t.Errorf("STAT after DELE %q", r)
	}
	c.ok("LIST")
	if got := c.lines(); !slices.Equal(got, []string{want[0], want[2]}) {
		t.Errorf("LIST after DELE %q", got)
	}
	c.ok("UIDL")
	if got := c.lines(); !slices.Equal(got, []string{uidls[0], uidls[2]}) {
		t.Errorf("UIDL after DELE %q", got)
	}
	// Numbers do not change.
	c.ok("RETR 3")
	if got := c.multi(); got != msg3 {
		t.Errorf("RETR 3 after DELE 2: %q", got)
	}
	if r := c.ok("RSET"); r != fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total) {
		t.Errorf("RSET %q", r)
	}
	c.ok("RETR 2")
	c.multi()
	c.ok("QUIT")
	c.eof()
	if _, _, msgs := h.inbox(alice); len(msgs) != 3 {
		t.Errorf("after RSET and QUIT: %d messages, want 3", len(msgs))
	}
}

func TestQuitDeletes(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("UIDL")
	uidls := c.lines()
	c.ok("DELE 1")
	c.ok("DELE 3")
	if r := c.ok("QUIT"); !strings.HasSuffix(r, "(2 messages deleted)") {
		t.Errorf("QUIT: %q", r)
	}
	c.eof()
	_, _, msgs := h.inbox(alice)
	if len(msgs) != 1 {
		t.Fatalf("%d messages left, want 1", len(msgs))
	}
	c = h.dial()
	c.login(alice, alicePass)
	if r := c.ok("STAT"); r != fmt.Sprintf("+OK 1 %d", len(msg2)) {
		t.Errorf("STAT %q", r)
	}
	c.ok("UIDL")
	if got := c.lines(); len(got) != 1 || strings.Fields(got[0])[1] != strings.Fields(uidls[1])[1] {
		t.Errorf("UIDL in the next session %q; earlier %q", got, uidls)
	}
	c.ok("RETR 1")
	if got := c.multi(); got != msg2 {
		t.Errorf("RETR %q", got)
	}
}

// loginRetry logs in, retrying while the previous session of the account
// still holds the lock (its server side may lag the client's close).
func loginRetry(t *testing.T, h *harness) *client {
	t.Helper()
	for i := 0; ; i++ {
		c := h.dial()
		c.ok("USER " + alice)
		r := c.cmd("PASS " + alicePass)
		if strings.HasPrefix(r, "+OK") {
			return c
		}
		if !strings.HasPrefix(r, "-ERR [IN-USE]") || i > 100 {
			t.Fatalf("login: %q", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDropKeepsMessages(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.conn.Close()
	c = loginRetry(t, h)
	if r := c.ok("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("after a dropped connection: %q", r)
	}
}

func TestMaildropLock(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c1 := h.dial()
	c1.login(alice, alicePass)
	c2 := h.dial()
	c2.ok("USER " + alice)
	c2.fail("PASS "+alicePass, "-ERR [IN-USE] maildrop already locked")
	// Still in AUTHORIZATION.
	c2.fail("STAT", "-ERR")
	c2.ok("CAPA")
	c2.lines()
	c1.ok("DELE 1")
	c1.ok("QUIT")
	c1.eof()
	c2.ok("USER " + alice)
	if r := c2.ok("PASS " + alicePass); !strings.Contains(r, "2 messages") {
		t.Errorf("second login %q", r)
	}
}

func TestQuitInAuthorization(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.ok("USER " + alice)
	c.ok("QUIT")
	c.eof()
}

func TestSnapshot(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.login(alice, alicePass)
	h.deliver(alice, msg("four", "late\r\n"))
	if r := c.ok("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("new mail appeared in the session: %q", r)
	}
	c.fail("RETR 4", "-ERR")
	c.ok("DELE 1")
	c.ok("QUIT")
	c = h.dial()
	c.login(alice, alicePass)
	if r := c.ok("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("next session: %q", r)
	}
	c.ok("RETR 3")
	if got := c.multi(); got != msg("four", "late\r\n") {
		t.Errorf("RETR 3: %q", got)
	}
}

func TestDotStuffing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	body := ".\r\n..\r\n.leading dot\r\nmiddle . dot\r\n.\r\n\r\n. \r\n"
	m := msg("dots", body)
	h.deliver(alice, m)
	h.deliver(alice, ".starts with a dot: no header\r\n")
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("LIST 1")
	c.send("RETR 1\r\n")
	if r := c.line(); r != fmt.Sprintf("+OK %d octets", len(m)) {
		t.Fatalf("RETR: %q", r)
	}
	// The raw wire bytes.
	var wire strings.Builder
	for {
		l := c.line()
		wire.WriteString(l + "\r\n")
		if l == "." {
			break
		}
	}
	wantWire := strings.ReplaceAll("\n"+m, "\n.", "\n..")[1:] + ".\r\n"
	if wire.String() != wantWire {
		t.Errorf("wire %q, want %q", wire.String(), wantWire)
	}
	c.ok("RETR 2")
	if got := c.multi(); got != ".starts with a dot: no header\r\n" {
		t.Errorf("RETR 2: %q", got)
	}
	c.ok("TOP 1 1")
	if got := c.multi(); got != msg("dots", ".\r\n") {
		t.Errorf("TOP 1 1: %q", got)
	}
}

func TestTop(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	header := "From: a@example.org\r\nSubject: top\r\n"
	body := "line 1\r\nline 2\r\n\r\nline 4\r\n"
	h.deliver(alice, header+"\r\n"+body)
	h.deliver(alice, "Subject: header only, no blank line\r\n")
	h.deliver(alice, "\r\nno header\r\nsecond\r\n")
	c := h.dial()
	c.login(alice, alicePass)
	for _, tc := range []struct {
		cmd, want string
	}{
		{"TOP 1 0", header + "\r\n"},
		{"TOP 1 1", header + "\r\nline 1\r\n"},
		{"TOP 1 3", header + "\r\nline 1\r\nline 2\r\n\r\n"},
		{"TOP 1 4", header + "\r\n" + body},
		{"TOP 1 1000", header + "\r\n" + body},
		{"TOP 1 4294967296", header + "\r\n" + body},
		{"TOP 2 0", "Subject: header only, no blank line\r\n"},
		{"TOP 3 0", "\r\n"},
		{"TOP 3 1", "\r\nno header\r\n"},
	} {
		c.ok(tc.cmd)
		if got := c.multi(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

func TestPipelining(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.send("CAPA\r\nUSER " + alice + "\r\nPASS " + alicePass + "\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 2 0\r\nUIDL 1\r\nDELE 1\r\nNOOP\r\nBOGUS\r\nQUIT\r\n")
	c.line()
	c.lines() // CAPA
	c.line()  // USER
	if r := c.line(); !strings.HasPrefix(r, "+OK maildrop has 3") {
		t.Fatalf("PASS %q", r)
	}
	if r := c.line(); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("STAT %q", r)
	}
	c.line()
	if got := c.lines(); len(got) != 3 {
		t.Errorf("LIST %q", got)
	}
	c.line()
	if got := c.multi(); got != msg1 {
		t.Errorf("RETR %q", got)
	}
	c.line()
	c.multi()
	for _, want := range []string{"+OK 1 ", "+OK message 1 deleted", "+OK", "-ERR", "+OK"} {
		if r := c.line(); !strings.HasPrefix(r, want) {
			t.Errorf("got %q, want %q", r, want)
		}
	}
	c.eof()
	if _, _, msgs := h.inbox(alice); len(msgs) != 2 {
		t.Errorf("%d messages after pipelined DELE and QUIT", len(msgs))
	}
}

func TestBareLF(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.send("USER " + alice + "\nPASS " + alicePass + "\n")
	c.line()
	if r := c.line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("PASS with bare LF: %q", r)
	}
	c.send("RETR 1\n")
	c.line()
	if got := c.multi(); got != msg1 {
		t.Errorf("RETR %q", got)
	}
}

func TestLongLines(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.fail("USER "+strings.Repeat("a", 600), "-ERR line too long")
	c.fail("NOOP"+strings.Repeat(" ", 100000), "-ERR line too long")
	c.fail(strings.Repeat("x", 1<<20), "-ERR line too long")
	// An AUTH line may be long (initial response), up to 8 KiB.
	long := b64("\x00" + alice + "\x00" + strings.Repeat("p", 900))
	c.fail("AUTH PLAIN "+long, "-ERR [AUTH]")
	c.fail("AUTH PLAIN "+strings.Repeat("A", 9000), "-ERR line too long")
	c.login(alice, alicePass)
	c.ok("STAT")
}

func TestGarbage(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.fail("\x00\xff\x80\x01garbage", "-ERR")
	c.fail("\xff\xfe\xfd\xfc", "-ERR")
	c.fail("US\x00R x", "-ERR")
	c.fail("\r", "-ERR")
	c.fail("USER\tx", "-ERR")
	c.ok("CAPA")
	c.lines()
	c.login(alice, alicePass)
	c.fail("RETR \x001", "-ERR")
	c.fail("RETR 1\x00", "-ERR")
	c.ok("STAT")
}

func TestTooManyBadCommands(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.dial()
	for i := 1; i < 20; i++ {
		c.fail("BOGUS", "-ERR unknown command")
	}
	c.fail("BOGUS", "-ERR too many bad commands")
	c.eof()
}

func TestCaseInsensitive(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.ok("capa")
	c.lines()
	c.ok("uSeR " + alice)
	c.ok("pass " + alicePass)
	c.ok("Stat")
	c.ok("rEtR 1")
	c.multi()
	c.ok("quit")
}

func TestAutologout(t *testing.T) {
	h := withMail(t, harnessOptions{timeout: 300 * time.Millisecond})
	c := h.dial()
	if r := c.line(); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("autologout: %q", r)
	}
	c.eof()

	c = h.dial()
	c.login(alice, alicePass)
	c.ok("DELE 1")
	time.Sleep(400 * time.Millisecond)
	if r := c.line(); !strings.HasPrefix(r, "-ERR autologout") {
		t.Errorf("autologout: %q", r)
	}
	c.eof()
	c = loginRetry(t, h)
	if r := c.ok("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("after autologout: %q", r)
	}
}

func TestShutdown(t *testing.T) {
	h := withMail(t, harnessOptions{})
	idle := h.dial()
	inTx := h.dial()
	inTx.login(alice, alicePass)
	inTx.ok("DELE 1")
	done := make(chan error, 1)
	go func() { done <- h.shutdown(10 * time.Second) }()
	for _, c := range []*client{idle, inTx} {
		if r := c.line(); r != "-ERR [SYS/TEMP] server shutting down" {
			t.Errorf("at shutdown: %q", r)
		}
		c.eof()
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, _, msgs := h.inbox(alice); len(msgs) != 3 {
		t.Errorf("%d messages after shutdown, want 3 (no UPDATE)", len(msgs))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.Serve(l); !errors.Is(err, pop3d.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		t.Errorf("listener still open after Shutdown")
	}
}

func TestExpungedMeanwhile(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.login(alice, alicePass)
	a, mb, msgs := h.inbox(alice)
	if _, err := a.Expunge(context.Background(), mb.ID, []uint32{msgs[0].UID}); err != nil {
		t.Fatal(err)
	}
	c.fail("RETR 1", "-ERR message no longer available")
	c.fail("TOP 1 0", "-ERR message no longer available")
	c.ok("LIST 1") // the snapshot still lists it
	c.ok("DELE 1")
	c.ok("DELE 2")
	if r := c.ok("QUIT"); !strings.HasSuffix(r, "(1 messages deleted)") {
		t.Errorf("QUIT: %q", r)
	}
	if _, _, msgs := h.inbox(alice); len(msgs) != 1 {
		t.Errorf("%d messages left", len(msgs))
	}
}

func TestUpdateFailure(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("DELE 1")
	h.store.Close() // the expunge cannot work now
	c.fail("QUIT", "-ERR [SYS/TEMP]")
	c.eof()
}

func TestUIDLStableAndValid(t *testing.T) {
	h := withMail(t, harnessOptions{})
	var first []string
	for i := 0; i < 2; i++ {
		c := loginRetry(t, h)
		c.ok("UIDL")
		got := c.lines()
		for _, l := range got {
			id := strings.Fields(l)[1]
			if len(id) < 1 || len(id) > 70 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
				t.Errorf("invalid UIDL %q", id)
			}
		}
		if i == 0 {
			first = got
		} else if !slices.Equal(first, got) {
			t.Errorf("UIDL changed between sessions: %q, %q", first, got)
		}
		c.ok("QUIT")
	}
}

func TestLargeMessage(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	var b strings.Builder
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		if i%7 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "line %d of a big message with some text to make it longer\r\n", i)
	}
	big := b.String()
	h.deliver(alice, big)
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("RETR 1")
	if got := c.multi(); got != big {
		t.Errorf("big message differs (len %d, want %d)", len(got), len(big))
	}
	c.ok("QUIT")
}

// TestShutdownDeadline: a client that stops reading in the middle of a
// large RETR cannot hold Shutdown beyond its context.
func TestShutdownDeadline(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	h.deliver(alice, "Subject: big\r\n\r\n"+strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 1<<19))
	c := h.dial()
	c.login(alice, alicePass)
	c.send("RETR 1\r\n") // and never read
	time.Sleep(100 * time.Millisecond)
	if err := h.shutdown(300 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	if _, _, msgs := h.inbox(alice); len(msgs) != 1 {
		t.Errorf("%d messages", len(msgs))
	}
}

// TestPanicRecovered: a panic in a command ends that session with -ERR,
// not the process.
func TestPanicRecovered(t *testing.T) {
	h := newHarness(t, harnessOptions{noStore: true})
	h.addUser(alice, alicePass)
	for i := 0; i < 2; i++ {
		c := h.dial()
		c.ok("USER " + alice)
		c.fail("PASS "+alicePass, "-ERR [SYS/TEMP] internal error")
		c.eof()
	}
}

// TestLogs: the session logs carry cid, proto, remote and the account, one
// line per login and failure, and never a password, even at trace level.
func TestLogs(t *testing.T) {
	var buf syncBuffer
	h := withMail(t, harnessOptions{logTo: &buf})
	c := h.dial()
	c.ok("USER " + alice)
	c.fail("PASS wrong-secret-1", "-ERR [AUTH]")
	c.fail("AUTH PLAIN "+b64("\x00"+alice+"\x00wrong-secret-2"), "-ERR [AUTH]")
	c.cmd("AUTH LOGIN")
	c.cmd(b64(alice))
	c.fail(b64("wrong-secret-3"), "-ERR [AUTH]")
	c = h.dial()
	c.login(alice, alicePass)
	c.ok("QUIT")
	c.eof()
	h.shutdown(5 * time.Second)

	var logins, failures int
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		for _, secret := range []string{"wrong-secret-1", "wrong-secret-2", "wrong-secret-3", alicePass, b64(alicePass), b64("wrong-secret-3")} {
			if strings.Contains(line, secret) {
				t.Errorf("log line contains a secret: %s", line)
			}
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["msg"] {
		case "pop3 login":
			logins++
			for _, k := range []string{"cid", "proto", "remote", "account", "method"} {
				if rec[k] == nil || rec[k] == "" {
					t.Errorf("login log without %s: %s", k, line)
				}
			}
		case "pop3 login failed":
			failures++
			for _, k := range []string{"cid", "proto", "remote", "user", "method"} {
				if rec[k] == nil || rec[k] == "" {
					t.Errorf("login failure log without %s: %s", k, line)
				}
			}
		}
	}
	if logins != 1 || failures != 3 {
		t.Errorf("%d login lines, %d failure lines; want 1 and 3", logins, failures)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestUIDLKeptFromImport: messages imported with a kept POP3 UIDL (from
// Dovecot) answer UIDL with it; a message delivered here afterwards gets
// the store's own.
func TestUIDLKeptFromImport(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	a, _, _ := h.inbox(alice)
	ctx := context.Background()
	if _, err := a.ImportMailbox(ctx, "INBOX", 0x49FA1D30); err != nil {
		t.Fatal(err)
	}
	var msgs []store.ImportedMessage
	for i, raw := range []string{msg1, msg2} {
		w, err := h.store.NewBody()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, raw)
		tmp, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		defer tmp.Remove()
		uidl := ""
		if i == 0 {
			uidl = "kept-uidl-7"
		}
		msgs = append(msgs, store.ImportedMessage{AppendMessage: store.AppendMessage{Body: tmp}, UID: uint32(7 + i), POP3UIDL: uidl})
	}
	if _, err := a.ImportMessages(ctx, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	h.deliver(alice, msg3)
	c := h.dial()
	c.login(alice, alicePass)
	c.ok("UIDL")
	want := []string{"1 kept-uidl-7", "2 0000000849fa1d30", "3 0000000949fa1d30"}
	if got := c.lines(); !slices.Equal(got, want) {
		t.Errorf("UIDL %q, want %q", got, want)
	}
	if r := c.ok("UIDL 1"); r != "+OK 1 kept-uidl-7" {
		t.Errorf("UIDL 1: %q", r)
	}
}

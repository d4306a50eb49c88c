package pop3d_test

import (
	"context"
	"crypto/md5"
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
	"github.com/jodmai/jodmai/internal/testenv/wait"
	"github.com/jodmai/jodmai/internal/testenv/wire"
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
	if !strings.HasPrefix(c1.Greeting, "+OK "+testHost+" POP3 ready <") {
		t.Errorf("greeting %q", c1.Greeting)
	}
	ts1, ts2 := timestampOf(t, c1.Greeting), timestampOf(t, c2.Greeting)
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
	c.OK("CAPA")
	caps := c.Lines()
	for _, want := range []string{"TOP", "USER", "SASL PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL", "EXPIRE NEVER", "STLS", "IMPLEMENTATION jodmai"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA in AUTHORIZATION lacks %q: %q", want, caps)
		}
	}
	if slices.ContainsFunc(caps, func(s string) bool { return strings.HasPrefix(s, "LOGIN-DELAY") }) {
		t.Errorf("CAPA advertises LOGIN-DELAY: %q", caps)
	}
	c.Expect("CAPA x", "-ERR")
	c.Login(alice, alicePass)
	c.OK("capa")
	caps = c.Lines()
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
	c2.OK("CAPA")
	if caps := c2.Lines(); slices.Contains(caps, "STLS") {
		t.Errorf("STLS offered without TLS config: %q", caps)
	}
	c2.Expect("STLS", "-ERR")
}

func TestUserPass(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Expect("PASS "+alicePass, "-ERR") // no USER first
	c.Expect("USER", "-ERR")
	c.Expect("STAT", "-ERR") // wrong state
	c.OK("USER " + alice)
	bad := c.Expect("PASS wrong-password", "-ERR [AUTH] ")
	c.OK("USER nobody@example.org") // never reveals existence
	unknown := c.Expect("PASS "+alicePass, "-ERR [AUTH] ")
	if bad != unknown || bad != "-ERR [AUTH] invalid credentials" {
		t.Errorf("wrong password %q vs unknown user %q: want the same text", bad, unknown)
	}
	c.OK("USER " + alice)
	if r := c.OK("PASS " + alicePass); r != fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", len(msg1)+len(msg2)+len(msg3)) {
		t.Errorf("login reply %q", r)
	}
	c.Expect("USER "+alice, "-ERR") // wrong state
	c.Expect("PASS x", "-ERR")
	c.OK("QUIT")
	c.EOF()
}

func TestPasswordWithSpaces(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, "pass word with spaces")
	c := h.dial()
	c.Login(alice, "pass word with spaces")
}

func TestAuthFailuresClose(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	for i := 0; i < 2; i++ {
		c.OK("USER " + alice)
		if r := c.Expect("PASS nope", "-ERR [AUTH] "); r != "-ERR [AUTH] invalid credentials" {
			t.Errorf("failure %d: %q", i, r)
		}
	}
	c.OK("USER " + alice)
	c.Expect("PASS nope", "-ERR [AUTH] invalid credentials")
	c.EOF()
}

func TestThrottled(t *testing.T) {
	h := newHarness(t, harnessOptions{policy: &auth.Policy{Window: time.Minute, IPLockoutAfter: 1, Lockout: time.Minute}})
	h.addUser(alice, alicePass)
	c := h.dial()
	c.OK("USER " + alice)
	c.Expect("PASS nope", "-ERR [AUTH] invalid credentials")
	c.OK("USER " + alice)
	c.Expect("PASS "+alicePass, "-ERR [AUTH] too many failures")
	c.EOF()
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
	ts := timestampOf(t, c.Greeting)
	wrong := c.Expect("APOP "+alice+" "+apopDigest(ts, "not-the-secret"), "-ERR [AUTH] ")
	noSecret := c.Expect("APOP "+bob+" "+apopDigest(ts, bobPass), "-ERR [AUTH] ")
	unknown := c.Expect("APOP nobody@example.org "+apopDigest(ts, "x"), "-ERR [AUTH] ")
	if wrong != noSecret || !strings.HasPrefix(unknown, wrong) || wrong != "-ERR [AUTH] invalid credentials" {
		t.Errorf("wrong digest %q, account without APOP %q, unknown user %q: want the same", wrong, noSecret, unknown)
	}
	c.EOF() // the third failure closes the session
}

func TestAPOPSuccess(t *testing.T) {
	h := withMail(t, harnessOptions{})
	if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
		t.Fatal(err)
	}
	c := h.dial()
	ts := timestampOf(t, c.Greeting)
	c.Expect("APOP "+alice, "-ERR")
	c.Expect("APOP nobody@example.org "+apopDigest(ts, "apop-secret-1"), "-ERR [AUTH] invalid credentials")
	// Upper-case hex is accepted too.
	if r := c.OK("APOP " + alice + " " + strings.ToUpper(apopDigest(ts, "apop-secret-1"))); !strings.Contains(r, "3 messages") {
		t.Errorf("APOP reply %q", r)
	}
	c.OK("STAT")

	// A digest over another session's timestamp does not work (replay).
	c2 := h.dial()
	c2.Expect("APOP "+alice+" "+apopDigest(ts, "apop-secret-1"), "-ERR [AUTH] invalid credentials")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthPlain(t *testing.T) {
	h := withMail(t, harnessOptions{})
	h.addUser(bob, bobPass)

	c := h.dial()
	c.Expect("AUTH PLAIN "+b64("\x00"+alice+"\x00wrong-password"), "-ERR [AUTH] invalid credentials")
	c.Expect("AUTH PLAIN !!!notbase64", "-ERR")
	c.Expect("AUTH CRAM-MD5", "-ERR")
	// Cancel.
	if r := c.Cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("AUTH PLAIN without initial response: %q, want \"+ \"", r)
	}
	c.Expect("*", "-ERR")
	// Bad base64 in a response.
	c.Cmd("AUTH PLAIN")
	c.Expect("%%%", "-ERR")
	// Initial response, lower-case mechanism name.
	if r := c.OK("AUTH plain " + b64("\x00"+alice+"\x00"+alicePass)); !strings.Contains(r, "3 messages") {
		t.Errorf("AUTH reply %q", r)
	}
	c.OK("STAT")

	c = h.dial()
	// Response after an empty challenge; authorization id = user.
	if r := c.Cmd("AUTH PLAIN"); r != "+ " {
		t.Fatalf("got %q", r)
	}
	c.OK(b64(bob + "\x00" + bob + "\x00" + bobPass))

	c = h.dial()
	// Another authorization identity: no proxy logins.
	c.Expect("AUTH PLAIN "+b64(alice+"\x00"+bob+"\x00"+bobPass), "-ERR [AUTH]")
	// "=" is an empty initial response, which PLAIN cannot use.
	c.Expect("AUTH PLAIN =", "-ERR [AUTH]")
	c.Cmd("AUTH LOGIN " + b64(alice))
	c.Expect(b64("wrong-password"), "-ERR [AUTH] invalid credentials; too many failures")
	c.EOF() // third failure
}

func TestAuthLogin(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	if r := c.Cmd("AUTH LOGIN"); r != "+ "+b64("Username:") {
		t.Fatalf("got %q", r)
	}
	if r := c.Cmd(b64(alice)); r != "+ "+b64("Password:") {
		t.Fatalf("got %q", r)
	}
	c.Expect(b64("wrong-password"), "-ERR [AUTH] invalid credentials")
	// With an initial response (the user name).
	if r := c.Cmd("AUTH LOGIN " + b64(alice)); r != "+ "+b64("Password:") {
		t.Fatalf("got %q", r)
	}
	c.OK(b64(alicePass))
	c.OK("STAT")

	// Cancel at the password.
	c = h.dial()
	c.Cmd("AUTH LOGIN " + b64(alice))
	c.Expect("*", "-ERR")
	c.OK("CAPA")
	c.Lines()
}

func TestAuthList(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.dial()
	c.OK("AUTH")
	if got := c.Lines(); !slices.Equal(got, []string{"PLAIN", "LOGIN"}) {
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
	c.OK("CAPA")
	caps := c.Lines()
	if slices.Contains(caps, "USER") || slices.ContainsFunc(caps, func(s string) bool { return strings.HasPrefix(s, "SASL") }) {
		t.Errorf("plaintext mechanisms offered without TLS: %q", caps)
	}
	if !slices.Contains(caps, "STLS") {
		t.Errorf("no STLS: %q", caps)
	}
	want := "-ERR [AUTH] plaintext authentication requires TLS (use STLS)"
	for _, cmd := range []string{"USER " + alice, "PASS " + alicePass, "AUTH PLAIN " + b64("\x00"+alice+"\x00"+alicePass), "AUTH LOGIN"} {
		if r := c.Cmd(cmd); r != want {
			t.Errorf("%s: %q, want %q", strings.Fields(cmd)[0], r, want)
		}
	}
	c.OK("AUTH")
	if got := c.Lines(); len(got) != 0 {
		t.Errorf("AUTH list without TLS: %q", got)
	}
	// APOP sends no password: allowed.
	c2 := h.dial()
	c2.OK("APOP " + alice + " " + apopDigest(timestampOf(t, c2.Greeting), "apop-secret-1"))
	c2.OK("QUIT")

	// After STLS, everything is available.
	c.OK("STLS")
	c.UpgradeTLS(h.clientTLS())
	c.OK("CAPA")
	caps = c.Lines()
	if !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL PLAIN LOGIN") || slices.Contains(caps, "STLS") {
		t.Errorf("CAPA after STLS: %q", caps)
	}
	c.Login(alice, alicePass)
	c.OK("STAT")
}

func TestSTLS(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.OK("USER " + alice)
	c.Expect("STLS extra", "-ERR")
	// Commands pipelined after STLS travel in the clear and are
	// discarded.
	c.Send("STLS\r\nCAPA\r\n")
	if r := c.Line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("STLS: %q", r)
	}
	c.UpgradeTLS(h.clientTLS())
	// The USER before STLS is forgotten.
	c.Expect("PASS "+alicePass, "-ERR")
	c.Expect("STLS", "-ERR")
	c.OK("CAPA")
	if caps := c.Lines(); slices.Contains(caps, "STLS") {
		t.Errorf("STLS offered again: %q", caps)
	}
	// The next reply is NOOP's: the injected CAPA produced nothing.
	c.Expect("NOOP", "-ERR")
	c.Login(alice, alicePass)
	c.OK("STAT")
	c.Expect("STLS", "-ERR")
	c.OK("QUIT")
}

func TestImplicitTLS(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	h := withMail(t, harnessOptions{implicitTLS: true, remote: remote})
	c := h.dialTLS()
	c.OK("CAPA")
	caps := c.Lines()
	if slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA on implicit TLS: %q", caps)
	}
	c.Expect("STLS", "-ERR")
	c.Login(alice, alicePass)
	c.OK("RETR 1")
	if got := c.Multi(); got != msg1 {
		t.Errorf("RETR over TLS: %q", got)
	}
	c.OK("QUIT")
}

func TestTransaction(t *testing.T) {
	h := withMail(t, harnessOptions{})
	_, mb, stored := h.inbox(alice)
	c := h.dial()
	c.Login(alice, alicePass)
	total := len(msg1) + len(msg2) + len(msg3)
	if r := c.OK("STAT"); r != fmt.Sprintf("+OK 3 %d", total) {
		t.Errorf("STAT %q", r)
	}
	if r := c.OK("LIST"); r != fmt.Sprintf("+OK 3 messages (%d octets)", total) {
		t.Errorf("LIST %q", r)
	}
	want := []string{"1 " + strconv.Itoa(len(msg1)), "2 " + strconv.Itoa(len(msg2)), "3 " + strconv.Itoa(len(msg3))}
	if got := c.Lines(); !slices.Equal(got, want) {
		t.Errorf("LIST %q, want %q", got, want)
	}
	if r := c.OK("LIST 2"); r != "+OK 2 "+strconv.Itoa(len(msg2)) {
		t.Errorf("LIST 2: %q", r)
	}
	c.OK("UIDL")
	uidls := c.Lines()
	for i, m := range stored {
		if uidls[i] != fmt.Sprintf("%d %s", i+1, m.UIDL(mb.UIDValidity)) {
			t.Errorf("UIDL line %q", uidls[i])
		}
	}
	if r := c.OK("UIDL 3"); r != "+OK "+uidls[2] {
		t.Errorf("UIDL 3: %q", r)
	}
	for i, m := range []string{msg1, msg2, msg3} {
		if r := c.OK(fmt.Sprintf("RETR %d", i+1)); r != fmt.Sprintf("+OK %d octets", len(m)) {
			t.Errorf("RETR %d: %q", i+1, r)
		}
		if got := c.Multi(); got != m {
			t.Errorf("RETR %d: %q, want %q", i+1, got, m)
		}
	}

	// Errors. The session is renewed now and then: enough bad commands
	// end it.
	for i, cmd := range []string{"RETR", "RETR 0", "RETR 4", "RETR -1", "RETR +1", "RETR x", "RETR 1 2", "RETR 99999999999999999999",
		"LIST 0", "LIST 4", "LIST 1 2", "LIST x", "UIDL 0", "UIDL 1 2", "TOP 1", "TOP 1 -1", "TOP 1 x", "TOP 4 0", "TOP", "DELE", "DELE 4", "DELE 1 1",
		"STAT 1", "NOOP 1", "RSET 1", "QUIT 1", "USER x", "PASS x", "APOP a b", "AUTH PLAIN", "STLS", "XYZZY", ""} {
		if r := c.Cmd(cmd); !strings.HasPrefix(r, "-ERR") {
			t.Errorf("%q: %q, want -ERR", cmd, r)
		}
		if i%10 == 9 {
			c.OK("QUIT")
			c = loginRetry(t, h)
		}
	}
	c.OK("NOOP")

	// DELE marks; marked messages disappear from STAT/LIST/UIDL and
	// refuse every reference.
	if r := c.OK("DELE 2"); r != "+OK message 2 deleted" {
		t.Errorf("DELE: %q", r)
	}
	for _, cmd := range []string{"DELE 2", "RETR 2", "TOP 2 0", "LIST 2", "UIDL 2"} {
		c.Expect(cmd, "-ERR message 2 already deleted")
	}
	if r := c.OK("STAT"); r != fmt.Sprintf("+OK 2 %d", len(msg1)+len(msg3)) {
		t.Errorf("STAT after DELE %q", r)
	}
	c.OK("LIST")
	if got := c.Lines(); !slices.Equal(got, []string{want[0], want[2]}) {
		t.Errorf("LIST after DELE %q", got)
	}
	c.OK("UIDL")
	if got := c.Lines(); !slices.Equal(got, []string{uidls[0], uidls[2]}) {
		t.Errorf("UIDL after DELE %q", got)
	}
	// Numbers do not change.
	c.OK("RETR 3")
	if got := c.Multi(); got != msg3 {
		t.Errorf("RETR 3 after DELE 2: %q", got)
	}
	if r := c.OK("RSET"); r != fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total) {
		t.Errorf("RSET %q", r)
	}
	c.OK("RETR 2")
	c.Multi()
	c.OK("QUIT")
	c.EOF()
	if _, _, msgs := h.inbox(alice); len(msgs) != 3 {
		t.Errorf("after RSET and QUIT: %d messages, want 3", len(msgs))
	}
}

func TestQuitDeletes(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Login(alice, alicePass)
	c.OK("UIDL")
	uidls := c.Lines()
	c.OK("DELE 1")
	c.OK("DELE 3")
	if r := c.OK("QUIT"); !strings.HasSuffix(r, "(2 messages deleted)") {
		t.Errorf("QUIT: %q", r)
	}
	c.EOF()
	_, _, msgs := h.inbox(alice)
	if len(msgs) != 1 {
		t.Fatalf("%d messages left, want 1", len(msgs))
	}
	c = h.dial()
	c.Login(alice, alicePass)
	if r := c.OK("STAT"); r != fmt.Sprintf("+OK 1 %d", len(msg2)) {
		t.Errorf("STAT %q", r)
	}
	c.OK("UIDL")
	if got := c.Lines(); len(got) != 1 || strings.Fields(got[0])[1] != strings.Fields(uidls[1])[1] {
		t.Errorf("UIDL in the next session %q; earlier %q", got, uidls)
	}
	c.OK("RETR 1")
	if got := c.Multi(); got != msg2 {
		t.Errorf("RETR %q", got)
	}
}

// loginRetry logs in, retrying while the previous session of the account
// still holds the lock (its server side may lag the client's close).
func loginRetry(t *testing.T, h *harness) *wire.POP3 {
	t.Helper()
	var c *wire.POP3
	wait.For(t, 10*time.Second, "the lock of the previous session released", func() bool {
		c = h.dial()
		c.OK("USER " + alice)
		r := c.Cmd("PASS " + alicePass)
		if !strings.HasPrefix(r, "+OK") && !strings.HasPrefix(r, "-ERR [IN-USE]") {
			t.Fatalf("login: %q", r)
		}
		return strings.HasPrefix(r, "+OK")
	})
	return c
}

func TestDropKeepsMessages(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Login(alice, alicePass)
	c.OK("DELE 1")
	c.OK("DELE 2")
	c.Close()
	c = loginRetry(t, h)
	if r := c.OK("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("after a dropped connection: %q", r)
	}
}

func TestMaildropLock(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c1 := h.dial()
	c1.Login(alice, alicePass)
	c2 := h.dial()
	c2.OK("USER " + alice)
	c2.Expect("PASS "+alicePass, "-ERR [IN-USE] maildrop already locked")
	// Still in AUTHORIZATION.
	c2.Expect("STAT", "-ERR")
	c2.OK("CAPA")
	c2.Lines()
	c1.OK("DELE 1")
	c1.OK("QUIT")
	c1.EOF()
	c2.OK("USER " + alice)
	if r := c2.OK("PASS " + alicePass); !strings.Contains(r, "2 messages") {
		t.Errorf("second login %q", r)
	}
}

func TestQuitInAuthorization(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.OK("USER " + alice)
	c.OK("QUIT")
	c.EOF()
}

func TestSnapshot(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Login(alice, alicePass)
	h.deliver(alice, msg("four", "late\r\n"))
	if r := c.OK("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("new mail appeared in the session: %q", r)
	}
	c.Expect("RETR 4", "-ERR")
	c.OK("DELE 1")
	c.OK("QUIT")
	c = h.dial()
	c.Login(alice, alicePass)
	if r := c.OK("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("next session: %q", r)
	}
	c.OK("RETR 3")
	if got := c.Multi(); got != msg("four", "late\r\n") {
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
	c.Login(alice, alicePass)
	c.OK("LIST 1")
	c.Send("RETR 1\r\n")
	if r := c.Line(); r != fmt.Sprintf("+OK %d octets", len(m)) {
		t.Fatalf("RETR: %q", r)
	}
	// The raw wire bytes.
	var wire strings.Builder
	for {
		l := c.Line()
		wire.WriteString(l + "\r\n")
		if l == "." {
			break
		}
	}
	wantWire := strings.ReplaceAll("\n"+m, "\n.", "\n..")[1:] + ".\r\n"
	if wire.String() != wantWire {
		t.Errorf("wire %q, want %q", wire.String(), wantWire)
	}
	c.OK("RETR 2")
	if got := c.Multi(); got != ".starts with a dot: no header\r\n" {
		t.Errorf("RETR 2: %q", got)
	}
	c.OK("TOP 1 1")
	if got := c.Multi(); got != msg("dots", ".\r\n") {
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
	c.Login(alice, alicePass)
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
		c.OK(tc.cmd)
		if got := c.Multi(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

func TestPipelining(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Send("CAPA\r\nUSER " + alice + "\r\nPASS " + alicePass + "\r\nSTAT\r\nLIST\r\nRETR 1\r\nTOP 2 0\r\nUIDL 1\r\nDELE 1\r\nNOOP\r\nBOGUS\r\nQUIT\r\n")
	c.Line()
	c.Lines() // CAPA
	c.Line()  // USER
	if r := c.Line(); !strings.HasPrefix(r, "+OK maildrop has 3") {
		t.Fatalf("PASS %q", r)
	}
	if r := c.Line(); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("STAT %q", r)
	}
	c.Line()
	if got := c.Lines(); len(got) != 3 {
		t.Errorf("LIST %q", got)
	}
	c.Line()
	if got := c.Multi(); got != msg1 {
		t.Errorf("RETR %q", got)
	}
	c.Line()
	c.Multi()
	for _, want := range []string{"+OK 1 ", "+OK message 1 deleted", "+OK", "-ERR", "+OK"} {
		if r := c.Line(); !strings.HasPrefix(r, want) {
			t.Errorf("got %q, want %q", r, want)
		}
	}
	c.EOF()
	if _, _, msgs := h.inbox(alice); len(msgs) != 2 {
		t.Errorf("%d messages after pipelined DELE and QUIT", len(msgs))
	}
}

func TestBareLF(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Send("USER " + alice + "\nPASS " + alicePass + "\n")
	c.Line()
	if r := c.Line(); !strings.HasPrefix(r, "+OK") {
		t.Fatalf("PASS with bare LF: %q", r)
	}
	c.Send("RETR 1\n")
	c.Line()
	if got := c.Multi(); got != msg1 {
		t.Errorf("RETR %q", got)
	}
}

func TestLongLines(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Expect("USER "+strings.Repeat("a", 600), "-ERR line too long")
	c.Expect("NOOP"+strings.Repeat(" ", 100000), "-ERR line too long")
	c.Expect(strings.Repeat("x", 1<<20), "-ERR line too long")
	// An AUTH line may be long (initial response), up to 8 KiB.
	long := b64("\x00" + alice + "\x00" + strings.Repeat("p", 900))
	c.Expect("AUTH PLAIN "+long, "-ERR [AUTH]")
	c.Expect("AUTH PLAIN "+strings.Repeat("A", 9000), "-ERR line too long")
	c.Login(alice, alicePass)
	c.OK("STAT")
}

func TestGarbage(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Expect("\x00\xff\x80\x01garbage", "-ERR")
	c.Expect("\xff\xfe\xfd\xfc", "-ERR")
	c.Expect("US\x00R x", "-ERR")
	c.Expect("\r", "-ERR")
	c.Expect("USER\tx", "-ERR")
	c.OK("CAPA")
	c.Lines()
	c.Login(alice, alicePass)
	c.Expect("RETR \x001", "-ERR")
	c.Expect("RETR 1\x00", "-ERR")
	c.OK("STAT")
}

func TestTooManyBadCommands(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	c := h.dial()
	for i := 1; i < 20; i++ {
		c.Expect("BOGUS", "-ERR unknown command")
	}
	c.Expect("BOGUS", "-ERR too many bad commands")
	c.EOF()
}

func TestCaseInsensitive(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.OK("capa")
	c.Lines()
	c.OK("uSeR " + alice)
	c.OK("pass " + alicePass)
	c.OK("Stat")
	c.OK("rEtR 1")
	c.Multi()
	c.OK("quit")
}

func TestAutologout(t *testing.T) {
	h := withMail(t, harnessOptions{timeout: 300 * time.Millisecond})
	c := h.dial()
	if r := c.Line(); !strings.HasPrefix(r, "-ERR") {
		t.Errorf("autologout: %q", r)
	}
	c.EOF()

	c = h.dial()
	c.Login(alice, alicePass)
	c.OK("DELE 1")
	time.Sleep(400 * time.Millisecond)
	if r := c.Line(); !strings.HasPrefix(r, "-ERR autologout") {
		t.Errorf("autologout: %q", r)
	}
	c.EOF()
	c = loginRetry(t, h)
	if r := c.OK("STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("after autologout: %q", r)
	}
}

// TestAutologoutReset: each command starts the autologout timer over
// (RFC 1939 §3: the timer is of inactivity).
func TestAutologoutReset(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	h := withMail(t, harnessOptions{timeout: timeout})
	c := h.dial()
	c.Login(alice, alicePass)
	// Two pauses of two thirds of the timer: together more than it, so
	// the second NOOP is answered only if the first reset the timer.
	for range 2 {
		time.Sleep(timeout * 2 / 3)
		c.OK("NOOP")
	}
	if r := c.Line(); !strings.HasPrefix(r, "-ERR autologout") {
		t.Errorf("autologout: %q", r)
	}
	c.EOF()
}

func TestShutdown(t *testing.T) {
	h := withMail(t, harnessOptions{})
	idle := h.dial()
	inTx := h.dial()
	inTx.Login(alice, alicePass)
	inTx.OK("DELE 1")
	done := make(chan error, 1)
	go func() { done <- h.shutdown(10 * time.Second) }()
	for _, c := range []*wire.POP3{idle, inTx} {
		if r := c.Line(); r != "-ERR [SYS/TEMP] server shutting down" {
			t.Errorf("at shutdown: %q", r)
		}
		c.EOF()
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
	c.Login(alice, alicePass)
	a, mb, msgs := h.inbox(alice)
	if _, err := a.Expunge(context.Background(), mb.ID, []uint32{msgs[0].UID}); err != nil {
		t.Fatal(err)
	}
	c.Expect("RETR 1", "-ERR message no longer available")
	c.Expect("TOP 1 0", "-ERR message no longer available")
	c.OK("LIST 1") // the snapshot still lists it
	c.OK("DELE 1")
	c.OK("DELE 2")
	if r := c.OK("QUIT"); !strings.HasSuffix(r, "(1 messages deleted)") {
		t.Errorf("QUIT: %q", r)
	}
	if _, _, msgs := h.inbox(alice); len(msgs) != 1 {
		t.Errorf("%d messages left", len(msgs))
	}
}

func TestUpdateFailure(t *testing.T) {
	h := withMail(t, harnessOptions{})
	c := h.dial()
	c.Login(alice, alicePass)
	c.OK("DELE 1")
	h.store.Close() // the expunge cannot work now
	c.Expect("QUIT", "-ERR [SYS/TEMP]")
	c.EOF()
}

func TestUIDLStableAndValid(t *testing.T) {
	h := withMail(t, harnessOptions{})
	var first []string
	for i := 0; i < 2; i++ {
		c := loginRetry(t, h)
		c.OK("UIDL")
		got := c.Lines()
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
		c.OK("QUIT")
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
	c.Login(alice, alicePass)
	c.OK("RETR 1")
	if got := c.Multi(); got != big {
		t.Errorf("big message differs (len %d, want %d)", len(got), len(big))
	}
	c.OK("QUIT")
}

// TestShutdownDeadline: a client that stops reading in the middle of a
// large RETR cannot hold Shutdown beyond its context.
func TestShutdownDeadline(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.addUser(alice, alicePass)
	h.deliver(alice, "Subject: big\r\n\r\n"+strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 1<<19))
	c := h.dial()
	c.Login(alice, alicePass)
	// The status line says the response has started; then never read
	// on: the server is stuck in the middle of 32 MiB.
	c.Send("RETR 1\r\n")
	c.WantLine("+OK")
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
		c.OK("USER " + alice)
		c.Expect("PASS "+alicePass, "-ERR [SYS/TEMP] internal error")
		c.EOF()
	}
}

// TestLogs: the session logs carry cid, proto, remote and the account, one
// line per login and failure, and never a password, even at trace level.
func TestLogs(t *testing.T) {
	var buf syncBuffer
	h := withMail(t, harnessOptions{logTo: &buf})
	c := h.dial()
	c.OK("USER " + alice)
	c.Expect("PASS wrong-secret-1", "-ERR [AUTH]")
	c.Expect("AUTH PLAIN "+b64("\x00"+alice+"\x00wrong-secret-2"), "-ERR [AUTH]")
	c.Cmd("AUTH LOGIN")
	c.Cmd(b64(alice))
	c.Expect(b64("wrong-secret-3"), "-ERR [AUTH]")
	c = h.dial()
	c.Login(alice, alicePass)
	c.OK("QUIT")
	c.EOF()
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
	c.Login(alice, alicePass)
	c.OK("UIDL")
	want := []string{"1 kept-uidl-7", "2 0000000849fa1d30", "3 0000000949fa1d30"}
	if got := c.Lines(); !slices.Equal(got, want) {
		t.Errorf("UIDL %q, want %q", got, want)
	}
	if r := c.OK("UIDL 1"); r != "+OK 1 kept-uidl-7" {
		t.Errorf("UIDL 1: %q", r)
	}
}

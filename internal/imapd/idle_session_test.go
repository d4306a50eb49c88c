package imapd_test

import (
	"fmt"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

// IDLE (RFC 2177, RFC 9051 §6.3.13): updates as they happen, DONE.

func TestIdleUpdates(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("first"))
	h.deliver(sessAlice, sessMessage("second"))
	a := h.account(sessAlice)
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("ENABLE CONDSTORE")
	c.OK("SELECT INBOX")
	c.Send("t1 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	// Each change reaches the idling client without it sending anything.
	h.deliver(sessAlice, sessMessage("third"))
	if l := c.Response(); l != "* 3 EXISTS" {
		t.Errorf("after delivery: %q", l)
	}
	if l := c.Response(); l != "* 3 RECENT" {
		t.Errorf("after delivery: %q", l)
	}
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagAnswered, 2)
	if l := c.Response(); !strings.HasPrefix(l, `* 2 FETCH (UID 2 FLAGS (\Answered \Recent) MODSEQ (`) {
		t.Errorf("after flag change: %q", l)
	}
	sessExpunge(t, a, "INBOX", 1)
	if l := c.Response(); l != "* 1 EXPUNGE" {
		t.Errorf("after expunge: %q", l)
	}
	c.Send("done\r\n") // any case (RFC 2177 §3)
	if _, r := c.Until("t1"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("IDLE: %q", r)
	}
	// The view followed: message 1 is now the old 2.
	sessSetFlags(t, a, "INBOX", store.FlagsAdd, store.FlagFlagged, 2)
	if u := c.OK("NOOP"); len(u) != 1 || !strings.HasPrefix(u[0], `* 1 FETCH (UID 2 FLAGS (\Answered \Flagged \Recent)`) {
		t.Errorf("NOOP after IDLE: %q", u)
	}
}

// TestIdlePendingExpunge: an expunge held back by FETCH (RFC 9051 §7.5.1)
// is announced as soon as IDLE starts.
func TestIdlePendingExpunge(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	h.deliver(sessAlice, sessMessage("first"))
	h.deliver(sessAlice, sessMessage("second"))
	c := h.dial()
	c.login(sessAlice, sessPass)
	c.OK("SELECT INBOX")
	sessExpunge(t, h.account(sessAlice), "INBOX", 2)
	if u, _ := c.Cmd("FETCH 1 (FLAGS)"); sessHas(u, "EXPUNGE") {
		t.Fatalf("FETCH announced the expunge: %q", u)
	}
	c.Send("t1 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	if l := c.Response(); l != "* 2 EXPUNGE" {
		t.Errorf("pending expunge: %q", l)
	}
	c.Send("DONE\r\n")
	c.Until("t1")
}

func TestIdleEnd(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.login(sessAlice, sessPass)

	// In the authenticated state too.
	c.Send("t1 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	c.Send("DONE\r\n")
	if _, r := c.Until("t1"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("IDLE: %q", r)
	}
	// Anything but DONE ends IDLE with BAD; the session goes on.
	c.OK("SELECT INBOX")
	c.Send("t2 IDLE\r\n")
	c.Response()
	c.Send("t3 NOOP\r\n")
	if _, r := c.Until("t2"); !strings.HasPrefix(r, "BAD") {
		t.Fatalf("IDLE ended by a command: %q", r)
	}
	c.OK("NOOP")
	c.Expect("IDLE now", "BAD")
	// Not before login.
	c2 := h.dial()
	c2.Expect("IDLE", "BAD")
}

// TestIdleSMTPDelivery: a message sent over SMTP to the jodmai server
// shows up in an idling session (the whole path: smtpd, delivery, store,
// change notification, IDLE).
func TestIdleSMTPDelivery(t *testing.T) {
	env := testenv.Start(t)
	const addr = "carol@" + testenv.Domain
	env.AddUser(t, addr, sessPass)
	c := sessDial(t, env.Addr("imap"))
	c.login(addr, sessPass)
	c.OK("SELECT INBOX")
	c.Send("t1 IDLE\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	start := time.Now()
	sc, err := smtp.Dial(env.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("sender@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := sc.Rcpt(addr); err != nil {
		t.Fatal(err)
	}
	w, err := sc.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, sessMessage("over smtp"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc.Quit()
	if l := c.Response(); l != "* 1 EXISTS" {
		t.Fatalf("during IDLE: %q", l)
	}
	t.Logf("EXISTS %v after the SMTP transaction began", time.Since(start))
	c.Send("DONE\r\n")
	c.Until("t1")
}

// TestIdleOtherSessionCommands: another session's STORE and EXPUNGE reach
// an idling session at once, and a third session that was busy with FETCH
// gets the EXPUNGE only at its next NOOP.
func TestIdleOtherSessionCommands(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	for i := 1; i <= 3; i++ {
		h.deliver(sessAlice, sessMessage(fmt.Sprintf("message %d", i)))
	}
	other := h.dial()
	other.login(sessAlice, sessPass)
	other.OK("SELECT INBOX")
	other.OK("STORE 1 +FLAGS.SILENT (\\Seen)")
	other.OK("EXPUNGE")
	busy := h.dial()
	busy.login(sessAlice, sessPass)
	busy.OK("SELECT INBOX")
	idle := h.dial()
	idle.login(sessAlice, sessPass)
	idle.OK("SELECT INBOX")
	idle.Send("t1 IDLE\r\n")
	idle.Response()

	other.OK("STORE 2 +FLAGS (\\Deleted)")
	if l := idle.Response(); !strings.HasPrefix(l, `* 2 FETCH (UID 2 FLAGS (\Deleted`) {
		t.Errorf("idle after STORE: %q", l)
	}
	other.OK("EXPUNGE")
	if l := idle.Response(); l != "* 2 EXPUNGE" {
		t.Errorf("idle after EXPUNGE: %q", l)
	}
	idle.Send("DONE\r\n")
	idle.Until("t1")

	u, _ := busy.Cmd("FETCH 1:3 (FLAGS)")
	if sessHas(u, "EXPUNGE") || len(u) < 2 { // the pending message may be left out (RFC 2180 §4.1)
		t.Errorf("FETCH during a pending expunge: %q", u)
	}
	if u := busy.OK("NOOP"); !slices.Contains(u, "* 2 EXPUNGE") {
		t.Errorf("NOOP: %q", u)
	}
}

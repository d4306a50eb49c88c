package forward_test

import (
	"context"
	"fmt"
	"net/smtp"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/sink"
	"github.com/jodmai/jodmai/internal/userdb"
)

// send sends msg over SMTP (MX) from the reverse path from to rcpt.
func send(t *testing.T, addr, from, rcpt, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("send from <%s>: %v", from, err)
		}
	}
	must(c.Hello("client.remote.test"))
	must(c.Mail(from))
	must(c.Rcpt(rcpt))
	w, err := c.Data()
	must(err)
	_, err = w.Write([]byte(strings.ReplaceAll(msg, "\n", "\r\n")))
	must(err)
	must(w.Close())
	must(c.Quit())
}

func TestForwardOverSMTP(t *testing.T) {
	remote := sink.Start(t)
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) { c.Remote.RelayHost = remote.Addr }})
	ctx := context.Background()
	alice := env.AddUser(t, "alice@example.org", "alice-password")
	env.AddUser(t, "carol@example.org", "carol-password")
	mx := env.Addr("smtp")
	msg := func(from, id string, extra ...string) string {
		return fmt.Sprintf("%sFrom: <%s>\nTo: alice@example.org\nSubject: %s\nMessage-ID: <%s@remote.test>\n\nHello.\n", strings.Join(extra, ""), from, id, id)
	}
	setForward := func(keep bool, to ...string) {
		t.Helper()
		if err := env.Users.SetForward(ctx, alice.ID, userdb.Forward{To: to, KeepCopy: keep}); err != nil {
			t.Fatal(err)
		}
	}
	inbox := func(want int) {
		t.Helper()
		if n := len(env.Inbox(t, "alice@example.org")); n != want {
			t.Fatalf("alice's INBOX has %d messages, want %d", n, want)
		}
	}

	// Keep a copy.
	setForward(true, "fwd@remote.test")
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m1"))
	got := remote.Wait(t, 1)
	if got[0].From != "alice@example.org" || len(got[0].To) != 1 || got[0].To[0] != "fwd@remote.test" {
		t.Fatalf("forward envelope <%s> %v, want <alice@example.org> [fwd@remote.test]", got[0].From, got[0].To)
	}
	data := string(got[0].Data)
	if !strings.HasPrefix(data, "Delivered-To: alice@example.org\r\n") || strings.Contains(data, "Return-Path") || !strings.Contains(data, "Message-ID: <m1@remote.test>") {
		t.Fatalf("forwarded message:\n%s", data)
	}
	inbox(1)

	// No copy: only the forward.
	setForward(false, "fwd@remote.test")
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m2"))
	got = remote.Wait(t, 2)
	inbox(1)

	// Never back to the sender, and a loop stops: both kept instead.
	send(t, mx, "fwd@remote.test", "alice@example.org", msg("fwd@remote.test", "m3"))
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m4", "Delivered-To: alice@example.org\n"))
	var hops string
	for range 10 {
		hops += "Delivered-To: x@remote.test\n"
	}
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m5", hops))
	inbox(4)
	// The sentinel: a forward queued after any of the above.
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m6"))
	got = remote.Wait(t, 3)
	if len(got) != 3 || !strings.Contains(string(got[2].Data), "<m6@remote.test>") {
		for _, m := range got {
			t.Logf("forwarded: <%s> %v", m.From, m.To)
		}
		t.Fatalf("%d forwards, want 3 (m1, m2, m6)", len(got))
	}
	inbox(4)

	// A local forwarding address that does not exist: kept here.
	setForward(false, "gone@example.org")
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m6b"))
	inbox(5)

	// A local forwarding address gets its copy in its mailbox.
	setForward(false, "carol@example.org")
	send(t, mx, "bob@remote.test", "alice@example.org", msg("bob@remote.test", "m7"))
	c := env.Inbox(t, "carol@example.org")
	if len(c) != 1 || !strings.Contains(string(c[0].Body), "Delivered-To: alice@example.org\r\n") {
		t.Fatalf("carol's INBOX: %d messages", len(c))
	}
	inbox(5)
}

func TestSetForwardValidates(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	alice := env.AddUser(t, "alice@example.org", "alice-password")
	for _, to := range [][]string{
		{"not an address"},
		{"alice@example.org"},
		{"a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test", "f@x.test"},
		{"a,b@x.test"},
	} {
		if err := env.Users.SetForward(ctx, alice.ID, userdb.Forward{To: to}); err == nil {
			t.Errorf("SetForward(%q) accepted", to)
		}
	}
	if err := env.Users.SetForward(ctx, alice.ID, userdb.Forward{To: []string{" A@X.test ", "a@x.test", ""}, KeepCopy: true}); err != nil {
		t.Fatal(err)
	}
	f, err := env.Users.Forward(ctx, alice.ID)
	if err != nil || len(f.To) != 1 || !f.KeepCopy {
		t.Fatalf("forward %+v, %v", f, err)
	}
}

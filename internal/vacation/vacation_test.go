package vacation_test

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
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
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
	_, err = w.Write([]byte(msg))
	must(err)
	must(w.Close())
	must(c.Quit())
}

// TestVacationOverSMTP: mail to an account that is away gets one reply
// per sender, through the outbound queue to a remote SMTP server, and
// none for what RFC 3834 says must not be answered.
func TestVacationOverSMTP(t *testing.T) {
	remote := sink.Start(t)
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) { c.Remote.RelayHost = remote.Addr }})
	acc := env.AddUser(t, "alice@example.org", "alice-password")
	if err := env.Users.SetVacation(context.Background(), acc.ID, userdb.Vacation{Enabled: true, Body: "I am away.\n"}); err != nil {
		t.Fatal(err)
	}
	mx := env.Addr("smtp")
	normal := func(from, id string) string {
		return fmt.Sprintf("From: <%s>\nTo: Alice <alice@example.org>\nSubject: Lunch?\nMessage-ID: <%s@remote.test>\n\nHi.\n", from, id)
	}

	send(t, mx, "bob@remote.test", "alice@example.org", normal("bob@remote.test", "m1"))
	got := remote.Wait(t, 1)
	r := got[0]
	if r.From != "" || len(r.To) != 1 || r.To[0] != "bob@remote.test" {
		t.Fatalf("reply envelope MAIL FROM:<%s> RCPT %v, want <> and bob", r.From, r.To)
	}
	for _, want := range []string{"Auto-Submitted: auto-replied\r\n", "In-Reply-To: <m1@remote.test>\r\n", "Subject: Auto: Lunch?\r\n", "From: <alice@example.org>\r\n", "I am away."} {
		if !strings.Contains(string(r.Data), want) {
			t.Errorf("reply lacks %q:\n%s", want, r.Data)
		}
	}
	if strings.Contains(string(r.Data), "Return-Path") {
		t.Errorf("reply sent with its Return-Path:\n%s", r.Data)
	}

	// Not again to bob within the period; never to these.
	send(t, mx, "bob@remote.test", "alice@example.org", normal("bob@remote.test", "m2"))
	send(t, mx, "news@remote.test", "alice@example.org", "From: news@remote.test\nTo: alice@example.org\nList-Id: <news.remote.test>\nSubject: News\n\nx\n")
	send(t, mx, "ads@remote.test", "alice@example.org", "From: ads@remote.test\nTo: alice@example.org\nPrecedence: bulk\nSubject: Ads\n\nx\n")
	send(t, mx, "robot@remote.test", "alice@example.org", "From: robot@remote.test\nTo: alice@example.org\nAuto-Submitted: auto-generated\nSubject: Report\n\nx\n")
	send(t, mx, "bcc@remote.test", "alice@example.org", "From: bcc@remote.test\nTo: someone@remote.test\nSubject: Bcc\n\nx\n")
	send(t, mx, "", "alice@example.org", "From: mailer-daemon@remote.test\nTo: alice@example.org\nSubject: Bounce\n\nx\n")
	send(t, mx, "MAILER-DAEMON@remote.test", "alice@example.org", normal("MAILER-DAEMON@remote.test", "m3"))
	// A sentinel: its reply is queued after any the messages above
	// would have caused, and goes to the same relay host one after the
	// other.
	send(t, mx, "carol@remote.test", "alice@example.org", normal("carol@remote.test", "m4"))
	got = remote.Wait(t, 2)
	if len(got) != 2 || got[1].To[0] != "carol@remote.test" {
		for _, m := range got {
			t.Logf("sent: <%s> -> %v", m.From, m.To)
		}
		t.Fatalf("%d replies, want 2 (bob's first, carol's)", len(got))
	}
	if n := len(env.Inbox(t, "alice@example.org")); n != 9 {
		t.Errorf("INBOX has %d messages, want all 9", n)
	}

	// Off: no more replies (a new sender, then the sentinel after
	// turning it on again).
	if err := env.Users.SetVacation(context.Background(), acc.ID, userdb.Vacation{Body: "I am away.\n"}); err != nil {
		t.Fatal(err)
	}
	send(t, mx, "dan@remote.test", "alice@example.org", normal("dan@remote.test", "m5"))
	if err := env.Users.SetVacation(context.Background(), acc.ID, userdb.Vacation{Enabled: true, Body: "I am away.\n"}); err != nil {
		t.Fatal(err)
	}
	send(t, mx, "erin@remote.test", "alice@example.org", normal("erin@remote.test", "m6"))
	got = remote.Wait(t, 3)
	if len(got) != 3 || got[2].To[0] != "erin@remote.test" {
		t.Fatalf("replies after off and on: %d, last to %v", len(got), got[len(got)-1].To)
	}
}

// TestVacationLocalSender: a local sender's reply is filed in its
// mailbox, not queued.
func TestVacationLocalSender(t *testing.T) {
	env := testenv.Start(t)
	acc := env.AddUser(t, "alice@example.org", "alice-password")
	env.AddUser(t, "bob@example.org", "bob-password")
	if err := env.Users.SetVacation(context.Background(), acc.ID, userdb.Vacation{Enabled: true, Subject: "Away", Body: "Back Monday.\n"}); err != nil {
		t.Fatal(err)
	}
	send(t, env.Addr("smtp"), "bob@example.org", "alice@example.org", "From: bob@example.org\nTo: alice@example.org\nSubject: Hi\nMessage-ID: <l1@example.org>\n\nHi.\n")
	inbox := env.Inbox(t, "bob@example.org")
	if len(inbox) != 1 {
		t.Fatalf("bob has %d messages, want the reply", len(inbox))
	}
	body := string(inbox[0].Body)
	for _, want := range []string{"Return-Path: <>\r\n", "Subject: Away\r\n", "Auto-Submitted: auto-replied\r\n", "In-Reply-To: <l1@example.org>\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("reply lacks %q:\n%s", want, body)
		}
	}
}

package server_test

import (
	"context"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/testenv"
)

// TestEventLog: real SMTP sessions through a whole server leave their
// events in the event log: a local delivery, a refused recipient, and a
// submission to a remote domain whose relay refuses connections
// (deferred), each with its queue id and Message-ID.
func TestEventLog(t *testing.T) {
	// A loopback port nobody listens on: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := ln.Addr().String()
	ln.Close()
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) { c.Remote.RelayHost = refusing }})
	env.AddUser(t, "alice@example.org", "alice-password")

	// MX: one local recipient, one unknown.
	c, err := smtp.Dial(env.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Hello("client.remote.test"))
	must(c.Mail("sender@remote.test"))
	must(c.Rcpt("alice@example.org"))
	if err := c.Rcpt("nobody@example.org"); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("unknown recipient: %v", err)
	}
	w, err := c.Data()
	must(err)
	_, err = w.Write([]byte("From: sender@remote.test\r\nTo: alice@example.org\r\nMessage-ID: <local-1@remote.test>\r\nSubject: hi\r\n\r\nhello\r\n"))
	must(err)
	must(w.Close())
	must(c.Quit())

	// Submission to a remote domain: queued, then deferred.
	c, err = smtp.Dial(env.Addr("submission"))
	must(err)
	must(c.Hello("laptop"))
	must(c.Auth(smtp.PlainAuth("", "alice@example.org", "alice-password", "127.0.0.1")))
	must(c.Mail("alice@example.org"))
	must(c.Rcpt("bob@elsewhere.test"))
	w, err = c.Data()
	must(err)
	_, err = w.Write([]byte("From: alice@example.org\r\nTo: bob@elsewhere.test\r\nMessage-ID: <remote-1@example.org>\r\nSubject: out\r\n\r\nbye\r\n"))
	must(err)
	must(w.Close())
	must(c.Quit())

	var deferred []eventlog.Event
	for deadline := time.Now().Add(20 * time.Second); len(deferred) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if deferred, err = env.Server.Events.Search(eventlog.Query{Kind: eventlog.Deferred}); err != nil {
			t.Fatal(err)
		}
	}
	if len(deferred) != 1 {
		t.Fatalf("no deferred event")
	}
	d := deferred[0]
	if d.MsgID != "remote-1@example.org" || d.QID == "" || len(d.Rcpts) != 1 || d.Rcpts[0] != "bob@elsewhere.test" || d.From != "alice@example.org" {
		t.Fatalf("deferred event: %+v", d)
	}

	// The message's whole story by its Message-ID, newest first.
	story, err := env.Server.Events.Search(eventlog.Query{MsgID: "<remote-1@example.org>"})
	must(err)
	var kinds []string
	for _, e := range story {
		kinds = append(kinds, e.Kind)
		if e.QID != d.QID {
			t.Errorf("%s event has qid %q, want %q", e.Kind, e.QID, d.QID)
		}
	}
	if got := strings.Join(kinds, " "); got != "deferred received queued" && got != "deferred queued received" {
		t.Fatalf("remote message events: %s", got)
	}

	local, err := env.Server.Events.Search(eventlog.Query{To: "alice@example.org"})
	must(err)
	kinds = nil
	for _, e := range local {
		kinds = append(kinds, e.Kind)
		if e.MsgID != "local-1@remote.test" || e.QID == "" {
			t.Errorf("local event %+v", e)
		}
	}
	if got := strings.Join(kinds, " "); got != "delivered received" {
		t.Fatalf("local message events: %s", got)
	}

	rej, err := env.Server.Events.Search(eventlog.Query{Kind: eventlog.Rejected})
	must(err)
	if len(rej) != 1 || rej[0].Rcpts[0] != "nobody@example.org" || rej[0].From != "sender@remote.test" || rej[0].Fields["code"] != float64(550) || rej[0].Reason == "" {
		t.Fatalf("rejected: %+v", rej)
	}
	if testing.Verbose() {
		all, _ := env.Server.Events.Search(eventlog.Query{})
		for _, e := range all {
			t.Logf("%v", e.Fields)
		}
	}
	if rej[0].Fields["remote"] == nil {
		t.Errorf("rejected event lacks the session's remote address: %v", rej[0].Fields)
	}
}

// refusingRemote refuses every recipient for good.
type refusingRemote struct{}

func (refusingRemote) Deliver(_ context.Context, m *remote.Message) []remote.Result {
	out := make([]remote.Result, len(m.Recipients))
	for i, r := range m.Recipients {
		out[i] = remote.Result{Addr: r.Addr, Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	}
	return out
}

// TestBounceDeliveredEvent: the bounce the queue files into a local
// sender's mailbox leaves a delivered event, under the queue id of the
// bounced message, with the notice's own Message-ID.
func TestBounceDeliveredEvent(t *testing.T) {
	env := testenv.StartWith(t, testenv.Options{Remote: refusingRemote{}})
	env.AddUser(t, "alice@example.org", "alice-password")
	c, err := smtp.Dial(env.Addr("submission"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Hello("laptop"))
	must(c.Auth(smtp.PlainAuth("", "alice@example.org", "alice-password", "127.0.0.1")))
	must(c.Mail("alice@example.org"))
	must(c.Rcpt("bob@elsewhere.test"))
	w, err := c.Data()
	must(err)
	_, err = w.Write([]byte("From: alice@example.org\r\nTo: bob@elsewhere.test\r\nMessage-ID: <out-1@example.org>\r\nSubject: out\r\n\r\nbye\r\n"))
	must(err)
	must(w.Close())
	must(c.Quit())

	var got []eventlog.Event
	for deadline := time.Now().Add(20 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		all, err := env.Server.Events.Search(eventlog.Query{Kind: eventlog.Delivered, To: "alice@example.org"})
		must(err)
		got = got[:0]
		for _, e := range all {
			if e.Fields["dsn"] == true {
				got = append(got, e)
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("bounce delivered events: %+v", got)
	}
	e := got[0]
	bounced, err := env.Server.Events.Search(eventlog.Query{Kind: eventlog.Bounced})
	must(err)
	if len(bounced) != 1 || bounced[0].QID != e.QID || bounced[0].MsgID != "out-1@example.org" {
		t.Fatalf("bounced %+v; the notice's event %+v", bounced, e)
	}
	if e.MsgID == "" || e.MsgID == "out-1@example.org" || e.From != "" || e.Fields["about_msgid"] != "out-1@example.org" || e.Fields["mailboxes"] != float64(1) {
		t.Errorf("bounce delivered event: %+v", e.Fields)
	}
	if n := len(env.Inbox(t, "alice@example.org")); n != 1 {
		t.Errorf("alice's INBOX has %d messages, want the bounce", n)
	}
	families, err := env.Server.Metrics.Registry.Gather()
	must(err)
	delivered := -1.0
	for _, f := range families {
		if f.GetName() != "jodmai_messages_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "event" && l.GetValue() == "delivered" {
					delivered = m.GetCounter().GetValue()
				}
			}
		}
	}
	if delivered != 1 {
		t.Errorf("jodmai_messages_total{event=delivered} = %v, want 1 (the bounce)", delivered)
	}
}

package smtpd_test

import (
	"context"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/smtpd"
)

func TestEHLOCapabilities(t *testing.T) {
	env := newEnv(t)
	for _, tc := range []struct {
		listener string
		auth     bool
	}{{"smtp", false}, {"submission", true}} {
		t.Run(tc.listener, func(t *testing.T) {
			c := dial(t, env.Addr(tc.listener))
			caps := c.ehlo()
			for _, k := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
				if _, ok := caps[k]; !ok {
					t.Errorf("EHLO lacks %s: %v", k, caps)
				}
			}
			if caps["SIZE"] != strconv.Itoa(50<<20) {
				t.Errorf("SIZE %q, want %d", caps["SIZE"], 50<<20)
			}
			if _, ok := caps["DSN"]; !ok {
				t.Errorf("EHLO lacks DSN (the server has a queue): %v", caps)
			}
			mechs, ok := caps["AUTH"]
			if ok != tc.auth {
				t.Fatalf("AUTH offered = %v, want %v (caps %v)", ok, tc.auth, caps)
			}
			if tc.auth && mechs != "PLAIN LOGIN" {
				t.Errorf("AUTH %q, want PLAIN LOGIN", mechs)
			}
			c.Expect("VRFY bob@example.org", 252, "2.0.0")
			c.Expect("QUIT", 221, "")
		})
	}
}

func TestMXAcceptsLocal(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	text := c.send("sender@remote.example", []string{bob}, simpleMsg, 250)
	if !strings.HasPrefix(text, "2.0.0 ") || !strings.Contains(text, "queued as ") {
		t.Errorf("final reply %q: want 2.0.0 and the queue id", text)
	}
	id := text[strings.LastIndex(text, " ")+1:]

	msgs := inbox(t, env, bob)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages", len(msgs))
	}
	rp, received, rest := trace(t, msgs[0])
	if rp != "<sender@remote.example>" {
		t.Errorf("Return-Path %q", rp)
	}
	if rest != simpleMsg {
		t.Errorf("stored body differs:\n got %q\nwant %q", rest, simpleMsg)
	}
	for _, want := range []string{
		"Received: from client.example.net ([127.0.0.1])",
		"\tby mail.example.org with ESMTP id " + id,
		"\tfor <bob@example.org>;",
	} {
		if !strings.Contains(received, want) {
			t.Errorf("Received lacks %q:\n%s", want, received)
		}
	}
	if strings.Contains(received, "tls ") {
		t.Errorf("Received claims TLS on a plain connection:\n%s", received)
	}
	// Nobody else got it.
	if n := len(inbox(t, env, alice)); n != 0 {
		t.Errorf("alice has %d messages", n)
	}
}

// TestMXNetSMTP uses the standard library's client, over STARTTLS.
func TestMXNetSMTP(t *testing.T) {
	env := newEnv(t)
	c, err := smtp.Dial(env.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("relay.remote.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(env.ClientTLS()); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("someone@remote.example"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{alice, "BOB@Example.ORG"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(simpleMsg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{alice, bob} {
		received, rest := oneMessage(t, env, who)
		if rest != simpleMsg {
			t.Errorf("%s: body %q", who, rest)
		}
		// Two recipients: no "for" clause, Bcc stays hidden.
		if strings.Contains(received, "for <") {
			t.Errorf("%s: Received names a recipient of a multi-recipient message:\n%s", who, received)
		}
		if !strings.Contains(received, " with UTF8SMTPS id ") || !strings.Contains(received, "\ttls TLS_") || !strings.Contains(received, "(TLS 1.3);") {
			t.Errorf("%s: Received does not show TLS:\n%s", who, received)
		}
	}
}

func TestMXRefusals(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	if err := env.Users.AddAlias(ctx, "fwd@example.org", []string{"someone@remote.example"}); err != nil {
		t.Fatal(err)
	}
	if err := env.Users.AddAlias(ctx, "mixed@example.org", []string{bob, "someone@remote.example"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ { // deeper than deliver's alias limit
		if err := env.Users.AddAlias(ctx, "chain"+strconv.Itoa(i)+"@example.org", []string{"chain" + strconv.Itoa(i+1) + "@example.org"}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<sender@remote.example>", 250, "")
	c.Expect("RCPT TO:<nobody@example.org>", 550, "5.1.1")
	c.Expect("RCPT TO:<chain0@example.org>", 550, "5.4.6")
	// Loopback is not trusted for relay.
	c.Expect("RCPT TO:<victim@elsewhere.example>", 554, "5.7.1 Relay access denied")
	c.Expect("RCPT TO:<not an address>", 501, "")
	c.Expect("RCPT TO:<a@bad_domain!>", 501, "5.1.3")
	c.Expect("AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAGFsaWNlLXBhc3N3b3JkLTE=", 503, "5.5.1")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "2.0.0")
	if n := len(inbox(t, env, bob)); n != 0 {
		t.Errorf("bob got %d messages through a refused alias", n)
	}
	if n := len(inbox(t, env, alice)); n != 1 {
		t.Errorf("alice got %d messages", n)
	}
}

func TestMXNullSender(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.send("", []string{alice}, simpleMsg, 250)
	rp := inbox(t, env, alice)[0]
	if !strings.HasPrefix(string(rp), "Return-Path: <>\r\n") {
		t.Errorf("stored %q", truncate(string(rp)))
	}
}

func TestMXSenderSyntax(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<a\rb@remote.example>", 501, "5.1.7")
	c.Expect("MAIL FROM:<\xff\xfe@remote.example>", 501, "5.1.7")
	c.Expect(`MAIL FROM:<"john smith"@remote.example>`, 250, "")
	c.Expect("MAIL FROM:<x@remote.example>", 503, "5.5.1")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "")
	rp, _, _ := trace(t, inbox(t, env, alice)[0])
	if rp != `<"john smith"@remote.example>` {
		t.Errorf("Return-Path %s", rp)
	}
}

// TestRecipientsDeduplicated: one account reached three ways gets one copy.
func TestRecipientsDeduplicated(t *testing.T) {
	env := newEnv(t)
	if err := env.Users.AddAlias(context.Background(), "team@example.org", []string{alice, bob}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.send("x@remote.example", []string{alice, "alice+news@example.org", "team@example.org", "Alice@EXAMPLE.org"}, simpleMsg, 250)
	for _, who := range []string{alice, bob} {
		if n := len(inbox(t, env, who)); n != 1 {
			t.Errorf("%s has %d messages, want 1", who, n)
		}
	}
}

func TestTooManyBadRecipients(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	for i := 1; i < 20; i++ {
		c.Expect("RCPT TO:<guess"+strconv.Itoa(i)+"@example.org>", 550, "5.1.1")
	}
	c.Expect("RCPT TO:<guess20@example.org>", 421, "4.7.0")
	c.EOF()
}

func TestTooManyRecipients(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxRecipients = 2 })
	c := dial(t, h.addr)
	caps := c.ehlo()
	if caps["LIMITS"] != "RCPTMAX=2" {
		t.Logf("LIMITS %q", caps["LIMITS"])
	}
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("RCPT TO:<bob@example.org>", 250, "")
	c.Expect("RCPT TO:<carol@example.org>", 452, "4.5.3")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "")
	if len(inbox(t, env, alice)) != 1 || len(inbox(t, env, bob)) != 1 || len(inbox(t, env, carol)) != 0 {
		t.Errorf("copies went to the wrong accounts")
	}
}

// TestReceivedSyntax: what the client controls cannot break the trace
// fields.
func TestReceivedSyntax(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.Expect("EHLO evil(comment);x\\y", 250, "")
	c.send(`"odd \"local\""@remote.example`, []string{alice}, simpleMsg, 250)
	msgs := inbox(t, env, alice)
	rp, received, rest := trace(t, msgs[0])
	if rp != `<"odd \"local\""@remote.example>` {
		t.Errorf("Return-Path %s", rp)
	}
	if !strings.HasPrefix(received, "Received: from evil_comment__x_y ([127.0.0.1])\n") {
		t.Errorf("Received:\n%s", received)
	}
	if rest != simpleMsg {
		t.Errorf("body %q", rest)
	}
}

func TestReceivedIPv6(t *testing.T) {
	env := newEnv(t)
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	h := serveOn(t, &smtpd.Server{
		Hostname: env.Hostname, Deliverer: &deliver.Deliverer{Users: env.Users, Store: env.Store}, Log: testLogger(t),
	}, l)
	c := dial(t, h.addr)
	c.ehlo()
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)
	received, _ := oneMessage(t, env, alice)
	if !strings.HasPrefix(received, "Received: from client.example.net ([IPv6:::1])\n") {
		t.Errorf("Received:\n%s", received)
	}
}

// TestMXOverQuota: a full mailbox defers its recipient with 452 4.2.2
// (the sender retries) while the transaction goes on for the others; the
// quota lifted, the same recipient is taken.
func TestMXOverQuota(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.send("x@remote.example", []string{bob}, simpleMsg, 250)
	if err := env.Users.SetQuota(ctx, bob, 10); err != nil {
		t.Fatal(err)
	}
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<bob@example.org>", 452, "4.2.2")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "2.0.0")
	if n := len(inbox(t, env, bob)); n != 1 {
		t.Errorf("bob has %d messages, want the 1 from before the quota", n)
	}
	if err := env.Users.SetQuota(ctx, bob, 0); err != nil {
		t.Fatal(err)
	}
	c.send("x@remote.example", []string{bob}, simpleMsg, 250)
	if n := len(inbox(t, env, bob)); n != 2 {
		t.Errorf("bob has %d messages after the quota was lifted, want 2", n)
	}
}

package smtpd_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"

	"github.com/jodmai/jodmai/internal/msgauth"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// authZone is the DNS of the sending domains: a.test (p=reject, SPF for
// 127.0.0.2, a DKIM key) and q.test (p=quarantine).
func authZone(t *testing.T) (dns.MockResolver, ed25519.PrivateKey) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := (&dkim.Record{Version: "DKIM1", Key: "ed25519", PublicKey: key.Public()}).Record()
	if err != nil {
		t.Fatal(err)
	}
	return dns.MockResolver{TXT: map[string][]string{
		"a.test.":                {"v=spf1 ip4:127.0.0.2 -all"},
		"sel._domainkey.a.test.": {rec},
		"_dmarc.a.test.":         {"v=DMARC1; p=reject"},
		"_dmarc.q.test.":         {"v=DMARC1; p=quarantine"},
	}}, key
}

// dkimSign prepends a DKIM-Signature of a.test to msg.
func dkimSign(t *testing.T, key ed25519.PrivateKey, msg string) string {
	t.Helper()
	sel := dkim.Selector{Hash: "sha256", HeaderRelaxed: true, BodyRelaxed: true, Headers: []string{"From", "To", "Subject"},
		PrivateKey: key, Domain: dns.Domain{ASCII: "sel"}}
	h, err := dkim.Sign(context.Background(), slog.New(slog.DiscardHandler), smtp.Localpart("x"), dns.Domain{ASCII: "a.test"}, []dkim.Selector{sel}, false, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return h + msg
}

// dialFrom connects to addr from the loopback address src (Linux accepts
// any 127/8 source): 127.0.0.2 is outside the trusted networks.
func dialFrom(t *testing.T, addr, src string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &client{wire.NewSMTP(wire.New(t, nc)), t}
}

func authHarness(t *testing.T, env *testenv.Env, mode smtpd.Mode, r dns.Resolver) *harness {
	return newHarness(t, env, mode, func(s *smtpd.Server) {
		s.Verifier = &msgauth.Verifier{Resolver: r, Hostname: env.Hostname, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	})
}

// splitAR returns the Authentication-Results field that must follow the
// trace fields (unfolded) and the message after it.
func splitAR(t *testing.T, body []byte) (ar, rest string) {
	t.Helper()
	fields := func(s string, n int) ([]string, string) {
		var out []string
		for len(out) < n {
			var lines []string
			for {
				line, r, ok := strings.Cut(s, "\r\n")
				if !ok {
					t.Fatalf("unterminated field in %q", truncate(string(body)))
				}
				lines = append(lines, strings.TrimLeft(line, " \t"))
				s = r
				if !strings.HasPrefix(s, "\t") && !strings.HasPrefix(s, " ") {
					break
				}
			}
			out = append(out, strings.Join(lines, " "))
		}
		return out, s
	}
	f, rest := fields(string(body), 3)
	if !strings.HasPrefix(f[0], "Return-Path: ") || !strings.HasPrefix(f[1], "Received: ") || !strings.HasPrefix(f[2], "Authentication-Results: ") {
		t.Fatalf("want Return-Path, Received, Authentication-Results; got %q", f)
	}
	return f[2], rest
}

func TestMsgAuthMX(t *testing.T) {
	env := newEnv(t)
	r, key := authZone(t)
	h := authHarness(t, env, smtpd.ModeMX, r)

	// A signed message from a.test, with a forged Authentication-Results
	// field naming us and a genuine one of another server.
	signed := dkimSign(t, key, "From: Alice <alice@a.test>\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello.\r\n")
	incoming := "Authentication-Results: " + env.Hostname + "; dmarc=pass header.from=bank.test\r\n" +
		"Authentication-Results: relay.other.test; spf=pass\r\n" + signed

	t.Run("pass", func(t *testing.T) {
		c := dialFrom(t, h.addr, "127.0.0.2")
		c.Expect("EHLO mx.a.test", 250, "")
		c.send("bounce@a.test", []string{bob}, incoming, 250)
		msgs := inbox(t, env, bob)
		if len(msgs) != 1 {
			t.Fatalf("bob has %d messages", len(msgs))
		}
		ar, rest := splitAR(t, msgs[0])
		for _, want := range []string{
			"Authentication-Results: " + env.Hostname + "; spf=pass smtp.mailfrom=a.test;",
			"dkim=pass header.d=a.test header.s=sel header.a=ed25519-sha256 header.b=",
			"dmarc=pass header.from=a.test",
		} {
			if !strings.Contains(ar, want) {
				t.Errorf("Authentication-Results %q lacks %q", ar, want)
			}
		}
		if want := "Authentication-Results: relay.other.test; spf=pass\r\n" + signed; rest != want {
			t.Errorf("stored message\n%q\nwant\n%q", rest, want)
		}
		// The stored signature still verifies.
		res, err := dkim.Verify(context.Background(), slog.New(slog.DiscardHandler), r, false, dkim.DefaultPolicy, strings.NewReader(rest), false)
		if err != nil || len(res) != 1 || res[0].Status != dkim.StatusPass {
			t.Errorf("stored message's DKIM: %v %v", res, err)
		}
	})

	t.Run("reject", func(t *testing.T) {
		c := dialFrom(t, h.addr, "127.0.0.2")
		c.Expect("EHLO mx.evil.test", 250, "")
		c.Expect("MAIL FROM:<x@evil.test>", 250, "")
		c.Expect("RCPT TO:<"+alice+">", 250, "")
		c.Expect("DATA", 354, "")
		c.Send("From: ceo@a.test\r\nSubject: wire money\r\n\r\nnow\r\n.\r\n")
		msg := c.WantReply(550, "5.7.1")
		if !strings.Contains(msg, "a.test") {
			t.Errorf("reply %q does not name the domain", msg)
		}
		c.Expect("NOOP", 250, "") // the session goes on
		if n := len(inbox(t, env, alice)); n != 0 {
			t.Errorf("alice has %d messages after a reject", n)
		}
		if n := len(env.Mailbox(t, alice, "Junk")); n != 0 {
			t.Errorf("alice's Junk has %d messages after a reject", n)
		}
	})

	t.Run("quarantine", func(t *testing.T) {
		c := dialFrom(t, h.addr, "127.0.0.2")
		c.Expect("EHLO mx.evil.test", 250, "")
		c.send("x@evil.test", []string{carol}, "From: news@q.test\r\nSubject: offer\r\n\r\nbuy\r\n", 250)
		if n := len(inbox(t, env, carol)); n != 0 {
			t.Errorf("carol's INBOX has %d messages, want 0", n)
		}
		junk := env.Mailbox(t, carol, "Junk")
		if len(junk) != 1 {
			t.Fatalf("carol's Junk has %d messages, want 1", len(junk))
		}
		ar, _ := splitAR(t, junk[0].Body)
		if !strings.Contains(ar, "dmarc=fail (p=quarantine dis=quarantine) header.from=q.test") {
			t.Errorf("Authentication-Results %q", ar)
		}
	})

	t.Run("quarantine without a Junk mailbox", func(t *testing.T) {
		acc, err := env.Users.Account(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		a, err := env.Store.Account(context.Background(), acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteMailbox(context.Background(), "Junk"); err != nil {
			t.Fatal(err)
		}
		c := dialFrom(t, h.addr, "127.0.0.2")
		c.Expect("EHLO mx.evil.test", 250, "")
		// BDAT goes through the same spool.
		body := "From: news@q.test\r\nSubject: offer\r\n\r\nbuy\r\n"
		c.Expect("MAIL FROM:<x@evil.test>", 250, "")
		c.Expect("RCPT TO:<"+alice+">", 250, "")
		c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
		c.WantReply(250, "")
		mb, err := a.Mailbox(context.Background(), "Junk")
		if err != nil || mb.SpecialUse != `\Junk` {
			t.Fatalf("Junk not recreated: %+v %v", mb, err)
		}
		if n := len(env.Mailbox(t, alice, "Junk")); n != 1 {
			t.Errorf("alice's Junk has %d messages, want 1", n)
		}
	})

	t.Run("trusted", func(t *testing.T) {
		c := dialFrom(t, h.addr, "127.0.0.1")
		c.Expect("EHLO mx.evil.test", 250, "")
		c.send("x@evil.test", []string{alice}, "From: ceo@a.test\r\nSubject: s\r\n\r\nx\r\n", 250)
		msgs := inbox(t, env, alice)
		if len(msgs) != 1 {
			t.Fatalf("alice has %d messages", len(msgs))
		}
		ar, rest := splitAR(t, msgs[0])
		if ar != "Authentication-Results: "+env.Hostname+"; none" || rest != "From: ceo@a.test\r\nSubject: s\r\n\r\nx\r\n" {
			t.Errorf("got %q then %q", ar, rest)
		}
	})
}

// TestMsgAuthSubmission: submission is never checked, even with a
// Verifier, and gets no Authentication-Results field.
func TestMsgAuthSubmission(t *testing.T) {
	env := newEnv(t)
	r, _ := authZone(t)
	h := authHarness(t, env, smtpd.ModeSubmission, r)
	c := dialFrom(t, h.addr, "127.0.0.2")
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.send(alice, []string{bob}, simpleMsg, 250)
	msgs := inbox(t, env, bob)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages", len(msgs))
	}
	if strings.Contains(string(msgs[0]), "Authentication-Results") {
		t.Errorf("submitted message has Authentication-Results: %q", truncate(string(msgs[0])))
	}
}

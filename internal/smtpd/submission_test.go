package smtpd_test

import (
	"context"
	"encoding/base64"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/smtpd"
)

func TestSubmissionRequiresAuth(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.Expect("MAIL FROM:<alice@example.org>", 530, "5.7.0")
	c.Expect("RCPT TO:<bob@example.org>", 503, "5.5.1") // no MAIL yet
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("AUTH PLAIN", 503, "5.5.1") // already authenticated
	c.send(alice, []string{bob}, submitMsg, 250)
	received, rest := oneMessage(t, env, bob)
	if rest != submitMsg {
		t.Errorf("body %q", rest)
	}
	if !strings.Contains(received, " with ESMTPA id ") {
		t.Errorf("Received does not say ESMTPA:\n%s", received)
	}
	if strings.Contains(received, alice) {
		t.Errorf("Received leaks the login name:\n%s", received)
	}
}

func TestSubmissionAuthLogin(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	c.Expect("AUTH LOGIN", 334, b64("Username:"))
	c.Expect(b64(bob), 334, b64("Password:"))
	c.Expect(b64(bobPass), 235, "2.7.0")
	c.send(bob, []string{alice}, simpleMsg, 250)

	// Initial response form, and cancelling.
	c2 := dial(t, env.Addr("submission"))
	c2.ehlo()
	c2.Expect("AUTH LOGIN "+b64(bob), 334, b64("Password:"))
	c2.Expect("*", 501, "")
	c2.Expect("AUTH LOGIN "+b64(bob), 334, b64("Password:"))
	c2.Expect(b64("wrong-password"), 535, "5.7.8")
}

// TestSubmissionNetSMTP: the standard library's client with PLAIN over
// loopback (no TLS), as a local user agent would.
func TestSubmissionNetSMTP(t *testing.T) {
	env := newEnv(t)
	addr := env.Addr("submission")
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("ua.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", carol, carolPass, host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(carol); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(alice); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("From: carol@example.org\nDate: Mon, 07 Dec 2026 10:00:00 +0000\nMessage-ID: <x@ua.example>\nSubject: x\n\nbare LF lines\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	_, rest := oneMessage(t, env, alice)
	if rest != "From: carol@example.org\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <x@ua.example>\r\nSubject: x\r\n\r\nbare LF lines\r\n" {
		t.Errorf("body %q", rest)
	}
}

func TestSubmissionBadCredentials(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, "wrong-password", 535, "5.7.8")
	c.authPlain("nobody@example.org", "wrong-password", 535, "5.7.8")
	// An authorization identity that is not the user.
	ir := base64.StdEncoding.EncodeToString([]byte(bob + "\x00" + alice + "\x00" + alicePass))
	c.Expect("AUTH PLAIN "+ir, 535, "5.7.8")
	c.Expect("AUTH PLAIN !!!", 501, "5.5.2") // RFC 4954 §4
	c.Expect("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("garbage")), 535, "5.7.8")
	c.Expect("AUTH CRAM-MD5", 504, "5.5.4")
	c.Expect("MAIL FROM:<alice@example.org>", 530, "")
	c.authPlain(alice, alicePass, 235, "")
}

func TestSubmissionThrottled(t *testing.T) {
	env := newEnv(t)
	policy := auth.Policy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Window: time.Minute, IPLockoutAfter: 2, Lockout: time.Minute}
	h := newHarness(t, env, smtpd.ModeSubmission, func(s *smtpd.Server) { s.Auth = auth.New(env.Users, policy, nil) })
	c := dial(t, h.addr)
	c.ehlo()
	c.authPlain(alice, "wrong-password", 535, "5.7.8")
	c.authPlain(alice, "wrong-password", 535, "5.7.8")
	c.authPlain(alice, alicePass, 454, "4.7.0")
}

func TestSubmissionSenderOwnership(t *testing.T) {
	env := newEnv(t)
	ctx := context.Background()
	if err := env.Users.AddAlias(ctx, "sales@example.org", []string{alice, bob}); err != nil {
		t.Fatal(err)
	}
	if err := env.Users.AddAlias(ctx, "@example.org", []string{carol}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	for _, tc := range []struct {
		from string
		code int
	}{
		{alice, 250},
		{"Alice@Example.org", 250},
		{"alice+lists@example.org", 250},
		{"sales@example.org", 250},
		{"sales+q4@example.org", 250},
		{"", 250}, // MDNs (RFC 8098)
		{bob, 553},
		{"bob+x@example.org", 553},
		{"someone@remote.example", 553},
		{"catchall-hit@example.org", 553}, // a catch-all is not an alias of alice
		{"alice@example.org.evil", 553},
	} {
		code := 250
		if tc.code != 250 {
			code = tc.code
		}
		want := ""
		if code == 553 {
			want = "5.7.1"
		}
		c.Expect("MAIL FROM:<"+tc.from+">", code, want)
		if code == 250 {
			c.Expect("RSET", 250, "")
		}
	}
}

// TestSubmissionRemoteRecipient: without an outbound queue, a remote
// recipient is deferred, never dropped (queue_test.go has the queue).
func TestSubmissionRemoteRecipient(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeSubmission, nil)
	c := dial(t, h.addr)
	if _, ok := c.ehlo()["DSN"]; ok {
		t.Errorf("DSN offered without a queue")
	}
	c.authPlain(alice, alicePass, 235, "")
	c.Expect("MAIL FROM:<alice@example.org>", 250, "")
	msg := c.Expect("RCPT TO:<friend@remote.example>", 451, "4.4.0")
	if !strings.Contains(msg, "not available") {
		t.Errorf("451 text does not explain: %q", msg)
	}
	c.Expect("RCPT TO:<nobody@example.org>", 550, "5.1.1")
	c.Expect("RCPT TO:<bob@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send(simpleMsg + ".\r\n")
	c.WantReply(250, "")
	if len(inbox(t, env, bob)) != 1 {
		t.Error("bob did not get the message")
	}
}

func TestSubmissionImplicitTLS(t *testing.T) {
	env := newEnv(t)
	c := dialTLS(t, env.Addr("submissions"), env.ClientTLS())
	caps := c.ehlo()
	if _, ok := caps["STARTTLS"]; ok {
		t.Errorf("STARTTLS offered inside TLS: %v", caps)
	}
	if caps["AUTH"] != "PLAIN LOGIN" {
		t.Errorf("AUTH %q", caps["AUTH"])
	}
	c.Expect("STARTTLS", 554, "5.5.1")
	c.authPlain(bob, bobPass, 235, "")
	c.send(bob, []string{alice}, simpleMsg, 250)
	received, _ := oneMessage(t, env, alice)
	if !strings.Contains(received, " with ESMTPSA id ") || !strings.Contains(received, "\ttls TLS_") {
		t.Errorf("Received:\n%s", received)
	}
}

func TestStartTLS(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.Expect("MAIL FROM:<alice@example.org>", 530, "")
	c.StartTLS(env.ClientTLS())
	// RFC 3207 §4.2: the client must EHLO again; state is discarded.
	c.Expect("MAIL FROM:<alice@example.org>", 503, "5.5.1")
	caps := c.ehlo()
	if _, ok := caps["STARTTLS"]; ok {
		t.Errorf("STARTTLS offered again: %v", caps)
	}
	c.Expect("STARTTLS", 554, "5.5.1")
	c.authPlain(alice, alicePass, 235, "")
	c.send(alice, []string{bob}, simpleMsg, 250)
	received, _ := oneMessage(t, env, bob)
	if !strings.Contains(received, " with ESMTPSA id ") {
		t.Errorf("Received:\n%s", received)
	}
}

// TestStartTLSDropsAuth: an AUTH before STARTTLS does not survive it.
func TestStartTLSDropsAuth(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.authPlain(alice, alicePass, 235, "")
	c.StartTLS(env.ClientTLS())
	c.ehlo()
	c.Expect("MAIL FROM:<alice@example.org>", 530, "")
}

// TestPlaintextAuthNeedsTLS: a client that is not on loopback is not
// offered AUTH without TLS and is refused 504 5.5.4 if it tries (RFC 4954
// §4; §6 keeps 538 for historical purposes only).
func TestPlaintextAuthNeedsTLS(t *testing.T) {
	ip := nonLoopbackIP(t)
	env := newEnv(t)
	srv := &smtpd.Server{
		Hostname: env.Hostname, Mode: smtpd.ModeSubmission,
		Deliverer: &deliver.Deliverer{Users: env.Users, Store: env.Store},
		Auth:      env.Server.Auth, TLSConfig: env.Server.TLS.TLSConfig(), Log: testLogger(t),
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	h := serveOn(t, srv, l)
	c := dial(t, h.addr)
	caps := c.ehlo()
	if _, ok := caps["AUTH"]; ok {
		t.Errorf("AUTH offered to a non-loopback client without TLS: %v", caps)
	}
	c.authPlain(alice, alicePass, 504, "5.5.4")
	c.Expect("MAIL FROM:<alice@example.org>", 530, "STARTTLS")
	c.StartTLS(env.ClientTLS())
	caps = c.ehlo()
	if caps["AUTH"] != "PLAIN LOGIN" {
		t.Errorf("AUTH not offered over TLS: %v", caps)
	}
	c.authPlain(alice, alicePass, 235, "")
}

func nonLoopbackIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address")
	return ""
}

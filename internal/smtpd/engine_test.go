package smtpd_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/smtpd"
)

// Tests of the protocol engine's own behaviour (conn.go), beyond what the
// go-smtp based server did.

// TestStartTLSDiscardsPipelined: commands sent in plaintext after STARTTLS
// are never taken as sent over TLS (RFC 3207 §4.2, CVE-2011-0411).
func TestStartTLSDiscardsPipelined(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.ehlo()
	c.Send("STARTTLS\r\nAUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+alicePass)) + "\r\n")
	c.WantReply(220, "2.0.0")
	c.UpgradeTLS(env.ClientTLS())
	c.Expect("NOOP", 250, "") // the AUTH got no reply: the next one is NOOP's
	c.ehlo()
	c.Expect("MAIL FROM:<alice@example.org>", 530, "") // and did not log in
}

// TestRequireTLSImplicit: REQUIRETLS is offered on the implicit-TLS
// listener too.
func TestRequireTLSImplicit(t *testing.T) {
	env, _ := newQueueEnv(t)
	c := dialTLS(t, env.Addr("submissions"), env.ClientTLS())
	if _, ok := c.ehlo()["REQUIRETLS"]; !ok {
		t.Errorf("REQUIRETLS not offered on implicit TLS")
	}
	plain := dial(t, env.Addr("submission"))
	if _, ok := plain.ehlo()["REQUIRETLS"]; ok {
		t.Errorf("REQUIRETLS offered without TLS")
	}
}

// TestPipelinedGroup: many commands in one write, answered in order.
func TestPipelinedGroup(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	var b strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString("NOOP\r\nVRFY x\r\n")
	}
	b.WriteString("HELP\r\n")
	c.Send(b.String())
	for i := 0; i < 50; i++ {
		c.WantReply(250, "2.0.0")
		c.WantReply(252, "2.0.0")
	}
	c.WantReply(214, "")
}

// TestBDATPipelinedChunks: several chunks and the envelope in one write.
func TestBDATPipelinedChunks(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	parts := []string{"Subject: p\r\n", "\r\n", "BDAT 3 LAST\r\n", "x\r\n"}
	var b strings.Builder
	b.WriteString("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\n")
	for i, p := range parts {
		last := ""
		if i == len(parts)-1 {
			last = " LAST"
		}
		fmt.Fprintf(&b, "BDAT %d%s\r\n%s", len(p), last, p)
	}
	c.Send(b.String() + "NOOP\r\n")
	c.WantReply(250, "")
	c.WantReply(250, "")
	for range parts[:len(parts)-1] {
		c.WantReply(250, "Chunk accepted")
	}
	c.WantReply(250, "queued as")
	c.WantReply(250, "")
	if _, rest := oneMessage(t, env, alice); rest != strings.Join(parts, "") {
		t.Errorf("stored %q", rest)
	}
}

// TestDataLineTooLongContinues: a DATA line over the limit refuses the
// message after its end, and the session goes on (go-smtp closed it).
func TestDataLineTooLongContinues(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxLineLength = 1000 })
	c := dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: long\r\n\r\n" + strings.Repeat("x", 20000) + "\r\nNOOP\r\n.\r\n")
	c.WantReply(500, "5.5.2")
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)
	if n := len(inbox(t, env, alice)); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
}

// TestSizeLimitExact: a message of exactly MaxMessageSize is taken (RFC
// 1870: the limit is inclusive; go-smtp's reader refused it).
func TestSizeLimitExact(t *testing.T) {
	env := newEnv(t)
	const limit = 1000
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxMessageSize = limit })
	c := dial(t, h.addr)
	c.ehlo()
	head := "Subject: exact\r\n\r\n"
	msg := head + strings.Repeat("y", limit-len(head)-2) + "\r\n"
	c.send("x@remote.example", []string{alice}, msg, 250)
	c.send("x@remote.example", []string{alice}, msg+"z\r\n", 552)
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", limit, strings.Repeat("b", limit)))
	c.WantReply(250, "queued as")
	// A chunk over the size limit ends the transaction: the next chunk
	// is refused too (RFC 3030 §2).
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Send("BDAT 600\r\n" + strings.Repeat("c", 600))
	c.WantReply(250, "")
	c.Send("BDAT 600\r\n" + strings.Repeat("c", 600))
	c.WantReply(552, "5.3.4")
	c.Send("BDAT 10 LAST\r\n" + strings.Repeat("c", 10))
	c.WantReply(503, "5.5.1")
	c.Expect("NOOP", 250, "")
	if n := len(inbox(t, env, alice)); n != 2 {
		t.Errorf("alice has %d messages, want 2", n)
	}
}

// TestCommandLineTooLong: a command line over the limit (64 KiB at most,
// however long body lines may be) is read to its end and answered 500
// 5.5.2, as Postfix does; the session goes on. One that goes on past 1 MiB
// closes the connection.
func TestCommandLineTooLong(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxLineLength = 1 << 20 })
	c := dial(t, h.addr)
	c.ehlo()
	c.Expect("NOOP "+strings.Repeat("x", 60000), 250, "") // long, but allowed
	c.Send("NOOP " + strings.Repeat("x", 70000) + "\r\n")
	c.WantReply(500, "5.5.2")
	c.Expect("NOOP", 250, "")
	go c.NetConn().Write([]byte("NOOP " + strings.Repeat("x", 2<<20) + "\r\n"))
	c.WantReply(500, "closing")
	c.EOF()
}

// TestAuthExchange: the 334 exchange of PLAIN without an initial
// response, and cancelling.
func TestAuthExchange(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("submission"))
	c.Expect("AUTH PLAIN", 503, "5.5.1") // before EHLO
	c.ehlo()
	c.Expect("AUTH", 501, "")
	c.Expect("AUTH PLAIN", 334, "")
	c.Expect("*", 501, "")
	c.Expect("AUTH PLAIN", 334, "")
	c.Expect("not base64!", 501, "5.5.2")
	c.Expect("AUTH PLAIN", 334, "")
	c.Expect(base64.StdEncoding.EncodeToString([]byte("\x00"+alice+"\x00"+alicePass)), 235, "2.7.0")
	c.Expect("AUTH PLAIN", 503, "")
	c.send(alice, []string{bob}, simpleMsg, 250)
}

// TestSequence: commands out of order.
func TestSequence(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.Expect("RCPT TO:<alice@example.org>", 503, "5.5.1")
	c.Expect("DATA", 503, "5.5.1")
	c.Expect("EHLO", 501, "")
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("DATA", 554, "") // MAIL but no recipient
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Send("BDAT 4\r\nabcd")
	c.WantReply(250, "")
	c.Expect("MAIL FROM:<x@remote.example>", 503, "5.5.1")
	c.Expect("RCPT TO:<bob@example.org>", 503, "5.5.1")
	c.Expect("DATA", 503, "5.5.1")
	c.Expect("STARTTLS x", 501, "")
	c.Expect("QUIT", 221, "")
	c.EOF()
}

package smtpd_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/store"
)

// TestDotStuffingByteExact: leading dots are unstuffed, and everything
// else (8-bit, long-ish lines, trailing spaces, a lone CR, a line with a
// dot and spaces) arrives exactly.
func TestDotStuffingByteExact(t *testing.T) {
	env := newEnv(t)
	msg := "Subject: dots\r\n\r\n" +
		".leading dot\r\n" +
		"..two dots\r\n" +
		". \r\n" +
		"8-bit: \xc3\xa9t\xc3\xa9 \xff\xfe\r\n" +
		"trailing spaces   \r\n" +
		"lone\rCR\r\n" +
		strings.Repeat("x", 990) + "\r\n" +
		".\r\n.\r\n" // dot lines inside the body (stuffed by dotStuff)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.send("x@remote.example", []string{alice}, msg, 250)
	_, rest := oneMessage(t, env, alice)
	if rest != msg {
		t.Errorf("stored body differs:\n got %q\nwant %q", rest, msg)
	}
}

func TestBareLFNormalised(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	// A bare LF never ends the data: only CRLF.CRLF does.
	c.Send("Subject: lf\n\nline one\nline two\r\n.\nstill data\r\n.\r\n")
	c.WantReply(250, "")
	_, rest := oneMessage(t, env, alice)
	want := "Subject: lf\r\n\r\nline one\r\nline two\r\n\r\nstill data\r\n"
	if rest != want {
		t.Errorf("stored %q, want %q", rest, want)
	}
}

func TestBDAT(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	part1 := "Subject: chunks\r\n\r\n.no stuffing in BDAT\r\n"
	part2 := "binary-ish \x00\x01 and a lone LF\nend\r\n"
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Send(fmt.Sprintf("BDAT %d\r\n%s", len(part1), part1))
	c.WantReply(250, "")
	c.Send(fmt.Sprintf("BDAT %d\r\n%s", len(part2), part2))
	c.WantReply(250, "")
	c.Expect("BDAT 0 LAST", 250, "queued as")
	_, rest := oneMessage(t, env, alice)
	want := part1 + strings.Replace(part2, "\nend", "\r\nend", 1)
	if rest != want {
		t.Errorf("stored %q, want %q", rest, want)
	}

	// One chunk with LAST, pipelined with the envelope.
	body := "Subject: one\r\n\r\nbody\r\n"
	c.Send(fmt.Sprintf("MAIL FROM:<x@remote.example>\r\nRCPT TO:<bob@example.org>\r\nBDAT %d LAST\r\n%s", len(body), body))
	c.WantReply(250, "")
	c.WantReply(250, "")
	c.WantReply(250, "queued as")
	if _, rest := oneMessage(t, env, bob); rest != body {
		t.Errorf("bob: %q", rest)
	}

	// BDAT 0 LAST alone: an empty message (just the trace fields).
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<carol@example.org>", 250, "")
	c.Expect("BDAT 0 LAST", 250, "queued as")
	if _, rest := oneMessage(t, env, carol); rest != "" {
		t.Errorf("carol: %q", rest)
	}

	// BDAT without a transaction: the chunk is read and discarded.
	c.Send("BDAT 9 LAST\r\nMAIL FROM")
	c.WantReply(503, "5.5.1")
	c.Expect("NOOP", 250, "")
}

// TestBDATRSET: RSET in the middle of a chunked message abandons it.
func TestBDATRSET(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Send("BDAT 5\r\nhello")
	c.WantReply(250, "")
	c.Expect("RSET", 250, "")
	c.Expect("BDAT 0 LAST", 503, "5.5.1")
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)
	if _, rest := oneMessage(t, env, alice); rest != simpleMsg {
		t.Errorf("stored %q", rest)
	}
}

// TestBDATTruncated: a client that hangs up inside the LAST chunk gets
// nothing delivered (go-smtp alone would deliver the truncated message).
func TestBDATTruncated(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, nil)
	for _, name := range []string{"plain", "starttls"} {
		t.Run(name, func(t *testing.T) {
			c := dial(t, h.addr)
			c.ehlo()
			if name == "starttls" {
				c.StartTLS(env.ClientTLS())
				c.ehlo()
			}
			c.Expect("MAIL FROM:<x@remote.example>", 250, "")
			c.Expect("RCPT TO:<alice@example.org>", 250, "")
			c.Send("BDAT 1000 LAST\r\nSubject: cut\r\n\r\nonly part of it")
			c.NetConn().Close()
		})
	}
	// Shutdown waits for both sessions to end.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(inbox(t, env, alice)); n != 0 {
		t.Errorf("a truncated BDAT message was delivered (%d messages)", n)
	}
}

func TestPipelining(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	c.WantReply(250, "")
	c.WantReply(250, "")
	c.WantReply(550, "5.1.1")
	c.WantReply(250, "")
	c.WantReply(354, "")
	c.Send(simpleMsg + ".\r\nNOOP\r\n")
	c.WantReply(250, "queued as")
	c.WantReply(250, "")
	if len(inbox(t, env, alice)) != 1 || len(inbox(t, env, bob)) != 1 {
		t.Error("not delivered to both")
	}

	// Every RCPT fails: DATA is refused, and the client sends no body.
	// RFC 2920 §3.1 and RFC 5321 §3.3: 554 (as Postfix).
	c.Send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n")
	c.WantReply(250, "")
	c.WantReply(550, "")
	c.WantReply(554, "")
	c.WantReply(554, "5.5.1 No valid recipients")
	c.Expect("RSET", 250, "")
	c.Expect("NOOP", 250, "")
}

func TestRSET(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("RSET", 250, "")
	c.Expect("DATA", 503, "5.5.1") // no transaction any more
	// RSET keeps the EHLO state: MAIL works without a new EHLO.
	c.Expect("MAIL FROM:<y@remote.example>", 250, "")
	c.Expect("RCPT TO:<bob@example.org>", 250, "")
	// A new EHLO resets the transaction too.
	c.ehlo()
	c.Expect("DATA", 503, "5.5.1")
	c.send("z@remote.example", []string{carol}, simpleMsg, 250)
	if len(inbox(t, env, alice))+len(inbox(t, env, bob)) != 0 || len(inbox(t, env, carol)) != 1 {
		t.Error("RSET did not discard the transaction")
	}
}

func TestSizeLimit(t *testing.T) {
	env := newEnv(t)
	const limit = 1000
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxMessageSize = limit })
	c := dial(t, h.addr)
	if caps := c.ehlo(); caps["SIZE"] != "1000" {
		t.Errorf("SIZE %q", caps["SIZE"])
	}
	// RFC 1870 §6.1: refused at MAIL, before any data.
	c.Expect("MAIL FROM:<x@remote.example> SIZE=1001", 552, "5.3.4")
	c.Expect("MAIL FROM:<x@remote.example> SIZE=999", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	// Over the limit: the whole message is read, then 552; the session
	// goes on in step (the body's "NOOP" lines are not commands).
	big := "Subject: big\r\n\r\n" + strings.Repeat("NOOP\r\n", 2*limit/6)
	c.Send(big + ".\r\n")
	c.WantReply(552, "5.3.4")
	c.Expect("NOOP", 250, "")
	// Just under the limit passes. (A DATA body of exactly the limit is
	// refused by go-smtp's reader: one byte stricter than RFC 1870.)
	ok := "Subject: ok\r\n\r\n" + strings.Repeat("y", limit-1-len("Subject: ok\r\n\r\n")-2) + "\r\n"
	if len(ok) != limit-1 {
		t.Fatalf("test message is %d bytes", len(ok))
	}
	c.send("x@remote.example", []string{alice}, ok, 250)
	if _, rest := oneMessage(t, env, alice); rest != ok {
		t.Error("stored body differs")
	}

	// BDAT over the limit: refused at the chunk, which is discarded.
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<bob@example.org>", 250, "")
	c.Send(fmt.Sprintf("BDAT %d LAST\r\n%s", limit+1, strings.Repeat("z", limit+1)))
	c.WantReply(552, "5.3.4")
	c.Expect("NOOP", 250, "")
	if n := len(inbox(t, env, bob)); n != 0 {
		t.Errorf("oversized message delivered")
	}
}

// TestSizeDrainBounded: a client that keeps sending long after the limit
// is cut off instead of being read forever.
func TestSizeDrainBounded(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxMessageSize = 1000 })
	c := dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	go func() {
		line := strings.Repeat("a", 998) + "\r\n"
		for i := 0; i < 10000; i++ {
			if _, err := c.NetConn().Write([]byte(line)); err != nil {
				return
			}
		}
	}()
	c.WantReply(552, "5.3.4")
	c.EOF()
}

func TestLineTooLong(t *testing.T) {
	env := newEnv(t)
	h := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.MaxLineLength = 1000 })
	c := dial(t, h.addr)
	c.ehlo()
	c.Send("NOOP " + strings.Repeat("x", 2000) + "\r\n")
	c.WantReply(500, "5.5.2") // the line is skipped, as Postfix does
	c.Expect("NOOP", 250, "")

	// In DATA: refused, never truncated.
	c = dial(t, h.addr)
	c.ehlo()
	c.Expect("MAIL FROM:<x@remote.example>", 250, "")
	c.Expect("RCPT TO:<alice@example.org>", 250, "")
	c.Expect("DATA", 354, "")
	c.Send("Subject: long\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n")
	c.WantReply(500, "5.5.2")
	if n := len(inbox(t, env, alice)); n != 0 {
		t.Errorf("message with an overlong line delivered")
	}
}

// TestMalformedCommands: NUL, 8-bit garbage, bare LF and odd spacing are
// answered, and the session goes on.
func TestMalformedCommands(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.Expect("MAIL FROM:<x@remote.example>", 503, "5.5.1") // before EHLO
	c.Expect("EHLO bad\x00name", 501, "")
	c.ehlo()
	c.cmd5xx("\x00\x01\x02")
	c.cmd5xx("\xff\xfe\xfd garbage")
	c.Send("NOOP\n") // bare LF ends a command line
	c.WantReply(250, "")
	c.Expect("noop", 250, "")
	c.Expect("MAIL FROM:<x@remote.example> BOGUS=1", 555, "5.5.4")
	c.Expect("MAIL FROM:x", 501, "")
	c.Expect("MAIL FROM:<x@remote.example> SIZE=-5", 501, "")
	c.Expect("RCPT TO:<alice@example.org>", 503, "5.5.1")
	c.Expect("DATA extra", 503, "5.5.1") // the sequence is checked first
	c.Expect("BDAT", 501, "")
	c.Expect("BDAT x", 501, "")
	c.Expect("EXPN list", 502, "")
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)
}

// TestGarbageClosesEventually: the connection is closed after a few
// unknown commands; each is answered first, and the closing with 421
// (RFC 5321 §3.8; Postfix: "421 4.7.0 Error: too many errors").
func TestGarbageClosesEventually(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	for i := 0; i < 4; i++ {
		c.cmd5xx(fmt.Sprintf("\x00GARBAGE %d", i))
	}
	c.WantReply(421, "4.7.0")
	c.EOF()
}

// TestStoreFailure: when the body cannot be stored or delivered the reply
// is 451 4.3.0, never 250.
func TestStoreFailure(t *testing.T) {
	env := newEnv(t)
	c := dial(t, env.Addr("smtp"))
	c.ehlo()

	tmp := filepath.Join(env.DataDir, "tmp")
	if err := os.Rename(tmp, tmp+".away"); err != nil {
		t.Fatal(err)
	}
	// A body too big to stay in memory needs tmp/; a small one never
	// touches it.
	big := simpleMsg + strings.Repeat("a line of a big message, to spill the body to a file\r\n", store.InlineMax/50)
	c.send("x@remote.example", []string{alice}, big, 451)
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)
	if err := os.Rename(tmp+".away", tmp); err != nil {
		t.Fatal(err)
	}
	c.send("x@remote.example", []string{alice}, simpleMsg, 250)

	env.Store.Close()
	c.send("x@remote.example", []string{bob}, simpleMsg, 451)
}

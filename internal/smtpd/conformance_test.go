package smtpd_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/userdb"
)

// Reply codes checked against the RFCs (and Postfix, where an RFC leaves
// a choice), command by command, over the wire. Each case runs on a new
// connection.

// step is a command line and the reply code it must get; "STARTTLS" with
// 220 also runs the handshake. A line with a CRLF inside (BDAT and its
// chunk) is sent as it is.
type step struct {
	line string
	code int
}

// replyCase is a test of one reply: the steps that lead to it, then the
// command and the reply it must get.
type replyCase struct {
	name     string
	listener string // "smtp", "submission", "submissions", "notls" (MX without TLS)
	setup    []step
	cmd      string // a step's line
	code     int
	enhanced string // "" for none
	after    []step // the session goes on
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

var (
	ehlo     = step{"EHLO client.example.net", 250}
	mxMail   = step{"MAIL FROM:<x@remote.example>", 250}
	mxRcpt   = step{"RCPT TO:<alice@example.org>", 250}
	authOK   = step{"AUTH PLAIN " + plainIR(alice, alicePass), 235}
	subMail  = step{"MAIL FROM:<alice@example.org>", 250}
	startTLS = step{"STARTTLS", 220}
)

// onWire is a step's line as sent.
func onWire(line string) string {
	if strings.Contains(line, "\r\n") {
		return line
	}
	return line + "\r\n"
}

func runReplyCases(t *testing.T, cases []replyCase) {
	t.Helper()
	env, _ := newQueueEnv(t)
	notls := newHarness(t, env, smtpd.ModeMX, func(s *smtpd.Server) { s.TLSConfig = nil })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c *client
			switch tc.listener {
			case "submissions":
				c = dialTLS(t, env.Addr("submissions"), env.ClientTLS())
			case "notls":
				c = dial(t, notls.addr)
			default:
				c = dial(t, env.Addr(tc.listener))
			}
			run := func(steps []step) {
				t.Helper()
				for _, s := range steps {
					if s.line == "STARTTLS" && s.code == 220 {
						c.StartTLS(env.ClientTLS())
						continue
					}
					c.Send(onWire(s.line))
					c.WantReply(s.code, "")
				}
			}
			run(tc.setup)
			c.Send(onWire(tc.cmd))
			code, msg := c.Reply()
			if code != tc.code || !strings.HasPrefix(msg, tc.enhanced) {
				t.Fatalf("%q: got %d %q, want %d %s", tc.cmd, code, msg, tc.code, tc.enhanced)
			}
			run(tc.after)
		})
	}
}

// TestSequenceErrors: every command out of sequence is 503 5.5.1 (RFC
// 5321 §4.1.4; RFC 4954 §4 for AUTH), never 502, which is for commands
// not implemented (RFC 5321 §4.2.4). Where an RFC allows another code,
// Postfix's is used: 554 for DATA/BDAT without an accepted recipient (RFC
// 5321 §3.3 allows 503 or 554, RFC 2920 §3.1), 554 for STARTTLS under TLS
// (RFC 3207 names no code).
func TestSequenceErrors(t *testing.T) {
	noop := []step{{"NOOP", 250}}
	runReplyCases(t, []replyCase{
		// Before EHLO/HELO.
		{name: "MAIL before EHLO", listener: "smtp", cmd: "MAIL FROM:<x@remote.example>", code: 503, enhanced: "5.5.1", after: noop},
		{name: "RCPT before EHLO", listener: "smtp", cmd: "RCPT TO:<alice@example.org>", code: 503, enhanced: "5.5.1", after: noop},
		{name: "DATA before EHLO", listener: "smtp", cmd: "DATA", code: 503, enhanced: "5.5.1", after: noop},
		{name: "BDAT before EHLO", listener: "smtp", cmd: "BDAT 4 LAST\r\nabcd", code: 503, enhanced: "5.5.1", after: noop},
		{name: "AUTH before EHLO", listener: "submission", cmd: "AUTH PLAIN " + plainIR(alice, alicePass), code: 503, enhanced: "5.5.1", after: noop},
		{name: "AUTH before EHLO, implicit TLS", listener: "submissions", cmd: "AUTH PLAIN " + plainIR(alice, alicePass), code: 503, enhanced: "5.5.1", after: noop},
		// Before MAIL.
		{name: "RCPT before MAIL", listener: "smtp", setup: []step{ehlo}, cmd: "RCPT TO:<alice@example.org>", code: 503, enhanced: "5.5.1", after: noop},
		{name: "DATA before MAIL", listener: "smtp", setup: []step{ehlo}, cmd: "DATA", code: 503, enhanced: "5.5.1", after: noop},
		{name: "BDAT before MAIL", listener: "smtp", setup: []step{ehlo}, cmd: "BDAT 4\r\nabcd", code: 503, enhanced: "5.5.1", after: noop},
		{name: "BDAT LAST before MAIL", listener: "smtp", setup: []step{ehlo}, cmd: "BDAT 0 LAST", code: 503, enhanced: "5.5.1", after: noop},
		{name: "DATA with an argument before MAIL", listener: "smtp", setup: []step{ehlo}, cmd: "DATA x", code: 503, enhanced: "5.5.1"},
		{name: "RCPT after RSET", listener: "smtp", setup: []step{ehlo, mxMail, {"RSET", 250}}, cmd: "RCPT TO:<alice@example.org>", code: 503, enhanced: "5.5.1"},
		{name: "DATA after a new EHLO", listener: "smtp", setup: []step{ehlo, mxMail, mxRcpt, ehlo}, cmd: "DATA", code: 503, enhanced: "5.5.1"},
		{name: "RCPT on submission before MAIL", listener: "submission", setup: []step{ehlo, authOK}, cmd: "RCPT TO:<bob@example.org>", code: 503, enhanced: "5.5.1"},
		// MAIL accepted, no recipient.
		{name: "DATA before RCPT", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "DATA", code: 554, enhanced: "5.5.1", after: []step{mxRcpt}},
		{name: "BDAT before RCPT", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "BDAT 4 LAST\r\nabcd", code: 554, enhanced: "5.5.1", after: []step{mxRcpt}},
		{name: "DATA after refused RCPTs", listener: "smtp", setup: []step{ehlo, mxMail, {"RCPT TO:<nobody@example.org>", 550}}, cmd: "DATA", code: 554, enhanced: "5.5.1"},
		// Inside a transaction.
		{name: "MAIL inside a transaction", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "MAIL FROM:<y@remote.example>", code: 503, enhanced: "5.5.1", after: []step{mxRcpt}},
		{name: "MAIL inside a submission transaction", listener: "submission", setup: []step{ehlo, authOK, subMail}, cmd: "MAIL FROM:<alice@example.org>", code: 503, enhanced: "5.5.1"},
		{name: "MAIL during a chunked message", listener: "smtp", setup: []step{ehlo, mxMail, mxRcpt, {"BDAT 2\r\nab", 250}}, cmd: "MAIL FROM:<y@remote.example>", code: 503, enhanced: "5.5.1"},
		{name: "RCPT during a chunked message", listener: "smtp", setup: []step{ehlo, mxMail, mxRcpt, {"BDAT 2\r\nab", 250}}, cmd: "RCPT TO:<bob@example.org>", code: 503, enhanced: "5.5.1"},
		{name: "DATA during a chunked message", listener: "smtp", setup: []step{ehlo, mxMail, mxRcpt, {"BDAT 2\r\nab", 250}}, cmd: "DATA", code: 503, enhanced: "5.5.1", after: []step{{"BDAT 1 LAST\r\nc", 250}}},
		// AUTH (RFC 4954 §4).
		{name: "AUTH after AUTH", listener: "submission", setup: []step{ehlo, authOK}, cmd: "AUTH PLAIN " + plainIR(bob, bobPass), code: 503, enhanced: "5.5.1", after: []step{subMail}},
		{name: "AUTH LOGIN after AUTH", listener: "submission", setup: []step{ehlo, authOK}, cmd: "AUTH LOGIN", code: 503, enhanced: "5.5.1"},
		{name: "AUTH during a transaction", listener: "submission", setup: []step{ehlo, authOK, subMail}, cmd: "AUTH PLAIN " + plainIR(alice, alicePass), code: 503, enhanced: "5.5.1"},
		{name: "AUTH on MX", listener: "smtp", setup: []step{ehlo}, cmd: "AUTH PLAIN " + plainIR(alice, alicePass), code: 503, enhanced: "5.5.1", after: []step{mxMail}},
		{name: "AUTH on MX during a transaction", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "AUTH LOGIN", code: 503, enhanced: "5.5.1", after: []step{mxRcpt}},
		// STARTTLS (RFC 3207).
		{name: "STARTTLS twice", listener: "submission", setup: []step{ehlo, startTLS, ehlo}, cmd: "STARTTLS", code: 554, enhanced: "5.5.1", after: []step{authOK}},
		{name: "STARTTLS before EHLO after STARTTLS", listener: "smtp", setup: []step{ehlo, startTLS}, cmd: "STARTTLS", code: 554, enhanced: "5.5.1"},
		{name: "STARTTLS on implicit TLS", listener: "submissions", setup: []step{ehlo}, cmd: "STARTTLS", code: 554, enhanced: "5.5.1", after: []step{authOK}},
		{name: "MAIL after STARTTLS without EHLO", listener: "smtp", setup: []step{ehlo, startTLS}, cmd: "MAIL FROM:<x@remote.example>", code: 503, enhanced: "5.5.1", after: []step{ehlo, mxMail}},
		{name: "AUTH after STARTTLS without EHLO", listener: "submission", setup: []step{ehlo, startTLS}, cmd: "AUTH PLAIN " + plainIR(alice, alicePass), code: 503, enhanced: "5.5.1", after: []step{ehlo, authOK}},
		// 502 stays for what is not implemented.
		{name: "STARTTLS without TLS configured", listener: "notls", setup: []step{ehlo}, cmd: "STARTTLS", code: 502, enhanced: "5.5.1", after: noop},
		{name: "EXPN", listener: "smtp", setup: []step{ehlo}, cmd: "EXPN staff", code: 502, enhanced: "5.5.1"},
		{name: "TURN", listener: "smtp", cmd: "TURN", code: 502, enhanced: "5.5.1"},
		{name: "SAML", listener: "smtp", setup: []step{ehlo}, cmd: "SAML FROM:<x@remote.example>", code: 502, enhanced: "5.5.1"},
	})
}

// TestAuthReplies: the AUTH exchange's replies (RFC 4954 §4, §6; Postfix
// where those leave a choice).
func TestAuthReplies(t *testing.T) {
	good := plainIR(alice, alicePass)
	// A valid response with a CR inside: Go's base64 decoder skips it,
	// RFC 4954 §4 says such a character MUST be rejected.
	withCR := good[:8] + "\r" + good[8:]
	noop := []step{{"NOOP", 250}}
	runReplyCases(t, []replyCase{
		{name: "success", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + good, code: 235, enhanced: "2.7.0"},
		{name: "success without initial response", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: good, code: 235, enhanced: "2.7.0"},
		{name: "LOGIN success", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}, {b64(alice), 334}}, cmd: b64(alicePass), code: 235, enhanced: "2.7.0"},
		{name: "LOGIN with initial response", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN " + b64(alice), 334}}, cmd: b64(alicePass), code: 235, enhanced: "2.7.0"},
		// 501 5.5.2: base64 that does not decode.
		{name: "PLAIN initial response not base64", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN !!!not-base64!!!", code: 501, enhanced: "5.5.2", after: []step{authOK}},
		{name: "PLAIN initial response, pad first", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN =AAA", code: 501, enhanced: "5.5.2", after: noop},
		{name: "PLAIN initial response, pad inside", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN AAA=BBBB", code: 501, enhanced: "5.5.2", after: noop},
		{name: "PLAIN initial response, no padding", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + strings.TrimRight(b64("\x00a\x00bc"), "="), code: 501, enhanced: "5.5.2", after: noop},
		{name: "LOGIN initial response not base64", listener: "submission", setup: []step{ehlo}, cmd: "AUTH LOGIN %%%", code: 501, enhanced: "5.5.2", after: noop},
		{name: "PLAIN response not base64", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: "not base64!", code: 501, enhanced: "5.5.2", after: []step{authOK}},
		{name: "PLAIN response with a CR inside", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: withCR, code: 501, enhanced: "5.5.2", after: noop},
		{name: "LOGIN user name not base64", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}}, cmd: "alice@example.org", code: 501, enhanced: "5.5.2", after: noop},
		{name: "LOGIN password not base64", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}, {b64(alice), 334}}, cmd: "***", code: 501, enhanced: "5.5.2", after: noop},
		// 501: cancelled (RFC 4954 §4); 5.7.0 as Postfix.
		{name: "PLAIN cancelled", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: "*", code: 501, enhanced: "5.7.0", after: []step{authOK}},
		{name: "LOGIN cancelled at the password", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}, {b64(alice), 334}}, cmd: "*", code: 501, enhanced: "5.7.0", after: noop},
		// 535 5.7.8: decodes, but does not authenticate (RFC 4954 §4: 535
		// unless a more specific code applies; Postfix: 535 5.7.8 for
		// malformed PLAIN messages too).
		{name: "wrong password", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + plainIR(alice, "wrong"), code: 535, enhanced: "5.7.8", after: []step{authOK}},
		{name: "unknown user", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + plainIR("nobody@example.org", "x"), code: 535, enhanced: "5.7.8", after: noop},
		{name: "LOGIN wrong password", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}, {b64(alice), 334}}, cmd: b64("wrong"), code: 535, enhanced: "5.7.8", after: noop},
		{name: "authorization identity of another user", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + b64(bob+"\x00"+alice+"\x00"+alicePass), code: 535, enhanced: "5.7.8", after: noop},
		{name: "PLAIN message without NULs", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + b64("garbage"), code: 535, enhanced: "5.7.8", after: noop},
		{name: "PLAIN message with an empty user", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN " + b64("\x00\x00pass"), code: 535, enhanced: "5.7.8", after: noop},
		{name: "empty PLAIN initial response", listener: "submission", setup: []step{ehlo}, cmd: "AUTH PLAIN =", code: 535, enhanced: "5.7.8", after: noop},
		{name: "empty PLAIN response", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: "", code: 535, enhanced: "5.7.8", after: noop},
		{name: "empty LOGIN user name", listener: "submission", setup: []step{ehlo, {"AUTH LOGIN", 334}}, cmd: "", code: 535, enhanced: "5.7.8", after: noop},
		// 504 5.5.4: the mechanism (RFC 4954 §4).
		{name: "unknown mechanism", listener: "submission", setup: []step{ehlo}, cmd: "AUTH CRAM-MD5", code: 504, enhanced: "5.5.4", after: noop},
		{name: "unknown mechanism, bad base64", listener: "submission", setup: []step{ehlo}, cmd: "AUTH X-NONE !!!", code: 504, enhanced: "5.5.4", after: noop},
		{name: "no mechanism", listener: "submission", setup: []step{ehlo}, cmd: "AUTH", code: 501, enhanced: "5.5.4", after: noop},
		// 500 5.5.6: a response line over the limit (RFC 4954 §4, §6);
		// 12288 octets are taken whatever MaxLineLength says.
		{name: "response line too long", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: strings.Repeat("A", 70000), code: 500, enhanced: "5.5.6", after: []step{authOK}},
		{name: "12 KB response line", listener: "submission", setup: []step{ehlo, {"AUTH PLAIN", 334}}, cmd: b64("\x00" + alice + "\x00" + strings.Repeat("p", 9000)), code: 535, enhanced: "5.7.8", after: noop},
	})
}

// TestParameterReplies: MAIL and RCPT parameters (RFC 5321 §4.1.1.11: 555
// for a parameter not recognized or not implemented, Postfix's "555 5.5.4
// Unsupported option"; RFC 1870 for SIZE; RFC 3461 for the DSN ones).
func TestParameterReplies(t *testing.T) {
	runReplyCases(t, []replyCase{
		{name: "unknown MAIL parameter", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> BOGUS=1", code: 555, enhanced: "5.5.4", after: []step{mxMail}},
		{name: "unknown RCPT parameter", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<alice@example.org> FOO", code: 555, enhanced: "5.5.4", after: []step{mxRcpt}},
		{name: "BODY=BINARYMIME, not offered", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> BODY=BINARYMIME", code: 555, enhanced: "5.5.4"},
		{name: "BODY unknown", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> BODY=9BIT", code: 555, enhanced: "5.5.4"},
		{name: "BODY=8BITMIME", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> BODY=8BITMIME", code: 250, enhanced: "2.1.0"},
		{name: "SIZE over the limit", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> SIZE=999999999999", code: 552, enhanced: "5.3.4"},
		{name: "SIZE of 20 digits", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> SIZE=99999999999999999999", code: 552, enhanced: "5.3.4"},
		{name: "SIZE not a number", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> SIZE=abc", code: 501, enhanced: "5.5.4"},
		{name: "SIZE without value", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> SIZE", code: 501, enhanced: "5.5.4"},
		{name: "SMTPUTF8 with a value", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> SMTPUTF8=yes", code: 501, enhanced: "5.5.4"},
		{name: "RET malformed", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> RET=BOGUS", code: 501, enhanced: "5.5.4"},
		{name: "NOTIFY malformed", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<alice@example.org> NOTIFY=SOMETIMES", code: 501, enhanced: "5.5.4"},
		{name: "REQUIRETLS without TLS", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> REQUIRETLS", code: 555, enhanced: "5.5.4", after: []step{mxMail}},
		{name: "REQUIRETLS over TLS", listener: "smtp", setup: []step{ehlo, startTLS, ehlo}, cmd: "MAIL FROM:<x@remote.example> REQUIRETLS", code: 250, enhanced: "2.1.0"},
		// Without an outbound queue DSN is not offered.
		{name: "RET without DSN", listener: "notls", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> RET=FULL", code: 555, enhanced: "5.5.4", after: []step{mxMail}},
		{name: "ENVID without DSN", listener: "notls", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> ENVID=x", code: 555, enhanced: "5.5.4"},
		{name: "NOTIFY without DSN", listener: "notls", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<alice@example.org> NOTIFY=NEVER", code: 555, enhanced: "5.5.4"},
		{name: "ORCPT without DSN", listener: "notls", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<alice@example.org> ORCPT=rfc822;a@b", code: 555, enhanced: "5.5.4"},
		{name: "REQUIRETLS without DSN", listener: "notls", setup: []step{ehlo}, cmd: "MAIL FROM:<x@remote.example> REQUIRETLS", code: 555, enhanced: "5.5.4"},
	})
}

// TestCommandReplies: the other commands' replies (RFC 5321 §4.1.1,
// §4.2, §4.3.2; RFC 3207 §4).
func TestCommandReplies(t *testing.T) {
	noop := []step{{"NOOP", 250}}
	runReplyCases(t, []replyCase{
		{name: "RSET with an argument", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RSET x", code: 501, enhanced: "5.5.4", after: []step{mxRcpt}},
		{name: "RSET", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RSET", code: 250, enhanced: "2.0.0", after: []step{mxMail}},
		{name: "VRFY without an argument", listener: "smtp", setup: []step{ehlo}, cmd: "VRFY", code: 501, enhanced: "5.5.4", after: noop},
		{name: "VRFY", listener: "smtp", setup: []step{ehlo}, cmd: "VRFY alice", code: 252, enhanced: "2.0.0"},
		{name: "NOOP with an argument", listener: "smtp", cmd: "NOOP x", code: 250, enhanced: "2.0.0"}, // RFC 5321 §4.1.1.9
		{name: "HELP", listener: "smtp", cmd: "HELP", code: 214, enhanced: "2.0.0"},
		{name: "DATA with an argument", listener: "smtp", setup: []step{ehlo, mxMail, mxRcpt}, cmd: "DATA x", code: 501, enhanced: "5.5.4", after: []step{{"DATA", 354}}},
		{name: "MAIL without FROM:", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL <x@remote.example>", code: 501, enhanced: "5.5.4", after: []step{mxMail}},
		{name: "RCPT without TO:", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT <alice@example.org>", code: 501, enhanced: "5.5.4", after: []step{mxRcpt}},
		{name: "bad sender address", listener: "smtp", setup: []step{ehlo}, cmd: "MAIL FROM:<not an address>", code: 501, enhanced: "5.1.7"},
		{name: "bad recipient address", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<not an address>", code: 501, enhanced: "5.1.3"},
		{name: "EHLO without a domain", listener: "smtp", cmd: "EHLO", code: 501, enhanced: "5.5.2", after: []step{ehlo}},
		{name: "HELO without a domain", listener: "smtp", cmd: "HELO", code: 501, enhanced: "5.5.2", after: []step{ehlo}},
		{name: "unknown command", listener: "smtp", cmd: "FROB", code: 500, enhanced: "5.5.2", after: []step{ehlo}},
		{name: "STARTTLS with an argument", listener: "submission", setup: []step{ehlo}, cmd: "STARTTLS now", code: 501, enhanced: "5.5.4", after: []step{startTLS}},
		{name: "STARTTLS", listener: "submission", setup: []step{ehlo}, cmd: "STARTTLS", code: 220, enhanced: "2.0.0"},
		{name: "command line too long", listener: "smtp", setup: []step{ehlo}, cmd: "NOOP " + strings.Repeat("x", 70000), code: 500, enhanced: "5.5.2", after: []step{mxMail}},
		{name: "unauthenticated MAIL on submission", listener: "submission", setup: []step{ehlo}, cmd: "MAIL FROM:<alice@example.org>", code: 530, enhanced: "5.7.0", after: []step{authOK, subMail}},
		{name: "sender not owned", listener: "submission", setup: []step{ehlo, authOK}, cmd: "MAIL FROM:<bob@example.org>", code: 553, enhanced: "5.7.1"},
		{name: "relay refused on MX", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<x@elsewhere.example>", code: 554, enhanced: "5.7.1"},
		{name: "unknown local user", listener: "smtp", setup: []step{ehlo, mxMail}, cmd: "RCPT TO:<nobody@example.org>", code: 550, enhanced: "5.1.1"},
		{name: "QUIT", listener: "smtp", cmd: "QUIT", code: 221, enhanced: "2.0.0"},
	})
}

// TestAuthTemporaryFailure: 454 4.7.0 only for what is really temporary
// (RFC 4954 §6): the user database failing, a lockout that will end. Bad
// credentials stay 535 meanwhile.
func TestAuthTemporaryFailure(t *testing.T) {
	env := newEnv(t)
	users, err := userdb.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	users.Close() // every lookup fails
	h := newHarness(t, env, smtpd.ModeSubmission, func(s *smtpd.Server) {
		s.Auth = auth.New(users, auth.Policy{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Window: time.Minute}, nil)
	})
	c := dial(t, h.addr)
	c.ehlo()
	c.authPlain(alice, alicePass, 454, "4.7.0")
	c.Expect("AUTH LOGIN", 334, "")
	c.Expect(b64(alice), 334, "")
	c.Expect(b64(alicePass), 454, "4.7.0")
	// Not temporary, whatever the database: the client's own errors.
	c.Expect("AUTH PLAIN !!!", 501, "5.5.2")
	c.Expect("AUTH PLAIN "+b64("garbage"), 535, "5.7.8")
	c.Expect("NOOP", 250, "")
}

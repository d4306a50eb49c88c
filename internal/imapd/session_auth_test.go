package imapd_test

import (
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
)

// Tests of the not-authenticated state: greeting, CAPABILITY, STARTTLS,
// LOGIN, AUTHENTICATE (RFC 9051 §6.1, §6.2), the plaintext policy and
// login failures.

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSessionGreetingAndCapability(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	c := h.dial()
	for _, want := range []string{"[CAPABILITY IMAP4rev1 IMAP4rev2 ", " STARTTLS ", " AUTH=PLAIN ", " SASL-IR ", " COMPRESS=DEFLATE"} {
		if !strings.Contains(c.Greeting, want) {
			t.Errorf("greeting %q lacks %q", c.Greeting, want)
		}
	}
	u := c.OK("CAPABILITY")
	capa := sessFind(u, "* CAPABILITY ")
	if capa == "" || !strings.Contains(capa, " IDLE ") || !strings.Contains(capa, " QRESYNC ") || strings.Contains(capa, "LOGINDISABLED") {
		t.Errorf("CAPABILITY: %q", u)
	}
	c.OK("NOOP")
	u = c.OK("LOGOUT")
	if sessFind(u, "* BYE ") == "" {
		t.Errorf("LOGOUT without BYE: %q", u)
	}
	c.EOF()
}

// TestSessionPlaintextPolicy: from a non-loopback address without TLS,
// passwords may not be sent (RFC 9051 §6.2.3, §11.1): LOGINDISABLED is
// advertised and LOGIN / AUTHENTICATE PLAIN get NO [PRIVACYREQUIRED];
// after STARTTLS, or with implicit TLS, they work.
func TestSessionPlaintextPolicy(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40000}
	h := newSessHarness(t, sessOptions{remote: remote})
	h.addUser(sessAlice, sessPass)

	c := h.dial()
	if !strings.Contains(c.Greeting, "LOGINDISABLED") || strings.Contains(c.Greeting, "AUTH=PLAIN") {
		t.Errorf("greeting %q: want LOGINDISABLED and no AUTH=PLAIN", c.Greeting)
	}
	c.Expect("LOGIN "+sessAlice+" "+sessPass, "NO [PRIVACYREQUIRED]")
	c.Expect("AUTHENTICATE PLAIN "+b64("\x00"+sessAlice+"\x00"+sessPass), "NO [PRIVACYREQUIRED]")
	c.Expect("AUTHENTICATE PLAIN", "NO [PRIVACYREQUIRED]") // refused before any challenge
	c.StartTLS(h.clientTLS())
	u := c.OK("CAPABILITY")
	capa := sessFind(u, "* CAPABILITY ")
	if !strings.Contains(capa, "AUTH=PLAIN") || strings.Contains(capa, "LOGINDISABLED") || strings.Contains(capa, "STARTTLS") {
		t.Errorf("CAPABILITY after STARTTLS: %q", capa)
	}
	c.login(sessAlice, sessPass)

	h2 := newSessHarness(t, sessOptions{remote: remote, implicitTLS: true})
	h2.addUser(sessAlice, sessPass)
	c2 := h2.dialTLS()
	if strings.Contains(c2.Greeting, "LOGINDISABLED") || strings.Contains(c2.Greeting, "STARTTLS") {
		t.Errorf("imaps greeting %q", c2.Greeting)
	}
	c2.OK("AUTHENTICATE PLAIN " + b64("\x00"+sessAlice+"\x00"+sessPass))
}

func TestSessionAuthenticate(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	plain := b64("\x00" + sessAlice + "\x00" + sessPass)
	tests := []struct {
		name string
		// steps alternate: a client line, then the prefix of the server's
		// answer ("+ " continuation, or the tagged reply after "t1 ").
		cmd   string
		steps []string
		want  string
	}{
		{name: "plain SASL-IR", cmd: "AUTHENTICATE PLAIN " + plain, want: "OK [CAPABILITY "},
		{name: "plain lower case", cmd: "authenticate plain " + plain, want: "OK"},
		{name: "plain with authzid", cmd: "AUTHENTICATE PLAIN " + b64(sessAlice+"\x00"+sessAlice+"\x00"+sessPass), want: "OK"},
		{name: "plain continuation", cmd: "AUTHENTICATE PLAIN", steps: []string{"+ ", plain}, want: "OK"},
		{name: "login mechanism", cmd: "AUTHENTICATE LOGIN", steps: []string{"+ " + b64("Username:"), b64(sessAlice), "+ " + b64("Password:"), b64(sessPass)}, want: "OK"},
		{name: "login with initial response", cmd: "AUTHENTICATE LOGIN " + b64(sessAlice), steps: []string{"+ " + b64("Password:"), b64(sessPass)}, want: "OK"},
		{name: "wrong password", cmd: "AUTHENTICATE PLAIN " + b64("\x00"+sessAlice+"\x00wrong"), want: "NO [AUTHENTICATIONFAILED]"},
		{name: "unknown user", cmd: "AUTHENTICATE PLAIN " + b64("\x00nobody@example.org\x00"+sessPass), want: "NO [AUTHENTICATIONFAILED]"},
		{name: "other authzid", cmd: "AUTHENTICATE PLAIN " + b64("bob@example.org\x00"+sessAlice+"\x00"+sessPass), want: "NO"},
		{name: "cancel", cmd: "AUTHENTICATE PLAIN", steps: []string{"+ ", "*"}, want: "BAD"},
		{name: "bad base64 response", cmd: "AUTHENTICATE PLAIN", steps: []string{"+ ", "!!!"}, want: "BAD"},
		{name: "bad base64 initial response", cmd: "AUTHENTICATE PLAIN AAA!", want: "BAD"},
		{name: "malformed plain", cmd: "AUTHENTICATE PLAIN " + b64("just-one-field"), want: "BAD"},
		{name: "empty initial response", cmd: "AUTHENTICATE PLAIN =", want: "BAD"},
		{name: "unknown mechanism", cmd: "AUTHENTICATE CRAM-MD5", want: "NO"},
		{name: "no mechanism", cmd: "AUTHENTICATE", want: "BAD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.t = t
			c.Send("t1 " + tc.cmd + "\r\n")
			for i := 0; i < len(tc.steps); i += 2 {
				if l := c.Response(); !strings.HasPrefix(l, tc.steps[i]) {
					t.Fatalf("step %d: got %q, want %q", i/2, l, tc.steps[i])
				}
				c.Send(tc.steps[i+1] + "\r\n")
			}
			_, reply := c.Until("t1")
			if !strings.HasPrefix(reply, tc.want) {
				t.Fatalf("got %q, want %q", reply, tc.want)
			}
			// The session goes on in the right state.
			_, r := c.Cmd("SELECT INBOX")
			loggedIn := strings.HasPrefix(tc.want, "OK")
			if loggedIn != strings.HasPrefix(r, "OK") {
				t.Fatalf("SELECT after authentication: %q (logged in: %v)", r, loggedIn)
			}
		})
	}
}

// TestSessionLoginFailures: three failed logins end the session with BYE;
// LOGIN arguments may be quoted strings and literals.
func TestSessionLoginFailures(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.Expect("LOGIN "+sessAlice+" wrong1", "NO [AUTHENTICATIONFAILED]")
	c.Expect(`LOGIN "`+sessAlice+`" "wrong 2"`, "NO [AUTHENTICATIONFAILED]")
	u := c.Expect("LOGIN "+sessAlice+" wrong3", "NO")
	if sessFind(u, "* BYE ") == "" {
		t.Errorf("no BYE after the third failure: %q", u)
	}
	c.EOF()

	c = h.dial()
	c.Send("t1 LOGIN {" + strconv.Itoa(len(sessAlice)) + "}\r\n")
	if l := c.Response(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("want continuation, got %q", l)
	}
	c.Send(sessAlice + " {" + strconv.Itoa(len(sessPass)) + "+}\r\n" + sessPass + "\r\n")
	if _, r := c.Until("t1"); !strings.HasPrefix(r, "OK") {
		t.Fatalf("LOGIN with literals: %q", r)
	}
	c.Expect("LOGIN "+sessAlice+" "+sessPass, "BAD") // already logged in
	c.Expect("AUTHENTICATE PLAIN", "BAD")
	c.Expect("STARTTLS", "BAD")
}

func TestSessionStartTLS(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.StartTLS(h.clientTLS())
	c.Expect("STARTTLS", "BAD") // already active
	c.login(sessAlice, sessPass)
	c.OK("SELECT INBOX")

	// Input pipelined after STARTTLS is refused and the session ends (it
	// could be a command injected before the handshake).
	c = h.dial()
	c.Send("t1 STARTTLS\r\nt2 LOGIN " + sessAlice + " " + sessPass + "\r\n")
	if _, r := c.Until("t1"); !strings.HasPrefix(r, "BAD") {
		t.Fatalf("pipelined STARTTLS: %q", r)
	}
	c.EOF("* BYE ")

	// Without TLS configured there is no STARTTLS.
	h2 := newSessHarness(t, sessOptions{noTLS: true})
	c = h2.dial()
	if strings.Contains(c.Greeting, "STARTTLS") {
		t.Errorf("greeting offers STARTTLS without TLS: %q", c.Greeting)
	}
	c.Expect("STARTTLS", "BAD")
	c.OK("NOOP")
}

func TestSessionEnableAndID(t *testing.T) {
	h := newSessHarness(t, sessOptions{})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	// ID works in every state (RFC 2971).
	u := c.OK(`ID ("name" "test" "version" NIL)`)
	if sessFind(u, `* ID ("name" "jodmai"`) == "" {
		t.Errorf("ID: %q", u)
	}
	c.OK("ID NIL")
	c.Expect("ID", "BAD")
	c.Expect("ENABLE QRESYNC", "BAD") // not authenticated
	c.login(sessAlice, sessPass)
	tests := []struct{ cmd, want string }{
		{"ENABLE CONDSTORE", "* ENABLED CONDSTORE"},
		{"ENABLE CONDSTORE", "* ENABLED"},
		{"ENABLE QRESYNC X-UNKNOWN", "* ENABLED QRESYNC"},
		{"ENABLE IMAP4rev2 UTF8=ACCEPT", "* ENABLED IMAP4rev2 UTF8=ACCEPT"},
		{"enable imap4rev2", "* ENABLED"},
	}
	for _, tc := range tests {
		u := c.OK(tc.cmd)
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, u, tc.want)
		}
	}
	c.Expect("ENABLE", "BAD")
	c.OK("SELECT INBOX")
	c.Expect("ENABLE CONDSTORE", "BAD") // RFC 5161 §3.1: authenticated state only
	c.OK(`ID ("name" "test")`)
}

// TestSessionThrottle: once a client address has failed too often, even
// the right password is refused with NO [UNAVAILABLE] (the shared login
// throttle of package auth), without saying whether it was right.
func TestSessionThrottle(t *testing.T) {
	policy := auth.Policy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Window: time.Minute, IPLockoutAfter: 2, Lockout: time.Minute}
	h := newSessHarness(t, sessOptions{policy: &policy})
	h.addUser(sessAlice, sessPass)
	c := h.dial()
	c.Expect("LOGIN "+sessAlice+" wrong1", "NO [AUTHENTICATIONFAILED]")
	c.Expect("AUTHENTICATE PLAIN "+b64("\x00"+sessAlice+"\x00wrong2"), "NO [AUTHENTICATIONFAILED]")
	c2 := h.dial()
	c2.Expect("LOGIN "+sessAlice+" "+sessPass, "NO [UNAVAILABLE]")
	c2.Expect("AUTHENTICATE PLAIN "+b64("\x00"+sessAlice+"\x00"+sessPass), "NO [UNAVAILABLE]")
}

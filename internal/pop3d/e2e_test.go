package pop3d_test

import (
	"crypto/tls"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// TestEndToEnd runs the seed's mail path on a whole jodmai: a message
// submitted over SMTP is downloaded and deleted over POP3 and POP3S.
func TestEndToEnd(t *testing.T) {
	env := testenv.Start(t)
	env.AddUser(t, alice, alicePass)
	// Date and Message-ID present: submission adds them when missing.
	body := "From: alice@example.org\r\nTo: alice@example.org\r\nSubject: e2e\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <e2e@example.org>\r\n\r\nhello over SMTP\r\n.dot line\r\n"
	for i := 0; i < 2; i++ {
		submit(t, env, body)
	}

	c := dialEnv(t, env.Addr("pop3"), nil)
	c.Login(alice, alicePass)
	if r := c.OK("STAT"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Fatalf("STAT %q", r)
	}
	stored := env.Inbox(t, alice)
	c.OK("RETR 1")
	if got := c.Multi(); got != string(stored[0].Body) || !strings.HasSuffix(got, body) || !strings.Contains(got, "Received:") {
		t.Errorf("RETR 1: %q", got)
	}
	c.OK("DELE 1")
	c.OK("QUIT")
	c.EOF()

	c = dialEnv(t, env.Addr("pop3s"), env.ClientTLS())
	c.OK("CAPA")
	if caps := c.Lines(); strings.Contains(strings.Join(caps, " "), "STLS") {
		t.Errorf("STLS offered on pop3s: %q", caps)
	}
	c.Login(alice, alicePass)
	c.OK("RETR 1")
	if got := c.Multi(); got != string(stored[1].Body) {
		t.Errorf("RETR over pop3s: %q", got)
	}
	c.OK("DELE 1")
	c.OK("QUIT")
	if left := env.Inbox(t, alice); len(left) != 0 {
		t.Errorf("%d messages left", len(left))
	}
}

func submit(t *testing.T, env *testenv.Env, body string) {
	t.Helper()
	c, err := smtp.Dial(env.Addr("submission"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(env.ClientTLS()); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	host, _, _ := net.SplitHostPort(env.Addr("submission"))
	if err := c.Auth(smtp.PlainAuth("", alice, alicePass, host)); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail(alice); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(alice); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func dialEnv(t *testing.T, addr string, tlsConf *tls.Config) *wire.POP3 {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var c net.Conn
	var err error
	if tlsConf != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, tlsConf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return wire.NewPOP3(wire.New(t, c))
}

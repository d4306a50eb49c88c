package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/server"
)

// TestMsgAuthWiring: the MX listener of a whole server checks mail from
// untrusted clients with the injected resolver, submission does not, and
// the result is read back over POP3.
func TestMsgAuthWiring(t *testing.T) {
	const host = "mail.example.org"
	cfg, err := config.Options{Euid: func() int { return 1000 }, Hostname: func() (string, error) { return host, nil }}.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	cfg.Listen = config.Listen{SMTP: "127.0.0.1:0", POP3: "127.0.0.1:0"}
	r := dns.MockResolver{TXT: map[string][]string{
		"a.test.":        {"v=spf1 ip4:127.0.0.2 -all"},
		"_dmarc.a.test.": {"v=DMARC1; p=reject"},
	}}
	ctx := context.Background()
	fast := auth.Policy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Window: time.Minute, IPLockoutAfter: 1000, Lockout: time.Minute}
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler), server.Options{AuthPolicy: &fast, Resolver: r})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	if err := srv.Users.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Users.AddAccount(ctx, "bob@example.org", "bob-password-1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	mx := srv.Addrs()["smtp"].String()

	send := func(src, mailFrom, msg string) (int, string) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
		nc, err := d.Dial("tcp", mx)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		c := textproto.NewConn(nc)
		for _, step := range []struct {
			line string
			code int
		}{{"", 220}, {"EHLO mx.a.test", 250}, {"MAIL FROM:<" + mailFrom + ">", 250}, {"RCPT TO:<bob@example.org>", 250}, {"DATA", 354}} {
			if step.line != "" {
				c.PrintfLine("%s", step.line)
			}
			if _, _, err := c.ReadResponse(step.code); err != nil {
				t.Fatalf("%q: %v", step.line, err)
			}
		}
		c.PrintfLine("%s.", msg)
		code, text, _ := c.ReadResponse(0)
		return code, text
	}
	msg := "From: alice@a.test\r\nSubject: hi\r\n\r\nHello.\r\n"
	if code, text := send("127.0.0.2", "x@a.test", msg); code != 250 {
		t.Fatalf("pass: %d %s", code, text)
	}
	if code, text := send("127.0.0.2", "x@evil.test", msg); code != 550 || !strings.HasPrefix(text, "5.7.1 ") {
		t.Fatalf("reject: %d %s", code, text)
	}
	if code, text := send("127.0.0.1", "x@evil.test", msg); code != 250 {
		t.Fatalf("trusted: %d %s", code, text)
	}

	// POP3: two messages, the checked one and the trusted one.
	nc, err := net.Dial("tcp", srv.Addrs()["pop3"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	p := textproto.NewConn(nc)
	cmd := func(line string) string {
		t.Helper()
		if line != "" {
			p.PrintfLine("%s", line)
		}
		l, err := p.ReadLine()
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("%q: %q %v", line, l, err)
		}
		return l
	}
	cmd("")
	cmd("USER bob@example.org")
	cmd("PASS bob-password-1")
	if stat := cmd("STAT"); !strings.HasPrefix(stat, "+OK 2 ") {
		t.Fatalf("STAT %q, want 2 messages", stat)
	}
	retr := func(n string) string {
		cmd("RETR " + n)
		lines, err := p.ReadDotLines()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	checked := retr("1")
	ar := "Authentication-Results: " + host + "; spf=pass smtp.mailfrom=a.test;"
	if !strings.Contains(checked, "\n"+ar+"\n") || !strings.Contains(checked, "dmarc=pass header.from=a.test") {
		t.Errorf("checked message:\n%s", checked)
	}
	if i, j := strings.Index(checked, "\nReceived: "), strings.Index(checked, ar); i < 0 || j < i || j > strings.Index(checked, "From: alice@a.test") {
		t.Errorf("Authentication-Results not between the trace fields and the message:\n%s", checked)
	}
	if trusted := retr("2"); !strings.Contains(trusted, "\nAuthentication-Results: "+host+"; none\n") {
		t.Errorf("trusted message:\n%s", trusted)
	}
}

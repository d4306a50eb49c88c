// Package proxy_test runs Debian's HAProxy in front of jodmai on loopback,
// sending the PROXY protocol (v1 to SMTP, v2 to IMAP), and checks that
// jodmai sees the clients' addresses: in the Received field of a message
// and in the per-IP connection cap.
package proxy_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/proc"
	"github.com/jodmai/jodmai/internal/testenv/wait"
	"github.com/jodmai/jodmai/internal/testenv/wire"
)

// HAProxy connects to jodmai from balancerIP; clients reach HAProxy from
// their own loopback addresses.
const balancerIP = "127.0.0.2"

func startHAProxy(t *testing.T, backends map[string]string) map[string]string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (apt-get install haproxy; .ci/run installs it): skipping the HAProxy interop test")
	}
	fronts := map[string]string{}
	var b strings.Builder
	b.WriteString("global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n")
	for name, be := range backends {
		front := proc.FreePort(t, "127.0.0.1")
		fronts[name] = front
		send := "send-proxy"
		if name == "imap" {
			send = "send-proxy-v2"
		}
		fmt.Fprintf(&b, "listen %s\n  bind %s\n  server s1 %s %s source %s\n", name, front, be, send, balancerIP)
	}
	conf := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "-f", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Skipf("haproxy does not start: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	for _, front := range fronts {
		wait.For(t, 10*time.Second, "haproxy listening on "+front, func() bool {
			c, err := net.Dial("tcp", front)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return fronts
}

func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

func TestHAProxyInFront(t *testing.T) {
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) {
		c.Listen.ProxyFrom = []string{balancerIP + "/32"}
		c.Limits.MaxConnectionsPerIP = 1
		c.Limits.ExemptNetworks = nil
	}})
	env.AddUser(t, "bob@"+testenv.Domain, "bob-password-1")
	fronts := startHAProxy(t, map[string]string{"smtp": env.Addr("smtp"), "imap": env.Addr("imap")})

	// SMTP through HAProxy (PROXY v1) from 127.0.0.5: the Received field
	// names 127.0.0.5, not the balancer.
	c := wire.NewSMTP(wire.New(t, dialFrom(t, "127.0.0.5", fronts["smtp"])))
	for _, cmd := range []string{"EHLO client.example", "MAIL FROM:<alice@client.example>", "RCPT TO:<bob@" + testenv.Domain + ">", "DATA"} {
		if code, text := c.Cmd(cmd); code/100 != 2 && code/100 != 3 {
			t.Fatalf("%s: %d %q", cmd, code, text)
		}
	}
	c.Send("Subject: through haproxy\r\n\r\nhello\r\n.\r\n")
	c.WantReply(250, "")
	c.SendLine("QUIT")
	msgs := env.Inbox(t, "bob@"+testenv.Domain)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	hdr, _, _ := strings.Cut(string(msgs[0].Body), "\r\n\r\n")
	if !strings.Contains(hdr, "127.0.0.5") || strings.Contains(hdr, balancerIP) {
		t.Errorf("Received does not name the client 127.0.0.5:\n%s", hdr)
	}

	// IMAP through HAProxy (PROXY v2): the per-IP cap of 1 counts the
	// client, not the balancer: a second connection of 127.0.0.6 is
	// refused, one of 127.0.0.7 is served.
	greet := func(from string) string {
		return wire.New(t, dialFrom(t, from, fronts["imap"])).Line()
	}
	if g := greet("127.0.0.6"); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("first from 127.0.0.6: %q", g)
	}
	if g := greet("127.0.0.6"); !strings.HasPrefix(g, "* BYE") {
		t.Errorf("second from 127.0.0.6: %q, want the cap's BYE", g)
	}
	if g := greet("127.0.0.7"); !strings.HasPrefix(g, "* OK") {
		t.Errorf("from 127.0.0.7: %q", g)
	}
}

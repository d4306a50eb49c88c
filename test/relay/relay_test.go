// Package relay tests mail between two jodmai servers: two processes on
// two loopback addresses (127.0.0.2 for a.test, 127.0.0.3 for b.test), one
// DNS server in the test that publishes their MX, SPF, DKIM and DMARC
// records, and the real submission, queue, outbound SMTP client, inbound
// SMTP with SPF/DKIM/DMARC checks, and POP3 in between.
package relay

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv/dnstest"
	"github.com/jodmai/jodmai/internal/testenv/proc"
	"github.com/jodmai/jodmai/internal/ua"
)

const (
	ipA = "127.0.0.2"
	ipB = "127.0.0.3"
)

// site is one mail domain with its server.
type site struct {
	domain, ip string
	in         *proc.Instance
}

// world is the two sites and their DNS.
type world struct {
	t    *testing.T
	dns  *dnstest.Server
	a, b *site
	port int // the SMTP (MX) port, the same at both addresses
}

// sharedPort finds a port free on both addresses: each server's MX listens
// on it, and [remote] port points outbound connections at it.
func sharedPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		la, err := net.Listen("tcp", ipA+":0")
		if err != nil {
			t.Skipf("cannot listen on %s (no 127.0.0.0/8 on lo?): %v", ipA, err)
		}
		port := la.Addr().(*net.TCPAddr).Port
		lb, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ipB, port))
		la.Close()
		if err == nil {
			lb.Close()
			return port
		}
	}
	t.Fatal("no port free on both addresses")
	return 0
}

func newWorld(t *testing.T) *world {
	bin := proc.Build(t)
	w := &world{t: t, dns: dnstest.Start(t), port: sharedPort(t)}
	w.a = w.newSite(bin, "a.test", ipA)
	w.b = w.newSite(bin, "b.test", ipB)
	return w
}

func (w *world) newSite(bin, domain, ip string) *site {
	t := w.t
	mx := "mx." + domain
	extra := fmt.Sprintf(`[dns]
resolver = %q

[remote]
port = %d
source_ip = %q
connect_timeout = "5s"

[queue]
retry_min = "1s"
retry_max = "2s"
`, w.dns.Addr(), w.port, ip)
	in := proc.New(t, bin, proc.Options{
		Hostname: mx, IP: ip,
		Services: []string{"smtp", "submission", "pop3"},
		Ports:    map[string]int{"smtp": w.port},
		Extra:    extra,
	})
	s := &site{domain: domain, ip: ip, in: in}
	in.MustRun("", "domain", "add", domain)
	w.dns.SetMX(domain, dnstest.MX{Pref: 10, Host: mx})
	w.dns.SetA(mx, ip)
	w.dns.SetTXT(domain, "v=spf1 mx -all")
	w.dns.SetTXT("_dmarc."+domain, "v=DMARC1; p=reject")
	// Publish the DKIM keys the way an operator would: from what
	// `jodmai dkim keygen` prints.
	out := in.MustRun("", "dkim", "keygen", domain)
	n := 0
	for name, txt := range dkimRecords(out) {
		w.dns.SetTXT(name, txt)
		n++
	}
	if n == 0 {
		t.Fatalf("dkim keygen %s printed no DKIM record:\n%s", domain, out)
	}
	return s
}

// dkimRecords finds "NAME ... TXT "..." "..."" lines for *._domainkey.*
// names in zone-file output and returns name (no trailing dot) -> the TXT
// value with its strings joined.
func dkimRecords(out string) map[string]string {
	recs := map[string]string{}
	quoted := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.Contains(f[0], "._domainkey.") {
			continue
		}
		i := strings.Index(line, "TXT")
		if i < 0 {
			continue
		}
		var val strings.Builder
		for _, m := range quoted.FindAllStringSubmatch(line[i:], -1) {
			val.WriteString(m[1])
		}
		recs[strings.TrimSuffix(f[0], ".")] = val.String()
	}
	return recs
}

func (s *site) addUser(t *testing.T, local, pass string) string {
	addr := local + "@" + s.domain
	s.in.MustRun(pass+"\n", "user", "add", "--password-stdin", addr)
	return addr
}

// submit sends msg from user over submission (STARTTLS, AUTH PLAIN).
func (s *site) submit(t *testing.T, user, pass string, to []string, msg string) error {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.in.Addr("submission"), 5*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	// The server's name, not its address: net/smtp's PlainAuth sends
	// credentials only to the host it was told it talks to.
	c, err := smtp.NewClient(conn, "mx."+s.domain)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "mx." + s.domain}); err != nil {
		return fmt.Errorf("starttls: %w", err)
	}
	if err := c.Auth(smtp.PlainAuth("", user, pass, "mx."+s.domain)); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := c.Mail(user); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(wc, msg); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// inbox returns every message in user's maildrop over POP3, leaving them.
func (s *site) inbox(t *testing.T, user, pass string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.in.Addr("pop3"), 5*time.Second)
	if err != nil {
		t.Fatalf("pop3 dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := ua.NewPOP3Client(conn)
	if err != nil {
		t.Fatalf("pop3: %v", err)
	}
	if err := c.User(user, pass); err != nil {
		t.Fatalf("pop3 login %s: %v", user, err)
	}
	n, _, err := c.Stat()
	if err != nil {
		t.Fatalf("pop3 stat: %v", err)
	}
	var msgs []string
	for i := 1; i <= n; i++ {
		r, err := c.Retr(i)
		if err != nil {
			t.Fatalf("pop3 retr %d: %v", i, err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("pop3 retr %d: %v", i, err)
		}
		msgs = append(msgs, string(b))
	}
	c.Quit()
	return msgs
}

// waitFor polls user's maildrop until a message containing marker
// arrives, and returns the messages containing it.
func (s *site) waitFor(t *testing.T, user, pass, marker string, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var found []string
		for _, m := range s.inbox(t, user, pass) {
			if strings.Contains(m, marker) {
				found = append(found, m)
			}
		}
		if len(found) > 0 || time.Now().After(deadline) {
			return found
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func message(from, to, subject, marker string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@test>\r\n\r\nHello, %s.\r\n",
		from, to, subject, time.Now().Format(time.RFC1123Z), marker, marker)
}

// header returns the unfolded value of every field name in msg's header.
func header(msg, name string) []string {
	var vals []string
	sc := bufio.NewScanner(strings.NewReader(msg))
	sc.Buffer(nil, 1<<20)
	var cur *string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && cur != nil {
			*cur += " " + strings.TrimSpace(line)
			continue
		}
		cur = nil
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			vals = append(vals, strings.TrimSpace(v))
			cur = &vals[len(vals)-1]
		}
	}
	return vals
}

const pass = "relay-test-password"

func TestRelay(t *testing.T) {
	w := newWorld(t)
	alice := w.a.addUser(t, "alice", pass)
	bob := w.b.addUser(t, "bob", pass)
	w.a.in.Start(true)
	w.b.in.Start(true)
	defer w.a.in.Stop()
	defer w.b.in.Stop()

	t.Run("a to b, signed and verified", func(t *testing.T) {
		marker := "m-ab-" + fmt.Sprint(time.Now().UnixNano())
		if err := w.a.submit(t, alice, pass, []string{bob}, message(alice, bob, "hello b", marker)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		got := w.b.waitFor(t, bob, pass, marker, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("bob has %d copies of the message, want 1\nA log:\n%s", len(got), w.a.in.LogTail())
		}
		checkAuthenticated(t, got[0], "mx.b.test", "a.test")
	})

	t.Run("b to a, signed and verified", func(t *testing.T) {
		marker := "m-ba-" + fmt.Sprint(time.Now().UnixNano())
		if err := w.b.submit(t, bob, pass, []string{alice}, message(bob, alice, "hello a", marker)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		got := w.a.waitFor(t, alice, pass, marker, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("alice has %d copies, want 1\nB log:\n%s", len(got), w.b.in.LogTail())
		}
		checkAuthenticated(t, got[0], "mx.a.test", "b.test")
	})

	t.Run("remote rejects: DSN to the sender", func(t *testing.T) {
		marker := "m-bounce-" + fmt.Sprint(time.Now().UnixNano())
		nobody := "nobody@b.test"
		if err := w.a.submit(t, alice, pass, []string{nobody}, message(alice, nobody, "to nobody", marker)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		got := w.a.waitFor(t, alice, pass, marker, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("alice has %d bounces, want 1\nA log:\n%s", len(got), w.a.in.LogTail())
		}
		dsn := got[0]
		if ct := header(dsn, "Content-Type"); len(ct) != 1 || !strings.Contains(strings.ToLower(ct[0]), "multipart/report") ||
			!strings.Contains(strings.ToLower(ct[0]), "delivery-status") {
			t.Errorf("bounce Content-Type = %q, want multipart/report; report-type=delivery-status", ct)
		}
		for _, want := range []string{"Final-Recipient: rfc822;" + nobody, "Action: failed", "Status: 5.1.1"} {
			if !strings.Contains(strings.ReplaceAll(dsn, "; ", ";"), strings.ReplaceAll(want, "; ", ";")) {
				t.Errorf("bounce lacks %q:\n%s", want, dsn)
			}
		}
		if rp := header(dsn, "Return-Path"); len(rp) != 1 || rp[0] != "<>" {
			t.Errorf("bounce Return-Path = %q, want <>", rp)
		}
	})

	t.Run("remote down: queued, retried, delivered once", func(t *testing.T) {
		w.b.in.Stop()
		marker := "m-retry-" + fmt.Sprint(time.Now().UnixNano())
		if err := w.a.submit(t, alice, pass, []string{bob}, message(alice, bob, "while down", marker)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		// The operator sees it pending, with a failed attempt.
		var out string
		for deadline := time.Now().Add(20 * time.Second); ; {
			out = w.a.in.MustRun("", "queue", "list")
			if failedAttempts(out, bob) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if failedAttempts(out, bob) == 0 {
			t.Errorf("queue list does not show a failed attempt for %s:\n%s", bob, out)
		}
		w.b.in.Start(true)
		got := w.b.waitFor(t, bob, pass, marker, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("bob has %d copies after the retry, want 1\nA log:\n%s", len(got), w.a.in.LogTail())
		}
	})

	t.Run("kill -9 with a queued message: delivered once after restart", func(t *testing.T) {
		w.b.in.Stop()
		marker := "m-kill-" + fmt.Sprint(time.Now().UnixNano())
		if err := w.a.submit(t, alice, pass, []string{bob}, message(alice, bob, "before the kill", marker)); err != nil {
			t.Fatalf("submit: %v", err)
		}
		w.a.in.Kill()
		w.b.in.Start(true)
		w.a.in.Start(true)
		got := w.b.waitFor(t, bob, pass, marker, 30*time.Second)
		if len(got) != 1 {
			t.Fatalf("bob has %d copies after the restart, want 1\nA log:\n%s", len(got), w.a.in.LogTail())
		}
		// Later attempts must not send it again.
		time.Sleep(3 * time.Second)
		if got := w.b.waitFor(t, bob, pass, marker, 0); len(got) != 1 {
			t.Fatalf("bob has %d copies, want exactly 1", len(got))
		}
		if out := w.a.in.MustRun("", "queue", "list"); strings.Contains(out, bob) {
			t.Errorf("queue still lists a message for %s after delivery:\n%s", bob, out)
		}
	})
}

// checkAuthenticated checks that msg was DKIM-signed by fromDomain and that
// the receiving server (authserv) found SPF, DKIM and DMARC passing.
func checkAuthenticated(t *testing.T, msg, authserv, fromDomain string) {
	t.Helper()
	if sigs := header(msg, "DKIM-Signature"); len(sigs) == 0 {
		t.Errorf("no DKIM-Signature:\n%s", msg)
	} else if !strings.Contains(sigs[0], "d="+fromDomain) {
		t.Errorf("DKIM-Signature not by %s: %s", fromDomain, sigs[0])
	}
	ars := header(msg, "Authentication-Results")
	if len(ars) != 1 {
		t.Fatalf("%d Authentication-Results fields, want 1:\n%s", len(ars), msg)
	}
	ar := ars[0]
	if !strings.HasPrefix(ar, authserv+";") {
		t.Errorf("Authentication-Results authserv-id: %q, want %s", ar, authserv)
	}
	for _, want := range []string{"spf=pass", "dkim=pass", "dmarc=pass"} {
		if !strings.Contains(ar, want) {
			t.Errorf("Authentication-Results lacks %s: %s", want, ar)
		}
	}
}

// failedAttempts reads the TRIES column of the pending recipient rcpt from
// `jodmai queue list` output (0 if it is not listed as pending).
func failedAttempts(list, rcpt string) int {
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		for i := 0; i+2 < len(f); i++ {
			if f[i] == rcpt && f[i+1] == "pending" {
				n := 0
				fmt.Sscan(f[i+2], &n)
				return n
			}
		}
	}
	return 0
}

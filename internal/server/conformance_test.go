package server_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv"
)

// TestConformanceTable: every capability a whole server advertises (SMTP
// EHLO on the MX and submission ports, in plaintext and under TLS; POP3
// CAPA before and after login; IMAP CAPABILITY before and after login) is
// listed in CONFORMANCE.md's "Advertised capabilities" table, with the RFC
// that defines it.
func TestConformanceTable(t *testing.T) {
	table := advertisedInTable(t)
	env := testenv.Start(t)
	const user, pass = "conf@example.org", "conformance-password-1"
	env.AddUser(t, user, pass)

	got := map[string][]string{}
	add := func(proto string, caps ...string) {
		for _, c := range caps {
			c = normalizeCap(c)
			if c != "" && !slices.Contains(got[proto], c) {
				got[proto] = append(got[proto], c)
			}
		}
	}
	for _, svc := range []string{"smtp", "submission", "submissions"} {
		add("smtp", ehlo(t, env, svc)...)
	}
	add("pop3", pop3Capa(t, env, "", "")...)
	add("pop3", pop3Capa(t, env, user, pass)...)
	add("imap", imapCaps(t, env, "", "")...)
	add("imap", imapCaps(t, env, user, pass)...)
	for proto, caps := range got {
		if len(caps) < 3 {
			t.Errorf("%s: only %v advertised: the probe is broken", proto, caps)
		}
		for _, c := range caps {
			if !table[proto][c] {
				t.Errorf("%s advertises %s, which CONFORMANCE.md's table does not list", proto, c)
			}
		}
	}
}

// normalizeCap drops a value that varies (APPENDLIMIT=n, SIZE n).
func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if k, v, ok := strings.Cut(c, "="); ok && strings.Trim(v, "0123456789") == "" {
		return k + "="
	}
	return c
}

var (
	tableRow = regexp.MustCompile(`^\|\s*(smtp|pop3|imap)\s*\|([^|]*)\|`)
	quoted   = regexp.MustCompile("`([^`]+)`")
)

// advertisedInTable reads the capability table: rows "| proto | `CAP` | ...".
func advertisedInTable(t *testing.T) map[string]map[string]bool {
	b, err := os.ReadFile(filepath.Join("..", "..", "CONFORMANCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Advertised capabilities")
	if !ok {
		t.Fatal(`CONFORMANCE.md has no "## Advertised capabilities" section`)
	}
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if m := tableRow.FindStringSubmatch(line); m != nil {
			if out[m[1]] == nil {
				out[m[1]] = map[string]bool{}
			}
			for _, q := range quoted.FindAllStringSubmatch(m[2], -1) {
				out[m[1]][normalizeCap(q[1])] = true
			}
		}
	}
	return out
}

func dial(t *testing.T, env *testenv.Env, svc string, implicitTLS bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	var c net.Conn
	var err error
	if implicitTLS {
		c, err = tls.Dial("tcp", env.Addr(svc), env.ClientTLS())
	} else {
		c, err = net.Dial("tcp", env.Addr(svc))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

// smtpReply reads one (multi-line) reply and returns its lines' texts.
func smtpReply(t *testing.T, r *bufio.Reader) []string {
	var out []string
	for {
		l := readLine(t, r)
		if len(l) < 4 {
			t.Fatalf("bad SMTP reply line %q", l)
		}
		out = append(out, l[4:])
		if l[3] == ' ' {
			return out
		}
	}
}

// ehlo returns the EHLO keywords of svc, in plaintext and (where offered)
// after STARTTLS.
func ehlo(t *testing.T, env *testenv.Env, svc string) []string {
	c, r := dial(t, env, svc, svc == "submissions")
	smtpReply(t, r)
	say := func(s string) []string {
		c.Write([]byte(s + "\r\n"))
		return smtpReply(t, r)
	}
	words := func(lines []string) []string {
		var out []string
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			out = append(out, f[0])
			if f[0] == "AUTH" {
				for _, m := range f[1:] {
					out = append(out, "AUTH="+m)
				}
			}
		}
		return out
	}
	caps := words(say("EHLO client.example"))
	if slices.Contains(caps, "STARTTLS") {
		say("STARTTLS")
		tc := tls.Client(c, env.ClientTLS())
		r = bufio.NewReader(tc)
		c = tc
		caps = append(caps, words(say("EHLO client.example"))...)
	}
	return caps
}

func pop3Capa(t *testing.T, env *testenv.Env, user, pass string) []string {
	c, r := dial(t, env, "pop3", false)
	readLine(t, r)
	if user != "" {
		c.Write([]byte("USER " + user + "\r\nPASS " + pass + "\r\n"))
		readLine(t, r)
		if l := readLine(t, r); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 login: %q", l)
		}
	}
	c.Write([]byte("CAPA\r\n"))
	readLine(t, r)
	var out []string
	for {
		l := readLine(t, r)
		if l == "." {
			return out
		}
		f := strings.Fields(l)
		out = append(out, f[0])
		if f[0] == "SASL" {
			for _, m := range f[1:] {
				out = append(out, "SASL="+m)
			}
		}
	}
}

func imapCaps(t *testing.T, env *testenv.Env, user, pass string) []string {
	c, r := dial(t, env, "imap", false)
	readLine(t, r)
	if user != "" {
		c.Write([]byte("a LOGIN " + user + " " + pass + "\r\n"))
		if l := readLine(t, r); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("IMAP login: %q", l)
		}
	}
	c.Write([]byte("b CAPABILITY\r\n"))
	var out []string
	for {
		l := readLine(t, r)
		if rest, ok := strings.CutPrefix(l, "* CAPABILITY "); ok {
			out = append(out, strings.Fields(rest)...)
		}
		if strings.HasPrefix(l, "b ") {
			return out
		}
	}
}

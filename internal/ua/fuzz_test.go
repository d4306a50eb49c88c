package ua

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte("[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n"))
	f.Add([]byte("default = \"a\"\n[accounts.a]\nusername = \"u\"\npop3 = { server = \"127.0.0.1:1\", tls = \"none\" }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		accs, err := ParseAccounts(data, "fuzz")
		if err != nil {
			return
		}
		for _, a := range accs.Accounts {
			for _, s := range []*Server{a.SMTP, a.POP3, a.IMAP} {
				if s != nil && s.TLS == TLSNone {
					host, _, _ := net.SplitHostPort(s.Server)
					if !isLoopback(host) {
						t.Fatalf("tls none accepted for %q", host)
					}
				}
			}
		}
	})
}

// FuzzPOP3Multiline checks that dot-unstuffing inverts dot-stuffing.
func FuzzPOP3Multiline(f *testing.F) {
	f.Add([]byte("a\r\n.b\r\n..\r\n.\r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		// Only CRLF-terminated lines without bare CR/LF can round-trip.
		s := strings.ReplaceAll(strings.ReplaceAll(string(body), "\r", ""), "\n", "\r\n")
		if s != "" && !strings.HasSuffix(s, "\r\n") {
			s += "\r\n"
		}
		var stuffed bytes.Buffer
		for _, line := range strings.SplitAfter(s, "\r\n") {
			if strings.HasPrefix(line, ".") {
				stuffed.WriteByte('.')
			}
			stuffed.WriteString(line)
		}
		stuffed.WriteString(".\r\n")
		c := &POP3Client{r: bufioReader("+OK\r\n" + stuffed.String())}
		if _, err := c.status(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c.multiline())
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != s {
			t.Fatalf("got %q, want %q", got, s)
		}
	})
}

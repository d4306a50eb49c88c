package ua

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/jodmai/jodmai/internal/mailfile"
)

func TestParseAccountsStrict(t *testing.T) {
	good := `
default = "a"
[accounts.a]
username = "a@example.org"
password_env = "PW"
smtp = { server = "mail.example.org:587", tls = "starttls" }
[accounts.b]
username = "b@example.org"
maildir = "/tmp/b"
pop3 = { server = "127.0.0.1:110", tls = "none" }
imap = { server = "[::1]:143", tls = "none" }
`
	accs, err := ParseAccounts([]byte(good), "t")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := accs.Account(""); err != nil || a.Name != "a" || !strings.HasSuffix(a.Maildir, filepath.Join("Mail", "a")) {
		t.Fatalf("default account: %+v %v", a, err)
	}
	if b, err := accs.Account("b"); err != nil || b.Maildir != "/tmp/b" {
		t.Fatalf("b: %+v %v", b, err)
	}
	if _, err := accs.Account("c"); err == nil {
		t.Fatal("unknown account accepted")
	}
	bad := map[string]string{
		"unknown key":         "[accounts.a]\nusername = \"u\"\npasword = \"x\"\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n",
		"unknown server key":  "[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h:1\", tls = \"implicit\", x = 1 }\n",
		"password in file":    "[accounts.a]\nusername = \"u\"\npassword = \"secret\"\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n",
		"none on remote host": "[accounts.a]\nusername = \"u\"\nsmtp = { server = \"mail.example.org:25\", tls = \"none\" }\n",
		"bad tls":             "[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h:1\", tls = \"yes\" }\n",
		"missing tls":         "[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h:1\" }\n",
		"no port":             "[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h\", tls = \"implicit\" }\n",
		"no username":         "[accounts.a]\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n",
		"no server":           "[accounts.a]\nusername = \"u\"\n",
		"two sources":         "[accounts.a]\nusername = \"u\"\npassword_env = \"A\"\npassword_command = \"b\"\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n",
		"bad default":         "default = \"z\"\n[accounts.a]\nusername = \"u\"\nsmtp = { server = \"h:1\", tls = \"implicit\" }\n",
		"no accounts":         "",
		"syntax":              "[accounts.a\n",
	}
	for name, src := range bad {
		if _, err := ParseAccounts([]byte(src), "t"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Two accounts and no default: the name is needed.
	two := strings.Replace(good, `default = "a"`, "", 1)
	accs, err = ParseAccounts([]byte(two), "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accs.Account(""); err == nil {
		t.Fatal("ambiguous default accepted")
	}
}

func TestPasswordSources(t *testing.T) {
	t.Setenv("JODMAI_TEST_PW", "from env")
	a := &Account{Name: "a", PasswordEnv: "JODMAI_TEST_PW"}
	if pw, err := a.Password(t.Context(), nil); err != nil || pw != "from env" {
		t.Fatalf("env: %q %v", pw, err)
	}
	a = &Account{Name: "a", PasswordCommand: "printf 'from cmd\\nsecond line'"}
	if pw, err := a.Password(t.Context(), nil); err != nil || pw != "from cmd" {
		t.Fatalf("command: %q %v", pw, err)
	}
	a = &Account{Name: "a"}
	if _, err := a.Password(t.Context(), nil); err == nil {
		t.Fatal("no source and no terminal: no error")
	}
	if pw, _ := a.Password(t.Context(), func(string) (string, error) { return "typed", nil }); pw != "typed" {
		t.Fatalf("prompt: %q", pw)
	}
}

func TestComposeParsesBack(t *testing.T) {
	dir := t.TempDir()
	att := filepath.Join(dir, "pic.png")
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00binary\xff")
	os.WriteFile(att, png, 0o600)
	from, _ := ParseAddresses([]string{"Jürgen Müller <j@example.org>"})
	to, _ := ParseAddresses([]string{"a@example.org, Zoë <z@example.org>"})
	cc, _ := ParseAddresses([]string{"c@example.org"})
	body := "Grüße aus Köln\n.a dot line\n" + strings.Repeat("x", 100) + "\n"
	raw, err := Compose(Draft{From: from[0], To: to, Cc: cc, Subject: "Ünïcödé subject", Body: body, Attach: []string{att}, Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	// 7-bit on the wire, CRLF only, lines within 998.
	for i, c := range raw {
		if c >= 0x80 {
			t.Fatalf("8-bit byte at %d", i)
		}
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			t.Fatalf("bare LF at %d", i)
		}
	}
	r, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.Header.Subject(); s != "Ünïcödé subject" {
		t.Errorf("subject %q", s)
	}
	if l, _ := r.Header.AddressList("From"); len(l) != 1 || l[0].Name != "Jürgen Müller" {
		t.Errorf("from %v", l)
	}
	if l, _ := r.Header.AddressList("To"); len(l) != 2 || l[1].Name != "Zoë" {
		t.Errorf("to %v", l)
	}
	if id, _ := r.Header.MessageID(); !strings.HasSuffix(id, "@example.org") {
		t.Error("no Message-ID")
	}
	if d, _ := r.Header.Date(); !d.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("date %v", d)
	}
	var gotText string
	var gotAtt []byte
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		switch h := p.Header.(type) {
		case *mail.InlineHeader:
			ct, params, _ := h.ContentType()
			if ct != "text/plain" || params["charset"] != "utf-8" || h.Get("Content-Transfer-Encoding") != "quoted-printable" {
				t.Errorf("text part %s %v %s", ct, params, h.Get("Content-Transfer-Encoding"))
			}
			gotText = string(b)
		case *mail.AttachmentHeader:
			name, _ := h.Filename()
			ct, _, _ := h.ContentType()
			if name != "pic.png" || ct != "image/png" || h.Get("Content-Transfer-Encoding") != "base64" {
				t.Errorf("attachment %s %s", name, ct)
			}
			gotAtt = b
		}
	}
	if strings.ReplaceAll(gotText, "\r\n", "\n") != body {
		t.Errorf("text %q", gotText)
	}
	if !bytes.Equal(gotAtt, png) {
		t.Errorf("attachment %q", gotAtt)
	}

	// Plain ASCII: a single 7bit part.
	raw, err = Compose(Draft{From: from[0], To: to, Subject: "hi", Body: "hello\nworld"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Content-Transfer-Encoding: 7bit\r\n")) || !bytes.HasSuffix(raw, []byte("\r\n\r\nhello\r\nworld\r\n")) {
		t.Errorf("ascii message:\n%s", raw)
	}
	if mt, _, _ := mime.ParseMediaType("text/plain"); mt == "" {
		t.Fatal()
	}
}

func TestLedgerCrashPoints(t *testing.T) {
	dir := t.TempDir()
	md, err := mailfile.OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ledger")
	l, err := OpenLedger(path, md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Store("k1", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// Crash after the P record and the rename, before D: the file is there,
	// so the key counts as stored.
	tm, _ := md.WriteTmp(strings.NewReader("two"))
	appendFile(t, path, "P k2 "+tm.Name+"\n")
	if err := tm.Commit(); err != nil {
		t.Fatal(err)
	}
	// Crash after P, before the rename: not stored (the tmp file stays in
	// tmp/, invisible).
	tm3, _ := md.WriteTmp(strings.NewReader("three"))
	appendFile(t, path, "P k3 "+tm3.Name+"\n")
	// A torn line.
	appendFile(t, path, "D k")
	l, err = OpenLedger(path, md)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !l.Has("k1") || !l.Has("k2") || l.Has("k3") || l.Has("k") {
		t.Fatalf("keys %v", l.Keys())
	}
	ents, _ := md.List()
	if len(ents) != 2 {
		t.Fatalf("%d messages", len(ents))
	}
	// A message moved to cur/ with flags still counts.
	os.Rename(filepath.Join(dir, "new", tm.Name), filepath.Join(dir, "cur", tm.Name+":2,S"))
	if !md.Has(tm.Name) {
		t.Fatal("cur/ message not found")
	}
	if err := l.Retain(func(k string) bool { return k == "k2" }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "D k2 "+tm.Name+"\n" {
		t.Fatalf("compacted ledger %q", b)
	}
}

func appendFile(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func TestDotReader(t *testing.T) {
	in := "+OK\r\nline\r\n..dot\r\nbare lf\n.\r\nnext"
	c := &POP3Client{}
	c.r = bufioReader(in)
	if _, err := c.status(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c.multiline())
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "line\r\n.dot\r\nbare lf\r\n" {
		t.Fatalf("%q", b)
	}
	rest, _ := io.ReadAll(c.r)
	if string(rest) != "next" {
		t.Fatalf("rest %q", rest)
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

func TestLockMaildir(t *testing.T) {
	md, err := mailfile.OpenMaildir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lockMaildir(md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockMaildir(md); err != ErrLocked {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	unlock, err = lockMaildir(md)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// Package interop drives a real jodmai with independent, widely used mail
// clients (Python's smtplib and poplib here) exactly as a user would: the
// seed's path of submit over SMTP, then download and delete over POP3.
package interop

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv"
)

func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; .ci/run installs it")
	}
	return p
}

// runPython runs script with args and returns its stdout; the test fails
// on a non-zero exit.
func runPython(t *testing.T, script string, args ...string) string {
	t.Helper()
	py := python(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "script.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{path}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	return out.String()
}

func hostPort(t *testing.T, addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

const sendScript = `
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, mode, user, pw, rcpt, subject, cafile = sys.argv[1:9]
msg = EmailMessage()
msg["From"] = user
msg["To"] = rcpt
msg["Subject"] = subject
msg.set_content("Hello from smtplib.\n.leading dot line\nสวัสดี\n")
ctx = ssl.create_default_context(cafile=cafile)
if mode == "implicit":
    s = smtplib.SMTP_SSL(host, int(port), context=ctx)
else:
    s = smtplib.SMTP(host, int(port))
    if mode == "starttls":
        s.starttls(context=ctx)
s.login(user, pw)
refused = s.send_message(msg)
print("refused", len(refused))
s.quit()
`

const popScript = `
import poplib, ssl, sys
host, port, mode, user, pw = sys.argv[1:6]
if mode == "apop":
    p = poplib.POP3(host, int(port))
    p.apop(user, pw)
else:
    p = poplib.POP3(host, int(port))
    p.user(user)
    p.pass_(pw)
count, size = p.stat()
print("stat", count, size)
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    body = b"\r\n".join(lines) + b"\r\n"
    subj = [l for l in lines if l.startswith(b"Subject:")]
    print("msg", i, octets, subj[0].decode() if subj else "")
    assert b".leading dot line" in body, body
    p.dele(i)
print(p.quit().decode())
`

func TestPythonSubmitThenPOP3DownloadAndDelete(t *testing.T) {
	env := testenv.Start(t)
	env.AddUser(t, "alice@example.org", "alice-password")
	env.AddUser(t, "bob@example.org", "bob-password-1")
	if err := env.Users.SetAPOPSecret(context.Background(), "bob@example.org", "bob-apop-secret"); err != nil {
		t.Fatal(err)
	}
	cafile := filepath.Join(env.DataDir, "tls", "cert.pem")

	for _, c := range []struct{ key, mode, subject string }{
		{"submission", "plain", "over loopback"},
		{"submission", "starttls", "over starttls"},
		{"submissions", "implicit", "over implicit tls"},
	} {
		h, p := hostPort(t, env.Addr(c.key))
		out := runPython(t, sendScript, h, p, c.mode, "alice@example.org", "alice-password", "bob@example.org", c.subject, cafile)
		if !strings.Contains(out, "refused 0") {
			t.Fatalf("%s: smtplib output %q", c.mode, out)
		}
	}
	if got := len(env.Inbox(t, "bob@example.org")); got != 3 {
		t.Fatalf("bob's INBOX has %d messages after 3 submissions, want 3", got)
	}

	// USER/PASS: download all, delete on QUIT.
	h, p := hostPort(t, env.Addr("pop3"))
	out := runPython(t, popScript, h, p, "userpass", "bob@example.org", "bob-password-1")
	if !strings.Contains(out, "stat 3 ") || strings.Count(out, "\nmsg ") != 3 {
		t.Fatalf("poplib output:\n%s", out)
	}
	for _, s := range []string{"Subject: over loopback", "Subject: over starttls", "Subject: over implicit tls"} {
		if !strings.Contains(out, s) {
			t.Errorf("poplib did not see %q:\n%s", s, out)
		}
	}
	if got := len(env.Inbox(t, "bob@example.org")); got != 0 {
		t.Fatalf("after POP3 QUIT, bob's INBOX has %d messages, want 0", got)
	}

	// APOP: a new message, fetched with APOP and deleted.
	h2, p2 := hostPort(t, env.Addr("submission"))
	runPython(t, sendScript, h2, p2, "plain", "alice@example.org", "alice-password", "bob@example.org", "for apop", cafile)
	out = runPython(t, popScript, h, p, "apop", "bob@example.org", "bob-apop-secret")
	if !strings.Contains(out, "stat 1 ") || !strings.Contains(out, "Subject: for apop") {
		t.Fatalf("poplib APOP output:\n%s", out)
	}
	if got := len(env.Inbox(t, "bob@example.org")); got != 0 {
		t.Fatalf("after APOP session QUIT, bob's INBOX has %d messages, want 0", got)
	}
}

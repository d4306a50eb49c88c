package imapd_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// interopPythonScript drives the server with Python's imaplib: STARTTLS,
// LOGIN, SELECT, NOOP, EXAMINE, FETCH, LOGOUT on the imap port, and
// IMAPS. It prints one line per step for the test to check.
const interopPythonScript = `
import imaplib, ssl, sys
host, port, sport, user, password, cafile = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the certificate names mail.example.org, we dial 127.0.0.1

m = imaplib.IMAP4(host, int(port))
print("CAPS", " ".join(m.capabilities))
m.starttls(ssl_context=ctx)
typ, _ = m.login(user, password)
print("LOGIN", typ)
typ, data = m.select("INBOX")
print("SELECT", typ, data[0].decode())
typ, _ = m.noop()
print("NOOP", typ)
typ, data = m.select("INBOX", readonly=True)
print("EXAMINE", typ, data[0].decode())
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
if typ == "OK":
    print("FETCH", typ, data[0][1].decode().strip())
else:
    print("FETCH", typ, data[0].decode())
typ, _ = m.logout()
print("LOGOUT", typ)

s = imaplib.IMAP4_SSL(host, int(sport), ssl_context=ctx)
typ, _ = s.login(user, password)
typ, data = s.select("Sent")
print("IMAPS", typ, data[0].decode())
s.logout()
`

func TestInteropPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed; skipping the imaplib smoke test")
	}
	env := interopEnv(t)
	env.Deliver(t, interopUser, []byte(sessMessage("from python")))
	env.Deliver(t, interopUser, []byte(sessMessage("second")))
	_, port, _ := strings.Cut(env.Addr("imap"), "127.0.0.1:")
	_, sport, _ := strings.Cut(env.Addr("imaps"), "127.0.0.1:")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", interopPythonScript, "127.0.0.1", port, sport, interopUser, sessPass, filepath.Join(env.DataDir, "tls", "cert.pem"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python imaplib: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("imaplib:\n%s", out)
	want := []string{"CAPS ", "LOGIN OK", "SELECT OK 2", "NOOP OK", "EXAMINE OK 2", "FETCH ", "LOGOUT BYE", "IMAPS OK 0"}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[0], "IMAP4REV1") || !strings.Contains(lines[0], "STARTTLS") {
		t.Errorf("capabilities: %q", lines[0])
	}
	if fetch := lines[5]; fetch != "FETCH OK Subject: from python" {
		t.Errorf("FETCH: %q", fetch)
	}
}

package pop3d_test

import (
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pythonClient downloads and deletes mail with Python's poplib, an
// independent client: the seed's own use case.
const pythonClient = `
import poplib, ssl, sys
host, port, user, password, secret, cafile, mode = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
if mode == "pop3s":
    p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=10)
else:
    p = poplib.POP3(host, int(port), timeout=10)
caps = p.capa()
assert "UIDL" in caps and "TOP" in caps and "PIPELINING" in caps, caps
if mode == "stls":
    assert "STLS" in caps, caps
    p.stls(context=ctx)
    assert "STLS" not in p.capa()
if mode == "apop":
    p.apop(user, secret)
else:
    p.user(user)
    p.pass_(password)
count, size = p.stat()
print("stat", count, size)
resp, listing, _ = p.list()
print("list", b",".join(listing).decode())
resp, uidls, _ = p.uidl()
print("uidl", len(uidls))
for i in range(1, count + 1):
    resp, lines, octets = p.retr(i)
    body = b"\r\n".join(lines) + b"\r\n"
    assert len(body) == octets, (len(body), octets)
    print("retr", i, octets, body.decode().replace("\r\n", "|"))
    resp, lines, _ = p.top(i, 0)
    print("top", i, len(lines))
    p.dele(i)
print("quit", p.quit().decode())
`

func TestPythonPoplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	for _, mode := range []string{"user", "apop", "stls", "pop3s"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, harnessOptions{implicitTLS: mode == "pop3s"})
			h.addUser(alice, alicePass)
			if err := h.users.SetAPOPSecret(context.Background(), alice, "apop-secret-1"); err != nil {
				t.Fatal(err)
			}
			h.deliver(alice, msg1)
			h.deliver(alice, msg("dots", ".leading dot\r\n..two\r\n.\r\nlast\r\n"))
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.certDER}), 0o600); err != nil {
				t.Fatal(err)
			}
			host, port, _ := strings.Cut(h.addr, ":")
			out, err := exec.Command(python, "-c", pythonClient, host, port, alice, alicePass, "apop-secret-1", ca, mode).CombinedOutput()
			if err != nil {
				t.Fatalf("poplib: %v\n%s", err, out)
			}
			got := string(out)
			for _, want := range []string{
				"stat 2 ",
				"uidl 2",
				"retr 2 ", "|.leading dot|..two|.|last|",
				"top 1 4", "top 2 4",
				"quit +OK " + testHost + " POP3 server signing off (2 messages deleted)",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("poplib output lacks %q:\n%s", want, got)
				}
			}
			if _, _, msgs := h.inbox(alice); len(msgs) != 0 {
				t.Errorf("%d messages left after poplib's QUIT", len(msgs))
			}
		})
	}
}

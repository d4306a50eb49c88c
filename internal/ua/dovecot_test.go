package ua

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// dovecot starts a Dovecot (when installed) on loopback with one user,
// zoe / secret99, and a Maildir for her; it returns the account and the
// server-side Maildir path. It proves the client is not tuned to jodmai.
func dovecot(t *testing.T) (*Account, string) {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/dovecot"); err != nil {
			t.Skip("dovecot not installed")
		}
		bin = "/usr/sbin/dovecot"
	}
	for _, svc := range []string{"imap", "pop3"} {
		// dovecot-core alone has neither (Debian's dovecot-imapd and
		// dovecot-pop3d bring them).
		if _, err := os.Stat("/usr/lib/dovecot/" + svc); err != nil {
			t.Skipf("dovecot's %s service is not installed (Debian: dovecot-%sd)", svc, svc)
		}
	}
	if os.Getuid() != 0 {
		t.Skip("the Dovecot interop test runs as root (mail as nobody)")
	}
	dir, err := os.MkdirTemp("", "jodmai-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	for _, d := range []string{"run", "state", "mail"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.Chmod(filepath.Join(dir, "mail"), 0o777)
	os.WriteFile(filepath.Join(dir, "passwd"), []byte("zoe:{PLAIN}secret99::::::\n"), 0o644)
	freePort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	imapPort, pop3Port := freePort(), freePort()
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/log
instance_name = jodmai-test-%[4]d
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:%[1]s/mail/%%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/mail/%%u
}
service imap-login {
  chroot =
  inet_listener imap {
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  chroot =
  inet_listener pop3 {
    port = %[3]d
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
pop3_uidl_format = %%08Xu%%08Xv
`, dir, imapPort, pop3Port, os.Getpid())
	cfg := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(cfg, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-F", "-c", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(pop3Port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("dovecot did not start: %s", log)
		}
	}
	acc := &Account{
		Name: "zoe", Username: "zoe", Maildir: filepath.Join(t.TempDir(), "Mail"),
		POP3: &Server{Server: "127.0.0.1:" + strconv.Itoa(pop3Port), TLS: TLSNone},
		IMAP: &Server{Server: "127.0.0.1:" + strconv.Itoa(imapPort), TLS: TLSNone},
	}
	mbox := filepath.Join(dir, "mail", "zoe")
	for _, d := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(mbox, d), 0o777)
		os.Chown(filepath.Join(mbox, d), 65534, 65534)
	}
	os.Chown(mbox, 65534, 65534)
	return acc, mbox
}

func dovecotDeliver(t *testing.T, mbox string, msgs ...string) []string {
	for i, m := range msgs {
		p := filepath.Join(mbox, "new", fmt.Sprintf("%d.%d.test", time.Now().UnixNano(), i))
		if err := os.WriteFile(p, []byte(m), 0o666); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, 65534, 65534)
	}
	out := append([]string(nil), msgs...)
	sort.Strings(out)
	return out
}

func TestDovecotPOP3(t *testing.T) {
	acc, mbox := dovecot(t)
	want := dovecotDeliver(t, mbox, "Subject: a\r\n\r\n.dot\r\n", "Subject: b\r\n\r\nbody b\r\n", "Subject: c\r\n\r\n..\r\nc\r\n")
	ctx := context.Background()
	if res, err := acc.FetchPOP3(ctx, "secret99", FetchOptions{Keep: true, AfterStore: func(n int) error {
		if n == 2 {
			return errCrash
		}
		return nil
	}}); err == nil {
		t.Fatalf("crash not reported: %v", res)
	}
	if res, err := acc.FetchPOP3(ctx, "secret99", FetchOptions{Keep: true}); err != nil || res.Fetched != 1 {
		t.Fatalf("keep fetch: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	if res, err := acc.FetchPOP3(ctx, "secret99", FetchOptions{}); err != nil || res.Fetched != 0 || res.Deleted != 3 {
		t.Fatalf("delete fetch: %v %v", res, err)
	}
	ents, _ := os.ReadDir(filepath.Join(mbox, "cur"))
	ents2, _ := os.ReadDir(filepath.Join(mbox, "new"))
	if len(ents)+len(ents2) != 0 {
		t.Fatalf("dovecot still holds %d messages", len(ents)+len(ents2))
	}
}

func TestDovecotIMAP(t *testing.T) {
	acc, mbox := dovecot(t)
	want := dovecotDeliver(t, mbox, "Subject: a\r\n\r\nA\r\n", "Subject: b\r\n\r\nB\r\n")
	ctx := context.Background()
	if res, err := acc.FetchIMAP(ctx, "secret99", FetchOptions{}); err != nil || res.Fetched != 2 {
		t.Fatalf("imap fetch: %v %v", res, err)
	}
	equalSets(t, localBodies(t, acc.Maildir), want)
	if res, err := acc.SyncIMAP(ctx, "secret99"); err != nil || res.Fetched != 0 {
		t.Fatalf("sync: %v %v", res, err)
	}
	if res, err := acc.FetchIMAP(ctx, "secret99", FetchOptions{Expunge: true}); err != nil || res.Fetched != 0 || res.Deleted != 2 {
		t.Fatalf("expunge: %v %v", res, err)
	}
}

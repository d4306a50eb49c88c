// Package dovecottest starts a private Dovecot (Debian's dovecot-imapd and
// dovecot-pop3d) on loopback for tests that use it as a reference server
// or as the server mail is moved from. Tests skip, saying why, where
// Dovecot is not installed or they do not run as root (Dovecot keeps the
// mail as nobody).
package dovecottest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Options configure the server.
type Options struct {
	// Passwd is the passwd-file ("user:{SCHEME}hash::::::" lines).
	Passwd string
	// MailPath is the Maildir of a user below Dir/mail, in Dovecot's
	// variables ("%u", "%d/%n").
	MailPath string
	// AuthMechanisms is auth_mechanisms ("plain" if empty).
	AuthMechanisms string
	// Extra is more configuration, appended.
	Extra string
}

// Server is a running private Dovecot.
type Server struct {
	// Dir holds its configuration, state, log and mail (Dir/mail).
	Dir string
	// IMAP and POP3 are the plaintext listeners' "127.0.0.1:port".
	IMAP, POP3 string
}

// Start starts a Dovecot with opts and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if p, err := exec.LookPath("dovecot"); err == nil {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("dovecot not installed (Debian: dovecot-imapd, dovecot-pop3d)")
	}
	for _, svc := range []string{"imap", "pop3"} {
		// dovecot-core alone has neither.
		if _, err := os.Stat("/usr/lib/dovecot/" + svc); err != nil {
			t.Skipf("dovecot's %s service is not installed (Debian: dovecot-%sd)", svc, svc)
		}
	}
	if os.Getuid() != 0 {
		t.Skip("the Dovecot tests run as root (Dovecot keeps mail as nobody)")
	}
	if opts.MailPath == "" {
		opts.MailPath = "%u"
	}
	if opts.AuthMechanisms == "" {
		opts.AuthMechanisms = "plain"
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
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(opts.Passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	imapPort, pop3Port := freePort(t), freePort(t)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/log
instance_name = jodmai-test-%[4]d-%[2]d
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = %[6]s
mail_location = maildir:%[1]s/mail/%[5]s
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = %[1]s/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/mail/%[5]s
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
%[7]s
`, dir, imapPort, pop3Port, os.Getpid(), opts.MailPath, opts.AuthMechanisms, opts.Extra)
	cfg := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	s := &Server{Dir: dir, IMAP: "127.0.0.1:" + strconv.Itoa(imapPort), POP3: "127.0.0.1:" + strconv.Itoa(pop3Port)}
	for _, addr := range []string{s.IMAP, s.POP3} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(dir, "log"))
				t.Fatalf("dovecot did not start: %s", log)
			}
		}
	}
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

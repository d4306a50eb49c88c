package ua

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv/dovecottest"
)

// dovecot starts a Dovecot (when installed) on loopback with one user,
// zoe / secret99, and a Maildir for her; it returns the account and the
// server-side Maildir path. It proves the client is not tuned to jodmai.
func dovecot(t *testing.T) (*Account, string) {
	t.Helper()
	d := dovecottest.Start(t, dovecottest.Options{
		Passwd: "zoe:{PLAIN}secret99::::::\n",
		Extra:  "pop3_uidl_format = %08Xu%08Xv",
	})
	dir := d.Dir
	acc := &Account{
		Name: "zoe", Username: "zoe", Maildir: filepath.Join(t.TempDir(), "Mail"),
		POP3: &Server{Server: d.POP3, TLS: TLSNone},
		IMAP: &Server{Server: d.IMAP, TLS: TLSNone},
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

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/store"
)

// deliverTo files a small message for an account, through the store, as a
// body file (the damage below removes one; small bodies from
// store.NewBody are kept in the index).
func deliverTo(t *testing.T, dir string, accountID int64, subject string) {
	t.Helper()
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := blob.Create(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: " + subject + "\r\nMessage-ID: <" + subject + "@example.org>\r\n\r\nbody\r\n"))
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Remove()
	if err := st.Deliver(ctx, tm, []store.Target{{AccountID: accountID}}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	var ids []int64
	for _, a := range []string{"amy@example.org", "bob@example.org"} {
		jodmai(t, dir, "password1234\n", "user", "add", "--password-stdin", a).ok(t)
		acc, err := users(t, dir).Account(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, acc.ID)
	}
	deliverTo(t, dir, ids[0], "one")
	deliverTo(t, dir, ids[0], "two")
	deliverTo(t, dir, ids[1], "three")

	r := jodmai(t, dir, "", "check").ok(t)
	for _, w := range []string{"server stopped", "checked 2 account stores", "3 messages", "store consistent"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("clean check does not say %q: %q", w, r.stdout)
		}
	}

	// Damage: an orphan body, a lost body, and bob deleted from the
	// directory without his mail (a crash inside 'user del').
	amy := filepath.Join(dir, "accounts", strconv.FormatInt(ids[0], 10))
	orphan := filepath.Join(amy, "msg", "zz", "zzzzzzzzzzzzzzzzzzzz")
	os.MkdirAll(filepath.Dir(orphan), 0o700)
	os.WriteFile(orphan, []byte("x"), 0o600)
	var lostBody string
	filepath.WalkDir(filepath.Join(amy, "msg"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != orphan && lostBody == "" {
			lostBody = p
		}
		return nil
	})
	if err := os.Remove(lostBody); err != nil {
		t.Fatal(err)
	}
	if _, err := users(t, dir).DelAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}

	r = jodmai(t, dir, "", "check")
	r.fails(t, 1, "3 problems found")
	for _, w := range []string{"orphan-body account", "missing-body account", "unknown-account account " + strconv.FormatInt(ids[1], 10), "3 problems (run 'jodmai check --repair'"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check does not say %q: %q", w, r.stdout)
		}
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Error("check without --repair removed a file")
	}

	// The server holds the lock: --repair refuses, a plain check runs.
	lock, err := os.OpenFile(filepath.Join(dir, "jodmai.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	jodmai(t, dir, "", "check", "--repair").fails(t, 1, "server is running", "jodmai.lock", "stop it")
	r = jodmai(t, dir, "", "check")
	if r.code != 1 || !strings.Contains(r.stdout, "server running") || !strings.Contains(r.stdout, "younger than") {
		// The planted orphan is new: possibly a delivery in flight.
		t.Errorf("live check: exit %d, %q", r.code, r.stdout)
	}
	if strings.Contains(r.stdout, "orphan-body") {
		t.Errorf("live check called a fresh file an orphan: %q", r.stdout)
	}
	lock.Close()

	r = jodmai(t, dir, "", "check", "--repair").ok(t)
	for _, w := range []string{"repairing", "MESSAGE LOST", "3 problems: 3 repaired, 0 remain", "LOST: 1 messages"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("repair does not say %q: %q", w, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "LOST: 1 messages") {
		t.Errorf("repair did not report the loss on stderr: %q", r.stderr)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Error("repair left the orphan")
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts", strconv.FormatInt(ids[1], 10))); !os.IsNotExist(err) {
		t.Error("repair left the deleted account's directory")
	}
	r = jodmai(t, dir, "", "check").ok(t)
	if !strings.Contains(r.stdout, "1 messages") || !strings.Contains(r.stdout, "store consistent") {
		t.Errorf("check after repair: %q", r.stdout)
	}

	// Not a data directory.
	jodmai(t, filepath.Join(dir, "nope"), "", "check").fails(t, 1, "no data directory")
	jodmai(t, t.TempDir(), "", "check").fails(t, 1, "not a jodmai data directory")
	jodmai(t, dir, "", "check", "extra").fails(t, 2, "too many arguments")
}

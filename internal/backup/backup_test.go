package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/backup"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/testenv"
)

type user struct{ addr, pass string }

var users = []user{
	{"alice@example.org", "alice-secret-pw-1"},
	{"bob@example.org", "bob-secret-pw-22"},
	{"carol@example.org", "carol-secret-pw-3"},
}

func msg(to, subject string) []byte {
	return []byte(fmt.Sprintf("From: sender@example.net\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n\r\nbody of %s\r\n", to, subject, subject, subject))
}

// mailboxState is what must survive a backup and restore.
type mailboxState struct {
	mb   store.Mailbox
	msgs map[uint32]testenv.Message
}

func state(t *testing.T, env *testenv.Env, addr string) map[string]mailboxState {
	t.Helper()
	ctx := context.Background()
	acc, err := env.Users.Account(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	a, err := env.Store.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]mailboxState{}
	for _, mb := range mbs {
		s := mailboxState{mb: mb, msgs: map[uint32]testenv.Message{}}
		for _, m := range env.Mailbox(t, addr, mb.Name) {
			s.msgs[m.UID] = m
		}
		out[mb.Name] = s
	}
	return out
}

// smtpDeliver sends one message over SMTP (no TLS) and reports whether the
// server acknowledged it.
func smtpDeliver(addr, to string, body []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		return err
	}
	if err := c.Mail("sender@example.net"); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil { // the 250 after DATA
		return err
	}
	return c.Quit()
}

func TestBackupRestoreOnline(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	for _, u := range users {
		env.AddUser(t, u.addr, u.pass)
		for i := range 5 {
			env.Deliver(t, u.addr, msg(u.addr, fmt.Sprintf("%s-pre-%d", u.addr, i)))
		}
	}
	// IMAP-ish changes on alice: flags, keywords, a second mailbox with a
	// copy, and an expunge that leaves a UID gap.
	acc, _ := env.Users.Account(ctx, users[0].addr)
	a, err := env.Store.Account(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetFlags(ctx, inbox.ID, []uint32{1, 2}, store.FlagUpdate{Op: store.FlagsAdd, Flags: store.FlagSeen | store.FlagFlagged, Keywords: []string{"$Label1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateMailbox(ctx, "Projects", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, inbox.ID, []uint32{3, 5}, "Projects", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{4}); err != nil {
		t.Fatal(err)
	}

	// Deliveries keep running over SMTP while the backup is taken.
	var (
		mu     sync.Mutex
		acked  = map[string]time.Time{} // subject -> when the 250 came
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		sent   int
		failed int
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u := users[1+w]
				subj := fmt.Sprintf("%s-live-%d", u.addr, i)
				err := smtpDeliver(env.Addr("smtp"), u.addr, msg(u.addr, subj))
				mu.Lock()
				if err == nil {
					acked[subj] = time.Now()
					sent++
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	// Let some live deliveries land first.
	for {
		mu.Lock()
		n := sent
		mu.Unlock()
		if n >= 10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	mu.Lock()
	before := map[string]bool{}
	for s := range acked {
		before[s] = true
	}
	mu.Unlock()
	pre := map[string]map[string]mailboxState{}
	for _, u := range users {
		pre[u.addr] = state(t, env, u.addr)
	}
	dest := filepath.Join(t.TempDir(), "backups", "b1")
	var progress bytes.Buffer
	m, err := backup.Backup(ctx, env.DataDir, dest, backup.Options{Progress: &progress})
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, progress.String())
	}
	// Keep delivering a little after the backup, then stop.
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("live deliveries: %d acknowledged (%d before the backup), %d failed; backup: %d messages, %d bodies, %d bytes\n%s",
		sent, len(before), failed, m.Messages, m.Bodies, m.Bytes, progress.String())
	if len(m.Accounts) != len(users) {
		t.Fatalf("backup has %d accounts, want %d", len(m.Accounts), len(users))
	}

	// Restore refuses the live data dir (locked) and a non-empty one.
	if _, err := backup.Restore(ctx, dest, env.DataDir, backup.RestoreOptions{Force: true}); !errors.Is(err, backup.ErrInUse) {
		t.Fatalf("restore into the running server's dir: %v, want ErrInUse", err)
	}
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "junk"), []byte("x"), 0o600)
	if _, err := backup.Restore(ctx, dest, nonEmpty, backup.RestoreOptions{}); !errors.Is(err, backup.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v, want ErrNotEmpty", err)
	}
	if _, err := backup.Restore(ctx, dest, nonEmpty, backup.RestoreOptions{Force: true}); err != nil {
		t.Fatalf("restore --force: %v", err)
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if _, err := backup.Restore(ctx, dest, restored, backup.RestoreOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	env.Stop()
	env2 := testenv.StartWith(t, testenv.Options{DataDir: restored})

	for _, u := range users {
		if _, err := env2.Users.Authenticate(ctx, u.addr, u.pass); err != nil {
			t.Errorf("%s cannot log in after restore: %v", u.addr, err)
		}
		post := state(t, env2, u.addr)
		for name, p := range pre[u.addr] {
			q, ok := post[name]
			if !ok {
				t.Errorf("%s: mailbox %s missing after restore", u.addr, name)
				continue
			}
			if q.mb.UIDValidity != p.mb.UIDValidity {
				t.Errorf("%s %s: UIDVALIDITY %d, want %d", u.addr, name, q.mb.UIDValidity, p.mb.UIDValidity)
			}
			if q.mb.UIDNext < p.mb.UIDNext {
				t.Errorf("%s %s: UIDNEXT %d, want >= %d", u.addr, name, q.mb.UIDNext, p.mb.UIDNext)
			}
			if u.addr == users[0].addr && q.mb.UIDNext != p.mb.UIDNext {
				// No deliveries to alice during the backup: exactly equal.
				t.Errorf("%s %s: UIDNEXT %d, want %d", u.addr, name, q.mb.UIDNext, p.mb.UIDNext)
			}
			for uid, pm := range p.msgs {
				qm, ok := q.msgs[uid]
				if !ok {
					t.Errorf("%s %s: UID %d missing after restore", u.addr, name, uid)
					continue
				}
				if !bytes.Equal(qm.Body, pm.Body) {
					t.Errorf("%s %s UID %d: body differs", u.addr, name, uid)
				}
				if qm.Flags != pm.Flags || !slices.Equal(qm.Keywords, pm.Keywords) {
					t.Errorf("%s %s UID %d: flags %v %v, want %v %v", u.addr, name, uid, qm.Flags, qm.Keywords, pm.Flags, pm.Keywords)
				}
			}
		}
		if u.addr == users[0].addr {
			if _, ok := post["INBOX"].msgs[4]; ok {
				t.Errorf("expunged UID 4 is back after restore")
			}
			if len(post["Projects"].msgs) != 2 {
				t.Errorf("Projects has %d messages after restore, want 2", len(post["Projects"].msgs))
			}
		}
	}
	// Every live message acknowledged before the backup started is there.
	subjects := map[string]bool{}
	for _, u := range users {
		for _, m := range env2.Inbox(t, u.addr) {
			for _, line := range strings.Split(string(m.Body), "\r\n") {
				if s, ok := strings.CutPrefix(line, "Subject: "); ok {
					subjects[s] = true
				}
			}
		}
	}
	for s := range before {
		if !subjects[s] {
			t.Errorf("message %q acknowledged before the backup is missing after restore", s)
		}
	}

	// A client logs in over POP3 on the restored server.
	pop3Login(t, env2.Addr("pop3"), users[1])
}

func pop3Login(t *testing.T, addr string, u user) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(cmd string) string {
		if cmd != "" {
			fmt.Fprintf(c, "%s\r\n", cmd)
		}
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("pop3 %q: %q %v", strings.Fields(cmd + " x")[0], line, err)
		}
		return line
	}
	expect("")
	expect("USER " + u.addr)
	expect("PASS " + u.pass)
	t.Logf("pop3 after restore: %s", strings.TrimSpace(expect("STAT")))
	expect("QUIT")
}

func TestRestoreRefusesIncomplete(t *testing.T) {
	dir := t.TempDir()
	if _, err := backup.Restore(context.Background(), dir, t.TempDir(), backup.RestoreOptions{}); err == nil {
		t.Fatal("restore of a backup without manifest succeeded")
	}
}

func TestRestoreDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	env.AddUser(t, users[0].addr, users[0].pass)
	env.Deliver(t, users[0].addr, msg(users[0].addr, "one"))
	dest := filepath.Join(t.TempDir(), "b")
	if _, err := backup.Backup(ctx, env.DataDir, dest, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dest, "global.db"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("garbage"))
	f.Close()
	if _, err := backup.Restore(ctx, dest, t.TempDir(), backup.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Fatalf("restore of a corrupted backup: %v, want a manifest mismatch", err)
	}
}

// A body removed between the index snapshot and the body copy (an expunge
// racing the backup) leaves the message out as an expunge: recorded for
// QRESYNC, HIGHESTMODSEQ up, and the restored store consistent.
func TestBackupBodyVanished(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	u := users[0]
	env.AddUser(t, u.addr, u.pass)
	env.Deliver(t, u.addr, msg(u.addr, "kept"))
	// Larger than the store keeps inline: a body file that can vanish.
	big := append(msg(u.addr, "gone"), strings.Repeat("padding line of a large message\r\n", store.InlineMax/32)...)
	env.Deliver(t, u.addr, big)
	before := state(t, env, u.addr)["INBOX"]
	gone := before.msgs[2]
	acc, _ := env.Users.Account(ctx, u.addr)
	env.Stop()
	// Simulate the race: the body disappears after the snapshot would
	// have been taken (index still references it).
	bodyPath := filepath.Join(env.DataDir, "accounts", fmt.Sprint(acc.ID), "msg", gone.Blob[:2], gone.Blob)
	if err := os.Remove(bodyPath); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "b")
	m, err := backup.Backup(ctx, env.DataDir, dest, backup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Accounts[0].Vanished != 1 || m.Messages != 1 {
		t.Fatalf("manifest: %+v, want 1 message and 1 vanished", m.Accounts[0])
	}
	restored := filepath.Join(t.TempDir(), "r")
	if _, err := backup.Restore(ctx, dest, restored, backup.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	env2 := testenv.StartWith(t, testenv.Options{DataDir: restored})
	after := state(t, env2, u.addr)["INBOX"]
	if len(after.msgs) != 1 || after.msgs[1].Body == nil {
		t.Fatalf("restored INBOX has UIDs %v, want only 1", slices.Collect(maps.Keys(after.msgs)))
	}
	if after.mb.UIDNext != before.mb.UIDNext || after.mb.HighestModSeq <= before.mb.HighestModSeq {
		t.Errorf("restored INBOX: UIDNEXT %d HIGHESTMODSEQ %d; before: %d %d", after.mb.UIDNext, after.mb.HighestModSeq, before.mb.UIDNext, before.mb.HighestModSeq)
	}
	a, _ := env2.Store.Account(ctx, acc.ID)
	_, expunged, err := a.Changes(ctx, after.mb.ID, before.mb.HighestModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if len(expunged) != 1 {
		t.Errorf("changes since the backup: %d expunged, want 1 (UID 2)", len(expunged))
	}
}

// Restore runs the store's full check: a stray body file in the backup (an
// orphan after restore) fails it.
func TestRestoreRunsStoreCheck(t *testing.T) {
	ctx := context.Background()
	env := testenv.Start(t)
	env.AddUser(t, users[0].addr, users[0].pass)
	env.Deliver(t, users[0].addr, msg(users[0].addr, "one"))
	acc, _ := env.Users.Account(ctx, users[0].addr)
	dest := filepath.Join(t.TempDir(), "b")
	if _, err := backup.Backup(ctx, env.DataDir, dest, backup.Options{}); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dest, "accounts", fmt.Sprint(acc.ID), "msg", "zz", "zzzzzzzzzzzzzzzzzzzz")
	os.MkdirAll(filepath.Dir(stray), 0o700)
	if err := os.WriteFile(stray, []byte("stray"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := backup.Restore(ctx, dest, t.TempDir(), backup.RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "problems") {
		t.Fatalf("restore with a stray body: %v, want the store check to fail", err)
	}
}

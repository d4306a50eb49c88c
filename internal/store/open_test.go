package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// openFDs counts this process's descriptors on files below dir.
func openFDs(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && len(p) > len(dir) && p[:len(dir)] == dir {
			n++
		}
	}
	return n
}

// TestOpenAccountsBounded: released accounts beyond the cap are closed,
// least recently used first; held ones never are; descriptors stay bounded
// whatever the number of accounts.
func TestOpenAccountsBounded(t *testing.T) {
	s, dir := newStore(t)
	s.SetOpenLimits(3, time.Hour)
	for id := int64(1); id <= 20; id++ {
		a := account(t, s, id)
		deliver(t, s, testBody(int(id)), Target{AccountID: id})
		a.Release()
		if n := s.OpenAccounts(); n > 3 {
			t.Fatalf("after account %d: %d open, cap 3", id, n)
		}
	}
	fds := openFDs(t, dir)
	if fds > 3*6 {
		t.Fatalf("%d descriptors open below the data directory with 3 accounts open", fds)
	}
	// The three most recently used are the ones still open.
	s.mu.Lock()
	for id := int64(18); id <= 20; id++ {
		if s.accts[id] == nil {
			t.Errorf("account %d (recently used) was closed", id)
		}
	}
	s.mu.Unlock()

	// Held accounts may exceed the cap, and stay usable.
	var held []*Account
	for id := int64(1); id <= 6; id++ {
		held = append(held, account(t, s, id))
	}
	if n := s.OpenAccounts(); n != 6 {
		t.Fatalf("%d open with 6 held", n)
	}
	for _, a := range held {
		if got := len(messages(t, a, "INBOX")); got != 1 {
			t.Fatalf("account %d: %d messages", a.ID, got)
		}
	}
	for _, a := range held {
		a.Release()
	}
	if n := s.OpenAccounts(); n != 3 {
		t.Fatalf("%d open after releasing, cap 3", n)
	}
	// Every account reopens with its mail.
	for id := int64(1); id <= 20; id++ {
		a := account(t, s, id)
		if got := subjects(t, a, "INBOX"); len(got) != 1 || got[0] != fmt.Sprintf("test %d", id) {
			t.Fatalf("account %d after reopening: %v", id, got)
		}
		a.Release()
	}
}

// TestOpenAccountsIdleClose: the janitor closes an account nobody used
// for account_idle.
func TestOpenAccountsIdleClose(t *testing.T) {
	s, _ := newStore(t)
	s.SetOpenLimits(100, time.Second)
	a := account(t, s, 1)
	b := account(t, s, 2)
	a.Release()
	deadline := time.Now().Add(10 * time.Second)
	for s.OpenAccounts() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	open1, open2 := s.accts[1] != nil, s.accts[2] != nil
	s.mu.Unlock()
	if open1 || !open2 {
		t.Fatalf("after idling: account 1 open %v (want false), account 2 (held) open %v (want true)", open1, open2)
	}
	b.Release()
}

// TestOpenAccountsJournal: journaled deliveries to many accounts through
// a tiny cap, so accounts close with records pending and between a
// segment's records and its retirement; every message is listed at once,
// segments retire, and after a crash-like reopen (the journal replayed
// over the indexes as they are) nothing is missing or doubled.
func TestOpenAccountsJournal(t *testing.T) {
	s, dir := newJournaledStore(t)
	s.SetOpenLimits(2, time.Hour)
	const accounts, n = 12, 480 // 480 x 8 KiB: past the first two segments
	buf := make([]byte, 0, 16<<10)
	pad := bytes.Repeat([]byte("y"), 8<<10)
	for i := range n {
		id := int64(1 + i%accounts)
		deliverMem(t, s, buf, append(testBody(i), pad...), Target{AccountID: id})
		if i%50 == 49 {
			// A reader sees everything acknowledged, whatever was closed.
			a := account(t, s, id)
			if got := len(messages(t, a, "INBOX")); got != i/accounts+1 {
				t.Fatalf("account %d after %d deliveries: %d messages", id, i+1, got)
			}
			a.Release()
		}
	}
	if n := s.OpenAccounts(); n > 2 {
		t.Fatalf("%d accounts open, cap 2", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segmentFiles(t, dir)) > 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if segs := segmentFiles(t, dir); len(segs) > 2 {
		t.Fatalf("segments not retired with their accounts closed: %v", segs)
	}
	s2 := reopenKeepingSegments(t, s, dir)
	s2.SetOpenLimits(2, time.Hour)
	for id := int64(1); id <= accounts; id++ {
		a := account(t, s2, id)
		got := subjects(t, a, "INBOX")
		a.Release()
		if len(got) != n/accounts {
			t.Fatalf("account %d after reopen: %d messages, want %d", id, len(got), n/accounts)
		}
		seen := map[string]bool{}
		for _, sub := range got {
			if seen[sub] {
				t.Fatalf("account %d: %q twice", id, sub)
			}
			seen[sub] = true
		}
	}
}

// TestOpenAccountsConcurrent: sessions, deliveries and removals race over
// a few accounts through a cap of 2 (run with -race).
func TestOpenAccountsConcurrent(t *testing.T) {
	s, _ := newJournaledStore(t)
	s.SetOpenLimits(2, time.Hour)
	const workers, rounds, accounts = 8, 60, 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[int64]int{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			buf := make([]byte, 0, 4<<10)
			for i := range rounds {
				id := int64(1 + rng.IntN(accounts))
				if rng.IntN(2) == 0 {
					bw := s.NewBodyBuffer(buf[:0])
					bw.Write(testBody(w*1000 + i))
					tm, err := bw.Finish()
					if err == nil {
						err = s.Deliver(ctx, tm, []Target{{AccountID: id}})
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					sent[id]++
					mu.Unlock()
					continue
				}
				a, err := s.Account(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				mb, err := a.Mailbox(ctx, "INBOX")
				if err == nil {
					_, err = a.Messages(ctx, mb.ID)
				}
				a.Release()
				if err != nil {
					errs <- fmt.Errorf("account %d: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for id, want := range sent {
		a := account(t, s, id)
		if got := len(messages(t, a, "INBOX")); got != want {
			t.Errorf("account %d: %d messages, %d delivered", id, got, want)
		}
		a.Release()
	}
}

// TestRemoveAccountWhileIdle: removing an account that is open and idle
// closes it first; a later open starts empty.
func TestRemoveAccountWhileIdle(t *testing.T) {
	s, dir := newStore(t)
	a := account(t, s, 7)
	deliver(t, s, testBody(1), Target{AccountID: 7})
	a.Release()
	if err := s.RemoveAccount(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts", strconv.Itoa(7))); !os.IsNotExist(err) {
		t.Fatalf("account directory after removal: %v", err)
	}
	a = account(t, s, 7)
	if got := len(messages(t, a, "INBOX")); got != 0 {
		t.Fatalf("recreated account has %d messages", got)
	}
	a.Release()
}

package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUsageTable: the usage table follows deliveries and expunges when
// accounts close, groups by SetUsageGroup, is right after a restart
// without opening any account, and converges after an unclean one or
// changes made by a Store that does not track usage (an admin command).
func TestUsageTable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackUsage()
	group := func(_ context.Context, id int64) (string, error) { return fmt.Sprintf("d%d", id%2), nil }
	s.SetUsageGroup(group)
	deliver := func(s *Store, id int64, n int) {
		for i := range n {
			w, _ := s.NewBody()
			fmt.Fprintf(w, "Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 100))
			tmp, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Deliver(ctx, tmp, []Target{{AccountID: id}}); err != nil {
				t.Fatal(err)
			}
			tmp.Remove()
		}
	}
	deliver(s, 1, 3)
	deliver(s, 2, 2)
	deliver(s, 3, 1)
	const size = int64(len("Subject: 0\r\n\r\n") + 100 + 2)
	check := func(s *Store, want map[string]Usage) {
		t.Helper()
		got, err := s.UsageByGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for g, w := range want {
			if got[g] != w {
				t.Errorf("group %s: %+v, want %+v", g, got[g], w)
			}
		}
	}
	s.refreshUsage()
	check(s, map[string]Usage{"d1": {4 * size, 4}, "d0": {2 * size, 2}})

	// Expunge two of account 1's messages; Usage agrees.
	a, err := s.Account(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	if b, n, err := a.Usage(ctx); err != nil || b != size || n != 1 {
		t.Errorf("Usage = %d, %d, %v; want %d, 1", b, n, err, size)
	}
	a.Release()
	s.refreshUsage()
	check(s, map[string]Usage{"d1": {2 * size, 2}, "d0": {2 * size, 2}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart knows every account's usage without opening one.
	s, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackUsage()
	s.SetUsageGroup(group)
	<-s.usageDone
	check(s, map[string]Usage{"d1": {2 * size, 2}, "d0": {2 * size, 2}})
	if n := s.OpenAccounts(); n != 0 {
		t.Errorf("%d accounts opened for usage", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// An admin command's Store (no TrackUsage) delivers to account 2
	// and leaves the file alone.
	s, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "usage"))
	deliver(s, 2, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "usage")); string(after) != string(before) {
		t.Errorf("a Store without TrackUsage wrote the usage table")
	}

	// A stale file (a crash: account 1 noted long ago, account 3
	// missing) and the command's change: the check at start reads the
	// indexes that changed since, opening no account.
	stale := "jodmai-usage 2\n1 999 9 0\n2 1 1 " + fmt.Sprint(time.Now().Add(-time.Hour).UnixNano()) + "\n"
	if err := os.WriteFile(filepath.Join(dir, "usage"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.TrackUsage()
	s.SetUsageGroup(group)
	<-s.usageDone
	check(s, map[string]Usage{"d1": {2 * size, 2}, "d0": {3 * size, 3}})
	if n := s.OpenAccounts(); n != 0 {
		t.Errorf("%d accounts opened for usage", n)
	}

	// A removed account leaves its group.
	if err := s.RemoveAccount(ctx, 3); err != nil {
		t.Fatal(err)
	}
	check(s, map[string]Usage{"d1": {size, 1}})

	// An account whose directory went (removed by another process) is
	// dropped by the janitor's check.
	if err := os.RemoveAll(filepath.Join(dir, "accounts", "2")); err != nil {
		t.Fatal(err)
	}
	s.checkUsage(ctx)
	check(s, map[string]Usage{"d0": {}})
}

// BenchmarkUsageByGroup: a scrape's read of the usage table with 10,000
// accounts in 50 domains, after the first (which groups every account).
func BenchmarkUsageByGroup(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.SetUsageGroup(func(_ context.Context, id int64) (string, error) { return fmt.Sprintf("d%d.example", id%50), nil })
	s.usage.mu.Lock()
	for id := int64(1); id <= 10000; id++ {
		s.usage.setLocked(id, Usage{Bytes: id * 1000, Messages: id}, true)
	}
	s.usage.mu.Unlock()
	if _, err := s.UsageByGroup(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if g, err := s.UsageByGroup(ctx); err != nil || len(g) != 50 {
			b.Fatal(len(g), err)
		}
	}
}

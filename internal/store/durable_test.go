package store

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOpenAccountSyncsExistingDir: an account directory that exists when
// the account is opened (a process was killed after creating it and
// before fsyncing accounts/) gets its name and its msg/ made durable
// before any message for it can be acknowledged.
func TestOpenAccountSyncsExistingDir(t *testing.T) {
	s, dir := newStore(t)
	acct := filepath.Join(dir, "accounts", "5")
	if err := os.MkdirAll(acct, 0o700); err != nil {
		t.Fatal(err)
	}
	var synced []string
	orig := syncDir
	syncDir = func(p string) error {
		synced = append(synced, p)
		return orig(p)
	}
	t.Cleanup(func() { syncDir = orig })
	account(t, s, 5)
	for _, want := range []string{filepath.Join(dir, "accounts"), acct} {
		if !slices.Contains(synced, want) {
			t.Errorf("opening account 5 did not fsync %s (fsynced %q)", want, synced)
		}
	}
	// And the fsync of the account dir came after msg/ was made.
	if _, err := os.Stat(filepath.Join(acct, "msg")); err != nil {
		t.Fatal(err)
	}
}

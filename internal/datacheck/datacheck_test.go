package datacheck

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(dir, "nope"), "no data directory"},
		{dir, "not a jodmai data directory"},
	} {
		if _, err := Run(ctx, tc.dir, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%s) = %v, want %q", tc.dir, err, tc.want)
		}
	}

	users, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := users.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := users.AddAccount(ctx, "amy@example.org", "a-long-password-1"); err != nil {
		t.Fatal(err)
	}
	users.Close()
	res, err := Run(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := res.Remaining(); n != 0 || res.Store.Live {
		t.Fatalf("fresh data dir: %d problems, live %v: %v %v", n, res.Store.Live, res.Directory, res.Store.Problems)
	}
	// Mail of an account the user directory does not know.
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Account(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	st.Close()
	res, err = Run(ctx, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Remaining() != 1 || res.Store.Problems[0].Kind != "unknown-account" {
		t.Fatalf("unknown account: %v", res.Store.Problems)
	}
}

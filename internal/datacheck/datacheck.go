// Package datacheck checks a whole data directory: the user directory
// (package userdb) first, then the mail store (store.Check) against the
// accounts the directory knows. It owns the rule that a repair needs the
// server stopped: it takes the server's data-dir lock for a repair, and
// only peeks at it for a read-only check, which is safe beside a running
// server. `jodmai check` is its command line.
package datacheck

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// lockName is the file a running server holds a flock on (internal/server).
const lockName = "jodmai.lock"

// Result is what Run found.
type Result struct {
	// Store is the mail store's report; Store.Live says a server was
	// running.
	Store *store.Report
	// Directory lists the user directory's problems, each one line
	// starting with store.ProblemDatabase. They are never repaired.
	Directory []string
}

// Remaining counts the problems left: the store's not repaired and the
// directory's.
func (r *Result) Remaining() int { return r.Store.Remaining() + len(r.Directory) }

// Run checks the data directory dataDir and, with repair, fixes what the
// store can fix safely (store.CheckOptions). A repair is refused while a
// server runs; a read-only check lets go of the lock at once, so a server
// may start meanwhile, and the check then errs on the side of calling
// things in flight problems, without touching anything. The error is for
// a check that could not run; what it found is in the Result.
func Run(ctx context.Context, dataDir string, repair bool) (*Result, error) {
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("no data directory at %s", dataDir)
	}
	if store.Exists(dataDir) != nil && userdb.Exists(dataDir) != nil {
		return nil, fmt.Errorf("%s is not a jodmai data directory (no global.db, no accounts/)", dataDir)
	}

	lockPath := filepath.Join(dataDir, lockName)
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	defer lock.Close()
	live := false
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		live = true
	} else if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if live && repair {
		return nil, fmt.Errorf("a jodmai server is running on %s (it holds %s): stop it before 'jodmai check --repair'; 'jodmai check' without --repair only reads and is safe while it runs",
			dataDir, lockPath)
	}
	if !repair {
		syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	}
	return check(ctx, dataDir, repair, live)
}

// check runs the checks: the user directory first, then the store against
// the accounts it knows.
func check(ctx context.Context, dataDir string, repair, live bool) (*Result, error) {
	opts := store.CheckOptions{Repair: repair, Live: live}
	problems, inv, err := userdb.Check(ctx, dataDir)
	if err != nil {
		return nil, err
	}
	// Without a trustworthy directory (problems), KnownAccounts stays nil
	// and no account directory is called deleted.
	if inv != nil {
		opts.KnownAccounts = inv.Accounts
		opts.IssuedAccounts = inv.Issued
	}
	for i, p := range problems {
		problems[i] = string(store.ProblemDatabase) + ": " + p
	}

	st, err := store.Open(ctx, dataDir, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rep, err := st.Check(ctx, opts)
	if err != nil {
		return nil, err
	}
	rep.JournalReplayed = st.Replayed()
	return &Result{Store: rep, Directory: problems}, nil
}

package userdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/jodmai/jodmai/internal/sqlite"
)

// Maintenance of the user directory as a whole: backup, restore checks and
// `jodmai check`. Only this package knows where and how the directory is
// kept; callers pass the data directory.

const fileName = "global.db"

// Exists returns an error (wrapping fs.ErrNotExist when it is missing)
// unless dataDir holds a user directory.
func Exists(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, fileName)); err != nil {
		return fmt.Errorf("no %s: %w", fileName, err)
	}
	return nil
}

// Snapshot writes a consistent copy of the user directory of dataDir into
// the backup directory dest (fsynced; the caller fsyncs dest) while a
// server may be writing, and returns the files it wrote, relative to dest.
func Snapshot(ctx context.Context, dataDir, dest string) ([]string, error) {
	if err := Exists(dataDir); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dataDir, err)
	}
	if err := sqlite.Snapshot(ctx, filepath.Join(dataDir, fileName), filepath.Join(dest, fileName)); err != nil {
		return nil, err
	}
	return []string{fileName}, nil
}

// InBackup reports whether files, the slash-separated paths of a backup's
// files, include a snapshot of the user directory.
func InBackup(files []string) bool {
	for _, f := range files {
		if path.Clean(f) == fileName {
			return true
		}
	}
	return false
}

// Verify checks the integrity of the user directory of dataDir, read-only.
func Verify(ctx context.Context, dataDir string) error {
	return sqlite.Integrity(ctx, filepath.Join(dataDir, fileName))
}

// Inventory is what Check learned of the accounts of a sound directory.
type Inventory struct {
	// Accounts are the ids of every account.
	Accounts []int64
	// Issued is the highest account id ever issued, deleted accounts
	// included (ids are never reused).
	Issued int64
}

// Check verifies the user directory of dataDir read-only (safe beside a
// running server) and returns one line per problem. Only when it finds
// none does it read the accounts; inv is nil when the directory cannot be
// trusted to say which accounts exist. The error is for a check that
// could not run.
func Check(ctx context.Context, dataDir string) (problems []string, inv *Inventory, err error) {
	problems, err = sqlite.CheckFile(ctx, filepath.Join(dataDir, fileName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []string{fileName + " is missing: accounts cannot be compared with the directory"}, nil, nil
	case err != nil:
		return nil, nil, err
	case len(problems) > 0:
		return problems, nil, nil
	}
	users, err := Open(ctx, dataDir)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", fileName, err)}, nil, nil
	}
	defer users.Close()
	accs, err := users.Accounts(ctx)
	if err != nil {
		return []string{fmt.Sprintf("%s: list accounts: %v", fileName, err)}, nil, nil
	}
	inv = &Inventory{Accounts: []int64{}}
	for _, a := range accs {
		inv.Accounts = append(inv.Accounts, a.ID)
		inv.Issued = max(inv.Issued, a.ID)
	}
	if seq, err := users.HighestAccountID(ctx); err == nil {
		inv.Issued = max(inv.Issued, seq)
	}
	return nil, inv, nil
}

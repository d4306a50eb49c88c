package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// ErrInUse is returned by Restore when a server holds the data dir's lock.
var ErrInUse = errors.New("data dir is in use by a running jodmai server")

// ErrNotEmpty is returned by Restore for a non-empty data dir without Force.
var ErrNotEmpty = errors.New("data dir is not empty (use --force to replace its contents)")

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Force replaces the contents of a non-empty data dir.
	Force bool
	// Progress, if set, gets one line per step.
	Progress io.Writer
}

func (o RestoreOptions) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// Restore puts the backup in backupDir into dataDir, then checks the result:
// Verify (integrity of every database, every referenced body present with
// its recorded size), and the store's full Check. It holds the data dir's server lock throughout, so
// no server can start on a half-restored directory.
func Restore(ctx context.Context, backupDir, dataDir string, opts RestoreOptions) (*Manifest, error) {
	m, err := ReadManifest(backupDir)
	if err != nil {
		return nil, err
	}
	for rel, want := range m.Files {
		if !isSafeRel(rel) {
			return nil, fmt.Errorf("manifest: bad path %q", rel)
		}
		got, err := sumFile(filepath.Join(backupDir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("verify backup: %w", err)
		}
		if got != want {
			return nil, fmt.Errorf("verify backup: %s differs from the manifest (size %d, want %d)", rel, got.Size, want.Size)
		}
	}
	opts.progress("backup %s verified: %d files, %d accounts", backupDir, len(m.Files), len(m.Accounts))

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dataDir, "jodmai.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return nil, fmt.Errorf("%s: %w", dataDir, ErrInUse)
	}
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() == "jodmai.lock" {
			continue
		}
		if !opts.Force {
			return nil, fmt.Errorf("%s: %w", dataDir, ErrNotEmpty)
		}
		if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
			return nil, fmt.Errorf("clear data dir: %w", err)
		}
	}

	// Databases, tls/ and the config first; bodies per account.
	dirs := map[string]bool{dataDir: true}
	for rel := range m.Files {
		dst := filepath.Join(dataDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		if err := safeio.CopyFile(filepath.Join(backupDir, filepath.FromSlash(rel)), dst); err != nil {
			return nil, fmt.Errorf("restore %s: %w", rel, err)
		}
		for d := filepath.Dir(dst); len(d) >= len(dataDir); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, a := range m.Accounts {
		n, err := store.RestoreAccount(ctx, backupDir, dataDir, a.ID)
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", a.ID, err)
		}
		opts.progress("account %d: %d bodies restored", a.ID, n)
	}
	// Deepest first, so each name is durable before its parent's.
	for len(dirs) > 0 {
		deepest := ""
		for d := range dirs {
			if len(d) > len(deepest) {
				deepest = d
			}
		}
		if err := safeio.SyncDir(deepest); err != nil {
			return nil, err
		}
		delete(dirs, deepest)
	}

	if err := Verify(ctx, dataDir, m); err != nil {
		return nil, fmt.Errorf("restored data failed its check: %w", err)
	}
	// The store's own full check (UIDNEXT above every UID, counters,
	// orphans, foreign keys), while we still hold the lock.
	st, err := store.Open(ctx, dataDir, nil)
	if err != nil {
		return nil, err
	}
	rep, err := st.Check(ctx, store.CheckOptions{})
	st.Close()
	if err != nil {
		return nil, fmt.Errorf("check restored store: %w", err)
	}
	if n := rep.Remaining(); n > 0 {
		var first []string
		for _, p := range rep.Problems[:min(5, len(rep.Problems))] {
			first = append(first, p.String())
		}
		return nil, fmt.Errorf("restored store has %d problems: %s", n, strings.Join(first, "; "))
	}
	opts.progress("restore complete: %s: %d accounts, %d messages, %d bodies, %d bytes; integrity checks passed",
		dataDir, len(m.Accounts), m.Messages, m.Bodies, m.Bytes)
	return m, nil
}

// Verify checks a data dir against a manifest: the user directory passes
// its integrity check and every account its store's (store.VerifyAccount:
// the index sound, every body it references present with its recorded
// size), with as many messages as the manifest says.
func Verify(ctx context.Context, dataDir string, m *Manifest) error {
	if err := userdb.Verify(ctx, dataDir); err != nil {
		return err
	}
	for _, a := range m.Accounts {
		msgs, err := store.VerifyAccount(ctx, dataDir, a.ID)
		if err != nil {
			return err
		}
		if msgs != a.Messages {
			return fmt.Errorf("account %d: %d messages, manifest says %d", a.ID, msgs, a.Messages)
		}
	}
	return nil
}

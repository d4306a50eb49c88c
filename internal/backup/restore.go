package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/store"
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
// SQLite integrity_check on every database, every referenced body present
// with its recorded size, and the store's full Check. It holds the data dir's server lock throughout, so
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
		if err := copyFile(filepath.Join(backupDir, filepath.FromSlash(rel)), dst); err != nil {
			return nil, fmt.Errorf("restore %s: %w", rel, err)
		}
		for d := filepath.Dir(dst); len(d) >= len(dataDir); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "accounts"), 0o700); err != nil {
		return nil, err
	}
	dirs[filepath.Join(dataDir, "accounts")] = true
	for _, a := range m.Accounts {
		rel := filepath.Join("accounts", strconv.FormatInt(a.ID, 10), "msg")
		n, err := restoreBodies(filepath.Join(backupDir, rel), filepath.Join(dataDir, rel))
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", a.ID, err)
		}
		dirs[filepath.Join(dataDir, rel)] = true
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

// restoreBodies links or copies every body file of one account's backup.
func restoreBodies(src, dst string) (int, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return 0, err
	}
	shards, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range shards {
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dst, s.Name()), 0o700); err != nil {
			return n, err
		}
		files, err := os.ReadDir(filepath.Join(src, s.Name()))
		if err != nil {
			return n, err
		}
		for _, f := range files {
			if !blob.ValidID(f.Name()) {
				continue
			}
			if err := linkOrCopy(filepath.Join(src, s.Name(), f.Name()), filepath.Join(dst, s.Name(), f.Name())); err != nil {
				return n, err
			}
			n++
		}
		if err := safeio.SyncDir(filepath.Join(dst, s.Name())); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Verify checks a data dir against a manifest: every database passes
// integrity_check and every body its index references exists with the
// recorded size.
func Verify(ctx context.Context, dataDir string, m *Manifest) error {
	if err := integrity(ctx, filepath.Join(dataDir, "global.db")); err != nil {
		return err
	}
	for _, a := range m.Accounts {
		dir := filepath.Join(dataDir, "accounts", strconv.FormatInt(a.ID, 10))
		path := filepath.Join(dir, "index.db")
		if err := integrity(ctx, path); err != nil {
			return err
		}
		db, err := openDB(path, true)
		if err != nil {
			return err
		}
		refs, err := referencedBodies(ctx, db)
		if err != nil {
			db.Close()
			return fmt.Errorf("account %d: %w", a.ID, err)
		}
		inline, err := inlineSizes(ctx, db)
		db.Close()
		if err != nil {
			return fmt.Errorf("account %d: %w", a.ID, err)
		}
		var msgs int64
		for _, b := range refs {
			if store.IsInlineBody(b.id) {
				n, ok := inline[b.id]
				if !ok {
					return fmt.Errorf("account %d: inline body %s missing", a.ID, b.id)
				}
				if n != b.size {
					return fmt.Errorf("account %d: inline body %s has %d bytes, index says %d", a.ID, b.id, n, b.size)
				}
				msgs += b.count
				continue
			}
			if !blob.ValidID(b.id) {
				return fmt.Errorf("account %d: invalid blob id %q", a.ID, b.id)
			}
			fi, err := os.Stat(filepath.Join(dir, "msg", b.id[:2], b.id))
			if err != nil {
				return fmt.Errorf("account %d: body %s: %w", a.ID, b.id, err)
			}
			if fi.Size() != b.size {
				return fmt.Errorf("account %d: body %s has %d bytes, index says %d", a.ID, b.id, fi.Size(), b.size)
			}
			msgs += b.count
		}
		if msgs != a.Messages {
			return fmt.Errorf("account %d: %d messages, manifest says %d", a.ID, msgs, a.Messages)
		}
	}
	return nil
}

// inlineSizes lists the sizes of the bodies an index keeps inline (none in
// an index older than inline bodies).
func inlineSizes(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	out := map[string]int64{}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='inline_bodies'`).Scan(&n); err != nil || n == 0 {
		return out, err
	}
	rows, err := db.QueryContext(ctx, `SELECT 'i' || id, length(data) FROM inline_bodies`)
	if err != nil {
		return nil, fmt.Errorf("list inline bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			return nil, err
		}
		out[id] = size
	}
	return out, rows.Err()
}

func integrity(ctx context.Context, path string) error {
	db, err := openDB(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("integrity_check %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check %s: %s", path, res)
	}
	return nil
}

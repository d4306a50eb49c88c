// Package backup takes consistent online backups of a jodmai data directory
// and restores them.
//
// A backup is a directory holding the same layout as a data directory
// (global.db, accounts/<id>/index.db, accounts/<id>/msg/<xx>/<blob>, tls/,
// jodmai.toml) plus manifest.json. Each SQLite database is snapshotted with
// VACUUM INTO, which reads inside one transaction and so yields a consistent
// copy while the server keeps writing. The bodies copied are exactly those
// the account's snapshot references, read from the snapshot itself: a body
// added after the snapshot is not needed, and since bodies are immutable a
// hard link (same file system) is as good as a copy. Small bodies the store
// keeps inline in the index (store.IsInlineBody) are in the snapshot.
//
// Invariants: every file and directory of a backup is fsynced before
// manifest.json is written (tmp, fsync, rename, dir fsync); a backup without
// manifest.json is incomplete and Restore refuses it.
//
// The databases are snapshotted one after another, not atomically together:
// an account created after global.db was snapshotted may appear with its
// index but without its credentials. Per account, index and bodies agree.
package backup

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/store"
)

// ManifestName is the file whose presence marks a complete backup.
const ManifestName = "manifest.json"

// Version is the manifest format version.
const Version = 1

// Manifest describes a complete backup.
type Manifest struct {
	Version  int             `json:"version"`
	Time     time.Time       `json:"time"`
	Source   string          `json:"source"`
	Accounts []AccountResult `json:"accounts"`
	Messages int64           `json:"messages"`
	Bodies   int64           `json:"bodies"`
	Bytes    int64           `json:"bytes"`
	// Files lists the non-body files (databases, tls/, jodmai.toml) by
	// slash path relative to the backup, with their size and SHA-256.
	Files map[string]FileSum `json:"files"`
}

// AccountResult is one account in a backup.
type AccountResult struct {
	ID       int64 `json:"id"`
	Messages int64 `json:"messages"`
	Bodies   int64 `json:"bodies"`
	Bytes    int64 `json:"bytes"`
	// Vanished counts messages the snapshot held whose body was removed
	// (expunged) before it could be copied; they are dropped from the
	// backup's index as if the expunge had happened before the snapshot.
	Vanished int64 `json:"vanished,omitempty"`
}

// FileSum is a file's size and SHA-256.
type FileSum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Options configure Backup.
type Options struct {
	// ConfigFile is copied as jodmai.toml if set; otherwise DATA/jodmai.toml
	// is copied if present.
	ConfigFile string
	// Progress, if set, gets one line per step.
	Progress io.Writer
}

func (o Options) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// Backup writes a backup of dataDir into dest, which must not exist yet.
func Backup(ctx context.Context, dataDir, dest string, opts Options) (*Manifest, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "global.db")); err != nil {
		return nil, fmt.Errorf("data dir %s: no global.db: %w", dataDir, err)
	}
	if _, err := os.Stat(dest); err == nil {
		return nil, fmt.Errorf("backup dir %s already exists", dest)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return nil, fmt.Errorf("create backup parent: %w", err)
	}
	if err := os.Mkdir(dest, 0o700); err != nil {
		return nil, fmt.Errorf("create backup dir: %w", err)
	}
	m := &Manifest{Version: Version, Time: time.Now().UTC(), Source: dataDir, Files: map[string]FileSum{}}
	start := time.Now()
	// Deliveries the journal acknowledged but a live server has not yet
	// applied are in no snapshot: the journal's segments are copied after
	// the snapshots, and kept until then (a restore replays them).
	release, err := store.HoldJournal(dataDir)
	if err != nil {
		return nil, err
	}
	defer release()

	if err := snapshot(ctx, filepath.Join(dataDir, "global.db"), filepath.Join(dest, "global.db")); err != nil {
		return nil, err
	}
	if err := m.addFile(dest, "global.db"); err != nil {
		return nil, err
	}
	opts.progress("global.db: snapshot done")

	ids, err := accountIDs(filepath.Join(dataDir, "accounts"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dest, "accounts"), 0o700); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ar, err := backupAccount(ctx, dataDir, dest, id)
		if err != nil {
			return nil, fmt.Errorf("account %d: %w", id, err)
		}
		if err := m.addFile(dest, filepath.Join("accounts", strconv.FormatInt(id, 10), "index.db")); err != nil {
			return nil, err
		}
		m.Accounts = append(m.Accounts, ar)
		m.Messages += ar.Messages
		m.Bodies += ar.Bodies
		m.Bytes += ar.Bytes
		opts.progress("account %d: %d messages, %d bodies, %d bytes", id, ar.Messages, ar.Bodies, ar.Bytes)
		if ar.Vanished > 0 {
			opts.progress("account %d: %d messages expunged during the backup are left out", id, ar.Vanished)
		}
	}
	if err := safeio.SyncDir(filepath.Join(dest, "accounts")); err != nil {
		return nil, err
	}
	segs, err := store.JournalFiles(dataDir)
	if err != nil {
		return nil, err
	}
	if len(segs) > 0 {
		if err := os.MkdirAll(filepath.Join(dest, "journal"), 0o700); err != nil {
			return nil, err
		}
	}
	for _, rel := range segs {
		err := copyFile(filepath.Join(dataDir, rel), filepath.Join(dest, rel))
		if errors.Is(err, os.ErrNotExist) {
			continue // replayed and removed by a starting server or command: in the snapshots
		}
		if err != nil {
			return nil, err
		}
		if err := m.addFile(dest, rel); err != nil {
			return nil, err
		}
	}
	if len(segs) > 0 {
		if err := safeio.SyncDir(filepath.Join(dest, "journal")); err != nil {
			return nil, err
		}
		opts.progress("delivery journal: %d segments (deliveries a restore applies if the snapshots lack them)", len(segs))
	}

	if err := copyTree(filepath.Join(dataDir, "tls"), filepath.Join(dest, "tls")); err != nil {
		return nil, err
	}
	if err := m.addTree(dest, "tls"); err != nil {
		return nil, err
	}
	cfgFile := opts.ConfigFile
	if cfgFile == "" {
		cfgFile = filepath.Join(dataDir, "jodmai.toml")
	}
	if _, err := os.Stat(cfgFile); err == nil {
		if err := copyFile(cfgFile, filepath.Join(dest, "jodmai.toml")); err != nil {
			return nil, err
		}
		if err := m.addFile(dest, "jodmai.toml"); err != nil {
			return nil, err
		}
	} else if opts.ConfigFile != "" {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if err := safeio.SyncDir(dest); err != nil {
		return nil, err
	}
	if err := writeManifest(dest, m); err != nil {
		return nil, err
	}
	opts.progress("backup complete: %s: %d accounts, %d messages, %d bodies, %d bytes in %s",
		dest, len(m.Accounts), m.Messages, m.Bodies, m.Bytes, time.Since(start).Round(time.Millisecond))
	return m, nil
}

// accountIDs lists the numeric account directories.
func accountIDs(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read accounts dir: %w", err)
	}
	var ids []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() || strconv.FormatInt(id, 10) != e.Name() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "index.db")); err != nil {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

func openDB(path string, readonly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if readonly {
		q.Set("mode", "ro")
	} else {
		q.Set("mode", "rw") // never create: a missing database is an error
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// snapshot writes a consistent copy of the live database src to dst with
// VACUUM INTO and fsyncs it.
func snapshot(ctx context.Context, src, dst string) error {
	db, err := openDB(src, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return syncFile(dst)
}

// backupAccount snapshots one account's index and links or copies every body
// the snapshot references.
func backupAccount(ctx context.Context, dataDir, dest string, id int64) (AccountResult, error) {
	ar := AccountResult{ID: id}
	rel := filepath.Join("accounts", strconv.FormatInt(id, 10))
	srcDir, dstDir := filepath.Join(dataDir, rel), filepath.Join(dest, rel)
	if err := os.MkdirAll(filepath.Join(dstDir, "msg"), 0o700); err != nil {
		return ar, err
	}
	dstDB := filepath.Join(dstDir, "index.db")
	if err := snapshot(ctx, filepath.Join(srcDir, "index.db"), dstDB); err != nil {
		return ar, err
	}
	db, err := openDB(dstDB, false)
	if err != nil {
		return ar, err
	}
	defer db.Close()
	blobs, err := referencedBodies(ctx, db)
	if err != nil {
		return ar, err
	}
	shards := map[string]bool{}
	var vanished []string
	for _, b := range blobs {
		if store.IsInlineBody(b.id) {
			// Kept in the index: the snapshot carries it.
			ar.Messages += b.count
			ar.Bodies++
			ar.Bytes += b.size
			continue
		}
		if !blob.ValidID(b.id) {
			return ar, fmt.Errorf("invalid blob id %q in index", b.id)
		}
		shard := b.id[:2]
		if !shards[shard] {
			if err := os.MkdirAll(filepath.Join(dstDir, "msg", shard), 0o700); err != nil {
				return ar, err
			}
			shards[shard] = true
		}
		src := filepath.Join(srcDir, "msg", shard, b.id)
		err := linkOrCopy(src, filepath.Join(dstDir, "msg", shard, b.id))
		if errors.Is(err, os.ErrNotExist) {
			// Expunged (and its body removed) between the snapshot and now.
			vanished = append(vanished, b.id)
			continue
		}
		if err != nil {
			return ar, err
		}
		ar.Messages += b.count
		ar.Bodies++
		ar.Bytes += b.size
	}
	if len(vanished) > 0 {
		n, err := store.ExpungeBodiesInCopy(ctx, db, vanished)
		if err != nil {
			return ar, fmt.Errorf("drop vanished messages: %w", err)
		}
		ar.Vanished = n
		// Fold the journal back so the file alone is the database.
		if _, err := db.ExecContext(ctx, `VACUUM`); err != nil {
			return ar, err
		}
	}
	if err := db.Close(); err != nil {
		return ar, err
	}
	for shard := range shards {
		if err := safeio.SyncDir(filepath.Join(dstDir, "msg", shard)); err != nil {
			return ar, err
		}
	}
	if err := syncFile(dstDB); err != nil {
		return ar, err
	}
	for _, d := range []string{filepath.Join(dstDir, "msg"), dstDir} {
		if err := safeio.SyncDir(d); err != nil {
			return ar, err
		}
	}
	return ar, nil
}

type bodyRef struct {
	id    string
	size  int64
	count int64
}

// referencedBodies lists the distinct bodies the index references, with
// their size and the number of messages using each.
func referencedBodies(ctx context.Context, db *sql.DB) ([]bodyRef, error) {
	rows, err := db.QueryContext(ctx, `SELECT blob, max(size), count(*) FROM messages GROUP BY blob ORDER BY blob`)
	if err != nil {
		return nil, fmt.Errorf("list bodies: %w", err)
	}
	defer rows.Close()
	var out []bodyRef
	for rows.Next() {
		var b bodyRef
		if err := rows.Scan(&b.id, &b.size, &b.count); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// linkOrCopy hard-links src to dst, or copies it (fsynced) when a link is
// impossible (another file system). Bodies are immutable, so a link is a
// valid copy.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Lstat(src); errors.Is(serr, os.ErrNotExist) {
			return err
		}
	}
	var le *os.LinkError
	if errors.As(err, &le) && (errors.Is(le.Err, syscall.EXDEV) || errors.Is(le.Err, syscall.EPERM) || errors.Is(le.Err, syscall.EMLINK)) {
		return copyFile(src, dst)
	}
	return fmt.Errorf("link body: %w", err)
}

// copyFile copies src to dst (which must not exist) and fsyncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("fsync %s: %w", dst, err)
	}
	return out.Close()
}

// copyTree copies the regular files of a directory tree; a missing src is
// not an error.
func copyTree(src, dst string) error {
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			dirs = append(dirs, target)
			return os.MkdirAll(target, 0o700)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := safeio.SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) addFile(root, rel string) error {
	sum, err := sumFile(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	m.Files[filepath.ToSlash(rel)] = sum
	return nil
}

func (m *Manifest) addTree(root, rel string) error {
	if _, err := os.Stat(filepath.Join(root, rel)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(filepath.Join(root, rel), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		r, _ := filepath.Rel(root, p)
		return m.addFile(root, r)
	})
}

func sumFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, fmt.Errorf("read %s: %w", path, err)
	}
	return FileSum{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeManifest writes manifest.json durably: tmp, fsync, rename, dir fsync.
func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".manifest.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, ManifestName)); err != nil {
		return err
	}
	return safeio.SyncDir(dir)
}

// ReadManifest reads and checks the manifest of a backup directory.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no %s: not a complete backup", dir, ManifestName)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("%s: unsupported version %d", ManifestName, m.Version)
	}
	if _, ok := m.Files["global.db"]; !ok {
		return nil, fmt.Errorf("%s: lists no global.db", ManifestName)
	}
	return &m, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// isSafeRel reports whether a manifest path stays inside its root.
func isSafeRel(rel string) bool {
	return rel != "" && !filepath.IsAbs(rel) && !strings.HasPrefix(filepath.Clean(filepath.FromSlash(rel)), "..")
}

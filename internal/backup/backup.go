// Package backup takes consistent online backups of a jodmai data directory
// and restores them.
//
// A backup is a directory holding the user directory's snapshot
// (userdb.Snapshot), the mail store's copy (store.BackupAccounts: each
// account's index snapshot and exactly the bodies it references), the
// delivery journal's segments, tls/ and jodmai.toml, plus manifest.json.
// The store and userdb own the layout of their parts; this package copies
// what they name and checksums it. Snapshots are consistent copies taken
// while the server keeps writing.
//
// Invariants: every file and directory of a backup is fsynced before
// manifest.json is written (tmp, fsync, rename, dir fsync); a backup without
// manifest.json is incomplete and Restore refuses it.
//
// The user directory and the accounts are snapshotted one after another,
// not atomically together: an account created after the directory was
// snapshotted may appear with its mail but without its credentials. Per
// account, index and bodies agree.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
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
	if err := userdb.Exists(dataDir); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dataDir, err)
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

	files, err := userdb.Snapshot(ctx, dataDir, dest)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := m.addFile(dest, f); err != nil {
			return nil, err
		}
	}
	opts.progress("user directory: snapshot done")

	err = store.BackupAccounts(ctx, dataDir, dest, func(ac store.AccountCopy) error {
		for _, f := range ac.Files {
			if err := m.addFile(dest, f); err != nil {
				return err
			}
		}
		ar := AccountResult{ID: ac.ID, Messages: ac.Messages, Bodies: ac.Bodies, Bytes: ac.Bytes, Vanished: ac.Vanished}
		m.Accounts = append(m.Accounts, ar)
		m.Messages += ar.Messages
		m.Bodies += ar.Bodies
		m.Bytes += ar.Bytes
		opts.progress("account %d: %d messages, %d bodies, %d bytes", ar.ID, ar.Messages, ar.Bodies, ar.Bytes)
		if ar.Vanished > 0 {
			opts.progress("account %d: %d messages expunged during the backup are left out", ar.ID, ar.Vanished)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	segs, err := store.JournalFiles(dataDir)
	if err != nil {
		return nil, err
	}
	segDirs := map[string]bool{}
	for _, rel := range segs {
		if d := filepath.Join(dest, filepath.Dir(rel)); !segDirs[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
			segDirs[d] = true
		}
		err := safeio.CopyFile(filepath.Join(dataDir, rel), filepath.Join(dest, rel))
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
	for d := range segDirs {
		if err := safeio.SyncDir(d); err != nil {
			return nil, err
		}
	}
	if len(segs) > 0 {
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
		if err := safeio.CopyFile(cfgFile, filepath.Join(dest, "jodmai.toml")); err != nil {
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
			return safeio.CopyFile(p, target)
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
	listed := make([]string, 0, len(m.Files))
	for rel := range m.Files {
		listed = append(listed, rel)
	}
	if !userdb.InBackup(listed) {
		return nil, fmt.Errorf("%s: lists no user directory snapshot", ManifestName)
	}
	return &m, nil
}

// isSafeRel reports whether a manifest path stays inside its root.
func isSafeRel(rel string) bool {
	return rel != "" && !filepath.IsAbs(rel) && !strings.HasPrefix(filepath.Clean(filepath.FromSlash(rel)), "..")
}

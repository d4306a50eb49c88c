// Package safeio owns the small file-system steps that a durable write is
// made of: fsyncing a directory so the names in it survive a power loss,
// creating directories whose own names are durable, and replacing or
// creating a file atomically.
//
// A file's data is durable after fsync of the file; its name is durable
// only after fsync of the directory that holds it (and that directory's
// name after fsync of its parent, and so on). Every function here
// returns only once what it made is durable in that sense, so a caller
// may acknowledge it.
package safeio

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs the directory at path, making the names in it (created,
// renamed, linked or removed) durable.
func SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open dir %s for fsync: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", path, err)
	}
	return nil
}

// SyncParent fsyncs the directory holding path, so path's name is durable.
func SyncParent(path string) error { return SyncDir(filepath.Dir(path)) }

// MkdirAll is os.MkdirAll whose result survives a power loss: every
// directory it creates is made durable by fsyncing its parent, deepest
// last. The directories that already existed are fsynced too (from the
// first one that exists on down): one made by a process that died before
// its own fsync exists but may not survive a power loss.
func MkdirAll(path string, perm fs.FileMode) error {
	path = filepath.Clean(path)
	// Find the deepest ancestor that exists.
	var missing []string
	top := path
	for {
		fi, err := os.Stat(top)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("create dir %s: %s is not a directory", path, top)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create dir %s: %w", path, err)
		}
		missing = append(missing, top)
		parent := filepath.Dir(top)
		if parent == top {
			break
		}
		top = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create dir %s: %w", missing[i], err)
		}
	}
	// fsync each parent of a created directory, from the top down, and
	// the directory itself (an empty new directory has nothing to sync,
	// but one that existed may hold names not yet durable; cheap).
	for i := len(missing) - 1; i >= 0; i-- {
		if err := SyncParent(missing[i]); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile replaces path with data atomically and durably: the data goes
// to a temporary file in the same directory, is fsynced, renamed over path
// and the directory fsynced. After a crash path holds the old contents or
// the new, never a mix. The file gets mode perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, false)
}

// CreateFile is WriteFile for a file that must not exist yet: the
// temporary file is hard-linked to path, which fails with an error
// satisfying errors.Is(err, fs.ErrExist) if path exists (a published key
// is never replaced, for example).
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, true)
}

func write(path string, data []byte, perm fs.FileMode, exclusive bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if err != nil {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if exclusive {
		// Link, which fails if path exists (rename would replace it);
		// the temporary name goes before the directory fsync, so that
		// neither name outlives the other after a crash.
		if err := os.Link(tmp, path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := os.Remove(tmp); err != nil {
			return fmt.Errorf("write %s: remove temporary file: %w", path, err)
		}
	} else if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	return SyncDir(dir)
}

// CopyFile copies src to dst, which must not exist, and fsyncs dst's data.
// The caller fsyncs dst's directory (SyncDir) once its files are in place,
// so a copy of many files pays one directory fsync.
func CopyFile(src, dst string) error {
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

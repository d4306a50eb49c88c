package mailfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
)

// ParseInfo returns the flags of a Maildir file name's info part
// (":2,FLAGS", or "!2,FLAGS" as some systems write where ':' is not
// allowed): D \Draft, F \Flagged, P passed, R \Answered, S \Seen, T
// \Deleted (trashed). Unknown letters (lowercase keyword letters of Dovecot)
// are ignored. ok is false when the name has no version 2 info.
func ParseInfo(name string) (flags Flags, ok bool) {
	i := strings.LastIndexAny(name, ":!")
	if i < 0 {
		return 0, false
	}
	info := name[i+1:]
	letters, found := strings.CutPrefix(info, "2,")
	if !found {
		return 0, false
	}
	for i := 0; i < len(letters); i++ {
		switch letters[i] {
		case 'D':
			flags |= Draft
		case 'F':
			flags |= Flagged
		case 'P':
			flags |= Passed
		case 'R':
			flags |= Answered
		case 'S':
			flags |= Seen
		case 'T':
			flags |= Deleted
		}
	}
	return flags, true
}

// MaildirEntry is one message file of a Maildir.
type MaildirEntry struct {
	// Path is the file's path.
	Path string
	// Flags are from the file name's info.
	Flags Flags
	// Date is the file's modification time (the delivery time by
	// convention).
	Date time.Time
	// Size is the file size.
	Size int64
	// stamp is the leading timestamp of the name (seconds), for order.
	stamp int64
	name  string
}

// ListMaildir lists the messages in dir's cur/ and new/, oldest first: by
// the leading timestamp of their names (the delivery time in seconds), then
// by name. Files whose name starts with "." are skipped. A dir without cur/
// and new/ is an error.
func ListMaildir(dir string) ([]MaildirEntry, error) {
	var out []MaildirEntry
	found := false
	for _, sub := range []string{"cur", "new"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read maildir %s: %w", dir, err)
		}
		found = true
		for _, e := range ents {
			name := e.Name()
			// Regular files, and symbolic links (read through when
			// the message is opened).
			if strings.HasPrefix(name, ".") || !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("read maildir %s: %w", dir, err)
			}
			flags, _ := ParseInfo(name)
			stamp, _ := strconv.ParseInt(name[:strings.IndexFunc(name+".", func(r rune) bool { return r < '0' || r > '9' })], 10, 64)
			out = append(out, MaildirEntry{Path: filepath.Join(dir, sub, name), Flags: flags, Date: info.ModTime(), Size: info.Size(), stamp: stamp, name: name})
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is not a Maildir (no cur/ or new/)", dir)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].stamp != out[j].stamp {
			return out[i].stamp < out[j].stamp
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// MaildirFolder is a Maildir++ folder of a Maildir.
type MaildirFolder struct {
	// Levels are the folder's name split at its hierarchy dots, as on
	// disk (Dovecot and Courier write them in modified UTF-7). The root
	// Maildir (the inbox) has none.
	Levels []string
	// Dir is the folder's directory.
	Dir string
}

// MaildirFolders returns the root Maildir (Levels nil) and its Maildir++
// subfolders: directories ".Sent", ".Foo.Bar" holding cur/ or new/, whose
// names split at dots into levels (["Sent"], ["Foo", "Bar"]). Folders come
// in name order, the root first.
func MaildirFolders(root string) ([]MaildirFolder, error) {
	out := []MaildirFolder{{Dir: root}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read maildir %s: %w", root, err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || len(name) < 2 || name[0] != '.' || name == ".." {
			continue
		}
		dir := filepath.Join(root, name)
		if !isMaildir(dir) {
			continue
		}
		levels := strings.Split(name[1:], ".")
		bad := false
		for _, l := range levels {
			if l == "" {
				bad = true
			}
		}
		if bad {
			return nil, fmt.Errorf("maildir folder %q has an empty name level", name)
		}
		out = append(out, MaildirFolder{Levels: levels, Dir: dir})
	}
	return out, nil
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// IsMaildir reports whether dir holds cur/ or new/.
func IsMaildir(dir string) bool { return isMaildir(dir) }

// FolderDir is the Maildir++ directory below root for a folder of the given
// name levels: root itself for none, root/.A.B for ["A", "B"]. A level
// holding a "." or "/" cannot be represented and is an error.
func FolderDir(root string, levels []string) (string, error) {
	if len(levels) == 0 {
		return root, nil
	}
	for _, l := range levels {
		if l == "" || strings.ContainsAny(l, "./") {
			return "", fmt.Errorf("mailbox level %q cannot be a Maildir++ folder name", l)
		}
	}
	return filepath.Join(root, "."+strings.Join(levels, ".")), nil
}

// maildirSyncEvery is how many files a MaildirWriter renames into cur/
// between directory fsyncs.
const maildirSyncEvery = 500

// MaildirWriter writes messages into a Maildir's cur/ (creating the
// Maildir). Each file is written in tmp/, fsynced, given its date as
// modification time and renamed into cur/ under a unique name with its
// flags; cur/ is fsynced every 500 files and at Close.
type MaildirWriter struct {
	dir      string
	unsynced int
	host     string
	prefix   string
}

var maildirSeq atomic.Uint64

// NewMaildirWriter creates (if needed) the Maildir dir with cur/, new/
// and tmp/ and returns a writer into it.
func NewMaildirWriter(dir string) (*MaildirWriter, error) {
	for _, d := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create maildir: %w", err)
		}
	}
	// The new names must survive a crash before files go below them.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := safeio.SyncDir(d); err != nil {
			return nil, err
		}
	}
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", `\057`, ":", `\072`, "!", `\041`).Replace(host)
	if host == "" {
		host = "localhost"
	}
	var rb [4]byte
	rand.Read(rb[:])
	return &MaildirWriter{dir: dir, host: host, prefix: fmt.Sprintf("P%dR%s", os.Getpid(), hex.EncodeToString(rb[:]))}, nil
}

// Write writes one message (its bytes as they should be in the file) with
// its flags and date, and returns the new file's path.
func (w *MaildirWriter) Write(r io.Reader, flags Flags, date time.Time) (string, int64, error) {
	if date.IsZero() {
		date = time.Now()
	}
	base := fmt.Sprintf("%d.M%06d%sQ%d.%s", date.Unix(), date.Nanosecond()/1000, w.prefix, maildirSeq.Add(1), w.host)
	tmp := filepath.Join(w.dir, "tmp", base)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("create maildir file: %w", err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp, date, date)
	}
	final := filepath.Join(w.dir, "cur", base+":2,"+flags.maildirLetters())
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("write maildir file: %w", err)
	}
	w.unsynced++
	if w.unsynced >= maildirSyncEvery {
		if err := w.Sync(); err != nil {
			return "", 0, err
		}
	}
	return final, n, nil
}

// Sync makes the names written so far durable (fsyncs cur/).
func (w *MaildirWriter) Sync() error {
	if w.unsynced == 0 {
		return nil
	}
	if err := safeio.SyncDir(filepath.Join(w.dir, "cur")); err != nil {
		return err
	}
	w.unsynced = 0
	return nil
}

// Close syncs what is left.
func (w *MaildirWriter) Close() error { return w.Sync() }

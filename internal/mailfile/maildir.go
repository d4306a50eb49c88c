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
	// Name is the file name's unique part, without its info.
	Name string
	// Letters are the letters of the name's info (after ":2,"), as they
	// are, custom (Dovecot keyword) letters included; Flags are those
	// this package knows.
	Letters string
	Flags   Flags
	// Date is the file's modification time (the delivery time by
	// convention).
	Date time.Time
	// Size is the file size.
	Size int64
	// stamp is the leading timestamp of the name (seconds), for order.
	stamp int64
	name  string
}

// newEntry describes the file name in directory sub of a Maildir dir.
func newEntry(dir, sub, name string, info fs.FileInfo) MaildirEntry {
	e := MaildirEntry{Path: filepath.Join(dir, sub, name), Name: name, Date: info.ModTime(), Size: info.Size(), name: name}
	e.Flags, _ = ParseInfo(name)
	if i := strings.LastIndexAny(name, ":!"); i >= 0 && strings.HasPrefix(name[i+1:], "2,") {
		e.Name, e.Letters = name[:i], name[i+3:]
	}
	e.stamp, _ = strconv.ParseInt(name[:strings.IndexFunc(name+".", func(r rune) bool { return r < '0' || r > '9' })], 10, 64)
	return e
}

// ListMaildir lists the messages in dir's cur/ and new/, oldest first: by
// the leading timestamp of their names (the delivery time in seconds), then
// by name. Files whose name starts with "." are skipped. A dir without cur/
// and new/ is an error.
func ListMaildir(dir string) ([]MaildirEntry, error) {
	out, err := readMaildir(dir)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].stamp != out[j].stamp {
			return out[i].stamp < out[j].stamp
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// readMaildir lists the messages in dir's cur/ and new/, unsorted.
func readMaildir(dir string) ([]MaildirEntry, error) {
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
			out = append(out, newEntry(dir, sub, name, info))
		}
	}
	if !found {
		return nil, fmt.Errorf("%s is not a Maildir (no cur/ or new/)", dir)
	}
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
	md       *Maildir
	unsynced int
}

// NewMaildirWriter creates (if needed) the Maildir dir with cur/, new/
// and tmp/ and returns a writer into it.
func NewMaildirWriter(dir string) (*MaildirWriter, error) {
	md, err := OpenMaildir(dir)
	if err != nil {
		return nil, err
	}
	return &MaildirWriter{md: md}, nil
}

// Write writes one message (its bytes as they should be in the file) with
// its flags and date, and returns the new file's path.
func (w *MaildirWriter) Write(r io.Reader, flags Flags, date time.Time) (string, int64, error) {
	if date.IsZero() {
		date = time.Now()
	}
	t, err := w.md.writeTmp(r, date)
	if err != nil {
		return "", 0, err
	}
	tmp := t.path()
	err = os.Chtimes(tmp, date, date)
	final := filepath.Join(w.md.Path, "cur", t.Name+":2,"+flags.maildirLetters())
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		t.Abort()
		return "", 0, fmt.Errorf("write maildir file: %w", err)
	}
	w.unsynced++
	if w.unsynced >= maildirSyncEvery {
		if err := w.Sync(); err != nil {
			return "", 0, err
		}
	}
	return final, t.Size, nil
}

// Sync makes the names written so far durable (fsyncs cur/).
func (w *MaildirWriter) Sync() error {
	if w.unsynced == 0 {
		return nil
	}
	if err := safeio.SyncDir(filepath.Join(w.md.Path, "cur")); err != nil {
		return err
	}
	w.unsynced = 0
	return nil
}

// Close syncs what is left.
func (w *MaildirWriter) Close() error { return w.Sync() }

// Maildir is one Maildir folder (tmp/, new/, cur/) that a program keeps
// mail in, message by message: each message is written in tmp/ and
// fsynced (WriteTmp), then renamed into new/ or cur/ and that directory
// fsynced (Commit, CommitCur), so a message is never seen half-written and
// is durable once committed. The directories' names are durable from
// OpenMaildir on (safeio.MkdirAll).
type Maildir struct {
	Path string
}

// OpenMaildir creates (if needed) and returns the Maildir at path.
func OpenMaildir(path string) (*Maildir, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := safeio.MkdirAll(filepath.Join(path, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	return &Maildir{Path: path}, nil
}

// Folder opens the Maildir++ subfolder name (".Sent" for "Sent"; the
// caller joins hierarchy levels with ".").
func (m *Maildir) Folder(name string) (*Maildir, error) {
	return OpenMaildir(filepath.Join(m.Path, "."+name))
}

var maildirSeq atomic.Uint64

var maildirHost, maildirProc = func() (string, string) {
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", `\057`, ":", `\072`, "!", `\041`).Replace(host)
	if host == "" {
		host = "localhost"
	}
	var rb [4]byte
	rand.Read(rb[:])
	return host, fmt.Sprintf("P%dR%s", os.Getpid(), hex.EncodeToString(rb[:]))
}()

// uniqueName is a new Maildir unique name (no info part) whose leading
// timestamp is t.
func uniqueName(t time.Time) string {
	return fmt.Sprintf("%d.M%06d%sQ%d.%s", t.Unix(), t.Nanosecond()/1000, maildirProc, maildirSeq.Add(1), maildirHost)
}

// MaildirTmp is a message written and fsynced in tmp/, not yet visible.
type MaildirTmp struct {
	m *Maildir
	// Name is the message's unique name.
	Name string
	// Size is its size in bytes.
	Size int64
}

func (t *MaildirTmp) path() string { return filepath.Join(t.m.Path, "tmp", t.Name) }

// WriteTmp copies r into a new fsynced file in tmp/.
func (m *Maildir) WriteTmp(r io.Reader) (*MaildirTmp, error) {
	return m.writeTmp(r, time.Now())
}

func (m *Maildir) writeTmp(r io.Reader, stamp time.Time) (*MaildirTmp, error) {
	t := &MaildirTmp{m: m, Name: uniqueName(stamp)}
	p := t.path()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	t.Size, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return nil, fmt.Errorf("maildir: write %s: %w", p, err)
	}
	return t, nil
}

// Commit moves the message into new/ and fsyncs the directory.
func (t *MaildirTmp) Commit() error {
	if err := os.Rename(t.path(), filepath.Join(t.m.Path, "new", t.Name)); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return safeio.SyncDir(filepath.Join(t.m.Path, "new"))
}

// CommitCur moves the message into cur/ with the info letters given (e.g.
// "S") and fsyncs the directory.
func (t *MaildirTmp) CommitCur(letters string) error {
	if err := os.Rename(t.path(), filepath.Join(t.m.Path, "cur", t.Name+":2,"+letters)); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return safeio.SyncDir(filepath.Join(t.m.Path, "cur"))
}

// Abort removes the tmp file.
func (t *MaildirTmp) Abort() { os.Remove(t.path()) }

// Deliver writes r durably into new/ and returns its unique name.
func (m *Maildir) Deliver(r io.Reader) (string, error) {
	t, err := m.WriteTmp(r)
	if err != nil {
		return "", err
	}
	if err := t.Commit(); err != nil {
		t.Abort()
		return "", err
	}
	return t.Name, nil
}

// Has reports whether a message with this unique name is in new/ or cur/.
func (m *Maildir) Has(name string) bool {
	if _, err := os.Stat(filepath.Join(m.Path, "new", name)); err == nil {
		return true
	}
	matches, _ := filepath.Glob(filepath.Join(m.Path, "cur", globEscape(name)+":*"))
	if len(matches) > 0 {
		return true
	}
	_, err := os.Stat(filepath.Join(m.Path, "cur", name))
	return err == nil
}

func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// List returns the messages in new/ and cur/ in the order they arrived
// here: by modification time, then unique name. (ListMaildir orders by the
// names' timestamps instead: the time they were first delivered, for an
// import.)
func (m *Maildir) List() ([]MaildirEntry, error) {
	out, err := readMaildir(m.Path)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Date.Equal(out[j].Date) {
			return out[i].Date.Before(out[j].Date)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// SetLetters renames a message into cur/ with the info letters given
// (sorted, as the Maildir specification wants them) and returns it as it
// is now. The rename's durability is left to the next directory fsync.
func (m *Maildir) SetLetters(e MaildirEntry, letters string) (MaildirEntry, error) {
	b := []byte(letters)
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	np := filepath.Join(m.Path, "cur", e.Name+":2,"+string(b))
	if err := os.Rename(e.Path, np); err != nil {
		return e, fmt.Errorf("maildir: %w", err)
	}
	e.Path, e.Letters = np, string(b)
	e.Flags, _ = ParseInfo(np)
	return e, nil
}

// MarkSeen moves a message from new/ to cur/ and adds the S letter.
func (m *Maildir) MarkSeen(e MaildirEntry) (MaildirEntry, error) {
	if strings.Contains(e.Letters, "S") && filepath.Base(filepath.Dir(e.Path)) == "cur" {
		return e, nil
	}
	return m.SetLetters(e, e.Letters+"S")
}

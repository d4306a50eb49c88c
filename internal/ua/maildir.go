package ua

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
)

// Maildir is one Maildir folder (tmp, new, cur). Deliver writes a message
// durably: tmp file, fsync, rename into new, fsync of new.
type Maildir struct {
	Path string
}

// OpenMaildir creates (if needed) and returns the Maildir at path.
func OpenMaildir(path string) (*Maildir, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(path, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	return &Maildir{Path: path}, nil
}

// Folder returns the Maildir++ subfolder name (".Sent" for "Sent").
func (m *Maildir) Folder(name string) (*Maildir, error) {
	return OpenMaildir(filepath.Join(m.Path, "."+name))
}

var deliverySeq atomic.Uint64

// UniqueName returns a new Maildir unique name (no info part).
func UniqueName() string {
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(host)
	now := time.Now()
	return fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), deliverySeq.Add(1), host)
}

// Tmp is a message written and fsynced in tmp/, not yet visible.
type Tmp struct {
	m    *Maildir
	Name string
	Size int64
}

// WriteTmp copies r into a new fsynced file in tmp/.
func (m *Maildir) WriteTmp(r io.Reader) (*Tmp, error) {
	name := UniqueName()
	p := filepath.Join(m.Path, "tmp", name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	n, err := io.Copy(f, r)
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
	return &Tmp{m: m, Name: name, Size: n}, nil
}

// Commit moves the message into new/ and fsyncs the directory.
func (t *Tmp) Commit() error {
	if err := os.Rename(filepath.Join(t.m.Path, "tmp", t.Name), filepath.Join(t.m.Path, "new", t.Name)); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return safeio.SyncDir(filepath.Join(t.m.Path, "new"))
}

// CommitCur moves the message into cur/ with Maildir flags (e.g. "S") and
// fsyncs the directory.
func (t *Tmp) CommitCur(flags string) error {
	if err := os.Rename(filepath.Join(t.m.Path, "tmp", t.Name), filepath.Join(t.m.Path, "cur", t.Name+":2,"+flags)); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return safeio.SyncDir(filepath.Join(t.m.Path, "cur"))
}

// MarkSeen moves a message from new/ to cur/ and adds the S flag.
func (m *Maildir) MarkSeen(e Entry) (Entry, error) {
	if strings.Contains(e.Flags, "S") && filepath.Base(filepath.Dir(e.Path)) == "cur" {
		return e, nil
	}
	flags := []byte(e.Flags + "S")
	sort.Slice(flags, func(i, j int) bool { return flags[i] < flags[j] })
	np := filepath.Join(m.Path, "cur", e.Name+":2,"+string(flags))
	if err := os.Rename(e.Path, np); err != nil {
		return e, fmt.Errorf("maildir: %w", err)
	}
	e.Path, e.Flags = np, string(flags)
	return e, nil
}

// Abort removes the tmp file.
func (t *Tmp) Abort() { os.Remove(filepath.Join(t.m.Path, "tmp", t.Name)) }

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

// Entry is one message file of a Maildir.
type Entry struct {
	Path    string
	Name    string // unique part
	Flags   string // the letters after ":2,"
	ModTime time.Time
}

// List returns the messages in new/ and cur/, oldest first (by unique name
// time, then name).
func (m *Maildir) List() ([]Entry, error) {
	var out []Entry
	for _, sub := range []string{"new", "cur"} {
		des, err := os.ReadDir(filepath.Join(m.Path, sub))
		if err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
		for _, de := range des {
			if de.IsDir() || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			e := Entry{Path: filepath.Join(m.Path, sub, de.Name()), Name: de.Name()}
			if name, info, ok := strings.Cut(de.Name(), ":2,"); ok {
				e.Name, e.Flags = name, info
			}
			if fi, err := de.Info(); err == nil {
				e.ModTime = fi.ModTime()
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ModTime.Equal(out[j].ModTime) {
			return out[i].ModTime.Before(out[j].ModTime)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Ledger remembers which server messages (by key: a POP3 UIDL or an IMAP
// mailbox/UIDVALIDITY/UID) are stored in the Maildir. It is an append-only
// file of "P key name" (tmp written, about to enter new/) and "D key"
// (committed) lines, each fsynced. On open a pending key whose file made it
// into the Maildir counts as done; the file is then compacted atomically.
type Ledger struct {
	path string
	md   *Maildir
	done map[string]string // key -> Maildir unique name ("" if unknown)
	f    *os.File
}

// OpenLedger loads the ledger at path for md.
func OpenLedger(path string, md *Maildir) (*Ledger, error) {
	l := &Ledger{path: path, md: md, done: map[string]string{}}
	pending := map[string]string{}
	if f, err := os.Open(path); err == nil {
		br := bufio.NewReader(f)
		for {
			line, err := br.ReadString('\n')
			if err == io.EOF {
				break // a torn last line (crash mid-append) is ignored
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("read ledger %s: %w", path, err)
			}
			fields := strings.Fields(line)
			switch {
			case len(fields) == 3 && fields[0] == "P":
				pending[fields[1]] = fields[2]
			case (len(fields) == 2 || len(fields) == 3) && fields[0] == "D":
				l.done[fields[1]] = ""
				if len(fields) == 3 {
					l.done[fields[1]] = fields[2]
				}
				delete(pending, fields[1])
			}
		}
		f.Close()
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	for key, name := range pending {
		if md.Has(name) {
			l.done[key] = name
		}
	}
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

// Has reports whether key is stored.
func (l *Ledger) Has(key string) bool { _, ok := l.done[key]; return ok }

// Name returns the Maildir unique name stored under key, if known.
func (l *Ledger) Name(key string) string { return l.done[key] }

// Keys returns the stored keys.
func (l *Ledger) Keys() []string {
	keys := make([]string, 0, len(l.done))
	for k := range l.done {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Retain drops the keys keep rejects and compacts the file.
func (l *Ledger) Retain(keep func(key string) bool) error {
	for k := range l.done {
		if !keep(k) {
			delete(l.done, k)
		}
	}
	return l.rewrite()
}

func (l *Ledger) rewrite() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	var b strings.Builder
	for _, k := range l.Keys() {
		if n := l.done[k]; n != "" {
			fmt.Fprintf(&b, "D %s %s\n", k, n)
		} else {
			fmt.Fprintf(&b, "D %s\n", k)
		}
	}
	if err := safeio.WriteFile(l.path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write ledger: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	l.f = f
	return nil
}

func (l *Ledger) append(line string) error {
	if _, err := l.f.WriteString(line); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Store writes r into the Maildir under key, durably and recorded, in the
// order that makes a crash at any point neither lose nor duplicate it.
// It returns the number of bytes written.
func (l *Ledger) Store(key string, r io.Reader) (int64, error) {
	return l.StoreFlags(key, r, "")
}

// StoreFlags is Store for a message with Maildir flags (e.g. "S"): it goes
// into cur/ instead of new/.
func (l *Ledger) StoreFlags(key string, r io.Reader, flags string) (int64, error) {
	if strings.ContainsAny(key, " \t\r\n") || key == "" {
		return 0, fmt.Errorf("ledger: bad key %q", key)
	}
	t, err := l.md.WriteTmp(r)
	if err != nil {
		return 0, err
	}
	if err := l.append("P " + key + " " + t.Name + "\n"); err != nil {
		t.Abort()
		return 0, err
	}
	commit := t.Commit
	if flags != "" {
		commit = func() error { return t.CommitCur(flags) }
	}
	if err := commit(); err != nil {
		t.Abort()
		return 0, err
	}
	if err := l.append("D " + key + " " + t.Name + "\n"); err != nil {
		return 0, err
	}
	l.done[key] = t.Name
	return t.Size, nil
}

// Close closes the ledger file.
func (l *Ledger) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

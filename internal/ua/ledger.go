package ua

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/jodmai/jodmai/internal/mailfile"
	"github.com/jodmai/jodmai/internal/safeio"
)

// Ledger remembers which server messages (by key: a POP3 UIDL or an IMAP
// mailbox/UIDVALIDITY/UID) are stored in the Maildir. It is an append-only
// file of "P key name" (tmp written, about to enter new/) and "D key"
// (committed) lines, each fsynced. On open a pending key whose file made it
// into the Maildir counts as done; the file is then compacted atomically.
type Ledger struct {
	path string
	md   *mailfile.Maildir
	done map[string]string // key -> Maildir unique name ("" if unknown)
	f    *os.File
}

// OpenLedger loads the ledger at path for md.
func OpenLedger(path string, md *mailfile.Maildir) (*Ledger, error) {
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

package store

// Per-account usage without opening accounts.
//
// Each index keeps its usage (bytes, messages) in two counters rows that
// triggers on messages maintain (migration 7), so reading it is one row,
// not a scan. The Store keeps every account's last known usage in memory
// (usageTable) and sums it by group (the server groups by domain), so a
// metrics scrape costs O(groups) and opens nothing:
//
//   - an account's entry is set when it opens and when it closes, and
//     refreshed for open accounts at every janitor round (at most
//     usageRefresh apart), so a number lags its index by that at most;
//   - the table is written to <data>/usage (one atomic file) every round
//     it changed and at Close, which marks it clean. At Open it is read
//     in the background (start time does not grow with the accounts).
//     Unless it was clean, a background pass then reads the usage of
//     every account that is not open from its index, without the open
//     set (so it evicts nobody): the numbers converge after a crash.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/sqlite"
)

// usageRefresh bounds how long an open account's usage in the table may
// lag its index.
const usageRefresh = 30 * time.Second

// Usage is the storage some accounts use.
type Usage struct {
	Bytes, Messages int64
}

type usageEntry struct {
	Usage
	group   string
	grouped bool
	gen     uint64 // bumped at every set from an open account
}

type usageTable struct {
	mu     sync.Mutex
	path   string
	acct   map[int64]*usageEntry
	groups map[string]*Usage
	dirty  bool
	gen    uint64
	loaded chan struct{} // closed once the file was read
	// complete: every account's usage is known (the file was clean, or
	// the scan after an unclean one finished); only then may Close
	// write the file as clean.
	complete bool
	// stale: something changed indexes behind the table's back (a
	// repair), so the file must not be written clean.
	stale bool
	// removed are accounts RemoveAccount took out: the scan must not
	// bring them back from an index it read just before.
	removed map[int64]bool
	// ungrouped are the accounts UsageByGroup has yet to group.
	ungrouped map[int64]bool
	groupFn   func(ctx context.Context, id int64) (string, error)
}

func (t *usageTable) init(dataDir string) {
	t.path = filepath.Join(dataDir, "usage")
	t.acct = map[int64]*usageEntry{}
	t.groups = map[string]*Usage{}
	t.removed = map[int64]bool{}
	t.ungrouped = map[int64]bool{}
	t.loaded = make(chan struct{})
}

// setLocked records account id's usage; fromOpen tells a value read from
// the account's open handle (newer than any file or scan).
func (t *usageTable) setLocked(id int64, u Usage, fromOpen bool) {
	e := t.acct[id]
	if e == nil {
		e = &usageEntry{}
		t.acct[id] = e
		t.ungrouped[id] = true
	}
	if fromOpen {
		t.gen++
		e.gen = t.gen
	}
	if e.Usage == u && e.grouped {
		return
	}
	if e.grouped {
		g := t.groups[e.group]
		g.Bytes += u.Bytes - e.Bytes
		g.Messages += u.Messages - e.Messages
	}
	if e.Usage != u {
		t.dirty = true
	}
	e.Usage = u
}

func (t *usageTable) removeLocked(id int64) {
	e := t.acct[id]
	if e == nil {
		return
	}
	if e.grouped {
		g := t.groups[e.group]
		g.Bytes -= e.Bytes
		g.Messages -= e.Messages
	}
	delete(t.acct, id)
	delete(t.ungrouped, id)
	t.removed[id] = true
	t.dirty = true
}

// readUsage reads an index's usage counters.
func readUsage(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (Usage, error) {
	var u Usage
	err := q.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name='bytes'), (SELECT value FROM counters WHERE name='messages')`).Scan(&u.Bytes, &u.Messages)
	if err != nil {
		return Usage{}, fmt.Errorf("read usage: %w", err)
	}
	return u, nil
}

// noteUsage records an open account's usage in the table; final is its
// close's note, after which no other (older) read may replace it.
func (a *Account) noteUsage(ctx context.Context, final bool) {
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	if a.usageFinal {
		return
	}
	a.usageFinal = final
	u, err := readUsage(ctx, a.db.R)
	if err != nil {
		a.s.log.Warn("store: read account usage", "account", a.ID, "err", err)
		return
	}
	t := &a.s.usage
	t.mu.Lock()
	t.setLocked(a.ID, u, true)
	t.mu.Unlock()
}

// refreshUsage notes the usage of every open account and writes the
// table if it changed (the janitor calls it).
func (s *Store) refreshUsage() {
	s.mu.Lock()
	open := make([]*Account, 0, len(s.accts))
	for _, a := range s.accts {
		open = append(open, a)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), usageRefresh)
	defer cancel()
	for _, a := range open {
		a.noteUsage(ctx, false)
	}
	s.saveUsage(false)
}

// saveUsage writes the table when it changed (or always, when clean:
// Close marks it so).
func (s *Store) saveUsage(clean bool) {
	t := &s.usage
	select {
	case <-t.loaded:
	default:
		return // not read yet: writing now would lose what is in the file
	}
	t.mu.Lock()
	if !t.dirty && !clean {
		t.mu.Unlock()
		return
	}
	var b bytes.Buffer
	if clean && t.complete && !t.stale {
		b.WriteString("jodmai-usage 1 clean\n")
	} else {
		b.WriteString("jodmai-usage 1 running\n")
	}
	for id, e := range t.acct {
		fmt.Fprintf(&b, "%d %d %d\n", id, e.Bytes, e.Messages)
	}
	t.dirty = false
	t.mu.Unlock()
	if err := safeio.WriteFile(t.path, b.Bytes(), 0o600); err != nil {
		s.log.Warn("store: write usage table", "err", err)
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
	}
}

// loadUsage reads the usage file into the table (entries set from open
// accounts meanwhile win) and, unless the file was written by a clean
// Close, reads every account not open from its index. It runs in the
// background from Open.
func (s *Store) loadUsage(ctx context.Context) {
	t := &s.usage
	clean, err := s.readUsageFile()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("store: read usage table; reading every account's usage", "err", err)
	}
	// Mark the file as running at once, so a crash from here on is
	// noticed at the next start.
	t.mu.Lock()
	t.dirty = true
	t.complete = clean
	t.mu.Unlock()
	close(t.loaded)
	s.saveUsage(false)
	if clean {
		return
	}
	ids, err := AccountIDs(s.dir)
	if err != nil {
		s.log.Warn("store: list accounts for usage", "err", err)
		return
	}
	for _, id := range ids {
		select {
		case <-ctx.Done():
			return
		default:
		}
		t.mu.Lock()
		var gen uint64
		if e := t.acct[id]; e != nil {
			gen = e.gen
		}
		t.mu.Unlock()
		u, err := s.readClosedUsage(ctx, id)
		if err != nil {
			s.log.Warn("store: read account usage", "account", id, "err", err)
			continue
		}
		t.mu.Lock()
		if e := t.acct[id]; (e == nil && !t.removed[id]) || (e != nil && e.gen == gen) {
			t.setLocked(id, u, false)
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.complete = true
	t.mu.Unlock()
	s.saveUsage(false)
	s.log.Info("store: usage of every account read", "accounts", len(ids))
}

// readClosedUsage reads an account's usage from its index without opening
// the account (read-only; an index not yet migrated is summed).
func (s *Store) readClosedUsage(ctx context.Context, id int64) (Usage, error) {
	path := filepath.Join(s.accountDir(id), "index.db")
	if _, err := os.Stat(path); err != nil {
		return Usage{}, err
	}
	db, err := sqlite.OpenFile(path, true)
	if err != nil {
		return Usage{}, err
	}
	defer db.Close()
	u, err := readUsage(ctx, db)
	if err == nil {
		return u, nil
	}
	err = db.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0), count(*) FROM messages`).Scan(&u.Bytes, &u.Messages)
	return u, err
}

func (s *Store) readUsageFile() (clean bool, err error) {
	data, err := os.ReadFile(s.usage.path)
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "jodmai-usage 1 ") {
		return false, fmt.Errorf("%s: not a usage table", s.usage.path)
	}
	clean = sc.Text() == "jodmai-usage 1 clean"
	t := &s.usage
	t.mu.Lock()
	defer t.mu.Unlock()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return false, fmt.Errorf("%s: bad line %q", t.path, sc.Text())
		}
		id, err1 := strconv.ParseInt(f[0], 10, 64)
		b, err2 := strconv.ParseInt(f[1], 10, 64)
		n, err3 := strconv.ParseInt(f[2], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return false, fmt.Errorf("%s: %w", t.path, err)
		}
		if t.acct[id] == nil {
			t.setLocked(id, Usage{Bytes: b, Messages: n}, false)
		}
	}
	return clean, sc.Err()
}

// usageStale makes the next start read every account's usage again
// (check's repairs change indexes without the usage table).
func (s *Store) usageStale() {
	s.usage.mu.Lock()
	s.usage.stale = true
	s.usage.mu.Unlock()
}

// SetUsageGroup sets how UsageByGroup groups accounts (the server: by
// domain). fn is called once per account, at the first UsageByGroup
// after the store learns of it.
func (s *Store) SetUsageGroup(fn func(ctx context.Context, id int64) (string, error)) {
	s.usage.mu.Lock()
	s.usage.groupFn = fn
	s.usage.mu.Unlock()
}

// UsageByGroup returns the storage used by the accounts of each group
// (SetUsageGroup), as last noted: an open account's may lag its index by
// up to 30 seconds. It opens no account; it costs O(groups) plus a group
// lookup for each account new since the last call.
func (s *Store) UsageByGroup(ctx context.Context) (map[string]Usage, error) {
	t := &s.usage
	t.mu.Lock()
	fn := t.groupFn
	var todo []int64
	if fn != nil {
		for id := range t.ungrouped {
			todo = append(todo, id)
		}
	}
	t.mu.Unlock()
	var firstErr error
	for _, id := range todo {
		g, err := fn(ctx, id)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("group of account %d: %w", id, err)
			}
			continue
		}
		t.mu.Lock()
		if e := t.acct[id]; e != nil && !e.grouped {
			delete(t.ungrouped, id)
			e.group, e.grouped = g, true
			u := t.groups[g]
			if u == nil {
				u = &Usage{}
				t.groups[g] = u
			}
			u.Bytes += e.Bytes
			u.Messages += e.Messages
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Usage, len(t.groups))
	for g, u := range t.groups {
		out[g] = *u
	}
	return out, firstErr
}

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
//   - the server (TrackUsage) keeps the table in <data>/usage (one atomic
//     file, written every round it changed and at Close), with the time
//     each number was read. It reads the file at start in the background
//     (start time does not grow with the accounts), then checks it
//     against the index files' modification times: an account whose
//     index changed since (a crash, an admin command, a repair) is read
//     from its index, read-only and without the open set (it evicts
//     nobody). The janitor repeats that check every usageCheckEvery
//     rounds, and drops accounts whose directory is gone, so the numbers
//     converge whatever changed the indexes.

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
	noted   int64  // when the value was read (Unix ns)
}

type usageTable struct {
	mu     sync.Mutex
	path   string
	acct   map[int64]*usageEntry
	groups map[string]*Usage
	dirty  bool
	gen    uint64
	loaded chan struct{} // closed once the file was read
	// tracking: TrackUsage was called; rounds counts refreshUsage calls.
	tracking bool
	rounds   int
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
		e.noted = time.Now().UnixNano()
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

// removeLocked drops a removed account for good.
func (t *usageTable) removeLocked(id int64) {
	t.dropLocked(id)
	t.removed[id] = true
}

// dropLocked takes account id out of the table and its group.
func (t *usageTable) dropLocked(id int64) {
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

// usageCheckEvery: every this many janitor rounds, the closed accounts'
// usage is checked against their index files (checkUsage).
const usageCheckEvery = 10

// TrackUsage makes the Store keep the usage table in <data>/usage: it
// reads it now, in the background, and checks it against the accounts'
// index files; writes it as it changes and at Close. One process per
// data directory does (the server); a Store without it (an admin
// command) leaves the file alone, and the server notices what it
// changed by the index files' times. Call it once, right after Open.
func (s *Store) TrackUsage() {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.usageStop, s.usageDone = stop, done
	s.mu.Unlock()
	s.usage.mu.Lock()
	s.usage.tracking = true
	s.usage.mu.Unlock()
	go func() {
		defer close(done)
		s.loadUsage(ctx)
	}()
}

// refreshUsage notes the usage of every open account, checks the closed
// ones every usageCheckEvery rounds, and writes the table if it changed
// (the janitor calls it).
func (s *Store) refreshUsage() {
	t := &s.usage
	t.mu.Lock()
	tracking := t.tracking
	t.rounds++
	check := t.rounds%usageCheckEvery == 0
	t.mu.Unlock()
	if !tracking {
		return
	}
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
	if check {
		select {
		case <-t.loaded:
			s.checkUsage(ctx)
		default: // loadUsage checks first
		}
	}
	s.saveUsage()
}

// saveUsage writes the table when it changed.
func (s *Store) saveUsage() {
	t := &s.usage
	select {
	case <-t.loaded:
	default:
		return // not read (or not tracked): writing now would lose what is in the file
	}
	t.mu.Lock()
	if !t.dirty {
		t.mu.Unlock()
		return
	}
	var b bytes.Buffer
	b.WriteString("jodmai-usage 2\n")
	for id, e := range t.acct {
		fmt.Fprintf(&b, "%d %d %d %d\n", id, e.Bytes, e.Messages, e.noted)
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
// accounts meanwhile win), then checks it against the index files. It
// runs in the background from TrackUsage.
func (s *Store) loadUsage(ctx context.Context) {
	t := &s.usage
	if err := s.readUsageFile(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("store: read usage table; reading every account's usage", "err", err)
	}
	close(t.loaded)
	n := s.checkUsage(ctx)
	s.saveUsage()
	if n > 0 {
		s.log.Info("store: account usage read from the indexes", "accounts", n)
	}
}

// checkUsage reads the usage of each account that is not open and whose
// index files changed since its usage was noted (a crash, an admin
// command beside the server, a repair), or that the table lacks, and
// drops the accounts whose directory is gone. It costs a directory
// listing and a stat or two per account, and opens only changed indexes,
// read-only and without the open set (it evicts nobody). It returns how
// many indexes it read.
func (s *Store) checkUsage(ctx context.Context) int {
	t := &s.usage
	ents, err := os.ReadDir(filepath.Join(s.dir, "accounts"))
	if err != nil {
		s.log.Warn("store: list accounts for usage", "err", err)
		return 0
	}
	inUse := func(id int64) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.accts[id] != nil || s.busy[id] != nil
	}
	present := make(map[int64]bool, len(ents))
	read := 0
	for _, ent := range ents {
		id, err := strconv.ParseInt(ent.Name(), 10, 64)
		if err != nil || !ent.IsDir() || strconv.FormatInt(id, 10) != ent.Name() {
			continue
		}
		present[id] = true
		if ctx.Err() != nil {
			return read
		}
		if inUse(id) {
			continue
		}
		changed, ok := indexChanged(filepath.Join(s.dir, "accounts", ent.Name()))
		if !ok {
			continue // no index (yet)
		}
		t.mu.Lock()
		e := t.acct[id]
		need := !t.removed[id] && (e == nil || changed > e.noted)
		var gen uint64
		if e != nil {
			gen = e.gen
		}
		t.mu.Unlock()
		if !need {
			continue
		}
		noted := time.Now().UnixNano() // before the read: a change during it is seen next time
		u, err := s.readClosedUsage(ctx, id)
		if err != nil {
			s.log.Warn("store: read account usage", "account", id, "err", err)
			continue
		}
		read++
		t.mu.Lock()
		if e := t.acct[id]; (e == nil && !t.removed[id]) || (e != nil && e.gen == gen) {
			t.setLocked(id, u, false)
			t.acct[id].noted = noted
			t.dirty = true
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	var gone []int64
	for id := range t.acct {
		if !present[id] {
			gone = append(gone, id)
		}
	}
	t.mu.Unlock()
	for _, id := range gone {
		if inUse(id) {
			continue // created since the listing
		}
		t.mu.Lock()
		t.dropLocked(id)
		t.mu.Unlock()
	}
	return read
}

// indexChanged returns the latest modification time of an account's
// index and its WAL, and false when it has no index.
func indexChanged(dir string) (int64, bool) {
	fi, err := os.Stat(filepath.Join(dir, "index.db"))
	if err != nil {
		return 0, false
	}
	t := fi.ModTime().UnixNano()
	if fi, err := os.Stat(filepath.Join(dir, "index.db-wal")); err == nil {
		t = max(t, fi.ModTime().UnixNano())
	}
	return t, true
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

func (s *Store) readUsageFile() error {
	data, err := os.ReadFile(s.usage.path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != "jodmai-usage 2" {
		return fmt.Errorf("%s: not a usage table", s.usage.path)
	}
	t := &s.usage
	t.mu.Lock()
	defer t.mu.Unlock()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			return fmt.Errorf("%s: bad line %q", t.path, sc.Text())
		}
		var v [4]int64
		for i := range f {
			if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
				return fmt.Errorf("%s: %w", t.path, err)
			}
		}
		if t.acct[v[0]] == nil {
			t.setLocked(v[0], Usage{Bytes: v[1], Messages: v[2]}, false)
			t.acct[v[0]].noted = v[3]
		}
	}
	return sc.Err()
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

package store

// Open accounts.
//
// An open account costs a few file descriptors (its index, WAL and
// shared-memory files, for the writer and each pooled reader), SQLite's
// page caches and a committer goroutine. A server with thousands of
// accounts keeps only those in use open, and a bounded number of idle ones
// besides:
//
//   - Store.Account opens an account (or finds it open) and pins it: a
//     pinned account is never closed, so every session, delivery or admin
//     step holds its account for as long as it uses it, then calls
//     Release exactly once.
//   - An account nobody holds is idle. The idle ones are kept in the
//     order they were released; once more than maxOpen accounts are open,
//     the least recently used idle ones are closed, and the janitor closes
//     any idle for longer than idleClose. Pinned accounts may exceed
//     maxOpen (they are bounded by the connections that hold them).
//   - Closing an account applies what its committer still has queued
//     (journaled deliveries included) and makes its index durable (see
//     Account.close), so a journal segment it touched can be retired while
//     it is closed. While an id is being opened or closed it is busy:
//     another Account call for it waits, so one process never has two
//     handles of one account (a reader must wait for the deliveries the
//     one handle has pending).

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/sqlite"
)

const (
	// DefaultMaxOpenAccounts is how many accounts a Store keeps open at
	// most, unless they are all in use (SetOpenLimits).
	DefaultMaxOpenAccounts = 1000
	// DefaultAccountIdle is how long an account nobody uses stays open.
	DefaultAccountIdle = 2 * time.Minute
)

// SetOpenLimits sets how many accounts stay open (maxOpen, at least 1)
// and how long one nobody uses stays open (idle, at least a second). Call
// it before the Store is in use.
func (s *Store) SetOpenLimits(maxOpen int, idle time.Duration) {
	s.mu.Lock()
	s.maxOpen = max(maxOpen, 1)
	s.idleClose = max(idle, time.Second)
	victims := s.evictLocked(len(s.accts) - s.maxOpen)
	s.mu.Unlock()
	s.closeEvicted(victims)
	select {
	case s.janitorWake <- struct{}{}: // it waits by the new idle time
	default:
	}
}

// OpenAccounts is the number of accounts open now, in use or idle.
func (s *Store) OpenAccounts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accts)
}

// Account opens account id (creating its index on first use), or finds it
// open, and pins it open: the caller must call Release once it is done
// with it, and not use it after.
func (s *Store) Account(ctx context.Context, id int64) (*Account, error) {
	if id <= 0 {
		return nil, fmt.Errorf("store: invalid account id %d", id)
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		if a := s.accts[id]; a != nil {
			s.pinLocked(a)
			s.mu.Unlock()
			return a, nil
		}
		if ch := s.busy[id]; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.busy[id] = ch
		// Make room first, so that the descriptors in use stay bounded;
		// the victims close in the background (a close makes the index
		// durable: fsyncs this caller need not wait for).
		victims := s.evictLocked(len(s.accts) + 1 - s.maxOpen)
		s.mu.Unlock()
		go s.closeEvicted(victims)

		a, err := s.openAccount(ctx, id)

		s.mu.Lock()
		delete(s.busy, id)
		close(ch)
		if err == nil {
			if s.closed {
				s.mu.Unlock()
				a.close()
				return nil, ErrClosed
			}
			s.accts[id] = a
			s.pinLocked(a)
		}
		s.mu.Unlock()
		return a, err
	}
}

// Release unpins an account the caller got from Store.Account. Once
// nobody holds it, it may be closed (see open.go).
func (a *Account) Release() {
	s := a.s
	s.mu.Lock()
	if a.refs <= 0 {
		s.mu.Unlock()
		s.log.Error("store: account released more often than opened", "account", a.ID)
		return
	}
	a.refs--
	if a.refs > 0 || s.accts[a.ID] != a {
		s.mu.Unlock()
		return
	}
	a.idleSince = time.Now()
	a.idleElem = s.idle.PushBack(a)
	victims := s.evictLocked(len(s.accts) - s.maxOpen)
	s.mu.Unlock()
	if len(victims) > 0 {
		go s.closeEvicted(victims)
	}
}

func (s *Store) pinLocked(a *Account) {
	a.refs++
	if a.idleElem != nil {
		s.idle.Remove(a.idleElem)
		a.idleElem = nil
	}
}

// evictLocked takes up to n of the least recently used idle accounts out
// of the open set, marks their ids busy and returns them for
// closeEvicted.
func (s *Store) evictLocked(n int) []*Account {
	var out []*Account
	for ; n > 0 && s.idle.Len() > 0; n-- {
		out = append(out, s.takeIdleLocked(s.idle.Front().Value.(*Account)))
	}
	return out
}

func (s *Store) takeIdleLocked(a *Account) *Account {
	s.idle.Remove(a.idleElem)
	a.idleElem = nil
	delete(s.accts, a.ID)
	s.busy[a.ID] = make(chan struct{})
	s.evicting.Add(1)
	return a
}

// closeEvicted closes accounts evictLocked took out and frees their ids.
// An account that could not make its journaled deliveries durable keeps
// the journal from retiring any segment (the next start replays them).
func (s *Store) closeEvicted(victims []*Account) {
	for _, a := range victims {
		if err := a.close(); err != nil {
			s.log.Error("close idle account", "account", a.ID, "err", err)
		}
		if a.exitSyncErr != nil || a.journalFailed {
			s.mu.Lock()
			j := s.journal
			s.mu.Unlock()
			if j != nil {
				j.keepSegments()
			}
		}
		s.mu.Lock()
		ch := s.busy[a.ID]
		delete(s.busy, a.ID)
		s.mu.Unlock()
		close(ch)
		s.evicting.Done()
	}
}

// janitor closes accounts idle for longer than idleClose.
func (s *Store) janitor() {
	defer close(s.janitorDone)
	for {
		s.mu.Lock()
		every := min(s.idleClose/4, usageRefresh)
		s.mu.Unlock()
		select {
		case <-s.janitorStop:
			return
		case <-s.janitorWake:
			continue
		case <-time.After(every):
		}
		s.mu.Lock()
		var victims []*Account
		now := time.Now()
		for s.idle.Len() > 0 {
			a := s.idle.Front().Value.(*Account)
			if now.Sub(a.idleSince) < s.idleClose {
				break
			}
			victims = append(victims, s.takeIdleLocked(a))
		}
		s.mu.Unlock()
		s.closeEvicted(victims)
		s.refreshUsage()
	}
}

// takeForRemoval waits until account id is neither being opened nor
// closed, then takes it out of the open set (closing it) and marks it
// busy until the returned func is called.
func (s *Store) takeForRemoval(ctx context.Context, id int64) (done func(), err error) {
	for {
		s.mu.Lock()
		if ch := s.busy[id]; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		a := s.accts[id]
		delete(s.accts, id)
		if a != nil && a.idleElem != nil {
			s.idle.Remove(a.idleElem)
			a.idleElem = nil
		}
		delete(s.swept, id)
		delete(s.opened, id)
		delete(s.recent, id)
		ch := make(chan struct{})
		s.busy[id] = ch
		s.mu.Unlock()
		if a != nil {
			a.close()
		}
		return func() {
			s.mu.Lock()
			delete(s.busy, id)
			s.mu.Unlock()
			close(ch)
		}, nil
	}
}

func (s *Store) openAccount(ctx context.Context, id int64) (*Account, error) {
	dir := s.accountDir(id)
	if err := safeio.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create account dir: %w", err)
	}
	db, err := sqlite.OpenWith(ctx, filepath.Join(dir, "index.db"), migrations, indexPragmas...)
	if err != nil {
		return nil, fmt.Errorf("open account %d: %w", id, err)
	}
	// Idle read connections hold descriptors (the index, its WAL and
	// shared memory): an account in use keeps a few.
	db.R.SetConnMaxIdleTime(30 * time.Second)
	bodies, err := blob.NewDir(filepath.Join(dir, "msg"))
	if err != nil {
		db.Close()
		return nil, err
	}
	// The account's directory entries (accounts/<id> and its msg/) must
	// be durable before its first message is acknowledged: SQLite and
	// blob fsync only the directories they write into. This is done at
	// the first open in each process, not only when this process created
	// the directory: a process killed between creating it and these
	// fsyncs leaves a directory that exists but whose name may not
	// survive a power loss.
	s.mu.Lock()
	first := !s.opened[id]
	s.mu.Unlock()
	if first {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := syncDir(d); err != nil {
				db.Close()
				return nil, err
			}
		}
	}
	a := &Account{s: s, ID: id, dir: dir, db: db, bodies: bodies, commits: make(chan *commitReq, 256), stop: make(chan struct{}), exited: make(chan struct{}), recent: s.recentFor(id)}
	if err := a.ensureDefaultMailboxes(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := a.prepare(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a.noteUsage(ctx, false)
	a.wg.Add(1)
	go a.committer()
	// Orphan body files (a crash between a link and its commit) are
	// swept once per process, before anything of this process can have
	// a link in flight for the account (it is not published yet).
	s.mu.Lock()
	s.opened[id] = true
	sweep := s.sweepOnOpen && !s.swept[id]
	if sweep {
		s.swept[id] = true
	}
	s.mu.Unlock()
	if sweep {
		if err := a.sweepOrphans(ctx); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

// sweepOrphans removes the account's body files no message references,
// and logs how many.
func (a *Account) sweepOrphans(ctx context.Context) error {
	n, err := a.sweep(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		a.s.log.Info("swept orphan message files", "account", a.ID, "count", n)
	}
	return nil
}

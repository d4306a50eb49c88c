package store

import (
	"context"
	"fmt"
	"sync"
)

// \Recent (RFC 3501 §2.3.2): a message is recent to exactly one session,
// the first to be told of it. Ownership lives in memory, per open Account,
// as Dovecot keeps it per mailbox: each mailbox has a boundary, the lowest
// UID no session has claimed yet. A session that selects a mailbox
// read-write, or learns of new messages while it has one selected
// read-write, claims every message below the UIDNEXT it knows: those are
// recent to it alone, and the boundary moves up to that UIDNEXT. A
// read-only session (EXAMINE) sees the unclaimed messages as recent without
// claiming them, so the next read-write session still gets them; so does
// STATUS (RECENT).
//
// Only messages added while this process runs can be recent: after a
// restart, the messages already stored are recent to no session (their
// boundary starts at the mailbox's UIDNEXT when first needed). A message
// added in this process moves nothing: noteAdded only creates a missing
// boundary at its UID, so a mailbox untouched since the start keeps its new
// messages recent.

// recentState is an account's \Recent boundaries. The Store keeps one per
// account it opened (recentFor), so an account closed while idle and
// reopened still knows what was claimed.
type recentState struct {
	mu sync.Mutex
	// first maps a mailbox to the lowest UID not yet claimed.
	first map[recentKey]uint32
	// keywords are the keywords set per mailbox in this process
	// (keywords.go); it shares this state's life.
	keywords keywordLog
}

// recentKey names a mailbox across renames and deletion: a recreated name
// gets a new UIDVALIDITY.
type recentKey struct {
	id          int64
	uidvalidity uint32
}

// boundary returns the mailbox's boundary, creating it at uidNext.
// Callers hold mu.
func (r *recentState) boundary(k recentKey, uidNext uint32) uint32 {
	if r.first == nil {
		r.first = map[recentKey]uint32{}
	}
	b, ok := r.first[k]
	if !ok {
		b = uidNext
		r.first[k] = b
	}
	return b
}

// noteAdded records that messages from UID first on were added to a
// mailbox in this process: they are recent until claimed.
func (a *Account) noteAdded(mailboxID int64, uidvalidity, first uint32) {
	r := a.recent
	r.mu.Lock()
	r.boundary(recentKey{mailboxID, uidvalidity}, first)
	r.mu.Unlock()
}

// ClaimRecent returns lo, such that the messages of mb with UIDs in [lo,
// uidNext) are recent to a session that knows the mailbox's messages below
// uidNext (lo >= uidNext: none). With claim (a read-write session that
// shows \Recent), they become recent to that session only: later callers
// see them as not recent.
func (a *Account) ClaimRecent(mb Mailbox, uidNext uint32, claim bool) (lo uint32) {
	r := a.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	k := recentKey{mb.ID, mb.UIDValidity}
	lo = r.boundary(k, mb.UIDNext)
	if claim && uidNext > lo {
		r.first[k] = uidNext
	}
	return lo
}

// RecentCount is the number of messages of mb no session has claimed as
// recent (STATUS RECENT). mb must be current (its UIDNEXT read from the
// index).
func (a *Account) RecentCount(ctx context.Context, mb Mailbox) (int64, error) {
	r := a.recent
	r.mu.Lock()
	lo := r.boundary(recentKey{mb.ID, mb.UIDValidity}, mb.UIDNext)
	r.mu.Unlock()
	if lo >= mb.UIDNext {
		return 0, nil
	}
	rd, err := a.reader(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := rd.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id=? AND uid>=?`, mb.ID, lo).Scan(&n); err != nil {
		return 0, fmt.Errorf("count recent: %w", err)
	}
	return n, nil
}

// recentFor returns account id's \Recent state, creating it.
func (s *Store) recentFor(id int64) *recentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recent[id]
	if r == nil {
		r = &recentState{}
		s.recent[id] = r
	}
	return r
}

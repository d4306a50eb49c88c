package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// FlagOp says how SetFlags combines the given flags with a message's.
type FlagOp int

// The STORE operations of IMAP (RFC 9051 §6.4.6).
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate is one STORE request.
type FlagUpdate struct {
	Op       FlagOp
	Flags    Flags
	Keywords []string
	// UnchangedSince, when > 0 or when Conditional is set, skips (and
	// reports as Modified) messages whose MODSEQ is above it (RFC 7162
	// §3.1.3). Conditional makes 0 expressible: UNCHANGEDSINCE 0 fails for
	// every message, since every message has a MODSEQ of at least 1.
	UnchangedSince int64
	Conditional    bool
}

// FlagResult is what SetFlags did.
type FlagResult struct {
	// Changed are the messages whose flags changed, with their new state.
	Changed []Message
	// Unchanged are messages that matched but already had the flags.
	Unchanged []Message
	// Modified are the UIDs refused by UnchangedSince.
	Modified []uint32
}

// SetFlags changes the flags of messages (by UID) in a mailbox, in one
// transaction with one new MODSEQ for all changed messages.
func (a *Account) SetFlags(ctx context.Context, mailboxID int64, uids []uint32, u FlagUpdate) (FlagResult, error) {
	var res FlagResult
	if len(uids) == 0 {
		return res, nil
	}
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		res = FlagResult{}
		msgs, err := messagesByUID(ctx, tx, mailboxID, uids)
		if err != nil {
			return err
		}
		var modseq int64
		for _, m := range msgs {
			if (u.Conditional || u.UnchangedSince > 0) && m.ModSeq > u.UnchangedSince {
				res.Modified = append(res.Modified, m.UID)
				continue
			}
			nf, nk := applyFlags(m.Flags, m.Keywords, u)
			if nf == m.Flags && slices.Equal(nk, m.Keywords) {
				res.Unchanged = append(res.Unchanged, m)
				continue
			}
			if modseq == 0 {
				if modseq, err = nextModSeq(ctx, tx); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET flags=?, keywords=?, modseq=? WHERE id=?`, nf, strings.Join(nk, " "), modseq, m.ID); err != nil {
				return fmt.Errorf("update flags: %w", err)
			}
			m.Flags, m.Keywords, m.ModSeq = nf, nk, modseq
			res.Changed = append(res.Changed, m)
		}
		if modseq != 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, mailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return FlagResult{}, fmt.Errorf("store flags: %w", err)
	}
	if len(res.Changed) > 0 {
		if u.Op != FlagsRemove {
			a.noteKeywords(mailboxID, u.Keywords)
		}
		a.s.notify(a.ID)
	}
	return res, nil
}

func applyFlags(f Flags, kw []string, u FlagUpdate) (Flags, []string) {
	switch u.Op {
	case FlagsReplace:
		return u.Flags, normKeywords(u.Keywords)
	case FlagsAdd:
		return f | u.Flags, normKeywords(append(slices.Clone(kw), u.Keywords...))
	default:
		out := slices.DeleteFunc(slices.Clone(kw), func(k string) bool {
			return slices.ContainsFunc(u.Keywords, func(r string) bool { return strings.EqualFold(r, k) })
		})
		return f &^ u.Flags, normKeywords(out)
	}
}

// normKeywords sorts keywords and removes case-insensitive duplicates
// (keywords compare case-insensitively, RFC 9051 §2.3.2).
func normKeywords(kw []string) []string {
	if len(kw) == 0 {
		return nil
	}
	out := make([]string, 0, len(kw))
	seen := map[string]bool{}
	for _, k := range kw {
		l := strings.ToLower(k)
		if k == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CopyResult maps source UIDs to the new UIDs (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32
	Source      []uint32
	Dest        []uint32
}

// Copy copies messages (by UID) into another mailbox of the account, with
// their flags and internal dates; bodies are shared, not duplicated. With
// move, the sources are expunged in the same transaction (RFC 6851);
// the bodies then belong to the copies, so no file is removed.
func (a *Account) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dest string, move bool) (CopyResult, error) {
	var res CopyResult
	var dstMailbox int64
	var copiedKeywords []string
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		res = CopyResult{}
		var dstID int64
		err := tx.QueryRowContext(ctx, `SELECT id, uidvalidity FROM mailboxes WHERE name=?`, canonicalName(dest)).Scan(&dstID, &res.UIDValidity)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return err
		}
		msgs, err := messagesByUID(ctx, tx, srcMailboxID, uids)
		if err != nil || len(msgs) == 0 {
			return err
		}
		modseq, err := nextModSeq(ctx, tx)
		if err != nil {
			return err
		}
		var first uint32
		if err := tx.QueryRowContext(ctx, `UPDATE mailboxes SET uidnext=uidnext+?, highestmodseq=? WHERE id=? RETURNING uidnext-?`, len(msgs), modseq, dstID, len(msgs)).Scan(&first); err != nil {
			return fmt.Errorf("allocate uids: %w", err)
		}
		a.noteAdded(dstID, res.UIDValidity, first)
		dstMailbox = dstID
		copiedKeywords = copiedKeywords[:0]
		for _, m := range msgs {
			copiedKeywords = append(copiedKeywords, m.Keywords...)
		}
		now := time.Now().Unix()
		for i, m := range msgs {
			uid := first + uint32(i)
			_, tz := m.InternalDate.Zone()
			if _, err := tx.ExecContext(ctx, `INSERT INTO messages(mailbox_id, uid, modseq, blob, size, internal_date, internal_tz, save_date, flags, keywords, email_id, thread_id, meta)
				SELECT ?, ?, ?, blob, size, internal_date, ?, ?, flags, keywords, email_id, thread_id, meta FROM messages WHERE id=?`,
				dstID, uid, modseq, tz, now, m.ID); err != nil {
				return fmt.Errorf("copy message: %w", err)
			}
			res.Source = append(res.Source, m.UID)
			res.Dest = append(res.Dest, uid)
		}
		if move {
			for _, m := range msgs {
				if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE id=?`, m.ID); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)`, srcMailboxID, m.UID, modseq); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, srcMailboxID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy: %w", err)
	}
	if len(res.Source) > 0 {
		a.noteKeywords(dstMailbox, copiedKeywords)
		a.s.notify(a.ID)
	}
	return res, nil
}

// Expunged is a UID removed from a mailbox at a MODSEQ.
type Expunged struct {
	UID    uint32
	ModSeq int64
}

// Changes returns what changed in a mailbox after MODSEQ since: messages
// added or whose flags changed (UID order), and UIDs expunged. It is how
// sessions learn of other sessions' work after a Subscription wake-up, and
// what CONDSTORE/QRESYNC report. A deleted mailbox gives ErrNoMailbox.
func (a *Account) Changes(ctx context.Context, mailboxID int64, since int64) ([]Message, []Expunged, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, nil, err
	}
	tx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("changes: %w", err)
	}
	defer tx.Rollback()
	// The mailbox's HIGHESTMODSEQ answers the common case (nothing new)
	// without touching the messages, and tells a deleted mailbox.
	var highest int64
	err = tx.QueryRowContext(ctx, `SELECT highestmodseq FROM mailboxes WHERE id=?`, mailboxID).Scan(&highest)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrNoMailbox
	}
	if err != nil {
		return nil, nil, fmt.Errorf("changes: %w", err)
	}
	if highest <= since {
		return nil, nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? AND modseq>? ORDER BY uid`, mailboxID, since)
	if err != nil {
		return nil, nil, fmt.Errorf("changes: %w", err)
	}
	var msgs []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		msgs = append(msgs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT uid, modseq FROM expunged WHERE mailbox_id=? AND modseq>? ORDER BY uid`, mailboxID, since)
	if err != nil {
		return nil, nil, fmt.Errorf("changes: %w", err)
	}
	defer rows.Close()
	var gone []Expunged
	for rows.Next() {
		var e Expunged
		if err := rows.Scan(&e.UID, &e.ModSeq); err != nil {
			return nil, nil, err
		}
		gone = append(gone, e)
	}
	return msgs, gone, rows.Err()
}

// MailboxMessages returns a mailbox's row and its messages read in one
// transaction, so the messages match the mailbox's UIDNEXT and
// HIGHESTMODSEQ exactly (POP3 login).
func (a *Account) MailboxMessages(ctx context.Context, name string) (Mailbox, []Message, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return Mailbox{}, nil, err
	}
	tx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Mailbox{}, nil, fmt.Errorf("mailbox messages: %w", err)
	}
	defer tx.Rollback()
	mb, err := scanMailbox(tx.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE name=?`, canonicalName(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, nil, ErrNoMailbox
	}
	if err != nil {
		return Mailbox{}, nil, fmt.Errorf("mailbox messages: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? ORDER BY uid`, mb.ID)
	if err != nil {
		return Mailbox{}, nil, fmt.Errorf("mailbox messages: %w", err)
	}
	defer rows.Close()
	var msgs []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return Mailbox{}, nil, err
		}
		msgs = append(msgs, m)
	}
	return mb, msgs, rows.Err()
}

// View is what an IMAP SELECT keeps of a mailbox: its UIDs in order, and
// the first unseen message. It is read in one transaction, like MailboxMessages,
// but costs four bytes per message instead of a Message.
//
// The UID slice is shared: sessions that select a mailbox in the same
// state (UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, which every change to
// the mailbox raises) get the same slice, so a thousand idle sessions on
// one big mailbox hold one list, not a thousand. Callers must not modify
// it in place; appending is safe (its capacity is its length).
func (a *Account) View(ctx context.Context, name string) (mb Mailbox, uids []uint32, firstUnseen uint32, err error) {
	r, err := a.reader(ctx)
	if err != nil {
		return Mailbox{}, nil, 0, err
	}
	tx, err := r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
	}
	defer tx.Rollback()
	mb, err = scanMailbox(tx.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE name=?`, canonicalName(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, nil, 0, ErrNoMailbox
	}
	if err != nil {
		return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
	}
	// One reader builds the list, the others of the same state wait for
	// it: a thousand clients selecting at once make one list, not a
	// thousand (and their garbage).
	for {
		if v, ok := a.views.get(mb); ok {
			return mb, v.uids, v.firstUnseen, nil
		}
		wait, leader := a.views.claim(mb)
		if leader {
			defer a.views.release(mb)
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Mailbox{}, nil, 0, ctx.Err()
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id=?`, mb.ID).Scan(&n); err != nil {
		return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT uid, flags & ? FROM messages WHERE mailbox_id=? ORDER BY uid`, FlagSeen, mb.ID)
	if err != nil {
		return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
	}
	defer rows.Close()
	uids = make([]uint32, 0, n) // exact: the session keeps this slice
	for rows.Next() {
		var uid uint32
		var seen int64
		if err := rows.Scan(&uid, &seen); err != nil {
			return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
		}
		uids = append(uids, uid)
		if seen == 0 && firstUnseen == 0 {
			firstUnseen = uint32(len(uids))
		}
	}
	if err := rows.Err(); err != nil {
		return Mailbox{}, nil, 0, fmt.Errorf("view: %w", err)
	}
	uids = uids[:len(uids):len(uids)]
	a.views.put(mb, uids, firstUnseen)
	return mb, uids, firstUnseen, nil
}

// viewCache keeps the last View of a few mailboxes of an account, for
// sharing (see View).
type viewCache struct {
	mu      sync.Mutex
	entries []viewEntry // most recent last
	// loading: a View of this state is being built; closed when done.
	loading map[viewKey]chan struct{}
}

type viewKey struct {
	id                   int64
	uidvalidity, uidnext uint32
	modseq               int64
}

func keyOf(mb Mailbox) viewKey {
	return viewKey{mb.ID, mb.UIDValidity, mb.UIDNext, mb.HighestModSeq}
}

// claim makes the caller the builder of mb's View (leader), or returns
// what to wait on while another builds it.
func (c *viewCache) claim(mb Mailbox) (wait <-chan struct{}, leader bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := keyOf(mb)
	if ch, ok := c.loading[k]; ok {
		return ch, false
	}
	if c.loading == nil {
		c.loading = map[viewKey]chan struct{}{}
	}
	c.loading[k] = make(chan struct{})
	return nil, true
}

// release ends a claim: the waiters look again (and one of them builds
// the View if the builder failed).
func (c *viewCache) release(mb Mailbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := keyOf(mb)
	if ch, ok := c.loading[k]; ok {
		close(ch)
		delete(c.loading, k)
	}
}

// viewCacheSize bounds the mailboxes an account keeps a View of.
const viewCacheSize = 4

type viewEntry struct {
	id                   int64
	uidvalidity, uidnext uint32
	modseq               int64
	uids                 []uint32
	firstUnseen          uint32
}

func (c *viewCache) get(mb Mailbox) (viewEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.id == mb.ID && e.uidvalidity == mb.UIDValidity && e.uidnext == mb.UIDNext && e.modseq == mb.HighestModSeq {
			return e, true
		}
	}
	return viewEntry{}, false
}

func (c *viewCache) put(mb Mailbox, uids []uint32, firstUnseen uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = slices.DeleteFunc(c.entries, func(e viewEntry) bool { return e.id == mb.ID })
	if len(c.entries) >= viewCacheSize {
		c.entries = slices.Delete(c.entries, 0, 1)
	}
	c.entries = append(c.entries, viewEntry{id: mb.ID, uidvalidity: mb.UIDValidity, uidnext: mb.UIDNext, modseq: mb.HighestModSeq, uids: uids, firstUnseen: firstUnseen})
}

// keywordsInUse returns the distinct keywords the messages of a mailbox
// have (Keywords adds those set in this process).
func (a *Account) keywordsInUse(ctx context.Context, mailboxID int64) ([]string, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT DISTINCT keywords FROM messages WHERE mailbox_id=? AND keywords != ''`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("keywords: %w", err)
	}
	defer rows.Close()
	var all []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		all = append(all, strings.Split(k, " ")...)
	}
	return normKeywords(all), rows.Err()
}

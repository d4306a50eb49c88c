package store

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/sqlite"
)

// Account is an open account: its index database and body directory. It is
// safe for concurrent use; every write goes through the one writer
// connection, and new messages through a group committer.
type Account struct {
	// ID is the account id (userdb).
	ID int64

	s      *Store
	dir    string
	db     *sqlite.DB
	bodies *blob.Dir

	st stmts // the committer's prepared statements

	commits chan *commitReq
	stop    chan struct{}
	exited  chan struct{} // closed when the committer has returned
	wg      sync.WaitGroup
	once    sync.Once

	// unsynced is owned by the committer: a journaled batch committed
	// without fsync since the last synchronous commit (see journal.go).
	unsynced bool
	// exitSyncErr is set by the committer before exited closes: the
	// error of its last sync of unsynced journaled batches, if any.
	exitSyncErr error
	// journalFailed is set by the committer before exited closes when
	// journaled messages could not be applied: the journal must keep
	// them for a replay.
	journalFailed bool
	// pending counts journaled requests queued but not yet applied.
	pending atomic.Int64
	// usageMu serializes noteUsage; usageFinal is set by close's note,
	// after which the account's index is closed (usage.go).
	usageMu    sync.Mutex
	usageFinal bool
	// views are the last Views of a few mailboxes, shared by sessions.
	views viewCache
	// recent is who may still see which messages as \Recent (recent.go);
	// kept by the Store, so it outlives this handle's close and reopen.
	recent *recentState

	// Guarded by s.mu (open.go): the holders of this handle, and when
	// nobody holds it, its place among the idle accounts.
	refs      int
	idleElem  *list.Element
	idleSince time.Time
}

// settle waits until every delivery the journal acknowledged for the
// account is applied to its index, so that a reader sees every message a
// sender was told is delivered. Without pending deliveries it costs an
// atomic load.
func (a *Account) settle(ctx context.Context) error {
	if a.pending.Load() == 0 {
		return nil
	}
	req := newCommitReq(kindBarrier, nil, 0)
	if err := a.enqueue(ctx, req); err != nil {
		return err
	}
	// A barrier changes nothing, so unlike a write it may be abandoned:
	// a reader is not held past its context by a committer retrying a
	// failing disk.
	select {
	case <-req.done:
		return req.err
	case <-a.exited:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reader is the one way a read of the account's index begins: it settles
// the account's pending deliveries first (see settle), so that no reader
// misses a message the journal acknowledged, and returns the read pool.
// Only the account's own setup and the committer read a.db.R directly
// (TestReadersSettle holds the package to that).
func (a *Account) reader(ctx context.Context) (*sql.DB, error) {
	if err := a.settle(ctx); err != nil {
		return nil, err
	}
	return a.db.R, nil
}

func (a *Account) close() error {
	var err error
	a.once.Do(func() {
		close(a.stop)
		a.wg.Wait()
		a.noteUsage(context.Background(), true)
		a.st.close()
		err = a.db.Close()
	})
	return err
}

func (a *Account) ensureDefaultMailboxes(ctx context.Context) error {
	var n int
	if err := a.db.R.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes`).Scan(&n); err != nil {
		return fmt.Errorf("count mailboxes: %w", err)
	}
	if n > 0 {
		return nil
	}
	return a.db.Tx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes`).Scan(&n); err != nil || n > 0 {
			return err
		}
		for _, m := range defaultMailboxes {
			if _, err := createMailbox(ctx, tx, m.name, m.use); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions(name) VALUES (?)`, m.name); err != nil {
				return err
			}
		}
		return nil
	})
}

// createMailbox inserts a mailbox with a fresh UIDVALIDITY: the current
// time, but always above any UIDVALIDITY this account handed out before, so
// a deleted and recreated name never repeats one (RFC 9051 §2.3.1.1).
func createMailbox(ctx context.Context, tx *sql.Tx, name, use string) (int64, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name='uidvalidity'`).Scan(&last); err != nil {
		return 0, fmt.Errorf("read uidvalidity counter: %w", err)
	}
	v := time.Now().Unix() & 0xffffffff
	if v <= last {
		v = last + 1
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counters SET value=? WHERE name='uidvalidity'`, v); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO mailboxes(name, special_use, uidvalidity, created) VALUES(?, ?, ?, ?)`, name, use, v, time.Now().Unix())
	if err != nil {
		return 0, fmt.Errorf("create mailbox %q: %w", name, err)
	}
	return res.LastInsertId()
}

const mailboxCols = `id, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed`

func scanMailbox(sc interface{ Scan(...any) error }) (Mailbox, error) {
	var m Mailbox
	err := sc.Scan(&m.ID, &m.Name, &m.SpecialUse, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.Subscribed)
	return m, err
}

// Mailboxes lists the account's mailboxes by name.
func (a *Account) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var out []Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// Mailbox returns the mailbox with the given name ("INBOX" in any case is
// the inbox; names compare in NFC).
func (a *Account) Mailbox(ctx context.Context, name string) (Mailbox, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return Mailbox{}, err
	}
	name = canonicalName(name)
	m, err := scanMailbox(r.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE name=?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("mailbox %q: %w", name, ErrNoMailbox)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("look up mailbox %q: %w", name, err)
	}
	return m, nil
}

const messageCols = `id, mailbox_id, uid, modseq, blob, size, internal_date, internal_tz, save_date, flags, keywords, email_id, thread_id`

func scanMessage(sc interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var date, saved int64
	var tz int
	var kw string
	if err := sc.Scan(&m.ID, &m.MailboxID, &m.UID, &m.ModSeq, &m.Blob, &m.Size, &date, &tz, &saved, &m.Flags, &kw, &m.EmailID, &m.ThreadID); err != nil {
		return Message{}, err
	}
	m.InternalDate = time.Unix(date, 0).In(time.FixedZone("", tz))
	m.SaveDate = time.Unix(saved, 0)
	if kw != "" {
		m.Keywords = strings.Split(kw, " ")
	}
	return m, nil
}

// Meta returns a message's parsed structure as stored (JSON of
// message.Part, envelope included).
func (a *Account) Meta(ctx context.Context, messageID int64) ([]byte, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	var b []byte
	err = r.QueryRowContext(ctx, `SELECT meta FROM messages WHERE id=?`, messageID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, fmt.Errorf("read message structure: %w", err)
	}
	return b, nil
}

// Body is a message body opened for reading: a body file, or a body kept
// inline in the index, read into memory.
type Body interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// OpenBody opens a message's body for reading. The body stays readable
// after the message is expunged by another session.
func (a *Account) OpenBody(m Message) (Body, error) {
	if IsInlineBody(m.Blob) {
		return a.openInline(context.Background(), m.Blob)
	}
	f, err := a.bodies.Open(m.Blob)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %v", ErrNoMessage, err)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

func memBody(b []byte) Body { return blob.NewMemReader(b) }

// Expunge removes messages (by UID) from a mailbox in one transaction,
// remembering their UIDs with the new MODSEQ (for QRESYNC), and deletes
// body files no message references any more. UIDs already gone are
// skipped. It returns the UIDs actually removed.
func (a *Account) Expunge(ctx context.Context, mailboxID int64, uids []uint32) ([]uint32, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	var removed []uint32
	var orphans []string
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		removed, orphans = nil, nil
		var modseq int64
		blobs := map[string]bool{}
		for _, uid := range uids {
			var b string
			err := tx.QueryRowContext(ctx, `DELETE FROM messages WHERE mailbox_id=? AND uid=? RETURNING blob`, mailboxID, uid).Scan(&b)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("delete message: %w", err)
			}
			if modseq == 0 {
				if modseq, err = nextModSeq(ctx, tx); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)`, mailboxID, uid, modseq); err != nil {
				return fmt.Errorf("record expunge: %w", err)
			}
			removed = append(removed, uid)
			blobs[b] = true
		}
		if len(removed) == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, mailboxID); err != nil {
			return err
		}
		var err error
		orphans, err = unreferenced(ctx, tx, blobs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expunge: %w", err)
	}
	a.removeBodies(orphans)
	if len(removed) > 0 {
		a.s.notify(a.ID)
	}
	return removed, nil
}

func nextModSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var v int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value=value+1 WHERE name='modseq' RETURNING value`).Scan(&v); err != nil {
		return 0, fmt.Errorf("next modseq: %w", err)
	}
	return v, nil
}

// Append stores a finished body t as a new message in a mailbox (IMAP
// APPEND, import) and returns it once durable. The caller still owns t.
func (a *Account) Append(ctx context.Context, mailbox string, t *blob.Temp, flags Flags, keywords []string, date time.Time) (Message, error) {
	meta, err := a.s.parseMeta(t)
	if err != nil {
		return Message{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	nm := newMessage{mailbox: mailbox, size: t.Size, date: date, flags: flags, keywords: keywords, emailID: newEmailID(), meta: meta}
	if inlinable(t) {
		nm.inline = t.Data
	} else {
		nm.blob = blob.NewID()
		if err := a.bodies.Link(t, nm.blob); err != nil {
			return Message{}, err
		}
	}
	res, err := a.commit(ctx, []newMessage{nm})
	if err != nil {
		if nm.inline == nil {
			a.bodies.Remove(nm.blob)
		}
		return Message{}, err
	}
	return res[0], nil
}

// sweep removes body files no index row references.
func (a *Account) sweep(ctx context.Context) (int, error) {
	refs := map[string]bool{}
	rows, err := a.db.R.QueryContext(ctx, `SELECT DISTINCT blob FROM messages`)
	if err != nil {
		return 0, fmt.Errorf("sweep account %d: %w", a.ID, err)
	}
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return 0, err
		}
		refs[b] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var n int
	err = a.bodies.Walk(func(id string, size int64) error {
		if refs[id] {
			return nil
		}
		n++
		return a.bodies.Remove(id)
	})
	return n, err
}

// newMessage is a message waiting for the group committer.
type newMessage struct {
	mailbox       string
	fallbackInbox bool // deliveries: a missing mailbox means INBOX
	blob          string
	size          int64
	date          time.Time
	flags         Flags
	keywords      []string
	emailID       string
	meta          []byte
	// inline, when not nil, is the body to keep inline; the committer
	// gives it its id (blob). sharesInline: the message's body is the
	// inline body of the request's message before it (copies).
	inline       []byte
	sharesInline bool
}

// commitKind is what a request to an account's committer asks for.
type commitKind uint8

const (
	// kindBarrier writes nothing: it is answered once every request
	// queued before it is (Account.settle).
	kindBarrier commitKind = iota
	// kindAdd adds messages, durably (a synchronous=FULL commit) before
	// it is answered: APPEND, COPY, a delivery without the journal.
	kindAdd
	// kindJournaled adds the messages of a delivery the journal holds
	// durably (record jseq), committed without fsync, and records jseq in
	// the same transaction. It is counted in Account.pending until
	// applied.
	kindJournaled
	// kindReplay adds a journal record (jseq) found at start-up, durably,
	// recording jseq.
	kindReplay
	// kindSync makes every earlier commit of the account durable (those
	// of kindJournaled committed without fsync).
	kindSync
	// kindForceSync is kindSync even when this process committed nothing
	// without fsync: another process may have, before it crashed.
	kindForceSync
)

// commitReq is one request to an account's committer.
type commitReq struct {
	kind commitKind
	msgs []newMessage
	// jseq is the delivery journal's sequence number of msgs (kindJournaled
	// and kindReplay).
	jseq uint64
	res  []Message
	err  error
	done chan struct{}
}

func newCommitReq(kind commitKind, msgs []newMessage, jseq uint64) *commitReq {
	return &commitReq{kind: kind, msgs: msgs, jseq: jseq, done: make(chan struct{})}
}

// commit queues msgs for the group committer and waits until they are
// durable (or failed). Concurrent callers share one transaction and one
// fsync.
func (a *Account) commit(ctx context.Context, msgs []newMessage) ([]Message, error) {
	req := newCommitReq(kindAdd, msgs, 0)
	if err := a.enqueue(ctx, req); err != nil {
		return nil, err
	}
	return a.wait(req)
}

// enqueue hands req to the committer; requests are carried out in the
// order they are enqueued.
func (a *Account) enqueue(ctx context.Context, req *commitReq) error {
	select {
	case a.commits <- req:
		return nil
	case <-a.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the outcome of an enqueued request.
func (a *Account) wait(req *commitReq) ([]Message, error) {
	// Once queued, the request is carried out even if ctx ends, so wait
	// for the outcome: the caller must not think it failed when it did not.
	// If the account closed meanwhile, the committer may have exited
	// before it saw req (the send above can win the race against stop);
	// then nobody will ever answer it.
	select {
	case <-req.done:
	case <-a.exited:
		select {
		case <-req.done:
		default:
			return nil, ErrClosed
		}
	}
	return req.res, req.err
}

// maxBatch caps how many requests share one transaction.
const maxBatch = 128

// journalGather is how long the committer collects journaled deliveries
// before applying them in one transaction: they are already durable in
// the journal, and larger transactions write far fewer pages per message
// (the mailbox, counter and index pages are shared) and pay a
// transaction's fixed costs once. Any other request, a reader's settle
// included, ends the wait at once; the cost is that IDLE sessions hear of
// new mail up to this much later. Measured on the SMTP benchmark (8
// connections, 8 accounts): the committer's CPU per message fell by a
// quarter from 20 ms to 100 ms, little more beyond.
const journalGather = 100 * time.Millisecond

func (a *Account) committer() {
	defer a.wg.Done()
	defer close(a.exited)
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	for {
		var first *commitReq
		select {
		case first = <-a.commits:
		case <-a.stop:
			// Carry out what is queued (a delivery the journal holds
			// must not fail once it is there), then make what was
			// committed without fsync durable, so the journal may forget
			// it (see journal.retire).
			var rest []*commitReq
		queued:
			for {
				select {
				case r := <-a.commits:
					rest = append(rest, r)
				default:
					break queued
				}
			}
			for len(rest) > 0 {
				n := min(len(rest), maxBatch)
				a.run(rest[:n])
				rest = rest[n:]
			}
			if a.unsynced {
				a.exitSyncErr = a.insertBatch([]*commitReq{newCommitReq(kindSync, nil, 0)})
				if a.exitSyncErr != nil {
					a.s.log.Error("sync journaled deliveries at close", "account", a.ID, "err", a.exitSyncErr)
				}
			}
			return
		}
		batch := []*commitReq{first}
		waiting := first.kind == kindJournaled
		if waiting {
			gather.Reset(journalGather)
		}
	collect:
		for len(batch) < maxBatch {
			if !waiting {
				select {
				case r := <-a.commits:
					batch = append(batch, r)
					continue
				default:
					break collect
				}
			}
			select {
			case r := <-a.commits:
				batch = append(batch, r)
				waiting = r.kind == kindJournaled
			case <-gather.C:
				waiting = false
			case <-a.stop:
				waiting = false
			}
		}
		gather.Stop() // Go 1.23 timers: no stale tick to drain
		a.run(batch)
	}
}

// run commits one batch and answers its requests: the journaled
// deliveries first, in one transaction without fsync (retried until they
// are in: the journal has acknowledged them), then the rest.
func (a *Account) run(batch []*commitReq) {
	var journaled, others []*commitReq
	for _, r := range batch {
		if r.kind == kindJournaled {
			journaled = append(journaled, r)
		} else {
			others = append(others, r)
		}
	}
	if len(journaled) > 0 {
		err := a.applyJournaled(journaled)
		for _, r := range journaled {
			r.err = err
		}
	}
	if len(others) > 0 {
		err := a.insertBatch(others)
		if err != nil && len(others) > 1 {
			// One bad request must not fail the others: retry alone.
			for _, r := range others {
				r.err = a.insertBatch([]*commitReq{r})
			}
		} else {
			for _, r := range others {
				r.err = err
			}
		}
	}
	// Wake subscribers before answering, so that when Deliver returns
	// every subscriber already has its wake-up.
	a.s.notify(a.ID)
	for _, r := range batch {
		if r.err != nil {
			r.res = nil
		}
		if r.kind == kindJournaled {
			a.pending.Add(-1)
		}
		close(r.done)
	}
}

// applyJournaled inserts journaled deliveries. They were acknowledged, so
// a failure (a full or failing disk) is retried, with the account's later
// deliveries waiting behind (the journal position must only grow), until
// it works or the account closes; then they stay in the journal for the
// next start to replay.
func (a *Account) applyJournaled(batch []*commitReq) error {
	wait := 100 * time.Millisecond
	for {
		err := a.insertBatch(batch)
		if err == nil {
			return nil
		}
		a.s.log.Error("apply journaled deliveries, will retry", "account", a.ID, "messages", len(batch), "err", err)
		select {
		case <-a.stop:
			a.journalFailed = true
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// stmts are the statements of the group committer, prepared once on the
// writer connection (parsing them per message cost more than running them).
type stmts struct {
	mailbox, inbox, modseqs, uids, inline, message *sql.Stmt
	// readInline reads an inline body, on the read pool.
	readInline *sql.Stmt
}

func (a *Account) prepare(ctx context.Context) error {
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = a.db.W.PrepareContext(ctx, q)
		return st
	}
	a.st = stmts{
		mailbox: prep(`SELECT id, uidvalidity FROM mailboxes WHERE name=?`),
		inbox:   prep(`SELECT id, uidvalidity FROM mailboxes WHERE name='INBOX'`),
		modseqs: prep(`UPDATE counters SET value=value+? WHERE name='modseq' RETURNING value`),
		uids:    prep(`UPDATE mailboxes SET uidnext=uidnext+?, highestmodseq=max(highestmodseq, ?) WHERE id=? RETURNING uidnext-?`),
		inline:  prep(`INSERT INTO inline_bodies(id, data) VALUES(?, ?)`),
		message: prep(`INSERT INTO messages(mailbox_id, uid, modseq, blob, size, internal_date, internal_tz, save_date, flags, keywords, email_id, meta)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
	}
	if err == nil {
		a.st.readInline, err = a.db.R.PrepareContext(ctx, readInlineQuery)
	}
	if err != nil {
		a.st.close()
		return fmt.Errorf("prepare statements: %w", err)
	}
	return nil
}

func (st *stmts) close() {
	for _, s := range []*sql.Stmt{st.mailbox, st.inbox, st.modseqs, st.uids, st.inline, st.message, st.readInline} {
		if s != nil {
			s.Close()
		}
	}
}

// insertBatch adds the messages of a batch in one transaction: mailboxes
// looked up once, MODSEQs and each mailbox's UIDs allocated in one
// statement each, then one insert per message (and per inline body).
//
// A batch of journaled requests only commits without fsync (the journal
// holds them durably); any other request, or a sync request, makes the
// commit synchronous, which also makes every earlier unsynced batch
// durable. The highest journal sequence number applied is recorded in the
// same transaction (counter "journal"), so a replay knows what is in.
func (a *Account) insertBatch(batch []*commitReq) error {
	var durable, msgs, force bool
	var jseq uint64
	for _, r := range batch {
		msgs = msgs || len(r.msgs) > 0
		switch r.kind {
		case kindAdd, kindReplay, kindSync:
			// Everything up to this request, this batch included, must
			// be durable when it is answered.
			durable = true
		case kindForceSync:
			durable, force = true, true
		}
		jseq = max(jseq, r.jseq)
	}
	if !msgs && !(durable && (a.unsynced || force)) {
		return nil // nothing to write, or a sync with nothing to sync
	}
	if err := a.fillMeta(batch); err != nil {
		return err
	}
	tx := a.db.Tx
	if !durable {
		tx = a.db.TxNoSync
	}
	err := tx(context.Background(), func(tx *sql.Tx) error {
		if err := a.insertMessages(tx, batch); err != nil {
			return err
		}
		if jseq > 0 {
			if _, err := tx.Exec(`INSERT INTO counters(name, value) VALUES('journal', ?)
				ON CONFLICT(name) DO UPDATE SET value=max(value, excluded.value)`, int64(jseq)); err != nil {
				return fmt.Errorf("record journal position: %w", err)
			}
		}
		if !msgs {
			// A sync without messages must change a page: SQLite
			// writes no WAL frame for a transaction that changes
			// nothing (an unchanged row included), and a commit
			// without a frame fsyncs nothing, leaving the earlier
			// synchronous=NORMAL frames unsynced. The counter grows
			// at every such sync, so the commit always writes one
			// frame and its fsync covers the whole WAL before it.
			if _, err := tx.Exec(`INSERT INTO counters(name, value) VALUES('syncs', 1)
				ON CONFLICT(name) DO UPDATE SET value=value+1`); err != nil {
				return fmt.Errorf("record a sync: %w", err)
			}
		}
		return nil
	})
	if err == nil {
		a.unsynced = !durable
	}
	return err
}

// fillMeta parses the structure of journaled deliveries, which come
// without it (the parse is kept off the SMTP session's path to its 250);
// copies in one request share their first message's.
func (a *Account) fillMeta(batch []*commitReq) error {
	for _, r := range batch {
		for j := range r.msgs {
			m := &r.msgs[j]
			if len(m.meta) > 0 {
				continue
			}
			if m.sharesInline && j > 0 {
				m.meta = r.msgs[j-1].meta
				continue
			}
			if m.inline == nil {
				return fmt.Errorf("message without a structure or an inline body")
			}
			meta, err := a.s.parseMetaBytes(m.inline)
			if err != nil {
				return err
			}
			m.meta = meta
		}
	}
	return nil
}

// journalMark is the highest delivery journal sequence number applied to
// the account (0: none).
func (a *Account) journalMark(ctx context.Context) (uint64, error) {
	var v int64
	err := a.db.W.QueryRowContext(ctx, `SELECT value FROM counters WHERE name='journal'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read journal position: %w", err)
	}
	return uint64(v), nil
}

// insertMessages inserts the messages of batch in transaction tx.
func (a *Account) insertMessages(tx *sql.Tx, batch []*commitReq) error {
	ctx := context.Background()
	{
		mailboxSt := tx.StmtContext(ctx, a.st.mailbox)
		cache := map[string]mboxRef{}
		lookup := func(name string, fallback bool) (mboxRef, error) {
			if name = canonicalName(name); name == "" {
				name = "INBOX"
			}
			if m, ok := cache[name]; ok {
				return m, nil
			}
			var m mboxRef
			err := mailboxSt.QueryRowContext(ctx, name).Scan(&m.id, &m.uidvalidity)
			if errors.Is(err, sql.ErrNoRows) && fallback && name != "INBOX" {
				err = tx.StmtContext(ctx, a.st.inbox).QueryRowContext(ctx).Scan(&m.id, &m.uidvalidity)
				if err != nil {
					return m, fmt.Errorf("look up INBOX: %w", err)
				}
				return m, nil
			}
			if errors.Is(err, sql.ErrNoRows) {
				return mboxRef{}, fmt.Errorf("mailbox %q: %w", name, ErrNoMailbox)
			}
			if err != nil {
				return mboxRef{}, err
			}
			cache[name] = m
			return m, nil
		}
		// Mailboxes first, to count each one's new messages.
		var n int64
		var order []int64
		count := map[int64]int64{}
		last := map[int64]int64{} // mailbox -> index of its last new message
		uidvs := map[int64]uint32{}
		mbs := make([][]mboxRef, len(batch))
		for i, r := range batch {
			mbs[i] = make([]mboxRef, len(r.msgs))
			for j, nm := range r.msgs {
				mb, err := lookup(nm.mailbox, nm.fallbackInbox)
				if err != nil {
					return err
				}
				mbs[i][j] = mb
				uidvs[mb.id] = mb.uidvalidity
				if count[mb.id] == 0 {
					order = append(order, mb.id)
				}
				count[mb.id]++
				last[mb.id] = n
				n++
			}
		}
		if n == 0 {
			return nil
		}
		var lastModSeq int64
		if err := tx.StmtContext(ctx, a.st.modseqs).QueryRowContext(ctx, n).Scan(&lastModSeq); err != nil {
			return fmt.Errorf("next modseq: %w", err)
		}
		// The messages get lastModSeq-n+1 .. lastModSeq in batch order.
		modseq := lastModSeq - n // the last one handed out before
		uidSt := tx.StmtContext(ctx, a.st.uids)
		nextUID := map[int64]uint32{}
		for _, id := range order {
			var first uint32
			if err := uidSt.QueryRowContext(ctx, count[id], modseq+1+last[id], id, count[id]).Scan(&first); err != nil {
				return fmt.Errorf("allocate uids: %w", err)
			}
			nextUID[id] = first
			a.noteAdded(id, uidvs[id], first)
		}
		inlineSt := tx.StmtContext(ctx, a.st.inline)
		messageSt := tx.StmtContext(ctx, a.st.message)
		now := time.Now().Unix()
		zones := map[int]*time.Location{}
		for i, r := range batch {
			r.res = make([]Message, 0, len(r.msgs))
			var lastInline string
			for j, nm := range r.msgs {
				mb := mbs[i][j]
				modseq++
				uid := nextUID[mb.id]
				nextUID[mb.id]++
				switch {
				case nm.inline != nil:
					if _, err := inlineSt.ExecContext(ctx, modseq, nm.inline); err != nil {
						return fmt.Errorf("insert inline body: %w", err)
					}
					nm.blob = inlineID(modseq)
					lastInline = nm.blob
				case nm.sharesInline:
					nm.blob = lastInline
				}
				_, tz := nm.date.Zone()
				kw := strings.Join(nm.keywords, " ")
				res, err := messageSt.ExecContext(ctx, mb.id, uid, modseq, nm.blob, nm.size, nm.date.Unix(), tz, now, nm.flags, kw, nm.emailID, nm.meta)
				if err != nil {
					return fmt.Errorf("insert message: %w", err)
				}
				id, _ := res.LastInsertId()
				a.noteKeywords(mb.id, nm.keywords)
				loc := zones[tz]
				if loc == nil {
					loc = time.FixedZone("", tz)
					zones[tz] = loc
				}
				r.res = append(r.res, Message{ID: id, MailboxID: mb.id, UID: uid, ModSeq: modseq, Blob: nm.blob, Size: nm.size,
					InternalDate: time.Unix(nm.date.Unix(), 0).In(loc), SaveDate: time.Unix(now, 0),
					Flags: nm.flags, Keywords: nm.keywords, EmailID: nm.emailID})
			}
		}
		return nil
	}
}

type mboxRef struct {
	id          int64
	uidvalidity uint32
}

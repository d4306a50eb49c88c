// Package queue is the durable outbound queue: messages for recipients on
// other mail servers wait here until internal/remote has delivered them, a
// permanent failure bounces them, or they grow too old.
//
// Layout under its directory (DATA/queue): queue.db (SQLite: one msg row per
// message, one rcpt row per recipient with its state; bodies up to
// store.InlineMax in the msg row) and msg/, a blob.Dir of the larger
// bodies named by message id, plus tmp/ for bounces being written.
//
// Writes go through a group committer (commit.go): the Adds and attempt
// results that arrive together share one transaction and one WAL fsync.
// The scheduler hands each destination domain's due messages to at most
// max_per_domain workers, which deliver them one after the other (reusing
// the connection, see remote.Client) and record each one's results while
// making the next.
//
// Invariants:
//   - Add returns only when the message is durable: the rows (with a small
//     body) are committed (synchronous=FULL), a larger body linked first
//     (file and directory fsynced): a 250 given after Add survives kill -9.
//   - Every delivery attempt's per-recipient results are recorded in one
//     transaction. A recipient once recorded delivered or failed is never
//     attempted again (updates only touch pending rows), and a message
//     stays in flight (no other attempt starts) until the results of its
//     attempt are committed.
//   - A DSN owed to the sender is recorded in the same transaction as the
//     result that caused it (rcpt.notice), and cleared only after the DSN
//     itself is durable (delivered locally or queued): a crash in between
//     sends it again at the next start, never loses it.
//   - A message's row and body go when no recipient is pending and no DSN
//     is owed (in the transaction of its last results when it can).
//   - The operator commands (List, Show, Retry, Hold, Release, Delete,
//     Flush) only change rows; a running scheduler notices within
//     pollInterval, so the CLI works beside the server.
package queue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/sqlite"
	"github.com/jodmai/jodmai/internal/store"
)

// ErrNotFound is returned for an unknown message id.
var ErrNotFound = errors.New("queue: no such message")

// Local files bounces for local senders into their mailboxes;
// *deliver.Deliverer implements it.
type Local interface {
	Resolve(ctx context.Context, addr string) (deliver.Resolution, error)
	Deliver(ctx context.Context, body *blob.Temp, targets []store.Target) error
}

// Signer computes a DKIM-Signature header field for a message. It returns
// a nil header (and no error) when it has no key for the message's From
// domain, and an error wrapping remote.ErrNotSignable for a message that
// cannot be signed (no From field, a malformed header): Add then queues it
// unsigned.
type Signer interface {
	Sign(r io.Reader) (header []byte, err error)
}

// Options configure a Queue. Only Policy matters to the operator commands;
// Run needs Remote, and Local for bounces to local senders.
type Options struct {
	// Policy is the retry, expiry and concurrency policy. Zero fields take
	// config defaults.
	Policy config.Queue
	// Hostname names this MTA in DSNs (Reporting-MTA, MAILER-DAEMON@).
	Hostname string
	// Log receives the queue's logs; nil discards.
	Log *slog.Logger
	// Remote makes delivery attempts.
	Remote remote.Deliverer
	// Local delivers bounces to local senders; nil: every bounce is
	// queued for remote delivery.
	Local Local
	// Signer DKIM-signs messages added with Envelope.Sign; nil: none.
	Signer Signer
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Jitter returns a number in [0, 1) that spreads retries; nil: random.
	Jitter func() float64
	// Observer is told of queueing and of each recipient's attempt
	// (metrics); nil: nobody.
	Observer Observer
}

// Observer counts the queue's events. Its methods must not block.
type Observer interface {
	// Queued: a message was added.
	Queued()
	// Attempted: one recipient's attempt ended with outcome "delivered",
	// "deferred", "bounced" or "expired", age after the message was
	// queued.
	Attempted(outcome string, age time.Duration)
	// Filed: a DSN or bounce was filed into a local sender's mailboxes.
	Filed(mailboxes int)
}

// Envelope is what Add needs besides the body.
type Envelope struct {
	// ID is the message id to use (a blob id, so logs of the receiving
	// session and of the queue agree); "" makes a new one.
	ID string
	// From is the reverse path; "" is the null sender.
	From string
	// Recipients are the remote recipients with their DSN parameters.
	Recipients []remote.Recipient
	// EnvID and Ret are the RFC 3461 MAIL parameters ("FULL", "HDRS", "").
	EnvID, Ret string
	// SMTPUTF8, Has8bit and RequireTLS: see remote.Message. Has8bit is
	// also detected from the body.
	SMTPUTF8, Has8bit, RequireTLS bool
	// Sign asks for a DKIM signature (authenticated submission), computed
	// once here.
	Sign bool
	// Account is the authenticated account that sent it, for the
	// operator; "" when relayed (alias forwarding).
	Account string
	// MsgID is the Message-ID for the event log; "" reads it from the
	// body.
	MsgID string
}

// Queue is the outbound queue.
type Queue struct {
	db     *sqlite.DB
	st     *statements
	bodies *blob.Dir
	tmp    string
	opts   Options
	policy config.Queue
	log    *slog.Logger
	now    func() time.Time
	wake   chan struct{}
	maxDue int // maxDue; tests lower it

	mu        sync.Mutex
	inflight  map[jobKey]bool
	perDomain map[string]int
	running   int
	// missed: due mail was left for later (by a pass, or an Add that did
	// not wake the scheduler): the next worker done wakes it.
	missed bool
	jobs   sync.WaitGroup

	// noticeMu serialises DSN generation and message removal, so two
	// attempts finishing together never send one notice twice.
	noticeMu sync.Mutex

	// The group committer (commit.go).
	writes    chan *writeReq
	stop      chan struct{}
	exited    chan struct{}
	closeOnce sync.Once
	// beforeCommit, if set (tests), runs before each group commit; its
	// error fails the group.
	beforeCommit func() error
	// inlineMax: bodies up to this size are kept in the database row
	// (msg.body), durable with the row's commit, with no file, link or
	// directory fsync; larger ones are linked into bodies. Tests lower it.
	inlineMax int64
}

// inlineMax is the default Queue.inlineMax: as large as the bodies smtpd
// keeps in memory (store.InlineMax), which then never touch a file.
const inlineMax = store.InlineMax

var migrations = []string{
	`CREATE TABLE msg (
		id TEXT PRIMARY KEY,
		sender TEXT NOT NULL,
		account TEXT NOT NULL DEFAULT '',
		envid TEXT NOT NULL DEFAULT '',
		ret TEXT NOT NULL DEFAULT '',
		smtputf8 INTEGER NOT NULL DEFAULT 0,
		has8bit INTEGER NOT NULL DEFAULT 0,
		requiretls INTEGER NOT NULL DEFAULT 0,
		dkim BLOB,
		body_offset INTEGER NOT NULL DEFAULT 0,
		size INTEGER NOT NULL,
		created INTEGER NOT NULL,
		held INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE rcpt (
		id INTEGER PRIMARY KEY,
		msg TEXT NOT NULL REFERENCES msg(id) ON DELETE CASCADE,
		addr TEXT NOT NULL,
		domain TEXT NOT NULL,
		notify TEXT NOT NULL DEFAULT '',
		orcpt TEXT NOT NULL DEFAULT '',
		state INTEGER NOT NULL DEFAULT 0,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt INTEGER NOT NULL,
		last_attempt INTEGER NOT NULL DEFAULT 0,
		code INTEGER NOT NULL DEFAULT 0,
		enhanced TEXT NOT NULL DEFAULT '',
		text TEXT NOT NULL DEFAULT '',
		host TEXT NOT NULL DEFAULT '',
		warned INTEGER NOT NULL DEFAULT 0,
		notice TEXT NOT NULL DEFAULT '',
		expired INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX rcpt_msg ON rcpt(msg);
	CREATE INDEX rcpt_due ON rcpt(next_attempt) WHERE state = 0;
	CREATE INDEX rcpt_notice ON rcpt(msg) WHERE notice != '';`,
	// Small bodies live in the row: durable with its commit, no file.
	`ALTER TABLE msg ADD COLUMN body BLOB;`,
}

// Recipient states in rcpt.state.
const (
	statePending   = 0
	stateDelivered = 1
	stateFailed    = 2
)

// Open opens (creating) the queue in dir.
func Open(dir string, opts Options) (*Queue, error) {
	tmp := filepath.Join(dir, "tmp")
	if err := safeio.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create queue dir: %w", err)
	}
	bodies, err := blob.NewDir(filepath.Join(dir, "msg"))
	if err != nil {
		return nil, err
	}
	// The queue's own name (and msg/'s, in dir) must be durable before a
	// message is acknowledged; a directory left by a process that died
	// before its fsync exists but may not survive a power loss, so this
	// is done at every open.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := safeio.SyncDir(d); err != nil {
			return nil, err
		}
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(dir, "queue.db"), migrations)
	if err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	st, err := prepareStatements(context.Background(), db.W, db.R)
	if err != nil {
		db.Close()
		return nil, err
	}
	q := &Queue{
		db: db, st: st, bodies: bodies, tmp: tmp, opts: opts, policy: withDefaults(opts.Policy),
		log: opts.Log, now: opts.Now, wake: make(chan struct{}, 1), maxDue: maxDue,
		inflight: map[jobKey]bool{}, perDomain: map[string]int{},
		writes: make(chan *writeReq), stop: make(chan struct{}), exited: make(chan struct{}),
		inlineMax: inlineMax,
	}
	go q.committer()
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if q.opts.Hostname == "" {
		q.opts.Hostname = "localhost"
	}
	return q, nil
}

func withDefaults(p config.Queue) config.Queue {
	if p.MaxAge <= 0 {
		p.MaxAge = 120 * time.Hour
	}
	if p.RetryMin <= 0 {
		p.RetryMin = time.Minute
	}
	if p.RetryMax <= 0 {
		p.RetryMax = 4 * time.Hour
	}
	if p.RetryMax < p.RetryMin {
		p.RetryMax = p.RetryMin
	}
	if p.MaxConcurrency <= 0 {
		p.MaxConcurrency = 64
	}
	if p.MaxPerDomain <= 0 {
		p.MaxPerDomain = 4
	}
	return p
}

// Close closes the database. Call it after Run has returned.
func (q *Queue) Close() error {
	q.jobs.Wait()
	q.closeOnce.Do(func() { close(q.stop) })
	<-q.exited
	q.st.close()
	return q.db.Close()
}

// Sweep removes bodies no message references and leftover temporary files
// (crash leftovers). Only the server calls it, before Run and before any
// Add: a body being added has no row yet.
func (q *Queue) Sweep(ctx context.Context) error {
	ents, err := os.ReadDir(q.tmp)
	if err != nil {
		return fmt.Errorf("sweep queue tmp: %w", err)
	}
	for _, e := range ents {
		os.RemoveAll(filepath.Join(q.tmp, e.Name()))
	}
	known := map[string]bool{}
	rows, err := q.db.R.QueryContext(ctx, `SELECT id FROM msg`)
	if err != nil {
		return fmt.Errorf("sweep queue: %w", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("sweep queue: %w", err)
		}
		known[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sweep queue: %w", err)
	}
	var orphans []string
	if err := q.bodies.Walk(func(id string, _ int64) error {
		if !known[id] {
			orphans = append(orphans, id)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range orphans {
		q.bodies.Remove(id)
	}
	if len(orphans) > 0 {
		q.log.Info("queue sweep: removed orphan bodies", "count", len(orphans))
	}
	return nil
}

// Add queues body for env's recipients. It returns when the message is
// durable. The caller still owns body (and removes its temporary name).
func (q *Queue) Add(ctx context.Context, body *blob.Temp, env Envelope) (string, error) {
	if len(env.Recipients) == 0 {
		return "", errors.New("queue: no recipients")
	}
	for _, r := range env.Recipients {
		if domainOf(r.Addr) == "" {
			return "", fmt.Errorf("queue: bad recipient address %q", r.Addr)
		}
	}
	id := env.ID
	if id == "" {
		id = blob.NewID()
	} else if !blob.ValidID(id) {
		return "", fmt.Errorf("queue: invalid id %q", id)
	}
	// A small body is read into the row; a larger one is linked (its
	// own fsyncs, concurrently with other Adds) before the commit.
	var inline []byte
	var err error
	if body.Size <= q.inlineMax {
		if inline, err = readBody(body); err != nil {
			return "", err
		}
	}
	var src io.ReaderAt
	if inline != nil {
		src = bytes.NewReader(inline)
	} else {
		r, err := body.NewReader()
		if err != nil {
			return "", fmt.Errorf("queue: open body: %w", err)
		}
		defer r.Close()
		src = r
	}
	var offset int64
	var has8bit bool
	if inline != nil {
		offset, has8bit = returnPathLen(inline[:min(len(inline), 4096)]), has8bitByte(inline)
	} else if offset, has8bit, err = inspectBody(src, body.Size); err != nil {
		return "", err
	}
	has8bit = has8bit || env.Has8bit
	var dkim []byte
	if env.Sign && q.opts.Signer != nil {
		dkim, err = q.opts.Signer.Sign(io.NewSectionReader(src, offset, body.Size-offset))
		switch {
		case errors.Is(err, remote.ErrNotSignable):
			// A property of the message: refusing it, or failing
			// temporarily, would not make it signable. It goes out
			// unsigned, as with no key for its domain.
			q.log.Warn("not DKIM-signed", "id", id, "account", env.Account, "err", err)
			dkim = nil
		case err != nil:
			return "", fmt.Errorf("queue: dkim sign: %w", err)
		}
	}
	if inline == nil {
		if err := q.bodies.Link(body, id); err != nil {
			return "", fmt.Errorf("queue: %w", err)
		}
	}
	now := q.now()
	err = q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, q.st.insertMsg).ExecContext(ctx,
			id, env.From, env.Account, env.EnvID, strings.ToUpper(env.Ret), env.SMTPUTF8, has8bit, env.RequireTLS, dkim, offset, body.Size, now.UnixMilli(), inline); err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		insertRcpt := tx.StmtContext(ctx, q.st.insertRcpt)
		for _, r := range env.Recipients {
			if _, err := insertRcpt.ExecContext(ctx,
				id, r.Addr, domainOf(r.Addr), strings.ToUpper(r.Notify), r.ORcpt, now.UnixMilli()); err != nil {
				return fmt.Errorf("insert recipient: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		if inline == nil {
			q.bodies.Remove(id)
		}
		return "", fmt.Errorf("queue: add %s: %w", id, err)
	}
	if q.opts.Observer != nil {
		q.opts.Observer.Queued()
	}
	msgid := env.MsgID
	if msgid == "" {
		msgid = eventlog.MessageID(io.NewSectionReader(src, offset, body.Size-offset), body.Size-offset)
	}
	rcpts := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		rcpts[i] = r.Addr
	}
	q.log.Info("queued", "event", eventlog.Queued, "qid", id, "msgid", msgid, "from", env.From, "rcpts", rcpts, "size", body.Size-offset,
		"account", env.Account, "dkim", dkim != nil)
	// After the commit: a worker that finishes after this check wakes
	// the scheduler itself, and its pass sees the new rows.
	if !q.busy(env.Recipients) {
		q.Wake()
	}
	return id, nil
}

// Wake makes the scheduler look for due work at once.
func (q *Queue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// readBody returns a small body's bytes: a memory Temp's own (valid until
// Add returns, by when they are committed), or read from its file.
func readBody(body *blob.Temp) ([]byte, error) {
	if body.InMemory() {
		return body.Data, nil
	}
	f, err := body.Open()
	if err != nil {
		return nil, fmt.Errorf("queue: open body: %w", err)
	}
	defer f.Close()
	// Never nil, even when empty: nil means "in a file".
	buf := make([]byte, body.Size, body.Size+1)
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, fmt.Errorf("queue: read body: %w", err)
	}
	return buf, nil
}

// inspectBody finds the length of a leading Return-Path field (RFC 5321
// §4.4: added at final delivery, never relayed; smtpd writes one first) and
// whether the body (size bytes of r) has 8-bit bytes.
func inspectBody(r io.ReaderAt, size int64) (offset int64, has8bit bool, err error) {
	buf := make([]byte, min(size, 32<<10))
	for pos := int64(0); pos < size; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		if pos == 0 {
			offset = returnPathLen(buf[:min(n, 4096)])
		}
		if has8bitByte(buf[:n]) {
			return offset, true, nil
		}
		pos += int64(n)
		if err == io.EOF && pos >= size {
			break
		}
		if err != nil {
			return 0, false, fmt.Errorf("queue: read body: %w", err)
		}
	}
	return offset, false, nil
}

// has8bitByte reports whether b has a byte over 0x7f.
func has8bitByte(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// returnPathLen returns the length of a Return-Path field at the start of
// head, folded lines included, or 0.
func returnPathLen(head []byte) int64 {
	const name = "return-path:"
	if len(head) < len(name) || !strings.EqualFold(string(head[:len(name)]), name) {
		return 0
	}
	i := 0
	for {
		j := strings.Index(string(head[i:]), "\r\n")
		if j < 0 {
			return 0
		}
		i += j + 2
		if i >= len(head) || (head[i] != ' ' && head[i] != '\t') {
			return int64(i)
		}
	}
}

// domainOf returns the lowercased domain of addr, "" if it has none.
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

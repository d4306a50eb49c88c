// Package store is the mail store: accounts' mailboxes, messages, UIDs,
// flags, MODSEQs and change notifications. It is the only package that
// touches mail on disk: no other package knows its file names, its layout
// or its tables. Besides serving (Store, Account), its API covers the
// data directory's maintenance: consistent online copies for backups and
// their restore and verification (backup.go: AccountIDs, BackupAccounts,
// RestoreAccount, VerifyAccount, HoldJournal, JournalFiles) and the
// consistency check and repair (Check, check.go). A second backend would
// provide the same.
//
// Layout under the data directory:
//
//	tmp/                          bodies being received (swept at start)
//	journal/<first seq>.log       the delivery journal (journal.go), when a server runs it
//	accounts/<id>/index.db        the account's index (SQLite, WAL, synchronous=FULL)
//	accounts/<id>/msg/<xx>/<blob> immutable bodies (package blob)
//
// Bodies of up to InlineMax bytes that arrive in memory (blob.NewSpool) are
// kept in the index itself (table inline_bodies, id "i"+key), written in
// the transaction that adds their message rows, shared by copies in the
// account, deleted in the transaction that drops their last message.
// Larger bodies are files. Bodies are never modified; a body may be shared
// by several messages of one account (COPY) and a body file, as hard
// links, by several accounts (one SMTP transaction to many recipients).
//
// # Durability
//
// This is the one authoritative statement of what each acknowledgement
// waits for; other docs point here. "Durable" means it survives a power
// loss: its data was fsynced (fdatasync where only data changed), and so
// was the directory holding every name it depends on.
//
//   - A delivery of an inline body while the server runs the delivery
//     journal (StartJournal; SMTP's 250): its record is in a journal
//     segment and that segment fdatasynced, one fdatasync shared by every
//     delivery to any account at that moment. Segments are preallocated
//     and fsynced, and their names made durable (journal directory
//     fsynced) before the first record goes in. The account's committer
//     inserts the record into its index afterwards, within journalGather,
//     in a synchronous=NORMAL transaction (WAL written, not fsynced) that
//     records the journal sequence applied; every reader settles the
//     account's pending deliveries first (Account.settle), so an
//     acknowledged message is always listed. See journal.go.
//   - A segment is removed only after every account it touched has made
//     its index durable: a synchronous=FULL commit that always writes a
//     WAL frame (the "syncs" counter grows), whose WAL fsync covers every
//     NORMAL frame before it. A commit that changes nothing writes no
//     frame and fsyncs nothing, so a sync may never rest on one. After a
//     crash Open replays every record above its account's recorded
//     sequence, and syncs each account the same way before any segment
//     goes.
//   - Any other new message (a delivery without the journal or with a
//     body file, IMAP APPEND, COPY, MOVE): a body file is fsynced, hard-
//     linked into accounts/<id>/msg/<xx>/ and that directory fsynced (the
//     shard's name in msg/ once per process, the account's directories at
//     every account open); then the index transaction commits with
//     synchronous=FULL (one WAL fsync, shared by a group commit). Only
//     then does the caller learn of success. A crash before the commit
//     leaves an unreferenced body file, which Sweep removes.
//   - Flags, EXPUNGE, MOVE's removal, POP3 QUIT's deletions, mailbox
//     changes: one synchronous=FULL commit before the reply. Body files of
//     expunged messages are unlinked after it (a lost unlink leaves an
//     orphan file that Sweep and check remove). A commit that changed
//     nothing acknowledges nothing new: what it reports is either durable
//     or still in the journal.
//   - A new account: its directories are created with safeio.MkdirAll and
//     their names fsynced at every open; SQLite fsyncs the directory when
//     it creates the WAL, and the default mailboxes commit with FULL.
//   - Outside the store: SMTP's 250 for a message that also (or only)
//     goes to other servers, an alias's remote targets or a forwarding
//     account's addresses (internal/forward, "keep a copy" off: the store
//     never sees it), waits as well for the outbound queue's Add (queue
//     package doc: its rows committed with synchronous=FULL, a larger body
//     linked and fsynced first). Vacation auto-replies are queued the same
//     way, after the 250's copies are durable, and do not hold the 250
//     back if they fail (internal/vacation).
//
// The tests that hold the code to this: test/crash (SIGKILL under load)
// and its power-loss mode (the data directory on internal/powerfs, which
// drops everything unsynced at a simulated power cut).
package store

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/safeio"
)

// syncDir is safeio.SyncDir; tests replace it to see which directories are
// fsynced.
var syncDir = safeio.SyncDir

// Sentinel errors.
var (
	// ErrNoMailbox is returned for a mailbox that does not exist.
	ErrNoMailbox = errors.New("no such mailbox")
	// ErrNoMessage is returned for a message that does not exist (any more).
	ErrNoMessage = errors.New("no such message")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store closed")
)

// Flags are the IMAP system flags of a message, as a bit set.
type Flags uint8

// The system flags.
const (
	FlagSeen Flags = 1 << iota
	FlagAnswered
	FlagFlagged
	FlagDeleted
	FlagDraft
)

// Mailbox is one folder of an account.
type Mailbox struct {
	ID            int64
	Name          string
	SpecialUse    string // "", `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq int64
	Subscribed    bool
}

// Message is one message's index row (without its parsed structure).
type Message struct {
	ID           int64 // unique in the account, never reused
	MailboxID    int64
	UID          uint32
	ModSeq       int64
	Blob         string
	Size         int64
	InternalDate time.Time
	Flags        Flags
	Keywords     []string
	EmailID      string // RFC 8474 EMAILID, shared by copies
	ThreadID     string // RFC 8474 THREADID ("" until threading assigns one)
	SaveDate     time.Time
}

// UIDL is the POP3 unique id of a message in a mailbox with the given
// UIDVALIDITY: stable, never reused (UIDs are never reused under one
// UIDVALIDITY), 16 characters in 0x21-0x7E (RFC 1939 §7).
func (m Message) UIDL(uidValidity uint32) string {
	return fmt.Sprintf("%08x%08x", m.UID, uidValidity)
}

// DefaultMailboxes are created in every new account.
var defaultMailboxes = []struct{ name, use string }{
	{"INBOX", ""}, {"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`}, {"Junk", `\Junk`}, {"Archive", `\Archive`},
}

var migrations = []string{
	`CREATE TABLE mailboxes (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		special_use TEXT NOT NULL DEFAULT '',
		uidvalidity INTEGER NOT NULL,
		uidnext INTEGER NOT NULL DEFAULT 1,
		highestmodseq INTEGER NOT NULL DEFAULT 1,
		subscribed INTEGER NOT NULL DEFAULT 1,
		created INTEGER NOT NULL
	);
	CREATE TABLE messages (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
		uid INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		blob TEXT NOT NULL,
		size INTEGER NOT NULL,
		internal_date INTEGER NOT NULL,
		internal_tz INTEGER NOT NULL DEFAULT 0,
		save_date INTEGER NOT NULL,
		flags INTEGER NOT NULL DEFAULT 0,
		keywords TEXT NOT NULL DEFAULT '',
		email_id TEXT NOT NULL,
		thread_id TEXT NOT NULL DEFAULT '',
		meta BLOB NOT NULL,
		UNIQUE(mailbox_id, uid)
	);
	CREATE INDEX messages_blob ON messages(blob);
	CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
	CREATE TABLE expunged (
		mailbox_id INTEGER NOT NULL,
		uid INTEGER NOT NULL,
		modseq INTEGER NOT NULL,
		PRIMARY KEY(mailbox_id, uid)
	);
	CREATE TABLE counters (
		name TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	);
	INSERT INTO counters(name, value) VALUES ('modseq', 1), ('uidvalidity', 0);`,
	// 2: subscriptions are names, not mailbox rows (RFC 9051 §6.3.7: a
	// deleted mailbox stays subscribed, and LIST (SUBSCRIBED) reports it
	// \NonExistent). mailboxes.subscribed stays, kept equal to "the name
	// is in subscriptions" by the triggers, so readers need no join. A
	// new mailbox is subscribed (until 5); a renamed one keeps its
	// subscription.
	`CREATE TABLE subscriptions (name TEXT PRIMARY KEY);
	INSERT INTO subscriptions(name) SELECT name FROM mailboxes WHERE subscribed=1;
	CREATE TRIGGER subscribe_new_mailbox AFTER INSERT ON mailboxes BEGIN
		INSERT OR IGNORE INTO subscriptions(name) VALUES (new.name);
		UPDATE mailboxes SET subscribed=1 WHERE id=new.id;
	END;
	CREATE TRIGGER subscription_follows_rename AFTER UPDATE OF name ON mailboxes WHEN old.name != new.name BEGIN
		INSERT OR IGNORE INTO subscriptions(name) SELECT new.name WHERE EXISTS (SELECT 1 FROM subscriptions WHERE name=old.name);
		DELETE FROM subscriptions WHERE name=old.name;
		UPDATE mailboxes SET subscribed=EXISTS (SELECT 1 FROM subscriptions WHERE name=new.name) WHERE id=new.id;
	END;
	CREATE TRIGGER subscription_added AFTER INSERT ON subscriptions BEGIN
		UPDATE mailboxes SET subscribed=1 WHERE name=new.name;
	END;
	CREATE TRIGGER subscription_removed AFTER DELETE ON subscriptions BEGIN
		UPDATE mailboxes SET subscribed=0 WHERE name=old.name;
	END;`,
	// 3: small bodies kept in the index, written in the transaction of
	// their message rows (see InlineMax).
	`CREATE TABLE inline_bodies (
		id INTEGER PRIMARY KEY,
		data BLOB NOT NULL
	);`,
	// 4: POP3 UIDLs kept from the server a message was imported from
	// (import_uids.go), answered by UIDL instead of Message.UIDL; a row
	// goes with its message.
	`CREATE TABLE pop3_uidls (
		message_id INTEGER PRIMARY KEY,
		uidl TEXT NOT NULL
	);
	CREATE TRIGGER pop3_uidl_gone AFTER DELETE ON messages BEGIN
		DELETE FROM pop3_uidls WHERE message_id=old.id;
	END;`,
	// 5: CREATE no longer subscribes (RFC 9051 §6.3.9: clients subscribe
	// for themselves; imaptest's listext and subscribe tests expect a new
	// mailbox unsubscribed). The default mailboxes of a new account are
	// subscribed explicitly (ensureDefaultMailboxes). Existing
	// subscriptions stay, and so does that of a name subscribed before its
	// mailbox is created (again).
	`DROP TRIGGER subscribe_new_mailbox;
	CREATE TRIGGER new_mailbox_subscribed AFTER INSERT ON mailboxes BEGIN
		UPDATE mailboxes SET subscribed=EXISTS (SELECT 1 FROM subscriptions WHERE name=new.name) WHERE id=new.id;
	END;`,
	// 6: the expunged UIDs since a MODSEQ (Account.Changes, at every
	// IMAP sync and QRESYNC) without reading every expunged row of the
	// mailbox.
	`CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);`,
	// 7: the account's usage (bytes, messages) kept by triggers, so that
	// quotas and the usage table (usage.go) read one row, not every
	// message. A message's size never changes.
	`INSERT INTO counters(name, value) SELECT 'bytes', coalesce(sum(size), 0) FROM messages;
	INSERT INTO counters(name, value) SELECT 'messages', count(*) FROM messages;
	CREATE TRIGGER usage_added AFTER INSERT ON messages BEGIN
		UPDATE counters SET value=value+(CASE name WHEN 'bytes' THEN new.size ELSE 1 END) WHERE name IN ('bytes', 'messages');
	END;
	CREATE TRIGGER usage_removed AFTER DELETE ON messages BEGIN
		UPDATE counters SET value=value-(CASE name WHEN 'bytes' THEN old.size ELSE 1 END) WHERE name IN ('bytes', 'messages');
	END;
	CREATE TRIGGER usage_resized AFTER UPDATE OF size ON messages BEGIN
		UPDATE counters SET value=value+new.size-old.size WHERE name='bytes';
	END;`,
}

// InlineMax is the largest body the store keeps inline in the account's
// index (table inline_bodies) instead of a body file, when it gets the body
// as a memory Temp: its bytes are written in the same transaction as its
// message rows, so one WAL fsync, shared by a group commit, makes it
// durable, with no file, link or directory fsync. Larger bodies are files.
const InlineMax = 128 << 10

// InlineFanoutMax bounds the bytes one delivery writes inline over all its
// accounts (each account's index gets its own copy): a message to more
// accounts than that allows is one body file, hard-linked into each.
const InlineFanoutMax = 1 << 20

// An inline body's id (Message.Blob) is "i" and its key in inline_bodies:
// the MODSEQ of the message that brought it, so it is never reused (a
// session holding an expunged message never reads another body) and new
// bodies append to the table's b-tree. It is at most 19 characters and so
// never a body file name (blob.ValidID, 20).

// IsInlineBody reports whether a message's body id (Message.Blob) names a
// body kept inline in the account's index rather than a body file.
func IsInlineBody(id string) bool {
	if len(id) < 2 || len(id) > 19 || id[0] != 'i' {
		return false
	}
	for i := 1; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

func inlineID(key int64) string { return "i" + strconv.FormatInt(key, 10) }

// inlineKey is the inline_bodies key of inline body id.
func inlineKey(id string) int64 {
	n, _ := strconv.ParseInt(id[1:], 10, 64)
	return n
}

// indexPragmas tune the writer of each account index. Deliveries the
// journal holds are committed without fsync, and SQLite checkpoints (two
// fsyncs, and every page copied into the database) once the WAL reaches
// wal_autocheckpoint pages: 4,000 (16 MiB) rather than SQLite's 1,000
// makes that four times rarer, and the pages a checkpoint copies once
// (mailbox, counter and index pages) fewer per message. The WAL file is
// cut back to 4 MiB after each checkpoint.
var indexPragmas = []string{"wal_autocheckpoint(4000)", "journal_size_limit(4194304)"}

// Store is the mail store of one data directory.
type Store struct {
	dir string
	tmp string
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	// The open accounts (open.go): accts by id; busy has a channel for
	// each id being opened or closed, closed when that is done; idle
	// lists the open accounts nobody holds, least recently released
	// first.
	accts     map[int64]*Account
	busy      map[int64]chan struct{}
	idle      list.List
	maxOpen   int
	idleClose time.Duration
	evicting  sync.WaitGroup // accounts being closed by eviction
	// sweepOnOpen: Sweep ran, so each account is swept of orphan body
	// files when it is first opened (swept).
	sweepOnOpen bool
	swept       map[int64]bool
	// opened: accounts this Store has opened before (their directory
	// names were fsynced then).
	opened map[int64]bool
	// recent holds each opened account's \Recent boundaries (recent.go).
	recent      map[int64]*recentState
	janitorStop chan struct{}
	janitorWake chan struct{}
	janitorDone chan struct{}

	locks   map[int64]struct{}
	subs    map[int64]map[*Subscription]struct{}
	inline  inlineCache // inline bodies read ahead
	journal *journal    // the delivery journal, when StartJournal ran
	// replayed counts the journal records Open or StartJournal applied.
	replayed int

	parseBufs sync.Pool // *bufio.Reader for parseMeta

	// usage is every account's last known usage (usage.go); with
	// TrackUsage, loadUsage reads it in the background until usageStop,
	// and closes usageDone.
	usage     usageTable
	usageStop context.CancelFunc
	usageDone chan struct{}
}

// Open opens the store in dataDir, creating its directories.
func Open(ctx context.Context, dataDir string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		dir:   dataDir,
		tmp:   filepath.Join(dataDir, "tmp"),
		log:   log,
		accts: map[int64]*Account{},
		busy:  map[int64]chan struct{}{},
		swept: map[int64]bool{}, opened: map[int64]bool{}, recent: map[int64]*recentState{},
		maxOpen: DefaultMaxOpenAccounts, idleClose: DefaultAccountIdle,
		janitorStop: make(chan struct{}), janitorWake: make(chan struct{}, 1), janitorDone: make(chan struct{}),
		locks: map[int64]struct{}{},
		subs:  map[int64]map[*Subscription]struct{}{},
	}
	for _, d := range []string{s.tmp, filepath.Join(dataDir, "accounts")} {
		if err := safeio.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	// Make the accounts/ entry durable before any mail goes below it.
	if err := syncDir(dataDir); err != nil {
		return nil, err
	}
	s.usage.init(dataDir)
	s.usageStop, s.usageDone = func() {}, make(chan struct{})
	close(s.usageDone) // until TrackUsage
	go s.janitor()
	if err := s.recoverJournal(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Replayed is the number of acknowledged deliveries this Store found in
// the delivery journal and applied when it opened: what an unclean stop
// (a crash, a kill) left between the journal and the accounts' indexes.
func (s *Store) Replayed() int { return s.replayed }

// Close closes every open account.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	j := s.journal
	s.mu.Unlock()
	close(s.janitorStop)
	<-s.janitorDone
	if j != nil {
		// No new journal records; those written are queued in their
		// accounts, which apply them before closing.
		j.close()
	}
	// Accounts being evicted finish closing (and report to the
	// journal) first; then no account is busy.
	s.evicting.Wait()
	s.mu.Lock()
	accts := s.accts
	s.accts = map[int64]*Account{}
	s.idle.Init()
	s.mu.Unlock()
	var first error
	closed := make([]*Account, 0, len(accts))
	for _, a := range accts {
		if err := a.close(); err != nil && first == nil {
			first = err
		}
		closed = append(closed, a)
	}
	if j != nil {
		j.finish(closed)
	}
	s.mu.Lock()
	stop, done := s.usageStop, s.usageDone
	s.mu.Unlock()
	stop()
	<-done
	s.saveUsage()
	return first
}

// NewBody starts receiving a new message body. Finish it, then Deliver it.
// The body stays in memory up to InlineMax bytes (and is then kept inline
// in the index); a larger one goes to a temporary file.
func (s *Store) NewBody() (*blob.Writer, error) {
	return blob.NewSpool(s.tmp, InlineMax, nil), nil
}

// NewBodyFile starts receiving a new message body in a temporary file,
// whatever its size (for callers that hold many bodies at once).
func (s *Store) NewBodyFile() (*blob.Writer, error) {
	return blob.Create(s.tmp)
}

// NewBodyBuffer is NewBody with buf as the memory (see blob.NewSpool): the
// caller may pool it and reuse it once the body is delivered and removed.
func (s *Store) NewBodyBuffer(buf []byte) *blob.Writer {
	return blob.NewSpool(s.tmp, InlineMax, buf)
}

func (s *Store) accountDir(id int64) string {
	return filepath.Join(s.dir, "accounts", strconv.FormatInt(id, 10))
}

// RemoveAccount deletes an account's mail and index. The account must no
// longer be in the directory (userdb), so nothing new arrives for it.
func (s *Store) RemoveAccount(ctx context.Context, id int64) error {
	done, err := s.takeForRemoval(ctx, id)
	if err != nil {
		return err
	}
	defer done()
	s.inline.forget(id)
	dir := s.accountDir(id)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	trash := filepath.Join(s.tmp, fmt.Sprintf("deleted-account-%d-%d", id, time.Now().UnixNano()))
	if err := os.Rename(dir, trash); err != nil {
		return fmt.Errorf("remove account %d: %w", id, err)
	}
	s.usage.mu.Lock()
	s.usage.removeLocked(id)
	s.usage.mu.Unlock()
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove account %d: %w", id, err)
	}
	return nil
}

// Sweep removes crash leftovers: temporary bodies now, and body files no
// index row references from each account when this Store first opens it.
// Run it only when no delivery is in flight on this data directory (at
// server start, under the server's data-dir lock).
func (s *Store) Sweep(ctx context.Context) error {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("sweep tmp: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return fmt.Errorf("sweep tmp: %w", err)
		}
	}
	// Accounts are swept when first opened (openAccount), so that start-up
	// does not grow with their number; those open already (a journal
	// replay opened them) are swept now.
	s.mu.Lock()
	s.sweepOnOpen = true
	var open []*Account
	for id, a := range s.accts {
		if !s.swept[id] {
			s.swept[id] = true
			open = append(open, a)
		}
	}
	s.mu.Unlock()
	for _, a := range open {
		if err := a.sweepOrphans(ctx); err != nil {
			return err
		}
	}
	return nil
}

// LockMaildrop takes the exclusive POP3 maildrop lock of an account (RFC
// 1939 §8). It returns ok=false when another session holds it.
func (s *Store) LockMaildrop(accountID int64) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, held := s.locks[accountID]; held {
		return nil, false
	}
	s.locks[accountID] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.locks, accountID)
			s.mu.Unlock()
		})
	}, true
}

// Subscription wakes its owner when an account's mail changes. C has room
// for one wake-up; wake-ups coalesce, so a slow reader never makes the
// store buffer anything. After a wake-up, the owner asks the store what
// changed (by MODSEQ and UIDNEXT).
type Subscription struct {
	// C receives a value after any change to the account's mailboxes.
	C       chan struct{}
	s       *Store
	account int64
}

// Subscribe starts watching an account.
func (s *Store) Subscribe(accountID int64) *Subscription {
	sub := &Subscription{C: make(chan struct{}, 1), s: s, account: accountID}
	s.mu.Lock()
	m := s.subs[accountID]
	if m == nil {
		m = map[*Subscription]struct{}{}
		s.subs[accountID] = m
	}
	m[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

// Close stops the subscription.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	if m := sub.s.subs[sub.account]; m != nil {
		delete(m, sub)
		if len(m) == 0 {
			delete(sub.s.subs, sub.account)
		}
	}
	sub.s.mu.Unlock()
}

func (s *Store) notify(accountID int64) {
	s.mu.Lock()
	for sub := range s.subs[accountID] {
		select {
		case sub.C <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
}

// Target is one destination of a delivery.
type Target struct {
	AccountID int64
	// Mailbox is the mailbox name; "" or a missing mailbox means INBOX.
	Mailbox string
	Flags   Flags
}

// Deliver files the finished body t into every target. A memory Temp
// (blob.NewSpool) small enough is kept inline in each account's index (see
// InlineMax, InlineFanoutMax); any other body is linked into each account
// as a file. It returns only when every copy is durable, or with an error
// (some copies may then be filed; the caller reports a temporary failure
// and the sender retries). The caller still owns t and removes it
// afterwards.
func (s *Store) Deliver(ctx context.Context, t *blob.Temp, targets []Target) error {
	byAccount := map[int64][]Target{}
	var order []int64
	for _, tg := range targets {
		if _, ok := byAccount[tg.AccountID]; !ok {
			order = append(order, tg.AccountID)
		}
		byAccount[tg.AccountID] = append(byAccount[tg.AccountID], tg)
	}
	if t.InMemory() && (t.Size > InlineMax || int64(len(order))*t.Size > InlineFanoutMax) {
		// Not kept inline: one durable file, hard-linked into every
		// account, rather than a copy written per account.
		ft, err := t.File(s.tmp)
		if err != nil {
			return err
		}
		defer ft.Remove()
		t = ft
	}
	now := time.Now()
	s.mu.Lock()
	j := s.journal
	s.mu.Unlock()
	if j != nil && t.InMemory() && inlinable(t) {
		// The structure is parsed by each account's committer, off the
		// path to the 250.
		return s.deliverJournaled(ctx, j, t, order, byAccount, now)
	}
	meta, err := s.parseMeta(t)
	if err != nil {
		return err
	}
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, id := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.deliverAccount(ctx, t, meta, byAccount[id], now)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parseReadBuffer is the size of the line buffer message.Parse uses: a
// *bufio.Reader at least this big is used as it is, so the store lends it
// one from a pool instead of Parse allocating one per message.
const parseReadBuffer = 16 << 10

func (s *Store) parseMeta(t *blob.Temp) ([]byte, error) {
	f, err := t.NewReader()
	if err != nil {
		return nil, fmt.Errorf("open body: %w", err)
	}
	defer f.Close()
	return s.parseMetaFrom(f)
}

// parseMetaBytes is parseMeta for a body in memory.
func (s *Store) parseMetaBytes(body []byte) ([]byte, error) {
	return s.parseMetaFrom(bytes.NewReader(body))
}

func (s *Store) parseMetaFrom(f io.Reader) ([]byte, error) {
	br, _ := s.parseBufs.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(f, parseReadBuffer)
	} else {
		br.Reset(f)
	}
	defer func() {
		br.Reset(nil)
		s.parseBufs.Put(br)
	}()
	part, err := message.Parse(br)
	if err != nil {
		return nil, fmt.Errorf("parse body: %w", err)
	}
	meta, err := json.Marshal(part)
	if err != nil {
		return nil, fmt.Errorf("encode body structure: %w", err)
	}
	return meta, nil
}

func (s *Store) deliverAccount(ctx context.Context, t *blob.Temp, meta []byte, targets []Target, now time.Time) error {
	a, err := s.Account(ctx, targets[0].AccountID)
	if err != nil {
		return err
	}
	defer a.Release()
	msgs := make([]newMessage, len(targets))
	emailID := newEmailID()
	var id string
	inline := inlinable(t)
	if !inline {
		id = blob.NewID()
		if err := a.bodies.Link(t, id); err != nil {
			return err
		}
	}
	for i, tg := range targets {
		msgs[i] = newMessage{mailbox: tg.Mailbox, fallbackInbox: true, blob: id, size: t.Size, date: now, flags: tg.Flags, emailID: emailID, meta: meta}
		if inline {
			// One inline body, shared by the copies.
			msgs[i].sharesInline = i > 0
		}
	}
	if inline {
		msgs[0].inline = t.Data
	}
	if _, err := a.commit(ctx, msgs); err != nil {
		if !inline {
			a.bodies.Remove(id)
		}
		return fmt.Errorf("deliver to account %d: %w", a.ID, err)
	}
	return nil
}

// inlinable reports whether t is kept in the index rather than as a file.
func inlinable(t *blob.Temp) bool {
	return t.InMemory() && t.Size <= InlineMax && int64(len(t.Data)) == t.Size
}

func newEmailID() string {
	var b [9]byte
	rand.Read(b[:])
	return "M" + strings.ToLower(fmt.Sprintf("%x", b[:]))
}

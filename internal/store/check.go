package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/sqlite"
)

// ProblemKind names one kind of inconsistency Check finds.
type ProblemKind string

// The kinds of problem Check reports. The string is what `jodmai check`
// prints first on each problem line.
const (
	// ProblemIndexUnreadable: an account's index cannot be opened or read.
	ProblemIndexUnreadable ProblemKind = "index-unreadable"
	// ProblemIndexMissing: an account directory holds bodies but no index.
	ProblemIndexMissing ProblemKind = "index-missing"
	// ProblemIndexVersion: the index has a schema version this program
	// cannot check (newer, or older and not yet migrated).
	ProblemIndexVersion ProblemKind = "index-version"
	// ProblemIntegrity: PRAGMA integrity_check failed.
	ProblemIntegrity ProblemKind = "integrity"
	// ProblemForeignKey: PRAGMA foreign_key_check found a violation.
	ProblemForeignKey ProblemKind = "foreign-key"
	// ProblemMissingBody: an index row whose body (file or inline) does
	// not exist.
	ProblemMissingBody ProblemKind = "missing-body"
	// ProblemSizeMismatch: an index row whose size is not its file's size.
	ProblemSizeMismatch ProblemKind = "size-mismatch"
	// ProblemOrphanBody: a body (file or inline) no index row references.
	ProblemOrphanBody ProblemKind = "orphan-body"
	// ProblemUIDNext: a mailbox's UIDNEXT is not above every UID it used.
	ProblemUIDNext ProblemKind = "uidnext"
	// ProblemHighestModSeq: a mailbox's HIGHESTMODSEQ is below a MODSEQ
	// of one of its messages or expunged UIDs.
	ProblemHighestModSeq ProblemKind = "highestmodseq"
	// ProblemCounter: an account's MODSEQ or UIDVALIDITY counter is below
	// a value already handed out, so it could hand one out again.
	ProblemCounter ProblemKind = "counter"
	// ProblemUnknownAccount: an account directory of an account the
	// directory (userdb) does not have (a deletion interrupted by a crash).
	ProblemUnknownAccount ProblemKind = "unknown-account"
	// ProblemStaleTemp: leftovers in tmp/ with no server running.
	ProblemStaleTemp ProblemKind = "stale-temp"
	// ProblemHotJournal: an index with an interrupted rollback-journal
	// transaction (a crash while the index was being created), which a
	// read-only check cannot read past; the next writer rolls it back.
	ProblemHotJournal ProblemKind = "hot-journal"
	// ProblemDatabase: a database outside the store (the user directory)
	// failed its checks; reported by callers (package datacheck).
	ProblemDatabase ProblemKind = "database"
)

// Problem is one inconsistency.
type Problem struct {
	Kind ProblemKind
	// Account is the account id, 0 for the data directory as a whole.
	Account int64
	// Mailbox and UID say which mailbox or message, when it is one.
	Mailbox string
	UID     uint32
	// Detail says what is wrong, for people.
	Detail string
	// Repaired says Check fixed it. Lost says that the fix was to give
	// up a message that could not be saved (its body file was gone).
	Repaired bool
	Lost     bool
	// NotRepaired says why a repair run left it alone ("" when not
	// repairing or when repaired).
	NotRepaired string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Account != 0 {
		fmt.Fprintf(&b, " account %d", p.Account)
	}
	if p.Mailbox != "" {
		fmt.Fprintf(&b, " mailbox %q", p.Mailbox)
	}
	if p.UID != 0 {
		fmt.Fprintf(&b, " uid %d", p.UID)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	switch {
	case p.Lost:
		b.WriteString(" [REPAIRED: MESSAGE LOST, index row deleted]")
	case p.Repaired:
		b.WriteString(" [repaired]")
	case p.NotRepaired != "":
		b.WriteString(" [not repaired: " + p.NotRepaired + "]")
	}
	return b.String()
}

// Report is what Check found.
type Report struct {
	// Live says a server may have been running during the check (see
	// CheckOptions.Live).
	Live bool
	// Counts of what was checked.
	Accounts, Mailboxes, Messages, Bodies int
	BodyBytes                             int64
	// InlineBodies counts the bodies (of Bodies) kept inline in indexes.
	InlineBodies int
	// SkippedRecent counts unreferenced body files younger than
	// InFlightGrace that a live check did not call orphans: a delivery
	// may be about to commit their index rows.
	SkippedRecent int
	// SkippedBusy counts account indexes a live check could not read
	// because a writer was in the middle of creating them.
	SkippedBusy int
	// JournalReplayed counts acknowledged deliveries the delivery journal
	// held and the store applied when it opened (an unclean stop); set by
	// the caller from Store.Replayed.
	JournalReplayed int
	Problems        []Problem
}

// Remaining counts the problems not repaired.
func (r *Report) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if !p.Repaired {
			n++
		}
	}
	return n
}

// Lost counts the messages a repair gave up.
func (r *Report) Lost() int {
	n := 0
	for _, p := range r.Problems {
		if p.Lost {
			n++
		}
	}
	return n
}

// add appends p and returns its index (not a pointer: later appends move
// the slice).
func (r *Report) add(p Problem) int {
	r.Problems = append(r.Problems, p)
	return len(r.Problems) - 1
}

// CheckOptions say what Check may assume and do.
type CheckOptions struct {
	// Repair fixes what can be fixed without guessing: it raises UIDNEXT,
	// HIGHESTMODSEQ and the counters, deletes (as expunged, and loudly)
	// index rows whose body file is gone, removes orphan body files,
	// leftovers in tmp/ and directories of deleted accounts. It never
	// touches an account whose index fails integrity_check. Repair
	// requires that no server uses the data directory (the caller holds
	// its lock), and is refused with Live.
	Repair bool
	// Live says a server may be using the store while Check runs. Check
	// then only reads, never through a writing connection, and does not
	// call an unreferenced body file an orphan while it may belong to a
	// delivery in flight (written less than InFlightGrace ago, or
	// referenced when asked again).
	Live bool
	// KnownAccounts, when not nil, are the ids of every account in the
	// directory; an account directory of any other id is reported.
	KnownAccounts []int64
	// IssuedAccounts is the highest account id the directory has ever
	// issued (ids are never reused). Repair removes the directory of an
	// unknown account only at or below it: a directory above it means
	// the directory database is older than the store (restored from a
	// backup?), and its mail is kept.
	IssuedAccounts int64
}

// InFlightGrace is how old an unreferenced body file must be before a live
// check calls it an orphan.
const InFlightGrace = 5 * time.Minute

// liveRecheckDelay is how long a live check waits before looking again at
// a body file that no row referenced: an expunge removes the file right
// after its transaction commits.
const liveRecheckDelay = 300 * time.Millisecond

// Check verifies the store: each account's index passes SQLite's
// integrity_check and foreign_key_check; every index row's body file exists
// with the row's size; every body file is referenced by a row; each
// mailbox's UIDNEXT is above every UID it used and its HIGHESTMODSEQ at
// least every MODSEQ; the account's counters are above every value handed
// out; every account directory belongs to a known account; and, with no
// server running, tmp/ is empty. It reports, and with opts.Repair fixes
// what it safely can (see CheckOptions).
//
// The returned error is for a check that could not run (a directory that
// cannot be read, a canceled ctx); damage is reported in the Report.
func (s *Store) Check(ctx context.Context, opts CheckOptions) (*Report, error) {
	if opts.Repair && opts.Live {
		return nil, errors.New("store: check: repair needs exclusive use of the data directory")
	}
	rep := &Report{Live: opts.Live}
	ids, err := s.accountIDs()
	if err != nil {
		return rep, err
	}
	known := map[int64]bool{}
	for _, id := range opts.KnownAccounts {
		known[id] = true
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if opts.KnownAccounts != nil && !known[id] {
			if err := s.checkUnknownAccount(ctx, id, opts, rep); err != nil {
				return rep, err
			}
			continue
		}
		rep.Accounts++
		if err := s.checkAccount(ctx, id, opts, rep); err != nil {
			return rep, err
		}
	}
	if !opts.Live {
		if err := s.checkTmp(opts, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// accountIDs lists the account directories.
func (s *Store) accountIDs() ([]int64, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "accounts"))
	if err != nil {
		return nil, fmt.Errorf("check: read accounts: %w", err)
	}
	var ids []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || id <= 0 || !e.IsDir() || strconv.FormatInt(id, 10) != e.Name() {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// bodyFile is one file found in an account's body directory.
type bodyFile struct {
	size  int64
	mtime time.Time
}

// listBodies lists an account's body files by id, without changing
// anything (blob.Dir.Walk removes leftovers, which a live check must not).
func listBodies(msgDir string) (map[string]bodyFile, error) {
	files := map[string]bodyFile{}
	shards, err := os.ReadDir(msgDir)
	if errors.Is(err, fs.ErrNotExist) {
		return files, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check: read body dir: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(msgDir, sh.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the account was removed while we looked
		}
		if err != nil {
			return nil, fmt.Errorf("check: read body shard: %w", err)
		}
		for _, e := range ents {
			if !blob.ValidID(e.Name()) || e.Name()[:2] != sh.Name() {
				continue
			}
			info, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we looked
			}
			if err != nil {
				return nil, fmt.Errorf("check: stat body: %w", err)
			}
			files[e.Name()] = bodyFile{size: info.Size(), mtime: info.ModTime()}
		}
	}
	return files, nil
}

// openReadOnly opens an SQLite database for reading only, with one
// connection.
func openReadOnly(path string) (*sql.DB, error) { return sqlite.OpenFile(path, true) }

// hotJournal reports whether the database at path has a rollback journal
// with content next to it: a transaction interrupted by a crash.
func hotJournal(path string) bool {
	fi, err := os.Stat(path + "-journal")
	return err == nil && fi.Size() > 0
}

// mailboxScan is what Check read about one mailbox.
type mailboxScan struct {
	id                   int64
	name                 string
	uidnext, uidvalidity int64
	highestModSeq        int64
	maxUID, maxModSeq    int64 // over messages and expunged UIDs
	messages             int64
}

// blobRefs is what the rows referencing one body say about it.
type blobRefs struct {
	minSize, maxSize int64
	rows             int64
}

// accountScan is one consistent read of an account's index.
type accountScan struct {
	mailboxes      []*mailboxScan
	byID           map[int64]*mailboxScan
	modseqCounter  int64
	uidvalCounter  int64
	maxModSeq      int64 // over messages, expunged and mailboxes
	maxUIDValidity int64
	blobs          map[string]blobRefs
	inline         map[string]int64 // inline body id -> size
}

// scanIndex reads everything Check compares in one read transaction, so
// a live server's commits never show half.
func scanIndex(ctx context.Context, db *sql.DB) (*accountScan, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	sc := &accountScan{byID: map[int64]*mailboxScan{}, blobs: map[string]blobRefs{}, inline: map[string]int64{}}
	rows, err := tx.QueryContext(ctx, `SELECT id, name, uidnext, uidvalidity, highestmodseq FROM mailboxes ORDER BY name`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		m := &mailboxScan{}
		if err := rows.Scan(&m.id, &m.name, &m.uidnext, &m.uidvalidity, &m.highestModSeq); err != nil {
			rows.Close()
			return nil, err
		}
		sc.mailboxes = append(sc.mailboxes, m)
		sc.byID[m.id] = m
		sc.maxModSeq = max(sc.maxModSeq, m.highestModSeq)
		sc.maxUIDValidity = max(sc.maxUIDValidity, m.uidvalidity)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, q := range []string{
		`SELECT mailbox_id, max(uid), max(modseq), count(*) FROM messages GROUP BY mailbox_id`,
		`SELECT mailbox_id, max(uid), max(modseq), 0 FROM expunged GROUP BY mailbox_id`,
	} {
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, uid, modseq, n int64
			if err := rows.Scan(&id, &uid, &modseq, &n); err != nil {
				rows.Close()
				return nil, err
			}
			sc.maxModSeq = max(sc.maxModSeq, modseq)
			m := sc.byID[id]
			if m == nil {
				continue // foreign_key_check reports it
			}
			m.maxUID = max(m.maxUID, uid)
			m.maxModSeq = max(m.maxModSeq, modseq)
			m.messages += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	rows, err = tx.QueryContext(ctx, `SELECT name, value FROM counters`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return nil, err
		}
		switch name {
		case "modseq":
			sc.modseqCounter = v
		case "uidvalidity":
			sc.uidvalCounter = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT 'i' || id, length(data) FROM inline_bodies`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		sc.inline[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT blob, min(size), max(size), count(*) FROM messages GROUP BY blob`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b string
		var r blobRefs
		if err := rows.Scan(&b, &r.minSize, &r.maxSize, &r.rows); err != nil {
			return nil, err
		}
		sc.blobs[b] = r
	}
	return sc, rows.Err()
}

// msgRow is one index row, for reporting.
type msgRow struct {
	mailboxID int64
	mailbox   string
	uid       uint32
	size      int64
	meta      []byte
}

func (m msgRow) describe() string {
	var p message.Part
	var parts []string
	if json.Unmarshal(m.meta, &p) == nil && p.Envelope != nil {
		e := p.Envelope
		if e.MessageID != "" {
			parts = append(parts, "message-id "+e.MessageID)
		}
		if len(e.From) > 0 {
			parts = append(parts, "from "+e.From[0].Mailbox+"@"+e.From[0].Host)
		}
		if e.Subject != "" {
			parts = append(parts, fmt.Sprintf("subject %q", e.Subject))
		}
		if e.Date != "" {
			parts = append(parts, "date "+e.Date)
		}
	}
	parts = append(parts, fmt.Sprintf("%d bytes", m.size))
	return strings.Join(parts, ", ")
}

// rowsOfBlob reads the rows referencing a body.
func rowsOfBlob(ctx context.Context, db *sql.DB, id string) ([]msgRow, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.mailbox_id, coalesce(b.name, ''), m.uid, m.size, m.meta FROM messages m LEFT JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.blob=? ORDER BY m.mailbox_id, m.uid`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []msgRow
	for rows.Next() {
		var r msgRow
		if err := rows.Scan(&r.mailboxID, &r.mailbox, &r.uid, &r.size, &r.meta); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// accountCheck is the check of one account: what each phase found, for
// the phases after it and for the repair.
type accountCheck struct {
	s    *Store
	id   int64
	opts CheckOptions
	rep  *Report

	msgDir, indexPath string
	db                *sql.DB             // the index, read-only; nil once closed
	sc                *accountScan        // the index's contents
	files             map[string]bodyFile // the body files, listed after sc
	damaged           bool                // the index failed a check: repair nothing

	// Problems (indexes into rep.Problems) a repair fixes.
	fixCounters  []int
	lost         []lostMsg
	orphans      []int    // body files of no message...
	orphanBlobs  []string // ...and their ids
	orphanInline []int    // inline bodies of no message...
	inlineIDs    []string // ...and their ids
}

// lostMsg is a message whose body is gone.
type lostMsg struct {
	row msgRow
	p   int // index into rep.Problems
}

func (c *accountCheck) prob(kind ProblemKind, format string, a ...any) int {
	return c.rep.add(Problem{Kind: kind, Account: c.id, Detail: fmt.Sprintf(format, a...)})
}

func (c *accountCheck) notRepaired(i int, why string) {
	if c.opts.Repair {
		c.rep.Problems[i].NotRepaired = why
	}
}

func (c *accountCheck) closeIndex() {
	if c.db != nil {
		c.db.Close()
		c.db = nil
	}
}

// checkAccount checks one account and, with opts.Repair, repairs it, phase
// by phase; a phase that finds the index unusable reports it and ends the
// account's check.
func (s *Store) checkAccount(ctx context.Context, id int64, opts CheckOptions, rep *Report) error {
	dir := s.accountDir(id)
	c := &accountCheck{s: s, id: id, opts: opts, rep: rep, msgDir: filepath.Join(dir, "msg"), indexPath: filepath.Join(dir, "index.db")}
	defer c.closeIndex()
	if ok, err := c.openIndex(ctx); !ok || err != nil {
		return err
	}
	if !c.checkSQLite(ctx) {
		return nil
	}
	if ok, err := c.readIndexAndBodies(ctx); !ok || err != nil {
		return err
	}
	c.checkCounters()
	if err := c.checkRowBodies(ctx); err != nil {
		return err
	}
	if err := c.findOrphans(ctx); err != nil {
		return err
	}
	c.closeIndex()
	if !opts.Repair {
		return nil
	}
	return c.repair(ctx)
}

// openIndex opens the index read-only, rolling back a creation a crash
// interrupted (when repairing), and checks its schema version. ok is false
// when the account's check ends here (what was wrong is reported).
func (c *accountCheck) openIndex(ctx context.Context) (ok bool, err error) {
	if _, err := os.Stat(c.indexPath); errors.Is(err, fs.ErrNotExist) {
		// A crash while the account's first message was arriving leaves
		// the directory before the index; the index exists before any
		// body is linked, so bodies without one mean the index was lost.
		files, err := listBodies(c.msgDir)
		if err != nil {
			return false, err
		}
		if len(files) > 0 {
			var n int64
			for _, f := range files {
				n += f.size
			}
			p := c.prob(ProblemIndexMissing, "%d body files (%d bytes) but no index.db; restore the index from a backup", len(files), n)
			c.notRepaired(p, "the mail is kept; nothing can say which mailbox, UID or flags each body had")
		}
		return false, nil
	}

	c.db, err = openReadOnly(c.indexPath)
	if err != nil {
		c.db = nil
		p := c.prob(ProblemIndexUnreadable, "open index: %v", err)
		c.notRepaired(p, "index damaged")
		return false, nil
	}
	var version int
	err = c.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version)
	if err != nil && hotJournal(c.indexPath) {
		// A crash in the middle of the index's creation (its switch to
		// WAL is a rollback-journal transaction) leaves a hot journal,
		// and only a writer may roll it back.
		switch {
		case c.opts.Live:
			c.rep.SkippedBusy++ // being created right now, or the server will roll it back
			return false, nil
		case !c.opts.Repair:
			c.prob(ProblemHotJournal, "the index has an interrupted transaction (hot journal) that a read-only check cannot read past; the server rolls it back when it starts, as does check --repair")
			return false, nil
		}
		c.closeIndex()
		a, oerr := c.s.Account(ctx, c.id)
		if oerr != nil {
			p := c.prob(ProblemIndexUnreadable, "roll back the interrupted transaction: %v", oerr)
			c.notRepaired(p, "index damaged")
			return false, nil
		}
		a.Release()
		p := c.prob(ProblemHotJournal, "the index had an interrupted transaction (hot journal)")
		c.rep.Problems[p].Repaired = true
		if c.db, err = openReadOnly(c.indexPath); err == nil {
			err = c.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version)
		} else {
			c.db = nil
		}
	}
	if err != nil {
		p := c.prob(ProblemIndexUnreadable, "read schema version: %v", err)
		c.notRepaired(p, "index damaged")
		return false, nil
	}
	if version != len(migrations) {
		files, err := listBodies(c.msgDir)
		if err != nil {
			return false, err
		}
		if version == 0 && len(files) == 0 {
			return false, nil // created, never committed: a crash at the first delivery
		}
		p := c.prob(ProblemIndexVersion, "schema version %d, this program checks version %d", version, len(migrations))
		c.notRepaired(p, "run the matching jodmai version (a start migrates older indexes)")
		return false, nil
	}
	return true, nil
}

// checkSQLite runs SQLite's own checks. An index that fails them is
// reported and read on, but repaired in nothing (damaged); ok is false
// when the checks could not run.
func (c *accountCheck) checkSQLite(ctx context.Context) (ok bool) {
	integrity, fks, err := sqlite.Checks(ctx, c.db)
	if err != nil {
		p := c.prob(ProblemIndexUnreadable, "%v", err)
		c.notRepaired(p, "index damaged")
		return false
	}
	c.damaged = len(integrity) > 0
	for _, line := range integrity {
		p := c.prob(ProblemIntegrity, "%s", line)
		c.notRepaired(p, "restore the index from a backup")
	}
	for _, line := range fks {
		p := c.prob(ProblemForeignKey, "%s", line)
		c.notRepaired(p, "needs a person's decision")
	}
	return true
}

// readIndexAndBodies reads the index (one transaction) and then lists the
// body files, and counts them into the report.
func (c *accountCheck) readIndexAndBodies(ctx context.Context) (ok bool, err error) {
	sc, err := scanIndex(ctx, c.db)
	if err != nil {
		p := c.prob(ProblemIndexUnreadable, "read index: %v", err)
		c.notRepaired(p, "index damaged")
		return false, nil
	}
	// The files are listed after the index was read: a live delivery
	// links its body before its row commits, and an expunge removes the
	// file after its row, so every row read above had its file when read.
	files, err := listBodies(c.msgDir)
	if err != nil {
		return false, err
	}
	c.sc, c.files = sc, files
	rep := c.rep
	rep.Mailboxes += len(sc.mailboxes)
	for _, m := range sc.mailboxes {
		rep.Messages += int(m.messages)
	}
	rep.Bodies += len(files)
	for _, f := range files {
		rep.BodyBytes += f.size
	}
	rep.Bodies += len(sc.inline)
	rep.InlineBodies += len(sc.inline)
	for _, n := range sc.inline {
		rep.BodyBytes += n
	}
	return true, nil
}

// checkCounters finds UIDNEXT, HIGHESTMODSEQ and account counters at or
// below values already used. It runs first: repairing them makes the
// expunges of lost messages take MODSEQs above every one used.
func (c *accountCheck) checkCounters() {
	sc := c.sc
	for _, m := range sc.mailboxes {
		if m.uidnext <= m.maxUID {
			p := c.prob(ProblemUIDNext, "UIDNEXT %d is not above UID %d already used", m.uidnext, m.maxUID)
			c.rep.Problems[p].Mailbox = m.name
			c.fixCounters = append(c.fixCounters, p)
		}
		if m.highestModSeq < m.maxModSeq {
			p := c.prob(ProblemHighestModSeq, "HIGHESTMODSEQ %d is below MODSEQ %d already used", m.highestModSeq, m.maxModSeq)
			c.rep.Problems[p].Mailbox = m.name
			c.fixCounters = append(c.fixCounters, p)
		}
	}
	if sc.modseqCounter < sc.maxModSeq {
		c.fixCounters = append(c.fixCounters, c.prob(ProblemCounter, "MODSEQ counter %d is below MODSEQ %d already used", sc.modseqCounter, sc.maxModSeq))
	}
	if sc.uidvalCounter < sc.maxUIDValidity {
		c.fixCounters = append(c.fixCounters, c.prob(ProblemCounter, "UIDVALIDITY counter %d is below UIDVALIDITY %d already used", sc.uidvalCounter, sc.maxUIDValidity))
	}
}

// checkRowBodies checks the body of every row: present (asked again
// before it is called lost) and of the row's size.
func (c *accountCheck) checkRowBodies(ctx context.Context) error {
	sc, files, db := c.sc, c.files, c.db
	var missing []string
	var rowBlobs []string
	for b := range sc.blobs {
		rowBlobs = append(rowBlobs, b)
	}
	slices.Sort(rowBlobs)
	for _, b := range rowBlobs {
		refs := sc.blobs[b]
		f, ok := files[b]
		if IsInlineBody(b) {
			var n int64
			n, ok = sc.inline[b]
			f = bodyFile{size: n}
		}
		if !ok {
			missing = append(missing, b)
			continue
		}
		if refs.minSize != f.size || refs.maxSize != f.size {
			rows, err := rowsOfBlob(ctx, db, b)
			if err != nil {
				c.notRepaired(c.prob(ProblemIndexUnreadable, "read index: %v", err), "index damaged")
				c.damaged = true
				continue
			}
			for _, r := range rows {
				if r.size == f.size {
					continue
				}
				p := c.prob(ProblemSizeMismatch, "body %s is %d bytes, the index says %d (%s)", b, f.size, r.size, r.describe())
				c.rep.Problems[p].Mailbox, c.rep.Problems[p].UID = r.mailbox, r.uid
				c.notRepaired(p, "the body was changed or truncated; restore it from a backup")
			}
		}
	}
	for _, b := range missing {
		// Ask again: a live expunge may have removed row and file since
		// the index was read. Rows still there now, with the file gone
		// before, are lost for real (a referenced body is never removed).
		rows, err := rowsOfBlob(ctx, db, b)
		if err != nil {
			c.notRepaired(c.prob(ProblemIndexUnreadable, "read index: %v", err), "index damaged")
			c.damaged = true
			continue
		}
		if len(rows) == 0 {
			continue
		}
		if IsInlineBody(b) {
			// Rows and inline bodies change in one transaction: a row
			// without its inline body in the same read is lost for real.
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM inline_bodies WHERE id=?`, inlineKey(b)).Scan(&n); err != nil {
				c.notRepaired(c.prob(ProblemIndexUnreadable, "read index: %v", err), "index damaged")
				c.damaged = true
				continue
			}
			if n > 0 {
				continue
			}
		} else if _, err := os.Stat(filepath.Join(c.msgDir, b[:2], b)); err == nil {
			continue
		}
		for _, r := range rows {
			p := c.prob(ProblemMissingBody, "body %s of the message is missing (%s)", b, r.describe())
			c.rep.Problems[p].Mailbox, c.rep.Problems[p].UID = r.mailbox, r.uid
			c.lost = append(c.lost, lostMsg{r, p})
		}
	}
	return nil
}

// findOrphans finds the bodies, files and inline, that no row references.
// A live check leaves out files a delivery in flight may be about to
// reference.
func (c *accountCheck) findOrphans(ctx context.Context) error {
	sc, files := c.sc, c.files
	var orphanIDs []string
	for b := range files {
		if _, ok := sc.blobs[b]; !ok {
			orphanIDs = append(orphanIDs, b)
		}
	}
	slices.Sort(orphanIDs)
	if c.opts.Live && len(orphanIDs) > 0 {
		kept := orphanIDs[:0]
		for _, b := range orphanIDs {
			if time.Since(files[b].mtime) < InFlightGrace {
				c.rep.SkippedRecent++
				continue
			}
			kept = append(kept, b)
		}
		orphanIDs = kept
		if len(orphanIDs) > 0 {
			select {
			case <-time.After(liveRecheckDelay):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	// Inline bodies of no row: read in the same transaction as the rows,
	// so never a delivery in flight.
	for b := range sc.inline {
		if _, ok := sc.blobs[b]; !ok {
			c.inlineIDs = append(c.inlineIDs, b)
		}
	}
	slices.Sort(c.inlineIDs)
	for _, b := range c.inlineIDs {
		c.orphanInline = append(c.orphanInline, c.prob(ProblemOrphanBody, "inline body %s (%d bytes) belongs to no message", b, sc.inline[b]))
	}
	for _, b := range orphanIDs {
		if c.opts.Live {
			var n int
			if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE blob=?`, b).Scan(&n); err != nil || n > 0 {
				continue
			}
			if _, err := os.Stat(filepath.Join(c.msgDir, b[:2], b)); err != nil {
				continue
			}
		}
		c.orphans = append(c.orphans, c.prob(ProblemOrphanBody, "body file %s (%d bytes) belongs to no message", b, files[b].size))
		c.orphanBlobs = append(c.orphanBlobs, b)
	}
	return nil
}

// repair fixes what the phases found, through the account's writer:
// counters raised, lost messages expunged (loudly), orphans removed. A
// damaged index is repaired in nothing.
func (c *accountCheck) repair(ctx context.Context) error {
	rep, id := c.rep, c.id
	if c.damaged {
		for _, p := range c.fixCounters {
			rep.Problems[p].NotRepaired = "index damaged"
		}
		for _, l := range c.lost {
			rep.Problems[l.p].NotRepaired = "index damaged"
		}
		for _, p := range append(c.orphans, c.orphanInline...) {
			rep.Problems[p].NotRepaired = "index damaged: cannot be sure no message needs it"
		}
		return nil
	}
	if len(c.fixCounters) == 0 && len(c.lost) == 0 && len(c.orphans) == 0 && len(c.orphanInline) == 0 {
		return nil
	}
	a, err := c.s.Account(ctx, id)
	if err != nil {
		return fmt.Errorf("check: open account %d for repair: %w", id, err)
	}
	defer a.Release()
	if len(c.fixCounters) > 0 {
		if err := a.raiseCounters(ctx); err != nil {
			return fmt.Errorf("check: repair account %d: %w", id, err)
		}
		for _, p := range c.fixCounters {
			rep.Problems[p].Repaired = true
		}
	}
	if len(c.lost) > 0 {
		byMailbox := map[int64][]uint32{}
		for _, l := range c.lost {
			byMailbox[l.row.mailboxID] = append(byMailbox[l.row.mailboxID], l.row.uid)
		}
		for mb, uids := range byMailbox {
			if _, err := a.Expunge(ctx, mb, uids); err != nil {
				return fmt.Errorf("check: repair account %d: %w", id, err)
			}
		}
		for _, l := range c.lost {
			p := &rep.Problems[l.p]
			p.Repaired, p.Lost = true, true
			c.s.log.Error("message lost: its body file is gone; index row deleted", "account", id, "mailbox", l.row.mailbox, "uid", l.row.uid)
		}
	}
	for i, b := range c.orphanBlobs {
		if err := a.bodies.Remove(b); err != nil {
			return fmt.Errorf("check: repair account %d: %w", id, err)
		}
		rep.Problems[c.orphans[i]].Repaired = true
	}
	for i, b := range c.inlineIDs {
		err := a.db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM inline_bodies WHERE id=? AND NOT EXISTS (SELECT 1 FROM messages WHERE blob=?)`, inlineKey(b), b)
			return err
		})
		if err != nil {
			return fmt.Errorf("check: repair account %d: %w", id, err)
		}
		rep.Problems[c.orphanInline[i]].Repaired = true
	}
	return nil
}

// raiseCounters raises every mailbox's UIDNEXT above the UIDs it used and
// HIGHESTMODSEQ to the MODSEQs it used, and the account's counters above
// every value handed out. It never lowers anything.
func (a *Account) raiseCounters(ctx context.Context) error {
	return a.db.Tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`UPDATE mailboxes SET uidnext = max(uidnext,
				coalesce((SELECT max(uid) FROM messages WHERE mailbox_id = mailboxes.id), 0) + 1,
				coalesce((SELECT max(uid) FROM expunged WHERE mailbox_id = mailboxes.id), 0) + 1)`,
			`UPDATE mailboxes SET highestmodseq = max(highestmodseq,
				coalesce((SELECT max(modseq) FROM messages WHERE mailbox_id = mailboxes.id), 0),
				coalesce((SELECT max(modseq) FROM expunged WHERE mailbox_id = mailboxes.id), 0))`,
			`UPDATE counters SET value = max(value,
				coalesce((SELECT max(modseq) FROM messages), 0),
				coalesce((SELECT max(modseq) FROM expunged), 0),
				coalesce((SELECT max(highestmodseq) FROM mailboxes), 0)) WHERE name = 'modseq'`,
			`UPDATE counters SET value = max(value, coalesce((SELECT max(uidvalidity) FROM mailboxes), 0)) WHERE name = 'uidvalidity'`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("raise counters: %w", err)
			}
		}
		return nil
	})
}

// checkUnknownAccount reports the directory of an account the directory
// database does not know, and with opts.Repair removes it when that is
// safe.
func (s *Store) checkUnknownAccount(ctx context.Context, id int64, opts CheckOptions, rep *Report) error {
	dir := s.accountDir(id)
	files, err := listBodies(filepath.Join(dir, "msg"))
	if err != nil {
		return err
	}
	var bytes int64
	for _, f := range files {
		bytes += f.size
	}
	msgs := "unknown"
	if db, err := openReadOnly(filepath.Join(dir, "index.db")); err == nil {
		var n int64
		if db.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n) == nil {
			msgs = strconv.FormatInt(n, 10)
		}
		db.Close()
	}
	p := rep.add(Problem{Kind: ProblemUnknownAccount, Account: id,
		Detail: fmt.Sprintf("directory of an account that does not exist (deleted?): %s messages, %d body files, %d bytes", msgs, len(files), bytes)})
	if !opts.Repair {
		return nil
	}
	if id > opts.IssuedAccounts {
		rep.Problems[p].NotRepaired = fmt.Sprintf("the directory never issued id %d (highest %d): global.db may be older than the mail; kept", id, opts.IssuedAccounts)
		return nil
	}
	if err := s.RemoveAccount(ctx, id); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	rep.Problems[p].Repaired = true
	return nil
}

// checkTmp reports (and with Repair removes) leftovers in tmp/: with no
// server running, nothing there is in use.
func (s *Store) checkTmp(opts CheckOptions, rep *Report) error {
	ents, err := os.ReadDir(s.tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check: read tmp: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	p := rep.add(Problem{Kind: ProblemStaleTemp, Detail: fmt.Sprintf("%d leftover entries in tmp/ (bodies of interrupted deliveries; the server removes them at start)", len(ents))})
	if !opts.Repair {
		return nil
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmp, e.Name())); err != nil {
			return fmt.Errorf("check: clean tmp: %w", err)
		}
	}
	rep.Problems[p].Repaired = true
	return nil
}

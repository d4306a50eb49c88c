package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrClosed is returned by writes to a queue being closed.
var ErrClosed = errors.New("queue: closed")

// maxBatch caps how many writes share one transaction.
const maxBatch = 128

// writeReq is one write waiting for the group committer.
type writeReq struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	err  error
	done chan struct{}
}

// write runs fn in a write transaction shared with the writes of
// concurrent callers (Add, the results of attempts), and returns once that
// transaction is committed: one fsync for the group (a group commit).
//
// fn's error undoes only its own changes and is what write returns (the
// others of its group run again without it), so fn must depend on nothing
// but the database: it may run twice. A failing commit fails every write
// of the group. fn gets a context that does not end: interrupting a
// statement would roll back the whole shared transaction. Once queued, a write is carried out
// even if ctx ends, and write waits for it, so a caller never thinks a
// write failed that did not.
func (q *Queue) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	req := &writeReq{fn: fn, done: make(chan struct{})}
	select {
	case q.writes <- req:
	case <-q.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-req.done:
	case <-q.exited:
		// The committer may have exited before it saw req (the send can
		// win the race against stop): then nobody answers it.
		select {
		case <-req.done:
		default:
			return ErrClosed
		}
	}
	return req.err
}

// committer carries out the queued writes, as many as are waiting in one
// transaction, until stop.
func (q *Queue) committer() {
	defer close(q.exited)
	for {
		var first *writeReq
		select {
		case first = <-q.writes:
		case <-q.stop:
			for {
				select {
				case r := <-q.writes:
					r.err = ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		batch := []*writeReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-q.writes:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		q.commitBatch(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// commitBatch runs the writes of batch in one transaction and commits it;
// it sets each request's err. When a write fails, the transaction is
// rolled back and each write runs again alone, so that one bad write does
// not fail the others (writes are functions of the database only, and
// can run again).
func (q *Queue) commitBatch(batch []*writeReq) {
	err := q.runTx(batch)
	var fe *fnError
	if errors.As(err, &fe) && len(batch) > 1 {
		for _, r := range batch {
			r.err = q.runTx([]*writeReq{r})
			if errors.As(r.err, &fe) {
				r.err = fe.err
			}
		}
		return
	}
	if errors.As(err, &fe) {
		err = fe.err
	}
	for _, r := range batch {
		r.err = err
	}
}

// fnError is the error of one write's function.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// runTx runs the writes of batch in one transaction and commits it.
func (q *Queue) runTx(batch []*writeReq) error {
	ctx := context.Background()
	tx, err := q.db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	for _, r := range batch {
		if err := r.fn(ctx, tx); err != nil {
			tx.Rollback()
			return &fnError{err}
		}
	}
	if q.beforeCommit != nil {
		if err := q.beforeCommit(); err != nil {
			tx.Rollback()
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// statements are the prepared statements of the hot paths: parsing SQL
// costs more than running these.
type statements struct {
	// On the writer: use with tx.StmtContext.
	insertMsg, insertRcpt, recordRcpt, removeDone *sql.Stmt
	// On the read pool.
	loadMsg, due, nextDue *sql.Stmt
}

func prepareStatements(ctx context.Context, w, r *sql.DB) (*statements, error) {
	var st statements
	var err error
	prep := func(db *sql.DB, dst **sql.Stmt, query string) {
		if err == nil {
			*dst, err = db.PrepareContext(ctx, query)
		}
	}
	prep(w, &st.insertMsg, `INSERT INTO msg (id, sender, account, envid, ret, smtputf8, has8bit, requiretls, dkim, body_offset, size, created, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	prep(w, &st.insertRcpt, `INSERT INTO rcpt (msg, addr, domain, notify, orcpt, next_attempt) VALUES (?, ?, ?, ?, ?, ?)`)
	// warned: only the first time (warned = 0 in the row).
	prep(w, &st.recordRcpt, `UPDATE rcpt SET state = ?, attempts = ?, next_attempt = ?, last_attempt = ?,
		code = ?, enhanced = ?, text = ?, host = ?,
		notice = CASE WHEN ? != '' THEN ? WHEN ? AND warned = 0 THEN 'delayed' ELSE notice END,
		warned = CASE WHEN ? THEN 1 ELSE warned END, expired = ?
		WHERE id = ? AND state = 0`)
	// The rcpt rows go by ON DELETE CASCADE.
	prep(w, &st.removeDone, `DELETE FROM msg WHERE id = ? AND NOT EXISTS
		(SELECT 1 FROM rcpt WHERE msg = ? AND (state = 0 OR notice != ''))`)
	prep(r, &st.loadMsg, `SELECT id, sender, account, envid, ret, smtputf8, has8bit, requiretls, dkim, body_offset, size, created, body
		FROM msg WHERE id = ?`)
	// The scheduler's pass: due recipients, except those at the domains
	// (a JSON array) whose workers are all busy.
	prep(r, &st.due, `SELECT r.id, r.msg, r.domain, r.addr, r.notify, r.orcpt, r.attempts
		FROM rcpt r JOIN msg m ON m.id = r.msg
		WHERE r.state = 0 AND m.held = 0 AND r.next_attempt <= ?
			AND r.domain NOT IN (SELECT value FROM json_each(?))
		ORDER BY r.next_attempt, r.id LIMIT ?`)
	prep(r, &st.nextDue, `SELECT MIN(next_attempt) FROM rcpt WHERE state = 0`)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("prepare queue statements: %w", err)
	}
	return &st, nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.insertMsg, st.insertRcpt, st.recordRcpt, st.removeDone, st.loadMsg, st.due, st.nextDue} {
		if s != nil {
			s.Close()
		}
	}
}

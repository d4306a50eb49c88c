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
// fn runs in its own savepoint: its error undoes only its own changes and
// is what write returns. A failing commit fails every write of the group.
// fn gets a context that does not end: interrupting a statement would roll
// back the whole shared transaction. Once queued, a write is carried out
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

// commitBatch runs the writes of batch in one transaction, each in a
// savepoint, and commits it; it sets each request's err.
func (q *Queue) commitBatch(batch []*writeReq) {
	ctx := context.Background()
	failAll := func(err error) {
		for _, r := range batch {
			if r.err == nil {
				r.err = err
			}
		}
	}
	tx, err := q.db.W.BeginTx(ctx, nil)
	if err != nil {
		failAll(fmt.Errorf("begin: %w", err))
		return
	}
	for _, r := range batch {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
			tx.Rollback()
			failAll(fmt.Errorf("savepoint: %w", err))
			return
		}
		if r.err = r.fn(ctx, tx); r.err != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
				tx.Rollback()
				failAll(fmt.Errorf("rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
			tx.Rollback()
			failAll(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if q.beforeCommit != nil {
		if err := q.beforeCommit(); err != nil {
			tx.Rollback()
			failAll(fmt.Errorf("commit: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		failAll(fmt.Errorf("commit: %w", err))
	}
}

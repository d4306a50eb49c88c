package queue

import (
	"context"
	"fmt"
	"time"
)

// Stats is a snapshot of the queue for monitoring.
type Stats struct {
	// Messages is the number of messages in the queue (with recipients
	// pending, or a delivery notice owed).
	Messages int
	// Pending is the number of recipients still to be delivered.
	Pending int
	// Oldest is when the oldest message in the queue was queued; zero
	// when the queue is empty.
	Oldest time.Time
}

// Stats counts the queue's messages and pending recipients: two indexed
// reads on the read pool.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var oldest int64
	if err := q.db.R.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MIN(created), 0) FROM msg`).Scan(&st.Messages, &oldest); err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	if err := q.db.R.QueryRowContext(ctx, `SELECT COUNT(*) FROM rcpt WHERE state = ?`, statePending).Scan(&st.Pending); err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	if oldest != 0 {
		st.Oldest = time.UnixMilli(oldest)
	}
	return st, nil
}

package store

// Bulk reads for IMAP FETCH, SEARCH, SORT and THREAD: one query for many
// messages instead of one per message.

import (
	"context"
	"fmt"
	"strings"
)

// MessagesInUIDRange returns the messages of a mailbox with lo <= UID <=
// hi, in UID order, in one query. It is the cheap way to read the rows of
// a dense set (FETCH 1:*, SEARCH over the whole mailbox).
func (a *Account) MessagesInUIDRange(ctx context.Context, mailboxID int64, lo, hi uint32) ([]Message, error) {
	rows, err := a.db.R.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? AND uid BETWEEN ? AND ? ORDER BY uid`, mailboxID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// metaBatch is how many structures one MetaBatch query reads.
const metaBatch = 500

// MetaBatch returns the stored structures (JSON of message.Part, see Meta)
// of the messages with the given ids, keyed by id; ids that no longer
// exist are missing from the map. Callers pass a bounded number of ids
// (one chunk of a FETCH) so the map stays small.
func (a *Account) MetaBatch(ctx context.Context, ids []int64) (map[int64][]byte, error) {
	out := make(map[int64][]byte, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), metaBatch)
		chunk := ids[:n]
		ids = ids[n:]
		args := make([]any, n)
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := a.db.R.QueryContext(ctx, `SELECT id, meta FROM messages WHERE id IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read message structures: %w", err)
		}
		for rows.Next() {
			var id int64
			var b []byte
			if err := rows.Scan(&id, &b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read message structures: %w", err)
			}
			out[id] = b
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read message structures: %w", err)
		}
	}
	return out, nil
}

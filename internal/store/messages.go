package store

// Reading messages. Every listing of a mailbox's messages is one of:
//
//   - Messages: all of them, UID order.
//   - MessagesAfter: a page of them above a UID (a walk over a mailbox of
//     any size).
//   - MessagesInUIDRange: those in a UID range, only the fields asked for
//     (IMAP FETCH, SEARCH, SORT and THREAD over thousands of rows).
//   - MessagesByUID: those of a set of UIDs that still exist.
//   - MailboxMessages: the mailbox itself and all its messages, read in one
//     transaction (POP3's maildrop).
//   - View: the mailbox and its UIDs only, shared (IMAP SELECT).
//   - Changes: those changed and the UIDs expunged since a MODSEQ (IMAP
//     sync, CONDSTORE, QRESYNC).
//
// Meta and MetaBatch read the stored structures of messages by id.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RowFields selects the columns a bulk read fills. ID, MailboxID and UID
// are always filled; reading fewer columns makes a read of thousands of
// rows several times faster.
type RowFields uint8

// The column groups of MessagesInUIDRange.
const (
	RowFlags     RowFields = 1 << iota // Flags, Keywords, ModSeq
	RowDates                           // InternalDate, SaveDate
	RowSize                            // Size
	RowBlob                            // Blob
	RowObjectIDs                       // EmailID, ThreadID

	RowAll = RowFlags | RowDates | RowSize | RowBlob | RowObjectIDs
)

// MessagesInUIDRange returns the messages of a mailbox with lo <= UID <=
// hi, in UID order, in one query, filling only the given fields (RowAll:
// every field). It is the cheap way to read the rows of a dense set (FETCH
// 1:*, SEARCH over the whole mailbox). sizeHint, when known, is the
// expected number of rows: the result is allocated once.
func (a *Account) MessagesInUIDRange(ctx context.Context, mailboxID int64, lo, hi uint32, fields RowFields, sizeHint int) ([]Message, error) {
	if fields == RowAll {
		return a.queryRows(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? AND uid BETWEEN ? AND ? ORDER BY uid`, scanMessage, sizeHint, mailboxID, lo, hi)
	}
	cols := "id, uid"
	if fields&RowFlags != 0 {
		cols += ", flags, keywords, modseq"
	}
	if fields&RowDates != 0 {
		cols += ", internal_date, internal_tz, save_date"
	}
	if fields&RowSize != 0 {
		cols += ", size"
	}
	if fields&RowBlob != 0 {
		cols += ", blob"
	}
	if fields&RowObjectIDs != 0 {
		cols += ", email_id, thread_id"
	}
	zones := map[int]*time.Location{}
	scan := func(sc interface{ Scan(...any) error }) (Message, error) {
		m := Message{MailboxID: mailboxID}
		var kw string
		var date, saved int64
		var tz int
		dest := []any{&m.ID, &m.UID}
		if fields&RowFlags != 0 {
			dest = append(dest, &m.Flags, &kw, &m.ModSeq)
		}
		if fields&RowDates != 0 {
			dest = append(dest, &date, &tz, &saved)
		}
		if fields&RowSize != 0 {
			dest = append(dest, &m.Size)
		}
		if fields&RowBlob != 0 {
			dest = append(dest, &m.Blob)
		}
		if fields&RowObjectIDs != 0 {
			dest = append(dest, &m.EmailID, &m.ThreadID)
		}
		if err := sc.Scan(dest...); err != nil {
			return Message{}, err
		}
		if kw != "" {
			m.Keywords = strings.Split(kw, " ")
		}
		if fields&RowDates != 0 {
			loc := zones[tz]
			if loc == nil {
				loc = time.FixedZone("", tz)
				zones[tz] = loc
			}
			m.InternalDate = time.Unix(date, 0).In(loc)
			m.SaveDate = time.Unix(saved, 0)
		}
		return m, nil
	}
	return a.queryRows(ctx, `SELECT `+cols+` FROM messages WHERE mailbox_id=? AND uid BETWEEN ? AND ? ORDER BY uid`, scan, sizeHint, mailboxID, lo, hi)
}

func (a *Account) queryRows(ctx context.Context, q string, scan func(interface{ Scan(...any) error }) (Message, error), sizeHint int, args ...any) ([]Message, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	out := make([]Message, 0, max(0, min(sizeHint, 1<<20)))
	for rows.Next() {
		m, err := scan(rows)
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
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]byte, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), metaBatch)
		chunk := ids[:n]
		ids = ids[n:]
		args := make([]any, n)
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := r.QueryContext(ctx, `SELECT id, meta FROM messages WHERE id IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
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

// Messages lists a mailbox's messages in UID order.
func (a *Account) Messages(ctx context.Context, mailboxID int64) ([]Message, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? ORDER BY uid`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("list messages: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MessagesAfter returns up to limit messages of a mailbox with UIDs above
// afterUID, in UID order: a page of a walk over a mailbox of any size
// (export) that never holds all its rows at once.
func (a *Account) MessagesAfter(ctx context.Context, mailboxID int64, afterUID uint32, limit int) ([]Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	msgs, err := a.queryRows(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? AND uid>? ORDER BY uid LIMIT ?`, scanMessage, limit, mailboxID, afterUID, limit)
	if err != nil {
		return nil, fmt.Errorf("list messages after uid %d: %w", afterUID, err)
	}
	return msgs, nil
}

// messagesByUID reads the rows of the given UIDs (those that exist), in
// UID order.
func messagesByUID(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, mailboxID int64, uids []uint32) ([]Message, error) {
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var out []Message
	// Chunks keep the statement under SQLite's variable limit.
	for len(sorted) > 0 {
		n := min(len(sorted), 500)
		chunk := sorted[:n]
		sorted = sorted[n:]
		args := make([]any, 0, n+1)
		args = append(args, mailboxID)
		for _, u := range chunk {
			args = append(args, u)
		}
		rows, err := q.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE mailbox_id=? AND uid IN (?`+strings.Repeat(",?", n-1)+`) ORDER BY uid`, args...)
		if err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MessagesByUID returns the existing messages among uids, in UID order.
func (a *Account) MessagesByUID(ctx context.Context, mailboxID int64, uids []uint32) ([]Message, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	return messagesByUID(ctx, r, mailboxID, uids)
}

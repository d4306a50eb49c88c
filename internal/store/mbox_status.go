package store

import (
	"context"
	"fmt"
	"strings"
)

// Statuses counts the messages of several mailboxes at once (IMAP
// LIST-STATUS, RFC 5819): one query for all of them instead of one per
// mailbox. Mailboxes that do not exist (any more) are left out of the map.
func (a *Account) Statuses(ctx context.Context, mailboxIDs []int64) (map[int64]MailboxStatus, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]MailboxStatus, len(mailboxIDs))
	for len(mailboxIDs) > 0 {
		n := min(len(mailboxIDs), 500)
		chunk := mailboxIDs[:n]
		mailboxIDs = mailboxIDs[n:]
		args := []any{FlagSeen, FlagDeleted, FlagDeleted}
		for _, id := range chunk {
			args = append(args, id)
		}
		// The LEFT JOIN keeps empty mailboxes (counts 0).
		q := `SELECT ` + prefixCols("mb.", mailboxCols) + `, count(m.id), coalesce(sum(m.flags & ? = 0), 0), coalesce(sum(m.flags & ? != 0), 0), coalesce(sum(m.size), 0), coalesce(sum(CASE WHEN m.flags & ? != 0 THEN m.size ELSE 0 END), 0)
			FROM mailboxes mb LEFT JOIN messages m ON m.mailbox_id = mb.id
			WHERE mb.id IN (?` + strings.Repeat(",?", n-1) + `) GROUP BY mb.id`
		rows, err := r.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("mailbox statuses: %w", err)
		}
		for rows.Next() {
			var st MailboxStatus
			mb := &st.Mailbox
			if err := rows.Scan(&mb.ID, &mb.Name, &mb.SpecialUse, &mb.UIDValidity, &mb.UIDNext, &mb.HighestModSeq, &mb.Subscribed,
				&st.Messages, &st.Unseen, &st.Deleted, &st.Size, &st.DeletedSize); err != nil {
				rows.Close()
				return nil, fmt.Errorf("mailbox statuses: %w", err)
			}
			out[mb.ID] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("mailbox statuses: %w", err)
		}
	}
	return out, nil
}

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

package store

import (
	"context"
	"fmt"
)

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

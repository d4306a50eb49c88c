package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
)

// AppendMessage is one message of AppendMessages.
type AppendMessage struct {
	// Body is the finished temporary body; the caller still owns it.
	Body     *blob.Temp
	Flags    Flags
	Keywords []string
	// Date is the internal date; zero means now.
	Date time.Time
}

// AppendResult is what AppendMessages stored.
type AppendResult struct {
	// UIDValidity is that of the mailbox the messages went into.
	UIDValidity uint32
	// Messages are the new messages, in the order given (ascending UIDs).
	Messages []Message
}

// AppendMessages stores several finished bodies as new messages in one
// mailbox, all or none (IMAP MULTIAPPEND, RFC 3502 §3): they share one
// index transaction, so either every message is durable when it returns or
// none was added. A missing mailbox gives ErrNoMailbox; the mailbox is never
// created. The caller still owns the temporary bodies.
func (a *Account) AppendMessages(ctx context.Context, mailbox string, msgs []AppendMessage) (AppendResult, error) {
	if len(msgs) == 0 {
		return AppendResult{}, nil
	}
	nms := make([]newMessage, len(msgs))
	var linked []string
	fail := func(err error) (AppendResult, error) {
		a.removeBodies(linked)
		return AppendResult{}, err
	}
	for i, m := range msgs {
		meta, err := a.s.parseMeta(m.Body)
		if err != nil {
			return fail(err)
		}
		date := m.Date
		if date.IsZero() {
			date = time.Now()
		}
		nms[i] = newMessage{mailbox: canonicalName(mailbox), size: m.Body.Size, date: date, flags: m.Flags,
			keywords: normKeywords(m.Keywords), emailID: newEmailID(), meta: meta}
		if inlinable(m.Body) {
			nms[i].inline = m.Body.Data
			continue
		}
		id := blob.NewID()
		if err := a.bodies.Link(m.Body, id); err != nil {
			return fail(err)
		}
		linked = append(linked, id)
		nms[i].blob = id
	}
	// One commit request is one transaction of the group committer (a
	// batch that fails is retried request by request), so the messages
	// are added together or not at all.
	res, err := a.commit(ctx, nms)
	if err != nil {
		return fail(fmt.Errorf("append to %q: %w", mailbox, err))
	}
	// A mailbox's id and UIDVALIDITY never change together with its rows
	// (RENAME keeps both), so reading it after the commit is safe.
	mb, err := a.mailboxByID(ctx, res[0].MailboxID)
	if err != nil {
		// The mailbox was deleted right after the append; the messages
		// went with it.
		return AppendResult{}, fmt.Errorf("append to %q: %w", mailbox, err)
	}
	return AppendResult{UIDValidity: mb.UIDValidity, Messages: res}, nil
}

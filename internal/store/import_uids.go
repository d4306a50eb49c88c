package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
)

// Importing mail with the UIDs it had on another server (jodmai import of
// a Dovecot Maildir), so that an IMAP client in sync with that server is
// in sync with this one: same UIDVALIDITY, same UIDs, and for POP3 the
// same UIDLs. The normal paths (AppendMessages, Deliver) allocate UIDs;
// these take them from the caller, under rules that keep IMAP's promises:
// a mailbox's UIDVALIDITY is adopted only while it holds no message, and
// a UID is only ever added at or above the mailbox's UIDNEXT, in
// ascending order, so no client ever sees a UID appear below one it knows.

// ErrUIDValidity is returned by ImportMailbox for a mailbox that already
// holds messages under another UIDVALIDITY: their UIDs cannot be kept.
var ErrUIDValidity = errors.New("mailbox holds messages under another UIDVALIDITY")

// ImportedMessage is a message with the UID it had where it comes from.
type ImportedMessage struct {
	AppendMessage
	// UID is the message's UID in its mailbox.
	UID uint32
	// POP3UIDL, when set, is the message's POP3 unique id (RFC 1939 §7:
	// 1-70 characters 0x21-0x7E), answered by UIDL instead of the store's
	// own (Message.UIDL).
	POP3UIDL string
}

// ImportMailbox makes mailbox name ready for messages with their own UIDs
// under uidValidity: it creates the mailbox (and its parents) with that
// UIDVALIDITY, or gives it to an existing mailbox that holds no message
// (the default mailboxes of a new account). A mailbox that already has
// this UIDVALIDITY is left as it is (an import run again). A mailbox with
// messages under another UIDVALIDITY gives ErrUIDValidity.
func (a *Account) ImportMailbox(ctx context.Context, name string, uidValidity uint32) (Mailbox, error) {
	name = canonicalName(name)
	if err := CheckMailboxName(name); err != nil {
		return Mailbox{}, err
	}
	if uidValidity == 0 {
		return Mailbox{}, fmt.Errorf("import mailbox %q: UIDVALIDITY 0", name)
	}
	if _, err := a.Mailbox(ctx, name); errors.Is(err, ErrNoMailbox) {
		if _, err := a.CreateMailbox(ctx, name, ""); err != nil && !errors.Is(err, ErrMailboxExists) {
			return Mailbox{}, err
		}
	} else if err != nil {
		return Mailbox{}, err
	}
	var id int64
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		var cur uint32
		if err := tx.QueryRowContext(ctx, `SELECT id, uidvalidity FROM mailboxes WHERE name=?`, name).Scan(&id, &cur); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNoMailbox
			}
			return err
		}
		if cur == uidValidity {
			return nil
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id=?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w (%d messages under UIDVALIDITY %d, import brings %d)", ErrUIDValidity, n, cur, uidValidity)
		}
		// A new UIDVALIDITY starts the UIDs afresh (RFC 9051 §2.3.1.1):
		// what was expunged under the old one is no concern of clients
		// of the new one.
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uidvalidity=?, uidnext=1 WHERE id=?`, uidValidity, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM expunged WHERE mailbox_id=?`, id); err != nil {
			return err
		}
		// Mailboxes made later still get UIDVALIDITYs above every one
		// the account has used.
		_, err := tx.ExecContext(ctx, `UPDATE counters SET value=max(value, ?) WHERE name='uidvalidity'`, uidValidity)
		return err
	})
	if err != nil {
		return Mailbox{}, fmt.Errorf("import mailbox %q: %w", name, err)
	}
	a.s.notify(a.ID)
	return a.mailboxByID(ctx, id)
}

// ImportResult is what ImportMessages did.
type ImportResult struct {
	// Added are the new messages, in UID order.
	Added []Message
	// Present counts messages whose UID the mailbox has already (an
	// import run again); they are left as they are.
	Present int
	// Below counts messages skipped because their UID is below the
	// mailbox's UIDNEXT but not in it: expunged here since an earlier
	// import, or past UIDs a client may already know are gone.
	Below int
}

// ImportMessages adds messages with their own UIDs to a mailbox that
// ImportMailbox prepared, in one transaction (one fsync, like
// AppendMessages). Messages are taken in UID order; a UID already in the
// mailbox is left alone, one below UIDNEXT skipped (see ImportResult).
// UIDNEXT ends above the highest UID added. The caller still owns the
// temporary bodies.
func (a *Account) ImportMessages(ctx context.Context, mailbox string, msgs []ImportedMessage) (ImportResult, error) {
	mailbox = canonicalName(mailbox)
	msgs = slices.Clone(msgs)
	slices.SortFunc(msgs, func(x, y ImportedMessage) int { return int(int64(x.UID) - int64(y.UID)) })
	for i, m := range msgs {
		if m.UID == 0 || i > 0 && m.UID == msgs[i-1].UID {
			return ImportResult{}, fmt.Errorf("import to %q: UID %d is 0 or given twice", mailbox, m.UID)
		}
		if u := m.POP3UIDL; u != "" {
			if len(u) > 70 {
				return ImportResult{}, fmt.Errorf("import to %q: POP3 UIDL of UID %d longer than 70", mailbox, m.UID)
			}
			for j := 0; j < len(u); j++ {
				if u[j] < 0x21 || u[j] > 0x7e {
					return ImportResult{}, fmt.Errorf("import to %q: POP3 UIDL of UID %d has byte %#x (RFC 1939 §7: 0x21-0x7E)", mailbox, m.UID, u[j])
				}
			}
		}
	}
	// Bodies: structures parsed and files linked before the transaction,
	// as AppendMessages does; linked files of messages that turn out to
	// be present already are removed again.
	type prepared struct {
		meta   []byte
		blob   string
		inline []byte
	}
	preps := make([]prepared, len(msgs))
	var linked []string
	for i, m := range msgs {
		meta, err := a.s.parseMeta(m.Body)
		if err != nil {
			a.removeBodies(linked)
			return ImportResult{}, err
		}
		preps[i].meta = meta
		if inlinable(m.Body) {
			preps[i].inline = m.Body.Data
			continue
		}
		id := blob.NewID()
		if err := a.bodies.Link(m.Body, id); err != nil {
			a.removeBodies(linked)
			return ImportResult{}, err
		}
		linked = append(linked, id)
		preps[i].blob = id
	}
	var res ImportResult
	var unused []string
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		res, unused = ImportResult{}, nil
		var mbID int64
		var uidnext uint32
		err := tx.QueryRowContext(ctx, `SELECT id, uidnext FROM mailboxes WHERE name=?`, mailbox).Scan(&mbID, &uidnext)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return err
		}
		exists, err := tx.PrepareContext(ctx, `SELECT count(*) FROM messages WHERE mailbox_id=? AND uid=?`)
		if err != nil {
			return err
		}
		defer exists.Close()
		insert, err := tx.PrepareContext(ctx, `INSERT INTO messages(mailbox_id, uid, modseq, blob, size, internal_date, internal_tz, save_date, flags, keywords, email_id, meta)
			VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer insert.Close()
		now := time.Now().Unix()
		var modseq int64
		for i, m := range msgs {
			var n int
			if err := exists.QueryRowContext(ctx, mbID, m.UID).Scan(&n); err != nil {
				return err
			}
			if n > 0 || m.UID < uidnext {
				if n > 0 {
					res.Present++
				} else {
					res.Below++
				}
				if preps[i].blob != "" {
					unused = append(unused, preps[i].blob)
				}
				continue
			}
			if modseq, err = nextModSeq(ctx, tx); err != nil {
				return err
			}
			p := preps[i]
			blobID := p.blob
			if p.inline != nil {
				if _, err := tx.ExecContext(ctx, `INSERT INTO inline_bodies(id, data) VALUES(?, ?)`, modseq, p.inline); err != nil {
					return fmt.Errorf("insert inline body: %w", err)
				}
				blobID = inlineID(modseq)
			}
			date := m.Date
			if date.IsZero() {
				date = time.Now()
			}
			_, tz := date.Zone()
			kw := normKeywords(m.Keywords)
			emailID := newEmailID()
			r, err := insert.ExecContext(ctx, mbID, m.UID, modseq, blobID, m.Body.Size, date.Unix(), tz, now, m.Flags, strings.Join(kw, " "), emailID, p.meta)
			if err != nil {
				return fmt.Errorf("insert message: %w", err)
			}
			id, _ := r.LastInsertId()
			if m.POP3UIDL != "" {
				if _, err := tx.ExecContext(ctx, `INSERT INTO pop3_uidls(message_id, uidl) VALUES(?, ?)`, id, m.POP3UIDL); err != nil {
					return fmt.Errorf("insert POP3 UIDL: %w", err)
				}
			}
			uidnext = m.UID + 1
			res.Added = append(res.Added, Message{ID: id, MailboxID: mbID, UID: m.UID, ModSeq: modseq, Blob: blobID, Size: m.Body.Size,
				InternalDate: time.Unix(date.Unix(), 0).In(time.FixedZone("", tz)), SaveDate: time.Unix(now, 0),
				Flags: m.Flags, Keywords: kw, EmailID: emailID})
		}
		if len(res.Added) == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext=max(uidnext, ?), highestmodseq=max(highestmodseq, ?) WHERE id=?`, uidnext, modseq, mbID)
		return err
	})
	if err != nil {
		a.removeBodies(linked)
		return ImportResult{}, fmt.Errorf("import to %q: %w", mailbox, err)
	}
	a.removeBodies(unused)
	if len(res.Added) > 0 {
		a.s.notify(a.ID)
	}
	return res, nil
}

// RaiseUIDNext raises a mailbox's UIDNEXT to at least uidNext (the next
// UID of the server the mailbox comes from: UIDs it gave to messages since
// expunged are never given again).
func (a *Account) RaiseUIDNext(ctx context.Context, name string, uidNext uint32) error {
	_, err := a.db.W.ExecContext(ctx, `UPDATE mailboxes SET uidnext=? WHERE name=? AND uidnext < ?`, uidNext, canonicalName(name), uidNext)
	if err != nil {
		return fmt.Errorf("raise UIDNEXT of %q: %w", name, err)
	}
	return nil
}

// POP3UIDLs returns the kept POP3 UIDLs (ImportedMessage.POP3UIDL) of a
// mailbox's messages, by message id; messages without one are not in it.
// For an account without imported UIDLs it costs one lookup in an empty
// table.
func (a *Account) POP3UIDLs(ctx context.Context, mailboxID int64) (map[int64]string, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT p.message_id, p.uidl FROM pop3_uidls p JOIN messages m ON m.id = p.message_id WHERE m.mailbox_id=?`, mailboxID)
	if err != nil {
		return nil, fmt.Errorf("pop3 uidls: %w", err)
	}
	defer rows.Close()
	var out map[int64]string
	for rows.Next() {
		var id int64
		var u string
		if err := rows.Scan(&id, &u); err != nil {
			return nil, fmt.Errorf("pop3 uidls: %w", err)
		}
		if out == nil {
			out = map[int64]string{}
		}
		out[id] = u
	}
	return out, rows.Err()
}

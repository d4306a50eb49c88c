package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// More sentinel errors for mailbox operations.
var (
	// ErrMailboxExists is returned when creating or renaming onto an
	// existing name.
	ErrMailboxExists = errors.New("mailbox already exists")
	// ErrInboxOp is returned for operations INBOX does not allow (delete).
	ErrInboxOp = errors.New("operation not allowed on INBOX")
	// ErrHasChildren is returned when deleting a mailbox with inferiors.
	ErrHasChildren = errors.New("mailbox has children")
	// ErrBadName is returned for an unusable mailbox name.
	ErrBadName = errors.New("invalid mailbox name")
)

// Delimiter is the hierarchy delimiter of mailbox names.
const Delimiter = "/"

// CheckMailboxName validates a mailbox name (UTF-8, as stored): non-empty,
// no control characters, no empty hierarchy levels, not too long.
func CheckMailboxName(name string) error {
	if name == "" || len(name) > 1000 {
		return ErrBadName
	}
	if strings.HasPrefix(name, Delimiter) || strings.HasSuffix(name, Delimiter) || strings.Contains(name, Delimiter+Delimiter) {
		return ErrBadName
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return ErrBadName
		}
	}
	return nil
}

func canonicalName(name string) string {
	// RFC 9051 §5.1: mailbox names are Net-Unicode (RFC 5198), which is
	// NFC: a name typed with combining marks and its precomposed form are
	// one mailbox.
	if !norm.NFC.IsNormalString(name) {
		name = norm.NFC.String(name)
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX"+Delimiter) {
		return "INBOX" + name[5:]
	}
	return name
}

// CreateMailbox creates a mailbox (and any missing parents, RFC 9051
// §6.3.4) with an optional special-use attribute.
func (a *Account) CreateMailbox(ctx context.Context, name, specialUse string) (Mailbox, error) {
	name = canonicalName(name)
	if err := CheckMailboxName(name); err != nil {
		return Mailbox{}, err
	}
	var id int64
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE name=?`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrMailboxExists
		}
		parts := strings.Split(name, Delimiter)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Delimiter)
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE name=?`, parent).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if _, err := createMailbox(ctx, tx, parent, ""); err != nil {
					return err
				}
			}
		}
		var err error
		id, err = createMailbox(ctx, tx, name, specialUse)
		return err
	})
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox %q: %w", name, err)
	}
	a.s.notify(a.ID)
	return a.mailboxByID(ctx, id)
}

func (a *Account) mailboxByID(ctx context.Context, id int64) (Mailbox, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return Mailbox{}, err
	}
	m, err := scanMailbox(r.QueryRowContext(ctx, `SELECT `+mailboxCols+` FROM mailboxes WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, ErrNoMailbox
	}
	return m, err
}

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
// deleted, nor a mailbox with children (delete those first).
func (a *Account) DeleteMailbox(ctx context.Context, name string) error {
	name = canonicalName(name)
	if name == "INBOX" {
		return ErrInboxOp
	}
	var orphans []string
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM mailboxes WHERE name=?`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE substr(name, 1, ?) = ?`, len(name)+1, name+Delimiter).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrHasChildren
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM messages WHERE mailbox_id=? RETURNING blob`, id)
		if err != nil {
			return err
		}
		blobs := map[string]bool{}
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			blobs[b] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM expunged WHERE mailbox_id=?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM mailboxes WHERE id=?`, id); err != nil {
			return err
		}
		orphans, err = unreferenced(ctx, tx, blobs)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete mailbox %q: %w", name, err)
	}
	a.removeBodies(orphans)
	a.s.notify(a.ID)
	return nil
}

// unreferenced returns the body files no message row references any more,
// and deletes, in tx, the inline bodies no row references.
func unreferenced(ctx context.Context, tx *sql.Tx, blobs map[string]bool) ([]string, error) {
	var out []string
	for b := range blobs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE blob=?`, b).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			continue
		}
		if IsInlineBody(b) {
			// Inline: gone with the transaction that dropped its last
			// message.
			if _, err := tx.ExecContext(ctx, `DELETE FROM inline_bodies WHERE id=?`, inlineKey(b)); err != nil {
				return nil, fmt.Errorf("delete inline body: %w", err)
			}
			continue
		}
		out = append(out, b)
	}
	return out, nil
}

func (a *Account) removeBodies(ids []string) {
	for _, b := range ids {
		if err := a.bodies.Remove(b); err != nil {
			a.s.log.Warn("remove body", "account", a.ID, "err", err)
		}
	}
}

// RenameMailbox renames a mailbox and its children, keeping UIDs and
// UIDVALIDITY. Renaming INBOX moves its messages into a new mailbox and
// leaves INBOX empty (RFC 9051 §6.3.6).
func (a *Account) RenameMailbox(ctx context.Context, from, to string) error {
	from, to = canonicalName(from), canonicalName(to)
	if err := CheckMailboxName(to); err != nil {
		return err
	}
	if to == "INBOX" {
		return ErrMailboxExists
	}
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		var id int64
		var uidnext int64
		err := tx.QueryRowContext(ctx, `SELECT id, uidnext FROM mailboxes WHERE name=?`, from).Scan(&id, &uidnext)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoMailbox
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE name=? OR substr(name, 1, ?) = ?`, to, len(to)+1, to+Delimiter).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrMailboxExists
		}
		// Missing parents of the new name.
		parts := strings.Split(to, Delimiter)
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], Delimiter)
			// INBOX is the exception: renaming it moves its messages
			// and leaves it (and its children) in place, so "INBOX" ->
			// "INBOX/old" is fine (RFC 9051 §6.3.6).
			if from != "INBOX" && (parent == from || strings.HasPrefix(parent, from+Delimiter)) {
				return fmt.Errorf("%w: cannot rename a mailbox into itself", ErrBadName)
			}
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE name=?`, parent).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if _, err := createMailbox(ctx, tx, parent, ""); err != nil {
					return err
				}
			}
		}
		if from == "INBOX" {
			newID, err := createMailbox(ctx, tx, to, "")
			if err != nil {
				return err
			}
			modseq, err := nextModSeq(ctx, tx)
			if err != nil {
				return err
			}
			// Move the messages with their UIDs; record them as
			// expunged from INBOX, whose UIDNEXT stays where it was.
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) SELECT mailbox_id, uid, ? FROM messages WHERE mailbox_id=?`, modseq, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE messages SET mailbox_id=?, modseq=? WHERE mailbox_id=?`, newID, modseq, id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uidnext=?, highestmodseq=? WHERE id=?`, uidnext, modseq, newID); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, id)
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ? || substr(name, ?) WHERE substr(name, 1, ?) = ?`, to+Delimiter, len(from)+2, len(from)+1, from+Delimiter); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE mailboxes SET name=? WHERE id=?`, to, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("rename mailbox %q: %w", from, err)
	}
	a.s.notify(a.ID)
	return nil
}

// SetSubscribed subscribes to or unsubscribes from a mailbox name. Only an
// existing mailbox can be subscribed to (ErrNoMailbox otherwise); a name
// stays subscribed after its mailbox is deleted, until unsubscribed.
// Unsubscribing a name that is neither subscribed nor a mailbox is
// ErrNoMailbox; one that is a mailbox but not subscribed is not an error.
func (a *Account) SetSubscribed(ctx context.Context, name string, on bool) error {
	name = canonicalName(name)
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM mailboxes WHERE name=?)`, name).Scan(&exists); err != nil {
			return err
		}
		if on {
			if !exists {
				return ErrNoMailbox
			}
			_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO subscriptions(name) VALUES (?)`, name)
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE name=?`, name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 && !exists {
			return ErrNoMailbox
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoMailbox) {
		return fmt.Errorf("subscribe %q: %w", name, err)
	}
	return err
}

// Subscriptions returns every subscribed name, in name order, including
// names whose mailbox no longer exists.
func (a *Account) Subscriptions(ctx context.Context) ([]string, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT name FROM subscriptions ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("subscriptions: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return names, nil
}

// SetSpecialUse sets a mailbox's special-use attribute ("" clears it).
func (a *Account) SetSpecialUse(ctx context.Context, name, use string) error {
	res, err := a.db.W.ExecContext(ctx, `UPDATE mailboxes SET special_use=? WHERE name=?`, use, canonicalName(name))
	if err != nil {
		return fmt.Errorf("set special use of %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNoMailbox
	}
	return nil
}

// MailboxStatus are the counts IMAP STATUS reports.
type MailboxStatus struct {
	Mailbox
	Messages int64
	Unseen   int64
	Deleted  int64
	Size     int64
	// DeletedSize is the size of the messages flagged \Deleted (RFC 9208
	// DELETED-STORAGE).
	DeletedSize int64
}

// statusCounts are the aggregate columns of a MailboxStatus; its
// parameters are FlagSeen, FlagDeleted, FlagDeleted.
const statusCounts = `count(*), coalesce(sum(flags & ? = 0), 0), coalesce(sum(flags & ? != 0), 0), coalesce(sum(size), 0), coalesce(sum(CASE WHEN flags & ? != 0 THEN size ELSE 0 END), 0)`

// Status counts a mailbox's messages.
func (a *Account) Status(ctx context.Context, name string) (MailboxStatus, error) {
	r, err := a.reader(ctx)
	if err != nil {
		return MailboxStatus{}, err
	}
	mb, err := a.Mailbox(ctx, name)
	if err != nil {
		return MailboxStatus{}, err
	}
	st := MailboxStatus{Mailbox: mb}
	err = r.QueryRowContext(ctx, `SELECT `+statusCounts+` FROM messages WHERE mailbox_id=?`,
		FlagSeen, FlagDeleted, FlagDeleted, mb.ID).Scan(&st.Messages, &st.Unseen, &st.Deleted, &st.Size, &st.DeletedSize)
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("status of %q: %w", name, err)
	}
	return st, nil
}

// Usage returns the storage the account uses (sum of message sizes) and
// its message count, for quotas.
func (a *Account) Usage(ctx context.Context) (bytes, messages int64, err error) {
	r, err := a.reader(ctx)
	if err != nil {
		return 0, 0, err
	}
	u, err := readUsage(ctx, r)
	if err != nil {
		return 0, 0, err
	}
	return u.Bytes, u.Messages, nil
}

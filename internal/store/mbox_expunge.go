package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ExpungeDeleted removes the messages of a mailbox that have the \Deleted
// flag at the moment of the transaction (IMAP EXPUNGE, UID EXPUNGE, RFC
// 9051 §6.4.3, RFC 4315 §2.1), limited to UIDs up to maxUID for which keep
// returns true (nil keeps all). Checking the flag inside the transaction
// means a message whose \Deleted flag another session just removed is not
// lost. The expunged UIDs are remembered with one new MODSEQ (QRESYNC), and
// body files no message references any more are deleted. It returns the
// UIDs removed, ascending, and the mailbox's HIGHESTMODSEQ afterwards.
func (a *Account) ExpungeDeleted(ctx context.Context, mailboxID int64, maxUID uint32, keep func(uid uint32) bool) ([]uint32, int64, error) {
	var removed []uint32
	var orphans []string
	var highest int64
	err := a.db.Tx(ctx, func(tx *sql.Tx) error {
		removed, orphans = nil, nil
		if err := tx.QueryRowContext(ctx, `SELECT highestmodseq FROM mailboxes WHERE id=?`, mailboxID).Scan(&highest); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNoMailbox
			}
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT uid FROM messages WHERE mailbox_id=? AND flags & ? != 0 AND uid <= ? ORDER BY uid`, mailboxID, FlagDeleted, maxUID)
		if err != nil {
			return fmt.Errorf("find deleted messages: %w", err)
		}
		var uids []uint32
		for rows.Next() {
			var u uint32
			if err := rows.Scan(&u); err != nil {
				rows.Close()
				return err
			}
			if keep == nil || keep(u) {
				uids = append(uids, u)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(uids) == 0 {
			return nil
		}
		modseq, err := nextModSeq(ctx, tx)
		if err != nil {
			return err
		}
		del, err := tx.PrepareContext(ctx, `DELETE FROM messages WHERE mailbox_id=? AND uid=? RETURNING blob`)
		if err != nil {
			return err
		}
		defer del.Close()
		rec, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)`)
		if err != nil {
			return err
		}
		defer rec.Close()
		blobs := map[string]bool{}
		for _, u := range uids {
			var b string
			if err := del.QueryRowContext(ctx, mailboxID, u).Scan(&b); err != nil {
				return fmt.Errorf("delete message: %w", err)
			}
			if _, err := rec.ExecContext(ctx, mailboxID, u, modseq); err != nil {
				return fmt.Errorf("record expunge: %w", err)
			}
			blobs[b] = true
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, mailboxID); err != nil {
			return err
		}
		removed, highest = uids, modseq
		orphans, err = unreferenced(ctx, tx, blobs)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("expunge: %w", err)
	}
	a.removeBodies(orphans)
	if len(removed) > 0 {
		a.s.notify(a.ID)
	}
	return removed, highest, nil
}

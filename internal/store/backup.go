package store

import (
	"context"
	"database/sql"
	"fmt"
)

// ExpungeBodiesInCopy removes, from db (an offline copy of an account index,
// such as a backup snapshot, never a live index), every message whose body
// is one of blobs, exactly as Expunge would: the UIDs are remembered in
// expunged with a new MODSEQ and each mailbox's HIGHESTMODSEQ moves up, so a
// QRESYNC client learns of the removal. A backup uses it for messages
// expunged (and their bodies deleted) between its index snapshot and its
// body copy. It returns how many messages it removed.
func ExpungeBodiesInCopy(ctx context.Context, db *sql.DB, blobs []string) (int64, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	modseq, err := nextModSeq(ctx, tx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, b := range blobs {
		rows, err := tx.QueryContext(ctx, `DELETE FROM messages WHERE blob=? RETURNING mailbox_id, uid`, b)
		if err != nil {
			return 0, fmt.Errorf("delete messages of body %s: %w", b, err)
		}
		type key struct {
			mb  int64
			uid uint32
		}
		var gone []key
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.mb, &k.uid); err != nil {
				rows.Close()
				return 0, err
			}
			gone = append(gone, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		for _, k := range gone {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES(?, ?, ?)`, k.mb, k.uid, modseq); err != nil {
				return 0, fmt.Errorf("record expunge: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET highestmodseq=? WHERE id=?`, modseq, k.mb); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, tx.Commit()
}

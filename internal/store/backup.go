package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/sqlite"
)

// Backups of the store.
//
// A backup of the store is a directory laid out as a data directory's
// store is (only this package knows how): BackupAccounts writes it while a
// server may be running, RestoreAccount and VerifyAccount read it back.
// Each account's copy is consistent in itself: its index is one snapshot
// taken inside a read transaction, and its bodies are exactly those the
// snapshot references (bodies are immutable, so a hard link is as good as
// a copy; bodies kept inline are in the snapshot). Accounts are copied one
// after another, not atomically together. Every file and directory a
// backup function writes is fsynced before it returns.

// AccountIDs lists, in ascending order, the accounts that have an index in
// the store of dataDir, without opening the store (safe beside a running
// server).
func AccountIDs(dataDir string) ([]int64, error) {
	dir := filepath.Join(dataDir, "accounts")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read accounts dir: %w", err)
	}
	var ids []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() || strconv.FormatInt(id, 10) != e.Name() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "index.db")); err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Exists returns an error (wrapping fs.ErrNotExist when it is missing)
// unless dataDir holds a store.
func Exists(dataDir string) error {
	if _, err := os.Stat(filepath.Join(dataDir, "accounts")); err != nil {
		return fmt.Errorf("no mail store: %w", err)
	}
	return nil
}

// AccountCopy is what BackupAccounts copied of one account.
type AccountCopy struct {
	ID int64
	// Messages, Bodies and Bytes count what the copy holds.
	Messages, Bodies, Bytes int64
	// Vanished counts messages the snapshot held whose body was removed
	// (expunged) before it could be copied; they are dropped from the
	// copy's index as if the expunge had happened before the snapshot.
	Vanished int64
	// Files are the copy's files other than bodies, as paths relative to
	// the backup directory: what a manifest lists with checksums.
	Files []string
}

// BackupAccounts writes a copy of every account of the store in dataDir
// into the backup directory dest, one account after another (see above),
// and calls done after each one. It stops at the first error, ctx's
// included.
func BackupAccounts(ctx context.Context, dataDir, dest string, done func(AccountCopy) error) error {
	ids, err := AccountIDs(dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dest, "accounts"), 0o700); err != nil {
		return err
	}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		ac, err := backupAccount(ctx, dataDir, dest, id)
		if err != nil {
			return fmt.Errorf("account %d: %w", id, err)
		}
		if err := done(ac); err != nil {
			return err
		}
	}
	return safeio.SyncDir(filepath.Join(dest, "accounts"))
}

// backupAccount snapshots one account's index and links or copies every body
// the snapshot references.
func backupAccount(ctx context.Context, dataDir, dest string, id int64) (AccountCopy, error) {
	ac := AccountCopy{ID: id}
	rel := filepath.Join("accounts", strconv.FormatInt(id, 10))
	srcDir, dstDir := filepath.Join(dataDir, rel), filepath.Join(dest, rel)
	if err := os.MkdirAll(filepath.Join(dstDir, "msg"), 0o700); err != nil {
		return ac, err
	}
	dstDB := filepath.Join(dstDir, "index.db")
	if err := sqlite.Snapshot(ctx, filepath.Join(srcDir, "index.db"), dstDB); err != nil {
		return ac, err
	}
	db, err := sqlite.OpenFile(dstDB, false)
	if err != nil {
		return ac, err
	}
	defer db.Close()
	blobs, err := referencedBodies(ctx, db)
	if err != nil {
		return ac, err
	}
	shards := map[string]bool{}
	var vanished []string
	for _, b := range blobs {
		if IsInlineBody(b.id) {
			// Kept in the index: the snapshot carries it.
			ac.Messages += b.count
			ac.Bodies++
			ac.Bytes += b.size
			continue
		}
		if !blob.ValidID(b.id) {
			return ac, fmt.Errorf("invalid blob id %q in index", b.id)
		}
		shard := b.id[:2]
		if !shards[shard] {
			if err := os.MkdirAll(filepath.Join(dstDir, "msg", shard), 0o700); err != nil {
				return ac, err
			}
			shards[shard] = true
		}
		src := filepath.Join(srcDir, "msg", shard, b.id)
		err := linkOrCopy(src, filepath.Join(dstDir, "msg", shard, b.id))
		if errors.Is(err, os.ErrNotExist) {
			// Expunged (and its body removed) between the snapshot and now.
			vanished = append(vanished, b.id)
			continue
		}
		if err != nil {
			return ac, err
		}
		ac.Messages += b.count
		ac.Bodies++
		ac.Bytes += b.size
	}
	if len(vanished) > 0 {
		n, err := expungeBodiesInCopy(ctx, db, vanished)
		if err != nil {
			return ac, fmt.Errorf("drop vanished messages: %w", err)
		}
		ac.Vanished = n
		// Fold the journal back so the file alone is the database.
		if _, err := db.ExecContext(ctx, `VACUUM`); err != nil {
			return ac, err
		}
	}
	if err := db.Close(); err != nil {
		return ac, err
	}
	for shard := range shards {
		if err := safeio.SyncDir(filepath.Join(dstDir, "msg", shard)); err != nil {
			return ac, err
		}
	}
	if err := sqlite.SyncFile(dstDB); err != nil {
		return ac, err
	}
	for _, d := range []string{filepath.Join(dstDir, "msg"), dstDir} {
		if err := safeio.SyncDir(d); err != nil {
			return ac, err
		}
	}
	ac.Files = []string{filepath.Join(rel, "index.db")}
	return ac, nil
}

type bodyRef struct {
	id    string
	size  int64
	count int64
}

// referencedBodies lists the distinct bodies the index references, with
// their size and the number of messages using each.
func referencedBodies(ctx context.Context, db *sql.DB) ([]bodyRef, error) {
	rows, err := db.QueryContext(ctx, `SELECT blob, max(size), count(*) FROM messages GROUP BY blob ORDER BY blob`)
	if err != nil {
		return nil, fmt.Errorf("list bodies: %w", err)
	}
	defer rows.Close()
	var out []bodyRef
	for rows.Next() {
		var b bodyRef
		if err := rows.Scan(&b.id, &b.size, &b.count); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// linkOrCopy hard-links src to dst, or copies it (fsynced) when a link is
// impossible (another file system). Bodies are immutable, so a link is a
// valid copy.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Lstat(src); errors.Is(serr, os.ErrNotExist) {
			return err
		}
	}
	var le *os.LinkError
	if errors.As(err, &le) && (errors.Is(le.Err, syscall.EXDEV) || errors.Is(le.Err, syscall.EPERM) || errors.Is(le.Err, syscall.EMLINK)) {
		return safeio.CopyFile(src, dst)
	}
	return fmt.Errorf("link body: %w", err)
}

// RestoreAccount links or copies every body file of account id from the
// backup in backupDir into the store of dataDir, and makes their names
// durable (the account's body directories and the accounts' directory
// fsynced). Its other files are the caller's (the manifest lists them);
// it returns how many bodies it restored.
func RestoreAccount(ctx context.Context, backupDir, dataDir string, id int64) (int, error) {
	rel := filepath.Join("accounts", strconv.FormatInt(id, 10), "msg")
	dst := filepath.Join(dataDir, rel)
	n, err := restoreBodies(ctx, filepath.Join(backupDir, rel), dst)
	if err != nil {
		return n, err
	}
	for _, d := range []string{dst, filepath.Dir(dst), filepath.Dir(filepath.Dir(dst))} {
		if err := safeio.SyncDir(d); err != nil {
			return n, err
		}
	}
	return n, nil
}

// restoreBodies links or copies every body file of one account's backup.
func restoreBodies(ctx context.Context, src, dst string) (int, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return 0, err
	}
	shards, err := os.ReadDir(src)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range shards {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dst, s.Name()), 0o700); err != nil {
			return n, err
		}
		files, err := os.ReadDir(filepath.Join(src, s.Name()))
		if err != nil {
			return n, err
		}
		for _, f := range files {
			if !blob.ValidID(f.Name()) {
				continue
			}
			if err := linkOrCopy(filepath.Join(src, s.Name(), f.Name()), filepath.Join(dst, s.Name(), f.Name())); err != nil {
				return n, err
			}
			n++
		}
		if err := safeio.SyncDir(filepath.Join(dst, s.Name())); err != nil {
			return n, err
		}
	}
	return n, nil
}

// VerifyAccount checks account id of the store in dataDir without opening
// the store: its index passes integrity_check and every body the index
// references exists with its recorded size. It returns how many messages
// the index lists.
func VerifyAccount(ctx context.Context, dataDir string, id int64) (messages int64, err error) {
	dir := filepath.Join(dataDir, "accounts", strconv.FormatInt(id, 10))
	path := filepath.Join(dir, "index.db")
	if err := sqlite.Integrity(ctx, path); err != nil {
		return 0, err
	}
	db, err := sqlite.OpenFile(path, true)
	if err != nil {
		return 0, err
	}
	refs, err := referencedBodies(ctx, db)
	if err != nil {
		db.Close()
		return 0, fmt.Errorf("account %d: %w", id, err)
	}
	inline, err := inlineSizes(ctx, db)
	db.Close()
	if err != nil {
		return 0, fmt.Errorf("account %d: %w", id, err)
	}
	var msgs int64
	for _, b := range refs {
		if IsInlineBody(b.id) {
			n, ok := inline[b.id]
			if !ok {
				return 0, fmt.Errorf("account %d: inline body %s missing", id, b.id)
			}
			if n != b.size {
				return 0, fmt.Errorf("account %d: inline body %s has %d bytes, index says %d", id, b.id, n, b.size)
			}
			msgs += b.count
			continue
		}
		if !blob.ValidID(b.id) {
			return 0, fmt.Errorf("account %d: invalid blob id %q", id, b.id)
		}
		fi, err := os.Stat(filepath.Join(dir, "msg", b.id[:2], b.id))
		if err != nil {
			return 0, fmt.Errorf("account %d: body %s: %w", id, b.id, err)
		}
		if fi.Size() != b.size {
			return 0, fmt.Errorf("account %d: body %s has %d bytes, index says %d", id, b.id, fi.Size(), b.size)
		}
		msgs += b.count
	}
	return msgs, nil
}

// inlineSizes lists the sizes of the bodies an index keeps inline (none in
// an index older than inline bodies).
func inlineSizes(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	out := map[string]int64{}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='inline_bodies'`).Scan(&n); err != nil || n == 0 {
		return out, err
	}
	rows, err := db.QueryContext(ctx, `SELECT 'i' || id, length(data) FROM inline_bodies`)
	if err != nil {
		return nil, fmt.Errorf("list inline bodies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			return nil, err
		}
		out[id] = size
	}
	return out, rows.Err()
}

// expungeBodiesInCopy removes, from db (an offline copy of an account index,
// such as a backup snapshot, never a live index), every message whose body
// is one of blobs, exactly as Expunge would: the UIDs are remembered in
// expunged with a new MODSEQ and each mailbox's HIGHESTMODSEQ moves up, so a
// QRESYNC client learns of the removal. A backup uses it for messages
// expunged (and their bodies deleted) between its index snapshot and its
// body copy. It returns how many messages it removed.
func expungeBodiesInCopy(ctx context.Context, db *sql.DB, blobs []string) (int64, error) {
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

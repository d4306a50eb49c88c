package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
)

// OpenFile opens the existing database at path with one connection and a
// busy timeout, and without the writer settings of Open: for maintenance
// (checks, snapshots, offline copies), never for serving. It never creates
// a database: a missing one is an error at first use.
func OpenFile(path string, readonly bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if readonly {
		q.Set("mode", "ro")
	} else {
		q.Set("mode", "rw")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// Snapshot writes a consistent copy of the live database src to dst (which
// must not exist) with VACUUM INTO, which reads inside one transaction
// while writers go on, and fsyncs dst. The caller fsyncs dst's directory.
func Snapshot(ctx context.Context, src, dst string) error {
	db, err := OpenFile(src, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return SyncFile(dst)
}

// SyncFile fsyncs the file at path.
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// Integrity runs integrity_check on the database at path, read-only, and
// returns an error unless it reports "ok".
func Integrity(ctx context.Context, path string) error {
	db, err := OpenFile(path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return fmt.Errorf("integrity_check %s: %w", path, err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity_check %s: %s", path, res)
	}
	return nil
}

// Checks runs integrity_check and foreign_key_check on db and returns what
// they report (nil when both pass).
func Checks(ctx context.Context, db *sql.DB) (integrity, foreignKeys []string, err error) {
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check(100)`)
	if err != nil {
		return nil, nil, fmt.Errorf("integrity_check: %w", err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("integrity_check: %w", err)
		}
		if line != "ok" {
			integrity = append(integrity, line)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("integrity_check: %w", err)
	}
	rows, err = db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		return integrity, nil, fmt.Errorf("foreign_key_check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return integrity, nil, fmt.Errorf("foreign_key_check: %w", err)
		}
		foreignKeys = append(foreignKeys, fmt.Sprintf("%s row %d refers to a missing %s row", table, rowid.Int64, parent))
	}
	return integrity, foreignKeys, rows.Err()
}

// CheckFile runs Checks on the database file at path, read-only (safe
// beside a running server), and returns one line per problem. A missing
// file is an error (fs.ErrNotExist), and is not created.
func CheckFile(ctx context.Context, path string) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	db, err := OpenFile(path, true)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	defer db.Close()
	integrity, fks, err := Checks(ctx, db)
	if err != nil {
		return []string{err.Error()}, nil
	}
	return append(integrity, fks...), nil
}

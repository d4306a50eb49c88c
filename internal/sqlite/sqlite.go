// Package sqlite opens the project's SQLite databases with the settings every
// one of them needs (WAL, synchronous=FULL, foreign keys, a busy timeout) and
// applies forward-only schema migrations.
//
// Each database gets one writer handle (a single connection, so writes are
// serialised in-process and never see SQLITE_BUSY from each other) and a read
// pool. Other processes (the admin commands) may write too; the busy timeout
// covers them.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver
)

// DB is one SQLite database: a single-connection writer and a read pool.
type DB struct {
	// W is the writer: one connection. Use it for every transaction that writes.
	W *sql.DB
	// R is the read pool.
	R *sql.DB
}

func dsn(path string, readonly bool, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	if readonly {
		q.Set("mode", "ro")
		q.Del("_txlock")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and migrates it to the
// latest schema. migrations[i] moves the schema from version i to i+1; shipped
// migrations are never edited, only appended to.
func Open(ctx context.Context, path string, migrations []string) (*DB, error) {
	return OpenWith(ctx, path, migrations)
}

// OpenWith is Open with more pragmas for the writer connection, such as
// "wal_autocheckpoint(4000)".
func OpenWith(ctx context.Context, path string, migrations []string, writerPragmas ...string) (*DB, error) {
	w, err := sql.Open("sqlite", dsn(path, false, writerPragmas...))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(ctx, w, migrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(4)
	return &DB{W: w, R: r}, nil
}

// Close closes both handles.
func (db *DB) Close() error {
	err1 := db.R.Close()
	err2 := db.W.Close()
	if err1 != nil {
		return err1
	}
	return err2
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program knows (%d): refusing to touch it", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}

// Tx runs fn in a write transaction on db.W and commits it; any error from
// fn rolls it back.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return run(tx, fn)
}

// run runs fn in tx and commits it; an error from fn rolls it back.
func run(tx *sql.Tx, fn func(*sql.Tx) error) error {
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// TxNoSync is Tx with the commit not fsynced: the writer connection runs
// this one transaction with synchronous=NORMAL (in WAL mode: the WAL is
// written but not fsynced at commit; it is fsynced before a checkpoint and
// by the next synchronous=FULL commit, which makes every earlier frame
// durable too). The connection is held for the whole transaction and put
// back to FULL after it, so no other transaction ever commits under
// NORMAL. Use it only for changes whose durability something else
// guarantees (the store's delivery journal).
func (db *DB) TxNoSync(ctx context.Context, fn func(*sql.Tx) error) error {
	conn, err := db.W.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if _, rerr := conn.ExecContext(context.Background(), "PRAGMA synchronous=FULL"); rerr != nil {
			// Never hand a NORMAL connection back to the pool: discard it
			// (the pool opens a new one with the DSN's FULL).
			// The transaction's own outcome stands: it did commit (or not).
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return run(tx, fn)
}

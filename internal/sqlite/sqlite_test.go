package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var testMigrations = []string{
	`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
	INSERT INTO t(v) VALUES ('from migration 1');`,
	`CREATE TABLE u (id INTEGER PRIMARY KEY, t_id INTEGER NOT NULL REFERENCES t(id));
	INSERT INTO t(v) VALUES ('from migration 2');`,
}

func open(t *testing.T, path string, migrations []string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path, migrations)
	if err != nil {
		t.Fatalf("Open(%d migrations): %v", len(migrations), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func count(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestMigrationsApplyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	ctx := context.Background()

	// Ship version 1, open it several times.
	for i := 0; i < 3; i++ {
		db, err := Open(ctx, path, testMigrations[:1])
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		if v := userVersion(t, db.W); v != 1 {
			t.Errorf("open #%d: user_version = %d, want 1", i, v)
		}
		if n := count(t, db.R, `SELECT count(*) FROM t`); n != 1 {
			t.Errorf("open #%d: migration 1 ran %d times, want once", i, n)
		}
		db.Close()
	}

	// Upgrade to version 2: only migration 2 runs.
	for i := 0; i < 2; i++ {
		db, err := Open(ctx, path, testMigrations)
		if err != nil {
			t.Fatalf("open v2 #%d: %v", i, err)
		}
		if v := userVersion(t, db.W); v != 2 {
			t.Errorf("user_version = %d, want 2", v)
		}
		if n := count(t, db.R, `SELECT count(*) FROM t WHERE v='from migration 1'`); n != 1 {
			t.Errorf("migration 1 rows = %d, want 1", n)
		}
		if n := count(t, db.R, `SELECT count(*) FROM t WHERE v='from migration 2'`); n != 1 {
			t.Errorf("migration 2 rows = %d, want 1", n)
		}
		db.Close()
	}
}

func TestNewerVersionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path, testMigrations)
	db.Close()

	_, err := Open(context.Background(), path, testMigrations[:1])
	if err == nil {
		t.Fatal("opening a database of schema version 2 with a program that knows 1 succeeded")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}

	// The refusal must not have touched the database.
	db = open(t, path, testMigrations)
	if v := userVersion(t, db.W); v != 2 {
		t.Errorf("user_version after refused open = %d, want 2", v)
	}
}

func TestFailedMigrationRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db := open(t, path, testMigrations[:1])
	db.Close()

	bad := append(append([]string{}, testMigrations[0]), `CREATE TABLE half (x INTEGER); INSERT INTO nosuchtable VALUES (1);`)
	if _, err := Open(context.Background(), path, bad); err == nil {
		t.Fatal("a failing migration did not fail Open")
	} else if !strings.Contains(err.Error(), "migration 2") {
		t.Errorf("error %q does not name migration 2", err)
	}

	db = open(t, path, testMigrations[:1])
	if v := userVersion(t, db.W); v != 1 {
		t.Errorf("user_version after failed migration = %d, want 1", v)
	}
	if n := count(t, db.R, `SELECT count(*) FROM sqlite_master WHERE name='half'`); n != 0 {
		t.Error("a failed migration left its first statement's table behind")
	}
}

// TestPragmas checks that the settings durability depends on are in
// effect on both handles, not merely requested.
func TestPragmas(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	for _, h := range []struct {
		name string
		db   *sql.DB
	}{{"writer", db.W}, {"reader", db.R}} {
		var mode string
		if err := h.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" {
			t.Errorf("%s: journal_mode = %q, want wal", h.name, mode)
		}
		for _, p := range []struct {
			pragma string
			want   int
		}{
			{"synchronous", 2}, // FULL
			{"foreign_keys", 1},
			{"busy_timeout", 10000},
		} {
			if got := count(t, h.db, "PRAGMA "+p.pragma); got != p.want {
				t.Errorf("%s: PRAGMA %s = %d, want %d", h.name, p.pragma, got, p.want)
			}
		}
	}
	if n := db.W.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", n)
	}
}

func TestForeignKeysEnforced(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	if _, err := db.W.Exec(`INSERT INTO u(t_id) VALUES (12345)`); err == nil {
		t.Error("insert violating a foreign key succeeded")
	}
}

func TestReaderIsReadOnly(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	if _, err := db.R.Exec(`INSERT INTO t(v) VALUES ('x')`); err == nil {
		t.Error("write through the read pool succeeded")
	}
}

func TestTx(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	ctx := context.Background()
	before := count(t, db.R, `SELECT count(*) FROM t`)

	errFn := errors.New("fn failed")
	err := db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO t(v) VALUES ('rolled back')`); err != nil {
			return err
		}
		return errFn
	})
	if !errors.Is(err, errFn) {
		t.Fatalf("Tx returned %v, want fn's error", err)
	}
	if n := count(t, db.R, `SELECT count(*) FROM t`); n != before {
		t.Errorf("rows after failed Tx = %d, want %d", n, before)
	}

	if err := db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO t(v) VALUES ('committed')`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db.R, `SELECT count(*) FROM t WHERE v='committed'`); n != 1 {
		t.Errorf("committed rows visible to the reader = %d, want 1", n)
	}
}

// TestTwoProcessesWrite opens the same file twice (like the server and an
// admin command) and has both run read-then-write transactions at once.
// Immediate transactions and the busy timeout must make every one of them
// succeed, serialised.
func TestTwoProcessesWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	a := open(t, path, testMigrations)
	b := open(t, path, testMigrations)
	if _, err := a.W.Exec(`CREATE TABLE seq (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	const per = 40
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 2*per)
	for _, db := range []*DB{a, b} {
		for i := 0; i < per; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- db.Tx(ctx, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRow(`SELECT coalesce(max(n), 0) FROM seq`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.Exec(`INSERT INTO seq(n) VALUES (?)`, n+1)
					return err
				})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent transaction: %v", err)
		}
	}
	if n := count(t, a.R, `SELECT count(*) FROM seq`); n != 2*per {
		t.Errorf("rows = %d, want %d", n, 2*per)
	}
	if m := count(t, b.R, `SELECT max(n) FROM seq`); m != 2*per {
		t.Errorf("max = %d, want %d (lost update)", m, 2*per)
	}
}

// TestTxNoSync: the transaction commits under synchronous=NORMAL, and the
// writer is back at FULL afterwards, whether fn succeeded or failed, so no
// other transaction ever commits without fsync.
func TestTxNoSync(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "x.db"), testMigrations)
	rows := count(t, db.R, "SELECT count(*) FROM t")
	var during int
	err := db.TxNoSync(context.Background(), func(tx *sql.Tx) error {
		if err := tx.QueryRow("PRAGMA synchronous").Scan(&during); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO t(v) VALUES('a')`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if during != 1 {
		t.Errorf("synchronous during TxNoSync = %d, want 1 (NORMAL)", during)
	}
	if got := count(t, db.W, "PRAGMA synchronous"); got != 2 {
		t.Errorf("synchronous after TxNoSync = %d, want 2 (FULL)", got)
	}
	boom := errors.New("boom")
	if err := db.TxNoSync(context.Background(), func(tx *sql.Tx) error {
		tx.Exec(`INSERT INTO t(v) VALUES('b')`)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("TxNoSync error = %v, want boom", err)
	}
	if got := count(t, db.W, "PRAGMA synchronous"); got != 2 {
		t.Errorf("synchronous after a failed TxNoSync = %d, want 2 (FULL)", got)
	}
	if got := count(t, db.R, "SELECT count(*) FROM t"); got != rows+1 {
		t.Errorf("%d rows, want %d (the failed transaction rolled back)", got, rows+1)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.db")
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`PRAGMA journal_mode=WAL`, `CREATE TABLE a(id INTEGER PRIMARY KEY)`, `CREATE TABLE b(a_id INTEGER REFERENCES a(id))`, `INSERT INTO b VALUES(5)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := CheckFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "b row 1") {
		t.Errorf("CheckFile = %q", lines)
	}
	db.Exec(`DELETE FROM b`)
	db.Close()
	if lines, err := CheckFile(context.Background(), p); err != nil || len(lines) != 0 {
		t.Errorf("clean database: %q, %v", lines, err)
	}
	if _, err := CheckFile(context.Background(), filepath.Join(dir, "none.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing database: %v", err)
	}
	if fileExists(filepath.Join(dir, "none.db")) {
		t.Error("CheckFile created a database")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

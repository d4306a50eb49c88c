package safeio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAndCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	steps := []struct {
		name    string
		create  bool
		data    string
		wantErr error
		want    string
	}{
		{"write new", false, "one", nil, "one"},
		{"replace", false, "two", nil, "two"},
		{"create existing fails", true, "three", fs.ErrExist, "two"},
	}
	for _, st := range steps {
		var err error
		if st.create {
			err = CreateFile(p, []byte(st.data), 0o600)
		} else {
			err = WriteFile(p, []byte(st.data), 0o640)
		}
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.wantErr)
		}
		got, rerr := os.ReadFile(p)
		if rerr != nil || string(got) != st.want {
			t.Fatalf("%s: file %q (%v), want %q", st.name, got, rerr, st.want)
		}
	}
	if err := CreateFile(filepath.Join(dir, "g"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "g")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	deep := filepath.Join(base, "a", "b", "c")
	for i := 0; i < 2; i++ { // the second time everything exists
		if err := MkdirAll(deep, 0o700); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(deep); err != nil || !fi.IsDir() {
			t.Fatalf("%s: %v", deep, err)
		}
	}
	f := filepath.Join(base, "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(f, "x"), 0o700); err == nil {
		t.Fatal("MkdirAll below a file succeeded")
	}
	if err := SyncDir(filepath.Join(base, "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	if err := os.WriteFile(src, []byte("body"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "body" {
		t.Fatalf("copy holds %q, %v", b, err)
	}
	// dst must not exist: a copy never replaces a file.
	if err := CopyFile(src, dst); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second copy: %v, want fs.ErrExist", err)
	}
	if err := CopyFile(filepath.Join(dir, "missing"), filepath.Join(dir, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing source: %v", err)
	}
}

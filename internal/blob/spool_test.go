package blob

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"testing"
)

// TestSpool: a spooled body stays in memory up to the limit (no file in
// tmp) and moves to a file beyond it; both kinds read back, link and
// remove the same way.
func TestSpool(t *testing.T) {
	const limit = 100
	for _, tc := range []struct {
		name     string
		size     int
		inMemory bool
	}{
		{"empty", 0, true},
		{"small", 10, true},
		{"at the limit", limit, true},
		{"one over", limit + 1, false},
		{"large", 10 * limit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			body := bytes.Repeat([]byte("0123456789abcdef\r\n"), tc.size/18+1)[:tc.size]
			pool := make([]byte, 0, 16)
			w := NewSpool(tmp, limit, pool)
			for p := body; len(p) > 0; {
				n := min(len(p), 7)
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			if w.Size() != int64(tc.size) {
				t.Fatalf("Size() = %d, want %d", w.Size(), tc.size)
			}
			tm, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if tm.InMemory() != tc.inMemory || tm.Size != int64(tc.size) {
				t.Fatalf("InMemory %v Size %d, want %v %d", tm.InMemory(), tm.Size, tc.inMemory, tc.size)
			}
			if ents := mustReadDir(t, tmp); tc.inMemory != (len(ents) == 0) {
				t.Fatalf("tmp holds %v", names(ents))
			}
			if tc.inMemory && !bytes.Equal(tm.Data, body) {
				t.Fatalf("Data = %q", tm.Data)
			}
			if got := readAll(t, tm.Open); !bytes.Equal(got, body) {
				t.Errorf("Open read %d bytes, want %d", len(got), len(body))
			}
			r, err := tm.NewReader()
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(io.NewSectionReader(r, 0, tm.Size)); err != nil || !bytes.Equal(got, body) {
				t.Errorf("NewReader read %d bytes (%v), want %d", len(got), err, len(body))
			}
			r.Close()
			fileDir := t.TempDir()
			ft, err := tm.File(fileDir)
			if err != nil {
				t.Fatal(err)
			}
			if ft.InMemory() || (ft == tm) != !tc.inMemory || !tc.inMemory && ft.Path != tm.Path {
				t.Fatalf("File of a Temp (memory %v): %+v", tc.inMemory, ft)
			}
			if got := readAll(t, ft.Open); !bytes.Equal(got, body) {
				t.Errorf("File read %d bytes, want %d", len(got), len(body))
			}
			if tc.inMemory {
				ft.Remove()
				if ents := mustReadDir(t, fileDir); len(ents) != 0 {
					t.Errorf("File's dir holds %v after Remove", names(ents))
				}
			}

			d, err := NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			id := NewID()
			if err := d.Link(tm, id); err != nil {
				t.Fatal(err)
			}
			if got := readBody(t, d, id); !bytes.Equal(got, body) {
				t.Errorf("linked body has %d bytes, want %d", len(got), len(body))
			}
			if err := d.Link(tm, id); err == nil {
				t.Error("second Link to the same id succeeded")
			}
			if err := tm.Remove(); err != nil {
				t.Fatal(err)
			}
			if ents := mustReadDir(t, tmp); len(ents) != 0 {
				t.Errorf("tmp holds %v after Remove", names(ents))
			}
			if got := readBody(t, d, id); !bytes.Equal(got, body) {
				t.Errorf("linked body changed after Remove")
			}
		})
	}
}

// TestSpoolAbort: aborting a spilled body removes its file.
func TestSpoolAbort(t *testing.T) {
	tmp := t.TempDir()
	w := NewSpool(tmp, 4, nil)
	w.Write([]byte("0123456789"))
	if ents := mustReadDir(t, tmp); len(ents) != 1 {
		t.Fatalf("spilled body: tmp holds %v", names(ents))
	}
	w.Abort()
	if ents := mustReadDir(t, tmp); len(ents) != 0 {
		t.Fatalf("after Abort: tmp holds %v", names(ents))
	}
	if _, err := w.Finish(); err == nil {
		t.Error("Finish after Abort succeeded")
	}
}

// TestSpoolSpillFails: a body that must spill into a missing directory
// fails to write; a small one never needs it.
func TestSpoolSpillFails(t *testing.T) {
	tmp := t.TempDir() + "/missing"
	w := NewSpool(tmp, 4, nil)
	if _, err := w.Write([]byte("abcd")); err != nil {
		t.Fatalf("in-memory write: %v", err)
	}
	if _, err := w.Write([]byte("e")); err == nil {
		t.Fatal("spill into a missing directory succeeded")
	}
	w.Abort()
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat: %v", err)
	}
}

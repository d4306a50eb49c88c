package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestNewIDValid(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		id := NewID()
		if !ValidID(id) {
			t.Fatalf("NewID() = %q, not ValidID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abcdefghijklmnopqrst", true},
		{"a234567zzzzzzzzzzzzz", true},
		{"", false},
		{"abcdefghijklmnopqrs", false},   // 19
		{"abcdefghijklmnopqrstu", false}, // 21
		{"Abcdefghijklmnopqrst", false},  // upper case
		{"abcdefghijklmnopqrs1", false},  // 1 is not base32 here
		{"abcdefghijklmnopqrs8", false},
		{"abcdefghijklmnopqrs0", false},
		{"abcdefghijklmnopqrs/", false},
		{"../../../../etc/pass", false},
		{".tmp-abcdefghijklmno", false},
		{"abcdefghijklmnopqrs\x00", false},
		{"abcdefghijklmnopqré", false}, // 20 bytes, non-ASCII
	} {
		if got := ValidID(tc.id); got != tc.want {
			t.Errorf("ValidID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// finish writes body through a Writer in tmp and finishes it.
func finish(t *testing.T, tmp string, body []byte) *Temp {
	t.Helper()
	w, err := Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	// Write in pieces to exercise Size accumulation.
	for p := body; len(p) > 0; {
		n := min(len(p), 7)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if w.Size() != int64(len(body)) {
		t.Fatalf("Size() = %d, want %d", w.Size(), len(body))
	}
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func readAll(t *testing.T, open func() (*os.File, error)) []byte {
	t.Helper()
	f, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriterFinish(t *testing.T) {
	tmp := t.TempDir()
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	w, err := Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if tm.Size != int64(len(body)) {
		t.Errorf("Temp.Size = %d, want %d", tm.Size, len(body))
	}
	if filepath.Dir(tm.Path) != tmp {
		t.Errorf("Temp.Path %s is not in %s", tm.Path, tmp)
	}
	if got := readAll(t, tm.Open); !bytes.Equal(got, body) {
		t.Errorf("temp body = %q, want %q", got, body)
	}
	if _, err := w.Finish(); err == nil {
		t.Error("second Finish succeeded")
	}
	w.Abort() // after Finish: must not remove the finished body
	if _, err := os.Stat(tm.Path); err != nil {
		t.Errorf("Abort after Finish removed the body: %v", err)
	}
	if err := tm.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tm.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Temp.Remove left the file: %v", err)
	}
	if err := tm.Remove(); err != nil {
		t.Errorf("second Temp.Remove: %v", err)
	}
}

func TestWriterAbort(t *testing.T) {
	tmp := t.TempDir()
	w, err := Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Abort()
	w.Abort() // idempotent
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("Abort left %d files in tmp", len(ents))
	}
	if _, err := w.Finish(); err == nil {
		t.Error("Finish after Abort succeeded")
	}
}

func TestLinkSharesInode(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	os.Mkdir(tmp, 0o700)
	body := []byte("one body, many recipients\r\n")
	tm := finish(t, tmp, body)

	var dirs []*Dir
	var ids []string
	for i := 0; i < 3; i++ {
		d, err := NewDir(filepath.Join(root, fmt.Sprintf("acct%d", i), "msg"))
		if err != nil {
			t.Fatal(err)
		}
		id := NewID()
		if err := d.Link(tm, id); err != nil {
			t.Fatalf("Link: %v", err)
		}
		dirs = append(dirs, d)
		ids = append(ids, id)
	}
	if err := tm.Remove(); err != nil {
		t.Fatal(err)
	}
	tmpInfo := func(d *Dir, id string) os.FileInfo {
		fi, err := os.Stat(d.Path(id))
		if err != nil {
			t.Fatalf("linked body missing after Temp.Remove: %v", err)
		}
		return fi
	}
	first := tmpInfo(dirs[0], ids[0])
	for i, d := range dirs {
		p := d.Path(ids[i])
		if want := filepath.Join(root, fmt.Sprintf("acct%d", i), "msg", ids[i][:2], ids[i]); p != want {
			t.Errorf("Path = %s, want %s (shard = first two id characters)", p, want)
		}
		if fi := tmpInfo(d, ids[i]); !os.SameFile(first, fi) {
			t.Errorf("dir %d: linked body is a different inode", i)
		}
		if got := readBody(t, d, ids[i]); !bytes.Equal(got, body) {
			t.Errorf("dir %d: body = %q", i, got)
		}
	}
}

func TestLinkErrors(t *testing.T) {
	root := t.TempDir()
	tm := finish(t, root, []byte("x"))
	d, err := NewDir(filepath.Join(root, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "a", "../../../../../../..", "ABCDEFGHIJKLMNOPQRST"} {
		if err := d.Link(tm, id); err == nil {
			t.Errorf("Link(%q) succeeded", id)
		}
	}
	id := NewID()
	if err := d.Link(tm, id); err != nil {
		t.Fatal(err)
	}
	// Bodies are immutable: a second body under the same id must fail,
	// not replace the first.
	other := finish(t, root, []byte("different"))
	if err := d.Link(other, id); err == nil {
		t.Error("Link over an existing id succeeded")
	}
	if _, err := d.Copy(strings.NewReader("different"), id); err == nil {
		t.Error("Copy over an existing id succeeded")
	}
	if got := readBody(t, d, id); string(got) != "x" {
		t.Errorf("body after refused Link and Copy = %q, want %q", got, "x")
	}
	for _, e := range mustReadDir(t, filepath.Dir(d.Path(id))) {
		if e.Name() != id {
			t.Errorf("refused Copy left %s behind", e.Name())
		}
	}
	missing := &Temp{Path: filepath.Join(root, "nonexistent")}
	if err := d.Link(missing, NewID()); err == nil {
		t.Error("Link of a missing temp file succeeded")
	}
}

func TestOpenRemove(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(filepath.Join(root, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	if _, err := d.Open(id); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want fs.ErrNotExist", err)
	}
	if err := d.Remove(id); err != nil {
		t.Errorf("Remove(missing) = %v, want nil", err)
	}
	for _, bad := range []string{"", "x", "../../../etc/passwd", "abcdefghijklmnopqrs/"} {
		if _, err := d.Open(bad); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want an invalid-id error", bad, err)
		}
		if err := d.Remove(bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}
	tm := finish(t, root, []byte("body"))
	if err := d.Link(tm, id); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path(id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove left the file: %v", err)
	}
	// An open body stays readable after removal (POP3 RETR during another
	// session's expunge).
	if b, err := io.ReadAll(f); err != nil || string(b) != "body" {
		t.Errorf("read after Remove = %q, %v", b, err)
	}
	// Removing one name of a shared body keeps the other.
	if _, err := os.Stat(tm.Path); err != nil {
		t.Errorf("removing the linked name removed the temp name: %v", err)
	}
}

func readBody(t *testing.T, d *Dir, id string) []byte {
	t.Helper()
	return readAll(t, func() (*os.File, error) { return d.Open(id) })
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("connection reset")
	}
	r.n--
	return copy(p, "data"), nil
}

func TestCopy(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "msg"))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 5000)
	id := NewID()
	n, err := d.Copy(bytes.NewReader(body), id)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(body)) {
		t.Errorf("Copy returned %d, want %d", n, len(body))
	}
	if got := readBody(t, d, id); !bytes.Equal(got, body) {
		t.Error("copied body differs")
	}
	shard := filepath.Dir(d.Path(id))
	ents, _ := os.ReadDir(shard)
	if len(ents) != 1 || ents[0].Name() != id {
		t.Errorf("shard holds %v, want only %s", names(ents), id)
	}

	bad := NewID()
	if _, err := d.Copy(&failingReader{n: 3}, bad); err == nil {
		t.Fatal("Copy from a failing reader succeeded")
	}
	if _, err := os.Stat(d.Path(bad)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Copy left the body: %v", err)
	}
	ents, _ = os.ReadDir(filepath.Dir(d.Path(bad)))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("failed Copy left %s", e.Name())
		}
	}
	if _, err := d.Copy(strings.NewReader("x"), "nope"); err == nil {
		t.Error("Copy with an invalid id succeeded")
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

func names(ents []os.DirEntry) []string {
	var s []string
	for _, e := range ents {
		s = append(s, e.Name())
	}
	return s
}

func TestWalk(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(filepath.Join(root, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := 0; i < 20; i++ {
		id := NewID()
		body := strings.Repeat("x", i)
		if _, err := d.Copy(strings.NewReader(body), id); err != nil {
			t.Fatal(err)
		}
		want[id] = int64(i)
	}
	// Crash leftovers and foreign files.
	var someID string
	for id := range want {
		someID = id
		break
	}
	shard := filepath.Dir(d.Path(someID))
	leftover := filepath.Join(shard, ".tmp-123456")
	if err := os.WriteFile(leftover, []byte("half a body"), 0o600); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(shard, "README")
	os.WriteFile(foreign, []byte("not a body"), 0o600)
	os.WriteFile(filepath.Join(root, "msg", "toplevel"), nil, 0o600)
	os.Mkdir(filepath.Join(root, "msg", "longshard"), 0o700)
	os.WriteFile(filepath.Join(root, "msg", "longshard", NewID()), nil, 0o600)

	got := map[string]int64{}
	if err := d.Walk(func(id string, size int64) error {
		if _, dup := got[id]; dup {
			t.Errorf("Walk visited %s twice", id)
		}
		got[id] = size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("Walk visited %d bodies, want %d", len(got), len(want))
	}
	for id, size := range want {
		if g, ok := got[id]; !ok || g != size {
			t.Errorf("Walk: %s size %d (visited %v), want %d", id, g, ok, size)
		}
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Walk did not remove the .tmp- leftover: %v", err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("Walk removed a file that is not its own: %v", err)
	}

	// An error from fn stops the walk and is returned.
	stop := errors.New("stop")
	calls := 0
	err = d.Walk(func(string, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Walk with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

// TestConcurrentLinkSameShard races shard creation.
func TestConcurrentLinkSameShard(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(filepath.Join(root, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	tm := finish(t, root, []byte("shared"))
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		// Same two-character shard for all, fresh per test.
		ids[i] = "zz" + NewID()[2:]
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Link(tm, ids[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Link %s: %v", ids[i], err)
		}
	}
	var got []string
	d.Walk(func(id string, _ int64) error { got = append(got, id); return nil })
	sort.Strings(got)
	sort.Strings(ids)
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("Walk after concurrent links found %d bodies, want %d", len(got), n)
	}
}

// TestSpoolReadFromAndScratch: a spooling writer takes ReadFrom in memory
// and spills when the body outgrows it; FinishScratch of a body still in
// memory is a memory Temp, of a spilled one a file; both read back whole.
func TestSpoolReadFromAndScratch(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		size   int
		memory bool
	}{{"small", 100, true}, {"spilled", 5000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			want := bytes.Repeat([]byte("0123456789"), tc.size/10)
			w := NewSpool(dir, 1024, nil)
			w.Write([]byte("X: y\r\n"))
			if n, err := w.ReadFrom(bytes.NewReader(want)); err != nil || n != int64(len(want)) {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			tm, err := w.FinishScratch()
			if err != nil {
				t.Fatal(err)
			}
			defer tm.Remove()
			if tm.InMemory() != tc.memory {
				t.Errorf("InMemory = %v, want %v", tm.InMemory(), tc.memory)
			}
			r, err := tm.NewReader()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("X: y\r\n"), want...)) || tm.Size != int64(len(got)) {
				t.Errorf("read back %d bytes (Size %d), want %d", len(got), tm.Size, len(want)+6)
			}
		})
	}
}

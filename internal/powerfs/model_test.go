package powerfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// randData is n random bytes, or zeros one time in four (zeros over a
// hole keep the hole).
func randData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	if rng.IntN(4) != 0 {
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
	}
	return b
}

// resize returns b grown with zeros or cut to n bytes, as a copy.
func resize(b []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, b)
	return out
}

func readAll(c content) []byte {
	out := make([]byte, c.size)
	for i := 0; i < len(out); i += pageSize {
		if p := c.pages[i/pageSize]; p != nil {
			copy(out[i:], p.b[:])
		}
	}
	return out
}

// TestFileModel runs random writes, size changes, hole punches, syncs and
// reverts on one file's copy-on-write pages and on two plain byte slices,
// and compares both states after every step: a write must never reach
// the durable pages.
func TestFileModel(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 1))
		f := newFile()
		var cur, dur []byte
		for step := range 300 {
			var op string
			switch k := rng.IntN(10); {
			case k < 5:
				off, n := rng.IntN(6*pageSize), 1+rng.IntN(3*pageSize)
				b := randData(rng, n)
				op = fmt.Sprintf("write %d+%d", off, n)
				f.write(int64(off), b)
				if off+n > len(cur) {
					cur = resize(cur, off+n)
				}
				copy(cur[off:], b)
			case k < 6:
				n := rng.IntN(8 * pageSize)
				op = fmt.Sprintf("size %d", n)
				f.setSize(int64(n))
				cur = resize(cur, n)
			case k < 7:
				off, n := rng.IntN(6*pageSize), rng.IntN(3*pageSize)
				end := min(off+n, len(cur))
				op = fmt.Sprintf("zero %d-%d", off, end)
				f.zero(int64(off), int64(end))
				if off < end {
					clear(cur[off:end])
				}
			case k < 9:
				op = "sync"
				f.sync()
				dur = slices.Clone(cur)
			default:
				op = "revert"
				f.revert()
				cur = slices.Clone(dur)
			}
			if got := readAll(f.cur); !bytes.Equal(got, cur) {
				t.Fatalf("seed %d step %d (%s): current contents differ from the model", seed, step, op)
			}
			if got := readAll(f.dur); !bytes.Equal(got, dur) {
				t.Fatalf("seed %d step %d (%s): durable contents differ from the model", seed, step, op)
			}
			buf := make([]byte, len(cur)+10)
			if n := f.read(0, buf); n != len(cur) || !bytes.Equal(buf[:n], cur) {
				t.Fatalf("seed %d step %d (%s): read returns %d bytes, want %d", seed, step, op, n, len(cur))
			}
		}
	}
}

// The model of TestTreeModel: inodes and directories with a current and a
// durable state, kept as plain copies.
type mInode struct {
	id       int
	cur, dur []byte
}

type mDir struct {
	path     string
	cur, dur map[string]*mInode
}

// raceEnabled is set under the race detector (race_test.go): the slow tests
// do less.
var raceEnabled bool

// TestTreeModel runs random file system operations through the mount and
// on a plain model, cuts the power now and then (the model reverting
// every inode and directory to its durable copy), and compares the tree
// with the model after every few operations and after every cut: names,
// contents, and which names share an inode.
func TestTreeModel(t *testing.T) {
	d := t.TempDir()
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	f := MountTest(t, d, Options{Seed: seed})
	root := &mDir{path: d, cur: map[string]*mInode{}, dur: map[string]*mInode{}}
	dirs := []*mDir{root}
	for _, name := range []string{"d0", "d1"} {
		must(t, os.Mkdir(filepath.Join(d, name), 0o700))
		dirs = append(dirs, &mDir{path: filepath.Join(d, name), cur: map[string]*mInode{}, dur: map[string]*mInode{}})
	}
	mustSync(t, d)
	nextID := 0
	names := []string{"a", "b", "c", "d", "e"}
	pick := func() (*mDir, string) { return dirs[rng.IntN(len(dirs))], names[rng.IntN(len(names))] }
	// existing picks a current file, or nil.
	existing := func() (*mDir, string, *mInode) {
		for range 20 {
			dir, name := pick()
			if n := dir.cur[name]; n != nil {
				return dir, name, n
			}
		}
		return nil, "", nil
	}

	check := func(when string) {
		t.Helper()
		inodeOf := map[uint64]*mInode{}
		for _, dir := range dirs {
			ents, err := os.ReadDir(dir.path)
			must(t, err)
			var got []string
			for _, e := range ents {
				if dir == root && e.IsDir() {
					continue
				}
				got = append(got, e.Name())
			}
			if want := slices.Sorted(maps.Keys(dir.cur)); !slices.Equal(got, want) {
				t.Fatalf("%s: %s lists %q, model %q", when, dir.path, got, want)
			}
			for name, m := range dir.cur {
				p := filepath.Join(dir.path, name)
				b, err := os.ReadFile(p)
				must(t, err)
				if !bytes.Equal(b, m.cur) {
					t.Fatalf("%s: %s: %d bytes, model %d bytes (inode %d)", when, p, len(b), len(m.cur), m.id)
				}
				var st syscall.Stat_t
				must(t, syscall.Stat(p, &st))
				if o, ok := inodeOf[st.Ino]; ok && o != m {
					t.Fatalf("%s: %s shares inode %d with model inode %d, model says %d", when, p, st.Ino, o.id, m.id)
				}
				inodeOf[st.Ino] = m
			}
		}
		if len(inodeOf) != countInodes(dirs) {
			t.Fatalf("%s: %d inodes, model %d", when, len(inodeOf), countInodes(dirs))
		}
	}

	steps := 1500
	if raceEnabled {
		steps = 500
	}
	for step := range steps {
		switch k := rng.IntN(100); {
		case k < 30: // create or write
			dir, name := pick()
			m := dir.cur[name]
			if m == nil {
				m = &mInode{id: nextID}
				nextID++
				dir.cur[name] = m
			}
			off, n := rng.IntN(5*pageSize), 1+rng.IntN(2*pageSize)
			b := randData(rng, n)
			mustWrite(t, filepath.Join(dir.path, name), int64(off), b, false)
			if off+n > len(m.cur) {
				m.cur = resize(m.cur, off+n)
			}
			copy(m.cur[off:], b)
		case k < 36: // truncate
			if dir, name, m := existing(); m != nil {
				n := rng.IntN(6 * pageSize)
				must(t, os.Truncate(filepath.Join(dir.path, name), int64(n)))
				m.cur = resize(m.cur, n)
			}
		case k < 48: // fsync or fdatasync of a file
			if dir, name, m := existing(); m != nil {
				h, err := os.Open(filepath.Join(dir.path, name))
				must(t, err)
				if rng.IntN(2) == 0 {
					must(t, h.Sync())
				} else {
					must(t, unix.Fdatasync(int(h.Fd())))
				}
				h.Close()
				m.dur = slices.Clone(m.cur)
			}
		case k < 60: // fsync of a directory
			dir := dirs[rng.IntN(len(dirs))]
			mustSync(t, dir.path)
			dir.dur = maps.Clone(dir.cur)
		case k < 72: // rename
			if sdir, sname, m := existing(); m != nil {
				ddir, dname := pick()
				must(t, os.Rename(filepath.Join(sdir.path, sname), filepath.Join(ddir.path, dname)))
				if ddir.cur[dname] != m { // same inode: rename does nothing
					delete(sdir.cur, sname)
					ddir.cur[dname] = m
				}
			}
		case k < 80: // hard link
			if sdir, sname, m := existing(); m != nil {
				ddir, dname := pick()
				err := os.Link(filepath.Join(sdir.path, sname), filepath.Join(ddir.path, dname))
				if ddir.cur[dname] != nil {
					if !errors.Is(err, fs.ErrExist) {
						t.Fatalf("link over an existing name: %v", err)
					}
				} else {
					must(t, err)
					ddir.cur[dname] = m
				}
			}
		case k < 90: // unlink
			if dir, name, m := existing(); m != nil {
				must(t, os.Remove(filepath.Join(dir.path, name)))
				delete(dir.cur, name)
			}
		case k < 97:
			check(fmt.Sprintf("step %d", step))
		default: // power cut
			if _, err := f.PowerCut(CutOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, dir := range dirs {
				dir.cur = maps.Clone(dir.dur)
				for _, m := range dir.cur {
					m.cur = slices.Clone(m.dur)
				}
			}
			check(fmt.Sprintf("step %d, after a power cut", step))
		}
	}
	st := f.Stats()
	t.Logf("%d writes, %d fsyncs, %d fdatasyncs, %d directory fsyncs, %d renames, %d links, %d removes, %d power cuts",
		st.Writes, st.Fsyncs, st.Fdatasyncs, st.DirFsyncs, st.Renames, st.Links, st.Removes, st.Cuts)
}

func countInodes(dirs []*mDir) int {
	seen := map[*mInode]bool{}
	for _, d := range dirs {
		for _, m := range d.cur {
			seen[m] = true
		}
	}
	return len(seen)
}

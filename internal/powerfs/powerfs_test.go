package powerfs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers for the tests: each fails the test on error.

func mustWrite(t *testing.T, path string, off int64, data []byte, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func mustSync(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantFile checks that path holds want (nil: that it does not exist).
func wantFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	switch {
	case want == nil && errors.Is(err, fs.ErrNotExist):
	case want == nil && err == nil:
		t.Errorf("%s exists (%d bytes), want it gone", filepath.Base(path), len(got))
	case err != nil:
		t.Errorf("%s: %v, want %d bytes", filepath.Base(path), err, len(want))
	case !bytes.Equal(got, want):
		t.Errorf("%s holds %d bytes %.20q, want %d bytes %.20q", filepath.Base(path), len(got), got, len(want), want)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func ino(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Stat(path, &st))
	return st.Ino, st.Nlink
}

var (
	durable = []byte("durable contents\n")
	later   = []byte("written later, never synced\n")
)

// TestPowerCut runs a case's set-up on a fresh mount, cuts the power, and
// checks what survived.
func TestPowerCut(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB: four pages
	cases := []struct {
		name  string
		setup func(t *testing.T, d string)
		tear  bool
		check func(t *testing.T, d string)
	}{{
		name: "unsynced data is gone",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, nil, true)
			mustSync(t, d)
			mustWrite(t, d+"/a", 0, later, false)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", []byte{}) },
	}, {
		name: "fsynced data is kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", durable) },
	}, {
		name: "fdatasync makes data durable",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, nil, true)
			mustSync(t, d)
			f, err := os.OpenFile(d+"/a", os.O_WRONLY, 0)
			must(t, err)
			defer f.Close()
			_, err = f.Write(durable)
			must(t, err)
			must(t, unix.Fdatasync(int(f.Fd())))
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", durable) },
	}, {
		name: "overwrite after fsync reverts to the fsynced data",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big, true)
			mustSync(t, d)
			mustWrite(t, d+"/a", 4090, later, false) // across pages 0 and 1
			mustWrite(t, d+"/a", int64(len(big)), later, false)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", big) },
	}, {
		name: "only the data up to the last fsync is kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big[:5000], true)
			mustSync(t, d)
			mustWrite(t, d+"/a", 5000, big[5000:], true)
			mustWrite(t, d+"/a", 0, later, false)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", big) },
	}, {
		name: "created and fsynced, directory not fsynced: gone",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", nil)
			if n := names(t, d); len(n) != 0 {
				t.Errorf("directory lists %q, want nothing", n)
			}
		},
	}, {
		name: "created, directory fsynced, file not: empty",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, false)
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", []byte{}) },
	}, {
		name: "rename without directory fsync is reverted",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Rename(d+"/a", d+"/b"))
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", durable)
			wantFile(t, d+"/b", nil)
		},
	}, {
		name: "rename with directory fsync is kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Rename(d+"/a", d+"/b"))
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", nil)
			wantFile(t, d+"/b", durable)
		},
	}, {
		name: "rename over a name without directory fsync: the old file is back",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustWrite(t, d+"/b", 0, big, true)
			mustSync(t, d)
			must(t, os.Rename(d+"/b", d+"/a"))
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", durable)
			wantFile(t, d+"/b", big)
		},
	}, {
		name: "rename over a name, fsynced: the new file, the old one freed",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustWrite(t, d+"/b", 0, big, true)
			mustSync(t, d)
			must(t, os.Rename(d+"/b", d+"/a"))
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", big)
			wantFile(t, d+"/b", nil)
		},
	}, {
		name: "rename across directories, only the target fsynced: two names",
		setup: func(t *testing.T, d string) {
			must(t, os.Mkdir(d+"/x", 0o700))
			must(t, os.Mkdir(d+"/y", 0o700))
			mustSync(t, d)
			mustWrite(t, d+"/x/a", 0, durable, true)
			mustSync(t, d+"/x")
			must(t, os.Rename(d+"/x/a", d+"/y/a"))
			mustSync(t, d+"/y")
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/x/a", durable)
			wantFile(t, d+"/y/a", durable)
			i1, n1 := ino(t, d+"/x/a")
			i2, _ := ino(t, d+"/y/a")
			if i1 != i2 || n1 != 2 {
				t.Errorf("x/a and y/a: inodes %d and %d, %d links; want one inode with 2 links", i1, i2, n1)
			}
		},
	}, {
		name: "rename across directories, only the source fsynced: gone",
		setup: func(t *testing.T, d string) {
			must(t, os.Mkdir(d+"/x", 0o700))
			must(t, os.Mkdir(d+"/y", 0o700))
			mustSync(t, d)
			mustWrite(t, d+"/x/a", 0, durable, true)
			mustSync(t, d+"/x")
			must(t, os.Rename(d+"/x/a", d+"/y/a"))
			mustSync(t, d+"/x")
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/x/a", nil)
			wantFile(t, d+"/y/a", nil)
		},
	}, {
		name: "rename across directories, both fsynced",
		setup: func(t *testing.T, d string) {
			must(t, os.Mkdir(d+"/x", 0o700))
			must(t, os.Mkdir(d+"/y", 0o700))
			mustSync(t, d)
			mustWrite(t, d+"/x/a", 0, durable, true)
			mustSync(t, d+"/x")
			must(t, os.Rename(d+"/x/a", d+"/y/b"))
			mustSync(t, d+"/x")
			mustSync(t, d+"/y")
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/x/a", nil)
			wantFile(t, d+"/y/b", durable)
		},
	}, {
		name: "unlink without directory fsync is undone",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Remove(d+"/a"))
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", durable) },
	}, {
		name: "unlink with directory fsync is kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Remove(d+"/a"))
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", nil) },
	}, {
		name: "an unlinked file fsynced through an open descriptor comes back with that data",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, nil, true)
			mustSync(t, d)
			f, err := os.OpenFile(d+"/a", os.O_WRONLY, 0)
			must(t, err)
			defer f.Close()
			must(t, os.Remove(d+"/a"))
			_, err = f.Write(durable)
			must(t, err)
			must(t, f.Sync())
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", durable) },
	}, {
		name: "hard link, directory fsynced: one inode, two names",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Link(d+"/a", d+"/b"))
			mustSync(t, d)
			mustWrite(t, d+"/b", int64(len(durable)), big, true) // through the other name
		},
		check: func(t *testing.T, d string) {
			want := append(slices.Clone(durable), big...)
			wantFile(t, d+"/a", want)
			wantFile(t, d+"/b", want)
			i1, n1 := ino(t, d+"/a")
			i2, _ := ino(t, d+"/b")
			if i1 != i2 || n1 != 2 {
				t.Errorf("a and b: inodes %d and %d, %d links; want one inode with 2 links", i1, i2, n1)
			}
		},
	}, {
		name: "hard link without directory fsync is gone",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			must(t, os.Link(d+"/a", d+"/b"))
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/a", durable)
			wantFile(t, d+"/b", nil)
			if _, n := ino(t, d+"/a"); n != 1 {
				t.Errorf("a has %d links, want 1", n)
			}
		},
	}, {
		name: "link then unlink of the first name, fsynced: the data under the new name",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/tmp", 0, durable, true)
			must(t, os.Link(d+"/tmp", d+"/final"))
			must(t, os.Remove(d+"/tmp"))
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) {
			wantFile(t, d+"/final", durable)
			wantFile(t, d+"/tmp", nil)
		},
	}, {
		name: "truncate without fsync is reverted",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big, true)
			mustSync(t, d)
			must(t, os.Truncate(d+"/a", 100))
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", big) },
	}, {
		name: "truncate with fsync is kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big, true)
			mustSync(t, d)
			must(t, os.Truncate(d+"/a", 100))
			mustSync(t, d+"/a")
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", big[:100]) },
	}, {
		name: "shrink then grow then fsync: zeros where the old data was",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big, true)
			mustSync(t, d)
			must(t, os.Truncate(d+"/a", 100))
			must(t, os.Truncate(d+"/a", int64(len(big))))
			mustWrite(t, d+"/a", 12000, []byte("x"), true)
		},
		check: func(t *testing.T, d string) {
			want := make([]byte, len(big))
			copy(want, big[:100])
			want[12000] = 'x'
			wantFile(t, d+"/a", want)
		},
	}, {
		name: "a new directory without its parent fsynced is gone",
		setup: func(t *testing.T, d string) {
			must(t, os.MkdirAll(d+"/x/y", 0o700))
			mustWrite(t, d+"/x/y/a", 0, durable, true)
			mustSync(t, d+"/x/y")
			mustSync(t, d+"/x")
		},
		check: func(t *testing.T, d string) {
			if n := names(t, d); len(n) != 0 {
				t.Errorf("root lists %q, want nothing", n)
			}
		},
	}, {
		name: "a new directory, parent fsynced, itself not: empty",
		setup: func(t *testing.T, d string) {
			must(t, os.Mkdir(d+"/x", 0o700))
			mustSync(t, d)
			mustWrite(t, d+"/x/a", 0, durable, true)
		},
		check: func(t *testing.T, d string) {
			if n := names(t, d+"/x"); len(n) != 0 {
				t.Errorf("x lists %q, want nothing", n)
			}
		},
	}, {
		name: "rmdir without parent fsync: back, with its durable entries",
		setup: func(t *testing.T, d string) {
			must(t, os.Mkdir(d+"/x", 0o700))
			mustSync(t, d)
			mustWrite(t, d+"/x/a", 0, durable, true)
			mustSync(t, d+"/x")
			must(t, os.Remove(d+"/x/a"))
			must(t, os.Remove(d+"/x"))
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/x/a", durable) },
	}, {
		name: "preallocated with zeros and fsynced: size kept",
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, make([]byte, 3<<20), true)
			mustSync(t, d)
			mustWrite(t, d+"/a", 0, durable, true)
			mustWrite(t, d+"/a", 1<<20, later, false)
		},
		check: func(t *testing.T, d string) {
			want := make([]byte, 3<<20)
			copy(want, durable)
			wantFile(t, d+"/a", want)
		},
	}, {
		name: "torn write keeps a strict prefix",
		tear: true,
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, durable, true)
			mustSync(t, d)
			mustWrite(t, d+"/a", int64(len(durable)), big, false)
		},
		check: func(t *testing.T, d string) {
			got, err := os.ReadFile(d + "/a")
			must(t, err)
			if len(got) < len(durable) || len(got) >= len(durable)+len(big) {
				t.Fatalf("after a torn append of %d bytes to %d: %d bytes", len(big), len(durable), len(got))
			}
			if want := append(slices.Clone(durable), big[:len(got)-len(durable)]...); !bytes.Equal(got, want) {
				t.Errorf("torn write: not a prefix of the write on the durable data")
			}
		},
	}, {
		name: "torn write leaves synced files alone",
		tear: true,
		setup: func(t *testing.T, d string) {
			mustWrite(t, d+"/a", 0, big, true)
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) { wantFile(t, d+"/a", big) },
	}, {
		name: "symlink with directory fsync",
		setup: func(t *testing.T, d string) {
			must(t, os.Symlink("target", d+"/l"))
			mustSync(t, d)
		},
		check: func(t *testing.T, d string) {
			if got, err := os.Readlink(d + "/l"); err != nil || got != "target" {
				t.Errorf("readlink: %q, %v", got, err)
			}
		},
	}}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			f := MountTest(t, d, Options{Seed: uint64(i + 1)})
			c.setup(t, d)
			r, err := f.PowerCut(CutOptions{Tear: c.tear})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r)
			c.check(t, d)
			// The state after a cut is durable: a second cut changes
			// nothing.
			before := snapshot(t, d)
			if _, err := f.PowerCut(CutOptions{Tear: true}); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(t, d); after != before {
				t.Errorf("a second power cut changed the tree:\n%s\nto\n%s", before, after)
			}
		})
	}
}

// snapshot describes a tree: every path, its inode and contents.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		b.WriteString(rel)
		b.WriteString(" ")
		b.WriteString(fs.FileMode(st.Mode & 0o777).String())
		if e.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	must(t, err)
	return b.String()
}

// TestLocks checks that flock and byte-range locks work on the mount: the
// kernel handles them locally, since the file system does not.
func TestLocks(t *testing.T) {
	d := t.TempDir()
	MountTest(t, d, Options{})
	p := filepath.Join(d, "lock")
	mustWrite(t, p, 0, []byte("x"), false)
	f1, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer f1.Close()
	f2, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer f2.Close()

	must(t, unix.Flock(int(f1.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	if err := unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Errorf("second flock: %v, want EWOULDBLOCK", err)
	}
	must(t, unix.Flock(int(f1.Fd()), unix.LOCK_UN))
	must(t, unix.Flock(int(f2.Fd()), unix.LOCK_EX|unix.LOCK_NB))

	// Open file description locks conflict between two opens in one
	// process, and go through the same kernel path as SQLite's F_SETLK.
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 100, Len: 10}
	must(t, unix.FcntlFlock(f1.Fd(), unix.F_OFD_SETLK, &lk))
	lk2 := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 105, Len: 1}
	if err := unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &lk2); !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
		t.Errorf("conflicting byte-range lock: %v, want EAGAIN", err)
	}
	lk3 := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 200, Len: 1}
	must(t, unix.FcntlFlock(f2.Fd(), unix.F_OFD_SETLK, &lk3))
	get := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 100, Len: 1}
	must(t, unix.FcntlFlock(f2.Fd(), unix.F_OFD_GETLK, &get))
	if get.Type != unix.F_WRLCK {
		t.Errorf("F_OFD_GETLK: type %d, want the other descriptor's write lock", get.Type)
	}
}

// TestMmap checks shared writable mmap (SQLite's -shm): writes through the
// mapping are seen by read(2) and made durable by fsync. The mapping is
// made by a child process: see the package doc.
func TestMmap(t *testing.T) {
	if p := os.Getenv("POWERFS_MMAP_CHILD"); p != "" {
		mmapChild(t, p)
		return
	}
	d := t.TempDir()
	f := MountTest(t, d, Options{})
	p := filepath.Join(d, "shm")
	mustWrite(t, p, 0, make([]byte, 32<<10), true)
	mustSync(t, d)
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmap$", "-test.count=1")
	cmd.Env = append(os.Environ(), "POWERFS_MMAP_CHILD="+p)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if _, err := f.PowerCut(CutOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	must(t, err)
	if string(b[8190:8196]) != "synced" || string(b[20000:20006]) != "\x00\x00\x00\x00\x00\x00" {
		t.Errorf("after a power cut: %q at 8190, %q at 20000; want the fsynced write only", b[8190:8196], b[20000:20006])
	}
}

func mmapChild(t *testing.T, p string) {
	fd, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer fd.Close()
	m, err := unix.Mmap(int(fd.Fd()), 0, 32<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	must(t, err)
	copy(m[8190:], "synced")
	must(t, unix.Msync(m, unix.MS_SYNC))
	got := make([]byte, 6)
	if _, err := fd.ReadAt(got, 8190); err != nil || string(got) != "synced" {
		t.Errorf("read after a write through the mapping: %q, %v", got, err)
	}
	must(t, fd.Sync())
	// msync(MS_SYNC) would be an fdatasync of the range (Linux's
	// vfs_fsync_range): this write stays in the page cache until the
	// kernel writes it back, unsynced.
	copy(m[20000:], "unsync")
	if _, err := fd.ReadAt(got, 20000); err != nil || string(got) != "unsync" {
		t.Errorf("read after a write through the mapping: %q, %v", got, err)
	}
	must(t, unix.Munmap(m))
}

// TestPowerCutBusy checks that a cut refuses to run while a file is open,
// and that the mount still works afterwards.
func TestPowerCutBusy(t *testing.T) {
	d := t.TempDir()
	f := MountTest(t, d, Options{})
	f.busyWait = 200 * time.Millisecond
	mustWrite(t, d+"/a", 0, durable, true)
	mustSync(t, d)
	h, err := os.Open(d + "/a")
	must(t, err)
	if _, err := f.PowerCut(CutOptions{}); err == nil {
		t.Errorf("power cut with an open file: no error")
	}
	h.Close()
	wantFile(t, d+"/a", durable)
	mustWrite(t, d+"/a", 0, later, false) // still the same mount: not lost yet
	wantFile(t, d+"/a", later)
	mustWrite(t, d+"/b", 0, durable, true)
	mustSync(t, d)
	if _, err := f.PowerCut(CutOptions{}); err != nil {
		t.Fatal(err)
	}
	wantFile(t, d+"/b", durable)
}

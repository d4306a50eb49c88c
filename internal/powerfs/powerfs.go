// Package powerfs is a FUSE file system for tests that loses what a power
// cut loses: everything that was not fsynced.
//
// It keeps the whole tree in memory, in two states. The current state is
// what reads, writes and directory operations see. The durable state is
// what survives a power cut:
//
//   - fsync or fdatasync of a file makes its current data and size durable
//     (the data of that inode, whichever name it was opened by);
//   - fsync of a directory makes its current entries durable: creations,
//     removals, renames into and out of it, hard links (a rename between
//     two directories needs both fsynced; with only the new one fsynced
//     the file has both names after a cut, with only the old one neither);
//   - nothing else is ever durable. A file created, written and fsynced
//     whose directory was never fsynced is gone after a cut, as under
//     LazyFS; a file unlinked without a directory fsync comes back.
//
// PowerCut unmounts (so the kernel's page cache and dentries go too),
// drops every unsynced change, optionally tears the last unsynced write of
// each file (keeps a random prefix of it, as LazyFS's torn-op fault does),
// and mounts again at the same place. The processes using the mount must
// be gone (killed) first.
//
// Types, permissions, owners, times and symlink targets are not versioned:
// a cut leaves them as they were last set. Extended attributes are not
// supported. File locks (flock, POSIX and OFD byte-range locks) are left
// to the kernel, which handles them locally when a FUSE file system does
// not: correct for the processes of one machine using one mount. Shared
// mmap works (SQLite's -shm); written mmap pages reach the file system
// when the kernel writes them back, as unsynced data.
//
// The process that serves the mount (the one that called Mount) must not
// mmap files on it: a page fault on such a mapping waits for this process's
// FUSE server inside the kernel, where the Go runtime cannot preempt the
// faulting thread, and a garbage collection then deadlocks the process.
// SQLite maps its -shm file: open databases on the mount from child
// processes. Plain system calls (read, write, stat) are fine.
//
// Data is kept in 4 KiB copy-on-write pages shared by the two states, so
// an fsync costs the pages written since the previous one, and zeros
// written over a hole (a preallocated file) cost nothing.
package powerfs

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is returned (wrapped) by Mount when FUSE cannot be used
// here: no /dev/fuse, or no permission to mount.
var ErrUnavailable = errors.New("powerfs: FUSE is not available")

// Options configure a mount.
type Options struct {
	// Seed seeds the random prefix lengths of torn writes; 0 takes one
	// from the clock.
	Seed uint64
	// Log receives go-fuse's own messages, at debug level; nil discards
	// them.
	Log *slog.Logger
	// Debug logs every FUSE request and reply to Log (very verbose).
	Debug bool
}

// CutOptions configure one power cut.
type CutOptions struct {
	// Tear keeps, of each file whose last write was never synced, a
	// random prefix of that write (shorter than the write, possibly
	// empty) on top of its durable data: a write torn by the power cut.
	Tear bool
}

// Stats counts the operations the file system served, over all mounts.
type Stats struct {
	Writes       int64 // write requests
	WriteBytes   int64
	Fsyncs       int64 // fsync(2) of files
	Fdatasyncs   int64 // fdatasync(2) of files
	DirFsyncs    int64 // fsync(2) of directories
	Cuts         int   // power cuts
	Creates      int64 // files, directories, symlinks and nodes created
	Renames      int64
	Links        int64
	Removes      int64 // unlink and rmdir
	Truncates    int64
	Fallocates   int64
	ReadRequests int64
}

// FS is a mounted power-loss file system.
type FS struct {
	dir  string
	opts Options
	log  *log.Logger

	mu      sync.Mutex
	t       *tree
	rng     *rand.Rand
	epoch   uint64 // the mount generation; requests of an older mount fail
	srv     *fuse.Server
	nextFh  uint64
	dirHdls map[uint64][]entry // open directory handles: their listing
	// busyWait is how long PowerCut and Unmount retry an unmount the
	// kernel refuses as busy.
	busyWait time.Duration
}

// Mount mounts a new, empty power-loss file system on dir, an existing
// directory. Unmount it when done.
func Mount(dir string, opts Options) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	lg := log.New(io.Discard, "", 0)
	if opts.Log != nil {
		lg = slog.NewLogLogger(opts.Log.Handler(), slog.LevelDebug)
	}
	f := &FS{dir: dir, opts: opts, log: lg, t: newTree(time.Now), rng: rand.New(rand.NewPCG(seed, 0x706f776572)), dirHdls: map[uint64][]entry{}, busyWait: 5 * time.Second}
	if err := f.mount(); err != nil {
		return nil, err
	}
	return f, nil
}

// MountTest mounts a power-loss file system on dir for a test, and
// unmounts it when the test ends. It skips the test, saying why, where
// FUSE is not available.
func MountTest(t testing.TB, dir string, opts Options) *FS {
	t.Helper()
	f, err := Mount(dir, opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("no power-loss file system: %v", err)
	}
	if err != nil {
		t.Fatalf("mount power-loss file system: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount power-loss file system: %v", err)
		}
	})
	return f
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.dir }

// mount serves a new mount generation on f.dir.
func (f *FS) mount() error {
	f.mu.Lock()
	raw := &rawFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), fs: f, epoch: f.epoch}
	f.mu.Unlock()
	srv, err := fuse.NewServer(raw, f.dir, &fuse.MountOptions{
		FsName: "powerfs",
		Name:   "powerfs",
		// mount(2) when root, fusermount otherwise.
		DirectMount:  true,
		MaxWrite:     1 << 20,
		MaxReadAhead: 128 << 10,
		// Only this mount changes the files, so the kernel's caches
		// never go stale: no automatic invalidation, no ReadDirPlus
		// (plain lookups keep the reference counts simple).
		ExplicitDataCacheControl: true,
		DisableReadDirPlus:       true,
		DisableXAttrs:            true,
		Logger:                   f.log,
		Debug:                    f.opts.Debug,
	})
	if err != nil {
		if unavailable(err) {
			return fmt.Errorf("%w: mount on %s: %v", ErrUnavailable, f.dir, err)
		}
		return fmt.Errorf("mount power-loss file system on %s: %w", f.dir, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		srv.Unmount()
		return fmt.Errorf("mount power-loss file system on %s: %w", f.dir, err)
	}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	return nil
}

// unavailable reports whether a mount error means "no FUSE for us here"
// rather than a bug.
func unavailable(err error) bool {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENODEV) || errors.Is(err, exec.ErrNotFound) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "not permitted") || strings.Contains(s, "permission denied") || strings.Contains(s, "fusermount")
}

// unmount unmounts the current mount generation, retrying for up to
// busyWait while the kernel says it is busy (a killed process's files
// may take a moment to be released). It does not touch the state.
func (f *FS) unmount() (*fuse.Server, error) {
	f.mu.Lock()
	srv := f.srv
	f.mu.Unlock()
	if srv == nil {
		return nil, fmt.Errorf("%s: not mounted", f.dir)
	}
	deadline := time.Now().Add(f.busyWait)
	for {
		err := srv.Unmount()
		if err == nil {
			return srv, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("unmount %s: %w", f.dir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// retire ends mount generation srv: requests it still has in flight
// fail with EIO from now on.
func (f *FS) retire(srv *fuse.Server) {
	if f.srv == srv {
		f.srv = nil
	}
	f.epoch++
}

// Unmount unmounts the file system for good. When something still uses
// it, the mount is detached (lazy unmount) and answers EIO from then on.
func (f *FS) Unmount() error {
	f.mu.Lock()
	srv := f.srv
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	if _, err := f.unmount(); err != nil {
		derr := syscall.Unmount(f.dir, syscall.MNT_DETACH)
		if derr != nil {
			derr = exec.Command("fusermount3", "-u", "-z", f.dir).Run()
		}
		if derr != nil {
			return fmt.Errorf("%w; detach: %v", err, derr)
		}
	}
	f.mu.Lock()
	f.retire(srv)
	f.mu.Unlock()
	return nil
}

// PowerCut simulates a power failure: it unmounts (which fails, changing
// nothing, if a process still uses the mount), drops everything that was
// not made durable (see the package doc), and mounts the file system
// again.
func (f *FS) PowerCut(o CutOptions) (CutReport, error) {
	srv, err := f.unmount()
	if err != nil {
		return CutReport{}, fmt.Errorf("power cut: %w (does a process still use the mount?)", err)
	}
	f.mu.Lock()
	f.retire(srv)
	r := f.t.cut(o.Tear, f.rng)
	f.t.stats.Cuts++
	clear(f.dirHdls)
	f.mu.Unlock()
	if err := f.mount(); err != nil {
		return r, fmt.Errorf("power cut: mount again: %w", err)
	}
	return r, nil
}

// Stats returns the counts of operations served so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t.stats
}

// Package blob owns immutable message bodies on disk.
//
// A body is first written to a temporary file (Writer), fsynced and closed;
// a Writer from NewSpool keeps a small body in memory instead (a memory
// Temp), and Link writes and fsyncs it.
// It then becomes part of one or more Dirs by hard link: each Dir is a
// sharded directory of files named by id, and a body shared by several
// recipients is one inode with several names. Link fsyncs the directories
// it changed before returning, so a linked body survives a crash. Files in a
// Dir are never modified, only removed.
package blob

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jodmai/jodmai/internal/safeio"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new random body id: 20 lowercase base32 characters (100
// bits), safe as a file name.
func NewID() string {
	var b [13]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])[:20]
}

// ValidID reports whether id has the shape NewID makes.
func ValidID(id string) bool {
	if len(id) != 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Writer writes a new body to a temporary file, or, for a Writer from
// NewSpool, to memory until the body outgrows its memory limit.
type Writer struct {
	f    *os.File // nil while the body is in memory
	path string
	n    int64
	done bool

	// Spooling (NewSpool): the body is in buf while f is nil.
	spool  bool
	dir    string
	memMax int
	buf    []byte
}

// Create starts a new body in tmpDir.
func Create(tmpDir string) (*Writer, error) {
	f, err := os.CreateTemp(tmpDir, "body-*")
	if err != nil {
		return nil, fmt.Errorf("create body: %w", err)
	}
	return &Writer{f: f, path: f.Name()}, nil
}

// NewSpool starts a new body that is kept in memory while it is at most
// memMax bytes, and moves to a temporary file in tmpDir when it grows
// beyond. buf, if not nil, is the memory to use (appended to from length
// 0; a caller may pool it): the finished memory Temp's Data is buf, grown,
// and is valid until the caller reuses it. Nothing touches the disk for a
// body that stays in memory; its durability comes from where it is stored
// (Dir.Link writes and fsyncs it; the store keeps small bodies in its
// index).
func NewSpool(tmpDir string, memMax int, buf []byte) *Writer {
	return &Writer{spool: true, dir: tmpDir, memMax: memMax, buf: buf[:0]}
}

// Write appends to the body.
func (w *Writer) Write(p []byte) (int, error) {
	if w.f == nil && w.spool {
		if len(w.buf)+len(p) <= w.memMax {
			w.buf = append(w.buf, p...)
			w.n += int64(len(p))
			return len(p), nil
		}
		if err := w.spill(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("write body: %w", err)
	}
	return n, nil
}

// spill moves an in-memory body to a temporary file.
func (w *Writer) spill() error {
	f, err := os.CreateTemp(w.dir, "body-*")
	if err != nil {
		return fmt.Errorf("create body: %w", err)
	}
	if _, err := f.Write(w.buf); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("write body: %w", err)
	}
	w.f, w.path, w.buf = f, f.Name(), nil
	return nil
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Finish makes the body durable (fsync) and closes it. The returned Temp
// must be linked into Dirs and then Removed. A body still in memory
// (NewSpool) is returned as a memory Temp, without any file.
func (w *Writer) Finish() (*Temp, error) {
	if w.done {
		return nil, errors.New("blob: writer already finished")
	}
	w.done = true
	if w.f == nil && w.spool {
		return w.memTemp(), nil
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		os.Remove(w.path)
		return nil, fmt.Errorf("fsync body: %w", err)
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.path)
		return nil, fmt.Errorf("close body: %w", err)
	}
	return &Temp{Path: w.path, Size: w.n}, nil
}

// ReadFrom appends what r yields. From an *os.File the kernel copies
// (copy_file_range), without passing the bytes through user space.
// A spooling writer still in memory copies through Write, which spills
// to a file when the body outgrows memory.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.f == nil && w.spool {
		return io.Copy(writerOnly{w}, r)
	}
	n, err := w.f.ReadFrom(r)
	w.n += n
	if err != nil {
		return n, fmt.Errorf("write body: %w", err)
	}
	return n, nil
}

// FinishScratch closes the body without making it durable: for a scratch
// copy that is read back and removed, never linked. A crash may leave it
// behind in the temporary directory, where Sweep finds it.
func (w *Writer) FinishScratch() (*Temp, error) {
	if w.done {
		return nil, errors.New("blob: writer already finished")
	}
	w.done = true
	if w.f == nil && w.spool {
		// Still in memory: nothing to close, nothing to leave behind.
		return w.memTemp(), nil
	}
	if err := w.f.Close(); err != nil {
		os.Remove(w.path)
		return nil, fmt.Errorf("close body: %w", err)
	}
	return &Temp{Path: w.path, Size: w.n}, nil
}

// memTemp hands a spooling writer's memory over as a memory Temp.
func (w *Writer) memTemp() *Temp {
	data := w.buf
	if data == nil {
		data = []byte{}
	}
	w.buf = nil
	return &Temp{Size: w.n, Data: data, dir: w.dir}
}

// writerOnly hides a Writer's ReadFrom from io.Copy, which would call it
// back.
type writerOnly struct{ w *Writer }

func (o writerOnly) Write(p []byte) (int, error) { return o.w.Write(p) }

// Abort discards the body.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.buf = nil
	if w.f == nil {
		return
	}
	w.f.Close()
	os.Remove(w.path)
}

// Temp is a finished, durable body not yet linked anywhere: a temporary
// file (Path), or a memory Temp (Path "", Data holds the body) that is made
// durable where it is stored.
type Temp struct {
	// Path is the temporary file; "" for a memory Temp.
	Path string
	// Size is its length in bytes.
	Size int64
	// Data is the body of a memory Temp (nil for a file). It belongs to
	// whoever made the Temp and must not be modified.
	Data []byte

	dir string // where Open writes a memory Temp's file
}

// InMemory reports whether t is a memory Temp.
func (t *Temp) InMemory() bool { return t.Path == "" && t.Data != nil }

// Open opens the temporary body for reading. For a memory Temp it writes
// the body to an unnamed temporary file first (slow: use NewReader).
func (t *Temp) Open() (*os.File, error) {
	if !t.InMemory() {
		return os.Open(t.Path)
	}
	f, err := os.CreateTemp(t.dir, "body-*")
	if err != nil {
		return nil, fmt.Errorf("open body: %w", err)
	}
	os.Remove(f.Name())
	if _, err := f.Write(t.Data); err != nil {
		f.Close()
		return nil, fmt.Errorf("open body: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open body: %w", err)
	}
	return f, nil
}

// File returns t as a durable temporary file: t itself for a file Temp;
// for a memory Temp, a new Temp written to a file in tmpDir and fsynced,
// which the caller must Remove (and t stays valid).
func (t *Temp) File(tmpDir string) (*Temp, error) {
	if !t.InMemory() {
		return t, nil
	}
	w, err := Create(tmpDir)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(t.Data); err != nil {
		w.Abort()
		return nil, err
	}
	return w.Finish()
}

// Reader is a body opened for reading: an *os.File, or a reader of
// memory.
type Reader interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

// NewReader opens the temporary body for reading, without any file for a
// memory Temp.
func (t *Temp) NewReader() (Reader, error) {
	if t.InMemory() {
		return NewMemReader(t.Data), nil
	}
	return os.Open(t.Path)
}

// MemReader reads a body held in memory; Close does nothing.
type MemReader struct{ *bytes.Reader }

// NewMemReader returns a Reader of b.
func NewMemReader(b []byte) MemReader { return MemReader{bytes.NewReader(b)} }

// Close does nothing.
func (MemReader) Close() error { return nil }

// Remove deletes the temporary name. Linked copies stay. For a memory Temp
// it does nothing.
func (t *Temp) Remove() error {
	if t.Path == "" {
		return nil
	}
	if err := os.Remove(t.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove temporary body: %w", err)
	}
	return nil
}

// Dir is a sharded directory of bodies: <path>/<first two id chars>/<id>.
type Dir struct {
	path string

	mu sync.Mutex // guards durable; held while a shard is made durable
	// durable holds the shards whose entry in path this process has
	// fsynced. A shard that merely exists is not enough: it may have been
	// made by a process that died before fsyncing path, or by another
	// goroutine that is still fsyncing it.
	durable map[string]bool
}

// NewDir returns the Dir at path, creating it.
func NewDir(path string) (*Dir, error) {
	if err := safeio.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("create body dir: %w", err)
	}
	return &Dir{path: path, durable: map[string]bool{}}, nil
}

// Path returns the file name of body id.
func (d *Dir) Path(id string) string {
	return filepath.Join(d.path, id[:2], id)
}

// Link gives the durable temporary body t the name id in d and fsyncs the
// directory, so the name survives a crash. A memory Temp is written to a
// new file, fsynced and linked (see Copy).
func (d *Dir) Link(t *Temp, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("blob: invalid id %q", id)
	}
	if t.InMemory() {
		// Written, fsynced and linked under its name, like Copy.
		_, err := d.Copy(bytes.NewReader(t.Data), id)
		return err
	}
	shard := filepath.Join(d.path, id[:2])
	if err := d.ensureShard(shard); err != nil {
		return err
	}
	if err := os.Link(t.Path, filepath.Join(shard, id)); err != nil {
		return fmt.Errorf("link body %s: %w", id, err)
	}
	return syncDir(shard)
}

// Copy writes r as body id in d, durably (for bodies coming from another
// file system or Dir): tmp file in the shard, fsync, link to its name,
// fsync dir. An existing body id is an error, never replaced.
func (d *Dir) Copy(r io.Reader, id string) (int64, error) {
	if !ValidID(id) {
		return 0, fmt.Errorf("blob: invalid id %q", id)
	}
	shard := filepath.Join(d.path, id[:2])
	if err := d.ensureShard(shard); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(shard, ".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create body %s: %w", id, err)
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Link, not rename: rename would silently replace an existing
		// body of the same id, and bodies are immutable.
		err = os.Link(f.Name(), filepath.Join(shard, id))
	}
	os.Remove(f.Name())
	if err != nil {
		return 0, fmt.Errorf("write body %s: %w", id, err)
	}
	return n, syncDir(shard)
}

// ensureShard makes sure shard exists and its name in d is durable before
// any body is linked into it. Every shard is fsynced into d once per
// process, on first use, whether this process made it or found it.
func (d *Dir) ensureShard(shard string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.durable[shard] {
		return nil
	}
	if err := os.Mkdir(shard, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create shard: %w", err)
	}
	if err := syncDir(d.path); err != nil {
		return err
	}
	if d.durable == nil {
		d.durable = map[string]bool{}
	}
	d.durable[shard] = true
	return nil
}

// Open opens body id for reading.
func (d *Dir) Open(id string) (*os.File, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("blob: invalid id %q", id)
	}
	f, err := os.Open(d.Path(id))
	if err != nil {
		return nil, fmt.Errorf("open body %s: %w", id, err)
	}
	return f, nil
}

// Remove deletes body id. A missing file is not an error. The directory is
// not fsynced: a removal lost in a crash leaves an orphan that the start-up
// sweep deletes.
func (d *Dir) Remove(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("blob: invalid id %q", id)
	}
	if err := os.Remove(d.Path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove body %s: %w", id, err)
	}
	return nil
}

// Walk calls fn for every body in d, and removes leftover temporary files
// of interrupted Copy calls.
func (d *Dir) Walk(fn func(id string, size int64) error) error {
	shards, err := os.ReadDir(d.path)
	if err != nil {
		return fmt.Errorf("read body dir: %w", err)
	}
	for _, s := range shards {
		if !s.IsDir() || len(s.Name()) != 2 {
			continue
		}
		files, err := os.ReadDir(filepath.Join(d.path, s.Name()))
		if err != nil {
			return fmt.Errorf("read shard: %w", err)
		}
		for _, f := range files {
			name := f.Name()
			if strings.HasPrefix(name, ".tmp-") {
				os.Remove(filepath.Join(d.path, s.Name(), name))
				continue
			}
			if !ValidID(name) {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue
			}
			if err := fn(name, info.Size()); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncDir is safeio.SyncDir; tests replace it to see the order of fsyncs.
var syncDir = safeio.SyncDir

package powerfs

import (
	"math"
	"slices"
)

// pageSize is the unit of copy-on-write between a file's current and
// durable contents.
const pageSize = 4096

// lastWriteMax bounds the torn-write candidate kept per file.
const lastWriteMax = 64 << 20

// page is one pageSize block of a file. A page that belongs to the durable
// contents is frozen: it is never written again, and a write to the current
// contents at its place copies it first.
type page struct {
	b      [pageSize]byte
	frozen bool
}

// content is a file's size and pages; a nil page reads as zeros. The
// bytes of the last page beyond size are always zero, so growing the size
// exposes zeros.
type content struct {
	size  int64
	pages []*page
}

// pagesFor is the number of pages that hold size bytes.
func pagesFor(size int64) int {
	return int((size + pageSize - 1) / pageSize)
}

// lastWrite is the last write to a file since its last sync, kept for a
// torn write at a power cut. Writes that continue it where it ends extend
// it, up to lastWriteMax bytes: the kernel splits one write(2) into
// several requests, and a sequential stream of small writes (SQLite's WAL
// frames) is torn as a whole.
type lastWrite struct {
	off int64
	b   []byte
}

// file is a regular file's data: the current contents, which reads and
// writes see, and the durable contents, which survive a power cut. Both
// share frozen pages, so a sync costs the pages changed since the last
// one, not the file's size.
type file struct {
	cur, dur content
	// dirty holds the indexes of the pages of cur replaced since the last
	// sync; shrunkTo is the fewest pages cur had since then (pages from
	// there up may differ from dur without being in dirty).
	dirty    map[int]struct{}
	shrunkTo int
	// unsynced: cur may differ from dur.
	unsynced bool
	last     *lastWrite
}

func newFile() *file {
	return &file{dirty: map[int]struct{}{}, shrunkTo: math.MaxInt}
}

// writable returns page i of cur, ready to be written: a new page for a
// hole, a copy of a frozen one.
func (f *file) writable(i int) *page {
	p := f.cur.pages[i]
	switch {
	case p == nil:
		p = new(page)
	case p.frozen:
		q := new(page)
		q.b = p.b
		p = q
	default:
		return p
	}
	f.cur.pages[i] = p
	f.dirty[i] = struct{}{}
	return p
}

// setSize changes the current size, zeroing what a shrink cuts off so
// that a later growth reads zeros.
func (f *file) setSize(size int64) {
	if size == f.cur.size {
		return
	}
	f.unsynced = true
	if size > f.cur.size {
		n := pagesFor(size)
		if n > len(f.cur.pages) {
			f.cur.pages = slices.Grow(f.cur.pages, n-len(f.cur.pages))[:n]
		}
		f.cur.size = size
		return
	}
	n := pagesFor(size)
	if n < len(f.cur.pages) {
		clear(f.cur.pages[n:])
		f.cur.pages = f.cur.pages[:n]
		f.shrunkTo = min(f.shrunkTo, n)
	}
	if off := int(size % pageSize); off != 0 && f.cur.pages[n-1] != nil {
		clear(f.writable(n - 1).b[off:])
	}
	f.cur.size = size
}

// write writes b at off into the current contents. Zeros written over a
// hole leave the hole (a preallocated file costs no memory).
func (f *file) write(off int64, b []byte) {
	if len(b) == 0 {
		return
	}
	f.unsynced = true
	if l := f.last; l != nil && l.off+int64(len(l.b)) == off && len(l.b)+len(b) <= lastWriteMax {
		l.b = append(l.b, b...)
	} else {
		f.last = &lastWrite{off: off, b: slices.Clone(b)}
	}
	if end := off + int64(len(b)); end > f.cur.size {
		f.setSize(end)
	}
	for len(b) > 0 {
		i, po := int(off/pageSize), int(off%pageSize)
		n := min(pageSize-po, len(b))
		if f.cur.pages[i] != nil || !allZero(b[:n]) {
			copy(f.writable(i).b[po:], b[:n])
		}
		off += int64(n)
		b = b[n:]
	}
}

// zero makes [off, end) of the current contents read as zeros, dropping
// whole pages; end is at most the size.
func (f *file) zero(off, end int64) {
	if off >= end {
		return
	}
	f.unsynced = true
	for off < end {
		i, po := int(off/pageSize), int(off%pageSize)
		n := min(int64(pageSize-po), end-off)
		switch {
		case f.cur.pages[i] == nil:
		case n == pageSize:
			f.cur.pages[i] = nil
			f.dirty[i] = struct{}{}
		default:
			clear(f.writable(i).b[po : po+int(n)])
		}
		off += n
	}
}

// read copies the current contents at off into b and returns the number
// of bytes, short at the end of the file.
func (f *file) read(off int64, b []byte) int {
	if off >= f.cur.size {
		return 0
	}
	b = b[:min(int64(len(b)), f.cur.size-off)]
	n := len(b)
	for len(b) > 0 {
		i, po := int(off/pageSize), int(off%pageSize)
		k := min(pageSize-po, len(b))
		if p := f.cur.pages[i]; p != nil {
			copy(b[:k], p.b[po:])
		} else {
			clear(b[:k])
		}
		off += int64(k)
		b = b[k:]
	}
	return n
}

// sync makes the current contents durable (fsync, fdatasync).
func (f *file) sync() {
	if !f.unsynced {
		return
	}
	n, old := len(f.cur.pages), len(f.dur.pages)
	if n < old {
		clear(f.dur.pages[n:])
		f.dur.pages = f.dur.pages[:n]
	} else if n > old {
		f.dur.pages = slices.Grow(f.dur.pages, n-old)[:n]
	}
	take := func(i int) {
		p := f.cur.pages[i]
		if p != nil {
			p.frozen = true
		}
		f.dur.pages[i] = p
	}
	for i := range f.dirty {
		if i < n {
			take(i)
		}
	}
	for i := f.shrunkTo; i < min(n, old); i++ {
		take(i)
	}
	f.dur.size = f.cur.size
	clear(f.dirty)
	f.shrunkTo = math.MaxInt
	f.unsynced = false
	f.last = nil
}

// revert drops everything unsynced: current := durable.
func (f *file) revert() {
	f.cur = content{size: f.dur.size, pages: slices.Clone(f.dur.pages)}
	clear(f.dirty)
	f.shrunkTo = math.MaxInt
	f.unsynced = false
	f.last = nil
}

// unsyncedPages counts the pages of cur that differ from dur, for reports.
func (f *file) unsyncedPages() int {
	if !f.unsynced {
		return 0
	}
	n := 0
	for i, p := range f.cur.pages {
		if i >= len(f.dur.pages) || f.dur.pages[i] != p {
			n++
		}
	}
	return n
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

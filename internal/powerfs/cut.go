package powerfs

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// CutReport says what a power cut dropped. Paths are relative to the
// mount point, as the current tree named them just before the cut.
type CutReport struct {
	// Files are the files whose data or size had changed since their
	// last fsync: they went back to their state at that fsync.
	Files []FileLoss
	// Entries are the directory entries changed since their directory's
	// last fsync: created names went away, removed ones came back,
	// renamed ones went back to what they named.
	Entries []EntryLoss
	// Torn are the writes a torn cut kept a prefix of (CutOptions.Tear).
	Torn []TornWrite
	// Freed counts the inodes no durable entry reached any more.
	Freed int
}

// FileLoss is a file that lost unsynced data.
type FileLoss struct {
	Path string
	// Size is the size before the cut, DurableSize the size after.
	Size, DurableSize int64
	// Pages counts the 4 KiB pages that differed from the durable ones.
	Pages int
}

// EntryLoss is a directory entry change that no directory fsync made
// durable.
type EntryLoss struct {
	Path string
	// Change is "created" (the name goes away), "removed" (the name comes
	// back) or "replaced" (the name goes back to the inode it named).
	Change string
}

// TornWrite is a write of which a torn cut kept only a prefix.
type TornWrite struct {
	Path string
	Off  int64
	// Len is the length of the write; Kept how many of its first bytes
	// were kept.
	Len, Kept int
}

// Lost reports whether the cut dropped anything at all.
func (r CutReport) Lost() bool {
	return len(r.Files) > 0 || len(r.Entries) > 0 || len(r.Torn) > 0
}

// String summarises the report on a few lines: counts, then the largest
// losses.
func (r CutReport) String() string {
	var b strings.Builder
	var lostBytes int64
	for _, f := range r.Files {
		lostBytes += int64(f.Pages) * pageSize
	}
	fmt.Fprintf(&b, "power cut: %d files reverted (%d KiB of unsynced pages), %d directory entries reverted, %d torn writes, %d inodes freed",
		len(r.Files), lostBytes>>10, len(r.Entries), len(r.Torn), r.Freed)
	files := slices.Clone(r.Files)
	slices.SortStableFunc(files, func(x, y FileLoss) int { return y.Pages - x.Pages })
	for _, f := range files[:min(len(files), 5)] {
		fmt.Fprintf(&b, "\n  %s: %d bytes -> %d bytes durable, %d pages unsynced", f.Path, f.Size, f.DurableSize, f.Pages)
	}
	kinds := map[string]int{}
	for _, e := range r.Entries {
		kinds[e.Change]++
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		var ex []string
		for _, e := range r.Entries {
			if e.Change == k && len(ex) < 3 {
				ex = append(ex, e.Path)
			}
		}
		fmt.Fprintf(&b, "\n  entries %s but never made durable: %d (%s)", k, kinds[k], strings.Join(ex, ", "))
	}
	for _, tw := range r.Torn[:min(len(r.Torn), 5)] {
		fmt.Fprintf(&b, "\n  torn: %s: kept %d of %d bytes written at %d", tw.Path, tw.Kept, tw.Len, tw.Off)
	}
	return b.String()
}

// cut drops everything unsynced: every file's data and size go back to
// their last sync, every directory's entries to its last sync; what no
// durable entry reaches from the root is gone. With tear, each file whose
// last write was never synced keeps a random prefix of that write
// (shorter than the write). Every kernel reference is dropped: the caller
// unmounted.
func (t *tree) cut(tear bool, rng *rand.Rand) CutReport {
	var r CutReport
	paths := t.paths()
	pathOf := func(ino uint64) string {
		if p, ok := paths[ino]; ok {
			return p
		}
		return fmt.Sprintf("(unlinked inode %d)", ino)
	}
	inos := slices.Sorted(maps.Keys(t.inodes))
	for _, ino := range inos {
		n := t.inodes[ino]
		if n.file != nil && n.file.unsynced {
			r.Files = append(r.Files, FileLoss{Path: pathOf(ino), Size: n.file.cur.size, DurableSize: n.file.dur.size, Pages: n.file.unsyncedPages()})
		}
		if n.dir != nil {
			for _, name := range slices.Sorted(maps.Keys(n.dir.dirty)) {
				now, hasNow := n.dir.cur[name]
				old, hadOld := n.dir.dur[name]
				p := name
				if ino != rootIno {
					p = pathOf(ino) + "/" + name
				}
				switch {
				case hasNow && !hadOld:
					r.Entries = append(r.Entries, EntryLoss{p, "created"})
				case hadOld && !hasNow:
					r.Entries = append(r.Entries, EntryLoss{p, "removed"})
				case hasNow && hadOld && now != old:
					r.Entries = append(r.Entries, EntryLoss{p, "replaced"})
				}
			}
		}
	}

	// What survives: what durable entries reach from the root. A
	// directory durably named twice (renamed from one directory to
	// another, both fsynced at different times) keeps its first name in
	// breadth-first name order: a directory has one parent.
	links := map[uint64]int{rootIno: 1}
	queue := []uint64{rootIno}
	for len(queue) > 0 {
		d := t.inodes[queue[0]]
		queue = queue[1:]
		for _, name := range slices.Sorted(maps.Keys(d.dir.dur)) {
			ino := d.dir.dur[name]
			c := t.inodes[ino]
			if c.isDir() {
				if _, seen := links[ino]; seen {
					delete(d.dir.dur, name)
					continue
				}
				queue = append(queue, ino)
			}
			links[ino]++
		}
	}
	for _, ino := range inos {
		n := t.inodes[ino]
		l, ok := links[ino]
		if !ok {
			delete(t.inodes, ino)
			r.Freed++
			continue
		}
		n.nlink, n.durLinks = l, l
		n.lookups, n.opens = 0, 0
		if n.dir != nil {
			n.dir.cur = maps.Clone(n.dir.dur)
			clear(n.dir.dirty)
		}
		if n.file != nil {
			last := n.file.last
			n.file.revert()
			if tear && last != nil {
				k := rng.IntN(len(last.b))
				n.file.write(last.off, last.b[:k])
				n.file.sync()
				r.Torn = append(r.Torn, TornWrite{Path: pathOf(ino), Off: last.off, Len: len(last.b), Kept: k})
			}
		}
	}
	return r
}

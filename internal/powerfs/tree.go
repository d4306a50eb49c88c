package powerfs

import (
	"maps"
	"slices"
	"syscall"
	"time"
)

// rootIno is the root directory's inode number (FUSE_ROOT_ID).
const rootIno = 1

// inode is a file, directory, symbolic link or special file. Its type,
// permissions, owner, times and a symlink's target are not versioned:
// they are what they were last set to, power cut or not. What a power cut
// reverts is a file's data and size (file) and a directory's entries
// (dir).
type inode struct {
	ino      uint64
	mode     uint32 // type and permission bits, as in stat(2)
	uid, gid uint32
	rdev     uint32
	atime    time.Time
	mtime    time.Time
	ctime    time.Time
	target   string // symlink

	// nlink counts the current directory entries naming this inode;
	// durLinks the durable ones.
	nlink    int
	durLinks int
	// lookups is the kernel's lookup count (FUSE FORGET lowers it);
	// opens the open file handles. An inode with neither, and no name,
	// current or durable, is freed.
	lookups uint64
	opens   int

	file *file // regular files
	dir  *dir  // directories
}

func (n *inode) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }

// dir is a directory's entries, current and durable.
type dir struct {
	cur, dur map[string]uint64
	// dirty holds the names changed in cur since the last sync.
	dirty map[string]struct{}
}

func newDir() *dir {
	return &dir{cur: map[string]uint64{}, dur: map[string]uint64{}, dirty: map[string]struct{}{}}
}

// tree is the whole file system state. It is not safe for concurrent use:
// FS serialises every operation with its mutex.
type tree struct {
	inodes  map[uint64]*inode
	nextIno uint64
	now     func() time.Time
	stats   Stats
}

func newTree(now func() time.Time) *tree {
	t := &tree{inodes: map[uint64]*inode{}, nextIno: rootIno + 1, now: now}
	ts := now()
	t.inodes[rootIno] = &inode{ino: rootIno, mode: syscall.S_IFDIR | 0o755, atime: ts, mtime: ts, ctime: ts, nlink: 1, durLinks: 1, dir: newDir()}
	return t
}

func (t *tree) get(ino uint64) (*inode, syscall.Errno) {
	n := t.inodes[ino]
	if n == nil {
		return nil, syscall.ENOENT
	}
	return n, 0
}

func (t *tree) getDir(ino uint64) (*inode, syscall.Errno) {
	n, e := t.get(ino)
	if e != 0 {
		return nil, e
	}
	if n.dir == nil {
		return nil, syscall.ENOTDIR
	}
	return n, 0
}

func (t *tree) getFile(ino uint64) (*inode, syscall.Errno) {
	n, e := t.get(ino)
	if e != 0 {
		return nil, e
	}
	if n.file == nil {
		if n.dir != nil {
			return nil, syscall.EISDIR
		}
		return nil, syscall.EINVAL
	}
	return n, 0
}

// lookup finds name in directory parent.
func (t *tree) lookup(parent uint64, name string) (*inode, syscall.Errno) {
	d, e := t.getDir(parent)
	if e != 0 {
		return nil, e
	}
	ino, ok := d.dir.cur[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return t.get(ino)
}

// setEntry sets (ino != 0) or removes (ino == 0) name in directory d's
// current entries.
func (t *tree) setEntry(d *inode, name string, ino uint64) {
	if ino == 0 {
		delete(d.dir.cur, name)
	} else {
		d.dir.cur[name] = ino
	}
	d.dir.dirty[name] = struct{}{}
	ts := t.now()
	d.mtime, d.ctime = ts, ts
}

// newNode creates an inode named name in parent: a directory, a symlink
// (target), a regular file, or a special file.
func (t *tree) newNode(parent uint64, name string, mode, uid, gid, rdev uint32, target string) (*inode, syscall.Errno) {
	d, e := t.getDir(parent)
	if e != 0 {
		return nil, e
	}
	if len(name) > 255 {
		return nil, syscall.ENAMETOOLONG
	}
	if _, ok := d.dir.cur[name]; ok {
		return nil, syscall.EEXIST
	}
	ts := t.now()
	n := &inode{ino: t.nextIno, mode: mode, uid: uid, gid: gid, rdev: rdev, atime: ts, mtime: ts, ctime: ts, target: target, nlink: 1}
	t.nextIno++
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		n.dir = newDir()
	case syscall.S_IFREG:
		n.file = newFile()
	}
	t.inodes[n.ino] = n
	t.setEntry(d, name, n.ino)
	return n, 0
}

// link gives inode ino the name name in parent (a hard link).
func (t *tree) link(ino, parent uint64, name string) (*inode, syscall.Errno) {
	n, e := t.get(ino)
	if e != 0 {
		return nil, e
	}
	if n.isDir() {
		return nil, syscall.EPERM
	}
	d, e := t.getDir(parent)
	if e != 0 {
		return nil, e
	}
	if _, ok := d.dir.cur[name]; ok {
		return nil, syscall.EEXIST
	}
	t.setEntry(d, name, ino)
	n.nlink++
	n.ctime = t.now()
	return n, 0
}

// remove removes name from parent: unlink (dir false) or rmdir (dir true).
func (t *tree) remove(parent uint64, name string, isDir bool) syscall.Errno {
	d, e := t.getDir(parent)
	if e != 0 {
		return e
	}
	ino, ok := d.dir.cur[name]
	if !ok {
		return syscall.ENOENT
	}
	n := t.inodes[ino]
	switch {
	case isDir && !n.isDir():
		return syscall.ENOTDIR
	case !isDir && n.isDir():
		return syscall.EISDIR
	case isDir && len(n.dir.cur) > 0:
		return syscall.ENOTEMPTY
	}
	t.setEntry(d, name, 0)
	t.unref(n)
	return 0
}

// unref drops one current name of n.
func (t *tree) unref(n *inode) {
	n.nlink--
	n.ctime = t.now()
	t.maybeFree(n)
}

// Flags of rename(2) (renameat2).
const (
	renameNoReplace = 1 // RENAME_NOREPLACE
	renameExchange  = 2 // RENAME_EXCHANGE
)

// rename moves oldName in oldParent to newName in newParent.
func (t *tree) rename(oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) syscall.Errno {
	od, e := t.getDir(oldParent)
	if e != 0 {
		return e
	}
	nd, e := t.getDir(newParent)
	if e != 0 {
		return e
	}
	if flags&^(renameNoReplace|renameExchange) != 0 || flags == renameNoReplace|renameExchange {
		return syscall.EINVAL
	}
	src, ok := od.dir.cur[oldName]
	if !ok {
		return syscall.ENOENT
	}
	dst, exists := nd.dir.cur[newName]
	if len(newName) > 255 {
		return syscall.ENAMETOOLONG
	}
	switch {
	case flags&renameExchange != 0:
		if !exists {
			return syscall.ENOENT
		}
		t.setEntry(od, oldName, dst)
		t.setEntry(nd, newName, src)
		return 0
	case exists && flags&renameNoReplace != 0:
		return syscall.EEXIST
	case exists && dst == src:
		return 0 // two names of one inode: POSIX says do nothing
	}
	if exists {
		s, d := t.inodes[src], t.inodes[dst]
		switch {
		case s.isDir() && !d.isDir():
			return syscall.ENOTDIR
		case !s.isDir() && d.isDir():
			return syscall.EISDIR
		case d.isDir() && len(d.dir.cur) > 0:
			return syscall.ENOTEMPTY
		}
	}
	t.setEntry(od, oldName, 0)
	t.setEntry(nd, newName, src)
	t.inodes[src].ctime = t.now()
	if exists {
		t.unref(t.inodes[dst])
	}
	return 0
}

// sync makes an inode's current state durable: a file's data and size
// (fsync, fdatasync), a directory's entries (fsync of the directory).
func (t *tree) sync(n *inode) {
	switch {
	case n.file != nil:
		n.file.sync()
	case n.dir != nil:
		d := n.dir
		for name := range d.dirty {
			old, hadOld := d.dur[name]
			now, hasNow := d.cur[name]
			if hadOld == hasNow && old == now {
				continue
			}
			if hadOld {
				delete(d.dur, name)
				if o := t.inodes[old]; o != nil {
					o.durLinks--
					defer t.maybeFree(o)
				}
			}
			if hasNow {
				d.dur[name] = now
				t.inodes[now].durLinks++
			}
		}
		clear(d.dirty)
	}
}

// maybeFree forgets n once nothing can reach it any more: no name, current
// or durable, no kernel reference, no open handle.
func (t *tree) maybeFree(n *inode) {
	if n.ino == rootIno || n.nlink > 0 || n.durLinks > 0 || n.lookups > 0 || n.opens > 0 {
		return
	}
	delete(t.inodes, n.ino)
}

// entry is one directory entry, for listings.
type entry struct {
	name string
	ino  uint64
	mode uint32
}

// list returns directory d's current entries sorted by name.
func (t *tree) list(d *inode) []entry {
	names := slices.Sorted(maps.Keys(d.dir.cur))
	out := make([]entry, 0, len(names))
	for _, name := range names {
		ino := d.dir.cur[name]
		out = append(out, entry{name: name, ino: ino, mode: t.inodes[ino].mode})
	}
	return out
}

// dirLinks is a directory's link count: 2 plus one per subdirectory.
func (t *tree) dirLinks(d *inode) int {
	n := 2
	for _, ino := range d.dir.cur {
		if t.inodes[ino].isDir() {
			n++
		}
	}
	return n
}

// paths maps every inode reachable through current entries to one of its
// paths (the first in name order, breadth first), for reports.
func (t *tree) paths() map[uint64]string {
	out := map[uint64]string{rootIno: "."}
	queue := []uint64{rootIno}
	for len(queue) > 0 {
		d := t.inodes[queue[0]]
		queue = queue[1:]
		prefix := out[d.ino] + "/"
		if d.ino == rootIno {
			prefix = ""
		}
		for _, name := range slices.Sorted(maps.Keys(d.dir.cur)) {
			ino := d.dir.cur[name]
			if _, seen := out[ino]; seen {
				continue
			}
			out[ino] = prefix + name
			if t.inodes[ino].isDir() {
				queue = append(queue, ino)
			}
		}
	}
	return out
}

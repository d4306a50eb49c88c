package powerfs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// cacheTimeout is how long the kernel may cache entries (negative ones
// too) and attributes. Only this mount changes the tree, and a power cut
// remounts, so the caches never go stale.
const cacheTimeout = time.Hour

// Fallocate modes (fallocate(2)).
const (
	fallocKeepSize  = 0x01 // FALLOC_FL_KEEP_SIZE
	fallocPunchHole = 0x02 // FALLOC_FL_PUNCH_HOLE
	fallocZeroRange = 0x10 // FALLOC_FL_ZERO_RANGE
)

// rawFS serves one mount generation of an FS. Every request takes the FS
// mutex and fails with EIO once the generation is over (after a power cut
// began), so a late request never touches the state after the cut.
type rawFS struct {
	fuse.RawFileSystem
	fs    *FS
	epoch uint64
}

// lock locks the FS and reports whether this generation still serves.
func (r *rawFS) lock() (*tree, bool) {
	r.fs.mu.Lock()
	if r.fs.epoch != r.epoch {
		return nil, false
	}
	return r.fs.t, true
}

func (r *rawFS) unlock() { r.fs.mu.Unlock() }

func (r *rawFS) String() string { return "powerfs" }

func status(e syscall.Errno) fuse.Status {
	if e == 0 {
		return fuse.OK
	}
	return fuse.Status(e)
}

func timespec(t time.Time) (uint64, uint32) {
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

// fill sets a's fields from n.
func (t *tree) fill(n *inode, a *fuse.Attr) {
	a.Ino = n.ino
	a.Mode = n.mode
	a.Nlink = uint32(n.nlink)
	a.Owner = fuse.Owner{Uid: n.uid, Gid: n.gid}
	a.Rdev = n.rdev
	a.Blksize = pageSize
	switch {
	case n.file != nil:
		a.Size = uint64(n.file.cur.size)
		a.Blocks = (a.Size + 511) / 512
	case n.dir != nil:
		a.Size = pageSize
		a.Blocks = pageSize / 512
		a.Nlink = uint32(t.dirLinks(n))
	default:
		a.Size = uint64(len(n.target))
	}
	a.Atime, a.Atimensec = timespec(n.atime)
	a.Mtime, a.Mtimensec = timespec(n.mtime)
	a.Ctime, a.Ctimensec = timespec(n.ctime)
}

// entryOut fills out for n and counts the kernel's new reference.
func (t *tree) entryOut(n *inode, out *fuse.EntryOut) {
	n.lookups++
	out.NodeId = n.ino
	out.SetEntryTimeout(cacheTimeout)
	out.SetAttrTimeout(cacheTimeout)
	t.fill(n, &out.Attr)
}

func (r *rawFS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.lookup(h.NodeId, name)
	if e == syscall.ENOENT {
		if _, de := t.getDir(h.NodeId); de == 0 {
			// A negative entry the kernel may cache (NodeId 0).
			out.NodeId = 0
			out.SetEntryTimeout(cacheTimeout)
			return fuse.OK
		}
	}
	if e != 0 {
		return status(e)
	}
	t.entryOut(n, out)
	return fuse.OK
}

func (r *rawFS) Forget(nodeid, nlookup uint64) {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return
	}
	if n := t.inodes[nodeid]; n != nil && nodeid != rootIno {
		n.lookups -= min(n.lookups, nlookup)
		t.maybeFree(n)
	}
}

func (r *rawFS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.get(in.NodeId)
	if e != 0 {
		return status(e)
	}
	t.fill(n, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

func (r *rawFS) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.get(in.NodeId)
	if e != 0 {
		return status(e)
	}
	now := t.now()
	if in.Valid&fuse.FATTR_SIZE != 0 {
		if n.file == nil {
			if n.dir != nil {
				return fuse.Status(syscall.EISDIR)
			}
			return fuse.EINVAL
		}
		if in.Size > 1<<46 {
			return fuse.Status(syscall.EFBIG)
		}
		t.stats.Truncates++
		n.file.setSize(int64(in.Size))
		n.file.last = nil
		n.mtime = now
	}
	if in.Valid&fuse.FATTR_MODE != 0 {
		n.mode = n.mode&syscall.S_IFMT | in.Mode&0o7777
	}
	if in.Valid&fuse.FATTR_UID != 0 {
		n.uid = in.Uid
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		n.gid = in.Gid
	}
	switch {
	case in.Valid&fuse.FATTR_ATIME_NOW != 0:
		n.atime = now
	case in.Valid&fuse.FATTR_ATIME != 0:
		n.atime = time.Unix(int64(in.Atime), int64(in.Atimensec))
	}
	switch {
	case in.Valid&fuse.FATTR_MTIME_NOW != 0:
		n.mtime = now
	case in.Valid&fuse.FATTR_MTIME != 0:
		n.mtime = time.Unix(int64(in.Mtime), int64(in.Mtimensec))
	}
	n.ctime = now
	t.fill(n, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

// create is Mknod, Mkdir, Symlink and Create.
func (r *rawFS) create(h *fuse.InHeader, name string, mode, rdev uint32, target string, out *fuse.EntryOut) (*inode, fuse.Status) {
	t, ok := r.lock()
	if !ok {
		return nil, fuse.EIO
	}
	n, e := t.newNode(h.NodeId, name, mode, h.Uid, h.Gid, rdev, target)
	if e != 0 {
		return nil, status(e)
	}
	t.stats.Creates++
	t.entryOut(n, out)
	return n, fuse.OK
}

func (r *rawFS) Mknod(_ <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	defer r.unlock()
	_, st := r.create(&in.InHeader, name, in.Mode, in.Rdev, "", out)
	return st
}

func (r *rawFS) Mkdir(_ <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	defer r.unlock()
	_, st := r.create(&in.InHeader, name, syscall.S_IFDIR|in.Mode&0o7777, 0, "", out)
	return st
}

func (r *rawFS) Symlink(_ <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	defer r.unlock()
	_, st := r.create(h, name, syscall.S_IFLNK|0o777, 0, target, out)
	return st
}

func (r *rawFS) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return nil, fuse.EIO
	}
	n, e := t.get(h.NodeId)
	if e != 0 {
		return nil, status(e)
	}
	if n.mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, fuse.EINVAL
	}
	return []byte(n.target), fuse.OK
}

func (r *rawFS) Create(_ <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	defer r.unlock()
	n, st := r.create(&in.InHeader, name, syscall.S_IFREG|in.Mode&0o7777, 0, "", &out.EntryOut)
	if !st.Ok() {
		return st
	}
	n.opens++
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

func (r *rawFS) Unlink(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	t.stats.Removes++
	return status(t.remove(h.NodeId, name, false))
}

func (r *rawFS) Rmdir(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	t.stats.Removes++
	return status(t.remove(h.NodeId, name, true))
}

func (r *rawFS) Rename(_ <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	t.stats.Renames++
	return status(t.rename(in.NodeId, oldName, in.Newdir, newName, in.Flags))
}

func (r *rawFS) Link(_ <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.link(in.Oldnodeid, in.NodeId, name)
	if e != 0 {
		return status(e)
	}
	t.stats.Links++
	t.entryOut(n, out)
	return fuse.OK
}

func (r *rawFS) Access(_ <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	_, e := t.get(in.NodeId)
	return status(e)
}

func (r *rawFS) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.get(in.NodeId)
	if e != 0 {
		return status(e)
	}
	if n.dir != nil {
		return fuse.Status(syscall.EISDIR)
	}
	n.opens++
	// Only this mount changes the file: what the kernel cached is right.
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

func (r *rawFS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return nil, fuse.EIO
	}
	n, e := t.getFile(in.NodeId)
	if e != 0 {
		return nil, status(e)
	}
	t.stats.ReadRequests++
	k := n.file.read(int64(in.Offset), buf[:min(len(buf), int(in.Size))])
	return fuse.ReadResultData(buf[:k]), fuse.OK
}

func (r *rawFS) Write(_ <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return 0, fuse.EIO
	}
	n, e := t.getFile(in.NodeId)
	if e != 0 {
		return 0, status(e)
	}
	if in.Offset+uint64(len(data)) > 1<<46 {
		return 0, fuse.Status(syscall.EFBIG)
	}
	t.stats.Writes++
	t.stats.WriteBytes += int64(len(data))
	n.file.write(int64(in.Offset), data)
	n.mtime = t.now()
	return uint32(len(data)), fuse.OK
}

func (r *rawFS) Fallocate(_ <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.getFile(in.NodeId)
	if e != 0 {
		return status(e)
	}
	t.stats.Fallocates++
	off, end := int64(in.Offset), int64(in.Offset+in.Length)
	keep := in.Mode&fallocKeepSize != 0
	switch in.Mode &^ fallocKeepSize {
	case 0:
		// Allocation: our holes need none.
	case fallocPunchHole:
		if !keep {
			return fuse.EINVAL
		}
		n.file.zero(off, min(end, n.file.cur.size))
	case fallocZeroRange:
		n.file.zero(off, min(end, n.file.cur.size))
	default:
		return fuse.Status(syscall.EOPNOTSUPP)
	}
	if !keep && end > n.file.cur.size {
		n.file.setSize(end)
	}
	n.mtime = t.now()
	return fuse.OK
}

func (r *rawFS) Flush(_ <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.OK }

func (r *rawFS) Release(_ <-chan struct{}, in *fuse.ReleaseIn) {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return
	}
	if n := t.inodes[in.NodeId]; n != nil {
		n.opens = max(n.opens-1, 0)
		t.maybeFree(n)
	}
}

func (r *rawFS) Fsync(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	n, e := t.get(in.NodeId)
	if e != 0 {
		return status(e)
	}
	switch {
	case n.dir != nil:
		t.stats.DirFsyncs++
	case in.FsyncFlags&1 != 0:
		t.stats.Fdatasyncs++
	default:
		t.stats.Fsyncs++
	}
	t.sync(n)
	return fuse.OK
}

func (r *rawFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return r.Fsync(cancel, in)
}

func (r *rawFS) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	d, e := t.getDir(in.NodeId)
	if e != 0 {
		return status(e)
	}
	// The listing is taken now: a directory changed while it is read
	// lists each entry at most once.
	parent := d.ino // ".." is not tracked; the kernel answers lookups of it
	list := append([]entry{{name: ".", ino: d.ino, mode: d.mode}, {name: "..", ino: parent, mode: syscall.S_IFDIR}}, t.list(d)...)
	r.fs.nextFh++
	out.Fh = r.fs.nextFh
	r.fs.dirHdls[out.Fh] = list
	return fuse.OK
}

func (r *rawFS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	_, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	list, found := r.fs.dirHdls[in.Fh]
	if !found {
		return fuse.EBADF
	}
	for i := int(in.Offset); i < len(list); i++ {
		e := list[i]
		if !out.AddDirEntry(fuse.DirEntry{Name: e.name, Ino: e.ino, Mode: e.mode, Off: uint64(i + 1)}) {
			break
		}
	}
	return fuse.OK
}

func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.fs.mu.Lock()
	defer r.fs.mu.Unlock()
	delete(r.fs.dirHdls, in.Fh)
}

func (r *rawFS) StatFs(_ <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	t, ok := r.lock()
	defer r.unlock()
	if !ok {
		return fuse.EIO
	}
	const blocks = 1 << 30 // 4 TiB of 4 KiB blocks
	*out = fuse.StatfsOut{Blocks: blocks, Bfree: blocks, Bavail: blocks, Files: 1 << 30, Ffree: 1<<30 - uint64(len(t.inodes)), Bsize: pageSize, Frsize: pageSize, NameLen: 255}
	return fuse.OK
}

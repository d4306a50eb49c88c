package store

// The delivery journal.
//
// Deliveries of small bodies (those kept inline, see InlineMax) to many
// accounts would each cost one fsync of one account's WAL, since every
// account has its own index. The journal makes them cost one shared fsync
// instead: a delivery is appended to DATA/journal/<first seq>.log, one
// record per account, and every delivery waiting at that moment shares one
// write and one fsync (a group commit across accounts). Only then are the
// records handed to the accounts' committers, in journal order, and the
// caller learns of success (SMTP says 250): the message is on disk in the
// journal. The committers insert the records within journalGather with
// synchronous=NORMAL: written to the account's WAL but not fsynced. Every
// reader of an account waits for its pending records first
// (Account.settle), so an acknowledged message is always listed. The
// package doc (store.go, "Durability") is the whole story.
//
// Each account records the highest journal sequence number it applied, in
// the transaction that applies it (counters.journal). Records reach an
// account's committer in sequence order, so "applied" is exactly "at or
// below the mark". After a crash (of the machine: a killed process loses
// nothing that was written), Open replays every record above its
// account's mark, synchronously, then starts a new segment and removes the
// old ones.
//
// A segment is retired once it is full: each account it touched makes its
// index durable (a synchronous commit that always writes a frame, so its
// fsync of the WAL covers the unsynced batches before it: see
// Account.insertBatch), then the file is removed. A closing account does
// the same before its committer exits.
//
// File format: a 16-byte header ("JODMAIJ1", the first sequence number,
// big-endian), then records: a 4-byte payload length, the payload's
// CRC-32C, the payload (see appendRecord). A torn or corrupt record ends
// a segment: nothing after it was acknowledged, since each group is
// fsynced before any of it is.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
)

const (
	journalMagic  = "JODMAIJ1"
	journalHeader = 16
	// Segments are preallocated (written with zeros and fsynced), so
	// that appending a group changes no metadata and fdatasync writes the
	// data alone. The first segment of a run is small (a test server or a
	// quiet one never writes a big file); each next one doubles, up to
	// journalSegmentMax. For tests only, the environment variable
	// JODMAI_TEST_JOURNAL_SEGMENT_DIVISOR (2 to 1024) divides both (see
	// segmentBounds): the power-loss test (test/crash) uses it so that
	// segments of every size fill and retire within seconds.
	journalSegmentMin = 1 << 20
	journalSegmentMax = 64 << 20
	// journalRecordMax bounds a record when reading (a body is at most
	// InlineMax; its structure is bounded by the parser's limits).
	journalRecordMax = 64 << 20
	// journalBatchMax bounds the bytes one group commit writes.
	journalBatchMax = 8 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal is the running delivery journal of a Store.
type journal struct {
	s    *Store
	dir  string
	lock *os.File

	reqs chan *journalReq
	stop chan struct{}
	done chan struct{}

	// Owned by the loop goroutine.
	f        *os.File
	path     string
	size     int64  // bytes used
	capacity int64  // bytes preallocated
	next     uint64 // the next record's sequence number
	// segMin and segMax bound a segment's capacity (segmentBounds).
	segMin, segMax int64
	// batchFirst is the first sequence number of the group being written.
	batchFirst uint64
	touched    map[*Account]struct{}
	buf        []byte
	spare      chan spareSegment // the next segment, being preallocated

	retiring sync.WaitGroup
	mu       sync.Mutex
	failed   bool // a retirement failed: keep every older segment
}

// journalRec is one account's share of a delivery.
type journalRec struct {
	a    *Account
	msgs []newMessage
	seq  uint64
	req  *commitReq
}

// spareSegment is a preallocated file waiting to become the next segment.
type spareSegment struct {
	f        *os.File
	path     string
	capacity int64
	err      error
}

type journalReq struct {
	recs []*journalRec
	err  error
	done chan struct{}
}

// StartJournal opens the delivery journal (see journal.go) for a server:
// it takes DATA/journal/lock, replays what a crash left, and from then on
// Deliver uses the journal. Without it, every delivery commits its own
// synchronous transaction. Only one process may run the journal; Close
// stops it.
func (s *Store) StartJournal(ctx context.Context) error {
	dir := filepath.Join(s.dir, "journal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create journal dir: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	lock, err := lockJournal(ctx, dir, true)
	if err != nil {
		return err
	}
	j, err := s.replayAndRestart(ctx, dir)
	if err != nil {
		lock.Close()
		return err
	}
	j.lock = lock
	j.reqs, j.stop, j.done = make(chan *journalReq, 1024), make(chan struct{}), make(chan struct{})
	j.touched = map[*Account]struct{}{}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		j.f.Close()
		lock.Close()
		return ErrClosed
	}
	s.journal = j
	s.mu.Unlock()
	go j.loop()
	return nil
}

// recoverJournal replays a journal no process runs (a server that crashed
// and has not restarted), so a store opened by an admin command sees every
// acknowledged message. If a server holds the journal, it is left alone.
func (s *Store) recoverJournal(ctx context.Context) error {
	dir := filepath.Join(s.dir, "journal")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	lock, err := lockJournal(ctx, dir, false)
	if errors.Is(err, errJournalBusy) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	segs, err := journalSegments(dir)
	if err != nil || len(segs) == 0 {
		return err
	}
	j, err := s.replayAndRestart(ctx, dir)
	if err != nil {
		return err
	}
	return j.f.Close()
}

// replayAndRestart replays the journal in dir, starts a new segment after
// the last record and removes the replayed ones. The caller holds the
// journal lock.
func (s *Store) replayAndRestart(ctx context.Context, dir string) (*journal, error) {
	next, err := s.replayJournal(ctx, dir)
	if err != nil {
		return nil, err
	}
	j := &journal{s: s, dir: dir, next: next}
	j.segMin, j.segMax = segmentBounds()
	if err := j.open(j.next); err != nil {
		return nil, err
	}
	if err := j.removeOlder(); err != nil {
		j.f.Close()
		return nil, err
	}
	return j, nil
}

var errJournalBusy = errors.New("the delivery journal is in use by another process")

// lockJournal takes DATA/journal/lock; wait: retry for a while (an admin
// command may be replaying it).
func lockJournal(ctx context.Context, dir string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal lock: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock journal: %w", err)
		}
		if !wait || time.Now().After(deadline) {
			f.Close()
			return nil, errJournalBusy
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type segment struct {
	path  string
	first uint64
}

func journalSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read journal dir: %w", err)
	}
	var segs []segment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, segment{filepath.Join(dir, e.Name()), first})
	}
	sort.Slice(segs, func(i, k int) bool { return segs[i].first < segs[k].first })
	return segs, nil
}

// replayJournal applies every record of every segment that its account
// does not have yet, durably, and returns the next sequence number to use.
func (s *Store) replayJournal(ctx context.Context, dir string) (uint64, error) {
	segs, err := journalSegments(dir)
	if err != nil {
		return 0, err
	}
	var last uint64
	marks := map[int64]uint64{}
	var replayed, skipped int
	for _, sg := range segs {
		last = max(last, sg.first-1)
		err := readSegment(sg.path, func(r record) error {
			last = max(last, r.seq)
			if _, err := os.Stat(s.accountDir(r.account)); errors.Is(err, os.ErrNotExist) {
				skipped++ // the account was removed since
				return nil
			}
			a, err := s.Account(ctx, r.account)
			if err != nil {
				return err
			}
			defer a.Release()
			mark, ok := marks[r.account]
			if !ok {
				if mark, err = a.journalMark(ctx); err != nil {
					return err
				}
			}
			marks[r.account] = mark
			if r.seq <= mark {
				return nil
			}
			// A synchronous commit that records the sequence number.
			req := newCommitReq(kindReplay, r.msgs, r.seq)
			if err := a.enqueue(ctx, req); err != nil {
				return err
			}
			if _, err := a.wait(req); err != nil {
				return fmt.Errorf("replay journal record %d into account %d: %w", r.seq, r.account, err)
			}
			marks[r.account] = r.seq
			replayed++
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("replay journal %s: %w", sg.path, err)
		}
	}
	// What the accounts already had may be in their WAL but not on disk
	// (a process that crashed wrote it without fsync): make it durable
	// before the segments go.
	for id := range marks {
		if err := s.syncAccount(ctx, id); err != nil {
			return 0, fmt.Errorf("sync account %d after the journal replay: %w", id, err)
		}
	}
	s.replayed += replayed
	if replayed > 0 || skipped > 0 {
		s.log.Warn("replayed the delivery journal after an unclean stop", "messages", replayed, "removed_accounts", skipped, "segments", len(segs))
	}
	// Above anything this data directory may have seen, even one restored
	// from a backup of a later state of another journal.
	return max(last+1, uint64(time.Now().UnixNano())), nil
}

// syncAccount makes account id's index durable, even what another process
// committed without fsync before it crashed.
func (s *Store) syncAccount(ctx context.Context, id int64) error {
	a, err := s.Account(ctx, id)
	if err != nil {
		return err
	}
	defer a.Release()
	req := newCommitReq(kindForceSync, nil, 0)
	if err := a.enqueue(ctx, req); err != nil {
		return err
	}
	_, err = a.wait(req)
	return err
}

// record is one decoded journal record.
type record struct {
	seq     uint64
	account int64
	msgs    []newMessage
}

// readSegment calls fn for each valid record of the segment at path, in
// order, up to the first torn or corrupt one.
func readSegment(path string, fn func(record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [journalHeader]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil // created but never written: nothing in it
	}
	if string(hdr[:8]) != journalMagic {
		return fmt.Errorf("not a journal segment (bad magic)")
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	first := binary.BigEndian.Uint64(hdr[8:])
	prev := uint64(0)
	r := newCountReader(f)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil
		}
		n := binary.BigEndian.Uint32(h[:4])
		if n == 0 || n > journalRecordMax || int64(n) > fi.Size()-r.n {
			return nil // the end, or torn: see the file comment
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil
		}
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(h[4:]) {
			return nil // torn: see the file comment
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			return fmt.Errorf("record at %d: %w", r.n, err)
		}
		if rec.seq < first || rec.seq <= prev {
			return fmt.Errorf("record at %d: sequence number %d out of order", r.n, rec.seq)
		}
		prev = rec.seq
		if err := fn(rec); err != nil {
			return err
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func newCountReader(f *os.File) *countReader {
	return &countReader{r: bufio.NewReaderSize(f, 256<<10), n: journalHeader}
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// preallocate creates a zero-filled, fsynced file of size bytes.
func preallocate(dir string, size int64) spareSegment {
	f, err := os.CreateTemp(dir, "spare-*.tmp")
	if err != nil {
		return spareSegment{err: fmt.Errorf("create journal segment: %w", err)}
	}
	zeros := make([]byte, 256<<10)
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.Write(zeros[:min(int64(len(zeros)), size-off)])
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return spareSegment{err: fmt.Errorf("preallocate journal segment: %w", err)}
	}
	return spareSegment{f: f, path: f.Name(), capacity: size}
}

// open makes the segment whose first record will be number first, from
// the spare file when one is ready, and makes it durable.
func (j *journal) open(first uint64) error {
	var sp spareSegment
	if j.spare != nil {
		sp = <-j.spare
		j.spare = nil
	} else {
		sp = preallocate(j.dir, j.nextCapacity())
	}
	if sp.err != nil {
		return sp.err
	}
	fail := func(err error) error {
		sp.f.Close()
		os.Remove(sp.path)
		return err
	}
	var hdr [journalHeader]byte
	copy(hdr[:], journalMagic)
	binary.BigEndian.PutUint64(hdr[8:], first)
	if _, err := sp.f.WriteAt(hdr[:], 0); err != nil {
		return fail(fmt.Errorf("write journal segment: %w", err))
	}
	if err := fdatasync(sp.f); err != nil {
		return fail(fmt.Errorf("sync journal segment: %w", err))
	}
	path := filepath.Join(j.dir, fmt.Sprintf("%020d.log", first))
	if err := os.Rename(sp.path, path); err != nil {
		return fail(fmt.Errorf("name journal segment: %w", err))
	}
	if err := syncDir(j.dir); err != nil {
		sp.f.Close()
		return err
	}
	j.f, j.path, j.size, j.capacity = sp.f, path, journalHeader, sp.capacity
	return nil
}

// nextCapacity is the size of the next segment: double the current one.
func (j *journal) nextCapacity() int64 {
	return min(max(2*j.capacity, j.segMin), j.segMax)
}

// segmentBounds returns journalSegmentMin and journalSegmentMax, both
// divided by $JODMAI_TEST_JOURNAL_SEGMENT_DIVISOR when a test set it.
func segmentBounds() (lo, hi int64) {
	lo, hi = journalSegmentMin, journalSegmentMax
	if d, err := strconv.ParseInt(os.Getenv("JODMAI_TEST_JOURNAL_SEGMENT_DIVISOR"), 10, 64); err == nil && d >= 2 && d <= 1024 {
		lo, hi = lo/d, hi/d
	}
	return lo, hi
}

// prepareSpare starts preallocating the next segment once the current one
// is half full, so that a rotation does not wait for it.
func (j *journal) prepareSpare() {
	if j.spare != nil || j.size < j.capacity/2 {
		return
	}
	ch := make(chan spareSegment, 1)
	j.spare = ch
	dir, size := j.dir, j.nextCapacity()
	go func() { ch <- preallocate(dir, size) }()
}

// dropSpare removes a spare segment that will not be used.
func (j *journal) dropSpare() {
	if j.spare == nil {
		return
	}
	sp := <-j.spare
	j.spare = nil
	if sp.err == nil {
		sp.f.Close()
		os.Remove(sp.path)
	}
}

// removeOlder removes every segment before the current one (after a
// replay made them redundant).
func (j *journal) removeOlder() error {
	segs, err := journalSegments(j.dir)
	if err != nil {
		return err
	}
	// Not while a backup holds the journal (HoldJournal): the segments
	// stay, and the next start replays them again (a no-op) and removes
	// them.
	hold, err := flockFile(filepath.Join(j.dir, "retire.lock"), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil
	}
	if err != nil {
		return err
	}
	defer hold.Close()
	for _, sg := range segs {
		if sg.path != j.path {
			if err := os.Remove(sg.path); err != nil {
				return fmt.Errorf("remove replayed journal segment: %w", err)
			}
		}
	}
	spares, _ := filepath.Glob(filepath.Join(j.dir, "spare-*.tmp"))
	for _, p := range spares {
		os.Remove(p) // a crash's leftover; never held a record
	}
	return nil
}

// append journals recs (one delivery) and hands them to their accounts'
// committers. It returns once they are durable in the journal and queued;
// wait on each rec.req for the insert.
func (j *journal) append(ctx context.Context, recs []*journalRec) error {
	req := &journalReq{recs: recs, done: make(chan struct{})}
	select {
	case j.reqs <- req:
	case <-j.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued it is carried out: wait for the outcome.
	<-req.done
	return req.err
}

func (j *journal) loop() {
	defer close(j.done)
	for {
		var first *journalReq
		select {
		case first = <-j.reqs:
		case <-j.stop:
			for {
				select {
				case r := <-j.reqs:
					r.err = ErrClosed
					close(r.done)
				default:
					return
				}
			}
		}
		batch := []*journalReq{first}
		j.buf = j.buf[:0]
		j.batchFirst = j.next
		j.encode(first)
	drain:
		for len(j.buf) < journalBatchMax {
			select {
			case r := <-j.reqs:
				batch = append(batch, r)
				j.encode(r)
			default:
				break drain
			}
		}
		err := j.write()
		for _, r := range batch {
			if err != nil {
				r.err = err
				close(r.done)
				continue
			}
			for _, rec := range r.recs {
				j.touched[rec.a] = struct{}{}
				rec.req = newCommitReq(kindJournaled, rec.msgs, rec.seq)
				// In journal order, so that each account applies its
				// records in sequence order. The account applies them
				// soon (see journalGather); a reader settles first.
				rec.a.pending.Add(1)
				if e := rec.a.enqueue(context.Background(), rec.req); e != nil {
					rec.a.pending.Add(-1)
					r.err = errors.Join(r.err, e)
					rec.req = nil
				}
			}
			close(r.done)
		}
		if err != nil {
			// The segment's state on disk is unknown: continue in a new one.
			if rerr := j.rotate(j.next); rerr != nil {
				j.s.log.Error("rotate the delivery journal", "err", rerr)
			}
			continue
		}
		j.prepareSpare()
	}
}

// encode appends r's records to the batch buffer, numbering them.
func (j *journal) encode(r *journalReq) {
	for _, rec := range r.recs {
		rec.seq = j.next
		j.next++
		j.buf = appendRecord(j.buf, rec.seq, rec.a.ID, rec.msgs)
	}
}

func (j *journal) write() error {
	if j.f != nil && j.size+int64(len(j.buf)) > j.capacity && j.size > journalHeader {
		if err := j.rotate(j.batchFirst); err != nil {
			return fmt.Errorf("rotate delivery journal: %w", err)
		}
	}
	if j.f == nil {
		if err := j.rotate(j.batchFirst); err != nil {
			return fmt.Errorf("delivery journal: no open segment: %w", err)
		}
	}
	// A group larger than a whole segment extends it (then fdatasync
	// writes the new size too).
	if _, err := j.f.WriteAt(j.buf, j.size); err != nil {
		return fmt.Errorf("write delivery journal: %w", err)
	}
	j.size += int64(len(j.buf))
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("sync delivery journal: %w", err)
	}
	return nil
}

// rotate starts a new segment and retires the old one in the background.
// After a failed write or sync the old segment is kept as it is (a replay
// will sort it out): its state on disk is unknown.
func (j *journal) rotate(first uint64) error {
	oldPath, oldFile, touched := j.path, j.f, j.touched
	j.f = nil
	j.touched = map[*Account]struct{}{}
	if oldFile != nil {
		oldFile.Close()
	}
	if err := j.open(first); err != nil {
		return err
	}
	j.retiring.Add(1)
	go func() {
		defer j.retiring.Done()
		j.retire(oldPath, touched)
	}()
	return nil
}

// retire makes every account that applied records of the segment at path
// durable, then removes the segment.
func (j *journal) retire(path string, touched map[*Account]struct{}) {
	for a := range touched {
		req := newCommitReq(kindSync, nil, 0)
		err := a.enqueue(context.Background(), req)
		if err == nil {
			_, err = a.wait(req)
		}
		if errors.Is(err, ErrClosed) {
			// The committer has exited, after syncing (or failing to).
			<-a.exited
			err = a.exitSyncErr
			if err == nil && a.journalFailed {
				err = errors.New("journaled deliveries were not applied")
			}
		}
		if err != nil {
			j.mu.Lock()
			j.failed = true
			j.mu.Unlock()
			j.s.log.Error("journal segment kept: an account's index could not be made durable", "segment", path, "account", a.ID, "err", err)
			return
		}
	}
	j.mu.Lock()
	failed := j.failed
	j.mu.Unlock()
	if failed {
		return // older segments are kept: keep this one too, for order
	}
	// A backup in progress holds the retire lock shared: it needs every
	// record that may not be in its snapshots (see HoldJournal).
	hold, err := flockFile(filepath.Join(j.dir, "retire.lock"), syscall.LOCK_EX)
	if err != nil {
		j.s.log.Error("journal segment kept", "segment", path, "err", err)
		return
	}
	defer hold.Close()
	if err := os.Remove(path); err != nil {
		j.s.log.Error("remove retired journal segment", "segment", path, "err", err)
	}
}

// keepSegments stops the journal from retiring any segment: an account
// closed without making its journaled deliveries durable needs them at the
// next start.
func (j *journal) keepSegments() {
	j.mu.Lock()
	j.failed = true
	j.mu.Unlock()
}

// flockFile opens (creating) path and takes a flock on it; closing the
// file releases it.
func flockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// HoldJournal keeps the delivery journal of dataDir from removing any
// segment until release is called, so that a backup that snapshots the
// accounts' indexes and then copies the segments (JournalFiles) has every
// acknowledged delivery in one or the other: a delivery not yet applied
// when an index was snapshotted is still in a segment afterwards. A
// restore replays the segments (Open does).
func HoldJournal(dataDir string) (release func(), err error) {
	dir := filepath.Join(dataDir, "journal")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create journal dir: %w", err)
	}
	f, err := flockFile(filepath.Join(dir, "retire.lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// JournalFiles lists the delivery journal's segments of dataDir, as
// paths relative to it, oldest first.
func JournalFiles(dataDir string) ([]string, error) {
	dir := filepath.Join(dataDir, "journal")
	segs, err := journalSegments(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, len(segs))
	for i, sg := range segs {
		out[i] = filepath.Join("journal", filepath.Base(sg.path))
	}
	return out, nil
}

// close stops the loop; pending appends fail with ErrClosed. The Store
// then closes its accounts, which sync what they applied, and finish
// removes the segments.
func (j *journal) close() {
	close(j.stop)
	<-j.done
	j.retiring.Wait()
	j.dropSpare()
}

// finish is called after every account closed: if all of them made their
// journaled deliveries durable, no segment is needed any more except an
// empty one that keeps the sequence number going.
func (j *journal) finish(accts []*Account) {
	defer j.lock.Close()
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	j.mu.Lock()
	failed := j.failed
	j.mu.Unlock()
	for _, a := range accts {
		if a.exitSyncErr != nil || a.journalFailed {
			failed = true
		}
	}
	if failed {
		return
	}
	j.capacity = 0 // an empty, small segment keeps the sequence going
	if err := j.open(j.next); err != nil {
		j.s.log.Error("journal at close", "err", err)
		return
	}
	j.f.Close()
	j.f = nil
	if err := j.removeOlder(); err != nil {
		j.s.log.Error("journal at close", "err", err)
	}
}

// appendRecord appends one record: length, CRC-32C, payload. The payload
// is the sequence number, the account id, then the messages: count, and
// per message its mailbox, flags, date (Unix seconds, zone offset),
// EMAILID, structure (empty: the committer parses the body), and body (the
// first message's; the others share it).
func appendRecord(b []byte, seq uint64, account int64, msgs []newMessage) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.AppendVarint(b, account)
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	for _, m := range msgs {
		_, tz := m.date.Zone()
		b = appendBytes(b, []byte(m.mailbox))
		b = append(b, byte(m.flags))
		b = binary.AppendVarint(b, m.date.Unix())
		b = binary.AppendVarint(b, int64(tz))
		b = appendBytes(b, []byte(m.emailID))
		b = appendBytes(b, m.meta)
		b = appendBytes(b, m.inline)
	}
	payload := b[start+8:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadRecord = errors.New("malformed journal record")

// decodeRecord decodes a payload written by appendRecord.
func decodeRecord(p []byte) (record, error) {
	var r record
	if len(p) < 8 {
		return r, errBadRecord
	}
	r.seq = binary.BigEndian.Uint64(p)
	p = p[8:]
	var ok bool
	var n uint64
	if r.account, p, ok = varint(p); !ok || r.account <= 0 {
		return r, errBadRecord
	}
	if n, p, ok = uvarint(p); !ok || n == 0 || n > uint64(len(p)) {
		return r, errBadRecord
	}
	r.msgs = make([]newMessage, n)
	for i := range r.msgs {
		m := &r.msgs[i]
		var mailbox, emailID, meta, body []byte
		var unix, tz int64
		if mailbox, p, ok = bytesField(p); !ok || len(p) < 1 {
			return r, errBadRecord
		}
		m.flags = Flags(p[0])
		p = p[1:]
		if unix, p, ok = varint(p); !ok {
			return r, errBadRecord
		}
		if tz, p, ok = varint(p); !ok || tz < -86400 || tz > 86400 {
			return r, errBadRecord
		}
		if emailID, p, ok = bytesField(p); !ok {
			return r, errBadRecord
		}
		if meta, p, ok = bytesField(p); !ok {
			return r, errBadRecord
		}
		if body, p, ok = bytesField(p); !ok {
			return r, errBadRecord
		}
		m.mailbox = string(mailbox)
		m.fallbackInbox = true
		m.date = time.Unix(unix, 0).In(time.FixedZone("", int(tz)))
		m.emailID = string(emailID)
		m.meta = meta
		if i == 0 {
			if body == nil {
				body = []byte{}
			}
			m.inline = body
			m.size = int64(len(body))
		} else {
			m.sharesInline = true
			m.size = r.msgs[0].size
		}
	}
	if len(p) != 0 {
		return r, errBadRecord
	}
	return r, nil
}

func varint(p []byte) (int64, []byte, bool) {
	v, n := binary.Varint(p)
	if n <= 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

func uvarint(p []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, p, false
	}
	return v, p[n:], true
}

func bytesField(p []byte) ([]byte, []byte, bool) {
	n, p, ok := uvarint(p)
	if !ok || n > uint64(len(p)) {
		return nil, p, false
	}
	return p[:n:n], p[n:], true
}

// deliverJournaled is Deliver for an inline body when the journal runs:
// one record per account and one fsync shared with every delivery at that
// moment; the accounts insert them soon after, without fsync.
func (s *Store) deliverJournaled(ctx context.Context, j *journal, t *blob.Temp, order []int64, byAccount map[int64][]Target, now time.Time) error {
	// The committer inserts the body after Deliver returns, and the
	// caller may reuse t's memory then (NewBodyBuffer): a copy of its own.
	body := slices.Clone(t.Data)
	recs := make([]*journalRec, 0, len(order))
	// Each account is held until its record is queued in its committer:
	// then closing it applies the record first (Account.close).
	defer func() {
		for _, r := range recs {
			r.a.Release()
		}
	}()
	for _, id := range order {
		a, err := s.Account(ctx, id)
		if err != nil {
			return err
		}
		targets := byAccount[id]
		msgs := make([]newMessage, len(targets))
		emailID := newEmailID()
		for i, tg := range targets {
			msgs[i] = newMessage{mailbox: tg.Mailbox, fallbackInbox: true, size: t.Size, date: now, flags: tg.Flags, emailID: emailID, sharesInline: i > 0}
		}
		msgs[0].inline = body
		recs = append(recs, &journalRec{a: a, msgs: msgs})
	}
	// Durable in the journal and queued in each account, in order: the
	// delivery is done. Readers settle before they read (Account.settle).
	return j.append(ctx, recs)
}

package store

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// newJournaledStore opens a store in a new directory with the delivery
// journal running, as the server does.
func newJournaledStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return openJournaled(t, dir), dir
}

func openJournaled(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StartJournal(ctx); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// deliverMem delivers body from a reused memory buffer, as smtpd does,
// and scribbles over the buffer afterwards: the store must not keep it.
func deliverMem(t testing.TB, s *Store, buf []byte, body []byte, targets ...Target) {
	t.Helper()
	w := s.NewBodyBuffer(buf[:0])
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, tm, targets); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	tm.Remove()
	for i := range tm.Data {
		tm.Data[i] = 'X'
	}
}

// reopenKeepingSegments closes s as a crash would leave the journal (the
// segments there now stay, though a clean close removes them) and opens
// the store again, replaying them.
func reopenKeepingSegments(t testing.TB, s *Store, dir string) *Store {
	t.Helper()
	side := t.TempDir()
	kept := segmentFiles(t, dir)
	for _, p := range kept {
		copyFileT(t, p, filepath.Join(side, filepath.Base(p)))
	}
	s.Close()
	for _, p := range kept {
		copyFileT(t, filepath.Join(side, filepath.Base(p)), p)
	}
	return openJournaled(t, dir)
}

func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	segs, err := journalSegments(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return out
}

func subjects(t testing.TB, a *Account, mailbox string) []string {
	t.Helper()
	var out []string
	for _, m := range messages(t, a, mailbox) {
		b := readBody(t, a, m)
		i := bytes.Index(b, []byte("Subject: "))
		j := bytes.Index(b[i:], []byte("\r\n"))
		out = append(out, string(b[i+9:i+j]))
	}
	return out
}

func TestJournalRecordRoundTrip(t *testing.T) {
	date := time.Date(2026, 11, 26, 9, 30, 0, 0, time.FixedZone("", 7*3600))
	msgs := []newMessage{
		{mailbox: "INBOX", flags: FlagSeen | FlagFlagged, date: date, emailID: "Mabc", meta: []byte(`{"x":1}`), inline: []byte("body\r\n")},
		{mailbox: "Junk/ขยะ", date: date, emailID: "Mabc", meta: []byte(`{"x":1}`), sharesInline: true},
	}
	b := appendRecord([]byte("prefix"), 42, 7, msgs)
	p := b[len("prefix")+8:]
	r, err := decodeRecord(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.seq != 42 || r.account != 7 || len(r.msgs) != 2 {
		t.Fatalf("decoded seq %d account %d, %d messages", r.seq, r.account, len(r.msgs))
	}
	for i, m := range r.msgs {
		w := msgs[i]
		_, tz := m.date.Zone()
		if m.mailbox != w.mailbox || m.flags != w.flags || !m.date.Equal(date) || tz != 7*3600 || m.emailID != w.emailID || string(m.meta) != string(w.meta) || !m.fallbackInbox {
			t.Errorf("message %d: got %+v", i, m)
		}
	}
	if string(r.msgs[0].inline) != "body\r\n" || r.msgs[0].size != 6 || !r.msgs[1].sharesInline || r.msgs[1].size != 6 {
		t.Errorf("bodies: %+v", r.msgs)
	}
	// Every truncation is refused, never a panic.
	for n := 0; n < len(p); n++ {
		if _, err := decodeRecord(p[:n]); err == nil {
			t.Errorf("truncated to %d bytes: decoded", n)
		}
	}
}

// TestJournalDeliverVisible: a journaled delivery returns before its
// account applies it, yet every reader sees it at once, with its own
// bytes even though the sender's buffer was reused.
func TestJournalDeliverVisible(t *testing.T) {
	s, _ := newJournaledStore(t)
	a := account(t, s, 1)
	b := account(t, s, 2)
	buf := make([]byte, 0, 64<<10)
	for i := range 20 {
		deliverMem(t, s, buf, testBody(i), Target{AccountID: 1}, Target{AccountID: 2}, Target{AccountID: 2, Mailbox: "Archive"})
		if n := len(messages(t, a, "INBOX")); n != i+1 {
			t.Fatalf("after delivery %d: account 1 has %d messages", i, n)
		}
	}
	for _, acc := range []*Account{a, b} {
		got := subjects(t, acc, "INBOX")
		for i, s := range got {
			if s != fmt.Sprintf("test %d", i) {
				t.Fatalf("account %d message %d: subject %q", acc.ID, i, s)
			}
		}
	}
	if got := subjects(t, b, "Archive"); len(got) != 20 || got[19] != "test 19" {
		t.Fatalf("Archive: %q", got)
	}
	if a.pending.Load() != 0 || b.pending.Load() != 0 {
		t.Fatalf("pending after reads: %d %d", a.pending.Load(), b.pending.Load())
	}
	consistent(t, s)
}

// TestJournalConcurrent: concurrent deliveries to a few accounts keep each
// account's UIDs dense and every body right.
func TestJournalConcurrent(t *testing.T) {
	s, dir := newJournaledStore(t)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 8<<10)
			for i := range each {
				deliverMem(t, s, buf, testBody(w*1000+i), Target{AccountID: int64(1 + w%3)})
			}
		}()
	}
	wg.Wait()
	total := 0
	for id := int64(1); id <= 3; id++ {
		a := account(t, s, id)
		ms := messages(t, a, "INBOX")
		for i, m := range ms {
			if m.UID != uint32(i+1) {
				t.Fatalf("account %d: UID %d at %d", id, m.UID, i)
			}
		}
		seen := map[string]bool{}
		for _, sub := range subjects(t, a, "INBOX") {
			if seen[sub] {
				t.Fatalf("account %d: %q twice", id, sub)
			}
			seen[sub] = true
		}
		total += len(ms)
	}
	if total != workers*each {
		t.Fatalf("%d messages, want %d", total, workers*each)
	}
	s.Close()
	// A clean close leaves one empty segment and nothing to replay.
	if segs := segmentFiles(t, dir); len(segs) != 1 {
		t.Fatalf("segments after close: %v", segs)
	}
	s2 := openJournaled(t, dir)
	n := 0
	for id := int64(1); id <= 3; id++ {
		n += len(messages(t, account(t, s2, id), "INBOX"))
	}
	if n != workers*each {
		t.Fatalf("after reopen: %d messages", n)
	}
}

// snapshotDB copies an account's index as a reader sees it now.
func snapshotDB(t testing.TB, src, dst string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, dst); err != nil {
		t.Fatal(err)
	}
}

func copyFileT(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJournalReplay: the machine crashed after the journal acknowledged
// deliveries but before the account's index had them on disk. The index
// is put back to an earlier state (what a power loss leaves of commits
// without fsync) and the journal to what it held: Open replays exactly the
// missing deliveries, in order, once; a torn record at the end (a group
// never acknowledged) is ignored; a record for a removed account is
// skipped without recreating it.
func TestJournalReplay(t *testing.T) {
	s, dir := newJournaledStore(t)
	a := account(t, s, 1)
	account(t, s, 2)
	buf := make([]byte, 0, 8<<10)
	deliverMem(t, s, buf, testBody(0), Target{AccountID: 1})
	deliverMem(t, s, buf, testBody(1), Target{AccountID: 1})
	messages(t, a, "INBOX") // settle: both applied
	side := t.TempDir()
	snapshotDB(t, filepath.Join(dir, "accounts", "1", "index.db"), filepath.Join(side, "index.db"))
	for i := 2; i < 6; i++ {
		deliverMem(t, s, buf, testBody(i), Target{AccountID: 1}, Target{AccountID: 2})
	}
	deliverMem(t, s, buf, testBody(6), Target{AccountID: 2})
	segs := segmentFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	seg := filepath.Join(side, filepath.Base(segs[0]))
	copyFileT(t, segs[0], seg)
	s.Close()

	// The crash: account 1's index as of the snapshot, the journal as it
	// was, plus half a record; account 2 was removed meanwhile.
	idx := filepath.Join(dir, "accounts", "1", "index.db")
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(idx + suffix)
	}
	copyFileT(t, filepath.Join(side, "index.db"), idx)
	for _, p := range segmentFiles(t, dir) {
		os.Remove(p)
	}
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	used := bytes.TrimRight(b, "\x00")
	torn := appendRecord(nil, 1<<62, 1, []newMessage{{mailbox: "INBOX", date: time.Now(), inline: testBody(99)}})
	b = append(used, torn[:len(torn)/2]...)
	if err := os.WriteFile(filepath.Join(dir, "journal", filepath.Base(seg)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "accounts", "2")); err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // the second open finds nothing to do
		s2 := openJournaled(t, dir)
		got := subjects(t, account(t, s2, 1), "INBOX")
		want := []string{"test 0", "test 1", "test 2", "test 3", "test 4", "test 5"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("round %d: after replay %q, want %q", round, got, want)
		}
		for i, m := range messages(t, account(t, s2, 1), "INBOX") {
			if m.UID != uint32(i+1) {
				t.Fatalf("round %d: UID %d at %d", round, m.UID, i)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "accounts", "2")); err == nil {
			t.Fatalf("round %d: the removed account was recreated", round)
		}
		consistent(t, s2)
		s2.Close()
	}
}

// TestJournalRotation: a full segment is retired once its accounts are
// durable; the journal stays small and nothing is lost.
func TestJournalRotation(t *testing.T) {
	s, dir := newJournaledStore(t)
	buf := make([]byte, 0, 16<<10)
	body := bytes.Repeat([]byte("x"), 8<<10)
	const n = 400 // 3.2 MiB: the 1 MiB first segment, then a 2 MiB one, then a third
	for i := range n {
		msg := append(testBody(i), body...)
		deliverMem(t, s, buf, msg, Target{AccountID: int64(1 + i%2)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segmentFiles(t, dir)) > 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if segs := segmentFiles(t, dir); len(segs) > 2 {
		t.Fatalf("retired segments not removed: %v", segs)
	}
	for id := int64(1); id <= 2; id++ {
		if got := len(messages(t, account(t, s, id), "INBOX")); got != n/2 {
			t.Fatalf("account %d: %d messages", id, got)
		}
	}
	// A crash now would leave these segments: they must replay (as
	// no-ops: the accounts have every record) without complaint.
	s2 := reopenKeepingSegments(t, s, dir)
	for id := int64(1); id <= 2; id++ {
		got := subjects(t, account(t, s2, id), "INBOX")
		if len(got) != n/2 || got[len(got)-1] != fmt.Sprintf("test %d", n-2+int(id-1)) {
			t.Fatalf("account %d after reopen: %d messages, last %q", id, len(got), got[len(got)-1])
		}
	}
}

// TestJournalBackupHold: while a backup holds the journal, a full segment
// is not removed; it goes once the hold ends.
func TestJournalBackupHold(t *testing.T) {
	s, dir := newJournaledStore(t)
	release, err := HoldJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 16<<10)
	body := bytes.Repeat([]byte("y"), 8<<10)
	for i := range 200 { // past the first segment's 1 MiB
		deliverMem(t, s, buf, append(testBody(i), body...), Target{AccountID: 1})
	}
	time.Sleep(100 * time.Millisecond)
	held, err := JournalFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(held) < 2 {
		t.Fatalf("segments while held: %v", held)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for len(segmentFiles(t, dir)) > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if segs := segmentFiles(t, dir); len(segs) != 1 {
		t.Fatalf("segments after release: %v", segs)
	}
}

// FuzzJournalSegment: any segment file reads without a panic, and a
// record that decodes encodes back to one that decodes the same.
func FuzzJournalSegment(f *testing.F) {
	date := time.Unix(1_790_000_000, 0)
	good := appendRecord(nil, 5, 1, []newMessage{{mailbox: "INBOX", date: date, emailID: "M1", meta: []byte("{}"), inline: []byte("hi\r\n")}})
	f.Add(good)
	f.Add(append(good, good[:9]...))
	f.Add([]byte{0, 0, 0, 4, 1, 2, 3, 4, 9, 9, 9, 9})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		var hdr [journalHeader]byte
		copy(hdr[:], journalMagic)
		path := filepath.Join(dir, "seg.log")
		if err := os.WriteFile(path, append(hdr[:], data...), 0o600); err != nil {
			t.Fatal(err)
		}
		readSegment(path, func(r record) error {
			if len(r.msgs) == 0 {
				t.Fatalf("record without messages")
			}
			again, err := decodeRecord(appendRecord(nil, r.seq, r.account, r.msgs)[8:])
			if err != nil {
				t.Fatalf("re-encoded record: %v", err)
			}
			if again.seq != r.seq || again.account != r.account || len(again.msgs) != len(r.msgs) ||
				!bytes.Equal(again.msgs[0].inline, r.msgs[0].inline) || again.msgs[0].mailbox != r.msgs[0].mailbox {
				t.Fatalf("round trip: %+v != %+v", again, r)
			}
			return nil
		})
	})
}

// TestViewShared: Views of a mailbox in one state share their UID list;
// any change (a delivery, a flag, an expunge) makes the next View read it
// again, and a caller appending to its list never touches another's.
func TestViewShared(t *testing.T) {
	s, _ := newJournaledStore(t)
	a := account(t, s, 1)
	buf := make([]byte, 0, 8<<10)
	for i := range 3 {
		deliverMem(t, s, buf, testBody(i), Target{AccountID: 1})
	}
	view := func() []uint32 {
		t.Helper()
		_, uids, _, err := a.View(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		return uids
	}
	v1, v2 := view(), view()
	if len(v1) != 3 || &v1[0] != &v2[0] || cap(v1) != len(v1) {
		t.Fatalf("views of an unchanged mailbox: %v %v (cap %d), want one shared list of 3", v1, v2, cap(v1))
	}
	mine := append(v1, 99) // a session's new message
	if &mine[0] == &v2[0] {
		t.Fatal("append wrote into the shared list")
	}
	deliverMem(t, s, buf, testBody(3), Target{AccountID: 1})
	v3 := view()
	if len(v3) != 4 || v3[3] != 4 || len(v2) != 3 {
		t.Fatalf("after a delivery: %v (the old view %v)", v3, v2)
	}
	mb := mailbox(t, a, "INBOX")
	if _, err := a.SetFlags(ctx, mb.ID, []uint32{1, 2, 3, 4}, FlagUpdate{Op: FlagsAdd, Flags: FlagSeen}); err != nil {
		t.Fatal(err)
	}
	_, v4, unseen, err := a.View(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if &v4[0] == &v3[0] || unseen != 0 {
		t.Fatalf("after STORE: shared %v, first unseen %d", &v4[0] == &v3[0], unseen)
	}
	if _, err := a.Expunge(ctx, mb.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if v5 := view(); len(v5) != 3 || v5[1] != 3 {
		t.Fatalf("after EXPUNGE: %v", v5)
	}
}

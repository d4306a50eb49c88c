package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
)

// newMemTemp makes body a memory Temp, as smtpd's spool does.
func newMemTemp(t testing.TB, s *Store, body []byte) *blob.Temp {
	t.Helper()
	w := s.NewBodyBuffer(nil)
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func inlineRows(t testing.TB, a *Account) int {
	t.Helper()
	var n int
	if err := a.db.R.QueryRowContext(ctx, `SELECT count(*) FROM inline_bodies`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func consistent(t testing.TB, s *Store) *Report {
	t.Helper()
	rep, err := s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("check: %s", p)
	}
	return rep
}

func TestIsInlineBody(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"i2", true},
		{"i1234567890123456", true},
		{"i123456789012345678", true},   // 19
		{"i2345672345672345672", false}, // 20: a body file's length
		{"abcdefghijklmnopqrst", false}, // a body file
		{"ia", false},
		{"i", false},
		{"", false},
		{"x12", false},
		{"i12/", false},
	} {
		if got := IsInlineBody(tc.id); got != tc.want {
			t.Errorf("IsInlineBody(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// TestInlineBodies: a small memory body is kept in the index (no file),
// once per account and shared by its copies; it reads back like a file,
// survives a reopen, and goes with its last message.
func TestInlineBodies(t *testing.T) {
	s, dir := newStore(t)
	body := testBody(1)
	tm := newMemTemp(t, s, body)
	if err := s.Deliver(ctx, tm, []Target{{AccountID: 1}, {AccountID: 1, Mailbox: "Archive"}, {AccountID: 2}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 2} {
		a := account(t, s, id)
		if n := mboxCountBodies(t, a); n != 0 {
			t.Errorf("account %d: %d body files, want 0", id, n)
		}
		if n := inlineRows(t, a); n != 1 {
			t.Errorf("account %d: %d inline bodies, want 1", id, n)
		}
	}
	a := account(t, s, 1)
	in, arch := messages(t, a, "INBOX"), messages(t, a, "Archive")
	if len(in) != 1 || len(arch) != 1 || in[0].Blob != arch[0].Blob || !IsInlineBody(in[0].Blob) || in[0].Size != int64(len(body)) {
		t.Fatalf("INBOX %+v, Archive %+v", in, arch)
	}
	if got := readBody(t, a, in[0]); !bytes.Equal(got, body) {
		t.Fatalf("body %q", got)
	}
	// Readers seek and read at offsets, as IMAP FETCH does.
	f, err := a.OpenBody(in[0])
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 4)
	if _, err := f.ReadAt(part, 6); err != nil || string(part) != string(body[6:10]) {
		t.Errorf("ReadAt: %q %v", part, err)
	}
	if n, err := f.Seek(0, io.SeekEnd); err != nil || n != int64(len(body)) {
		t.Errorf("Seek end: %d %v", n, err)
	}
	f.Close()

	// COPY shares the inline body; expunging all but one copy keeps it.
	if _, err := a.Copy(ctx, mailbox(t, a, "INBOX").ID, []uint32{in[0].UID}, "Drafts", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Copy(ctx, mailbox(t, a, "Drafts").ID, []uint32{1}, "Junk", true); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(t, a); n != 1 {
		t.Fatalf("%d inline bodies after COPY and MOVE, want 1", n)
	}
	consistent(t, s)
	if _, err := a.Expunge(ctx, mailbox(t, a, "INBOX").ID, []uint32{in[0].UID}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetFlags(ctx, mailbox(t, a, "Archive").ID, []uint32{arch[0].UID}, FlagUpdate{Op: FlagsAdd, Flags: FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ExpungeDeleted(ctx, mailbox(t, a, "Archive").ID, ^uint32(0), nil); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(t, a); n != 1 {
		t.Fatalf("%d inline bodies with one copy left, want 1", n)
	}
	junk := messages(t, a, "Junk")
	if len(junk) != 1 || !bytes.Equal(readBody(t, a, junk[0]), body) {
		t.Fatalf("Junk %+v", junk)
	}
	// A session still holding an expunged message reads its body while
	// a copy keeps it, and ErrNoMessage once it is gone (ids are never
	// reused, so never another message's body).
	if _, err := a.OpenBody(in[0]); err != nil {
		t.Fatalf("body of an expunged copy while another copy lives: %v", err)
	}
	if err := a.DeleteMailbox(ctx, "Junk"); err != nil {
		t.Fatal(err)
	}
	if n := inlineRows(t, a); n != 0 {
		t.Fatalf("%d inline bodies with no message left, want 0", n)
	}
	if _, err := a.OpenBody(in[0]); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("body of a message gone: %v, want ErrNoMessage", err)
	}
	rep := consistent(t, s)
	if rep.InlineBodies != 1 || rep.Messages != 1 {
		t.Errorf("check counted %d inline bodies, %d messages; want 1, 1 (account 2)", rep.InlineBodies, rep.Messages)
	}

	// Account 2's copy survives a reopen.
	s.Close()
	s2, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	a2 := account(t, s2, 2)
	ms := messages(t, a2, "INBOX")
	if len(ms) != 1 || !bytes.Equal(readBody(t, a2, ms[0]), body) {
		t.Fatalf("after reopen: %+v", ms)
	}
}

// TestInlineLimits: memory bodies over InlineMax, and file bodies of any
// size, are body files.
func TestInlineLimits(t *testing.T) {
	s, _ := newStore(t)
	big := append(testBody(2), bytes.Repeat([]byte("x"), InlineMax)...)
	for _, tm := range []*blob.Temp{
		newMemTemp(t, s, testBody(1)),      // inline
		newTemp(t, s, testBody(1)),         // file
		newMemTemp(t, s, big),              // file: spilled
		{Data: big, Size: int64(len(big))}, // file: over the limit
	} {
		if err := s.Deliver(ctx, tm, []Target{{AccountID: 1}}); err != nil {
			t.Fatal(err)
		}
		tm.Remove()
	}
	a := account(t, s, 1)
	if f, i := mboxCountBodies(t, a), inlineRows(t, a); f != 3 || i != 1 {
		t.Fatalf("%d body files, %d inline bodies; want 3, 1", f, i)
	}
	for i, m := range messages(t, a, "INBOX") {
		want := testBody(1)
		if i >= 2 {
			want = big
		}
		if got := readBody(t, a, m); !bytes.Equal(got, want) || IsInlineBody(m.Blob) != (i == 0) {
			t.Errorf("message %d: %d bytes, blob %s", i, len(got), m.Blob)
		}
	}
	consistent(t, s)
}

// TestInlineAppend: APPEND and MULTIAPPEND keep small memory bodies
// inline; a failed MULTIAPPEND leaves none.
func TestInlineAppend(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	m, err := a.Append(ctx, "Drafts", newMemTemp(t, s, testBody(1)), FlagDraft, nil, time.Time{})
	if err != nil || !IsInlineBody(m.Blob) {
		t.Fatalf("Append: %+v %v", m, err)
	}
	specs := []AppendMessage{{Body: newMemTemp(t, s, testBody(2))}, {Body: newTemp(t, s, testBody(3))}, {Body: newMemTemp(t, s, testBody(4))}}
	if _, err := a.AppendMessages(ctx, "nonexistent", specs); !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("append to a missing mailbox: %v", err)
	}
	if f, i := mboxCountBodies(t, a), inlineRows(t, a); f != 0 || i != 1 {
		t.Fatalf("after a failed MULTIAPPEND: %d body files, %d inline bodies; want 0, 1", f, i)
	}
	res, err := a.AppendMessages(ctx, "Sent", specs)
	if err != nil {
		t.Fatal(err)
	}
	var blobs []string
	for i, m := range res.Messages {
		blobs = append(blobs, m.Blob)
		if got := readBody(t, a, m); !bytes.Equal(got, testBody(i+2)) {
			t.Errorf("message %d: %q", i, got)
		}
	}
	if !IsInlineBody(blobs[0]) || IsInlineBody(blobs[1]) || !IsInlineBody(blobs[2]) || len(slices.Compact(slices.Clone(blobs))) != 3 {
		t.Errorf("blobs %v", blobs)
	}
	if f, i := mboxCountBodies(t, a), inlineRows(t, a); f != 1 || i != 3 {
		t.Fatalf("%d body files, %d inline bodies; want 1, 3", f, i)
	}
	specs[1].Body.Remove()
	consistent(t, s)
}

// TestCheckInline: check finds an inline body gone (the message is lost)
// and an inline body of no message, and repairs both.
func TestCheckInline(t *testing.T) {
	s, _ := newStore(t)
	for i := range 3 {
		tm := newMemTemp(t, s, testBody(i))
		if err := s.Deliver(ctx, tm, []Target{{AccountID: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	a := account(t, s, 1)
	ms := messages(t, a, "INBOX")
	exec(t, a, `DELETE FROM inline_bodies WHERE id=?`, inlineKey(ms[0].Blob))
	exec(t, a, `INSERT INTO inline_bodies(id, data) VALUES(1, x'41')`)
	exec(t, a, `UPDATE inline_bodies SET data=x'4142' WHERE id=?`, inlineKey(ms[2].Blob))
	rep, err := s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(rep); !slices.Equal(got, sorted(ProblemMissingBody, ProblemOrphanBody, ProblemSizeMismatch)) {
		t.Fatalf("found %v", rep.Problems)
	}
	rep, err = s.Check(ctx, CheckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lost() != 1 || rep.Remaining() != 1 {
		t.Fatalf("repair: lost %d, remaining %d (the size mismatch): %v", rep.Lost(), rep.Remaining(), rep.Problems)
	}
	rep, _ = s.Check(ctx, CheckOptions{})
	if got := kinds(rep); !slices.Equal(got, sorted(ProblemSizeMismatch)) {
		t.Fatalf("after repair: %v", rep.Problems)
	}
	if n := len(messages(t, a, "INBOX")); n != 2 {
		t.Fatalf("%d messages after repair, want 2", n)
	}
}

// TestInlineReadAhead: bodies read in order come from one query per
// readAheadRows; every read, in any order, returns its own body; a big
// body is never read ahead.
func TestInlineReadAhead(t *testing.T) {
	s, _ := newStore(t)
	var want [][]byte
	for i := range 40 {
		body := testBody(i)
		if i%7 == 3 {
			body = append(body, bytes.Repeat([]byte("y"), readAheadMax)...) // inline, not read ahead
		}
		want = append(want, body)
		if err := s.Deliver(ctx, newMemTemp(t, s, body), []Target{{AccountID: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	a := account(t, s, 1)
	ms := messages(t, a, "INBOX")
	if len(ms) != len(want) {
		t.Fatalf("%d messages", len(ms))
	}
	readBody(t, a, ms[0])
	s.inline.mu.Lock()
	cached, bytes_ := len(s.inline.bodies), s.inline.bytes
	for k, b := range s.inline.bodies {
		if len(b) > readAheadMax {
			t.Errorf("body %d of %d bytes read ahead", k.key, len(b))
		}
	}
	s.inline.mu.Unlock()
	if cached < readAheadRows-4 || bytes_ <= 0 {
		t.Errorf("after the first read: %d bodies (%d bytes) read ahead", cached, bytes_)
	}
	for _, order := range [][]int{seq(len(ms)), reverse(seq(len(ms))), seq(len(ms))} {
		for _, i := range order {
			if got := readBody(t, a, ms[i]); !bytes.Equal(got, want[i]) {
				t.Fatalf("message %d: got %q", i, got[:min(len(got), 60)])
			}
		}
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func reverse(s []int) []int {
	slices.Reverse(s)
	return s
}

// TestInlineFanout: a memory body to many accounts is inline in each while
// the copies add up to at most InlineFanoutMax; beyond, it is one body file
// hard-linked into every account, written once.
func TestInlineFanout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		inline bool
	}{
		{"small", 4 << 10, true},
		{"large", 64 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir := newStore(t)
			body := append(testBody(1), bytes.Repeat([]byte("z"), tc.size)...)
			var targets []Target
			for id := int64(1); id <= 20; id++ {
				targets = append(targets, Target{AccountID: id})
			}
			tm := newMemTemp(t, s, body)
			if err := s.Deliver(ctx, tm, targets); err != nil {
				t.Fatal(err)
			}
			if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
				t.Errorf("tmp holds %d entries", len(ents))
			}
			var inode uint64
			for _, tg := range targets {
				a := account(t, s, tg.AccountID)
				ms := messages(t, a, "INBOX")
				if len(ms) != 1 || IsInlineBody(ms[0].Blob) != tc.inline || !bytes.Equal(readBody(t, a, ms[0]), body) {
					t.Fatalf("account %d: %+v", tg.AccountID, ms)
				}
				if tc.inline {
					continue
				}
				ino := stat(t, a, ms[0]).Sys().(*syscall.Stat_t).Ino
				if inode != 0 && ino != inode {
					t.Errorf("account %d: body is inode %d, not %d: not one file", tg.AccountID, ino, inode)
				}
				inode = ino
			}
			consistent(t, s)
		})
	}
}

// TestBatchAllocation: one group commit of several requests gives every
// message its own MODSEQ, in order, each mailbox consecutive UIDs, and each
// mailbox's HIGHESTMODSEQ the MODSEQ of its last new message.
func TestBatchAllocation(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	before := mailbox(t, a, "Archive").HighestModSeq
	nm := func(mb string) newMessage {
		return newMessage{mailbox: mb, blob: blob.NewID(), size: 1, date: time.Now(), emailID: newEmailID(), meta: []byte("{}")}
	}
	batch := []*commitReq{
		newCommitReq(kindAdd, []newMessage{nm("INBOX"), nm("Archive")}, 0),
		newCommitReq(kindAdd, []newMessage{nm("INBOX")}, 0),
		newCommitReq(kindAdd, []newMessage{nm("Archive"), nm("INBOX"), nm("Drafts")}, 0),
	}
	if err := a.insertBatch(batch); err != nil {
		t.Fatal(err)
	}
	var got []string
	var prev int64
	for _, r := range batch {
		for _, m := range r.res {
			if m.ModSeq != prev+1 && prev != 0 || m.ModSeq <= before {
				t.Errorf("MODSEQ %d after %d", m.ModSeq, prev)
			}
			prev = m.ModSeq
			got = append(got, fmt.Sprintf("%d:%d", m.MailboxID, m.UID))
		}
	}
	in, arch, drafts := mailbox(t, a, "INBOX"), mailbox(t, a, "Archive"), mailbox(t, a, "Drafts")
	want := []string{
		fmt.Sprintf("%d:1", in.ID), fmt.Sprintf("%d:1", arch.ID), fmt.Sprintf("%d:2", in.ID),
		fmt.Sprintf("%d:2", arch.ID), fmt.Sprintf("%d:3", in.ID), fmt.Sprintf("%d:1", drafts.ID),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("mailbox:UID %v, want %v", got, want)
	}
	for _, c := range []struct {
		mb   Mailbox
		last int64
	}{{in, batch[2].res[1].ModSeq}, {arch, batch[2].res[0].ModSeq}, {drafts, batch[2].res[2].ModSeq}} {
		if c.mb.HighestModSeq != c.last || c.mb.UIDNext != uint32(len(messages(t, a, c.mb.Name))+1) {
			t.Errorf("%s: HIGHESTMODSEQ %d UIDNEXT %d, want %d and UIDs 1..", c.mb.Name, c.mb.HighestModSeq, c.mb.UIDNext, c.last)
		}
	}
}

// TestInlineEmpty: an empty body is an empty inline body, not NULL.
func TestInlineEmpty(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Deliver(ctx, newMemTemp(t, s, nil), []Target{{AccountID: 1}}); err != nil {
		t.Fatal(err)
	}
	a := account(t, s, 1)
	ms := messages(t, a, "INBOX")
	if len(ms) != 1 || !IsInlineBody(ms[0].Blob) || ms[0].Size != 0 || len(readBody(t, a, ms[0])) != 0 {
		t.Fatalf("%+v", ms)
	}
	consistent(t, s)
}

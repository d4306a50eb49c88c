package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
)

var ctx = context.Background()

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func testBody(n int) []byte {
	return []byte(fmt.Sprintf("From: alice@example.org\r\nTo: bob@example.org\r\nSubject: test %d\r\nMessage-ID: <%d@example.org>\r\n\r\nbody %d\r\n", n, n, n))
}

// newTemp writes body as a finished temporary body file in the store
// (never inline: most tests look at body files).
func newTemp(t testing.TB, s *Store, body []byte) *blob.Temp {
	t.Helper()
	w, err := blob.Create(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	tm, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Remove() })
	return tm
}

func deliver(t testing.TB, s *Store, body []byte, targets ...Target) {
	t.Helper()
	tm := newTemp(t, s, body)
	if err := s.Deliver(ctx, tm, targets); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if err := tm.Remove(); err != nil {
		t.Fatal(err)
	}
}

func account(t testing.TB, s *Store, id int64) *Account {
	t.Helper()
	a, err := s.Account(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mailbox(t testing.TB, a *Account, name string) Mailbox {
	t.Helper()
	m, err := a.Mailbox(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func messages(t testing.TB, a *Account, name string) []Message {
	t.Helper()
	m, err := a.Messages(ctx, mailbox(t, a, name).ID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func uids(ms []Message) []uint32 {
	var u []uint32
	for _, m := range ms {
		u = append(u, m.UID)
	}
	return u
}

func readBody(t testing.TB, a *Account, m Message) []byte {
	t.Helper()
	f, err := a.OpenBody(m)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stat(t testing.TB, a *Account, m Message) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(a.bodies.Path(m.Blob))
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func TestDefaultMailboxes(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	mbs, err := a.Mailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"INBOX": "", "Sent": `\Sent`, "Drafts": `\Drafts`, "Trash": `\Trash`, "Junk": `\Junk`, "Archive": `\Archive`}
	if len(mbs) != len(want) {
		t.Errorf("%d mailboxes, want %d", len(mbs), len(want))
	}
	validity := map[uint32]string{}
	for _, m := range mbs {
		use, ok := want[m.Name]
		if !ok {
			t.Errorf("unexpected mailbox %q", m.Name)
			continue
		}
		if m.SpecialUse != use {
			t.Errorf("%s special use = %q, want %q", m.Name, m.SpecialUse, use)
		}
		if m.UIDNext != 1 || m.UIDValidity == 0 || !m.Subscribed || m.HighestModSeq < 1 {
			t.Errorf("new mailbox %+v", m)
		}
		if other, dup := validity[m.UIDValidity]; dup {
			t.Errorf("%s and %s share UIDVALIDITY %d", m.Name, other, m.UIDValidity)
		}
		validity[m.UIDValidity] = m.Name
	}
	for _, name := range []string{"INBOX", "inbox", "InBoX"} {
		if m, err := a.Mailbox(ctx, name); err != nil || m.Name != "INBOX" {
			t.Errorf("Mailbox(%q) = %+v, %v", name, m, err)
		}
	}
	for _, name := range []string{"sent", "Nope", ""} {
		if _, err := a.Mailbox(ctx, name); !errors.Is(err, ErrNoMailbox) {
			t.Errorf("Mailbox(%q) = %v, want ErrNoMailbox", name, err)
		}
	}
	if _, err := s.Account(ctx, 0); err == nil {
		t.Error("Account(0) succeeded")
	}
	if _, err := s.Account(ctx, -1); err == nil {
		t.Error("Account(-1) succeeded")
	}
	// The same handle every time.
	if account(t, s, 1) != a {
		t.Error("Account returned a second handle for an open account")
	}
}

// TestDeliverSharesInode: one SMTP transaction to several accounts stores
// one file with several names, and every copy is a full message.
func TestDeliverSharesInode(t *testing.T) {
	s, _ := newStore(t)
	body := testBody(1)
	deliver(t, s, body, Target{AccountID: 1}, Target{AccountID: 2}, Target{AccountID: 3}, Target{AccountID: 1, Mailbox: "Archive", Flags: FlagSeen})

	var first os.FileInfo
	for _, id := range []int64{1, 2, 3} {
		a := account(t, s, id)
		ms := messages(t, a, "INBOX")
		if len(ms) != 1 {
			t.Fatalf("account %d: %d messages in INBOX, want 1", id, len(ms))
		}
		m := ms[0]
		if m.UID != 1 || m.Size != int64(len(body)) || m.Flags != 0 || m.ModSeq <= 1 || m.EmailID == "" || !blob.ValidID(m.Blob) {
			t.Errorf("account %d: message %+v", id, m)
		}
		if time.Since(m.InternalDate) > time.Minute || time.Until(m.InternalDate) > time.Minute {
			t.Errorf("account %d: internal date %v", id, m.InternalDate)
		}
		if got := readBody(t, a, m); !bytes.Equal(got, body) {
			t.Errorf("account %d: body %q", id, got)
		}
		fi := stat(t, a, m)
		if first == nil {
			first = fi
		} else if !os.SameFile(first, fi) {
			t.Errorf("account %d: body is a separate file, not a hard link", id)
		}
		meta, err := a.Meta(ctx, m.ID)
		if err != nil || !json.Valid(meta) || !bytes.Contains(meta, []byte("test 1")) {
			t.Errorf("account %d: Meta = %s, %v; want JSON with the subject", id, meta, err)
		}
	}
	// Two targets in one account share one name.
	a := account(t, s, 1)
	arch := messages(t, a, "Archive")
	inbox := messages(t, a, "INBOX")
	if len(arch) != 1 || arch[0].Flags != FlagSeen || arch[0].UID != 1 {
		t.Fatalf("Archive = %+v, want one \\Seen message with UID 1", arch)
	}
	if arch[0].Blob != inbox[0].Blob {
		t.Errorf("two copies in one account have different bodies %s and %s", arch[0].Blob, inbox[0].Blob)
	}
	if arch[0].EmailID != inbox[0].EmailID {
		t.Errorf("copies of one delivery have EMAILIDs %s and %s", arch[0].EmailID, inbox[0].EmailID)
	}
	if _, err := a.Meta(ctx, 999999); !errors.Is(err, ErrNoMessage) {
		t.Errorf("Meta(unknown) = %v, want ErrNoMessage", err)
	}
}

func TestDeliverTargets(t *testing.T) {
	s, _ := newStore(t)
	deliver(t, s, testBody(1), Target{AccountID: 1, Mailbox: "NoSuchMailbox"}) // falls back to INBOX
	deliver(t, s, testBody(2), Target{AccountID: 1, Mailbox: "inbox"})
	deliver(t, s, testBody(3), Target{AccountID: 1, Mailbox: "Junk", Flags: FlagSeen | FlagFlagged})
	a := account(t, s, 1)
	if got := uids(messages(t, a, "INBOX")); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("INBOX UIDs = %v, want [1 2]", got)
	}
	junk := messages(t, a, "Junk")
	if len(junk) != 1 || junk[0].Flags != FlagSeen|FlagFlagged {
		t.Errorf("Junk = %+v", junk)
	}
	if err := s.Deliver(ctx, newTemp(t, s, testBody(4)), nil); err != nil {
		t.Errorf("Deliver to nobody: %v", err)
	}
	missing := &blob.Temp{Path: filepath.Join(t.TempDir(), "gone"), Size: 1}
	if err := s.Deliver(ctx, missing, []Target{{AccountID: 1}}); err == nil {
		t.Error("Deliver of a missing body succeeded")
	}
}

func TestUIDsAndModSeq(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	before := mailbox(t, a, "INBOX")
	var lastModSeq int64
	for i := 1; i <= 5; i++ {
		deliver(t, s, testBody(i), Target{AccountID: 1})
		mb := mailbox(t, a, "INBOX")
		ms := messages(t, a, "INBOX")
		last := ms[len(ms)-1]
		if last.UID != uint32(i) {
			t.Errorf("delivery %d got UID %d", i, last.UID)
		}
		if mb.UIDNext != uint32(i+1) {
			t.Errorf("after delivery %d UIDNEXT = %d", i, mb.UIDNext)
		}
		if last.ModSeq <= lastModSeq {
			t.Errorf("delivery %d: MODSEQ %d not above %d", i, last.ModSeq, lastModSeq)
		}
		if mb.HighestModSeq != last.ModSeq {
			t.Errorf("delivery %d: HIGHESTMODSEQ %d, newest message MODSEQ %d", i, mb.HighestModSeq, last.ModSeq)
		}
		if mb.UIDValidity != before.UIDValidity {
			t.Errorf("UIDVALIDITY changed from %d to %d", before.UIDValidity, mb.UIDValidity)
		}
		lastModSeq = last.ModSeq
	}
	// A delivery to another mailbox does not move INBOX's UIDs.
	deliver(t, s, testBody(9), Target{AccountID: 1, Mailbox: "Sent"})
	if mb := mailbox(t, a, "INBOX"); mb.UIDNext != 6 {
		t.Errorf("INBOX UIDNEXT after a delivery to Sent = %d", mb.UIDNext)
	}
	if sent := messages(t, a, "Sent"); len(sent) != 1 || sent[0].UID != 1 || sent[0].ModSeq <= lastModSeq {
		t.Errorf("Sent = %+v", sent)
	}
}

func TestUIDL(t *testing.T) {
	seen := map[string]bool{}
	for _, uid := range []uint32{1, 2, 0xffffffff} {
		for _, v := range []uint32{1, 1700000000} {
			u := Message{UID: uid}.UIDL(v)
			if len(u) < 1 || len(u) > 70 {
				t.Errorf("UIDL length %d", len(u))
			}
			for _, c := range []byte(u) {
				if c < 0x21 || c > 0x7e {
					t.Errorf("UIDL %q has byte %#x", u, c)
				}
			}
			if seen[u] {
				t.Errorf("UIDL %q repeated", u)
			}
			seen[u] = true
		}
	}
}

func TestExpunge(t *testing.T) {
	s, _ := newStore(t)
	for i := 1; i <= 4; i++ {
		deliver(t, s, testBody(i), Target{AccountID: 1}, Target{AccountID: 2})
	}
	// Message 4 also has a copy in Archive of account 1 (same body file).
	a := account(t, s, 1)
	b := account(t, s, 2)
	inbox := mailbox(t, a, "INBOX")
	ms := messages(t, a, "INBOX")
	shared := ms[3]
	if _, err := a.commit(ctx, []newMessage{{mailbox: "Archive", blob: shared.Blob, size: shared.Size, date: time.Now(), emailID: shared.EmailID, meta: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}

	// A reader with the body open keeps reading after the expunge.
	open, err := a.OpenBody(ms[1])
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	removed, err := a.Expunge(ctx, inbox.ID, []uint32{2, 99, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []uint32{2, 4}) {
		t.Errorf("Expunge removed %v, want [2 4]", removed)
	}
	if got := uids(messages(t, a, "INBOX")); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("INBOX after expunge = %v, want [1 3]", got)
	}
	after := mailbox(t, a, "INBOX")
	if after.HighestModSeq <= inbox.HighestModSeq {
		t.Errorf("HIGHESTMODSEQ %d did not rise above %d", after.HighestModSeq, inbox.HighestModSeq)
	}
	if after.UIDNext != inbox.UIDNext {
		t.Errorf("UIDNEXT changed on expunge: %d -> %d", inbox.UIDNext, after.UIDNext)
	}
	rows, err := a.db.R.Query(`SELECT uid, modseq FROM expunged WHERE mailbox_id=? ORDER BY uid`, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	var gone []uint32
	for rows.Next() {
		var uid uint32
		var modseq int64
		rows.Scan(&uid, &modseq)
		gone = append(gone, uid)
		if modseq != after.HighestModSeq {
			t.Errorf("expunged uid %d recorded with MODSEQ %d, want %d", uid, modseq, after.HighestModSeq)
		}
	}
	rows.Close()
	if !slices.Equal(gone, []uint32{2, 4}) {
		t.Errorf("expunged table holds %v, want [2 4]", gone)
	}

	// The body of 2 is gone from account 1 (no other reference); the body
	// of 4 stays for its Archive copy; account 2's names are untouched.
	if _, err := os.Stat(a.bodies.Path(ms[1].Blob)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("expunged body still on disk: %v", err)
	}
	if _, err := a.OpenBody(ms[1]); !errors.Is(err, ErrNoMessage) {
		t.Errorf("OpenBody(expunged) = %v, want ErrNoMessage", err)
	}
	if got := readBody(t, a, shared); !bytes.Equal(got, testBody(4)) {
		t.Error("body referenced by the Archive copy was removed")
	}
	if got, err := io.ReadAll(open); err != nil || !bytes.Equal(got, testBody(2)) {
		t.Errorf("open body unreadable after expunge: %v", err)
	}
	if got := uids(messages(t, b, "INBOX")); !slices.Equal(got, []uint32{1, 2, 3, 4}) {
		t.Errorf("account 2 lost messages: %v", got)
	}
	for _, m := range messages(t, b, "INBOX") {
		readBody(t, b, m)
	}

	// Expunging the last reference removes the file.
	arch := mailbox(t, a, "Archive")
	if r, err := a.Expunge(ctx, arch.ID, []uint32{1}); err != nil || !slices.Equal(r, []uint32{1}) {
		t.Fatalf("Expunge(Archive) = %v, %v", r, err)
	}
	if _, err := os.Stat(a.bodies.Path(shared.Blob)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("body with no references left on disk: %v", err)
	}

	// Nothing to do: no error, no MODSEQ change.
	hm := mailbox(t, a, "INBOX").HighestModSeq
	for _, list := range [][]uint32{nil, {}, {2, 4, 1000}} {
		if r, err := a.Expunge(ctx, inbox.ID, list); err != nil || len(r) != 0 {
			t.Errorf("Expunge(%v) = %v, %v", list, r, err)
		}
	}
	if got := mailbox(t, a, "INBOX").HighestModSeq; got != hm {
		t.Errorf("empty expunge moved HIGHESTMODSEQ %d -> %d", hm, got)
	}

	// UIDs are never reused: the next delivery gets 5 although 4 is gone.
	deliver(t, s, testBody(5), Target{AccountID: 1})
	if got := uids(messages(t, a, "INBOX")); !slices.Equal(got, []uint32{1, 3, 5}) {
		t.Errorf("INBOX after a new delivery = %v, want [1 3 5]", got)
	}
}

func TestModSeqStrictlyIncreases(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	inbox := mailbox(t, a, "INBOX")
	var seqs []int64
	record := func() {
		seqs = append(seqs, mailbox(t, a, "INBOX").HighestModSeq)
	}
	record()
	for i := 0; i < 3; i++ {
		deliver(t, s, testBody(i), Target{AccountID: 1})
		record()
	}
	a.Expunge(ctx, inbox.ID, []uint32{1})
	record()
	deliver(t, s, testBody(9), Target{AccountID: 1})
	record()
	a.Expunge(ctx, inbox.ID, []uint32{2, 3})
	record()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Errorf("HIGHESTMODSEQ sequence %v not strictly increasing at %d", seqs, i)
		}
	}
}

func TestSubscribe(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	sub := s.Subscribe(1)
	other := s.Subscribe(2)
	defer other.Close()

	if cap(sub.C) != 1 {
		t.Errorf("subscription channel capacity %d, want 1", cap(sub.C))
	}
	if len(sub.C) != 0 {
		t.Fatal("woken before any change")
	}
	// Deliver returns after subscribers are woken; several changes
	// coalesce into one wake-up.
	for i := 0; i < 3; i++ {
		deliver(t, s, testBody(i), Target{AccountID: 1})
		if len(sub.C) != 1 {
			t.Fatalf("after delivery %d: %d pending wake-ups, want 1", i, len(sub.C))
		}
	}
	<-sub.C
	if len(sub.C) != 0 {
		t.Error("more than one wake-up for coalesced changes")
	}
	if len(other.C) != 0 {
		t.Error("a subscriber of another account was woken")
	}

	inbox := mailbox(t, a, "INBOX")
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if len(sub.C) != 1 {
		t.Error("Expunge did not wake the subscriber")
	}
	<-sub.C
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if len(sub.C) != 0 {
		t.Error("an expunge that removed nothing woke the subscriber")
	}
	if _, err := a.Append(ctx, "Drafts", newTemp(t, s, testBody(7)), FlagDraft, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if len(sub.C) != 1 {
		t.Error("Append did not wake the subscriber")
	}
	<-sub.C

	sub.Close()
	sub.Close() // idempotent
	deliver(t, s, testBody(8), Target{AccountID: 1})
	if len(sub.C) != 0 {
		t.Error("a closed subscription was woken")
	}
	s.mu.Lock()
	n := len(s.subs[1])
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("closed subscription still registered (%d)", n)
	}
}

func TestLockMaildrop(t *testing.T) {
	s, _ := newStore(t)
	rel1, ok := s.LockMaildrop(1)
	if !ok {
		t.Fatal("first lock refused")
	}
	if _, ok := s.LockMaildrop(1); ok {
		t.Error("second lock of the same maildrop granted")
	}
	rel2, ok := s.LockMaildrop(2)
	if !ok {
		t.Error("lock of another account refused")
	}
	defer rel2()
	rel1()
	rel3, ok := s.LockMaildrop(1)
	if !ok {
		t.Fatal("lock refused after release")
	}
	// A stale release must not free the new holder's lock.
	rel1()
	if _, ok := s.LockMaildrop(1); ok {
		t.Error("a second call of an old release freed someone else's lock")
	}
	rel3()
	rel3()
	if r, ok := s.LockMaildrop(1); !ok {
		t.Error("lock refused after double release")
	} else {
		r()
	}
}

func TestLockMaildropConcurrent(t *testing.T) {
	s, _ := newStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	var releases []func()
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if rel, ok := s.LockMaildrop(7); ok {
				mu.Lock()
				granted++
				releases = append(releases, rel)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 1 {
		t.Errorf("%d concurrent sessions got the maildrop lock, want 1", granted)
	}
	for _, r := range releases {
		r()
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	s, _ := newStore(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.NewBody()
			if err != nil {
				errs <- err
				return
			}
			w.Write(testBody(i))
			tm, err := w.Finish()
			if err != nil {
				errs <- err
				return
			}
			defer tm.Remove()
			// Every message to account 1; every third also to 2.
			targets := []Target{{AccountID: 1}}
			if i%3 == 0 {
				targets = append(targets, Target{AccountID: 2})
			}
			errs <- s.Deliver(ctx, tm, targets)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Deliver: %v", err)
		}
	}
	for _, tc := range []struct {
		id   int64
		want int
	}{{1, n}, {2, (n + 2) / 3}} {
		a := account(t, s, tc.id)
		ms := messages(t, a, "INBOX")
		if len(ms) != tc.want {
			t.Errorf("account %d: %d messages, want %d", tc.id, len(ms), tc.want)
		}
		seenUID := map[uint32]bool{}
		seenMod := map[int64]bool{}
		subjects := map[string]bool{}
		for i, m := range ms {
			if m.UID != uint32(i+1) {
				t.Errorf("account %d: UIDs not 1..%d without gaps: position %d has %d", tc.id, tc.want, i, m.UID)
				break
			}
			if seenUID[m.UID] || seenMod[m.ModSeq] {
				t.Errorf("account %d: UID %d or MODSEQ %d repeated", tc.id, m.UID, m.ModSeq)
			}
			seenUID[m.UID], seenMod[m.ModSeq] = true, true
			subjects[string(readBody(t, a, m))] = true
		}
		if len(subjects) != tc.want {
			t.Errorf("account %d: %d distinct bodies, want %d", tc.id, len(subjects), tc.want)
		}
		if mb := mailbox(t, a, "INBOX"); mb.UIDNext != uint32(tc.want+1) {
			t.Errorf("account %d: UIDNEXT %d, want %d", tc.id, mb.UIDNext, tc.want+1)
		}
	}
}

func TestAppend(t *testing.T) {
	s, dir := newStore(t)
	a := account(t, s, 1)
	date := time.Date(2024, 2, 29, 13, 14, 15, 0, time.FixedZone("", -(7*3600+30*60)))
	body := testBody(1)
	m, err := a.Append(ctx, "Sent", newTemp(t, s, body), FlagSeen|FlagAnswered, []string{"$Forwarded", "work"}, date)
	if err != nil {
		t.Fatal(err)
	}
	if m.UID != 1 || m.Flags != FlagSeen|FlagAnswered || !slices.Equal(m.Keywords, []string{"$Forwarded", "work"}) || m.Size != int64(len(body)) {
		t.Errorf("Append returned %+v", m)
	}
	stored := messages(t, a, "Sent")
	if len(stored) != 1 {
		t.Fatalf("Sent holds %d messages", len(stored))
	}
	got := stored[0]
	if !got.InternalDate.Equal(date) {
		t.Errorf("internal date %v, want %v", got.InternalDate, date)
	}
	if _, off := got.InternalDate.Zone(); off != -(7*3600 + 30*60) {
		t.Errorf("internal date zone offset %d, want %d", off, -(7*3600 + 30*60))
	}
	if got.Flags != m.Flags || !slices.Equal(got.Keywords, m.Keywords) || got.ModSeq != m.ModSeq || got.ID != m.ID {
		t.Errorf("stored %+v, Append returned %+v", got, m)
	}
	if !bytes.Equal(readBody(t, a, got), body) {
		t.Error("appended body differs")
	}
	m2, err := a.Append(ctx, "sent", newTemp(t, s, testBody(2)), 0, nil, time.Time{})
	if !errors.Is(err, ErrNoMailbox) {
		t.Errorf("Append to a missing mailbox (no INBOX fallback) = %+v, %v", m2, err)
	}
	m3, err := a.Append(ctx, "inbox", newTemp(t, s, testBody(3)), 0, nil, time.Time{})
	if err != nil || time.Since(m3.InternalDate) > time.Minute || m3.Keywords != nil {
		t.Errorf("Append without date = %+v, %v", m3, err)
	}
	// The refused append left no body behind.
	var files int
	a.bodies.Walk(func(string, int64) error { files++; return nil })
	if files != 2 {
		t.Errorf("%d body files in the account, want 2 (a refused Append leaked one)", files)
	}
	_ = dir
}

func TestSweep(t *testing.T) {
	s, dir := newStore(t)
	deliver(t, s, testBody(1), Target{AccountID: 1}, Target{AccountID: 2})
	a := account(t, s, 1)
	kept := messages(t, a, "INBOX")[0]

	// Crash after linking, before the index commit.
	stray := newTemp(t, s, testBody(2))
	strayID := blob.NewID()
	if err := a.bodies.Link(stray, strayID); err != nil {
		t.Fatal(err)
	}
	// A file dropped straight into a shard, a Copy leftover, and bodies
	// still being received.
	otherStray := blob.NewID()
	shard := filepath.Join(dir, "accounts", "2", "msg", otherStray[:2])
	os.MkdirAll(shard, 0o700)
	os.WriteFile(filepath.Join(shard, otherStray), []byte("orphan"), 0o600)
	os.WriteFile(filepath.Join(shard, ".tmp-crash"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", "body-crash"), []byte("half"), 0o600)
	os.MkdirAll(filepath.Join(dir, "tmp", "deleted-account-9-1", "msg"), 0o700)
	// Directories that are not accounts are left alone.
	os.MkdirAll(filepath.Join(dir, "accounts", "lost+found"), 0o700)

	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a.bodies.Path(strayID), filepath.Join(shard, otherStray), filepath.Join(shard, ".tmp-crash")} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Sweep left %s: %v", p, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("Sweep left %d entries in tmp", len(ents))
	}
	if !bytes.Equal(readBody(t, a, kept), testBody(1)) {
		t.Error("Sweep damaged a referenced body")
	}
	b := account(t, s, 2)
	if ms := messages(t, b, "INBOX"); len(ms) != 1 || !bytes.Equal(readBody(t, b, ms[0]), testBody(1)) {
		t.Error("Sweep damaged account 2's referenced body")
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts", "lost+found")); err != nil {
		t.Errorf("Sweep touched a non-account directory: %v", err)
	}
}

// TestSweepAfterRestart: the crash case proper. Orphans from a previous
// process are found by a fresh Store on the same directory, once Sweep ran
// and the account is opened.
func TestSweepAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, s, testBody(1), Target{AccountID: 3})
	a := account(t, s, 3)
	orphan := newTemp(t, s, testBody(2))
	orphanID := blob.NewID()
	if err := a.bodies.Link(orphan, orphanID); err != nil {
		t.Fatal(err)
	}
	path := a.bodies.Path(orphanID)
	s.Close()

	s2, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// The account is swept when it is first opened after Sweep, so that
	// start-up does not grow with the number of accounts.
	a2 := account(t, s2, 3)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan body survived the first open after Sweep: %v", err)
	}
	if ms := messages(t, a2, "INBOX"); len(ms) != 1 || !bytes.Equal(readBody(t, a2, ms[0]), testBody(1)) {
		t.Error("committed message lost or damaged by the sweep")
	}
}

func TestRemoveAccount(t *testing.T) {
	s, dir := newStore(t)
	deliver(t, s, testBody(1), Target{AccountID: 1}, Target{AccountID: 2})
	sub := s.Subscribe(1)
	defer sub.Close()
	if err := s.RemoveAccount(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "accounts", "1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("account directory still there: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("RemoveAccount left %d entries in tmp", len(ents))
	}
	// The other account keeps its (hard-linked) copy.
	b := account(t, s, 2)
	if ms := messages(t, b, "INBOX"); len(ms) != 1 || !bytes.Equal(readBody(t, b, ms[0]), testBody(1)) {
		t.Error("removing account 1 damaged account 2's copy")
	}
	if err := s.RemoveAccount(ctx, 1); err != nil {
		t.Errorf("RemoveAccount twice: %v", err)
	}
	if err := s.RemoveAccount(ctx, 12345); err != nil {
		t.Errorf("RemoveAccount(never existed): %v", err)
	}
	// A later account with that id (not in practice: userdb never reuses
	// ids) would start empty.
	a := account(t, s, 1)
	if ms := messages(t, a, "INBOX"); len(ms) != 0 {
		t.Errorf("recreated account has %d messages", len(ms))
	}
}

// TestClosedAccountNeverHangs: writers holding an Account handle while the
// account closes (Store.Close, RemoveAccount) get an error, never block
// forever.
func TestClosedAccountNeverHangs(t *testing.T) {
	for round := 0; round < 20; round++ {
		s, _ := newStore(t)
		a := account(t, s, 1)
		tm := newTemp(t, s, testBody(round))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					if _, err := a.Append(ctx, "INBOX", tm, 0, nil, time.Time{}); err != nil {
						return
					}
				}
			}()
		}
		close(start)
		if round%2 == 0 {
			s.Close()
		} else {
			s.RemoveAccount(ctx, 1)
		}
		wg.Wait() // a lost request hangs here until the test times out
		if _, err := a.Append(ctx, "INBOX", tm, 0, nil, time.Time{}); err == nil {
			t.Fatal("Append on a closed account succeeded")
		}
		s.Close()
	}
	s, _ := newStore(t)
	s.Close()
	if _, err := s.Account(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Account after Close = %v, want ErrClosed", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		deliver(t, s, testBody(i), Target{AccountID: 5})
	}
	a := account(t, s, 5)
	inbox := mailbox(t, a, "INBOX")
	if _, err := a.Expunge(ctx, inbox.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	beforeBoxes, _ := a.Mailboxes(ctx)
	beforeMsgs := messages(t, a, "INBOX")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s2, err := Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	a2 := account(t, s2, 5)
	afterBoxes, _ := a2.Mailboxes(ctx)
	if !slices.Equal(beforeBoxes, afterBoxes) {
		t.Errorf("mailboxes changed across restart:\n%+v\n%+v", beforeBoxes, afterBoxes)
	}
	afterMsgs := messages(t, a2, "INBOX")
	if len(afterMsgs) != len(beforeMsgs) {
		t.Fatalf("messages after restart %v, before %v", uids(afterMsgs), uids(beforeMsgs))
	}
	for i := range afterMsgs {
		b, c := beforeMsgs[i], afterMsgs[i]
		if b.UID != c.UID || b.ModSeq != c.ModSeq || b.Blob != c.Blob || b.Size != c.Size || !b.InternalDate.Equal(c.InternalDate) || b.EmailID != c.EmailID {
			t.Errorf("message changed across restart: %+v -> %+v", b, c)
		}
		if !bytes.Equal(readBody(t, a2, c), testBody(int(c.UID))) {
			t.Errorf("body of UID %d changed", c.UID)
		}
	}
	var n int
	a2.db.R.QueryRow(`SELECT count(*) FROM expunged`).Scan(&n)
	if n != 1 {
		t.Errorf("expunged rows after restart = %d, want 1", n)
	}
	deliver(t, s2, testBody(4), Target{AccountID: 5})
	if got := uids(messages(t, a2, "INBOX")); !slices.Equal(got, []uint32{1, 3, 4}) {
		t.Errorf("UIDs after restart and delivery = %v, want [1 3 4]", got)
	}
	if mb := mailbox(t, a2, "INBOX"); mb.HighestModSeq <= beforeBoxes[slices.IndexFunc(beforeBoxes, func(m Mailbox) bool { return m.Name == "INBOX" })].HighestModSeq {
		t.Error("MODSEQ went back after restart")
	}
}

// TestUIDValidityNeverRepeats: mailboxes created later, even in the same
// second, get fresh UIDVALIDITY values above all earlier ones.
func TestUIDValidityNeverRepeats(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	seen := map[uint32]bool{}
	var max uint32
	mbs, _ := a.Mailboxes(ctx)
	for _, m := range mbs {
		seen[m.UIDValidity] = true
		max = maxU(max, m.UIDValidity)
	}
	for i := 0; i < 5; i++ {
		err := a.db.Tx(ctx, func(tx *sql.Tx) error {
			_, err := createMailbox(ctx, tx, "box"+strconv.Itoa(i), "")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		m := mailbox(t, a, "box"+strconv.Itoa(i))
		if seen[m.UIDValidity] || m.UIDValidity <= max {
			t.Errorf("box%d UIDVALIDITY %d repeats or is not above %d", i, m.UIDValidity, max)
		}
		seen[m.UIDValidity] = true
		max = m.UIDValidity
	}
}

func maxU(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// BenchmarkDeliver measures parallel local delivery of 4 KiB messages to
// 8 accounts from 8 goroutines (the SMTP benchmark's shape), with the
// delivery journal (what the server runs: one fdatasync per group across
// accounts, the indexes applied in batches) and without it (every delivery
// its own synchronous index commit, shared only within an account).
func BenchmarkDeliver(b *testing.B) {
	for _, mode := range []string{"journal", "direct"} {
		b.Run(mode, func(b *testing.B) {
			var s *Store
			if mode == "journal" {
				s, _ = newJournaledStore(b)
			} else {
				s, _ = newStore(b)
			}
			body := bytes.Repeat([]byte("x"), 4096)
			copy(body, "From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n")
			for id := int64(1); id <= 8; id++ {
				account(b, s, id)
			}
			var next atomic.Int64
			b.SetParallelism(4) // 8 goroutines on 2 cores
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 0, 8<<10)
				for pb.Next() {
					w := s.NewBodyBuffer(buf[:0])
					w.Write(body)
					tm, err := w.Finish()
					if err != nil {
						b.Error(err)
						return
					}
					if err := s.Deliver(ctx, tm, []Target{{AccountID: next.Add(1)%8 + 1}}); err != nil {
						b.Error(err)
					}
					tm.Remove()
				}
			})
			// Every delivery applied: the cost of the batches is in.
			for id := int64(1); id <= 8; id++ {
				messages(b, account(b, s, id), "INBOX")
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// TestSubscriptions: subscriptions are names. A new mailbox is subscribed,
// a renamed one keeps its subscription, a deleted one stays subscribed
// until unsubscribed; only existing mailboxes can be subscribed to.
func TestSubscriptions(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	subs := func() []string {
		t.Helper()
		n, err := a.Subscriptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}
	if got := subs(); !slices.Equal(got, want) {
		t.Fatalf("new account subscriptions %q, want %q", got, want)
	}
	if _, err := a.CreateMailbox(ctx, "Lists/go", ""); err != nil {
		t.Fatal(err)
	}
	// CREATE does not subscribe (migration 4), the default mailboxes
	// are.
	if mailbox(t, a, "Lists/go").Subscribed || mailbox(t, a, "Lists").Subscribed {
		t.Error("a created mailbox is subscribed")
	}
	if err := a.SetSubscribed(ctx, "Junk", false); err != nil {
		t.Fatal(err)
	}
	if err := a.SetSubscribed(ctx, "Lists/go", true); err != nil {
		t.Fatal(err)
	}
	if mailbox(t, a, "Junk").Subscribed || !mailbox(t, a, "Lists/go").Subscribed {
		t.Error("Mailbox.Subscribed does not follow the subscriptions")
	}
	if err := a.RenameMailbox(ctx, "Lists/go", "Lists/golang"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteMailbox(ctx, "Trash"); err != nil {
		t.Fatal(err)
	}
	want = []string{"Archive", "Drafts", "INBOX", "Lists/golang", "Sent", "Trash"}
	if got := subs(); !slices.Equal(got, want) {
		t.Fatalf("subscriptions %q, want %q", got, want)
	}
	if !mailbox(t, a, "Lists/golang").Subscribed {
		t.Error("renamed mailbox lost its subscription")
	}
	if err := a.SetSubscribed(ctx, "Trash", true); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("subscribe to a deleted mailbox: %v, want ErrNoMailbox", err)
	}
	if err := a.SetSubscribed(ctx, "Trash", false); err != nil {
		t.Errorf("unsubscribe a deleted mailbox's name: %v", err)
	}
	if err := a.SetSubscribed(ctx, "Trash", false); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("unsubscribe a name neither subscribed nor a mailbox: %v, want ErrNoMailbox", err)
	}
	if err := a.SetSubscribed(ctx, "Junk", false); err != nil {
		t.Errorf("unsubscribe an existing unsubscribed mailbox: %v", err)
	}
	// A mailbox created under a name still subscribed is subscribed.
	if err := a.DeleteMailbox(ctx, "Sent"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateMailbox(ctx, "Sent", ""); err != nil {
		t.Fatal(err)
	}
	if !mailbox(t, a, "Sent").Subscribed {
		t.Error("re-created mailbox not subscribed")
	}
}

// TestMailboxNamesNFC: a name with a combining mark and its precomposed
// form are one mailbox (RFC 9051 §5.1: names are Net-Unicode, NFC).
func TestMailboxNamesNFC(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	decomposed := "Cafe\u0301" // e + combining acute
	precomposed := "Caf\u00e9" // é
	if _, err := a.CreateMailbox(ctx, decomposed, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateMailbox(ctx, precomposed, ""); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("creating the precomposed form: %v, want ErrMailboxExists", err)
	}
	mb, err := a.Mailbox(ctx, precomposed)
	if err != nil {
		t.Fatalf("Mailbox(precomposed): %v", err)
	}
	if mb.Name != precomposed {
		t.Errorf("stored name %q, want the NFC form %q", mb.Name, precomposed)
	}
	deliver(t, s, testBody(1), Target{AccountID: 1, Mailbox: decomposed})
	if n := len(messages(t, a, precomposed)); n != 1 {
		t.Errorf("%d messages delivered to the decomposed name, want 1", n)
	}
}

// TestView: the UIDs of a mailbox in order and its first unseen message,
// as SELECT needs them.
func TestView(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	for i := 0; i < 4; i++ {
		var fl Flags
		if i < 2 {
			fl = FlagSeen
		}
		deliver(t, s, testBody(i), Target{AccountID: 1, Flags: fl})
	}
	mb, uids, first, err := a.View(ctx, "inbox")
	if err != nil {
		t.Fatal(err)
	}
	if mb.Name != "INBOX" || !slices.Equal(uids, []uint32{1, 2, 3, 4}) || first != 3 {
		t.Fatalf("View = %q %v first unseen %d, want INBOX [1 2 3 4] 3", mb.Name, uids, first)
	}
	if _, _, _, err := a.View(ctx, "nosuch"); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("View(nosuch) = %v, want ErrNoMailbox", err)
	}
	if _, uids, first, err := a.View(ctx, "Sent"); err != nil || len(uids) != 0 || first != 0 {
		t.Errorf("View(Sent) = %v %d %v", uids, first, err)
	}
}

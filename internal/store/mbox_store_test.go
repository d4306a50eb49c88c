package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// countBodies counts the body files of an account.
func mboxCountBodies(t *testing.T, a *Account) int {
	t.Helper()
	n := 0
	if err := a.bodies.Walk(func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppendMessages(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	date := time.Date(2021, 5, 6, 7, 8, 9, 0, time.FixedZone("", -3600))
	specs := []AppendMessage{
		{Body: newTemp(t, s, testBody(1)), Flags: FlagSeen, Keywords: []string{"b", "a", "A"}, Date: date},
		{Body: newTemp(t, s, testBody(2))},
	}
	res, err := a.AppendMessages(ctx, "sent", specs)
	if !errors.Is(err, ErrNoMailbox) {
		t.Fatalf("append to a missing mailbox: %v", err)
	}
	if n := mboxCountBodies(t, a); n != 0 {
		t.Errorf("%d bodies left after a failed append", n)
	}
	res, err = a.AppendMessages(ctx, "Sent", specs)
	if err != nil {
		t.Fatal(err)
	}
	mb := mailbox(t, a, "Sent")
	if res.UIDValidity != mb.UIDValidity || len(res.Messages) != 2 || res.Messages[0].UID != 1 || res.Messages[1].UID != 2 {
		t.Fatalf("result %+v", res)
	}
	ms := messages(t, a, "Sent")
	if len(ms) != 2 || string(readBody(t, a, ms[1])) != string(testBody(2)) {
		t.Fatalf("stored %+v", ms)
	}
	if ms[0].Flags != FlagSeen || !slices.Equal(ms[0].Keywords, []string{"a", "b"}) || !ms[0].InternalDate.Equal(date) {
		t.Errorf("first message %+v", ms[0])
	}
	if d := time.Since(ms[1].InternalDate); d < 0 || d > time.Minute {
		t.Errorf("zero date became %v", ms[1].InternalDate)
	}
	if ms[0].EmailID == ms[1].EmailID {
		t.Error("messages share an EMAILID")
	}
}

func TestExpungeDeleted(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	for i := range 6 {
		deliver(t, s, testBody(i), Target{AccountID: 1})
	}
	mb := mailbox(t, a, "INBOX")
	if _, err := a.SetFlags(ctx, mb.ID, []uint32{2, 3, 4, 6}, FlagUpdate{Op: FlagsAdd, Flags: FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	before := mailbox(t, a, "INBOX").HighestModSeq

	// Only UIDs up to 5 that keep accepts: 2 and 4, not 3 (filtered) nor
	// 6 (above maxUID).
	removed, highest, err := a.ExpungeDeleted(ctx, mb.ID, 5, func(u uint32) bool { return u != 3 })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []uint32{2, 4}) || highest <= before {
		t.Fatalf("removed %v, highest %d (was %d)", removed, highest, before)
	}
	if got := uids(messages(t, a, "INBOX")); !slices.Equal(got, []uint32{1, 3, 5, 6}) {
		t.Errorf("left %v", got)
	}
	if hm := mailbox(t, a, "INBOX").HighestModSeq; hm != highest {
		t.Errorf("HIGHESTMODSEQ %d, returned %d", hm, highest)
	}
	_, gone, err := a.Changes(ctx, mb.ID, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || gone[0] != (Expunged{2, highest}) || gone[1] != (Expunged{4, highest}) {
		t.Errorf("expunged %+v", gone)
	}
	if n := mboxCountBodies(t, a); n != 4 {
		t.Errorf("%d bodies, want 4", n)
	}
	// Nothing to do: no new MODSEQ.
	removed, h2, err := a.ExpungeDeleted(ctx, mb.ID, 5, func(u uint32) bool { return u != 3 })
	if err != nil || len(removed) != 0 || h2 != highest {
		t.Errorf("second expunge: %v %d %v", removed, h2, err)
	}
	// A message whose \Deleted flag was removed is kept.
	if _, err := a.SetFlags(ctx, mb.ID, []uint32{3}, FlagUpdate{Op: FlagsRemove, Flags: FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if removed, _, err = a.ExpungeDeleted(ctx, mb.ID, 100, nil); err != nil || !slices.Equal(removed, []uint32{6}) {
		t.Errorf("expunge all: %v %v", removed, err)
	}
	if _, _, err := a.ExpungeDeleted(ctx, 9999, 100, nil); !errors.Is(err, ErrNoMailbox) {
		t.Errorf("missing mailbox: %v", err)
	}
}

func TestStatuses(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	deliver(t, s, testBody(1), Target{AccountID: 1, Flags: FlagSeen})
	deliver(t, s, testBody(2), Target{AccountID: 1, Flags: FlagDeleted})
	deliver(t, s, testBody(3), Target{AccountID: 1})
	inbox, trash := mailbox(t, a, "INBOX"), mailbox(t, a, "Trash")
	sts, err := a.Statuses(ctx, []int64{inbox.ID, trash.ID, 9999})
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 {
		t.Fatalf("statuses %+v", sts)
	}
	b1, b2, b3 := int64(len(testBody(1))), int64(len(testBody(2))), int64(len(testBody(3)))
	want := MailboxStatus{Mailbox: mailbox(t, a, "INBOX"), Messages: 3, Unseen: 2, Deleted: 1, Size: b1 + b2 + b3, DeletedSize: b2}
	if sts[inbox.ID] != want {
		t.Errorf("INBOX %+v, want %+v", sts[inbox.ID], want)
	}
	if st, err := a.Status(ctx, "INBOX"); err != nil || st != want {
		t.Errorf("Status %+v %v", st, err)
	}
	if sts[trash.ID] != (MailboxStatus{Mailbox: trash}) {
		t.Errorf("Trash %+v", sts[trash.ID])
	}
}

// RFC 9051 §6.3.6: INBOX may be renamed below itself; its messages move,
// INBOX and its children stay.
func TestRenameInboxToChild(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	deliver(t, s, testBody(1), Target{AccountID: 1})
	if _, err := a.CreateMailbox(ctx, "INBOX/kid", ""); err != nil {
		t.Fatal(err)
	}
	if err := a.RenameMailbox(ctx, "INBOX", "INBOX/old"); err != nil {
		t.Fatal(err)
	}
	if n := len(messages(t, a, "INBOX")); n != 0 {
		t.Errorf("INBOX has %d messages", n)
	}
	if got := uids(messages(t, a, "INBOX/old")); !slices.Equal(got, []uint32{1}) {
		t.Errorf("INBOX/old UIDs %v", got)
	}
	mailbox(t, a, "INBOX/kid")
	// Other mailboxes still cannot move into themselves.
	if err := a.RenameMailbox(ctx, "INBOX/kid", "INBOX/kid/x"); !errors.Is(err, ErrBadName) {
		t.Errorf("rename into itself: %v", err)
	}
}

package store

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func imported(t *testing.T, s *Store, uid uint32, uidl string, inline bool) ImportedMessage {
	t.Helper()
	body := testBody(int(uid))
	m := ImportedMessage{UID: uid, POP3UIDL: uidl}
	m.Flags, m.Keywords, m.Date = FlagSeen, []string{"$Label1", "work"}, time.Unix(1700000000+int64(uid), 0)
	if inline {
		w := s.NewBodyBuffer(nil)
		w.Write(body)
		tm, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		m.Body = tm
	} else {
		m.Body = newTemp(t, s, body)
	}
	return m
}

func TestImportKeepsUIDs(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	const v = 1275660208
	mb, err := a.ImportMailbox(ctx, "INBOX", v)
	if err != nil {
		t.Fatal(err)
	}
	if mb.UIDValidity != v || mb.UIDNext != 1 {
		t.Fatalf("INBOX after ImportMailbox: %+v", mb)
	}
	msgs := []ImportedMessage{imported(t, s, 7, "0000000749FA1D30", true), imported(t, s, 3, "", false), imported(t, s, 12, "custom-uidl", false)}
	res, err := a.ImportMessages(ctx, "INBOX", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if got := uids(res.Added); !slices.Equal(got, []uint32{3, 7, 12}) {
		t.Fatalf("added UIDs %v", got)
	}
	if err := a.RaiseUIDNext(ctx, "INBOX", 25022); err != nil {
		t.Fatal(err)
	}
	mb = mailbox(t, a, "INBOX")
	if mb.UIDValidity != v || mb.UIDNext != 25022 {
		t.Errorf("INBOX: %+v", mb)
	}
	ms := messages(t, a, "INBOX")
	if !slices.Equal(uids(ms), []uint32{3, 7, 12}) || ms[0].Flags != FlagSeen || !slices.Equal(ms[0].Keywords, []string{"$Label1", "work"}) {
		t.Errorf("messages %+v", ms)
	}
	for _, m := range ms {
		if string(readBody(t, a, m)) != string(testBody(int(m.UID))) {
			t.Errorf("UID %d: wrong body", m.UID)
		}
	}
	u, err := a.POP3UIDLs(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 2 || u[ms[1].ID] != "0000000749FA1D30" || u[ms[2].ID] != "custom-uidl" {
		t.Errorf("POP3 UIDLs %v", u)
	}

	// Run again, with one message more above the others: only it is
	// added. A UID below UIDNEXT that is not there is skipped.
	again := append(msgs, imported(t, s, 25030, "", false), imported(t, s, 20, "", false))
	res, err = a.ImportMessages(ctx, "INBOX", again)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(uids(res.Added), []uint32{25030}) || res.Present != 3 || res.Below != 1 {
		t.Errorf("second import: added %v, present %d, below %d", uids(res.Added), res.Present, res.Below)
	}
	if mb := mailbox(t, a, "INBOX"); mb.UIDNext != 25031 {
		t.Errorf("UIDNEXT %d, want 25031", mb.UIDNext)
	}
	// A new delivery goes above the imported UIDs.
	deliver(t, s, testBody(99), Target{AccountID: 1, Mailbox: "INBOX"})
	if ms := messages(t, a, "INBOX"); ms[len(ms)-1].UID != 25031 {
		t.Errorf("delivered UID %d, want 25031", ms[len(ms)-1].UID)
	}

	// Expunging drops a kept UIDL with its message.
	if _, err := a.Expunge(ctx, mb.ID, []uint32{7}); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.POP3UIDLs(ctx, mb.ID); len(u) != 1 {
		t.Errorf("POP3 UIDLs after expunge: %v", u)
	}
	var n int
	if err := a.db.R.QueryRowContext(ctx, `SELECT count(*) FROM pop3_uidls`).Scan(&n); err != nil || n != 1 {
		t.Errorf("pop3_uidls rows: %d, %v", n, err)
	}

	// The mailbox has messages now: another UIDVALIDITY is refused.
	if _, err := a.ImportMailbox(ctx, "INBOX", v+1); !errors.Is(err, ErrUIDValidity) {
		t.Errorf("ImportMailbox with another UIDVALIDITY: %v", err)
	}
	// The same one is fine.
	if _, err := a.ImportMailbox(ctx, "INBOX", v); err != nil {
		t.Errorf("ImportMailbox again: %v", err)
	}
}

func TestImportMailboxCreates(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	mb, err := a.ImportMailbox(ctx, "Lists/go-nuts", 42)
	if err != nil {
		t.Fatal(err)
	}
	if mb.UIDValidity != 42 {
		t.Errorf("UIDVALIDITY %d", mb.UIDValidity)
	}
	mailbox(t, a, "Lists")
	// A mailbox made later still gets a UIDVALIDITY above all before.
	nb, err := a.CreateMailbox(ctx, "Later", "")
	if err != nil {
		t.Fatal(err)
	}
	if nb.UIDValidity <= mailbox(t, a, "INBOX").UIDValidity {
		t.Errorf("new mailbox UIDVALIDITY %d", nb.UIDValidity)
	}
	if _, err := a.ImportMessages(ctx, "Lists/go-nuts", []ImportedMessage{{UID: 0, AppendMessage: AppendMessage{Body: newTemp(t, s, testBody(1))}}}); err == nil {
		t.Errorf("UID 0 accepted")
	}
	bad := imported(t, s, 1, "has space", false)
	if _, err := a.ImportMessages(ctx, "Lists/go-nuts", []ImportedMessage{bad}); err == nil {
		t.Errorf("UIDL with a space accepted")
	}
}

package store

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestRowsInUIDRange(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	for i := range 5 {
		deliver(t, s, testBody(i), Target{AccountID: 1})
	}
	inbox := mailbox(t, a, "INBOX")
	if _, err := a.SetFlags(ctx, inbox.ID, []uint32{2}, FlagUpdate{Op: FlagsAdd, Flags: FlagSeen, Keywords: []string{"$b", "$a"}}); err != nil {
		t.Fatal(err)
	}
	all := messages(t, a, "INBOX")
	got, err := a.MessagesInUIDRange(ctx, inbox.ID, 2, 4, RowAll, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].UID != 2 || got[2].UID != 4 {
		t.Fatalf("range: %+v", got)
	}
	for i, m := range got {
		want := all[i+1]
		if m.ID != want.ID || m.Blob != want.Blob || m.ModSeq != want.ModSeq || !m.InternalDate.Equal(want.InternalDate) ||
			m.EmailID != want.EmailID || !slices.Equal(m.Keywords, want.Keywords) || m.Flags != want.Flags || m.Size != want.Size {
			t.Errorf("row %d: %+v, want %+v", i, m, want)
		}
	}
	// Only some fields.
	got, err = a.MessagesInUIDRange(ctx, inbox.ID, 1, 10, RowFlags, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[1].Flags != FlagSeen || !slices.Equal(got[1].Keywords, []string{"$a", "$b"}) || got[1].ModSeq != all[1].ModSeq ||
		got[1].Blob != "" || got[1].Size != 0 || !got[1].InternalDate.IsZero() || got[1].ID != all[1].ID {
		t.Errorf("flags only: %+v", got[1])
	}
	got, err = a.MessagesInUIDRange(ctx, inbox.ID, 3, 3, RowDates|RowSize|RowBlob|RowObjectIDs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Blob != all[2].Blob || got[0].Size != all[2].Size || got[0].EmailID != all[2].EmailID ||
		!got[0].InternalDate.Equal(all[2].InternalDate) || got[0].SaveDate.Unix() != all[2].SaveDate.Unix() || got[0].Flags != 0 {
		t.Errorf("other fields: %+v", got[0])
	}
	_, off := got[0].InternalDate.Zone()
	_, wantOff := all[2].InternalDate.Zone()
	if off != wantOff {
		t.Errorf("zone %d, want %d", off, wantOff)
	}
	if got, _ := a.MessagesInUIDRange(ctx, inbox.ID, 6, 9, RowAll, 100); len(got) != 0 {
		t.Errorf("empty range: %+v", got)
	}
}

func TestMetaBatch(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	for i := range 3 {
		deliver(t, s, testBody(i), Target{AccountID: 1})
	}
	all := messages(t, a, "INBOX")
	ids := []int64{all[0].ID, all[2].ID, 9999}
	got, err := a.MetaBatch(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d structures", len(got))
	}
	for _, m := range []Message{all[0], all[2]} {
		want, err := a.Meta(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got[m.ID]) != string(want) || !json.Valid(want) {
			t.Errorf("message %d: %s", m.ID, got[m.ID])
		}
	}
	if got, err := a.MetaBatch(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v %v", got, err)
	}
}

func TestStoreFlagsUnchangedSinceZero(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	deliver(t, s, testBody(1), Target{AccountID: 1})
	inbox := mailbox(t, a, "INBOX")
	// RFC 7162 §3.1.3: UNCHANGEDSINCE 0 fails for every message.
	res, err := a.SetFlags(ctx, inbox.ID, []uint32{1}, FlagUpdate{Op: FlagsAdd, Flags: FlagSeen, Conditional: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Modified, []uint32{1}) || len(res.Changed) != 0 {
		t.Errorf("UNCHANGEDSINCE 0: %+v", res)
	}
	// Without Conditional, 0 means no condition.
	res, err = a.SetFlags(ctx, inbox.ID, []uint32{1}, FlagUpdate{Op: FlagsAdd, Flags: FlagSeen})
	if err != nil || len(res.Changed) != 1 {
		t.Errorf("unconditional: %+v %v", res, err)
	}
}

func BenchmarkRowsInUIDRange(b *testing.B) {
	s, _ := newStore(b)
	a := account(b, s, 1)
	targets := make([]Target, 10000)
	for i := range targets {
		targets[i] = Target{AccountID: 1}
	}
	deliver(b, s, testBody(1), targets...)
	inbox := mailbox(b, a, "INBOX")
	for _, bc := range []struct {
		name   string
		fields RowFields
	}{{"flags", RowFlags}, {"all", RowAll}} {
		b.Run(bc.name, func(b *testing.B) {
			start := time.Now()
			for range b.N {
				rows, err := a.MessagesInUIDRange(ctx, inbox.ID, 1, 10000, bc.fields, 10000)
				if err != nil || len(rows) != 10000 {
					b.Fatal(len(rows), err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N*10000), "ns/row")
		})
	}
}

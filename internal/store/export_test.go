package store

import (
	"testing"
)

func TestMessagesAfter(t *testing.T) {
	s, _ := newStore(t)
	a := account(t, s, 1)
	var specs []AppendMessage
	for i := range 7 {
		specs = append(specs, AppendMessage{Body: newTemp(t, s, testBody(i))})
	}
	if _, err := a.AppendMessages(ctx, "INBOX", specs); err != nil {
		t.Fatal(err)
	}
	mb := mailbox(t, a, "INBOX")
	// Leave a gap in the UIDs.
	if _, err := a.Expunge(ctx, mb.ID, []uint32{3, 4}); err != nil {
		t.Fatal(err)
	}
	var got []uint32
	after, pages := uint32(0), 0
	for pages < 10 {
		ms, err := a.MessagesAfter(ctx, mb.ID, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) > 2 {
			t.Fatalf("page of %d rows, limit 2", len(ms))
		}
		if len(ms) == 0 {
			break
		}
		pages++
		for _, m := range ms {
			if m.Blob == "" || m.Size == 0 {
				t.Errorf("row %+v lacks columns", m)
			}
			got = append(got, m.UID)
		}
		after = ms[len(ms)-1].UID
	}
	want := []uint32{1, 2, 5, 6, 7}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("walked %v, want %v", got, want)
		}
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
	if ms, err := a.MessagesAfter(ctx, mb.ID, 0, 0); err != nil || len(ms) != 0 {
		t.Errorf("limit 0: %v, %v", ms, err)
	}
}

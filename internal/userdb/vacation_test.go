package userdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestVacation(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	acc := mustAccount(t, db, "a@example.org")

	v, err := db.Vacation(ctx, acc.ID)
	if err != nil || v.Enabled {
		t.Fatalf("default vacation %+v, %v", v, err)
	}
	start := time.Unix(1_800_000_000, 0)
	want := Vacation{Enabled: true, Subject: "Away", Body: "Back soon.\n", Start: start, End: start.Add(48 * time.Hour)}
	if err := db.SetVacation(ctx, acc.ID, want); err != nil {
		t.Fatal(err)
	}
	if v, err = db.Vacation(ctx, acc.ID); err != nil || v != want {
		t.Fatalf("vacation %+v, %v; want %+v", v, err, want)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{start.Add(-time.Second), false}, {start, true}, {start.Add(47 * time.Hour), true}, {start.Add(48 * time.Hour), false}} {
		if got := v.Active(tc.at); got != tc.want {
			t.Errorf("Active(%v) = %v", tc.at, got)
		}
	}
	for _, bad := range []Vacation{
		{Enabled: true, Subject: "a\r\nBcc: x@example.com", Body: "x"},
		{Enabled: true, Body: "   "},
		{Enabled: true, Body: string(make([]byte, MaxVacationBody+1))},
		{Enabled: true, Body: "x", Start: start, End: start},
	} {
		if err := db.SetVacation(ctx, acc.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetVacation(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := db.SetVacation(ctx, 9999, Vacation{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetVacation of no account = %v", err)
	}
}

func TestVacationReplyDue(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	acc := mustAccount(t, db, "a@example.org")
	other := mustAccount(t, db, "b@example.org")
	now := time.Unix(1_800_000_000, 0)

	due := func(id int64, sender string, at time.Time) bool {
		t.Helper()
		ok, err := db.VacationReplyDue(ctx, id, sender, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !due(acc.ID, "x@example.com", now) {
		t.Fatal("first reply not due")
	}
	if due(acc.ID, "X@Example.com", now.Add(time.Hour)) {
		t.Fatal("second reply within the period is due")
	}
	if !due(other.ID, "x@example.com", now) {
		t.Fatal("another account's first reply not due")
	}
	if !due(acc.ID, "x@example.com", now.Add(VacationPeriod)) {
		t.Fatal("reply after the period not due")
	}
	// Bounded: the oldest records go.
	for i := range maxVacationReplies + 10 {
		due(acc.ID, fmt.Sprintf("s%d@example.com", i), now.Add(VacationPeriod+time.Duration(i)*time.Second))
	}
	var n int
	if err := db.db.R.QueryRowContext(ctx, `SELECT count(*) FROM vacation_replies WHERE account_id=?`, acc.ID).Scan(&n); err != nil || n != maxVacationReplies {
		t.Fatalf("%d records (%v), want %d", n, err, maxVacationReplies)
	}
	// Deleting the account deletes its records.
	if _, err := db.DelAccount(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.db.R.QueryRowContext(ctx, `SELECT count(*) FROM vacation_replies WHERE account_id=?`, acc.ID).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d records after delete (%v)", n, err)
	}
}

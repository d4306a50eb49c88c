package userdb

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// A SHA512-CRYPT hash of "correct horse" made by Dovecot (testdata).
const dovecotSHA512 = "{SHA512-CRYPT}$6$UDer5sgcK/6npnxU$/vepvgt4HJgMnHF3aN8jKSG.CkvMb5PHjzRQCoO8HiRS.TQVRKYYIFrqUN22Y9CLgPCLM3FcBwRqwDppkrtFm/"

func ptr[T any](v T) *T { return &v }

func statuses(res []ImportResult) []string {
	var out []string
	for _, r := range res {
		s := r.Status.String()
		if r.Err != nil {
			s += ": " + r.Err.Error()
		}
		out = append(out, s)
	}
	return out
}

func TestImportBatch(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	mustAccount(t, db, "existing@example.org")
	recs := []ImportRecord{
		{Line: 2, Address: "alice@example.org", Hash: dovecotSHA512, QuotaBytes: ptr(int64(1 << 30)), Admin: ptr(true), Aliases: []string{"a@example.org", "ali@example.org"}},
		{Line: 3, Address: "bob@Example.ORG", Password: "short", APOPSecret: ptr("apop secret 1")},
		{Line: 4, Address: "carol@new.example", Hash: dovecotSHA512},
		{Line: 5, Address: "dave@example.org", Hash: "{NOSUCH}xyz"},
		{Line: 6, Address: "erin@example.org"},
		{Line: 7, Address: "not an address", Hash: dovecotSHA512},
		{Line: 8, Address: "existing@example.org", QuotaBytes: ptr(int64(5000)), Aliases: []string{"ex@example.org"}},
		{Line: 9, Address: "frank@example.org", Hash: "{PLAIN}plain text"},
		{Line: 10, Address: "a@example.org", Hash: dovecotSHA512}, // alias of alice by now
	}
	res, err := db.ImportBatch(ctx, recs, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := statuses(res)
	want := []string{"created", "created", "error", "error", "error", "error", "updated", "created", "error"}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: %s, want %s", recs[i].Line, got[i], want[i])
		}
	}
	if !strings.Contains(got[2], "--create-domains") || !strings.Contains(got[3], "unknown password scheme") {
		t.Errorf("errors do not say why: %q", got)
	}
	if !slices.Equal(res[6].Changed, []string{"quota", "alias ex@example.org"}) {
		t.Errorf("line 8 changed %q", res[6].Changed)
	}
	a, err := db.Authenticate(ctx, "alice@example.org", "correct horse")
	if err != nil || !a.Admin || a.QuotaBytes != 1<<30 {
		t.Fatalf("alice: %+v, %v", a, err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.org", "short"); err != nil {
		t.Errorf("bob with his plain-text password: %v", err)
	}
	if _, err := db.Authenticate(ctx, "frank@example.org", "plain text"); err != nil {
		t.Errorf("frank with his {PLAIN} password: %v", err)
	}
	if _, h, _ := db.Credentials(ctx, "frank@example.org"); HashScheme(h) != "ARGON2ID" {
		t.Errorf("{PLAIN} stored as %q, want it hashed", h)
	}
	if targets, err := db.Alias(ctx, "ali@example.org"); err != nil || !slices.Equal(targets, []string{"alice@example.org"}) {
		t.Errorf("alias ali: %q, %v", targets, err)
	}

	// Alice logged in above: her hash is argon2id now. The same import
	// again changes nothing, and says so.
	if _, h, _ := db.Credentials(ctx, "alice@example.org"); NeedsRehash(h) {
		t.Errorf("alice's hash after a login: %q, want our argon2id", h)
	}
	res, err = db.ImportBatch(ctx, recs, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got = statuses(res)
	want = []string{"unchanged", "unchanged", "error", "error", "error", "error", "unchanged", "unchanged", "error"}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("second run, line %d: %s, want %s", recs[i].Line, got[i], want[i])
		}
	}

	// With --create-domains carol comes in; a new hash for alice is an
	// update.
	other := "{SSHA512}NvzbD3PQjeY/AbP5h54B7fk5gfyF32wrhU/z9y/qwZXxcBOYOkvM9lTL1p9AlwFWwmfynlql82TFxx2TEQzIQ9zOExs="
	res, err = db.ImportBatch(ctx, []ImportRecord{
		{Line: 1, Address: "carol@new.example", Hash: dovecotSHA512},
		{Line: 2, Address: "alice@example.org", Hash: other},
	}, ImportOptions{CreateDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); got[0] != "created" || got[1] != "updated" {
		t.Errorf("third run: %q", got)
	}
	if ok, _ := db.IsLocalDomain(ctx, "new.example"); !ok {
		t.Errorf("new.example not created")
	}
	if _, err := db.Authenticate(ctx, "alice@example.org", "correct horse"); err != nil {
		t.Errorf("alice after the new hash: %v", err)
	}
}

func TestRehashKeepsAChangedPassword(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	if _, err := db.ImportBatch(ctx, []ImportRecord{{Address: "a@example.org", Hash: dovecotSHA512}}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	acc, old, err := db.Credentials(ctx, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, "a@example.org", "a new password"); err != nil {
		t.Fatal(err)
	}
	// A login verified the old hash just before the change: its rehash
	// must not undo the change.
	if _, err := db.Rehash(ctx, acc.ID, old, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "a@example.org", "a new password"); err != nil {
		t.Errorf("the changed password no longer works: %v", err)
	}
	if _, err := db.Authenticate(ctx, "a@example.org", "correct horse"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("the old password works again: %v", err)
	}
}

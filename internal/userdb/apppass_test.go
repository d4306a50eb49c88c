package userdb

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestAppPasswords(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	acc := mustAccount(t, db, "a@example.org")
	other := mustAccount(t, db, "b@example.org")

	pw, ap, err := db.AddAppPassword(ctx, acc.ID, " phone ")
	if err != nil {
		t.Fatal(err)
	}
	if ap.Name != "phone" || ap.ID == 0 {
		t.Fatalf("app password %+v", ap)
	}
	if _, ok := appLookup(pw); !ok {
		t.Fatalf("generated %q is not in the app-password form", pw)
	}
	hashes, err := db.AppPasswordHashes(ctx, acc.ID, pw)
	if err != nil || len(hashes) != 1 || !VerifyPassword(hashes[0], pw) {
		t.Fatalf("hashes %v, %v", hashes, err)
	}
	if hashes[0] == pw || NeedsRehash(hashes[0]) {
		t.Fatalf("stored %q, want an argon2id hash", hashes[0])
	}
	// Another account, another form: no candidates.
	if h, _ := db.AppPasswordHashes(ctx, other.ID, pw); len(h) != 0 {
		t.Fatalf("other account's candidates %v", h)
	}
	if h, _ := db.AppPasswordHashes(ctx, acc.ID, "not-an-app-password"); len(h) != 0 {
		t.Fatalf("candidates for a plain password %v", h)
	}
	list, err := db.AppPasswords(ctx, acc.ID)
	if err != nil || len(list) != 1 || list[0].ID != ap.ID || list[0].Name != "phone" {
		t.Fatalf("list %+v, %v", list, err)
	}
	// Only the owner revokes.
	if err := db.DelAppPassword(ctx, other.ID, ap.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke by another account: %v", err)
	}
	if err := db.DelAppPassword(ctx, acc.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	if h, _ := db.AppPasswordHashes(ctx, acc.ID, pw); len(h) != 0 {
		t.Fatalf("revoked app password still has candidates %v", h)
	}
	for _, name := range []string{"", "   ", "a\nb", string(make([]byte, 65))} {
		if _, _, err := db.AddAppPassword(ctx, acc.ID, name); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v, want ErrInvalid", name, err)
		}
	}
	if _, _, err := db.AddAppPassword(ctx, 9999, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
}

func TestAppPasswordsLimitAndCascade(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	acc := mustAccount(t, db, "a@example.org")
	for i := range maxAppPasswd {
		if _, _, err := db.AddAppPassword(ctx, acc.ID, fmt.Sprint("d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.AddAppPassword(ctx, acc.ID, "one more"); !errors.Is(err, ErrTooMany) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := db.DelAccount(ctx, acc.Address); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.db.R.QueryRow(`SELECT count(*) FROM app_passwords`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d app passwords left after deleting the account (%v)", n, err)
	}
}

func TestAppLookup(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"abcd-efgh-ijkm-nopq-rstu", true},
		{"abcd-efgh-ijkm-nopq-rst", false},
		{"abcd-efgh-ijkm-nopq-rstuv", false},
		{"abcdefghijkmnopqrstuvwx", false},
		{"abcd-efgh-ijkm-nopq-rst0", false}, // 0 is not in the alphabet
		{"abcd_efgh-ijkm-nopq-rstu", false},
	} {
		if _, ok := appLookup(tc.in); ok != tc.ok {
			t.Errorf("appLookup(%q) = %v, want %v", tc.in, ok, tc.ok)
		}
	}
}

func TestSearchAccountsAndAdmin(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org", "example.net")
	for _, a := range []string{"zed@example.org", "amy@example.org", "bob@example.net", "a_b@example.org", "axb@example.org"} {
		mustAccount(t, db, a)
	}
	p, err := db.SearchAccounts(ctx, "", "", 0, 2)
	if err != nil || p.Total != 5 || len(p.Accounts) != 2 || p.Accounts[0].Address != "a_b@example.org" {
		t.Fatalf("first page %+v, %v", p, err)
	}
	p, _ = db.SearchAccounts(ctx, "", "", 4, 2)
	if len(p.Accounts) != 1 || p.Accounts[0].Address != "zed@example.org" {
		t.Fatalf("last page %+v", p)
	}
	// '_' is literal, not LIKE's any-character.
	p, _ = db.SearchAccounts(ctx, "A_B", "", 0, 10)
	if p.Total != 1 || p.Accounts[0].Address != "a_b@example.org" {
		t.Fatalf("search a_b: %+v", p)
	}
	p, _ = db.SearchAccounts(ctx, "", "EXAMPLE.NET", 0, 10)
	if p.Total != 1 || p.Accounts[0].Address != "bob@example.net" {
		t.Fatalf("domain filter: %+v", p)
	}
	if err := db.SetAdmin(ctx, "Amy@EXAMPLE.org", true); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Account(ctx, "amy@example.org"); !a.Admin {
		t.Fatal("admin flag not set")
	}
	db.SetAdmin(ctx, "amy@example.org", false)
	if a, _ := db.Account(ctx, "amy@example.org"); a.Admin {
		t.Fatal("admin flag not cleared")
	}
	if err := db.SetAdmin(ctx, "nobody@example.org", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	if err := db.AddAlias(ctx, "@example.net", []string{"bob@example.net"}); err != nil {
		t.Fatal(err)
	}
	infos, err := db.DomainInfos(ctx)
	if err != nil || len(infos) != 2 || infos[0] != (DomainInfo{"example.net", 1, 1}) || infos[1] != (DomainInfo{"example.org", 4, 0}) {
		t.Fatalf("domain infos %+v, %v", infos, err)
	}
}

// FuzzAppLookup: the lookup key is the first group of a password in the
// app-password form, and every generated password has that form.
func FuzzAppLookup(f *testing.F) {
	f.Add("abcd-efgh-ijkm-nopq-rstu")
	f.Add(generateAppPassword())
	f.Add("abcd-efgh-ijkm-nopq-rst\xff")
	f.Fuzz(func(t *testing.T, p string) {
		if k, ok := appLookup(p); ok && (len(p) != 24 || k != p[:4]) {
			t.Fatalf("appLookup(%q) = %q", p, k)
		}
		if g := generateAppPassword(); !func() bool { _, ok := appLookup(g); return ok }() {
			t.Fatalf("generated %q is not in the form", g)
		}
	})
}

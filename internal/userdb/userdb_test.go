package userdb

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

const testPassword = "correct horse battery staple"

func openDB(t *testing.T) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

// withDomains opens a DB with the given local domains.
func withDomains(t *testing.T, domains ...string) *DB {
	t.Helper()
	db, _ := openDB(t)
	for _, d := range domains {
		if err := db.AddDomain(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func mustAccount(t *testing.T, db *DB, addr string) Account {
	t.Helper()
	a, err := db.AddAccount(context.Background(), addr, testPassword)
	if err != nil {
		t.Fatalf("AddAccount(%s): %v", addr, err)
	}
	return a
}

func TestSplitAddress(t *testing.T) {
	for _, tc := range []struct {
		in           string
		local, domai string
		ok           bool
	}{
		{"bob@example.org", "bob", "example.org", true},
		{"Bob@EXAMPLE.Org", "Bob", "example.org", true}, // local part kept as given
		{"bob+tag@example.org", "bob+tag", "example.org", true},
		{"a.b-c_d@sub.example.org", "a.b-c_d", "sub.example.org", true},
		{"jürgen@bücher.example", "jürgen", "bücher.example", true},
		{"x@localhost", "x", "localhost", true},
		{strings.Repeat("a", 64) + "@example.org", strings.Repeat("a", 64), "example.org", true},

		{"", "", "", false},
		{"@", "", "", false},
		{"bob", "", "", false},
		{"bob@", "", "", false},
		{"@example.org", "", "", false},
		{"a@b@example.org", "", "", false},
		{"@@example.org", "", "", false},
		{"bob @example.org", "", "", false},
		{" bob@example.org", "", "", false},
		{"bob@example.org ", "", "", false},
		{"bob@exa mple.org", "", "", false},
		{"bob\t@example.org", "", "", false},
		{"bob\r\n@example.org", "", "", false},
		{"bob\x00@example.org", "", "", false},
		{"bob\x7f@example.org", "", "", false},
		{"bob\u0085@example.org", "", "", false},  // C1 control
		{"bob\u00a0x@example.org", "", "", false}, // no-break space
		{"<bob@example.org>", "", "", false},
		{"<bob>@example.org", "", "", false},
		{`"bob"@example.org`, "", "", false},
		{`bo\b@example.org`, "", "", false},
		{"a,b@example.org", "", "", false},
		{"bob@.example.org", "", "", false},
		{"bob@example.org.", "", "", false},
		{"bob@example..org", "", "", false},
		{"bob@-example.org", "", "", false},
		{"bob@example-.org", "", "", false},
		{"bob@exam_ple.org", "", "", false},
		{"bob@[192.0.2.1]", "", "", false},
		{"bob@example.org/x", "", "", false},
		{"bob@example.org\x00", "", "", false},
		{"bob@\xff.org", "", "", false},
		{"b\xffb@example.org", "", "", false},
		{"bob@exa\u2028mple.org", "", "", false},
		{strings.Repeat("a", 65) + "@example.org", "", "", false},
		{"bob@" + strings.Repeat("a.", 127) + "ab", "", "", false}, // 256 > 253
	} {
		local, domain, err := SplitAddress(tc.in)
		if tc.ok {
			if err != nil || local != tc.local || domain != tc.domai {
				t.Errorf("SplitAddress(%q) = %q, %q, %v; want %q, %q", tc.in, local, domain, err, tc.local, tc.domai)
			}
			continue
		}
		if err == nil {
			t.Errorf("SplitAddress(%q) = %q, %q; want an error", tc.in, local, domain)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("SplitAddress(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
}

func FuzzSplitAddress(f *testing.F) {
	for _, s := range []string{"bob@example.org", "Bob+x@EXAMPLE.ORG", "a@b@c", "@x", "x@", "jürgen@bücher.example",
		"a@b..c", "\xff@x.org", "a@İ.org", "a@K.org", "a@ß.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		local, domain, err := SplitAddress(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("SplitAddress(%q) error %v is not ErrInvalid", in, err)
			}
			if local != "" || domain != "" {
				t.Fatalf("SplitAddress(%q) returned parts with an error", in)
			}
			return
		}
		if local == "" || domain == "" || len(local) > 64 || len(domain) > 253 {
			t.Fatalf("SplitAddress(%q) = %q, %q: bad lengths", in, local, domain)
		}
		if local+"@"+domain != in[:strings.LastIndexByte(in, '@')]+"@"+domain {
			t.Fatalf("SplitAddress(%q) changed the local part: %q", in, local)
		}
		if strings.ContainsRune(local, '@') || strings.ContainsRune(domain, '@') {
			t.Fatalf("SplitAddress(%q) = %q, %q: @ in a part", in, local, domain)
		}
		if !utf8.ValidString(local) || !utf8.ValidString(domain) {
			t.Fatalf("SplitAddress(%q): invalid UTF-8 accepted", in)
		}
		for _, r := range local + domain {
			if unicode.IsSpace(r) || unicode.IsControl(r) {
				t.Fatalf("SplitAddress(%q): accepted %q", in, r)
			}
		}
		if strings.ToLower(domain) != domain {
			t.Fatalf("SplitAddress(%q): domain %q not lower case", in, domain)
		}
		// Normalising is idempotent: a normalised address splits to itself.
		n, err := NormalizeAddress(in)
		if err != nil || n != local+"@"+domain {
			t.Fatalf("NormalizeAddress(%q) = %q, %v", in, n, err)
		}
		l2, d2, err := SplitAddress(n)
		if err != nil || l2 != local || d2 != domain {
			t.Fatalf("SplitAddress(normalised %q) = %q, %q, %v; want %q, %q", n, l2, d2, err, local, domain)
		}
	})
}

func TestDomains(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	for _, d := range []string{"Example.ORG", " zeta.example ", "alpha.example"} {
		if err := db.AddDomain(ctx, d); err != nil {
			t.Fatalf("AddDomain(%q): %v", d, err)
		}
	}
	for _, d := range []string{"example.org", "EXAMPLE.org"} {
		if err := db.AddDomain(ctx, d); !errors.Is(err, ErrExists) {
			t.Errorf("AddDomain(%q) again = %v, want ErrExists", d, err)
		}
	}
	for _, d := range []string{"", "bad domain", "a..b", ".x", "x.", "a/b", "a@b"} {
		if err := db.AddDomain(ctx, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddDomain(%q) = %v, want ErrInvalid", d, err)
		}
	}
	got, err := db.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alpha.example", "example.org", "zeta.example"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		d    string
		want bool
	}{{"example.org", true}, {"EXAMPLE.Org", true}, {"other.org", false}, {"", false}} {
		if ok, err := db.IsLocalDomain(ctx, tc.d); err != nil || ok != tc.want {
			t.Errorf("IsLocalDomain(%q) = %v, %v; want %v", tc.d, ok, err, tc.want)
		}
	}

	// Deletion is refused while an account or an alias (a catch-all too)
	// uses the domain.
	mustAccount(t, db, "bob@example.org")
	if err := db.DelDomain(ctx, "example.org"); err == nil {
		t.Fatal("DelDomain with an account succeeded")
	}
	if _, err := db.DelAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAlias(ctx, "@example.org", []string{"x@alpha.example"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DelDomain(ctx, "EXAMPLE.org"); err == nil {
		t.Fatal("DelDomain with a catch-all alias succeeded")
	}
	if err := db.DelAlias(ctx, "@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelDomain(ctx, "EXAMPLE.org"); err != nil {
		t.Fatalf("DelDomain of an unused domain: %v", err)
	}
	if err := db.DelDomain(ctx, "example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelDomain twice = %v, want ErrNotFound", err)
	}
	if ok, _ := db.IsLocalDomain(ctx, "example.org"); ok {
		t.Error("deleted domain is still local")
	}
}

func TestAddAccount(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")

	if _, err := db.AddAccount(ctx, "bob@other.org", testPassword); !errors.Is(err, ErrNotFound) {
		t.Errorf("AddAccount in a non-local domain = %v, want ErrNotFound", err)
	} else if !strings.Contains(err.Error(), "other.org") {
		t.Errorf("error %q does not name the domain", err)
	}

	a := mustAccount(t, db, "Bob@EXAMPLE.ORG")
	if a.Address != "Bob@example.org" {
		t.Errorf("Address = %q, want Bob@example.org", a.Address)
	}
	if a.ID <= 0 || a.Created.IsZero() || a.HasAPOP || a.QuotaBytes != 0 {
		t.Errorf("new account = %+v", a)
	}

	for _, addr := range []string{"Bob@example.org", "bob@example.org", "BOB@Example.Org"} {
		if _, err := db.AddAccount(ctx, addr, testPassword); !errors.Is(err, ErrExists) {
			t.Errorf("AddAccount(%q) duplicate = %v, want ErrExists", addr, err)
		}
	}
	for _, tc := range []struct{ addr, pw string }{
		{"not-an-address", testPassword},
		{"a b@example.org", testPassword},
		{"a@b@example.org", testPassword},
		{"carol@example.org", "short"},
		{"carol@example.org", "has\nnewline"},
		{"carol@example.org", strings.Repeat("x", 1025)},
	} {
		if _, err := db.AddAccount(ctx, tc.addr, tc.pw); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddAccount(%q, %q) = %v, want ErrInvalid", tc.addr, tc.pw, err)
		}
	}
	if _, err := db.Account(ctx, "carol@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused AddAccount left an account: %v", err)
	}

	// Lookup is case-insensitive and returns the stored form.
	for _, addr := range []string{"bob@example.org", "BOB@EXAMPLE.ORG"} {
		got, err := db.Account(ctx, addr)
		if err != nil || got.ID != a.ID || got.Address != "Bob@example.org" {
			t.Errorf("Account(%q) = %+v, %v", addr, got, err)
		}
	}
	if got, err := db.AccountByID(ctx, a.ID); err != nil || got.Address != a.Address {
		t.Errorf("AccountByID = %+v, %v", got, err)
	}
	if _, err := db.AccountByID(ctx, a.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("AccountByID(unknown) = %v, want ErrNotFound", err)
	}

	// Account and alias names never clash.
	if err := db.AddAlias(ctx, "info@example.org", []string{"bob@example.org"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddAccount(ctx, "INFO@example.org", testPassword); !errors.Is(err, ErrExists) {
		t.Errorf("AddAccount over an alias = %v, want ErrExists", err)
	}
	if err := db.AddAlias(ctx, "bob@EXAMPLE.org", []string{"x@example.org"}); !errors.Is(err, ErrExists) {
		t.Errorf("AddAlias over an account = %v, want ErrExists", err)
	}
}

func TestAccountsListAndDelete(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "b.example", "a.example")
	mustAccount(t, db, "zed@a.example")
	bob := mustAccount(t, db, "bob@b.example")
	mustAccount(t, db, "amy@a.example")

	list, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, a := range list {
		addrs = append(addrs, a.Address)
	}
	if want := []string{"amy@a.example", "zed@a.example", "bob@b.example"}; !slices.Equal(addrs, want) {
		t.Errorf("Accounts = %q, want %q", addrs, want)
	}

	del, err := db.DelAccount(ctx, "BOB@b.example")
	if err != nil {
		t.Fatal(err)
	}
	if del.ID != bob.ID || del.Address != "bob@b.example" {
		t.Errorf("DelAccount returned %+v, want %+v", del, bob)
	}
	if _, err := db.Account(ctx, "bob@b.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Account after delete = %v, want ErrNotFound", err)
	}
	if _, err := db.Authenticate(ctx, "bob@b.example", testPassword); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("Authenticate after delete = %v, want ErrBadCredentials", err)
	}
	if _, err := db.DelAccount(ctx, "bob@b.example"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelAccount twice = %v, want ErrNotFound", err)
	}
	// Ids are never reused: the store keys mail directories by id.
	again := mustAccount(t, db, "bob@b.example")
	if again.ID <= bob.ID {
		t.Errorf("recreated account got id %d, not above the deleted %d", again.ID, bob.ID)
	}
	n := 0
	for _, a := range mustAccounts(t, db) {
		if a.ID == bob.ID {
			n++
		}
	}
	if n != 0 {
		t.Error("deleted account id still listed")
	}
}

func mustAccounts(t *testing.T, db *DB) []Account {
	t.Helper()
	l, err := db.Accounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPasswordStorage(t *testing.T) {
	ctx := context.Background()
	db, dir := openDB(t)
	if err := db.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	const pw1, pw2 = "first-Secret-pw-1", "second-Secret-pw-2"
	if _, err := db.AddAccount(ctx, "bob@example.org", pw1); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, "Bob@Example.org", pw2); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword(ctx, "nobody@example.org", pw2); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(unknown) = %v, want ErrNotFound", err)
	}
	if err := db.SetPassword(ctx, "bob@example.org", "short"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetPassword(short) = %v, want ErrInvalid", err)
	}

	_, hash, err := db.Credentials(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Count(hash, "$") != 5 {
		t.Errorf("stored hash %q is not an argon2id PHC string", hash)
	}
	if !VerifyPassword(hash, pw2) || VerifyPassword(hash, pw1) {
		t.Error("stored hash does not verify the current password only")
	}

	// Neither the old nor the new password appears anywhere in the files.
	db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "global.db*"))
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, pw := range []string{pw1, pw2} {
			if bytes.Contains(b, []byte(pw)) {
				t.Errorf("%s contains the password %q in clear", filepath.Base(f), pw)
			}
		}
	}
}

func TestHashPassword(t *testing.T) {
	h1, err := HashPassword(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword(testPassword)
	if h1 == h2 {
		t.Error("two hashes of one password are equal: no random salt")
	}
	if !VerifyPassword(h1, testPassword) || !VerifyPassword(h2, testPassword) {
		t.Error("hash does not verify its password")
	}
	parts := strings.Split(h1, "$")
	for _, tc := range []struct{ name, hash string }{
		{"empty", ""},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu5Gf1T0CV1h3EKhs5d/kUd4C5vcXGeU6"},
		{"argon2i", strings.Replace(h1, "argon2id", "argon2i", 1)},
		{"version", strings.Replace(h1, "v=19", "v=16", 1)},
		{"zero memory", strings.Join([]string{"", parts[1], parts[2], "m=0,t=2,p=1", parts[4], parts[5]}, "$")},
		{"huge memory", strings.Join([]string{"", parts[1], parts[2], "m=4294967295,t=2,p=1", parts[4], parts[5]}, "$")},
		{"huge time", strings.Join([]string{"", parts[1], parts[2], "m=19456,t=1000000,p=1", parts[4], parts[5]}, "$")},
		{"zero threads", strings.Join([]string{"", parts[1], parts[2], "m=19456,t=2,p=0", parts[4], parts[5]}, "$")},
		{"bad salt", strings.Join([]string{"", parts[1], parts[2], parts[3], "!!!", parts[5]}, "$")},
		{"empty key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], ""}, "$")},
		{"short key", strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], parts[5][:10]}, "$")},
		{"extra field", h1 + "$x"},
	} {
		if VerifyPassword(tc.hash, testPassword) {
			t.Errorf("VerifyPassword(%s) = true", tc.name)
		}
	}
	if VerifyPassword(h1, testPassword+"x") || VerifyPassword(h1, "") {
		t.Error("VerifyPassword accepted a wrong password")
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	bob := mustAccount(t, db, "bob@example.org")

	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"bob@example.org", testPassword, true},
		{"BOB@EXAMPLE.ORG", testPassword, true},
		{"bob@example.org", testPassword + " ", false},
		{"bob@example.org", strings.ToUpper(testPassword), false},
		{"bob@example.org", "", false},
		{"nobody@example.org", testPassword, false},
		{"bob@other.org", testPassword, false},
		{"bob", testPassword, false},
		{"", "", false},
		{"bob@example.org\x00", testPassword, false},
	} {
		a, err := db.Authenticate(ctx, tc.user, tc.pw)
		if tc.ok {
			if err != nil || a.ID != bob.ID || a.Address != "bob@example.org" || a.Created.IsZero() {
				t.Errorf("Authenticate(%q) = %+v, %v; want bob", tc.user, a, err)
			}
			continue
		}
		// The same error, whatever was wrong: no user enumeration.
		if err != ErrBadCredentials {
			t.Errorf("Authenticate(%q, %q) = %v, want exactly ErrBadCredentials", tc.user, tc.pw, err)
		}
		if a != (Account{}) {
			t.Errorf("failed Authenticate(%q) returned account %+v", tc.user, a)
		}
	}
}

func TestAPOPSecret(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	bob := mustAccount(t, db, "bob@example.org")

	if _, _, err := db.APOPSecret(ctx, "bob@example.org"); !errors.Is(err, ErrNoAPOP) {
		t.Errorf("APOPSecret without a secret = %v, want ErrNoAPOP", err)
	}
	for _, u := range []string{"nobody@example.org", "garbage", ""} {
		if _, _, err := db.APOPSecret(ctx, u); err != ErrBadCredentials {
			t.Errorf("APOPSecret(%q) = %v, want ErrBadCredentials", u, err)
		}
	}
	if err := db.SetAPOPSecret(ctx, "bob@example.org", "short"); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetAPOPSecret(short) = %v, want ErrInvalid", err)
	}
	if err := db.SetAPOPSecret(ctx, "nobody@example.org", "long enough secret"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetAPOPSecret(unknown) = %v, want ErrNotFound", err)
	}
	const secret = "tanstaaf-apop-secret"
	if err := db.SetAPOPSecret(ctx, "BOB@example.org", secret); err != nil {
		t.Fatal(err)
	}
	a, s, err := db.APOPSecret(ctx, "Bob@Example.Org")
	if err != nil || s != secret || a.ID != bob.ID || !a.HasAPOP {
		t.Errorf("APOPSecret = %+v, %q, %v", a, s, err)
	}
	if acc, _ := db.Account(ctx, "bob@example.org"); !acc.HasAPOP {
		t.Error("Account.HasAPOP false after setting a secret")
	}
	// The APOP secret is not the login password.
	if _, err := db.Authenticate(ctx, "bob@example.org", secret); err != ErrBadCredentials {
		t.Errorf("the APOP secret logs in with USER/PASS: %v", err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.org", testPassword); err != nil {
		t.Errorf("setting an APOP secret broke the password: %v", err)
	}
	if err := db.SetAPOPSecret(ctx, "bob@example.org", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.APOPSecret(ctx, "bob@example.org"); !errors.Is(err, ErrNoAPOP) {
		t.Errorf("APOPSecret after clearing = %v, want ErrNoAPOP", err)
	}
	if acc, _ := db.Account(ctx, "bob@example.org"); acc.HasAPOP {
		t.Error("Account.HasAPOP true after clearing")
	}
}

func TestSetQuota(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	mustAccount(t, db, "bob@example.org")
	if err := db.SetQuota(ctx, "bob@example.org", -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetQuota(-1) = %v, want ErrInvalid", err)
	}
	if err := db.SetQuota(ctx, "bob@example.org", 1<<30); err != nil {
		t.Fatal(err)
	}
	if a, _ := db.Account(ctx, "bob@example.org"); a.QuotaBytes != 1<<30 {
		t.Errorf("QuotaBytes = %d", a.QuotaBytes)
	}
	if err := db.SetQuota(ctx, "x@example.org", 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetQuota(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAliases(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org", "two.example")
	mustAccount(t, db, "bob@example.org")
	mustAccount(t, db, "amy@two.example")

	if err := db.AddAlias(ctx, "Info@EXAMPLE.org", []string{" bob@EXAMPLE.ORG ", "amy@two.example", "Ext@Remote.NET"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAlias(ctx, "@Two.Example", []string{"amy@two.example"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddAlias(ctx, "sales@two.example", []string{"bob@example.org"}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		alias   string
		targets []string
	}{
		{"Info@example.org", nil},
		{"@example.org", []string{"bob@example.org"}},
		{"@nonlocal.example", []string{"bob@example.org"}},
		{"x@nonlocal.example", []string{"bob@example.org"}},
		{"bad alias@example.org", []string{"bob@example.org"}},
		{"self@example.org", []string{"SELF@example.org"}},
		{"x@example.org", []string{"not an address"}},
		{"x@example.org", []string{"bob@example.org", ""}},
		{"@", []string{"bob@example.org"}},
		{"@bad..domain", []string{"bob@example.org"}},
	} {
		err := db.AddAlias(ctx, tc.alias, tc.targets)
		switch {
		case tc.alias == "@example.org":
			if err != nil {
				t.Errorf("AddAlias(%q) = %v", tc.alias, err)
			}
			continue
		case strings.Contains(tc.alias, "nonlocal"):
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("AddAlias(%q) = %v, want ErrNotFound (domain not local)", tc.alias, err)
			}
		case tc.alias == "Info@example.org" && len(tc.targets) == 0:
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("AddAlias(%q, no targets) = %v, want ErrInvalid", tc.alias, err)
			}
		default:
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("AddAlias(%q, %q) = %v, want ErrInvalid", tc.alias, tc.targets, err)
			}
		}
	}
	if err := db.AddAlias(ctx, "info@example.org", []string{"x@example.org"}); !errors.Is(err, ErrExists) {
		t.Errorf("AddAlias duplicate (other case) = %v, want ErrExists", err)
	}

	got, err := db.Alias(ctx, "INFO@Example.Org")
	if want := []string{"bob@example.org", "amy@two.example", "Ext@remote.net"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Alias(info) = %q, %v; want %q", got, err, want)
	}
	if got, err := db.Alias(ctx, "@TWO.example"); err != nil || !slices.Equal(got, []string{"amy@two.example"}) {
		t.Errorf("Alias(@two.example) = %q, %v", got, err)
	}
	if _, err := db.Alias(ctx, "nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Alias(unknown) = %v, want ErrNotFound", err)
	}

	all, err := db.Aliases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range all {
		names = append(names, a.Address)
	}
	if want := []string{"@example.org", "Info@example.org", "@two.example", "sales@two.example"}; !slices.Equal(names, want) {
		t.Errorf("Aliases = %q, want %q", names, want)
	}

	for _, tc := range []struct {
		addr string
		want []string
	}{
		{"bob@example.org", []string{"Info@example.org", "sales@two.example"}}, // not the catch-all
		{"BOB@EXAMPLE.ORG", []string{"Info@example.org", "sales@two.example"}},
		{"amy@two.example", []string{"Info@example.org"}}, // not @two.example
		{"ext@remote.net", []string{"Info@example.org"}},
		{"nobody@example.org", nil},
	} {
		got, err := db.AliasesTargeting(ctx, tc.addr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("AliasesTargeting(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}

	if err := db.DelAlias(ctx, "info@EXAMPLE.org"); err != nil {
		t.Fatalf("DelAlias: %v", err)
	}
	if _, err := db.Alias(ctx, "info@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Alias after DelAlias = %v", err)
	}
	if err := db.DelAlias(ctx, "info@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DelAlias twice = %v, want ErrNotFound", err)
	}
	if err := db.DelAlias(ctx, "@TWO.EXAMPLE"); err != nil {
		t.Errorf("DelAlias(catch-all) = %v", err)
	}
	// The name is free for an account now.
	if _, err := db.AddAccount(ctx, "info@example.org", testPassword); err != nil {
		t.Errorf("AddAccount after DelAlias: %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"12345678", true},
		{"with spaces and ünïcode", true},
		{strings.Repeat("x", 1024), true},
		{"1234567", false},
		{"", false},
		{strings.Repeat("x", 1025), false},
		{"abc\x00defgh", false},
		{"abcdefgh\r", false},
		{"abcd\nefgh", false},
	} {
		err := CheckPassword(tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckPassword(%q) error %v is not ErrInvalid", tc.pw, err)
		}
	}
}

func TestGeneratePassword(t *testing.T) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	seen := map[string]bool{}
	used := map[rune]bool{}
	for i := 0; i < 500; i++ {
		p := GeneratePassword()
		if len(p) != 20 {
			t.Fatalf("GeneratePassword() = %q: length %d, want 20", p, len(p))
		}
		for _, r := range p {
			if !strings.ContainsRune(alphabet, r) {
				t.Fatalf("GeneratePassword() = %q: %q not in the alphabet", p, r)
			}
			used[r] = true
		}
		if strings.ContainsAny(p, "0O1lI") {
			t.Fatalf("GeneratePassword() = %q: ambiguous character", p)
		}
		if err := CheckPassword(p); err != nil {
			t.Fatalf("generated password fails the policy: %v", err)
		}
		if seen[p] {
			t.Fatalf("GeneratePassword repeated %q", p)
		}
		seen[p] = true
	}
	// 10,000 draws from 57 symbols: every symbol shows up (a biased or
	// truncated alphabet would not).
	if len(used) != len(alphabet) {
		t.Errorf("only %d of %d alphabet characters used", len(used), len(alphabet))
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	db, dir := openDB(t)
	db.AddDomain(ctx, "example.org")
	mustAccount(t, db, "bob@example.org")
	db.AddAlias(ctx, "a@example.org", []string{"bob@example.org"})
	db.Close()

	db2, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := db2.Authenticate(ctx, "bob@example.org", testPassword); err != nil {
		t.Errorf("Authenticate after reopen: %v", err)
	}
	if got, err := db2.Alias(ctx, "a@example.org"); err != nil || len(got) != 1 {
		t.Errorf("Alias after reopen = %q, %v", got, err)
	}
}

// TestSeesOtherWriter: a running server sees admin-command changes made
// through another handle on the same file at once.
func TestSeesOtherWriter(t *testing.T) {
	ctx := context.Background()
	server, dir := openDB(t)
	admin, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddAccount(ctx, "bob@example.org", testPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(ctx, "bob@example.org", testPassword); err != nil {
		t.Errorf("server handle does not see the admin's new account: %v", err)
	}
	if _, err := admin.DelAccount(ctx, "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Account(ctx, "bob@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("server handle still sees the deleted account: %v", err)
	}
}

// TestSetPasswordHashAndHighestID: a hash in a scheme we verify is stored
// and logs in; one we cannot is refused; ids are never reused, so the
// highest ever issued outlives its account.
func TestSetPasswordHashAndHighestID(t *testing.T) {
	ctx := context.Background()
	db := withDomains(t, "example.org")
	if n, err := db.HighestAccountID(ctx); err != nil || n != 0 {
		t.Fatalf("HighestAccountID of an empty directory = %d, %v", n, err)
	}
	a, err := db.AddAccount(ctx, "a@example.org", "a-Secret-password-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.AddAccount(ctx, "b@example.org", "b-Secret-password-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.DelAccount(ctx, "b@example.org"); err != nil {
		t.Fatal(err)
	}
	if n, err := db.HighestAccountID(ctx); err != nil || n != b.ID {
		t.Fatalf("HighestAccountID after deleting %d = %d, %v", b.ID, n, err)
	}
	hash, err := HashPassword("other-Secret-password-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPasswordHash(ctx, a.Address, hash); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, a.Address, "other-Secret-password-2"); err != nil {
		t.Fatalf("login with the set hash: %v", err)
	}
	if err := db.SetPasswordHash(ctx, a.Address, "{NOSUCH}abc"); err == nil {
		t.Fatal("SetPasswordHash of an unknown scheme succeeded")
	}
	if _, err := db.Authenticate(ctx, a.Address, "other-Secret-password-2"); err != nil {
		t.Fatalf("a refused hash changed the password: %v", err)
	}
}

package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

var ctx = context.Background()

type fixture struct {
	d   *Deliverer
	ids map[string]int64 // account address -> id
}

func setup(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	users, err := userdb.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	st, err := store.Open(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{d: &Deliverer{Users: users, Store: st}, ids: map[string]int64{}}
	for _, d := range []string{"example.org", "other.example"} {
		if err := users.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []string{"bob@example.org", "amy@example.org", "carl@other.example", "catchme@other.example"} {
		acc, err := users.AddAccount(ctx, a, "password-of-"+a)
		if err != nil {
			t.Fatal(err)
		}
		f.ids[a] = acc.ID
	}
	aliases := [][]string{
		{"info@example.org", "bob@example.org", "amy@example.org"},
		{"team@example.org", "info@example.org", "carl@other.example", "amy@example.org"},
		{"dangling@example.org", "ghost@example.org", "bob@example.org"},
		{"alldangling@example.org", "ghost@example.org", "ghost2@example.org"},
		{"loop1@example.org", "loop2@example.org"},
		{"loop2@example.org", "loop1@example.org"},
		{"loopbob1@example.org", "loopbob2@example.org", "bob@example.org"},
		{"loopbob2@example.org", "loopbob1@example.org"},
		{"fwd@example.org", "friend@remote.example", "bob@example.org"},
		{"onlyremote@example.org", "Friend@REMOTE.example"},
		{"dups@example.org", "bob@example.org", "BOB@example.org", "bob+x@example.org", "info@example.org"},
		{"sales@other.example", "bob@example.org"},
		{"@other.example", "catchme@other.example"},
	}
	// A chain deeper than maxAliasDepth.
	for i := 0; i <= maxAliasDepth+1; i++ {
		aliases = append(aliases, []string{fmt.Sprintf("deep%d@example.org", i), fmt.Sprintf("deep%d@example.org", i+1)})
	}
	aliases = append(aliases, []string{fmt.Sprintf("deep%d@example.org", maxAliasDepth+2), "bob@example.org"})
	for _, a := range aliases {
		if err := users.AddAlias(ctx, a[0], a[1:]); err != nil {
			t.Fatalf("AddAlias(%s): %v", a[0], err)
		}
	}
	return f
}

func (f *fixture) targets(addrs ...string) []int64 {
	var ids []int64
	for _, a := range addrs {
		ids = append(ids, f.ids[a])
	}
	slices.Sort(ids)
	return ids
}

func TestResolve(t *testing.T) {
	f := setup(t)
	for _, tc := range []struct {
		addr   string
		local  []string // accounts
		remote []string
		err    error
	}{
		{addr: "bob@example.org", local: []string{"bob@example.org"}},
		{addr: "BOB@EXAMPLE.ORG", local: []string{"bob@example.org"}},
		{addr: "Bob@Example.org", local: []string{"bob@example.org"}},
		{addr: "bob+lists@example.org", local: []string{"bob@example.org"}},
		{addr: "bob+@example.org", local: []string{"bob@example.org"}},
		{addr: "bob+a+b@example.org", local: []string{"bob@example.org"}},
		{addr: "+bob@example.org", err: ErrNoSuchUser},
		{addr: "info@example.org", local: []string{"bob@example.org", "amy@example.org"}},
		{addr: "info+tag@example.org", local: []string{"bob@example.org", "amy@example.org"}},
		{addr: "team@example.org", local: []string{"bob@example.org", "amy@example.org", "carl@other.example"}},
		{addr: "dangling@example.org", local: []string{"bob@example.org"}},
		{addr: "alldangling@example.org", err: ErrNoSuchUser},
		{addr: "loop1@example.org", err: ErrNoSuchUser},
		{addr: "loopbob1@example.org", local: []string{"bob@example.org"}},
		{addr: "loopbob2@example.org", local: []string{"bob@example.org"}},
		{addr: "fwd@example.org", local: []string{"bob@example.org"}, remote: []string{"friend@remote.example"}},
		{addr: "onlyremote@example.org", remote: []string{"Friend@remote.example"}},
		{addr: "dups@example.org", local: []string{"bob@example.org", "amy@example.org"}},
		{addr: "deep0@example.org", err: ErrAliasLoop},
		{addr: fmt.Sprintf("deep%d@example.org", 3), local: []string{"bob@example.org"}},
		// Catch-all, and what beats it.
		{addr: "nobody@other.example", local: []string{"catchme@other.example"}},
		{addr: "NOBODY+x@OTHER.example", local: []string{"catchme@other.example"}},
		{addr: "carl@other.example", local: []string{"carl@other.example"}},
		{addr: "carl+tag@other.example", local: []string{"carl@other.example"}},
		{addr: "sales@other.example", local: []string{"bob@example.org"}},
		{addr: "nobody@example.org", err: ErrNoSuchUser},
		{addr: "ghost@example.org", err: ErrNoSuchUser},
		{addr: "bob@remote.example", err: ErrNotLocal},
		{addr: "bob@sub.example.org", err: ErrNotLocal},
		{addr: "not an address", err: userdb.ErrInvalid},
		{addr: "", err: userdb.ErrInvalid},
		{addr: "a@b@example.org", err: userdb.ErrInvalid},
	} {
		r, err := f.d.Resolve(ctx, tc.addr)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("Resolve(%q) = %+v, %v; want %v", tc.addr, r, err, tc.err)
			}
			if len(r.Local) != 0 || len(r.Remote) != 0 {
				t.Errorf("Resolve(%q) failed but returned targets %+v", tc.addr, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.addr, err)
			continue
		}
		var got []int64
		for _, tg := range r.Local {
			got = append(got, tg.AccountID)
			if tg.Mailbox != "" || tg.Flags != 0 {
				t.Errorf("Resolve(%q): target %+v, want INBOX without flags", tc.addr, tg)
			}
		}
		slices.Sort(got)
		if want := f.targets(tc.local...); !slices.Equal(got, want) {
			t.Errorf("Resolve(%q) local = %v, want %v (%q)", tc.addr, got, want, tc.local)
		}
		if !slices.Equal(r.Remote, tc.remote) {
			t.Errorf("Resolve(%q) remote = %q, want %q", tc.addr, r.Remote, tc.remote)
		}
	}
}

// TestResolveCatchAllRemote: a catch-all may forward off-site.
func TestResolveCatchAllRemote(t *testing.T) {
	f := setup(t)
	if err := f.d.Users.AddAlias(ctx, "@example.org", []string{"postmaster@remote.example"}); err != nil {
		t.Fatal(err)
	}
	r, err := f.d.Resolve(ctx, "whoever@example.org")
	if err != nil || len(r.Local) != 0 || !slices.Equal(r.Remote, []string{"postmaster@remote.example"}) {
		t.Errorf("Resolve via remote catch-all = %+v, %v", r, err)
	}
	// The dangling target of an alias now falls to the catch-all too.
	r, err = f.d.Resolve(ctx, "alldangling@example.org")
	if err != nil || !slices.Equal(r.Remote, []string{"postmaster@remote.example"}) {
		t.Errorf("Resolve(alldangling) with catch-all = %+v, %v", r, err)
	}
}

// TestResolveCatchAllToItself: a catch-all whose target is in its own
// domain and missing must not recurse forever.
func TestResolveCatchAllToItself(t *testing.T) {
	f := setup(t)
	if err := f.d.Users.AddAlias(ctx, "@example.org", []string{"missing@example.org"}); err != nil {
		t.Fatal(err)
	}
	if r, err := f.d.Resolve(ctx, "x@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve = %+v, %v; want ErrNoSuchUser", r, err)
	}
}

func TestDeliverToResolvedTargets(t *testing.T) {
	f := setup(t)
	r, err := f.d.Resolve(ctx, "team@example.org")
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.d.Store.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	body := "From: a@remote.example\r\nTo: team@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
	w.Write([]byte(body))
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	if err := f.d.Deliver(ctx, tmp, r.Local); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"bob@example.org", "amy@example.org", "carl@other.example"} {
		acc, err := f.d.Store.Account(ctx, f.ids[a])
		if err != nil {
			t.Fatal(err)
		}
		mb, err := acc.Mailbox(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := acc.Messages(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Size != int64(len(body)) {
			t.Errorf("%s INBOX = %+v, want one message of %d bytes", a, msgs, len(body))
		}
	}
	acc, _ := f.d.Store.Account(ctx, f.ids["catchme@other.example"])
	mb, _ := acc.Mailbox(ctx, "INBOX")
	if msgs, _ := acc.Messages(ctx, mb.ID); len(msgs) != 0 {
		t.Errorf("an account not among the targets got %d messages", len(msgs))
	}
}

// TestResolveOverQuota: an account addressed directly (also with a +tag)
// that used its quota is ErrOverQuota; reached through an alias it still
// gets its copy; below the quota nothing changes.
func TestResolveOverQuota(t *testing.T) {
	f := setup(t)
	bob := f.ids["bob@example.org"]
	if _, err := f.d.Resolve(ctx, "bob@example.org"); err != nil {
		t.Fatalf("no quota: %v", err)
	}
	if err := f.d.Users.SetQuota(ctx, "bob@example.org", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Resolve(ctx, "bob@example.org"); err != nil {
		t.Fatalf("empty mailbox under quota: %v", err)
	}
	a, err := f.d.Store.Account(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.d.Store.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: fill\r\n\r\n" + strings.Repeat("x", 200) + "\r\n"))
	body, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer body.Remove()
	if _, err := a.Append(ctx, "INBOX", body, 0, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"bob@example.org", "BOB+tag@example.org"} {
		if _, err := f.d.Resolve(ctx, addr); !errors.Is(err, ErrOverQuota) {
			t.Errorf("Resolve(%s) over quota: %v, want ErrOverQuota", addr, err)
		}
	}
	r, err := f.d.Resolve(ctx, "info@example.org")
	if err != nil {
		t.Fatalf("alias with a full member: %v", err)
	}
	if len(r.Local) != 2 {
		t.Errorf("alias resolved to %d accounts, want 2 (the full one included)", len(r.Local))
	}
}

// TestResolveCache: a resolution is reused, but a directory change made
// through the same handle is seen at once, and an address that did not
// resolve is not remembered.
func TestResolveCache(t *testing.T) {
	f := setup(t)
	users := f.d.Users
	r, err := f.d.Resolve(ctx, "info@example.org")
	if err != nil || len(r.Local) != 2 {
		t.Fatalf("info: %+v %v", r, err)
	}
	r.Local = append(r.Local[:0], store.Target{AccountID: 999}) // the caller's own copy
	if r, err = f.d.Resolve(ctx, "INFO@example.org"); err != nil || len(r.Local) != 2 || r.Local[0].AccountID == 999 {
		t.Fatalf("cached info: %+v %v", r, err)
	}
	if err := users.DelAlias(ctx, "info@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := users.AddAlias(ctx, "info@example.org", []string{"bob@example.org"}); err != nil {
		t.Fatal(err)
	}
	if r, err = f.d.Resolve(ctx, "info@example.org"); err != nil || len(r.Local) != 1 {
		t.Fatalf("after the alias changed: %+v %v", r, err)
	}
	if _, err := f.d.Resolve(ctx, "newbie@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("newbie before: %v", err)
	}
	if _, err := users.AddAccount(ctx, "newbie@example.org", "password-of-newbie"); err != nil {
		t.Fatal(err)
	}
	if r, err = f.d.Resolve(ctx, "newbie@example.org"); err != nil || len(r.Local) != 1 {
		t.Fatalf("newbie after: %+v %v", r, err)
	}
}

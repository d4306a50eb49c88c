package auth

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jodmai/jodmai/internal/userdb"
)

// TestAppPasswordLogin: an app password logs in to every mail protocol and
// mechanism, never to the web console; after it is revoked the next login
// fails, although the login cache had it; the account's own password
// still works everywhere, and a wrong guess in the app-password form is an
// ordinary failure.
func TestAppPasswordLogin(t *testing.T) {
	users := newUsers(t)
	a, s := newAuth(t, users, testPolicy)
	var checks atomic.Int32
	a.verifyPassword = func(hash, password string) bool {
		checks.Add(1)
		return userdb.VerifyPassword(hash, password)
	}
	remote := addr("192.0.2.1:1234")
	bob, err := users.Account(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	pw, ap, err := users.AddAppPassword(ctx, bob.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"smtp", "pop3", "imap"} {
		acc, err := a.LoginMech(ctx, remote, proto, "PLAIN", "bob@example.org", pw)
		if err != nil || acc.ID != bob.ID {
			t.Fatalf("%s login with the app password: %+v, %v", proto, acc, err)
		}
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("%d argon2id checks for three logins with one app password, want 1 (then the cache)", n)
	}
	if _, err := a.LoginWeb(ctx, remote, "bob@example.org", pw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("web login with an app password: %v, want ErrBadCredentials", err)
	}
	if _, err := a.LoginWeb(ctx, remote, "bob@example.org", bobPassword); err != nil {
		t.Fatalf("web login with the account's password: %v", err)
	}
	// Another account does not accept bob's app password.
	if _, err := a.Login(ctx, remote, "imap", "amy@example.org", pw); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("amy with bob's app password: %v", err)
	}
	if err := users.DelAppPassword(ctx, bob.ID, ap.ID); err != nil {
		t.Fatal(err)
	}
	s.take()
	for _, proto := range []string{"smtp", "pop3", "imap"} {
		if _, err := a.Login(ctx, remote, proto, "bob@example.org", pw); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s login with a revoked app password: %v, want ErrBadCredentials", proto, err)
		}
	}
	if d := s.take(); len(d) != 3 {
		t.Errorf("revoked app password logins slept %v, want three throttle delays", d)
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", bobPassword); err != nil {
		t.Fatalf("own password after revoking: %v", err)
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", "abcd-efgh-ijkm-nopq-rstu"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a guess in the app-password form: %v", err)
	}
}

// TestLoginWebThrottled: web logins share the throttle and the lockout
// with the mail protocols.
func TestLoginWebThrottled(t *testing.T) {
	p := testPolicy
	p.IPLockoutAfter = 2
	a, _ := newAuth(t, newUsers(t), p)
	remote := addr("192.0.2.9:1234")
	a.Login(ctx, remote, "imap", "bob@example.org", "wrong 1")
	a.LoginWeb(ctx, remote, "bob@example.org", "wrong 2")
	if _, err := a.LoginWeb(ctx, remote, "bob@example.org", bobPassword); !errors.Is(err, ErrThrottled) {
		t.Fatalf("web login from a locked-out IP: %v, want ErrThrottled", err)
	}
	if _, err := a.Login(ctx, remote, "pop3", "bob@example.org", bobPassword); !errors.Is(err, ErrThrottled) {
		t.Fatalf("pop3 login from an IP locked out by the web: %v, want ErrThrottled", err)
	}
}

package console

import (
	"testing"
	"time"
)

func TestSessionExpiry(t *testing.T) {
	now := time.Unix(1e9, 0)
	s := newSessions()
	s.now = func() time.Time { return now }
	id, ss := s.create(1, "a@example.org", "hash")
	if len(id) != 43 || ss.csrf == "" || ss.csrf == id {
		t.Fatalf("id %q, csrf %q", id, ss.csrf)
	}
	if s.get(id) != ss || s.get(id+"x") != nil || s.get("") != nil {
		t.Fatal("lookup by id")
	}
	// Idle timeout, renewed by use.
	now = now.Add(IdleTimeout - time.Second)
	if s.get(id) == nil {
		t.Fatal("session ended before its idle timeout")
	}
	now = now.Add(IdleTimeout + time.Second)
	if s.get(id) != nil {
		t.Fatal("idle session still valid")
	}
	// Absolute age, however busy.
	id, _ = s.create(1, "a@example.org", "hash")
	for range int(MaxAge/IdleTimeout) + 1 {
		now = now.Add(IdleTimeout - time.Minute)
		s.get(id)
	}
	if s.get(id) != nil {
		t.Fatal("session valid beyond MaxAge")
	}
}

func TestSessionBounds(t *testing.T) {
	now := time.Unix(1e9, 0)
	s := newSessions()
	s.now = func() time.Time { return now }
	var first string
	for i := range maxPerAccount + 5 {
		now = now.Add(time.Second)
		id, _ := s.create(7, "a@example.org", "hash")
		if i == 0 {
			first = id
		}
	}
	if n := s.count(); n != maxPerAccount {
		t.Fatalf("%d sessions of one account, want %d", n, maxPerAccount)
	}
	if s.get(first) != nil {
		t.Fatal("the oldest session of the account survived")
	}
	for i := range maxSessions + 10 {
		s.create(int64(100+i), "a@example.org", "hash")
	}
	if n := s.count(); n != maxSessions {
		t.Fatalf("%d sessions, want at most %d", n, maxSessions)
	}
	keep, ks := s.create(5, "a@example.org", "hash")
	other, _ := s.create(5, "a@example.org", "hash")
	s.dropAccount(5, ks)
	if s.get(keep) == nil || s.get(other) != nil {
		t.Fatal("dropAccount")
	}
}

func TestLoginToken(t *testing.T) {
	s := newSessions()
	a, b := s.loginToken("cookie-a"), s.loginToken("cookie-b")
	if a == b || !tokenOK(a, s.loginToken("cookie-a")) || tokenOK(a, b) || tokenOK("", "") {
		t.Fatal("login tokens")
	}
	if newSessions().loginToken("cookie-a") == a {
		t.Fatal("login token does not depend on the server's key")
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 43: "43 B", 1536: "1.5 KiB", 10 << 20: "10 MiB", 2 << 30: "2 GiB", 1<<30 + 1<<29: "1.5 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

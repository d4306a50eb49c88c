package auth

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoginCache: a repeated good login is answered from the cache, a
// password change (even by another process: a new hash) invalidates it at
// once, and wrong passwords are never cached.
func TestLoginCache(t *testing.T) {
	users := newUsers(t)
	a, _ := newAuth(t, users, testPolicy)
	remote := addr("192.0.2.1:1234")
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", bobPassword); err != nil {
		t.Fatal(err)
	}
	_, hash, err := users.Credentials(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !a.cache.hit(hash, bobPassword) {
		t.Fatal("a verified login was not cached")
	}
	if a.cache.hit(hash, bobPassword+"x") {
		t.Fatal("cache hit for a wrong password")
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", bobPassword); err != nil {
		t.Fatalf("cached login: %v", err)
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", "wrong-password"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password after a cached login: %v", err)
	}
	if err := users.SetPassword(ctx, "bob@example.org", "a-new-password"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", bobPassword); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after a password change: %v, want ErrBadCredentials", err)
	}
	if _, err := a.Login(ctx, remote, "imap", "bob@example.org", "a-new-password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := a.Login(ctx, remote, "imap", "nobody@example.org", bobPassword); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestCredCacheBoundsAndExpiry(t *testing.T) {
	c := newCredCache(time.Hour, 100)
	for i := range 1000 {
		c.add("hash", fmt.Sprint(i))
		if len(c.entries) > 100 {
			t.Fatalf("cache grew to %d entries, cap 100", len(c.entries))
		}
	}
	if !c.hit("hash", "999") {
		t.Fatal("the newest entry was evicted")
	}
	short := newCredCache(time.Nanosecond, 10)
	short.add("hash", "pw")
	time.Sleep(time.Millisecond)
	if short.hit("hash", "pw") {
		t.Fatal("an expired entry was a hit")
	}
	if len(short.entries) != 0 {
		t.Fatal("an expired entry stayed after its miss")
	}
}

// TestLoginHashingBounded: however many logins arrive at once, at most
// cap(hashing) password checks (19 MiB each) run at the same time.
func TestLoginHashingBounded(t *testing.T) {
	users := newUsers(t)
	a, _ := newAuth(t, users, testPolicy)
	var mu sync.Mutex
	cur, peak := 0, 0
	real := a.verifyPassword
	a.verifyPassword = func(hash, pw string) bool {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		ok := real(hash, pw)
		mu.Lock()
		cur--
		mu.Unlock()
		return ok
	}
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Wrong passwords: never cached, every one is hashed.
			a.Login(ctx, addr(fmt.Sprintf("192.0.2.%d:1", i+1)), "imap", "bob@example.org", fmt.Sprint("wrong", i))
		}()
	}
	wg.Wait()
	if peak > cap(a.hashing) || peak == 0 {
		t.Fatalf("peak concurrent password checks %d, bound %d", peak, cap(a.hashing))
	}
	t.Logf("peak concurrent checks %d of bound %d", peak, cap(a.hashing))
}

// TestLoginConcurrentSameCredentials: a client opening many connections
// at once with the same credentials, before the cache knows them, costs
// one argon2id check (19 MiB, tens of ms), not one per connection; every
// login succeeds, and different passwords still get their own check.
func TestLoginConcurrentSameCredentials(t *testing.T) {
	users := newUsers(t)
	a, _ := newAuth(t, users, testPolicy)
	var calls atomic.Int32
	real := a.verifyPassword
	a.verifyPassword = func(hash, pw string) bool {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond) // hold the check so the others arrive meanwhile
		return real(hash, pw)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Login(ctx, addr(fmt.Sprintf("127.0.0.%d:1", i+1)), "imap", "bob@example.org", bobPassword); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || calls.Load() != 1 {
		t.Fatalf("%d logins failed, %d password checks; want 0 and 1", failed.Load(), calls.Load())
	}
	if _, err := a.Login(ctx, addr("127.0.0.99:1"), "imap", "bob@example.org", "not-"+bobPassword); err == nil || calls.Load() != 2 {
		t.Fatalf("a wrong password: %v after %d checks", err, calls.Load())
	}
}

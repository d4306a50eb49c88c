package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// The verified-credentials cache lets a client that logs in again and
// again (a mail client polling, a POP3 fetcher every minute, many IMAP
// connections) skip the deliberately slow argon2id check, as Dovecot's
// auth cache does. An entry is an HMAC, under a key made at start and kept
// only in memory, of the account's current password hash and the password:
// nothing in it reveals the password, a password change (a new hash, also
// from the admin commands in another process) misses at once, and only a
// client that sends the right password can hit it. Failed logins are never
// cached, so every wrong guess still pays the full check and the throttle.
const (
	credCacheTTL = 10 * time.Minute
	credCacheMax = 20000
)

type credCache struct {
	key [32]byte
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[[32]byte]time.Time // expiry
}

func newCredCache(ttl time.Duration, max int) *credCache {
	c := &credCache{ttl: ttl, max: max, entries: map[[32]byte]time.Time{}}
	rand.Read(c.key[:])
	return c
}

func (c *credCache) sum(hash, password string) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// hit reports whether this hash and password were verified recently.
func (c *credCache) hit(hash, password string) bool {
	k := c.sum(hash, password)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[k]
	if !ok {
		return false
	}
	if now.After(exp) {
		delete(c.entries, k)
		return false
	}
	return true
}

// add remembers a verified hash and password.
func (c *credCache) add(hash, password string) {
	k := c.sum(hash, password)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for e, exp := range c.entries {
			if now.After(exp) {
				delete(c.entries, e)
			}
		}
		// Still full: drop arbitrary entries (map order); they only cost
		// one slow check each later.
		for e := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, e)
		}
	}
	c.entries[k] = now.Add(c.ttl)
}

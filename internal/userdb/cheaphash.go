package userdb

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Cheap argon2id parameters for CheapHashes: 8 KiB, one pass.
const (
	cheapTime   = 1
	cheapMemory = 8
)

// CheapHashes makes this handle hash passwords with argon2id at a tiny
// cost (8 KiB, one pass) instead of the production 19 MiB and two passes,
// for test harnesses: their tests log in hundreds of times, fuzzers once
// per input, and under the race detector the real cost dominates. Call it
// right after Open, before the handle is shared; never in a server.
//
// The cheap hashes are ordinary argon2id PHC strings that any handle
// verifies. This handle keeps them at login (Rehash leaves them, though
// NeedsRehash reports them), so a test's logins stay cheap; a production
// handle would replace them by the real cost at the next login.
func (d *DB) CheapHashes() error {
	h, err := cheapHash("jodmai-dummy-password-for-timing")
	if err != nil {
		return err
	}
	d.cheap, d.dummyHash = true, h
	return nil
}

// hashPassword hashes p with the handle's parameters.
func (d *DB) hashPassword(p string) (string, error) {
	if d.cheap {
		return cheapHash(p)
	}
	return HashPassword(p)
}

// keepsHash reports whether Rehash leaves h: a cheap hash of a
// CheapHashes handle.
func (d *DB) keepsHash(h string) bool {
	return d.cheap && strings.HasPrefix(h, fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$", argon2.Version, cheapMemory, cheapTime, argonThreads))
}

func cheapHash(p string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(p), salt, cheapTime, cheapMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, cheapMemory, cheapTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

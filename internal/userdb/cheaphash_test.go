package userdb

import (
	"context"
	"strings"
	"testing"
)

// TestCheapHashes: a CheapHashes handle stores cheap argon2id hashes,
// verifies them, and keeps them at Rehash; a production handle replaces
// them.
func TestCheapHashes(t *testing.T) {
	ctx := context.Background()
	d, dir := openDB(t)
	if err := d.CheapHashes(); err != nil {
		t.Fatal(err)
	}
	if err := d.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	acc, err := d.AddAccount(ctx, "a@example.org", "password-1")
	if err != nil {
		t.Fatal(err)
	}
	_, h, err := d.Credentials(ctx, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=8,t=1,p=1$") || !NeedsRehash(h) {
		t.Fatalf("hash %q, want a cheap argon2id one", h)
	}
	if _, err := d.Authenticate(ctx, "a@example.org", "password-1"); err != nil {
		t.Fatalf("login: %v", err)
	}
	if nh, err := d.Rehash(ctx, acc.ID, h, "password-1"); err != nil || nh != h {
		t.Errorf("Rehash on the cheap handle: %q, %v; want the hash kept", nh, err)
	}
	if err := d.SetPassword(ctx, "a@example.org", "password-2"); err != nil {
		t.Fatal(err)
	}
	if _, h, _ = d.Credentials(ctx, "a@example.org"); !strings.HasPrefix(h, "$argon2id$v=19$m=8,t=1,p=1$") {
		t.Errorf("SetPassword stored %q", h)
	}

	prod, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	nh, err := prod.Rehash(ctx, acc.ID, h, "password-2")
	if err != nil || nh == h || NeedsRehash(nh) {
		t.Errorf("Rehash on a production handle: %q, %v; want our argon2id", nh, err)
	}
}

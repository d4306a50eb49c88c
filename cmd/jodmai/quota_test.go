package main

import (
	"testing"
)

func TestUserQuota(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, "secret-password\n", "user", "add", "--password-stdin", "bob@example.org").ok(t)

	tests := []struct {
		size, out string
		want      int64
	}{
		{"2GiB", "quota of bob@example.org set to 2GiB\n", 2 << 30},
		{"1000", "quota of bob@example.org set to 1KB\n", 1000},
		{"5 MB", "quota of bob@example.org set to 5MB\n", 5e6},
		{"none", "quota of bob@example.org removed\n", 0},
		{"12345", "quota of bob@example.org set to 12345\n", 12345},
		{"0", "quota of bob@example.org removed\n", 0},
	}
	for _, tc := range tests {
		r := jodmai(t, dir, "", "user", "quota", "bob@example.org", tc.size).ok(t)
		if r.stdout != tc.out {
			t.Errorf("%s: stdout %q, want %q", tc.size, r.stdout, tc.out)
		}
		db := users(t, dir)
		a, err := db.Account(ctx, "bob@example.org")
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if a.QuotaBytes != tc.want {
			t.Errorf("%s: QuotaBytes %d, want %d", tc.size, a.QuotaBytes, tc.want)
		}
	}
	jodmai(t, dir, "", "user", "quota", "bob@example.org", "lots").fails(t, 2, "size")
	jodmai(t, dir, "", "user", "quota", "bob@example.org").fails(t, 2, "missing")
	jodmai(t, dir, "", "user", "quota", "nobody@example.org", "1GiB").fails(t, 1, "nobody@example.org")
}

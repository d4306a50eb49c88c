package main

import (
	"strings"
	"testing"
)

func TestUserAdmin(t *testing.T) {
	dir := t.TempDir()
	jodmai(t, dir, "", "domain", "add", "example.org").ok(t)
	jodmai(t, dir, "password1234\n", "user", "add", "--password-stdin", "bob@example.org").ok(t)
	if r := jodmai(t, dir, "", "user", "admin", "bob@example.org").ok(t); r.stdout != "bob@example.org is now an admin\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if r := jodmai(t, dir, "", "user", "list").ok(t); !containsLine(r.stdout, "bob@example.org", "admin") {
		t.Errorf("user list after admin: %q", r.stdout)
	}
	jodmai(t, dir, "", "user", "admin", "--off", "bob@example.org").ok(t)
	if r := jodmai(t, dir, "", "user", "list").ok(t); containsLine(r.stdout, "bob@example.org", "admin") {
		t.Errorf("user list after admin --off: %q", r.stdout)
	}
	jodmai(t, dir, "", "user", "admin", "nobody@example.org").fails(t, 1, "not found")
	jodmai(t, dir, "", "user", "admin").fails(t, 2, "missing")
}

// containsLine reports whether some line of s contains every word.
func containsLine(s string, words ...string) bool {
	for _, line := range strings.Split(s, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}

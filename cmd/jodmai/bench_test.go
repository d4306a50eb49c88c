package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/loadgen"
	"github.com/jodmai/jodmai/internal/testenv"
)

func TestBench(t *testing.T) {
	env := testenv.Start(t)
	env.AddUser(t, "b1@example.org", "pw-bench-1")
	env.AddUser(t, "b2@example.org", "pw-bench-1")

	r := jodmai(t, "", "", "bench", "--addr", env.Addr("smtp"), "--users", "b1@example.org, b2@example.org", "--pass", "pw-bench-1",
		"-c", "2", "-n", "10", "--verify-pop3", env.Addr("pop3"), "--json", "smtp").ok(t)
	var res loadgen.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output %q: %v", r.stdout, err)
	}
	if res.Messages != 10 || res.Verified == nil || !*res.Verified {
		t.Errorf("smtp result %+v", res)
	}

	r = jodmai(t, "", "", "bench", "--addr", env.Addr("pop3"), "--user-pattern", "b%d@example.org", "--users-count", "2", "--pass", "pw-bench-1", "-c", "2", "pop3").ok(t)
	if !strings.Contains(r.stdout, "2 sessions, 10 msgs") || !strings.Contains(r.stdout, "0 errors") {
		t.Errorf("pop3 summary %q", r.stdout)
	}

	// Errors make the exit code non-zero.
	jodmai(t, "", "", "bench", "--addr", env.Addr("imap"), "--users", "b1@example.org", "--pass", "wrong", "-c", "1", "-n", "1", "imap").fails(t, 1, "1 errors")

	jodmai(t, "", "", "bench", "--addr", "192.0.2.1:25", "--users", "a@b", "smtp").fails(t, 2, "not a loopback address")
	jodmai(t, "", "", "bench", "--addr", "[2001:db8::1]:143", "--users", "a@b", "imap").fails(t, 2, "not a loopback address")
	jodmai(t, "", "", "bench", "--users", "a@b", "nntp").fails(t, 2, "unknown profile")
	jodmai(t, "", "", "bench", "smtp").fails(t, 2, "no accounts")
	jodmai(t, "", "", "bench", "--users", "a@b", "--user-pattern", "u%d@b", "smtp").fails(t, 2, "exclude")
}

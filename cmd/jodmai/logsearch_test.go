package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/eventlog"
)

func TestLogSearch(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.Open(eventlog.Dir(dir), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(eventlog.NewHandler(slog.DiscardHandler, l))
	log.Info("message received", "event", eventlog.Received, "qid", "q1", "msgid", "m1@x", "from", "a@x.test", "rcpts", []string{"b@example.org", "c@example.org"})
	log.Info("message delivered", "event", eventlog.Delivered, "qid", "q1", "msgid", "m1@x", "from", "a@x.test", "rcpts", []string{"b@example.org"})
	log.Info("recipient refused", "event", eventlog.Rejected, "from", "a@x.test", "rcpt", "nobody@example.org", "code", 550, "reason", "no such user")
	l.Close()

	out := jodmai(t, dir, "", "log", "search").ok(t).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "rejected") || !strings.Contains(lines[0], `reason="no such user"`) || !strings.Contains(lines[2], "rcpts=b@example.org,c@example.org") {
		t.Fatalf("all:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--to", "b@example.org"}, 2},
		{[]string{"--to", "c@example.org", "--event", "delivered"}, 0},
		{[]string{"--msgid", "<m1@x>"}, 2},
		{[]string{"--qid", "q1", "--limit", "1"}, 1},
		{[]string{"--from", "@x.test", "--since", "1h"}, 3},
		{[]string{"--since", "1d", "--event", "rejected"}, 1},
		{[]string{"--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, 0},
	} {
		r := jodmai(t, dir, "", append([]string{"log", "search", "--json"}, c.args...)...).ok(t)
		if n := strings.Count(r.stdout, "\n"); n != c.want {
			t.Errorf("%v: %d events, want %d:\n%s", c.args, n, c.want, r.stdout)
		}
	}
	jodmai(t, dir, "", "log", "search", "--event", "nosuch").fails(t, 2, "unknown event kind")
	jodmai(t, dir, "", "log", "search", "--since", "yesterday").fails(t, 2, "since")
}

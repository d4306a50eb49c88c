package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// queueMessage adds a message for rcpts to the queue of data dir dir.
func queueMessage(t *testing.T, q *queue.Queue, dir string, rcpts ...string) string {
	t.Helper()
	w, err := blob.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: hi\r\n\r\nbody\r\n")
	tmp, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Remove()
	env := queue.Envelope{From: "alice@example.org", Account: "alice@example.org"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, remote.Recipient{Addr: r, Notify: "FAILURE"})
	}
	id, err := q.Add(ctx, tmp, env)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestQueueCommands(t *testing.T) {
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := queueMessage(t, q, dir, "bob@remote.test", "carol@other.test")
	q.Close()

	out := jodmai(t, dir, "", "queue", "list").ok(t).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("queue list:\n%s", out)
	}
	// Aligned columns: RECIPIENT starts at the same offset on every line.
	col := strings.Index(lines[0], "RECIPIENT")
	if !strings.HasPrefix(lines[1], id) || !strings.HasPrefix(lines[1][col:], "bob@remote.test ") || !strings.HasPrefix(lines[2][col:], "carol@other.test ") {
		t.Errorf("queue list not aligned:\n%s", out)
	}
	if !strings.Contains(lines[1], "alice@example.org") || !strings.Contains(lines[1], "pending") || !strings.Contains(lines[3], "2 recipient(s) pending") {
		t.Errorf("queue list:\n%s", out)
	}

	jodmai(t, dir, "", "queue", "hold", id).ok(t)
	if out := jodmai(t, dir, "", "queue", "list").ok(t).stdout; !strings.Contains(out, "held") {
		t.Errorf("after hold:\n%s", out)
	}
	show := jodmai(t, dir, "", "queue", "show", id).ok(t).stdout
	t.Logf("queue list:\n%s\nqueue show:\n%s", out, show)
	for _, want := range []string{"ID:", id, "From:", "alice@example.org", "Flags:", "held", "Recipient:", "bob@remote.test", "notify=FAILURE", "Next attempt:"} {
		if !strings.Contains(show, want) {
			t.Errorf("queue show lacks %q:\n%s", want, show)
		}
	}
	jodmai(t, dir, "", "queue", "release", id).ok(t)
	jodmai(t, dir, "", "queue", "retry", id).ok(t)
	if out := jodmai(t, dir, "", "queue", "flush").ok(t).stdout; !strings.Contains(out, "2 recipient(s)") {
		t.Errorf("flush: %q", out)
	}
	jodmai(t, dir, "", "queue", "delete", id).ok(t)
	if out := jodmai(t, dir, "", "queue", "list").ok(t).stdout; !strings.Contains(out, "empty") {
		t.Errorf("after delete:\n%s", out)
	}
	jodmai(t, dir, "", "queue", "show", id).fails(t, 1, "no queued message")
	jodmai(t, dir, "", "queue", "retry", "nosuchid").fails(t, 1, "no queued message")
	jodmai(t, dir, "", "queue", "show").fails(t, 2, "missing")
	jodmai(t, filepath.Join(dir, "nonexistent"), "", "queue", "list").fails(t, 1, "not found")
}

// switchRemote fails until ok is set.
type switchRemote struct {
	mu    sync.Mutex
	ok    bool
	calls int
}

func (s *switchRemote) Deliver(_ context.Context, m *remote.Message) []remote.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	out := make([]remote.Result, len(m.Recipients))
	for i, r := range m.Recipients {
		out[i] = remote.Result{Addr: r.Addr, Delivered: s.ok, Code: 451, Text: "busy", Host: "mx.remote.test"}
		if s.ok {
			out[i].Code = 250
		}
	}
	return out
}

func (s *switchRemote) state() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.calls
}

// TestQueueRetryBesideServer: the CLI changes the queue of a running
// server, which notices.
func TestQueueRetryBesideServer(t *testing.T) {
	rem := &switchRemote{}
	env := testenv.StartWith(t, testenv.Options{Remote: rem})
	id := queueMessage(t, env.Queue, env.DataDir, "bob@remote.test")
	wait.For(t, 10*time.Second, "one delivery attempt", func() bool { _, n := rem.state(); return n == 1 })
	out := jodmai(t, env.DataDir, "", "queue", "list").ok(t).stdout
	if !strings.Contains(out, "451 busy (mx.remote.test)") || !strings.Contains(out, "in ") {
		t.Errorf("queue list after a failed attempt:\n%s", out)
	}
	rem.mu.Lock()
	rem.ok = true
	rem.mu.Unlock()
	jodmai(t, env.DataDir, "", "queue", "retry", id).ok(t)
	wait.For(t, 10*time.Second, "the queue emptied by the retry", func() bool {
		ms, _ := env.Queue.List(ctx)
		return len(ms) == 0
	})
	if _, n := rem.state(); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// TestGroupCommitConcurrentAdds: many concurrent Adds, bodies in rows and
// in files, share commits and are all durable: after a reopen every one is
// there with its body.
func TestGroupCommitConcurrentAdds(t *testing.T) {
	f := setup(t, nil)
	f.q.inlineMax = 300
	var commits atomic.Int32
	f.q.beforeCommit = func() error { commits.Add(1); return nil }
	const n = 40
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		msg := testMsg + strings.Repeat(fmt.Sprintf("line %d\r\n", i), i*3) // some over inlineMax
		body := f.body(alice, msg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := f.q.Add(ctx, body, Envelope{From: alice, Recipients: rcpts(fmt.Sprintf("u%d@remote.test", i))})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			want[id] = msg
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Add: %v", err)
	}
	t.Logf("%d Adds, %d commits", n, commits.Load())
	if c := commits.Load(); c < 1 || c > n {
		t.Errorf("%d commits for %d Adds", c, n)
	}
	f.q.Close()
	f.open()
	if ms := f.list(); len(ms) != n {
		t.Fatalf("after reopen: %d messages, want %d", len(ms), n)
	}
	files := 0
	for id, msg := range want {
		m, err := f.q.loadMsg(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.body == nil {
			files++
		}
		r, closeBody, err := f.q.openBody(m)
		if err != nil {
			t.Fatalf("body of %s: %v", id, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(r, m.offset, m.size-m.offset))
		closeBody()
		if err != nil || string(got) != msg {
			t.Errorf("body of %s: %q, %v; want %q", id, got, err, msg)
		}
	}
	if files == 0 || files == n {
		t.Errorf("%d of %d bodies in files: want both kinds", files, n)
	}
}

// TestGroupCommitFailure: a failing commit fails every Add of its group,
// and none of them is in the queue after a reopen.
func TestGroupCommitFailure(t *testing.T) {
	f := setup(t, nil)
	f.q.inlineMax = 300
	gate := make(chan struct{})
	var calls atomic.Int32
	f.q.beforeCommit = func() error {
		if calls.Add(1) == 1 {
			<-gate // the others queue up meanwhile: one group
		}
		return errors.New("disk on fire")
	}
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		body := f.body(alice, testMsg+strings.Repeat("x", i*60)+"\r\n")
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.q.Add(ctx, body, Envelope{From: alice, Recipients: rcpts(fmt.Sprintf("u%d@remote.test", i))})
			errs <- err
		}()
		if i == 0 {
			wait.For(t, 10*time.Second, "first commit", func() bool { return calls.Load() == 1 })
		}
	}
	time.Sleep(200 * time.Millisecond) // the others reach the committer
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("Add: %v, want the commit error", err)
		}
	}
	if c := calls.Load(); c >= n {
		t.Errorf("%d commits for %d Adds: never grouped", c, n)
	}
	f.q.beforeCommit = nil
	f.q.Close()
	f.open()
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("after failed commits: %d messages queued", len(ms))
	}
	var files int
	if err := f.q.bodies.Walk(func(string, int64) error { files++; return nil }); err != nil {
		t.Fatal(err)
	}
	if files != 0 {
		t.Errorf("%d body files left by failed Adds", files)
	}
}

// TestGroupCommitOneWriteFails: a write that fails undoes only its own
// changes; the others of its group commit.
func TestGroupCommitOneWriteFails(t *testing.T) {
	f := setup(t, nil)
	gate := make(chan struct{})
	var calls atomic.Int32
	f.q.beforeCommit = func() error {
		if calls.Add(1) == 1 {
			<-gate
		}
		return nil
	}
	// Hold the committer in a first commit, so the three below queue
	// up and share the next one.
	first := make(chan error, 1)
	go func() { first <- f.q.write(ctx, func(context.Context, *sql.Tx) error { return nil }) }()
	wait.For(t, 10*time.Second, "first commit", func() bool { return calls.Load() == 1 })
	errs := make(chan error, 3)
	for i, fail := range []bool{false, true, false} {
		go func() {
			errs <- f.q.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO msg (id, sender, size, created) VALUES (?, '', 1, 0)`, fmt.Sprintf("m%d", i)); err != nil {
					return err
				}
				if fail {
					return errors.New("this one fails")
				}
				return nil
			})
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	failed := 0
	for range 3 {
		if err := <-errs; err != nil {
			failed++
			if err.Error() != "this one fails" {
				t.Errorf("write: %v", err)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d writes failed, want 1", failed)
	}
	var ids []string
	rows, err := f.q.db.R.Query(`SELECT id FROM msg ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if strings.Join(ids, ",") != "m0,m2" {
		t.Errorf("committed %v, want m0,m2", ids)
	}
}

// TestWriteAfterClose: a write to a closed queue fails at once.
func TestWriteAfterClose(t *testing.T) {
	f := setup(t, nil)
	f.q.Close()
	err := f.q.write(ctx, func(context.Context, *sql.Tx) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

// TestAddBodyKinds: the Return-Path is skipped and 8-bit data found the
// same for a body kept in the row and one in a file.
func TestAddBodyKinds(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inlineMax int64
		memory    bool // a memory Temp (smtpd's small bodies), not a file
		msg       string
		want8bit  bool
	}{
		{"row 7bit", inlineMax, false, testMsg, false},
		{"row 8bit", inlineMax, false, testMsg + "Gr\xc3\xbc\xc3\x9fe\r\n", true},
		{"file 7bit", 0, false, testMsg, false},
		{"file 8bit", 0, false, testMsg + strings.Repeat("x", 70<<10) + "\xff\r\n", true},
		{"memory to row", inlineMax, true, testMsg + "\xff\r\n", true},
		{"memory to file", 0, true, testMsg, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t, nil)
			f.q.inlineMax = tc.inlineMax
			body := f.body(alice, tc.msg)
			if tc.memory {
				w := blob.NewSpool(t.TempDir(), 1<<20, nil)
				io.WriteString(w, "Return-Path: <"+alice+">\r\n"+tc.msg)
				var err error
				if body, err = w.Finish(); err != nil || !body.InMemory() {
					t.Fatalf("memory Temp: %v, %v", body, err)
				}
			}
			id, err := f.q.Add(ctx, body, Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
			if err != nil {
				t.Fatal(err)
			}
			m, err := f.q.loadMsg(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if (m.body != nil) != (tc.inlineMax > 0) {
				t.Errorf("body in row: %v, want %v", m.body != nil, tc.inlineMax > 0)
			}
			f.runDue()
			calls := f.rem.sent()
			if len(calls) != 1 {
				t.Fatalf("%d attempts, want 1", len(calls))
			}
			if string(calls[0].body) != tc.msg || calls[0].msg.Has8bit != tc.want8bit {
				t.Errorf("sent: 8bit %v, body ok %v; want 8bit %v", calls[0].msg.Has8bit, string(calls[0].body) == tc.msg, tc.want8bit)
			}
			if ms := f.list(); len(ms) != 0 {
				t.Errorf("queue not empty: %+v", ms)
			}
			var n int
			if err := f.q.db.R.QueryRow(`SELECT COUNT(*) FROM rcpt`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d recipient rows left (%v)", n, err)
			}
		})
	}
}

// TestInFlightUntilRecorded: results are recorded after the attempt, in
// the background; until they are committed the message stays in flight,
// and a scheduling pass does not send it again.
func TestInFlightUntilRecorded(t *testing.T) {
	f := setup(t, nil)
	f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	gate := make(chan struct{})
	var blocked atomic.Int32
	f.q.beforeCommit = func() error {
		blocked.Add(1)
		<-gate
		return nil
	}
	if err := f.q.startDue(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the results' commit", func() bool { return blocked.Load() == 1 })
	for range 3 {
		if err := f.q.startDue(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(f.rem.sent()); n != 1 {
		t.Errorf("%d attempts before the results were committed, want 1", n)
	}
	close(gate)
	f.q.jobs.Wait()
	f.runDue()
	if n := len(f.rem.sent()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
	if ms := f.list(); len(ms) != 0 {
		t.Errorf("queue not empty: %+v", ms)
	}
}

// TestWakeAfterBusyAdd: an Add for a domain with a worker running does not
// wake the scheduler, but that worker wakes it when done, so the new
// message does not wait for the poll.
func TestWakeAfterBusyAdd(t *testing.T) {
	f := setup(t, nil)
	gate := make(chan struct{})
	var started atomic.Int32
	f.rem.set(func(m *remote.Message) []remote.Result {
		started.Add(1)
		<-gate
		return answer(ok)(m)
	})
	drain := func() bool {
		select {
		case <-f.q.wake:
			return true
		default:
			return false
		}
	}
	f.add(Envelope{From: alice, Recipients: rcpts("bob@remote.test")})
	if err := f.q.startDue(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "first attempt", func() bool { return started.Load() == 1 })
	drain()
	f.add(Envelope{From: alice, Recipients: rcpts("carol@remote.test")})
	if drain() {
		t.Error("Add woke the scheduler while the domain's worker runs")
	}
	close(gate)
	f.q.jobs.Wait()
	if !drain() {
		t.Fatal("the worker did not wake the scheduler for the mail added meanwhile")
	}
	f.runDue()
	if n := len(f.rem.sent()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
	// Nothing left: the next worker done does not wake it again.
	f.add(Envelope{From: alice, Recipients: rcpts("dan@remote.test")})
	drain()
	f.runDue()
	if drain() {
		t.Error("a worker woke the scheduler with nothing left")
	}
}

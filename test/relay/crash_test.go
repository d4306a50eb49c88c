package relay

import (
	"fmt"
	"math/rand/v2"
	"net/smtp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/loadgen"
	"github.com/jodmai/jodmai/internal/testenv/proc"
)

// TestQueueCrash submits mail for a remote domain to a jodmai whose queue
// relays to a no-disk sink, and SIGKILLs the server at random moments. At
// the end every message the server acknowledged (250) must have reached
// the sink; a message may arrive twice only when a kill fell between the
// remote's 250 and the queue recording it (at-least-once), so duplicates
// are bounded by the deliveries in flight per kill.
func TestQueueCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped with -short")
	}
	const (
		rounds  = 6
		workers = 4
		perConn = 10
	)
	bin := proc.Build(t)
	sink, err := loadgen.StartSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	in := proc.New(t, bin, proc.Options{
		Hostname: "mx.a.test",
		Services: []string{"submission"},
		Extra: fmt.Sprintf(`[remote]
relay_host = %q
connect_timeout = "2s"

[queue]
retry_min = "1s"
retry_max = "2s"
`, sink.Addr()),
	})
	in.MustRun("", "domain", "add", "a.test")
	in.MustRun(pass+"\n", "user", "add", "--password-stdin", "alice@a.test")

	var (
		mu     sync.Mutex
		acked  []string
		seq    atomic.Int64
		tries  atomic.Int64
		failed atomic.Int64
	)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for r := 0; r < rounds; r++ {
		in.Start(true)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ids, err := submitBatch(in.Addr("submission"), perConn, &seq)
					tries.Add(int64(perConn))
					mu.Lock()
					acked = append(acked, ids...)
					mu.Unlock()
					if err != nil {
						failed.Add(1)
						time.Sleep(20 * time.Millisecond)
					}
				}
			}()
		}
		// Kill at a random moment once the round has had an
		// acknowledgement (bounded: on a loaded machine the first
		// AUTH can take longer than the random pause).
		mu.Lock()
		before := len(acked)
		mu.Unlock()
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		for range 150 {
			mu.Lock()
			n := len(acked)
			mu.Unlock()
			if n > before {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		in.Kill()
		close(stop)
		wg.Wait()
	}
	// The last start drains the queue.
	in.Start(true)
	defer in.Stop()
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		for _, id := range ids {
			if sink.Received(id) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	st := sink.Stats()
	t.Logf("queue crash test: %d rounds killed, %d messages tried, %d acknowledged, sink got %d (%d duplicates), %d sessions cut",
		rounds, tries.Load(), len(ids), st.Messages, st.Duplicates, failed.Load())
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never reached the remote, e.g. %v\n%s", len(missing), missing[:min(5, len(missing))], in.LogTail())
	}
	if len(ids) < 100 {
		t.Fatalf("only %d messages acknowledged: the test did too little to mean anything", len(ids))
	}
	// At most what was in flight at each kill: max_per_domain (4)
	// workers, each with one attempt and one unrecorded result.
	if limit := int64(rounds * 4 * 2); st.Duplicates > limit {
		t.Errorf("%d duplicates over %d kills, more than the %d deliveries that can be in flight", st.Duplicates, rounds, limit)
	}
}

// submitBatch sends n messages over one submission connection and returns
// the Message-IDs of those acknowledged with 250.
func submitBatch(addr string, n int, seq *atomic.Int64) ([]string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Loopback: AUTH PLAIN without TLS is allowed, and net/smtp sends it
	// to "127.0.0.1".
	if err := c.Auth(smtp.PlainAuth("", "alice@a.test", pass, "127.0.0.1")); err != nil {
		return nil, err
	}
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("<crash-%d@a.test>", seq.Add(1))
		if err := c.Mail("alice@a.test"); err != nil {
			return ids, err
		}
		if err := c.Rcpt(fmt.Sprintf("r%d@remote.test", i%3)); err != nil {
			return ids, err
		}
		w, err := c.Data()
		if err != nil {
			return ids, err
		}
		fmt.Fprintf(w, "From: <alice@a.test>\r\nTo: <r@remote.test>\r\nSubject: crash\r\nMessage-ID: %s\r\n\r\n%s\r\n", id, strings.Repeat("x", 200))
		if err := w.Close(); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	c.Quit()
	return ids, nil
}

package imapd_test

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// BenchmarkSessionIdleMemory measures what an idle session (logged in,
// INBOX selected, waiting for its next command) costs the server: heap
// and goroutine stack per connection, plain and with COMPRESS=DEFLATE.
// Each iteration opens one more connection and keeps it; run with e.g.
// -benchtime=500x. The client side keeps only the socket.
func BenchmarkSessionIdleMemory(b *testing.B) {
	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "deflate"
		}
		b.Run(name, func(b *testing.B) {
			h := newSessHarness(b, sessOptions{})
			h.addUser(sessAlice, sessPass)
			h.deliver(sessAlice, sessMessage("one"))
			script := "a LOGIN " + sessAlice + " " + sessPass + "\r\nb SELECT INBOX\r\n"
			last := "b OK"
			if compress {
				script += "c COMPRESS DEFLATE\r\n"
				last = "c OK"
			}
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			open := func() {
				c, err := net.Dial("tcp", h.addr)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				if _, err := c.Write([]byte(script)); err != nil {
					b.Fatal(err)
				}
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(l, last) {
						break
					}
				}
			}
			open() // warm up pools and the account
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for b.Loop() {
				open()
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			n := float64(b.N)
			b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heap-B/conn")
			b.ReportMetric(float64(int64(after.StackInuse)-int64(before.StackInuse))/n, "stack-B/conn")
		})
	}
}

package smtpd_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchMessage is a 4 KiB message like the load tool's.
func benchMessage(tb testing.TB, to string) string {
	header := "From: sender@remote.example\r\nTo: " + to + "\r\nSubject: benchmark\r\n\r\n"
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 bytes
	body := header + strings.Repeat(line, (4096-len(header))/len(line))
	body += strings.Repeat("x", 4096-len(body)-2) + "\r\n"
	if len(body) != 4096 {
		tb.Fatalf("message is %d bytes", len(body))
	}
	return body
}

// BenchmarkDeliver sends b.N messages of 4 KiB over one MX connection,
// pipelining each envelope, and waits for each 250 (every copy durable).
func BenchmarkDeliver(b *testing.B) {
	env := newEnv(b)
	c := dial(b, env.Addr("smtp"))
	c.ehlo()
	body := benchMessage(b, alice)
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.NetConn().SetDeadline(timeNowPlus())
		c.Send("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		c.WantReply(250, "")
		c.WantReply(250, "")
		c.WantReply(354, "")
		c.Send(body + ".\r\n")
		c.WantReply(250, "queued as")
	}
	b.StopTimer()
	if n := len(env.Inbox(b, alice)); n != b.N {
		b.Fatalf("alice has %d messages, want %d", n, b.N)
	}
}

// BenchmarkDeliverParallel sends b.N messages of 4 KiB over 8 MX
// connections at once, each to its own account (like `jodmai bench smtp
// -c 8` with 8 users), and waits for each 250.
func BenchmarkDeliverParallel(b *testing.B) {
	const conns = 8
	env := newEnv(b)
	users := make([]string, conns)
	for i := range users {
		users[i] = fmt.Sprintf("par%d@example.org", i)
		env.AddUser(b, users[i], fmt.Sprintf("par-password-%d", i))
	}
	var next atomic.Int64
	errs := make([]error, conns)
	sent := make([]int, conns)
	b.SetBytes(4096)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i], errs[i] = benchSession(env.Addr("smtp"), users[i], benchMessage(b, users[i]), func() bool {
				return next.Add(1) <= int64(b.N)
			})
		}()
	}
	wg.Wait()
	b.StopTimer()
	for i, u := range users {
		if errs[i] != nil {
			b.Fatalf("connection %d: %v", i, errs[i])
		}
		if n := len(env.Inbox(b, u)); n != sent[i] {
			b.Fatalf("%s has %d messages, want %d", u, n, sent[i])
		}
	}
}

// benchSession sends messages to rcpt on one connection while more says
// so, and returns how many were accepted.
func benchSession(addr, rcpt, body string, more func() bool) (int, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	expect := func(code string) error {
		for {
			nc.SetDeadline(timeNowPlus())
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("got %q, want %s", line, code)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	write := func(s string) error {
		nc.SetDeadline(timeNowPlus())
		_, err := nc.Write([]byte(s))
		return err
	}
	if err := expect("220"); err != nil {
		return 0, err
	}
	if err := write("EHLO bench.example\r\n"); err != nil {
		return 0, err
	}
	if err := expect("250"); err != nil {
		return 0, err
	}
	n := 0
	for more() {
		if err := write("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<" + rcpt + ">\r\nDATA\r\n"); err != nil {
			return n, err
		}
		for _, code := range []string{"250", "250", "354"} {
			if err := expect(code); err != nil {
				return n, err
			}
		}
		if err := write(body + ".\r\n"); err != nil {
			return n, err
		}
		if err := expect("250"); err != nil {
			return n, err
		}
		n++
	}
	write("QUIT\r\n")
	return n, nil
}

func timeNowPlus() time.Time { return time.Now().Add(30 * time.Second) }

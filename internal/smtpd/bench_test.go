package smtpd_test

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkDeliver sends b.N messages of 4 KiB over one MX connection,
// pipelining each envelope, and waits for each 250 (every copy durable).
func BenchmarkDeliver(b *testing.B) {
	env := newEnv(b)
	c := dial(b, env.Addr("smtp"))
	c.ehlo()
	header := "From: sender@remote.example\r\nTo: alice@example.org\r\nSubject: benchmark\r\n\r\n"
	line := strings.Repeat("0123456789abcdef", 4) + "\r\n" // 66 bytes
	body := header + strings.Repeat(line, (4096-len(header))/len(line))
	body += strings.Repeat("x", 4096-len(body)-2) + "\r\n"
	if len(body) != 4096 {
		b.Fatalf("message is %d bytes", len(body))
	}
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.conn.SetDeadline(timeNowPlus())
		c.write("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(354, "")
		c.write(body + ".\r\n")
		c.expect(250, "queued as")
	}
	b.StopTimer()
	if n := len(env.Inbox(b, alice)); n != b.N {
		b.Fatalf("alice has %d messages, want %d", n, b.N)
	}
}

func timeNowPlus() time.Time { return time.Now().Add(30 * time.Second) }

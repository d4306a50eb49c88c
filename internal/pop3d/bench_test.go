package pop3d_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// benchMessage returns a plausible text message of about size octets, with
// some lines starting with a dot.
func benchMessage(size int) string {
	var b strings.Builder
	b.WriteString("From: bob@example.org\r\nTo: alice@example.org\r\nSubject: benchmark\r\nMessage-ID: <bench@example.org>\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		if i%50 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "Line %d: the quick brown fox jumps over the lazy dog, again and again.\r\n", i)
	}
	return b.String()
}

// BenchmarkRETR measures RETR throughput over loopback, one command at a
// time, as a download client does it.
func BenchmarkRETR(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			h := newHarness(b, harnessOptions{})
			h.addUser(alice, alicePass)
			m := benchMessage(size)
			h.deliver(alice, m)
			c := h.dial()
			c.Login(alice, alicePass)
			r := bufio.NewReaderSize(c.NetConn(), 64<<10)
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(m)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := io.WriteString(c.NetConn(), "RETR 1\r\n"); err != nil {
					b.Fatal(err)
				}
				if err := readResponse(r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var terminator = []byte("\r\n.\r\n")

// readResponse reads a +OK multi-line response up to its terminator,
// without looking at its lines.
func readResponse(r *bufio.Reader, buf []byte) error {
	status, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("+OK")) {
		return fmt.Errorf("status %q", status)
	}
	// Keep the last 4 bytes of the previous read to find a terminator
	// split across reads.
	var tail [4]byte
	nt := 0
	for {
		n, err := r.Read(buf[4:])
		if n > 0 {
			copy(buf[4-nt:], tail[:nt])
			win := buf[4-nt : 4+n]
			if bytes.HasSuffix(win, terminator) {
				return nil
			}
			nt = copy(tail[:], win[max(0, len(win)-4):])
		}
		if err != nil {
			return err
		}
	}
}

package netio

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestDeadlineWriter: a peer that does not read makes Write fail after
// Timeout; a later write gets a fresh deadline.
func TestDeadlineWriter(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write waits for the reader
	defer a.Close()
	defer b.Close()
	w := &DeadlineWriter{Conn: a, Timeout: 20 * time.Millisecond}
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a peer not reading: %v, want deadline exceeded", err)
	}
	go func() {
		buf := make([]byte, 1)
		b.Read(buf)
	}()
	w.Timeout = 10 * time.Second // the first deadline has passed
	if n, err := w.Write([]byte("y")); n != 1 || err != nil {
		t.Fatalf("write to a reading peer: %d, %v", n, err)
	}
}

package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSinkCountsSMTPProfile runs the smtp profile against the sink: every
// message is counted once, with its bytes.
func TestSinkCountsSMTPProfile(t *testing.T) {
	sink, err := StartSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	const count = 200
	r := mustRun(t, "smtp", Config{Addr: sink.Addr(), Users: []string{"x@remote.test", "y@remote.test"}, Conns: 4, Count: count, Duration: time.Minute})
	if !r.OK() || r.Messages != count {
		t.Fatalf("smtp to sink: %d messages, %d errors (%s)", r.Messages, r.Errors, r.FirstError)
	}
	st := sink.Stats()
	if st.Messages != count || st.Duplicates != 0 || st.Errors != 0 {
		t.Fatalf("sink stats %+v, want %d messages, no duplicates or errors", st, count)
	}
	// The profile's byte count is the dot-stuffed wire form; the sink
	// counts unstuffed bytes: one dot per message fewer, and no "."
	// terminator line.
	if want := r.Bytes - count*int64(len("..this")-len(".this")) - count*3; st.Bytes != want {
		t.Errorf("sink counted %d bytes, want %d", st.Bytes, want)
	}
}

// TestSinkDuplicates: the same Message-ID twice is a duplicate; bad
// commands are counted and answered, and the session goes on.
func TestSinkDuplicates(t *testing.T) {
	sink, err := StartSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c, err := net.Dial("tcp", sink.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(prefix string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("want %s: %v", prefix, err)
			}
			if len(line) > 3 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("got %q, want %s", line, prefix)
			}
			return
		}
	}
	expect("220")
	fmt.Fprintf(c, "EHLO t\r\n")
	expect("250")
	fmt.Fprintf(c, "DATA\r\n")
	expect("503")
	fmt.Fprintf(c, "BOGUS\r\n")
	expect("500")
	for range 2 {
		fmt.Fprintf(c, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
		expect("250")
		expect("250")
		expect("354")
		fmt.Fprintf(c, "Message-ID: <same@test>\r\n\r\n..dot\r\n.\r\n")
		expect("250")
	}
	fmt.Fprintf(c, "QUIT\r\n")
	expect("221")
	st := sink.Stats()
	if st.Messages != 2 || st.Duplicates != 1 || st.Errors != 1 {
		t.Fatalf("stats %+v, want 2 messages, 1 duplicate, 1 error", st)
	}
	if st.Bytes != 2*int64(len("Message-ID: <same@test>\r\n\r\n.dot\r\n")) {
		t.Errorf("bytes %d", st.Bytes)
	}
}

// TestRelayDetectsLoss: a "relay" that delivers nothing to the sink (here
// another sink) fails verification.
func TestRelayDetectsLoss(t *testing.T) {
	blackhole, err := StartSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackhole.Close()
	r, err := runRelayForTest(blackhole.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if r.Verified == nil || *r.Verified || r.Messages != 20 {
		t.Fatalf("relay to a black hole: verified %v (%s), %d messages", r.Verified, r.VerifyDetail, r.Messages)
	}
}

func runRelayForTest(mta string) (*Result, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sinkAddr := l.Addr().String()
	l.Close()
	cfg := Config{Addr: mta, Sink: sinkAddr, Users: []string{"x@remote.test"}, Conns: 2, Count: 20, Duration: time.Minute, VerifyWait: 500 * time.Millisecond}
	return Run(context.Background(), "relay", cfg)
}

// FuzzSinkSession feeds arbitrary client input to a sink session: it must
// neither panic nor hang, and what it counts must add up.
func FuzzSinkSession(f *testing.F) {
	f.Add([]byte("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nMessage-ID: <1@x>\r\n\r\n..hi\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("DATA\r\nRCPT TO:<x>\r\nBOGUS\r\n"))
	f.Add([]byte("MAIL\nRCPT\nDATA\nno end"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Sink{ids: map[string]int{}, conns: map[net.Conn]struct{}{}}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.session(server)
			server.Close()
		}()
		go io.Copy(io.Discard, client)
		client.SetDeadline(time.Now().Add(5 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after the client closed")
		}
		st := s.Stats()
		if st.Duplicates > st.Messages || st.Bytes < 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

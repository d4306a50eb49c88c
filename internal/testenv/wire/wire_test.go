package wire

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// serve accepts one connection on loopback and runs script on it; it
// returns the address to dial.
func serve(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		script(c)
	}()
	return l.Addr().String()
}

// say writes lines and reads (and drops) one command line per reply but
// the first.
func say(c net.Conn, replies ...string) {
	buf := make([]byte, 4096)
	for i, r := range replies {
		if i > 0 {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
		io.WriteString(c, r)
	}
}

// fakeT records the Fatalf and ends the goroutine as testing.T does.
type fakeT struct {
	*testing.T
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// fails runs fn, which must fail through f, and returns the message.
func fails(t *testing.T, fn func(f *fakeT)) string {
	t.Helper()
	f := &fakeT{T: t}
	func() {
		defer func() {
			if v := recover(); v != f {
				t.Fatalf("recovered %v, want a Fatalf", v)
			}
		}()
		fn(f)
	}()
	return f.msg
}

func TestSMTP(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		say(c, "220 mx ESMTP\r\n", "250-mx\r\n250-SIZE 100\r\n250 8bitmime\r\n", "550 5.1.1 no\r\n")
	})
	s := DialSMTP(t, addr)
	if s.Greeting != "mx ESMTP" {
		t.Errorf("greeting %q", s.Greeting)
	}
	exts := s.EHLO("client.example.net")
	if exts["SIZE"] != "100" || len(exts) != 2 {
		t.Errorf("EHLO: %q", exts)
	}
	s.Expect("RCPT TO:<x@example.org>", 550, "5.1.1")
	s.EOF()
}

func TestPOP3(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		say(c, "+OK ready <1@x>\r\n", "+OK 2 messages\r\n", "+OK\r\n1 10\r\n..hidden\r\n.\r\n", "-ERR [AUTH] no\r\n")
	})
	p := DialPOP3(t, addr)
	p.OK("STAT")
	p.OK("LIST")
	if got := p.Lines(); !slices.Equal(got, []string{"1 10", ".hidden"}) {
		t.Errorf("lines %q", got)
	}
	p.Expect("PASS x", "-ERR [AUTH]")
}

func TestIMAPLiterals(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		say(c, "* OK hi\r\n", "* 1 FETCH (BODY[] {5}\r\nab\r\nc UID 7 BINARY[] ~{2}\r\nxy)\r\n* 2 EXISTS\r\nt1 OK done\r\n")
	})
	m := DialIMAP(t, addr)
	u := m.OK("FETCH 1 (BODY[] BINARY[])")
	want := []string{"* 1 FETCH (BODY[] {5}\r\nab\r\nc UID 7 BINARY[] ~{2}\r\nxy)", "* 2 EXISTS"}
	if !slices.Equal(u, want) {
		t.Errorf("untagged %q, want %q", u, want)
	}
	if m.NextTag() != "t2" {
		t.Errorf("next tag %q", m.NextTag())
	}
}

// TestFailureHasTranscript: a failed expectation names the exchange.
func TestFailureHasTranscript(t *testing.T) {
	addr := serve(t, func(c net.Conn) { say(c, "+OK ready\r\n", "-ERR nope\r\n") })
	msg := fails(t, func(f *fakeT) {
		p := DialPOP3(f, addr)
		p.OK("NOOP")
	})
	for _, want := range []string{`NOOP: got "-ERR nope", want "+OK"`, "transcript tail:", "S: +OK ready", "C: NOOP", "S: -ERR nope"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// TestReadDeadline: a server that never answers fails the test within
// Timeout.
func TestReadDeadline(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	addr := serve(t, func(c net.Conn) { io.WriteString(c, "+OK ready\r\n"); <-hold })
	start := time.Now()
	msg := fails(t, func(f *fakeT) {
		p := DialPOP3(f, addr)
		p.Timeout = 50 * time.Millisecond
		p.Cmd("NOOP")
	})
	if !strings.Contains(msg, "timeout") || !strings.Contains(msg, "C: NOOP") {
		t.Errorf("message %q", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestEOF(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	addr := serve(t, func(c net.Conn) { io.WriteString(c, "+OK ready\r\n"); <-hold })
	msg := fails(t, func(f *fakeT) {
		c := Dial(f, addr)
		c.Timeout = 50 * time.Millisecond
		c.WantLine("+OK")
		c.EOF()
	})
	if !strings.Contains(msg, "connection still open") {
		t.Errorf("message %q", msg)
	}

	addr = serve(t, func(c net.Conn) { io.WriteString(c, "* BYE bye\r\n") })
	c := Dial(t, addr)
	c.EOF("* BYE")
}

func TestNoCRLF(t *testing.T) {
	addr := serve(t, func(c net.Conn) { io.WriteString(c, "+OK ready\n") })
	msg := fails(t, func(f *fakeT) { DialPOP3(f, addr) })
	if !strings.Contains(msg, "does not end in CRLF") {
		t.Errorf("message %q", msg)
	}
}

package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sink is a no-disk SMTP server: it accepts every well-formed transaction
// and discards the message after counting it. It is the reference "what
// the network and a client can do" for SMTP benchmarks, and the remote
// end of the relay profile. It listens on loopback only.
//
// Each message's Message-ID is remembered, so a relay that delivers a
// message twice is caught.
type Sink struct {
	ln     net.Listener
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc

	msgs, bytes, errs atomic.Int64
	mu                sync.Mutex
	ids               map[string]int
	dups              int64
	last              time.Time
	firstErr          string
	conns             map[net.Conn]struct{}
}

// maxSinkLine bounds a command or body line; maxSinkMessage a message.
const (
	maxSinkLine    = 64 << 10
	maxSinkMessage = 64 << 20
)

// StartSink listens on addr (a loopback "host:port"; port 0 picks one)
// and serves until Close.
func StartSink(addr string) (*Sink, error) {
	a, err := loopback(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sink{ln: ln, ctx: ctx, cancel: cancel, ids: map[string]int{}, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the sink and waits for its connections to end.
func (s *Sink) Close() {
	s.cancel()
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// SinkStats is what a sink has received.
type SinkStats struct {
	// Messages counts messages accepted (one per DATA, whatever the
	// number of recipients).
	Messages int64
	// Bytes counts message bytes, dot-unstuffed.
	Bytes int64
	// Duplicates counts messages whose Message-ID came before.
	Duplicates int64
	// Errors counts protocol errors seen from clients.
	Errors     int64
	FirstError string
	// Last is when the last message was accepted.
	Last time.Time
}

// Received returns how many messages with Message-ID id (as written in the
// header, angle brackets included) the sink has accepted.
func (s *Sink) Received(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

// Stats returns the counts so far.
func (s *Sink) Stats() SinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SinkStats{Messages: s.msgs.Load(), Bytes: s.bytes.Load(), Duplicates: s.dups,
		Errors: s.errs.Load(), FirstError: s.firstErr, Last: s.last}
}

func (s *Sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.session(c)
		}()
	}
}

func (s *Sink) fail(format string, a ...any) {
	s.errs.Add(1)
	s.mu.Lock()
	if s.firstErr == "" {
		s.firstErr = fmt.Sprintf(format, a...)
	}
	s.mu.Unlock()
}

// session speaks enough SMTP for any client: EHLO/HELO, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT, with PIPELINING (replies are flushed only when no
// more input is buffered).
func (s *Sink) session(c net.Conn) {
	r := bufio.NewReaderSize(c, 32<<10)
	w := bufio.NewWriterSize(c, 4<<10)
	reply := func(line string) bool {
		w.WriteString(line)
		w.WriteString("\r\n")
		if r.Buffered() > 0 {
			return true
		}
		return w.Flush() == nil
	}
	readLine := func() (string, error) {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("line longer than %d bytes", r.Size())
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
	if !reply("220 sink.localhost ESMTP jodmai bench sink") {
		return
	}
	mail, rcpts := false, 0
	for {
		line, err := readLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(line)
		if i := strings.IndexByte(verb, ' '); i >= 0 {
			verb = verb[:i]
		}
		switch verb {
		case "EHLO":
			mail, rcpts = false, 0
			w.WriteString("250-sink.localhost\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n")
			if !reply(fmt.Sprintf("250 SIZE %d", maxSinkMessage)) {
				return
			}
		case "HELO":
			mail, rcpts = false, 0
			if !reply("250 sink.localhost") {
				return
			}
		case "MAIL":
			mail, rcpts = true, 0
			if !reply("250 2.1.0 Ok") {
				return
			}
		case "RCPT":
			if !mail {
				if !reply("503 5.5.1 MAIL first") {
					return
				}
				continue
			}
			rcpts++
			if !reply("250 2.1.5 Ok") {
				return
			}
		case "DATA":
			if !mail || rcpts == 0 {
				if !reply("503 5.5.1 RCPT first") {
					return
				}
				continue
			}
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			n, id, err := s.readData(r)
			if err != nil {
				s.fail("DATA: %v", err)
				return
			}
			s.accept(n, id)
			mail, rcpts = false, 0
			if !reply("250 2.0.0 Ok: discarded") {
				return
			}
		case "RSET":
			mail, rcpts = false, 0
			if !reply("250 2.0.0 Ok") {
				return
			}
		case "NOOP":
			if !reply("250 2.0.0 Ok") {
				return
			}
		case "QUIT":
			reply("221 2.0.0 Bye")
			w.Flush()
			return
		default:
			s.fail("unknown command %q", truncate(line, 40))
			if !reply("500 5.5.2 Unknown command") {
				return
			}
		}
	}
}

// readData reads a DATA body to its terminating dot line and returns its
// unstuffed size and Message-ID.
func (s *Sink) readData(r *bufio.Reader) (int64, string, error) {
	var n int64
	var id string
	inHeader := true
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: count it, keep reading.
			n += int64(len(line))
			continue
		}
		if err != nil {
			return n, id, err
		}
		if t := bytes.TrimRight(line, "\r\n"); len(t) == 1 && t[0] == '.' {
			return n, id, nil
		}
		if line[0] == '.' {
			line = line[1:]
		}
		n += int64(len(line))
		if n > maxSinkMessage {
			return n, id, fmt.Errorf("message over %d bytes", maxSinkMessage)
		}
		if inHeader {
			t := bytes.TrimRight(line, "\r\n")
			if len(t) == 0 {
				inHeader = false
			} else if len(t) > 11 && strings.EqualFold(string(t[:11]), "message-id:") {
				id = strings.TrimSpace(string(t[11:]))
			}
		}
	}
}

func (s *Sink) accept(n int64, id string) {
	s.msgs.Add(1)
	s.bytes.Add(n)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = time.Now()
	if id != "" {
		s.ids[id]++
		if s.ids[id] > 1 {
			s.dups++
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Package sink is a fake remote SMTP server on loopback for tests: it
// accepts every message and records its envelope and bytes, so a test
// that sets remote.relay_host to its address sees what the outbound
// queue sends, over a real socket.
package sink

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/testenv/wait"
)

// Message is one message the sink received.
type Message struct {
	// From is the reverse path of MAIL FROM ("" for <>).
	From string
	// To are the RCPT TO addresses.
	To []string
	// Data is the message as received.
	Data []byte
}

// Sink is a running fake SMTP server.
type Sink struct {
	// Addr is its "127.0.0.1:port", for relay_host.
	Addr string

	mu   sync.Mutex
	msgs []Message
}

// Start starts a sink that stops when the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: ln.Addr().String()}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Messages returns what the sink received so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the messages once there are at least n (failing the test
// after 10 s).
func (s *Sink) Wait(t testing.TB, n int) []Message {
	t.Helper()
	var got []Message
	wait.For(t, 10*time.Second, "messages at the SMTP sink", func() bool {
		got = s.Messages()
		return len(got) >= n
	})
	return got
}

type session struct {
	s   *Sink
	cur Message
}

func (x *session) Reset()        { x.cur = Message{} }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.cur = Message{From: from}
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.cur.To = append(x.cur.To, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.cur.Data = b
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.cur)
	x.s.mu.Unlock()
	x.cur = Message{}
	return nil
}

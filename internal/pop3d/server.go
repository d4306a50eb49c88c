package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/store"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3d: server closed")

// Defaults for the zero values of Server's fields.
const (
	// DefaultTimeout is the autologout timer: RFC 1939 §3 requires at
	// least 10 minutes.
	DefaultTimeout = 10 * time.Minute
	// DefaultWriteTimeout bounds each write to a client.
	DefaultWriteTimeout = time.Minute
	// DefaultMaxLineLength bounds a command line, CRLF included. RFC 2449
	// §4 limits commands to 255 octets; we allow twice that.
	DefaultMaxLineLength = 512
	// maxAuthLineLength bounds an AUTH command line with its initial
	// response, and each SASL response line.
	maxAuthLineLength = 8192
)

// Session limits.
const (
	// maxAuthFailures failed logins end a session: the client has had its
	// chances, and the throttle keeps counting across connections.
	maxAuthFailures = 3
	// maxBadCommands unknown, malformed or out-of-state commands end a
	// session; a few are normal (clients probe), hundreds are not.
	maxBadCommands = 20
	// handshakeTimeout bounds a TLS handshake (implicit TLS and STLS).
	handshakeTimeout = 30 * time.Second
	// bodyReadSize and bodyWriteSize size the pooled buffers RETR and TOP
	// read message files and write responses through.
	bodyReadSize  = 32 << 10
	bodyWriteSize = 64 << 10
	// readBufferSize and writeBufferSize size a connection's buffers.
	// Commands are short; large body writes bypass the write buffer.
	readBufferSize  = 1024
	writeBufferSize = 4096
)

// Server is a POP3 server. Exported fields are its configuration; set them
// before Serve and do not change them afterwards.
type Server struct {
	// Hostname appears in the greeting and its APOP timestamp
	// <pid.nonce@Hostname>. Empty: the machine's host name.
	Hostname string
	// Store holds the maildrops.
	Store *store.Store
	// Auth checks credentials and throttles failures.
	Auth *auth.Authenticator
	// TLSConfig enables STLS (RFC 2595). Nil: no STLS.
	TLSConfig *tls.Config
	// ImplicitTLS says the listener hands out *tls.Conn (pop3s, port 995);
	// STLS is not offered then.
	ImplicitTLS bool
	// Timeout, WriteTimeout and MaxLineLength are the limits at start;
	// SetLimits replaces them for new sessions.
	//
	// Timeout is the autologout timer: a session idle this long is closed
	// without entering UPDATE. 0 means DefaultTimeout.
	Timeout time.Duration
	// WriteTimeout bounds each write to the client. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// MaxLineLength bounds a command line, CRLF included; an AUTH line and
	// SASL responses may be up to 8192 octets or this, whichever is more.
	// 0 means DefaultMaxLineLength.
	MaxLineLength int
	// Log receives one line per login, logout and error. Nil discards.
	Log *slog.Logger

	limits      limitsVar // SetLimits
	initOnce    sync.Once
	log         *slog.Logger
	baseCtx     context.Context // canceled by Shutdown: ends throttle waits
	cancel      context.CancelFunc
	bodyBuffers sync.Pool // *bodyBuffers
	hostname    string
	pid         string

	closing atomic.Bool
	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*session]struct{}
	wg      sync.WaitGroup // one per session
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.log = s.Log
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.bodyBuffers.New = newBodyBuffers
		s.hostname = s.Hostname
		if s.hostname == "" {
			h, err := os.Hostname()
			if err != nil || h == "" {
				h = "localhost"
			}
			s.hostname = h
		}
		s.pid = strconv.Itoa(os.Getpid())
		s.lns = map[net.Listener]struct{}{}
		s.conns = map[*session]struct{}{}
	})
}

// Serve accepts connections on l and serves each in its own goroutine,
// until l fails or Shutdown is called; then it returns ErrServerClosed. It
// closes l when it returns. Serve may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, l)
		s.mu.Unlock()
		l.Close()
	}()

	log := s.log
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			var ne net.Error
			//lint:ignore SA1019 Temporary is what net/http's accept loop uses too; EMFILE and ENFILE report it.
			if errors.As(err, &ne) && ne.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("pop3 accept error; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sess := s.newSession(c)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.conns[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, sess)
				s.mu.Unlock()
				s.wg.Done()
			}()
			sess.serve()
		}()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, then every
// session in AUTHORIZATION or TRANSACTION gets "-ERR [SYS/TEMP] server
// shutting down" at its next command boundary (at once when it is waiting
// for a command) and is closed without entering UPDATE, so nothing is
// deleted; a session in UPDATE finishes its expunge and its reply first.
// Shutdown waits for every session to end or for ctx; when ctx ends first,
// it closes the remaining connections and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.lns {
		l.Close()
	}
	for sess := range s.conns {
		sess.interrupt()
	}
	s.mu.Unlock()
	s.cancel()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.conns {
			sess.raw.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// newCID returns a connection id for logs.
func newCID() string {
	return strconv.FormatUint(rand.Uint64()&(1<<48-1), 36)
}

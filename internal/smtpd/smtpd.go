// Package smtpd is jodmai's SMTP server: the MX role (port 25: mail for local domains from anyone, never relayed)
// and message submission (587 with STARTTLS, 465 with implicit TLS:
// authenticated users sending as their own addresses).
//
// Invariants:
//   - A message is answered 250 only after deliver.Deliverer.Deliver
//     returned, that is when every local copy is durable (in the store's
//     delivery journal, or a fsynced body file and a committed index).
//     Any failure is temporary (451 4.3.0, 452 4.3.1 when the disk is
//     full); nothing is dropped.
//   - The body is stored as received, with CRLF line ends (bare LF is made
//     CRLF), after a Return-Path and a Received header field, and on MX
//     with a Verifier an Authentication-Results field; forged ones carrying
//     our authserv-id are removed (authres.go). On submission a message
//     lacking From, Date or Message-ID gets them (submit.go, RFC 6409 §8).
//   - A header field that a signature or check needs and that is missing
//     or malformed never causes a refusal or a 4xx: submission adds it,
//     DKIM signing is skipped, DMARC reports it.
//   - Never an open relay: a recipient outside the local domains is refused
//     on MX (554 5.7.1) whoever the client is, loopback included. Mail to
//     remote addresses (authenticated submission, or aliases that forward
//     off-site) goes to the outbound queue (Server.Queue); the 250 comes
//     after the local copies are durable and the queue has taken the rest.
//     Without a Queue such recipients are refused with 451 4.4.0.
//     Forwarding accounts (Server.Forward) are the same: their forwarded
//     copies are queued before the 250, and one that keeps no local copy
//     is acknowledged only once its copy is in the queue.
//   - Plaintext credentials (AUTH PLAIN, LOGIN) only over TLS or from
//     loopback (auth.PlaintextAllowed).
//   - Shutdown tells idle sessions 421 4.3.2; a message being received is
//     finished and answered first.
//
// The protocol engine is our own, written for speed (conn.go: the
// connection loop, parse.go: command lines and parameters, datareader.go:
// DATA and BDAT bodies, reply.go); the session decides (session.go,
// mail.go, rcpt.go, data.go) and writes the trace header fields
// (received.go). github.com/emersion/go-smtp is used for its plain types
// only (MailOptions, RcptOptions, SMTPError).
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/blob"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/forward"
	"github.com/jodmai/jodmai/internal/msgauth"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
)

// Mode is the role of a Server.
type Mode int

const (
	// ModeMX accepts mail for local recipients from anyone, without AUTH.
	ModeMX Mode = iota
	// ModeSubmission requires AUTH before MAIL and checks the sender.
	ModeSubmission
)

func (m Mode) String() string {
	if m == ModeSubmission {
		return "submission"
	}
	return "mx"
}

// Defaults for the zero values of Server's fields.
const (
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 1000
	// DefaultMaxLineLength bounds command lines (never more than 64 KiB
	// though) and the text lines of a DATA body (BDAT chunks are not
	// limited). RFC 5321 §4.5.3.1 asks for at least 512 and 1000; real mail
	// has longer lines, so be liberal.
	DefaultMaxLineLength = 8192
	// DefaultTimeout is RFC 5321 §4.5.3.2's 5 minutes.
	DefaultTimeout      = 5 * time.Minute
	DefaultWriteTimeout = time.Minute
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// maxBadRecipients is how many refused recipients an unauthenticated
// connection may try before it is closed (dictionary attacks; Postfix's
// smtpd_hard_error_limit is 20 too).
const maxBadRecipients = 20

// forceGrace is how long Shutdown waits for sessions to end after it cut
// their connections because its context ended.
const forceGrace = 2 * time.Second

// Enqueuer takes a message for delivery to other servers: it returns once
// the message is durable in the outbound queue.
type Enqueuer interface {
	Add(ctx context.Context, body *blob.Temp, env queue.Envelope) (string, error)
	// NotifyDelivered sends the "delivered" DSN for local recipients
	// whose NOTIFY asked for SUCCESS (RFC 3461 §6.2).
	NotifyDelivered(ctx context.Context, body *blob.Temp, env queue.Envelope, rcpts []remote.Recipient) error
}

// AutoReplier sends the auto-replies a delivered message calls for
// (vacation). Reply returns after at most one queue Add per reply and
// never fails the delivery: it logs its errors on log.
type AutoReplier interface {
	Reply(ctx context.Context, body *blob.Temp, from string, targets []store.Target, log *slog.Logger)
}

// Observer counts accepted messages. Its methods must not block.
type Observer interface {
	// MessageAccepted: a message got its 250 after being filed in
	// mailboxes local mailboxes and, when queued, queued for remote
	// recipients; d is the time from its last byte to the reply.
	MessageAccepted(mailboxes int, queued bool, d time.Duration)
}

// Server is an SMTP server. Exported fields are its configuration; do not
// change them after Serve.
type Server struct {
	// Hostname is the server's name in the greeting and Received fields.
	Hostname string
	Mode     Mode
	// Deliverer resolves recipients and files messages. Required.
	Deliverer *deliver.Deliverer
	// Auth checks logins. Required for ModeSubmission.
	Auth *auth.Authenticator
	// TLSConfig enables STARTTLS; nil: not offered. Ignored with
	// ImplicitTLS.
	TLSConfig *tls.Config
	// ImplicitTLS: the listener yields *tls.Conn (submissions, port 465).
	ImplicitTLS bool
	// MaxMessageSize, MaxRecipients, MaxLineLength, Timeout and
	// WriteTimeout are the limits at start; SetLimits replaces them for
	// new sessions.
	//
	// MaxMessageSize is announced as SIZE. 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// MaxRecipients per transaction. 0 means DefaultMaxRecipients.
	MaxRecipients int
	// MaxLineLength bounds a line, CRLF included. 0 means
	// DefaultMaxLineLength.
	MaxLineLength int
	// Timeout is the idle limit waiting for a command and for each read of
	// a message body (RFC 5321 §4.5.3.2). 0 means DefaultTimeout.
	Timeout time.Duration
	// WriteTimeout bounds each write to the client. 0 means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Log receives the server's logs; each connection adds cid and
	// remote. The caller adds the protocol name. Nil discards.
	Log *slog.Logger
	// Verifier checks SPF, DKIM and DMARC of mail on ModeMX and adds an
	// Authentication-Results field (authres.go); nil: no checks, no
	// field. Ignored on submission.
	Verifier *msgauth.Verifier
	// Queue takes the messages for remote recipients; *queue.Queue
	// implements it. Nil: remote recipients get 451 4.4.0, and DSN is not
	// offered.
	Queue Enqueuer
	// Observer is told of each message answered 250 (metrics); nil:
	// nobody.
	Observer Observer
	// AutoReply answers messages delivered to accounts whose owner is
	// away; *vacation.Responder implements it. Nil: no auto-replies.
	AutoReply AutoReplier
	// Forward sends the mail of accounts that forward it on, before the
	// 250; nil (or no Queue): no forwarding.
	Forward *forward.Forwarder

	limits   limitsVar // SetLimits
	initOnce sync.Once
	initErr  error
	log      *slog.Logger
	hostname string
	// ctx is the context of the server's work (logins, lookups,
	// deliveries); cancelled when Shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	spools  sync.Pool // *spool (spool.go)
	readers sync.Pool // *bufio.Reader of connections
	writers sync.Pool // *bufio.Writer of connections

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // one per open conn
}

func (s *Server) init() error {
	s.initOnce.Do(func() {
		s.log = s.Log
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.hostname = s.Hostname
		if s.hostname == "" {
			h, err := os.Hostname()
			if err != nil || h == "" {
				h = "localhost"
			}
			s.hostname = h
		}
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		switch {
		case s.Deliverer == nil:
			s.initErr = errors.New("smtpd: no Deliverer")
			return
		case s.Mode == ModeSubmission && s.Auth == nil:
			s.initErr = errors.New("smtpd: submission needs an Authenticator")
			return
		}
	})
	return s.initErr
}

// Serve accepts connections on l until Shutdown, then returns
// ErrServerClosed; otherwise it returns l's Accept error. Serve may be
// called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	s.log.Debug("serving", "mode", s.Mode.String(), "addr", l.Addr().String(), "implicit_tls", s.ImplicitTLS)

	err := s.accept(l)

	s.mu.Lock()
	delete(s.listeners, l)
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return ErrServerClosed
	}
	return err
}

// accept runs a connection for each accepted one until l fails.
func (s *Server) accept(l net.Listener) error {
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of file descriptors and the like: wait a little.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newConn(nc, s)
		if !s.track(c) {
			nc.Close()
			s.putReader(c.r)
			s.putWriter(c.w)
			continue
		}
		go c.serve()
	}
}

// Shutdown stops accepting, ends idle sessions with 421 4.3.2, lets a
// message being received finish (its reply is sent, then the session
// ends), and waits for every session to end. If ctx ends first, it cuts
// the remaining connections, cancels logins and deliveries still running,
// and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.kick()
	}

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
	}
	n := len(s.conns)
	s.mu.Unlock()
	s.log.Warn("shutdown: cut connections still open", "count", n)
	select {
	case <-done:
	case <-time.After(forceGrace):
	}
	return ctx.Err()
}

// track registers a new connection; false once shutting down.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if ok {
		s.wg.Done()
	}
}

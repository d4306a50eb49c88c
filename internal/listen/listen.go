// Package listen owns accepting client connections for every protocol
// server: it wraps a net.Listener with connection caps and optional implicit
// TLS.
//
// Invariants:
//   - Accept only returns connections that hold a slot in the Limiter; a
//     connection over a cap gets the listener's refusal line, is closed, is
//     logged, and is never returned.
//   - Closing a returned connection gives its slot back exactly once, however
//     often Close is called (a *tls.Conn closes the connection under it).
//   - A refused client cannot stall Accept: the refusal is written with a
//     short deadline, or, over implicit TLS, off the accept path.
//
// STARTTLS is not handled here: a protocol server upgrades an accepted
// connection itself with tls.Server; the slot is still released when the
// *tls.Conn is closed.
package listen

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/time/rate"
)

const (
	// refusalTimeout bounds the refusal write on the accept path. The line
	// is small enough for an empty socket buffer, so this only matters for a
	// broken peer.
	refusalTimeout = 250 * time.Millisecond
	// tlsRefusalTimeout bounds the handshake and write of a refusal over
	// implicit TLS, which happens in its own goroutine.
	tlsRefusalTimeout = 5 * time.Second
	// maxTLSRefusals bounds those goroutines; beyond it a refused TLS
	// connection is closed without a word.
	maxTLSRefusals = 32
	// maxAcceptDelay is where the back-off after temporary Accept errors
	// stops doubling, as in net/http.
	maxAcceptDelay = time.Second
)

// SMTPRefusal returns the line an SMTP listener sends to a connection over a
// cap: RFC 5321 §3.1 lets a server answer the connection with 421 instead of
// the 220 greeting.
func SMTPRefusal(hostname string) []byte {
	return []byte("421 4.7.0 " + hostname + " Too many connections, try again later\r\n")
}

// POP3Refusal returns the line a POP3 listener sends to a connection over a
// cap (RFC 2449 §8.1.2, RFC 3206 SYS/TEMP).
func POP3Refusal() []byte {
	return []byte("-ERR [SYS/TEMP] too many connections, try again later\r\n")
}

// IMAPRefusal returns the line an IMAP listener sends to a connection over a
// cap: RFC 9051 §7.1.5 allows BYE as the greeting; UNAVAILABLE is RFC 5530.
func IMAPRefusal() []byte {
	return []byte("* BYE [UNAVAILABLE] too many connections, try again later\r\n")
}

// HTTPRefusal returns the response an HTTP listener sends to a connection
// over a cap (RFC 9110 §15.6.4: 503 with Retry-After).
func HTTPRefusal() []byte {
	return []byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 60\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
}

// Options configures a Listener.
type Options struct {
	// Name names the service in logs, e.g. "smtp" or "imaps".
	Name string
	// Limiter holds the caps; several listeners may share one. Nil means
	// no caps.
	Limiter *Limiter
	// TLS, when set, makes the listener implicit-TLS: accepted connections
	// are returned as *tls.Conn, which handshakes on first Read or Write.
	TLS *tls.Config
	// Refusal is written to a connection refused by a cap before it is
	// closed (over TLS when TLS is set). Nil closes without a word. See
	// SMTPRefusal, POP3Refusal, IMAPRefusal.
	Refusal []byte
	// Logger receives refusals and Accept errors. Nil discards them.
	Logger *slog.Logger
	// Observer is told of each connection (metrics). Nil: nobody.
	Observer Observer
	// ProxyFrom are the networks of load balancers: a connection from one
	// of them must begin with a PROXY protocol header (v1 or v2), and the
	// client address in it is the connection's RemoteAddr, which the caps,
	// logs and SPF see. Connections from elsewhere are taken as they are.
	// Empty: no PROXY protocol.
	ProxyFrom []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for a PROXY header; 0:
	// DefaultProxyHeaderTimeout.
	ProxyHeaderTimeout time.Duration
}

// Observer counts a listener's connections. Its methods must not block.
type Observer interface {
	// Opened: a connection was accepted within the caps.
	Opened()
	// Closed: an accepted connection was closed (once per Opened).
	Closed()
	// Refused: a cap refused a connection; limit is the config key of
	// the cap ("max_connections", "max_connections_per_ip").
	Refused(limit string)
}

// Listener is a net.Listener whose Accept enforces the caps of a Limiter.
type Listener struct {
	inner net.Listener
	opts  Options
	log   *slog.Logger

	done      chan struct{} // closed by Close; ends an Accept back-off
	closeOnce sync.Once

	refusing chan struct{} // semaphore for TLS refusal goroutines

	logLimit   *rate.Limiter // refusal log lines per second
	suppressed atomic.Int64  // refusal lines not logged since the last one

	// With ProxyFrom (proxy.go): the accept goroutine's start, the
	// connections ready to return, and its end with the error it met.
	proxyStart sync.Once
	ready      chan net.Conn
	loopDone   chan struct{}
	loopErr    error
}

// New wraps inner. The Listener owns inner: closing it closes inner.
func New(inner net.Listener, opts Options) *Listener {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{
		inner:    inner,
		opts:     opts,
		log:      log.With("listener", opts.Name, "addr", inner.Addr().String()),
		done:     make(chan struct{}),
		refusing: make(chan struct{}, maxTLSRefusals),
		// A flood of refused connections must not become a flood of log
		// lines: 10 a second, and the next line says how many were skipped.
		logLimit: rate.NewLimiter(10, 10),
	}
}

// Accept waits for and returns the next connection that fits within the
// caps, as a *tls.Conn when Options.TLS is set. Connections over a cap are
// refused and never returned. Temporary errors from the wrapped listener are
// retried after a delay doubling from 5ms to 1s; other errors are returned.
//
// With Options.ProxyFrom, connections are accepted by a goroutine and a
// proxied connection's PROXY header is read in one of its own, so a slow
// load balancer never holds up the others; Accept returns connections as
// they become ready.
func (l *Listener) Accept() (net.Conn, error) {
	if len(l.opts.ProxyFrom) > 0 {
		return l.acceptProxied()
	}
	for {
		c, err := l.acceptRaw()
		if err != nil {
			return nil, err
		}
		if out, ok := l.admit(c); ok {
			return out, nil
		}
	}
}

// acceptRaw accepts from the wrapped listener, retrying temporary errors.
func (l *Listener) acceptRaw() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err == nil {
			return c, nil
		}
		var ne net.Error
		//lint:ignore SA1019 Temporary is what net/http's accept loop uses too; EMFILE and ENFILE report it.
		if errors.As(err, &ne) && ne.Temporary() {
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			l.log.Warn("accept error; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
				continue
			case <-l.done:
				return nil, err
			}
		}
		return nil, err
	}
}

// admit takes a cap slot for c, from its client address, and wraps it; a
// connection over a cap is refused and ok is false.
func (l *Listener) admit(c net.Conn) (_ net.Conn, ok bool) {
	release := func() {}
	if l.opts.Limiter != nil {
		var err error
		release, err = l.opts.Limiter.Acquire(c.RemoteAddr())
		if err != nil {
			l.refuse(c, err)
			return nil, false
		}
	}
	if o := l.opts.Observer; o != nil {
		o.Opened()
		slot := release
		release = func() { slot(); o.Closed() }
	}
	var out net.Conn = &conn{Conn: c, release: onceFunc(release)}
	if l.opts.TLS != nil {
		out = tls.Server(out, l.opts.TLS)
	}
	return out, true
}

// Close closes the wrapped listener and ends a pending Accept, including one
// waiting out a back-off. Connections already accepted stay open.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.inner.Close()
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// onceFunc makes f safe to call more than once.
func onceFunc(f func()) func() {
	var once sync.Once
	return func() { once.Do(f) }
}

// capName returns the config key of the cap behind a refusal.
func capName(reason error) string {
	switch {
	case errors.Is(reason, ErrTooManyConnections):
		return "max_connections"
	case errors.Is(reason, ErrTooManyFromIP):
		return "max_connections_per_ip"
	}
	return "other"
}

// refuse logs, answers and closes a connection that a cap refused.
func (l *Listener) refuse(c net.Conn, reason error) {
	if o := l.opts.Observer; o != nil {
		o.Refused(capName(reason))
	}
	l.logRefusal(c.RemoteAddr(), reason)
	if len(l.opts.Refusal) == 0 {
		c.Close()
		return
	}
	if l.opts.TLS == nil {
		c.SetWriteDeadline(time.Now().Add(refusalTimeout))
		c.Write(l.opts.Refusal) // best effort; the client may be gone
		c.Close()
		return
	}
	// Over TLS the refusal needs a handshake, which the client paces: never
	// on the accept path, and only a bounded number at a time.
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		c.SetDeadline(time.Now().Add(tlsRefusalTimeout))
		tc := tls.Server(c, l.opts.TLS)
		tc.Write(l.opts.Refusal) // handshakes first; best effort
		tc.Close()
	}()
}

func (l *Listener) logRefusal(remote net.Addr, reason error) {
	if !l.logLimit.Allow() {
		l.suppressed.Add(1)
		return
	}
	limiter := l.opts.Limiter
	attrs := []any{"remote", remote.String(), "reason", reason.Error()}
	switch {
	case errors.Is(reason, ErrTooManyConnections):
		attrs = append(attrs, "cap", "max_connections", "limit", limiter.max)
	case errors.Is(reason, ErrTooManyFromIP):
		attrs = append(attrs, "cap", "max_connections_per_ip", "limit", limiter.maxPerIP)
	}
	if n := l.suppressed.Swap(0); n > 0 {
		attrs = append(attrs, "unlogged_refusals", n)
	}
	l.log.Info("connection refused", attrs...)
}

// conn is an accepted connection holding a Limiter slot until Close.
type conn struct {
	net.Conn
	release func() // idempotent
}

// Close closes the connection and gives its slot back.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// NetConn returns the connection from the wrapped listener, for callers
// that need its concrete type (*net.TCPConn). Closing it directly would
// leak the slot; close the wrapper instead.
func (c *conn) NetConn() net.Conn {
	if pc, ok := c.Conn.(*proxyproto.Conn); ok {
		return pc.Raw()
	}
	return c.Conn
}

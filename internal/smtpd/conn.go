package smtpd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// conn wraps every accepted connection before go-smtp sees it. go-smtp has
// no hooks for what this does:
//
//   - Shutdown: an idle session (waiting for a command) is told
//     "421 4.3.2" and closed; a session receiving a message body is left
//     alone until its reply is written.
//   - RFC 5321 §4.5.3.2 data-block timeout: while a body is read, every
//     read gets a fresh deadline (go-smtp sets one per command only, which
//     would cut off a large message on a slow link).
//   - A bound on what is read after a message went over the size limit.
//   - Seeing the client hang up, so a BDAT chunk cut short is never
//     delivered as if it were complete (go-smtp's chunk copy treats EOF as
//     the end of the chunk).
//   - Tracking for Shutdown, and the per-connection id and logger.
//
// After STARTTLS, go-smtp layers a *tls.Conn over this conn, so bytes seen
// here are TLS records: nothing here parses the protocol.
type conn struct {
	net.Conn // as accepted: a TCP conn, or a *tls.Conn with ImplicitTLS

	srv     *Server
	cid     string
	log     *slog.Logger
	started time.Time
	// implicit is the accepted *tls.Conn with ImplicitTLS, else nil.
	implicit *tls.Conn

	closeOnce sync.Once

	mu sync.Mutex
	// busy: a message body is being read. Reads refresh their deadline,
	// and Shutdown does not interrupt.
	busy bool
	// endBusyOnWrite: the body is read; busy ends with the next write,
	// which is the reply to the message.
	endBusyOnWrite bool
	// busyBytes counts bytes read while busy, for maxDrain.
	busyBytes int64
	// kicked: Shutdown wants the session to end as soon as it is idle.
	kicked  bool
	saidBye bool
	// hungUp: the server ended the session; reads return EOF.
	hungUp bool
	// upgraded: go-smtp wrote the STARTTLS go-ahead; from then on the
	// bytes through here are TLS records.
	upgraded bool
	// top is the connection go-smtp talks through, as its latest session
	// saw it: this conn, or the *tls.Conn over it after STARTTLS. Nil
	// between the STARTTLS go-ahead and the next session: the TLS
	// handshake may still be running, and the *tls.Conn is unknown.
	top net.Conn
	// readErr is the first error other than a timeout that a read
	// returned (EOF included).
	readErr error
	// pushback holds bytes a liveness probe read; the next Read returns
	// them first.
	pushback []byte
	// messages counts messages accepted on the connection, for the log.
	messages int
}

func newConn(nc net.Conn, srv *Server) *conn {
	c := &conn{
		Conn:    nc,
		srv:     srv,
		cid:     strconv.FormatUint(rand.Uint64(), 36),
		started: time.Now(),
	}
	c.top = c // until STARTTLS
	c.implicit, _ = nc.(*tls.Conn)
	c.log = srv.log.With("cid", c.cid, "remote", nc.RemoteAddr().String())
	// Bound the implicit-TLS handshake and the wait for the first command:
	// go-smtp sets no read deadline before its first command read, and
	// with ImplicitTLS the handshake runs inside the greeting's write.
	nc.SetDeadline(time.Now().Add(srv.timeout()))
	return c
}

// connOf returns the conn under a connection go-smtp holds: the conn
// itself, or the one under the *tls.Conn of STARTTLS.
func connOf(nc net.Conn) *conn {
	switch v := nc.(type) {
	case *conn:
		return v
	case *tls.Conn:
		c, _ := v.NetConn().(*conn)
		return c
	}
	return nil
}

// errDrainLimit ends a connection whose client keeps sending long after
// its message went over the size limit. go-smtp's reply to DATA or BDAT is
// this error's text; the connection then closes.
var errDrainLimit = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big, closing connection"}

// maxDrain bounds the bytes read for one message body: go-smtp reads an
// oversized DATA body to its end, however long that is.
func (c *conn) maxDrain() int64 { return 2*c.srv.maxMessageSize() + 1<<20 }

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pushback) > 0 {
		n := copy(p, c.pushback)
		c.pushback = c.pushback[n:]
		c.mu.Unlock()
		return n, nil
	}
	if c.hungUp {
		c.mu.Unlock()
		return 0, io.EOF
	}
	if c.kicked && c.interruptible() {
		return 0, c.byeLocked()
	}
	if c.busy {
		// Under mu, so endBody's wake-up for Shutdown cannot be
		// overwritten.
		c.Conn.SetReadDeadline(time.Now().Add(c.srv.timeout()))
	}
	c.mu.Unlock()

	n, err := c.Conn.Read(p)

	c.mu.Lock()
	if err != nil && c.readErr == nil && !isTimeout(err) {
		c.readErr = err
	}
	if err != nil && isTimeout(err) && c.kicked && c.interruptible() {
		// Shutdown interrupted an idle read.
		return n, c.byeLocked()
	}
	if c.busy {
		c.busyBytes += int64(n)
		if c.busyBytes > c.maxDrain() {
			c.hungUp = true
			c.mu.Unlock()
			c.log.Info("closing: client kept sending far beyond the size limit", "bytes", c.busyBytes)
			return n, errDrainLimit
		}
	}
	c.mu.Unlock()
	return n, err
}

// interruptible reports whether Shutdown may end the session now: it is
// waiting for a command, not reading a message body, and not between
// STARTTLS and the session after it (go-smtp may be in the handshake, and
// a read error there makes it write a plaintext reply into the TLS
// stream). c.mu must be held.
func (c *conn) interruptible() bool {
	return !c.busy && c.top != nil
}

// byeLocked ends an idle session for Shutdown: it writes 421 4.3.2 at the
// layer go-smtp speaks through and returns the error for the pending Read,
// which makes go-smtp close the connection. It unlocks c.mu.
func (c *conn) byeLocked() error {
	if c.saidBye {
		c.mu.Unlock()
		return io.EOF
	}
	// hungUp also tells clientGone: a BDAT chunk being read ends here.
	c.saidBye, c.hungUp = true, true
	w := c.Conn
	if c.top != net.Conn(c) {
		w = c.top // the *tls.Conn of STARTTLS
	}
	c.mu.Unlock()
	// RFC 5321 §3.8: a server that must shut down answers the next command
	// (here: at once) with 421 and closes.
	w.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	fmt.Fprintf(w, "421 4.3.2 %s Service shutting down, try again later\r\n", c.srv.hostname())
	return io.EOF
}

// goAhead is how go-smtp's STARTTLS reply starts; the greeting, the only
// other 220, carries no enhanced status code.
var goAhead = []byte("220 2.0.0 ")

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.endBusyOnWrite {
		c.busy, c.endBusyOnWrite = false, false
	}
	if !c.upgraded && c.implicit == nil && bytes.HasPrefix(p, goAhead) {
		c.upgraded, c.top = true, nil
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Close closes the connection once and lets Shutdown know.
func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.mu.Lock()
		n := c.messages
		c.mu.Unlock()
		c.log.Debug("connection closed", "duration", time.Since(c.started).Round(time.Millisecond), "messages", n)
		c.srv.forget(c)
	})
	return err
}

// kick asks an idle session to end (Shutdown). A session receiving a body
// ends after its reply.
func (c *conn) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kicked = true
	if c.interruptible() {
		// Wake a blocked read; Read then says goodbye.
		c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// setTop records the connection a new session talks through (see top).
// A session kicked before it existed is told at its next read.
func (c *conn) setTop(top net.Conn) {
	c.mu.Lock()
	c.top = top
	c.mu.Unlock()
}

// startBody marks the start of a message body.
func (c *conn) startBody() {
	c.mu.Lock()
	c.busy, c.endBusyOnWrite, c.busyBytes = true, false, 0
	c.mu.Unlock()
}

// endBody marks the body as read. With replyPending, the session stays
// busy until go-smtp writes the reply (it first reads what is left of an
// oversized DATA body).
func (c *conn) endBody(replyPending bool) {
	c.mu.Lock()
	if replyPending {
		c.endBusyOnWrite = true
	} else {
		c.busy, c.endBusyOnWrite = false, false
	}
	if c.kicked && c.interruptible() {
		c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

// hangUp makes every further read return EOF, so go-smtp closes the
// connection after writing its pending reply.
func (c *conn) hangUp() {
	c.mu.Lock()
	c.hungUp = true
	c.mu.Unlock()
}

func (c *conn) isHungUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hungUp
}

func (c *conn) countMessage() {
	c.mu.Lock()
	c.messages++
	c.mu.Unlock()
}

// clientGone reports whether the client hung up or the connection failed.
// It is asked before a BDAT message is delivered, when go-smtp is not
// reading: go-smtp copies a chunk with io.Copy, which takes EOF for the end
// of the chunk, so a client that disconnects inside the LAST chunk would
// otherwise have its truncated message delivered.
//
// Without STARTTLS every read go-smtp makes passes through here, so a
// recorded read error is the whole answer. Under STARTTLS a TLS
// close_notify ends go-smtp's reads without reaching this layer, so the
// socket is probed for a pending EOF, keeping any bytes the probe reads
// (pipelined commands) for the next Read.
func (c *conn) clientGone() bool {
	c.mu.Lock()
	gone, upgraded := c.readErr != nil || c.hungUp, c.upgraded
	c.mu.Unlock()
	if gone {
		return true
	}
	if !upgraded {
		return false
	}
	buf := make([]byte, 4096)
	c.Conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	n, err := c.Conn.Read(buf)
	c.Conn.SetReadDeadline(time.Now().Add(c.srv.timeout()))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pushback = append(c.pushback, buf[:n]...)
	if err != nil && !isTimeout(err) {
		c.readErr = err
		return true
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// listener wraps the listener Serve was given: it wraps and tracks every
// accepted connection and stops accepting at Shutdown.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := newConn(nc, l.srv)
	if !l.srv.track(c) {
		nc.Close()
		return nil, ErrServerClosed
	}
	c.log.Debug("connection opened")
	return c, nil
}

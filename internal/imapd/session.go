package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/netio"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// state is a connection state of RFC 9051 §3, as a bit so a command can
// allow several.
type state uint8

const (
	stateNotAuth state = 1 << iota
	stateAuth
	stateSelected
	stateLogout

	stateAny       = stateNotAuth | stateAuth | stateSelected
	stateAuthOrSel = stateAuth | stateSelected
)

// handler runs one command. The decoder is positioned after the command
// name (and after "UID " for UID forms, with uid set); the handler parses
// its arguments through the final CRLF, then acts. It returns nil for a
// plain "OK <name> completed", a *status for any other tagged reply, a
// decoder protocol error (answered BAD), or another error, which ends the
// session (I/O). Store failures are returned as s.serverBug(err).
type handler func(s *session, tag, name string, uid bool) error

// command is a command table entry.
type command struct {
	fn     handler
	states state
	// uid: allowed after "UID".
	uid bool
	// seqResponse: a non-UID form may not be followed by EXPUNGE
	// responses (RFC 9051 §7.5.1: FETCH, STORE, SEARCH).
	seqResponse bool
	// caps: the capabilities the command brings (commands.go).
	caps []capability
}

// status is a tagged (or BYE) reply other than a plain OK.
type status struct {
	kind string // "OK", "NO", "BAD"
	code string // response code without brackets, may be ""
	text string
}

func (st *status) Error() string { return st.kind + " " + st.code + " " + st.text }

func statusf(kind, code, format string, a ...any) *status {
	return &status{kind: kind, code: code, text: fmt.Sprintf(format, a...)}
}

// no returns a tagged NO.
func no(code, format string, a ...any) *status { return statusf("NO", code, format, a...) }

// bad returns a tagged BAD.
func bad(code, format string, a ...any) *status { return statusf("BAD", code, format, a...) }

// okCode returns a tagged OK with a response code.
func okCode(code, format string, a ...any) *status { return statusf("OK", code, format, a...) }

// session is one IMAP connection.
type session struct {
	srv *Server
	// lim are the limits the session started with (SetLimits).
	lim  Limits
	conn net.Conn
	log  *slog.Logger
	cid  string

	br  *bufio.Reader
	bw  *bufio.Writer
	dec *imapwire.Decoder
	enc *imapwire.Encoder
	// rawR and rawW are what br and bw sit on: the connection (through the
	// write-deadline wrapper), later TLS and/or COMPRESS streams.
	rawR io.Reader
	rawW io.Writer

	// zw is the COMPRESS=DEFLATE layer under bw, nil until COMPRESS.
	zw *compressWriter

	isTLS      bool
	compressed bool
	state      state
	user       userdb.Account
	acct       *store.Account
	sub        *store.Subscription
	sel        *selected

	// Extensions the client turned on with ENABLE (RFC 5161) or by use.
	rev2, condstore, qresync, utf8 bool

	// searchRes is the SEARCHRES saved result ($), as UIDs (RFC 5182).
	searchRes []uint32

	authFailures int
	badCommands  int

	// netConn is the accepted connection. Unlike conn (replaced by
	// STARTTLS) it never changes, so Shutdown's goroutine may use it.
	netConn net.Conn
	waiting atomic.Bool // blocked reading the next command
}

// sessionBufSize is the size of the session's read and write buffers.
const sessionBufSize = 4096

// maxAuthFailures closes a session after this many failed logins.
const maxAuthFailures = 3

// maxBadCommands closes a session after this many BAD replies.
const maxBadCommands = 50

func newSession(srv *Server, c net.Conn) *session {
	s := &session{srv: srv, lim: srv.sessionLimits(), conn: c, netConn: c, cid: newCID(), state: stateNotAuth}
	_, s.isTLS = c.(*tls.Conn)
	s.log = srv.log.With("cid", s.cid, "proto", "imap", "remote", c.RemoteAddr().String())
	s.rawR = c
	s.rawW = &netio.DeadlineWriter{Conn: c, Timeout: s.lim.writeTimeout()}
	s.br = bufio.NewReaderSize(s.rawR, sessionBufSize)
	s.bw = bufio.NewWriterSize(s.rawW, sessionBufSize)
	s.dec = imapwire.NewDecoder(s.br, s.continuation, imapwire.DecoderOptions{MaxLineLength: s.lim.maxLineLength(), LiteralPlus: true})
	s.enc = imapwire.NewEncoder(s.bw)
	return s
}

// continuation answers a synchronizing literal.
func (s *session) continuation() error {
	s.enc.Atom("+ Ready for literal data").CRLF()
	return s.flush()
}

// shutdownGrace is how long a session waiting for a command still waits
// after Shutdown, so that a command already on its way is answered
// before the BYE rather than dropped.
const shutdownGrace = 100 * time.Millisecond

// lingerTimeout bounds how long closeConn reads what a client still sends
// after the server's BYE.
const lingerTimeout = 500 * time.Millisecond

// wake makes a session that waits for a command notice Shutdown (IDLE
// watches srv.done itself). It runs on Shutdown's goroutine. The deadline
// set on the accepted connection also governs a TLS connection over it.
func (s *session) wake() {
	if s.waiting.Load() {
		s.netConn.SetReadDeadline(time.Now().Add(shutdownGrace))
	}
}

// closeConn closes the connection. After a BYE (logout state) it first
// shuts down the sending side and reads, for a moment, what the client
// still sends: closing a socket with unread input (a command pipelined
// behind one that got BYE) makes the kernel send RST, which can destroy
// the BYE before the client has read it.
func (s *session) closeConn() {
	if s.state == stateLogout && sessionCloseWrite(s.conn) {
		s.netConn.SetReadDeadline(time.Now().Add(lingerTimeout))
		io.Copy(io.Discard, io.LimitReader(s.netConn, 1<<20))
	}
	s.conn.Close()
}

// sessionCloseWrite half-closes c: close_notify for TLS, then FIN on the
// TCP connection under any wrappers. It reports whether FIN was sent.
func sessionCloseWrite(c net.Conn) bool {
	for c != nil {
		if tc, ok := c.(*tls.Conn); ok {
			tc.CloseWrite() // fails harmlessly before the handshake
			c = tc.NetConn()
			continue
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite() == nil
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return false
		}
		c = u.NetConn()
	}
	return false
}

func (s *session) timeout() time.Duration {
	if s.state == stateNotAuth {
		return s.lim.preauthTimeout()
	}
	return s.lim.timeout()
}

func (s *session) serve() {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in imap session", "panic", r, "stack", string(debug.Stack()))
			s.enc.Atom("* BYE internal server error").CRLF()
			s.flush()
			s.state = stateLogout
		}
		if s.sub != nil {
			s.sub.Close()
		}
		if s.acct != nil {
			s.acct.Release()
		}
		if s.zw != nil {
			s.zw.release()
		}
		s.closeConn()
	}()
	if tc, ok := s.conn.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(s.lim.preauthTimeout()))
		if err := tc.Handshake(); err != nil {
			s.log.Debug("tls handshake failed", "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
	}
	s.enc.Atom("* OK [CAPABILITY ").Atom(s.capabilities()).Atom("] " + s.srv.Hostname + " jodmai IMAP4rev2 ready").CRLF()
	s.log.Debug("imap connect", "tls", s.isTLS)
	for s.state != stateLogout {
		if s.dec.Buffered() == 0 {
			if err := s.flush(); err != nil {
				return
			}
		}
		if !s.readCommand() {
			return
		}
	}
	s.flush()
}

// flush sends everything written so far. Handlers that must reach the
// client before reading more input (continuations, IDLE updates) call it;
// flushing only s.bw would leave compressed data behind in s.zw.
func (s *session) flush() error {
	err := s.enc.Flush()
	if err == nil && s.zw != nil {
		err = s.zw.Flush()
	}
	if err != nil {
		s.log.Debug("write failed", "err", err)
	}
	return err
}

// readCommand reads and runs one command; false ends the session.
func (s *session) readCommand() bool {
	// Order matters against Shutdown, which closes srv.done and then calls
	// wake: either wake sees waiting set and its short deadline lands
	// after ours, or it came too early and the check below sees done.
	// Setting the deadline after the check could overwrite wake's and
	// leave the session waiting for its full timeout.
	s.waiting.Store(true)
	s.conn.SetReadDeadline(time.Now().Add(s.timeout()))
	if s.srv.shuttingDown() {
		s.waiting.Store(false)
		s.bye("server shutting down")
		return false
	}
	tag, err := s.dec.ReadTag()
	s.waiting.Store(false)
	if err != nil {
		if imapwire.IsProtocolError(err) {
			return s.untaggedBad(err)
		}
		s.endOnReadError(err)
		return false
	}
	// Commands may take long (FETCH of a large mailbox); the read deadline
	// guards only the wait for input.
	s.conn.SetReadDeadline(time.Now().Add(s.timeout()))
	if err := s.dec.SP(); err != nil {
		return s.afterError(tag, "", err)
	}
	name, err := s.dec.ReadCommand()
	if err != nil {
		return s.afterError(tag, "", err)
	}
	uid := false
	if name == "UID" {
		uid = true
		if err := s.dec.SP(); err != nil {
			return s.afterError(tag, name, err)
		}
		if name, err = s.dec.ReadCommand(); err != nil {
			return s.afterError(tag, "UID", err)
		}
	}
	cmd, ok := s.srv.cmds[name]
	if !ok || (uid && !cmd.uid) {
		return s.afterError(tag, name, bad("", "unknown command"))
	}
	if cmd.states&s.state == 0 {
		return s.afterError(tag, name, bad("", "%s not allowed %s", name, s.stateText()))
	}
	err = cmd.fn(s, tag, name, uid)
	if s.state == stateSelected && s.sel != nil && name != "IDLE" {
		if serr := s.sync(!cmd.seqResponse || uid); serr != nil {
			s.log.Warn("sync selected mailbox", "err", serr)
		}
	}
	return s.afterError(tag, name, err)
}

func (s *session) stateText() string {
	switch s.state {
	case stateNotAuth:
		return "before login"
	case stateAuth:
		return "without a selected mailbox"
	default:
		return "in this state"
	}
}

// afterError writes the tagged reply for a command's outcome and resyncs
// the decoder after a protocol error. It returns false to end the session.
func (s *session) afterError(tag, name string, err error) bool {
	var st *status
	switch {
	case errors.Is(err, errAlreadyAnswered):
		return true
	case err == nil:
		if name == "" {
			name = "command"
		}
		s.tagged(tag, &status{kind: "OK", text: name + " completed"})
		return true
	case isMailboxNameError(err):
		// A well-formed line naming no possible mailbox: NO, and the
		// rest of the line is skipped as after BAD.
		if serr := s.dec.SkipLine(); serr != nil {
			s.bye("too much invalid input")
			return false
		}
		s.tagged(tag, &status{kind: "NO", code: "CANNOT", text: err.Error()})
	case errors.As(err, &st):
		if st.kind == "BAD" {
			s.badCommands++
		}
		// A handler may refuse before consuming the whole line (unknown
		// command, wrong state).
		if serr := s.dec.SkipLine(); serr != nil {
			s.tagged(tag, st)
			s.bye("too much invalid input")
			return false
		}
		s.tagged(tag, st)
	case imapwire.IsProtocolError(err):
		s.badCommands++
		var tb *imapwire.LiteralTooBigError
		code := ""
		if errors.As(err, &tb) {
			code = "TOOBIG"
		}
		s.tagged(tag, &status{kind: "BAD", code: code, text: err.Error()})
		if serr := s.dec.SkipLine(); serr != nil {
			s.bye("too much invalid input")
			return false
		}
	default:
		s.endOnReadError(err)
		return false
	}
	if s.badCommands >= maxBadCommands {
		s.bye("too many invalid commands")
		return false
	}
	return true
}

// untaggedBad answers a line whose tag did not parse.
func (s *session) untaggedBad(err error) bool {
	s.badCommands++
	s.enc.Atom("* BAD ").Text(err.Error()).CRLF()
	if serr := s.dec.SkipLine(); serr != nil || s.badCommands >= maxBadCommands {
		s.bye("too much invalid input")
		return false
	}
	return true
}

func (s *session) endOnReadError(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("client closed connection")
	case errors.As(err, &ne) && ne.Timeout():
		if s.srv.shuttingDown() {
			s.bye("server shutting down")
		} else {
			s.bye("autologout; idle for too long")
			s.log.Info("imap autologout", "account", s.user.Address)
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.bye("autologout")
	default:
		s.log.Debug("session ended", "err", err)
	}
}

// tagged writes "tag KIND [CODE] text".
func (s *session) tagged(tag string, st *status) {
	s.enc.Atom(tag).SP().Atom(st.kind).SP()
	if st.code != "" {
		s.enc.Byte('[').Atom(st.code).Atom("] ")
	}
	s.enc.Text(st.text).CRLF()
}

// bye writes "* BYE text" and flushes.
func (s *session) bye(text string) {
	s.enc.Atom("* BYE ").Text(text).CRLF()
	s.flush()
	s.state = stateLogout
}

// refusePipelined answers a STARTTLS or COMPRESS that the client followed
// with more input before the reply, and ends the session: that input was
// sent before the layer changed, so it can be read neither as plain text
// (it may be meant for the new layer) nor through the new layer, and a
// man in the middle may have added it to be read as protected (RFC 9051
// §11.1, RFC 4978 §6). No correct client does this.
func (s *session) refusePipelined(tag, name string) error {
	s.log.Warn("input pipelined after "+name+"; closing", "buffered", s.dec.Buffered())
	s.tagged(tag, &status{kind: "BAD", text: "no input may follow " + name + " before its reply"})
	s.bye("input pipelined after " + name)
	return errAlreadyAnswered
}

// serverBug logs an internal failure and returns the NO the client sees,
// without the details.
func (s *session) serverBug(err error) error {
	if errors.Is(err, context.Canceled) && s.srv.shuttingDown() {
		// Shutdown canceled a read; the BYE follows.
		s.log.Info("imap command cut short by shutdown", "err", err)
		return no("UNAVAILABLE", "server shutting down")
	}
	s.log.Error("imap command failed", "account", s.user.Address, "err", err)
	return no("SERVERBUG", "internal server error; try again later")
}

// ctx is the context for store and auth calls of this session; Shutdown
// cancels it.
func (s *session) ctx() context.Context { return s.srv.baseCtx }

// writeTimeout bounds a store write that runs to its end once begun.
const writeTimeout = time.Minute

// writeCtx is the context of a store write the client must hear the
// outcome of (APPEND, COPY/MOVE, STORE, EXPUNGE): Shutdown does not cut
// it short once begun; writeTimeout bounds it instead.
func (s *session) writeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx()), writeTimeout)
}

func isMailboxNameError(err error) bool {
	var ne *imapwire.MailboxNameError
	return errors.As(err, &ne)
}

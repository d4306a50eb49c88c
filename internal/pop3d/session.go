package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/store"
)

// state is a session's RFC 1939 state.
type state int

const (
	stateAuthorization state = iota
	stateTransaction
	stateUpdate
)

func (st state) String() string {
	switch st {
	case stateAuthorization:
		return "AUTHORIZATION"
	case stateTransaction:
		return "TRANSACTION"
	default:
		return "UPDATE"
	}
}

// levelTrace is the slog level of protocol transcripts.
const levelTrace = slog.LevelDebug - 4

// errClose ends the command loop after the current reply is flushed.
var errClose = errors.New("close session")

// session is one client connection.
type session struct {
	srv *Server
	log *slog.Logger
	ctx context.Context
	// raw is the accepted connection; deadlines and Shutdown's interrupt
	// act on it, under any TLS layer.
	raw    net.Conn
	conn   net.Conn // raw, or the *tls.Conn over it
	br     *bufio.Reader
	bw     *bufio.Writer
	remote net.Addr
	isTLS  bool

	// timestamp is the APOP challenge of the greeting, <pid.nonce@host>.
	timestamp string
	state     state
	// user is the name of a successful USER, waiting for PASS.
	user         string
	authFailures int
	badCommands  int
	lineBuf      []byte // holds a line that spans several buffer fills

	// TRANSACTION state.
	account  *store.Account
	address  string
	release  func() // the maildrop lock
	mailbox  store.Mailbox
	msgs     []store.Message  // the snapshot; message n is msgs[n-1]
	uidls    map[int64]string // kept POP3 UIDLs of imported messages, by message id
	deleted  []bool
	nDeleted int
	delSize  int64
	total    int64 // octets of all messages in the snapshot
}

func (s *Server) newSession(c net.Conn) *session {
	sess := &session{
		srv:    s,
		raw:    c,
		conn:   c,
		remote: c.RemoteAddr(),
		ctx:    s.baseCtx,
	}
	sess.log = s.logger().With("cid", newCID(), "proto", "pop3", "remote", sess.remote.String())
	return sess
}

// interrupt wakes a session blocked waiting for a command, so it notices
// the shutdown. Reads honour the deadline even under TLS.
func (sess *session) interrupt() {
	sess.raw.SetReadDeadline(time.Now())
}

// serve runs the session to its end. It never panics: a panic in a command
// is logged with its stack and ends the session without UPDATE.
func (sess *session) serve() {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			sess.log.Error("pop3 session panic", "panic", r, "stack", string(debug.Stack()))
			if sess.bw != nil {
				sess.writeLine("-ERR [SYS/TEMP] internal error")
				sess.flush()
			}
		}
		sess.unlock()
		if sess.account != nil {
			sess.account.Release()
		}
		sess.closeConn()
		sess.log.Debug("pop3 session closed", "duration", time.Since(start).Round(time.Millisecond))
	}()

	if tc, ok := sess.conn.(*tls.Conn); ok {
		if !sess.handshake(tc) {
			return
		}
	} else if sess.srv.ImplicitTLS {
		// A wiring mistake; fail safe: this connection is treated as
		// plaintext, so passwords are refused (except from loopback).
		sess.log.Error("pop3 listener is configured for implicit TLS but handed out a plain connection")
	}
	sess.setBuffers()

	var nonce [8]byte
	rand.Read(nonce[:])
	sess.timestamp = "<" + sess.srv.pid + "." + hex.EncodeToString(nonce[:]) + "@" + sess.srv.hostname + ">"
	// RFC 1939 §4: the greeting; §7: the APOP timestamp at its end.
	sess.writeLine("+OK " + sess.srv.hostname + " POP3 ready " + sess.timestamp)

	for {
		if sess.srv.closing.Load() && sess.state != stateUpdate {
			sess.writeLine("-ERR [SYS/TEMP] server shutting down")
			sess.flush()
			return
		}
		line, tooLong, err := sess.readLine(sess.srv.maxAuthLine())
		if err != nil {
			sess.readFailed(err)
			return
		}
		if err := sess.command(line, tooLong); err != nil {
			if !errors.Is(err, errClose) {
				sess.log.Info("pop3 session ended", "err", err)
			}
			sess.flush()
			return
		}
	}
}

func (sess *session) setBuffers() {
	w := &deadlineWriter{c: sess.conn, timeout: sess.srv.writeTimeout()}
	sess.br = bufio.NewReaderSize(sess.conn, readBufferSize)
	sess.bw = bufio.NewWriterSize(w, writeBufferSize)
}

// handshake completes a TLS handshake; it logs and reports failure.
func (sess *session) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(sess.ctx, min(handshakeTimeout, sess.srv.timeout()))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		sess.log.Info("pop3 TLS handshake failed", "err", err)
		return false
	}
	cs := tc.ConnectionState()
	sess.isTLS = true
	sess.log = sess.log.With("tls", tls.VersionName(cs.Version))
	return true
}

// readFailed handles the end of input: EOF, a timeout, or Shutdown's
// interrupt. None of them enters UPDATE.
func (sess *session) readFailed(err error) {
	var ne net.Error
	switch {
	case isWriteError(err):
		// Flushing replies failed: the client stopped reading (write
		// timeout) or went away.
		sess.log.Info("pop3 write failed", "err", err)
		return
	case sess.srv.closing.Load():
		sess.writeLine("-ERR [SYS/TEMP] server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939 §3: the autologout timer.
		sess.log.Info("pop3 autologout", "state", sess.state.String())
		sess.writeLine("-ERR autologout: idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		if sess.state == stateTransaction {
			sess.log.Info("pop3 connection dropped without QUIT; nothing deleted")
		}
		return
	default:
		sess.log.Info("pop3 read failed", "err", err)
		return
	}
	sess.flush() // best effort: the client may be gone
}

// closeConn closes the connection; a TLS close_notify gets a short
// deadline so a dead client cannot hold the session.
func (sess *session) closeConn() {
	sess.raw.SetWriteDeadline(time.Now().Add(time.Second))
	sess.conn.Close()
}

// unlock releases the maildrop lock, if held.
func (sess *session) unlock() {
	if sess.release != nil {
		sess.release()
		sess.release = nil
	}
}

// readLine reads one line of at most limit octets including its line end,
// which may be CRLF or a bare LF; the line end is not returned. The slice is
// valid until the next read. A longer line is discarded, in bounded memory,
// up to its end, and reported as tooLong.
//
// Before any read that may block, pending replies are flushed (so
// pipelined commands are answered in one write) and the autologout
// deadline is set.
func (sess *session) readLine(limit int) (line []byte, tooLong bool, err error) {
	sess.lineBuf = sess.lineBuf[:0]
	n := 0
	for {
		if err := sess.beforeRead(); err != nil {
			return nil, false, err
		}
		frag, err := sess.br.ReadSlice('\n')
		n += len(frag)
		if n > limit {
			tooLong = true
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			if len(sess.lineBuf) > 0 {
				sess.lineBuf = append(sess.lineBuf, frag...)
				frag = sess.lineBuf
			}
			frag = frag[:len(frag)-1]
			if len(frag) > 0 && frag[len(frag)-1] == '\r' {
				frag = frag[:len(frag)-1]
			}
			return frag, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong {
				sess.lineBuf = append(sess.lineBuf, frag...)
			}
		default:
			return nil, false, err
		}
	}
}

// beforeRead prepares for a read from the connection when the buffer
// holds no complete line: it flushes pending replies and sets the read
// deadline. The deadline is set before the shutdown check, so an interrupt
// that comes between them is not lost.
func (sess *session) beforeRead() error {
	if n := sess.br.Buffered(); n > 0 {
		if b, _ := sess.br.Peek(n); bytes.IndexByte(b, '\n') >= 0 {
			return nil
		}
	}
	if err := sess.flush(); err != nil {
		return writeError{err}
	}
	sess.raw.SetReadDeadline(time.Now().Add(sess.srv.timeout()))
	if sess.srv.closing.Load() && sess.state != stateUpdate {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (sess *session) flush() error {
	if sess.bw.Buffered() == 0 {
		return nil
	}
	return sess.bw.Flush()
}

func (sess *session) writeLine(s string) {
	sess.bw.WriteString(s)
	sess.bw.WriteString("\r\n")
}

// deadlineWriter sets the write deadline before each write, so a client
// that stops reading is dropped after the write timeout.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.c.Write(p)
}

// reply is a single-line POP3 response: +OK or -ERR, with an optional RFC
// 2449 §8 response code.
type reply struct {
	ok   bool
	code string // "AUTH", "IN-USE", "SYS/TEMP", "SYS/PERM" or ""
	text string
	// bad marks a protocol error (unknown command, wrong state, bad
	// syntax); enough of them end the session.
	bad bool
	// written: a multi-line response the handler already wrote.
	written bool
}

func okReply(format string, args ...any) reply {
	return reply{ok: true, text: fmt.Sprintf(format, args...)}
}

func errReply(code, text string) reply {
	return reply{code: code, text: text}
}

func badReply(text string) reply {
	return reply{text: text, bad: true}
}

// multiline is the reply of a handler that wrote its own response.
var multiline = reply{ok: true, written: true}

// noReply is the reply of a handler that must not answer (the connection
// is going away, or STLS switched it to TLS).
var noReply = reply{written: true}

func (sess *session) writeReply(r reply) {
	if r.written {
		return
	}
	if r.ok {
		sess.bw.WriteString("+OK")
	} else {
		sess.bw.WriteString("-ERR")
	}
	if r.code != "" {
		sess.bw.WriteString(" [")
		sess.bw.WriteString(r.code)
		sess.bw.WriteString("]")
	}
	if r.text != "" {
		sess.bw.WriteString(" ")
		sess.bw.WriteString(r.text)
	}
	sess.bw.WriteString("\r\n")
}

// command handles one command line. It returns errClose (or a write error)
// to end the session after flushing.
func (sess *session) command(line []byte, tooLong bool) error {
	var r reply
	var closeAfter bool
	if tooLong {
		r = badReply("line too long")
	} else {
		verb, args := splitCommand(line)
		if sess.log.Enabled(sess.ctx, levelTrace) {
			sess.log.Log(sess.ctx, levelTrace, "pop3 command", "verb", verb, "args", redact(verb, args))
		}
		if verb != "AUTH" && len(line)+2 > sess.srv.maxLine() {
			r = badReply("line too long")
		} else {
			r, closeAfter = sess.dispatch(verb, args)
		}
	}
	if r.bad {
		sess.badCommands++
		if sess.badCommands >= maxBadCommands {
			sess.log.Info("pop3 too many bad commands", "count", sess.badCommands)
			r = badReply("too many bad commands, closing connection")
			closeAfter = true
		}
	}
	sess.writeReply(r)
	if closeAfter {
		return errClose
	}
	return nil
}

// splitCommand splits a line into its keyword, upper-cased (RFC 1939 §3:
// keywords are case-insensitive), and the rest after one space. A keyword
// that is not 3 or 4 ASCII letters comes back as "" so it is never echoed
// or matched.
func splitCommand(line []byte) (verb, args string) {
	kw := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		kw, args = line[:i], string(line[i+1:])
	}
	if len(kw) < 3 || len(kw) > 4 {
		return "", args
	}
	var b [4]byte
	for i, c := range kw {
		switch {
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z':
		default:
			return "", args
		}
		b[i] = c
	}
	return string(b[:len(kw)]), args
}

// redact returns the arguments of a command for the trace log, without
// secrets.
func redact(verb, args string) string {
	switch verb {
	case "PASS", "AUTH":
		if verb == "AUTH" {
			if mech, _, ok := strings.Cut(args, " "); ok {
				return mech + " [redacted]"
			}
			return args
		}
		return "[redacted]"
	case "APOP":
		name, _, _ := strings.Cut(args, " ")
		return name + " [redacted]"
	}
	if len(args) > 64 {
		return args[:64] + "..."
	}
	return args
}

// dispatch runs a command in the current state. closeAfter ends the session
// once the reply is written.
func (sess *session) dispatch(verb, args string) (r reply, closeAfter bool) {
	// Commands valid in each state, RFC 1939 §4-§6, RFC 2449 §5 (CAPA),
	// RFC 2595 §4 (STLS), RFC 5034 §4 (AUTH).
	switch sess.state {
	case stateAuthorization:
		switch verb {
		case "USER":
			return sess.cmdUser(args), false
		case "PASS":
			return sess.cmdPass(args)
		case "APOP":
			return sess.cmdAPOP(args)
		case "AUTH":
			return sess.cmdAuth(args)
		case "STLS":
			return sess.cmdSTLS(args)
		case "CAPA":
			return sess.cmdCapa(args), false
		case "QUIT":
			// RFC 1939 §4: QUIT in AUTHORIZATION does not enter UPDATE.
			if !noArgs(args) {
				return badReply("QUIT takes no arguments"), false
			}
			return okReply("%s POP3 server signing off", sess.srv.hostname), true
		case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET":
			return badReply("command not valid before login"), false
		}
	case stateTransaction:
		switch verb {
		case "STAT":
			return sess.cmdStat(args), false
		case "LIST":
			return sess.cmdList(args), false
		case "UIDL":
			return sess.cmdUIDL(args), false
		case "RETR":
			return sess.cmdRetr(args)
		case "TOP":
			return sess.cmdTop(args)
		case "DELE":
			return sess.cmdDele(args), false
		case "NOOP":
			return sess.cmdNoop(args), false
		case "RSET":
			return sess.cmdRset(args), false
		case "QUIT":
			return sess.cmdQuit(args)
		case "CAPA":
			return sess.cmdCapa(args), false
		case "USER", "PASS", "APOP", "AUTH", "STLS":
			return badReply("already logged in"), false
		}
	}
	return badReply("unknown command"), false
}

// noArgs reports whether a command that takes no arguments got none;
// trailing blanks are forgiven.
func noArgs(args string) bool {
	return strings.TrimLeft(args, " \t") == ""
}

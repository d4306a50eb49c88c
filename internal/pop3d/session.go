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

	"github.com/jodmai/jodmai/internal/netio"
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
	// lim are the limits the session started with (SetLimits).
	lim Limits
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
		lim:    s.sessionLimits(),
		raw:    c,
		conn:   c,
		remote: c.RemoteAddr(),
		ctx:    s.baseCtx,
	}
	sess.log = s.log.With("cid", newCID(), "proto", "pop3", "remote", sess.remote.String())
	return sess
}

// interrupt wakes a session blocked waiting for a command, so it notices
// the shutdown. Reads honour the deadline even under TLS.
func (s *session) interrupt() {
	s.raw.SetReadDeadline(time.Now())
}

// serve runs the session to its end. It never panics: a panic in a command
// is logged with its stack and ends the session without UPDATE.
func (s *session) serve() {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("pop3 session panic", "panic", r, "stack", string(debug.Stack()))
			if s.bw != nil {
				s.writeLine("-ERR [SYS/TEMP] internal error")
				s.flush()
			}
		}
		s.unlock()
		if s.account != nil {
			s.account.Release()
		}
		s.closeConn()
		s.log.Debug("pop3 session closed", "duration", time.Since(start).Round(time.Millisecond))
	}()

	if tc, ok := s.conn.(*tls.Conn); ok {
		if !s.handshake(tc) {
			return
		}
	} else if s.srv.ImplicitTLS {
		// A wiring mistake; fail safe: this connection is treated as
		// plaintext, so passwords are refused (except from loopback).
		s.log.Error("pop3 listener is configured for implicit TLS but handed out a plain connection")
	}
	s.setBuffers()

	var nonce [8]byte
	rand.Read(nonce[:])
	s.timestamp = "<" + s.srv.pid + "." + hex.EncodeToString(nonce[:]) + "@" + s.srv.hostname + ">"
	// RFC 1939 §4: the greeting; §7: the APOP timestamp at its end.
	s.writeLine("+OK " + s.srv.hostname + " POP3 ready " + s.timestamp)

	for {
		if s.srv.closing.Load() && s.state != stateUpdate {
			s.writeLine("-ERR [SYS/TEMP] server shutting down")
			s.flush()
			return
		}
		line, tooLong, err := s.readLine(s.lim.maxAuthLine())
		if err != nil {
			s.readFailed(err)
			return
		}
		if err := s.command(line, tooLong); err != nil {
			if !errors.Is(err, errClose) {
				s.log.Info("pop3 session ended", "err", err)
			}
			s.flush()
			return
		}
	}
}

func (s *session) setBuffers() {
	w := &netio.DeadlineWriter{Conn: s.conn, Timeout: s.lim.writeTimeout()}
	s.br = bufio.NewReaderSize(s.conn, readBufferSize)
	s.bw = bufio.NewWriterSize(w, writeBufferSize)
}

// handshake completes a TLS handshake; it logs and reports failure.
func (s *session) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(s.ctx, min(handshakeTimeout, s.lim.timeout()))
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Info("pop3 TLS handshake failed", "err", err)
		return false
	}
	cs := tc.ConnectionState()
	s.isTLS = true
	s.log = s.log.With("tls", tls.VersionName(cs.Version))
	return true
}

// readFailed handles the end of input: EOF, a timeout, or Shutdown's
// interrupt. None of them enters UPDATE.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case isWriteError(err):
		// Flushing replies failed: the client stopped reading (write
		// timeout) or went away.
		s.log.Info("pop3 write failed", "err", err)
		return
	case s.srv.closing.Load():
		s.writeLine("-ERR [SYS/TEMP] server shutting down")
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939 §3: the autologout timer.
		s.log.Info("pop3 autologout", "state", s.state.String())
		s.writeLine("-ERR autologout: idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		if s.state == stateTransaction {
			s.log.Info("pop3 connection dropped without QUIT; nothing deleted")
		}
		return
	default:
		s.log.Info("pop3 read failed", "err", err)
		return
	}
	s.flush() // best effort: the client may be gone
}

// closeConn closes the connection; a TLS close_notify gets a short
// deadline so a dead client cannot hold the session.
func (s *session) closeConn() {
	s.raw.SetWriteDeadline(time.Now().Add(time.Second))
	s.conn.Close()
}

// unlock releases the maildrop lock, if held.
func (s *session) unlock() {
	if s.release != nil {
		s.release()
		s.release = nil
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
func (s *session) readLine(limit int) (line []byte, tooLong bool, err error) {
	s.lineBuf = s.lineBuf[:0]
	n := 0
	for {
		if err := s.beforeRead(); err != nil {
			return nil, false, err
		}
		frag, err := s.br.ReadSlice('\n')
		n += len(frag)
		if n > limit {
			tooLong = true
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, true, nil
			}
			if len(s.lineBuf) > 0 {
				s.lineBuf = append(s.lineBuf, frag...)
				frag = s.lineBuf
			}
			frag = frag[:len(frag)-1]
			if len(frag) > 0 && frag[len(frag)-1] == '\r' {
				frag = frag[:len(frag)-1]
			}
			return frag, false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if !tooLong {
				s.lineBuf = append(s.lineBuf, frag...)
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
func (s *session) beforeRead() error {
	if n := s.br.Buffered(); n > 0 {
		if b, _ := s.br.Peek(n); bytes.IndexByte(b, '\n') >= 0 {
			return nil
		}
	}
	if err := s.flush(); err != nil {
		return writeError{err}
	}
	s.raw.SetReadDeadline(time.Now().Add(s.lim.timeout()))
	if s.srv.closing.Load() && s.state != stateUpdate {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (s *session) flush() error {
	if s.bw.Buffered() == 0 {
		return nil
	}
	return s.bw.Flush()
}

func (s *session) writeLine(line string) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
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

func (s *session) writeReply(r reply) {
	if r.written {
		return
	}
	if r.ok {
		s.bw.WriteString("+OK")
	} else {
		s.bw.WriteString("-ERR")
	}
	if r.code != "" {
		s.bw.WriteString(" [")
		s.bw.WriteString(r.code)
		s.bw.WriteString("]")
	}
	if r.text != "" {
		s.bw.WriteString(" ")
		s.bw.WriteString(r.text)
	}
	s.bw.WriteString("\r\n")
}

// command handles one command line. It returns errClose (or a write error)
// to end the session after flushing.
func (s *session) command(line []byte, tooLong bool) error {
	var r reply
	var closeAfter bool
	if tooLong {
		r = badReply("line too long")
	} else {
		verb, args := splitCommand(line)
		if s.log.Enabled(s.ctx, levelTrace) {
			s.log.Log(s.ctx, levelTrace, "pop3 command", "verb", verb, "args", redact(verb, args))
		}
		if verb != "AUTH" && len(line)+2 > s.lim.maxLineLength() {
			r = badReply("line too long")
		} else {
			r, closeAfter = s.dispatch(verb, args)
		}
	}
	if r.bad {
		s.badCommands++
		if s.badCommands >= maxBadCommands {
			s.log.Info("pop3 too many bad commands", "count", s.badCommands)
			r = badReply("too many bad commands, closing connection")
			closeAfter = true
		}
	}
	s.writeReply(r)
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
func (s *session) dispatch(verb, args string) (r reply, closeAfter bool) {
	// Commands valid in each state, RFC 1939 §4-§6, RFC 2449 §5 (CAPA),
	// RFC 2595 §4 (STLS), RFC 5034 §4 (AUTH).
	switch s.state {
	case stateAuthorization:
		switch verb {
		case "USER":
			return s.cmdUser(args), false
		case "PASS":
			return s.cmdPass(args)
		case "APOP":
			return s.cmdAPOP(args)
		case "AUTH":
			return s.cmdAuth(args)
		case "STLS":
			return s.cmdSTLS(args)
		case "CAPA":
			return s.cmdCapa(args), false
		case "QUIT":
			// RFC 1939 §4: QUIT in AUTHORIZATION does not enter UPDATE.
			if !noArgs(args) {
				return badReply("QUIT takes no arguments"), false
			}
			return okReply("%s POP3 server signing off", s.srv.hostname), true
		case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "NOOP", "RSET":
			return badReply("command not valid before login"), false
		}
	case stateTransaction:
		switch verb {
		case "STAT":
			return s.cmdStat(args), false
		case "LIST":
			return s.cmdList(args), false
		case "UIDL":
			return s.cmdUIDL(args), false
		case "RETR":
			return s.cmdRetr(args)
		case "TOP":
			return s.cmdTop(args)
		case "DELE":
			return s.cmdDele(args), false
		case "NOOP":
			return s.cmdNoop(args), false
		case "RSET":
			return s.cmdRset(args), false
		case "QUIT":
			return s.cmdQuit(args)
		case "CAPA":
			return s.cmdCapa(args), false
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

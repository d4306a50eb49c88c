package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/netio"
)

// conn is one SMTP connection, and the protocol engine: greeting, command
// lines, replies, DATA and BDAT, STARTTLS, the AUTH exchange, limits,
// timeouts and Shutdown. The session (session.go) decides about senders,
// recipients and messages.
//
// One goroutine runs a connection (serve); it alone touches the protocol
// state. A chunked message (BDAT) of several chunks is the exception:
// Data then runs in a goroutine of its own, fed through a pipe, and the
// connection waits for it before the transaction ends.
//
// Input is read through one bufio.Reader: command lines with ReadSlice,
// without copying; message bodies a line at a time from the same buffer
// (dataReader). Replies are appended to one bufio.Writer, which is flushed
// when the reader must wait for the network: the replies to a pipelined
// group of commands leave in one write (RFC 2920).
type conn struct {
	srv *Server
	// lim are the limits the session started with (SetLimits).
	lim Limits
	// raw is the connection as accepted: TCP, or a *tls.Conn with
	// ImplicitTLS. Deadlines are set here.
	raw net.Conn
	// nc is what the protocol speaks through: raw, or the *tls.Conn of
	// STARTTLS.
	nc      net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	dw      netio.DeadlineWriter // what w writes to: nc, each write with a deadline
	cid     string
	log     *slog.Logger
	started time.Time
	tls     *tls.ConnectionState // nil without TLS
	params  paramConfig

	// Protocol state, only for the connection's goroutine.
	//
	// body: a message body is being read; every network read gets a fresh
	// deadline (RFC 5321 §4.5.3.2: the timeout is per data block).
	body  bool
	sess  *session // after EHLO/HELO; nil again after STARTTLS
	mail  bool     // MAIL was accepted
	rcpts int      // recipients accepted
	bdat  *bdatTx  // a chunked message of several chunks in progress
	// noKick: STARTTLS happened and no command has come since; Shutdown
	// waits for the next command's reply (the client may still be in its
	// handshake).
	noKick bool
	errs   int    // unrecognized commands (errThreshold)
	long   []byte // a command line longer than the read buffer
	dr     dataReader

	mu sync.Mutex
	// idle: waiting for a command, where Shutdown interrupts the read.
	idle   bool
	kicked bool // Shutdown wants the session to end when idle
	// hungUp: the session decided to end the connection after its reply.
	hungUp   bool
	messages int
}

// bdatTx is a chunked message whose Data is running.
type bdatTx struct {
	pw   *io.PipeWriter
	res  chan error // Data's result
	size int64      // bytes so far
}

// errThreshold is how many unrecognized commands a connection may send;
// the next one closes it (as go-smtp did).
const errThreshold = 3

// maxCommandLine bounds a command line (and an AUTH response line) even
// when MaxLineLength allows long body lines.
const maxCommandLine = 64 << 10

// minAuthLine is the shortest AUTH response line taken whatever
// MaxLineLength says: RFC 4954 §4 considers 12288 octets sufficient.
const minAuthLine = 12288

// maxSkipLine bounds what is read and discarded of a line that went over
// its limit: a client still sending after that is not speaking SMTP, and
// the connection is closed.
const maxSkipLine = 1 << 20

// Buffer sizes of a connection.
const (
	readBufSize  = 8 << 10
	writeBufSize = 4 << 10
)

var (
	// errKicked: Shutdown ended an idle session.
	errKicked = errors.New("smtpd: shutting down")
	// errDrainLimit ends a connection whose client keeps sending long
	// after its message went over the size limit.
	errDrainLimit = reply(552, 5, 3, 4, "Message too big, closing connection")
	// errLineFlood: a line went on past maxSkipLine.
	errLineFlood  = errors.New("smtpd: line too long to skip")
	errPanic      = reply(421, 4, 0, 0, "Internal server error")
	errTooManyErr = reply(421, 4, 7, 0, "Too many errors, closing connection")
)

// Sequence errors. RFC 5321 §4.1.4: "If the commands in a transaction are
// out of order to the degree that they cannot be processed by the server,
// a 503 failure reply MUST be returned" (RFC 3463 X.5.1, "Invalid
// command"). 502 is kept for commands that are not implemented at all
// (vNotImpl, STARTTLS without TLS; RFC 5321 §4.2.4). Where an RFC leaves
// the choice, the code is Postfix's: 554 for DATA/BDAT without an accepted
// recipient, 554 for STARTTLS under TLS.
var (
	errNoHello   = reply(503, 5, 5, 1, "Send EHLO or HELO first")
	errNeedMail  = reply(503, 5, 5, 1, "Send MAIL first")
	errInChunks  = reply(503, 5, 5, 1, "Command not allowed during a chunked message; send BDAT or RSET")
	errNoRcpts   = reply(554, 5, 5, 1, "No valid recipients")
	errTLSActive = reply(554, 5, 5, 1, "TLS already active")
	errAuthTwice = reply(503, 5, 5, 1, "Already authenticated")
)

func newConn(nc net.Conn, srv *Server) *conn {
	lim := srv.sessionLimits()
	c := &conn{
		srv:     srv,
		lim:     lim,
		raw:     nc,
		nc:      nc,
		cid:     strconv.FormatUint(rand.Uint64(), 36),
		started: time.Now(),
		params: paramConfig{
			maxSize:    lim.maxMessageSize(),
			dsn:        srv.Queue != nil,
			requireTLS: srv.Queue != nil,
		},
	}
	c.log = srv.log.With("cid", c.cid, "remote", nc.RemoteAddr().String())
	c.r = srv.getReader(netReader{c})
	c.dw = netio.DeadlineWriter{Conn: nc, Timeout: c.lim.writeTimeout()}
	c.w = srv.getWriter(&c.dw)
	return c
}

// netReader is what the read buffer reads from. Before it waits for the
// network it sends the replies written so far; while a body is read, each
// read gets a fresh deadline.
type netReader struct{ c *conn }

func (n netReader) Read(p []byte) (int, error) {
	c := n.c
	if c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
	}
	if c.body {
		c.raw.SetReadDeadline(time.Now().Add(c.lim.timeout()))
	}
	return c.nc.Read(p)
}

// serve runs the connection to its end.
func (c *conn) serve() {
	defer c.close()
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("panic serving connection", "panic", v, "stack", string(debug.Stack()))
			c.replyErr(errPanic)
			c.w.Flush()
		}
	}()
	c.log.Debug("connection opened")
	if tc, ok := c.raw.(*tls.Conn); ok {
		c.raw.SetDeadline(time.Now().Add(c.lim.timeout()))
		if err := tc.Handshake(); err != nil {
			c.log.Debug("TLS handshake failed", "err", err)
			return
		}
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.reply(220, noCode, c.srv.hostname+" ESMTP ready")
	for {
		line, err := c.readCommand()
		if err == errLongLine {
			// Postfix answers the same and reads on; the line was read
			// to its end and discarded.
			if !c.commandError(reply(500, 5, 5, 2, "Line too long")) {
				c.w.Flush()
				return
			}
			continue
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		if !c.handle(line) || c.isHungUp() {
			c.w.Flush()
			return
		}
	}
}

// readCommand reads the next command line, without its line end. The
// slice is valid until the next read. Shutdown interrupts the wait.
func (c *conn) readCommand() ([]byte, error) {
	kickable := !c.noKick && c.bdat == nil
	c.mu.Lock()
	if c.kicked && kickable {
		c.mu.Unlock()
		return nil, errKicked
	}
	c.idle = kickable
	c.raw.SetReadDeadline(time.Now().Add(c.lim.timeout()))
	c.mu.Unlock()

	line, err := c.readLine(min(c.lim.maxLineLength(), maxCommandLine))

	c.mu.Lock()
	c.idle = false
	kicked := c.kicked && kickable
	c.mu.Unlock()
	if kicked && (err == nil || isTimeout(err)) {
		return nil, errKicked
	}
	c.noKick = false
	return line, err
}

// readLine reads a line ending in LF (CRLF or bare LF) of at most limit
// bytes, and returns it without its line end. A longer line is read to its
// end and discarded (errLongLine), unless it goes on past maxSkipLine
// (errLineFlood).
func (c *conn) readLine(limit int) ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err == nil {
		if len(line) > limit {
			return nil, errLongLine
		}
		return trimEOL(line), nil
	}
	if err != bufio.ErrBufferFull {
		return nil, err
	}
	c.long = append(c.long[:0], line...)
	for {
		if len(c.long) > limit {
			c.long = nil
			return nil, c.skipLine(int64(len(line)))
		}
		line, err = c.r.ReadSlice('\n')
		c.long = append(c.long, line...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
	if len(c.long) > limit {
		c.long = nil
		return nil, errLongLine
	}
	return trimEOL(c.long), nil
}

// skipLine reads and discards the rest of a line of which read bytes
// were read already. It returns errLongLine once the line end is read,
// errLineFlood when the line goes on past maxSkipLine, or the read error.
func (c *conn) skipLine(read int64) error {
	for {
		line, err := c.r.ReadSlice('\n')
		read += int64(len(line))
		switch {
		case err == nil:
			return errLongLine
		case read > maxSkipLine:
			return errLineFlood
		case err != bufio.ErrBufferFull:
			return err
		}
	}
}

// readFailed answers a failed command read; the connection then closes.
func (c *conn) readFailed(err error) {
	switch {
	case err == errKicked:
		// RFC 5321 §3.8: a server that must shut down answers 421.
		c.reply(421, smtp.EnhancedCode{4, 3, 2}, c.srv.hostname+" Service shutting down, try again later")
	case err == errLineFlood:
		// RFC 5321 §7.8: a server may defend itself.
		c.reply(500, smtp.EnhancedCode{5, 5, 2}, "Line too long, closing connection")
	case isTimeout(err):
		c.reply(421, smtp.EnhancedCode{4, 4, 2}, c.srv.hostname+" Idle timeout, closing connection")
	default:
		// The client hung up, or the connection failed: nobody to tell.
		c.log.Debug("connection ended", "err", err)
		return
	}
	c.w.Flush()
}

// handle runs one command; false: close the connection.
func (c *conn) handle(line []byte) bool {
	v, arg := parseCommand(line)
	switch v {
	case vHELO, vEHLO:
		c.hello(v == vEHLO, arg)
	case vMAIL:
		return c.mailCmd(arg)
	case vRCPT:
		return c.rcptCmd(arg)
	case vDATA:
		return c.dataCmd(arg)
	case vBDAT:
		return c.bdatCmd(arg)
	case vRSET:
		if len(arg) > 0 {
			// RFC 5321 §4.1.1.5: RSET has no parameters (Postfix:
			// the same reply).
			c.reply(501, smtp.EnhancedCode{5, 5, 4}, "Syntax: RSET")
			return true
		}
		c.resetTx()
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, "Ok")
	case vNOOP:
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, "Ok")
	case vQUIT:
		c.reply(221, smtp.EnhancedCode{2, 0, 0}, c.srv.hostname+" closing connection")
		return false
	case vVRFY:
		if len(arg) == 0 {
			// RFC 5321 §4.1.1.6: VRFY takes a string.
			c.reply(501, smtp.EnhancedCode{5, 5, 4}, "Syntax: VRFY address")
			return true
		}
		// RFC 5321 §3.5.3, §7.3: 252 when not verifying (2.0.0 as
		// Postfix).
		c.reply(252, smtp.EnhancedCode{2, 0, 0}, "Cannot VRFY user, but will accept message and attempt delivery")
	case vHELP:
		c.reply(214, smtp.EnhancedCode{2, 0, 0}, "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH")
	case vSTARTTLS:
		return c.startTLS(arg)
	case vAUTH:
		return c.authCmd(arg)
	case vNotImpl:
		// RFC 5321 §4.2.4: 502 for a command not implemented.
		c.reply(502, smtp.EnhancedCode{5, 5, 1}, "Command not implemented")
	default:
		return c.commandError(reply(500, 5, 5, 2, "Syntax error, command unrecognized"))
	}
	return true
}

// commandError answers an unrecognized or overlong command line, and
// counts it: after errThreshold of them the connection is closed with 421
// (RFC 5321 §3.8, §7.8; Postfix: "421 4.7.0 Error: too many errors").
// false: close.
func (c *conn) commandError(err error) bool {
	c.replyErr(err)
	c.errs++
	if c.errs > errThreshold {
		c.replyErr(errTooManyErr)
		return false
	}
	return true
}

func (c *conn) hello(ehlo bool, arg []byte) {
	domain := arg
	if i := bytes.IndexByte(arg, ' '); i >= 0 {
		domain = arg[:i]
	}
	if len(domain) == 0 {
		c.reply(501, smtp.EnhancedCode{5, 5, 2}, "Domain/address argument required")
		return
	}
	helo := string(domain)
	if !validHelo(helo) {
		c.reply(501, smtp.EnhancedCode{5, 5, 4}, "Invalid EHLO/HELO domain")
		return
	}
	// RFC 5321 §4.1.4: EHLO again resets the transaction, as RSET.
	c.resetTx()
	if c.sess == nil {
		c.sess = c.newSession(helo)
	} else {
		c.sess.setHelo(helo)
	}
	host := c.srv.hostname
	if !ehlo {
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, host+" Hello "+helo)
		return
	}
	w := c.w
	w.WriteString("250-")
	w.WriteString(host)
	w.WriteString(" Hello ")
	w.WriteString(helo)
	w.WriteString("\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-SMTPUTF8\r\n")
	if c.tls == nil && c.srv.TLSConfig != nil && !c.srv.ImplicitTLS {
		w.WriteString("250-STARTTLS\r\n")
	}
	if mechs := c.sess.AuthMechanisms(); len(mechs) > 0 {
		w.WriteString("250-AUTH ")
		w.WriteString(strings.Join(mechs, " "))
		w.WriteString("\r\n")
	}
	if c.srv.Queue != nil {
		w.WriteString("250-DSN\r\n")
		if c.tls != nil {
			w.WriteString("250-REQUIRETLS\r\n")
		}
	}
	w.WriteString("250-LIMITS RCPTMAX=")
	w.WriteString(strconv.Itoa(c.lim.maxRecipients()))
	w.WriteString("\r\n250 SIZE ")
	w.WriteString(strconv.FormatInt(c.lim.maxMessageSize(), 10))
	w.WriteString("\r\n")
}

func (c *conn) mailCmd(arg []byte) bool {
	if c.sess == nil {
		return c.say(errNoHello)
	}
	if c.bdat != nil {
		return c.say(errInChunks)
	}
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		return c.say(reply(501, 5, 5, 4, "Syntax: MAIL FROM:<address>"))
	}
	from, rest, ok := parsePath(trimSpaces(rest), true)
	if !ok {
		return c.say(reply(501, 5, 1, 7, "Bad sender address syntax"))
	}
	opts, perr := parseMailParams(rest, c.params)
	if perr != nil {
		return c.say(perr)
	}
	if err := c.sess.Mail(from, opts); err != nil {
		return c.say(err)
	}
	c.mail = true
	c.reply(250, smtp.EnhancedCode{2, 1, 0}, "Sender ok")
	return true
}

func (c *conn) rcptCmd(arg []byte) bool {
	if !c.mail {
		// RFC 5321 §4.1.4: out of sequence.
		return c.say(errNeedMail)
	}
	if c.bdat != nil {
		return c.say(errInChunks)
	}
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		return c.say(reply(501, 5, 5, 4, "Syntax: RCPT TO:<address>"))
	}
	to, rest, ok := parsePath(trimSpaces(rest), false)
	if !ok {
		return c.say(reply(501, 5, 1, 3, "Bad recipient address syntax"))
	}
	if max := c.lim.maxRecipients(); c.rcpts >= max {
		// RFC 5321 §4.5.3.1.10.
		return c.say(reply(452, 4, 5, 3, "Too many recipients"))
	}
	opts, perr := parseRcptParams(rest, c.params)
	if perr != nil {
		return c.say(perr)
	}
	if err := c.sess.Rcpt(to, opts); err != nil {
		return c.say(err)
	}
	c.rcpts++
	c.reply(250, smtp.EnhancedCode{2, 1, 5}, "Recipient ok")
	return true
}

// say writes err's reply; false when it was a 421 (close).
func (c *conn) say(err error) bool { return !c.replyErr(err) }

// sayData writes Data's result; nil is a plain 250.
func (c *conn) sayData(err error) bool {
	if err == nil {
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, "Ok")
		return true
	}
	return c.say(err)
}

// readErrReply is the reply to a body read that failed.
func readErrReply(err error) error {
	switch {
	case errors.Is(err, errDrainLimit):
		return errDrainLimit
	case isTimeout(err):
		return errTimeout
	}
	return errGone
}

func (c *conn) dataCmd(arg []byte) bool {
	// The sequence first, then the syntax, as Postfix.
	if c.bdat != nil {
		return c.say(errInChunks)
	}
	if err := c.noTransaction(); err != nil {
		return c.say(err)
	}
	if len(arg) > 0 {
		return c.say(reply(501, 5, 5, 4, "DATA takes no arguments"))
	}
	c.reply(354, noCode, "Start mail input; end with <CRLF>.<CRLF>")
	c.body = true
	c.dr.reset(c.r, c.lim.maxMessageSize(), c.lim.maxLineLength(), c.maxDrain())
	err := c.sess.Data(&c.dr, false)
	derr := c.dr.drain()
	c.body = false
	c.resetTx()
	if derr != nil {
		c.say(readErrReply(derr))
		return false
	}
	return c.sayData(err)
}

// noTransaction refuses DATA or BDAT outside a transaction with a
// recipient: 503 without MAIL (RFC 5321 §4.1.4), 554 when every RCPT was
// refused (RFC 5321 §3.3 allows 503 or 554; RFC 2920 §3.1 and Postfix
// say 554).
func (c *conn) noTransaction() error {
	switch {
	case !c.mail:
		return errNeedMail
	case c.rcpts == 0:
		return errNoRcpts
	}
	return nil
}

// maxDrain bounds the bytes read for one message: an oversized message is
// read to its end before the reply, but not forever.
func (c *conn) maxDrain() int64 { return 2*c.lim.maxMessageSize() + 1<<20 }

// parseSize parses a BDAT chunk size.
func parseSize(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// bdatCmd runs BDAT (RFC 3030). The chunk follows the command line
// whatever the reply, so it is always read (or the connection closed).
func (c *conn) bdatCmd(arg []byte) bool {
	sizeArg, rest, _ := bytes.Cut(arg, []byte{' '})
	rest = trimSpaces(rest)
	size, ok := parseSize(sizeArg)
	last := eqFold(rest, "LAST")
	if !ok || !(last || len(rest) == 0) {
		// The chunk's length is unknown: what follows is taken for
		// commands (as go-smtp did).
		return c.say(reply(501, 5, 5, 4, "Syntax: BDAT size [LAST]"))
	}
	c.body = true
	defer func() { c.body = false }()
	cr := chunkReader{r: c.r, n: size}
	// refuse discards the chunk, then answers.
	refuse := func(err error) bool {
		if size > c.maxDrain() {
			c.say(errDrainLimit)
			return false
		}
		if derr := cr.discard(); derr != nil {
			c.say(readErrReply(derr))
			return false
		}
		return c.say(err)
	}
	if err := c.noTransaction(); err != nil {
		return refuse(err)
	}
	total := size
	if c.bdat != nil {
		total += c.bdat.size
	}
	if total > c.lim.maxMessageSize() {
		// RFC 3030 §2: the message is given up; later chunks are
		// refused (no transaction).
		c.resetTx()
		return refuse(errSizeExceeded)
	}
	if c.bdat == nil && last {
		// The whole message in one chunk: Data reads it here.
		err := c.sess.Data(&cr, true)
		derr := cr.discard()
		c.resetTx()
		if derr != nil {
			c.say(readErrReply(derr))
			return false
		}
		return c.sayData(err)
	}
	if c.bdat == nil {
		c.startChunked()
	}
	tx := c.bdat
	rerr, werr := cr.copyTo(tx.pw)
	if rerr != nil {
		tx.pw.CloseWithError(rerr)
		<-tx.res
		c.bdat = nil
		c.resetTx()
		c.say(readErrReply(rerr))
		return false
	}
	if werr != nil {
		// Data ended before the message did: it failed.
		err := <-tx.res
		c.bdat = nil
		c.resetTx()
		if derr := cr.discard(); derr != nil {
			c.say(readErrReply(derr))
			return false
		}
		return c.sayData(err)
	}
	tx.size += size
	if !last {
		c.reply(250, smtp.EnhancedCode{2, 0, 0}, "Chunk accepted, "+strconv.FormatInt(tx.size, 10)+" octets so far")
		return true
	}
	tx.pw.Close()
	err := <-tx.res
	c.bdat = nil
	c.resetTx()
	return c.sayData(err)
}

// startChunked starts Data for a message of several chunks, reading from
// a pipe the chunks are written to.
func (c *conn) startChunked() {
	pr, pw := io.Pipe()
	tx := &bdatTx{pw: pw, res: make(chan error, 1)}
	c.bdat = tx
	sess := c.sess
	go func() {
		var err error
		defer func() {
			if v := recover(); v != nil {
				c.log.Error("panic receiving a message", "panic", v, "stack", string(debug.Stack()))
				err = errPanic
			}
			pr.CloseWithError(errDataReset)
			tx.res <- err
		}()
		err = sess.Data(pr, true)
	}()
}

// resetTx ends the transaction (RSET, EHLO, the end of a message,
// STARTTLS); a chunked message in progress is abandoned.
func (c *conn) resetTx() {
	if tx := c.bdat; tx != nil {
		tx.pw.CloseWithError(errDataReset)
		<-tx.res
		c.bdat = nil
	}
	c.mail, c.rcpts = false, 0
	if c.sess != nil {
		c.sess.Reset()
	}
}

func (c *conn) startTLS(arg []byte) bool {
	switch {
	case len(arg) > 0:
		// RFC 3207 §4.
		return c.say(reply(501, 5, 5, 4, "Syntax: STARTTLS (no parameters allowed)"))
	case c.tls != nil:
		// Out of sequence (STARTTLS again, or on implicit TLS). RFC 3207
		// names no code; Postfix answers 554 5.5.1.
		return c.say(errTLSActive)
	case c.srv.TLSConfig == nil || c.srv.ImplicitTLS:
		// Not offered: not implemented here (RFC 5321 §4.2.4).
		return c.say(reply(502, 5, 5, 1, "Command not implemented"))
	}
	if n := c.r.Buffered(); n > 0 {
		// RFC 3207 §4.2, CVE-2011-0411: nothing sent in plaintext may
		// count as sent over TLS. STARTTLS must end a pipelined group.
		c.log.Info("discarding input pipelined after STARTTLS", "bytes", n)
		c.r.Discard(n)
	}
	c.resetTx()
	c.reply(220, smtp.EnhancedCode{2, 0, 0}, "Ready to start TLS")
	if err := c.w.Flush(); err != nil {
		return false
	}
	tc := tls.Server(c.raw, c.srv.TLSConfig)
	c.raw.SetDeadline(time.Now().Add(c.lim.timeout()))
	if err := tc.Handshake(); err != nil {
		c.log.Debug("STARTTLS handshake failed", "err", err)
		return false
	}
	st := tc.ConnectionState()
	c.nc, c.tls = tc, &st
	c.dw.Conn = tc
	// RFC 3207 §4.2: the client starts over with EHLO.
	if c.sess != nil {
		c.sess.Logout()
		c.sess = nil
	}
	c.noKick = true
	return true
}

// authCmd runs an AUTH exchange (RFC 4954). Its replies follow RFC 4954
// §4 and §6, and Postfix where those leave a choice.
func (c *conn) authCmd(arg []byte) bool {
	if c.sess == nil {
		return c.say(errNoHello)
	}
	if c.sess.authAccount() != nil {
		// RFC 4954 §4: no AUTH after a successful one.
		return c.say(errAuthTwice)
	}
	mechArg, irArg, _ := bytes.Cut(arg, []byte{' '})
	if len(mechArg) == 0 {
		return c.say(reply(501, 5, 5, 4, "Syntax: AUTH mechanism [initial-response]"))
	}
	mech := strings.ToUpper(string(mechArg))
	srv, err := c.sess.Auth(mech)
	if err != nil {
		return c.say(err)
	}
	var resp []byte
	if ir := trimSpaces(irArg); len(ir) > 0 {
		if resp, err = decodeSASL(ir); err != nil {
			return c.say(errBadBase64)
		}
	}
	for {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			return c.say(err)
		}
		if done {
			break
		}
		c.reply(334, noCode, base64.StdEncoding.EncodeToString(challenge))
		c.raw.SetReadDeadline(time.Now().Add(c.lim.timeout()))
		line, err := c.readLine(max(min(c.lim.maxLineLength(), maxCommandLine), minAuthLine))
		if err == errLongLine {
			// RFC 4954 §4, §6.
			return c.say(reply(500, 5, 5, 6, "Authentication exchange line is too long"))
		}
		if err != nil {
			c.readFailed(err)
			return false
		}
		if len(line) == 1 && line[0] == '*' {
			// RFC 4954 §4: 501; the enhanced code is Postfix's.
			return c.say(reply(501, 5, 7, 0, "Authentication cancelled"))
		}
		if resp, err = decodeSASL(line); err != nil {
			return c.say(errBadBase64)
		}
	}
	// RFC 4954 §6: 235 2.7.0.
	c.reply(235, smtp.EnhancedCode{2, 7, 0}, "Authentication successful")
	return true
}

// errBadBase64: RFC 4954 §4, "If the server cannot [BASE64] decode any
// client response, it MUST reject the AUTH command with a 501 reply (and
// an enhanced status code of 5.5.2)."
var errBadBase64 = reply(501, 5, 5, 2, "Cannot decode response: invalid base64")

// errBase64 is decodeSASL's error.
var errBase64 = errors.New("smtpd: invalid base64")

// decodeSASL decodes a client response: "=" is an empty one (RFC 4954
// §4). The base64 is checked strictly (RFC 4954 §4: any character outside
// the alphabet, and "=" anywhere but at the end, MUST be rejected): Go's
// decoder would skip CR and LF.
func decodeSASL(b []byte) ([]byte, error) {
	if len(b) == 1 && b[0] == '=' {
		return []byte{}, nil
	}
	if bytes.ContainsAny(b, "\r\n") {
		return nil, errBase64
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	n, err := base64.StdEncoding.Strict().Decode(out, b)
	if err != nil {
		return nil, errBase64
	}
	return out[:n], nil
}

// kick asks an idle session to end (Shutdown); one receiving a message
// ends after its reply.
func (c *conn) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kicked = true
	if c.idle {
		// Wake the blocked read; readCommand then says goodbye.
		c.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// hangUp makes the connection close after the current reply.
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

// close ends the connection: a chunked message in progress is abandoned,
// the session ends, Shutdown is told.
func (c *conn) close() {
	if tx := c.bdat; tx != nil {
		tx.pw.CloseWithError(errDataReset)
		<-tx.res
		c.bdat = nil
	}
	if c.sess != nil {
		c.sess.Logout()
	}
	c.raw.Close()
	c.mu.Lock()
	n := c.messages
	c.mu.Unlock()
	c.log.Debug("connection closed", "duration", time.Since(c.started).Round(time.Millisecond), "messages", n)
	c.srv.putReader(c.r)
	c.srv.putWriter(c.w)
	c.r, c.w = nil, nil
	c.srv.forget(c)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Pools of connection buffers.

func (s *Server) getReader(r io.Reader) *bufio.Reader {
	if b, ok := s.readers.Get().(*bufio.Reader); ok {
		b.Reset(r)
		return b
	}
	return bufio.NewReaderSize(r, readBufSize)
}

func (s *Server) putReader(b *bufio.Reader) {
	b.Reset(nil)
	s.readers.Put(b)
}

func (s *Server) getWriter(w io.Writer) *bufio.Writer {
	if b, ok := s.writers.Get().(*bufio.Writer); ok {
		b.Reset(w)
		return b
	}
	return bufio.NewWriterSize(w, writeBufSize)
}

func (s *Server) putWriter(b *bufio.Writer) {
	b.Reset(nil)
	s.writers.Put(b)
}

package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/jodmai/jodmai/internal/store"
)

// cmdRetr: RFC 1939 §5 RETR msg.
func (s *session) cmdRetr(args string) (reply, bool) {
	f := strings.Fields(args)
	if len(f) != 1 {
		return badReply("usage: RETR message"), false
	}
	i, r, ok := s.message(f[0])
	if !ok {
		return r, false
	}
	return s.sendMessage(i, -1)
}

// cmdTop: RFC 1939 §7 TOP msg n: the header, the blank line after it, and
// the first n lines of the body.
func (s *session) cmdTop(args string) (reply, bool) {
	f := strings.Fields(args)
	if len(f) != 2 {
		return badReply("usage: TOP message lines"), false
	}
	i, r, ok := s.message(f[0])
	if !ok {
		return r, false
	}
	n, ok := parseNumber(f[1])
	if !ok {
		return badReply("invalid number of lines"), false
	}
	return s.sendMessage(i, int64(n))
}

// sendMessage streams message i as a multi-line response: all of it when
// lines < 0, else its header and that many body lines.
func (s *session) sendMessage(i int, lines int64) (reply, bool) {
	m := s.msgs[i]
	f, err := s.account.OpenBody(m)
	if errors.Is(err, store.ErrNoMessage) {
		// Expunged meanwhile (IMAP) and its file gone.
		return errReply("", "message no longer available"), false
	}
	if err != nil {
		s.log.Error("pop3 open message", "uid", m.UID, "err", err)
		return errReply("SYS/TEMP", "cannot read message, try again later"), false
	}
	defer f.Close()

	// The body goes out through a large pooled buffer: a client reading
	// a message should cost few, large writes, whatever the 4 KiB buffer
	// the connection keeps between commands.
	bb := s.srv.bodyBuffers.Get().(*bodyBuffers)
	defer s.srv.bodyBuffers.Put(bb)
	bb.w.Reset(s.bw)
	if lines < 0 {
		bb.w.WriteString("+OK " + strconv.FormatInt(m.Size, 10) + " octets\r\n")
	} else {
		bb.w.WriteString("+OK top of message follows\r\n")
	}
	err = writeDotStuffed(bb.w, f, bb.in, lines)
	if err == nil {
		if err = bb.w.Flush(); err != nil {
			err = writeError{err}
		}
	}
	bb.w.Reset(nil)
	if err != nil {
		// The +OK is out: a -ERR now would be read as message data. The
		// only honest way out is to drop the connection; the client sees
		// a truncated response, does not QUIT, and nothing is deleted.
		if isWriteError(err) {
			s.log.Info("pop3 sending message failed", "uid", m.UID, "err", err)
		} else {
			s.log.Error("pop3 read message", "uid", m.UID, "err", err)
		}
		return noReply, true
	}
	return multiline, false
}

// bodyBuffers are the pooled buffers of RETR and TOP: the message file is
// read into in and the dot-stuffed result collects in w.
type bodyBuffers struct {
	in []byte
	w  *bufio.Writer
}

func newBodyBuffers() any {
	return &bodyBuffers{in: make([]byte, bodyReadSize), w: bufio.NewWriterSize(nil, bodyWriteSize)}
}

// writeError marks an error from the client side of a copy.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func isWriteError(err error) bool {
	var we writeError
	return errors.As(err, &we)
}

// writeDotStuffed copies a message from r to w as the body of a POP3
// multi-line response (RFC 1939 §3): every line that starts with "." gets
// one more, and the response ends with "." CRLF, after a CRLF of its own if
// the message does not end with one. With lines >= 0 it copies only the
// header, the blank line ending it, and that many body lines (TOP).
//
// It reads r through buf and writes spans of it straight to w: no
// allocation, and a full message costs one search for "\n." per buffer.
func writeDotStuffed(w *bufio.Writer, r io.Reader, buf []byte, lines int64) error {
	d := dotStuffer{w: w, atLineStart: true, top: lines >= 0, inHeader: true, bodyLines: lines}
	for !d.done {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := d.write(buf[:n]); werr != nil {
				return writeError{werr}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !d.atLineStart {
		w.WriteString("\r\n")
	}
	if _, err := w.WriteString(".\r\n"); err != nil {
		return writeError{err}
	}
	return nil
}

// dotStuffer is the state of writeDotStuffed across buffer fills.
type dotStuffer struct {
	w           *bufio.Writer
	atLineStart bool
	done        bool

	// TOP only.
	top       bool
	inHeader  bool
	bodyLines int64 // body lines still to send
	lineLen   int   // octets of the current line so far
	lineFirst byte  // its first octet
}

var nlDot = []byte("\n.")

func (d *dotStuffer) write(p []byte) error {
	if d.top {
		return d.writeTop(p)
	}
	for len(p) > 0 {
		if d.atLineStart && p[0] == '.' {
			d.w.WriteByte('.')
		}
		i := bytes.Index(p, nlDot)
		if i < 0 {
			d.atLineStart = p[len(p)-1] == '\n'
			_, err := d.w.Write(p)
			return err
		}
		// Up to and including the LF; the next round stuffs the dot.
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return err
		}
		p = p[i+1:]
		d.atLineStart = true
	}
	return nil
}

// writeTop writes line by line, counting: the header ends at the first
// empty line, after which bodyLines lines are sent.
func (d *dotStuffer) writeTop(p []byte) error {
	for len(p) > 0 && !d.done {
		if !d.inHeader && d.bodyLines == 0 {
			d.done = true
			return nil
		}
		if d.atLineStart {
			if p[0] == '.' {
				d.w.WriteByte('.')
			}
			d.lineLen, d.lineFirst = 0, p[0]
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			d.lineLen += len(p)
			d.atLineStart = false
			_, err := d.w.Write(p)
			return err
		}
		d.lineLen += i
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return err
		}
		p = p[i+1:]
		d.atLineStart = true
		switch {
		case !d.inHeader:
			d.bodyLines--
		case d.lineLen == 0 || d.lineLen == 1 && d.lineFirst == '\r':
			d.inHeader = false
		}
	}
	if !d.inHeader && d.bodyLines == 0 {
		d.done = true
	}
	return nil
}

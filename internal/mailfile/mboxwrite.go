package mailfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"
)

// MboxWriter writes an mboxrd file: each message after a line
// "From SENDER asctime-date", every line matching ^>*From  quoted with one
// more ">", and an empty line after each message. What it writes reads back
// through MboxReader to the same messages byte for byte, with one exception
// the format imposes: a message not ending in a newline gains one unless it
// is the last of the file.
type MboxWriter struct {
	w       *bufio.Writer
	open    bool // a message has begun
	last    byte // the last byte of the current message
	n       int64
	err     error
	q       quoter
	written int64
}

// NewMboxWriter returns a writer of an mboxrd file to w. Close flushes it.
func NewMboxWriter(w io.Writer) *MboxWriter {
	mw := &MboxWriter{w: bufio.NewWriterSize(w, 64<<10)}
	mw.q.w = mw
	return mw
}

// FromLine is the "From " line (without line end) the writer uses for a
// message: "From SENDER Mon Jan _2 15:04:05 2006" in UTC. An empty sender
// is MAILER-DAEMON.
func FromLine(sender string, date time.Time) string {
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	return "From " + sender + " " + date.UTC().Format(time.ANSIC)
}

// Begin ends the previous message and starts a new one. The message's
// bytes (LF line ends) are then written to the returned writer.
func (mw *MboxWriter) Begin(sender string, date time.Time) (io.Writer, error) {
	if mw.err != nil {
		return nil, mw.err
	}
	mw.finish(false)
	mw.raw([]byte(FromLine(sender, date) + "\n"))
	mw.open, mw.last, mw.n = true, 0, 0
	mw.q.reset()
	return &mw.q, mw.err
}

// finish writes what ends the current message: the separator empty line,
// preceded by a newline for a message that lacks one. The last message of
// the file, if it does not end in a newline, is left as it is so it reads
// back unchanged.
func (mw *MboxWriter) finish(final bool) {
	if !mw.open {
		return
	}
	mw.q.flush()
	mw.open = false
	switch {
	case mw.n == 0 || mw.last == '\n':
		mw.raw([]byte("\n"))
	case !final:
		mw.raw([]byte("\n\n"))
	}
}

// Close ends the last message and flushes. It does not close the
// underlying writer (nor fsync it).
func (mw *MboxWriter) Close() error {
	if mw.err != nil {
		return mw.err
	}
	mw.finish(true)
	if mw.err != nil {
		return mw.err
	}
	if err := mw.w.Flush(); err != nil {
		mw.err = fmt.Errorf("write mbox: %w", err)
	}
	return mw.err
}

// Written is the number of bytes written to the file so far.
func (mw *MboxWriter) Written() int64 { return mw.written }

func (mw *MboxWriter) raw(p []byte) {
	if mw.err != nil {
		return
	}
	n, err := mw.w.Write(p)
	mw.written += int64(n)
	if err != nil {
		mw.err = fmt.Errorf("write mbox: %w", err)
	}
}

// quoter adds a ">" to every line matching ^>*From  of a message as it
// streams through, however the lines are split across Write calls.
type quoter struct {
	w         *MboxWriter
	lineStart bool
	pfx       []byte // the start of a line that may still become ">*From "
}

func (q *quoter) reset() { q.lineStart, q.pfx = true, q.pfx[:0] }

// flush writes a held line start unquoted (the message ended inside it).
func (q *quoter) flush() {
	if len(q.pfx) > 0 {
		q.w.raw(q.pfx)
		q.pfx = q.pfx[:0]
	}
}

var fromPrefix = []byte("From ")

// Write writes message bytes, quoting From lines.
func (q *quoter) Write(p []byte) (int, error) {
	mw := q.w
	if mw.err != nil {
		return 0, mw.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	mw.n += int64(len(p))
	mw.last = p[len(p)-1]
	total := len(p)
	for len(p) > 0 {
		if q.lineStart || len(q.pfx) > 0 {
			// Decide about the line start: take bytes until the
			// line is known to be or not to be ^>*From .
			q.lineStart = false
			i := 0
			decided, quote := false, false
			for i < len(p) {
				c := p[i]
				q.pfx = append(q.pfx, c)
				i++
				st := fromState(q.pfx)
				if st != 0 {
					decided, quote = true, st > 0
					break
				}
			}
			if !decided {
				p = p[i:]
				continue // need more bytes
			}
			if quote {
				mw.raw([]byte{'>'})
			}
			mw.raw(q.pfx)
			last := q.pfx[len(q.pfx)-1]
			q.pfx = q.pfx[:0]
			p = p[i:]
			if last == '\n' {
				q.lineStart = true
			}
			continue
		}
		j := bytes.IndexByte(p, '\n')
		if j < 0 {
			mw.raw(p)
			break
		}
		mw.raw(p[:j+1])
		p = p[j+1:]
		q.lineStart = true
	}
	if mw.err != nil {
		return 0, mw.err
	}
	return total, nil
}

// fromState says what a line start b is: 1 it is ^>*From  (quote it), -1
// it cannot become one, 0 it may still.
func fromState(b []byte) int {
	i := 0
	for i < len(b) && b[i] == '>' {
		i++
	}
	rest := b[i:]
	if len(rest) >= len(fromPrefix) {
		if bytes.HasPrefix(rest, fromPrefix) {
			return 1
		}
		return -1
	}
	if bytes.HasPrefix(fromPrefix, rest) {
		return 0
	}
	return -1
}

// ToLF returns a reader of r with every CRLF turned into LF (stored
// messages are CRLF; files on disk are LF). A bare CR stays.
func ToLF(r io.Reader) io.Reader {
	return &lfReader{br: bufio.NewReaderSize(r, 32<<10)}
}

type lfReader struct {
	br  *bufio.Reader
	out []byte
	buf [32 << 10]byte
	err error
}

func (l *lfReader) Read(p []byte) (int, error) {
	for len(l.out) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		n, err := l.br.Read(l.buf[:])
		chunk := l.buf[:n]
		if n > 0 && chunk[n-1] == '\r' {
			// Is it a CRLF across the read boundary?
			if next, perr := l.br.Peek(1); perr == nil && next[0] == '\n' {
				chunk = chunk[:n-1]
				l.br.Discard(1)
				chunk = append(chunk, '\n')
			}
		}
		l.out = dropCR(chunk)
		if err != nil {
			l.err = err
		}
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}

// dropCR removes the CR of every CRLF in b, in place.
func dropCR(b []byte) []byte {
	if bytes.IndexByte(b, '\r') < 0 {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); i++ {
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			continue
		}
		out = append(out, b[i])
	}
	return out
}

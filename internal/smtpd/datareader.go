package smtpd

import (
	"bufio"
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// Errors of the message readers; Data maps them to its replies.
var (
	// errTooBig: the message went over MaxMessageSize. The rest of it is
	// read (drain) before the reply.
	errTooBig = smtp.ErrDataTooLarge
	// errLongLine: a DATA line went over MaxLineLength.
	errLongLine = errors.New("smtpd: line too long")
	// errDataReset: the client sent RSET or another EHLO, or hung up, in
	// the middle of a chunked message.
	errDataReset = errors.New("smtpd: message transfer aborted")
)

// dataReader reads a DATA body (RFC 5321 §4.1.1.4) from the connection's
// read buffer, a line at a time with ReadSlice: it removes the leading dot
// of stuffed lines and ends at the line ".". Line ends are passed on as
// they come; a bare LF does not start a line for dot-stuffing or the end
// marker (only CRLF does, as go-smtp's reader had it).
//
// Read returns errTooBig once the unstuffed message goes over maxSize and
// errLongLine once a line goes over maxLine; drain then reads on to the
// end marker, without limits on lines or size but with maxRaw on all
// bytes read, so the reply still comes after the whole message and the
// session stays in step.
type dataReader struct {
	r       *bufio.Reader
	maxSize int64
	maxLine int
	maxRaw  int64

	size    int64 // unstuffed bytes passed on
	raw     int64 // bytes consumed from r
	lineLen int   // bytes of the current line read so far
	bol     bool  // at the beginning of a line
	cr      bool  // the last piece ended in CR (a line split by the buffer)
	pending []byte
	err     error // Read's sticky error
	end     error // piece's sticky error: io.EOF at the end marker
}

func (d *dataReader) reset(r *bufio.Reader, maxSize int64, maxLine int, maxRaw int64) {
	*d = dataReader{r: r, maxSize: maxSize, maxLine: maxLine, maxRaw: maxRaw, bol: true}
}

// piece returns the next part of the body, unstuffed: a whole line, or
// the part of a long line that filled the read buffer. long reports that
// the current line went over maxLine. The slice is valid until the next
// read from r.
func (d *dataReader) piece() (b []byte, long bool, err error) {
	if d.end != nil {
		return nil, false, d.end
	}
	line, err := d.r.ReadSlice('\n')
	d.raw += int64(len(line))
	if d.raw > d.maxRaw {
		d.end = errDrainLimit
		return nil, false, d.end
	}
	full := err == nil
	if err != nil && err != bufio.ErrBufferFull {
		// The client went away or timed out inside the message.
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		d.end = err
		return nil, false, err
	}
	n := len(line)
	b = line
	if d.bol && n > 0 && line[0] == '.' {
		if full && n == 3 && line[1] == '\r' {
			d.end = io.EOF
			return nil, false, io.EOF
		}
		b = line[1:]
	}
	d.lineLen += n
	long = d.lineLen > d.maxLine
	if full {
		if n >= 2 {
			d.bol = line[n-2] == '\r'
		} else {
			d.bol = d.cr
		}
		d.lineLen = 0
		d.cr = false
	} else {
		d.bol = false
		d.cr = n > 0 && line[n-1] == '\r'
	}
	return b, long, nil
}

// Read fills p with as much of the body as is at hand, waiting for the
// network only when it has nothing yet.
func (d *dataReader) Read(p []byte) (int, error) {
	n := 0
	for {
		if len(d.pending) > 0 {
			c := copy(p[n:], d.pending)
			n += c
			d.pending = d.pending[c:]
			if len(d.pending) > 0 || n == len(p) {
				return n, nil
			}
		}
		if d.err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, d.err
		}
		if n > 0 && d.r.Buffered() == 0 {
			return n, nil // do not wait for more while holding some
		}
		b, long, err := d.piece()
		switch {
		case err != nil:
			d.err = err
		case long:
			d.err = errLongLine
		case d.size+int64(len(b)) > d.maxSize:
			d.err = errTooBig
		default:
			d.size += int64(len(b))
			d.pending = b
		}
	}
}

// drain reads to the end of the message: nil at the end marker, else why
// it could not get there (a read error, or errDrainLimit).
func (d *dataReader) drain() error {
	d.pending = nil
	for {
		_, _, err := d.piece()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// chunkReader reads a BDAT chunk of n bytes from the connection's read
// buffer, as it is. The client hanging up inside the chunk is an error,
// never the end of the chunk.
type chunkReader struct {
	r *bufio.Reader
	n int64
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// discard reads what is left of the chunk.
func (c *chunkReader) discard() error {
	for c.n > 0 {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := int64(c.r.Buffered())
		if k > c.n {
			k = c.n
		}
		c.r.Discard(int(k))
		c.n -= k
	}
	return nil
}

// copyTo writes what is left of the chunk to w without an intermediate
// buffer. rerr is a read error (the chunk is cut short); werr a write
// error (w, the pipe to Data, is closed: Data has finished).
func (c *chunkReader) copyTo(w io.Writer) (rerr, werr error) {
	for c.n > 0 {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err, nil
			}
		}
		k := c.r.Buffered()
		if int64(k) > c.n {
			k = int(c.n)
		}
		b, _ := c.r.Peek(k)
		if _, err := w.Write(b); err != nil {
			return nil, err
		}
		c.r.Discard(k)
		c.n -= int64(k)
	}
	return nil, nil
}

package message

import (
	"bytes"
	"fmt"
	"io"
)

// crlfChunk bounds the scratch buffer of a CRLFWriter.
const crlfChunk = 32 << 10

// CRLFWriter converts line endings to CRLF as data streams through it: a bare
// LF becomes CRLF, CRLF passes unchanged, and a bare CR (one not followed by
// LF) is passed through as is, since it is not a line break in a stored
// message either. The result does not depend on how the data is split across
// Write calls: a CR ending one Write and an LF starting the next are one CRLF.
//
// CRLFWriter keeps no data back, so it needs no Flush or Close. It is not safe
// for concurrent use.
type CRLFWriter struct {
	w   io.Writer
	cr  bool   // the last byte written was CR
	buf []byte // scratch for converted output
}

// NewCRLFWriter returns a CRLFWriter writing to w.
func NewCRLFWriter(w io.Writer) *CRLFWriter {
	return &CRLFWriter{w: w}
}

// Write converts p and writes it to the underlying writer. It returns len(p)
// on success; on error, the number of bytes of p whose conversion was
// written in full.
func (c *CRLFWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > crlfChunk {
			chunk = chunk[:crlfChunk]
		}
		out := c.convert(chunk)
		if _, err := c.w.Write(out); err != nil {
			return n, fmt.Errorf("message: write crlf: %w", err)
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// convert returns p with bare LFs turned into CRLF; p itself when there are
// none.
func (c *CRLFWriter) convert(p []byte) []byte {
	prevCR := c.cr
	c.cr = p[len(p)-1] == '\r'
	out := c.buf[:0]
	changed := false
	start := 0
	for i := 0; i < len(p); {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		precededByCR := prevCR
		if j > 0 {
			precededByCR = p[j-1] == '\r'
		}
		if !precededByCR {
			out = append(out, p[start:j]...)
			out = append(out, '\r')
			start = j
			changed = true
		}
		i = j + 1
	}
	if !changed {
		return p
	}
	out = append(out, p[start:]...)
	c.buf = out
	return out
}

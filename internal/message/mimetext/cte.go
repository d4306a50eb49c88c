package mimetext

// Content-Transfer-Encoding decoding (RFC 2045 §6) as streams, for BINARY
// (RFC 3516), PREVIEW (RFC 8970) and the text searches. The decoders are
// lenient the way mail readers are: malformed input decodes to something
// rather than to an error, and the same input always decodes to the same
// bytes, so a size computed in one pass matches the data of the next.

import (
	"bufio"
	"io"
	"strings"
)

// CTEReader returns a reader of r decoded from the transfer encoding
// enc (upper case, as message.Part keeps it), or ok=false for an encoding
// jodmai does not know (RFC 3516 §4.3: [UNKNOWN-CTE]).
func CTEReader(enc string, r io.Reader) (io.Reader, bool) {
	switch strings.ToUpper(enc) {
	case "", "7BIT", "8BIT", "BINARY":
		return r, true
	case "BASE64":
		return &base64Reader{r: byteReader(r)}, true
	case "QUOTED-PRINTABLE":
		return &qpReader{r: byteReader(r)}, true
	}
	return nil, false
}

// KnownCTE reports whether CTEReader can decode enc.
func KnownCTE(enc string) bool {
	switch strings.ToUpper(enc) {
	case "", "7BIT", "8BIT", "BINARY", "BASE64", "QUOTED-PRINTABLE":
		return true
	}
	return false
}

func byteReader(r io.Reader) *bufio.Reader {
	if br, ok := r.(*bufio.Reader); ok {
		return br
	}
	return bufio.NewReaderSize(r, 4096)
}

// ErrReader remembers the first error of r other than EOF, so that a
// caller whose decoders stop quietly at any error can still tell a read
// failure of the message file from the end of the data.
type ErrReader struct {
	R   io.Reader // the data
	Err error     // the first error of R other than io.EOF
}

func (e *ErrReader) Read(p []byte) (int, error) {
	n, err := e.R.Read(p)
	if err != nil && err != io.EOF && e.Err == nil {
		e.Err = err
	}
	return n, err
}

// base64Values maps a base64 alphabet byte to its value, 0xff for others.
var base64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// base64Reader decodes base64 (RFC 2045 §6.8): characters outside
// the alphabet are ignored, "=" ends the data, and a final incomplete
// group yields the bytes it holds.
type base64Reader struct {
	r    *bufio.Reader
	out  [3]byte
	nout int // bytes of out not yet returned, from the end
	acc  uint32
	nacc int
	done bool
}

func (b *base64Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if b.nout > 0 {
			c := copy(p[n:], b.out[3-b.nout:])
			b.nout -= c
			n += c
			continue
		}
		if b.done {
			break
		}
		// Fast path: decode buffered input straight into p while whole
		// groups fit; "=" and the end of the buffer go the slow way.
		if b.r.Buffered() > 0 && len(p)-n >= 3 {
			buf, _ := b.r.Peek(b.r.Buffered())
			i := 0
			for i < len(buf) && len(p)-n >= 3 && buf[i] != '=' {
				if b.nacc == 0 && i+4 <= len(buf) {
					// A whole group of four valid characters.
					v0, v1, v2, v3 := base64Values[buf[i]], base64Values[buf[i+1]], base64Values[buf[i+2]], base64Values[buf[i+3]]
					if (v0|v1|v2|v3)&0xc0 == 0 {
						x := uint32(v0)<<18 | uint32(v1)<<12 | uint32(v2)<<6 | uint32(v3)
						p[n], p[n+1], p[n+2] = byte(x>>16), byte(x>>8), byte(x)
						n += 3
						i += 4
						continue
					}
				}
				v := base64Values[buf[i]]
				i++
				if v == 0xff {
					continue
				}
				b.acc = b.acc<<6 | uint32(v)
				b.nacc++
				if b.nacc == 4 {
					p[n], p[n+1], p[n+2] = byte(b.acc>>16), byte(b.acc>>8), byte(b.acc)
					n += 3
					b.acc, b.nacc = 0, 0
				}
			}
			b.r.Discard(i)
			if i > 0 {
				continue
			}
		}
		c, err := b.r.ReadByte()
		if err != nil {
			b.flush()
			continue
		}
		if c == '=' {
			b.flush()
			continue
		}
		v := base64Values[c]
		if v == 0xff {
			continue
		}
		b.acc = b.acc<<6 | uint32(v)
		b.nacc++
		if b.nacc == 4 {
			b.out = [3]byte{byte(b.acc >> 16), byte(b.acc >> 8), byte(b.acc)}
			b.nout = 3
			b.acc, b.nacc = 0, 0
		}
	}
	if n == 0 && b.done && b.nout == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// flush ends the data: a partial group of 2 or 3 characters gives 1 or 2
// bytes.
func (b *base64Reader) flush() {
	b.done = true
	switch b.nacc {
	case 2:
		b.out[2] = byte(b.acc >> 4)
		b.nout = 1
	case 3:
		v := b.acc >> 2
		b.out[1], b.out[2] = byte(v>>8), byte(v)
		b.nout = 2
	}
	b.nacc = 0
}

// qpReader decodes quoted-printable (RFC 2045 §6.7): "=XX" is a byte,
// "=" before a line end is a soft line break, white space before a line end
// is dropped (rule 3), and anything else, a stray "=" included, passes
// through.
type qpReader struct {
	r    *bufio.Reader
	ws   []byte // white space held back until we know whether a line end follows
	out  []byte // decoded bytes not yet returned
	done bool
}

// qpMaxWS bounds the held-back white space; a longer run is passed on.
const qpMaxWS = 256

func unhexQP(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// qpPlain are the bytes that decode to themselves in every context.
var qpPlain = func() (t [256]bool) {
	for i := range t {
		t[i] = true
	}
	for _, c := range "= \t\r\n" {
		t[c] = false
	}
	return t
}()

func (q *qpReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(q.out) > 0 {
			c := copy(p[n:], q.out)
			q.out = q.out[c:]
			n += c
			continue
		}
		if q.done {
			break
		}
		if len(q.ws) == 0 {
			// Fast path: plain bytes and "=XX" escapes straight from the
			// buffer.
			buf, _ := q.r.Peek(q.r.Buffered())
			k := 0
			for k < len(buf) && n < len(p) {
				c := buf[k]
				if qpPlain[c] {
					p[n] = c
					n++
					k++
					continue
				}
				if c != '=' || k+2 >= len(buf) {
					break
				}
				hi, ok1 := unhexQP(buf[k+1])
				lo, ok2 := unhexQP(buf[k+2])
				if !ok1 || !ok2 {
					break
				}
				p[n] = hi<<4 | lo
				n++
				k += 3
			}
			if k > 0 {
				q.r.Discard(k)
				continue
			}
		}
		q.step()
	}
	if n == 0 && q.done && len(q.out) == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// step decodes one input unit into q.out.
func (q *qpReader) step() {
	q.out = q.out[:0]
	c, err := q.r.ReadByte()
	if err != nil {
		// Trailing white space at the end of the data is dropped too.
		q.ws = q.ws[:0]
		q.done = true
		return
	}
	switch c {
	case ' ', '\t':
		if len(q.ws) >= qpMaxWS {
			q.out = append(q.out, q.ws...)
			q.ws = q.ws[:0]
		}
		q.ws = append(q.ws, c)
		return
	case '\r':
		if next, err := q.r.Peek(1); err == nil && next[0] == '\n' {
			q.r.ReadByte()
			q.ws = q.ws[:0]
			q.out = append(q.out, '\r', '\n')
			return
		}
	case '\n':
		q.ws = q.ws[:0]
		q.out = append(q.out, '\n')
		return
	}
	q.out = append(q.out, q.ws...)
	q.ws = q.ws[:0]
	if c != '=' {
		q.out = append(q.out, c)
		return
	}
	next, _ := q.r.Peek(2)
	if len(next) == 2 {
		if hi, ok := unhexQP(next[0]); ok {
			if lo, ok := unhexQP(next[1]); ok {
				q.r.Discard(2)
				q.out = append(q.out, hi<<4|lo)
				return
			}
		}
	}
	// A soft line break: "=", optional white space, line end (or the end
	// of the data).
	i := 0
	for {
		b, err := q.r.Peek(i + 1)
		if len(b) <= i {
			if err != nil { // end of data: the "=" is dropped
				q.r.Discard(i)
				return
			}
		}
		if len(b) <= i || i >= qpMaxWS {
			break
		}
		switch b[i] {
		case ' ', '\t':
			i++
			continue
		case '\n':
			q.r.Discard(i + 1)
			return
		case '\r':
			if b2, _ := q.r.Peek(i + 2); len(b2) == i+2 && b2[i+1] == '\n' {
				q.r.Discard(i + 2)
				return
			}
		}
		break
	}
	q.out = append(q.out, '=')
}

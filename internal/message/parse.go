package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Parse reads a whole message from r in one streaming pass and returns its
// MIME tree. Lines may end in CRLF (the stored form) or bare LF; a bare CR is
// not a line break. Parse fails only when r does; malformed content gives a
// best-effort tree (see Part and the package limits).
func Parse(r io.Reader) (*Part, error) {
	p := &parser{
		br:          bufio.NewReaderSize(r, readBufferSize),
		atLineStart: true,
		budget:      maxRetainedHeaderBytes,
	}
	root, _ := p.parseEntity(0, false, true)
	if p.err != nil {
		return nil, fmt.Errorf("message: parse: read: %w", p.err)
	}
	return root, nil
}

// pos is a position in the message, with what Lines needs to know about it.
type pos struct {
	off int64 // byte offset
	lfs int64 // LF bytes before off
	lf  bool  // the byte at off-1 is LF
}

func maxPos(ps ...pos) pos {
	m := ps[0]
	for _, q := range ps[1:] {
		if q.off > m.off {
			m = q
		}
	}
	return m
}

// fragment is one piece of a line as returned by bufio.Reader.ReadSlice: a
// whole line, or a piece of a line longer than the buffer.
type fragment struct {
	b     []byte
	start bool // b begins a line
	final bool // b ends its line (with LF, or at EOF)
}

// parser holds the state of one Parse. Lines are peeked and then consumed, so
// that a delimiter line that ends a part can be left for the enclosing
// multipart; the peeked slice stays valid because nothing else reads until it
// is consumed.
type parser struct {
	br  *bufio.Reader
	err error // a read error other than EOF

	frag fragment
	has  bool // frag is peeked and not yet consumed
	eof  bool

	off         int64 // offset after the last consumed byte
	lfs         int64 // LF bytes consumed
	lastByte    byte  // last consumed byte
	atLineStart bool  // the next byte begins a line
	lineLen     int64 // bytes of the current line consumed so far
	lastLE      int   // length of the line break ending the last complete line (1 or 2)
	lastEmpty   bool  // the last complete line was only its line break

	bounds  [][]byte // boundaries of the enclosing multiparts, outermost first
	parts   int      // Parts created so far
	budget  int      // header value bytes that may still be retained
	scratch []byte   // the header field being collected
}

func (p *parser) peek() (*fragment, bool) {
	if p.has {
		return &p.frag, true
	}
	if p.eof || p.err != nil {
		return nil, false
	}
	b, err := p.br.ReadSlice('\n')
	switch {
	case err == nil, errors.Is(err, bufio.ErrBufferFull):
	case errors.Is(err, io.EOF):
		p.eof = true
	default:
		p.err = err
		return nil, false
	}
	if len(b) == 0 {
		return nil, false
	}
	eol := b[len(b)-1] == '\n'
	p.frag = fragment{b: b, start: p.atLineStart, final: eol || p.eof}
	p.has = true
	return &p.frag, true
}

func (p *parser) consume() {
	b := p.frag.b
	n := int64(len(b))
	prevCR := p.lastByte == '\r' && p.lineLen > 0
	p.off += n
	p.lineLen += n
	last := b[len(b)-1]
	if last == '\n' {
		p.lfs++
		le := 1
		if (len(b) >= 2 && b[len(b)-2] == '\r') || (len(b) == 1 && prevCR) {
			le = 2
		}
		p.lastLE = le
		p.lastEmpty = p.lineLen == int64(le)
		p.lineLen = 0
	}
	p.lastByte = last
	p.atLineStart = last == '\n'
	p.has = false
}

// here is the position after everything consumed.
func (p *parser) here() pos {
	return pos{off: p.off, lfs: p.lfs, lf: p.lastByte == '\n'}
}

// beforeDelim is where a part ends when the peeked line is a delimiter: before
// the line break that precedes it (RFC 2046 §5.1.1: it belongs to the
// delimiter). The caller clamps the result to the part's own start.
func (p *parser) beforeDelim() pos {
	if p.off == 0 || !p.atLineStart {
		return p.here()
	}
	return pos{off: p.off - int64(p.lastLE), lfs: p.lfs - 1, lf: p.lastEmpty}
}

// delimiter reports whether f is a delimiter line of one of the enclosing
// multiparts bounds[0..top]: the innermost matching index, or -1, and whether
// it is a close delimiter. RFC 2046 §5.1.1: "--" boundary, then "--" for the
// close delimiter, then only linear white space. Matching the innermost first
// keeps nested multiparts apart when one boundary is a prefix of another.
func (p *parser) delimiter(f *fragment, top int) (int, bool) {
	b := f.b
	if !f.start || !f.final || len(b) < 3 || b[0] != '-' || b[1] != '-' {
		return -1, false
	}
	rest := b[2:]
	for i := top; i >= 0; i-- {
		bd := p.bounds[i]
		if !bytes.HasPrefix(rest, bd) {
			continue
		}
		r := rest[len(bd):]
		isClose := false
		if len(r) >= 2 && r[0] == '-' && r[1] == '-' {
			isClose = true
			r = r[2:]
		}
		if onlySpace(r) {
			return i, isClose
		}
	}
	return -1, false
}

func (p *parser) atDelimiter(f *fragment) bool {
	i, _ := p.delimiter(f, len(p.bounds)-1)
	return i >= 0
}

func onlySpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// parseEntity parses one entity, header and body, from the current position
// up to the end of input or the next delimiter line of an enclosing
// multipart, which it leaves unread. isMessage marks a message root (the
// top-level message or the inside of a message/rfc822), which gets an
// Envelope. It returns the part and its end position.
func (p *parser) parseEntity(depth int, inDigest, isMessage bool) (*Part, pos) {
	p.parts++
	start := p.here()
	part := &Part{HeaderStart: start.off}
	var h header
	bs, hasBody := p.readHeader(&h, start, isMessage)
	part.BodyStart = bs.off
	boundary := h.apply(part, inDigest)
	if isMessage {
		part.Envelope = h.envelope()
	}

	end, childEnd := bs, bs
	switch {
	case !hasBody:
	case boundary != "" && depth < MaxDepth && p.parts < MaxParts:
		end, childEnd = p.parseMultipart(part, []byte(boundary), depth, part.MediaSubtype == "digest")
	case part.MediaType == "message" && (part.MediaSubtype == "rfc822" || part.MediaSubtype == "global") &&
		identityEncoding(part.Encoding) && depth < MaxDepth && p.parts < MaxParts:
		// RFC 2046 §5.2.1: the body is a complete message.
		part.Message, childEnd = p.parseEntity(depth+1, false, true)
		end = childEnd
	default:
		end = p.skipBody()
	}
	// A child clamped to its own start can end after where the parent's line
	// break before the delimiter would; the parent must still contain it.
	end = maxPos(end, bs, childEnd)
	part.End = end.off
	part.Lines = end.lfs - bs.lfs
	if end.off > bs.off && !end.lf {
		part.Lines++
	}
	return part, end
}

// identityEncoding reports whether a body in this Content-Transfer-Encoding
// can be parsed in place (RFC 2046 §5.2.1 allows only these for message/rfc822).
func identityEncoding(enc string) bool {
	return enc == "7BIT" || enc == "8BIT" || enc == "BINARY"
}

// skipBody consumes an opaque body and returns its end.
func (p *parser) skipBody() pos {
	for {
		f, ok := p.peek()
		if !ok {
			return p.here()
		}
		if f.start && p.atDelimiter(f) {
			return p.beforeDelim()
		}
		p.consume()
	}
}

// parseMultipart parses the body of a multipart with the given boundary: the
// preamble, each body part, the close delimiter and the epilogue. It returns
// the multipart's end and the end of its last body part. A missing close
// delimiter is tolerated: the multipart then ends where its parent does.
func (p *parser) parseMultipart(part *Part, boundary []byte, depth int, digest bool) (end, lastChild pos) {
	p.bounds = append(p.bounds, boundary)
	me := len(p.bounds) - 1
	defer func() { p.bounds = p.bounds[:me] }()

	closed := false
	for {
		f, ok := p.peek()
		if !ok {
			return p.here(), lastChild
		}
		if f.start {
			top := me
			if closed {
				// RFC 2046 §5.1.1: the epilogue is ignored; only an enclosing
				// multipart's delimiter ends it.
				top = me - 1
			}
			i, isClose := p.delimiter(f, top)
			if i >= 0 && i < me {
				return p.beforeDelim(), lastChild
			}
			if i == me {
				p.consume()
				if isClose {
					closed = true
					continue
				}
				if p.parts >= MaxParts {
					continue // opaque from here on
				}
				var child *Part
				child, lastChild = p.parseEntity(depth+1, digest, false)
				part.Parts = append(part.Parts, child)
				continue
			}
		}
		p.consume()
	}
}

// readHeader consumes a header block and collects the fields this package
// interprets into h. It returns where the body starts and whether there is a
// body: false when the header is ended by a delimiter line or the end of
// input rather than by a blank line.
//
// Tolerance: a first line that is not a header field (no "name:") means the
// entity has no header and its body starts at once; later lines that are not
// fields are skipped as part of the header, so a broken line does not cost the
// rest of the header.
func (p *parser) readHeader(h *header, start pos, isMessage bool) (pos, bool) {
	cur := -1 // field being collected, or -1
	total := 0
	first := true
	for {
		f, ok := p.peek()
		if !ok {
			p.finishField(h, cur)
			return p.here(), false
		}
		content := f.b
		if f.start {
			if p.atDelimiter(f) {
				p.finishField(h, cur)
				return maxPos(p.beforeDelim(), start), false
			}
			if isBlankLine(f.b) {
				p.finishField(h, cur)
				p.consume()
				return p.here(), true
			}
			if f.b[0] == ' ' || f.b[0] == '\t' {
				if first {
					return start, true
				}
			} else {
				p.finishField(h, cur)
				cur = -1
				name, value, ok := splitField(f.b)
				if !ok && first {
					return start, true
				}
				content = nil
				if ok && total < MaxHeaderBytes && p.budget > 0 {
					if id := fieldID(name); id >= 0 && (isMessage || id < firstEnvelopeField) && !h.has(id) {
						cur = id
						h.seen |= 1 << id
						content = value
						p.scratch = p.scratch[:0]
					}
				}
			}
		}
		total += len(f.b)
		if cur >= 0 {
			if total > MaxHeaderBytes {
				cur = -1 // too long to keep: dropped
			} else {
				if !f.start && f.b[0] == '\n' && len(p.scratch) > 0 && p.scratch[len(p.scratch)-1] == '\r' {
					// A CRLF split between two pieces of a very long line.
					p.scratch = p.scratch[:len(p.scratch)-1]
				}
				p.scratch = append(p.scratch, trimEOL(content)...)
			}
		}
		first = false
		p.consume()
	}
}

func (p *parser) finishField(h *header, cur int) {
	if cur < 0 {
		return
	}
	v := string(bytes.Trim(p.scratch, " \t\r\n"))
	h.vals[cur] = v
	p.budget -= len(v)
}

func isBlankLine(b []byte) bool {
	return (len(b) == 1 && b[0] == '\n') || (len(b) == 2 && b[0] == '\r' && b[1] == '\n')
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// splitField splits a header field line into its name and value (RFC 5322
// §2.2; obs-optional allows white space before the colon).
func splitField(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return nil, nil, false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return nil, nil, false
		}
	}
	return name, line[colon+1:], true
}

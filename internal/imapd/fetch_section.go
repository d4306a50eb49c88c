package imapd

// Body sections of FETCH (RFC 9051 §6.4.5): which bytes of the stored
// message BODY[section] names, and partial ranges.

import (
	"bufio"
	"bytes"
	"io"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
)

// fetchMaxHeader bounds how much of one header block HEADER.FIELDS reads
// into memory. message.Parse interprets only the first MaxHeaderBytes of a
// header; fields beyond this much are not returned either.
const fetchMaxHeader = 4 * message.MaxHeaderBytes

// fetchFindPart resolves a part path (RFC 9051 §6.4.5 part specifiers) in
// the message root: in a multipart, n is its n-th body part; in a
// message/rfc822 (or message/global) part, n numbers the parts of the
// embedded message; a message that is not multipart has one part, 1, its
// body. It returns nil for a part that does not exist.
func fetchFindPart(root *message.Part, path []uint32) *message.Part {
	if len(path) == 0 {
		return root
	}
	cur := fetchMessageChild(root, path[0])
	for _, n := range path[1:] {
		if cur == nil {
			return nil
		}
		switch {
		case cur.IsMultipart():
			cur = fetchNth(cur.Parts, n)
		case fetchIsMessage(cur) && cur.Message != nil:
			cur = fetchMessageChild(cur.Message, n)
		default:
			return nil
		}
	}
	return cur
}

// fetchMessageChild is part n of a message whose root is msg.
func fetchMessageChild(msg *message.Part, n uint32) *message.Part {
	if msg.IsMultipart() {
		return fetchNth(msg.Parts, n)
	}
	if n == 1 {
		return msg
	}
	return nil
}

func fetchNth(parts []*message.Part, n uint32) *message.Part {
	if n == 0 || uint64(n) > uint64(len(parts)) {
		return nil
	}
	return parts[n-1]
}

// fetchIsMessage reports whether p is an embedded message part.
func fetchIsMessage(p *message.Part) bool {
	return p.MediaType == "message" && (p.MediaSubtype == "rfc822" || p.MediaSubtype == "global")
}

// fetchSpan is the content of a body section: a byte range of the stored
// message, or (HEADER.FIELDS) bytes built in memory. missing means the
// section does not exist; it is answered NIL.
type fetchSpan struct {
	off, n  int64
	data    []byte
	inMem   bool
	missing bool
}

// len is the section's size in octets.
func (sp fetchSpan) len() int64 {
	if sp.inMem {
		return int64(len(sp.data))
	}
	return sp.n
}

// fetchClamp bounds [off, off+n) to a message of size bytes, so that a
// stored structure that disagrees with its file can never make a literal
// promise more bytes than the file holds.
func fetchClamp(off, n, size int64) (int64, int64) {
	off = max(0, min(off, size))
	n = max(0, min(n, size-off))
	return off, n
}

// fetchSectionReader gives fetchResolveSection access to the message file.
type fetchSectionReader interface {
	// header reads a header block, for HEADER.FIELDS.
	header(off, n int64) ([]byte, error)
	// topHeaderLen is the length of the message's header block, for the
	// sections of the top level when the structure was not loaded.
	topHeaderLen() (int64, error)
}

// fetchResolveSection finds the bytes of sec in a message of size bytes
// with structure root, which may be nil for the whole message and the
// top-level HEADER, HEADER.FIELDS (.NOT) and TEXT.
func fetchResolveSection(root *message.Part, size int64, sec imapwire.Section, r fetchSectionReader) (fetchSpan, error) {
	if len(sec.Part) == 0 && sec.Spec == imapwire.SectionAll {
		return fetchSpan{off: 0, n: size}, nil
	}
	if root == nil && len(sec.Part) == 0 {
		hl, err := r.topHeaderLen()
		if err != nil {
			return fetchSpan{}, err
		}
		root = &message.Part{BodyStart: hl, End: size}
	}
	p := fetchFindPart(root, sec.Part)
	if p == nil {
		return fetchSpan{missing: true}, nil
	}
	var off, n int64
	switch sec.Spec {
	case imapwire.SectionAll:
		off, n = p.BodyStart, p.End-p.BodyStart
	case imapwire.SectionMIME:
		off, n = p.HeaderStart, p.BodyStart-p.HeaderStart
	default:
		// HEADER, HEADER.FIELDS (.NOT) and TEXT address a message: the
		// whole one, or the one inside a message/rfc822 part.
		msg := p
		if len(sec.Part) > 0 {
			if !fetchIsMessage(p) || p.Message == nil {
				return fetchSpan{missing: true}, nil
			}
			msg = p.Message
		}
		switch sec.Spec {
		case imapwire.SectionText:
			off, n = msg.BodyStart, msg.End-msg.BodyStart
		case imapwire.SectionHeader:
			off, n = msg.HeaderStart, msg.BodyStart-msg.HeaderStart
		default:
			off, n = fetchClamp(msg.HeaderStart, msg.BodyStart-msg.HeaderStart, size)
			h, err := r.header(off, min(n, fetchMaxHeader))
			if err != nil {
				return fetchSpan{}, err
			}
			if n > fetchMaxHeader {
				// Only whole lines of a header cut short.
				h = h[:bytes.LastIndexByte(h, '\n')+1]
			}
			data := message.FilterHeader(h, sec.Fields, sec.Spec == imapwire.SectionHeaderFieldsNot)
			// RFC 9051 §6.4.5: the subset is followed by the blank line
			// that ends a header.
			data = append(data, '\r', '\n')
			return fetchSpan{data: data, inMem: true}, nil
		}
	}
	off, n = fetchClamp(off, n, size)
	return fetchSpan{off: off, n: n}, nil
}

// fetchApplyPartial narrows sp to <origin.octets> (RFC 9051 §6.4.5): an
// origin beyond the end gives an empty string.
func fetchApplyPartial(sp fetchSpan, p *imapwire.Partial) fetchSpan {
	if p == nil || sp.missing {
		return sp
	}
	l := sp.len()
	start := min(p.Offset, l)
	n := min(p.Count, l-start)
	if sp.inMem {
		sp.data = sp.data[start : start+n]
		return sp
	}
	sp.off += start
	sp.n = n
	return sp
}

// fetchReadHeader reads [off, off+n) of r, the header block of a message
// or part.
func fetchReadHeader(r io.ReaderAt, off, n int64) ([]byte, error) {
	buf := make([]byte, n)
	got, err := r.ReadAt(buf, off)
	if err == io.EOF {
		err = nil
	}
	return buf[:got], err
}

// fetchScanHeader reads the header block at the start of r (through the
// blank line that ends it), at most max bytes. It is for callers without
// the stored structure (SEARCH header keys, THREAD).
func fetchScanHeader(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(max)), 8192)
	var out []byte
	midLine := false // the last fragment did not end a line
	for {
		line, err := br.ReadSlice('\n')
		out = append(out, line...)
		if err == bufio.ErrBufferFull {
			midLine = true
			continue
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !midLine && len(bytes.TrimRight(line, "\r\n")) == 0 {
			return out, nil
		}
		midLine = false
	}
}

// fetchTopHeaderLen returns the length of the header block at the start of
// r, the blank line included, by the rules message.Parse applies: the
// header ends at the first empty line (CRLF or LF alone); a first line
// that is not a header field means there is no header; without an empty
// line the whole message is header. It reads the header once and keeps
// nothing of it.
func fetchTopHeaderLen(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 16<<10)
	var n int64
	first, midLine := true, false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull && err != io.EOF {
			return 0, err
		}
		if len(line) == 0 {
			return n, nil
		}
		if !midLine {
			if string(line) == "\r\n" || string(line) == "\n" {
				return n + int64(len(line)), nil
			}
			if first && !fetchIsFieldLine(line) {
				return 0, nil
			}
		}
		first = false
		n += int64(len(line))
		midLine = err == bufio.ErrBufferFull
		if err == io.EOF {
			return n, nil
		}
	}
}

// fetchHeaderEnd is fetchTopHeaderLen for the first bytes b of a message
// (whole: all of it). It reports false when b does not settle the question:
// the header goes on past b, or a line is so long that message.Parse would
// see it in pieces.
func fetchHeaderEnd(b []byte, whole bool) (int64, bool) {
	const maxLine = fetchHeadSize - 1 // shorter lines reach Parse whole
	n := 0
	for first := true; ; first = false {
		if n == len(b) {
			// No blank line (yet): all of a whole message is header.
			return int64(n), whole
		}
		i := bytes.IndexByte(b[n:], '\n')
		if i < 0 {
			// A last line without a line end.
			if !whole || len(b)-n >= maxLine {
				return 0, false
			}
			if first && !fetchIsFieldLine(b) {
				return 0, true
			}
			return int64(len(b)), true
		}
		if i >= maxLine {
			return 0, false
		}
		line := b[n : n+i+1]
		if string(line) == "\r\n" || string(line) == "\n" {
			return int64(n + len(line)), true
		}
		if first && !fetchIsFieldLine(line) {
			return 0, true
		}
		n += len(line)
	}
}

// fetchIsFieldLine reports whether line starts a header field: a name of
// printable characters before a colon (RFC 5322 §2.2, obs-optional white
// space allowed before the colon).
func fetchIsFieldLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

package smtpd

import (
	"io"
	"net/mail"
	"time"
)

// Submission fix-ups (RFC 6409 §8, RFC 5321 §6.4). A message from an
// authenticated user that lacks a header field the mail system needs gets
// it added, never a refusal and never a temporary error that the client
// would retry forever:
//
//   - Message-ID (RFC 6409 §8.3: the MSA SHOULD add it) and Date (§8.2:
//     MAY), as Postfix and mox do;
//   - From, with the authenticated address: RFC 5322 §3.6 requires it,
//     DKIM signs with its domain (RFC 6376 §5.4) and DMARC checks it (RFC
//     7489 §6.6.1). RFC 6409 §8 lets an MSA "modify submissions to ensure
//     compliance with standards and site policy".
//
// The fields go at the end of the header section, followed by the empty
// line that ends it: a message whose header section was not ended by one
// (it ends inside the header, or a line that is not a header field
// follows it) gets one, so that the fields added are header fields.
// Nothing else of the message changes, and a message that lacks nothing
// passes unchanged.
//
// This is done on the submission listeners only: RFC 5321 §6.4 forbids
// such changes to a relay, and on MX (final delivery of mail from anyone)
// a message without From is stored as received; see Data.

// Header fields a submitted message is checked for.
const (
	hasFrom = 1 << iota
	hasDate
	hasMessageID
)

// maxFieldName bounds the field names the fixer recognizes (RFC 5322 §2.2
// sets no limit; RFC 5321 lines are 1000 octets). A longer run of name
// characters at the start of a line is not a header field.
const maxFieldName = 76

// headerFixer passes a message (CRLF line ends, as CRLFWriter makes them)
// to w, and adds the missing fields of submitFields at the end of its
// header section. It reads field names at line starts only: the header is
// not buffered, whatever its size.
type headerFixer struct {
	w      io.Writer
	fields submitFields

	body bool // past the header section: pass everything on
	have int  // hasFrom | hasDate | hasMessageID seen
	// line is the start of the current line, held (not yet written)
	// until its kind is known. Once it is a field or a continuation, the
	// rest of the line is written as it comes (inLine).
	line   []byte
	inLine bool
}

// submitFields are the values of the fields a submission may get.
type submitFields struct {
	from      string // the authenticated address
	date      time.Time
	messageID string // without angle brackets
}

func newHeaderFixer(w io.Writer, f submitFields) *headerFixer {
	return &headerFixer{w: w, fields: f, line: make([]byte, 0, 80)}
}

// Write implements io.Writer.
func (h *headerFixer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.body {
			if _, err := h.w.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		}
		if h.inLine {
			// The rest of a header line: write up to its end.
			i := indexLF(p)
			if i < 0 {
				if _, err := h.w.Write(p); err != nil {
					return 0, err
				}
				return n, nil
			}
			if _, err := h.w.Write(p[:i+1]); err != nil {
				return 0, err
			}
			p = p[i+1:]
			h.inLine = false
			continue
		}
		// The start of a line: hold it until its kind is known.
		c := p[0]
		p = p[1:]
		h.line = append(h.line, c)
		if err := h.classify(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func indexLF(p []byte) int {
	for i, c := range p {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// classify looks at the held start of a line after each byte, and acts
// once its kind is known: a header field (its name noted), a continuation
// line, the empty line that ends the header, or something else, which
// ends the header too.
func (h *headerFixer) classify() error {
	l := h.line
	switch {
	case len(l) == 1 && (l[0] == ' ' || l[0] == '\t'):
		return h.flushLine(true) // continuation (or whitespace) line
	case l[0] == '\r' && len(l) == 1:
		return nil // maybe the empty line
	case l[0] == '\r' && l[1] == '\n':
		// The end of the header: the fields, then the empty line.
		return h.endHeader(false)
	case l[0] == '\r' || l[0] == '\n':
		return h.endHeader(true) // a bare CR or LF: not a header line
	}
	last := l[len(l)-1]
	switch {
	case last == ':':
		name := trimWSP(l[:len(l)-1])
		if len(name) == 0 || !fieldName(name) {
			return h.endHeader(true)
		}
		switch {
		case eqFold(name, "FROM"):
			h.have |= hasFrom
		case eqFold(name, "DATE"):
			h.have |= hasDate
		case eqFold(name, "MESSAGE-ID"):
			h.have |= hasMessageID
		}
		return h.flushLine(true)
	case last == ' ' || last == '\t':
		// RFC 5322 §4.5.x obs-optional: white space between the name
		// and the colon. Only white space may follow now.
		if !fieldName(trimWSP(l)) {
			return h.endHeader(true)
		}
		return nil
	case last > 32 && last < 127:
		if len(l) > maxFieldName || len(l) > 1 && isWSP(l[len(l)-2]) {
			return h.endHeader(true)
		}
		return nil
	}
	return h.endHeader(true)
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

func trimWSP(b []byte) []byte {
	for len(b) > 0 && isWSP(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// fieldName: RFC 5322 §3.6.8, ftext = %d33-57 / %d59-126.
func fieldName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return len(b) > 0
}

// flushLine writes the held start of the line; inLine: the rest of the
// line follows as it comes.
func (h *headerFixer) flushLine(inLine bool) error {
	_, err := h.w.Write(h.line)
	h.line = h.line[:0]
	h.inLine = inLine
	return err
}

// endHeader writes the missing fields and the empty line that ends the
// header. bodyStart: the held line is not a header line but the first of
// the body, and follows the empty line; otherwise it is that empty line.
func (h *headerFixer) endHeader(bodyStart bool) error {
	h.body = true
	add := h.missing()
	if len(add) == 0 {
		// Nothing to add: the message passes unchanged.
		return h.flushLine(false)
	}
	add = append(add, "\r\n"...)
	if bodyStart {
		add = append(add, h.line...)
	}
	h.line = h.line[:0]
	_, err := h.w.Write(add)
	return err
}

// missing returns the fields to add, each ending in CRLF.
func (h *headerFixer) missing() []byte {
	var b []byte
	if h.have&hasFrom == 0 && h.fields.from != "" {
		b = append(b, "From: "...)
		b = append(b, (&mail.Address{Address: h.fields.from}).String()...)
		b = append(b, "\r\n"...)
	}
	if h.have&hasDate == 0 {
		b = append(b, "Date: "...)
		b = h.fields.date.AppendFormat(b, time.RFC1123Z)
		b = append(b, "\r\n"...)
	}
	if h.have&hasMessageID == 0 && h.fields.messageID != "" {
		b = append(b, "Message-ID: <"...)
		b = append(b, h.fields.messageID...)
		b = append(b, ">\r\n"...)
	}
	return b
}

// Close ends the message. One that ended inside its header section and
// lacks a field gets its last line ended, the fields and the empty line.
func (h *headerFixer) Close() error {
	if h.body {
		return nil
	}
	h.body = true
	partial := len(h.line) > 0 || h.inLine
	if err := h.flushLine(false); err != nil {
		return err
	}
	add := h.missing()
	if len(add) == 0 {
		return nil
	}
	if partial {
		add = append([]byte("\r\n"), add...)
	}
	_, err := h.w.Write(append(add, "\r\n"...))
	return err
}

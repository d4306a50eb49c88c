package mailfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// mboxBuffer is the read buffer of an MboxReader: the longest line piece
// handled at once. Longer lines stream through in pieces.
const mboxBuffer = 64 << 10

// maxFromLine caps the "From " line kept for its sender and date.
const maxFromLine = 1000

// maxHeaderLine caps a header line examined for Status/X-Status.
const maxHeaderLine = 200

// MboxReader reads the messages of an mbox file one at a time.
//
// Format handling (mboxrd, which also reads mboxo and mboxcl files):
//   - every line beginning with "From " (at the start of a line, unquoted)
//     starts a new message; a line "From" alone, or ">From ...", does not;
//   - ">From ", ">>From " ... lose one ">" (mboxrd unquoting). A mboxo
//     writer quoted only "From " and left ">From " alone, so such a line
//     read from a mboxo file loses a ">" it had: the formats cannot be told
//     apart from the file;
//   - the empty line before the next "From " line (or the end of the file)
//     is the separator and not part of the message; a message that does not
//     end in a newline (possible only as the last one) is kept as it is;
//   - Content-Length headers (mboxcl) are ignored: the From lines alone
//     delimit messages, which is what every mboxrd and mboxo writer relies on;
//   - LF and CRLF line ends are both accepted and passed on unchanged;
//   - Status and X-Status headers are read for flags (Flags) and stay in
//     the message.
type MboxReader struct {
	br *bufio.Reader
	// next is the "From " line (without its line end) of the message
	// Next returns next; nil before the first and after the last.
	next       []byte
	nextOffset int64
	started    bool
	err        error
	cur        *MboxMessage
	// offset is the number of bytes consumed from the input.
	offset int64
	count  int
	// scratch is the pending buffer of the previous message, reused.
	scratch []byte
}

// NewMboxReader returns a reader of the mbox file r.
func NewMboxReader(r io.Reader) *MboxReader {
	return &MboxReader{br: bufio.NewReaderSize(r, mboxBuffer)}
}

// MboxMessage is one message of an mbox file. Read it to the end (Next does
// that for a message left unread) before looking at Flags.
type MboxMessage struct {
	// Number is the message's position in the file, from 1.
	Number int
	// Offset is the byte offset of its "From " line in the file.
	Offset int64
	// Sender is the envelope sender from the "From " line ("" if none).
	Sender string
	// Date is the date of the "From " line; zero when it does not parse.
	Date time.Time

	r         *MboxReader
	done      bool
	lineStart bool
	inHeader  bool
	heldBlank []byte // an empty line that may be the separator
	pending   []byte
	buf       []byte // pending's storage
	hdr       []byte // current header line (capped)
	flags     Flags
	size      int64
}

// Next returns the next message, or io.EOF after the last. An empty file
// has no messages. A file whose first non-empty line is not a "From " line
// is an error.
func (r *MboxReader) Next() (*MboxMessage, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.cur != nil && !r.cur.done {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return nil, err
		}
	}
	if r.cur != nil {
		r.scratch = r.cur.buf[:0]
		r.cur.buf, r.cur.pending = nil, nil
	}
	r.cur = nil
	if !r.started {
		r.started = true
		if err := r.readFirst(); err != nil {
			r.err = err
			return nil, err
		}
	}
	if r.next == nil {
		r.err = io.EOF
		return nil, io.EOF
	}
	r.count++
	m := &MboxMessage{Number: r.count, Offset: r.nextOffset, r: r, lineStart: true, inHeader: true, buf: r.scratch}
	r.scratch = nil
	m.Sender, m.Date = ParseFromLine(string(r.next))
	r.next = nil
	r.cur = m
	return m, nil
}

// readFirst skips empty lines at the start and reads the first From line.
func (r *MboxReader) readFirst() error {
	for {
		line, err := r.br.ReadSlice('\n')
		if len(line) == 0 && err == io.EOF {
			return nil // the empty file
		}
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("read mbox: %w", err)
		}
		if isBlank(line) && err == nil {
			r.offset += int64(len(line))
			continue
		}
		if !bytes.HasPrefix(line, []byte("From ")) {
			return fmt.Errorf("not an mbox file: byte %d: first line does not start with \"From \"", r.offset)
		}
		r.nextOffset = r.offset
		r.offset += int64(len(line))
		from, err := r.finishFromLine(line, err)
		r.next = from
		return err
	}
}

// finishFromLine returns the From line that starts with piece, reading the
// rest of it if the line was longer than the buffer; err is ReadSlice's.
// The kept line is capped and loses its line end.
func (r *MboxReader) finishFromLine(piece []byte, err error) ([]byte, error) {
	line := append([]byte(nil), piece[:min(len(piece), maxFromLine)]...)
	for errors.Is(err, bufio.ErrBufferFull) {
		piece, err = r.br.ReadSlice('\n')
		r.offset += int64(len(piece))
		if room := maxFromLine - len(line); room > 0 {
			line = append(line, piece[:min(room, len(piece))]...)
		}
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read mbox: %w", err)
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// Read reads the message's bytes, unquoted, with its line ends as in the
// file.
func (m *MboxMessage) Read(p []byte) (int, error) {
	for len(m.pending) == 0 {
		if m.done {
			return 0, io.EOF
		}
		if err := m.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	m.size += int64(n)
	return n, nil
}

// Size is the number of bytes read from the message so far.
func (m *MboxMessage) Size() int64 { return m.size }

// Flags are the flags of the message's Status and X-Status headers: R
// \Seen, A \Answered, F \Flagged, D \Deleted, T \Draft; O (old) maps to
// nothing. Valid once the message's header has been read.
func (m *MboxMessage) Flags() Flags { return m.flags }

// fill reads one line or line piece from the file into pending.
func (m *MboxMessage) fill() error {
	r := m.r
	m.pending = m.buf[:0]
	defer func() { m.buf = m.pending[:0] }()
	piece, err := r.br.ReadSlice('\n')
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		r.err = fmt.Errorf("read mbox: %w", err)
		return r.err
	}
	start := r.offset
	r.offset += int64(len(piece))
	if len(piece) == 0 && err == io.EOF {
		m.end() // the held empty line, if any, was the separator
		return nil
	}
	if !m.lineStart {
		m.pending = append(m.pending, piece...)
		m.header(piece)
		m.lineStart = err == nil
		if err == io.EOF {
			m.end()
		}
		return nil
	}
	if bytes.HasPrefix(piece, []byte("From ")) {
		line, ferr := r.finishFromLine(piece, err)
		if ferr != nil {
			r.err = ferr
			return ferr
		}
		r.next, r.nextOffset = line, start
		m.end()
		return nil
	}
	if err == nil && isBlank(piece) {
		if m.heldBlank != nil {
			m.pending = append(m.pending, m.heldBlank...)
		}
		m.heldBlank = append(m.heldBlank[:0], piece...)
		m.inHeader = false
		return nil
	}
	if m.heldBlank != nil {
		m.pending = append(m.pending, m.heldBlank...)
		m.heldBlank = nil
	}
	if q := quoted(piece); q {
		piece = piece[1:]
	}
	m.pending = append(m.pending, piece...)
	if m.inHeader && piece[0] != ' ' && piece[0] != '\t' && bytes.IndexByte(piece, ':') < 0 {
		// A line that is no field ends a malformed header (as in
		// WithStatus).
		m.inHeader = false
	}
	m.hdr = m.hdr[:0]
	m.header(piece)
	m.lineStart = err == nil
	if err == io.EOF {
		m.end()
	}
	return nil
}

// end finishes the message: the held empty line is dropped.
func (m *MboxMessage) end() {
	m.done = true
	m.heldBlank = nil
}

// header collects a header line and, when complete, reads flags from it.
func (m *MboxMessage) header(piece []byte) {
	if !m.inHeader {
		return
	}
	if room := maxHeaderLine - len(m.hdr); room > 0 {
		m.hdr = append(m.hdr, piece[:min(room, len(piece))]...)
	}
	if len(piece) == 0 || piece[len(piece)-1] != '\n' {
		return
	}
	m.flags |= statusFlags(string(m.hdr))
	m.hdr = m.hdr[:0]
}

// statusFlags returns the flags of a Status or X-Status header line.
func statusFlags(line string) Flags {
	if line == "" || line[0] == ' ' || line[0] == '\t' {
		return 0 // a continuation line, not a field (as in WithStatus)
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return 0
	}
	name = strings.TrimRight(name, " \t") // RFC 5322 §4.5 obsolete "Status :"
	if !strings.EqualFold(name, "Status") && !strings.EqualFold(name, "X-Status") {
		return 0
	}
	var f Flags
	for _, c := range strings.TrimSpace(value) {
		switch c {
		case 'R':
			f |= Seen
		case 'A':
			f |= Answered
		case 'F':
			f |= Flagged
		case 'D':
			f |= Deleted
		case 'T':
			f |= Draft
		}
	}
	return f
}

// quoted reports whether line is ^>+From , which mboxrd unquotes.
func quoted(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte("From "))
}

// isBlank reports whether line is an empty line ("\n" or "\r\n").
func isBlank(line []byte) bool {
	return len(line) == 1 && line[0] == '\n' || len(line) == 2 && line[0] == '\r' && line[1] == '\n'
}

// fromDateLayouts are the date forms seen on From lines: asctime, with a
// zone name or a numeric offset before or after the year.
var fromDateLayouts = []string{
	time.ANSIC,                        // Mon Jan _2 15:04:05 2006
	"Mon Jan _2 15:04:05 2006 -0700",  // Postfix, some tools
	"Mon Jan _2 15:04:05 MST 2006",    // old sendmail
	"Mon Jan _2 15:04:05 -0700 2006",  // some tools
	"Mon Jan _2 15:04 2006",           // no seconds
	"Mon, _2 Jan 2006 15:04:05 -0700", // an RFC 5322 date, seen in the wild
	"Mon Jan _2 15:04:05 2006 MST",    // zone name last
	"Mon Jan _2 15:04:05 MST -0700 2006",
}

// ParseFromLine splits an mbox "From " line into the envelope sender and
// the date. The date is zero when it does not parse; dates without a zone
// are taken as UTC.
func ParseFromLine(line string) (sender string, date time.Time) {
	rest, ok := strings.CutPrefix(line, "From ")
	if !ok {
		return "", time.Time{}
	}
	rest = strings.TrimLeft(rest, " ")
	sender, rest, _ = strings.Cut(rest, " ")
	// Normalise runs of spaces except the one asctime pads days with.
	rest = strings.TrimSpace(rest)
	for _, layout := range fromDateLayouts {
		if t, err := time.Parse(layout, rest); err == nil {
			return sender, t
		}
	}
	// Day padded with two spaces where the layout expects one, or the
	// reverse: try with spaces collapsed.
	collapsed := strings.Join(strings.Fields(rest), " ")
	for _, layout := range fromDateLayouts {
		if t, err := time.Parse(strings.ReplaceAll(layout, "_2", "2"), collapsed); err == nil {
			return sender, t
		}
	}
	return sender, time.Time{}
}

package mailfile

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// StatusLines returns the Status and X-Status header lines (LF ends) that
// carry flags in an mbox file, as mutt and Dovecot write them: "Status: R"
// for \Seen, with "O" (old) appended when old is set; "X-Status:" with A
// \Answered, F \Flagged, T \Draft, D \Deleted. A line is left out when it
// would be empty.
func StatusLines(f Flags, old bool) string {
	var s string
	if f&Seen != 0 || old {
		s = "Status: "
		if f&Seen != 0 {
			s += "R"
		}
		if old {
			s += "O"
		}
		s += "\n"
	}
	var x string
	for _, l := range []struct {
		f Flags
		c string
	}{{Answered, "A"}, {Flagged, "F"}, {Draft, "T"}, {Deleted, "D"}} {
		if f&l.f != 0 {
			x += l.c
		}
	}
	if x != "" {
		s += "X-Status: " + x + "\n"
	}
	return s
}

// WithStatus returns r (a message with LF line ends) with its Status and
// X-Status headers set to flags f, for an mbox file: existing ones are
// replaced in place by StatusLines (keeping an "O" the old Status had),
// or, when there were none and f has flags, the lines are added at the end
// of the header. A message whose headers already say f passes unchanged.
// The message streams; only one header line is held at a time.
func WithStatus(r io.Reader, f Flags) io.Reader {
	return &statusReader{br: bufio.NewReaderSize(r, mboxBuffer), flags: f, lineStart: true}
}

type statusReader struct {
	br        *bufio.Reader
	flags     Flags
	out       []byte
	buf       []byte
	lineStart bool
	body      bool // past the header
	dropping  bool // inside a Status/X-Status field being replaced
	written   bool // our lines are out
	err       error
}

func (s *statusReader) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if s.body {
			n, err := s.br.Read(p)
			if err != nil {
				s.err = err
			}
			return n, err
		}
		s.step()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// step handles one header line (or piece of one).
func (s *statusReader) step() {
	s.buf = s.buf[:0]
	piece, err := s.br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		s.err = err
	}
	atStart := s.lineStart
	s.lineStart = err == nil
	if !atStart {
		if !s.dropping {
			s.buf = append(s.buf, piece...)
		}
		s.out = s.buf
		return
	}
	switch {
	case len(piece) == 0:
	case piece[0] == ' ' || piece[0] == '\t':
		// A continuation of the field before.
		if !s.dropping {
			s.buf = append(s.buf, piece...)
		}
	case isBlank(piece) || bytes.IndexByte(piece, ':') < 0:
		// The end of the header (an empty line, or a line that is no
		// field: the body of a message without a blank line).
		s.dropping = false
		if !s.written && s.flags != 0 {
			s.buf = append(s.buf, StatusLines(s.flags, false)...)
		}
		s.written = true
		s.buf = append(s.buf, piece...)
		s.body = true
	default:
		name := piece[:bytes.IndexByte(piece, ':')]
		name = bytes.TrimRight(name, " \t")
		isStatus := bytes.EqualFold(name, []byte("Status"))
		if isStatus || bytes.EqualFold(name, []byte("X-Status")) {
			s.dropping = true
			if !s.written {
				// The "O" of a Status field is kept. (A Status
				// after an X-Status is not looked for: that
				// would mean holding lines back.)
				old := isStatus && bytes.IndexByte(piece[len(name):], 'O') >= 0
				s.buf = append(s.buf, StatusLines(s.flags, old)...)
				s.written = true
			}
		} else {
			s.dropping = false
			s.buf = append(s.buf, piece...)
		}
	}
	s.out = s.buf
}

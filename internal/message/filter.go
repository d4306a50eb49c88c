package message

import "bytes"

// FilterHeader returns the fields of a raw header block (the bytes
// [HeaderStart, BodyStart) of a Part) whose names are in names (compared
// without regard to case), or, with exclude, those whose names are not: what
// IMAP BODY[HEADER.FIELDS (...)] and BODY[HEADER.FIELDS.NOT (...)] select
// (RFC 9051 §6.4.5). Each field is returned whole, folded lines and original
// line endings included, in header order. Lines that are not header fields
// are never returned (Parse skips them the same way), and neither is the
// blank line that ends the header: the caller appends the CRLF IMAP sends
// after the selected fields.
func FilterHeader(header []byte, names []string, exclude bool) []byte {
	var out []byte
	keep := false
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line = header[:i+1]
		}
		header = header[len(line):]
		if isBlankLine(line) {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := splitField(line)
			keep = ok && containsFold(names, name) != exclude
		}
		if keep {
			out = append(out, line...)
		}
	}
	return out
}

func containsFold(names []string, name []byte) bool {
	for _, n := range names {
		if len(n) == len(name) && bytes.EqualFold([]byte(n), name) {
			return true
		}
	}
	return false
}

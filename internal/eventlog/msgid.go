package eventlog

import (
	"bytes"
	"io"
	"strings"
)

// headerScan bounds how much of a message MessageID reads.
const headerScan = 32 << 10

// MessageID returns the Message-ID of the message in r (its first size
// bytes), without angle brackets, or "" when its header has none within
// the first 32 KiB. Folded fields are unfolded.
func MessageID(r io.ReaderAt, size int64) string {
	buf := make([]byte, min(size, headerScan))
	n, _ := r.ReadAt(buf, 0)
	return messageIDOf(buf[:n])
}

// MessageIDOf is MessageID of a message in memory.
func MessageIDOf(msg []byte) string { return messageIDOf(msg[:min(len(msg), headerScan)]) }

func messageIDOf(h []byte) string {
	var cur []byte // the Message-ID field being unfolded
	inField := false
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line, h = h[:i], h[i+1:]
		} else {
			h = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break // end of header
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inField {
				cur = append(cur, line...)
			}
			continue
		}
		if inField {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Message-ID") {
			inField = true
			cur = append(cur, value...)
		}
	}
	id := strings.TrimSpace(string(cur))
	if i := strings.IndexByte(id, '<'); i >= 0 {
		if j := strings.IndexByte(id[i:], '>'); j > 0 {
			id = id[i+1 : i+j]
		}
	}
	id = strings.Join(strings.Fields(id), "")
	if len(id) > 998 {
		id = id[:998]
	}
	return id
}

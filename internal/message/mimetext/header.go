package mimetext

import (
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"

	"github.com/jodmai/jodmai/internal/message"
)

// DecodeHeader decodes RFC 2047 encoded words in a raw header value
// with every charset go-message knows, and returns valid UTF-8.
func DecodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return strings.ToValidUTF8(v, "\uFFFD")
	}
	d := mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(cs) {
		case "utf-8", "us-ascii":
			return r, nil
		}
		return charset.Reader(cs, r)
	}}
	out, err := d.DecodeHeader(v)
	if err != nil {
		// Fall back to what the message package decodes.
		out = message.DecodeHeader(v)
	}
	return strings.ToValidUTF8(out, "\uFFFD")
}

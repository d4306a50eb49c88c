package mimetext

// Turning a text part into plain UTF-8 text, for PREVIEW (RFC 8970) and
// the BODY/TEXT searches: transfer decoding (cte.go), charset
// conversion, and HTML tag removal, all streaming.

import (
	"bufio"
	"html"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/jodmai/jodmai/internal/message"
)

// CharsetReader converts r from the MIME charset cs to UTF-8. UTF-8,
// US-ASCII and unknown charsets pass through unchanged (invalid UTF-8 is
// the consumer's to replace).
func CharsetReader(cs string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown":
		return r
	}
	if cr, err := charset.Reader(cs, r); err == nil {
		return cr
	}
	return r
}

// TextReader returns the text of a text/* part as UTF-8: r holds the
// part's body as stored; HTML loses its markup.
func TextReader(p *message.Part, r io.Reader) io.Reader {
	dec, ok := CTEReader(p.Encoding, r)
	if !ok {
		dec = r
	}
	text := CharsetReader(p.Param("charset"), dec)
	if p.MediaSubtype == "html" {
		return newHTMLText(text)
	}
	return text
}

// htmlText strips HTML markup from a stream: tags go (block-level ones
// become a space), comments, <script> and <style> content go, character
// references are decoded.
type htmlText struct {
	r   *bufio.Reader
	out []byte
	eof bool
	// skipUntil is the closing tag ("</script") whose content is skipped.
	skipUntil string
}

func newHTMLText(r io.Reader) *htmlText {
	return &htmlText{r: bufio.NewReaderSize(r, 4096)}
}

// htmlBlockTags become a space, so words in separate blocks do not run
// together.
var htmlBlockTags = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "td": true, "th": true, "li": true, "ul": true, "ol": true,
	"table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"blockquote": true, "pre": true, "title": true, "section": true, "article": true, "header": true, "footer": true,
}

// htmlMaxToken bounds a tag name or character reference looked at.
const htmlMaxToken = 32

func (h *htmlText) Read(p []byte) (int, error) {
	for len(h.out) == 0 {
		if h.eof {
			return 0, io.EOF
		}
		h.step()
	}
	n := copy(p, h.out)
	h.out = h.out[n:]
	return n, nil
}

func (h *htmlText) step() {
	h.out = h.out[:0]
	c, err := h.r.ReadByte()
	if err != nil {
		h.eof = true
		return
	}
	if h.skipUntil != "" {
		if c == '<' && h.peekFold(h.skipUntil[1:]) {
			h.skipUntil = ""
			h.skipTag()
		}
		return
	}
	switch c {
	case '<':
		if h.peekFold("!--") {
			h.r.Discard(3)
			h.skipComment()
			return
		}
		name := h.tagName()
		h.skipTag()
		switch {
		case name == "script" || name == "style":
			h.skipUntil = "</" + name
		case htmlBlockTags[strings.TrimPrefix(name, "/")]:
			h.out = append(h.out, ' ')
		}
	case '&':
		ref := []byte{'&'}
		for len(ref) < htmlMaxToken {
			b, err := h.r.Peek(1)
			if err != nil {
				break
			}
			ch := b[0]
			if ch == ';' {
				h.r.ReadByte()
				ref = append(ref, ';')
				break
			}
			if !(ch == '#' || ('a' <= ch && ch <= 'z') || ('A' <= ch && ch <= 'Z') || ('0' <= ch && ch <= '9')) {
				break
			}
			h.r.ReadByte()
			ref = append(ref, ch)
		}
		h.out = append(h.out, html.UnescapeString(string(ref))...)
	default:
		h.out = append(h.out, c)
	}
}

// peekFold reports whether the next bytes are s, ignoring ASCII case.
func (h *htmlText) peekFold(s string) bool {
	b, _ := h.r.Peek(len(s))
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// tagName reads the (lower-cased) name after "<", "/" included.
func (h *htmlText) tagName() string {
	var b []byte
	for len(b) < htmlMaxToken {
		p, err := h.r.Peek(1)
		if err != nil {
			break
		}
		c := p[0]
		if !(c == '/' && len(b) == 0) && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			break
		}
		h.r.ReadByte()
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// skipTag skips to the ">" that ends a tag, over quoted attribute values.
func (h *htmlText) skipTag() {
	var quote byte
	for {
		c, err := h.r.ReadByte()
		if err != nil {
			return
		}
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '>':
			return
		}
	}
}

func (h *htmlText) skipComment() {
	dashes := 0
	for {
		c, err := h.r.ReadByte()
		if err != nil {
			return
		}
		switch {
		case c == '-':
			dashes++
		case c == '>' && dashes >= 2:
			return
		default:
			dashes = 0
		}
	}
}

// Preview (RFC 8970).
const (
	// previewChars is the preview length in characters; RFC 8970
	// §3.1 caps it at 256.
	previewChars = 200
	// previewRead bounds how much of the part is read for it.
	previewRead = 64 << 10
)

// previewPart picks the part a preview is made of: the first
// text/plain part that is not an attachment, else the first such text/html
// part. Embedded messages are attachments and not looked into.
func previewPart(root *message.Part) *message.Part {
	var plain, htmlPart *message.Part
	var walk func(p *message.Part)
	walk = func(p *message.Part) {
		if plain != nil {
			return
		}
		if p.IsMultipart() {
			for _, c := range p.Parts {
				walk(c)
			}
			return
		}
		if p.MediaType != "text" || p.Disposition == "attachment" {
			return
		}
		switch p.MediaSubtype {
		case "plain":
			plain = p
		case "html":
			if htmlPart == nil {
				htmlPart = p
			}
		}
	}
	walk(root)
	if plain != nil {
		return plain
	}
	return htmlPart
}

// Preview makes the PREVIEW text of a message: the start of its main
// text, decoded, white space collapsed, at most previewChars
// characters. A message without text gives "".
func Preview(root *message.Part, ra io.ReaderAt, size int64) (string, error) {
	p := previewPart(root)
	if p == nil {
		return "", nil
	}
	off, n := clamp(p.BodyStart, p.End-p.BodyStart, size)
	src := &ErrReader{R: io.NewSectionReader(ra, off, min(n, previewRead))}
	text := bufio.NewReaderSize(TextReader(p, src), 4096)
	var b strings.Builder
	chars := 0
	space := false
	for chars < previewChars {
		r, size, err := text.ReadRune()
		if err != nil {
			break
		}
		if r == utf8.RuneError && size == 1 {
			r = '\uFFFD'
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			chars++
			space = false
			if chars == previewChars {
				break
			}
		}
		b.WriteRune(r)
		chars++
	}
	return b.String(), src.Err
}

// clamp bounds [off, off+n) to a message of size bytes, so that a stored
// structure that disagrees with its file can never make a read reach past
// the file (imapd's fetchClamp).
func clamp(off, n, size int64) (int64, int64) {
	off = max(0, min(off, size))
	n = max(0, min(n, size-off))
	return off, n
}

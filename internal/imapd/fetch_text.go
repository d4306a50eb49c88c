package imapd

// Turning a text part into plain UTF-8 text, for PREVIEW (RFC 8970) and
// the BODY/TEXT searches: transfer decoding (fetch_decode.go), charset
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

// fetchCharsetReader converts r from the MIME charset cs to UTF-8. UTF-8,
// US-ASCII and unknown charsets pass through unchanged (invalid UTF-8 is
// the consumer's to replace).
func fetchCharsetReader(cs string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cs)) {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown":
		return r
	}
	if cr, err := charset.Reader(cs, r); err == nil {
		return cr
	}
	return r
}

// fetchTextReader returns the text of a text/* part as UTF-8: r holds the
// part's body as stored; HTML loses its markup.
func fetchTextReader(p *message.Part, r io.Reader) io.Reader {
	dec, ok := fetchCTEReader(p.Encoding, r)
	if !ok {
		dec = r
	}
	text := fetchCharsetReader(p.Param("charset"), dec)
	if p.MediaSubtype == "html" {
		return newFetchHTMLText(text)
	}
	return text
}

// fetchHTMLText strips HTML markup from a stream: tags go (block-level ones
// become a space), comments, <script> and <style> content go, character
// references are decoded.
type fetchHTMLText struct {
	r   *bufio.Reader
	out []byte
	eof bool
	// skipUntil is the closing tag ("</script") whose content is skipped.
	skipUntil string
}

func newFetchHTMLText(r io.Reader) *fetchHTMLText {
	return &fetchHTMLText{r: bufio.NewReaderSize(r, 4096)}
}

// fetchHTMLBlockTags become a space, so words in separate blocks do not run
// together.
var fetchHTMLBlockTags = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "td": true, "th": true, "li": true, "ul": true, "ol": true,
	"table": true, "h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "hr": true,
	"blockquote": true, "pre": true, "title": true, "section": true, "article": true, "header": true, "footer": true,
}

// fetchHTMLMaxToken bounds a tag name or character reference looked at.
const fetchHTMLMaxToken = 32

func (h *fetchHTMLText) Read(p []byte) (int, error) {
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

func (h *fetchHTMLText) step() {
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
		case fetchHTMLBlockTags[strings.TrimPrefix(name, "/")]:
			h.out = append(h.out, ' ')
		}
	case '&':
		ref := []byte{'&'}
		for len(ref) < fetchHTMLMaxToken {
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
func (h *fetchHTMLText) peekFold(s string) bool {
	b, _ := h.r.Peek(len(s))
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// tagName reads the (lower-cased) name after "<", "/" included.
func (h *fetchHTMLText) tagName() string {
	var b []byte
	for len(b) < fetchHTMLMaxToken {
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
func (h *fetchHTMLText) skipTag() {
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

func (h *fetchHTMLText) skipComment() {
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
	// fetchPreviewChars is the preview length in characters; RFC 8970
	// §3.1 caps it at 256.
	fetchPreviewChars = 200
	// fetchPreviewRead bounds how much of the part is read for it.
	fetchPreviewRead = 64 << 10
)

// fetchPreviewPart picks the part a preview is made of: the first
// text/plain part that is not an attachment, else the first such text/html
// part. Embedded messages are attachments and not looked into.
func fetchPreviewPart(root *message.Part) *message.Part {
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

// fetchPreview makes the PREVIEW text of a message: the start of its main
// text, decoded, white space collapsed, at most fetchPreviewChars
// characters. A message without text gives "".
func fetchPreview(root *message.Part, ra io.ReaderAt, size int64) (string, error) {
	p := fetchPreviewPart(root)
	if p == nil {
		return "", nil
	}
	off, n := fetchClamp(p.BodyStart, p.End-p.BodyStart, size)
	src := &fetchErrReader{r: io.NewSectionReader(ra, off, min(n, fetchPreviewRead))}
	text := bufio.NewReaderSize(fetchTextReader(p, src), 4096)
	var b strings.Builder
	chars := 0
	space := false
	for chars < fetchPreviewChars {
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
			if chars == fetchPreviewChars {
				break
			}
		}
		b.WriteRune(r)
		chars++
	}
	return b.String(), src.err
}

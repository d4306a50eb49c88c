package imapd

// Text matching for SEARCH (RFC 9051 §6.4.4): header fields decoded from
// RFC 2047, body text decoded from its transfer encoding and charset (both
// by package mimetext), and a case-insensitive substring scan that
// streams, so a large body never sits in memory.

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/message/mimetext"
)

// searchFoldRune maps r to the smallest rune of its simple case-folding
// orbit, so that runes equal under Unicode simple case folding map to the
// same rune ("k", "K" and the Kelvin sign; "σ", "ς" and "Σ").
func searchFoldRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}
	low := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		low = min(low, f)
	}
	return low
}

// searchFold appends the case-folded form of the UTF-8 text src to dst.
// Invalid bytes become U+FFFD.
func searchFold(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(src[i:])
		dst = utf8.AppendRune(dst, searchFoldRune(r))
		i += size
	}
	return dst
}

// searchFoldString is searchFold for a string.
func searchFoldString(s string) []byte { return searchFold(nil, []byte(s)) }

// searchField is one header field: its name and its value unfolded and
// decoded.
type searchField struct {
	name  string
	value string
	// folded is value case-folded, computed when a key first needs it.
	folded   []byte
	isFolded bool
	// addrs is an address field's addresses as "name <mailbox@host>",
	// case-folded, computed when a key first needs it (searchAddresses).
	addrs   []byte
	isAddrs bool
}

// searchAddressFields are the header fields whose values are address
// lists: a key on them also matches the parsed addresses.
var searchAddressFields = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "sender": true, "reply-to": true,
}

// searchAddresses renders an address field's addresses without the
// comments, quoting and routes of the raw header, so that SEARCH FROM
// user@domain finds "<user (comment)@ (comment) domain>" as Dovecot does
// (imaptest's search-addresses test).
func searchAddresses(value string) []byte {
	var b []byte
	for _, a := range message.ParseAddressList(value) {
		if a.IsGroupStart() || a.IsGroupEnd() {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		if a.Name != "" {
			b = append(b, a.DecodedName()...)
			b = append(b, ' ')
		}
		b = append(b, '<')
		b = append(b, a.Mailbox...)
		b = append(b, '@')
		b = append(b, a.Host...)
		b = append(b, '>')
	}
	return searchFold(nil, b)
}

// searchParseHeader splits a raw header block into fields: continuation
// lines are joined to their field (line breaks removed, RFC 5322 §2.2.3),
// lines that are no field are skipped.
func searchParseHeader(h []byte) []searchField {
	var out []searchField
	var name string
	var val []byte
	flush := func() {
		if name != "" {
			out = append(out, searchField{name: name, value: mimetext.DecodeHeader(strings.TrimSpace(string(val)))})
		}
		name, val = "", val[:0]
	}
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line = h[:i+1]
		}
		h = h[len(line):]
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				val = append(val, line...)
			}
			continue
		}
		flush()
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		n := bytes.TrimRight(line[:i], " \t")
		if len(n) == 0 {
			continue
		}
		name = string(n)
		val = append(val[:0], line[i+1:]...)
	}
	flush()
	return out
}

// searchScanner looks for several folded needles in a stream of UTF-8
// text, written in chunks of any size: a match may span chunks, never
// parts (reset between them).
type searchScanner struct {
	needles   [][]byte
	found     []bool
	remaining int
	keep      int    // bytes of context kept between chunks: longest needle - 1
	hay       []byte // kept context, then the folded chunk
	carry     []byte // an incomplete UTF-8 sequence at the end of the last chunk
	tmp       []byte
	buf       []byte // copy buffer, reused across parts
}

func newSearchScanner(needles [][]byte) *searchScanner {
	sc := &searchScanner{needles: needles, found: make([]bool, len(needles)), remaining: len(needles)}
	for i, n := range needles {
		sc.keep = max(sc.keep, len(n)-1)
		if len(n) == 0 {
			sc.found[i] = true
			sc.remaining--
		}
	}
	return sc
}

// restart makes the scanner ready for a new message: nothing found yet.
func (sc *searchScanner) restart() {
	sc.remaining = 0
	for i, n := range sc.needles {
		sc.found[i] = len(n) == 0
		if !sc.found[i] {
			sc.remaining++
		}
	}
	sc.reset()
}

// done reports whether every needle was found.
func (sc *searchScanner) done() bool { return sc.remaining == 0 }

// reset starts a new, unrelated text.
func (sc *searchScanner) reset() {
	sc.hay = sc.hay[:0]
	sc.carry = sc.carry[:0]
}

// Write scans a chunk of text. It never fails.
func (sc *searchScanner) Write(p []byte) (int, error) {
	n := len(p)
	if sc.done() {
		return n, nil
	}
	data := p
	if len(sc.carry) > 0 {
		sc.tmp = append(append(sc.tmp[:0], sc.carry...), p...)
		data = sc.tmp
	}
	// Hold back an incomplete rune at the end, for the next chunk.
	cut := len(data)
	for i := len(data) - 1; i >= 0 && i >= len(data)-utf8.UTFMax; i-- {
		if utf8.RuneStart(data[i]) {
			if !utf8.FullRune(data[i:]) {
				cut = i
			}
			break
		}
	}
	sc.hay = searchFold(sc.hay, data[:cut])
	sc.carry = append(sc.carry[:0], data[cut:]...)
	sc.match()
	return n, nil
}

// flush scans what an incomplete final rune left behind.
func (sc *searchScanner) flush() {
	if len(sc.carry) > 0 {
		sc.hay = searchFold(sc.hay, sc.carry)
		sc.carry = sc.carry[:0]
		sc.match()
	}
}

func (sc *searchScanner) match() {
	for i, nd := range sc.needles {
		if !sc.found[i] && bytes.Contains(sc.hay, nd) {
			sc.found[i] = true
			sc.remaining--
		}
	}
	if len(sc.hay) > sc.keep {
		sc.hay = append(sc.hay[:0], sc.hay[len(sc.hay)-sc.keep:]...)
	}
}

// searchScanBody feeds the body text of a message to sc: every text/*
// part (decoded) and the header of every embedded message, each as its own
// text, until every needle is found. The top-level header is not body.
func searchScanBody(root *message.Part, ra io.ReaderAt, size int64, sc *searchScanner) error {
	var walk func(p *message.Part) error
	walk = func(p *message.Part) error {
		if sc.done() {
			return nil
		}
		switch {
		case p.IsMultipart():
			for _, c := range p.Parts {
				if err := walk(c); err != nil {
					return err
				}
			}
		case fetchIsMessage(p) && p.Message != nil:
			m := p.Message
			off, n := fetchClamp(m.HeaderStart, m.BodyStart-m.HeaderStart, size)
			h, err := fetchReadHeader(ra, off, min(n, message.MaxHeaderBytes))
			if err != nil {
				return err
			}
			sc.reset()
			for _, f := range searchParseHeader(h) {
				sc.Write([]byte(f.name + ": " + f.value + "\n"))
			}
			sc.flush()
			return walk(m)
		case p.MediaType == "text":
			off, n := fetchClamp(p.BodyStart, p.End-p.BodyStart, size)
			src := &mimetext.ErrReader{R: io.NewSectionReader(ra, off, n)}
			sc.reset()
			// Malformed content only ends the text early; only a failure to
			// read the file is an error.
			if sc.buf == nil {
				sc.buf = make([]byte, 8192)
			}
			io.CopyBuffer(searchStopWriter{sc}, mimetext.TextReader(p, src), sc.buf)
			sc.flush()
			return src.Err
		}
		return nil
	}
	return walk(root)
}

// errSearchDone stops a copy once every needle is found.
var errSearchDone = errors.New("search: every string found")

// searchStopWriter ends a copy into a scanner that found everything.
type searchStopWriter struct{ sc *searchScanner }

func (w searchStopWriter) Write(p []byte) (int, error) {
	n, _ := w.sc.Write(p)
	if w.sc.done() {
		return n, errSearchDone
	}
	return n, nil
}

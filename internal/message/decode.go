package message

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf8"
)

// DecodeHeader decodes the RFC 2047 encoded words in a raw header value (or a
// display name) for display and search, and returns valid UTF-8. It is best
// effort and never fails: utf-8, us-ascii, iso-8859-1 and windows-1252 are
// converted; words in other charsets, and raw 8-bit bytes that are not UTF-8,
// come out as U+FFFD replacement characters; malformed words are left as
// written. White space between adjacent encoded words is dropped (RFC 2047
// §6.2).
func DecodeHeader(s string) string {
	d := mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return strings.NewReader(toUTF8(charset, b)), nil
	}}
	out, err := d.DecodeHeader(s)
	if err != nil {
		out = s
	}
	return strings.ToValidUTF8(out, "\uFFFD")
}

// toUTF8 converts b from charset to UTF-8 where the charset is one this
// package knows; otherwise it returns b unchanged. An RFC 2231 language suffix
// ("utf-8*en") is ignored.
func toUTF8(charset string, b []byte) string {
	if i := strings.IndexByte(charset, '*'); i >= 0 {
		charset = charset[:i]
	}
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1":
		return decodeSingleByte(b, nil)
	case "windows-1252", "cp1252", "x-cp1252":
		high := cp1252High()
		return decodeSingleByte(b, &high)
	}
	return string(b)
}

// decodeSingleByte decodes ISO 8859-1, or windows-1252 when high gives the
// code points of bytes 0x80-0x9F.
func decodeSingleByte(b []byte, high *[32]rune) string {
	if !hasHighBit(b) {
		return string(b)
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/2)
	for _, c := range b {
		r := rune(c)
		if high != nil && c >= 0x80 && c < 0xa0 {
			r = high[c-0x80]
		}
		if r < utf8.RuneSelf {
			out.WriteByte(byte(r))
		} else {
			out.WriteRune(r)
		}
	}
	return out.String()
}

func hasHighBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// cp1252High maps windows-1252 bytes 0x80-0x9F; unassigned ones are U+FFFD.
// A function rather than a package variable: no global mutable state.
func cp1252High() [32]rune {
	return [32]rune{
		'€', '\uFFFD', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\uFFFD', 'Ž', '\uFFFD',
		'\uFFFD', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\uFFFD', 'ž', 'Ÿ',
	}
}

package imapwire

// Modified UTF-7 (RFC 3501 §5.1.3), the mailbox-name encoding of IMAP4rev1
// clients that have not enabled UTF8=ACCEPT or IMAP4rev2.

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is RFC 2152 base64 with "," instead of "/" and no padding; Strict
// rejects non-zero trailing bits, which canonical encodings never have.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding).Strict()

var errUTF7 = errors.New("imap: invalid modified UTF-7")

// EncodeMailboxUTF7 encodes a UTF-8 mailbox name in modified UTF-7: printable
// ASCII stands for itself ("&" as "&-"), every other run of characters is
// base64 of its UTF-16BE between "&" and "-". Invalid UTF-8 is encoded as
// U+FFFD.
func EncodeMailboxUTF7(name string) string {
	direct := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '&' {
			direct = false
			break
		}
	}
	if direct {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 8)
	var u16 []uint16
	var raw []byte
	for i := 0; i < len(name); {
		c := name[i]
		if 0x20 <= c && c <= 0x7e {
			b.WriteByte(c)
			if c == '&' {
				b.WriteByte('-')
			}
			i++
			continue
		}
		u16 = u16[:0]
		for i < len(name) && (name[i] < 0x20 || name[i] > 0x7e) {
			r, size := utf8.DecodeRuneInString(name[i:])
			u16 = utf16.AppendRune(u16, r)
			i += size
		}
		raw = raw[:0]
		for _, u := range u16 {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
	}
	return b.String()
}

// DecodeMailboxUTF7 decodes a modified UTF-7 mailbox name to UTF-8. It
// accepts only the canonical form EncodeMailboxUTF7 produces, so that every
// mailbox has one spelling: no 8-bit or control bytes, no encoded printable
// ASCII, no empty or adjacent encoded runs, no padding bits, no unpaired
// surrogates.
func DecodeMailboxUTF7(s string) (string, error) { return decodeUTF7(s, false) }

// decodeUTF7 decodes s; with allow8bit, valid UTF-8 outside encoded runs is
// passed through (clients send raw UTF-8 names although they should not).
func decodeUTF7(s string, allow8bit bool) (string, error) {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '&' {
			plain = false
			break
		}
	}
	if plain {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	afterRun := false // the last token was an encoded run
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '&':
			j := strings.IndexByte(s[i+1:], '-')
			if j < 0 {
				return "", errUTF7
			}
			enc := s[i+1 : i+1+j]
			i += j + 2
			if enc == "" {
				b.WriteByte('&')
				afterRun = false
				continue
			}
			if afterRun {
				return "", errUTF7 // "&AOQ-&AOQ-" must be one run
			}
			if err := decodeRun(&b, enc); err != nil {
				return "", err
			}
			afterRun = true
		case 0x20 <= c && c <= 0x7e:
			b.WriteByte(c)
			i++
			afterRun = false
		case c >= 0x80 && allow8bit:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return "", errUTF7
			}
			b.WriteString(s[i : i+size])
			i += size
			afterRun = false
		default:
			return "", errUTF7
		}
	}
	return b.String(), nil
}

// decodeRun decodes one base64 run (between "&" and "-") into b.
func decodeRun(b *strings.Builder, enc string) error {
	// Go's base64 skips CR and LF wherever they are; here they are not
	// base64, and a run must stand for at least one character.
	if strings.ContainsAny(enc, "\r\n") {
		return errUTF7
	}
	raw, err := mutf7.DecodeString(enc)
	if err != nil || len(raw) == 0 || len(raw)%2 != 0 {
		return errUTF7
	}
	for k := 0; k < len(raw); k += 2 {
		u := rune(raw[k])<<8 | rune(raw[k+1])
		switch {
		case utf16.IsSurrogate(u):
			if u >= 0xdc00 || k+3 >= len(raw) {
				return errUTF7
			}
			lo := rune(raw[k+2])<<8 | rune(raw[k+3])
			r := utf16.DecodeRune(u, lo)
			if r == utf8.RuneError {
				return errUTF7
			}
			b.WriteRune(r)
			k += 2
		case 0x20 <= u && u <= 0x7e:
			return errUTF7 // printable ASCII must stand for itself
		default:
			b.WriteRune(u)
		}
	}
	return nil
}

package queue

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errXtext is returned for malformed xtext.
var errXtext = errors.New("malformed xtext")

// EncodeXtext encodes s as RFC 3461 §4 xtext: printable ASCII other than
// "+" and "=" as itself, every other byte as "+" and two uppercase hex
// digits.
func EncodeXtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "+%02X", c)
	}
	return b.String()
}

// DecodeXtext decodes RFC 3461 §4 xtext. Lowercase hex digits are
// accepted (be liberal); characters outside xchar are not.
func DecodeXtext(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", errXtext
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", errXtext
			}
			b.WriteByte(byte(v))
			i += 2
		case c >= '!' && c <= '~' && c != '=':
			b.WriteByte(c)
		default:
			return "", errXtext
		}
	}
	return b.String(), nil
}

// encodeUTF8AddrXtext encodes s as RFC 6533 §3 utf-8-addr-xtext: QCHAR as
// itself, anything else as \x{HEX}.
func encodeUTF8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '!' && r <= '~' && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\x{%X}`, r)
	}
	return b.String()
}

// decodeUTF8AddrXtext decodes RFC 6533 §3 utf-8-addr-xtext and
// utf-8-addr-unitext (which also allows raw UTF-8).
func decodeUTF8AddrXtext(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errXtext
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			rest := s[i:]
			if !strings.HasPrefix(rest, `\x{`) {
				return "", errXtext
			}
			end := strings.IndexByte(rest, '}')
			if end < 4 || end > 9 {
				return "", errXtext
			}
			v, err := strconv.ParseUint(rest[3:end], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) || v < 0x20 {
				return "", errXtext
			}
			b.WriteRune(rune(v))
			i += end + 1
			continue
		case r == '+' || r == '=' || r < '!' || r == 0x7f:
			return "", errXtext
		}
		b.WriteRune(r)
		i += n
	}
	return b.String(), nil
}

// FormatORcpt makes an ORCPT parameter value (RFC 3461 §4.2, RFC 6533 §3)
// from an address type ("rfc822" or "utf-8", any case) and the decoded
// address.
func FormatORcpt(typ, addr string) string {
	if strings.EqualFold(typ, "utf-8") {
		return "utf-8;" + encodeUTF8AddrXtext(addr)
	}
	return "rfc822;" + EncodeXtext(addr)
}

// ParseORcpt splits an ORCPT parameter value "type;xtext" into its address
// type (lowercased) and the decoded address, as a DSN's Original-Recipient
// field wants them (RFC 3464 §2.3.1).
func ParseORcpt(v string) (typ, addr string, err error) {
	t, enc, ok := strings.Cut(v, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	if !ok || t == "" || enc == "" {
		return "", "", fmt.Errorf("ORCPT %q: want type;address", v)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return "", "", fmt.Errorf("ORCPT %q: bad address type", v)
		}
	}
	switch t {
	case "utf-8":
		addr, err = decodeUTF8AddrXtext(enc)
	default:
		addr, err = DecodeXtext(enc)
	}
	if err != nil {
		return "", "", fmt.Errorf("ORCPT %q: %w", v, err)
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f || c >= 0x80 && t != "utf-8" {
			return "", "", fmt.Errorf("ORCPT %q: control or non-ASCII character", v)
		}
	}
	return t, addr, nil
}

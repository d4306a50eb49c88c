package smtpd

import (
	"bytes"
	"strconv"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// The command parsers work on the bytes of a line as read (a slice into the
// connection's read buffer) and allocate only for what the session keeps:
// addresses and parameter values.

// verb is a command (RFC 5321 §4.1 and the extensions we offer).
type verb uint8

const (
	vUnknown verb = iota
	vHELO
	vEHLO
	vMAIL
	vRCPT
	vDATA
	vBDAT
	vRSET
	vNOOP
	vQUIT
	vVRFY
	vHELP
	vSTARTTLS
	vAUTH
	vNotImpl // EXPN, SEND, SOML, SAML, TURN: known, not offered
)

// parseCommand splits a command line, without its line end, into its verb
// and its argument (spaces around it removed). An empty or unknown verb is
// vUnknown.
func parseCommand(line []byte) (verb, []byte) {
	name, arg := line, []byte(nil)
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		name, arg = line[:i], trimSpaces(line[i+1:])
	}
	if len(name) < 4 || len(name) > 8 {
		return vUnknown, arg
	}
	var up [8]byte
	for i, b := range name {
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		up[i] = b
	}
	switch string(up[:len(name)]) {
	case "HELO":
		return vHELO, arg
	case "EHLO":
		return vEHLO, arg
	case "MAIL":
		return vMAIL, arg
	case "RCPT":
		return vRCPT, arg
	case "DATA":
		return vDATA, arg
	case "BDAT":
		return vBDAT, arg
	case "RSET":
		return vRSET, arg
	case "NOOP":
		return vNOOP, arg
	case "QUIT":
		return vQUIT, arg
	case "VRFY":
		return vVRFY, arg
	case "HELP":
		return vHELP, arg
	case "STARTTLS":
		return vSTARTTLS, arg
	case "AUTH":
		return vAUTH, arg
	case "EXPN", "SEND", "SOML", "SAML", "TURN":
		return vNotImpl, arg
	}
	return vUnknown, arg
}

// trimEOL removes the line end (CRLF, or a bare LF) of a line.
func trimEOL(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
	}
	return line
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' }

func trimSpaces(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the upper-case ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// cutPrefixFold removes the upper-case ASCII prefix from b, ignoring case.
func cutPrefixFold(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || !eqFold(b[:len(prefix)], prefix) {
		return b, false
	}
	return b[len(prefix):], true
}

// parsePath parses a path at the start of s: "<" [A-d-l ":"] Mailbox ">"
// (RFC 5321 §4.1.2), or "<>" when reverse. As go-smtp did, the brackets
// may be missing, a source route is skipped, and a quoted local part is
// returned unquoted (received.go quotes it again); the domain is taken as
// it comes, up to a space or ">", for the session to check. It returns the
// address and what follows it.
func parsePath(s []byte, reverse bool) (addr string, rest []byte, ok bool) {
	if reverse && len(s) >= 2 && s[0] == '<' && s[1] == '>' {
		return "", s[2:], true
	}
	bracket := len(s) > 0 && s[0] == '<'
	if bracket {
		s = s[1:]
	}
	if len(s) > 0 && s[0] == '@' {
		i := bytes.IndexByte(s, ':')
		if i < 0 {
			return "", nil, false
		}
		s = s[i+1:]
	}
	addr, s, ok = parseMailbox(s)
	if !ok {
		return "", nil, false
	}
	if bracket {
		if len(s) == 0 || s[0] != '>' {
			return "", nil, false
		}
		s = s[1:]
	}
	return addr, s, true
}

// maxAddrBytes bounds what parseMailbox collects (a command line is
// bounded already; this keeps the scratch buffer on the stack).
const maxAddrBytes = 1024

// parseMailbox parses Local-part "@" Domain at the start of s.
func parseMailbox(s []byte) (string, []byte, bool) {
	var scratch [256]byte
	out := scratch[:0]
	if len(s) > 0 && s[0] == '"' {
		s = s[1:]
		for {
			if len(s) == 0 {
				return "", nil, false
			}
			c := s[0]
			s = s[1:]
			if c == '"' {
				break
			}
			if c == '\\' {
				if len(s) == 0 {
					return "", nil, false
				}
				c, s = s[0], s[1:]
			}
			out = append(out, c)
		}
	} else {
	dotString:
		for len(s) > 0 {
			switch c := s[0]; c {
			case '@':
				break dotString
			case '(', ')', '<', '>', '[', ']', ':', ';', '\\', ',', '"', ' ', '\t':
				return "", nil, false
			default:
				out = append(out, c)
				s = s[1:]
			}
		}
	}
	if len(out) == 0 || len(s) == 0 || s[0] != '@' {
		return "", nil, false
	}
	out = append(out, '@')
	s = s[1:]
	i := 0
	for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '>' {
		i++
	}
	if i == 0 || len(out)+i > maxAddrBytes {
		return "", nil, false
	}
	out = append(out, s[:i]...)
	return string(out), s[i:], true
}

// param is one "keyword[=value]" of MAIL or RCPT.
type param struct {
	key, value []byte
	hasValue   bool
}

// nextParam takes the next parameter from s, which follows the path: each
// parameter is preceded by at least one space (RFC 5321 §4.1.2). ok is
// false on a syntax error; param.key is nil at the end.
func nextParam(s []byte) (p param, rest []byte, ok bool) {
	if len(s) == 0 {
		return param{}, nil, true
	}
	if !isSpace(s[0]) {
		return param{}, nil, false
	}
	s = trimSpaces(s)
	if len(s) == 0 {
		return param{}, nil, true
	}
	i := 0
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	kv := s[:i]
	rest = s[i:]
	key, value, has := bytes.Cut(kv, []byte{'='})
	if len(key) == 0 || (has && (len(value) == 0 || bytes.IndexByte(value, '=') >= 0)) {
		return param{}, nil, false
	}
	for _, c := range key {
		// esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
		if !(c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return param{}, nil, false
		}
	}
	for _, c := range value {
		// esmtp-value = 1*(%d33-60 / %d62-126), and UTF-8 with SMTPUTF8
		if c < 33 || c == 127 {
			return param{}, nil, false
		}
	}
	return param{key: key, value: value, hasValue: has}, rest, true
}

// paramConfig is what the parameter parsers need to know of the server.
type paramConfig struct {
	maxSize    int64
	dsn        bool // RFC 3461 offered
	requireTLS bool // RFC 8689 offered (the session may still refuse it)
}

var (
	errParamSyntax = reply(501, 5, 5, 4, "Syntax error in parameters")
	// errSizeExceeded: RFC 1870 §6.1, for SIZE= at MAIL and for a BDAT
	// chunk that takes the message over the limit.
	errSizeExceeded = reply(552, 5, 3, 4, "Message size exceeds fixed maximum message size")
)

// errUnsupportedParam refuses a MAIL or RCPT parameter that is unknown or
// not offered in this session: RFC 5321 §4.1.1.11, "If the server SMTP
// does not recognize or cannot implement one or more of the parameters
// associated with a particular MAIL FROM or RCPT TO command, it will
// return code 555." Postfix: "555 5.5.4 Unsupported option".
func errUnsupportedParam(name string) *smtp.SMTPError {
	return reply(555, 5, 5, 4, "Unsupported option: "+name)
}

// allDigits reports whether b is a non-empty string of ASCII digits.
func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// parseMailParams parses the parameters after MAIL FROM's path. A
// parameter given twice counts once, the last value winning (as go-smtp
// had it: Python's smtplib, for one, may send SMTPUTF8 twice).
func parseMailParams(s []byte, cfg paramConfig) (*smtp.MailOptions, *smtp.SMTPError) {
	opts := &smtp.MailOptions{}
	for {
		p, rest, ok := nextParam(s)
		if !ok {
			return nil, errParamSyntax
		}
		if p.key == nil {
			return opts, nil
		}
		s = rest
		switch {
		case eqFold(p.key, "SIZE"):
			// RFC 1870 §3: size-value = 1*20DIGIT.
			if !p.hasValue || !allDigits(p.value) || len(p.value) > 20 {
				return nil, reply(501, 5, 5, 4, "Syntax error in SIZE parameter")
			}
			n, err := strconv.ParseUint(string(p.value), 10, 63)
			if err != nil || int64(n) > cfg.maxSize {
				// RFC 1870 §6.1 (a size too large to parse is too
				// large).
				return nil, errSizeExceeded
			}
			opts.Size = int64(n)
		case eqFold(p.key, "BODY"):
			switch {
			case eqFold(p.value, "7BIT"):
				opts.Body = smtp.Body7Bit
			case eqFold(p.value, "8BITMIME"):
				opts.Body = smtp.Body8BitMIME
			default:
				// BINARYMIME (RFC 3030) is not offered; other values are
				// not recognized (RFC 5321 §4.1.1.11; Postfix: 555).
				return nil, errUnsupportedParam("BODY=" + string(p.value))
			}
		case eqFold(p.key, "SMTPUTF8"):
			if p.hasValue {
				return nil, errParamSyntax
			}
			opts.UTF8 = true
		case eqFold(p.key, "REQUIRETLS"):
			if !cfg.requireTLS {
				return nil, errUnsupportedParam("REQUIRETLS")
			}
			if p.hasValue {
				return nil, errParamSyntax
			}
			opts.RequireTLS = true
		case eqFold(p.key, "RET"):
			if !cfg.dsn {
				return nil, errUnsupportedParam("RET")
			}
			switch {
			case eqFold(p.value, "FULL"):
				opts.Return = smtp.DSNReturnFull
			case eqFold(p.value, "HDRS"):
				opts.Return = smtp.DSNReturnHeaders
			default:
				return nil, reply(501, 5, 5, 4, "Unknown RET value")
			}
		case eqFold(p.key, "ENVID"):
			if !cfg.dsn {
				return nil, errUnsupportedParam("ENVID")
			}
			v, ok := decodeXtext(p.value)
			if !ok || len(v) == 0 || len(v) > 100 || !printableASCII(v) {
				return nil, reply(501, 5, 5, 4, "Malformed ENVID parameter value")
			}
			opts.EnvelopeID = string(v)
		case eqFold(p.key, "AUTH"):
			v, ok := decodeXtext(p.value)
			if !ok || len(v) == 0 {
				return nil, reply(501, 5, 5, 4, "Malformed AUTH parameter value")
			}
			var a string
			if string(v) != "<>" {
				addr, rest, ok := parseMailbox(v)
				if !ok || len(rest) != 0 {
					return nil, reply(501, 5, 5, 4, "Malformed AUTH parameter mailbox")
				}
				a = addr
			}
			opts.Auth = &a
		default:
			return nil, errUnsupportedParam(string(p.key))
		}
	}
}

// parseRcptParams parses the parameters after RCPT TO's path.
func parseRcptParams(s []byte, cfg paramConfig) (*smtp.RcptOptions, *smtp.SMTPError) {
	opts := &smtp.RcptOptions{}
	for {
		p, rest, ok := nextParam(s)
		if !ok {
			return nil, errParamSyntax
		}
		if p.key == nil {
			return opts, nil
		}
		s = rest
		switch {
		case eqFold(p.key, "NOTIFY"):
			if !cfg.dsn {
				return nil, errUnsupportedParam("NOTIFY")
			}
			n, ok := parseNotify(p.value)
			if !ok {
				return nil, reply(501, 5, 5, 4, "Malformed NOTIFY parameter value")
			}
			opts.Notify = n
		case eqFold(p.key, "ORCPT"):
			if !cfg.dsn {
				return nil, errUnsupportedParam("ORCPT")
			}
			typ, addr, ok := parseORcpt(p.value)
			if !ok {
				return nil, reply(501, 5, 5, 4, "Malformed ORCPT parameter value")
			}
			opts.OriginalRecipientType, opts.OriginalRecipient = typ, addr
		default:
			return nil, errUnsupportedParam(string(p.key))
		}
	}
}

// parseNotify parses NOTIFY's value (RFC 3461 §4.1): NEVER, or a set of
// SUCCESS, FAILURE, DELAY, each once.
func parseNotify(v []byte) ([]smtp.DSNNotify, bool) {
	var out []smtp.DSNNotify
	var seen uint8
	for _, item := range bytes.Split(v, []byte{','}) {
		var n smtp.DSNNotify
		var bit uint8
		switch {
		case eqFold(item, "NEVER"):
			n, bit = smtp.DSNNotifyNever, 1
		case eqFold(item, "SUCCESS"):
			n, bit = smtp.DSNNotifySuccess, 2
		case eqFold(item, "FAILURE"):
			n, bit = smtp.DSNNotifyFailure, 4
		case eqFold(item, "DELAY"):
			n, bit = smtp.DSNNotifyDelayed, 8
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		out = append(out, n)
	}
	if seen&1 != 0 && seen != 1 {
		return nil, false
	}
	return out, true
}

// parseORcpt parses ORCPT's value, addr-type ";" xtext (RFC 3461 §4.2):
// rfc822 with xtext, utf-8 with RFC 6533's utf-8-addr-xtext or -unitext.
func parseORcpt(v []byte) (smtp.DSNAddressType, string, bool) {
	typ, enc, ok := bytes.Cut(v, []byte{';'})
	if !ok || len(enc) == 0 {
		return "", "", false
	}
	switch {
	case eqFold(typ, "RFC822"):
		a, ok := decodeXtext(enc)
		if !ok || len(a) == 0 || !printableASCII(a) {
			return "", "", false
		}
		return smtp.DSNAddressTypeRFC822, string(a), true
	case eqFold(typ, "UTF-8"):
		a, ok := decodeUTF8AddrXtext(enc)
		if !ok || len(a) == 0 {
			return "", "", false
		}
		return smtp.DSNAddressTypeUTF8, string(a), true
	}
	return "", "", false
}

func printableASCII(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c > '~' {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeXtext decodes RFC 3461 §4 xtext: "+" and two upper-case hex
// digits stand for a byte; other bytes are printable ASCII but "+" and
// "=".
func decodeXtext(v []byte) ([]byte, bool) {
	if bytes.IndexByte(v, '+') < 0 {
		for _, c := range v {
			if c < 33 || c > 126 || c == '=' {
				return nil, false
			}
		}
		return v, true
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '+':
			if i+2 >= len(v) {
				return nil, false
			}
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return nil, false
			}
			out = append(out, hi<<4|lo)
			i += 2
		case c < 33 || c > 126 || c == '=':
			return nil, false
		default:
			out = append(out, c)
		}
	}
	return out, true
}

// decodeUTF8AddrXtext decodes RFC 6533 §3's utf-8-addr-xtext and
// utf-8-addr-unitext: printable ASCII but "+", "=", "\" and controls,
// UTF-8 beyond ASCII, and "\x{HEX}" for any code point.
func decodeUTF8AddrXtext(v []byte) ([]byte, bool) {
	if !utf8.Valid(v) {
		return nil, false
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '\\':
			if i+3 >= len(v) || v[i+1] != 'x' || v[i+2] != '{' {
				return nil, false
			}
			j := bytes.IndexByte(v[i+3:], '}')
			if j < 2 || j > 6 {
				return nil, false
			}
			var r rune
			for _, h := range v[i+3 : i+3+j] {
				d, ok := unhex(h)
				if !ok {
					return nil, false
				}
				r = r<<4 | rune(d)
			}
			if !validHexpoint(r, j) {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 3 + j + 1
		case c < 0x80:
			if c < 33 || c > 126 || c == '+' || c == '=' {
				return nil, false
			}
			out = append(out, c)
			i++
		default:
			_, n := utf8.DecodeRune(v[i:])
			out = append(out, v[i:i+n]...)
			i += n
		}
	}
	return out, true
}

// validHexpoint checks RFC 6533's HEXPOINT: the shortest form of a code
// point that needs escaping.
func validHexpoint(r rune, digits int) bool {
	switch digits {
	case 2:
		return r >= 0x01 && r <= 0x20 || r == 0x2B || r == 0x3D || r == 0x5C || r == 0x7F || r >= 0x80
	case 3:
		return r >= 0x100
	case 4:
		return r >= 0x1000 && (r < 0xD800 || r > 0xDFFF)
	case 5:
		return r >= 0x10000
	case 6:
		return r >= 0x100000 && r <= 0x10FFFF
	}
	return false
}

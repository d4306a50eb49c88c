package message

import (
	"sort"
	"strconv"
	"strings"
)

// The header fields Parse interprets. The MIME fields come first: for body
// parts that are not message roots, only those are collected.
const (
	fContentType = iota
	fContentTransferEncoding
	fContentID
	fContentDescription
	fContentDisposition
	fContentLanguage
	fContentLocation
	fContentMD5
	fDate
	fSubject
	fFrom
	fSender
	fReplyTo
	fTo
	fCc
	fBcc
	fInReplyTo
	fMessageID
	numFields

	firstEnvelopeField = fDate
)

// fieldID returns the index of the interpreted field called name (any case),
// or -1.
func fieldID(name []byte) int {
	var buf [32]byte
	if len(name) > len(buf) {
		return -1
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(name)]) {
	case "content-type":
		return fContentType
	case "content-transfer-encoding":
		return fContentTransferEncoding
	case "content-id":
		return fContentID
	case "content-description":
		return fContentDescription
	case "content-disposition":
		return fContentDisposition
	case "content-language":
		return fContentLanguage
	case "content-location":
		return fContentLocation
	case "content-md5":
		return fContentMD5
	case "date":
		return fDate
	case "subject":
		return fSubject
	case "from":
		return fFrom
	case "sender":
		return fSender
	case "reply-to":
		return fReplyTo
	case "to":
		return fTo
	case "cc":
		return fCc
	case "bcc":
		return fBcc
	case "in-reply-to":
		return fInReplyTo
	case "message-id":
		return fMessageID
	}
	return -1
}

// header holds the interpreted fields of one header block: the first
// occurrence of each, unfolded and trimmed.
type header struct {
	vals [numFields]string
	seen uint32
}

func (h *header) has(id int) bool { return h.seen&(1<<id) != 0 }

// apply sets the MIME fields of part from h and returns the boundary if part
// is a multipart that can be parsed as one.
func (h *header) apply(part *Part, inDigest bool) (boundary string) {
	typ, sub, params, ok := "", "", []Param(nil), false
	if h.has(fContentType) {
		typ, sub, params, ok = parseMediaType(h.vals[fContentType])
	}
	if ok && typ == "multipart" {
		// RFC 2046 §5.1.1: the boundary is mandatory; RFC 2045 §5.2 says to
		// treat a Content-Type we cannot use as the default.
		boundary = strings.TrimRight(lookupParam(params, "boundary"), " \t")
		if boundary == "" || len(boundary) > 1000 {
			ok, boundary = false, ""
		}
	}
	switch {
	case ok:
		part.MediaType, part.MediaSubtype, part.Params = typ, sub, params
	case inDigest:
		// RFC 2046 §5.1.5.
		part.MediaType, part.MediaSubtype = "message", "rfc822"
	default:
		// RFC 2045 §5.2.
		part.MediaType, part.MediaSubtype = "text", "plain"
		part.Params = []Param{{Key: "charset", Value: "us-ascii"}}
	}

	part.Encoding = "7BIT"
	if v := h.vals[fContentTransferEncoding]; v != "" {
		l := lexer{s: v}
		l.skipCFWS()
		if t := l.token(); t != "" {
			part.Encoding = strings.ToUpper(t)
		}
	}
	part.ID = h.vals[fContentID]
	part.Description = h.vals[fContentDescription]
	part.Location = h.vals[fContentLocation]
	part.MD5 = h.vals[fContentMD5]
	if v := h.vals[fContentDisposition]; v != "" {
		l := lexer{s: v}
		l.skipCFWS()
		if t := l.token(); t != "" {
			part.Disposition = strings.ToLower(t)
			part.DispositionParams = parseParams(&l)
		}
	}
	if v := h.vals[fContentLanguage]; v != "" {
		part.Language = parseLanguages(v)
	}
	return boundary
}

// envelope builds the IMAP ENVELOPE from h (RFC 9051 §7.5.2).
func (h *header) envelope() *Envelope {
	e := &Envelope{
		Date:      h.vals[fDate],
		Subject:   h.vals[fSubject],
		From:      ParseAddressList(h.vals[fFrom]),
		Sender:    ParseAddressList(h.vals[fSender]),
		ReplyTo:   ParseAddressList(h.vals[fReplyTo]),
		To:        ParseAddressList(h.vals[fTo]),
		Cc:        ParseAddressList(h.vals[fCc]),
		Bcc:       ParseAddressList(h.vals[fBcc]),
		InReplyTo: h.vals[fInReplyTo],
		MessageID: h.vals[fMessageID],
	}
	// RFC 9051 §7.5.2: absent or empty Sender and Reply-To take From's value.
	if len(e.Sender) == 0 && len(e.From) > 0 {
		e.Sender = append([]Address(nil), e.From...)
	}
	if len(e.ReplyTo) == 0 && len(e.From) > 0 {
		e.ReplyTo = append([]Address(nil), e.From...)
	}
	return e
}

// lexer scans MIME structured header values (RFC 2045 §5.1, RFC 822 CFWS).
type lexer struct {
	s string
	i int
}

func (l *lexer) done() bool { return l.i >= len(l.s) }

func (l *lexer) skipCFWS() {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ' ', '\t', '\r', '\n':
			l.i++
		case '(':
			l.skipComment()
		default:
			return
		}
	}
}

// skipComment skips a possibly nested comment; an unterminated one runs to
// the end.
func (l *lexer) skipComment() {
	depth := 0
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch c {
		case '\\':
			l.i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return
			}
		}
	}
	l.i = len(l.s)
}

// token reads an RFC 2045 token.
func (l *lexer) token() string {
	start := l.i
	for l.i < len(l.s) && isTokenChar(l.s[l.i]) {
		l.i++
	}
	return l.s[start:l.i]
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

// quoted reads a quoted-string starting at the opening quote and returns its
// content with quoted-pairs resolved. An unterminated one runs to the end.
func (l *lexer) quoted() string {
	l.i++ // opening quote
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		l.i++
		switch c {
		case '"':
			return b.String()
		case '\\':
			if l.i < len(l.s) {
				b.WriteByte(l.s[l.i])
				l.i++
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// skipPast advances past the next ';' outside a quoted string, or to the end.
func (l *lexer) skipPast() {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ';':
			l.i++
			return
		case '"':
			l.quoted()
		default:
			l.i++
		}
	}
}

// parseMediaType parses a Content-Type value: type "/" subtype *(";"
// parameter). It is lenient about parameters (see parseParams) but needs a
// valid type and subtype.
func parseMediaType(v string) (typ, sub string, params []Param, ok bool) {
	l := lexer{s: v}
	l.skipCFWS()
	typ = l.token()
	l.skipCFWS()
	if typ == "" || l.done() || l.s[l.i] != '/' {
		return "", "", nil, false
	}
	l.i++
	l.skipCFWS()
	sub = l.token()
	if sub == "" {
		return "", "", nil, false
	}
	return strings.ToLower(typ), strings.ToLower(sub), parseParams(&l), true
}

// rawParam is a parameter as written, before RFC 2231 reassembly.
type rawParam struct{ key, value string }

// parseParams reads parameters up to the end of l. Real-world leniency: a
// missing ';' between parameters, unquoted values containing tspecials (a
// common boundary="----=_Part" mistake; such a value runs to ';' or white
// space), unterminated quotes, and stray garbage, which is skipped up to the
// next ';'.
func parseParams(l *lexer) []Param {
	var raw []rawParam
	for {
		l.skipCFWS()
		if l.done() {
			break
		}
		if l.s[l.i] == ';' {
			l.i++
			continue
		}
		key := l.token()
		if key == "" {
			l.skipPast()
			continue
		}
		l.skipCFWS()
		if l.done() || l.s[l.i] != '=' {
			l.skipPast()
			continue
		}
		l.i++
		l.skipCFWS()
		var val string
		if !l.done() && l.s[l.i] == '"' {
			val = l.quoted()
		} else {
			start := l.i
			for l.i < len(l.s) && !strings.ContainsRune("; \t\r\n", rune(l.s[l.i])) {
				l.i++
			}
			val = l.s[start:l.i]
		}
		raw = append(raw, rawParam{strings.ToLower(key), val})
	}
	return joinParams(raw)
}

// paramSection is one piece of an RFC 2231 parameter.
type paramSection struct {
	n        int
	extended bool
	value    string
}

// joinParams reassembles RFC 2231 continuations and decodes extended values,
// keeping the order in which each parameter first appears. An extended value
// (key*) wins over continuations, which win over a plain value (RFC 2231 §4
// lets senders give both for old readers).
func joinParams(raw []rawParam) []Param {
	if len(raw) == 0 {
		return nil
	}
	type entry struct {
		name     string
		plain    *string
		ext      *string
		sections []paramSection
	}
	var order []*entry
	byName := make(map[string]*entry, len(raw))
	for _, rp := range raw {
		name, n, extended := splitParamKey(rp.key)
		if name == "" {
			continue // "*=x" or "*0=x": no name
		}
		e := byName[name]
		if e == nil {
			e = &entry{name: name}
			byName[name] = e
			order = append(order, e)
		}
		v := rp.value
		switch {
		case n >= 0:
			e.sections = append(e.sections, paramSection{n: n, extended: extended, value: v})
		case extended:
			if e.ext == nil {
				e.ext = &v
			}
		default:
			if e.plain == nil {
				e.plain = &v
			}
		}
	}
	if len(order) == 0 {
		return nil // keep "no parameters" nil, as it is after a JSON round trip
	}
	out := make([]Param, 0, len(order))
	for _, e := range order {
		var v string
		switch {
		case e.ext != nil:
			v = decode2231([]paramSection{{extended: true, value: *e.ext}})
		case len(e.sections) > 0:
			v = decode2231(e.sections)
		default:
			v = *e.plain
		}
		out = append(out, Param{Key: e.name, Value: v})
	}
	return out
}

// splitParamKey splits an RFC 2231 key: "name", "name*", "name*N" or
// "name*N*". n is the section number or -1.
func splitParamKey(key string) (name string, n int, extended bool) {
	n = -1
	if strings.HasSuffix(key, "*") {
		extended = true
		key = key[:len(key)-1]
	}
	if i := strings.LastIndexByte(key, '*'); i > 0 {
		digits := key[i+1:]
		if len(digits) > 0 && len(digits) <= 4 && allDigits(digits) {
			v, _ := strconv.Atoi(digits)
			return key[:i], v, extended
		}
	}
	if extended && strings.IndexByte(key, '*') >= 0 {
		// A malformed section such as "name*x*": keep it as written.
		return key + "*", -1, false
	}
	return key, n, extended
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decode2231 joins sections in numeric order, percent-decoding the extended
// ones; the first extended section carries charset'language' (RFC 2231 §4).
func decode2231(secs []paramSection) string {
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].n < secs[j].n })
	var b []byte
	charset := ""
	for i, s := range secs {
		v := s.value
		if s.extended {
			if i == 0 {
				if q1 := strings.IndexByte(v, '\''); q1 >= 0 {
					if q2 := strings.IndexByte(v[q1+1:], '\''); q2 >= 0 {
						charset = v[:q1]
						v = v[q1+1+q2+1:]
					}
				}
			}
			b = appendPercentDecoded(b, v)
		} else {
			b = append(b, v...)
		}
	}
	return toUTF8(charset, b)
}

func appendPercentDecoded(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// parseLanguages splits a Content-Language value (RFC 3282) into its tags.
func parseLanguages(v string) []string {
	var out []string
	l := lexer{s: v}
	for !l.done() {
		l.skipCFWS()
		start := l.i
		for l.i < len(l.s) && l.s[l.i] != ',' && l.s[l.i] != '(' && l.s[l.i] != ' ' && l.s[l.i] != '\t' {
			l.i++
		}
		if l.i > start {
			out = append(out, l.s[start:l.i])
		}
		l.skipCFWS()
		if !l.done() {
			if l.s[l.i] != ',' && l.s[l.i] != '(' {
				// Garbage between tags: skip to the next comma.
				for !l.done() && l.s[l.i] != ',' {
					l.i++
				}
			}
			if !l.done() && l.s[l.i] == ',' {
				l.i++
			}
		}
	}
	return out
}

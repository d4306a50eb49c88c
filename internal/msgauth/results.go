package msgauth

import (
	"strings"
)

// lineLimit is where composeHeader folds (RFC 5322 §2.1.1: SHOULD be at
// most 78 characters).
const lineLimit = 78

// resinfo is one method's result in an Authentication-Results field (RFC
// 8601 §2.2): method=result, a comment, and ptype.property=value pairs.
type resinfo struct {
	method, result string
	comment        string
	props          []prop
}

type prop struct{ name, value string }

// composeHeader returns the Authentication-Results field for results,
// folded at lineLimit, ending in CRLF; with no results it says "none"
// (RFC 8601 §2.2: no-result).
func composeHeader(authservID string, results []resinfo) string {
	words := []string{quoteValue(authservID)}
	if len(results) == 0 {
		words = append(words, "none")
	}
	for _, r := range results {
		words[len(words)-1] += ";"
		words = append(words, r.method+"="+r.result)
		if c := strings.Fields(r.comment); len(c) > 0 {
			c[0] = "(" + c[0]
			c[len(c)-1] += ")"
			words = append(words, c...)
		}
		for _, p := range r.props {
			words = append(words, p.name+"="+quoteValue(p.value))
		}
	}
	if len(results) == 0 {
		words[0] += ";"
	}
	f := folder{}
	f.b.WriteString("Authentication-Results:")
	f.n = f.b.Len()
	for _, w := range words {
		f.word(w)
	}
	f.b.WriteString("\r\n")
	return f.b.String()
}

// folder writes words separated by a space, folding before a word that
// would pass lineLimit.
type folder struct {
	b strings.Builder
	n int // length of the current line
}

func (f *folder) word(w string) {
	if f.n+1+len(w) > lineLimit && f.n > 1 {
		f.b.WriteString("\r\n\t")
		f.n = 1
		f.b.WriteString(w)
		f.n += len(w)
		return
	}
	f.b.WriteString(" ")
	f.b.WriteString(w)
	f.n += 1 + len(w)
}

// quoteValue returns v as a MIME token when it is one, else as a quoted
// string (RFC 8601 §2.2 value). Domain names and base64 without '/' or '='
// stay bare.
func quoteValue(v string) string {
	ok := v != ""
	for i := 0; i < len(v) && ok; i++ {
		ok = isTokenChar(v[i])
	}
	if ok {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		if c < ' ' || c >= 0x7f {
			c = '?'
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

// commentText makes s safe inside a header comment: printable ASCII
// without parentheses or backslashes, at most 60 characters.
func commentText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 60; i++ {
		c := s[i]
		switch {
		case c == '(' || c == ')' || c == '\\' || c == '"':
			b.WriteByte('\'')
		case c < ' ' || c >= 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

package message

import "strings"

// ParseAddressList parses an address-list header value (RFC 5322 §3.4: From,
// To, Cc and the like) into IMAP ENVELOPE addresses, group markers included
// (see Address). Names are kept raw (quoted strings unquoted, encoded words
// not decoded). It never fails: garbage gives a best-effort result, and what
// is not an address at all is dropped.
//
// net/mail is not used: it always decodes RFC 2047 words in names, flattens
// groups, and rejects much of what real mail carries.
func ParseAddressList(s string) []Address {
	toks := lexAddress(s)
	var out []Address
	inGroup, groupOpen := false, false
	for i := 0; i <= len(toks); {
		// One element: up to a top-level ',' or ';', or a ':' that opens a
		// group. Inside <...> those belong to a route.
		j, angle := i, false
	scan:
		for ; j < len(toks); j++ {
			t := toks[j]
			if t.kind != tokSpecial {
				continue
			}
			switch t.text {
			case "<":
				angle = true
			case ">":
				angle = false
			case ",", ";":
				if !angle {
					break scan
				}
			case ":":
				if !angle && !inGroup {
					break scan
				}
			}
		}
		seg := toks[i:j]
		var sep string
		if j < len(toks) {
			sep = toks[j].text
		}
		switch {
		case sep == ":":
			// RFC 5322 §3.4: group = display-name ":" [group-list] ";"
			inGroup = true
			if name := joinPhrase(seg); name != "" {
				out = append(out, Address{Mailbox: name})
				groupOpen = true
			}
		default:
			if a, ok := parseMailbox(seg); ok {
				out = append(out, a)
			}
			if sep == ";" && inGroup {
				if groupOpen {
					out = append(out, Address{})
				}
				inGroup, groupOpen = false, false
			}
		}
		i = j + 1
	}
	if groupOpen {
		out = append(out, Address{}) // unterminated group
	}
	return out
}

// parseMailbox parses one mailbox (RFC 5322 §3.4): name-addr or addr-spec,
// with obsolete routes and some common garbage.
func parseMailbox(seg []addrToken) (Address, bool) {
	var comment string
	words := make([]addrToken, 0, len(seg))
	for _, t := range seg {
		if t.kind == tokComment {
			if comment == "" {
				comment = t.text
			}
			continue
		}
		words = append(words, t)
	}
	var a Address
	if lt := indexSpecial(words, "<"); lt >= 0 {
		a.Name = joinPhrase(words[:lt])
		inner := words[lt+1:]
		if gt := indexSpecial(inner, ">"); gt >= 0 {
			inner = inner[:gt]
		}
		// RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec.
		if c := indexSpecial(inner, ":"); c >= 0 {
			a.Adl = joinTight(inner[:c])
			inner = inner[c+1:]
		}
		a.Mailbox, a.Host = splitAddrSpec(inner)
	} else {
		at := lastIndexSpecial(words, "@")
		local := words
		if at >= 0 {
			local = words[:at]
			a.Host = joinTight(words[at+1:])
		}
		if at < 0 {
			// Not an address at all ("undisclosed recipients"): keep the
			// words as the mailbox.
			a.Mailbox = joinPhrase(local)
		} else {
			// Words before the local part that are not glued to it ("John
			// Doe john@example.com") are taken as a name.
			k := len(local) - 1
			for k > 0 && (!local[k].space || local[k].isDot() || local[k-1].isDot()) {
				k--
			}
			if k > 0 {
				a.Name = joinPhrase(local[:k])
				local = local[k:]
			}
			a.Mailbox = joinTight(local)
		}
	}
	if a.Mailbox == "" && a.Host == "" && a.Adl == "" && a.Name == "" {
		return Address{}, false // nothing but comments, or "<>"
	}
	if a.Name == "" {
		// RFC 822 style "john@example.com (John Doe)".
		a.Name = comment
	}
	if a.Mailbox == "" {
		a.Mailbox = MissingMailbox
	}
	if a.Host == "" {
		a.Host = MissingDomain
	}
	return a, true
}

// splitAddrSpec splits local-part "@" domain at the last '@'.
func splitAddrSpec(toks []addrToken) (local, domain string) {
	at := lastIndexSpecial(toks, "@")
	if at < 0 {
		return joinTight(toks), ""
	}
	return joinTight(toks[:at]), joinTight(toks[at+1:])
}

type tokKind uint8

const (
	tokAtom    tokKind = iota // atom, or a run of non-special bytes
	tokQuoted                 // quoted-string, content unquoted
	tokLiteral                // domain-literal, brackets kept
	tokComment                // comment, content without the parentheses
	tokSpecial                // one of < > @ , ; : .
)

type addrToken struct {
	kind  tokKind
	text  string
	space bool // preceded by white space or a comment
}

func (t addrToken) isDot() bool { return t.kind == tokSpecial && t.text == "." }

// lexAddress splits an address header value into tokens. It accepts any byte
// sequence: unterminated quotes, comments and literals run to the end, and
// 8-bit bytes are atom text (RFC 6532).
func lexAddress(s string) []addrToken {
	var toks []addrToken
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			space = true
			i++
		case c == '(':
			l := lexer{s: s, i: i}
			l.skipComment()
			text := s[i+1 : l.i]
			text = strings.TrimSuffix(text, ")")
			toks = append(toks, addrToken{kind: tokComment, text: strings.TrimSpace(text)})
			space = true
			i = l.i
		case c == '"':
			l := lexer{s: s, i: i}
			text := l.quoted()
			toks = append(toks, addrToken{kind: tokQuoted, text: text, space: space})
			space = false
			i = l.i
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				end = len(s)
			} else {
				end += i + 1
			}
			toks = append(toks, addrToken{kind: tokLiteral, text: s[i:end], space: space})
			space = false
			i = end
		case strings.IndexByte("<>@,;:.", c) >= 0:
			toks = append(toks, addrToken{kind: tokSpecial, text: s[i : i+1], space: space})
			space = false
			i++
		default:
			// A stray ')' is atom text; every other stop byte starts a token
			// above, so the run is never empty.
			start := i
			i++
			for i < len(s) && strings.IndexByte(" \t\r\n()\"[<>@,;:.", s[i]) < 0 {
				i++
			}
			toks = append(toks, addrToken{kind: tokAtom, text: s[start:i], space: space})
			space = false
		}
	}
	return toks
}

// joinPhrase joins words with single spaces where the header had white space
// ("John Q. Public").
func joinPhrase(toks []addrToken) string {
	var b strings.Builder
	for i, t := range toks {
		if t.kind == tokComment {
			continue
		}
		if i > 0 && t.space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// joinTight joins tokens without white space, as in a local part or domain
// (RFC 5322 obs-local-part allows CFWS around the dots).
func joinTight(toks []addrToken) string {
	var b strings.Builder
	for _, t := range toks {
		if t.kind == tokComment {
			continue
		}
		b.WriteString(t.text)
	}
	return b.String()
}

func indexSpecial(toks []addrToken, s string) int {
	for i, t := range toks {
		if t.kind == tokSpecial && t.text == s {
			return i
		}
	}
	return -1
}

func lastIndexSpecial(toks []addrToken, s string) int {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].kind == tokSpecial && toks[i].text == s {
			return i
		}
	}
	return -1
}

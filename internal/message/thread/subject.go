package thread

// Base subject extraction, RFC 5256 §2.1, shared by SORT SUBJECT and both
// THREAD algorithms.

import (
	"strings"

	"github.com/jodmai/jodmai/internal/message/mimetext"
)

// BaseSubject returns the base subject of a raw Subject header value
// and whether extraction removed a reply or forward marker ("Re:",
// "Fwd:", a "(fwd)" trailer or a "[fwd: ...]" wrapper), which the
// REFERENCES algorithm needs (RFC 5256 §2.1 notes).
func BaseSubject(raw string) (base string, reply bool) {
	// (1) Decode RFC 2047 words, turn tabs and line breaks into spaces and
	// collapse runs of spaces.
	s := mimetext.DecodeHeader(raw)
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' }), " ")
	for {
		// (2) Remove trailers: "(fwd)" and white space, repeatedly.
		for {
			t := strings.TrimRight(s, " \t")
			if len(t) >= 5 && strings.EqualFold(t[len(t)-5:], "(fwd)") {
				t = t[:len(t)-5]
				reply = true
			}
			if t == s {
				break
			}
			s = t
		}
		// (3)-(5) Remove leaders and blobs until none is left.
		for {
			changed := false
			if t, refwd := trimLeader(s); t != s {
				s, changed = t, true
				reply = reply || refwd
			}
			// (4) A leading blob goes if something remains after it.
			if rest, ok := trimBlob(s); ok && rest != "" {
				s, changed = rest, true
			}
			if !changed {
				break
			}
		}
		// (6) "[fwd: ...]" wraps a forwarded subject: unwrap and repeat.
		if len(s) >= 6 && strings.EqualFold(s[:5], "[fwd:") && s[len(s)-1] == ']' {
			s = s[5 : len(s)-1]
			reply = true
			continue
		}
		return s, reply
	}
}

// trimLeader removes one subj-leader from the start of s:
//
//	subj-leader = (*subj-blob subj-refwd) / WSP
//	subj-refwd  = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
//
// and reports whether it was a subj-refwd.
func trimLeader(s string) (string, bool) {
	if s != "" && (s[0] == ' ' || s[0] == '\t') {
		return strings.TrimLeft(s, " \t"), false
	}
	// Blobs may come before the "re:".
	t := s
	for {
		rest, ok := trimBlob(t)
		if !ok {
			break
		}
		t = rest
	}
	var n int
	switch {
	case len(t) >= 3 && strings.EqualFold(t[:3], "fwd"):
		n = 3
	case len(t) >= 2 && (strings.EqualFold(t[:2], "fw") || strings.EqualFold(t[:2], "re")):
		n = 2
	default:
		return s, false
	}
	t = strings.TrimLeft(t[n:], " \t")
	if rest, ok := trimBlob(t); ok {
		t = rest
	}
	if t == "" || t[0] != ':' {
		return s, false
	}
	return t[1:], true
}

// trimBlob removes one subj-blob = "[" *BLOBCHAR "]" *WSP from the
// start of s; BLOBCHAR is anything but "[" and "]".
func trimBlob(s string) (string, bool) {
	if s == "" || s[0] != '[' {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " \t"), true
}

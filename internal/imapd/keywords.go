package imapd

import (
	"strings"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

// Keywords a session may see. RFC 3501 §7.2.6 and RFC 9051 §7.3.5: the
// untagged FLAGS response lists the flags that apply in the mailbox, and a
// client (imaptest checks it) may take a keyword it was never told of for
// a server bug. SELECT announces the keywords in use; a keyword that
// appears later (STORE, COPY or APPEND by any session) is announced with a
// new FLAGS and PERMANENTFLAGS before the first FETCH that shows it, and at
// the next sync even when no FETCH will (the store's KeywordsVersion), so
// that every session of a mailbox lists the same keywords.

// initKeywords records the keywords SELECT announced.
func (sel *selected) initKeywords(kws []string) {
	sel.keywords = kws
	sel.kwKnown = make(map[string]bool, len(kws))
	for _, k := range kws {
		sel.kwKnown[strings.ToLower(k)] = true
	}
}

// announceKeywords writes FLAGS and PERMANENTFLAGS if kws holds keywords
// the session has not announced yet.
func (s *session) announceKeywords(kws []string) {
	sel := s.sel
	if sel == nil || len(kws) == 0 {
		return
	}
	added := false
	for _, k := range kws {
		if !imapwire.IsAtom(k) {
			continue // never written (Encoder.Flags)
		}
		lk := strings.ToLower(k)
		if sel.kwKnown[lk] {
			continue
		}
		if sel.kwKnown == nil {
			sel.kwKnown = map[string]bool{}
		}
		sel.kwKnown[lk] = true
		sel.keywords = append(sel.keywords, k)
		added = true
	}
	if added {
		s.writeFlagsResponses()
	}
}

// writeFlagsResponses writes the untagged FLAGS and PERMANENTFLAGS of the
// selected mailbox.
func (s *session) writeFlagsResponses() {
	e := s.enc
	e.Atom("* FLAGS ").Flags(allSystemFlags, s.sel.keywords).CRLF()
	if s.sel.readOnly {
		e.Atom("* OK [PERMANENTFLAGS ()] read-only mailbox").CRLF()
	} else {
		e.Atom("* OK [PERMANENTFLAGS ").Flags(allSystemFlags, s.sel.keywords, `\*`).Atom("] flags permitted").CRLF()
	}
}

// allSystemFlags are the system flags a client may store.
const allSystemFlags = store.FlagAnswered | store.FlagFlagged | store.FlagDeleted | store.FlagSeen | store.FlagDraft

package imapd

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

// This file: LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258),
// SPECIAL-USE (RFC 6154), LIST-STATUS (RFC 5819), and the IMAP4rev1 LSUB
// (RFC 3501 §6.3.9).
//
// Attributes: \HasChildren or \HasNoChildren always (the CHILDREN return
// option; RFC 9051 §6.3.9.5 lets a server send them unasked), the
// special-use attribute always (clients that never ask for RETURN
// (SPECIAL-USE) rely on it), \Subscribed when the SUBSCRIBED selection or
// return option asks for it. The whole account's mailbox list is read once
// per command: LIST must be fast (RFC 9051 §6.3.9), and one indexed query
// over the mailboxes table is.

// mailboxListEntry is one name a LIST may report.
type mailboxListEntry struct {
	name string
	mb   *store.Mailbox // nil: a level of hierarchy with no mailbox
	// subscribed: the name is subscribed (it may have no mailbox: a
	// deleted mailbox stays subscribed, RFC 9051 §6.3.7).
	subscribed bool
	// children: some mailbox lies below this name.
	children bool
	// meetsBelow: some mailbox below meets the selection criteria;
	// meetsBelowUnlisted: one of those does not match the patterns.
	meetsBelow, meetsBelowUnlisted bool
}

// mailboxListOrder sorts INBOX first, then by name.
func mailboxListOrder(a, b string) int {
	if a == "INBOX" || b == "INBOX" {
		switch {
		case a == b:
			return 0
		case a == "INBOX":
			return -1
		default:
			return 1
		}
	}
	return cmp.Compare(a, b)
}

// mailboxParents calls fn for each proper ancestor of name ("a" and "a/b" for
// "a/b/c").
func mailboxParents(name string, fn func(parent string)) {
	for i := 0; i < len(name); i++ {
		if name[i] == imapwire.Delimiter {
			fn(name[:i])
		}
	}
}

func cmdList(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseList()
	if err != nil {
		return err
	}
	// RFC 9051 §6.3.9: in the basic syntax, an empty pattern asks for the
	// delimiter and the root of the reference, which jodmai's flat
	// namespace gives as "".
	if !c.Extended && len(c.Patterns) == 1 && c.Patterns[0] == "" {
		s.enc.Atom(`* LIST (\Noselect) "/" ""`).CRLF()
		return nil
	}
	return s.listMailboxes(c)
}

// listMailboxes answers a LIST other than the delimiter query.
func (s *session) listMailboxes(c *imapwire.ListCommand) error {
	var patterns []string
	for _, p := range c.Patterns {
		// RFC 9051 §6.3.9: in the extended syntax, empty patterns are
		// ignored.
		if p != "" {
			patterns = append(patterns, imapwire.ListPattern(c.Reference, p))
		}
	}
	if len(patterns) == 0 {
		return nil
	}
	matches := func(name string) bool {
		for _, p := range patterns {
			if imapwire.ListMatch(p, name) {
				return true
			}
		}
		return false
	}
	mbs, err := s.acct.Mailboxes(s.ctx())
	if err != nil {
		return s.serverBug(err)
	}

	// RFC 9051 §6.3.9: selection options are cumulative; SUBSCRIBED
	// implies the SUBSCRIBED return option (§6.3.9.1), and RFC 6154 §3 has
	// SPECIAL-USE do the same for its attributes (which are always sent).
	selSub := c.Select&imapwire.ListSelectSubscribed != 0
	selUse := c.Select&imapwire.ListSelectSpecialUse != 0
	selective := selSub || selUse
	recursive := c.Select&imapwire.ListSelectRecursiveMatch != 0
	retSub := selSub || c.Return&imapwire.ListReturnSubscribed != 0
	meets := func(e *mailboxListEntry) bool {
		if !selSub && e.mb == nil {
			return false
		}
		return (!selSub || e.subscribed) && (!selUse || (e.mb != nil && e.mb.SpecialUse != ""))
	}

	entries := make(map[string]*mailboxListEntry, len(mbs))
	entry := func(name string) *mailboxListEntry {
		e := entries[name]
		if e == nil {
			e = &mailboxListEntry{name: name}
			entries[name] = e
		}
		return e
	}
	for i := range mbs {
		e := entry(mbs[i].Name)
		e.mb = &mbs[i]
		e.subscribed = mbs[i].Subscribed
	}
	if selSub {
		// Subscribed names without a mailbox are listed (\NonExistent)
		// only when the SUBSCRIBED selection asks for them.
		subs, err := s.acct.Subscriptions(s.ctx())
		if err != nil {
			return s.serverBug(err)
		}
		for _, n := range subs {
			entry(n).subscribed = true
		}
	}
	for _, e := range slices.Collect(maps.Values(entries)) {
		if e.mb == nil && !e.subscribed {
			continue
		}
		meet, listed := meets(e), matches(e.name)
		mailboxParents(e.name, func(parent string) {
			p := entry(parent)
			if e.mb != nil {
				p.children = true
			}
			if meet {
				p.meetsBelow = true
				p.meetsBelowUnlisted = p.meetsBelowUnlisted || !listed
			}
		})
	}

	type line struct {
		e         *mailboxListEntry
		attrs     []string
		childInfo bool
		status    bool // meets the criteria and exists: LIST-STATUS applies
	}
	var lines []line
	for _, e := range entries {
		if !matches(e.name) {
			continue
		}
		var l line
		l.e = e
		switch {
		case e.mb == nil && e.subscribed && selSub:
			// RFC 9051 §6.3.9.8 example 5: a subscribed name whose
			// mailbox is gone.
			l.childInfo = recursive && e.meetsBelow
			l.attrs = []string{`\NonExistent`, `\Subscribed`}
		case e.mb == nil:
			// A level of hierarchy with no mailbox of its own: the
			// store does not make these, but names may still be
			// shaped so. RFC 9051 §6.3.9.6 Table 3 and example 10.
			switch {
			case selective && recursive && e.meetsBelowUnlisted:
				l.childInfo = true
				l.attrs = []string{`\NonExistent`}
			case !selective && !mailboxListAnyBelowMatches(e.name, entries, matches):
				l.attrs = []string{`\NonExistent`, `\HasChildren`}
				if !c.Extended && !s.rev2 {
					l.attrs = []string{`\Noselect`, `\HasChildren`}
				}
			default:
				continue
			}
		case !selective || meets(e):
			l.status = true
			// RFC 9051 §6.3.9.6: CHILDINFO when some descendant meets
			// the criteria (examples 7 A1 and 8: also for a listed
			// parent).
			l.childInfo = recursive && e.meetsBelow
			l.attrs = s.mailboxAttrs(e, retSub)
		case recursive && e.meetsBelowUnlisted:
			// RFC 9051 §6.3.9.3 rule 2 and §6.3.9.6: a parent that does
			// not meet the criteria is returned for its descendants, but
			// only when one of them is not listed itself (servers SHOULD
			// suppress redundant CHILDINFO).
			l.childInfo = true
			l.attrs = s.mailboxAttrs(e, retSub)
		default:
			continue
		}
		lines = append(lines, l)
	}
	slices.SortFunc(lines, func(a, b line) int { return mailboxListOrder(a.e.name, b.e.name) })

	var statuses map[int64]store.MailboxStatus
	if c.Return&imapwire.ListReturnStatus != 0 {
		var ids []int64
		for _, l := range lines {
			if l.status {
				ids = append(ids, l.e.mb.ID)
			}
		}
		if len(ids) > 0 {
			if statuses, err = s.acct.Statuses(s.ctx(), ids); err != nil {
				return s.serverBug(err)
			}
		}
	}

	e := s.enc
	for _, l := range lines {
		e.Atom("* LIST (").Atom(strings.Join(l.attrs, " ")).Atom(`) "/" `).Mailbox(l.e.name)
		if l.childInfo {
			e.Atom(` ("CHILDINFO" (`)
			sep := ""
			if selSub {
				e.Atom(`"SUBSCRIBED"`)
				sep = " "
			}
			if selUse {
				e.Atom(sep + `"SPECIAL-USE"`)
			}
			e.Atom("))")
		}
		e.CRLF()
		// RFC 5819 §2: the STATUS follows the mailbox's LIST response;
		// none for a mailbox that does not meet the criteria (RFC 9051
		// §6.3.9.8 example 11) or vanished meanwhile.
		if st, ok := statuses[mailboxEntryID(l.e)]; ok && l.status {
			s.writeMailboxStatus(st, c.Status)
		}
	}
	if c.Return&imapwire.ListReturnStatus != 0 {
		s.condstoreByStatus(c.Status)
	}
	return nil
}

func mailboxEntryID(e *mailboxListEntry) int64 {
	if e.mb == nil {
		return 0
	}
	return e.mb.ID
}

// mailboxListAnyBelowMatches reports whether a name below parent matches the
// patterns (then listing the bare level adds nothing; RFC 9051 §6.3.9.8
// example 10).
func mailboxListAnyBelowMatches(parent string, entries map[string]*mailboxListEntry, matches func(string) bool) bool {
	prefix := parent + string(imapwire.Delimiter)
	for name, e := range entries {
		if e.mb != nil && strings.HasPrefix(name, prefix) && matches(name) {
			return true
		}
	}
	return false
}

// mailboxAttrs are the attributes of an existing mailbox's LIST response.
func (s *session) mailboxAttrs(e *mailboxListEntry, subscribed bool) []string {
	attrs := make([]string, 0, 3)
	if e.children {
		attrs = append(attrs, `\HasChildren`)
	} else {
		attrs = append(attrs, `\HasNoChildren`)
	}
	if subscribed && e.mb.Subscribed {
		attrs = append(attrs, `\Subscribed`)
	}
	if e.mb.SpecialUse != "" {
		attrs = append(attrs, e.mb.SpecialUse)
	}
	return attrs
}

// cmdLsub is the IMAP4rev1 LSUB (RFC 3501 §6.3.9): the subscribed names
// that match. A name matched by a trailing "%" whose descendants are
// subscribed but that is not itself is listed with \Noselect.
func cmdLsub(s *session, tag, name string, uid bool) error {
	if err := s.dec.SP(); err != nil {
		return err
	}
	ref, err := s.dec.ReadReference()
	if err != nil {
		return err
	}
	if err := s.dec.SP(); err != nil {
		return err
	}
	pat, err := s.dec.ReadListMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if pat == "" {
		s.enc.Atom(`* LSUB (\Noselect) "/" ""`).CRLF()
		return nil
	}
	pattern := imapwire.ListPattern(ref, pat)
	mbs, err := s.acct.Mailboxes(s.ctx())
	if err != nil {
		return s.serverBug(err)
	}
	exists := map[string]bool{}
	for _, mb := range mbs {
		exists[mb.Name] = true
	}
	subs, err := s.acct.Subscriptions(s.ctx())
	if err != nil {
		return s.serverBug(err)
	}
	subscribed := map[string]bool{}
	for _, n := range subs {
		subscribed[n] = true
	}
	out := map[string]bool{} // name -> \Noselect
	for name := range subscribed {
		if imapwire.ListMatch(pattern, name) {
			// A subscribed name whose mailbox is gone cannot be
			// selected.
			out[name] = !exists[name]
			continue
		}
		mailboxParents(name, func(parent string) {
			if !subscribed[parent] && imapwire.ListMatch(pattern, parent) {
				out[parent] = true
			}
		})
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	slices.SortFunc(names, mailboxListOrder)
	for _, n := range names {
		if out[n] {
			s.enc.Atom(`* LSUB (\Noselect) "/" `)
		} else {
			s.enc.Atom(`* LSUB () "/" `)
		}
		s.enc.Mailbox(n).CRLF()
	}
	return nil
}

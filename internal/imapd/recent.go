package imapd

import "slices"

// \Recent for IMAP4rev1 sessions (RFC 3501 §2.3.2): the store says which
// messages no session has claimed (store.Account.ClaimRecent); a session
// keeps the UIDs recent to it as ranges. An IMAP4rev2 session (ENABLE
// IMAP4rev2, RFC 9051 dropped \Recent) neither sees nor claims any, so an
// IMAP4rev1 client of the same account still gets them.

// uidRange is the UIDs [lo, hi).
type uidRange struct{ lo, hi uint32 }

// recentExtra is the extra flag of a recent message's FLAGS.
var recentExtra = []string{`\Recent`}

// claimRecent takes in the messages below uidNext that are recent to the
// session, claiming them unless the mailbox is read-only.
func (s *session) claimRecent(uidNext uint32) {
	sel := s.sel
	if s.rev2 || sel == nil {
		return
	}
	lo := s.acct.ClaimRecent(sel.mb, uidNext, !sel.readOnly)
	if lo >= uidNext {
		return
	}
	sel.addRecent(lo, uidNext)
}

// addRecent adds [lo, hi) to the session's recent UIDs.
func (sel *selected) addRecent(lo, hi uint32) {
	rs := append(sel.recent, uidRange{lo, hi})
	slices.SortFunc(rs, func(a, b uidRange) int { return int(int64(a.lo) - int64(b.lo)) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.lo <= last.hi {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	sel.recent = out
}

// isRecent reports whether uid is recent to the session.
func (sel *selected) isRecent(uid uint32) bool { return recentHas(sel.recent, uid) }

// recentHas reports whether uid is in one of rs.
func recentHas(rs []uidRange, uid uint32) bool {
	for _, r := range rs {
		if uid >= r.lo && uid < r.hi {
			return true
		}
	}
	return false
}

// recentCount is the number of messages in the view recent to the
// session.
func (sel *selected) recentCount() uint32 {
	var n int
	for _, r := range sel.recent {
		i, _ := slices.BinarySearch(sel.uids, r.lo)
		j, _ := slices.BinarySearch(sel.uids, r.hi)
		n += j - i
	}
	return uint32(n)
}

// writeRecent writes "* n RECENT" with the session's count.
func (s *session) writeRecent() {
	n := s.sel.recentCount()
	s.sel.recentSent = n
	s.enc.Atom("* ").Number(n).Atom(" RECENT").CRLF()
}

// recentFlag is the extra flag for uid's FLAGS: \Recent if it is recent
// to the session.
func (s *session) recentFlag(uid uint32) []string {
	if s.sel != nil && !s.rev2 && s.sel.isRecent(uid) {
		return recentExtra
	}
	return nil
}

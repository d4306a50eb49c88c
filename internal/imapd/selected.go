package imapd

import (
	"errors"
	"slices"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

// selected is the session's view of its selected mailbox: the UID of each
// message sequence number, and how far it has caught up with the store.
type selected struct {
	mb       store.Mailbox
	readOnly bool
	// uids[seq-1] is the UID of message seq; ascending.
	uids []uint32
	// modseq is the highest MODSEQ whose changes the session has taken in.
	modseq int64
	// pending are UIDs expunged in the store but not yet announced,
	// ascending; they keep their sequence numbers until then (RFC 9051
	// §7.5.1).
	pending []uint32
	// reported holds flag changes this session made itself and already
	// reported (or was asked not to: STORE .SILENT), as UID -> the MODSEQ
	// of that change, so that sync does not announce them again.
	reported map[uint32]int64
	// recent are the UIDs recent to this session (recent.go), ascending
	// and disjoint.
	recent []uidRange
	// recentSent is the RECENT count last sent to the client.
	recentSent uint32
	// keywords are those announced in FLAGS, kwKnown the same lowercased
	// (keywords.go).
	keywords []string
	kwKnown  map[string]bool
	// kwVersion is the store's KeywordsVersion the session last caught
	// up with.
	kwVersion uint64
}

// seqOf returns the sequence number of uid, or 0.
func (sel *selected) seqOf(uid uint32) uint32 {
	i, ok := slices.BinarySearch(sel.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// isPending reports whether uid was expunged elsewhere and is still to be
// announced.
func (sel *selected) isPending(uid uint32) bool {
	_, ok := slices.BinarySearch(sel.pending, uid)
	return ok
}

// lastUID is the highest UID in the view, or 0.
func (sel *selected) lastUID() uint32 {
	if len(sel.uids) == 0 {
		return 0
	}
	return sel.uids[len(sel.uids)-1]
}

// seqSetUIDs resolves a sequence set (message numbers) to UIDs.
func (sel *selected) seqSetUIDs(set imapwire.SeqSet) []uint32 {
	n := uint32(len(sel.uids))
	if n == 0 {
		return nil
	}
	var out []uint32
	for _, r := range set.Resolve(n) {
		if r.Start == 0 || r.Start > n {
			continue
		}
		stop := min(r.Stop, n)
		for seq := r.Start; seq <= stop; seq++ {
			out = append(out, sel.uids[seq-1])
		}
	}
	return out
}

// uidSetUIDs resolves a UID set to the UIDs in the view. "*" is the
// highest UID in the view (RFC 9051 §6.4.8: a range with * includes the
// highest UID even if the other end is above it).
func (sel *selected) uidSetUIDs(set imapwire.SeqSet) []uint32 {
	last := sel.lastUID()
	if last == 0 {
		return nil
	}
	var out []uint32
	for _, r := range set.Resolve(last) {
		lo := r.Start
		hi := min(r.Stop, last)
		i, _ := slices.BinarySearch(sel.uids, lo)
		for ; i < len(sel.uids) && sel.uids[i] <= hi; i++ {
			out = append(out, sel.uids[i])
		}
	}
	return out
}

// resolveSet resolves a message set given as UIDs (uid) or sequence
// numbers, honouring "$" (the saved search result).
func (s *session) resolveSet(set imapwire.SeqSet, uid bool) []uint32 {
	if set.Saved {
		var out []uint32
		for _, u := range s.searchRes {
			if s.sel.seqOf(u) != 0 {
				out = append(out, u)
			}
		}
		return out
	}
	if uid {
		return s.sel.uidSetUIDs(set)
	}
	return s.sel.seqSetUIDs(set)
}

// remove drops uids from the view and returns the sequence numbers they
// had, in the order an EXPUNGE response sequence must use (each number
// valid after the previous ones were removed): descending. It takes time
// linear in the view and uids, so a mass expunge stays cheap.
func (sel *selected) remove(uids []uint32) []uint32 {
	if len(uids) == 0 {
		return nil
	}
	if !slices.IsSorted(uids) {
		uids = slices.Sorted(slices.Values(uids))
	}
	var seqs []uint32
	k := 0
	// A new slice, never the old one changed in place: the view's UIDs
	// may be shared with other sessions (store.Account.View).
	kept := make([]uint32, 0, len(sel.uids))
	for i, u := range sel.uids {
		for k < len(uids) && uids[k] < u {
			k++
		}
		if k < len(uids) && uids[k] == u {
			seqs = append(seqs, uint32(i+1))
			continue
		}
		kept = append(kept, u)
	}
	if len(kept) == len(sel.uids) {
		kept = sel.uids // nothing removed: keep sharing
	}
	sel.uids = kept[:len(kept):len(kept)]
	if len(sel.pending) > 0 {
		sel.pending = slices.DeleteFunc(sel.pending, func(u uint32) bool {
			_, ok := slices.BinarySearch(uids, u)
			return ok
		})
	}
	// Removing the highest first leaves the lower numbers valid.
	slices.Reverse(seqs)
	return seqs
}

// sync brings the view up to date with the store and writes the untagged
// responses for what changed: EXPUNGE (or VANISHED with QRESYNC) when
// allowExpunge, EXISTS for new messages, FETCH FLAGS for flag changes.
func (s *session) sync(allowExpunge bool) error {
	sel := s.sel
	msgs, gone, err := s.acct.Changes(s.ctx(), sel.mb.ID, sel.modseq)
	if errors.Is(err, store.ErrNoMailbox) {
		// Another session deleted the selected mailbox: its messages and
		// UIDs are gone, so the view cannot continue (RFC 2180 §3.2).
		s.enc.Atom("* BYE the selected mailbox was deleted").CRLF()
		s.sel = nil
		s.state = stateLogout
		return nil
	}
	if err != nil {
		return err
	}
	top := sel.modseq
	n := len(sel.pending)
	for _, g := range gone {
		top = max(top, g.ModSeq)
		if sel.seqOf(g.UID) != 0 {
			sel.pending = append(sel.pending, g.UID)
		}
	}
	if len(sel.pending) > n {
		slices.Sort(sel.pending)
		sel.pending = slices.Compact(sel.pending)
	}
	last := sel.lastUID()
	var added []uint32
	var changed []store.Message
	for _, m := range msgs {
		top = max(top, m.ModSeq)
		switch {
		case m.UID > last:
			added = append(added, m.UID)
		case sel.seqOf(m.UID) != 0:
			changed = append(changed, m)
		}
	}
	sel.modseq = top
	if allowExpunge && len(sel.pending) > 0 {
		s.announceExpunged(slices.Clone(sel.pending))
	}
	if len(added) > 0 {
		sel.uids = append(sel.uids, added...)
		s.claimRecent(sel.lastUID() + 1)
		s.enc.Atom("* ").Number(uint32(len(sel.uids))).Atom(" EXISTS").CRLF()
		if !s.rev2 {
			s.writeRecent()
		}
	}
	if !s.rev2 && sel.recentCount() != sel.recentSent {
		// RFC 3501 §7.3.2: RECENT whenever the number changes, expunges
		// included, as Dovecot sends it (imaptest's checkpoints add up
		// the sessions' RECENT counts).
		s.writeRecent()
	}
	// Keywords new to the session, from flag changes or from messages
	// added with keywords (COPY, APPEND), are announced even where no
	// FETCH shows them yet: FLAGS lists what the mailbox uses.
	for _, m := range msgs {
		s.announceKeywords(m.Keywords)
	}
	// And keywords set by another session on messages that have since
	// lost them, or were expunged: every session of the mailbox is told
	// of the same keywords (store.Account.KeywordsVersion).
	if v := s.acct.KeywordsVersion(sel.mb.ID); v != sel.kwVersion {
		sel.kwVersion = v
		kws, err := s.acct.Keywords(s.ctx(), sel.mb.ID)
		if err != nil {
			return err
		}
		s.announceKeywords(kws)
	}
	for _, m := range changed {
		if sel.isPending(m.UID) || (sel.reported != nil && sel.reported[m.UID] == m.ModSeq) {
			continue
		}
		s.writeFlagsFetch(m)
	}
	sel.reported = nil
	return s.enc.Err()
}

// announceExpunged removes uids from the view and tells the client: one
// VANISHED with QRESYNC enabled (RFC 7162 §3.2.10), otherwise an EXPUNGE
// per message.
func (s *session) announceExpunged(uids []uint32) {
	if len(uids) == 0 {
		return
	}
	slices.Sort(uids)
	if s.qresync {
		present := slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool { return s.sel.seqOf(u) == 0 })
		s.sel.remove(uids)
		s.qresyncWriteVanished(false, slices.Compact(present))
		return
	}
	for _, seq := range s.sel.remove(uids) {
		s.enc.Atom("* ").Number(seq).Atom(" EXPUNGE").CRLF()
	}
}

// writeFlagsFetch writes an unsolicited "* n FETCH (UID u FLAGS (...)
// [MODSEQ (m)])" for a message in the view.
func (s *session) writeFlagsFetch(m store.Message) {
	seq := s.sel.seqOf(m.UID)
	if seq == 0 {
		return
	}
	s.enc.Atom("* ").Number(seq).Atom(" FETCH (UID ").Number(m.UID).Atom(" FLAGS ").Flags(m.Flags, m.Keywords, s.recentFlag(m.UID)...)
	if s.condstore {
		s.enc.Atom(" MODSEQ (").Number64(m.ModSeq).Byte(')')
	}
	s.enc.Byte(')').CRLF()
}

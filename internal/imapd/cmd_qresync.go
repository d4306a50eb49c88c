package imapd

import (
	"sort"

	"github.com/jodmai/jodmai/internal/imapwire"
)

// This file: the QRESYNC parameter of SELECT and EXAMINE (RFC 7162
// §3.2.5), and VANISHED responses (§3.2.10).

// qresyncCheck validates the QRESYNC parameter before SELECT acts, so that
// a malformed one is refused with the old mailbox still selected.
func qresyncCheck(q *imapwire.QResync) error {
	// RFC 7162 §3.2.5.2: the two sets of seq-match-data are pairwise, so
	// they must hold as many numbers each.
	if len(q.KnownSeqs.Ranges) > 0 && qresyncCount(q.KnownSeqs) != qresyncCount(q.KnownSeqUIDs) {
		return bad("", "QRESYNC message sequence match data: the sets differ in size")
	}
	return nil
}

// qresyncSelect runs after SELECT's usual responses: when the client's
// UIDVALIDITY is still valid, it reports what changed since the client's
// MODSEQ among the UIDs it knows: "* VANISHED (EARLIER) uids" for messages
// expunged, then "* n FETCH (UID u FLAGS (...) MODSEQ (m))" for messages
// added or changed (RFC 7162 §3.2.5.1). With another UIDVALIDITY the
// client's cache is void and nothing more is sent.
//
// The view s.sel is the snapshot SELECT took; changes after its MODSEQ are
// left to the sync after the command, which reports them against that
// view (a message expunged since the snapshot still has its sequence
// number here and must not be called vanished yet).
func (s *session) qresyncSelect(q *imapwire.QResync) error {
	sel := s.sel
	if q.UIDValidity != sel.mb.UIDValidity {
		return nil
	}
	if q.ModSeq >= sel.modseq {
		return nil // nothing changed since the client last looked
	}
	msgs, gone, err := s.acct.Changes(s.ctx(), sel.mb.ID, q.ModSeq)
	if err != nil {
		return s.serverBug(err)
	}
	// Without known-uids the client is taken to know 1:UIDNEXT-1, which
	// every UID in the snapshot satisfies.
	known := qresyncRanges(q.KnownUIDs)
	// RFC 7162 §3.2.5.2: each matching (sequence number, UID) pair shows
	// the client already knows of every expunge up to that UID.
	floor := s.qresyncSeqMatchFloor(q)
	var vanished []uint32
	for _, g := range gone {
		if g.ModSeq > sel.modseq || g.UID <= floor || !known.contains(g.UID) || sel.seqOf(g.UID) != 0 {
			continue
		}
		vanished = append(vanished, g.UID)
	}
	s.qresyncWriteVanished(true, vanished)
	for _, m := range msgs {
		if m.ModSeq > sel.modseq || !known.contains(m.UID) {
			continue
		}
		s.writeFlagsFetch(m) // with UID and MODSEQ: QRESYNC implies CONDSTORE
	}
	return nil
}

// qresyncSeqMatchFloor returns the highest UID up to which the client's
// seq-match-data agrees with the view: pairs are compared in order and the
// first mismatch ends the walk (RFC 7162 §3.2.5.2). 0 if none matches.
func (s *session) qresyncSeqMatchFloor(q *imapwire.QResync) uint32 {
	if len(q.KnownSeqs.Ranges) == 0 {
		return 0
	}
	seqs, uids := newQresyncIter(q.KnownSeqs), newQresyncIter(q.KnownSeqUIDs)
	var floor, lastSeq uint32
	n := uint32(len(s.sel.uids))
	for {
		seq, ok1 := seqs.next()
		uid, ok2 := uids.next()
		// The sets must ascend; the walk is bounded by the view's size
		// because seq must grow and stay within it.
		if !ok1 || !ok2 || seq <= lastSeq || seq > n || s.sel.uids[seq-1] != uid {
			return floor
		}
		floor, lastSeq = uid, seq
	}
}

// qresyncCount returns how many numbers a static set holds (ranges as
// written, not merged).
func qresyncCount(set imapwire.SeqSet) uint64 {
	var n uint64
	for _, r := range set.Ranges {
		a, b := min(r.Start, r.Stop), max(r.Start, r.Stop)
		n += uint64(b-a) + 1
	}
	return n
}

// qresyncIter walks the numbers of a static set in the order written.
type qresyncIter struct {
	ranges []imapwire.SeqRange
	i      int
	cur    uint32
	fresh  bool
}

func newQresyncIter(set imapwire.SeqSet) *qresyncIter {
	return &qresyncIter{ranges: set.Ranges, fresh: true}
}

func (it *qresyncIter) next() (uint32, bool) {
	for it.i < len(it.ranges) {
		r := it.ranges[it.i]
		a, b := r.Start, r.Stop
		switch {
		case it.fresh:
			it.cur, it.fresh = a, false
			return it.cur, true
		case a <= b && it.cur < b:
			it.cur++
			return it.cur, true
		case a > b && it.cur > b:
			it.cur--
			return it.cur, true
		}
		it.i++
		it.fresh = true
	}
	return 0, false
}

// qresyncUIDRanges is a sorted, merged set of UID ranges; nil means every UID.
type qresyncUIDRanges []imapwire.SeqRange

// qresyncRanges returns the known-uids set as qresyncUIDRanges (nil if not given).
func qresyncRanges(set imapwire.SeqSet) qresyncUIDRanges {
	if len(set.Ranges) == 0 {
		return nil
	}
	return qresyncUIDRanges(set.Resolve(0)) // static: no "*" to resolve
}

func (r qresyncUIDRanges) contains(uid uint32) bool {
	if r == nil {
		return true
	}
	i := sort.Search(len(r), func(i int) bool { return r[i].Stop >= uid })
	return i < len(r) && r[i].Start <= uid
}

// maxVanishedLine bounds the UID set of one VANISHED response, so that a
// mailbox with many scattered expunges does not make a line that clients
// refuse; more responses follow instead (RFC 7162 §3.2.10 lets a server
// split them).
const maxVanishedLine = 8000

// qresyncWriteVanished writes "* VANISHED [(EARLIER) ]uids" for ascending uids,
// as several responses if the set is long.
func (s *session) qresyncWriteVanished(earlier bool, uids []uint32) {
	buf := make([]byte, 0, 256)
	for len(uids) > 0 {
		buf = buf[:0]
		i := 0
		for i < len(uids) && len(buf) < maxVanishedLine {
			j := i
			for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
				j++
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = imapwire.AppendNumSet(buf, uids[i:j+1])
			i = j + 1
		}
		s.enc.Atom("* VANISHED ")
		if earlier {
			s.enc.Atom("(EARLIER) ")
		}
		s.enc.Atom(string(buf)).CRLF()
		uids = uids[i:]
	}
}

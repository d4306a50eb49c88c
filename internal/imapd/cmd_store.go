package imapd

// STORE and UID STORE (RFC 9051 §6.4.6, §6.4.8) with CONDSTORE's
// UNCHANGEDSINCE (RFC 7162 §3.1.3).

import (
	"slices"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

func cmdStore(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseStore()
	if err != nil {
		return err
	}
	if s.sel.readOnly {
		// RFC 9051 §6.3.3: nothing in an EXAMINEd mailbox may change.
		return no("READ-ONLY", "mailbox is read-only")
	}
	if !uid {
		if err := s.fetchCheckSeqSet(c.Seq); err != nil {
			return err
		}
	}
	if c.HasUnchangedSince {
		// RFC 7162 §3.1: STORE with UNCHANGEDSINCE enables CONDSTORE.
		s.fetchEnableCondStore()
	}
	uids := s.resolveSet(c.Seq, uid)
	live := uids
	if n := len(s.sel.pending); n > 0 {
		pending := make(map[uint32]bool, n)
		for _, u := range s.sel.pending {
			pending[u] = true
		}
		live = slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool { return pending[u] })
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	res, err := s.acct.SetFlags(wctx, s.sel.mb.ID, live, store.FlagUpdate{
		Op: c.Op, Flags: c.Flags, Keywords: c.Keywords,
		UnchangedSince: c.UnchangedSince, Conditional: c.HasUnchangedSince,
	})
	if err != nil {
		return s.serverBug(err)
	}

	// Our own changes are reported here (or, with .SILENT, deliberately
	// not); the sync after the command must not repeat them.
	if s.sel.reported == nil {
		s.sel.reported = make(map[uint32]int64, len(res.Changed))
	}
	for _, m := range res.Changed {
		s.sel.reported[m.UID] = m.ModSeq
	}

	switch {
	case !c.Silent:
		// RFC 9051 §6.4.6: the new flags of every message are returned
		// as if fetched.
		all := append(slices.Clone(res.Changed), res.Unchanged...)
		slices.SortFunc(all, func(a, b store.Message) int { return int(int64(a.UID) - int64(b.UID)) })
		for _, m := range all {
			s.announceKeywords(m.Keywords)
		}
		for _, m := range all {
			s.storeWriteFetch(m, true, uid)
		}
	case c.HasUnchangedSince:
		// RFC 7162 §3.1.3: with UNCHANGEDSINCE an untagged FETCH with
		// MODSEQ is sent even for .SILENT, so the client's cache learns
		// the new mod-sequences.
		for _, m := range res.Changed {
			s.storeWriteFetch(m, false, uid)
		}
	}

	done := len(res.Changed) + len(res.Unchanged) + len(res.Modified)
	gone := len(uids) - done
	if len(res.Modified) > 0 || (gone > 0 && c.HasUnchangedSince && !uid) {
		// RFC 7162 §3.1.3: the messages that failed the UNCHANGEDSINCE
		// test, as sequence numbers or UIDs; a sequence-number STORE may
		// list expunged messages there too.
		set := res.Modified
		if !uid {
			set = nil
			for _, u := range res.Modified {
				set = append(set, s.sel.seqOf(u))
			}
			if gone > 0 {
				for _, u := range uids {
					if !storeContains(res, u) {
						set = append(set, s.sel.seqOf(u))
					}
				}
			}
		}
		slices.Sort(set)
		return okCode("MODIFIED "+imapwire.FormatNumSet(set), "conditional STORE failed")
	}
	if gone > 0 && !uid {
		// The others were changed, so the command succeeded as far as it
		// could (RFC 2180 §4.2.1); the code tells the client its view is
		// stale (RFC 5530). A NO here could make a client give up an
		// "empty trash" (STORE \Deleted, then EXPUNGE) half way.
		return okCode("EXPUNGEISSUED", "some of the messages no longer exist")
	}
	return nil
}

// storeContains reports whether u is among the messages SetFlags handled.
func storeContains(res store.FlagResult, u uint32) bool {
	has := func(ms []store.Message) bool {
		_, ok := slices.BinarySearchFunc(ms, u, func(m store.Message, u uint32) int { return int(int64(m.UID) - int64(u)) })
		return ok
	}
	return has(res.Changed) || has(res.Unchanged) || slices.Contains(res.Modified, u)
}

// storeWriteFetch writes the untagged FETCH answering a STORE for m: FLAGS
// unless silent, UID for UID STORE or with CONDSTORE (RFC 7162 §3.1), and
// MODSEQ with CONDSTORE.
func (s *session) storeWriteFetch(m store.Message, flags, uid bool) {
	seq := s.sel.seqOf(m.UID)
	if seq == 0 {
		return
	}
	e := s.enc
	e.Atom("* ").Number(seq).Atom(" FETCH (")
	first := true
	if uid || s.condstore {
		e.Atom("UID ").Number(m.UID)
		first = false
	}
	if flags {
		if !first {
			e.SP()
		}
		e.Atom("FLAGS ").Flags(m.Flags, m.Keywords, s.recentFlag(m.UID)...)
		first = false
	}
	if s.condstore {
		if !first {
			e.SP()
		}
		e.Atom("MODSEQ (").Number64(m.ModSeq).Byte(')')
	}
	e.Byte(')').CRLF()
}

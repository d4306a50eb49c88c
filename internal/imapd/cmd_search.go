package imapd

// SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH (RFC 4731),
// SEARCHRES (RFC 5182) and CONDSTORE's MODSEQ (RFC 7162 §3.1.5); SORT
// (RFC 5256 §3, RFC 5957) and THREAD (RFC 5256 §3). Evaluation is in
// search_eval.go, sort keys in sort_keys.go, base subjects and threading
// in package thread.

import (
	"strings"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/message"
	"github.com/jodmai/jodmai/internal/message/thread"
	"github.com/jodmai/jodmai/internal/store"
)

// searchCharsetOK reports whether a CHARSET argument is one jodmai
// searches in: UTF-8 and its subset US-ASCII (RFC 9051 §6.4.4 requires
// UTF-8).
func searchCharsetOK(cs string) bool {
	switch strings.ToUpper(cs) {
	case "", "UTF-8", "US-ASCII":
		return true
	}
	return false
}

// searchBadCharset is the NO for any other charset, listing the supported
// ones (RFC 9051 §7.1 BADCHARSET).
func searchBadCharset() error {
	return no("BADCHARSET (UTF-8 US-ASCII)", "unsupported charset")
}

// searchMatch prepares and runs a search program, enabling CONDSTORE if it
// uses MODSEQ. The messages found have at least the row fields more.
func (s *session) searchMatch(k *imapwire.SearchKey, more store.RowFields) ([]store.Message, *searchProgram, error) {
	p := s.searchPrepare(k)
	if p.usesModSeq {
		// RFC 7162 §3.1: SEARCH with MODSEQ enables CONDSTORE.
		s.fetchEnableCondStore()
	}
	found, err := s.searchRun(p, more)
	return found, p, err
}

func cmdSearch(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseSearch()
	if err != nil {
		return err
	}
	save := c.Return&imapwire.ReturnSave != 0
	if !searchCharsetOK(c.Charset) {
		if save {
			// RFC 5182 §2.1: a failed SEARCH ... RETURN (SAVE) empties $.
			s.searchRes = nil
		}
		return searchBadCharset()
	}
	found, p, err := s.searchMatch(c.Key, 0)
	if err != nil {
		if save {
			s.searchRes = nil
		}
		return s.serverBug(err)
	}
	s.searchRespond(tag, uid, c, found, p.usesModSeq)
	return s.enc.Err()
}

// searchRespond writes the result of a SEARCH: "* SEARCH" for IMAP4rev1
// without RETURN, ESEARCH otherwise (RFC 4731; RFC 9051 §7.3.4: IMAP4rev2
// always answers ESEARCH), and saves it for "$" when asked (RFC 5182).
func (s *session) searchRespond(tag string, uid bool, c *imapwire.SearchCommand, found []store.Message, modseq bool) {
	nums := make([]uint32, len(found))
	for i, m := range found {
		if uid {
			nums[i] = m.UID
		} else {
			nums[i] = s.sel.seqOf(m.UID)
		}
	}
	ret := c.Return
	if !c.ESearch {
		ret = imapwire.ReturnAll
	}
	// The messages MIN and MAX name, for SAVE and MODSEQ when they are all
	// that is returned (RFC 5182 §2.1, RFC 7162 §3.1.5).
	onlyMinMax := ret&(imapwire.ReturnMin|imapwire.ReturnMax) != 0 && ret&(imapwire.ReturnAll|imapwire.ReturnCount) == 0
	subset := found
	if onlyMinMax && len(found) > 0 {
		subset = nil
		if ret&imapwire.ReturnMin != 0 {
			subset = append(subset, found[0])
		}
		if ret&imapwire.ReturnMax != 0 && (len(subset) == 0 || found[len(found)-1].UID != subset[0].UID) {
			subset = append(subset, found[len(found)-1])
		}
	}
	if ret&imapwire.ReturnSave != 0 {
		s.searchRes = make([]uint32, len(subset))
		for i, m := range subset {
			s.searchRes[i] = m.UID
		}
	}
	var top int64
	for _, m := range subset {
		top = max(top, m.ModSeq)
	}

	e := s.enc
	if !c.ESearch && !s.rev2 {
		e.Atom("* SEARCH")
		for _, n := range nums {
			e.SP().Number(n)
		}
		if modseq && len(found) > 0 {
			// RFC 7162 §3.1.5: the highest MODSEQ of the messages found.
			e.Atom(" (MODSEQ ").Number64(top).Byte(')')
		}
		e.CRLF()
		return
	}
	if ret&^imapwire.ReturnSave == 0 {
		// RFC 5182 §2.1: RETURN (SAVE) alone returns no ESEARCH.
		return
	}
	e.Atom("* ESEARCH (TAG ").String(tag).Byte(')')
	if uid {
		e.Atom(" UID")
	}
	if len(nums) > 0 {
		// RFC 4731 §3.1: MIN, MAX and ALL only for a non-empty result.
		if ret&imapwire.ReturnMin != 0 {
			e.Atom(" MIN ").Number(nums[0])
		}
		if ret&imapwire.ReturnMax != 0 {
			e.Atom(" MAX ").Number(nums[len(nums)-1])
		}
	}
	if ret&imapwire.ReturnCount != 0 {
		e.Atom(" COUNT ").Number(uint32(len(nums)))
	}
	if len(nums) > 0 {
		if ret&imapwire.ReturnAll != 0 {
			e.Atom(" ALL ").NumSet(nums)
		}
		if modseq {
			e.Atom(" MODSEQ ").Number64(top)
		}
	}
	e.CRLF()
}

func cmdSort(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseSort()
	if err != nil {
		return err
	}
	if !searchCharsetOK(c.Charset) {
		return searchBadCharset()
	}
	var more store.RowFields
	for _, cr := range c.Criteria {
		switch cr.Key {
		case imapwire.SortArrival, imapwire.SortDate:
			more |= store.RowDates // DATE falls back to the internal date
		case imapwire.SortSize:
			more |= store.RowSize
		}
	}
	found, p, err := s.searchMatch(c.Key, more)
	if err != nil {
		return s.serverBug(err)
	}
	items, err := s.sortMessages(found, c.Criteria)
	if err != nil {
		return s.serverBug(err)
	}
	e := s.enc
	e.Atom("* SORT")
	var top int64
	for _, it := range items {
		if uid {
			e.SP().Number(it.m.UID)
		} else {
			e.SP().Number(it.seq)
		}
		top = max(top, it.m.ModSeq)
	}
	if p.usesModSeq && len(items) > 0 {
		e.Atom(" (MODSEQ ").Number64(top).Byte(')')
	}
	e.CRLF()
	return e.Err()
}

func cmdThread(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseThread()
	if err != nil {
		return err
	}
	if c.Algorithm != "ORDEREDSUBJECT" && c.Algorithm != "REFERENCES" {
		return bad("", "unsupported threading algorithm %s", c.Algorithm)
	}
	if !searchCharsetOK(c.Charset) {
		return searchBadCharset()
	}
	more := store.RowDates
	if c.Algorithm == "REFERENCES" {
		more |= store.RowBlob // the header is read from the file
	}
	found, _, err := s.searchMatch(c.Key, more)
	if err != nil {
		return s.serverBug(err)
	}
	msgs, err := s.threadInput(found, uid, c.Algorithm == "REFERENCES")
	if err != nil {
		return s.serverBug(err)
	}
	var roots []*thread.Node
	if c.Algorithm == "REFERENCES" {
		roots = thread.References(msgs)
	} else {
		roots = thread.OrderedSubject(msgs)
	}
	e := s.enc
	e.Atom("* THREAD")
	if len(roots) > 0 {
		e.SP()
		e.Atom(string(thread.Append(nil, roots)))
	}
	e.CRLF()
	return e.Err()
}

// threadInput gathers what threading needs of each message: subject and
// date from the stored envelope, and for REFERENCES the Message-ID,
// References and In-Reply-To fields from the header.
func (s *session) threadInput(found []store.Message, uid, refs bool) ([]*thread.Msg, error) {
	out := make([]*thread.Msg, 0, len(found))
	var envs map[int64]*message.Envelope
	if !refs {
		var err error
		if envs, err = s.fetchEnvelopes(found); err != nil {
			return nil, err
		}
	}
	for _, m := range found {
		tm := &thread.Msg{Seq: s.sel.seqOf(m.UID), Num: s.sel.seqOf(m.UID)}
		if uid {
			tm.Num = m.UID
		}
		var subject, date string
		if refs {
			f, err := s.acct.OpenBody(m)
			if searchIsNoMessage(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			h, err := fetchScanHeader(f, message.MaxHeaderBytes)
			f.Close()
			if err != nil {
				return nil, err
			}
			var irt string
			seen := map[string]bool{}
			for _, fl := range searchParseHeader(h) {
				name := strings.ToLower(fl.name)
				if seen[name] {
					continue // the first of each field counts
				}
				seen[name] = true
				switch name {
				case "subject":
					subject = fl.value
				case "date":
					date = fl.value
				case "message-id":
					if ids := thread.ParseIDs(fl.value); len(ids) > 0 {
						tm.MsgID = ids[0]
					}
				case "references":
					tm.Refs = thread.ParseIDs(fl.value)
				case "in-reply-to":
					irt = fl.value
				}
			}
			// RFC 5256 §3: without usable References, the first message id
			// of In-Reply-To is the only reference.
			if len(tm.Refs) == 0 {
				if ids := thread.ParseIDs(irt); len(ids) > 0 {
					tm.Refs = ids[:1]
				}
			}
		} else if env := envs[m.ID]; env != nil {
			subject, date = env.Subject, env.Date
		}
		var base string
		base, tm.Reply = thread.BaseSubject(subject)
		tm.Base = sortUpperASCII(base)
		tm.Sent = m.InternalDate
		if t, ok := searchParseDate(date); ok {
			tm.Sent = t
		}
		out = append(out, tm)
	}
	return out, nil
}

package imapd

import (
	"errors"

	"github.com/jodmai/jodmai/internal/store"
)

// This file: SELECT, EXAMINE, CLOSE, UNSELECT (RFC 9051 §6.3.2, §6.3.3,
// §6.4.1, §6.4.2) and the CONDSTORE/QRESYNC select parameters (RFC 7162).

func cmdSelect(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseSelect()
	if err != nil {
		return err
	}
	if c.QResync != nil {
		// RFC 7162 §3.2.5: BAD unless the client enabled QRESYNC.
		if !s.qresync {
			return bad("", "QRESYNC parameter without ENABLE QRESYNC")
		}
		if err := qresyncCheck(c.QResync); err != nil {
			return err
		}
	}
	readOnly := name == "EXAMINE"
	if s.sel != nil {
		// RFC 7162 §3.2.11 / RFC 9051 §6.3.2: the old mailbox is closed
		// (without expunging) and the client is told.
		s.sel = nil
		s.state = stateAuth
		if s.qresync || s.rev2 {
			s.enc.Atom("* OK [CLOSED] previous mailbox closed").CRLF()
		}
	}
	mb, uids, firstUnseen, err := s.acct.View(s.ctx(), c.Mailbox)
	if errors.Is(err, store.ErrNoMailbox) {
		return no("NONEXISTENT", "no such mailbox")
	}
	if err != nil {
		return s.serverBug(err)
	}
	if c.CondStore {
		s.condstore = true
	}
	sel := &selected{mb: mb, readOnly: readOnly, modseq: mb.HighestModSeq, uids: uids}
	sel.kwVersion = s.acct.KeywordsVersion(mb.ID)
	kws, err := s.acct.Keywords(s.ctx(), mb.ID)
	if err != nil {
		return s.serverBug(err)
	}
	sel.initKeywords(kws)
	s.sel = sel
	s.state = stateSelected
	s.searchRes = nil
	s.claimRecent(mb.UIDNext)

	e := s.enc
	e.Atom("* ").Number(uint32(len(sel.uids))).Atom(" EXISTS").CRLF()
	if !s.rev2 {
		s.writeRecent()
		if firstUnseen > 0 {
			e.Atom("* OK [UNSEEN ").Number(firstUnseen).Atom("] first unseen message").CRLF()
		}
	}
	s.writeFlagsResponses()
	e.Atom("* OK [UIDVALIDITY ").Number(mb.UIDValidity).Atom("] UIDs valid").CRLF()
	e.Atom("* OK [UIDNEXT ").Number(mb.UIDNext).Atom("] predicted next UID").CRLF()
	if s.condstore {
		e.Atom("* OK [HIGHESTMODSEQ ").Number64(mb.HighestModSeq).Atom("] highest").CRLF()
	}
	e.Atom("* OK [MAILBOXID (").Atom(mailboxID(mb)).Atom(")] mailbox id").CRLF()
	if s.rev2 {
		e.Atom("* LIST (").Atom(specialUseAttr(mb)).Atom(`) "/" `).Mailbox(mb.Name).CRLF()
	}
	if c.QResync != nil {
		if err := s.qresyncSelect(c.QResync); err != nil {
			return err
		}
	}
	if readOnly {
		return okCode("READ-ONLY", "%s completed", name)
	}
	return okCode("READ-WRITE", "%s completed", name)
}

// mailboxID is the RFC 8474 MAILBOXID: stable across renames, never reused
// (UIDVALIDITY values are unique per account).
func mailboxID(mb store.Mailbox) string {
	return "F" + formatHex(uint64(mb.UIDValidity)) + formatHex(uint64(mb.ID))
}

func formatHex(v uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

func specialUseAttr(mb store.Mailbox) string { return mb.SpecialUse }

// cmdClose is CLOSE: expunge \Deleted messages silently (unless read-only)
// and leave the selected state.
func cmdClose(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	sel := s.sel
	s.sel = nil
	s.state = stateAuth
	s.searchRes = nil // RFC 5182 §2.1: "$" refers to the selected mailbox
	if sel.readOnly {
		return nil
	}
	msgs, err := s.acct.MessagesByUID(s.ctx(), sel.mb.ID, sel.uids)
	if err != nil {
		return s.serverBug(err)
	}
	var del []uint32
	for _, m := range msgs {
		if m.Flags&store.FlagDeleted != 0 {
			del = append(del, m.UID)
		}
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	if _, err := s.acct.Expunge(wctx, sel.mb.ID, del); err != nil {
		return s.serverBug(err)
	}
	return nil
}

// cmdUnselect is RFC 3691 UNSELECT: leave without expunging.
func cmdUnselect(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	s.sel = nil
	s.state = stateAuth
	s.searchRes = nil
	return nil
}

package imapd

import (
	"errors"
	"strconv"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

// This file: COPY and UID COPY (RFC 9051 §6.4.7, §6.4.9), MOVE and UID MOVE
// (RFC 6851), with UIDPLUS COPYUID (RFC 4315 §3).
//
// The store copies (and for MOVE expunges) in one transaction, sharing the
// bodies. Other sessions learn of the new messages (EXISTS) and, for MOVE,
// of the removed ones (EXPUNGE or VANISHED) through the usual sync.

func cmdCopy(s *session, tag, name string, uid bool) error { return s.copyMessages(name, uid, false) }

func cmdMove(s *session, tag, name string, uid bool) error { return s.copyMessages(name, uid, true) }

// copyCheckSeqNumbers refuses message sequence numbers beyond the mailbox
// (RFC 9051 §9: a seq-number must be a valid message number). "*" and "$"
// never are.
func (s *session) copyCheckSeqNumbers(set imapwire.SeqSet) error {
	n := uint32(len(s.sel.uids))
	for _, r := range set.Ranges {
		if r.Start > n || r.Stop > n {
			return bad("", "invalid message sequence number")
		}
	}
	return nil
}

func (s *session) copyMessages(name string, uid, move bool) error {
	if err := s.dec.SP(); err != nil {
		return err
	}
	set, err := s.dec.ReadSeqSet()
	if err != nil {
		return err
	}
	if err := s.dec.SP(); err != nil {
		return err
	}
	dest, err := s.dec.ReadMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if !uid {
		if err := s.copyCheckSeqNumbers(set); err != nil {
			return err
		}
	}
	if move && s.sel.readOnly {
		return no("READ-ONLY", "mailbox is read-only; MOVE would expunge from it")
	}
	uids := s.resolveSet(set, uid)
	for _, u := range uids {
		// Expunged by another session, not yet announced: the client
		// still sees it, but it is gone (RFC 5530 EXPUNGEISSUED). Copying
		// the others would leave the client guessing.
		if s.sel.isPending(u) {
			return no("EXPUNGEISSUED", "some of the messages were expunged meanwhile")
		}
	}
	// RFC 9051 §6.4.7: a missing target is not created; NO [TRYCREATE].
	if _, err := s.acct.Mailbox(s.ctx(), dest); errors.Is(err, store.ErrNoMailbox) {
		return no("TRYCREATE", "no such mailbox")
	} else if err != nil {
		return s.serverBug(err)
	}
	if len(uids) == 0 {
		// RFC 9051 §6.4.9: a UID set matching nothing is not an error.
		return nil
	}
	if !move {
		// A copy adds its size to the account's usage; a move within
		// the account does not.
		room, err := s.quotaRoom()
		if err != nil {
			return s.serverBug(err)
		}
		if room >= 0 {
			msgs, err := s.acct.MessagesByUID(s.ctx(), s.sel.mb.ID, uids)
			if err != nil {
				return s.serverBug(err)
			}
			var size int64
			for _, m := range msgs {
				size += m.Size
			}
			if size > room {
				return no("OVERQUOTA", "storage quota exceeded")
			}
		}
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	res, err := s.acct.Copy(wctx, s.sel.mb.ID, uids, dest, move)
	if errors.Is(err, store.ErrNoMailbox) {
		return no("TRYCREATE", "no such mailbox")
	}
	if err != nil {
		return s.serverBug(err)
	}
	code := ""
	if len(res.Source) > 0 {
		// RFC 4315 §3: source and destination sets pair up in order; the
		// store returns both ascending.
		code = "COPYUID " + strconv.FormatUint(uint64(res.UIDValidity), 10) + " " + imapwire.FormatNumSet(res.Source) + " " + imapwire.FormatNumSet(res.Dest)
	}
	if !move {
		if code == "" {
			return nil
		}
		return okCode(code, "COPY completed")
	}
	// RFC 6851 §4.3: with UIDPLUS, COPYUID goes in an untagged OK before
	// the EXPUNGE (or VANISHED) responses, which MOVE sends even in its
	// non-UID form.
	if code != "" {
		s.enc.Atom("* OK [").Atom(code).Atom("] moved").CRLF()
	}
	s.announceExpunged(append([]uint32(nil), res.Source...))
	return nil
}

package imapd

import (
	"strconv"

	"github.com/jodmai/jodmai/internal/imapwire"
)

// This file: EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1,
// RFC 9051 §6.4.9).

// cmdExpunge removes the selected mailbox's messages flagged \Deleted (for
// UID EXPUNGE, only those in the UID set) and announces them with EXPUNGE,
// or VANISHED with QRESYNC. Only messages the session knows are removed:
// one delivered meanwhile and not yet announced stays, so no EXPUNGE names
// a message the client never saw.
func cmdExpunge(s *session, tag, name string, uid bool) error {
	var set imapwire.SeqSet
	if uid {
		if err := s.dec.SP(); err != nil {
			return err
		}
		var err error
		if set, err = s.dec.ReadSeqSet(); err != nil {
			return err
		}
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if s.sel.readOnly {
		return no("READ-ONLY", "mailbox is read-only")
	}
	sel := s.sel
	keep := func(u uint32) bool { return sel.seqOf(u) != 0 && !sel.isPending(u) }
	if uid {
		var in map[uint32]bool
		if set.Saved {
			in = map[uint32]bool{}
			for _, u := range s.resolveSet(set, true) {
				in[u] = true
			}
		}
		last := sel.lastUID()
		keep = func(u uint32) bool {
			if sel.seqOf(u) == 0 || sel.isPending(u) {
				return false
			}
			if in != nil {
				return in[u]
			}
			return set.Contains(u, last)
		}
	}
	wctx, cancel := s.writeCtx()
	defer cancel()
	removed, highest, err := s.acct.ExpungeDeleted(wctx, sel.mb.ID, sel.lastUID(), keep)
	if err != nil {
		return s.serverBug(err)
	}
	s.announceExpunged(removed)
	// RFC 7162 §3.2.7 and §3.2.9: with QRESYNC the completion carries the
	// mailbox's new HIGHESTMODSEQ; CONDSTORE clients understand it too.
	// Changes of other sessions up to it are announced by the sync that
	// runs before the tagged reply.
	if s.condstore {
		return okCode("HIGHESTMODSEQ "+strconv.FormatInt(highest, 10), "%s completed", mailboxCmdName(uid, name))
	}
	return nil
}

func mailboxCmdName(uid bool, name string) string {
	if uid {
		return "UID " + name
	}
	return name
}

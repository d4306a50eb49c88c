package imapd

import (
	"errors"
	"strings"

	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/store"
)

// This file: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, NAMESPACE and
// STATUS (RFC 9051 §6.3.4-§6.3.8, §6.3.10, §6.3.11) with CREATE-SPECIAL-USE
// (RFC 6154), STATUS=SIZE (RFC 8438), OBJECTID (RFC 8474) and DELETED-STORAGE
// (RFC 9208). LIST and LSUB are in cmd_list.go.
//
// Mailboxes live in one personal namespace with "/" as the delimiter and no
// prefix. The store keeps every level of a hierarchy as a real mailbox
// (CREATE and RENAME create missing parents, DELETE refuses a parent), and a
// subscription is a property of an existing mailbox.

// mailboxCreatableUses are the special-use attributes a mailbox can carry.
// \All and \Flagged are virtual mailboxes jodmai does not have.
var mailboxCreatableUses = []string{`\Archive`, `\Drafts`, `\Junk`, `\Sent`, `\Trash`}

// mailboxCheckNewName refuses names the store would take but that cannot be
// used well over IMAP: "%" and "*" are LIST wildcards, so a client could
// never list such a name on its own (RFC 3501 §5.1: SHOULD NOT be used).
func mailboxCheckNewName(name string) error {
	if strings.ContainsAny(name, "%*") {
		return no("CANNOT", "mailbox names may not contain %% or *")
	}
	if store.CheckMailboxName(name) != nil {
		return no("CANNOT", "invalid mailbox name")
	}
	return nil
}

// mailboxTrimDelimiter drops one trailing hierarchy delimiter: RFC 9051
// §6.3.4 ("the name created is without the trailing hierarchy
// delimiter"); clients send it on other commands too.
func mailboxTrimDelimiter(name string) string {
	if len(name) > 1 {
		return strings.TrimSuffix(name, string(imapwire.Delimiter))
	}
	return name
}

// cmdCreate is CREATE (RFC 9051 §6.3.4) with the USE parameter of
// CREATE-SPECIAL-USE (RFC 6154 §3).
func cmdCreate(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseCreate()
	if err != nil {
		return err
	}
	mb := mailboxTrimDelimiter(c.Mailbox)
	// RFC 9051 §6.3.4: it is an error to create INBOX, which always
	// exists (the decoder spells it in upper case whatever the client did).
	if mb == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := mailboxCheckNewName(mb); err != nil {
		return err
	}
	use := ""
	switch len(c.SpecialUse) {
	case 0:
	case 1:
		use = c.SpecialUse[0]
		found := false
		for _, u := range mailboxCreatableUses {
			found = found || u == use
		}
		// RFC 6154 §3: refuse the whole CREATE, with USEATTR.
		if !found {
			return no("USEATTR", "special use %s is not supported", use)
		}
	default:
		return no("USEATTR", "a mailbox can have only one special use")
	}
	_, err = s.acct.CreateMailbox(s.ctx(), mb, use)
	switch {
	case errors.Is(err, store.ErrMailboxExists):
		return no("ALREADYEXISTS", "mailbox already exists")
	case errors.Is(err, store.ErrBadName):
		return no("CANNOT", "invalid mailbox name")
	case err != nil:
		return s.serverBug(err)
	}
	return nil
}

// cmdDelete is DELETE (RFC 9051 §6.3.5).
func cmdDelete(s *session, tag, name string, uid bool) error {
	mbName, err := s.dec.SPMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	mbName = mailboxTrimDelimiter(mbName)
	if mbName == "INBOX" {
		return no("CANNOT", "INBOX cannot be deleted")
	}
	mb, err := s.acct.Mailbox(s.ctx(), mbName)
	if errors.Is(err, store.ErrNoMailbox) {
		return no("NONEXISTENT", "no such mailbox")
	}
	if err != nil {
		return s.serverBug(err)
	}
	err = s.acct.DeleteMailbox(s.ctx(), mbName)
	switch {
	case errors.Is(err, store.ErrNoMailbox):
		return no("NONEXISTENT", "no such mailbox")
	case errors.Is(err, store.ErrHasChildren):
		// RFC 9051 §6.3.5: a server that does not delete a name with
		// inferiors SHOULD say NO [HASCHILDREN].
		return no("HASCHILDREN", "mailbox has child mailboxes; delete or move them first")
	case errors.Is(err, store.ErrInboxOp):
		return no("CANNOT", "INBOX cannot be deleted")
	case err != nil:
		return s.serverBug(err)
	}
	if s.sel != nil && s.sel.mb.ID == mb.ID {
		// The selected mailbox is gone and IMAP has no way back to the
		// authenticated state without a command from the client: finish
		// the command, then end the session (as Dovecot does; RFC 2180
		// §3.2 describes the same for other sessions).
		s.sel = nil
		s.state = stateAuth
		s.tagged(tag, &status{kind: "OK", text: "DELETE completed"})
		s.bye("selected mailbox was deleted; please reconnect")
		return errAlreadyAnswered
	}
	return nil
}

// cmdRename is RENAME (RFC 9051 §6.3.6). UIDs and UIDVALIDITY survive, for
// the mailbox and its children; renaming INBOX moves its messages into a new
// mailbox and leaves INBOX empty (the store does both).
func cmdRename(s *session, tag, name string, uid bool) error {
	from, err := s.dec.SPMailbox()
	if err != nil {
		return err
	}
	to, err := s.dec.SPMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	from, to = mailboxTrimDelimiter(from), mailboxTrimDelimiter(to)
	if to == "INBOX" {
		return no("ALREADYEXISTS", "INBOX always exists")
	}
	if err := mailboxCheckNewName(to); err != nil {
		return err
	}
	err = s.acct.RenameMailbox(s.ctx(), from, to)
	switch {
	case errors.Is(err, store.ErrNoMailbox):
		return no("NONEXISTENT", "no such mailbox")
	case errors.Is(err, store.ErrMailboxExists):
		return no("ALREADYEXISTS", "a mailbox with the new name already exists")
	case errors.Is(err, store.ErrBadName):
		return no("CANNOT", "cannot rename a mailbox to that name")
	case err != nil:
		return s.serverBug(err)
	}
	return nil
}

// cmdSubscribe is SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7, §6.3.8).
// Subscribing to a mailbox that does not exist is refused (allowed: "A
// server MAY validate the mailbox argument"); unsubscribing from one is OK,
// since it is not subscribed.
func cmdSubscribe(s *session, tag, name string, uid bool) error {
	mbName, err := s.dec.SPMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	on := name == "SUBSCRIBE"
	err = s.acct.SetSubscribed(s.ctx(), mailboxTrimDelimiter(mbName), on)
	switch {
	case errors.Is(err, store.ErrNoMailbox):
		if on {
			return no("NONEXISTENT", "no such mailbox")
		}
	case err != nil:
		return s.serverBug(err)
	}
	return nil
}

// cmdNamespace is NAMESPACE (RFC 9051 §6.3.10, RFC 2342): one personal
// namespace without prefix.
func cmdNamespace(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	s.enc.Atom(`* NAMESPACE (("" "/")) NIL NIL`).CRLF()
	return nil
}

// cmdStatus is STATUS (RFC 9051 §6.3.11). The selected mailbox may be
// asked for too; the numbers are the store's, which sessions catch up with
// through the usual EXISTS/EXPUNGE updates.
func cmdStatus(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseStatus()
	if err != nil {
		return err
	}
	st, err := s.acct.Status(s.ctx(), c.Mailbox)
	if errors.Is(err, store.ErrNoMailbox) {
		return no("NONEXISTENT", "no such mailbox")
	}
	if err != nil {
		return s.serverBug(err)
	}
	s.writeMailboxStatus(st, c.Items)
	s.condstoreByStatus(c.Items)
	return nil
}

// writeMailboxStatus writes "* STATUS mailbox (item value ...)" with the items
// in the order asked.
func (s *session) writeMailboxStatus(st store.MailboxStatus, items []imapwire.StatusItem) {
	e := s.enc
	e.Atom("* STATUS ").Mailbox(st.Name).Atom(" (")
	for i, it := range items {
		if i > 0 {
			e.SP()
		}
		e.Atom(it.String()).SP()
		switch it {
		case imapwire.StatusMessages:
			e.Number64(st.Messages)
		case imapwire.StatusUIDNext:
			e.Number(st.UIDNext)
		case imapwire.StatusUIDValidity:
			e.Number(st.UIDValidity)
		case imapwire.StatusUnseen:
			e.Number64(st.Unseen)
		case imapwire.StatusDeleted:
			e.Number64(st.Deleted)
		case imapwire.StatusSize:
			e.Number64(st.Size)
		case imapwire.StatusRecent:
			// RFC 3501 §6.3.10: messages no session has claimed.
			n, err := s.acct.RecentCount(s.ctx(), st.Mailbox)
			if err != nil {
				s.log.Warn("status recent", "account", s.user.Address, "err", err)
			}
			e.Number64(n)
		case imapwire.StatusHighestModSeq:
			e.Number64(st.HighestModSeq)
		case imapwire.StatusAppendLimit:
			e.Number64(s.lim.appendLimit())
		case imapwire.StatusMailboxID:
			e.Byte('(').Atom(mailboxID(st.Mailbox)).Byte(')')
		case imapwire.StatusDeletedStorage:
			e.Number64(st.DeletedSize)
		}
	}
	e.Byte(')').CRLF()
}

// condstoreByStatus makes a STATUS (or LIST-STATUS) asking for
// HIGHESTMODSEQ enable CONDSTORE (RFC 7162 §3.1: a CONDSTORE enabling
// command). When that happens with a mailbox selected, the client learns
// the mailbox's HIGHESTMODSEQ, as SELECT (CONDSTORE) would have told it.
func (s *session) condstoreByStatus(items []imapwire.StatusItem) {
	if s.condstore {
		return
	}
	for _, it := range items {
		if it == imapwire.StatusHighestModSeq {
			s.condstore = true
			if s.sel != nil {
				s.enc.Atom("* OK [HIGHESTMODSEQ ").Number64(s.sel.modseq).Atom("] highest").CRLF()
			}
			return
		}
	}
}

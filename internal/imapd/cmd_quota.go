package imapd

import (
	"errors"

	"github.com/jodmai/jodmai/internal/store"
)

// This file: QUOTA (RFC 9208) with the STORAGE resource (QUOTA=RES-STORAGE).
//
// An account has at most one limit, its storage quota in the directory
// (userdb.Account.QuotaBytes, set by "jodmai user quota"), over one quota
// root named "" that holds every mailbox. Usage is the sum of the sizes of
// the account's messages, \Deleted ones included until expunged; a copy
// counts again (RFC 9208 §5.1: the sum of RFC822.SIZE). APPEND and COPY
// refuse what would exceed the limit with NO [OVERQUOTA].
//
// An account without a limit has no quota root: GETQUOTAROOT answers
// "* QUOTAROOT mailbox" with no root and GETQUOTA "" is NO. Dovecot sends
// "* QUOTA root ()" instead, but RFC 9208 §9's quota-list needs at least one
// resource, and §4.1.2 wants a QUOTA response for every root listed.

// quotaRoot is the name of the account's only quota root.
const quotaRoot = ""

// quotaLimit returns the account's current storage limit in bytes (0: no
// limit), read afresh so a change by the administrator applies at once.
func (s *session) quotaLimit() (int64, error) {
	if s.srv.Users == nil {
		return 0, nil
	}
	acc, err := s.srv.Users.AccountByID(s.ctx(), s.user.ID)
	if err != nil {
		return 0, err
	}
	return acc.QuotaBytes, nil
}

// quotaRoom returns how many more bytes the account may store: -1 when it
// has no limit.
func (s *session) quotaRoom() (int64, error) {
	limit, err := s.quotaLimit()
	if err != nil || limit <= 0 {
		return -1, err
	}
	used, _, err := s.acct.Usage(s.ctx())
	if err != nil {
		return 0, err
	}
	return max(limit-used, 0), nil
}

// quotaKiB converts bytes to the 1024-octet units of STORAGE, rounding up
// so that a non-empty account never shows 0.
func quotaKiB(n int64) int64 { return (n + 1023) / 1024 }

// quotaWrite writes "* QUOTA "" (STORAGE used limit)".
func (s *session) quotaWrite(limit int64) error {
	used, _, err := s.acct.Usage(s.ctx())
	if err != nil {
		return err
	}
	s.enc.Atom(`* QUOTA "" (STORAGE `).Number64(quotaKiB(used)).SP().Number64(quotaKiB(limit)).Byte(')').CRLF()
	return nil
}

// cmdGetQuota is GETQUOTA (RFC 9208 §4.1.1).
func cmdGetQuota(s *session, tag, name string, uid bool) error {
	if err := s.dec.SP(); err != nil {
		return err
	}
	root, err := s.dec.ReadAString()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	limit, err := s.quotaLimit()
	if err != nil {
		return s.serverBug(err)
	}
	if root != quotaRoot || limit <= 0 {
		return no("NONEXISTENT", "no such quota root")
	}
	if err := s.quotaWrite(limit); err != nil {
		return s.serverBug(err)
	}
	return nil
}

// cmdGetQuotaRoot is GETQUOTAROOT (RFC 9208 §4.1.2): the roots of a
// mailbox, then a QUOTA response for each.
func cmdGetQuotaRoot(s *session, tag, name string, uid bool) error {
	mb, err := s.dec.SPMailbox()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if _, err := s.acct.Mailbox(s.ctx(), mb); errors.Is(err, store.ErrNoMailbox) {
		return no("NONEXISTENT", "no such mailbox")
	} else if err != nil {
		return s.serverBug(err)
	}
	limit, err := s.quotaLimit()
	if err != nil {
		return s.serverBug(err)
	}
	s.enc.Atom("* QUOTAROOT ").Mailbox(mb)
	if limit <= 0 {
		s.enc.CRLF()
		return nil
	}
	s.enc.Atom(` ""`).CRLF()
	if err := s.quotaWrite(limit); err != nil {
		return s.serverBug(err)
	}
	return nil
}

// cmdSetQuota is SETQUOTA (RFC 9208 §4.1.3). Limits are the
// administrator's ("jodmai user quota"), and QUOTASET is not advertised, so
// it is always refused; the session skips the arguments.
func cmdSetQuota(s *session, tag, name string, uid bool) error {
	return no("NOPERM", "quotas are set by the administrator")
}

package pop3d

import (
	"context"
	"time"
)

// updateTimeout bounds the expunge of the UPDATE state.
const updateTimeout = time.Minute

// cmdQuit: RFC 1939 §6 QUIT in TRANSACTION enters UPDATE: every message
// marked as deleted is removed, in one store transaction, then the session
// ends whatever the outcome. A failure leaves every message in place and
// is reported with -ERR, which RFC 1939 §6 allows.
func (s *session) cmdQuit(args string) (reply, bool) {
	if !noArgs(args) {
		return badReply("QUIT takes no arguments"), false
	}
	s.state = stateUpdate
	// The maildrop is unlocked once UPDATE is done and before the reply
	// is sent, so a client that reconnects the moment it reads +OK is not
	// told the maildrop is in use.
	defer s.unlock()
	var uids []uint32
	for i, m := range s.msgs {
		if s.deleted[i] {
			uids = append(uids, m.UID)
		}
	}
	if len(uids) == 0 {
		s.log.Info("pop3 logout", "deleted", 0)
		return okReply("%s POP3 server signing off", s.srv.hostname), true
	}
	// Shutdown does not cut an UPDATE short: once begun, the expunge
	// finishes and the client hears how it went.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), updateTimeout)
	defer cancel()
	removed, err := s.account.Expunge(ctx, s.mailbox.ID, uids)
	if err != nil {
		s.log.Error("pop3 update failed; nothing deleted", "marked", len(uids), "err", err)
		return errReply("SYS/TEMP", "could not delete messages, they are kept; try again later"), true
	}
	s.log.Info("pop3 logout", "deleted", len(removed), "marked", len(uids))
	return okReply("%s POP3 server signing off (%d messages deleted)", s.srv.hostname, len(removed)), true
}

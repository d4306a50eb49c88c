package smtpd

import (
	"errors"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/userdb"
)

// Rcpt adds a recipient (RCPT TO). The engine has already checked that
// MAIL came first and that MaxRecipients is not reached (452 4.5.3, RFC 5321
// §4.5.3.1.10).
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.conn.isHungUp() {
		return reply(421, 4, 7, 0, "Closing connection")
	}
	s.mu.Lock()
	open := s.tx.open
	s.mu.Unlock()
	if !open {
		return reply(503, 5, 5, 1, "Send MAIL first")
	}
	err := s.addRecipient(to, opts)
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s.mu.Lock()
		from := s.tx.from
		s.mu.Unlock()
		s.logger().Info("recipient refused", "event", eventlog.Rejected, "from", from, "rcpt", to,
			"code", se.Code, "reason", se.Message)
	}
	if errors.As(err, &se) && se.Code/100 == 5 && s.authAccount() == nil {
		s.mu.Lock()
		s.badRcpts++
		n := s.badRcpts
		s.mu.Unlock()
		if n >= maxBadRecipients {
			s.logger().Info("closing: too many refused recipients", "count", n)
			s.conn.hangUp()
			return reply(421, 4, 7, 0, "Too many invalid recipients, closing connection")
		}
	}
	return err
}

// addRecipient resolves to and adds its local mailboxes and its remote
// addresses to the transaction, or returns the reply refusing it.
func (s *session) addRecipient(to string, opts *smtp.RcptOptions) error {
	res, err := s.srv.Deliverer.Resolve(s.ctx, to)
	var remotes []remote.Recipient
	switch {
	case err == nil && len(res.Remote) > 0:
		// An alias that forwards off-site: its remote targets go to the
		// queue, with the alias as their original recipient. Without a
		// queue, delivering only its local part would drop the rest
		// silently: defer the whole recipient.
		if s.srv.Queue == nil {
			s.logger().Info("recipient deferred: forwards to remote addresses", "rcpt", to, "remote", len(res.Remote))
			return errNeedsOutbound(to)
		}
		for _, a := range res.Remote {
			remotes = append(remotes, rcptParams(a, to, opts))
		}
	case err == nil && len(res.Local) == 0:
		return reply(550, 5, 1, 1, "Recipient address rejected: no such user")
	case err == nil:
	case errors.Is(err, deliver.ErrNotLocal):
		if s.srv.Mode == ModeMX {
			// Never an open relay, whoever connects (loopback included).
			return reply(554, 5, 7, 1, "Relay access denied")
		}
		if s.srv.Queue == nil {
			return errNeedsOutbound(to)
		}
		// Submission: Mail has required AUTH.
		if !validPath(to) {
			return reply(501, 5, 1, 3, "Bad recipient address syntax")
		}
		remotes = append(remotes, rcptParams(to, to, opts))
	case errors.Is(err, deliver.ErrNoSuchUser):
		return reply(550, 5, 1, 1, "Recipient address rejected: no such user")
	case errors.Is(err, deliver.ErrOverQuota):
		// Temporary (RFC 3463 X.2.2): the sender keeps retrying while
		// the owner makes room.
		s.logger().Info("recipient deferred: over quota", "rcpt", to, "err", err)
		return reply(452, 4, 2, 2, "<"+to+">: mailbox full, try again later")
	case errors.Is(err, deliver.ErrAliasLoop):
		s.logger().Warn("recipient refused: alias expansion loop", "rcpt", to)
		return reply(550, 5, 4, 6, "Recipient address rejected: alias expansion loop")
	case errors.Is(err, userdb.ErrInvalid):
		return reply(501, 5, 1, 3, "Bad recipient address syntax")
	default:
		s.logger().Error("resolve recipient", "rcpt", to, "err", err)
		return reply(451, 4, 3, 0, "Temporary failure looking up the recipient, try again later")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tx.open {
		return reply(503, 5, 5, 1, "Send MAIL first")
	}
	s.tx.rcpts = append(s.tx.rcpts, to)
	if len(res.Local) > 0 {
		s.tx.local = append(s.tx.local, to)
	}
	if len(res.Local) > 0 && wantsSuccess(opts) {
		s.tx.notify = append(s.tx.notify, rcptParams(to, to, opts))
	}
	for _, t := range res.Local {
		if !s.tx.seen[t.AccountID] {
			s.tx.seen[t.AccountID] = true
			s.tx.targets = append(s.tx.targets, t)
		}
	}
	for _, r := range remotes {
		if k := strings.ToLower(r.Addr); !s.tx.seenRemote[k] {
			s.tx.seenRemote[k] = true
			s.tx.remote = append(s.tx.remote, r)
		}
	}
	return nil
}

// rcptParams makes the queue's recipient addr, reached through the RCPT
// TO address to, with the RFC 3461 parameters of that RCPT. An alias
// expansion without ORCPT gets the alias as its original recipient (RFC
// 3461 §6.2.7), so the sender can tell a DSN about it.
func rcptParams(addr, to string, opts *smtp.RcptOptions) remote.Recipient {
	r := remote.Recipient{Addr: addr}
	if opts != nil {
		var notify []string
		for _, n := range opts.Notify {
			notify = append(notify, strings.ToUpper(string(n)))
		}
		r.Notify = strings.Join(notify, ",")
		if opts.OriginalRecipient != "" {
			r.ORcpt = queue.FormatORcpt(string(opts.OriginalRecipientType), opts.OriginalRecipient)
		}
	}
	if r.ORcpt == "" && addr != to {
		typ := "rfc822"
		if !isASCII(to) {
			typ = "utf-8"
		}
		r.ORcpt = queue.FormatORcpt(typ, to)
	}
	return r
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// errNeedsOutbound refuses a recipient that needs delivery to another
// server when there is no outbound queue. 451 makes the sender keep the
// message and retry; never a silent drop.
func errNeedsOutbound(to string) error {
	return reply(451, 4, 4, 0, "<"+to+">: delivery to remote addresses is not available, try again later")
}

// wantsSuccess reports whether a RCPT's NOTIFY includes SUCCESS.
func wantsSuccess(opts *smtp.RcptOptions) bool {
	if opts == nil {
		return false
	}
	for _, n := range opts.Notify {
		if strings.EqualFold(string(n), "SUCCESS") {
			return true
		}
	}
	return false
}

package smtpd

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/userdb"
)

// maxPathLength bounds a reverse-path or forward-path. RFC 5321 §4.5.3.1.3
// says 256 octets with the brackets; allow a little more for SMTPUTF8.
const maxPathLength = 320

// Mail starts a transaction (MAIL FROM). The engine has already checked
// SIZE against MaxMessageSize (552 5.3.4, RFC 1870 §6.1).
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.conn.isHungUp() {
		return reply(421, 4, 7, 0, "Closing connection")
	}
	s.mu.Lock()
	open, acc := s.tx.open, s.account
	s.mu.Unlock()
	if open {
		// RFC 5321 §4.1.4: MAIL inside a transaction is out of sequence.
		return reply(503, 5, 5, 1, "Nested MAIL command; send RSET first")
	}
	if s.srv.Mode == ModeSubmission && acc == nil {
		if !auth.PlaintextAllowed(s.isTLS(), s.remote) && s.srv.TLSConfig != nil {
			return reply(530, 5, 7, 0, "Must issue a STARTTLS command first")
		}
		return reply(530, 5, 7, 0, "Authentication required")
	}
	if opts != nil && opts.RequireTLS && !s.isTLS() {
		// RFC 8689 §4.1: REQUIRETLS only on a TLS session; EHLO does
		// not offer it without TLS, so the parameter is not implemented
		// here (RFC 5321 §4.1.1.11: 555; Postfix answers the same).
		return errUnsupportedParam("REQUIRETLS")
	}
	if from != "" && !validPath(from) {
		return reply(501, 5, 1, 7, "Bad sender address syntax")
	}
	if s.srv.Mode == ModeSubmission && from != "" {
		ok, err := s.owns(s.ctx, *acc, from)
		if err != nil {
			s.logger().Error("check sender address", "from", from, "err", err)
			return reply(451, 4, 3, 0, "Temporary failure checking the sender address, try again later")
		}
		if !ok {
			s.logger().Info("sender address refused", "event", eventlog.Rejected, "from", from, "code", 553, "reason", "sender address not owned by the authenticated user")
			return reply(553, 5, 7, 1, fmt.Sprintf("Sender address <%s> not owned by the authenticated user", from))
		}
	}
	// RFC 8098 §2.1: MDNs go out with a null reverse-path, so submission
	// accepts MAIL FROM:<> from an authenticated user too; the session log
	// names the account.
	s.mu.Lock()
	tx := transaction{open: true, from: from, helo: s.helo, seen: map[int64]bool{}, seenRemote: map[string]bool{}}
	if opts != nil {
		tx.utf8 = opts.UTF8
		tx.envid = opts.EnvelopeID
		tx.ret = string(opts.Return)
		tx.requireTLS = opts.RequireTLS
		tx.body8bit = opts.Body == smtp.Body8BitMIME
	}
	s.tx = tx
	s.mu.Unlock()
	s.startRDNS()
	return nil
}

// validPath checks what the lenient path parser (parsePath) left: no control
// characters (a bare CR in a command line would reach the header fields),
// valid UTF-8, a sane length, local@domain.
func validPath(addr string) bool {
	if len(addr) > maxPathLength || !utf8.ValidString(addr) {
		return false
	}
	for _, r := range addr {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	i := strings.LastIndexByte(addr, '@')
	return i > 0 && i < len(addr)-1
}

// owns reports whether the account may use addr as its sender: its own
// address, a +tag form of it, or an alias that targets it (or that alias's
// +tag form). Addresses compare case-insensitively, as logins do.
func (s *session) owns(ctx context.Context, acc userdb.Account, addr string) (bool, error) {
	local, domain, err := userdb.SplitAddress(addr)
	if err != nil {
		return false, nil
	}
	candidates := []string{local + "@" + domain}
	if i := strings.IndexByte(local, '+'); i > 0 {
		candidates = append(candidates, local[:i]+"@"+domain)
	}
	for _, c := range candidates {
		if strings.EqualFold(c, acc.Address) {
			return true, nil
		}
	}
	aliases, err := s.srv.Deliverer.Users.AliasesTargeting(ctx, acc.Address)
	if err != nil {
		return false, err
	}
	for _, a := range aliases {
		for _, c := range candidates {
			if strings.EqualFold(c, a) {
				return true, nil
			}
		}
	}
	return false, nil
}

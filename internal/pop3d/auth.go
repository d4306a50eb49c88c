package pop3d

import (
	"encoding/base64"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/userdb"
)

// maxSASLSteps bounds the challenges of one AUTH exchange (LOGIN needs 2).
const maxSASLSteps = 4

// plaintextAllowed reports whether this session may receive a password in
// the clear (RFC 2595 §2.2: not without TLS, except from loopback).
func (s *session) plaintextAllowed() bool {
	return auth.PlaintextAllowed(s.isTLS, s.remote)
}

// stlsAvailable reports whether STLS can be offered now (RFC 2595 §4).
func (s *session) stlsAvailable() bool {
	return s.srv.TLSConfig != nil && !s.srv.ImplicitTLS && !s.isTLS && s.state == stateAuthorization
}

func (s *session) plaintextRefused() reply {
	text := "plaintext authentication requires TLS"
	if s.stlsAvailable() {
		text += " (use STLS)"
	}
	return reply{code: "AUTH", text: text, bad: true}
}

// cmdUser: RFC 1939 §7 USER name. The reply never says whether the user
// exists; PASS decides.
func (s *session) cmdUser(args string) reply {
	if !s.plaintextAllowed() {
		return s.plaintextRefused()
	}
	if args == "" || strings.ContainsAny(args, " \t") {
		return badReply("usage: USER name")
	}
	s.user = args
	return okReply("send PASS")
}

// cmdPass: RFC 1939 §7 PASS string. The password is the whole rest of the
// line, spaces included.
func (s *session) cmdPass(args string) (reply, bool) {
	if !s.plaintextAllowed() {
		return s.plaintextRefused(), false
	}
	user := s.user
	s.user = ""
	if user == "" {
		return badReply("send USER first"), false
	}
	if args == "" {
		return badReply("usage: PASS password"), false
	}
	acc, err := s.srv.Auth.LoginMech(s.ctx, s.remote, "pop3", "USER", user, args)
	return s.loginResult("USER", user, acc, err)
}

// cmdAPOP: RFC 1939 §7 APOP name digest. Accounts without an APOP secret
// fail exactly like a wrong digest (auth.APOP makes sure of it). APOP sends
// no password, so it is allowed without TLS.
func (s *session) cmdAPOP(args string) (reply, bool) {
	s.user = ""
	f := strings.Fields(args)
	if len(f) != 2 {
		return badReply("usage: APOP name digest"), false
	}
	acc, err := s.srv.Auth.APOP(s.ctx, s.remote, f[0], s.timestamp, f[1])
	return s.loginResult("APOP", f[0], acc, err)
}

// mechanisms are the SASL mechanisms offered now (RFC 5034 §3): both send
// the password, so only when plaintext is allowed.
func (s *session) mechanisms() []string {
	if !s.plaintextAllowed() {
		return nil
	}
	return []string{"PLAIN", "LOGIN"}
}

// cmdAuth: RFC 5034 AUTH mechanism [initial-response].
func (s *session) cmdAuth(args string) (reply, bool) {
	s.user = ""
	if args == "" {
		// RFC 1734's listing form, which some clients still send.
		s.bw.WriteString("+OK SASL mechanisms follow\r\n")
		for _, m := range s.mechanisms() {
			s.bw.WriteString(m)
			s.bw.WriteString("\r\n")
		}
		s.bw.WriteString(".\r\n")
		return multiline, false
	}
	mech, ir, _ := strings.Cut(args, " ")
	mech = strings.ToUpper(mech)
	hasIR := ir != ""
	if strings.Contains(ir, " ") {
		return badReply("usage: AUTH mechanism [initial-response]"), false
	}
	var acc userdb.Account
	var user string
	check := func(u, password string) error {
		user = u
		a, err := s.srv.Auth.LoginMech(s.ctx, s.remote, "pop3", mech, u, password)
		acc = a
		return err
	}
	var server sasl.Server
	switch mech {
	case "PLAIN":
		server = auth.NewPlainServer(check)
	case "LOGIN":
		server = auth.NewLoginServer(check)
	default:
		return badReply("unsupported authentication mechanism"), false
	}
	if !s.plaintextAllowed() {
		return s.plaintextRefused(), false
	}

	var resp []byte
	if hasIR {
		// RFC 5034 §4: "=" is an empty initial response.
		resp = []byte{}
		if ir != "=" {
			var err error
			if resp, err = base64.StdEncoding.DecodeString(ir); err != nil {
				return badReply("invalid base64 in initial response"), false
			}
		}
	}
	for step := 0; ; step++ {
		challenge, done, err := server.Next(resp)
		if err != nil {
			if errors.Is(err, auth.ErrSASLMalformed) || errors.Is(err, sasl.ErrUnexpectedClientResponse) {
				s.log.Info("pop3 login failed", "method", "AUTH "+mech, "reason", "malformed SASL response")
				return s.authFailed(errReply("AUTH", "malformed authentication response"))
			}
			return s.loginResult("AUTH "+mech, user, acc, err)
		}
		if done {
			return s.loginResult("AUTH "+mech, user, acc, nil)
		}
		if step >= maxSASLSteps {
			return badReply("authentication exchange too long"), false
		}
		// RFC 5034 §4: a challenge is "+ " and base64, possibly empty.
		s.bw.WriteString("+ ")
		s.bw.WriteString(base64.StdEncoding.EncodeToString(challenge))
		s.bw.WriteString("\r\n")
		line, tooLong, rerr := s.readLine(s.lim.maxAuthLine())
		if rerr != nil {
			s.readFailed(rerr)
			return noReply, true
		}
		if tooLong {
			return badReply("line too long"), false
		}
		if len(line) == 1 && line[0] == '*' {
			// RFC 5034 §4: the client cancels; the server MUST reject.
			return errReply("", "authentication cancelled"), false
		}
		resp = make([]byte, base64.StdEncoding.DecodedLen(len(line)))
		n, derr := base64.StdEncoding.Decode(resp, line)
		if derr != nil {
			return badReply("invalid base64 in authentication response"), false
		}
		resp = resp[:n]
	}
}

// loginResult turns the outcome of a credential check into the reply and,
// on success, enters TRANSACTION.
func (s *session) loginResult(method, user string, acc userdb.Account, err error) (reply, bool) {
	log := s.log.With("method", method, "user", user)
	switch {
	case err == nil:
		return s.enterTransaction(method, acc)
	case errors.Is(err, auth.ErrThrottled):
		log.Info("pop3 login failed", "reason", "throttled")
		// The client is locked out for a while: no point in staying.
		return errReply("AUTH", "too many failures, try later"), true
	case errors.Is(err, auth.ErrBadCredentials):
		log.Info("pop3 login failed", "reason", "invalid credentials")
		// RFC 2449 §8.1.2 / RFC 3206: the same text whether or not the
		// user exists.
		return s.authFailed(errReply("AUTH", "invalid credentials"))
	default:
		log.Error("pop3 login failed", "reason", "temporary error", "err", err)
		return errReply("SYS/TEMP", "temporary failure, try again later"), false
	}
}

// authFailed counts a failed login and ends the session after too many.
func (s *session) authFailed(r reply) (reply, bool) {
	s.authFailures++
	if s.authFailures >= maxAuthFailures {
		r.text += "; too many failures, closing connection"
		return r, true
	}
	return r, false
}

// enterTransaction takes the maildrop lock and the INBOX snapshot for a
// successfully authenticated account (RFC 1939 §4).
func (s *session) enterTransaction(method string, acc userdb.Account) (reply, bool) {
	log := s.log.With("method", method, "account", acc.Address)
	a, err := s.srv.Store.Account(s.ctx, acc.ID)
	if err != nil {
		log.Error("pop3 login failed", "reason", "open account", "err", err)
		return errReply("SYS/TEMP", "temporary failure, try again later"), false
	}
	release, ok := s.srv.Store.LockMaildrop(acc.ID)
	if !ok {
		a.Release()
		// RFC 1939 §8, RFC 2449 §8.1.1: stay in AUTHORIZATION.
		log.Info("pop3 login refused", "reason", "maildrop locked")
		return errReply("IN-USE", "maildrop already locked"), false
	}
	// The mailbox row and its messages come from one read transaction.
	mb, msgs, err := a.MailboxMessages(s.ctx, "INBOX")
	if err != nil {
		release()
		a.Release()
		log.Error("pop3 login failed", "reason", "read maildrop", "err", err)
		return errReply("SYS/TEMP", "temporary failure, try again later"), false
	}
	// UIDLs kept from the server the mail was imported from (their
	// messages are in the snapshot, so their rows were there before it).
	uidls, err := a.POP3UIDLs(s.ctx, mb.ID)
	if err != nil {
		release()
		log.Error("pop3 login failed", "reason", "read maildrop", "err", err)
		return errReply("SYS/TEMP", "temporary failure, try again later"), false
	}
	s.release = release
	s.uidls = uidls
	s.account = a
	s.address = acc.Address
	s.mailbox = mb
	s.msgs = msgs
	s.deleted = make([]bool, len(msgs))
	s.total = 0
	for _, m := range msgs {
		s.total += m.Size
	}
	s.state = stateTransaction
	s.log = s.log.With("account", acc.Address)
	log.Info("pop3 login", "messages", len(msgs), "octets", s.total)
	return okReply("maildrop has %d messages (%d octets)", len(msgs), s.total), false
}

package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/userdb"
)

// reply is an SMTP reply as the error a session method returns: the
// engine writes its code, RFC 3463 enhanced code and text. Keep it next to the
// decision it answers.
func reply(code, class, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: text}
}

// session is one SMTP session: the engine (conn.go) makes one at the
// first EHLO/HELO and again at the EHLO after STARTTLS.
//
// With a chunked message (BDAT), Data runs in its own goroutine while the
// connection's goroutine may call Reset or Logout, so the mutable state is
// under mu and Data works on a snapshot.
type session struct {
	srv    *Server
	conn   *conn
	remote net.Addr
	tls    *tls.ConnectionState // nil without TLS
	ctx    context.Context

	mu      sync.Mutex
	helo    string // the client's EHLO/HELO name
	log     *slog.Logger
	account *userdb.Account // after AUTH
	tx      transaction
	// badRcpts counts refused recipients (maxBadRecipients).
	badRcpts int
	rdns     *rdnsLookup
}

// transaction is the envelope of the message being sent (RFC 5321 §3.3).
type transaction struct {
	open  bool   // MAIL was accepted
	from  string // reverse-path, "" for <>
	helo  string // the client's EHLO/HELO name when MAIL was given
	utf8  bool   // MAIL ... SMTPUTF8
	rcpts []string
	// local are the RCPT addresses with local mailboxes, for the event
	// log.
	local []string
	// targets are the local mailboxes, one per account, over all
	// recipients (an account reached twice gets one copy).
	targets []store.Target
	seen    map[int64]bool

	// remote are the recipients for the outbound queue, with their DSN
	// parameters, each address once (seenRemote: lowercased).
	remote     []remote.Recipient
	seenRemote map[string]bool
	// notify are the local recipients (as given in RCPT) whose NOTIFY
	// asked for SUCCESS: they get a "delivered" DSN after delivery.
	notify []remote.Recipient
	// RFC 3461 ENVID and RET, RFC 8689 REQUIRETLS, RFC 6152 BODY=8BITMIME
	// from MAIL, for the queue.
	envid, ret string
	requireTLS bool
	body8bit   bool
}

// newSession starts a session after a valid EHLO/HELO.
func (c *conn) newSession(helo string) *session {
	sess := &session{srv: c.srv, conn: c, remote: c.raw.RemoteAddr(), tls: c.tls, ctx: c.srv.ctx, helo: helo, log: c.log}
	sess.log.Debug("session started", "helo", helo, "tls", sess.tlsVersion())
	return sess
}

// setHelo records the name of a later EHLO/HELO.
func (s *session) setHelo(h string) {
	s.mu.Lock()
	s.helo = h
	s.mu.Unlock()
}

// validHelo refuses EHLO/HELO arguments that could not be a domain or
// address literal at all: control characters, invalid UTF-8, overlong.
// RFC 5321 §4.1.4 forbids refusing a name that merely does not match the
// client's address; that is not checked.
func validHelo(h string) bool {
	if h == "" || len(h) > 255 || !utf8.ValidString(h) {
		return false
	}
	for _, r := range h {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return true
}

func (s *session) isTLS() bool { return s.tls != nil }

// tlsVersion names the session's TLS version, "" without TLS.
func (s *session) tlsVersion() string {
	if s.tls == nil {
		return ""
	}
	return tls.VersionName(s.tls.Version)
}

// Reset ends the transaction (RSET, a new EHLO, the end of DATA/BDAT).
func (s *session) Reset() {
	s.mu.Lock()
	s.tx = transaction{}
	s.mu.Unlock()
}

// Logout is called when the connection closes and at STARTTLS.
func (s *session) Logout() error {
	s.mu.Lock()
	s.tx = transaction{}
	s.mu.Unlock()
	return nil
}

// AuthMechanisms lists what EHLO offers: on submission, PLAIN and LOGIN
// where plaintext passwords are allowed (TLS or loopback); nothing on MX.
func (s *session) AuthMechanisms() []string {
	if s.srv.Mode != ModeSubmission || !auth.PlaintextAllowed(s.isTLS(), s.remote) {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange (RFC 4954).
func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.srv.Mode != ModeSubmission {
		// Not offered in EHLO. Postfix answers this (RFC 4954 names no
		// code).
		return nil, reply(503, 5, 5, 1, "Authentication not enabled")
	}
	s.mu.Lock()
	inTx := s.tx.open
	s.mu.Unlock()
	if inTx {
		// RFC 4954 §4: AUTH is not permitted during a mail transaction.
		return nil, reply(503, 5, 5, 1, "AUTH not permitted during a mail transaction")
	}
	var srv sasl.Server
	switch mech {
	case sasl.Plain:
		srv = auth.NewPlainServer(func(u, p string) error { return s.login("PLAIN", u, p) })
	case sasl.Login:
		srv = auth.NewLoginServer(func(u, p string) error { return s.login("LOGIN", u, p) })
	default:
		// RFC 4954 §4.
		return nil, reply(504, 5, 5, 4, "Unrecognized authentication mechanism")
	}
	if !auth.PlaintextAllowed(s.isTLS(), s.remote) {
		// RFC 4954 §4: a mechanism that "requires an encryption layer"
		// is refused with 504 5.5.4 (§6 keeps 538 5.7.11 "for historical
		// purposes only"); Postfix answers the same.
		return nil, reply(504, 5, 5, 4, "Encryption required for requested authentication mechanism; use STARTTLS")
	}
	return saslReplies{srv}, nil
}

// login checks credentials for a SASL mechanism.
func (s *session) login(mech, user, password string) error {
	acc, err := s.srv.Auth.LoginMech(s.ctx, s.remote, "smtp", mech, user, password)
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrBadCredentials):
		return errBadCredentials
	case errors.Is(err, auth.ErrThrottled):
		// Temporary: the lockout ends (RFC 4954 §6: 454 4.7.0).
		return reply(454, 4, 7, 0, "Too many failed logins, try again later")
	default:
		// The user database failed: temporary (RFC 4954 §6).
		s.logger().Error("login failed: internal error", "err", err)
		return reply(454, 4, 7, 0, "Temporary authentication failure, try again later")
	}
	s.mu.Lock()
	s.account = &acc
	s.log = s.log.With("account", acc.Address)
	s.mu.Unlock()
	s.logger().Info("authenticated")
	return nil
}

func (s *session) logger() *slog.Logger {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log
}

func (s *session) authAccount() *userdb.Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.account
}

// errBadCredentials: RFC 4954 §6.
var errBadCredentials = reply(535, 5, 7, 8, "Authentication credentials invalid")

// saslReplies turns the errors of the auth package's mechanisms into SMTP
// replies.
type saslReplies struct{ sasl.Server }

func (r saslReplies) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := r.Server.Next(resp)
	if err == nil {
		return challenge, done, nil
	}
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
	case errors.Is(err, auth.ErrBadCredentials):
		// An authorization identity other than the user (PLAIN).
		err = errBadCredentials
	case errors.Is(err, auth.ErrSASLMalformed):
		// Valid base64, but not a PLAIN message (no NULs, empty user) or
		// an empty LOGIN user name: RFC 4954 §4, "If the server is unable
		// to authenticate the client, it SHOULD reject the AUTH command
		// with a 535 reply unless a more specific error code is
		// appropriate". Postfix (with Dovecot or Cyrus SASL) answers
		// 535 5.7.8 too; 501 5.5.2 is for base64 that does not decode.
		err = errBadCredentials
	case errors.Is(err, sasl.ErrUnexpectedClientResponse):
		// RFC 4954 §4: data the mechanism does not expect, 501 5.7.0.
		err = reply(501, 5, 7, 0, "Unexpected authentication response")
	default:
		// Not a property of what the client sent: temporary.
		err = reply(454, 4, 7, 0, "Temporary authentication failure")
	}
	return nil, true, err
}

package imapd

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/imapwire"
	"github.com/jodmai/jodmai/internal/netio"
)

// This file: commands of any state and of the not-authenticated state
// (RFC 9051 §6.1, §6.2): CAPABILITY, NOOP, LOGOUT, ID, ENABLE, STARTTLS,
// LOGIN, AUTHENTICATE.

// cmdCapability is RFC 9051 §6.1.1 CAPABILITY: the list is built from
// the command table (commands.go).
func cmdCapability(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	s.enc.Atom("* CAPABILITY ").Atom(s.capabilities()).CRLF()
	return nil
}

// cmdNoop is NOOP and CHECK: the sync after every command does the work.
func cmdNoop(s *session, tag, name string, uid bool) error {
	return s.dec.ExpectCRLF()
}

func cmdLogout(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	s.enc.Atom("* BYE logging out").CRLF()
	s.state = stateLogout
	s.log.Debug("imap logout", "account", s.user.Address)
	return nil
}

// cmdID answers RFC 2971 ID with our name; the client's values are logged.
func cmdID(s *session, tag, name string, uid bool) error {
	params, err := s.dec.ParseID()
	if err != nil {
		return err
	}
	if len(params) > 0 {
		attrs := make([]any, 0, 2*len(params))
		for _, p := range params {
			attrs = append(attrs, "id_"+strings.ToLower(p.Key), p.Value)
		}
		s.log.Debug("client id", attrs...)
	}
	s.enc.Atom(`* ID ("name" "jodmai" "vendor" "jodmai")`).CRLF()
	return nil
}

// cmdEnable is RFC 5161 ENABLE, for IMAP4rev2, CONDSTORE, QRESYNC and
// UTF8=ACCEPT.
func cmdEnable(s *session, tag, name string, uid bool) error {
	caps, err := s.dec.ParseEnable()
	if err != nil {
		return err
	}
	var enabled []string
	for _, c := range caps {
		switch strings.ToUpper(c) {
		case "IMAP4REV2":
			if !s.rev2 {
				s.rev2 = true
				enabled = append(enabled, "IMAP4rev2")
			}
			s.setUTF8()
		case "CONDSTORE":
			if !s.condstore {
				s.condstore = true
				enabled = append(enabled, "CONDSTORE")
			}
		case "QRESYNC":
			if !s.qresync {
				// RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
				s.qresync, s.condstore = true, true
				enabled = append(enabled, "QRESYNC")
			}
		case "UTF8=ACCEPT":
			if !s.utf8 {
				s.utf8 = true
				enabled = append(enabled, "UTF8=ACCEPT")
			}
			s.setUTF8()
		}
	}
	s.enc.Atom("* ENABLED")
	for _, e := range enabled {
		s.enc.SP().Atom(e)
	}
	s.enc.CRLF()
	return nil
}

// setUTF8 switches mailbox names and strings to UTF-8 (IMAP4rev2 or
// UTF8=ACCEPT enabled).
func (s *session) setUTF8() {
	s.dec.SetUTF8(true)
	s.enc.SetUTF8(true)
}

// cmdStartTLS is RFC 9051 §6.2.1 STARTTLS.
func cmdStartTLS(s *session, tag, name string, uid bool) error {
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if s.isTLS || s.srv.TLSConfig == nil {
		return bad("", "TLS is not available or already active")
	}
	if s.dec.Buffered() > 0 {
		// RFC 9051 §11.1: data pipelined after STARTTLS could be a
		// command injected by a man in the middle.
		return s.refusePipelined(tag, "STARTTLS")
	}
	s.tagged(tag, &status{kind: "OK", text: "begin TLS negotiation now"})
	if err := s.flush(); err != nil {
		return err
	}
	tc := tls.Server(s.conn, s.srv.TLSConfig)
	tc.SetDeadline(time.Now().Add(s.lim.preauthTimeout()))
	if err := tc.Handshake(); err != nil {
		s.log.Info("starttls handshake failed", "err", err)
		return fmt.Errorf("tls handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	s.isTLS = true
	s.rawR = tc
	s.rawW = &netio.DeadlineWriter{Conn: tc, Timeout: s.lim.writeTimeout()}
	s.conn = tc
	// Both buffers are empty (checked above, and just flushed): reuse them.
	s.br.Reset(tc)
	s.bw.Reset(s.rawW)
	s.dec.Reset(s.br)
	s.enc.Reset(s.bw)
	return errAlreadyAnswered
}

// errAlreadyAnswered tells the dispatcher the handler wrote its own tagged
// reply (STARTTLS must answer before the handshake).
var errAlreadyAnswered = errors.New("already answered")

func (s *session) plaintextAllowed() bool {
	return auth.PlaintextAllowed(s.isTLS, s.conn.RemoteAddr())
}

// cmdLogin is RFC 9051 §6.2.3 LOGIN.
func cmdLogin(s *session, tag, name string, uid bool) error {
	if err := s.dec.SP(); err != nil {
		return err
	}
	user, err := s.dec.ReadAString()
	if err != nil {
		return err
	}
	if err := s.dec.SP(); err != nil {
		return err
	}
	pass, err := s.dec.ReadAString()
	if err != nil {
		return err
	}
	if err := s.dec.ExpectCRLF(); err != nil {
		return err
	}
	if !s.plaintextAllowed() {
		return no("PRIVACYREQUIRED", "LOGIN is disabled without TLS; use STARTTLS first")
	}
	return s.login("LOGIN", user, pass)
}

// login checks credentials and enters the authenticated state.
func (s *session) login(method, user, pass string) error {
	acc, err := s.srv.Auth.LoginMech(s.ctx(), s.conn.RemoteAddr(), "imap", strings.TrimPrefix(method, "AUTHENTICATE "), user, pass)
	if err != nil {
		return s.loginFailed(method, user, err)
	}
	a, err := s.srv.Store.Account(s.ctx(), acc.ID)
	if err != nil {
		return s.serverBug(err)
	}
	s.user, s.acct = acc, a
	s.sub = s.srv.Store.Subscribe(acc.ID)
	s.state = stateAuth
	s.log = s.log.With("account", acc.Address)
	s.log.Info("imap login", "method", method, "tls", s.isTLS)
	return okCode("CAPABILITY "+s.capabilities(), "logged in")
}

func (s *session) loginFailed(method, user string, err error) error {
	s.authFailures++
	s.log.Info("imap login failed", "method", method, "user", user, "reason", err.Error())
	if s.authFailures >= maxAuthFailures {
		s.enc.Atom("* BYE too many failed logins").CRLF()
		s.state = stateLogout
	}
	switch {
	case errors.Is(err, auth.ErrThrottled):
		return no("UNAVAILABLE", "too many failed logins; try again later")
	case errors.Is(err, auth.ErrBadCredentials):
		return no("AUTHENTICATIONFAILED", "invalid credentials")
	default:
		return no("UNAVAILABLE", "authentication temporarily unavailable")
	}
}

// cmdAuthenticate is RFC 9051 §6.2.2 AUTHENTICATE with SASL-IR (RFC
// 4959), for PLAIN and LOGIN.
func cmdAuthenticate(s *session, tag, name string, uid bool) error {
	c, err := s.dec.ParseAuthenticate()
	if err != nil {
		return err
	}
	var srv sasl.Server
	var user, pass string
	var checked bool
	check := func(u, p string) error {
		user, pass, checked = u, p, true
		return nil
	}
	switch c.Mechanism {
	case "PLAIN":
		srv = auth.NewPlainServer(check)
	case "LOGIN":
		srv = auth.NewLoginServer(check)
	default:
		return no("", "unsupported authentication mechanism")
	}
	if !s.plaintextAllowed() {
		return no("PRIVACYREQUIRED", "%s is disabled without TLS; use STARTTLS first", c.Mechanism)
	}
	var resp []byte
	if c.HasInitialResponse {
		resp = c.InitialResponse
	}
	for round := 0; ; round++ {
		challenge, done, err := srv.Next(resp)
		if err != nil {
			if errors.Is(err, auth.ErrBadCredentials) {
				return s.loginFailed(c.Mechanism, user, err)
			}
			return bad("", "malformed authentication exchange")
		}
		if done {
			break
		}
		if round >= 4 {
			return bad("", "authentication exchange too long")
		}
		s.enc.Atom("+ ").Atom(base64.StdEncoding.EncodeToString(challenge)).CRLF()
		if err := s.flush(); err != nil {
			return err
		}
		resp, err = s.dec.ReadSASLResponse()
		if errors.Is(err, imapwire.ErrAuthCanceled) {
			return bad("", "authentication canceled")
		}
		if err != nil {
			if imapwire.IsProtocolError(err) {
				return bad("", "malformed authentication response")
			}
			return err
		}
	}
	if !checked {
		return bad("", "malformed authentication exchange")
	}
	return s.login("AUTHENTICATE "+c.Mechanism, user, pass)
}

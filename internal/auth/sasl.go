package auth

import (
	"bytes"
	"errors"

	"github.com/emersion/go-sasl"
)

// maxSASLField bounds a user name or password in a SASL exchange.
const maxSASLField = 1024

// ErrSASLMalformed is returned for a malformed SASL response.
var ErrSASLMalformed = errors.New("malformed SASL response")

// NewPlainServer returns a SASL PLAIN (RFC 4616) server mechanism that calls
// check with the authentication identity and password. An authorization
// identity other than empty or the user itself is refused: jodmai has no
// proxy logins.
func NewPlainServer(check func(user, password string) error) sasl.Server {
	return &plainServer{check: check}
}

type plainServer struct {
	check func(user, password string) error
	done  bool
}

func (s *plainServer) Next(resp []byte) ([]byte, bool, error) {
	if s.done {
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	s.done = true
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 || len(parts[1]) > maxSASLField || len(parts[2]) > maxSASLField {
		return nil, true, ErrSASLMalformed
	}
	if len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1]) {
		return nil, true, ErrBadCredentials
	}
	return nil, true, s.check(string(parts[1]), string(parts[2]))
}

// NewLoginServer returns a server for the obsolete but widely used LOGIN
// mechanism (draft-murchison-sasl-login): challenges "Username:" and
// "Password:".
func NewLoginServer(check func(user, password string) error) sasl.Server {
	return &loginServer{check: check}
}

type loginServer struct {
	check func(user, password string) error
	step  int
	user  string
}

func (s *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if resp == nil || len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		// Initial response carries the user name (RFC 4954 style).
		fallthrough
	case 1:
		if len(resp) == 0 || len(resp) > maxSASLField {
			return nil, true, ErrSASLMalformed
		}
		s.user = string(resp)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		if len(resp) > maxSASLField {
			return nil, true, ErrSASLMalformed
		}
		return nil, true, s.check(s.user, string(resp))
	}
	return nil, true, sasl.ErrUnexpectedClientResponse
}

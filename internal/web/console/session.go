package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Session limits. A session ends IdleTimeout after its last request, or
// MaxAge after login, whichever comes first; the store holds at most
// maxSessions (the oldest go first when full) and maxPerAccount per
// account.
const (
	// IdleTimeout ends a session not used for this long.
	IdleTimeout = 30 * time.Minute
	// MaxAge ends a session this long after login.
	MaxAge        = 12 * time.Hour
	maxSessions   = 10000
	maxPerAccount = 20
)

// Cookie names. The __Host- prefix makes browsers refuse the cookie unless
// it is Secure, has Path=/ and no Domain: no other host can set or read it.
const (
	sessionCookie = "__Host-jodmai"
	// loginCookie carries the login form's CSRF secret before there is a
	// session (login CSRF: an attacker's page logging the victim in to the
	// attacker's account).
	loginCookie = "__Host-jodmai-login"
)

// session is one logged-in browser. The store keys it by a hash of the
// cookie's id, so neither the map nor a timing difference reveals an id.
type session struct {
	key       [32]byte
	accountID int64
	address   string
	// password is a digest of the account's password hash at login: when
	// the hash changes (a new password, set here, by an admin or by the
	// jodmai commands in another process), the session ends.
	password [32]byte
	// csrf is the token every form of this session carries; a POST
	// without it is refused.
	csrf     string
	created  time.Time
	lastSeen time.Time
	// flash is a message for the next page shown, secret a password shown
	// once (a new app password, a reset password); both are cleared when
	// shown.
	flash, flashErr, secret string
}

// sessions is the server-side session store.
type sessions struct {
	mu  sync.Mutex
	m   map[[32]byte]*session
	per map[int64]int // sessions per account
	key [32]byte      // for the login form's CSRF tokens
	now func() time.Time
}

func newSessions() *sessions {
	s := &sessions{m: map[[32]byte]*session{}, per: map[int64]int{}, now: time.Now}
	rand.Read(s.key[:])
	return s
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func keyOf(id string) [32]byte { return sha256.Sum256([]byte(id)) }

func (s *sessions) removeLocked(o *session) {
	if s.m[o.key] != o {
		return
	}
	delete(s.m, o.key)
	if s.per[o.accountID]--; s.per[o.accountID] <= 0 {
		delete(s.per, o.accountID)
	}
}

// oldestLocked returns the least recently used session, of one account
// when accountID is not 0. It scans: it runs only when a limit is reached.
func (s *sessions) oldestLocked(accountID int64) *session {
	var oldest *session
	for _, o := range s.m {
		if (accountID == 0 || o.accountID == accountID) && (oldest == nil || o.lastSeen.Before(oldest.lastSeen)) {
			oldest = o
		}
	}
	return oldest
}

// create makes a session for an account, whose password hash is
// passwordHash now, and returns its cookie id.
func (s *sessions) create(accountID int64, address, passwordHash string) (string, *session) {
	id := randomToken()
	now := s.now()
	ss := &session{key: keyOf(id), accountID: accountID, address: address, password: sha256.Sum256([]byte(passwordHash)),
		csrf: randomToken(), created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	for s.per[accountID] >= maxPerAccount {
		s.removeLocked(s.oldestLocked(accountID))
	}
	for len(s.m) >= maxSessions {
		s.removeLocked(s.oldestLocked(0))
	}
	s.m[ss.key] = ss
	s.per[accountID]++
	return id, ss
}

// expireLocked drops expired sessions when the store is getting full.
func (s *sessions) expireLocked(now time.Time) {
	if len(s.m) < maxSessions {
		return
	}
	for _, o := range s.m {
		if s.expired(o, now) {
			s.removeLocked(o)
		}
	}
}

func (s *sessions) expired(o *session, now time.Time) bool {
	return now.Sub(o.lastSeen) > IdleTimeout || now.Sub(o.created) > MaxAge
}

// get returns the live session of a cookie id and marks it used.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	k := keyOf(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.m[k]
	if o == nil {
		return nil
	}
	if s.expired(o, now) {
		s.removeLocked(o)
		return nil
	}
	o.lastSeen = now
	return o
}

// passwordIs reports whether the account's password hash is still the
// one the session was made or last renewed with.
func (s *sessions) passwordIs(ss *session, passwordHash string) bool {
	d := sha256.Sum256([]byte(passwordHash))
	s.mu.Lock()
	defer s.mu.Unlock()
	return ss.password == d
}

// renewPassword records the account's new password hash in a session
// that lives on after a password change.
func (s *sessions) renewPassword(ss *session, passwordHash string) {
	d := sha256.Sum256([]byte(passwordHash))
	s.mu.Lock()
	ss.password = d
	s.mu.Unlock()
}

// drop ends a session (logout).
func (s *sessions) drop(ss *session) {
	s.mu.Lock()
	s.removeLocked(ss)
	s.mu.Unlock()
}

// dropAccount ends every session of an account except keep (nil: all):
// after a password change or reset, and when the account is deleted.
func (s *sessions) dropAccount(accountID int64, keep *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per[accountID] == 0 {
		return
	}
	for _, o := range s.m {
		if o.accountID == accountID && o != keep {
			s.removeLocked(o)
		}
	}
}

// count is the number of sessions held.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// setFlash leaves a message (and a secret shown once) for the next page.
func (s *sessions) setFlash(ss *session, msg, errMsg, secret string) {
	s.mu.Lock()
	ss.flash, ss.flashErr, ss.secret = msg, errMsg, secret
	s.mu.Unlock()
}

// takeFlash returns and clears the session's flash.
func (s *sessions) takeFlash(ss *session) (msg, errMsg, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, errMsg, secret = ss.flash, ss.flashErr, ss.secret
	ss.flash, ss.flashErr, ss.secret = "", "", ""
	return
}

// loginToken is the login form's CSRF token for a login cookie value.
func (s *sessions) loginToken(cookie string) string {
	m := hmac.New(sha256.New, s.key[:])
	m.Write([]byte("login\x00"))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenOK compares a submitted token with the expected one in constant
// time; an empty expected token matches nothing.
func tokenOK(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// setCookie sets a cookie with the attributes every console cookie has:
// HttpOnly (no script reads it), Secure (https only), SameSite=Strict (no
// other site's page makes the browser send it), Path=/.
func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

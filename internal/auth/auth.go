// Package auth checks logins for every protocol: credentials against the
// userdb, the plaintext-authentication policy, the SASL mechanisms the
// servers offer, and login throttling shared by SMTP, POP3, IMAP and the
// web console. The mail protocols accept an account's app passwords too;
// the web console only its own password.
//
// A failed login costs the same whether or not the user exists (userdb
// verifies against a dummy hash), gives the same error, and is delayed by
// a growing amount per client IP and per account. An IP with many recent
// failures is locked out for a while; an account is never locked out, only
// slowed, so an attacker cannot deny its owner access.
package auth

import (
	"context"
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/userdb"
)

// Errors returned by the login checks.
var (
	// ErrBadCredentials: wrong user, password or digest. Never says which.
	ErrBadCredentials = userdb.ErrBadCredentials
	// ErrThrottled: too many recent failures from this client; try later.
	ErrThrottled = errors.New("too many failed logins, try again later")
	// ErrNoAPOP: the account has no APOP secret (or does not exist; the
	// caller cannot tell).
	ErrNoAPOP = errors.New("APOP not available for this account")
)

// Policy tunes the throttling. The zero value is not useful; use
// DefaultPolicy.
type Policy struct {
	// BaseDelay is the delay after the first failure; it doubles with each
	// further failure up to MaxDelay.
	BaseDelay, MaxDelay time.Duration
	// Window is how long failures are remembered.
	Window time.Duration
	// IPLockoutAfter failures from one IP within Window lock it out for
	// Lockout.
	IPLockoutAfter int
	Lockout        time.Duration
}

// DefaultPolicy is the production throttling policy.
var DefaultPolicy = Policy{
	BaseDelay:      500 * time.Millisecond,
	MaxDelay:       10 * time.Second,
	Window:         15 * time.Minute,
	IPLockoutAfter: 20,
	Lockout:        15 * time.Minute,
}

// maxTracked bounds the throttle's memory: beyond it, expired entries are
// dropped, and if none are expired, the oldest half.
const maxTracked = 100000

// Authenticator checks logins.
type Authenticator struct {
	users    *userdb.DB
	observer LoginObserver
	log      *slog.Logger
	policy   Policy

	mu    sync.Mutex
	byIP  map[string]*failures
	byAcc map[string]*failures
	sleep func(ctx context.Context, d time.Duration)
	cache *credCache
	// hashing bounds concurrent argon2id checks: each takes 19 MiB, so
	// 2,000 connections logging in at once must queue, not allocate 38 GB.
	hashing chan struct{}
	// verifyPassword is userdb.VerifyPassword (tests count calls).
	verifyPassword func(hash, password string) bool
	// checking: argon2id checks in progress, by credential (credCache.sum):
	// concurrent logins with the same credentials (a client opening many
	// connections at once, before the cache knows them) share one check.
	checking map[[32]byte]*check
	// release returns argon2id's memory to the OS after a quiet moment
	// (see releaseAfterHashing).
	release *time.Timer
}

// releaseQuiet is how long after the last argon2id check the memory of
// the checks is returned to the operating system.
const releaseQuiet = time.Second

// releaseAfterHashing schedules debug.FreeOSMemory for releaseQuiet after
// the last check. Each check allocates 19 MiB that is garbage as soon as
// it ends; Go keeps freed heap and returns it to the OS only slowly, so a
// burst of logins (a client reconnecting a thousand IMAP sessions) would
// otherwise leave hundreds of MiB resident for minutes. One forced GC
// after a burst is cheap: the live heap is small.
func (a *Authenticator) releaseAfterHashing() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.release == nil {
		a.release = time.AfterFunc(releaseQuiet, debug.FreeOSMemory)
		return
	}
	a.release.Reset(releaseQuiet)
}

// check is one argon2id check that concurrent logins wait for.
type check struct {
	done chan struct{}
	ok   bool
	err  error
}

// verify checks a password against a hash, waiting for a hashing slot;
// a check of the same hash and password already running is shared.
func (a *Authenticator) verify(ctx context.Context, hash, password string) (bool, error) {
	k := a.cache.sum(hash, password)
	a.mu.Lock()
	if c, ok := a.checking[k]; ok {
		a.mu.Unlock()
		select {
		case <-c.done:
			if c.err != nil && ctx.Err() == nil {
				// The other login gave up (its client left): check anew.
				return a.verify(ctx, hash, password)
			}
			return c.ok, c.err
		case <-ctx.Done():
			return false, fmt.Errorf("authenticate: %w", ctx.Err())
		}
	}
	c := &check{done: make(chan struct{})}
	if a.checking == nil {
		a.checking = map[[32]byte]*check{}
	}
	a.checking[k] = c
	a.mu.Unlock()
	c.ok, c.err = a.verifyOnce(ctx, hash, password)
	a.releaseAfterHashing()
	a.mu.Lock()
	delete(a.checking, k)
	a.mu.Unlock()
	close(c.done)
	return c.ok, c.err
}

func (a *Authenticator) verifyOnce(ctx context.Context, hash, password string) (bool, error) {
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("authenticate: %w", ctx.Err())
	}
	defer func() { <-a.hashing }()
	return a.verifyPassword(hash, password), nil
}

type failures struct {
	n      int
	last   time.Time
	locked time.Time // locked out until
}

// New returns an Authenticator over users.
func New(users *userdb.DB, policy Policy, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{users: users, log: log, policy: policy, byIP: map[string]*failures{}, byAcc: map[string]*failures{},
		cache:          newCredCache(credCacheTTL, credCacheMax),
		hashing:        make(chan struct{}, max(2, 2*runtime.GOMAXPROCS(0))),
		verifyPassword: userdb.VerifyPassword,
		sleep: func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}}
}

// Users returns the directory the authenticator checks against.
func (a *Authenticator) Users() *userdb.DB { return a.users }

// IPKey returns the throttling key of a remote address: the IP for IPv4,
// the /64 for IPv6.
func IPKey(remote net.Addr) string {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return remote.String()
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// IsLoopback reports whether the remote address is a loopback address.
func IsLoopback(remote net.Addr) bool {
	ap, err := netip.ParseAddrPort(remote.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// PlaintextAllowed reports whether a client may send a password in the
// clear-text mechanisms (USER/PASS, LOGIN, AUTH PLAIN/LOGIN): only over TLS
// or from loopback (RFC 2595 §2.2, RFC 4954 §4).
func PlaintextAllowed(tls bool, remote net.Addr) bool {
	return tls || IsLoopback(remote)
}

// LoginObserver is told of every login decision (metrics): proto "smtp",
// "pop3", "imap" or "web"; mech the mechanism ("PLAIN", "LOGIN", "USER", "APOP",
// or "password" when the caller did not say); result "ok", "failed" or
// "throttled". It must not block.
type LoginObserver interface {
	LoginResult(proto, mech, result string)
}

// SetObserver sets the LoginObserver; call it before serving.
func (a *Authenticator) SetObserver(o LoginObserver) { a.observer = o }

func (a *Authenticator) observe(proto, mech string, err error) {
	if a.observer == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, ErrThrottled):
		result = "throttled"
	case errors.Is(err, ErrBadCredentials):
		result = "failed"
	case err != nil:
		return // not a decision: the directory failed
	}
	a.observer.LoginResult(proto, mech, result)
}

// Login checks a user name and password for proto ("smtp", "pop3",
// "imap") from remote. On failure it waits out the throttle delay before
// returning.
func (a *Authenticator) Login(ctx context.Context, remote net.Addr, proto, user, password string) (userdb.Account, error) {
	return a.LoginMech(ctx, remote, proto, "password", user, password)
}

// LoginMech is Login for a named mechanism, which metrics count by. The
// password may be the account's own or one of its app passwords
// (userdb.AddAppPassword).
func (a *Authenticator) LoginMech(ctx context.Context, remote net.Addr, proto, mech, user, password string) (acc userdb.Account, err error) {
	return a.login(ctx, remote, proto, mech, user, password, true)
}

// LoginWeb checks a web console login: like Login, with proto "web" and
// the same throttling, but only the account's own password, not an app
// password (an app password stolen from a device must not open the
// console, where it could make more).
func (a *Authenticator) LoginWeb(ctx context.Context, remote net.Addr, user, password string) (userdb.Account, error) {
	return a.login(ctx, remote, "web", "password", user, password, false)
}

func (a *Authenticator) login(ctx context.Context, remote net.Addr, proto, mech, user, password string, apps bool) (acc userdb.Account, err error) {
	defer func() { a.observe(proto, mech, err) }()
	ip := IPKey(remote)
	if a.lockedOut(ip) {
		a.log.Warn("login refused: client locked out", "proto", proto, "remote", remote.String(), "user", user)
		return userdb.Account{}, ErrThrottled
	}
	acc, hash, err := a.users.Credentials(ctx, user)
	if err != nil && !errors.Is(err, userdb.ErrBadCredentials) {
		return userdb.Account{}, fmt.Errorf("authenticate: %w", err)
	}
	if err == nil && a.cache.hit(hash, password) {
		a.succeed(ip)
		return acc, nil
	}
	if err == nil && apps {
		ok, aerr := a.appPassword(ctx, acc, password)
		if aerr != nil {
			return userdb.Account{}, aerr
		}
		if ok {
			a.succeed(ip)
			return acc, nil
		}
	}
	if err != nil {
		// Unknown user: the same work as a wrong password.
		hash = a.users.DummyHash()
	}
	ok, verr := a.verify(ctx, hash, password)
	if verr != nil {
		return userdb.Account{}, verr
	}
	if err != nil || !ok {
		a.fail(ctx, remote, proto, user, ip, "bad password")
		return userdb.Account{}, ErrBadCredentials
	}
	if userdb.NeedsRehash(hash) {
		hash = a.rehash(ctx, acc, hash, password)
	}
	a.cache.add(hash, password)
	a.succeed(ip)
	return acc, nil
}

// appPassword reports whether password is one of acc's app passwords. The
// candidates are read from the directory on every login, so a revoked app
// password fails at once: the cache only remembers (hash, password) pairs,
// and a revoked one's hash is no longer among the candidates. Only a
// password in the app-password form costs a check here.
func (a *Authenticator) appPassword(ctx context.Context, acc userdb.Account, password string) (bool, error) {
	hashes, err := a.users.AppPasswordHashes(ctx, acc.ID, password)
	if err != nil {
		return false, fmt.Errorf("authenticate: %w", err)
	}
	for _, h := range hashes {
		if a.cache.hit(h, password) {
			return true, nil
		}
		ok, err := a.verify(ctx, h, password)
		if err != nil {
			return false, err
		}
		if ok {
			a.cache.add(h, password)
			return true, nil
		}
	}
	return false, nil
}

// rehash replaces a hash in a foreign scheme (an imported account's) or
// with old parameters by our argon2id, now that a login has proved the
// password, and returns the hash now stored. A failure is only logged:
// the login has succeeded, and the next one tries again.
func (a *Authenticator) rehash(ctx context.Context, acc userdb.Account, hash, password string) string {
	select {
	case a.hashing <- struct{}{}:
	case <-ctx.Done():
		return hash
	}
	nh, err := a.users.Rehash(ctx, acc.ID, hash, password)
	<-a.hashing
	a.releaseAfterHashing()
	if err != nil {
		a.log.Error("rehash password", "account", acc.Address, "scheme", userdb.HashScheme(hash), "err", err)
		return hash
	}
	if nh != hash {
		a.log.Info("password rehashed with argon2id", "account", acc.Address, "scheme", userdb.HashScheme(hash))
	}
	return nh
}

// APOP checks an RFC 1939 §7 APOP digest: lowercase hex MD5 of the
// greeting's timestamp (angle brackets included) followed by the account's
// APOP secret.
func (a *Authenticator) APOP(ctx context.Context, remote net.Addr, user, timestamp, digest string) (acc userdb.Account, err error) {
	defer func() { a.observe("pop3", "APOP", err) }()
	ip := IPKey(remote)
	if a.lockedOut(ip) {
		return userdb.Account{}, ErrThrottled
	}
	acc, secret, err := a.users.APOPSecret(ctx, user)
	if errors.Is(err, userdb.ErrNoAPOP) || errors.Is(err, userdb.ErrBadCredentials) {
		// Same answer for "no such user" and "no APOP secret", after
		// the same throttling: no user enumeration.
		a.fail(ctx, remote, "pop3", user, ip, "apop unavailable")
		return userdb.Account{}, ErrBadCredentials
	}
	if err != nil {
		return userdb.Account{}, fmt.Errorf("authenticate: %w", err)
	}
	sum := md5.Sum([]byte(timestamp + secret))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(digest))) != 1 {
		a.fail(ctx, remote, "pop3", user, ip, "bad apop digest")
		return userdb.Account{}, ErrBadCredentials
	}
	a.succeed(ip)
	return acc, nil
}

func (a *Authenticator) lockedOut(ip string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.byIP[ip]
	return f != nil && time.Now().Before(f.locked)
}

func (a *Authenticator) succeed(ip string) {
	a.mu.Lock()
	delete(a.byIP, ip)
	a.mu.Unlock()
}

// fail records a failure and sleeps the resulting delay.
func (a *Authenticator) fail(ctx context.Context, remote net.Addr, proto, user, ip, why string) {
	now := time.Now()
	acct := strings.ToLower(user)
	if len(acct) > 320 {
		acct = acct[:320]
	}
	a.mu.Lock()
	a.prune(now)
	fi := a.bump(a.byIP, ip, now)
	fa := a.bump(a.byAcc, acct, now)
	ipFailures, accFailures := fi.n, fa.n
	n := max(ipFailures, accFailures)
	locked := false
	if fi.n >= a.policy.IPLockoutAfter && a.policy.IPLockoutAfter > 0 {
		fi.locked = now.Add(a.policy.Lockout)
		locked = true
	}
	a.mu.Unlock()
	d := a.policy.BaseDelay
	for i := 1; i < n && d < a.policy.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, a.policy.MaxDelay)
	a.log.Warn("login failed", "proto", proto, "remote", remote.String(), "user", user, "reason", why,
		"ip_failures", ipFailures, "account_failures", accFailures, "delay", d, "locked_out", locked)
	if d > 0 {
		a.sleep(ctx, d)
	}
}

func (a *Authenticator) bump(m map[string]*failures, k string, now time.Time) *failures {
	f := m[k]
	if f == nil || now.Sub(f.last) > a.policy.Window {
		old := f
		f = &failures{}
		if old != nil {
			f.locked = old.locked
		}
		m[k] = f
	}
	f.n++
	f.last = now
	return f
}

func (a *Authenticator) prune(now time.Time) {
	for _, m := range []map[string]*failures{a.byIP, a.byAcc} {
		if len(m) < maxTracked {
			continue
		}
		for k, f := range m {
			if now.Sub(f.last) > a.policy.Window && now.After(f.locked) {
				delete(m, k)
			}
		}
		if len(m) >= maxTracked {
			i := 0
			for k := range m {
				if i%2 == 0 {
					delete(m, k)
				}
				i++
			}
		}
	}
}

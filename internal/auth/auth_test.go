package auth

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/jodmai/jodmai/internal/userdb"
)

const (
	bobPassword = "bob's password 1"
	bobSecret   = "bob's apop secret"
)

var ctx = context.Background()

// sleeps records the throttle delays an Authenticator asks for instead of
// sleeping them.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	s.d = nil
	return d
}

func newUsers(t *testing.T) *userdb.DB {
	t.Helper()
	db, err := userdb.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob@example.org", "amy@example.org", "nosecret@example.org"} {
		if _, err := db.AddAccount(ctx, u, bobPassword); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"bob@example.org", "amy@example.org"} {
		if err := db.SetAPOPSecret(ctx, u, bobSecret); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func newAuth(t *testing.T, users *userdb.DB, p Policy) (*Authenticator, *sleeps) {
	t.Helper()
	a := New(users, p, nil)
	s := &sleeps{}
	a.sleep = s.sleep
	return a, s
}

var testPolicy = Policy{
	BaseDelay:      100 * time.Millisecond,
	MaxDelay:       time.Second,
	Window:         time.Hour,
	IPLockoutAfter: 0, // off unless a test sets it
	Lockout:        time.Hour,
}

func addr(s string) net.Addr {
	ap, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return ap
}

const ms = time.Millisecond

func TestLoginSuccess(t *testing.T) {
	a, s := newAuth(t, newUsers(t), testPolicy)
	acc, err := a.Login(ctx, addr("192.0.2.1:1234"), "pop3", "Bob@EXAMPLE.org", bobPassword)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Address != "bob@example.org" || acc.ID == 0 {
		t.Errorf("Login returned %+v", acc)
	}
	if d := s.take(); len(d) != 0 {
		t.Errorf("a successful login slept %v", d)
	}
	if a.Users() == nil {
		t.Error("Users() is nil")
	}
}

func TestLoginThrottleGrows(t *testing.T) {
	a, s := newAuth(t, newUsers(t), testPolicy)
	ip := addr("192.0.2.1:1234")
	for i, user := range []string{"bob@example.org", "bob@example.org", "nobody@example.org", "bob@example.org", "amy@example.org", "bob@example.org", "bob@example.org"} {
		_, err := a.Login(ctx, ip, "smtp", user, "wrong password")
		if err != ErrBadCredentials {
			t.Fatalf("attempt %d (%s): err = %v, want ErrBadCredentials", i, user, err)
		}
	}
	// Per IP: 1, 2, 3 ... failures; the delay doubles to the cap.
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}
	if got := s.take(); !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
}

// TestAccountThrottle: failures against one account from many IPs slow
// that account down; other accounts from fresh IPs are not.
func TestAccountThrottle(t *testing.T) {
	a, s := newAuth(t, newUsers(t), testPolicy)
	for i := 0; i < 4; i++ {
		a.Login(ctx, addr(fmt.Sprintf("192.0.2.%d:1", 10+i)), "imap", "BOB@example.org", "wrong")
	}
	a.Login(ctx, addr("198.51.100.1:1"), "imap", "amy@example.org", "wrong")
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 100 * ms}
	if got := s.take(); !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}
	// The account is only slowed, never locked: the right password still
	// works, from any IP.
	if _, err := a.Login(ctx, addr("203.0.113.9:1"), "imap", "bob@example.org", bobPassword); err != nil {
		t.Errorf("owner locked out: %v", err)
	}
}

func TestIPLockout(t *testing.T) {
	p := testPolicy
	p.IPLockoutAfter = 3
	a, s := newAuth(t, newUsers(t), p)
	bad := addr("[2001:db8:1:2::10]:5555")
	for i := 0; i < 3; i++ {
		if _, err := a.Login(ctx, bad, "pop3", fmt.Sprintf("user%d@example.org", i), "wrong"); err != ErrBadCredentials {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	s.take()
	// Locked: even the right password is refused, without a check and
	// without another sleep.
	for _, from := range []string{"[2001:db8:1:2::10]:5555", "[2001:db8:1:2:ffff::1]:1"} { // same /64
		if _, err := a.Login(ctx, addr(from), "pop3", "bob@example.org", bobPassword); err != ErrThrottled {
			t.Errorf("Login from locked %s = %v, want ErrThrottled", from, err)
		}
		if _, err := a.APOP(ctx, addr(from), "bob@example.org", "<1@x>", apopDigest("<1@x>", bobSecret)); err != ErrThrottled {
			t.Errorf("APOP from locked %s = %v, want ErrThrottled", from, err)
		}
	}
	if d := s.take(); len(d) != 0 {
		t.Errorf("locked-out attempts slept %v", d)
	}
	// Another network is not affected.
	if _, err := a.Login(ctx, addr("[2001:db8:1:3::10]:1"), "pop3", "bob@example.org", bobPassword); err != nil {
		t.Errorf("Login from another /64: %v", err)
	}
	if _, err := a.Login(ctx, addr("192.0.2.1:1"), "pop3", "bob@example.org", bobPassword); err != nil {
		t.Errorf("Login from another IP: %v", err)
	}
}

func TestSuccessClearsIPCounter(t *testing.T) {
	a, s := newAuth(t, newUsers(t), testPolicy)
	ip := addr("192.0.2.7:1")
	a.Login(ctx, ip, "smtp", "x1@example.org", "wrong")
	a.Login(ctx, ip, "smtp", "x2@example.org", "wrong")
	if _, err := a.Login(ctx, ip, "smtp", "bob@example.org", bobPassword); err != nil {
		t.Fatal(err)
	}
	// A fresh account from the same IP starts at the base delay again.
	a.Login(ctx, ip, "smtp", "x3@example.org", "wrong")
	want := []time.Duration{100 * ms, 200 * ms, 100 * ms}
	if got := s.take(); !slices.Equal(got, want) {
		t.Errorf("delays = %v, want %v", got, want)
	}

	// With a lockout threshold: failures before a success do not count
	// towards it.
	p := testPolicy
	p.IPLockoutAfter = 3
	a, _ = newAuth(t, a.users, p)
	for round := 0; round < 3; round++ {
		for i := 0; i < 2; i++ {
			a.Login(ctx, ip, "smtp", fmt.Sprintf("r%d-%d@example.org", round, i), "wrong")
		}
		if _, err := a.Login(ctx, ip, "smtp", "bob@example.org", bobPassword); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

func apopDigest(ts, secret string) string {
	sum := md5.Sum([]byte(ts + secret))
	return hex.EncodeToString(sum[:])
}

func TestAPOP(t *testing.T) {
	a, s := newAuth(t, newUsers(t), testPolicy)
	const ts = "<1896.697170952@mail.example.org>"
	// RFC 1939 §7's own example.
	if got := apopDigest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"); got != "c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatalf("test helper digest = %s", got)
	}
	right := apopDigest(ts, bobSecret)

	acc, err := a.APOP(ctx, addr("192.0.2.1:1"), "bob@example.org", ts, right)
	if err != nil || acc.Address != "bob@example.org" {
		t.Fatalf("APOP right digest = %+v, %v", acc, err)
	}
	if _, err := a.APOP(ctx, addr("192.0.2.2:1"), "BOB@example.org", ts, strings.ToUpper(right)); err != nil {
		t.Errorf("APOP upper-case hex digest: %v", err)
	}
	if d := s.take(); len(d) != 0 {
		t.Errorf("successful APOP slept %v", d)
	}

	// Everything that fails fails the same way, after the same
	// throttling: no user enumeration.
	for i, tc := range []struct{ name, user, ts, digest string }{
		{"wrong digest", "bob@example.org", ts, apopDigest(ts, "wrong secret")},
		{"other timestamp", "bob@example.org", ts, apopDigest("<2@x>", bobSecret)},
		{"password as secret", "bob@example.org", ts, apopDigest(ts, bobPassword)},
		{"empty digest", "bob@example.org", ts, ""},
		{"truncated digest", "bob@example.org", ts, right[:31]},
		{"no secret", "nosecret@example.org", ts, apopDigest(ts, "")},
		{"no secret, password", "nosecret@example.org", ts, apopDigest(ts, bobPassword)},
		{"unknown user", "nobody@example.org", ts, apopDigest(ts, bobSecret)},
		{"garbage user", "not an address", ts, right},
	} {
		from := addr(fmt.Sprintf("198.51.100.%d:1", i+1)) // fresh IP: one failure each
		acc, err := a.APOP(ctx, from, tc.user, tc.ts, tc.digest)
		if err != ErrBadCredentials {
			t.Errorf("%s: err = %v, want exactly ErrBadCredentials", tc.name, err)
		}
		if acc != (userdb.Account{}) {
			t.Errorf("%s: returned account %+v", tc.name, acc)
		}
		if d := s.take(); len(d) != 1 {
			t.Errorf("%s: slept %v, want one delay", tc.name, d)
		}
	}
}

func TestDefaultSleepHonoursContext(t *testing.T) {
	a := New(nil, DefaultPolicy, nil)
	c, cancel := context.WithCancel(ctx)
	cancel()
	done := make(chan struct{})
	go func() {
		a.sleep(c, time.Hour)
		close(done)
	}()
	<-done // hangs (test timeout) if the sleep ignores ctx
}

// TestThrottleMemoryBounded: the failure maps do not grow without bound.
func TestThrottleMemoryBounded(t *testing.T) {
	a, _ := newAuth(t, nil, testPolicy)
	for i := 0; i < maxTracked+maxTracked/2; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		a.fail(ctx, addr(ip+":1"), "smtp", fmt.Sprintf("u%d", i), ip, "test")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.byIP) > maxTracked || len(a.byAcc) > maxTracked {
		t.Errorf("tracked %d IPs and %d accounts, cap %d", len(a.byIP), len(a.byAcc), maxTracked)
	}
}

type unixAddr string

func (u unixAddr) Network() string { return "unix" }
func (u unixAddr) String() string  { return string(u) }

func TestAddressPolicy(t *testing.T) {
	for _, tc := range []struct {
		addr     net.Addr
		key      string
		loopback bool
	}{
		{addr("127.0.0.1:25"), "127.0.0.1", true},
		{addr("127.9.9.9:25"), "127.9.9.9", true},
		{addr("[::1]:25"), "::/64", true},
		{addr("[::ffff:127.0.0.1]:25"), "127.0.0.1", true},
		{addr("192.0.2.1:25"), "192.0.2.1", false},
		{addr("[::ffff:192.0.2.1]:25"), "192.0.2.1", false},
		{addr("[2001:db8:a:b:c:d:e:f]:25"), "2001:db8:a:b::/64", false},
		{addr("[2001:db8:a:b::1]:9"), "2001:db8:a:b::/64", false},
		{addr("[2001:db8:a:c::1]:9"), "2001:db8:a:c::/64", false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 1, Zone: "eth0"}, "fe80::/64", false},
		{unixAddr("/run/jodmai.sock"), "/run/jodmai.sock", false},
		{unixAddr("localhost:25"), "localhost:25", false}, // a name is not an address
	} {
		if got := IPKey(tc.addr); got != tc.key {
			t.Errorf("IPKey(%s) = %q, want %q", tc.addr, got, tc.key)
		}
		if got := IsLoopback(tc.addr); got != tc.loopback {
			t.Errorf("IsLoopback(%s) = %v, want %v", tc.addr, got, tc.loopback)
		}
		if got := PlaintextAllowed(false, tc.addr); got != tc.loopback {
			t.Errorf("PlaintextAllowed(no TLS, %s) = %v, want %v", tc.addr, got, tc.loopback)
		}
		if !PlaintextAllowed(true, tc.addr) {
			t.Errorf("PlaintextAllowed(TLS, %s) = false", tc.addr)
		}
	}
}

// checker records the credentials a SASL server hands over.
type checker struct {
	calls [][2]string
	err   error
}

func (c *checker) check(user, pw string) error {
	c.calls = append(c.calls, [2]string{user, pw})
	return c.err
}

type step struct {
	resp      []byte
	challenge string
	done      bool
	err       error
}

func runSASL(t *testing.T, name string, s sasl.Server, steps []step) {
	t.Helper()
	for i, st := range steps {
		ch, done, err := s.Next(st.resp)
		if string(ch) != st.challenge || done != st.done || !errors.Is(err, st.err) {
			t.Errorf("%s step %d Next(%q) = %q, %v, %v; want %q, %v, %v", name, i, st.resp, ch, done, err, st.challenge, st.done, st.err)
			return
		}
	}
}

func TestPlainServer(t *testing.T) {
	errCheck := errors.New("check failed")
	long := strings.Repeat("x", maxSASLField+1)
	for _, tc := range []struct {
		name  string
		steps []step
		calls [][2]string
		cerr  error
	}{
		{"initial response", []step{{resp: []byte("\x00bob@example.org\x00pw"), done: true}},
			[][2]string{{"bob@example.org", "pw"}}, nil},
		{"no initial response", []step{{resp: nil, challenge: ""}, {resp: []byte("\x00bob\x00pw"), done: true}},
			[][2]string{{"bob", "pw"}}, nil},
		{"authzid = authcid", []step{{resp: []byte("bob\x00bob\x00pw"), done: true}},
			[][2]string{{"bob", "pw"}}, nil},
		{"password with spaces", []step{{resp: []byte("\x00bob\x00 p w "), done: true}},
			[][2]string{{"bob", " p w "}}, nil},
		{"check error propagates", []step{{resp: []byte("\x00bob\x00pw"), done: true, err: errCheck}},
			[][2]string{{"bob", "pw"}}, errCheck},
		{"proxy authzid refused", []step{{resp: []byte("admin\x00bob\x00pw"), done: true, err: ErrBadCredentials}}, nil, nil},
		{"empty response", []step{{resp: []byte{}, done: true, err: ErrSASLMalformed}}, nil, nil},
		{"no NUL", []step{{resp: []byte("bobpw"), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"one NUL", []step{{resp: []byte("bob\x00pw"), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"three NULs", []step{{resp: []byte("\x00bob\x00pw\x00"), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"empty authcid", []step{{resp: []byte("\x00\x00pw"), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"long authcid", []step{{resp: []byte("\x00" + long + "\x00pw"), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"long password", []step{{resp: []byte("\x00bob\x00" + long), done: true, err: ErrSASLMalformed}}, nil, nil},
		{"response after done", []step{
			{resp: []byte("\x00bob\x00pw"), done: true},
			{resp: []byte("\x00bob\x00pw"), done: true, err: sasl.ErrUnexpectedClientResponse},
		}, [][2]string{{"bob", "pw"}}, nil},
		{"second try after malformed", []step{
			{resp: []byte("garbage"), done: true, err: ErrSASLMalformed},
			{resp: []byte("\x00bob\x00pw"), done: true, err: sasl.ErrUnexpectedClientResponse},
		}, nil, nil},
	} {
		c := &checker{err: tc.cerr}
		runSASL(t, tc.name, NewPlainServer(c.check), tc.steps)
		if !slices.Equal(c.calls, tc.calls) {
			t.Errorf("%s: check calls = %q, want %q", tc.name, c.calls, tc.calls)
		}
	}
}

func TestLoginServer(t *testing.T) {
	errCheck := errors.New("check failed")
	long := []byte(strings.Repeat("x", maxSASLField+1))
	for _, tc := range []struct {
		name  string
		steps []step
		calls [][2]string
		cerr  error
	}{
		{"no initial response", []step{
			{resp: nil, challenge: "Username:"},
			{resp: []byte("bob@example.org"), challenge: "Password:"},
			{resp: []byte("pw"), done: true},
		}, [][2]string{{"bob@example.org", "pw"}}, nil},
		{"empty initial response", []step{
			{resp: []byte{}, challenge: "Username:"},
			{resp: []byte("bob"), challenge: "Password:"},
			{resp: []byte("pw"), done: true},
		}, [][2]string{{"bob", "pw"}}, nil},
		{"initial response is the user", []step{
			{resp: []byte("bob"), challenge: "Password:"},
			{resp: []byte("pw"), done: true},
		}, [][2]string{{"bob", "pw"}}, nil},
		{"check error propagates", []step{
			{resp: []byte("bob"), challenge: "Password:"},
			{resp: []byte("pw"), done: true, err: errCheck},
		}, [][2]string{{"bob", "pw"}}, errCheck},
		{"empty user", []step{
			{resp: nil, challenge: "Username:"},
			{resp: []byte{}, done: true, err: ErrSASLMalformed},
		}, nil, nil},
		{"long user", []step{
			{resp: long, done: true, err: ErrSASLMalformed},
		}, nil, nil},
		{"long password", []step{
			{resp: []byte("bob"), challenge: "Password:"},
			{resp: long, done: true, err: ErrSASLMalformed},
		}, nil, nil},
		{"response after done", []step{
			{resp: []byte("bob"), challenge: "Password:"},
			{resp: []byte("pw"), done: true},
			{resp: []byte("more"), done: true, err: sasl.ErrUnexpectedClientResponse},
		}, [][2]string{{"bob", "pw"}}, nil},
	} {
		c := &checker{err: tc.cerr}
		runSASL(t, tc.name, NewLoginServer(c.check), tc.steps)
		if !slices.Equal(c.calls, tc.calls) {
			t.Errorf("%s: check calls = %q, want %q", tc.name, c.calls, tc.calls)
		}
	}
}

// TestSASLWithLogin wires the SASL servers to Login the way the protocol
// servers do.
func TestSASLWithLogin(t *testing.T) {
	a, _ := newAuth(t, newUsers(t), testPolicy)
	from := addr("127.0.0.1:1")
	var got userdb.Account
	check := func(user, pw string) error {
		acc, err := a.Login(ctx, from, "smtp", user, pw)
		got = acc
		return err
	}
	if _, done, err := NewPlainServer(check).Next([]byte("\x00bob@example.org\x00" + bobPassword)); !done || err != nil || got.Address != "bob@example.org" {
		t.Errorf("PLAIN with the right password: done=%v err=%v account=%+v", done, err, got)
	}
	if _, _, err := NewPlainServer(check).Next([]byte("\x00bob@example.org\x00wrong")); err != ErrBadCredentials {
		t.Errorf("PLAIN with a wrong password: %v", err)
	}
}

// TestLoginImportedHashRehashed: an account imported with a Dovecot hash
// logs in with its old password; the hash is then our argon2id, and the
// old password still works (through the cache and without it).
func TestLoginImportedHashRehashed(t *testing.T) {
	users := newUsers(t)
	hashes := map[string]string{
		"sha512@example.org":   "{SHA512-CRYPT}$6$UDer5sgcK/6npnxU$/vepvgt4HJgMnHF3aN8jKSG.CkvMb5PHjzRQCoO8HiRS.TQVRKYYIFrqUN22Y9CLgPCLM3FcBwRqwDppkrtFm/",
		"ssha512@example.org":  "{SSHA512}NvzbD3PQjeY/AbP5h54B7fk5gfyF32wrhU/z9y/qwZXxcBOYOkvM9lTL1p9AlwFWwmfynlql82TFxx2TEQzIQ9zOExs=",
		"cram@example.org":     "{CRAM-MD5}38b57fd1a0c4b46c814aa05f20318edd71c455380655f2c0ac35c5b359528d29",
		"bcrypt@example.org":   "{BLF-CRYPT}$2y$05$U/Yjx.97Gm7gv2uQtNIDauSGOBTmHDMJGc/OYlkLKypH6hGqgyUCe",
		"argon2i@example.org":  "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$5tYRE3BpyEn8o37T5LV9fA$h/ySVHtOGL1qZ4o60WetmiwgJlmJMBinex5jYtLMCyc",
		"argon2id@example.org": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$mT+neXjHHRqmLQu+6sVz3w$Ft0GDIbnpDpmd6sbsmeCEdYVro6U7qTAorv6Au5EZ6w",
	}
	var recs []userdb.ImportRecord
	for u, h := range hashes {
		recs = append(recs, userdb.ImportRecord{Address: u, Hash: h})
	}
	if res, err := users.ImportBatch(ctx, recs, userdb.ImportOptions{}); err != nil {
		t.Fatal(err)
	} else {
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("%s: %v", r.Address, r.Err)
			}
		}
	}
	for u := range hashes {
		t.Run(u, func(t *testing.T) {
			a, s := newAuth(t, users, testPolicy)
			if _, err := a.Login(ctx, addr("192.0.2.1:1234"), "imap", u, "wrong horse"); err != ErrBadCredentials {
				t.Fatalf("wrong password: %v", err)
			}
			s.take()
			if _, err := a.Login(ctx, addr("192.0.2.1:1234"), "imap", u, "correct horse"); err != nil {
				t.Fatalf("old password: %v", err)
			}
			_, h, err := users.Credentials(ctx, u)
			if err != nil || userdb.NeedsRehash(h) {
				t.Fatalf("hash after login: %q, %v; want our argon2id", h, err)
			}
			if _, err := a.Login(ctx, addr("192.0.2.1:1234"), "imap", u, "correct horse"); err != nil {
				t.Fatalf("second login (cache): %v", err)
			}
			fresh, _ := newAuth(t, users, testPolicy)
			if _, err := fresh.Login(ctx, addr("192.0.2.1:1234"), "imap", u, "correct horse"); err != nil {
				t.Fatalf("login against the new hash: %v", err)
			}
		})
	}
}

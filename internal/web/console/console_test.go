package console_test

import (
	"bufio"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/smtp"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/web/console"
)

const (
	adminAddr = "admin@example.org"
	adminPass = "admin password 1"
	userAddr  = "user@example.org"
	userPass  = "user password 1"
)

// start runs a whole server with the https listener, an admin and a user.
func start(t testing.TB) *testenv.Env {
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) { c.Listen.HTTPS = "127.0.0.1:0" }})
	env.AddUser(t, adminAddr, adminPass)
	if err := env.Users.SetAdmin(context.Background(), adminAddr, true); err != nil {
		t.Fatal(err)
	}
	env.AddUser(t, userAddr, userPass)
	return env
}

// browser is an HTTPS client with a cookie jar, like a browser's.
type browser struct {
	t    testing.TB
	hc   *http.Client
	base string
	// last is the last response (after redirects) and its body.
	last *http.Response
	body string
}

func newBrowser(t testing.TB, env *testenv.Env) *browser {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: env.ClientTLS()}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{t: t, hc: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second}, base: "https://" + env.Addr("https")}
}

func (b *browser) do(req *http.Request) int {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	b.last, b.body = resp, string(body)
	return resp.StatusCode
}

func (b *browser) get(path string) int {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	return b.do(req)
}

// post posts a form; the token is added unless form has "csrf" already.
func (b *browser) post(path string, form url.Values) int {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the token in the last page.
func (b *browser) csrf() string {
	b.t.Helper()
	m := csrfRE.FindStringSubmatch(b.body)
	if m == nil {
		b.t.Fatalf("no CSRF token in %s", b.body)
	}
	return html.UnescapeString(m[1])
}

func (b *browser) login(address, password string) {
	b.t.Helper()
	b.get("/login")
	if code := b.post("/login", url.Values{"csrf": {b.csrf()}, "address": {address}, "password": {password}}); code != 200 || b.last.Request.URL.Path != "/account" {
		b.t.Fatalf("login %s: %d at %s: %s", address, code, b.last.Request.URL.Path, b.body)
	}
}

// form posts to path with the current page's token.
func (b *browser) form(path string, kv ...string) int {
	b.t.Helper()
	v := url.Values{"csrf": {b.csrf()}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return b.post(path, v)
}

func (b *browser) has(words ...string) {
	b.t.Helper()
	for _, w := range words {
		if !strings.Contains(b.body, w) {
			b.t.Errorf("page %s does not show %q:\n%s", b.last.Request.URL.Path, w, b.body)
		}
	}
}

var secretRE = regexp.MustCompile(`<code id="secret">([^<]+)</code>`)

func (b *browser) secret() string {
	b.t.Helper()
	m := secretRE.FindStringSubmatch(b.body)
	if m == nil {
		b.t.Fatalf("no secret shown in %s", b.body)
	}
	return html.UnescapeString(m[1])
}

func TestSecurityHeadersAndCookies(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	if code := b.get("/"); code != 200 || b.last.Request.URL.Path != "/login" {
		t.Fatalf("/ while logged out: %d at %s", code, b.last.Request.URL.Path)
	}
	for _, path := range []string{"/login", "/static/style.css"} {
		b.get(path)
		h := b.last.Header
		if got := h.Get("Content-Security-Policy"); got != console.ContentSecurityPolicy {
			t.Errorf("%s: CSP %q", path, got)
		}
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "style-src 'self'"} {
			if !strings.Contains(h.Get("Content-Security-Policy"), want) {
				t.Errorf("%s: CSP lacks %q", path, want)
			}
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Strict-Transport-Security") == "" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
	if !strings.Contains(b.body, "font") {
		t.Errorf("style sheet not served: %q", b.body)
	}
	// Nothing inline: no script at all, no style attribute or element.
	b.get("/login")
	for _, bad := range []string{"<script", "style=", "<style"} {
		if strings.Contains(b.body, bad) {
			t.Errorf("login page has %q", bad)
		}
	}

	// The login form's cookie has the same attributes as the session's.
	var loginCk *http.Cookie
	for _, c := range b.last.Cookies() {
		if c.Name == "__Host-jodmai-login" {
			loginCk = c
		}
	}
	if loginCk == nil || !loginCk.HttpOnly || !loginCk.Secure || loginCk.SameSite != http.SameSiteStrictMode || loginCk.Path != "/" {
		t.Errorf("login cookie %+v", loginCk)
	}

	// The login's cookies, seen without following the redirect.
	tok := b.csrf()
	nofollow := *b.hc
	nofollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ := http.NewRequest("POST", b.base+"/login", strings.NewReader(url.Values{"csrf": {tok}, "address": {userAddr}, "password": {userPass}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := nofollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-jodmai" {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie in %v", resp.Header["Set-Cookie"])
	}
	if !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || session.Domain != "" {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/, no Domain", session)
	}
	if len(session.Value) < 43 { // 256 bits in base64
		t.Errorf("session id %q is short", session.Value)
	}
	if code := b.get("/account"); code != 200 {
		t.Fatalf("account page after login: %d", code)
	}
	b.has(userAddr, "App passwords", "Change password")
	if cc := b.last.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("account page Cache-Control %q", cc)
	}

	// Logout ends the session on the server: the old cookie is useless.
	b.form("/logout")
	if b.last.Request.URL.Path != "/login" {
		t.Fatalf("after logout at %s", b.last.Request.URL.Path)
	}
	other := newBrowser(t, env)
	u, _ := url.Parse(b.base)
	other.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-jodmai", Value: session.Value}})
	if other.get("/account"); other.last.Request.URL.Path != "/login" {
		t.Errorf("a logged-out session id still opens %s", other.last.Request.URL.Path)
	}
}

func TestLoginFailures(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	b.get("/login")
	if code := b.form("/login", "address", userAddr, "password", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	b.has("Wrong address or password")
	if code := b.form("/login", "address", "nobody@example.org", "password", userPass); code != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", code)
	}
	b.has("Wrong address or password")
	// An app password does not open the console.
	acc, _ := env.Users.Account(context.Background(), userAddr)
	pw, _, err := env.Users.AddAppPassword(context.Background(), acc.ID, "phone")
	if err != nil {
		t.Fatal(err)
	}
	if code := b.form("/login", "address", userAddr, "password", pw); code != http.StatusUnauthorized {
		t.Fatalf("app password on the web login: %d", code)
	}
	b.login(userAddr, userPass)
}

func TestCSRFRefused(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	// The login form needs its token too (login CSRF).
	b.get("/login")
	if code := b.post("/login", url.Values{"address": {userAddr}, "password": {userPass}}); code != http.StatusForbidden {
		t.Fatalf("login without token: %d", code)
	}
	b.login(userAddr, userPass)
	tok := b.csrf()
	for _, tc := range []struct {
		name string
		form url.Values
	}{
		{"no token", url.Values{"name": {"evil"}}},
		{"empty token", url.Values{"csrf": {""}, "name": {"evil"}}},
		{"wrong token", url.Values{"csrf": {tok + "x"}, "name": {"evil"}}},
	} {
		if code := b.post("/account/app-passwords", tc.form); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, code)
		}
	}
	// The right token from another site's page: refused by Origin.
	req, _ := http.NewRequest("POST", b.base+"/account/app-passwords", strings.NewReader(url.Values{"csrf": {tok}, "name": {"evil"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if code := b.do(req); code != http.StatusForbidden {
		t.Errorf("cross-origin POST: %d, want 403", code)
	}
	// Another session's token is no good either.
	other := newBrowser(t, env)
	other.login(adminAddr, adminPass)
	if code := b.post("/account/app-passwords", url.Values{"csrf": {other.csrf()}, "name": {"evil"}}); code != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", code)
	}
	acc, _ := env.Users.Account(context.Background(), userAddr)
	if aps, _ := env.Users.AppPasswords(context.Background(), acc.ID); len(aps) != 0 {
		t.Fatalf("a refused POST made app passwords: %+v", aps)
	}
	// With the token it works.
	b.get("/account")
	if code := b.form("/account/app-passwords", "name", "ok"); code != 200 {
		t.Fatalf("with token: %d", code)
	}
	b.has("App password “ok” created")
}

func TestAdminPagesForbidden(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	b.login(userAddr, userPass)
	if strings.Contains(b.body, "/admin/") {
		t.Error("a non-admin sees admin links")
	}
	tok := b.csrf()
	for _, path := range []string{"/admin/", "/admin/accounts", "/admin/domains", "/admin/aliases", "/admin/account?address=admin@example.org"} {
		if code := b.get(path); code != http.StatusForbidden {
			t.Errorf("GET %s by a non-admin: %d, want 403", path, code)
		}
	}
	for _, path := range []string{"/admin/accounts", "/admin/domains", "/admin/account/admin", "/admin/account/delete"} {
		if code := b.post(path, url.Values{"csrf": {tok}, "address": {userAddr}, "admin": {"1"}, "name": {"x.example"}, "confirm": {adminAddr}}); code != http.StatusForbidden {
			t.Errorf("POST %s by a non-admin: %d, want 403", path, code)
		}
	}
	if acc, _ := env.Users.Account(context.Background(), userAddr); acc.Admin {
		t.Fatal("a non-admin made itself admin")
	}
	// Logged out: GET redirects to the login, POST is refused.
	anon := newBrowser(t, env)
	if anon.get("/admin/accounts"); anon.last.Request.URL.Path != "/login" {
		t.Errorf("anonymous admin page at %s", anon.last.Request.URL.Path)
	}
	// The flag is read on every request: granted, the pages open at once.
	env.Users.SetAdmin(context.Background(), userAddr, true)
	if code := b.get("/admin/accounts"); code != 200 {
		t.Errorf("after the flag was set: %d", code)
	}
}

func TestAdminAccounts(t *testing.T) {
	env := start(t)
	ctx := context.Background()
	b := newBrowser(t, env)
	b.login(adminAddr, adminPass)
	b.get("/admin/accounts")
	b.has(adminAddr, userAddr, "1–2 of 2 accounts")

	// Add with a generated password, shown once.
	if code := b.form("/admin/accounts", "address", "new@example.org", "quota", "1MiB"); code != 200 {
		t.Fatalf("add: %d", code)
	}
	b.has("Account new@example.org created", "1 MiB")
	pw := b.secret()
	if _, err := env.Server.Auth.Login(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "imap", "new@example.org", pw); err != nil {
		t.Fatalf("generated password does not log in: %v", err)
	}
	b.get("/admin/account?address=new@example.org")
	if strings.Contains(b.body, pw) {
		t.Error("the generated password is shown twice")
	}
	b.form("/admin/account/quota", "address", "new@example.org", "quota", "2GiB")
	b.has("Quota set to 2 GiB")
	b.form("/admin/account/admin", "address", "new@example.org", "admin", "1")
	b.has("new@example.org is now an admin")
	if acc, _ := env.Users.Account(ctx, "new@example.org"); !acc.Admin || acc.QuotaBytes != 2<<30 {
		t.Fatalf("account %+v", acc)
	}
	b.form("/admin/account/password", "address", "new@example.org")
	b.has("Password reset")
	if _, err := env.Server.Auth.Login(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "imap", "new@example.org", b.secret()); err != nil {
		t.Fatalf("reset password does not log in: %v", err)
	}
	// Deleting needs the address typed again.
	b.form("/admin/account/delete", "address", "new@example.org", "confirm", "other@example.org")
	b.has("Type the account")
	b.form("/admin/account/delete", "address", "new@example.org", "confirm", "new@example.org")
	b.has("Account new@example.org and its mail deleted")
	if _, err := env.Users.Account(ctx, "new@example.org"); err == nil {
		t.Fatal("account still there")
	}
	// An admin cannot lock themself out.
	b.get("/admin/account?address=" + adminAddr)
	b.form("/admin/account/admin", "address", adminAddr, "admin", "0")
	b.has("cannot remove your own admin flag")
	b.form("/admin/account/delete", "address", adminAddr, "confirm", adminAddr)
	b.has("cannot delete your own account")

	// Search and paging.
	b.get("/admin/accounts?q=USER")
	b.has("1–1 of 1 accounts", "address=user%40example.org")
	if strings.Contains(b.body, "address=admin%40example.org") {
		t.Error("search for user lists the admin")
	}
	// Domains and aliases.
	b.get("/admin/domains")
	b.form("/admin/domains", "name", "Second.Example")
	b.has("Domain second.example added", "second.example")
	b.form("/admin/domains/delete", "name", "example.org")
	b.has("still has accounts")
	b.get("/admin/aliases")
	b.form("/admin/aliases", "address", "@second.example", "targets", userAddr+", "+adminAddr)
	b.has("Alias @second.example added", "catch-all")
	if targets, err := env.Users.Alias(ctx, "@second.example"); err != nil || len(targets) != 2 {
		t.Fatalf("catch-all %v, %v", targets, err)
	}
	b.form("/admin/aliases", "address", "bad", "targets", userAddr)
	b.has("invalid")
	b.form("/admin/aliases/delete", "address", "@second.example")
	b.has("Alias @second.example deleted")
	b.get("/admin/domains")
	b.form("/admin/domains/delete", "name", "second.example")
	b.has("Domain second.example deleted")
}

func TestSelfService(t *testing.T) {
	env := start(t)
	ctx := context.Background()
	b := newBrowser(t, env)
	b.login(userAddr, userPass)
	env.Users.SetQuota(ctx, userAddr, 10<<20)
	env.Deliver(t, userAddr, []byte("From: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"))
	b.get("/account")
	b.has("of 10 MiB used", "1 message.")

	// A second session of the same account ends when the password changes.
	other := newBrowser(t, env)
	other.login(userAddr, userPass)
	b.form("/account/password", "current", "wrong", "new", "new password 2", "confirm", "new password 2")
	b.has("current password is wrong")
	b.form("/account/password", "current", userPass, "new", "new password 2", "confirm", "different 2")
	b.has("new passwords differ")
	b.form("/account/password", "current", userPass, "new", "short", "confirm", "short")
	b.has("New password refused")
	b.form("/account/password", "current", userPass, "new", "new password 2", "confirm", "new password 2")
	b.has("Password changed")
	if other.get("/account"); other.last.Request.URL.Path != "/login" {
		t.Error("the other session survived the password change")
	}
	if _, err := env.Server.Auth.LoginWeb(ctx, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, userAddr, "new password 2"); err != nil {
		t.Fatal(err)
	}

	b.form("/account/apop", "secret", "apop secret 1")
	b.has("APOP secret set", "An APOP secret is set")
	b.form("/account/apop", "clear", "1")
	b.has("APOP secret cleared", "No APOP secret is set")
	if acc, _ := env.Users.Account(ctx, userAddr); acc.HasAPOP {
		t.Fatal("APOP secret not cleared")
	}
	// The session lived on through its own password change; a change
	// made elsewhere (jodmai user passwd, another process) ends it.
	if b.get("/account"); b.last.Request.URL.Path != "/account" {
		t.Fatal("own password change ended the session")
	}
	if err := env.Users.SetPassword(ctx, userAddr, "set by the admin 3"); err != nil {
		t.Fatal(err)
	}
	if b.get("/account"); b.last.Request.URL.Path != "/login" {
		t.Error("a password set outside the console left the session open")
	}
	// A deleted account's session ends, also when the address is made
	// again (another account).
	b.login(userAddr, "set by the admin 3")
	env.Users.DelAccount(ctx, userAddr)
	env.AddUser(t, userAddr, "set by the admin 3")
	if b.get("/account"); b.last.Request.URL.Path != "/login" {
		t.Error("a session outlived its account")
	}
}

// TestAppPasswordProtocols: an app password made in the console logs in
// to IMAP, POP3 and SMTP, and no longer once revoked there.
func TestAppPasswordProtocols(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	b.login(userAddr, userPass)
	b.form("/account/app-passwords", "name", "Thunderbird <laptop>")
	b.has("Thunderbird &lt;laptop&gt;")
	pw := b.secret()
	for name, login := range protocolLogins(env) {
		if err := login(userAddr, pw); err != nil {
			t.Errorf("%s login with the app password: %v", name, err)
		}
	}
	m := regexp.MustCompile(`name="id" value="(\d+)"`).FindStringSubmatch(b.body)
	if m == nil {
		t.Fatalf("no revoke form: %s", b.body)
	}
	b.form("/account/app-passwords/revoke", "id", m[1])
	b.has("App password revoked", "None yet")
	for name, login := range protocolLogins(env) {
		if err := login(userAddr, pw); err == nil {
			t.Errorf("%s login with the revoked app password succeeded", name)
		}
		if err := login(userAddr, userPass); err != nil {
			t.Errorf("%s login with the account's password after revoking: %v", name, err)
		}
	}
}

// protocolLogins returns a login over each mail protocol, on loopback
// (where plain-text logins are allowed).
func protocolLogins(env *testenv.Env) map[string]func(user, pass string) error {
	return map[string]func(user, pass string) error{
		"IMAP LOGIN": func(user, pass string) error {
			c, err := imapclient.DialInsecure(env.Addr("imap"), nil)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Login(user, pass).Wait()
		},
		"IMAP AUTHENTICATE PLAIN": func(user, pass string) error {
			c, err := imapclient.DialInsecure(env.Addr("imap"), nil)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Authenticate(sasl.NewPlainClient("", user, pass))
		},
		"POP3 USER/PASS": func(user, pass string) error { return pop3Login(env.Addr("pop3"), user, pass) },
		"SMTP AUTH PLAIN": func(user, pass string) error {
			c, err := smtp.Dial(env.Addr("submission"))
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.StartTLS(env.ClientTLS()); err != nil {
				return err
			}
			host, _, _ := net.SplitHostPort(env.Addr("submission"))
			return c.Auth(smtp.PlainAuth("", user, pass, host))
		},
	}
}

func pop3Login(addr, user, pass string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		if err == nil && !strings.HasPrefix(s, "+OK") {
			err = errors.New(strings.TrimSpace(s))
		}
		return s, err
	}
	if _, err := line(); err != nil {
		return err
	}
	fmt.Fprintf(conn, "USER %s\r\n", user)
	if _, err := line(); err != nil {
		return err
	}
	fmt.Fprintf(conn, "PASS %s\r\n", pass)
	_, err = line()
	fmt.Fprintf(conn, "QUIT\r\n")
	return err
}

// TestPlainHTTPServesNoConsole: the http listener redirects console paths
// to https and serves none of them.
func TestPlainHTTPServesNoConsole(t *testing.T) {
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) {
		c.Listen.HTTPS = "127.0.0.1:0"
		c.Listen.HTTP = "127.0.0.1:0"
	}})
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	for _, path := range []string{"/login", "/account", "/admin/accounts", "/static/style.css"} {
		resp, err := hc.Get("http://" + env.Addr("http") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
			t.Errorf("http %s: %d to %q, want a redirect to https", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := hc.PostForm("http://"+env.Addr("http")+"/login", url.Values{"address": {userAddr}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("http POST /login: %d", resp.StatusCode)
	}
}

// TestAppleProfile: a logged-in account downloads a configuration profile
// naming its address and the server's IMAP and submission ports; it is a
// well-formed property list, without any password.
func TestAppleProfile(t *testing.T) {
	env := start(t)
	b := newBrowser(t, env)
	if b.get("/account/apple.mobileconfig"); b.last.Request.URL.Path != "/login" {
		t.Fatalf("profile while logged out at %s", b.last.Request.URL.Path)
	}
	b.login(userAddr, userPass)
	b.has("/account/apple.mobileconfig")
	if code := b.get("/account/apple.mobileconfig"); code != 200 {
		t.Fatalf("profile: %d", code)
	}
	if ct := b.last.Header.Get("Content-Type"); ct != "application/x-apple-aspen-config" {
		t.Errorf("Content-Type %q", ct)
	}
	_, imapPort, _ := net.SplitHostPort(env.Addr("imaps"))
	_, subPort, _ := net.SplitHostPort(env.Addr("submissions"))
	b.has("<string>"+userAddr+"</string>", "<string>"+testenv.Hostname+"</string>", "com.apple.mail.managed", "EmailTypeIMAP",
		"<integer>"+imapPort+"</integer>", "<integer>"+subPort+"</integer>")
	if strings.Contains(b.body, userPass) || strings.Contains(b.body, "Password</key>\n<string>") {
		t.Error("profile carries a password")
	}
	d := xml.NewDecoder(strings.NewReader(b.body))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("profile is not well-formed XML: %v", err)
		}
	}
}

// Package console is jodmai's web console, served on the https listener
// only: self-service pages for every account (password, APOP secret, app
// passwords, quota usage) and admin pages for accounts with the admin flag
// (domains, accounts, aliases, the outbound queue, the DNS check and the
// delivery log, the TLS certificates and DKIM keys).
//
// Pages are server-rendered html/template with the templates and the one
// style sheet embedded in the binary; there is no JavaScript. Security
// rests on four things, all in this file and session.go:
//   - logins go through auth.Authenticator.LoginWeb, so they share the
//     per-IP throttle and lockout of SMTP, POP3 and IMAP, and accept only
//     the account's own password, never an app password;
//   - sessions live in memory on the server (bounded, with idle and
//     absolute expiry); the browser holds a random 256-bit id in a
//     __Host- cookie that is HttpOnly, Secure and SameSite=Strict;
//   - every POST carries the session's CSRF token (the login form a token
//     bound to a pre-login cookie) and is refused with 403 without it, or
//     when its Origin is another site's;
//   - every response has a Content-Security-Policy that allows nothing
//     but this origin's style sheet and images, and form posts to itself.
//
// The account is read from the directory on every request, so a deleted
// account, a cleared admin flag or a changed password (which ends the
// account's sessions, whoever changed it) takes effect at once.
//
// Adding a page: write its template in templates/ (it defines "content",
// inside layout.html) and its handler (a pageFunc), and add one route line
// in routes with its access level. Admin pages add a link to nav in
// layout.html.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/tlscert"
	"github.com/jodmai/jodmai/internal/userdb"
)

//go:embed templates/*.html static
var assets embed.FS

// ContentSecurityPolicy is sent with every console response: nothing runs,
// nothing is framed, forms only post here, styles and images only come
// from here.
const ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// maxForm bounds a POST body: the largest form is an alias's targets.
const maxForm = 64 << 10

// Console serves the web console. Exported fields are its configuration;
// set them before the first request.
type Console struct {
	// Auth checks logins (LoginWeb) and current passwords.
	Auth *auth.Authenticator
	// Users is the directory the pages show and change.
	Users *userdb.DB
	// Store is the mail store, for quota usage and removing a deleted
	// account's mail. Nil: usage is not shown and deletion removes only
	// the account.
	Store *store.Store
	// Hostname is the server's name, shown in the page titles and in the
	// client settings.
	Hostname string
	// Services are the client services with their public ports
	// (dnsrecords.Services), for the Apple configuration profile.
	Services []dnsrecords.Service
	// Queue is the outbound queue, for the queue pages. Nil: they say
	// there is none.
	Queue *queue.Queue
	// DNSChecker returns a checker of the DNS records (with the current
	// configuration), for the DNS check page. Nil: no DNS check.
	DNSChecker func() *dnscheck.Checker
	// Events is the mail event log, for the delivery log page. Nil: no
	// delivery log.
	Events *eventlog.Log
	// TLS holds the certificates, for the certificates and keys page.
	// Nil: none shown.
	TLS *tlscert.Manager
	// DataDir is the data directory, where the DKIM keys live. "": no
	// DKIM keys shown or made.
	DataDir string
	// Log receives one line per change made and per refused request.
	// Nil discards.
	Log *slog.Logger

	once     sync.Once
	handler  http.Handler
	sessions *sessions
	pages    map[string]*template.Template
}

// access is who may use a route.
type access int

const (
	public access = iota // anyone: the login page
	user                 // a logged-in account
	admin                // a logged-in account with the admin flag
)

// request is what a page handler gets: the logged-in session and account
// (for public pages, possibly none).
type request struct {
	*http.Request
	sess *session
	acc  userdb.Account
}

// pageFunc handles one route.
type pageFunc func(w http.ResponseWriter, r *request)

// routes lists every page: method and path, who may use it, the handler.
func (c *Console) routes() []struct {
	pattern string
	access  access
	h       pageFunc
} {
	return []struct {
		pattern string
		access  access
		h       pageFunc
	}{
		{"GET /{$}", public, c.root},
		{"GET /login", public, c.loginPage},
		{"POST /login", public, c.login},
		{"POST /logout", user, c.logout},

		{"GET /account", user, c.accountPage},
		{"POST /account/password", user, c.changePassword},
		{"POST /account/apop", user, c.setAPOP},
		{"POST /account/app-passwords", user, c.addAppPassword},
		{"POST /account/app-passwords/revoke", user, c.revokeAppPassword},
		{"GET /account/apple.mobileconfig", user, c.appleProfile},
		{"GET /account/vacation", user, c.vacationPage},
		{"POST /account/vacation", user, c.setVacation},
		{"GET /account/forwarding", user, c.forwardingPage},
		{"POST /account/forwarding", user, c.setForwarding},

		{"GET /admin/{$}", admin, c.adminRoot},
		{"GET /admin/domains", admin, c.domainsPage},
		{"POST /admin/domains", admin, c.addDomain},
		{"POST /admin/domains/delete", admin, c.delDomain},
		{"GET /admin/accounts", admin, c.accountsPage},
		{"POST /admin/accounts", admin, c.addAccount},
		{"GET /admin/account", admin, c.adminAccountPage},
		{"POST /admin/account/quota", admin, c.setQuota},
		{"POST /admin/account/password", admin, c.resetPassword},
		{"POST /admin/account/admin", admin, c.setAdmin},
		{"POST /admin/account/delete", admin, c.delAccount},
		{"POST /admin/account/vacation", admin, c.adminSetVacation},
		{"GET /admin/aliases", admin, c.aliasesPage},
		{"POST /admin/aliases", admin, c.addAlias},
		{"POST /admin/aliases/delete", admin, c.delAlias},
		{"GET /admin/queue", admin, c.queuePage},
		{"GET /admin/queue/message", admin, c.queueMessagePage},
		{"POST /admin/queue/retry", admin, c.queueOp("retry", "made due now", (*queue.Queue).Retry)},
		{"POST /admin/queue/hold", admin, c.queueOp("hold", "held", (*queue.Queue).Hold)},
		{"POST /admin/queue/release", admin, c.queueOp("release", "released", (*queue.Queue).Release)},
		{"POST /admin/queue/delete", admin, c.queueOp("delete", "deleted", (*queue.Queue).Delete)},
		{"GET /admin/dns", admin, c.dnsPage},
		{"GET /admin/log", admin, c.logPage},
		{"GET /admin/keys", admin, c.keysPage},
		{"POST /admin/keys/dkim", admin, c.dkimKeygen},
		{"POST /admin/keys/dkim/retire", admin, c.dkimRetire},
	}
}

// Handler returns the console's handler. It answers every path the
// console knows and 404 for the rest.
func (c *Console) Handler() http.Handler {
	c.once.Do(c.init)
	return c.handler
}

func (c *Console) init() {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.sessions = newSessions()
	c.pages = parsePages()
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "max-age=3600")
		files.ServeHTTP(w, r)
	})))
	for _, rt := range c.routes() {
		mux.Handle(rt.pattern, c.wrap(rt.access, rt.h))
	}
	c.handler = mux
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"size":      humanSize,
	"details":   eventDetails,
	"sizeInput": func(n int64) string { return config.Size(n).String() },
	"date":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"datesec":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"day":       func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"clock":     func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
	"messages": func(n int64) string {
		if n == 1 {
			return "1 message"
		}
		return fmt.Sprintf("%d messages", n)
	},
	"pct": func(used, limit int64) int64 {
		if limit <= 0 {
			return 0
		}
		return min(100, used*100/limit)
	},
}

// humanSize formats a byte count for people: "43 B", "1.5 KiB", "10 MiB".
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n), ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		f, unit = f/1024, u
		if f < 1024 {
			break
		}
	}
	if f < 10 && f != float64(int64(f)) {
		return fmt.Sprintf("%.1f %s", f, unit)
	}
	return fmt.Sprintf("%.0f %s", f, unit)
}

// parsePages parses each page template with the layout.
func parsePages() map[string]*template.Template {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", n))
	}
	return pages
}

// securityHeaders are sent with every console response.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// wrap applies to a page what every page needs: the security headers, the
// session, the access check and, for a POST, the CSRF check.
func (c *Console) wrap(level access, h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "no-store")
		req := &request{Request: r}
		if ck, err := r.Cookie(sessionCookie); err == nil {
			req.sess = c.sessions.get(ck.Value)
		}
		if req.sess != nil {
			// The account afresh: deleted, or its password changed
			// anywhere, the session ends; its admin flag is the current one.
			acc, hash, err := c.Users.Credentials(r.Context(), req.sess.address)
			switch {
			case errors.Is(err, userdb.ErrBadCredentials) || err == nil && (acc.ID != req.sess.accountID || !c.sessions.passwordIs(req.sess, hash)):
				c.sessions.drop(req.sess)
				req.sess = nil
			case err != nil:
				c.serverError(w, r, "look up session account", err)
				return
			default:
				req.acc = acc
			}
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !c.csrfOK(req) {
				c.Log.Warn("web: refused POST without a valid CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
				c.errorPage(w, req, http.StatusForbidden, "This form has expired or did not come from this site. Go back, reload the page and try again.")
				return
			}
		}
		if level >= user && req.sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
			} else {
				c.errorPage(w, req, http.StatusForbidden, "Log in first.")
			}
			return
		}
		if level == admin && !req.acc.Admin {
			c.errorPage(w, req, http.StatusForbidden, "This page is for administrators.")
			return
		}
		h(w, req)
	})
}

// csrfOK checks a POST's CSRF token: the session's, or for the login form
// (no session yet) the token bound to the login cookie. A POST whose
// Origin names another site is refused whatever its token.
func (c *Console) csrfOK(r *request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != "https://"+r.Host {
		return false
	}
	if err := r.ParseForm(); err != nil {
		return false
	}
	tok := r.PostForm.Get("csrf")
	if r.sess != nil && tokenOK(tok, r.sess.csrf) {
		return true
	}
	if r.URL.Path == "/login" {
		if ck, err := r.Cookie(loginCookie); err == nil && ck.Value != "" {
			return tokenOK(tok, c.sessions.loginToken(ck.Value))
		}
	}
	return false
}

// view is what every page template gets.
type view struct {
	// Title is the page's title.
	Title string
	// Hostname is the server's name.
	Hostname string
	// Account is the logged-in account (zero when none).
	Account userdb.Account
	// LoggedIn says whether Account is set.
	LoggedIn bool
	// CSRF is the token every form carries.
	CSRF string
	// Flash and Error are messages from the previous request; Secret a
	// password to show once.
	Flash, Error, Secret string
	// Path is the page's path, to mark the current page in the
	// navigation.
	Path string
	// Data is the page's own data.
	Data any
}

// render writes page name with data, with the session's flash.
func (c *Console) render(w http.ResponseWriter, r *request, status int, name, title string, data any) {
	v := view{Title: title, Hostname: c.Hostname, Data: data, Path: r.URL.Path}
	if r.sess != nil {
		v.Account, v.LoggedIn, v.CSRF = r.acc, true, r.sess.csrf
		v.Flash, v.Error, v.Secret = c.sessions.takeFlash(r.sess)
	}
	c.write(w, r, status, name, v)
}

func (c *Console) write(w http.ResponseWriter, r *request, status int, name string, v view) {
	t := c.pages[name]
	if t == nil {
		c.serverError(w, r.Request, "render", fmt.Errorf("no template %s", name))
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		c.serverError(w, r.Request, "render "+name, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write([]byte(b.String()))
}

// errorPage shows a message with an error status.
func (c *Console) errorPage(w http.ResponseWriter, r *request, status int, msg string) {
	v := view{Title: http.StatusText(status), Hostname: c.Hostname, Error: msg}
	if r.sess != nil {
		v.Account, v.LoggedIn, v.CSRF = r.acc, true, r.sess.csrf
	}
	c.write(w, r, status, "error.html", v)
}

// serverError logs err and answers 500 without details.
func (c *Console) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.Log.Error("web: "+what, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// done ends a POST: leaves a message for the next page and redirects to
// it (303: the browser GETs it, and a reload does not post again).
func (c *Console) done(w http.ResponseWriter, r *request, to, msg, errMsg, secret string) {
	c.sessions.setFlash(r.sess, msg, errMsg, secret)
	http.Redirect(w, r.Request, to, http.StatusSeeOther)
}

// remoteAddr is the client's address for the login throttle (the
// listener has already replaced it by the PROXY protocol's, if any).
func remoteAddr(r *http.Request) net.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

// usage returns the account's storage use, or ok false without a store.
func (c *Console) usage(ctx context.Context, id int64) (bytes, messages int64, ok bool) {
	if c.Store == nil {
		return 0, 0, false
	}
	a, err := c.Store.Account(ctx, id)
	if err != nil {
		c.Log.Error("web: open account for usage", "account", id, "err", err)
		return 0, 0, false
	}
	defer a.Release()
	bytes, messages, err = a.Usage(ctx)
	if err != nil {
		c.Log.Error("web: usage", "account", id, "err", err)
		return 0, 0, false
	}
	return bytes, messages, true
}

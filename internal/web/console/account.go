package console

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/userdb"
)

// This file: logging in and out, and the self-service page of every
// account.

func (c *Console) root(w http.ResponseWriter, r *request) {
	if r.sess == nil {
		http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r.Request, "/account", http.StatusSeeOther)
}

// loginPage shows the login form, with a fresh login cookie and the CSRF
// token bound to it.
func (c *Console) loginPage(w http.ResponseWriter, r *request) {
	if r.sess != nil {
		http.Redirect(w, r.Request, "/account", http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "", "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *request, status int, address, errMsg string) {
	// The browser's login cookie is kept, so that two login pages open
	// at once both work; it only binds the form's token to this browser.
	var ck string
	if old, err := r.Cookie(loginCookie); err == nil && len(old.Value) == 43 {
		ck = old.Value
	} else {
		ck = randomToken()
	}
	setCookie(w, loginCookie, ck, int(IdleTimeout.Seconds()))
	c.write(w, r, status, "login.html", view{Title: "Log in", Hostname: c.Hostname, CSRF: c.sessions.loginToken(ck), Error: errMsg, Data: address})
}

// login checks the address and password (auth.LoginWeb: the account's
// own password only, throttled like every login) and starts a session
// with a new id (no session fixation).
func (c *Console) login(w http.ResponseWriter, r *request) {
	address, password := r.PostForm.Get("address"), r.PostForm.Get("password")
	acc, err := c.Auth.LoginWeb(r.Context(), remoteAddr(r.Request), address, password)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		c.showLogin(w, r, http.StatusTooManyRequests, address, "Too many failed logins from your address. Try again later.")
		return
	case errors.Is(err, auth.ErrBadCredentials):
		c.showLogin(w, r, http.StatusUnauthorized, address, "Wrong address or password.")
		return
	case err != nil:
		c.serverError(w, r.Request, "login", err)
		return
	}
	_, hash, err := c.Users.Credentials(r.Context(), acc.Address)
	if err != nil {
		c.serverError(w, r.Request, "login", err)
		return
	}
	if r.sess != nil {
		c.sessions.drop(r.sess)
	}
	id, _ := c.sessions.create(acc.ID, acc.Address, hash)
	setCookie(w, sessionCookie, id, int(MaxAge.Seconds()))
	setCookie(w, loginCookie, "", -1)
	c.Log.Info("web login", "account", acc.Address, "remote", r.RemoteAddr)
	http.Redirect(w, r.Request, "/account", http.StatusSeeOther)
}

// keepSession lets the session of r live on after its own password
// change: it records the new password hash.
func (c *Console) keepSession(r *request) {
	if _, hash, err := c.Users.Credentials(r.Context(), r.acc.Address); err == nil {
		c.sessions.renewPassword(r.sess, hash)
	}
}

func (c *Console) logout(w http.ResponseWriter, r *request) {
	c.sessions.drop(r.sess)
	setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r.Request, "/login", http.StatusSeeOther)
}

// accountData is the account page's data.
type accountData struct {
	// UsedBytes and Messages are the store's usage; HasUsage says whether
	// they are known.
	UsedBytes, Messages int64
	HasUsage            bool
	// AppPasswords are the account's app passwords.
	AppPasswords []userdb.AppPassword
}

func (c *Console) accountPage(w http.ResponseWriter, r *request) {
	var d accountData
	d.UsedBytes, d.Messages, d.HasUsage = c.usage(r.Context(), r.acc.ID)
	var err error
	if d.AppPasswords, err = c.Users.AppPasswords(r.Context(), r.acc.ID); err != nil {
		c.serverError(w, r.Request, "list app passwords", err)
		return
	}
	c.render(w, r, http.StatusOK, "account.html", "Your account", d)
}

// changePassword needs the current password, checked like a login (and
// throttled like one), then ends the account's other sessions.
func (c *Console) changePassword(w http.ResponseWriter, r *request) {
	cur, p1, p2 := r.PostForm.Get("current"), r.PostForm.Get("new"), r.PostForm.Get("confirm")
	if _, err := c.Auth.LoginWeb(r.Context(), remoteAddr(r.Request), r.acc.Address, cur); err != nil {
		if errors.Is(err, auth.ErrBadCredentials) || errors.Is(err, auth.ErrThrottled) {
			c.done(w, r, "/account", "", "The current password is wrong.", "")
			return
		}
		c.serverError(w, r.Request, "check current password", err)
		return
	}
	if p1 != p2 {
		c.done(w, r, "/account", "", "The new passwords differ.", "")
		return
	}
	if err := c.Users.SetPassword(r.Context(), r.acc.Address, p1); err != nil {
		if errors.Is(err, userdb.ErrInvalid) {
			c.done(w, r, "/account", "", "New password refused: at least 8 characters, no line breaks.", "")
			return
		}
		c.serverError(w, r.Request, "set password", err)
		return
	}
	c.sessions.dropAccount(r.acc.ID, r.sess)
	c.keepSession(r)
	c.Log.Info("web: password changed", "account", r.acc.Address)
	c.done(w, r, "/account", "Password changed. Your other web sessions were logged out.", "", "")
}

// setAPOP sets the APOP secret, or clears it with clear=1.
func (c *Console) setAPOP(w http.ResponseWriter, r *request) {
	secret := r.PostForm.Get("secret")
	if r.PostForm.Get("clear") != "" {
		secret = ""
	} else if secret == "" {
		c.done(w, r, "/account", "", "Enter an APOP secret, or clear it.", "")
		return
	}
	if err := c.Users.SetAPOPSecret(r.Context(), r.acc.Address, secret); err != nil {
		if errors.Is(err, userdb.ErrInvalid) {
			c.done(w, r, "/account", "", "APOP secret refused: at least 8 characters, no line breaks.", "")
			return
		}
		c.serverError(w, r.Request, "set apop secret", err)
		return
	}
	msg := "APOP secret set."
	if secret == "" {
		msg = "APOP secret cleared."
	}
	c.Log.Info("web: apop secret changed", "account", r.acc.Address, "set", secret != "")
	c.done(w, r, "/account", msg, "", "")
}

// addAppPassword makes an app password and shows it once.
func (c *Console) addAppPassword(w http.ResponseWriter, r *request) {
	pw, ap, err := c.Users.AddAppPassword(r.Context(), r.acc.ID, r.PostForm.Get("name"))
	switch {
	case errors.Is(err, userdb.ErrInvalid):
		c.done(w, r, "/account", "", "Give the app password a name of 1 to 64 characters.", "")
		return
	case errors.Is(err, userdb.ErrTooMany):
		c.done(w, r, "/account", "", "You have too many app passwords: revoke one first.", "")
		return
	case err != nil:
		c.serverError(w, r.Request, "add app password", err)
		return
	}
	c.Log.Info("web: app password created", "account", r.acc.Address, "app_password", ap.ID, "name", ap.Name)
	c.done(w, r, "/account", "App password “"+ap.Name+"” created: enter it in the mail program with your address as the user name. Copy it now: it is not shown again.", "", pw)
}

func (c *Console) revokeAppPassword(w http.ResponseWriter, r *request) {
	id, err := strconv.ParseInt(r.PostForm.Get("id"), 10, 64)
	if err != nil {
		c.done(w, r, "/account", "", "No such app password.", "")
		return
	}
	if err := c.Users.DelAppPassword(r.Context(), r.acc.ID, id); err != nil {
		if errors.Is(err, userdb.ErrNotFound) {
			c.done(w, r, "/account", "", "No such app password.", "")
			return
		}
		c.serverError(w, r.Request, "revoke app password", err)
		return
	}
	c.Log.Info("web: app password revoked", "account", r.acc.Address, "app_password", id)
	c.done(w, r, "/account", "App password revoked: it no longer logs in.", "", "")
}

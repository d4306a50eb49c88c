package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/userdb"
)

// This file: the admin pages (domains, accounts, aliases). They call the
// same userdb functions as the jodmai domain, user and alias commands.

// perPage is the number of accounts on a page of the accounts list.
const perPage = 50

func (c *Console) adminRoot(w http.ResponseWriter, r *request) {
	http.Redirect(w, r.Request, "/admin/accounts", http.StatusSeeOther)
}

// adminError turns a directory error into a message for the admin: the
// error itself when it is about what the admin asked (invalid, exists,
// not found), else a generic one, with the error logged.
func (c *Console) adminError(r *request, what string, err error) string {
	if errors.Is(err, userdb.ErrInvalid) || errors.Is(err, userdb.ErrExists) || errors.Is(err, userdb.ErrNotFound) {
		return err.Error()
	}
	c.Log.Error("web: "+what, "admin", r.acc.Address, "err", err)
	return what + " failed; the server log says why"
}

// --- domains ---

func (c *Console) domainsPage(w http.ResponseWriter, r *request) {
	infos, err := c.Users.DomainInfos(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	c.render(w, r, http.StatusOK, "domains.html", "Domains", infos)
}

func (c *Console) addDomain(w http.ResponseWriter, r *request) {
	name := strings.ToLower(strings.TrimSpace(r.PostForm.Get("name")))
	if err := c.Users.AddDomain(r.Context(), name); err != nil {
		c.done(w, r, "/admin/domains", "", c.adminError(r, "add domain", err), "")
		return
	}
	c.Log.Info("web: domain added", "admin", r.acc.Address, "domain", name)
	c.done(w, r, "/admin/domains", "Domain "+name+" added.", "", "")
}

func (c *Console) delDomain(w http.ResponseWriter, r *request) {
	name := strings.ToLower(strings.TrimSpace(r.PostForm.Get("name")))
	infos, err := c.Users.DomainInfos(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	for _, d := range infos {
		if d.Name == name && d.Accounts+d.Aliases > 0 {
			c.done(w, r, "/admin/domains", "", "Domain "+name+" still has accounts or aliases: delete them first.", "")
			return
		}
	}
	if err := c.Users.DelDomain(r.Context(), name); err != nil {
		c.done(w, r, "/admin/domains", "", c.adminError(r, "delete domain", err), "")
		return
	}
	c.Log.Info("web: domain deleted", "admin", r.acc.Address, "domain", name)
	c.done(w, r, "/admin/domains", "Domain "+name+" deleted.", "", "")
}

// --- accounts ---

// accountsData is the accounts list's data.
type accountsData struct {
	// Query and Domain are the search; Page the page number from 1.
	Query, Domain string
	Page          int
	// Result is the page of accounts found.
	Result userdb.AccountPage
	// First and Last number the accounts shown (from 1); Prev and Next
	// are the neighbouring pages (0: none).
	First, Last, Prev, Next int
	// Domains are the local domains, for the add form.
	Domains []string
}

func (c *Console) accountsPage(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	d := accountsData{Query: strings.TrimSpace(q.Get("q")), Domain: strings.TrimSpace(q.Get("domain"))}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 1)
	var err error
	if d.Result, err = c.Users.SearchAccounts(r.Context(), d.Query, d.Domain, (d.Page-1)*perPage, perPage); err != nil {
		c.serverError(w, r.Request, "list accounts", err)
		return
	}
	if d.Domains, err = c.Users.Domains(r.Context()); err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	if n := len(d.Result.Accounts); n > 0 {
		d.First, d.Last = (d.Page-1)*perPage+1, (d.Page-1)*perPage+n
	}
	if d.Page > 1 {
		d.Prev = d.Page - 1
	}
	if d.Page*perPage < d.Result.Total {
		d.Next = d.Page + 1
	}
	c.render(w, r, http.StatusOK, "accounts.html", "Accounts", d)
}

// accountURL is the admin page of an account.
func accountURL(address string) string {
	return "/admin/account?" + url.Values{"address": {address}}.Encode()
}

// addAccount creates an account with the password given, or a generated
// one shown once, and the quota given.
func (c *Console) addAccount(w http.ResponseWriter, r *request) {
	address := strings.TrimSpace(r.PostForm.Get("address"))
	password, secret := r.PostForm.Get("password"), ""
	if password == "" {
		password = userdb.GeneratePassword()
		secret = password
	}
	var quota config.Size
	if s := strings.TrimSpace(r.PostForm.Get("quota")); s != "" {
		var err error
		if quota, err = config.ParseSize(s); err != nil {
			c.done(w, r, "/admin/accounts", "", "Quota: "+err.Error(), "")
			return
		}
	}
	acc, err := c.Users.AddAccount(r.Context(), address, password)
	if err != nil {
		c.done(w, r, "/admin/accounts", "", c.adminError(r, "add account", err), "")
		return
	}
	if quota > 0 {
		if err := c.Users.SetQuota(r.Context(), acc.Address, int64(quota)); err != nil {
			c.done(w, r, accountURL(acc.Address), "", c.adminError(r, "set quota", err), secret)
			return
		}
	}
	c.Log.Info("web: account added", "admin", r.acc.Address, "account", acc.Address)
	msg := "Account " + acc.Address + " created."
	if secret != "" {
		msg += " Its password is below: give it to its owner, it is not shown again."
	}
	c.done(w, r, accountURL(acc.Address), msg, "", secret)
}

// adminAccountData is an account's admin page's data.
type adminAccountData struct {
	// Acc is the account shown.
	Acc userdb.Account
	// UsedBytes, Messages and HasUsage are its store usage.
	UsedBytes, Messages int64
	HasUsage            bool
	// AppPasswords counts its app passwords.
	AppPasswords int
	// Self says whether the admin is looking at their own account.
	Self bool
	// Vacation is its vacation reply.
	Vacation vacationData
}

// target returns the account a form or query names in "address".
func (c *Console) target(w http.ResponseWriter, r *request, address string) (userdb.Account, bool) {
	acc, err := c.Users.Account(r.Context(), address)
	if err == nil {
		return acc, true
	}
	if errors.Is(err, userdb.ErrNotFound) || errors.Is(err, userdb.ErrInvalid) {
		c.errorPage(w, r, http.StatusNotFound, "No such account.")
	} else {
		c.serverError(w, r.Request, "look up account", err)
	}
	return userdb.Account{}, false
}

func (c *Console) adminAccountPage(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.URL.Query().Get("address"))
	if !ok {
		return
	}
	d := adminAccountData{Acc: acc, Self: acc.ID == r.acc.ID}
	d.UsedBytes, d.Messages, d.HasUsage = c.usage(r.Context(), acc.ID)
	aps, err := c.Users.AppPasswords(r.Context(), acc.ID)
	if err != nil {
		c.serverError(w, r.Request, "list app passwords", err)
		return
	}
	d.AppPasswords = len(aps)
	v, err := c.Users.Vacation(r.Context(), acc.ID)
	if err != nil {
		c.serverError(w, r.Request, "read vacation", err)
		return
	}
	d.Vacation = newVacationData(v, time.Now())
	d.Vacation.Target = acc.Address
	c.render(w, r, http.StatusOK, "admin-account.html", acc.Address, d)
}

func (c *Console) setQuota(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.PostForm.Get("address"))
	if !ok {
		return
	}
	var quota config.Size
	if s := strings.ToLower(strings.TrimSpace(r.PostForm.Get("quota"))); s != "" && s != "none" && s != "unlimited" {
		var err error
		if quota, err = config.ParseSize(s); err != nil {
			c.done(w, r, accountURL(acc.Address), "", "Quota: "+err.Error(), "")
			return
		}
	}
	if err := c.Users.SetQuota(r.Context(), acc.Address, int64(quota)); err != nil {
		c.done(w, r, accountURL(acc.Address), "", c.adminError(r, "set quota", err), "")
		return
	}
	c.Log.Info("web: quota set", "admin", r.acc.Address, "account", acc.Address, "bytes", int64(quota))
	msg := "Quota removed."
	if quota > 0 {
		msg = "Quota set to " + humanSize(int64(quota)) + "."
	}
	c.done(w, r, accountURL(acc.Address), msg, "", "")
}

// resetPassword sets a new password, generated (and shown once) when none
// is given, and logs the account's web sessions out.
func (c *Console) resetPassword(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.PostForm.Get("address"))
	if !ok {
		return
	}
	password, secret := r.PostForm.Get("password"), ""
	if password == "" {
		password = userdb.GeneratePassword()
		secret = password
	}
	if err := c.Users.SetPassword(r.Context(), acc.Address, password); err != nil {
		c.done(w, r, accountURL(acc.Address), "", c.adminError(r, "reset password", err), "")
		return
	}
	keep := (*session)(nil)
	if acc.ID == r.acc.ID {
		keep = r.sess
		c.keepSession(r)
	}
	c.sessions.dropAccount(acc.ID, keep)
	c.Log.Info("web: password reset", "admin", r.acc.Address, "account", acc.Address)
	msg := "Password reset."
	if secret != "" {
		msg += " The new password is below: it is not shown again."
	}
	c.done(w, r, accountURL(acc.Address), msg, "", secret)
}

// setAdmin sets or clears the admin flag. An admin cannot clear their own:
// the last admin would lock everyone out of these pages.
func (c *Console) setAdmin(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.PostForm.Get("address"))
	if !ok {
		return
	}
	on := r.PostForm.Get("admin") == "1"
	if !on && acc.ID == r.acc.ID {
		c.done(w, r, accountURL(acc.Address), "", "You cannot remove your own admin flag; another admin can.", "")
		return
	}
	if err := c.Users.SetAdmin(r.Context(), acc.Address, on); err != nil {
		c.done(w, r, accountURL(acc.Address), "", c.adminError(r, "set admin flag", err), "")
		return
	}
	c.Log.Info("web: admin flag set", "admin", r.acc.Address, "account", acc.Address, "on", on)
	msg := acc.Address + " is now an admin."
	if !on {
		msg = acc.Address + " is no longer an admin."
	}
	c.done(w, r, accountURL(acc.Address), msg, "", "")
}

// delAccount deletes an account and its mail, once the admin has typed
// its address again.
func (c *Console) delAccount(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.PostForm.Get("address"))
	if !ok {
		return
	}
	if acc.ID == r.acc.ID {
		c.done(w, r, accountURL(acc.Address), "", "You cannot delete your own account here.", "")
		return
	}
	if !strings.EqualFold(strings.TrimSpace(r.PostForm.Get("confirm")), acc.Address) {
		c.done(w, r, accountURL(acc.Address), "", "Type the account's address to confirm its deletion.", "")
		return
	}
	if _, err := c.Users.DelAccount(r.Context(), acc.Address); err != nil {
		c.done(w, r, accountURL(acc.Address), "", c.adminError(r, "delete account", err), "")
		return
	}
	c.sessions.dropAccount(acc.ID, nil)
	msg := "Account " + acc.Address + " and its mail deleted."
	if c.Store != nil {
		if err := c.Store.RemoveAccount(r.Context(), acc.ID); err != nil {
			c.Log.Error("web: remove deleted account's mail", "account", acc.Address, "err", err)
			msg = "Account " + acc.Address + " deleted, but its mail was not removed; the server log says why."
		}
	}
	c.Log.Info("web: account deleted", "admin", r.acc.Address, "account", acc.Address)
	c.done(w, r, "/admin/accounts", msg, "", "")
}

// --- aliases ---

func (c *Console) aliasesPage(w http.ResponseWriter, r *request) {
	aliases, err := c.Users.Aliases(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list aliases", err)
		return
	}
	c.render(w, r, http.StatusOK, "aliases.html", "Aliases", aliases)
}

// addAlias adds an alias, or a catch-all for "@domain"; targets are
// separated by commas, spaces or line breaks.
func (c *Console) addAlias(w http.ResponseWriter, r *request) {
	address := strings.TrimSpace(r.PostForm.Get("address"))
	targets := strings.FieldsFunc(r.PostForm.Get("targets"), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t'
	})
	if err := c.Users.AddAlias(r.Context(), address, targets); err != nil {
		c.done(w, r, "/admin/aliases", "", c.adminError(r, "add alias", err), "")
		return
	}
	c.Log.Info("web: alias added", "admin", r.acc.Address, "alias", address)
	c.done(w, r, "/admin/aliases", "Alias "+address+" added.", "", "")
}

func (c *Console) delAlias(w http.ResponseWriter, r *request) {
	address := strings.TrimSpace(r.PostForm.Get("address"))
	if err := c.Users.DelAlias(r.Context(), address); err != nil {
		c.done(w, r, "/admin/aliases", "", c.adminError(r, "delete alias", err), "")
		return
	}
	c.Log.Info("web: alias deleted", "admin", r.acc.Address, "alias", address)
	c.done(w, r, "/admin/aliases", "Alias "+address+" deleted.", "", "")
}

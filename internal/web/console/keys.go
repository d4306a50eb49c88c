package console

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/tlscert"
)

// This file: the certificates and keys page: the TLS certificates in use
// and each local domain's DKIM keys, which the admin generates and
// retires as jodmai dkim keygen and retire do. A rotation is a generate
// (new selectors sign beside the old ones) then, once the new records are
// published, a retire of each old selector.

// keysData is the certificates and keys page's data.
type keysData struct {
	Certificates []certView
	Domains      []dkimDomain
}

// certView is a certificate with how long it has left.
type certView struct {
	tlscert.CertInfo
	DaysLeft int
}

// dkimDomain is a local domain's DKIM keys.
type dkimDomain struct {
	Domain string
	Keys   []remote.Key
	// Error is why the keys could not be read.
	Error string
}

func (c *Console) keysPage(w http.ResponseWriter, r *request) {
	var d keysData
	if c.TLS != nil {
		for _, ci := range c.TLS.Certificates() {
			d.Certificates = append(d.Certificates, certView{CertInfo: ci, DaysLeft: int(time.Until(ci.NotAfter).Hours() / 24)})
		}
	}
	domains, err := c.Users.Domains(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	if c.DataDir != "" {
		for _, dom := range domains {
			keys, err := remote.LoadKeys(c.DataDir, dom)
			dd := dkimDomain{Domain: dom, Keys: keys}
			if err != nil {
				c.Log.Error("web: load DKIM keys", "domain", dom, "err", err)
				dd.Error = "The keys could not be read; the server log says why."
			}
			d.Domains = append(d.Domains, dd)
		}
	}
	c.render(w, r, http.StatusOK, "keys.html", "Certificates and keys", d)
}

// localDomain says whether the form's domain is a local one, and returns
// it lower-cased.
func (c *Console) localDomain(r *request) (string, bool, error) {
	dom := strings.ToLower(strings.TrimSpace(r.PostForm.Get("domain")))
	domains, err := c.Users.Domains(r.Context())
	return dom, slices.Contains(domains, dom), err
}

func (c *Console) dkimKeygen(w http.ResponseWriter, r *request) {
	dom, ok, err := c.localDomain(r)
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	if !ok || c.DataDir == "" {
		c.done(w, r, "/admin/keys", "", "No local domain "+dom+".", "")
		return
	}
	keys, err := remote.Keygen(c.DataDir, dom)
	if err != nil {
		c.Log.Error("web: DKIM keygen", "admin", r.acc.Address, "domain", dom, "err", err)
		c.done(w, r, "/admin/keys", "", "Generating keys failed; the server log says why.", "")
		return
	}
	sels := make([]string, len(keys))
	for i, k := range keys {
		sels[i] = k.Selector
	}
	c.Log.Info("web: DKIM keys generated", "admin", r.acc.Address, "domain", dom, "selectors", sels)
	c.done(w, r, "/admin/keys", "New DKIM keys for "+dom+": "+strings.Join(sels, ", ")+". They sign within a minute: publish their records now.", "", "")
}

func (c *Console) dkimRetire(w http.ResponseWriter, r *request) {
	dom, ok, err := c.localDomain(r)
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	sel := strings.TrimSpace(r.PostForm.Get("selector"))
	if !ok || c.DataDir == "" {
		c.done(w, r, "/admin/keys", "", "No local domain "+dom+".", "")
		return
	}
	keys, err := remote.LoadKeys(c.DataDir, dom)
	if err == nil && len(keys) == 1 && keys[0].Selector == sel {
		c.done(w, r, "/admin/keys", "", "Selector "+sel+" is the last key of "+dom+": generate new keys first, publish them, then retire this one.", "")
		return
	}
	if err == nil {
		err = remote.RetireKey(c.DataDir, dom, sel)
	}
	if errors.Is(err, remote.ErrNoKey) {
		c.done(w, r, "/admin/keys", "", "No DKIM key "+sel+" for "+dom+".", "")
		return
	}
	if err != nil {
		c.Log.Error("web: DKIM retire", "admin", r.acc.Address, "domain", dom, "selector", sel, "err", err)
		c.done(w, r, "/admin/keys", "", "Retiring the key failed; the server log says why.", "")
		return
	}
	c.Log.Info("web: DKIM key retired", "admin", r.acc.Address, "domain", dom, "selector", sel)
	c.done(w, r, "/admin/keys", "DKIM selector "+sel+" of "+dom+" retired: it stops signing within a minute. Keep its DNS record a few days more.", "", "")
}

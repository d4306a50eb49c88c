package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/jodmai/jodmai/internal/userdb"
)

// This file: the forwarding page of every account.

// forwardingData is the forwarding page's data.
type forwardingData struct {
	F userdb.Forward
	// To is F.To one per line, for the form.
	To string
	// Max is userdb.MaxForwards.
	Max int
}

func (c *Console) forwardingPage(w http.ResponseWriter, r *request) {
	f, err := c.Users.Forward(r.Context(), r.acc.ID)
	if err != nil {
		c.serverError(w, r.Request, "read forwarding", err)
		return
	}
	c.render(w, r, http.StatusOK, "forwarding.html", "Forwarding", forwardingData{F: f, To: strings.Join(f.To, "\n"), Max: userdb.MaxForwards})
}

func (c *Console) setForwarding(w http.ResponseWriter, r *request) {
	to := strings.FieldsFunc(r.PostForm.Get("to"), func(r rune) bool { return r == '\n' || r == '\r' || r == ',' || r == ' ' || r == ';' })
	f := userdb.Forward{To: to, KeepCopy: r.PostForm.Get("keep") != ""}
	if err := c.Users.SetForward(r.Context(), r.acc.ID, f); err != nil {
		if errors.Is(err, userdb.ErrInvalid) {
			c.done(w, r, "/account/forwarding", "", "Forwarding refused: up to 5 valid addresses, not your own.", "")
			return
		}
		c.serverError(w, r.Request, "set forwarding", err)
		return
	}
	c.Log.Info("web: forwarding changed", "account", r.acc.Address, "addresses", len(to), "keep_copy", f.KeepCopy)
	msg := "Forwarding off."
	if len(to) > 0 {
		msg = "Forwarding saved."
	}
	c.done(w, r, "/account/forwarding", msg, "", "")
}

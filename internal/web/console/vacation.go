package console

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/userdb"
)

// This file: the vacation (auto-reply) page of every account, and the
// admin's view of it on an account's page.

// dateLayout is the form of an <input type="date">.
const dateLayout = "2006-01-02"

// vacationData is the vacation page's data: the setting, with its dates
// in the form's layout ("" for none).
type vacationData struct {
	V          userdb.Vacation
	Start, End string
	// Active: replies go out now.
	Active bool
	// Target is who the form edits: "" for the logged-in account, else
	// the address (admin).
	Target string
}

func newVacationData(v userdb.Vacation, now time.Time) vacationData {
	d := vacationData{V: v, Active: v.Active(now)}
	if !v.Start.IsZero() {
		d.Start = v.Start.UTC().Format(dateLayout)
	}
	if !v.End.IsZero() {
		// End is exclusive: the form shows the last day.
		d.End = v.End.UTC().Add(-24 * time.Hour).Format(dateLayout)
	}
	return d
}

func (c *Console) vacationPage(w http.ResponseWriter, r *request) {
	v, err := c.Users.Vacation(r.Context(), r.acc.ID)
	if err != nil {
		c.serverError(w, r.Request, "read vacation", err)
		return
	}
	c.render(w, r, http.StatusOK, "vacation.html", "Vacation reply", newVacationData(v, time.Now()))
}

// parseVacation reads the vacation form; errMsg says what is wrong.
func parseVacation(form interface{ Get(string) string }) (v userdb.Vacation, errMsg string) {
	v = userdb.Vacation{
		Enabled: form.Get("enabled") != "",
		Subject: strings.TrimSpace(form.Get("subject")),
		Body:    form.Get("body"),
	}
	if s := strings.TrimSpace(form.Get("start")); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return v, "The first day is not a date."
		}
		v.Start = t
	}
	if s := strings.TrimSpace(form.Get("end")); s != "" {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return v, "The last day is not a date."
		}
		// The whole last day (UTC) is included.
		v.End = t.Add(24 * time.Hour)
	}
	return v, ""
}

// saveVacation stores the form's setting for account id; it returns the
// message for the user, and whether it was saved.
func (c *Console) saveVacation(r *request, id int64, address string) (msg string, ok bool) {
	v, errMsg := parseVacation(r.PostForm)
	if errMsg != "" {
		return errMsg, false
	}
	if err := c.Users.SetVacation(r.Context(), id, v); err != nil {
		if errors.Is(err, userdb.ErrInvalid) {
			return "Vacation reply refused: a message is needed, the subject is one line of at most 200 characters, the message at most 8000, and the last day is not before the first.", false
		}
		c.Log.Error("web: set vacation", "account", address, "err", err)
		return "The vacation reply could not be saved; try again.", false
	}
	c.Log.Info("web: vacation changed", "account", address, "by", r.acc.Address, "enabled", v.Enabled)
	if v.Enabled {
		return "Vacation reply saved and on.", true
	}
	return "Vacation reply saved and off.", true
}

func (c *Console) setVacation(w http.ResponseWriter, r *request) {
	msg, ok := c.saveVacation(r, r.acc.ID, r.acc.Address)
	if !ok {
		c.done(w, r, "/account/vacation", "", msg, "")
		return
	}
	c.done(w, r, "/account/vacation", msg, "", "")
}

// adminSetVacation is setVacation for the account named by the form's
// address (admin).
func (c *Console) adminSetVacation(w http.ResponseWriter, r *request) {
	acc, ok := c.target(w, r, r.PostForm.Get("address"))
	if !ok {
		return
	}
	msg, ok := c.saveVacation(r, acc.ID, acc.Address)
	if !ok {
		c.done(w, r, accountURL(acc.Address), "", msg, "")
		return
	}
	c.done(w, r, accountURL(acc.Address), msg, "", "")
}

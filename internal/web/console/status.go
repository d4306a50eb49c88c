package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/eventlog"
)

// This file: the DNS check and delivery log pages, which read what the
// jodmai dns-check and log commands read (dnscheck.Checker, eventlog).

// dnsCheckTimeout bounds the lookups of one DNS check page.
const dnsCheckTimeout = 30 * time.Second

// dnsDomain is the check of one local domain.
type dnsDomain struct {
	Domain   string
	Results  []dnscheck.Result
	Problems int
}

func (c *Console) dnsPage(w http.ResponseWriter, r *request) {
	if c.DNSChecker == nil {
		c.errorPage(w, r, http.StatusNotFound, "This server has no DNS checker.")
		return
	}
	domains, err := c.Users.Domains(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list domains", err)
		return
	}
	if d := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("domain"))); d != "" {
		if !slices.Contains(domains, d) {
			c.errorPage(w, r, http.StatusNotFound, "No local domain "+d+".")
			return
		}
		domains = []string{d}
	}
	ctx, cancel := context.WithTimeout(r.Context(), dnsCheckTimeout)
	defer cancel()
	checker := c.DNSChecker()
	out := make([]dnsDomain, len(domains))
	for i, d := range domains {
		rs := checker.Check(ctx, d)
		out[i] = dnsDomain{Domain: d, Results: rs, Problems: dnscheck.Problems(rs)}
	}
	c.render(w, r, http.StatusOK, "dns.html", "DNS check", out)
}

// logData is the delivery log page's data.
type logData struct {
	// From, To, MsgID, QID, Kind and Since are the search as typed.
	From, To, MsgID, QID, Kind, Since string
	// Kinds are the event kinds to choose from.
	Kinds []string
	// Events are the matches, newest first; Limit the most shown.
	Events []eventlog.Event
	Limit  int
	// SinceError says why Since was not understood.
	SinceError string
}

// logLimit is the most events the delivery log page shows.
const logLimit = 200

func (c *Console) logPage(w http.ResponseWriter, r *request) {
	if c.Events == nil {
		c.errorPage(w, r, http.StatusNotFound, "This server keeps no event log.")
		return
	}
	q := r.URL.Query()
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	d := logData{From: get("from"), To: get("to"), MsgID: get("msgid"), QID: get("qid"), Kind: get("kind"), Since: get("since"), Limit: logLimit,
		Kinds: []string{eventlog.Received, eventlog.Delivered, eventlog.Queued, eventlog.Sent, eventlog.Deferred, eventlog.Bounced, eventlog.Rejected}}
	if d.Kind != "" && !slices.Contains(d.Kinds, d.Kind) {
		d.Kind = ""
	}
	query := eventlog.Query{From: d.From, To: d.To, MsgID: d.MsgID, QID: d.QID, Kind: d.Kind, Limit: logLimit}
	if d.Since != "" {
		t, err := eventlog.ParseSince(d.Since, time.Now())
		if err != nil {
			d.SinceError = "Since: " + err.Error()
			c.render(w, r, http.StatusBadRequest, "log.html", "Delivery log", d)
			return
		}
		query.Since = t
	}
	events, err := c.Events.Search(query)
	if err != nil {
		c.serverError(w, r.Request, "search the event log", err)
		return
	}
	d.Events = events
	c.render(w, r, http.StatusOK, "log.html", "Delivery log", d)
}

// eventDetails is an event's attributes other than those in their own
// columns, as key=value: the result, code and host first, then the rest
// by name, as jodmai log prints them.
func eventDetails(e eventlog.Event) string {
	shown := []string{"time", "event", "msg", "level", "component", "qid", "msgid", "from", "rcpt", "rcpts"}
	first := []string{"result", "code", "enhanced", "reason", "host", "text"}
	var rest []string
	for k := range e.Fields {
		if !slices.Contains(shown, k) && !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	var parts []string
	for _, k := range append(first, rest...) {
		v, ok := e.Fields[k]
		if !ok || v == "" {
			continue
		}
		s := fmt.Sprint(v)
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			s = strconv.FormatInt(int64(f), 10)
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, " ")
}

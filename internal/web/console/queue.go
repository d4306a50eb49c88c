package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/jodmai/jodmai/internal/queue"
)

// This file: the outbound queue pages. They call the same queue functions
// as the jodmai queue commands (List, Show, Retry, Hold, Release, Delete),
// which only change rows; the running scheduler notices.

// queuePerPage is the number of messages on a page of the queue list.
const queuePerPage = 50

// queueData is the queue list's data.
type queueData struct {
	// Order is "oldest" (default) or "newest"; Page the page from 1.
	Order string
	Page  int
	// Total is the number of queued messages; Messages the page's.
	Total    int
	Messages []queue.MessageInfo
	// First and Last number the messages shown (from 1); Prev and Next
	// are the neighbouring pages (0: none).
	First, Last, Prev, Next int
}

func (c *Console) queuePage(w http.ResponseWriter, r *request) {
	if c.Queue == nil {
		c.errorPage(w, r, http.StatusNotFound, "This server has no outbound queue.")
		return
	}
	q := r.URL.Query()
	d := queueData{Order: q.Get("order")}
	if d.Order != "newest" {
		d.Order = "oldest"
	}
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = max(d.Page, 1)
	all, err := c.Queue.List(r.Context())
	if err != nil {
		c.serverError(w, r.Request, "list queue", err)
		return
	}
	if d.Order == "newest" {
		slices.Reverse(all)
	}
	d.Total = len(all)
	from := min((d.Page-1)*queuePerPage, len(all))
	d.Messages = all[from:min(from+queuePerPage, len(all))]
	if n := len(d.Messages); n > 0 {
		d.First, d.Last = from+1, from+n
	}
	if d.Page > 1 {
		d.Prev = d.Page - 1
	}
	if d.Page*queuePerPage < d.Total {
		d.Next = d.Page + 1
	}
	c.render(w, r, http.StatusOK, "queue.html", "Queue", d)
}

// queueMessageURL is the page of a queued message.
func queueMessageURL(id string) string {
	return "/admin/queue/message?" + url.Values{"id": {id}}.Encode()
}

func (c *Console) queueMessagePage(w http.ResponseWriter, r *request) {
	if c.Queue == nil {
		c.errorPage(w, r, http.StatusNotFound, "This server has no outbound queue.")
		return
	}
	id := r.URL.Query().Get("id")
	m, err := c.Queue.Show(r.Context(), id)
	if errors.Is(err, queue.ErrNotFound) {
		c.errorPage(w, r, http.StatusNotFound, "No message "+id+" in the queue: it was delivered, bounced or deleted.")
		return
	}
	if err != nil {
		c.serverError(w, r.Request, "show queued message", err)
		return
	}
	c.render(w, r, http.StatusOK, "queue-message.html", "Queued message "+m.ID, m)
}

// queueOp returns the POST handler of one queue operation on the form's
// message id; did is the past tense for the message shown after it.
func (c *Console) queueOp(verb, did string, op func(*queue.Queue, context.Context, string) error) pageFunc {
	return func(w http.ResponseWriter, r *request) {
		id := strings.TrimSpace(r.PostForm.Get("id"))
		back := queueMessageURL(id)
		if verb == "delete" {
			back = "/admin/queue"
		}
		if c.Queue == nil {
			c.errorPage(w, r, http.StatusNotFound, "This server has no outbound queue.")
			return
		}
		if err := op(c.Queue, r.Context(), id); err != nil {
			if errors.Is(err, queue.ErrNotFound) {
				c.done(w, r, "/admin/queue", "", "No message "+id+" in the queue: it was delivered, bounced or deleted.", "")
				return
			}
			c.Log.Error("web: queue "+verb, "admin", r.acc.Address, "id", id, "err", err)
			c.done(w, r, back, "", "Queue "+verb+" failed; the server log says why", "")
			return
		}
		c.Log.Info("web: queued message "+did, "admin", r.acc.Address, "id", id)
		c.done(w, r, back, "Message "+id+" "+did+".", "", "")
	}
}

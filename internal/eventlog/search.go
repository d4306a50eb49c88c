package eventlog

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxLimit bounds the events one search returns.
const MaxLimit = 10000

// DefaultLimit is the number of events a search returns when Query.Limit
// is 0.
const DefaultLimit = 100

// Query selects events. Empty fields match everything; set ones must all
// match.
type Query struct {
	// From matches the sender address, case-insensitively; a value
	// without "@" or starting with "@" matches as a substring (a domain).
	From string
	// To matches any recipient the same way.
	To string
	// MsgID is a Message-ID, with or without angle brackets.
	MsgID string
	// QID is a queue id.
	QID string
	// Kind is an event kind (Received, Delivered...).
	Kind string
	// Since and Until bound the event time (inclusive, exclusive); zero:
	// unbounded.
	Since, Until time.Time
	// Limit is the most events returned (0: DefaultLimit; at most
	// MaxLimit).
	Limit int
}

func (q Query) matches(e Event) bool {
	if q.Kind != "" && e.Kind != q.Kind {
		return false
	}
	if q.QID != "" && e.QID != q.QID {
		return false
	}
	if q.MsgID != "" && !strings.EqualFold(strings.Trim(q.MsgID, "<>"), strings.Trim(e.MsgID, "<>")) {
		return false
	}
	if !q.Since.IsZero() && e.Time.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !e.Time.Before(q.Until) {
		return false
	}
	if q.From != "" && !addrMatch(q.From, e.From) {
		return false
	}
	if q.To != "" {
		ok := false
		for _, r := range e.Rcpts {
			if addrMatch(q.To, r) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// addrMatch: the whole address case-insensitively, or a part (a domain,
// "@domain") as a substring.
func addrMatch(want, addr string) bool {
	want, addr = strings.ToLower(strings.Trim(want, "<>")), strings.ToLower(addr)
	if strings.HasPrefix(want, "@") || !strings.Contains(want, "@") {
		return strings.Contains(addr, want)
	}
	return want == addr
}

// Search returns the events of the event log in dir that match q, newest
// first, at most q.Limit of them. It reads the files without locking, so
// it can run beside the server.
func Search(dir string, q Query) ([]Event, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var out []Event
	for _, p := range files(dir) {
		need := limit - len(out)
		if need <= 0 {
			break
		}
		// The file is in time order: keep its last need matches.
		ring := make([]Event, 0, need)
		start := 0
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("event log: %w", err)
		}
		err = scanLines(f, func(line []byte) {
			e, ok := parseEvent(line)
			if !ok || !q.matches(e) {
				return
			}
			if len(ring) < need {
				ring = append(ring, e)
				return
			}
			ring[start] = e
			start = (start + 1) % need
		})
		f.Close()
		if err != nil {
			return out, fmt.Errorf("event log %s: %w", p, err)
		}
		for i := len(ring) - 1; i >= 0; i-- {
			out = append(out, ring[(start+i)%len(ring)])
		}
	}
	return out, nil
}

// Search is Search on l's directory, after writing what is pending.
func (l *Log) Search(q Query) ([]Event, error) {
	l.Flush()
	return Search(l.dir, q)
}

// ParseSince reads the start of a search from a user: a duration back from
// now ("90m", "24h", with "d" for days: "7d") or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 {
			return now.AddDate(0, 0, -d), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither a duration nor a RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

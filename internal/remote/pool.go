package remote

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtpclient"
)

// Connection reuse: after a session's transactions are done, the session
// is parked instead of quit, and the next delivery to the same host under
// the same TLS requirements takes it (after an RSET that also shows it is
// still alive; pipelined with the next commands) rather than connecting, greeting, EHLO and STARTTLS anew.
// A parked session is closed after IdleTimeout, and the pool holds a
// bounded number per destination and in all.
const (
	defaultIdleTimeout    = 5 * time.Second
	defaultMaxIdlePerHost = 20
	defaultMaxIdle        = 200
	// maxSessionAge: an older session is not parked again.
	maxSessionAge = 5 * time.Minute
)

// poolKey says where a session may be reused: the host and port, and every
// part of the TLS policy it was set up under, so a session is never reused
// under different TLS requirements.
type poolKey struct {
	host string
	port int
	mode smtpclient.TLSMode
	pkix bool
	// dane is the TLSA records and the names the certificate may have.
	dane string
}

func newPoolKey(host dns.IPDomain, port int, mode smtpclient.TLSMode, pkix bool, records []adns.TLSA, names []dns.Domain) poolKey {
	var b strings.Builder
	for _, r := range records {
		fmt.Fprintf(&b, "%d %d %d %x;", r.Usage, r.Selector, r.MatchType, r.CertAssoc)
	}
	b.WriteString("|")
	for _, n := range names {
		b.WriteString(n.ASCII + ";")
	}
	return poolKey{host: host.String(), port: port, mode: mode, pkix: pkix, dane: b.String()}
}

// parked is an idle session in the pool.
type parked struct {
	s     *session
	key   poolKey
	timer *time.Timer
}

// pool holds idle sessions. The zero value is ready to use.
type pool struct {
	mu    sync.Mutex
	idle  map[poolKey][]*parked
	total int
}

// get takes the most recently parked session for key, or returns nil.
func (p *pool) get(key poolKey) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	e := list[len(list)-1]
	p.remove(e)
	e.timer.Stop()
	return e.s
}

// put parks s under key for idle; it reports false (and the caller closes
// s) when the pool is full.
func (p *pool) put(key poolKey, s *session, idle time.Duration, maxPerHost, maxTotal int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total >= maxTotal || len(p.idle[key]) >= maxPerHost {
		return false
	}
	if p.idle == nil {
		p.idle = map[poolKey][]*parked{}
	}
	e := &parked{s: s, key: key}
	p.idle[key] = append(p.idle[key], e)
	p.total++
	e.timer = time.AfterFunc(idle, func() {
		p.mu.Lock()
		ok := p.remove(e)
		p.mu.Unlock()
		if ok {
			e.s.quit()
			e.s.conn.Close()
		}
	})
	return true
}

// remove takes e out of the pool, if it is still there. p.mu is held.
func (p *pool) remove(e *parked) bool {
	list := p.idle[e.key]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(p.idle, e.key)
			} else {
				p.idle[e.key] = list
			}
			p.total--
			return true
		}
	}
	return false
}

// closeAll closes every parked session.
func (p *pool) closeAll() {
	p.mu.Lock()
	var all []*parked
	for _, list := range p.idle {
		all = append(all, list...)
	}
	p.idle = nil
	p.total = 0
	p.mu.Unlock()
	for _, e := range all {
		e.timer.Stop()
		e.s.quit()
		e.s.conn.Close()
	}
}

// CloseIdle closes the connections kept for reuse. Deliveries may go on;
// they open new ones.
func (c *Client) CloseIdle() {
	c.pool.closeAll()
}

func (c *Client) idleTimeout() time.Duration {
	if c.IdleTimeout == 0 {
		return defaultIdleTimeout
	}
	return c.IdleTimeout
}

func (c *Client) maxIdlePerHost() int {
	if c.MaxIdlePerHost <= 0 {
		return defaultMaxIdlePerHost
	}
	return c.MaxIdlePerHost
}

func (c *Client) maxIdle() int {
	if c.MaxIdle <= 0 {
		return defaultMaxIdle
	}
	return c.MaxIdle
}

// reuse returns a parked session for key, or nil. Its first transaction
// starts with an RSET, whose reply shows the connection still works
// (staleError otherwise).
func (c *Client) reuse(key poolKey) *session {
	if c.idleTimeout() < 0 {
		return nil
	}
	s := c.pool.get(key)
	if s != nil {
		s.probe = true
	}
	return s
}

// park keeps s for reuse under key, or ends it.
func (c *Client) park(key poolKey, s *session) {
	if c.idleTimeout() > 0 && !s.broken && time.Since(s.created) < maxSessionAge &&
		c.pool.put(key, s, c.idleTimeout(), c.maxIdlePerHost(), c.maxIdle()) {
		return
	}
	s.quit()
	s.conn.Close()
}

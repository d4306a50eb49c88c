package listen

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// Errors from Limiter.Acquire, saying which cap refused a connection.
var (
	// ErrTooManyConnections means the limiter's total cap is reached.
	ErrTooManyConnections = errors.New("too many connections")
	// ErrTooManyFromIP means the cap for the client's address (IPv4)
	// or /64 (IPv6) is reached.
	ErrTooManyFromIP = errors.New("too many connections from one client address")
)

// Limiter counts open connections, in total and per client address, and
// refuses a new one beyond either cap. It is safe for concurrent use, and
// one Limiter may serve several Listeners: max_connections is process-wide,
// so the server shares one Limiter between all its listeners; a listener
// that needs caps of its own gets a Limiter of its own.
type Limiter struct {
	max      int // total cap; <= 0 means none
	maxPerIP int // per-client cap; <= 0 means none
	exempt   []netip.Prefix

	mu    sync.Mutex
	total int
	perIP map[netip.Prefix]int // only keys with a count > 0
}

// NewLimiter returns a Limiter allowing at most max open connections in
// total and at most maxPerIP from one client address (see ClientPrefix). A
// cap <= 0 means no cap.
func NewLimiter(max, maxPerIP int) *Limiter {
	return &Limiter{max: max, maxPerIP: maxPerIP, perIP: map[netip.Prefix]int{}}
}

// SetCaps changes the caps (on reload); connections already open stay
// open, and count against the new caps.
func (l *Limiter) SetCaps(max, maxPerIP int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max, l.maxPerIP = max, maxPerIP
}

// Exempt sets client networks the per-client cap does not apply to (a
// webmail or proxy on loopback opens many connections from one address);
// their connections still count against the total. It may be called
// again (on reload).
func (l *Limiter) Exempt(networks []netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.exempt = networks
}

// Acquire takes a slot for a connection from remote, or returns
// ErrTooManyConnections or ErrTooManyFromIP. The returned release gives
// the slot back; calling it more than once has no further effect.
//
// A remote address that is not an IP address (a Unix socket, net.Pipe),
// or is in an Exempt network, counts against the total cap only.
func (l *Limiter) Acquire(remote net.Addr) (release func(), err error) {
	key, keyed := clientKey(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	if keyed && l.isExempt(remote) {
		keyed = false
	}
	if l.max > 0 && l.total >= l.max {
		return nil, ErrTooManyConnections
	}
	if keyed && l.maxPerIP > 0 && l.perIP[key] >= l.maxPerIP {
		return nil, ErrTooManyFromIP
	}
	l.total++
	if keyed {
		l.perIP[key]++
	}
	var once sync.Once
	return func() { once.Do(func() { l.release(key, keyed) }) }, nil
}

func (l *Limiter) isExempt(remote net.Addr) bool {
	if len(l.exempt) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap().WithZone("")
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Limiter) release(key netip.Prefix, keyed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if keyed {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key) // keep the map as small as the set of clients
		}
	}
}

// Open returns the number of connections currently holding a slot.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// OpenFrom returns the number of connections currently holding a slot for
// the client prefix of addr.
func (l *Limiter) OpenFrom(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perIP[ClientPrefix(addr)]
}

// ClientPrefix returns the unit that per-client limits count: the full
// address for IPv4 (an IPv4-mapped IPv6 address counts as its IPv4
// address), the /64 for IPv6, because one customer or host is usually given
// a whole /64 and can use any address in it. Zones are dropped.
func ClientPrefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap().WithZone("")
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return netip.Prefix{} // the zero Addr; not reachable from clientKey
	}
	return p
}

// clientKey returns remote's ClientPrefix, and false when remote is not an
// IP address.
func clientKey(remote net.Addr) (netip.Prefix, bool) {
	var ap netip.AddrPort
	switch a := remote.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case nil:
		return netip.Prefix{}, false
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Prefix{}, false
		}
	}
	if !ap.Addr().IsValid() {
		return netip.Prefix{}, false
	}
	return ClientPrefix(ap.Addr()), true
}

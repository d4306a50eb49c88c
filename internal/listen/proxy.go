package listen

import (
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// DefaultProxyHeaderTimeout bounds the wait for a PROXY protocol header
// from a load balancer, which sends it at once.
const DefaultProxyHeaderTimeout = 5 * time.Second

// acceptProxied is Accept with ProxyFrom: it returns the next connection
// the accept goroutine made ready.
func (l *Listener) acceptProxied() (net.Conn, error) {
	l.proxyStart.Do(func() {
		l.ready = make(chan net.Conn)
		l.loopDone = make(chan struct{})
		go l.proxyLoop()
	})
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.loopDone:
		return nil, l.loopErr
	}
}

// proxyLoop accepts until the wrapped listener fails (or is closed), and
// hands each connection to its own goroutine: a direct client is admitted
// at once, a load balancer's connection after its header.
func (l *Listener) proxyLoop() {
	defer close(l.loopDone)
	for {
		c, err := l.acceptRaw()
		if err != nil {
			l.loopErr = err
			return
		}
		if l.fromProxy(c.RemoteAddr()) {
			go l.readProxyHeader(c)
			continue
		}
		l.deliver(c)
	}
}

// deliver admits c and hands it to Accept, or closes it when the listener
// closes first.
func (l *Listener) deliver(c net.Conn) {
	out, ok := l.admit(c)
	if !ok {
		return
	}
	select {
	case l.ready <- out:
	case <-l.done:
		out.Close()
	}
}

// readProxyHeader reads a load balancer's PROXY header (HAProxy's PROXY
// protocol, v1 text or v2 binary); the connection then speaks for the
// client the header names. A connection without a valid header in time
// is closed: §2 of the spec forbids guessing. A LOCAL (v2) header, a
// balancer's own health check, keeps the balancer's address.
func (l *Listener) readProxyHeader(c net.Conn) {
	timeout := l.opts.ProxyHeaderTimeout
	if timeout <= 0 {
		timeout = DefaultProxyHeaderTimeout
	}
	pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE), proxyproto.SetReadHeaderTimeout(timeout))
	if pc.ProxyHeader() == nil {
		l.log.Warn("connection from a load balancer without a valid PROXY header; closed", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	l.deliver(pc)
}

// fromProxy reports whether a is in Options.ProxyFrom.
func (l *Listener) fromProxy(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap().WithZone("")
	for _, p := range l.opts.ProxyFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

package listen

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// The load balancer is 127.0.0.2; other loopback addresses are clients.
var balancer = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}

func accepted(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func readAll(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func v2Header(t *testing.T, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyProtocol(t *testing.T) {
	l, conns := serve(t, Options{ProxyFrom: balancer, Limiter: NewLimiter(100, 1), ProxyHeaderTimeout: 300 * time.Millisecond})

	// v1 from the balancer: the client's address, and the bytes after
	// the header (even in the same packet) are the client's.
	c1 := dial(t, l, "127.0.0.2")
	c1.Write([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\nEHLO a\r\n"))
	s1 := accepted(t, conns)
	if got := s1.RemoteAddr().String(); got != "192.0.2.7:5555" {
		t.Errorf("v1: RemoteAddr %s", got)
	}
	if got := readAll(t, s1, 8); got != "EHLO a\r\n" {
		t.Errorf("v1: read %q", got)
	}

	// v2, IPv6.
	c2 := dial(t, l, "127.0.0.2")
	c2.Write(append(v2Header(t, "[2001:db8::9]:4444", "[2001:db8::1]:993"), "a1 NOOP\r\n"...))
	s2 := accepted(t, conns)
	if got := s2.RemoteAddr().String(); got != "[2001:db8::9]:4444" {
		t.Errorf("v2: RemoteAddr %s", got)
	}
	if got := readAll(t, s2, 9); got != "a1 NOOP\r\n" {
		t.Errorf("v2: read %q", got)
	}
	// Writes reach the balancer's connection.
	s2.Write([]byte("* OK\r\n"))
	if got := readAll(t, c2, 6); got != "* OK\r\n" {
		t.Errorf("write: %q", got)
	}

	// The per-IP cap counts the client behind the balancer: a second
	// connection of 192.0.2.7 is refused, one of 192.0.2.8 is not.
	c3 := dial(t, l, "127.0.0.2")
	c3.Write([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 5556 25\r\n"))
	c4 := dial(t, l, "127.0.0.2")
	c4.Write([]byte("PROXY TCP4 192.0.2.8 198.51.100.1 5557 25\r\n"))
	if s := accepted(t, conns); s.RemoteAddr().String() != "192.0.2.8:5557" {
		t.Errorf("accepted %s, want the other client", s.RemoteAddr())
	}
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c3.Read(make([]byte, 1)); err == nil {
		t.Errorf("client over its cap: read %d bytes", n)
	}

	// The balancer without a header: closed after the timeout, never
	// returned; a later good one is.
	c5 := dial(t, l, "127.0.0.2")
	c5.Write([]byte("EHLO no-header\r\n"))
	c6 := dial(t, l, "127.0.0.2")
	c6.Write([]byte("PROXY TCP4 192.0.2.9 198.51.100.1 1 25\r\n"))
	if s := accepted(t, conns); s.RemoteAddr().String() != "192.0.2.9:1" {
		t.Errorf("accepted %s", s.RemoteAddr())
	}
	c5.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c5.Read(make([]byte, 1)); err == nil {
		t.Error("headerless balancer connection not closed")
	}

	// A direct client (not in proxy_from) is itself, and a PROXY line
	// from it is just data: it cannot claim another address.
	c7 := dial(t, l, "127.0.0.3")
	line := "PROXY TCP4 203.0.113.1 198.51.100.1 1 25\r\n"
	c7.Write([]byte(line))
	s7 := accepted(t, conns)
	if ap := netip.MustParseAddrPort(s7.RemoteAddr().String()); ap.Addr() != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("direct client: RemoteAddr %s", s7.RemoteAddr())
	}
	if got := readAll(t, s7, len(line)); got != line {
		t.Errorf("direct client: read %q", got)
	}
	// NetConn reaches the TCP connection under the PROXY wrapper.
	if _, ok := s1.(*conn).NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn: %T", s1.(*conn).NetConn())
	}
}

// FuzzProxyHeader feeds arbitrary bytes to the PROXY header reader as a
// balancer's connection would: it must not panic, and a header it accepts
// must carry addresses that format and parse back to the same.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\nEHLO"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("PROXY TCP4 999.0.0.1 1.1.1.1 1 2\r\n"))
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 2})
	v2, _ := h.Format()
	f.Add(v2)
	f.Add(append(append([]byte{}, v2[:12]...), 0x20, 0x11, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(data)))
		if err != nil || h == nil {
			return
		}
		if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
			return
		}
		b, err := h.Format()
		if err != nil {
			return // a v1 header the library reads but will not write; not ours to fix
		}
		h2, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("re-read %q: %v", b, err)
		}
		if h.SourceAddr.String() != h2.SourceAddr.String() || !strings.EqualFold(h.DestinationAddr.String(), h2.DestinationAddr.String()) {
			t.Fatalf("round trip: %v -> %v", h.SourceAddr, h2.SourceAddr)
		}
	})
}

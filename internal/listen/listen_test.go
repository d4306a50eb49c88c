package listen

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/testenv/testcert"
)

var refusal = SMTPRefusal("mx.test")

// serve starts a Listener on loopback and returns it with a channel of the
// connections Accept returns.
func serve(t *testing.T, opts Options) (*Listener, <-chan net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, opts)
	conns := make(chan net.Conn, 100)
	go func() {
		defer close(conns)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range conns {
			c.Close()
		}
	})
	return l, conns
}

// dial connects to l from the local address from (empty: any).
func dial(t *testing.T, l net.Listener, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial from %q: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// mustAccept waits for the server side of a new connection.
func mustAccept(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// mustBeRefused reads the refusal line and then end of file from c.
func mustBeRefused(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read refused connection: %v (got %q)", err, got)
	}
	if string(got) != string(want) {
		t.Fatalf("refused connection read %q, want %q", got, want)
	}
}

// mustNotBeAccepted checks that Accept returned nothing more.
func mustNotBeAccepted(t *testing.T, conns <-chan net.Conn) {
	t.Helper()
	select {
	case c := <-conns:
		t.Fatalf("Accept returned a connection over the cap, from %v", c.RemoteAddr())
	default:
	}
}

func TestGlobalCap(t *testing.T) {
	lim := NewLimiter(2, 0)
	l, conns := serve(t, Options{Name: "smtp", Limiter: lim, Refusal: refusal})

	dial(t, l, "")
	s1 := mustAccept(t, conns)
	dial(t, l, "")
	mustAccept(t, conns)

	mustBeRefused(t, dial(t, l, ""), refusal)
	mustNotBeAccepted(t, conns)
	if n := lim.Open(); n != 2 {
		t.Errorf("Open() = %d, want 2", n)
	}

	// Closing an accepted connection frees its slot, once however often it
	// is closed.
	s1.Close()
	s1.Close()
	if n := lim.Open(); n != 1 {
		t.Errorf("Open() after closing one = %d, want 1", n)
	}
	c := dial(t, l, "")
	s3 := mustAccept(t, conns)
	// The accepted connection works both ways.
	if _, err := s3.Write([]byte("220 hi\r\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "220 hi\r\n" {
		t.Fatalf("client read %q, %v", line, err)
	}
	mustBeRefused(t, dial(t, l, ""), refusal)
}

func TestPerIPCap(t *testing.T) {
	lim := NewLimiter(10, 2)
	l, conns := serve(t, Options{Name: "pop3", Limiter: lim, Refusal: POP3Refusal()})

	dial(t, l, "127.0.0.1")
	mustAccept(t, conns)
	dial(t, l, "127.0.0.1")
	s2 := mustAccept(t, conns)
	mustBeRefused(t, dial(t, l, "127.0.0.1"), POP3Refusal())
	mustNotBeAccepted(t, conns)

	// Another client address is not affected (Linux routes all of 127/8 to
	// loopback).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Logf("cannot dial from 127.0.0.2 (%v); skipping the second-address part", err)
	} else {
		defer c.Close()
		s := mustAccept(t, conns)
		if got := s.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
			t.Errorf("accepted remote %s, want 127.0.0.2", got)
		}
		if n := lim.OpenFrom(netip.MustParseAddr("127.0.0.2")); n != 1 {
			t.Errorf("OpenFrom(127.0.0.2) = %d, want 1", n)
		}
	}

	s2.Close()
	dial(t, l, "127.0.0.1")
	mustAccept(t, conns)
}

func TestSharedLimiterAcrossListeners(t *testing.T) {
	lim := NewLimiter(2, 0)
	smtp, smtpConns := serve(t, Options{Name: "smtp", Limiter: lim, Refusal: refusal})
	imap, imapConns := serve(t, Options{Name: "imap", Limiter: lim, Refusal: IMAPRefusal()})

	dial(t, smtp, "")
	mustAccept(t, smtpConns)
	dial(t, imap, "")
	s := mustAccept(t, imapConns)

	// Each listener refuses in its own protocol.
	mustBeRefused(t, dial(t, imap, ""), IMAPRefusal())
	mustBeRefused(t, dial(t, smtp, ""), refusal)

	s.Close()
	dial(t, smtp, "")
	mustAccept(t, smtpConns)
}

func TestNoLimiter(t *testing.T) {
	l, conns := serve(t, Options{Name: "open"})
	for range 5 {
		dial(t, l, "")
		mustAccept(t, conns)
	}
}

func TestRefusalWithoutLine(t *testing.T) {
	l, conns := serve(t, Options{Limiter: NewLimiter(1, 1)})
	dial(t, l, "")
	mustAccept(t, conns)
	mustBeRefused(t, dial(t, l, ""), nil)
}

func TestLimiterExempt(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	lim := NewLimiter(4, 1)
	lim.Exempt([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")})
	for i := range 3 {
		if _, err := lim.Acquire(tcp(fmt.Sprintf("127.0.0.1:%d", 1000+i))); err != nil {
			t.Fatalf("exempt connection %d: %v", i, err)
		}
	}
	if _, err := lim.Acquire(tcp("127.0.0.2:1")); err != nil {
		t.Fatal(err)
	}
	// The total still counts exempt connections.
	if _, err := lim.Acquire(tcp("[::1]:1")); !errors.Is(err, ErrTooManyConnections) {
		t.Errorf("beyond the total: %v", err)
	}
	lim2 := NewLimiter(10, 1)
	lim2.Exempt([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	lim2.Acquire(tcp("127.0.0.2:1"))
	if _, err := lim2.Acquire(tcp("127.0.0.2:2")); !errors.Is(err, ErrTooManyFromIP) {
		t.Errorf("a non-exempt address over its cap: %v", err)
	}
	// An IPv4-mapped loopback address is exempt too.
	if _, err := lim2.Acquire(tcp("[::ffff:127.0.0.1]:1")); err != nil {
		t.Fatal(err)
	}
	if _, err := lim2.Acquire(tcp("[::ffff:127.0.0.1]:2")); err != nil {
		t.Errorf("mapped exempt address: %v", err)
	}
}

func TestLimiter(t *testing.T) {
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	lim := NewLimiter(5, 2)
	acquire := func(a net.Addr) (func(), error) {
		t.Helper()
		return lim.Acquire(a)
	}

	// One IPv6 /64 is one client.
	r1, err := acquire(tcp("[2001:db8:1:2::1]:1000"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(tcp("[2001:db8:1:2:ffff::9]:1001")); err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(tcp("[2001:db8:1:2::77]:1002")); !errors.Is(err, ErrTooManyFromIP) {
		t.Fatalf("third from one /64: err = %v, want ErrTooManyFromIP", err)
	}
	// The next /64 is another client.
	if _, err := acquire(tcp("[2001:db8:1:3::1]:1000")); err != nil {
		t.Fatal(err)
	}
	// An IPv4-mapped address is its IPv4 address.
	if _, err := acquire(tcp("192.0.2.1:25")); err != nil {
		t.Fatal(err)
	}
	if n := lim.OpenFrom(netip.MustParseAddr("::ffff:192.0.2.1")); n != 1 {
		t.Errorf("OpenFrom(::ffff:192.0.2.1) = %d, want 1", n)
	}
	// A non-IP address counts against the total only.
	pipe, _ := net.Pipe()
	defer pipe.Close()
	rp, err := acquire(pipe.RemoteAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquire(tcp("192.0.2.9:25")); !errors.Is(err, ErrTooManyConnections) {
		t.Fatalf("sixth: err = %v, want ErrTooManyConnections", err)
	}

	// Release is idempotent.
	r1()
	r1()
	rp()
	if n := lim.Open(); n != 3 {
		t.Errorf("Open() = %d, want 3", n)
	}
	if n := lim.OpenFrom(netip.MustParseAddr("2001:db8:1:2::1")); n != 1 {
		t.Errorf("OpenFrom(/64) = %d, want 1", n)
	}
}

func TestClientPrefix(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"::1", "::/64"},
	}
	for _, tt := range tests {
		if got := ClientPrefix(netip.MustParseAddr(tt.addr)).String(); got != tt.want {
			t.Errorf("ClientPrefix(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// tempErrListener returns n temporary errors, then behaves like inner.
type tempErrListener struct {
	net.Listener
	n atomic.Int32
}

type tempErr struct{}

func (tempErr) Error() string   { return "temporary trouble" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *tempErrListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, tempErr{}
	}
	return l.Listener.Accept()
}

func TestTemporaryAcceptErrors(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &tempErrListener{Listener: inner}
	tl.n.Store(3)
	l := New(tl, Options{Limiter: NewLimiter(1, 1)})
	defer l.Close()
	c := dial(t, l, "")
	defer c.Close()
	start := time.Now()
	s, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after temporary errors: %v", err)
	}
	s.Close()
	// 5ms + 10ms + 20ms of back-off.
	if d := time.Since(start); d < 35*time.Millisecond {
		t.Errorf("Accept returned after %v; it did not back off", d)
	}

	// Close ends an Accept that is backing off.
	tl.n.Store(1 << 30)
	errc := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Accept returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still running after Close")
	}
}

func TestAcceptAfterClose(t *testing.T) {
	l, _ := serve(t, Options{})
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: err = %v, want net.ErrClosed", err)
	}
}

// testTLSConfig returns a server config with a fresh self-signed
// certificate and a client config trusting it.
func testTLSConfig(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	cert, pool := testcert.New(t, "localhost")
	server = &tls.Config{Certificates: []tls.Certificate{cert}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return server, client
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := testTLSConfig(t)
	lim := NewLimiter(1, 1)
	l, conns := serve(t, Options{Name: "imaps", Limiter: lim, TLS: serverTLS, Refusal: IMAPRefusal()})

	c := tls.Client(dial(t, l, ""), clientTLS)
	s := mustAccept(t, conns)
	tc, ok := s.(*tls.Conn)
	if !ok {
		t.Fatalf("accepted %T, want *tls.Conn", s)
	}
	go tc.Write([]byte("* OK hi\r\n")) // handshakes
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "* OK hi\r\n" {
		t.Fatalf("client read %q, %v", line, err)
	}

	// Over the cap, the refusal comes over TLS.
	r := tls.Client(dial(t, l, ""), clientTLS)
	mustBeRefused(t, r, IMAPRefusal())

	// Closing the *tls.Conn releases the slot.
	tc.Close()
	if n := lim.Open(); n != 0 {
		t.Errorf("Open() after closing the TLS conn = %d, want 0", n)
	}
	if nc, ok := tc.NetConn().(interface{ NetConn() net.Conn }); !ok {
		t.Error("the conn under the *tls.Conn has no NetConn method")
	} else if _, ok := nc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() is %T, want *net.TCPConn", nc.NetConn())
	}
}

// TestHammer runs many clients at once against a small cap; run with -race.
// The server counts connections it holds and checks the cap is never
// exceeded; every client sees either the greeting or the refusal.
func TestHammer(t *testing.T) {
	const (
		maxConns = 8
		clients  = 32
		rounds   = 20
	)
	lim := NewLimiter(maxConns, maxConns)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(inner, Options{Name: "smtp", Limiter: lim, Refusal: refusal})
	var held, peak atomic.Int32
	var serverWG sync.WaitGroup
	serverWG.Add(1)
	go func() {
		defer serverWG.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n := held.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			serverWG.Add(1)
			go func() {
				defer serverWG.Done()
				c.Write([]byte("220 ok\r\n"))
				time.Sleep(time.Millisecond)
				held.Add(-1) // before Close: the slot is free only after Close
				c.Close()
			}()
		}
	}()

	var accepted, refused atomic.Int32
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range rounds {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Error(err)
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				c.Close()
				switch {
				case err != nil:
					t.Errorf("read: %v", err)
				case string(b) == "220 ok\r\n":
					accepted.Add(1)
				case string(b) == string(refusal):
					refused.Add(1)
				default:
					t.Errorf("client read %q", b)
				}
			}
		})
	}
	wg.Wait()
	l.Close()
	serverWG.Wait()

	if p := peak.Load(); p > maxConns {
		t.Errorf("peak of %d connections held, cap %d", p, maxConns)
	}
	if n := lim.Open(); n != 0 {
		t.Errorf("Open() after all closed = %d, want 0", n)
	}
	if got := accepted.Load() + refused.Load(); got != clients*rounds {
		t.Errorf("accepted %d + refused %d != %d", accepted.Load(), refused.Load(), clients*rounds)
	}
	t.Logf("accepted %d, refused %d, peak %d", accepted.Load(), refused.Load(), peak.Load())
}

func TestRefusalLines(t *testing.T) {
	for _, b := range [][]byte{SMTPRefusal("mx.example"), POP3Refusal(), IMAPRefusal()} {
		s := string(b)
		if !strings.HasSuffix(s, "\r\n") || strings.Count(s, "\n") != 1 {
			t.Errorf("refusal %q is not one CRLF line", s)
		}
	}
	if !strings.HasPrefix(string(SMTPRefusal("mx.example")), "421 4.7.0 mx.example ") {
		t.Errorf("SMTPRefusal = %q", SMTPRefusal("mx.example"))
	}
}

// lockedBuffer is a log sink safe to read while the accept loop writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestRefusalLogged(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	l, conns := serve(t, Options{Name: "pop3", Limiter: NewLimiter(5, 1), Refusal: POP3Refusal(), Logger: log})
	dial(t, l, "")
	mustAccept(t, conns)
	mustBeRefused(t, dial(t, l, ""), POP3Refusal())
	out := buf.String()
	for _, w := range []string{"connection refused", "listener=pop3", "remote=127.0.0.1:", "cap=max_connections_per_ip", "limit=1"} {
		if !strings.Contains(out, w) {
			t.Errorf("log %q does not contain %q", out, w)
		}
	}
	if n := strings.Count(out, "\n"); n != 1 {
		t.Errorf("%d log lines, want 1: %q", n, out)
	}
}

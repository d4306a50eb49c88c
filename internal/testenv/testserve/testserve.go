// Package testserve runs one protocol server (pop3d, imapd, ...) on a
// 127.0.0.1 listener for a test, and checks at cleanup that it shut down
// the way it should.
package testserve

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// Server is what the protocol packages' servers implement.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Options adjust the listener.
type Options struct {
	// Remote, if set, is the client address every connection claims
	// (tests of per-address behaviour: loopback, lockouts).
	Remote net.Addr
	// ImplicitTLS, if set, wraps the listener in TLS with this config.
	ImplicitTLS *tls.Config
	// Closed is what Serve must return after Shutdown (the package's
	// ErrServerClosed).
	Closed error
}

// Start serves srv on 127.0.0.1 and returns its address and a function
// that shuts it down within d. A cleanup shuts it down if the test did
// not, and fails the test unless Serve returned o.Closed.
func Start(t testing.TB, srv Server, o Options) (addr string, shutdown func(d time.Duration) error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = l
	if o.Remote != nil {
		ln = remoteListener{Listener: ln, remote: o.Remote}
	}
	if o.ImplicitTLS != nil {
		ln = tls.NewListener(ln, o.ImplicitTLS)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var once sync.Once
	var stopErr error
	shutdown = func(d time.Duration) error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			stopErr = srv.Shutdown(ctx)
		})
		return stopErr
	}
	t.Cleanup(func() {
		shutdown(10 * time.Second)
		if err := <-served; !errors.Is(err, o.Closed) {
			t.Errorf("Serve returned %v, want %v", err, o.Closed)
		}
	})
	return l.Addr().String(), shutdown
}

// remoteListener makes its connections claim another remote address.
type remoteListener struct {
	net.Listener
	remote net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{Conn: c, remote: l.remote}, nil
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

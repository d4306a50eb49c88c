// Package web owns jodmai's HTTP side: the http and https listeners'
// handlers (the MTA-STS policy, Thunderbird autoconfig, Outlook
// autodiscover, redirects) and the Server that runs any handler on a
// listener with the timeouts every listener needs.
//
// What is served over plain HTTP is limited to what must be: ACME http-01
// answers (wrapped in by the caller), autoconfig (Thunderbird asks over
// http too, and the file holds no secret) and redirects to https. Nothing
// here reveals whether an account exists: answers depend on the domain
// only, and a domain that is not local gets the same 404 as a bad path.
package web

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Timeouts of every HTTP listener: a client that trickles its request or
// stops reading cannot hold a connection.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	// maxBody bounds what a POST may send (an autodiscover request is
	// a few hundred bytes).
	maxBody = 16 << 10
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = http.ErrServerClosed

// Server runs Handler on listeners. Exported fields are its
// configuration; set them before Serve.
type Server struct {
	// Handler answers every request.
	Handler http.Handler
	// Log receives the http server's own errors (at debug: they are
	// mostly clients going away). Nil discards.
	Log *slog.Logger

	once sync.Once // makes hs: Serve and Shutdown may come from different goroutines
	hs   *http.Server
}

func (s *Server) server() *http.Server {
	s.once.Do(func() {
		lg := s.Log
		if lg == nil {
			lg = slog.New(slog.DiscardHandler)
		}
		s.hs = &http.Server{
			Handler:           s.Handler,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          log.New(slogWriter{lg}, "", 0),
		}
	})
	return s.hs
}

// Serve accepts connections on l (which does any TLS: a listen.Listener
// with TLS set) until Shutdown; it returns ErrServerClosed then.
func (s *Server) Serve(l net.Listener) error { return s.server().Serve(l) }

// Shutdown stops accepting and waits for requests in progress, until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.server().Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.server().Close()
	}
	return err
}

type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("http", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// hostOf returns the request's host name: lowercase, without port or
// trailing dot.
func hostOf(r *http.Request) string {
	h := r.Host
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

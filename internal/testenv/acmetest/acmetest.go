// Package acmetest runs Pebble, Let's Encrypt's test ACME server, in the
// test process: its CA, validation authority and web front end served by
// httptest over TLS on 127.0.0.1. The validation authority connects to the
// ports the test says (its http-01 and tls-alpn-01 ports) at the addresses
// a test DNS server gives for each name.
package acmetest

import (
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// CA is a running Pebble.
type CA struct {
	// Directory is the ACME directory URL.
	Directory string
	// Client is an HTTP client that trusts the directory's certificate.
	Client *http.Client

	ca  *ca.CAImpl
	srv *httptest.Server
	mu  sync.Mutex
	log strings.Builder
}

// Options configure a CA.
type Options struct {
	// HTTPPort and TLSPort are where the validation authority connects
	// for http-01 and tls-alpn-01.
	HTTPPort, TLSPort int
	// DNS is the "host:port" of the DNS server (TCP) the validation
	// authority resolves names with.
	DNS string
	// Validity is the certificates' lifetime in seconds; 0: Pebble's
	// default (5 years).
	Validity uint64
}

// Start starts Pebble; it stops when the test ends. Pebble reads its
// settings from the environment when it starts, so Start sets them with
// t.Setenv (the test may not be parallel): no random validation delay
// and no reuse of earlier authorizations, so every order is validated.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	if ts, ok := t.(interface{ Setenv(string, string) }); ok {
		ts.Setenv("PEBBLE_VA_NOSLEEP", "1")
		ts.Setenv("PEBBLE_AUTHZREUSE", "0")
		ts.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	}
	c := &CA{}
	logger := log.New(writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.log.Write(p)
	}), "pebble ", 0)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: o.Validity}}
	c.ca = ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	v := va.New(logger, o.HTTPPort, o.TLSPort, false, o.DNS, store)
	w := wfe.New(logger, store, v, c.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	c.srv = httptest.NewTLSServer(w.Handler())
	t.Cleanup(c.srv.Close)
	c.Directory = c.srv.URL + wfe.DirectoryPath
	c.Client = c.srv.Client()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", c.Log())
		}
	})
	return c
}

// Roots returns a pool holding Pebble's root certificate, for verifying
// the certificates it issued.
func (c *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.GetRootCert(0).Cert)
	if ic := c.ca.GetIntermediateCert(0); ic != nil {
		p.AddCert(ic.Cert) // chains are sent without the root; harmless
	}
	return p
}

// Log returns what Pebble logged so far.
func (c *CA) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

var _ io.Writer = writerFunc(nil)

package remote

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/mtasts"

	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

// TestFetchPolicy runs the default fetcher against an HTTPS server on
// loopback, found through the test DNS server.
func TestFetchPolicy(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mta-sts.b.test"}, DNSNames: []string{"mta-sts.b.test", "mta-sts.html.test", "mta-sts.redirect.test", "mta-sts.missing.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	const policy = "version: STSv1\r\nmode: enforce\r\nmx: mx.b.test\r\nmax_age: 86400\r\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		switch r.Host {
		case "mta-sts.b.test":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(policy))
		case "mta-sts.html.test":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(policy))
		case "mta-sts.redirect.test":
			http.Redirect(w, r, "https://mta-sts.b.test/.well-known/mta-sts.txt", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	d := dnstest.Start(t)
	for _, h := range []string{"mta-sts.b.test", "mta-sts.html.test", "mta-sts.redirect.test", "mta-sts.missing.test"} {
		d.SetA(h, "127.0.0.1")
	}
	c := &Client{Resolver: resolver.New(d.Addr(), nil), RootCAs: pool, httpsPort: port}

	tests := []struct {
		domain string
		ok     bool
		errsay string
	}{
		{"b.test", true, ""},
		{"html.test", false, "content-type"}, // RFC 8461 §3.3: text/plain only
		{"redirect.test", false, "redirect"}, // RFC 8461 §3.3: no redirects
		{"missing.test", false, "status 404"},
		{"nodns.test", false, "resolve"},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := c.fetchPolicy(ctx, dns.Domain{ASCII: tc.domain})
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), tc.errsay) {
					t.Fatalf("got policy %v, error %v; want an error saying %q", p, err, tc.errsay)
				}
				return
			}
			if err != nil || p.Mode != mtasts.ModeEnforce || !p.Matches(dns.Domain{ASCII: "mx.b.test"}) || p.MaxAgeSeconds != 86400 {
				t.Fatalf("got %v, %v", p, err)
			}
		})
	}

	// Without the CA: the certificate is not trusted.
	c.RootCAs = x509.NewCertPool()
	if _, err := c.fetchPolicy(context.Background(), dns.Domain{ASCII: "b.test"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: got %v", err)
	}
}

// TestPolicyCache: a failed fetch keeps using a fresh cached policy; a
// removed TXT record too, until max_age.
func TestPolicyCache(t *testing.T) {
	d := dnstest.Start(t)
	d.SetTXT("_mta-sts.b.test", "v=STSv1; id=1")
	fail := false
	fetches := 0
	c := &Client{Resolver: resolver.New(d.Addr(), nil), FetchPolicy: func(ctx context.Context, dom dns.Domain) (*mtasts.Policy, error) {
		fetches++
		if fail {
			return nil, context.DeadlineExceeded
		}
		return mtasts.ParsePolicy("version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n")
	}}
	ctx := context.Background()
	dom := dns.Domain{ASCII: "b.test"}
	log := c.log()
	if p := c.policy(ctx, log, dom); p == nil || p.Mode != mtasts.ModeEnforce {
		t.Fatalf("first: %v", p)
	}
	fail = true
	d.SetTXT("_mta-sts.b.test", "v=STSv1; id=2")
	if p := c.policy(ctx, log, dom); p == nil {
		t.Fatalf("failed refetch dropped the cached policy")
	}
	// Within the back-off: no new fetch.
	c.policy(ctx, log, dom)
	if fetches != 2 {
		t.Fatalf("%d fetches, want 2", fetches)
	}
	d.Delete("_mta-sts.b.test")
	if p := c.policy(ctx, log, dom); p == nil {
		t.Fatalf("removed record dropped a fresh cached policy")
	}
	// Another domain without a record: none.
	if p := c.policy(ctx, log, dns.Domain{ASCII: "c.test"}); p != nil {
		t.Fatalf("c.test: %v", p)
	}
}

package server_test

import (
	"crypto/tls"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
	"github.com/jodmai/jodmai/internal/testenv/acmetest"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
	"github.com/jodmai/jodmai/internal/testenv/proc"
)

// TestACMEAllListeners runs a server with [tls] acme against Pebble: the
// CA validates through the server's own http and https listeners, and the
// certificate it issues serves every TLS listener.
func TestACMEAllListeners(t *testing.T) {
	dns := dnstest.Start(t)
	for _, n := range []string{testenv.Hostname, "mta-sts." + testenv.Domain, "autoconfig." + testenv.Domain} {
		dns.SetA(n, "127.0.0.1")
	}
	// Pebble dials fixed ports: pick them before the server starts.
	httpAddr, httpsAddr := proc.FreePort(t, "127.0.0.1"), proc.FreePort(t, "127.0.0.1")
	port := func(a string) int { return must(net.ResolveTCPAddr("tcp", a)).Port }
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: port(httpAddr), TLSPort: port(httpsAddr), DNS: dns.Addr()})
	env := testenv.StartWith(t, testenv.Options{ACMEClient: ca.Client, Configure: func(c *config.Config) {
		c.Listen.HTTP, c.Listen.HTTPS = httpAddr, httpsAddr
		c.TLS.ACME = true
		c.TLS.ACMEDirectory = ca.Directory
		c.TLS.ACMEEmail = "postmaster@" + testenv.Domain
	}})

	verify := func(t *testing.T, what string, cs tls.ConnectionState, name string) {
		t.Helper()
		leaf := cs.PeerCertificates[0]
		if err := leaf.VerifyHostname(name); err != nil || !strings.Contains(leaf.Issuer.CommonName, "Pebble") {
			t.Errorf("%s: certificate for %v from %q", what, leaf.DNSNames, leaf.Issuer.CommonName)
		}
	}
	conf := func(name string) *tls.Config {
		return &tls.Config{ServerName: name, RootCAs: ca.Roots(), MinVersion: tls.VersionTLS12}
	}
	dialTLS := func(t *testing.T, key, name string) tls.ConnectionState {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", env.Addr(key), conf(name))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		defer c.Close()
		return c.ConnectionState()
	}
	// The first handshake waits for the issuance (tls-alpn-01 through
	// the https listener).
	for _, key := range []string{"imaps", "pop3s", "submissions", "https"} {
		verify(t, key, dialTLS(t, key, testenv.Hostname), testenv.Hostname)
	}
	// STARTTLS on the MX port.
	sc, err := smtp.Dial(env.Addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.StartTLS(conf(testenv.Hostname)); err != nil {
		t.Fatalf("smtp STARTTLS: %v", err)
	}
	cs, _ := sc.TLSConnectionState()
	verify(t, "smtp STARTTLS", cs, testenv.Hostname)
	sc.Close()
	// A local domain's mta-sts name gets its own certificate; a name
	// outside the policy gets the host name's.
	verify(t, "https mta-sts", dialTLS(t, "https", "mta-sts."+testenv.Domain), "mta-sts."+testenv.Domain)
	c, err := tls.Dial("tcp", env.Addr("imaps"), &tls.Config{ServerName: "mta-sts.other.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, "name outside the policy", c.ConnectionState(), testenv.Hostname)
	c.Close()
	if !env.Server.TLS.ACME() {
		t.Error("ACME() false")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

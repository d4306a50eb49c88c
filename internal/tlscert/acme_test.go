package tlscert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/jodmai/jodmai/internal/testenv/acmetest"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestACMEPebble gets certificates from Pebble through both challenge
// listeners, sees them renewed without a restart, and sees a renewal whose
// challenges fail logged with the CA's reason while the old certificate
// keeps serving.
func TestACMEPebble(t *testing.T) {
	const host, other = "mail.example.test", "mta-sts.example.test"
	dns := dnstest.Start(t)
	dns.SetA(host, "127.0.0.1")
	dns.SetA(other, "127.0.0.1")

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := t.TempDir()
	m, err := Load(dir, "", "", host, log)
	if err != nil {
		t.Fatal(err)
	}
	selfSigned := m.Certificate().Leaf

	// The challenge listeners, as the web server runs them; broken makes
	// both challenges fail.
	var broken atomic.Bool
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsInner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := acmetest.Start(t, acmetest.Options{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port,
		TLSPort:  tlsInner.Addr().(*net.TCPAddr).Port,
		DNS:      dns.Addr(),
		Validity: 20,
	})
	if err := m.UseACME(dir, ACME{
		Directory:   ca.Directory,
		HTTPClient:  ca.Client,
		Allowed:     func(_ context.Context, h string) bool { return h == other },
		RenewBefore: 15 * time.Second, // renew 4-5.5 s after issuance
	}); err != nil {
		t.Fatal(err)
	}
	notFound := http.NotFoundHandler()
	challenge := m.HTTPHandler(notFound)
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() {
			notFound.ServeHTTP(w, r)
			return
		}
		challenge.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	conf := m.HTTPSConfig()
	get := conf.GetCertificate
	conf.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if broken.Load() && len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == acme.ALPNProto {
			return nil, errors.New("broken on purpose")
		}
		return get(h)
	}
	// net/http bounds the TLS handshake by ReadHeaderTimeout, and the
	// first handshake waits for the issuance: on a loaded machine that
	// took over 5 s (the handshake ended in EOF).
	httpsSrv := &http.Server{Handler: notFound, ReadHeaderTimeout: time.Minute}
	go httpsSrv.Serve(tls.NewListener(tlsInner, conf))
	t.Cleanup(func() { httpsSrv.Close() })

	// served returns the leaf the server presents for sni, checked
	// against Pebble's roots when verify.
	served := func(t *testing.T, sni string, verify bool) *x509.Certificate {
		t.Helper()
		d := &net.Dialer{Timeout: 30 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", tlsInner.Addr().String(), &tls.Config{
			ServerName: sni, RootCAs: ca.Roots(), InsecureSkipVerify: !verify,
		})
		if err != nil {
			t.Fatalf("handshake for %q: %v\nlogs:\n%s", sni, err, logs.String())
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}

	first := served(t, host, true) // issued on demand
	if first.Equal(selfSigned) || !strings.Contains(first.Issuer.CommonName, "Pebble") {
		t.Fatalf("served %v issued by %q, want Pebble's", first.DNSNames, first.Issuer.CommonName)
	}
	if c := served(t, other, true); c.VerifyHostname(other) != nil {
		t.Errorf("%s: got a certificate for %v", other, c.DNSNames)
	}
	// A name not allowed gets the host name's certificate, never a
	// request to the CA.
	if c := served(t, "not-ours.example", false); c.VerifyHostname(host) != nil || c.Issuer.CommonName != first.Issuer.CommonName {
		t.Errorf("not-ours.example: got %v, want the host name's certificate", c.DNSNames)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme", host)); err != nil {
		t.Errorf("certificate not in the cache: %v", err)
	}

	// Renewal: a new certificate on the same listener, no restart.
	var renewed *x509.Certificate
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if c := served(t, host, true); !c.Equal(first) {
			renewed = c
			break
		}
	}
	if renewed == nil {
		t.Fatalf("certificate not renewed within 20s (not after %v)\nlogs:\n%s", first.NotAfter, logs.String())
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate expires %v, first %v", renewed.NotAfter, first.NotAfter)
	}

	// A renewal whose challenges fail: logged with the CA's reason, and
	// the certificate in use stays in use (autocert retries in 30-60
	// minutes). A renewal already validated may still complete.
	broken.Store(true)
	failed := func() bool {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "could not validate a challenge") && strings.Contains(l, "name="+host) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !failed(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed renewal logged within 20s\nlogs:\n%s", logs.String())
		}
	}
	time.Sleep(time.Second) // the second challenge type fails too
	current := served(t, host, true)
	if current.Equal(selfSigned) || time.Now().After(current.NotAfter) {
		t.Fatalf("after a failed renewal: served %v, expiring %v", current.Subject, current.NotAfter)
	}
	time.Sleep(time.Second)
	if c := served(t, host, true); !c.Equal(current) {
		t.Errorf("after a failed renewal the served certificate changed")
	}
	for _, want := range []string{"challenge=tls-alpn-01", "challenge=http-01", "urn:ietf:params:acme:error:"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "could not validate") {
			t.Logf("logged: %s", l)
			break
		}
	}
	infos := m.Certificates()
	if len(infos) != 3 || infos[0].Source != "self-signed" || infos[1].Name != host || infos[1].Source != "acme" {
		t.Errorf("Certificates() = %+v", infos)
	} else if !slices.Contains(infos[1].Names, host) || infos[1].Issuer == "" || infos[1].Issuer == infos[1].Subject || infos[0].Issuer != infos[0].Subject {
		t.Errorf("names, subject, issuer: %+v", infos)
	}
}

func TestDirCache(t *testing.T) {
	d := dirCache(t.TempDir())
	ctx := context.Background()
	if _, err := d.Get(ctx, "a.example"); err == nil {
		t.Fatal("Get of a missing name succeeded")
	}
	if err := d.Put(ctx, "a.example", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, err := d.Get(ctx, "a.example"); err != nil || string(b) != "x" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(string(d), "a.example")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
	if err := d.Delete(ctx, "a.example"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := d.Put(ctx, bad, nil); err == nil {
			t.Errorf("Put(%q) succeeded", bad)
		}
	}
}

// TestACMEConfiguredCertWins: with certificate files configured, UseACME
// changes nothing and the files' certificate serves.
func TestACMEConfiguredCertWins(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := newSelfSigned("mail.example.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cf, certPEM, 0o600)
	os.WriteFile(kf, keyPEM, 0o600)
	m, err := Load(dir, cf, kf, "mail.example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UseACME(dir, ACME{Directory: "https://ca.invalid/dir"}); err != nil {
		t.Fatal(err)
	}
	if m.ACME() {
		t.Error("ACME on despite configured files")
	}
	c, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: "mail.example.test"})
	if err != nil || !c.Leaf.Equal(m.Certificate().Leaf) {
		t.Errorf("GetCertificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme")); err == nil {
		t.Error("acme cache made")
	}
}

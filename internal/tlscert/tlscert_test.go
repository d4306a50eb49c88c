package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jodmai/jodmai/internal/safeio"
)

const host = "mail.example.org"

func mustLoad(t *testing.T, dataDir, certFile, keyFile, hostname string) *Manager {
	t.Helper()
	m, err := Load(dataDir, certFile, keyFile, hostname, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func serial(m *Manager) string { return m.Certificate().Leaf.SerialNumber.String() }

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	m := mustLoad(t, dir, "", "", host)
	leaf := m.Certificate().Leaf

	if got, want := leaf.DNSNames, []string{host, "localhost"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("DNSNames = %v, want %v", got, want)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "127.0.0.1,::1" {
		t.Errorf("IPAddresses = %v", ips)
	}
	for _, name := range []string{host, "localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("VerifyHostname(%s): %v", name, err)
		}
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 825*24*time.Hour || d < 365*24*time.Hour {
		t.Errorf("validity %v, want at most 825 days and at least a year", d)
	}
	if leaf.IsCA || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("IsCA %v, ExtKeyUsage %v", leaf.IsCA, leaf.ExtKeyUsage)
	}

	tlsDir := filepath.Join(dir, "tls")
	for name, want := range map[string]os.FileMode{"": 0o700, "key.pem": 0o600, "cert.pem": 0o644} {
		fi, err := os.Stat(filepath.Join(tlsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %q = %v, want %v", filepath.Join("tls", name), got, want)
		}
	}
	entries, _ := os.ReadDir(tlsDir)
	if len(entries) != 2 {
		t.Errorf("tls directory holds %d entries, want cert.pem and key.pem only", len(entries))
	}

	// A second start reuses the certificate.
	m2 := mustLoad(t, dir, "", "", host)
	if serial(m2) != serial(m) {
		t.Errorf("second Load made a new certificate: serial %s, was %s", serial(m2), serial(m))
	}
	// So does Reload.
	if err := m2.Reload(); err != nil {
		t.Fatal(err)
	}
	if serial(m2) != serial(m) {
		t.Error("Reload replaced a good self-signed certificate")
	}
}

func TestSelfSignedReplaced(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, tlsDir string)
		host    string
	}{
		{"certificate missing", func(t *testing.T, tlsDir string) {
			os.Remove(filepath.Join(tlsDir, "cert.pem"))
		}, host},
		{"key missing", func(t *testing.T, tlsDir string) {
			os.Remove(filepath.Join(tlsDir, "key.pem"))
		}, host},
		{"host name changed", func(t *testing.T, tlsDir string) {}, "mx.example.net"},
		{"expires soon", func(t *testing.T, tlsDir string) {
			writePair(t, filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem"), host,
				time.Now().Add(-validity+10*24*time.Hour))
		}, host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			old := serial(mustLoad(t, dir, "", "", host))
			tt.prepare(t, filepath.Join(dir, "tls"))
			m := mustLoad(t, dir, "", "", tt.host)
			if serial(m) == old {
				t.Fatal("certificate not replaced")
			}
			leaf := m.Certificate().Leaf
			if err := leaf.VerifyHostname(tt.host); err != nil {
				t.Error(err)
			}
			if time.Until(leaf.NotAfter) < validity-2*time.Hour {
				t.Errorf("new certificate expires %v", leaf.NotAfter)
			}
		})
	}
}

func TestSelfSignedNotOursKept(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// An operator's certificate for another name, dropped into the data
	// directory: jodmai must not overwrite it.
	certFile, keyFile := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	certPEM, keyPEM := foreignPair(t, "other.example", time.Now().Add(24*time.Hour))
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(certFile)
	m := mustLoad(t, dir, "", "", host)
	after, _ := os.ReadFile(certFile)
	if string(before) != string(after) {
		t.Error("an operator's certificate was overwritten")
	}
	if m.Certificate().Leaf.DNSNames[0] != "other.example" {
		t.Error("the operator's certificate is not the one in use")
	}
}

func TestUnreadableSelfSignedNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	mustLoad(t, dir, "", "", host)
	certFile := filepath.Join(dir, "tls", "cert.pem")
	if err := os.WriteFile(certFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "", "", host, nil); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Load with a corrupt certificate: err = %v, want an error naming %s", err, certFile)
	}
	if b, _ := os.ReadFile(certFile); string(b) != "garbage" {
		t.Error("corrupt certificate was overwritten")
	}
}

func TestConfiguredFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	want := writePair(t, certFile, keyFile, host, time.Now())
	dataDir := filepath.Join(dir, "data")
	m := mustLoad(t, dataDir, certFile, keyFile, host)
	if serial(m) != want.SerialNumber.String() {
		t.Errorf("serial %s, want %s", serial(m), want.SerialNumber)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls")); !os.IsNotExist(err) {
		t.Errorf("Load with configured files touched the data directory: %v", err)
	}

	for _, tt := range []struct {
		name, cert, key, want string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), keyFile, "nope.pem"},
		{"only cert", certFile, "", "both"},
		{"only key", "", keyFile, "both"},
		{"mismatched pair", certFile, writeOtherKey(t, dir), "private key does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(dataDir, tt.cert, tt.key, host, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writePair(t, certFile, keyFile, host, time.Now())
	m := mustLoad(t, dir, certFile, keyFile, host)
	addr := serveTLS(t, m.TLSConfig())
	first := serial(m)

	next := writePair(t, certFile, keyFile, host, time.Now())
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if serial(m) != next.SerialNumber.String() || serial(m) == first {
		t.Fatalf("after Reload serial %s, want %s", serial(m), next.SerialNumber)
	}
	// The config made before the reload serves the new certificate.
	pool := x509.NewCertPool()
	pool.AddCert(next)
	if err := handshake(addr, &tls.Config{RootCAs: pool, ServerName: host}); err != nil {
		t.Errorf("handshake after Reload: %v", err)
	}

	// A broken replacement keeps the current certificate.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}
	if serial(m) != next.SerialNumber.String() {
		t.Error("failed Reload dropped the current certificate")
	}
}

func TestReloadSelfSigned(t *testing.T) {
	dir := t.TempDir()
	m := mustLoad(t, dir, "", "", host)
	old := serial(m)
	os.Remove(filepath.Join(dir, "tls", "cert.pem"))
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	if serial(m) == old {
		t.Error("Reload did not remake a missing self-signed certificate")
	}
}

func TestHandshake(t *testing.T) {
	m := mustLoad(t, t.TempDir(), "", "", host)
	cfg := m.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", cfg.MinVersion)
	}
	addr := serveTLS(t, cfg)
	pool := x509.NewCertPool()
	pool.AddCert(m.Certificate().Leaf)

	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"TLS 1.3, verified by host name", &tls.Config{RootCAs: pool, ServerName: host}, true},
		{"TLS 1.3, localhost", &tls.Config{RootCAs: pool, ServerName: "localhost"}, true},
		{"TLS 1.3, by IP", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, true},
		{"TLS 1.3, skip verify", &tls.Config{InsecureSkipVerify: true}, true},
		{"TLS 1.2 ECDHE AEAD", &tls.Config{RootCAs: pool, ServerName: host, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true},
		{"TLS 1.2 CBC refused", &tls.Config{RootCAs: pool, ServerName: host, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false},
		{"TLS 1.1 refused", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.0 refused", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false},
		{"wrong name", &tls.Config{RootCAs: pool, ServerName: "other.example"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := handshake(addr, tt.client)
			if tt.ok && err != nil {
				t.Errorf("handshake failed: %v", err)
			}
			if !tt.ok && err == nil {
				t.Error("handshake succeeded")
			}
		})
	}
}

func TestTLSConfigIsACopy(t *testing.T) {
	m := mustLoad(t, t.TempDir(), "", "", host)
	a := m.TLSConfig()
	a.CipherSuites[0] = 0
	a.MinVersion = tls.VersionTLS10
	b := m.TLSConfig()
	if b.CipherSuites[0] == 0 || b.MinVersion != tls.VersionTLS12 {
		t.Error("changing one TLSConfig changed the next")
	}
}

// serveTLS accepts TLS connections on loopback, writes "ok" and closes.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write([]byte("ok"))
			}()
		}
	}()
	return l.Addr().String()
}

// handshake connects, verifies per cfg and reads the server's "ok".
func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	return err
}

// writePair writes a fresh self-signed pair for hostname made at now and
// returns the certificate.
func writePair(t *testing.T, certFile, keyFile, hostname string, now time.Time) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := newSelfSigned(hostname, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := safeio.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := safeio.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Leaf
}

// foreignPair returns a PEM pair that jodmai did not make (no marker), for
// hostname, expiring at notAfter.
func foreignPair(t *testing.T, hostname string, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Example Operator"}},
		DNSNames:     []string{hostname},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// writeOtherKey writes a key that matches no certificate and returns its path.
func writeOtherKey(t *testing.T, dir string) string {
	t.Helper()
	_, keyPEM := foreignPair(t, "x.example", time.Now().Add(time.Hour))
	path := filepath.Join(dir, "other-key.pem")
	if err := os.WriteFile(path, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Package tlscert owns the server's TLS certificate: it loads the configured
// PEM files or, when none are configured, makes a self-signed certificate in
// <data>/tls once and keeps using it; it serves the current certificate to
// every handshake and swaps it on Reload (SIGHUP).
//
// Invariants:
//   - Files are written atomically (temporary file, fsync, rename, directory
//     fsync); the key file is mode 0600 in a 0700 directory. Only the
//     self-signed files in <data>/tls are ever written; configured files are
//     only read.
//   - A self-signed certificate is reused across restarts, so clients that
//     pinned or trusted it keep working. It is replaced only when a file is
//     missing (first start, or a crash between the two renames), when fewer
//     than 30 days of validity remain, or when it does not cover the
//     configured host name, and only if jodmai made it.
//   - Reload keeps the current certificate when the new one fails to load.
//   - With ACME (UseACME, acme.go) certificates come from the CA and live in
//     <data>/acme, written the same way; configured files still win, and
//     the self-signed certificate serves until the CA has issued one.
package tlscert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/jodmai/jodmai/internal/safeio"
)

const (
	// validity is the lifetime of a self-signed certificate. Apple platforms
	// refuse TLS server certificates valid for more than 825 days even when
	// the user trusts them by hand, so longer would break iOS and macOS mail.
	validity = 800 * 24 * time.Hour
	// renewBefore is how much validity a self-signed certificate must have
	// left at Load or Reload not to be replaced.
	renewBefore = 30 * 24 * time.Hour
	// selfSignedOrg marks certificates jodmai made, the only ones it
	// replaces.
	selfSignedOrg = "jodmai self-signed"
)

// cipherSuites are the TLS 1.2 suites offered: forward secret (ECDHE) and
// authenticated encryption (AEAD) only. TLS 1.3 suites are not configurable
// and all qualify.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Manager holds the current certificate. It is safe for concurrent use.
type Manager struct {
	certFile, keyFile string
	selfSigned        bool // the files are in <data>/tls and ours to make
	hostname          string
	log               *slog.Logger

	reloadMu sync.Mutex // serializes Reload, which may write files

	mu   sync.RWMutex
	cert *tls.Certificate
	acme *acmeState // nil unless UseACME
}

// Load returns a Manager for the certificate chain in certFile and the key in
// keyFile, or, when both are empty, for <dataDir>/tls/cert.pem and key.pem,
// made self-signed for hostname, "localhost", 127.0.0.1 and ::1 if they do
// not exist. A nil logger discards.
func Load(dataDir, certFile, keyFile, hostname string, logger *slog.Logger) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls certificate: cert and key files must both be set or both be empty")
	}
	m := &Manager{
		certFile: certFile,
		keyFile:  keyFile,
		hostname: hostname,
		log:      logger,
	}
	if certFile == "" {
		dir := filepath.Join(dataDir, "tls")
		m.certFile = filepath.Join(dir, "cert.pem")
		m.keyFile = filepath.Join(dir, "key.pem")
		m.selfSigned = true
	}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload reads the certificate files again, or for a self-signed
// certificate replaces it if it needs renewal, and uses the result for new
// handshakes. On error the current certificate stays in use.
func (m *Manager) Reload() error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()

	var cert *tls.Certificate
	var err error
	if m.selfSigned {
		cert, err = m.loadSelfSigned(time.Now())
	} else {
		cert, err = loadPair(m.certFile, m.keyFile)
		if err == nil {
			m.warnIfUnfit(cert.Leaf)
		}
	}
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	m.mu.Lock()
	m.cert = cert
	m.mu.Unlock()
	m.log.Info("tls certificate loaded", "file", m.certFile,
		"subject", cert.Leaf.Subject.String(),
		"dns_names", cert.Leaf.DNSNames,
		"not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339),
		"sha256", Fingerprint(cert.Leaf))
	return nil
}

// ErrNotFiles is SetFiles's error for a Manager whose certificate is not
// from configured files (self-signed or ACME): switching needs a restart.
var ErrNotFiles = errors.New("tls certificate: not from configured files")

// SetFiles switches to another configured certificate and key (on
// reload) and loads them. On error the current files and certificate stay.
func (m *Manager) SetFiles(certFile, keyFile string) error {
	if m.selfSigned || certFile == "" || keyFile == "" {
		return ErrNotFiles
	}
	m.reloadMu.Lock()
	oldCert, oldKey := m.certFile, m.keyFile
	m.certFile, m.keyFile = certFile, keyFile
	m.reloadMu.Unlock()
	if err := m.Reload(); err != nil {
		m.reloadMu.Lock()
		m.certFile, m.keyFile = oldCert, oldKey
		m.reloadMu.Unlock()
		return err
	}
	return nil
}

// Certificate returns the certificate in use; its Leaf is set.
func (m *Manager) Certificate() *tls.Certificate {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.cert
}

// TLSConfig returns a new server configuration using the Manager's current
// certificate at each handshake: TLS 1.2 or later, and for TLS 1.2 only
// ECDHE key exchange with AEAD ciphers. Callers may change the copy they get.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   slices.Clone(cipherSuites),
		GetCertificate: m.getCertificate,
	}
}

// HTTPSConfig is TLSConfig for the HTTPS listener: it also offers HTTP/2
// and HTTP/1.1, and answers ACME tls-alpn-01 validations (RFC 8737), which
// negotiate "acme-tls/1".
func (m *Manager) HTTPSConfig() *tls.Config {
	c := m.TLSConfig()
	c.NextProtos = []string{"h2", "http/1.1", acme.ALPNProto}
	return c
}

// Fingerprint returns the lowercase hex SHA-256 of the certificate's DER
// encoding, what a user compares when trusting a self-signed certificate.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// loadPair reads a PEM certificate chain and its key and checks they match.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load %s and %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil { // set by Go 1.23 and later; kept for clarity
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// warnIfUnfit logs what will make clients reject a configured certificate.
// It does not refuse it: an operator's renewal job may be about to fix it.
func (m *Manager) warnIfUnfit(leaf *x509.Certificate) {
	if time.Now().After(leaf.NotAfter) {
		m.log.Warn("tls certificate has expired", "file", m.certFile, "not_after", leaf.NotAfter)
	}
	if m.hostname != "" {
		if err := leaf.VerifyHostname(m.hostname); err != nil {
			m.log.Warn("tls certificate does not cover the host name", "file", m.certFile, "hostname", m.hostname, "err", err)
		}
	}
}

// loadSelfSigned loads the self-signed pair, making a new one when a file is
// missing or the certificate needs renewal.
func (m *Manager) loadSelfSigned(now time.Time) (*tls.Certificate, error) {
	cert, err := loadPair(m.certFile, m.keyFile)
	switch {
	case err == nil:
		why := m.renewalReason(cert.Leaf, now)
		if why == "" {
			return cert, nil
		}
		if !madeByUs(cert.Leaf) {
			m.log.Warn("tls certificate in the data directory needs renewal but jodmai did not make it; keeping it",
				"file", m.certFile, "reason", why)
			return cert, nil
		}
		m.log.Info("replacing self-signed tls certificate", "file", m.certFile, "reason", why)
	case errors.Is(err, fs.ErrNotExist):
		m.log.Info("making a self-signed tls certificate", "file", m.certFile, "hostname", m.hostname)
	default:
		// Something is there but unreadable: never overwrite it.
		return nil, err
	}

	certPEM, keyPEM, err := newSelfSigned(m.hostname, now)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(m.certFile)
	if err := safeio.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	// Key first: a crash before the certificate's rename leaves a missing
	// certificate, which the next start treats as "make a new pair".
	if err := safeio.WriteFile(m.keyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := safeio.WriteFile(m.certFile, certPEM, 0o644); err != nil {
		return nil, err
	}
	return loadPair(m.certFile, m.keyFile)
}

// renewalReason says why a self-signed certificate should be replaced, or
// returns "".
func (m *Manager) renewalReason(leaf *x509.Certificate, now time.Time) string {
	if leaf.NotAfter.Sub(now) < renewBefore {
		return "expires " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	if m.hostname != "" && leaf.VerifyHostname(m.hostname) != nil {
		return "does not cover host name " + m.hostname
	}
	return ""
}

func madeByUs(leaf *x509.Certificate) bool {
	return slices.Contains(leaf.Subject.Organization, selfSignedOrg) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil // self-signed; CheckSignatureFrom would demand a CA
}

// newSelfSigned makes an ECDSA P-256 key and a certificate for hostname,
// "localhost", 127.0.0.1 and ::1, valid from an hour before now (for clock
// skew) for validity, both PEM encoded.
func newSelfSigned(hostname string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial number: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // RFC 5280 §4.1.2.2: positive

	names := []string{"localhost"}
	if hostname != "" && hostname != "localhost" {
		names = []string{hostname, "localhost"}
	}
	subject := pkix.Name{Organization: []string{selfSignedOrg}}
	if len(names[0]) <= 64 { // RFC 5280 ub-common-name
		subject.CommonName = names[0]
	}
	notBefore := now.Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

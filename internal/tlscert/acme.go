package tlscert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/jodmai/jodmai/internal/safeio"
)

// ACME configures certificates from an ACME CA (RFC 8555), obtained by
// golang.org/x/crypto/acme/autocert and kept in <data>/acme.
//
// A certificate is requested the first time a client asks for an allowed
// name (SNI), and renewed in the background by autocert when a third of its
// lifetime (at most 30 days) remains; the renewed certificate serves the
// next handshake, on every listener, without a restart. A renewal that
// fails is retried every 30 to 60 minutes while the old certificate keeps
// serving; the CA's reason is logged (see problemLogger).
type ACME struct {
	// Directory is the CA's directory URL.
	Directory string
	// Email is the contact address registered with the CA; "" for none.
	Email string
	// Allowed reports whether a certificate may be requested for host (a
	// lowercase ASCII name), asked each time a name not yet cached is
	// requested, so names that become allowed need no restart. The
	// Manager's hostname is always allowed.
	Allowed func(ctx context.Context, host string) bool
	// HTTPClient talks to the CA; nil: a client with a 1-minute timeout.
	// Tests give one that trusts their CA.
	HTTPClient *http.Client
	// RenewBefore overrides when renewal starts: this long before expiry.
	// Zero: autocert's default, a third of the lifetime, at most 30 days.
	RenewBefore time.Duration
}

// acmeState is the Manager's ACME side, set by UseACME.
type acmeState struct {
	m       *autocert.Manager
	allowed func(ctx context.Context, host string) bool

	mu       sync.Mutex
	served   map[string]*x509.Certificate // last leaf served per name (metrics, Certificates)
	lastWarn map[string]time.Time         // per name: when an error was last logged
}

// acmeErrorInterval is how often the same name's failure to get a
// certificate is logged; handshakes may ask every second.
const acmeErrorInterval = time.Minute

// UseACME makes the Manager serve certificates from an ACME CA, with the
// self-signed certificate as the stand-in until one is issued. When the
// Manager was loaded with configured certificate files they win: UseACME
// logs that and changes nothing.
func (m *Manager) UseACME(dataDir string, cfg ACME) error {
	if !m.selfSigned {
		m.log.Info("acme: certificate files are configured and take precedence; not using acme", "file", m.certFile)
		return nil
	}
	dir := filepath.Join(dataDir, "acme")
	if err := safeio.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	logged := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	logged.Transport = &problemLogger{base: base, log: m.log}
	st := &acmeState{
		allowed:  cfg.Allowed,
		served:   map[string]*x509.Certificate{},
		lastWarn: map[string]time.Time{},
	}
	st.m = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       dirCache(dir),
		HostPolicy:  m.hostPolicy(st),
		RenewBefore: cfg.RenewBefore,
		Email:       cfg.Email,
		Client:      &acme.Client{DirectoryURL: cfg.Directory, HTTPClient: &logged, UserAgent: "jodmai"},
	}
	m.mu.Lock()
	m.acme = st
	m.mu.Unlock()
	m.log.Info("acme: certificates from an ACME CA", "directory", cfg.Directory, "cache", dir)
	return nil
}

// hostPolicy allows the hostname and whatever cfg.Allowed allows.
func (m *Manager) hostPolicy(st *acmeState) autocert.HostPolicy {
	return func(ctx context.Context, host string) error {
		host = strings.TrimSuffix(strings.ToLower(host), ".")
		if host == m.hostname || (st.allowed != nil && st.allowed(ctx, host)) {
			return nil
		}
		return fmt.Errorf("acme: %q is not a name this server gets certificates for", host)
	}
}

func (m *Manager) acmeState() *acmeState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.acme
}

// HTTPHandler returns the handler for the plain-HTTP listener: ACME http-01
// challenge answers when ACME is on, fallback for everything else.
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	st := m.acmeState()
	if st == nil {
		return fallback
	}
	return st.m.HTTPHandler(fallback)
}

// ACME reports whether certificates come from an ACME CA.
func (m *Manager) ACME() bool { return m.acmeState() != nil }

// getCertificate serves a handshake. Without ACME: the loaded certificate.
// With ACME: the CA's certificate for the name asked (SNI) when that name
// is allowed, else for the hostname, and the self-signed certificate while
// the CA has none, so a client always gets a certificate.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := m.acmeState()
	if st == nil {
		return m.Certificate(), nil
	}
	// RFC 8737 §3: a tls-alpn-01 validation offers only "acme-tls/1".
	if len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acme.ALPNProto {
		return st.m.GetCertificate(hello)
	}
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if name == "" || st.m.HostPolicy(ctx, name) != nil {
		name = m.hostname
	}
	h := *hello
	h.ServerName = name
	c, err := st.m.GetCertificate(&h)
	if err != nil || c.Leaf == nil {
		if err == nil {
			err = errors.New("certificate without a parsed leaf")
		}
		st.warn(m.log, name, err)
		return m.Certificate(), nil
	}
	st.mu.Lock()
	st.served[name] = c.Leaf
	st.mu.Unlock()
	return c, nil
}

func (st *acmeState) warn(log *slog.Logger, name string, err error) {
	st.mu.Lock()
	last, ok := st.lastWarn[name]
	now := time.Now()
	if ok && now.Sub(last) < acmeErrorInterval {
		st.mu.Unlock()
		return
	}
	st.lastWarn[name] = now
	st.mu.Unlock()
	log.Warn("acme: no certificate from the CA yet; serving the self-signed one", "name", name, "err", err)
}

// Prefetch asks the CA for the hostname's certificate now, so that the
// first client does not wait for it. It returns the error, also logged.
// autocert bounds the work (5 minutes); it cannot take a context.
func (m *Manager) Prefetch() error {
	st := m.acmeState()
	if st == nil {
		return nil
	}
	hello := &tls.ClientHelloInfo{ServerName: m.hostname, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, SupportedCurves: []tls.CurveID{tls.CurveP256}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}
	c, err := st.m.GetCertificate(hello)
	if err != nil {
		m.log.Warn("acme: getting the certificate for the host name", "name", m.hostname, "err", err)
		return err
	}
	st.mu.Lock()
	st.served[m.hostname] = c.Leaf
	st.mu.Unlock()
	m.log.Info("acme: certificate ready", "name", m.hostname, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "sha256", Fingerprint(c.Leaf))
	return nil
}

// CertInfo describes a certificate in use.
type CertInfo struct {
	Name     string // the name it was served for; "" for the default certificate
	Source   string // "acme", "file" or "self-signed"
	NotAfter time.Time
	// Subject and Issuer are the certificate's and its issuer's names;
	// Names the host names it is valid for.
	Subject, Issuer string
	Names           []string
}

// certInfo describes leaf served for name from src.
func certInfo(name, src string, leaf *x509.Certificate) CertInfo {
	return CertInfo{Name: name, Source: src, NotAfter: leaf.NotAfter, Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(), Names: leaf.DNSNames}
}

// Certificates lists the certificates in use: the loaded (self-signed or
// configured) one, and with ACME each name's last served certificate.
func (m *Manager) Certificates() []CertInfo {
	src := "file"
	if m.selfSigned {
		src = "self-signed"
	}
	out := []CertInfo{certInfo("", src, m.Certificate().Leaf)}
	if st := m.acmeState(); st != nil {
		st.mu.Lock()
		for name, leaf := range st.served {
			out = append(out, certInfo(name, "acme", leaf))
		}
		st.mu.Unlock()
		slices.SortFunc(out[1:], func(a, b CertInfo) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

// dirCache is autocert's cache in a directory, written with safeio: an
// account key or certificate the CA issued survives a power cut (autocert's
// DirCache renames without fsync).
type dirCache string

func (d dirCache) path(name string) (string, error) {
	// autocert's names: host names, "acme_account+key", "+rsa", "+token".
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("acme cache: bad name %q", name)
	}
	return filepath.Join(string(d), name), nil
}

func (d dirCache) Get(ctx context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, autocert.ErrCacheMiss
	}
	return data, err
}

func (d dirCache) Put(ctx context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	return safeio.WriteFile(p, data, 0o600)
}

func (d dirCache) Delete(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return safeio.SyncDir(string(d))
}

// problemLogger logs what the CA says went wrong, which autocert does not
// report when it is renewing in the background: every problem document
// (RFC 8555 §6.7) and every authorization that became invalid, with the
// challenge's error (a CA that could not reach our listener says so here).
type problemLogger struct {
	base http.RoundTripper
	log  *slog.Logger
}

// maxLoggedBody bounds how much of a response is inspected.
const maxLoggedBody = 64 << 10

func (p *problemLogger) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct != "application/problem+json" && ct != "application/json" {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxLoggedBody+1))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if rerr != nil || len(body) > maxLoggedBody {
		return resp, nil
	}
	type problem struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	}
	if ct == "application/problem+json" {
		var pr problem
		if json.Unmarshal(body, &pr) == nil && pr.Type != "urn:ietf:params:acme:error:badNonce" { // badNonce: the client retries
			p.log.Warn("acme: the CA refused a request", "url", req.URL.String(), "status", resp.StatusCode, "type", pr.Type, "detail", pr.Detail)
		}
		return resp, nil
	}
	var authz struct {
		Status     string `json:"status"`
		Identifier struct {
			Value string `json:"value"`
		} `json:"identifier"`
		Challenges []struct {
			Type  string   `json:"type"`
			Error *problem `json:"error"`
		} `json:"challenges"`
	}
	if json.Unmarshal(body, &authz) != nil || authz.Status != "invalid" || authz.Identifier.Value == "" {
		return resp, nil
	}
	for _, c := range authz.Challenges {
		if c.Error != nil {
			p.log.Warn("acme: the CA could not validate a challenge; a current certificate, if any, stays in use",
				"name", authz.Identifier.Value, "challenge", c.Type, "type", c.Error.Type, "detail", c.Error.Detail)
		}
	}
	return resp, nil
}

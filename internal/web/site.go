package web

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"

	"github.com/jodmai/jodmai/internal/dnsrecords"
)

// Site is what the http and https listeners publish for the local
// domains. Exported fields are its configuration.
type Site struct {
	// Hostname is the server's name, the host clients are told to use.
	Hostname string
	// Policy is the MTA-STS policy file (dnsrecords.MTASTSPolicy).
	Policy string
	// Services are the client services with their public ports
	// (dnsrecords.Services).
	Services []dnsrecords.Service
	// HTTPSPort is the public port of the https listener, for redirects;
	// 0 or 443 leaves it out of the URL.
	HTTPSPort int
	// LocalDomain reports whether domain (lowercase ASCII) is served
	// here; asked per request, so domains added later are served at once.
	LocalDomain func(ctx context.Context, domain string) bool
	// Log receives one line per request answered with an error. Nil
	// discards.
	Log *slog.Logger
	// Console, if set, answers every other https request: the web
	// console (package console). Plain http never reaches it.
	Console http.Handler
}

// Paths served.
const (
	mtaSTSPath          = "/.well-known/mta-sts.txt"                     // RFC 8461 §3.3
	autoconfigPath      = "/mail/config-v1.1.xml"                        // at autoconfig.<domain>
	wellKnownAutoconfig = "/.well-known/autoconfig/mail/config-v1.1.xml" // at <domain>
	autodiscoverPath    = "/autodiscover/autodiscover.xml"               // Outlook, POX
)

// HTTPS returns the https listener's handler.
func (s *Site) HTTPS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		path := r.URL.Path
		switch {
		case path == mtaSTSPath:
			s.serveMTASTS(w, r)
		case path == autoconfigPath || path == wellKnownAutoconfig:
			s.serveAutoconfig(w, r)
		case strings.EqualFold(path, autodiscoverPath):
			s.serveAutodiscover(w, r)
		case s.Console != nil:
			s.Console.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// HTTP returns the plain http listener's handler: autoconfig, and a
// redirect to https for everything else. The caller wraps it with the
// ACME http-01 handler.
func (s *Site) HTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		if r.URL.Path == autoconfigPath || r.URL.Path == wellKnownAutoconfig {
			s.serveAutoconfig(w, r)
			return
		}
		host := hostOf(r)
		if !validHost(host) {
			http.Error(w, "bad Host", http.StatusBadRequest)
			return
		}
		target := "https://" + host
		if s.HTTPSPort != 0 && s.HTTPSPort != 443 {
			target += ":" + strconv.Itoa(s.HTTPSPort)
		}
		target += r.URL.RequestURI()
		code := http.StatusMovedPermanently
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusPermanentRedirect // keeps the method and body
		}
		http.Redirect(w, r, target, code)
	})
}

func setCommonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// validHost accepts a DNS name or IP literal without anything that could
// change a redirect's meaning.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']'
		if !ok {
			return false
		}
	}
	return true
}

func (s *Site) local(ctx context.Context, domain string) bool {
	return domain != "" && s.LocalDomain != nil && s.LocalDomain(ctx, domain)
}

// serveMTASTS answers https://mta-sts.<domain>/.well-known/mta-sts.txt for
// a local domain (RFC 8461 §3.3: text/plain; senders must not follow
// redirects, so none is given).
func (s *Site) serveMTASTS(w http.ResponseWriter, r *http.Request) {
	domain, ok := strings.CutPrefix(hostOf(r), "mta-sts.")
	if !ok || !s.local(r.Context(), domain) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "max-age=3600")
	io.WriteString(w, s.Policy)
}

// autoconfigDomain returns the domain an autoconfig request is for: the
// one in ?emailaddress= when given, else autoconfig.<domain>'s, else the
// Host itself (/.well-known/autoconfig at the domain).
func autoconfigDomain(r *http.Request) string {
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		if _, d, ok := strings.Cut(addr, "@"); ok {
			return strings.TrimSuffix(strings.ToLower(d), ".")
		}
	}
	host := hostOf(r)
	if d, ok := strings.CutPrefix(host, "autoconfig."); ok {
		return d
	}
	return host
}

// serveAutoconfig answers Thunderbird's autoconfig request with the
// clientConfig file: every enabled IMAP, POP3 and submission service,
// implicit TLS first, login with the full address.
func (s *Site) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	domain := autoconfigDomain(r)
	if !s.local(r.Context(), domain) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	writeXML(w, s.Log, ClientConfig(s.Hostname, domain, s.Services))
}

// serveAutodiscover answers Outlook's POX autodiscover request (the
// "Autodiscover for Exchange" XML schema, outlook response schema 2006a)
// for an address in a local domain.
func (s *Site) serveAutodiscover(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req autodiscoverRequest
	if err := xml.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		http.Error(w, "bad autodiscover request", http.StatusBadRequest)
		return
	}
	addr, err := mail.ParseAddress(strings.TrimSpace(req.Request.EMailAddress))
	if err != nil {
		http.Error(w, "bad autodiscover request", http.StatusBadRequest)
		return
	}
	_, domain, _ := strings.Cut(addr.Address, "@")
	domain = strings.ToLower(domain)
	if !s.local(r.Context(), domain) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	writeXML(w, s.Log, Autodiscover(s.Hostname, addr.Address, s.Services))
}

func writeXML(w io.Writer, log *slog.Logger, v any) {
	io.WriteString(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(v); err != nil && log != nil {
		log.Debug("web: writing xml", "err", err)
	}
	io.WriteString(w, "\n")
}

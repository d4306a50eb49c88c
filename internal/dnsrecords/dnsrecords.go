// Package dnsrecords owns what a mail domain served by this server
// publishes so that other servers and mail clients find and trust it: the
// DNS records (`jodmai dns-records`), the MTA-STS policy file (RFC 8461)
// the https listener serves, and the list of client services with the
// ports clients are told (SRV records, autoconfig, autodiscover). Each of
// those is computed here once, from the configuration, so the records and
// what the web serves never disagree.
package dnsrecords

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/jodmai/jodmai/internal/config"
)

// Service is one client-facing mail service.
type Service struct {
	// SRV is the RFC 6186 / RFC 8314 service label ("_imaps").
	SRV string
	// Listener is the [listen] key that serves it ("imaps").
	Listener string
	// Proto is "imap", "pop3" or "smtp" (submission).
	Proto string
	// ImplicitTLS says TLS from the first byte; otherwise STARTTLS.
	ImplicitTLS bool
	// Port is the port clients are told; 0 when the listener is off.
	Port int
}

// standard ports, in SRV priority order: implicit TLS before STARTTLS,
// IMAP before POP3 (RFC 6186 §3.4, RFC 8314 §5.1).
var services = []struct {
	srv, listener, proto string
	tls                  bool
	port                 int
}{
	{"_submissions", "submissions", "smtp", true, 465}, // RFC 8314 §5.1
	{"_submission", "submission", "smtp", false, 587},  // RFC 6186 §3.1
	{"_imaps", "imaps", "imap", true, 993},             // RFC 6186 §3.2
	{"_imap", "imap", "imap", false, 143},
	{"_pop3s", "pop3s", "pop3", true, 995}, // RFC 6186 §3.3
	{"_pop3", "pop3", "pop3", false, 110},
}

// Services returns the client services in SRV priority order, disabled
// ones with Port 0.
func Services(cfg *config.Config) []Service {
	out := make([]Service, len(services))
	for i, s := range services {
		out[i] = Service{SRV: s.srv, Listener: s.listener, Proto: s.proto, ImplicitTLS: s.tls, Port: PublicPort(cfg, s.listener, s.port)}
	}
	return out
}

// PublicPort returns the port to publish for a listener: the standard one
// when the listener uses it or the unprivileged default (standard +
// 10000, usually forwarded), the configured one otherwise; 0 when the
// listener is disabled.
func PublicPort(cfg *config.Config, key string, standard int) int {
	var addr string
	for _, e := range cfg.Listen.Endpoints() {
		if e.Key == key {
			addr = e.Addr
		}
	}
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return standard
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == standard || n == standard+10000 {
		return standard
	}
	return n
}

// MTASTSMaxAge is the policy's max_age: a week, what RFC 8461 §3.2 suggests
// as a start (senders cache the policy that long).
const MTASTSMaxAge = 604800

// MTASTSPolicy returns the MTA-STS policy file (RFC 8461 §3.2) for every
// local domain: this server is the only MX, and the mode is "testing"
// until the operator has seen TLS reports without failures.
func MTASTSPolicy(cfg *config.Config) string {
	// RFC 8461 §3.2: lines end in CRLF (LF is accepted by senders).
	return "version: STSv1\r\nmode: testing\r\nmx: " + cfg.Hostname + "\r\nmax_age: " + strconv.Itoa(MTASTSMaxAge) + "\r\n"
}

// MTASTSID returns the id for the _mta-sts TXT record of policy (RFC 8461
// §3.1: 1 to 32 letters and digits, changed whenever the policy changes):
// derived from the policy's text, so it changes exactly when the policy
// does.
func MTASTSID(policy string) string {
	sum := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(sum[:10])
}

// Write prints every DNS record domain needs, in zone-file syntax with
// comments; dkim are the DKIM TXT records (zone-file lines) of its keys.
func Write(w io.Writer, cfg *config.Config, domain string, dkim []string) {
	host := cfg.Hostname + "."
	dom := domain + "."
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }

	p("; DNS records for %s, served by %s. Zone-file syntax, absolute names.", domain, cfg.Hostname)
	if !strings.Contains(cfg.Hostname, ".") {
		p("; WARNING: the host name %q is not a fully qualified domain name: set", cfg.Hostname)
		p("; hostname in the configuration to the name the internet knows this server by.")
	}
	p(";")
	p("; %s must itself have A and/or AAAA records, and the reverse DNS (PTR) of", host)
	p("; those addresses should name %s: many receivers check it.", host)
	p("")
	p("; Mail for %s goes to this server (RFC 5321 §5.1).", domain)
	p("%s 3600 IN MX 10 %s", dom, host)
	p("")
	p("; SPF (RFC 7208): the hosts in %s's MX may send its mail; \"~all\" asks", domain)
	p("; receivers to treat mail from anywhere else as suspect (softfail) rather than")
	p("; reject it, a safe start; DMARC below decides what happens. The host name's")
	p("; own record covers the EHLO identity (bounces have an empty sender).")
	p("%s 3600 IN TXT \"v=spf1 mx ~all\"", dom)
	if !strings.EqualFold(cfg.Hostname, domain) {
		p("%s 3600 IN TXT \"v=spf1 a ~all\"", host)
	}
	p("")
	p("; DKIM (RFC 6376): the public keys of the keys this server signs with.")
	if len(dkim) == 0 {
		p("; No key yet: run \"jodmai dkim keygen %s\" and run this command again.", domain)
	}
	for _, r := range dkim {
		p("%s", r)
	}
	p("")
	p("; DMARC (RFC 7489): receivers quarantine mail that passes neither SPF nor DKIM")
	p("; aligned with %s, and send aggregate reports to postmaster. Start with", domain)
	p("; p=none to only watch, move to p=reject when the reports look right.")
	p("_dmarc.%s 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@%s\"", dom, domain)
	p("")
	policy := MTASTSPolicy(cfg)
	p("; MTA-STS (RFC 8461): senders use verified TLS to this server. It needs a")
	p("; certificate for %s from a public CA ([tls] acme = true gets one), and", cfg.Hostname)
	p("; the policy file at https://mta-sts.%s/.well-known/mta-sts.txt, which", domain)
	p("; this server's https listener serves (port 443, with a certificate for")
	p("; mta-sts.%s, which ACME also gets):", domain)
	p(";")
	for _, l := range strings.Split(strings.TrimSpace(policy), "\r\n") {
		p(";   %s", l)
	}
	p(";")
	p("; The mode moves to enforce in a later version once TLS reports show no")
	p("; failures; the id below is derived from the policy and changes with it.")
	p("mta-sts.%s 3600 IN CNAME %s", dom, host)
	p("_mta-sts.%s 3600 IN TXT \"v=STSv1; id=%s\"", dom, MTASTSID(policy))
	p("")
	p("; TLS reporting (RFC 8460): where senders report TLS failures.")
	p("_smtp._tls.%s 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@%s\"", dom, domain)
	p("")
	p("; Service records (RFC 6186, RFC 8314) let mail clients find the submission,")
	p("; IMAP and POP3 services; \"0 0 0 .\" says a service is not offered.")
	for i, s := range Services(cfg) {
		if s.Port == 0 {
			p("%s._tcp.%s 3600 IN SRV 0 0 0 .", s.SRV, dom)
			continue
		}
		p("%s._tcp.%s 3600 IN SRV %d 1 %d %s", s.SRV, dom, i, s.Port, host)
	}
	p("")
	p("; Automatic configuration names that Thunderbird (autoconfig) and Outlook")
	p("; (autodiscover) look up; this server's http and https listeners answer them.")
	p("autoconfig.%s 3600 IN CNAME %s", dom, host)
	p("autodiscover.%s 3600 IN CNAME %s", dom, host)
}

// Record is one DNS record a domain should publish, as Write prints it.
type Record struct {
	// Check names what the record is for: "MX", "SPF", "DMARC",
	// "MTA-STS", "MTA-STS host", "TLS-RPT", "SRV", "autoconfig",
	// "autodiscover" (DKIM records come from the keys).
	Check string
	// Name is the absolute owner name, with its trailing dot.
	Name string
	// Type is "MX", "TXT", "CNAME" or "SRV".
	Type string
	// Value is the record data in zone-file syntax; for TXT, the text
	// itself, unquoted.
	Value string
}

// String returns the record as a zone-file line, as Write prints it.
func (r Record) String() string {
	v := r.Value
	if r.Type == "TXT" {
		v = `"` + v + `"`
	}
	return fmt.Sprintf("%s 3600 IN %s %s", r.Name, r.Type, v)
}

// Records returns the records Write prints for domain (DKIM aside), in
// the same order: what `jodmai dns-check` compares the live DNS with.
func Records(cfg *config.Config, domain string) []Record {
	host := cfg.Hostname + "."
	dom := domain + "."
	out := []Record{
		{"MX", dom, "MX", "10 " + host},
		{"SPF", dom, "TXT", "v=spf1 mx ~all"},
	}
	if !strings.EqualFold(cfg.Hostname, domain) {
		out = append(out, Record{"SPF", host, "TXT", "v=spf1 a ~all"})
	}
	out = append(out,
		Record{"DMARC", "_dmarc." + dom, "TXT", "v=DMARC1; p=quarantine; rua=mailto:postmaster@" + domain},
		Record{"MTA-STS host", "mta-sts." + dom, "CNAME", host},
		Record{"MTA-STS", "_mta-sts." + dom, "TXT", "v=STSv1; id=" + MTASTSID(MTASTSPolicy(cfg))},
		Record{"TLS-RPT", "_smtp._tls." + dom, "TXT", "v=TLSRPTv1; rua=mailto:postmaster@" + domain},
	)
	for i, s := range Services(cfg) {
		v := "0 0 0 ."
		if s.Port != 0 {
			v = fmt.Sprintf("%d 1 %d %s", i, s.Port, host)
		}
		out = append(out, Record{"SRV", s.SRV + "._tcp." + dom, "SRV", v})
	}
	return append(out,
		Record{"autoconfig", "autoconfig." + dom, "CNAME", host},
		Record{"autodiscover", "autodiscover." + dom, "CNAME", host},
	)
}

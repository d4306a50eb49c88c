package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/userdb"
)

// runDKIMKeygen makes a new ed25519 and rsa key pair for a domain and
// prints the TXT records to publish.
func runDKIMKeygen(ctx context.Context, env *cmdEnv, args []string) error {
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	keys, err := remote.Keygen(cfg.Data, rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "; DKIM keys for %s, used to sign its outbound mail from now on:\n", keys[0].Domain)
	if local, err := isLocalDomain(ctx, cfg.Data, keys[0].Domain); err == nil && !local {
		fmt.Fprintf(env.stdout, "; warning: %s is not a local domain here, so no mail from it is sent\n;   through this server until \"jodmai domain add %s\".\n", keys[0].Domain, keys[0].Domain)
	}
	for _, k := range keys {
		fmt.Fprintf(env.stdout, ";   %s (%s)\n", k.Path, k.Alg)
	}
	fmt.Fprintln(env.stdout, "; Publish these TXT records (zone-file syntax):")
	for _, k := range keys {
		fmt.Fprintln(env.stdout, k.ZoneRecord())
	}
	return nil
}

// srvService is one RFC 6186 / RFC 8314 SRV record and the listener that
// serves it.
type srvService struct {
	name     string // "_submission"
	listener string // [listen] key
	port     int    // standard port
}

var srvServices = []srvService{
	{"_submissions", "submissions", 465}, // RFC 8314 §5.1
	{"_submission", "submission", 587},   // RFC 6186 §3.1
	{"_imaps", "imaps", 993},             // RFC 6186 §3.2
	{"_imap", "imap", 143},
	{"_pop3s", "pop3s", 995}, // RFC 6186 §3.3
	{"_pop3", "pop3", 110},
}

// runDNSRecords prints every DNS record a domain served by this server
// needs, in zone-file syntax.
func runDNSRecords(ctx context.Context, env *cmdEnv, args []string) error {
	rest, cfg, err := env.parseConfig(args, 1, 1)
	if err != nil {
		return err
	}
	d, err := dns.ParseDomain(strings.TrimSuffix(rest[0], "."))
	if err != nil {
		return usagef("bad domain %q: %v", rest[0], err)
	}
	keys, err := remote.LoadKeys(cfg.Data, d.ASCII)
	if err != nil {
		return err
	}
	writeDNSRecords(env.stdout, cfg, d.ASCII, keys, time.Now())
	return nil
}

// listenerPort returns the port to publish for a listener: the standard
// one when the listener uses it or the unprivileged default (standard +
// 10000, usually forwarded), the configured one otherwise; 0 when the
// listener is disabled.
func listenerPort(cfg *config.Config, key string, standard int) int {
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

func writeDNSRecords(w io.Writer, cfg *config.Config, domain string, keys []remote.Key, now time.Time) {
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
	if len(keys) == 0 {
		p("; No key yet: run \"jodmai dkim keygen %s\" and run this command again.", domain)
	}
	for _, k := range keys {
		p("%s", k.ZoneRecord())
	}
	p("")
	p("; DMARC (RFC 7489): receivers quarantine mail that passes neither SPF nor DKIM")
	p("; aligned with %s, and send aggregate reports to postmaster. Start with", domain)
	p("; p=none to only watch, move to p=reject when the reports look right.")
	p("_dmarc.%s 3600 IN TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@%s\"", dom, domain)
	p("")
	p("; MTA-STS (RFC 8461): senders use verified TLS to this server. It needs a")
	p("; certificate for %s from a public CA, and this policy file served at", cfg.Hostname)
	p(";   https://mta-sts.%s/.well-known/mta-sts.txt (Content-Type: text/plain)", domain)
	p("; by a web server with a certificate for mta-sts.%s:", domain)
	p(";")
	p(";   version: STSv1")
	p(";   mode: testing")
	p(";   mx: %s", cfg.Hostname)
	p(";   max_age: 604800")
	p(";")
	p("; Switch \"mode\" to enforce once TLS reports show no failures, and change the")
	p("; id below every time the policy file changes.")
	p("_mta-sts.%s 3600 IN TXT \"v=STSv1; id=%s\"", dom, now.UTC().Format("20060102T150405"))
	p("")
	p("; TLS reporting (RFC 8460): where senders report TLS failures.")
	p("_smtp._tls.%s 3600 IN TXT \"v=TLSRPTv1; rua=mailto:postmaster@%s\"", dom, domain)
	p("")
	p("; Service records (RFC 6186, RFC 8314) let mail clients find the submission,")
	p("; IMAP and POP3 services; \"0 0 0 .\" says a service is not offered.")
	for i, s := range srvServices {
		port := listenerPort(cfg, s.listener, s.port)
		if port == 0 {
			p("%s._tcp.%s 3600 IN SRV 0 0 0 .", s.name, dom)
			continue
		}
		// Priorities compare across services (RFC 6186 §3.4, RFC 8314
		// §5.1): implicit TLS before STARTTLS, IMAP before POP3.
		p("%s._tcp.%s 3600 IN SRV %d 1 %d %s", s.name, dom, i, port, host)
	}
	p("")
	p("; Automatic configuration names that Thunderbird (autoconfig) and Outlook")
	p("; (autodiscover) look up.")
	p("autoconfig.%s 3600 IN CNAME %s", dom, host)
	p("autodiscover.%s 3600 IN CNAME %s", dom, host)
}

// isLocalDomain reports whether the directory in dataDir has domain.
func isLocalDomain(ctx context.Context, dataDir, domain string) (bool, error) {
	db, err := userdb.Open(ctx, dataDir)
	if err != nil {
		return false, err
	}
	defer db.Close()
	return db.IsLocalDomain(ctx, domain)
}

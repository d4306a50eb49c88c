// Package dnscheck compares what a local domain publishes in the live DNS
// with what it should publish (package dnsrecords, the source of
// `jodmai dns-records`), record by record: OK, missing, or wrong with the
// exact record to publish. It covers MX, SPF, the DKIM selectors, DMARC,
// MTA-STS (its TXT record, its host and the policy fetched over HTTPS),
// TLS reporting, the RFC 6186 SRV records, the autoconfig and autodiscover
// host names, the server's host name and the forward-confirmed reverse DNS
// (PTR) of its sending addresses.
//
// It only reads: DNS questions through the given resolver and one HTTPS
// GET per domain for the MTA-STS policy.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mjl-/mox/dmarc"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/mtasts"
	"github.com/mjl-/mox/spf"
	"github.com/mjl-/mox/tlsrpt"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/remote"
)

// Status is the verdict on one record.
type Status string

// The verdicts.
const (
	OK      Status = "ok"
	Missing Status = "missing"
	Wrong   Status = "wrong"
	// Error: the lookup failed (timeout, SERVFAIL): nothing is known.
	Error Status = "error"
)

// Result is the check of one record.
type Result struct {
	// Domain is the local domain checked.
	Domain string
	// Check names the record: "MX", "SPF", "DKIM", "DMARC", "MTA-STS",
	// "MTA-STS host", "MTA-STS policy", "TLS-RPT", "SRV", "autoconfig",
	// "autodiscover", "host", "PTR".
	Check string
	// Name is the DNS name looked up (or the policy's URL).
	Name   string
	Status Status
	// Found is what the DNS has (empty when missing).
	Found []string
	// Want is the exact record to publish (a zone-file line), or what
	// to do when it is not a record; set whatever the status.
	Want string
	// Detail says what is wrong, in a few words.
	Detail string
}

// Checker checks domains.
type Checker struct {
	// Config is the server's configuration (host name, listeners, data
	// directory for the DKIM keys).
	Config *config.Config
	// Resolver asks the DNS.
	Resolver dns.Resolver
	// HTTPClient fetches the MTA-STS policy; nil: a client with a
	// 30-second timeout. Tests give one that dials their own server.
	HTTPClient *http.Client
	// SendingIPs are the addresses outbound mail leaves from, whose PTR
	// is checked; nil: [remote] source_ip when set, else the host name's
	// A and AAAA records.
	SendingIPs []net.IP
	// Log receives the DNS library's debug lines; nil: none.
	Log *slog.Logger
}

// lookupTimeout bounds the checks of one domain.
const lookupTimeout = 30 * time.Second

func (c *Checker) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Check checks every record of domain. Results come in the order
// dns-records prints them, then the host name and PTR checks.
func (c *Checker) Check(ctx context.Context, domain string) []Result {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	host := strings.ToLower(c.Config.Hostname)
	hostIPs, hostErr := c.hostIPs(ctx, host)
	sending := c.SendingIPs
	if sending == nil {
		if ip := net.ParseIP(c.Config.Remote.SourceIP); ip != nil {
			sending = []net.IP{ip}
		} else {
			sending = hostIPs
		}
	}
	var out []Result
	add := func(r Result) {
		r.Domain = domain
		out = append(out, r)
	}
	for _, rec := range dnsrecords.Records(c.Config, domain) {
		switch rec.Check {
		case "MX":
			add(c.checkMX(ctx, rec, host))
		case "SPF":
			add(c.checkSPF(ctx, rec, sending, host))
			if rec.Name == domain+"." {
				out = append(out, c.checkDKIM(ctx, domain)...)
			}
		case "DMARC":
			add(c.checkDMARC(ctx, rec))
		case "MTA-STS":
			add(c.checkMTASTS(ctx, rec))
			add(c.checkPolicy(ctx, domain, host))
		case "TLS-RPT":
			add(c.checkTLSRPT(ctx, rec))
		case "SRV":
			add(c.checkSRV(ctx, rec))
		case "MTA-STS host", "autoconfig", "autodiscover":
			add(c.checkHostAlias(ctx, rec, host, hostIPs))
		}
	}
	// The host name itself, then the reverse DNS of the sending addresses.
	hr := Result{Domain: domain, Check: "host", Name: host + ".", Want: fmt.Sprintf("%s. 3600 IN A <this server's public IPv4 address> (and/or AAAA)", host)}
	switch {
	case hostErr != nil && !dns.IsNotFound(hostErr):
		hr.Status, hr.Detail = Error, hostErr.Error()
	case len(hostIPs) == 0:
		hr.Status, hr.Detail = Missing, "the host name has no A or AAAA record"
	default:
		hr.Status = OK
		for _, ip := range hostIPs {
			hr.Found = append(hr.Found, ip.String())
		}
	}
	out = append(out, hr)
	for _, ip := range sending {
		r := c.checkPTR(ctx, ip, host, hostIPs)
		r.Domain = domain
		out = append(out, r)
	}
	return out
}

// hostIPs returns the A and AAAA addresses of host.
func (c *Checker) hostIPs(ctx context.Context, host string) ([]net.IP, error) {
	var ips []net.IP
	var firstErr error
	for _, nw := range []string{"ip4", "ip6"} {
		l, _, err := c.Resolver.LookupIP(ctx, nw, host+".")
		if err != nil && !dns.IsNotFound(err) && firstErr == nil {
			firstErr = err
		}
		ips = append(ips, l...)
	}
	if len(ips) > 0 {
		return ips, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// lookupErr turns a failed lookup into Missing (the name or type does not
// exist) or Error.
func lookupErr(r Result, err error) Result {
	if dns.IsNotFound(err) {
		r.Status, r.Detail = Missing, "no record"
		return r
	}
	r.Status, r.Detail = Error, err.Error()
	return r
}

func sameHost(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func (c *Checker) checkMX(ctx context.Context, rec dnsrecords.Record, host string) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	mxs, _, err := c.Resolver.LookupMX(ctx, rec.Name)
	if err != nil {
		return lookupErr(r, err)
	}
	ok := false
	for _, mx := range mxs {
		r.Found = append(r.Found, fmt.Sprintf("%d %s", mx.Pref, mx.Host))
		ok = ok || sameHost(mx.Host, host)
	}
	switch {
	case len(mxs) == 0:
		r.Status, r.Detail = Missing, "no record"
	case !ok:
		r.Status, r.Detail = Wrong, "no MX names "+host
	default:
		r.Status = OK
	}
	return r
}

// txts returns the TXT records of name that start with prefix (case
// insensitively).
func (c *Checker) txts(ctx context.Context, name, prefix string) ([]string, error) {
	all, _, err := c.Resolver.LookupTXT(ctx, name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range all {
		if len(t) >= len(prefix) && strings.EqualFold(t[:len(prefix)], prefix) {
			out = append(out, t)
		}
	}
	return out, nil
}

// checkSPF looks the SPF record up and evaluates it for every sending
// address: it must pass, whatever its text.
func (c *Checker) checkSPF(ctx context.Context, rec dnsrecords.Record, sending []net.IP, host string) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	found, err := c.txts(ctx, rec.Name, "v=spf1")
	if err != nil {
		return lookupErr(r, err)
	}
	r.Found = found
	switch len(found) {
	case 0:
		r.Status, r.Detail = Missing, "no SPF record"
		return r
	case 1:
	default:
		// RFC 7208 §4.5: more than one record is a permerror.
		r.Status, r.Detail = Wrong, "more than one SPF record (RFC 7208 §4.5: permerror)"
		return r
	}
	record, _, err := spf.ParseRecord(found[0])
	if err != nil {
		r.Status, r.Detail = Wrong, "does not parse: "+err.Error()
		return r
	}
	d, err := dns.ParseDomain(strings.TrimSuffix(rec.Name, "."))
	if err != nil {
		r.Status, r.Detail = Error, err.Error()
		return r
	}
	hd, _ := dns.ParseDomain(host)
	for _, ip := range sending {
		args := spf.Args{RemoteIP: ip, MailFromLocalpart: "postmaster", MailFromDomain: d, HelloDomain: dns.IPDomain{Domain: hd}, LocalHostname: hd}
		st, _, _, _, err := spf.Evaluate(ctx, c.log(), record, c.Resolver, args)
		if st != spf.StatusPass {
			r.Status, r.Detail = Wrong, fmt.Sprintf("SPF gives %s for the sending address %s", st, ip)
			if err != nil {
				r.Detail += ": " + err.Error()
			}
			return r
		}
	}
	r.Status = OK
	if len(sending) == 0 {
		r.Detail = "not evaluated: no sending address known"
	}
	return r
}

// checkDKIM compares the TXT record of each key's selector with the key.
func (c *Checker) checkDKIM(ctx context.Context, domain string) []Result {
	keys, err := remote.LoadKeys(c.Config.Data, domain)
	if err != nil {
		return []Result{{Domain: domain, Check: "DKIM", Status: Error, Detail: err.Error()}}
	}
	if len(keys) == 0 {
		return []Result{{Domain: domain, Check: "DKIM", Name: "_domainkey." + domain + ".", Status: Missing,
			Detail: "no DKIM key", Want: "run: jodmai dkim keygen " + domain + ", then publish the records it prints"}}
	}
	var out []Result
	for _, k := range keys {
		r := Result{Domain: domain, Check: "DKIM", Name: k.Name, Want: k.ZoneRecord()}
		found, err := c.txts(ctx, k.Name, "v=DKIM1")
		if err != nil {
			out = append(out, lookupErr(r, err))
			continue
		}
		r.Found = found
		want := dkimKey(k.Record)
		switch {
		case len(found) == 0:
			r.Status, r.Detail = Missing, "no DKIM record for selector "+k.Selector
		case !slices.ContainsFunc(found, func(f string) bool { return dkimKey(f) == want }):
			r.Status, r.Detail = Wrong, "the published key is not this server's key for selector "+k.Selector
		default:
			r.Status = OK
		}
		out = append(out, r)
	}
	return out
}

// dkimKey returns the p= value of a DKIM record, without spaces.
func dkimKey(rec string) string {
	for _, tag := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(tag, "=")
		if ok && strings.TrimSpace(k) == "p" {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

func (c *Checker) checkDMARC(ctx context.Context, rec dnsrecords.Record) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	found, err := c.txts(ctx, rec.Name, "v=DMARC1")
	if err != nil {
		return lookupErr(r, err)
	}
	r.Found = found
	switch len(found) {
	case 0:
		r.Status, r.Detail = Missing, "no DMARC record"
		return r
	case 1:
	default:
		r.Status, r.Detail = Wrong, "more than one DMARC record (RFC 7489 §6.6.3: none applies)"
		return r
	}
	d, _, err := dmarc.ParseRecord(found[0])
	if err != nil {
		r.Status, r.Detail = Wrong, "does not parse: "+err.Error()
		return r
	}
	// Any policy is the operator's choice; say which.
	r.Status, r.Detail = OK, "p="+string(d.Policy)
	return r
}

func (c *Checker) checkMTASTS(ctx context.Context, rec dnsrecords.Record) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	found, err := c.txts(ctx, rec.Name, "v=STSv1")
	if err != nil {
		return lookupErr(r, err)
	}
	r.Found = found
	if len(found) == 0 {
		r.Status, r.Detail = Missing, "no MTA-STS record"
		return r
	}
	if len(found) > 1 {
		r.Status, r.Detail = Wrong, "more than one MTA-STS record (RFC 8461 §3.1: none applies)"
		return r
	}
	m, _, err := mtasts.ParseRecord(found[0])
	if err != nil {
		r.Status, r.Detail = Wrong, "does not parse: "+err.Error()
		return r
	}
	want, _, _ := mtasts.ParseRecord(rec.Value)
	if want != nil && m.ID != want.ID {
		// RFC 8461 §3.1: senders fetch the policy again only when the
		// id changes.
		r.Status, r.Detail = Wrong, "id "+m.ID+" is not the current policy's: senders keep the old policy"
		return r
	}
	r.Status = OK
	return r
}

// policyMaxSize bounds the policy read (RFC 8461 §3.3 suggests 64 KiB).
const policyMaxSize = 64 << 10

// checkPolicy fetches the policy over HTTPS, as a sender does, and checks
// that it names the host name.
func (c *Checker) checkPolicy(ctx context.Context, domain, host string) Result {
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	want := strings.ReplaceAll(dnsrecords.MTASTSPolicy(c.Config), "\r\n", "\n")
	r := Result{Check: "MTA-STS policy", Name: url, Want: "serve at " + url + " (the https listener does, with a certificate for mta-sts." + domain + "):\n" + want}
	hc := c.HTTPClient
	if hc == nil {
		hc = c.defaultClient()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		r.Status, r.Detail = Error, err.Error()
		return r
	}
	resp, err := hc.Do(req)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			r.Status, r.Detail = Missing, "mta-sts."+domain+" does not resolve"
			return r
		}
		r.Status, r.Detail = Wrong, "fetch failed: "+err.Error()
		return r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, policyMaxSize))
	if err != nil {
		r.Status, r.Detail = Wrong, "fetch failed: "+err.Error()
		return r
	}
	if resp.StatusCode != http.StatusOK {
		// RFC 8461 §3.3: only a 200 is a policy.
		r.Status, r.Detail = Missing, "HTTP status "+resp.Status
		return r
	}
	r.Found = []string{string(body)}
	p, err := mtasts.ParsePolicy(string(body))
	if err != nil {
		r.Status, r.Detail = Wrong, "does not parse: "+err.Error()
		return r
	}
	hd, err := dns.ParseDomain(host)
	if err != nil || !p.Matches(hd) {
		r.Status, r.Detail = Wrong, "the policy's mx lines do not match "+host
		return r
	}
	r.Status, r.Detail = OK, "mode "+string(p.Mode)
	return r
}

// defaultClient is an HTTPS client that resolves names with c.Resolver,
// so the policy check sees the DNS the other checks see.
func (c *Checker) defaultClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			ips, err := c.hostIPs(ctx, host)
			if err != nil {
				return nil, err
			}
			var lastErr error
			for _, ip := range ips {
				conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return conn, nil
				}
				lastErr = err
			}
			return nil, lastErr
		},
	}}
}

func (c *Checker) checkTLSRPT(ctx context.Context, rec dnsrecords.Record) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	found, err := c.txts(ctx, rec.Name, "v=TLSRPTv1")
	if err != nil {
		return lookupErr(r, err)
	}
	r.Found = found
	switch {
	case len(found) == 0:
		r.Status, r.Detail = Missing, "no TLS-RPT record"
	case len(found) > 1:
		r.Status, r.Detail = Wrong, "more than one TLS-RPT record (RFC 8460 §3: none applies)"
	default:
		if _, _, err := tlsrpt.ParseRecord(found[0]); err != nil {
			r.Status, r.Detail = Wrong, "does not parse: "+err.Error()
		} else {
			r.Status = OK
		}
	}
	return r
}

// checkSRV compares the SRV records with the wanted target and port
// (priority and weight are the operator's choice).
func (c *Checker) checkSRV(ctx context.Context, rec dnsrecords.Record) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	service, rest, _ := strings.Cut(rec.Name, ".")
	proto, name, _ := strings.Cut(rest, ".")
	_, srvs, _, err := c.Resolver.LookupSRV(ctx, strings.TrimPrefix(service, "_"), strings.TrimPrefix(proto, "_"), name)
	if err != nil && len(srvs) == 0 {
		return lookupErr(r, err)
	}
	f := strings.Fields(rec.Value) // priority weight port target
	wantPort, _ := strconv.Atoi(f[2])
	wantTarget := f[3]
	ok := false
	for _, s := range srvs {
		r.Found = append(r.Found, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
		if wantTarget == "." {
			ok = ok || s.Target == "." || s.Target == ""
		} else {
			ok = ok || (sameHost(s.Target, wantTarget) && int(s.Port) == wantPort)
		}
	}
	switch {
	case len(srvs) == 0:
		r.Status, r.Detail = Missing, "no record"
	case !ok && wantTarget == ".":
		r.Status, r.Detail = Wrong, "the service is not offered here: publish \"0 0 0 .\""
	case !ok:
		r.Status, r.Detail = Wrong, fmt.Sprintf("no record names %s port %d", strings.TrimSuffix(wantTarget, "."), wantPort)
	default:
		r.Status = OK
	}
	return r
}

// checkHostAlias checks a name that must reach this server: a CNAME to
// the host name, or addresses that are the host name's.
func (c *Checker) checkHostAlias(ctx context.Context, rec dnsrecords.Record, host string, hostIPs []net.IP) Result {
	r := Result{Check: rec.Check, Name: rec.Name, Want: rec.String()}
	if cname, _, err := c.Resolver.LookupCNAME(ctx, rec.Name); err == nil {
		r.Found = []string{"CNAME " + cname}
		if sameHost(cname, host) {
			r.Status = OK
			return r
		}
	}
	var ips []net.IP
	var lastErr error
	for _, nw := range []string{"ip4", "ip6"} {
		l, _, err := c.Resolver.LookupIP(ctx, nw, rec.Name)
		if err != nil {
			lastErr = err
		}
		ips = append(ips, l...)
	}
	if len(ips) == 0 {
		if len(r.Found) > 0 {
			r.Status, r.Detail = Wrong, "the CNAME does not name "+host
			return r
		}
		if lastErr != nil && !dns.IsNotFound(lastErr) {
			return lookupErr(r, lastErr)
		}
		r.Status, r.Detail = Missing, "no record"
		return r
	}
	for _, ip := range ips {
		r.Found = append(r.Found, ip.String())
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(hostIPs, ip.Equal) {
			r.Status, r.Detail = Wrong, ip.String()+" is not an address of "+host
			return r
		}
	}
	r.Status = OK
	return r
}

// checkPTR: the reverse DNS of ip names host, and host resolves back to
// ip (forward-confirmed reverse DNS, what receivers check).
func (c *Checker) checkPTR(ctx context.Context, ip net.IP, host string, hostIPs []net.IP) Result {
	rev, _ := reverseName(ip)
	r := Result{Check: "PTR", Name: rev, Want: fmt.Sprintf("%s 3600 IN PTR %s. (set by whoever gives you the address: your hosting provider)", rev, host)}
	names, _, err := c.Resolver.LookupAddr(ctx, ip.String())
	if err != nil && len(names) == 0 {
		return lookupErr(r, err)
	}
	r.Found = names
	named := slices.ContainsFunc(names, func(n string) bool { return sameHost(n, host) })
	switch {
	case len(names) == 0:
		r.Status, r.Detail = Missing, "no PTR for "+ip.String()
	case !named:
		r.Status, r.Detail = Wrong, "the PTR of "+ip.String()+" does not name "+host
	case !slices.ContainsFunc(hostIPs, ip.Equal):
		r.Status, r.Detail = Wrong, host+" does not resolve back to "+ip.String()+" (not forward-confirmed)"
	default:
		r.Status = OK
	}
	return r
}

// reverseName returns the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip net.IP) (string, bool) {
	if v4 := ip.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0]), true
	}
	v6 := ip.To16()
	if v6 == nil {
		return "", false
	}
	var b strings.Builder
	for i := 15; i >= 0; i-- {
		fmt.Fprintf(&b, "%x.%x.", v6[i]&0xf, v6[i]>>4)
	}
	return b.String() + "ip6.arpa.", true
}

// Problems counts the results that are not OK.
func Problems(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status != OK {
			n++
		}
	}
	return n
}

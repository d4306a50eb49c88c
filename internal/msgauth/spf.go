package msgauth

import (
	"context"
	"net/netip"
	"strings"

	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"
	"github.com/mjl-/mox/spf"
)

// spfResult is the SPF check of the transaction.
type spfResult struct {
	status spf.Status
	// domain is the identity checked: the MAIL FROM domain, or the HELO
	// name for the null sender (RFC 7208 §2.4); zero when none.
	domain dns.Domain
	helo   bool // domain is the HELO identity
	// heloText is the HELO as given, for smtp.helo when no domain was
	// checked.
	heloText string
	problem  string
}

// checkSPF evaluates SPF for the MAIL FROM identity, or the HELO identity
// when the reverse path is null.
func (v *Verifier) checkSPF(ctx context.Context, in Input) spfResult {
	res := spfResult{status: spf.StatusNone, heloText: in.HELO}
	args := spf.Args{RemoteIP: in.IP, HelloDomain: parseHelo(in.HELO)}
	if h, err := dns.ParseDomain(v.Hostname); err == nil {
		args.LocalHostname = h
	}
	if in.MailFrom != "" {
		addr, err := smtp.ParseAddress(in.MailFrom)
		if err != nil {
			// RFC 7208 §4.3: a malformed domain gives "none".
			res.problem = "mail from not a valid address"
			res.heloText = "" // smtp.helo would suggest HELO was checked
			return res
		}
		args.MailFromLocalpart = addr.Localpart
		args.MailFromDomain = addr.Domain
	}
	received, domain, _, _, err := spf.Verify(ctx, v.log(), v.Resolver, args)
	res.status = received.Result
	res.domain = domain
	res.helo = received.Identity == spf.ReceivedHELO
	if err != nil {
		res.problem = strings.TrimPrefix(err.Error(), "spf: ")
	}
	return res
}

// parseHelo reads an EHLO argument: a domain or an address literal.
func parseHelo(s string) dns.IPDomain {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		lit := strings.TrimPrefix(s[1:len(s)-1], "IPv6:")
		if ip, err := netip.ParseAddr(lit); err == nil {
			return dns.IPDomain{IP: ip.AsSlice()}
		}
		return dns.IPDomain{}
	}
	d, err := dns.ParseDomain(strings.TrimSuffix(s, "."))
	if err != nil {
		return dns.IPDomain{}
	}
	return dns.IPDomain{Domain: d}
}

// resinfo returns the spf part of the Authentication-Results field.
func (r spfResult) resinfo() resinfo {
	ri := resinfo{method: "spf", result: string(r.status)}
	if r.status == spf.StatusTemperror || r.status == spf.StatusPermerror {
		ri.comment = commentText(r.problem)
	}
	switch {
	case r.domain.IsZero():
		if r.heloText != "" {
			ri.props = append(ri.props, prop{"smtp.helo", r.heloText})
		}
	case r.helo:
		ri.props = append(ri.props, prop{"smtp.helo", r.domain.ASCII})
	default:
		ri.props = append(ri.props, prop{"smtp.mailfrom", r.domain.ASCII})
	}
	return ri
}

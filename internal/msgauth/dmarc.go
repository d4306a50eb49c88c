package msgauth

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dmarc"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/publicsuffix"
	"github.com/mjl-/mox/spf"
)

// discard is a logger for library calls whose logs are noise.
var discard = slog.New(slog.DiscardHandler)

// dmarcLookup is the DMARC record found for a From domain.
type dmarcLookup struct {
	status dmarc.Status // none, temperror, permerror when record is nil
	domain dns.Domain   // where the record is: the From domain or its organizational domain
	record *dmarc.Record
	err    error
}

func (v *Verifier) lookupDMARC(ctx context.Context, from dns.Domain) dmarcLookup {
	ctx, cancel := context.WithTimeout(ctx, v.timeout())
	defer cancel()
	status, domain, record, _, _, err := dmarc.Lookup(ctx, v.log(), v.Resolver, from)
	return dmarcLookup{status: status, domain: domain, record: record, err: err}
}

// dmarcResult is the DMARC evaluation for one From domain.
type dmarcResult struct {
	from    dns.Domain
	status  dmarc.Status
	policy  dmarc.Policy // the policy that applies (p= or sp=), "" without a record
	action  Action
	comment string
}

// orgDomain returns the organizational domain (RFC 7489 §3.2), by the
// public suffix list.
func orgDomain(ctx context.Context, d dns.Domain) dns.Domain {
	return publicsuffix.Lookup(ctx, discard, d)
}

// alignedWith reports whether id aligns with the From domain from: equal
// (strict), or with the same organizational domain (relaxed).
func alignedWith(ctx context.Context, mode dmarc.Align, from, id dns.Domain) bool {
	if id == from {
		return true
	}
	return mode != dmarc.AlignStrict && orgDomain(ctx, id) == orgDomain(ctx, from)
}

// evaluateDMARC applies the From domain's record to the SPF and DKIM
// results (RFC 7489 §6.6). Only an identifier that aligns can make DMARC
// pass, so only a temporary error of an aligned one makes the result
// temperror; a temperror never quarantines or rejects.
func (v *Verifier) evaluateDMARC(ctx context.Context, from dns.Domain, l dmarcLookup, spfRes spfResult, dkims []dkim.Result) dmarcResult {
	r := dmarcResult{from: from, status: l.status}
	if l.record == nil {
		if l.err != nil && l.status != dmarc.StatusNone {
			r.comment = commentText(strings.TrimPrefix(l.err.Error(), "dmarc: "))
		}
		return r
	}
	rec := l.record
	// RFC 7489 §6.3: sp= applies when the record was found at the
	// organizational domain, above the From domain.
	r.policy = rec.Policy
	if l.domain != from && rec.SubdomainPolicy != dmarc.PolicyEmpty {
		r.policy = rec.SubdomainPolicy
	}
	temp := false
	if !spfRes.domain.IsZero() && alignedWith(ctx, rec.ASPF, from, spfRes.domain) {
		switch spfRes.status {
		case spf.StatusPass:
			r.status = dmarc.StatusPass
			return r
		case spf.StatusTemperror:
			temp = true
		}
	}
	for _, d := range dkims {
		if d.Sig == nil || !alignedWith(ctx, rec.ADKIM, from, d.Sig.Domain) {
			continue
		}
		switch d.Status {
		case dkim.StatusPass:
			r.status = dmarc.StatusPass
			return r
		case dkim.StatusTemperror:
			temp = true
		}
	}
	if temp {
		r.status = dmarc.StatusTemperror
		r.comment = "temporary error of an aligned identifier"
		return r
	}
	r.status = dmarc.StatusFail
	dis := r.policy
	// RFC 7489 §6.6.4: a message not sampled by pct= gets the next
	// weaker policy (reject -> quarantine -> none).
	if rec.Percentage < 100 && !v.sampled(rec.Percentage) {
		switch dis {
		case dmarc.PolicyReject:
			dis = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			dis = dmarc.PolicyNone
		}
	}
	switch dis {
	case dmarc.PolicyReject:
		r.action = Reject
	case dmarc.PolicyQuarantine:
		r.action = Quarantine
	}
	r.comment = fmt.Sprintf("p=%s dis=%s", r.policy, dis)
	return r
}

// sampled reports whether a policy with pct=n applies to this message.
func (v *Verifier) sampled(pct int) bool {
	if v.sample != nil {
		return v.sample(pct)
	}
	return rand.IntN(100) < pct
}

func (r dmarcResult) resinfo() resinfo {
	ri := resinfo{method: "dmarc", result: string(r.status), comment: r.comment}
	if !r.from.IsZero() {
		ri.props = append(ri.props, prop{"header.from", r.from.ASCII})
	}
	return ri
}

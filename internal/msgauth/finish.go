package msgauth

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
)

// finish runs DKIM and the DMARC record lookups in parallel, waits for
// SPF, and decides.
func (v *Verifier) finish(ctx context.Context, c *Check, msg io.ReaderAt, size int64) Verdict {
	log := v.log()
	hdr, truncated, err := readHeader(msg, size)
	if err != nil {
		// Our own spool file failed: say so, deliver.
		log.Warn("msgauth: cannot read message", "err", err)
		<-c.done
		return Verdict{Header: composeHeader(v.Hostname, []resinfo{c.spf.resinfo(),
			{method: "dkim", result: "temperror", comment: "local error"},
			{method: "dmarc", result: "temperror", comment: "local error"}})}
	}
	fields := splitFields(hdr)
	from := fromDomains(fields)
	nsigs := countFields(fields, "dkim-signature")

	// aligned reports whether d can align with a From domain in relaxed
	// mode (strict alignment is a subset).
	orgs := map[dns.Domain]bool{}
	for _, d := range from.domains {
		orgs[orgDomain(ctx, d)] = true
	}
	aligned := func(d dns.Domain) bool { return orgs[orgDomain(ctx, d)] }

	var wg sync.WaitGroup
	lookups := make([]dmarcLookup, len(from.domains))
	if len(from.domains) <= maxFromDomains {
		for i, d := range from.domains {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lookups[i] = v.lookupDMARC(ctx, d)
			}()
		}
	}
	var dkims []dkim.Result
	var dkimInfo []resinfo
	switch {
	case nsigs == 0:
		dkimInfo = []resinfo{{method: "dkim", result: "none"}}
	case truncated:
		dkimInfo = []resinfo{{method: "dkim", result: "permerror", comment: "header too large"}}
	default:
		var err error
		dkims, err = v.checkDKIM(ctx, msg, c.in.SMTPUTF8, aligned)
		if err != nil {
			dkimInfo = []resinfo{{method: "dkim", result: "permerror", comment: commentText(err.Error())}}
		}
		for _, r := range dkims {
			dkimInfo = append(dkimInfo, dkimResinfo(r))
		}
	}
	wg.Wait()
	<-c.done // SPF, bounded by its own deadline

	results := []resinfo{c.spf.resinfo()}
	results = append(results, dkimInfo...)
	verdict := Verdict{Action: Accept}
	switch {
	case from.fields == 0:
		// RFC 7489 §6.6.1 lets a receiver refuse this; we only say so:
		// there is no From domain a user could be misled by.
		results = append(results, resinfo{method: "dmarc", result: "none", comment: "no From field"})
	case len(from.domains) == 0:
		results = append(results, resinfo{method: "dmarc", result: "permerror", comment: "no valid From domain"})
	case len(from.domains) > maxFromDomains:
		results = append(results, resinfo{method: "dmarc", result: "permerror", comment: "too many From domains"})
		verdict.Action = Quarantine
		verdict.Reason = fmt.Sprintf("more than %d domains in the From field", maxFromDomains)
	default:
		// Several From fields or addresses: each domain's policy is
		// evaluated and the strictest outcome wins, so an added From
		// cannot hide a failing one.
		for i, d := range from.domains {
			r := v.evaluateDMARC(ctx, d, lookups[i], c.spf, dkims)
			results = append(results, r.resinfo())
			if r.action > verdict.Action {
				verdict.Action = r.action
				verdict.FromDomain = d.ASCII
				verdict.Reason = fmt.Sprintf("DMARC policy of %s (p=%s) failed: no aligned SPF or DKIM pass", d.ASCII, r.policy)
			}
		}
		if verdict.FromDomain == "" {
			verdict.FromDomain = from.domains[0].ASCII
		}
	}
	verdict.Header = composeHeader(v.Hostname, results)
	log.Debug("msgauth verdict", "action", verdict.Action.String(), "from_domain", verdict.FromDomain,
		"spf", string(c.spf.status), "dkim_signatures", nsigs, "header", verdict.Header)
	return verdict
}

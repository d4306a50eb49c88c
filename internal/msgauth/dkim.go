package msgauth

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
)

// Bounds on the DKIM signatures verified per message: each costs a DNS
// lookup and a hash of the whole body. Signatures whose domain aligns with
// a From domain (the ones DMARC can use) are verified first and on their
// own deadline, so signatures of other domains, which an attacker may add
// at will with slow DNS, cannot make them time out.
const (
	maxAlignedSigs = 6
	maxOtherSigs   = 4
)

var (
	errOtherPass = errors.New("verified in the other pass")
	errTooMany   = errors.New("too many signatures")
	errLength    = errors.New("body length limit l= not accepted")
)

// checkDKIM verifies the message's DKIM signatures: those aligned with a
// From domain and the others, in parallel passes with their own deadlines.
// The results are in the order of the DKIM-Signature fields.
func (v *Verifier) checkDKIM(ctx context.Context, msg io.ReaderAt, smtputf8 bool, aligned func(dns.Domain) bool) ([]dkim.Result, error) {
	var wg sync.WaitGroup
	var res [2][]dkim.Result
	var errs [2]error
	for i, pass := range []struct {
		aligned bool
		max     int
	}{{true, maxAlignedSigs}, {false, maxOtherSigs}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, v.timeout())
			defer cancel()
			n := 0
			policy := func(sig *dkim.Sig) error {
				if aligned(sig.Domain) != pass.aligned {
					return errOtherPass
				}
				if sig.Length >= 0 {
					// mox's DefaultPolicy refuses these too: the unsigned
					// rest of the body could say anything. (It also refuses
					// signatures without Subject; we accept those.)
					return errLength
				}
				n++
				if n > pass.max {
					return errTooMany
				}
				return nil
			}
			res[i], errs[i] = dkim.Verify(pctx, v.log(), v.Resolver, smtputf8, policy, msg, false)
		}()
	}
	wg.Wait()
	if errs[0] != nil {
		return nil, errs[0]
	}
	out := res[0]
	if len(res[1]) != len(out) {
		// Both passes parse the same header; cannot happen.
		return out, nil
	}
	for i, r := range out {
		if r.Sig != nil && !aligned(r.Sig.Domain) {
			out[i] = res[1][i]
		}
	}
	return out, nil
}

// dkimResinfo returns the dkim part of the Authentication-Results field
// for one signature (RFC 8601 §2.7.1, RFC 6008 for header.b).
func dkimResinfo(r dkim.Result) resinfo {
	ri := resinfo{method: "dkim", result: string(r.Status)}
	if r.Status != dkim.StatusPass && r.Err != nil {
		ri.comment = commentText(strings.TrimPrefix(r.Err.Error(), "dkim: "))
	}
	if s := r.Sig; s != nil {
		ri.props = append(ri.props, prop{"header.d", s.Domain.ASCII})
		if !s.Selector.IsZero() {
			ri.props = append(ri.props, prop{"header.s", s.Selector.ASCII})
		}
		ri.props = append(ri.props, prop{"header.a", s.Algorithm()})
		if b := base64.StdEncoding.EncodeToString(s.Signature); b != "" {
			ri.props = append(ri.props, prop{"header.b", b[:min(8, len(b))]})
		}
	}
	return ri
}

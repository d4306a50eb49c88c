// Package msgauth checks mail arriving from other servers: SPF (RFC 7208)
// for the client address and the MAIL FROM and HELO identities, DKIM
// signatures (RFC 6376), and the From domain's DMARC policy (RFC 7489).
// The results become an Authentication-Results header field (RFC 8601) and
// a verdict the SMTP server acts on.
//
// The checks run on mox's spf, dkim and dmarc packages behind Verifier.
// Invariants:
//   - A temporary DNS failure gives temperror and never a Reject or
//     Quarantine; only a DMARC policy failure that is certain does.
//   - Work is bounded: at most maxAlignedSigs + maxOtherSigs DKIM signatures
//     are verified, a header section beyond MaxHeaderSize is not given to
//     the DKIM verifier, and each phase has its own Timeout, so a slow DNS
//     server of one domain cannot eat the time another domain's checks need.
//   - Clients in Trusted networks are not checked; they get
//     "Authentication-Results: <host>; none".
package msgauth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mjl-/mox/dns"
)

// Action is what to do with a message after the checks.
type Action int

const (
	// Accept: deliver normally.
	Accept Action = iota
	// Quarantine: deliver into the recipient's Junk mailbox (DMARC
	// p=quarantine failed).
	Quarantine
	// Reject: refuse with 550 5.7.1 (DMARC p=reject failed).
	Reject
)

func (a Action) String() string {
	switch a {
	case Quarantine:
		return "quarantine"
	case Reject:
		return "reject"
	}
	return "accept"
}

// Input describes the SMTP transaction a message came in.
type Input struct {
	// IP is the client's address.
	IP net.IP
	// HELO is the name the client gave in EHLO/HELO.
	HELO string
	// MailFrom is the reverse path, "" for the null sender.
	MailFrom string
	// SMTPUTF8 is set when MAIL FROM had the SMTPUTF8 parameter: header
	// fields may then carry UTF-8 (DKIM parses them so).
	SMTPUTF8 bool
}

// Verdict is the outcome of Verify.
type Verdict struct {
	// Header is the Authentication-Results field to prepend to the
	// message, ending in CRLF.
	Header string
	// Action is what the SMTP server does.
	Action Action
	// Reason explains a Reject or Quarantine, for the log and the reply
	// text (ASCII, one line).
	Reason string
	// FromDomain is the domain of the message's From field whose result
	// decided the Action ("" when none was found), for the log.
	FromDomain string
}

// DefaultTimeout bounds each phase of the checks when Verifier.Timeout is
// zero.
const DefaultTimeout = 30 * time.Second

// Verifier checks messages. Its fields are its configuration; do not change
// them while it is used. It is safe for concurrent use.
type Verifier struct {
	// Resolver answers the DNS questions. Required.
	Resolver dns.Resolver
	// Hostname is the authserv-id of the Authentication-Results fields
	// (RFC 8601 §2.5): the receiving server's name.
	Hostname string
	// Trusted are client networks whose mail is not checked.
	Trusted []netip.Prefix
	// Log receives debug lines about the checks; nil discards.
	Log *slog.Logger
	// Timeout bounds each phase: SPF from Start; DKIM and the DMARC
	// record lookups, each on its own, from Finish. 0: DefaultTimeout.
	Timeout time.Duration

	// sample reports whether a DMARC policy with pct=n (0..99) applies to
	// this message; nil draws at random. Tests set it.
	sample func(pct int) bool
}

func (v *Verifier) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return DefaultTimeout
}

func (v *Verifier) log() *slog.Logger {
	if v.Log != nil {
		return v.Log
	}
	return slog.New(slog.DiscardHandler)
}

// IsTrusted reports whether ip is in a trusted network.
func (v *Verifier) IsTrusted(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range v.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Verify runs every check on msg (the message as received, without our
// trace fields, size bytes) for the transaction in.
func (v *Verifier) Verify(ctx context.Context, in Input, msg io.ReaderAt, size int64) Verdict {
	c := v.Start(ctx, in)
	defer c.Close()
	return c.Finish(ctx, msg, size)
}

// Check is the verification of one message, begun by Start before the
// message is in, so that the SPF lookups overlap its transfer.
type Check struct {
	v       *Verifier
	in      Input
	trusted bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when spf is set
	spf     spfResult
}

// Start begins the checks that need only the SMTP transaction (SPF). The
// caller must call Close.
func (v *Verifier) Start(ctx context.Context, in Input) *Check {
	c := &Check{v: v, in: in, done: make(chan struct{}), cancel: func() {}}
	if v.IsTrusted(in.IP) {
		c.trusted = true
		close(c.done)
		return c
	}
	sctx, cancel := context.WithTimeout(ctx, v.timeout())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		defer cancel()
		c.spf = v.checkSPF(sctx, in)
	}()
	return c
}

// Trusted reports whether the client is in a trusted network: Finish then
// reads nothing and its Header is known at once.
func (c *Check) Trusted() bool { return c.trusted }

// Close ends lookups still running.
func (c *Check) Close() { c.cancel() }

// Finish completes the checks on msg (the message as received, size
// bytes) and returns the verdict. For a trusted client msg is not read
// and may be nil.
func (c *Check) Finish(ctx context.Context, msg io.ReaderAt, size int64) Verdict {
	if c.trusted {
		return Verdict{Header: composeHeader(c.v.Hostname, nil), Action: Accept}
	}
	return c.v.finish(ctx, c, msg, size)
}

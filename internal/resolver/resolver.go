// Package resolver builds the DNS resolver that outbound delivery (remote)
// and inbound message authentication (msgauth) share, from the [dns]
// configuration.
//
// It returns mox's dns.Resolver: a strict resolver (names are absolute, no
// search list) on mjl-/adns, which reports whether an answer was
// DNSSEC-authenticated (the AD bit from a validating resolver). DANE uses
// that bit; nothing else trusts it.
package resolver

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dns"
)

// queryTimeout bounds one DNS exchange with the configured server.
const queryTimeout = 10 * time.Second

// New returns a resolver asking the DNS server at addr ("host:port"), or
// the system's resolvers when addr is "". log may be nil.
func New(addr string, log *slog.Logger) dns.Resolver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &adns.Resolver{PreferGo: true, StrictErrors: true}
	if addr != "" {
		d := &net.Dialer{Timeout: queryTimeout}
		r.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			// Every question goes to addr, over the transport the
			// resolver chose (UDP first, TCP after truncation).
			return d.DialContext(ctx, network, addr)
		}
	}
	return dns.StrictResolver{Pkg: "jodmai", Resolver: r, Log: log}
}

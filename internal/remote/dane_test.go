package remote

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dns"
)

// TestDANE: with DNSSEC-authentic answers and a TLSA record, the
// certificate must match it; no plaintext fallback when it does not.
// The resolver is mox's mock: resolver.New trusts the AD bit only when the
// system's resolv.conf names loopback servers (adns), which a test cannot
// arrange.
func TestDANE(t *testing.T) {
	f := startFake(t, fakeOpts{})
	cert, err := x509.ParseCertificate(selfSigned(t).Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	good := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	bad := sha256.Sum256([]byte("another key"))
	tests := []struct {
		name      string
		assoc     []byte
		authentic bool
		delivered bool
	}{
		{"match", good[:], true, true},
		{"mismatch", bad[:], true, false},
		{"mismatch, not authentic: ignored", bad[:], false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.messages())
			c, lb := newClient(t, "127.0.0.1:1", f.port(t))
			c.Resolver = dns.MockResolver{
				MX:           map[string][]*net.MX{"b.test.": {{Host: "mx.b.test.", Pref: 10}}},
				A:            map[string][]string{"mx.b.test.": {"127.0.0.1"}},
				TLSA:         map[string][]adns.TLSA{"_25._tcp.mx.b.test.": {{Usage: adns.TLSAUsageDANEEE, Selector: adns.TLSASelectorSPKI, MatchType: adns.TLSAMatchTypeSHA256, CertAssoc: tc.assoc}}},
				AllAuthentic: tc.authentic,
			}
			r := deliver(t, c, msgTo("bob@b.test"))[0]
			if r.Delivered != tc.delivered {
				t.Fatalf("got %+v\n%s", r, lb.String())
			}
			msgs := f.messages()[before:]
			if tc.delivered && (len(msgs) != 1 || !msgs[0].tls) {
				t.Fatalf("messages %+v", msgs)
			}
			if !tc.delivered && (len(msgs) != 0 || r.Permanent) {
				t.Fatalf("mismatch: sent %d messages, result %+v", len(msgs), r)
			}
		})
	}
}

// TestTLSFallback: a failed opportunistic handshake is retried in
// plaintext.
func TestTLSFallback(t *testing.T) {
	// TLS 1.1 only: mox's client wants 1.2 or newer.
	f := startFake(t, fakeOpts{setup: func(s *smtp.Server) {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MaxVersion: tls.VersionTLS11}
	}})
	c, lb := newClient(t, "127.0.0.1:1", f.port(t))
	c.Resolver = dns.MockResolver{
		MX: map[string][]*net.MX{"b.test.": {{Host: "mx.b.test.", Pref: 10}}},
		A:  map[string][]string{"mx.b.test.": {"127.0.0.1"}},
	}
	r := deliver(t, c, msgTo("bob@b.test"))[0]
	if !r.Delivered {
		t.Fatalf("got %+v\n%s", r, lb.String())
	}
	if msgs := f.messages(); len(msgs) != 1 || msgs[0].tls {
		t.Fatalf("messages %+v", msgs)
	}
}

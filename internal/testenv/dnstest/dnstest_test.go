package dnstest_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

func TestServer(t *testing.T) {
	s := dnstest.Start(t)
	s.SetA("mx1.b.test", "127.0.0.1", "127.0.0.2")
	s.SetAAAA("mx1.b.test", "::1")
	s.SetMX("b.test", dnstest.MX{Pref: 20, Host: "mx2.b.test"}, dnstest.MX{Pref: 10, Host: "mx1.b.test"})
	s.SetNullMX("nomail.test")
	long := strings.Repeat("v=DKIM1; k=rsa; p=", 1) + strings.Repeat("A", 600)
	s.SetTXT("sel._domainkey.b.test", long)
	s.SetTXT("b.test", "v=spf1 mx ~all")
	s.SetTLSA("_25._tcp.mx1.b.test", dnstest.TLSA{Usage: 3, Selector: 1, MatchType: 1, Data: []byte{1, 2, 3, 4}})
	s.SetCNAME("alias.b.test", "mx1.b.test")
	s.Known("empty.b.test")

	r := resolver.New(s.Addr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	ips, _, err := r.LookupIP(ctx, "ip4", "mx1.b.test.")
	if err != nil || len(ips) != 2 || !ips[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("A: %v %v", ips, err)
	}
	ips, _, err = r.LookupIP(ctx, "ip6", "mx1.b.test.")
	if err != nil || len(ips) != 1 || !ips[0].Equal(net.IPv6loopback) {
		t.Fatalf("AAAA: %v %v", ips, err)
	}
	mxs, _, err := r.LookupMX(ctx, "b.test.")
	if err != nil || len(mxs) != 2 || mxs[0].Host != "mx1.b.test." || mxs[0].Pref != 10 || mxs[1].Host != "mx2.b.test." {
		t.Fatalf("MX: %v %v", mxs, err)
	}
	mxs, _, err = r.LookupMX(ctx, "nomail.test.")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "." || mxs[0].Pref != 0 {
		t.Fatalf("null MX: %v %v", mxs, err)
	}
	tcp := s.TCPQueries()
	txts, _, err := r.LookupTXT(ctx, "sel._domainkey.b.test.")
	if err != nil || len(txts) != 1 || txts[0] != long {
		t.Fatalf("long TXT: %d %v", len(txts), err)
	}
	if s.TCPQueries() != tcp {
		t.Fatalf("a 600-byte TXT answer fits in EDNS0 UDP, but went over TCP")
	}
	tlsas, _, err := r.LookupTLSA(ctx, 25, "tcp", "mx1.b.test.")
	if err != nil || len(tlsas) != 1 || tlsas[0].Usage != 3 || string(tlsas[0].CertAssoc) != "\x01\x02\x03\x04" {
		t.Fatalf("TLSA: %v %v", tlsas, err)
	}
	cname, _, err := r.LookupCNAME(ctx, "alias.b.test.")
	if err != nil || cname != "mx1.b.test." {
		t.Fatalf("CNAME: %q %v", cname, err)
	}
	ips, _, err = r.LookupIP(ctx, "ip4", "alias.b.test.")
	if err != nil || len(ips) != 2 {
		t.Fatalf("A through CNAME: %v %v", ips, err)
	}

	// Unknown name: NXDOMAIN, not found.
	_, _, err = r.LookupMX(ctx, "nosuch.test.")
	if !dns.IsNotFound(err) {
		t.Fatalf("NXDOMAIN: got %v, want not found", err)
	}
	// Known name without the type: not found too, but not NXDOMAIN.
	_, _, err = r.LookupMX(ctx, "empty.b.test.")
	if !dns.IsNotFound(err) {
		t.Fatalf("NODATA: got %v, want not found", err)
	}
	if _, _, err := r.LookupTXT(ctx, "mx1.b.test."); !dns.IsNotFound(err) {
		t.Fatalf("NODATA TXT: got %v", err)
	}

	// Records change at run time.
	s.SetMX("b.test", dnstest.MX{Pref: 5, Host: "mx9.b.test"})
	mxs, _, err = r.LookupMX(ctx, "b.test.")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mx9.b.test." {
		t.Fatalf("MX after change: %v %v", mxs, err)
	}
	s.Delete("b.test")
	if _, _, err := r.LookupTXT(ctx, "b.test."); !dns.IsNotFound(err) {
		t.Fatalf("deleted: got %v", err)
	}
}

// TestTruncation forces answers over the UDP limit: the resolver must get
// the whole answer over TCP.
func TestTruncation(t *testing.T) {
	s := dnstest.Start(t)
	var texts []string
	for i := range 8 {
		texts = append(texts, strings.Repeat(string(rune('a'+i)), 300))
	}
	s.SetTXT("big.test", texts...)
	s.SetUDPLimit(512)
	r := resolver.New(s.Addr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, _, err := r.LookupTXT(ctx, "big.test.")
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if len(got) != len(texts) {
		t.Fatalf("got %d texts, want %d", len(got), len(texts))
	}
	if s.TCPQueries() == 0 {
		t.Fatalf("no question over TCP")
	}
	for i := range got {
		if len(got[i]) != 300 {
			t.Fatalf("text %d: %d bytes", i, len(got[i]))
		}
	}
}

func TestSplitTXT(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 510, 511, 2000} {
		s := strings.Repeat("x", n)
		parts := dnstest.SplitTXT(s)
		if strings.Join(parts, "") != s {
			t.Fatalf("%d: join differs", n)
		}
		for _, p := range parts {
			if len(p) > 255 {
				t.Fatalf("%d: part of %d bytes", n, len(p))
			}
		}
	}
}

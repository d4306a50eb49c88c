package dnscheck_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
	"github.com/jodmai/jodmai/internal/testenv/testcert"
)

// policyServer serves the MTA-STS policy over HTTPS on loopback and
// returns a client that reaches it for any host name.
func policyServer(t *testing.T, policy string) *http.Client {
	cert, pool := testcert.New(t, "mta-sts.example.org")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.example.org" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(policy))
	})
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	addr := ln.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

func TestCheck(t *testing.T) {
	cfg, err := config.Options{Euid: func() int { return 0 }, Hostname: func() (string, error) { return "mail.example.org", nil }}.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = t.TempDir()
	keys, err := remote.Keygen(cfg.Data, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.Start(t)
	// Everything dns-records asks for, except the DMARC record.
	s.SetA("mail.example.org", "192.0.2.10")
	s.SetPTR("192.0.2.10", "mail.example.org")
	s.SetMX("example.org", dnstest.MX{Pref: 10, Host: "mail.example.org"})
	s.SetTXT("example.org", "v=spf1 mx ~all")
	s.SetTXT("mail.example.org", "v=spf1 a ~all")
	for _, k := range keys {
		s.SetTXT(k.Name, k.Record)
	}
	s.SetCNAME("mta-sts.example.org", "mail.example.org")
	s.SetTXT("_mta-sts.example.org", "v=STSv1; id="+dnsrecords.MTASTSID(dnsrecords.MTASTSPolicy(cfg)))
	s.SetTXT("_smtp._tls.example.org", "v=TLSRPTv1; rua=mailto:postmaster@example.org")
	for i, sv := range dnsrecords.Services(cfg) {
		s.SetSRV(sv.SRV+"._tcp.example.org", dnstest.SRV{Priority: uint16(i), Weight: 1, Port: uint16(sv.Port), Target: "mail.example.org"})
	}
	s.SetCNAME("autoconfig.example.org", "mail.example.org")
	s.SetA("autodiscover.example.org", "192.0.2.10")
	// Something else publishes TXT at _dmarc's parent: the name is known.
	s.Known("_dmarc.example.org")

	c := &dnscheck.Checker{Config: cfg, Resolver: resolver.New(s.Addr(), nil), HTTPClient: policyServer(t, dnsrecords.MTASTSPolicy(cfg))}
	ctx := context.Background()
	rs := c.Check(ctx, "example.org")
	checks := map[string]bool{}
	for _, r := range rs {
		checks[r.Check] = true
		if r.Check == "DMARC" {
			if r.Status != dnscheck.Missing || r.Want != `_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"` {
				t.Errorf("DMARC: %+v", r)
			}
			continue
		}
		if r.Status != dnscheck.OK {
			t.Errorf("%s %s: %s (%s), found %q", r.Check, r.Name, r.Status, r.Detail, r.Found)
		}
	}
	for _, want := range []string{"MX", "SPF", "DKIM", "DMARC", "MTA-STS", "MTA-STS host", "MTA-STS policy", "TLS-RPT", "SRV", "autoconfig", "autodiscover", "host", "PTR"} {
		if !checks[want] {
			t.Errorf("no %s check", want)
		}
	}
	if n := dnscheck.Problems(rs); n != 1 {
		t.Errorf("%d problems, want 1", n)
	}

	// Published: all good.
	s.SetTXT("_dmarc.example.org", "v=DMARC1; p=none")
	if rs := c.Check(ctx, "example.org"); dnscheck.Problems(rs) != 0 {
		for _, r := range rs {
			if r.Status != dnscheck.OK {
				t.Errorf("after DMARC: %s %s: %s (%s)", r.Check, r.Name, r.Status, r.Detail)
			}
		}
	}

	// Wrong things are told apart from missing ones.
	s.SetMX("example.org", dnstest.MX{Pref: 10, Host: "other.example.net"})
	s.SetTXT(keys[0].Name, "v=DKIM1; k=ed25519; p=AAAA")
	s.SetPTR("192.0.2.10", "elsewhere.example.net")
	s.SetSRV("_imaps._tcp.example.org", dnstest.SRV{Port: 1993, Target: "mail.example.org"})
	got := map[string]dnscheck.Status{}
	for _, r := range c.Check(ctx, "example.org") {
		if r.Status != dnscheck.OK {
			got[r.Check+" "+r.Name] = r.Status
			if !strings.Contains(r.Want, "IN") {
				t.Errorf("%s: want %q is not a record", r.Check, r.Want)
			}
		}
	}
	for _, k := range []string{"MX example.org.", "DKIM " + keys[0].Name, "PTR 10.2.0.192.in-addr.arpa.", "SRV _imaps._tcp.example.org."} {
		if got[k] != dnscheck.Wrong {
			t.Errorf("%s: %q, want wrong (all: %v)", k, got[k], got)
		}
	}
}

package resolver_test

import (
	"context"
	"testing"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

// TestNew checks that a resolver made for "host:port" asks that server, and
// only it: answers come from the test server, and an unknown name is not
// found rather than an error from some other resolver.
func TestNew(t *testing.T) {
	s := dnstest.Start(t)
	s.SetMX("a.test", dnstest.MX{Pref: 10, Host: "mx.a.test"})
	s.SetA("mx.a.test", "127.0.0.1")
	s.SetTXT("_dmarc.a.test", "v=DMARC1; p=reject")
	r := resolver.New(s.Addr(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tests := []struct {
		name     string
		lookup   func() (int, error)
		n        int
		notFound bool
	}{
		{"mx", func() (int, error) { v, _, err := r.LookupMX(ctx, "a.test."); return len(v), err }, 1, false},
		{"a", func() (int, error) { v, _, err := r.LookupIP(ctx, "ip4", "mx.a.test."); return len(v), err }, 1, false},
		{"txt", func() (int, error) { v, _, err := r.LookupTXT(ctx, "_dmarc.a.test."); return len(v), err }, 1, false},
		{"nxdomain", func() (int, error) { v, _, err := r.LookupMX(ctx, "nosuch.a.test."); return len(v), err }, 0, true},
		{"nodata", func() (int, error) { v, _, err := r.LookupTXT(ctx, "a.test."); return len(v), err }, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.lookup()
			if tc.notFound {
				if !dns.IsNotFound(err) {
					t.Fatalf("got %v, want not found", err)
				}
				return
			}
			if err != nil || n != tc.n {
				t.Fatalf("got %d records, %v; want %d", n, err, tc.n)
			}
		})
	}
	if s.Queries() < len(tests) {
		t.Fatalf("server answered %d questions, want at least %d", s.Queries(), len(tests))
	}
}

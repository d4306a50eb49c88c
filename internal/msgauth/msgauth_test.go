package msgauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dkim"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/smtp"
)

const hostname = "mx.example.org"

var (
	goodIP = net.ParseIP("192.0.2.1")
	badIP  = net.ParseIP("198.51.100.7")
)

// keys are generated once: RSA generation is slow.
var keys = sync.OnceValues(func() (ed25519.PrivateKey, *rsa.PrivateKey) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return ed, rk
})

// zone is the DNS the tests see.
func zone(t *testing.T) dns.MockResolver {
	ed, rk := keys()
	txt := map[string][]string{
		"a.test.":            {"v=spf1 ip4:192.0.2.1 -all"},
		"mx.a.test.":         {"v=spf1 ip4:192.0.2.1 -all"},
		"mail.a.test.":       {"v=spf1 ip4:192.0.2.1 -all"},
		"soft.test.":         {"v=spf1 ip4:192.0.2.1 ~all"},
		"other.test.":        {"v=spf1 -all"},
		"mail.s.test.":       {"v=spf1 ip4:192.0.2.1 -all"},
		"_dmarc.a.test.":     {"v=DMARC1; p=reject"},
		"_dmarc.q.test.":     {"v=DMARC1; p=quarantine"},
		"_dmarc.n.test.":     {"v=DMARC1; p=none"},
		"_dmarc.s.test.":     {"v=DMARC1; p=reject; aspf=s; adkim=s"},
		"_dmarc.sp.test.":    {"v=DMARC1; p=reject; sp=none"},
		"_dmarc.pct.test.":   {"v=DMARC1; p=reject; pct=50"},
		"_dmarc.pctq.test.":  {"v=DMARC1; p=quarantine; pct=50"},
		"_dmarc.other.test.": {"v=DMARC1; p=none"},
	}
	for _, k := range []struct {
		name string
		pub  crypto.PublicKey
		typ  string
	}{{"ed._domainkey.a.test.", ed.Public(), "ed25519"}, {"rsa._domainkey.a.test.", &rk.PublicKey, "rsa"}, {"ed._domainkey.other.test.", ed.Public(), "ed25519"}} {
		rec := &dkim.Record{Version: "DKIM1", Key: k.typ, PublicKey: k.pub}
		s, err := rec.Record()
		if err != nil {
			t.Fatal(err)
		}
		txt[k.name] = []string{s}
	}
	return dns.MockResolver{
		TXT: txt,
		Fail: []string{
			"txt tempfail.test.",
			"txt _dmarc.dnsfail.test.",
			"txt ed._domainkey.slow.test.",
			"txt tmp._domainkey.a.test.",
		},
	}
}

func newVerifier(t *testing.T, r dns.Resolver) *Verifier {
	return &Verifier{Resolver: r, Hostname: hostname, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, sample: func(int) bool { return false }}
}

// sign prepends a DKIM-Signature by domain/selector to msg.
func sign(t *testing.T, msg, domain, selector string, key crypto.Signer) string {
	t.Helper()
	d, err := dns.ParseDomain(domain)
	if err != nil {
		t.Fatal(err)
	}
	sel := dkim.Selector{
		Hash: "sha256", HeaderRelaxed: true, BodyRelaxed: true,
		Headers:    []string{"From", "To", "Subject"},
		PrivateKey: key, Domain: dns.Domain{ASCII: selector},
	}
	h, err := dkim.Sign(context.Background(), discard, smtp.Localpart("x"), d, []dkim.Selector{sel}, false, strings.NewReader(msg))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return h + msg
}

func msgFrom(from string) string {
	return "From: " + from + "\r\nTo: bob@example.org\r\nSubject: test\r\n\r\nHello.\r\n"
}

func verify(t *testing.T, v *Verifier, in Input, msg string) Verdict {
	t.Helper()
	vd := v.Verify(context.Background(), in, strings.NewReader(msg), int64(len(msg)))
	if !strings.HasPrefix(vd.Header, "Authentication-Results: "+hostname+";") || !strings.HasSuffix(vd.Header, "\r\n") {
		t.Fatalf("bad header %q", vd.Header)
	}
	for _, line := range strings.Split(strings.TrimSuffix(vd.Header, "\r\n"), "\r\n") {
		if len(line) > lineLimit {
			t.Errorf("header line longer than %d: %q", lineLimit, line)
		}
	}
	return vd
}

// unfold joins the header's lines.
func unfold(h string) string {
	return strings.ReplaceAll(strings.TrimSuffix(h, "\r\n"), "\r\n\t", " ")
}

func TestSPF(t *testing.T) {
	v := newVerifier(t, zone(t))
	msg := msgFrom("x@n.test")
	tests := []struct {
		name string
		in   Input
		want string
	}{
		{"pass", Input{IP: goodIP, HELO: "mx.a.test", MailFrom: "x@a.test"}, "spf=pass smtp.mailfrom=a.test;"},
		{"fail", Input{IP: badIP, HELO: "mx.a.test", MailFrom: "x@a.test"}, "spf=fail smtp.mailfrom=a.test;"},
		{"softfail", Input{IP: badIP, HELO: "mx.a.test", MailFrom: "x@soft.test"}, "spf=softfail smtp.mailfrom=soft.test;"},
		{"none", Input{IP: goodIP, HELO: "mx.a.test", MailFrom: "x@nospf.test"}, "spf=none smtp.mailfrom=nospf.test;"},
		{"temperror", Input{IP: goodIP, HELO: "mx.a.test", MailFrom: "x@tempfail.test"}, "spf=temperror"},
		{"helo for null sender", Input{IP: goodIP, HELO: "mx.a.test"}, "spf=pass smtp.helo=mx.a.test;"},
		{"helo fail for null sender", Input{IP: badIP, HELO: "mx.a.test"}, "spf=fail smtp.helo=mx.a.test;"},
		{"address literal helo, null sender", Input{IP: goodIP, HELO: "[192.0.2.1]"}, `spf=none smtp.helo="[192.0.2.1]";`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vd := verify(t, v, tc.in, msg)
			if h := unfold(vd.Header); !strings.Contains(h, tc.want) {
				t.Errorf("header %q lacks %q", h, tc.want)
			}
			if vd.Action != Accept {
				t.Errorf("action %v, want accept (p=none)", vd.Action)
			}
		})
	}
}

func TestDKIM(t *testing.T) {
	ed, rk := keys()
	v := newVerifier(t, zone(t))
	// SPF cannot help: MAIL FROM is another domain whose SPF fails.
	in := Input{IP: badIP, HELO: "mx.other.test", MailFrom: "bounce@other.test"}
	base := msgFrom("alice@a.test")
	tests := []struct {
		name   string
		msg    string
		want   []string
		action Action
	}{
		{"ed25519 pass", sign(t, base, "a.test", "ed", ed), []string{"dkim=pass header.d=a.test header.s=ed header.a=ed25519-sha256 header.b=", "dmarc=pass header.from=a.test"}, Accept},
		{"rsa pass", sign(t, base, "a.test", "rsa", rk), []string{"dkim=pass header.d=a.test header.s=rsa header.a=rsa-sha256 header.b=", "dmarc=pass"}, Accept},
		{"body changed", strings.Replace(sign(t, base, "a.test", "ed", ed), "Hello.", "Hello!", 1), []string{"dkim=fail (body hash does not match", "dmarc=fail (p=reject dis=reject) header.from=a.test"}, Reject},
		{"header changed", strings.Replace(sign(t, base, "a.test", "ed", ed), "Subject: test", "Subject: pay now", 1), []string{"dkim=fail", "dmarc=fail"}, Reject},
		{"unknown selector", sign(t, base, "a.test", "nokey", ed), []string{"dkim=permerror", "dmarc=fail"}, Reject},
		{"unaligned signature", sign(t, base, "other.test", "ed", ed), []string{"dkim=pass header.d=other.test", "dmarc=fail"}, Reject},
		{"two signatures", sign(t, sign(t, base, "other.test", "ed", ed), "a.test", "rsa", rk), []string{"dkim=pass header.d=a.test header.s=rsa", "dkim=pass header.d=other.test header.s=ed", "dmarc=pass"}, Accept},
		{"no signature", base, []string{"dkim=none;", "dmarc=fail"}, Reject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vd := verify(t, v, in, tc.msg)
			h := unfold(vd.Header)
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("header %q lacks %q", h, w)
				}
			}
			if vd.Action != tc.action {
				t.Errorf("action %v, want %v (%s)", vd.Action, tc.action, vd.Reason)
			}
		})
	}
}

func TestDKIMHeaderB(t *testing.T) {
	ed, _ := keys()
	v := newVerifier(t, zone(t))
	msg := sign(t, msgFrom("alice@a.test"), "a.test", "ed", ed)
	res, err := dkim.Verify(context.Background(), discard, zone(t), false, dkim.DefaultPolicy, strings.NewReader(msg), false)
	if err != nil || len(res) != 1 {
		t.Fatalf("dkim.Verify: %v %v", res, err)
	}
	b := base64.StdEncoding.EncodeToString(res[0].Sig.Signature)[:8]
	vd := verify(t, v, Input{IP: goodIP, HELO: "mx.a.test", MailFrom: "x@a.test"}, msg)
	if want := "header.b=" + quoteValue(b); !strings.Contains(unfold(vd.Header), want) {
		t.Errorf("header %q lacks %q", vd.Header, want)
	}
}

func TestDMARC(t *testing.T) {
	ed, _ := keys()
	v := newVerifier(t, zone(t))
	spfPass := func(from string) Input { return Input{IP: goodIP, HELO: "mx.a.test", MailFrom: from} }
	spfFail := Input{IP: badIP, HELO: "mx.evil.test", MailFrom: "x@evil.test"}
	tests := []struct {
		name   string
		in     Input
		msg    string
		action Action
		want   string
	}{
		{"pass by SPF alignment", spfPass("bounce@a.test"), msgFrom("alice@a.test"), Accept, "dmarc=pass header.from=a.test"},
		{"pass by DKIM alignment", spfFail, sign(t, msgFrom("alice@a.test"), "a.test", "ed", ed), Accept, "dmarc=pass header.from=a.test"},
		{"fail p=reject", spfFail, msgFrom("alice@a.test"), Reject, "dmarc=fail (p=reject dis=reject) header.from=a.test"},
		{"fail p=quarantine", spfFail, msgFrom("alice@q.test"), Quarantine, "dmarc=fail (p=quarantine dis=quarantine) header.from=q.test"},
		{"fail p=none", spfFail, msgFrom("alice@n.test"), Accept, "dmarc=fail (p=none dis=none) header.from=n.test"},
		{"no record", spfFail, msgFrom("alice@nodmarc.test"), Accept, "dmarc=none header.from=nodmarc.test"},
		{"relaxed SPF alignment, subdomains", spfPass("bounce@mail.a.test"), msgFrom("news@news.a.test"), Accept, "dmarc=pass header.from=news.a.test"},
		{"relaxed, subdomain From fails with org policy", spfFail, msgFrom("news@news.a.test"), Reject, "dmarc=fail (p=reject dis=reject) header.from=news.a.test"},
		{"strict SPF alignment refuses subdomain", spfPass("bounce@mail.s.test"), msgFrom("x@s.test"), Reject, "dmarc=fail (p=reject dis=reject) header.from=s.test"},
		{"sp=none for subdomains", spfFail, msgFrom("x@sub.sp.test"), Accept, "dmarc=fail (p=none dis=none) header.from=sub.sp.test"},
		{"p= for the domain itself despite sp=", spfFail, msgFrom("x@sp.test"), Reject, "dmarc=fail (p=reject dis=reject)"},
		{"pct sampled out: reject becomes quarantine", spfFail, msgFrom("x@pct.test"), Quarantine, "dmarc=fail (p=reject dis=quarantine)"},
		{"pct sampled out: quarantine becomes none", spfFail, msgFrom("x@pctq.test"), Accept, "dmarc=fail (p=quarantine dis=none)"},
		{"DMARC lookup temperror", spfFail, msgFrom("x@dnsfail.test"), Accept, "dmarc=temperror"},
		{"aligned SPF temperror", Input{IP: goodIP, HELO: "h.test", MailFrom: "x@tempfail.test"}, msgFrom("x@tempfail.test"), Accept, "spf=temperror"},
		{"unaligned DKIM temperror does not save a failure", spfFail, sign(t, msgFrom("alice@a.test"), "slow.test", "ed", ed), Reject, "dmarc=fail (p=reject"},
		{"aligned DKIM temperror", spfFail, sign(t, msgFrom("alice@a.test"), "a.test", "tmp", ed), Accept, "dmarc=temperror"},
		{"display name and angle address", spfFail, msgFrom(`"Alice" <alice@A.TEST>`), Reject, "header.from=a.test"},
		{"second From field with failing domain", spfPass("b@a.test"), "From: x@n.test\r\nFrom: y@q.test\r\nSubject: s\r\n\r\nx\r\n", Quarantine, "dmarc=fail (p=quarantine dis=quarantine) header.from=q.test"},
		{"two addresses, one passes, one rejects", spfPass("b@a.test"), msgFrom("x@a.test, y@s.test"), Reject, "dmarc=pass header.from=a.test"},
		{"no From field", spfFail, "Subject: s\r\n\r\nx\r\n", Accept, "dmarc=none (no From field)"},
		{"From without domain", spfFail, msgFrom("undisclosed"), Accept, "dmarc=permerror"},
		{"header only", spfFail, "From: x@a.test\r\n", Reject, "dmarc=fail"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vd := verify(t, v, tc.in, tc.msg)
			if h := unfold(vd.Header); !strings.Contains(h, tc.want) {
				t.Errorf("header %q lacks %q", h, tc.want)
			}
			if vd.Action != tc.action {
				t.Errorf("action %v, want %v; header %q", vd.Action, tc.action, vd.Header)
			}
			if vd.Action != Accept && (vd.Reason == "" || vd.FromDomain == "") {
				t.Errorf("no reason or From domain: %+v", vd)
			}
		})
	}
}

func TestPctSampledIn(t *testing.T) {
	v := newVerifier(t, zone(t))
	v.sample = func(pct int) bool {
		if pct != 50 {
			t.Errorf("sample(%d), want 50", pct)
		}
		return true
	}
	vd := verify(t, v, Input{IP: badIP, HELO: "h.test", MailFrom: "x@evil.test"}, msgFrom("x@pct.test"))
	if vd.Action != Reject {
		t.Errorf("action %v, want reject", vd.Action)
	}
}

// countingResolver counts the questions asked.
type countingResolver struct {
	dns.MockResolver
	n atomic.Int32
}

func (r *countingResolver) LookupTXT(ctx context.Context, name string) ([]string, adns.Result, error) {
	r.n.Add(1)
	return r.MockResolver.LookupTXT(ctx, name)
}

func (r *countingResolver) LookupIP(ctx context.Context, network, host string) ([]net.IP, adns.Result, error) {
	r.n.Add(1)
	return r.MockResolver.LookupIP(ctx, network, host)
}

func TestTrusted(t *testing.T) {
	r := &countingResolver{MockResolver: zone(t)}
	v := newVerifier(t, r)
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1"} {
		c := v.Start(context.Background(), Input{IP: net.ParseIP(ip), HELO: "h", MailFrom: "x@a.test"})
		if !c.Trusted() {
			t.Errorf("%s not trusted", ip)
		}
		vd := c.Finish(context.Background(), nil, 0)
		c.Close()
		if want := "Authentication-Results: " + hostname + "; none\r\n"; vd.Header != want || vd.Action != Accept {
			t.Errorf("%s: verdict %+v, want header %q", ip, vd, want)
		}
	}
	if n := r.n.Load(); n != 0 {
		t.Errorf("%d DNS questions for trusted clients", n)
	}
	// An untrusted client is checked.
	vd := verify(t, v, Input{IP: goodIP, HELO: "h", MailFrom: "x@a.test"}, msgFrom("x@a.test"))
	if r.n.Load() == 0 || !strings.Contains(vd.Header, "spf=pass") {
		t.Errorf("untrusted client not checked: %q", vd.Header)
	}
}

func TestTooManySignatures(t *testing.T) {
	ed, _ := keys()
	v := newVerifier(t, zone(t))
	msg := msgFrom("alice@a.test")
	for range maxOtherSigs + 2 {
		msg = sign(t, msg, "other.test", "ed", ed)
	}
	msg = sign(t, msg, "a.test", "ed", ed) // on top, verified first anyway
	vd := verify(t, v, Input{IP: badIP, HELO: "h", MailFrom: "x@evil.test"}, msg)
	h := unfold(vd.Header)
	if got := strings.Count(h, "dkim=pass header.d=other.test"); got != maxOtherSigs {
		t.Errorf("%d other signatures verified, want %d: %q", got, maxOtherSigs, h)
	}
	if got := strings.Count(h, "dkim=policy (signature rejected by policy: too many signatures)"); got != 2 {
		t.Errorf("%d signatures refused, want 2: %q", got, h)
	}
	if vd.Action != Accept || !strings.Contains(h, "dmarc=pass") {
		t.Errorf("aligned signature not verified: %v %q", vd.Action, h)
	}
}

func TestHeaderTooLarge(t *testing.T) {
	ed, _ := keys()
	v := newVerifier(t, zone(t))
	pad := "X-Pad: " + strings.Repeat("a", 900) + "\r\n"
	msg := sign(t, msgFrom("alice@a.test"), "a.test", "ed", ed)
	msg = strings.Replace(msg, "Subject:", strings.Repeat(pad, MaxHeaderSize/len(pad)+1)+"Subject:", 1)
	vd := verify(t, v, Input{IP: badIP, HELO: "h", MailFrom: "x@evil.test"}, msg)
	if h := unfold(vd.Header); !strings.Contains(h, "dkim=permerror (header too large)") || vd.Action != Reject {
		t.Errorf("verdict %v %q", vd.Action, h)
	}
}

func TestComposeHeader(t *testing.T) {
	tests := []struct {
		results []resinfo
		want    string
	}{
		{nil, "Authentication-Results: mx.example.org; none\r\n"},
		{[]resinfo{{method: "spf", result: "pass", props: []prop{{"smtp.mailfrom", "a.test"}}}},
			"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a.test\r\n"},
		{[]resinfo{
			{method: "spf", result: "pass", props: []prop{{"smtp.mailfrom", "a.test"}}},
			{method: "dkim", result: "pass", props: []prop{{"header.d", "a.test"}, {"header.s", "sel"}, {"header.a", "ed25519-sha256"}, {"header.b", "ab/+cd=x"}}},
			{method: "dmarc", result: "fail", comment: "p=reject dis=reject", props: []prop{{"header.from", "a.test"}}},
		}, "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a.test;\r\n" +
			"\tdkim=pass header.d=a.test header.s=sel header.a=ed25519-sha256\r\n" +
			"\theader.b=\"ab/+cd=x\"; dmarc=fail (p=reject dis=reject) header.from=a.test\r\n"},
	}
	for _, tc := range tests {
		if got := composeHeader(hostname, tc.results); got != tc.want {
			t.Errorf("got\n%s\nwant\n%s", got, tc.want)
		}
	}
}

func TestStripResults(t *testing.T) {
	body := "\r\nbody\r\nAuthentication-Results: mx.example.org; spf=pass\r\n"
	tests := []struct {
		name, in, want string
	}{
		{"ours removed", "Authentication-Results: mx.example.org; spf=pass\r\nFrom: a\r\n", "From: a\r\n"},
		{"case and folding", "Subject: s\r\nauthentication-results :\r\n MX.Example.ORG;\r\n\tdkim=pass\r\nFrom: a\r\n", "Subject: s\r\nFrom: a\r\n"},
		{"comment before id", "Authentication-Results: (forged (nested)) mx.example.org 1; none\r\nX: y\r\n", "X: y\r\n"},
		{"quoted id", "Authentication-Results: \"mx.example.org\"; none\r\nX: y\r\n", "X: y\r\n"},
		{"others kept", "Authentication-Results: mx.other.org; spf=pass\r\nAuthentication-Results: mx.example.org.evil; none\r\n", "Authentication-Results: mx.other.org; spf=pass\r\nAuthentication-Results: mx.example.org.evil; none\r\n"},
		{"similar name kept", "Authentication-Results-X: mx.example.org; none\r\n", "Authentication-Results-X: mx.example.org; none\r\n"},
		{"several", "Authentication-Results: mx.example.org; a\r\nA: 1\r\nAuthentication-Results: mx.example.org; b\r\n c\r\nB: 2\r\n", "A: 1\r\nB: 2\r\n"},
		{"empty header", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in + body
			var out bytes.Buffer
			n, err := StripResults(&out, strings.NewReader(in), int64(len(in)), hostname)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(tc.in)+2) {
				t.Errorf("header length %d, want %d", n, len(tc.in)+2)
			}
			if got := out.String(); got != tc.want+"\r\n" {
				t.Errorf("got %q, want %q", got, tc.want+"\r\n")
			}
		})
	}
	// No body: everything is header.
	in := "Authentication-Results: mx.example.org; none\r\nFrom: a\r\n"
	var out bytes.Buffer
	n, err := StripResults(&out, strings.NewReader(in), int64(len(in)), hostname)
	if err != nil || n != int64(len(in)) || out.String() != "From: a\r\n" {
		t.Errorf("no body: %d %v %q", n, err, out.String())
	}
}

func FuzzStripResults(f *testing.F) {
	f.Add([]byte("Authentication-Results: mx.example.org; spf=pass\r\nFrom: a\r\n\r\nbody\r\n"))
	f.Add([]byte("X: 1\r\nAuthentication-Results : (c\\) (d)) \"mx.example.org\"\r\n x\r\n\r\n"))
	f.Add([]byte(" leading\r\nAuthentication-Results:\n mx.example.org;\n\nbody"))
	f.Add([]byte("Authentication-Results: (unterminated mx.example.org\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		n, err := StripResults(&out, bytes.NewReader(in), int64(len(in)), hostname)
		if err != nil {
			t.Fatal(err)
		}
		if n < 0 || n > int64(len(in)) || int64(out.Len()) > n {
			t.Fatalf("lengths: consumed %d of %d, wrote %d", n, len(in), out.Len())
		}
		for _, fld := range splitFields(out.Bytes()) {
			if isOurResults(fld, hostname) {
				t.Fatalf("forged field kept: %q", fld)
			}
		}
		// Idempotent: nothing more to remove.
		var again bytes.Buffer
		m, err := StripResults(&again, bytes.NewReader(out.Bytes()), int64(out.Len()), hostname)
		if err != nil || m != int64(out.Len()) || !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("second pass changed %q to %q (%d, %v)", out.Bytes(), again.Bytes(), m, err)
		}
		// Only whole Authentication-Results fields go.
		kept := 0
		for _, fld := range splitFields(in[:n]) {
			if !isOurResults(fld, hostname) {
				kept += len(fld)
			}
		}
		if want := int(n) - len(in[:n]) + kept + blankLen(in[:n]); out.Len() != want {
			t.Fatalf("wrote %d bytes, want %d", out.Len(), want)
		}
	})
}

// blankLen is the length of the blank line ending hdr, if it has one.
func blankLen(hdr []byte) int {
	switch {
	case bytes.HasSuffix(hdr, []byte("\n\r\n")) || bytes.Equal(hdr, []byte("\r\n")):
		return 2
	case bytes.HasSuffix(hdr, []byte("\n\n")) || bytes.Equal(hdr, []byte("\n")):
		return 1
	}
	return 0
}

// FuzzVerify runs the whole verification on arbitrary messages: the
// header parsing, the From domains, DKIM-Signature parsing and the
// Authentication-Results field, which must stay well formed.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(msgFrom("alice@a.test")))
	f.Add([]byte("From: a@a.test, b@q.test\r\nFrom: =?utf-8?q?x?= <c@n.test>\r\nDKIM-Signature: v=1; a=ed25519-sha256; d=a.test; s=ed; h=from; bh=x; b=y\r\n\r\nbody"))
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=other.test; s=ed; h=from:subject; bh=; b=\r\n\tabc\r\nFrom: (c) x@[1.2.3.4]\r\n"))
	f.Add([]byte("\r\n\r\n"))
	v := &Verifier{Resolver: dns.MockResolver{TXT: map[string][]string{
		"a.test.":        {"v=spf1 ip4:192.0.2.1 -all"},
		"_dmarc.a.test.": {"v=DMARC1; p=reject"},
		"_dmarc.q.test.": {"v=DMARC1; p=quarantine"},
	}}, Hostname: hostname, sample: func(int) bool { return true }}
	f.Fuzz(func(t *testing.T, msg []byte) {
		vd := v.Verify(context.Background(), Input{IP: badIP, HELO: "h.test", MailFrom: "x@evil.test"}, bytes.NewReader(msg), int64(len(msg)))
		h := vd.Header
		if !strings.HasPrefix(h, "Authentication-Results: "+hostname+";") || !strings.HasSuffix(h, "\r\n") {
			t.Fatalf("bad header %q", h)
		}
		for i, line := range strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n") {
			if strings.ContainsAny(line, "\r\n") || i > 0 && !strings.HasPrefix(line, "\t") || strings.TrimSpace(line) == "" {
				t.Fatalf("bad line %q in %q", line, h)
			}
			for _, c := range []byte(line) {
				if c >= 0x7f || c < ' ' && c != '\t' {
					t.Fatalf("byte %#x in %q", c, h)
				}
			}
		}
		if vd.Action != Accept && vd.Reason == "" || strings.ContainsAny(vd.Reason, "\r\n") {
			t.Fatalf("verdict %+v", vd)
		}
	})
}

func TestSPFBadMailFrom(t *testing.T) {
	v := newVerifier(t, zone(t))
	vd := verify(t, v, Input{IP: goodIP, HELO: "mx.a.test", MailFrom: "x@[192.0.2.1]"}, msgFrom("x@n.test"))
	if h := unfold(vd.Header); !strings.Contains(h, "spf=none; dkim=none;") {
		t.Errorf("header %q", h)
	}
}

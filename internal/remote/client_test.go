package remote

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/mtasts"
	"github.com/mjl-/mox/smtpclient"

	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/testenv/dnstest"
)

// fake is a go-smtp server whose replies the test chooses.
type fake struct {
	srv  *smtp.Server
	addr string

	mu sync.Mutex
	// rcpt maps a recipient to the error its RCPT gets; absent: 250.
	rcpt  map[string]*smtp.SMTPError
	msgs  []fakeMsg
	conns int
}

type fakeMsg struct {
	from  string
	utf8  bool
	rcpts []string
	data  []byte
	tls   bool
	// remote is the client's address.
	remote string
}

type fakeSession struct {
	f   *fake
	c   *smtp.Conn
	msg fakeMsg
}

func (f *fake) NewSession(c *smtp.Conn) (smtp.Session, error) {
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	return &fakeSession{f: f, c: c}, nil
}

func (s *fakeSession) Mail(from string, opts *smtp.MailOptions) error {
	s.msg = fakeMsg{from: from, utf8: opts != nil && opts.UTF8, remote: s.c.Conn().RemoteAddr().String()}
	_, s.msg.tls = s.c.TLSConnectionState()
	return nil
}

func (s *fakeSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.f.mu.Lock()
	e := s.f.rcpt[to]
	s.f.mu.Unlock()
	if e != nil {
		return e
	}
	s.msg.rcpts = append(s.msg.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.f.mu.Lock()
	s.f.msgs = append(s.f.msgs, s.msg)
	s.f.mu.Unlock()
	return nil
}

func (s *fakeSession) Reset()        { s.msg = fakeMsg{} }
func (s *fakeSession) Logout() error { return nil }

// setRcpt makes RCPT TO:<addr> get e.
func (f *fake) setRcpt(addr string, e *smtp.SMTPError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rcpt[addr] = e
}

func (f *fake) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.msgs...)
}

var (
	certOnce sync.Once
	testCert tls.Certificate
)

// selfSigned returns a self-signed certificate, as many MTAs have.
func selfSigned(t *testing.T) tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.b.test"}, DNSNames: []string{"mx.b.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return testCert
}

type fakeOpts struct {
	ip       string // default 127.0.0.1
	port     int    // 0: ephemeral
	noTLS    bool
	smtputf8 bool
	// setup changes the server before it starts.
	setup func(*smtp.Server)
}

func startFake(t *testing.T, o fakeOpts) *fake {
	t.Helper()
	if o.ip == "" {
		o.ip = "127.0.0.1"
	}
	f := &fake{rcpt: map[string]*smtp.SMTPError{}}
	f.srv = smtp.NewServer(f)
	f.srv.Domain = "mx.b.test"
	f.srv.ReadTimeout = 10 * time.Second
	f.srv.WriteTimeout = 10 * time.Second
	f.srv.EnableSMTPUTF8 = o.smtputf8
	if !o.noTLS {
		f.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	}
	if o.setup != nil {
		o.setup(f.srv)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.ip, strconv.Itoa(o.port)))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		f.srv.Close()
		<-done
	})
	return f
}

func (f *fake) port(t *testing.T) int {
	_, p, _ := net.SplitHostPort(f.addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns a port nothing listens on (just closed).
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newClient(t *testing.T, dnsAddr string, port int) (*Client, *logBuf) {
	lb := &logBuf{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &Client{
		Resolver:       resolver.New(dnsAddr, nil),
		Hostname:       "mail.a.test",
		Port:           port,
		ConnectTimeout: 5 * time.Second,
		SessionTimeout: 30 * time.Second,
		Log:            log,
		FetchPolicy: func(ctx context.Context, d dns.Domain) (*mtasts.Policy, error) {
			t.Errorf("unexpected MTA-STS policy fetch for %s", d)
			return nil, errors.New("no fetch in this test")
		},
	}, lb
}

const testHeader = "DKIM-Signature: v=1; a=ed25519-sha256; d=a.test; s=x;\r\n\tb=abc\r\n"
const testBody = "From: alice@a.test\r\nTo: bob@b.test\r\nSubject: hi\r\n\r\nHello Bob.\r\n.leading dot\r\n"

func msgTo(rcpts ...string) *Message {
	m := &Message{From: "alice@a.test", Domain: "b.test", Header: []byte(testHeader), Body: strings.NewReader(testBody), Size: int64(len(testBody))}
	for _, r := range rcpts {
		m.Recipients = append(m.Recipients, Recipient{Addr: r})
	}
	return m
}

func deliver(t *testing.T, c *Client, m *Message) []Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res := c.Deliver(ctx, m)
	if len(res) != len(m.Recipients) {
		t.Fatalf("got %d results for %d recipients", len(res), len(m.Recipients))
	}
	for i := range res {
		if res[i].Addr != m.Recipients[i].Addr {
			t.Fatalf("result %d for %q, want %q", i, res[i].Addr, m.Recipients[i].Addr)
		}
	}
	return res
}

func TestDeliverSTARTTLS(t *testing.T) {
	f := startFake(t, fakeOpts{})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, lb := newClient(t, d.Addr(), f.port(t))

	res := deliver(t, c, msgTo("bob@b.test", "carol@b.test"))
	for _, r := range res {
		if !r.Delivered || r.Code != 250 || r.Permanent || r.Host != "mx.b.test" {
			t.Fatalf("result %+v, want delivered by mx.b.test", r)
		}
	}
	msgs := f.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1 (one transaction)", len(msgs))
	}
	m := msgs[0]
	if !m.tls {
		t.Errorf("message not sent over TLS")
	}
	if m.from != "alice@a.test" || strings.Join(m.rcpts, ",") != "bob@b.test,carol@b.test" {
		t.Errorf("envelope %q -> %q", m.from, m.rcpts)
	}
	// go-smtp undoes dot-stuffing: the data is Header then Body, byte
	// for byte.
	if want := testHeader + testBody; string(m.data) != want {
		t.Errorf("data:\n%q\nwant\n%q", m.data, want)
	}
	if l := lb.String(); !strings.Contains(l, "remote delivery attempt") || !strings.Contains(l, `tls="TLS 1.3"`) || !strings.Contains(l, "ip=127.0.0.1") || !strings.Contains(l, "codes=250,250") {
		t.Errorf("log line missing fields:\n%s", l)
	}
}

func TestMixedRecipients(t *testing.T) {
	f := startFake(t, fakeOpts{})
	f.setRcpt("nobody@b.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	f.setRcpt("grey@b.test", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), f.port(t))

	res := deliver(t, c, msgTo("bob@b.test", "nobody@b.test", "grey@b.test"))
	tests := []struct {
		delivered, permanent bool
		code                 int
		enhanced             string
	}{
		{true, false, 250, "2.0.0"},
		{false, true, 550, "5.1.1"},
		{false, false, 451, "4.7.1"},
	}
	for i, tc := range tests {
		r := res[i]
		if r.Delivered != tc.delivered || r.Permanent != tc.permanent || r.Code != tc.code || r.Enhanced != tc.enhanced {
			t.Errorf("%s: got %+v, want delivered=%v permanent=%v %d %s", r.Addr, r, tc.delivered, tc.permanent, tc.code, tc.enhanced)
		}
	}
	if !strings.Contains(res[1].Text, "no such user") {
		t.Errorf("550 text %q lacks the server's reply", res[1].Text)
	}
	msgs := f.messages()
	if len(msgs) != 1 || strings.Join(msgs[0].rcpts, ",") != "bob@b.test" {
		t.Fatalf("server got %+v", msgs)
	}
}

func TestSingleRecipientRejected(t *testing.T) {
	f := startFake(t, fakeOpts{})
	f.setRcpt("nobody@b.test", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), f.port(t))
	res := deliver(t, c, msgTo("nobody@b.test"))
	if r := res[0]; r.Delivered || !r.Permanent || r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Fatalf("got %+v", r)
	}
}

func TestMXFallback(t *testing.T) {
	f := startFake(t, fakeOpts{})
	d := dnstest.Start(t)
	// mx1 is preferred but nothing listens at 127.0.0.2 on that port.
	d.SetMX("b.test", dnstest.MX{Pref: 20, Host: "mx2.b.test"}, dnstest.MX{Pref: 10, Host: "mx1.b.test"})
	d.SetA("mx1.b.test", "127.0.0.2")
	d.SetA("mx2.b.test", "127.0.0.1")
	c, lb := newClient(t, d.Addr(), f.port(t))
	res := deliver(t, c, msgTo("bob@b.test"))
	if r := res[0]; !r.Delivered || r.Host != "mx2.b.test" {
		t.Fatalf("got %+v, want delivered by mx2.b.test", r)
	}
	if len(f.messages()) != 1 {
		t.Fatalf("server got %d messages", len(f.messages()))
	}
	if l := lb.String(); !strings.Contains(l, "host=mx1.b.test") || !strings.Contains(l, "host=mx2.b.test") {
		t.Errorf("want one log line per host:\n%s", l)
	}
}

func TestTemporaryTriesNextMX(t *testing.T) {
	port := freePort(t)
	first := startFake(t, fakeOpts{ip: "127.0.0.1", port: port})
	first.setRcpt("bob@b.test", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"})
	second := startFake(t, fakeOpts{ip: "127.0.0.3", port: port})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx1.b.test"}, dnstest.MX{Pref: 20, Host: "mx2.b.test"})
	d.SetA("mx1.b.test", "127.0.0.1")
	d.SetA("mx2.b.test", "127.0.0.3")
	c, _ := newClient(t, d.Addr(), port)
	res := deliver(t, c, msgTo("bob@b.test"))
	if r := res[0]; !r.Delivered || r.Host != "mx2.b.test" {
		t.Fatalf("got %+v, want delivered by mx2.b.test", r)
	}
	if len(first.messages()) != 0 || len(second.messages()) != 1 {
		t.Fatalf("first got %d, second %d messages", len(first.messages()), len(second.messages()))
	}
}

func TestFailures(t *testing.T) {
	d := dnstest.Start(t)
	d.SetMX("down.test", dnstest.MX{Pref: 10, Host: "mx1.down.test"}, dnstest.MX{Pref: 20, Host: "mx2.down.test"})
	d.SetA("mx1.down.test", "127.0.0.2")
	d.SetA("mx2.down.test", "127.0.0.3")
	d.SetNullMX("nullmx.test")
	d.Known("noaddr.test")
	d.SetMX("danglingmx.test", dnstest.MX{Pref: 10, Host: "nosuchhost.test"})
	c, _ := newClient(t, d.Addr(), freePort(t))

	tests := []struct {
		domain    string
		permanent bool
		code      int
		enhanced  string
	}{
		{"down.test", false, 451, "4.4.1"},
		{"nullmx.test", true, 556, "5.1.10"},
		{"nosuchdomain.test", true, 550, "5.1.2"},
		{"noaddr.test", true, 550, "5.1.2"},
		{"danglingmx.test", false, 451, "4.4.4"},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			m := msgTo("bob@" + tc.domain)
			m.Domain = tc.domain
			r := deliver(t, c, m)[0]
			if r.Delivered || r.Permanent != tc.permanent || r.Code != tc.code || r.Enhanced != tc.enhanced || r.Text == "" {
				t.Fatalf("got %+v, want permanent=%v %d %s", r, tc.permanent, tc.code, tc.enhanced)
			}
			// No remote server replied: no Remote-MTA in a DSN.
			if !r.Local || r.Host != "" {
				t.Errorf("local failure with Local=%v Host=%q", r.Local, r.Host)
			}
		})
	}
}

func TestNoMXUsesAddress(t *testing.T) {
	f := startFake(t, fakeOpts{})
	d := dnstest.Start(t)
	d.SetA("b.test", "127.0.0.1") // RFC 5321 §5.1: the implicit MX.
	c, _ := newClient(t, d.Addr(), f.port(t))
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; !r.Delivered || r.Host != "b.test" {
		t.Fatalf("got %+v", r)
	}
}

// TestRelayHost: with a relay host every message goes there, whatever the
// destination's DNS says (here: nothing at all), and from SourceIP.
func TestRelayHost(t *testing.T) {
	f := startFake(t, fakeOpts{})
	d := dnstest.Start(t) // knows no name
	c, _ := newClient(t, d.Addr(), freePort(t))
	c.RelayHost = f.addr
	c.SourceIP = net.ParseIP("127.0.0.5")
	r := deliver(t, c, msgTo("bob@b.test", "carol@c.test"))
	for _, x := range r {
		if !x.Delivered {
			t.Fatalf("via relay host: %+v", x)
		}
	}
	msgs := f.messages()
	if len(msgs) != 1 {
		t.Fatalf("relay host got %d transactions, want 1", len(msgs))
	}
	if remote := msgs[0].remote; !strings.HasPrefix(remote, "127.0.0.5:") {
		t.Errorf("connection came from %s, want SourceIP 127.0.0.5", remote)
	}
	if d.Queries() != 0 {
		t.Errorf("%d DNS questions asked; a relay host given as an address needs none", d.Queries())
	}
	c.RelayHost = "127.0.0.1"
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; r.Delivered || r.Code/100 != 4 {
		t.Errorf("relay host without a port: %+v, want a temporary failure", r)
	}
}

func TestSMTPUTF8(t *testing.T) {
	for _, offered := range []bool{false, true} {
		t.Run("offered="+strconv.FormatBool(offered), func(t *testing.T) {
			f := startFake(t, fakeOpts{smtputf8: offered})
			d := dnstest.Start(t)
			d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
			d.SetA("mx.b.test", "127.0.0.1")
			c, _ := newClient(t, d.Addr(), f.port(t))
			m := msgTo("bøb@b.test")
			m.SMTPUTF8 = true
			r := deliver(t, c, m)[0]
			if !offered {
				if r.Delivered || !r.Permanent || r.Code != 553 || r.Enhanced != "5.6.7" {
					t.Fatalf("got %+v, want permanent 553 5.6.7", r)
				}
				if len(f.messages()) != 0 {
					t.Fatalf("message sent to a server without SMTPUTF8")
				}
				return
			}
			if !r.Delivered {
				t.Fatalf("got %+v", r)
			}
			if msgs := f.messages(); len(msgs) != 1 || !msgs[0].utf8 {
				t.Fatalf("want one message with MAIL ... SMTPUTF8, got %+v", msgs)
			}
		})
	}
}

func TestPlaintextPeer(t *testing.T) {
	f := startFake(t, fakeOpts{noTLS: true})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), f.port(t))
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; !r.Delivered {
		t.Fatalf("got %+v", r)
	}
	if msgs := f.messages(); len(msgs) != 1 || msgs[0].tls {
		t.Fatalf("got %+v", msgs)
	}

	// REQUIRETLS: no DANE, no MTA-STS: refused before connecting.
	m := msgTo("bob@b.test")
	m.RequireTLS = true
	if r := deliver(t, c, m)[0]; r.Delivered || !r.Permanent || r.Enhanced != "5.7.30" {
		t.Fatalf("requiretls: got %+v", r)
	}
	if len(f.messages()) != 1 {
		t.Fatalf("requiretls message was sent")
	}
}

// TestMTASTS checks that an enforced policy keeps delivery to listed MX
// hosts with verified certificates, and that the policy is cached by id.
func TestMTASTS(t *testing.T) {
	f := startFake(t, fakeOpts{})
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	d.SetTXT("_mta-sts.b.test", "v=STSv1; id=1")
	c, _ := newClient(t, d.Addr(), f.port(t))
	var fetches atomic.Int32
	policyText := "version: STSv1\nmode: enforce\nmx: other.b.test\nmax_age: 86400\n"
	c.FetchPolicy = func(ctx context.Context, dom dns.Domain) (*mtasts.Policy, error) {
		fetches.Add(1)
		return mtasts.ParsePolicy(policyText)
	}
	r := deliver(t, c, msgTo("bob@b.test"))[0]
	if r.Delivered || r.Permanent || r.Enhanced != "4.7.5" {
		t.Fatalf("mx not in policy: got %+v", r)
	}
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	if len(f.messages()) != 0 || conns != 0 {
		t.Fatalf("connected to an MX the policy does not list")
	}

	// Same id: the cached policy is used, even though the file changed.
	policyText = "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n"
	deliver(t, c, msgTo("bob@b.test"))
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}

	// New id: fetched again; mx.b.test is now allowed, but its
	// certificate is self-signed: enforce mode refuses it.
	d.SetTXT("_mta-sts.b.test", "v=STSv1; id=2")
	r = deliver(t, c, msgTo("bob@b.test"))[0]
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	if r.Delivered || r.Permanent || !r.Local || r.Host != "" || !strings.Contains(r.Text, "x509") {
		t.Fatalf("self-signed with enforce: got %+v", r)
	}

	// Trust the certificate: delivered.
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(selfSigned(t).Certificate[0])
	pool.AddCert(cert)
	c.RootCAs = pool
	if r := deliver(t, c, msgTo("bob@b.test"))[0]; !r.Delivered {
		t.Fatalf("verified: got %+v", r)
	}
	if msgs := f.messages(); len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("got %+v", msgs)
	}

}

// TestRequireTLS: with an enforced MTA-STS policy and a verified
// certificate, a REQUIRETLS message goes to a server that offers
// REQUIRETLS (RFC 8689 §4.2.1), and to no other.
func TestRequireTLS(t *testing.T) {
	for _, offered := range []bool{false, true} {
		t.Run("offered="+strconv.FormatBool(offered), func(t *testing.T) {
			f := startFake(t, fakeOpts{setup: func(s *smtp.Server) { s.EnableREQUIRETLS = offered }})
			d := dnstest.Start(t)
			d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
			d.SetA("mx.b.test", "127.0.0.1")
			d.SetTXT("_mta-sts.b.test", "v=STSv1; id=1")
			c, _ := newClient(t, d.Addr(), f.port(t))
			c.FetchPolicy = func(ctx context.Context, dom dns.Domain) (*mtasts.Policy, error) {
				return mtasts.ParsePolicy("version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n")
			}
			pool := x509.NewCertPool()
			cert, _ := x509.ParseCertificate(selfSigned(t).Certificate[0])
			pool.AddCert(cert)
			c.RootCAs = pool
			m := msgTo("bob@b.test")
			m.RequireTLS = true
			r := deliver(t, c, m)[0]
			if r.Delivered != offered || (!offered && r.Enhanced != "5.7.30") {
				t.Fatalf("got %+v", r)
			}
			if n := len(f.messages()); n != map[bool]int{false: 0, true: 1}[offered] {
				t.Fatalf("%d messages", n)
			}
		})
	}
}

// TestContextBoundsSession: a server that never greets does not hold
// Deliver past its context.
func TestContextBoundsSession(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	defer wg.Wait()
	defer ln.Close()
	d := dnstest.Start(t)
	d.SetMX("b.test", dnstest.MX{Pref: 10, Host: "mx.b.test"})
	d.SetA("mx.b.test", "127.0.0.1")
	c, _ := newClient(t, d.Addr(), ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := c.Deliver(ctx, msgTo("bob@b.test"))[0]
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Deliver took %v after its context ended", time.Since(start))
	}
	if r.Delivered || r.Permanent || r.Code/100 != 4 {
		t.Fatalf("got %+v, want temporary", r)
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		err       error
		code      int
		enhanced  string
		permanent bool
	}{
		{smtpclient.Error{Code: 550, Secode: "1.1", Command: "rcptto", Line: "550 5.1.1 no"}, 550, "5.1.1", true},
		{smtpclient.Error{Code: 552, Secode: "2.2", Command: "rcptto", Line: "552 full"}, 552, "5.2.2", false},
		{smtpclient.Error{Code: 552, Secode: "3.4", Command: "data", Line: "552 too big"}, 552, "5.3.4", true},
		{smtpclient.Error{Code: 421, Command: "mailfrom", Line: "421 bye"}, 421, "4.0.0", false},
		{smtpclient.Error{Permanent: true, Err: smtpclient.ErrSize}, 552, "5.3.4", true},
		{smtpclient.Error{Err: smtpclient.ErrSMTPUTF8Unsupported}, 553, "5.6.7", true},
		{io.ErrUnexpectedEOF, 451, "4.4.2", false},
	}
	for _, tc := range tests {
		r := classify(ctx, tc.err)
		if r.Code != tc.code || r.Enhanced != tc.enhanced || r.Permanent != tc.permanent || r.Text == "" {
			t.Errorf("%v: got %+v", tc.err, r)
		}
	}
}

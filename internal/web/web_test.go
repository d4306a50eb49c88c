package web_test

import (
	"context"
	"encoding/xml"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mjl-/mox/mtasts"

	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/testenv"
)

// startWeb starts a server with its http and https listeners on loopback.
func startWeb(t *testing.T) (*testenv.Env, *http.Client) {
	t.Helper()
	env := testenv.StartWith(t, testenv.Options{Configure: func(c *config.Config) {
		c.Listen.HTTP = "127.0.0.1:0"
		c.Listen.HTTPS = "127.0.0.1:0"
	}})
	tr := &http.Transport{TLSClientConfig: env.ClientTLS()} // SNI: the host name, whatever the Host header
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(tr.CloseIdleConnections)
	return env, client
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, method, url, host, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func TestMTASTSPolicy(t *testing.T) {
	env, c := startWeb(t)
	base := "https://" + env.Addr("https")
	r := do(t, c, "GET", base+"/.well-known/mta-sts.txt", "mta-sts."+testenv.Domain, "")
	if r.code != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("policy: %d %v %q", r.code, r.header, r.body)
	}
	p, err := mtasts.ParsePolicy(r.body)
	if err != nil {
		t.Fatalf("policy %q: %v", r.body, err)
	}
	if p.Mode != mtasts.ModeTesting || len(p.MX) != 1 || p.MX[0].Domain.ASCII != testenv.Hostname || p.MaxAgeSeconds != 604800 {
		t.Errorf("policy %+v", p)
	}
	// Not a local domain, not the mta-sts name, a mutation: refused.
	for _, tc := range []struct{ method, host string }{
		{"GET", "mta-sts.other.example"},
		{"GET", testenv.Domain},
		{"POST", "mta-sts." + testenv.Domain},
	} {
		if r := do(t, c, tc.method, base+"/.well-known/mta-sts.txt", tc.host, ""); r.code == 200 {
			t.Errorf("%s Host %s: 200", tc.method, tc.host)
		}
	}
	// A domain added while running is served without a restart.
	if err := env.Users.AddDomain(context.Background(), "new.example"); err != nil {
		t.Fatal(err)
	}
	if r := do(t, c, "GET", base+"/.well-known/mta-sts.txt", "mta-sts.new.example", ""); r.code != 200 {
		t.Errorf("new domain: %d", r.code)
	}
}

// thunderbirdConfig mirrors Thunderbird's config-v1.1.xml with every
// element its format requires; the test checks each one is present and
// has a value the format allows.
type thunderbirdConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider []struct {
		ID               string   `xml:"id,attr"`
		Domain           []string `xml:"domain"`
		DisplayName      string   `xml:"displayName"`
		DisplayShortName string   `xml:"displayShortName"`
		Incoming         []tbServer
		Outgoing         []tbServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type tbServer struct {
	XMLName        xml.Name
	Type           string   `xml:"type,attr"`
	Hostname       []string `xml:"hostname"`
	Port           []string `xml:"port"`
	SocketType     []string `xml:"socketType"`
	Username       []string `xml:"username"`
	Authentication []string `xml:"authentication"`
}

func checkClientConfig(t *testing.T, body string, services map[string]int) {
	t.Helper()
	// Strict decoding: any element out of place is a syntax error.
	var cfg thunderbirdConfig
	dec := xml.NewDecoder(strings.NewReader(body))
	dec.Strict = true
	// incomingServer is decoded by hand below, to keep the order.
	type raw struct {
		XMLName  xml.Name `xml:"clientConfig"`
		Version  string   `xml:"version,attr"`
		Provider []struct {
			ID               string     `xml:"id,attr"`
			Domain           []string   `xml:"domain"`
			DisplayName      string     `xml:"displayName"`
			DisplayShortName string     `xml:"displayShortName"`
			Incoming         []tbServer `xml:"incomingServer"`
			Outgoing         []tbServer `xml:"outgoingServer"`
		} `xml:"emailProvider"`
	}
	var r raw
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("autoconfig XML: %v\n%s", err, body)
	}
	_ = cfg
	if r.Version != "1.1" || len(r.Provider) != 1 {
		t.Fatalf("clientConfig version %q with %d emailProvider", r.Version, len(r.Provider))
	}
	p := r.Provider[0]
	if p.ID != testenv.Domain || !slices.Contains(p.Domain, testenv.Domain) || p.DisplayName == "" || p.DisplayShortName == "" {
		t.Errorf("emailProvider id %q domains %v names %q %q", p.ID, p.Domain, p.DisplayName, p.DisplayShortName)
	}
	got := map[string]int{}
	check := func(kind string, s tbServer, types []string) {
		one := func(name string, v []string) string {
			if len(v) != 1 || strings.TrimSpace(v[0]) == "" {
				t.Errorf("%s %s: %s appears %d times: %q", kind, s.Type, name, len(v), v)
				return ""
			}
			return v[0]
		}
		if !slices.Contains(types, s.Type) {
			t.Errorf("%s type %q", kind, s.Type)
		}
		if h := one("hostname", s.Hostname); h != testenv.Hostname {
			t.Errorf("%s hostname %q", kind, h)
		}
		port, err := strconv.Atoi(one("port", s.Port))
		if err != nil || port < 1 || port > 65535 {
			t.Errorf("%s port %q", kind, s.Port)
		}
		sock := one("socketType", s.SocketType)
		if !slices.Contains([]string{"SSL", "STARTTLS"}, sock) { // "plain" is valid but never offered
			t.Errorf("%s socketType %q", kind, sock)
		}
		if u := one("username", s.Username); u != "%EMAILADDRESS%" {
			t.Errorf("%s username %q", kind, u)
		}
		if a := one("authentication", s.Authentication); a != "password-cleartext" {
			t.Errorf("%s authentication %q", kind, a)
		}
		got[s.Type+"/"+sock] = port
	}
	if len(p.Incoming) == 0 || len(p.Outgoing) == 0 {
		t.Fatalf("%d incomingServer, %d outgoingServer", len(p.Incoming), len(p.Outgoing))
	}
	for _, s := range p.Incoming {
		check("incomingServer", s, []string{"imap", "pop3"})
	}
	for _, s := range p.Outgoing {
		check("outgoingServer", s, []string{"smtp"})
	}
	if p.Incoming[0].Type != "imap" || p.Incoming[0].SocketType[0] != "SSL" {
		t.Errorf("first incoming server %s/%s, want imap/SSL", p.Incoming[0].Type, p.Incoming[0].SocketType)
	}
	for k, v := range services {
		if got[k] != v {
			t.Errorf("%s: port %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

func TestAutoconfig(t *testing.T) {
	env, c := startWeb(t)
	// testenv's listeners are on ephemeral ports: those are what clients
	// are told (dnsrecords.PublicPort).
	port := func(key string) int {
		_, p, _ := strings.Cut(env.Addr(key), "127.0.0.1:")
		n, _ := strconv.Atoi(p)
		return n
	}
	want := map[string]int{
		"imap/SSL": port("imaps"), "imap/STARTTLS": port("imap"),
		"pop3/SSL": port("pop3s"), "pop3/STARTTLS": port("pop3"),
		"smtp/SSL": port("submissions"), "smtp/STARTTLS": port("submission"),
	}
	for _, tc := range []struct{ url, host string }{
		{"https://" + env.Addr("https") + "/mail/config-v1.1.xml?emailaddress=someone%40" + testenv.Domain, "autoconfig." + testenv.Domain},
		{"https://" + env.Addr("https") + "/mail/config-v1.1.xml", "autoconfig." + testenv.Domain},
		{"https://" + env.Addr("https") + "/.well-known/autoconfig/mail/config-v1.1.xml", testenv.Domain},
		{"http://" + env.Addr("http") + "/mail/config-v1.1.xml", "autoconfig." + testenv.Domain},
	} {
		r := do(t, c, "GET", tc.url, tc.host, "")
		if r.code != 200 || !strings.Contains(r.header.Get("Content-Type"), "xml") {
			t.Fatalf("%s: %d %q", tc.url, r.code, r.body)
		}
		checkClientConfig(t, r.body, want)
	}
	if r := do(t, c, "GET", "https://"+env.Addr("https")+"/mail/config-v1.1.xml", "autoconfig.other.example", ""); r.code != 404 {
		t.Errorf("other domain: %d", r.code)
	}
}

func TestAutodiscover(t *testing.T) {
	env, c := startWeb(t)
	req := `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>someone@` + testenv.Domain + `</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
	r := do(t, c, "POST", "https://"+env.Addr("https")+"/autodiscover/autodiscover.xml", "autodiscover."+testenv.Domain, req)
	if r.code != 200 {
		t.Fatalf("autodiscover: %d %q", r.code, r.body)
	}
	var resp struct {
		XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
		Response struct {
			XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
			Account struct {
				AccountType string `xml:"AccountType"`
				Action      string `xml:"Action"`
				Protocol    []struct {
					Type, Server, LoginName, SSL, Encryption, SPA, AuthRequired string
					Port                                                        int
				} `xml:"Protocol"`
			} `xml:"Account"`
		} `xml:"Response"`
	}
	if err := xml.Unmarshal([]byte(r.body), &resp); err != nil {
		t.Fatalf("response: %v\n%s", err, r.body)
	}
	a := resp.Response.Account
	if a.AccountType != "email" || a.Action != "settings" || len(a.Protocol) != 3 {
		t.Fatalf("account %+v", a)
	}
	for i, typ := range []string{"SMTP", "IMAP", "POP3"} {
		p := a.Protocol[i]
		if p.Type != typ || p.Server != testenv.Hostname || p.Port == 0 || p.LoginName != "someone@"+testenv.Domain || p.SSL != "on" || p.Encryption != "SSL" || p.SPA != "off" || p.AuthRequired != "on" {
			t.Errorf("protocol %d: %+v", i, p)
		}
	}
	for _, bad := range []struct{ method, body string }{
		{"GET", ""},
		{"POST", "<Autodiscover"},
		{"POST", strings.ReplaceAll(req, testenv.Domain, "other.example")},
	} {
		if r := do(t, c, bad.method, "https://"+env.Addr("https")+"/autodiscover/autodiscover.xml", testenv.Domain, bad.body); r.code == 200 {
			t.Errorf("%s %q: 200", bad.method, bad.body)
		}
	}
}

func TestHTTPRedirects(t *testing.T) {
	env, c := startWeb(t)
	r := do(t, c, "GET", "http://"+env.Addr("http")+"/some/path?q=1", testenv.Hostname, "")
	if r.code != http.StatusMovedPermanently || r.header.Get("Location") != "https://"+testenv.Hostname+":"+strings.Split(env.Addr("https"), ":")[1]+"/some/path?q=1" {
		t.Errorf("redirect: %d %q", r.code, r.header.Get("Location"))
	}
	// The MTA-STS policy is never served over plain HTTP (RFC 8461 §3.3).
	if r := do(t, c, "GET", "http://"+env.Addr("http")+"/.well-known/mta-sts.txt", "mta-sts."+testenv.Domain, ""); r.code == 200 {
		t.Errorf("policy over http: 200")
	}
	if r := do(t, c, "GET", "http://"+env.Addr("http")+"/", "bad host/", ""); r.code != 400 {
		t.Errorf("bad Host: %d", r.code)
	}
	// HTTP/2 is offered over https.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: env.ClientTLS(), ForceAttemptHTTP2: true}}
	resp, err := h2.Get("https://" + env.Addr("https") + "/mail/config-v1.1.xml?emailaddress=a%40" + testenv.Domain)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 {
		t.Errorf("h2: %s %d", resp.Proto, resp.StatusCode)
	}
	// Unknown paths over https: 404, with the security headers.
	r = do(t, c, "GET", "https://"+env.Addr("https")+"/no/such/path", testenv.Hostname, "")
	if r.code != 404 || r.header.Get("Strict-Transport-Security") == "" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("https unknown path: %d %v", r.code, r.header)
	}
}

package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// opts returns Options that do not depend on the machine.
func opts(euid int) Options {
	return Options{
		Euid:     func() int { return euid },
		Hostname: func() (string, error) { return "Box.Example.ORG", nil },
	}
}

func TestDefault(t *testing.T) {
	c, err := opts(1000).Load("")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Hostname: "box.example.org",
		Data:     "jodmai-data",
		LogLevel: slog.LevelInfo,
		Listen: Listen{
			SMTP: ":10025", Submission: ":10587", Submissions: ":10465",
			POP3: ":10110", POP3S: ":10995", IMAP: ":10143", IMAPS: ":10993",
			HTTP: ":10080", HTTPS: ":10443", Metrics: "127.0.0.1:19025", ProxyFrom: []string{},
		},
		TLS: TLS{ACMEDirectory: LetsEncrypt, ACMEHosts: []string{}},
		Limits: Limits{
			MaxMessageSize:      50 << 20,
			MaxRecipients:       1000,
			MaxConnections:      2000,
			MaxConnectionsPerIP: 50,
			ExemptNetworks:      []string{"127.0.0.1/32", "::1/128"},
			MaxLineLength:       8192,
			SMTPTimeout:         5 * time.Minute,
			POP3Timeout:         10 * time.Minute,
			IMAPTimeout:         30 * time.Minute,
			IMAPPreauthTimeout:  time.Minute,
			WriteTimeout:        time.Minute,
		},
		Auth: Auth{MaxFailuresPerIP: 10, Lockout: 15 * time.Minute},
		Queue: Queue{MaxAge: 120 * time.Hour, DelayWarning: 4 * time.Hour, RetryMin: time.Minute,
			RetryMax: 4 * time.Hour, MaxConcurrency: 64, MaxPerDomain: 4},
		Remote:  Remote{Port: 25, ConnectTimeout: 30 * time.Second},
		MsgAuth: MsgAuth{Enabled: true, TrustedNetworks: []string{"127.0.0.1/32", "::1/128"}},
		Store:   Store{MaxOpenAccounts: 1000, AccountIdle: 2 * time.Minute},
		Events:  Events{MaxSize: 32 << 20, Keep: 4},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("Load(\"\") =\n%+v\nwant\n%+v", *c, want)
	}
	// An empty file is the same as no file.
	c2, err := opts(1000).Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c2, want) {
		t.Errorf("Parse(nil) = %+v, want %+v", *c2, want)
	}
}

func TestDefaultHostnameUnknown(t *testing.T) {
	o := Options{
		Euid:     func() int { return 0 },
		Hostname: func() (string, error) { return "", errors.New("no") },
	}
	if _, err := o.Load(""); err == nil || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("Load(\"\") with unknown host name: err = %v, want a hostname error", err)
	}
	c, err := o.Parse([]byte(`hostname = "mx.example.com"`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mx.example.com" {
		t.Errorf("Hostname = %q", c.Hostname)
	}
}

func TestPortRule(t *testing.T) {
	tests := []struct {
		name string
		euid int
		file string
		want Listen
	}{
		{"root defaults", 0, "", Listen{
			SMTP: ":25", Submission: ":587", Submissions: ":465",
			POP3: ":110", POP3S: ":995", IMAP: ":143", IMAPS: ":993",
			HTTP: ":80", HTTPS: ":443", Metrics: "127.0.0.1:9025",
		}},
		{"non-root defaults", 1000, "", Listen{
			SMTP: ":10025", Submission: ":10587", Submissions: ":10465",
			POP3: ":10110", POP3S: ":10995", IMAP: ":10143", IMAPS: ":10993",
			HTTP: ":10080", HTTPS: ":10443", Metrics: "127.0.0.1:19025",
		}},
		{"non-root, explicit keys win", 1000, "[listen]\nsmtp = \":25\"\nimap = \"127.0.0.1:1143\"\nhttps = \"\"\n", Listen{
			SMTP: ":25", Submission: ":10587", Submissions: ":10465",
			POP3: ":10110", POP3S: ":10995", IMAP: "127.0.0.1:1143", IMAPS: ":10993",
			HTTP: ":10080", Metrics: "127.0.0.1:19025",
		}},
		{"empty string disables, as non-root", 1000, "[listen]\npop3 = \"\"\npop3s = \"\"\nmetrics = \"\"\n", Listen{
			SMTP: ":10025", Submission: ":10587", Submissions: ":10465",
			IMAP: ":10143", IMAPS: ":10993", HTTP: ":10080", HTTPS: ":10443",
		}},
		{"empty string disables, as root", 0, "[listen]\nsmtp = \"\"\nsubmissions = \"[::1]:465\"\n", Listen{
			Submission: ":587", Submissions: "[::1]:465",
			POP3: ":110", POP3S: ":995", IMAP: ":143", IMAPS: ":993",
			HTTP: ":80", HTTPS: ":443", Metrics: "127.0.0.1:9025",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := opts(tt.euid).Parse([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.ProxyFrom == nil {
				tt.want.ProxyFrom = []string{}
			}
			if !reflect.DeepEqual(c.Listen, tt.want) {
				t.Errorf("Listen = %+v, want %+v", c.Listen, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	c, err := opts(1000).Parse([]byte(`
hostname = "Mail.Example.org."
data = "/var/lib/jodmai"
log_level = "debug"

[listen]
smtp = ":25"

[tls]
cert = "/etc/jodmai/cert.pem"
key = "/etc/jodmai/key.pem"

[limits]
max_message_size = "10MB"
max_recipients = 100
max_connections = 10
max_connections_per_ip = 10
smtp_timeout = "10m"
imap_timeout = "1h"

[auth]
lockout = "1h"
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mail.example.org" {
		t.Errorf("Hostname = %q, want it lowercased without the trailing dot", c.Hostname)
	}
	if c.Data != "/var/lib/jodmai" || c.LogLevel != slog.LevelDebug {
		t.Errorf("Data, LogLevel = %q, %v", c.Data, c.LogLevel)
	}
	if !reflect.DeepEqual(c.TLS, TLS{Cert: "/etc/jodmai/cert.pem", Key: "/etc/jodmai/key.pem", ACMEDirectory: LetsEncrypt, ACMEHosts: []string{}}) {
		t.Errorf("TLS = %+v", c.TLS)
	}
	l := c.Limits
	if l.MaxMessageSize != 10e6 || l.MaxRecipients != 100 || l.MaxConnections != 10 ||
		l.MaxConnectionsPerIP != 10 || l.SMTPTimeout != 10*time.Minute || l.IMAPTimeout != time.Hour ||
		l.POP3Timeout != 10*time.Minute {
		t.Errorf("Limits = %+v", l)
	}
	if c.Auth != (Auth{MaxFailuresPerIP: 10, Lockout: time.Hour}) {
		t.Errorf("Auth = %+v", c.Auth)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "hostname = \"a.example\"\nhostnme = \"b\"\n",
			[]string{`line 2: unknown key "hostnme"`}},
		{"unknown key in table", "# comment\n\n[listen]\nsmtp = \":25\"\nsmtpp = \":26\"\n",
			[]string{`line 5: unknown key "listen.smtpp"`}},
		{"unknown table reported once", "[limits]\nmax_recipients = 5\n\n[foo]\nbar = 1\nbaz = 2\n",
			[]string{`line 4: unknown key "foo"`}},
		{"unknown dotted key", "\nfoo.bar = 1\n", []string{`line 2: unknown key "foo.bar"`}},
		{"unknown subtable", "[listen.extra]\nx = 1\n", []string{`line 1: unknown key "listen.extra"`}},
		{"key differing in case", "Hostname = \"a.example\"\n", []string{`line 1: unknown key "Hostname"`}},
		{"two unknown keys", "a = 1\nb = 2\n",
			[]string{`line 1: unknown key "a"`, `line 2: unknown key "b"`}},
		{"toml syntax", "hostname = \n", []string{"line 1"}},
		{"wrong type", "[limits]\nmax_recipients = \"many\"\n", []string{"line 2", "limits.max_recipients"}},
		{"bad size", "[limits]\nmax_message_size = \"50XB\"\n", []string{"line 2", `unknown unit "XB"`}},
		{"integer duration", "[limits]\n\nsmtp_timeout = 300\n", []string{"line 3", "limits.smtp_timeout", "unit"}},
		{"bad duration", "[auth]\nlockout = \"forever\"\n", []string{"line 2", "forever"}},
		{"bad log level", "log_level = \"loud\"\n", []string{"log_level", "loud"}},
		{"hostname with space", "hostname = \"mail example\"\n", []string{"hostname", "not allowed"}},
		{"hostname is an IP", "hostname = \"192.0.2.1\"\n", []string{"hostname", "IP address"}},
		{"hostname empty label", "hostname = \"a..b\"\n", []string{"hostname", "empty label"}},
		{"hostname hyphen", "hostname = \"-a.b\"\n", []string{"hostname", "hyphen"}},
		{"empty data", "data = \"\"\n", []string{"data"}},
		{"cert without key", "[tls]\ncert = \"c.pem\"\n", []string{"tls", "both"}},
		{"key without cert", "[tls]\nkey = \"k.pem\"\n", []string{"tls", "both"}},
		{"listen missing port", "[listen]\nsmtp = \"localhost\"\n", []string{"listen.smtp", "missing port"}},
		{"listen bad port", "[listen]\nimap = \":imap\"\n", []string{"listen.imap", "port"}},
		{"listen port too big", "[listen]\nimap = \":70000\"\n", []string{"listen.imap", "port"}},
		{"listen duplicate", "[listen]\nimap = \":1143\"\nimaps = \":1143\"\n", []string{"listen.imaps", "listen.imap has the same address"}},
		{"zero size", "[limits]\nmax_message_size = \"0\"\n", []string{"limits.max_message_size", "positive"}},
		{"negative recipients", "[limits]\nmax_recipients = -1\n", []string{"limits.max_recipients", "positive"}},
		{"zero connections", "[limits]\nmax_connections = 0\n", []string{"limits.max_connections", "positive"}},
		{"per-ip above global", "[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n",
			[]string{"limits.max_connections_per_ip = 11: exceeds limits.max_connections = 10"}},
		{"short lines", "[limits]\nmax_line_length = 512\n", []string{"limits.max_line_length"}},
		{"negative timeout", "[limits]\npop3_timeout = \"-1m\"\n", []string{"limits.pop3_timeout", "positive"}},
		{"zero failures", "[auth]\nmax_failures_per_ip = 0\n", []string{"auth.max_failures_per_ip"}},
		{"resolver without port", "[dns]\nresolver = \"127.0.0.1\"\n", []string{"dns.resolver", "host:port"}},
		{"resolver port zero", "[dns]\nresolver = \"127.0.0.1:0\"\n", []string{"dns.resolver", "port"}},
		{"retry min above max", "[queue]\nretry_min = \"5h\"\nretry_max = \"1h\"\n", []string{"queue.retry_min", "exceeds"}},
		{"zero max age", "[queue]\nmax_age = \"0s\"\n", []string{"queue", "positive"}},
		{"negative delay warning", "[queue]\ndelay_warning = \"-1h\"\n", []string{"queue.delay_warning"}},
		{"zero per domain", "[queue]\nmax_per_domain = 0\n", []string{"max_per_domain"}},
		{"remote port", "[remote]\nport = 70000\n", []string{"remote.port"}},
		{"remote helo", "[remote]\nhelo = \"a b\"\n", []string{"remote.helo"}},
		{"source ip", "[remote]\nsource_ip = \"mail.example\"\n", []string{"remote.source_ip", "not an IP"}},
		{"relay host without port", "[remote]\nrelay_host = \"smtp.example\"\n", []string{"remote.relay_host", "host:port"}},
		{"trusted network", "[msgauth]\ntrusted_networks = [\"10.0.0.0/33\"]\n", []string{"msgauth.trusted_networks", "10.0.0.0/33"}},
		{"exempt network", "[limits]\nexempt_networks = [\"::1\"]\n", []string{"limits.exempt_networks", "::1"}},
		{"proxy_from", "[listen]\nproxy_from = [\"haproxy\"]\n", []string{"listen.proxy_from", "haproxy"}},
		{"metrics not loopback", "[listen]\nmetrics = \":9025\"\n", []string{"listen.metrics", "loopback", "metrics_allow_remote"}},
		{"metrics clashes with http", "[listen]\nmetrics = \"127.0.0.1:8080\"\nhttp = \"127.0.0.1:8080\"\n", []string{"listen.http", "same address"}},
		{"acme without http listeners", "[listen]\nhttp = \"\"\nhttps = \"\"\n[tls]\nacme = true\n", []string{"tls.acme", "listen.http"}},
		{"acme directory", "[tls]\nacme = true\nacme_directory = \"ftp://ca.example\"\n", []string{"tls.acme_directory"}},
		{"acme email", "[tls]\nacme_email = \"postmaster\"\n", []string{"tls.acme_email"}},
		{"acme host", "[tls]\nacme_hosts = [\"mail example\"]\n", []string{"tls.acme_hosts"}},
		{"several problems joined", "[limits]\nmax_recipients = 0\nmax_connections = -5\n",
			[]string{"limits.max_recipients", "limits.max_connections = -5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := opts(1000).Parse([]byte(tt.file))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMetricsAllowRemote(t *testing.T) {
	c, err := opts(0).Parse([]byte("[listen]\nmetrics = \"192.0.2.1:9025\"\nmetrics_allow_remote = true\n[tls]\nacme = true\nacme_hosts = [\"Mail.Example.org.\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.Metrics != "192.0.2.1:9025" || !c.TLS.ACME || !slices.Equal(c.TLS.ACMEHosts, []string{"mail.example.org"}) {
		t.Errorf("got %+v %+v", c.Listen, c.TLS)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "jodmai.toml")
	if err := os.WriteFile(path, []byte("hostname = \"mx.example.net\"\n[limits]\nmax_conections = 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := opts(0).Load(path)
	if err == nil {
		t.Fatal("Load succeeded with an unknown key")
	}
	for _, w := range []string{path, "line 3", `unknown key "limits.max_conections"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}

	if err := os.WriteFile(path, []byte("hostname = \"mx.example.net\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := opts(0).Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mx.example.net" || c.Listen.SMTP != ":25" {
		t.Errorf("Load = %+v", c)
	}

	if _, err := opts(0).Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	c := opts(1000).Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	c.Listen.SMTP = "127.0.0.1:0"
	c.Listen.IMAP = "127.0.0.1:0" // port 0 twice is not a clash
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with two port-0 listeners = %v", err)
	}
	c.Hostname = ""
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted an empty hostname")
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		str     string
		wantErr string
	}{
		{"1048576", 1 << 20, "1MiB", ""},
		{"50MiB", 50 << 20, "50MiB", ""},
		{"10MB", 10e6, "10MB", ""},
		{"1GiB", 1 << 30, "1GiB", ""},
		{"512KiB", 512 << 10, "512KiB", ""},
		{"2TiB", 2 << 40, "2TiB", ""},
		{"3KB", 3000, "3KB", ""},
		{"7GB", 7e9, "7GB", ""},
		{"1TB", 1e12, "1TB", ""},
		{"100B", 100, "100", ""},
		{"12345", 12345, "12345", ""},
		{"0", 0, "0", ""},
		{" 50 mib ", 50 << 20, "50MiB", ""},
		{"", 0, "", "whole number"},
		{"MiB", 0, "", "whole number"},
		{"-1", 0, "", "whole number"},
		{"1.5GiB", 0, "", "unknown unit"},
		{"10XB", 0, "", `unknown unit "XB"`},
		{"10 M", 0, "", "unknown unit"},
		{"99999999999999999999", 0, "", "too large"},
		{"9000000TiB", 0, "", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %v, %v; want %d", tt.in, int64(got), err, int64(tt.want))
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Errorf("ParseSize(String()) = %v, %v; want %v", back, err, got)
			}
		})
	}
}

func TestSizeFromTOMLInteger(t *testing.T) {
	c, err := opts(1000).Parse([]byte("[limits]\nmax_message_size = 1048576\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxMessageSize != 1<<20 {
		t.Errorf("MaxMessageSize = %v", c.Limits.MaxMessageSize)
	}
}

const sampleConfig = `hostname = "mail.example.org"
data = "/var/lib/jodmai"
log_level = "info"
[listen]
smtp = ":25"
submission = ":587"
submissions = ":465"
pop3 = ""
pop3s = ":995"
imap = ":143"
imaps = ":993"
[tls]
cert = ""
key = ""
[limits]
max_message_size = "50MiB"
max_recipients = 1000
max_connections = 2000
max_connections_per_ip = 50
smtp_timeout = "5m"
[auth]
max_failures_per_ip = 10
lockout = "15m"
`

// FuzzLoad feeds arbitrary files to Parse, which Load uses after reading the
// file. It must never panic, and what it accepts must validate.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(sampleConfig))
	f.Add([]byte("[listen]\nsmtpp = 1\n"))
	f.Add([]byte("foo.bar.baz = 1\n[[x]]\ny = 2\n"))
	f.Add([]byte("[limits]\nmax_message_size = \"9000000TiB\"\nsmtp_timeout = 5\n"))
	f.Add([]byte("a = { b = [ { c = 1 } ] }\n"))
	f.Add([]byte("\"\" = 1\n[\"listen\".\"smtp\"]\n"))
	o := opts(1000)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := o.Parse(data)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
	})
}

// Package config owns jodmai's configuration: the TOML file format, its
// defaults and its validation.
//
// Loading is strict: a key the format does not define (including a key that
// differs from a known one only in case) is an error that names the key and
// its line, so a typo never silently falls back to a default. A Config
// returned by Load or Parse has been validated; a Config built in Go should be
// checked with Validate.
//
// The file, with every default spelled out (non-root defaults for [listen]
// are described on Listen):
//
//	hostname = "mail.example.org"  # default: os.Hostname(), lowercased
//	data = "jodmai-data"           # relative paths are relative to the process working directory
//	log_level = "info"             # debug, info, warn or error
//
//	[listen]                       # "" disables a listener
//	smtp = ":25"
//	submission = ":587"
//	submissions = ":465"
//	pop3 = ":110"
//	pop3s = ":995"
//	imap = ":143"
//	imaps = ":993"
//	http = ":80"                   # ACME http-01, autoconfig, redirects to https
//	https = ":443"                 # ACME tls-alpn-01, MTA-STS policy, autoconfig, autodiscover
//	metrics = "127.0.0.1:9025"     # Prometheus /metrics; loopback only unless metrics_allow_remote
//	metrics_allow_remote = false
//	proxy_from = []                # CIDRs of load balancers that must send a PROXY protocol header
//
//	[tls]                          # cert and key both empty: ACME if acme, else self-signed in <data>/tls
//	cert = ""
//	key = ""
//	acme = false                   # certificates from an ACME CA (RFC 8555), renewed automatically
//	acme_directory = "https://acme-v02.api.letsencrypt.org/directory"
//	acme_email = ""                # contact address given to the CA
//	acme_hosts = []                # []: hostname, and mta-sts., autoconfig., autodiscover. of each local domain
//
//	[limits]
//	max_message_size = "50MiB"
//	max_recipients = 1000
//	max_connections = 2000
//	max_connections_per_ip = 50
//	exempt_networks = ["127.0.0.1/32", "::1/128"]  # no per-IP cap (a webmail, a proxy)
//	max_line_length = 8192
//	smtp_timeout = "5m"
//	pop3_timeout = "10m"
//	imap_timeout = "30m"
//	imap_preauth_timeout = "1m"
//	write_timeout = "1m"
//
//	[auth]
//	max_failures_per_ip = 10
//	lockout = "15m"
//
//	[dns]
//	resolver = ""                  # "host:port" of a DNS server; "": the system's (/etc/resolv.conf)
//
//	[queue]                        # outbound delivery to other servers
//	max_age = "120h"               # give up (bounce) after this long
//	delay_warning = "4h"           # tell the sender once when a message is this late; "0s": never
//	retry_min = "1m"               # first retry after a temporary failure; doubles each time
//	retry_max = "4h"               # longest wait between two attempts
//	max_concurrency = 64           # deliveries in progress at once
//	max_per_domain = 4             # of which to one destination domain
//
//	[remote]
//	port = 25                      # the port outbound connections use; change it only in tests
//	connect_timeout = "30s"
//	helo = ""                      # name in EHLO; "": hostname
//	source_ip = ""                 # local address of outbound connections; "": the system's choice
//	relay_host = ""                # "host:port": send all outbound mail there (a smarthost) instead of to MX hosts
//
//	[msgauth]                      # SPF, DKIM and DMARC checks of mail arriving on the MX port
//	enabled = true
//	trusted_networks = ["127.0.0.1/32", "::1/128"]  # not checked: local tools and tests
//
//	[store]
//	max_open_accounts = 1000       # accounts kept open (descriptors, memory); those in use may exceed it
//	account_idle = "2m"            # an account nobody uses is closed after this long
//
//	[events]                       # the mail event log, <data>/log/events.jsonl
//	max_size = "32MiB"             # rotated past this size
//	keep = 4                       # files kept, the current one included
//
// Durations are Go duration strings ("90s", "5m", "1h30m"); a bare integer is
// refused because it would mean nanoseconds.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration. Field comments give the TOML key.
type Config struct {
	// Hostname is the server's own DNS name, used in SMTP greetings, EHLO,
	// Received headers and the self-signed certificate. TOML: hostname.
	// Default: the machine's host name (os.Hostname), lowercased. Load
	// lowercases it and drops one trailing dot.
	Hostname string `toml:"hostname"`

	// Data is the data directory. A relative path is relative to the
	// working directory of the process, not to the config file.
	// TOML: data. Default: "jodmai-data".
	Data string `toml:"data"`

	// LogLevel is the minimum level logged. TOML: log_level, one of debug,
	// info, warn, error (any case). Default: info.
	LogLevel slog.Level `toml:"log_level"`

	// Listen holds the listening addresses. TOML: [listen].
	Listen Listen `toml:"listen"`

	// TLS names the certificate files. TOML: [tls].
	TLS TLS `toml:"tls"`

	// Limits holds sizes, counts and timeouts. TOML: [limits].
	Limits Limits `toml:"limits"`

	// Auth holds the login-failure policy. TOML: [auth].
	Auth Auth `toml:"auth"`

	// DNS says where DNS questions go. TOML: [dns].
	DNS DNS `toml:"dns"`

	// Queue holds the outbound queue's retry and concurrency policy.
	// TOML: [queue].
	Queue Queue `toml:"queue"`

	// Remote holds how outbound connections are made. TOML: [remote].
	Remote Remote `toml:"remote"`

	// MsgAuth holds the inbound SPF/DKIM/DMARC policy. TOML: [msgauth].
	MsgAuth MsgAuth `toml:"msgauth"`

	// Store holds how many accounts the mail store keeps open.
	// TOML: [store].
	Store Store `toml:"store"`

	// Events bounds the mail event log. TOML: [events].
	Events Events `toml:"events"`
}

// Events bounds the mail event log (<data>/log/events.jsonl, package
// eventlog).
type Events struct {
	// MaxSize is the size past which the file is rotated.
	// TOML: max_size. Default "32MiB".
	MaxSize Size `toml:"max_size"`
	// Keep is how many files are kept, the current one included.
	// TOML: keep. Default 4.
	Keep int `toml:"keep"`
}

// Store bounds the mail store's open accounts (each costs a few file
// descriptors and some memory while open).
type Store struct {
	// MaxOpenAccounts is how many accounts stay open at most, in use or
	// idle; accounts in use (a session, a delivery) are never closed, so
	// more may be open while that many are busy. TOML: max_open_accounts.
	// Default 1000.
	MaxOpenAccounts int `toml:"max_open_accounts"`

	// AccountIdle is how long an account nobody uses stays open.
	// TOML: account_idle. Default "2m".
	AccountIdle time.Duration `toml:"account_idle"`
}

// DNS configures name resolution for outbound delivery and message
// authentication.
type DNS struct {
	// Resolver is "host:port" of the DNS server to ask; empty means the
	// system's resolvers (/etc/resolv.conf). DANE needs a resolver that
	// validates DNSSEC and sets the AD bit, and the resolver library
	// trusts that bit only when /etc/resolv.conf lists loopback servers
	// only or says "options trust-ad" (a local unbound, for example).
	// TOML: resolver.
	Resolver string `toml:"resolver"`
}

// Queue is the outbound queue's policy.
type Queue struct {
	// MaxAge is how long a message is retried before it bounces.
	// TOML: max_age. Default "120h" (5 days, RFC 5321 §4.5.4.1).
	MaxAge time.Duration `toml:"max_age"`
	// DelayWarning is the age at which the sender is told, once, that a
	// message is still undelivered (when the sender asked for delay
	// notices or gave no NOTIFY). Zero: never. TOML: delay_warning.
	// Default "4h".
	DelayWarning time.Duration `toml:"delay_warning"`
	// RetryMin is the wait after the first temporary failure; each later
	// wait doubles, up to RetryMax. TOML: retry_min. Default "1m".
	RetryMin time.Duration `toml:"retry_min"`
	// RetryMax caps the wait between attempts. TOML: retry_max.
	// Default "4h".
	RetryMax time.Duration `toml:"retry_max"`
	// MaxConcurrency caps deliveries in progress. TOML: max_concurrency.
	// Default 64.
	MaxConcurrency int `toml:"max_concurrency"`
	// MaxPerDomain caps deliveries in progress to one destination domain.
	// TOML: max_per_domain. Default 4.
	MaxPerDomain int `toml:"max_per_domain"`
}

// Remote configures outbound SMTP connections.
type Remote struct {
	// Port is the TCP port of remote MX hosts. TOML: port. Default 25;
	// tests point it at another port.
	Port int `toml:"port"`
	// ConnectTimeout bounds each TCP connect. TOML: connect_timeout.
	// Default "30s".
	ConnectTimeout time.Duration `toml:"connect_timeout"`
	// HELO is the name sent in EHLO. TOML: helo. Empty: Hostname.
	HELO string `toml:"helo"`
	// SourceIP is the local address outbound connections come from (the
	// address SPF records name, on a host with several). TOML: source_ip.
	// Empty: the system chooses.
	SourceIP string `toml:"source_ip"`
	// RelayHost, "host:port", sends every outbound message to that server
	// (a smarthost, like Postfix's relayhost) instead of looking up the
	// recipient domain's MX hosts. TOML: relay_host. Empty: direct
	// delivery.
	RelayHost string `toml:"relay_host"`
}

// MsgAuth is the policy for SPF, DKIM and DMARC checks of inbound mail.
type MsgAuth struct {
	// Enabled turns the checks on for the MX listener. TOML: enabled.
	// Default true.
	Enabled bool `toml:"enabled"`
	// TrustedNetworks are client networks whose mail is not checked (an
	// Authentication-Results field still says so). TOML:
	// trusted_networks. Default 127.0.0.1/32 and ::1/128.
	TrustedNetworks []string `toml:"trusted_networks"`
}

// Listen holds one listening address per service, in net.Listen form
// ("host:port", ":port", "[::1]:port"). An empty string disables the service.
//
// The defaults are the standard ports when the process runs as root
// (effective uid 0) and the standard port + 10000 otherwise (":10025",
// ":10587", ...), so an unprivileged test or development run needs no
// configuration. A key set in the file, even to "", always wins.
type Listen struct {
	// SMTP is MX service, RFC 5321. TOML: smtp. Default ":25".
	SMTP string `toml:"smtp"`
	// Submission is message submission with STARTTLS, RFC 6409.
	// TOML: submission. Default ":587".
	Submission string `toml:"submission"`
	// Submissions is message submission over implicit TLS, RFC 8314.
	// TOML: submissions. Default ":465".
	Submissions string `toml:"submissions"`
	// POP3 is POP3 with STARTTLS (STLS), RFC 1939/2595. TOML: pop3.
	// Default ":110".
	POP3 string `toml:"pop3"`
	// POP3S is POP3 over implicit TLS, RFC 8314. TOML: pop3s. Default ":995".
	POP3S string `toml:"pop3s"`
	// IMAP is IMAP with STARTTLS, RFC 9051. TOML: imap. Default ":143".
	IMAP string `toml:"imap"`
	// IMAPS is IMAP over implicit TLS, RFC 8314. TOML: imaps. Default ":993".
	IMAPS string `toml:"imaps"`
	// HTTP serves ACME http-01 challenges (RFC 8555 §8.3), Thunderbird
	// autoconfig, and redirects everything else to HTTPS. TOML: http.
	// Default ":80".
	HTTP string `toml:"http"`
	// HTTPS serves ACME tls-alpn-01 challenges (RFC 8737), the MTA-STS
	// policy (RFC 8461 §3.2), Thunderbird autoconfig and Outlook
	// autodiscover. TOML: https. Default ":443".
	HTTPS string `toml:"https"`
	// Metrics serves Prometheus metrics at /metrics. It must be a loopback
	// address unless MetricsAllowRemote. TOML: metrics. Default
	// "127.0.0.1:9025" (as root; "127.0.0.1:19025" otherwise, the +10000
	// rule).
	Metrics string `toml:"metrics"`
	// MetricsAllowRemote allows a non-loopback Metrics address: the
	// metrics show traffic volumes and account activity, so exposing them
	// is a decision. TOML: metrics_allow_remote. Default false.
	MetricsAllowRemote bool `toml:"metrics_allow_remote"`
	// ProxyFrom lists the networks (CIDR) of load balancers in front of
	// jodmai. A connection from one of them, on any listener, must begin
	// with a PROXY protocol header (HAProxy's v1 or v2), and the client
	// address it carries is the one limits, SPF, logs and metrics see; a
	// connection from elsewhere is a client and a header from it is not
	// honored. TOML: proxy_from. Default [] (none).
	ProxyFrom []string `toml:"proxy_from"`
}

// Endpoint is one configured listener: its TOML key under [listen] and its
// address ("" when disabled).
type Endpoint struct {
	Key  string // "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http", "https" or "metrics"
	Addr string
}

// Endpoints returns every service in a fixed order, disabled ones included
// with an empty Addr.
func (l Listen) Endpoints() []Endpoint {
	return []Endpoint{
		{"smtp", l.SMTP},
		{"submission", l.Submission},
		{"submissions", l.Submissions},
		{"pop3", l.POP3},
		{"pop3s", l.POP3S},
		{"imap", l.IMAP},
		{"imaps", l.IMAPS},
		{"http", l.HTTP},
		{"https", l.HTTPS},
		{"metrics", l.Metrics},
	}
}

// TLS says where certificates come from: the PEM files Cert and Key when
// set; else, when ACME is on, an ACME CA (certificates kept in
// <data>/acme); else a self-signed certificate jodmai makes in <data>/tls
// on first start (package tlscert), which also stands in while ACME has no
// certificate yet. Relative paths are relative to the process working
// directory.
type TLS struct {
	// Cert is the certificate chain file, leaf first. TOML: cert.
	Cert string `toml:"cert"`
	// Key is the private key file. TOML: key.
	Key string `toml:"key"`
	// ACME turns on certificates from an ACME CA (RFC 8555), obtained and
	// renewed without a restart, for every TLS listener. It needs the http
	// listener (http-01) or the https one (tls-alpn-01) reachable from the
	// internet on ports 80/443. Cert and Key, when set, still win.
	// TOML: acme. Default false.
	ACME bool `toml:"acme"`
	// ACMEDirectory is the CA's directory URL. TOML: acme_directory.
	// Default Let's Encrypt's production directory.
	ACMEDirectory string `toml:"acme_directory"`
	// ACMEEmail is the contact address registered with the CA (expiry
	// notices). TOML: acme_email. Default "" (none).
	ACMEEmail string `toml:"acme_email"`
	// ACMEHosts are the names certificates may be requested for. Empty:
	// the hostname, and mta-sts.D, autoconfig.D and autodiscover.D for
	// each local domain D, checked when a name is asked for, so a domain
	// added later needs no restart. TOML: acme_hosts. Default [].
	ACMEHosts []string `toml:"acme_hosts"`
}

// LetsEncrypt is Let's Encrypt's production ACME directory, the default
// acme_directory.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// Limits holds resource limits. All must be positive.
type Limits struct {
	// MaxMessageSize is the largest message accepted, announced as SMTP SIZE
	// (RFC 1870). TOML: max_message_size. Default "50MiB".
	MaxMessageSize Size `toml:"max_message_size"`

	// MaxRecipients is the most RCPT TO per SMTP transaction. RFC 5321
	// §4.5.3.1.8 asks for at least 100. TOML: max_recipients. Default 1000.
	MaxRecipients int `toml:"max_recipients"`

	// MaxConnections caps open connections over all listeners together.
	// TOML: max_connections. Default 2000.
	MaxConnections int `toml:"max_connections"`

	// MaxConnectionsPerIP caps open connections from one client address
	// (IPv6: one /64) over all listeners together; at most MaxConnections.
	// TOML: max_connections_per_ip. Default 50.
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`

	// ExemptNetworks are client networks (CIDR) that MaxConnectionsPerIP
	// does not apply to: a webmail or proxy on the same machine opens many
	// connections from one address, as Postfix exempts mynetworks.
	// MaxConnections still counts them. TOML: exempt_networks. Default
	// 127.0.0.1/32 and ::1/128.
	ExemptNetworks []string `toml:"exempt_networks"`

	// MaxLineLength is the longest command line, CRLF included, that any
	// protocol accepts. 8192 is what RFC 7162 §4 asks IMAP servers to accept
	// and far above SMTP's 512 (RFC 5321 §4.5.3.1.4). IMAP accepts at least
	// 64 KiB and SMTP 1 MiB whatever this says (internal/server). TOML:
	// max_line_length. Default 8192; at least 1000.
	MaxLineLength int `toml:"max_line_length"`

	// SMTPTimeout is how long an SMTP session may be idle waiting for the
	// next command or the next piece of message data. RFC 5321 §4.5.3.2.7:
	// at least 5 minutes. TOML: smtp_timeout. Default "5m".
	SMTPTimeout time.Duration `toml:"smtp_timeout"`

	// POP3Timeout is the POP3 inactivity autologout timer. RFC 1939 §3: at
	// least 10 minutes. TOML: pop3_timeout. Default "10m".
	POP3Timeout time.Duration `toml:"pop3_timeout"`

	// IMAPTimeout is the IMAP inactivity autologout timer for authenticated
	// sessions, IDLE included. RFC 9051 §5.4: at least 30 minutes.
	// TOML: imap_timeout. Default "30m".
	IMAPTimeout time.Duration `toml:"imap_timeout"`

	// IMAPPreauthTimeout is the IMAP inactivity timer before authentication,
	// which RFC 9051 §5.4 allows to be shorter. TOML: imap_preauth_timeout.
	// Default "1m".
	IMAPPreauthTimeout time.Duration `toml:"imap_preauth_timeout"`

	// WriteTimeout bounds each write to a client, in every protocol, so a
	// client that stops reading cannot hold a session forever.
	// TOML: write_timeout. Default "1m".
	WriteTimeout time.Duration `toml:"write_timeout"`
}

// Auth holds the policy against password guessing.
type Auth struct {
	// MaxFailuresPerIP is how many failed authentications one client address
	// (IPv6: one /64) may make within Lockout before further attempts from
	// it are refused without checking credentials. TOML: max_failures_per_ip.
	// Default 10.
	MaxFailuresPerIP int `toml:"max_failures_per_ip"`

	// Lockout is how long failures are remembered and how long a client
	// address that reached MaxFailuresPerIP stays refused. TOML: lockout.
	// Default "15m".
	Lockout time.Duration `toml:"lockout"`
}

// Options adjusts how a configuration is built. The zero value is what the
// server uses; tests set the functions to avoid depending on the machine.
type Options struct {
	// Euid returns the effective user id, which decides the default ports
	// (see Listen). Nil means os.Geteuid.
	Euid func() int
	// Hostname returns the machine's host name, the default for
	// Config.Hostname. Nil means os.Hostname.
	Hostname func() (string, error)
}

// Default returns the configuration used when there is no file, with
// Options{}: standard ports as root, ports + 10000 otherwise.
func Default() *Config { return Options{}.Default() }

// Load reads and validates the configuration file at path with Options{}.
// Path "" means no file: the defaults, validated.
func Load(path string) (*Config, error) { return Options{}.Load(path) }

// Parse parses and validates a configuration file's contents with
// Options{}.
func Parse(data []byte) (*Config, error) { return Options{}.Parse(data) }

// Default returns the default configuration. It is not validated: when the
// host name cannot be determined Hostname is empty and Validate says so.
func (o Options) Default() *Config {
	euid := os.Geteuid
	if o.Euid != nil {
		euid = o.Euid
	}
	hostname := os.Hostname
	if o.Hostname != nil {
		hostname = o.Hostname
	}
	host, err := hostname()
	if err != nil {
		host = ""
	}
	port := func(p int) string {
		if euid() != 0 {
			p += 10000 // unprivileged: ports below 1024 are not ours to bind
		}
		return ":" + strconv.Itoa(p)
	}
	return &Config{
		Hostname: normalizeHostname(host),
		Data:     "jodmai-data",
		LogLevel: slog.LevelInfo,
		Listen: Listen{
			SMTP:        port(25),
			Submission:  port(587),
			Submissions: port(465),
			POP3:        port(110),
			POP3S:       port(995),
			IMAP:        port(143),
			IMAPS:       port(993),
			HTTP:        port(80),
			HTTPS:       port(443),
			Metrics:     "127.0.0.1" + port(9025),
			ProxyFrom:   []string{},
		},
		TLS: TLS{
			ACMEDirectory: LetsEncrypt,
			ACMEHosts:     []string{},
		},
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
		Auth: Auth{
			MaxFailuresPerIP: 10,
			Lockout:          15 * time.Minute,
		},
		Queue: Queue{
			MaxAge:         120 * time.Hour,
			DelayWarning:   4 * time.Hour,
			RetryMin:       time.Minute,
			RetryMax:       4 * time.Hour,
			MaxConcurrency: 64,
			MaxPerDomain:   4,
		},
		Remote: Remote{
			Port:           25,
			ConnectTimeout: 30 * time.Second,
		},
		MsgAuth: MsgAuth{
			Enabled:         true,
			TrustedNetworks: []string{"127.0.0.1/32", "::1/128"},
		},
		Store: Store{
			MaxOpenAccounts: 1000,
			AccountIdle:     2 * time.Minute,
		},
		Events: Events{MaxSize: 32 << 20, Keep: 4},
	}
}

// Load reads and validates the configuration file at path. Path "" means no
// file: the defaults, validated. Errors name the file, and the line where
// one is known.
func (o Options) Load(path string) (*Config, error) {
	if path == "" {
		c := o.Default()
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("default config: %w", err)
		}
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := o.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses and validates a configuration file's contents. Keys the file
// does not set keep their defaults.
func (o Options) Parse(data []byte) (*Config, error) {
	c := o.Default()
	// Decoding over the defaults overwrites exactly the keys the file sets,
	// which is the port rule: a set key wins, an unset one keeps the
	// euid-dependent default.
	md, err := toml.Decode(string(data), c)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(data, &md); err != nil {
		return nil, err
	}
	c.Hostname = normalizeHostname(c.Hostname)
	for i, h := range c.TLS.ACMEHosts {
		c.TLS.ACMEHosts[i] = normalizeHostname(h)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func normalizeHostname(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// Validate reports every problem with c, joined, each naming its TOML key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	if err := checkHostname(c.Hostname); err != nil {
		bad("hostname: %w", err)
	}
	if strings.TrimSpace(c.Data) == "" {
		bad("data: empty; it names the data directory")
	}

	seen := map[string]string{}
	for _, e := range c.Listen.Endpoints() {
		if e.Addr == "" {
			continue
		}
		_, port, err := net.SplitHostPort(e.Addr)
		if err != nil {
			bad("listen.%s = %q: %w", e.Key, e.Addr, err)
			continue
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			bad("listen.%s = %q: port %q is not a number from 0 to 65535", e.Key, e.Addr, port)
			continue
		}
		if port == "0" {
			continue // a fresh port each time; never a clash
		}
		if other, ok := seen[e.Addr]; ok {
			bad("listen.%s = %q: listen.%s has the same address", e.Key, e.Addr, other)
		}
		seen[e.Addr] = e.Key
	}

	if c.DNS.Resolver != "" {
		if _, port, err := net.SplitHostPort(c.DNS.Resolver); err != nil {
			bad("dns.resolver = %q: want host:port: %w", c.DNS.Resolver, err)
		} else if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			bad("dns.resolver = %q: port %q is not a number from 1 to 65535", c.DNS.Resolver, port)
		}
	}
	q := c.Queue
	if q.MaxAge <= 0 || q.RetryMin <= 0 || q.RetryMax <= 0 {
		bad("queue: max_age, retry_min and retry_max must be positive")
	}
	if q.RetryMin > q.RetryMax {
		bad("queue.retry_min = %q: exceeds queue.retry_max = %q", q.RetryMin, q.RetryMax)
	}
	if q.DelayWarning < 0 {
		bad("queue.delay_warning = %q: must not be negative", q.DelayWarning)
	}
	if q.MaxConcurrency <= 0 || q.MaxPerDomain <= 0 {
		bad("queue: max_concurrency and max_per_domain must be positive")
	}
	if c.Remote.Port <= 0 || c.Remote.Port > 65535 {
		bad("remote.port = %d: not a port number", c.Remote.Port)
	}
	if c.Remote.ConnectTimeout <= 0 {
		bad("remote.connect_timeout = %q: must be positive", c.Remote.ConnectTimeout)
	}
	if c.Remote.HELO != "" {
		if err := checkHostname(c.Remote.HELO); err != nil {
			bad("remote.helo: %w", err)
		}
	}
	if c.Remote.RelayHost != "" {
		if host, port, err := net.SplitHostPort(c.Remote.RelayHost); err != nil || host == "" {
			bad("remote.relay_host = %q: want host:port", c.Remote.RelayHost)
		} else if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			bad("remote.relay_host = %q: port %q is not a number from 1 to 65535", c.Remote.RelayHost, port)
		}
	}
	if c.Remote.SourceIP != "" && net.ParseIP(c.Remote.SourceIP) == nil {
		bad("remote.source_ip = %q: not an IP address", c.Remote.SourceIP)
	}
	cidrs := func(key string, list []string) {
		for _, n := range list {
			if _, _, err := net.ParseCIDR(n); err != nil {
				bad("%s: %q: %w", key, n, err)
			}
		}
	}
	cidrs("msgauth.trusted_networks", c.MsgAuth.TrustedNetworks)
	cidrs("limits.exempt_networks", c.Limits.ExemptNetworks)
	cidrs("listen.proxy_from", c.Listen.ProxyFrom)
	if m := c.Listen.Metrics; m != "" && !c.Listen.MetricsAllowRemote {
		if host, _, err := net.SplitHostPort(m); err == nil && !isLoopback(host) {
			bad("listen.metrics = %q: not a loopback address; set listen.metrics_allow_remote = true to serve metrics beyond this machine", m)
		}
	}

	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls: cert and key must both be set, or both be empty for a self-signed certificate")
	}
	if c.TLS.ACME {
		if u, err := url.Parse(c.TLS.ACMEDirectory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("tls.acme_directory = %q: not an http(s) URL", c.TLS.ACMEDirectory)
		}
		if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
			bad("tls.acme: needs listen.http (http-01) or listen.https (tls-alpn-01) to answer the CA's challenges")
		}
	}
	if e := c.TLS.ACMEEmail; e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, " \t\r\n<>")) {
		bad("tls.acme_email = %q: not an email address", e)
	}
	for _, h := range c.TLS.ACMEHosts {
		if err := checkHostname(normalizeHostname(h)); err != nil {
			bad("tls.acme_hosts: %w", err)
		}
	}

	if c.Store.MaxOpenAccounts <= 0 {
		bad("store.max_open_accounts = %d: must be positive", c.Store.MaxOpenAccounts)
	}
	if c.Events.MaxSize < 64<<10 {
		bad("events.max_size = %d: must be at least 64KiB", c.Events.MaxSize)
	}
	if c.Events.Keep < 1 {
		bad("events.keep = %d: must be at least 1", c.Events.Keep)
	}
	if c.Store.AccountIdle < time.Second {
		bad("store.account_idle = %q: must be at least 1s", c.Store.AccountIdle)
	}

	l := c.Limits
	positive := func(key string, v int64) {
		if v <= 0 {
			bad("limits.%s = %d: must be positive", key, v)
		}
	}
	positive("max_message_size", int64(l.MaxMessageSize))
	positive("max_recipients", int64(l.MaxRecipients))
	positive("max_connections", int64(l.MaxConnections))
	positive("max_connections_per_ip", int64(l.MaxConnectionsPerIP))
	if l.MaxConnectionsPerIP > l.MaxConnections && l.MaxConnections > 0 {
		bad("limits.max_connections_per_ip = %d: exceeds limits.max_connections = %d",
			l.MaxConnectionsPerIP, l.MaxConnections)
	}
	if l.MaxLineLength < 1000 {
		bad("limits.max_line_length = %d: must be at least 1000", l.MaxLineLength)
	}
	duration := func(key string, d time.Duration) {
		if d <= 0 {
			bad("%s = %q: must be positive", key, d.String())
		}
	}
	duration("limits.smtp_timeout", l.SMTPTimeout)
	duration("limits.pop3_timeout", l.POP3Timeout)
	duration("limits.imap_timeout", l.IMAPTimeout)
	duration("limits.imap_preauth_timeout", l.IMAPPreauthTimeout)
	duration("limits.write_timeout", l.WriteTimeout)

	if c.Auth.MaxFailuresPerIP <= 0 {
		bad("auth.max_failures_per_ip = %d: must be positive", c.Auth.MaxFailuresPerIP)
	}
	duration("auth.lockout", c.Auth.Lockout)

	return errors.Join(errs...)
}

// isLoopback reports whether host, from a listening address, is loopback
// only ("localhost", 127.0.0.0/8, ::1). An empty host means every address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkHostname accepts an ASCII DNS name (RFC 1123 labels). A single label
// is allowed, for development machines and containers.
func checkHostname(h string) error {
	if h == "" {
		return errors.New("empty and the machine's host name is unknown; set hostname")
	}
	if len(h) > 253 {
		return fmt.Errorf("%q: longer than 253 characters", h)
	}
	if net.ParseIP(h) != nil {
		return fmt.Errorf("%q: an IP address; a mail server needs a DNS name", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return fmt.Errorf("%q: empty label", h)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q: label %q longer than 63 characters", h, label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: label %q starts or ends with a hyphen", h, label)
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-'
			if !ok {
				return fmt.Errorf("%q: character %q not allowed (letters, digits, hyphens and dots; internationalized names in xn-- form)", h, r)
			}
		}
	}
	return nil
}

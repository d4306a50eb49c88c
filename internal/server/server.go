// Package server owns the process lifecycle: it builds every component from
// the configuration (directory, store, authenticator, TLS, protocol
// servers), opens the listeners, and shuts everything down in order.
//
// One server owns a data directory at a time: New takes an exclusive lock
// on <data>/jodmai.lock, so two servers never sweep or deliver into the same
// store. The admin commands do not take it; they work beside a running
// server through SQLite's own locking.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mjl-/mox/dns"

	"github.com/jodmai/jodmai/internal/auth"
	"github.com/jodmai/jodmai/internal/config"
	"github.com/jodmai/jodmai/internal/deliver"
	"github.com/jodmai/jodmai/internal/dnscheck"
	"github.com/jodmai/jodmai/internal/dnsrecords"
	"github.com/jodmai/jodmai/internal/eventlog"
	"github.com/jodmai/jodmai/internal/forward"
	"github.com/jodmai/jodmai/internal/imapd"
	"github.com/jodmai/jodmai/internal/listen"
	"github.com/jodmai/jodmai/internal/metrics"
	"github.com/jodmai/jodmai/internal/msgauth"
	"github.com/jodmai/jodmai/internal/pop3d"
	"github.com/jodmai/jodmai/internal/queue"
	"github.com/jodmai/jodmai/internal/remote"
	"github.com/jodmai/jodmai/internal/resolver"
	"github.com/jodmai/jodmai/internal/safeio"
	"github.com/jodmai/jodmai/internal/smtpd"
	"github.com/jodmai/jodmai/internal/store"
	"github.com/jodmai/jodmai/internal/tlscert"
	"github.com/jodmai/jodmai/internal/userdb"
	"github.com/jodmai/jodmai/internal/vacation"
	"github.com/jodmai/jodmai/internal/web"
	"github.com/jodmai/jodmai/internal/web/console"
)

// Server is a whole running jodmai.
type Server struct {
	// cfg is the configuration in effect: the one New got, with what
	// Reload applied since.
	cfg   atomic.Pointer[config.Config]
	log   *slog.Logger
	lock  *os.File
	level *slog.LevelVar // Options.LogLevel; nil: log_level needs a restart

	// Users is the directory.
	Users *userdb.DB
	// Store is the mail store.
	Store *store.Store
	// Auth checks logins.
	Auth *auth.Authenticator
	// TLS holds the certificate.
	TLS *tlscert.Manager
	// Queue is the outbound queue (DATA/queue).
	Queue *queue.Queue
	// Metrics holds the Prometheus metrics served on [listen] metrics.
	Metrics *metrics.Metrics
	// Events is the mail event log (DATA/log/events.jsonl): every log
	// line with an "event" attribute, searchable.
	Events *eventlog.Log
	// Console is the web console on the https listener.
	Console *console.Console

	limiter *listen.Limiter
	// resolver replaces the one built from [dns] (Options.Resolver).
	resolver dns.Resolver
	// dnsHTTP is Options.DNSCheckHTTPClient.
	dnsHTTP *http.Client
	// proxyFrom are the load balancers that send PROXY headers.
	proxyFrom []netip.Prefix
	deliver   *deliver.Deliverer
	// vacation sends the auto-replies of local deliveries.
	vacation *vacation.Responder
	// forward sends the mail of forwarding accounts on.
	forward *forward.Forwarder
	// verifier checks mail on the MX listener; nil when [msgauth] is off.
	verifier *msgauth.Verifier
	// queueStop ends the queue's scheduler; queueDone closes when it has
	// returned. Both nil until Start.
	queueStop context.CancelFunc
	queueDone chan struct{}

	mu        sync.Mutex
	addrs     map[string]net.Addr
	services  []service
	listeners []net.Listener
	wg        sync.WaitGroup
}

// smtpMinLineLength is the least line length SMTP accepts. go-smtp applies
// one limit to command lines and to the lines of a message body, and real
// mail carries body lines far beyond RFC 5321's 1000 (unwrapped HTML), which
// Postfix accepts; refusing them would bounce legitimate mail. A line costs
// memory only as long as it is, so the bound stays per connection.
const smtpMinLineLength = 1 << 20

// imapMinLineLength is the least command line IMAP accepts: 64 KiB, as
// Dovecot does. Literals are not the only long thing a client sends: ID
// with long values, UID sets of a sparse mailbox, SEARCH with many keys
// (imaptest's id test sends a line over 30 KiB). A line costs memory only
// as long as it is.
const imapMinLineLength = 64 << 10

// service is one protocol server on one listener.
type service interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Options adjust a server beyond its configuration (tests use them).
type Options struct {
	// AuthPolicy replaces auth.DefaultPolicy when set.
	AuthPolicy *auth.Policy
	// Resolver replaces the DNS resolver built from [dns] for the checks
	// of inbound mail (msgauth) and DNSChecker.
	Resolver dns.Resolver
	// Remote replaces the outbound SMTP client (tests give a fake).
	Remote remote.Deliverer
	// QueueNow replaces the queue's clock (tests).
	QueueNow func() time.Time
	// DNSCheckHTTPClient replaces the client DNSChecker fetches the
	// MTA-STS policy with (tests: one that reaches the test listener).
	DNSCheckHTTPClient *http.Client
	// ACMEClient replaces the HTTP client that talks to the ACME CA
	// (tests: one trusting their CA).
	ACMEClient *http.Client
	// LogLevel is the level of the logger New gets; Reload sets it from
	// log_level. Nil: a change of log_level needs a restart.
	LogLevel *slog.LevelVar
}

// acmeNamePrefixes are the names under each local domain that ACME may get
// certificates for when [tls] acme_hosts is empty: what dns-records asks
// to point at this server and the https listener serves.
var acmeNamePrefixes = []string{"mta-sts.", "autoconfig.", "autodiscover."}

// acmeAllowed is the ACME host policy: [tls] acme_hosts when set, else
// the hostname and acmeNamePrefixes under local domains, looked up now so
// a domain added later needs no restart.
func (s *Server) acmeAllowed(ctx context.Context, host string) bool {
	cfg := s.cfg.Load()
	if host == cfg.Hostname {
		return true
	}
	if len(cfg.TLS.ACMEHosts) > 0 {
		return slices.Contains(cfg.TLS.ACMEHosts, host)
	}
	for _, p := range acmeNamePrefixes {
		if d, ok := strings.CutPrefix(host, p); ok {
			return s.localDomain(ctx, d)
		}
	}
	return false
}

// localDomain reports whether domain is local; a lookup error counts as no.
func (s *Server) localDomain(ctx context.Context, domain string) bool {
	ok, err := s.Users.IsLocalDomain(ctx, domain)
	if err != nil {
		s.log.Warn("looking up a domain", "domain", domain, "err", err)
	}
	return ok && err == nil
}

// New opens the data directory and builds the components. It does not
// listen yet; call Start.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := safeio.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDataDir(cfg.Data)
	if err != nil {
		return nil, err
	}
	s := &Server{lock: lock, level: opts.LogLevel, resolver: opts.Resolver, dnsHTTP: opts.DNSCheckHTTPClient, addrs: map[string]net.Addr{}, Metrics: metrics.New()}
	s.cfg.Store(cfg)
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()
	if s.Events, err = eventlog.Open(eventlog.Dir(cfg.Data), eventlog.Options{MaxSize: int64(cfg.Events.MaxSize), Keep: cfg.Events.Keep}); err != nil {
		return nil, err
	}
	// Every component logs through the event log's handler: its lines
	// with an "event" attribute are the mail events.
	log = slog.New(eventlog.NewHandler(log.Handler(), s.Events))
	s.log = log
	if s.Users, err = userdb.Open(ctx, cfg.Data); err != nil {
		return nil, err
	}
	if s.Store, err = store.Open(ctx, cfg.Data, log.With("component", "store")); err != nil {
		return nil, err
	}
	s.Store.TrackUsage()
	s.Store.SetUsageGroup((&accountDomains{users: s.Users}).lookup)
	s.Store.SetOpenLimits(fitOpenAccounts(cfg.Store.MaxOpenAccounts, cfg.Limits.MaxConnections, log), cfg.Store.AccountIdle)
	if err := s.Store.Sweep(ctx); err != nil {
		return nil, err
	}
	if err := s.Store.StartJournal(ctx); err != nil {
		return nil, err
	}
	policy := auth.DefaultPolicy
	if cfg.Auth.MaxFailuresPerIP > 0 {
		policy.IPLockoutAfter = cfg.Auth.MaxFailuresPerIP
	}
	if cfg.Auth.Lockout > 0 {
		policy.Lockout = cfg.Auth.Lockout
		policy.Window = cfg.Auth.Lockout
	}
	if opts.AuthPolicy != nil {
		policy = *opts.AuthPolicy
	}
	s.Auth = auth.New(s.Users, policy, log.With("component", "auth"))
	s.Auth.SetObserver(s.Metrics)
	s.Console = &console.Console{Auth: s.Auth, Users: s.Users, Store: s.Store, Hostname: cfg.Hostname, Events: s.Events, DNSChecker: s.DNSChecker, DataDir: cfg.Data, Log: log.With("proto", "web")}
	if s.TLS, err = tlscert.Load(cfg.Data, cfg.TLS.Cert, cfg.TLS.Key, cfg.Hostname, log.With("component", "tls")); err != nil {
		return nil, err
	}
	if cfg.TLS.ACME {
		if err := s.TLS.UseACME(cfg.Data, tlscert.ACME{
			Directory: cfg.TLS.ACMEDirectory, Email: cfg.TLS.ACMEEmail,
			Allowed: s.acmeAllowed, HTTPClient: opts.ACMEClient,
		}); err != nil {
			return nil, err
		}
	}
	s.limiter = listen.NewLimiter(cfg.Limits.MaxConnections, cfg.Limits.MaxConnectionsPerIP)
	exempt, err := parsePrefixes("limits.exempt_networks", cfg.Limits.ExemptNetworks)
	if err != nil {
		return nil, err
	}
	s.limiter.Exempt(exempt)
	if s.proxyFrom, err = parsePrefixes("listen.proxy_from", cfg.Listen.ProxyFrom); err != nil {
		return nil, err
	}
	s.deliver = &deliver.Deliverer{Users: s.Users, Store: s.Store}
	if s.verifier, err = newVerifier(cfg, log, opts.Resolver); err != nil {
		return nil, err
	}
	var rd remote.Deliverer = opts.Remote
	if rd == nil {
		rd = newRemote(cfg, log)
	}
	s.Queue, err = queue.Open(filepath.Join(cfg.Data, "queue"), queue.Options{
		Policy: cfg.Queue, Hostname: cfg.Hostname, Log: log.With("component", "queue"),
		Remote: rd, Local: s.deliver, Now: opts.QueueNow, Observer: s.Metrics,
		Signer: &remote.Signer{Dir: cfg.Data, Log: log.With("component", "dkim")},
	})
	if err != nil {
		return nil, err
	}
	if err := s.Queue.Sweep(ctx); err != nil {
		return nil, err
	}
	s.vacation = &vacation.Responder{Deliverer: s.deliver, Queue: s.Queue, Hostname: cfg.Hostname, Log: log.With("component", "vacation")}
	s.forward = &forward.Forwarder{Deliverer: s.deliver, Queue: s.Queue}
	s.Console.Queue, s.Console.TLS = s.Queue, s.TLS
	s.watchState()
	ok = true
	return s, nil
}

// newVerifier builds the checks of inbound mail from [msgauth]; nil when
// they are off. r replaces the resolver from [dns] when set.
func newVerifier(cfg *config.Config, log *slog.Logger, r dns.Resolver) (*msgauth.Verifier, error) {
	if !cfg.MsgAuth.Enabled {
		return nil, nil
	}
	var trusted []netip.Prefix
	for _, n := range cfg.MsgAuth.TrustedNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("msgauth.trusted_networks: %w", err)
		}
		trusted = append(trusted, p.Masked())
	}
	mlog := log.With("component", "msgauth")
	if r == nil {
		r = resolver.New(cfg.DNS.Resolver, mlog)
	}
	return &msgauth.Verifier{Resolver: r, Hostname: cfg.Hostname, Trusted: trusted, Log: mlog}, nil
}

// parsePrefixes parses CIDR networks from the configuration key key.
func parsePrefixes(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range list {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// lockDataDir takes the exclusive server lock of a data directory.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "jodmai.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another jodmai server: %w", dir, err)
	}
	// The pid, for jodmai reload; the lock, not the content, says a
	// server runs.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Bootstrap prepares an empty directory on first start: it adds the domain
// of the configured hostname and postmaster@hostname with a random
// password, which it returns (once; later starts return "").
func (s *Server) Bootstrap(ctx context.Context) (address, password string, err error) {
	domains, err := s.Users.Domains(ctx)
	if err != nil {
		return "", "", err
	}
	accounts, err := s.Users.Accounts(ctx)
	if err != nil {
		return "", "", err
	}
	if len(domains) > 0 || len(accounts) > 0 {
		return "", "", nil
	}
	host := s.cfg.Load().Hostname
	if err := s.Users.AddDomain(ctx, host); err != nil {
		return "", "", fmt.Errorf("first start: %w", err)
	}
	password = userdb.GeneratePassword()
	acc, err := s.Users.AddAccount(ctx, "postmaster@"+host, password)
	if err != nil {
		return "", "", fmt.Errorf("first start: %w", err)
	}
	s.log.Info("first start: created domain and postmaster account", "domain", host, "account", acc.Address)
	return acc.Address, password, nil
}

// Start opens every configured listener and serves on it. On error, the
// listeners already opened are closed.
func (s *Server) Start() error {
	cfg := s.cfg.Load()
	lim := cfg.Limits
	tlsConf := s.Metrics.CountHandshakes(s.TLS.TLSConfig())
	type spec struct {
		key      string
		addr     string
		implicit bool
		refusal  []byte
		make     func(implicit bool) service
		tls      *tls.Config // for implicit TLS; nil: tlsConf
	}
	smtpServer := func(mode smtpd.Mode, name string) func(bool) service {
		return func(implicit bool) service {
			var verifier *msgauth.Verifier
			if mode == smtpd.ModeMX {
				verifier = s.verifier
			}
			srv := &smtpd.Server{
				Hostname: cfg.Hostname, Mode: mode, Deliverer: s.deliver, Auth: s.Auth,
				TLSConfig: tlsConf, ImplicitTLS: implicit,
				Log: s.log.With("proto", name), Verifier: verifier, Queue: s.Queue,
				Observer: s.Metrics.SMTP(name), AutoReply: s.vacation, Forward: s.forward,
			}
			srv.SetLimits(smtpLimits(lim))
			return srv
		}
	}
	pop3Server := func(implicit bool) service {
		srv := &pop3d.Server{
			Hostname: cfg.Hostname, Store: s.Store, Auth: s.Auth, TLSConfig: tlsConf, ImplicitTLS: implicit,
			Log: s.log,
		}
		srv.SetLimits(pop3Limits(lim))
		return srv
	}
	imapServer := func(implicit bool) service {
		srv := &imapd.Server{
			Hostname: cfg.Hostname, Store: s.Store, Users: s.Users, Auth: s.Auth, TLSConfig: tlsConf, ImplicitTLS: implicit,
			Log: s.log,
		}
		srv.SetLimits(imapLimits(lim))
		return srv
	}
	specs := []spec{
		{"smtp", cfg.Listen.SMTP, false, listen.SMTPRefusal(cfg.Hostname), smtpServer(smtpd.ModeMX, "smtp"), nil},
		{"submission", cfg.Listen.Submission, false, listen.SMTPRefusal(cfg.Hostname), smtpServer(smtpd.ModeSubmission, "submission"), nil},
		{"submissions", cfg.Listen.Submissions, true, listen.SMTPRefusal(cfg.Hostname), smtpServer(smtpd.ModeSubmission, "submissions"), nil},
		{"pop3", cfg.Listen.POP3, false, listen.POP3Refusal(), pop3Server, nil},
		{"pop3s", cfg.Listen.POP3S, true, listen.POP3Refusal(), pop3Server, nil},
		{"imap", cfg.Listen.IMAP, false, listen.IMAPRefusal(), imapServer, nil},
		{"imaps", cfg.Listen.IMAPS, true, listen.IMAPRefusal(), imapServer, nil},
		// https before http: http's redirects name https's port.
		{"https", cfg.Listen.HTTPS, true, listen.HTTPRefusal(), s.webServer(true), s.Metrics.CountHandshakes(s.TLS.HTTPSConfig())},
		{"http", cfg.Listen.HTTP, false, listen.HTTPRefusal(), s.webServer(false), nil},
		{"metrics", cfg.Listen.Metrics, false, listen.HTTPRefusal(), s.metricsServer, nil},
	}
	for _, sp := range specs {
		if sp.addr == "" {
			continue
		}
		inner, err := net.Listen("tcp", sp.addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s on %s: %w", sp.key, sp.addr, err)
		}
		opts := listen.Options{Name: sp.key, Limiter: s.limiter, Refusal: sp.refusal, Logger: s.log, Observer: s.Metrics.Listener(sp.key), ProxyFrom: s.proxyFrom}
		if sp.implicit {
			opts.TLS = tlsConf
			if sp.tls != nil {
				opts.TLS = sp.tls
			}
		}
		l := listen.New(inner, opts)
		svc := sp.make(sp.implicit)
		s.mu.Lock()
		s.addrs[sp.key] = inner.Addr()
		s.listeners = append(s.listeners, l)
		s.services = append(s.services, svc)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := svc.Serve(l); err != nil && !isClosed(err) {
				s.log.Error("listener stopped", "listener", sp.key, "err", err)
			}
		}()
		s.log.Info("listening", "listener", sp.key, "addr", inner.Addr().String())
	}
	s.startQueue()
	return nil
}

// smtpLimits, pop3Limits and imapLimits are the protocol servers' limits
// from the configuration: at Start and at every Reload (SetLimits).
func smtpLimits(lim config.Limits) smtpd.Limits {
	return smtpd.Limits{
		MaxMessageSize: int64(lim.MaxMessageSize), MaxRecipients: lim.MaxRecipients, MaxLineLength: max(lim.MaxLineLength, smtpMinLineLength),
		Timeout: lim.SMTPTimeout, WriteTimeout: lim.WriteTimeout,
	}
}

func pop3Limits(lim config.Limits) pop3d.Limits {
	return pop3d.Limits{Timeout: lim.POP3Timeout, WriteTimeout: lim.WriteTimeout, MaxLineLength: lim.MaxLineLength}
}

func imapLimits(lim config.Limits) imapd.Limits {
	return imapd.Limits{
		Timeout: lim.IMAPTimeout, PreauthTimeout: lim.IMAPPreauthTimeout, WriteTimeout: lim.WriteTimeout,
		MaxLineLength: max(lim.MaxLineLength, imapMinLineLength), AppendLimit: int64(lim.MaxMessageSize),
	}
}

// setProtocolLimits gives every running protocol server the limits of
// lim, for the sessions that start from now on.
func (s *Server) setProtocolLimits(lim config.Limits) {
	s.mu.Lock()
	svcs := slices.Clone(s.services)
	s.mu.Unlock()
	for _, svc := range svcs {
		switch srv := svc.(type) {
		case *smtpd.Server:
			srv.SetLimits(smtpLimits(lim))
		case *pop3d.Server:
			srv.SetLimits(pop3Limits(lim))
		case *imapd.Server:
			srv.SetLimits(imapLimits(lim))
		}
	}
}

// startQueue runs the outbound queue's scheduler until Shutdown.
func (s *Server) startQueue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queueDone != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.queueStop, s.queueDone = cancel, make(chan struct{})
	go func() {
		defer close(s.queueDone)
		if err := s.Queue.Run(ctx); err != nil {
			s.log.Error("queue stopped", "err", err)
		}
	}()
}

// newRemote builds the outbound SMTP client from [dns] and [remote].
func newRemote(cfg *config.Config, log *slog.Logger) *remote.Client {
	rlog := log.With("component", "remote")
	helo := cfg.Remote.HELO
	if helo == "" {
		helo = cfg.Hostname
	}
	return &remote.Client{
		Resolver:       resolver.New(cfg.DNS.Resolver, rlog),
		Hostname:       helo,
		Port:           cfg.Remote.Port,
		ConnectTimeout: cfg.Remote.ConnectTimeout,
		SourceIP:       net.ParseIP(cfg.Remote.SourceIP),
		RelayHost:      cfg.Remote.RelayHost,
		Log:            rlog,
	}
}

// webServer returns the http (plain) or https listener's server.
func (s *Server) webServer(https bool) func(bool) service {
	return func(bool) service {
		cfg := s.boundConfig()
		site := &web.Site{
			Hostname: cfg.Hostname, Policy: dnsrecords.MTASTSPolicy(cfg), Services: dnsrecords.Services(cfg),
			HTTPSPort: dnsrecords.PublicPort(cfg, "https", 443), LocalDomain: s.localDomain,
			Log: s.log.With("proto", "http"),
		}
		if https {
			s.Console.Services = site.Services
			site.Console = s.Console.Handler()
		}
		h := site.HTTPS()
		if !https {
			h = s.TLS.HTTPHandler(site.HTTP()) // ACME http-01 first
		}
		return &web.Server{Handler: h, Log: s.log.With("proto", "http")}
	}
}

// metricsServer serves /metrics on the metrics listener.
func (s *Server) metricsServer(bool) service {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Metrics.Handler())
	return &web.Server{Handler: mux, Log: s.log.With("proto", "metrics")}
}

// watchState gives the metrics their scrape-time sources.
func (s *Server) watchState() {
	s.Metrics.Watch(metrics.Sources{
		Queue: func(ctx context.Context) (metrics.QueueStats, error) {
			st, err := s.Queue.Stats(ctx)
			return metrics.QueueStats{Messages: st.Messages, Pending: st.Pending, Oldest: st.Oldest}, err
		},
		Store: func() metrics.StoreStats {
			st := s.Store.Stats()
			return metrics.StoreStats{OpenAccounts: st.OpenAccounts, PendingDeliveries: st.PendingDeliveries}
		},
		Usage: func(ctx context.Context) (map[string]metrics.DomainUsage, error) {
			groups, err := s.Store.UsageByGroup(ctx)
			out := make(map[string]metrics.DomainUsage, len(groups))
			for d, u := range groups {
				if d != "" { // accounts no longer in the directory
					out[d] = metrics.DomainUsage{Bytes: u.Bytes, Messages: u.Messages}
				}
			}
			return out, err
		},
		Certs: func() []metrics.Cert {
			var out []metrics.Cert
			for _, c := range s.TLS.Certificates() {
				out = append(out, metrics.Cert{Name: c.Name, Source: c.Source, NotAfter: c.NotAfter})
			}
			return out
		},
	})
}

// boundConfig returns the configuration with each listener configured on
// port 0 replaced by the address it got, so what clients are told (the
// autoconfig files) names the ports in use.
func (s *Server) boundConfig() *config.Config {
	c := *s.cfg.Load()
	l := &c.Listen
	fields := map[string]*string{
		"smtp": &l.SMTP, "submission": &l.Submission, "submissions": &l.Submissions,
		"pop3": &l.POP3, "pop3s": &l.POP3S, "imap": &l.IMAP, "imaps": &l.IMAPS,
		"http": &l.HTTP, "https": &l.HTTPS, "metrics": &l.Metrics,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, f := range fields {
		if a, ok := s.addrs[key]; ok && strings.HasSuffix(*f, ":0") {
			*f = a.String()
		}
	}
	return &c
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, web.ErrServerClosed) || errors.Is(err, smtpd.ErrServerClosed) || errors.Is(err, pop3d.ErrServerClosed) || errors.Is(err, imapd.ErrServerClosed)
}

// Addrs returns the address of each open listener by config key ("smtp",
// "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http",
// "https", "metrics").
func (s *Server) Addrs() map[string]net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]net.Addr, len(s.addrs))
	for k, v := range s.addrs {
		m[k] = v
	}
	return m
}

// PrefetchCertificates asks the ACME CA for the hostname's certificate now
// (in the background), so the first client does not wait; without ACME it
// does nothing. Call it after Start: the CA validates through the http
// and https listeners.
func (s *Server) PrefetchCertificates() {
	if s.TLS.ACME() {
		go s.TLS.Prefetch()
	}
}

// DNSChecker returns a checker of the live DNS records of local domains
// (the web admin's DNS page), with the configuration in effect and the
// server's resolver.
func (s *Server) DNSChecker() *dnscheck.Checker {
	cfg := s.cfg.Load()
	r := s.resolver
	if r == nil {
		r = resolver.New(cfg.DNS.Resolver, s.log.With("component", "dnscheck"))
	}
	return &dnscheck.Checker{Config: cfg, Resolver: r, HTTPClient: s.dnsHTTP}
}

// Shutdown stops accepting, lets in-flight transactions finish (protocol
// servers refuse new commands with their "closing" reply), and closes the
// store. If ctx ends first, the remaining connections are cut; nothing
// half-written becomes visible since every commit is atomic.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	svcs := s.services
	s.services = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(svcs))
	for i, svc := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.Shutdown(ctx)
		}()
	}
	wg.Wait()
	s.closeListeners()
	s.wg.Wait()
	// No session adds to the queue any more: stop its scheduler (attempts
	// in progress are cut; their deliveries so far are recorded).
	s.mu.Lock()
	stop, done := s.queueStop, s.queueDone
	s.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	s.closeResources()
	return errors.Join(errs...)
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = nil
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

func (s *Server) closeResources() {
	if s.Queue != nil {
		s.Queue.Close()
		s.Queue = nil
	}
	if s.Store != nil {
		s.Store.Close()
	}
	if s.Users != nil {
		s.Users.Close()
	}
	if s.Events != nil {
		s.Events.Close()
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

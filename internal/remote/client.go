package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mjl-/adns"
	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/mtasts"
	"github.com/mjl-/mox/smtpclient"
)

const (
	defaultPort           = 25
	defaultConnectTimeout = 30 * time.Second
	// defaultSessionTimeout bounds one SMTP session with one host, from
	// the greeting to the reply after the message data. mox's client
	// also bounds each read and write by 30 s.
	defaultSessionTimeout = 10 * time.Minute
)

// Client delivers messages to the MX hosts of their destination domain. Its
// exported fields are its configuration: set them before the first Deliver.
// A Client is safe for concurrent use; it keeps MTA-STS policies in memory
// (RFC 8461 §5.1) and nothing else.
type Client struct {
	// Resolver looks up MX, A/AAAA, TLSA and MTA-STS records
	// (resolver.New). DANE is used only for answers it reports as
	// DNSSEC-authentic.
	Resolver dns.Resolver
	// Hostname is the name this server gives in EHLO.
	Hostname string
	// Port is the TCP port of the remote SMTP servers: 0 means 25 (the
	// config's [remote] port, other values for tests only).
	Port int
	// ConnectTimeout bounds connecting to one address (0: 30 s).
	ConnectTimeout time.Duration
	// SessionTimeout bounds a whole SMTP session with one host (0: 10
	// min).
	SessionTimeout time.Duration
	// RootCAs verifies certificates where verification is required
	// (MTA-STS enforce, REQUIRETLS without DANE) and MTA-STS policy
	// fetches; nil means the system's roots.
	RootCAs *x509.CertPool
	// FetchPolicy fetches MTA-STS policies; nil fetches them over HTTPS
	// (port 443, names resolved through Resolver).
	FetchPolicy PolicyFetcher
	// SourceIP, if set, is the local address connections come from (the
	// config's [remote] source_ip).
	SourceIP net.IP
	// RelayHost, "host:port", sends every message there (a smarthost)
	// instead of to the destination's MX hosts; MTA-STS and DANE do not
	// apply, TLS is opportunistic.
	RelayHost string
	// Log gets one line per attempt per host (debug level when all was
	// delivered); nil discards.
	Log *slog.Logger
	// IdleTimeout is how long a session stays open for reuse after its
	// message (0: 5 s; negative: no reuse). A session is reused only for
	// the same host, port and TLS requirements, after an RSET.
	IdleTimeout time.Duration
	// MaxIdlePerHost and MaxIdle bound the sessions kept for reuse per
	// destination and in all (0: 20 and 200).
	MaxIdlePerHost, MaxIdle int

	policies policyCache
	pool     pool
	// httpsPort replaces 443 for MTA-STS policy fetches, in tests.
	httpsPort int
}

var _ Deliverer = (*Client)(nil)

func (c *Client) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

func (c *Client) port() int {
	if c.Port == 0 {
		return defaultPort
	}
	return c.Port
}

func (c *Client) connectTimeout() time.Duration {
	if c.ConnectTimeout <= 0 {
		return defaultConnectTimeout
	}
	return c.ConnectTimeout
}

func (c *Client) sessionTimeout() time.Duration {
	if c.SessionTimeout <= 0 {
		return defaultSessionTimeout
	}
	return c.SessionTimeout
}

// dest is what Deliver learned about the destination domain, shared by the
// attempts at its hosts.
type dest struct {
	domain, expanded  dns.Domain
	ehlo              dns.Domain
	haveMX            bool
	origAuthentic     bool
	expandedAuthentic bool
	enforceMTASTS     bool
	dialed            map[string][]net.IP
	// port is the port to connect to: the relay host's or Client.Port.
	port int
}

// local builds the Result for a failure decided here rather than by a
// remote server.
func local(code int, enhanced, text string) Result {
	return Result{Code: code, Enhanced: enhanced, Text: text, Permanent: code/100 == 5, Local: true}
}

// Deliver implements Deliverer: one attempt at every MX host of m.Domain in
// preference order, until every recipient is delivered or failed
// permanently, or the hosts are exhausted.
func (c *Client) Deliver(ctx context.Context, m *Message) []Result {
	results := make([]Result, len(m.Recipients))
	all := make([]int, len(m.Recipients))
	for i, r := range m.Recipients {
		results[i].Addr = r.Addr
		all[i] = i
	}
	if len(results) == 0 {
		return results
	}
	log := c.log()
	set := func(idx []int, r Result) {
		for _, i := range idx {
			addr := results[i].Addr
			results[i] = r
			results[i].Addr = addr
		}
	}
	if c.Resolver == nil {
		set(all, local(451, "4.3.5", "no DNS resolver configured"))
		return results
	}
	domain, err := dns.ParseDomain(m.Domain)
	if err != nil {
		set(all, local(550, "5.1.2", fmt.Sprintf("bad destination domain %q: %v", m.Domain, err)))
		return results
	}
	ehlo, err := dns.ParseDomain(c.Hostname)
	if err != nil {
		set(all, local(451, "4.3.5", fmt.Sprintf("bad local host name %q: %v", c.Hostname, err)))
		return results
	}

	d := &dest{domain: domain, ehlo: ehlo, dialed: map[string][]net.IP{}, port: c.port()}
	var policy *mtasts.Policy
	var hosts []dns.IPDomain
	var permanent bool
	if c.RelayHost != "" {
		relay, port, err := parseRelayHost(c.RelayHost)
		if err != nil {
			set(all, local(451, "4.3.5", err.Error()))
			return results
		}
		// A relay host stands for the MX: its name not resolving is not
		// the destination domain's fault.
		d.haveMX, d.port, hosts = true, port, []dns.IPDomain{relay}
	} else {
		policy = c.policy(ctx, log, domain)
		d.enforceMTASTS = policy != nil && policy.Mode == mtasts.ModeEnforce
		d.haveMX, d.origAuthentic, d.expandedAuthentic, d.expanded, hosts, permanent, err = smtpclient.GatherDestinations(ctx, log, c.Resolver, dns.IPDomain{Domain: domain})
	}
	if err != nil {
		switch {
		case permanent && strings.Contains(err.Error(), "single dot"):
			// RFC 7505 §3.2: a null MX; "556 5.1.10" per RFC 7505 §4.
			set(all, local(556, "5.1.10", fmt.Sprintf("domain %s does not accept mail (null MX)", domain.ASCII)))
		case permanent:
			set(all, local(550, "5.4.4", fmt.Sprintf("unusable MX records for %s: %v", domain.ASCII, err)))
		default:
			set(all, local(451, "4.4.3", fmt.Sprintf("DNS lookup for %s: %v", domain.ASCII, err)))
		}
		c.logAttempt(log, domain.ASCII, "", "", "", results, time.Now(), err)
		return results
	}

	pending := all
	attempted := false
	// decided: a server's reply to this recipient's transaction decided
	// its result; a permanent failure at the host level (a 5xx greeting,
	// a missing extension) leaves the next host to try.
	decided := make([]bool, len(results))
	for _, h := range hosts {
		if ctx.Err() != nil {
			break
		}
		if policy != nil && policy.Mode != mtasts.ModeNone && !policy.Matches(h.Domain) {
			if d.enforceMTASTS {
				// RFC 8461 §4.1: an MX host the enforced policy does
				// not list is not a candidate.
				set(pending, local(451, "4.7.5", fmt.Sprintf("MX host %s not allowed by the MTA-STS policy of %s", h.Domain.ASCII, domain.ASCII)))
				c.logAttempt(log, domain.ASCII, h.String(), "", "", results, time.Now(), errors.New("mx host not in enforced mta-sts policy"))
				continue
			}
			log.Warn("mx host not in mta-sts policy (testing mode)", slog.String("domain", domain.ASCII), slog.String("host", h.String()))
		}
		attempted = true
		next := c.deliverHost(ctx, log, m, d, h, pending, results, decided)
		pending = pending[:0:0]
		for _, i := range all {
			if !results[i].Delivered && !(results[i].Permanent && decided[i]) {
				pending = append(pending, i)
			}
		}
		if len(pending) == 0 || !next {
			break
		}
	}
	if !attempted && len(hosts) == 0 {
		set(all, local(451, "4.4.4", fmt.Sprintf("no host to deliver to for %s", domain.ASCII)))
	}
	for i := range results {
		if results[i].Code == 0 {
			r := local(451, "4.4.2", "delivery attempt ended before this recipient was tried")
			if ctx.Err() != nil {
				r.Text = "delivery attempt canceled: " + ctx.Err().Error()
			}
			r.Addr = results[i].Addr
			results[i] = r
		}
	}
	return results
}

// deliverHost makes one attempt at host for the recipients pending (indexes
// into m.Recipients and results), and fills in their results. It reports
// whether the next MX host should be tried for those still failed
// temporarily.
func (c *Client) deliverHost(ctx context.Context, log *slog.Logger, m *Message, d *dest, host dns.IPDomain, pending []int, results []Result, decided []bool) (tryNext bool) {
	start := time.Now()
	hostName := host.String()
	var ipStr, tlsVersion string
	var attemptErr error
	set := func(idx []int, r Result) {
		for _, i := range idx {
			addr := results[i].Addr
			results[i] = r
			results[i].Addr = addr
			if !r.Local {
				// Only a remote reply names a Remote-MTA (RFC 3464
				// §2.3.5); the host of a local failure is in its text.
				results[i].Host = hostName
			}
		}
	}
	defer func() {
		sub := make([]Result, 0, len(pending))
		for _, i := range pending {
			sub = append(sub, results[i])
		}
		c.logAttempt(log, d.domain.ASCII, hostName, ipStr, tlsVersion, sub, start, attemptErr)
	}()

	authentic, expandedAuthentic, expandedHost, ips, _, err := smtpclient.GatherIPs(ctx, log, c.Resolver, "ip", host, d.dialed)
	if err != nil || len(ips) == 0 {
		attemptErr = err
		if err == nil {
			err = errors.New("no addresses")
		}
		switch {
		case dns.IsNotFound(err) && !d.haveMX:
			// RFC 5321 §5.1: no MX and no address: the domain cannot
			// receive mail (or does not exist).
			set(pending, local(550, "5.1.2", fmt.Sprintf("domain %s has no MX and no address", d.domain.ASCII)))
			return false
		case dns.IsNotFound(err):
			set(pending, local(451, "4.4.4", fmt.Sprintf("MX host %s has no address", hostName)))
		default:
			set(pending, local(451, "4.4.3", fmt.Sprintf("DNS lookup for %s: %v", hostName, err)))
		}
		return true
	}

	// TLS requirements: MTA-STS enforce (RFC 8461 §5) and DANE (RFC 7672
	// §2.2) require TLS; otherwise opportunistic (RFC 7435), with any
	// certificate accepted, as MTAs do.
	tlsMode := smtpclient.TLSOpportunistic
	tlsPKIX := false
	if d.enforceMTASTS {
		tlsMode = smtpclient.TLSRequiredStartTLS
		tlsPKIX = true
	}
	var daneRecords []adns.TLSA
	tlsNames := []dns.Domain{host.Domain}
	// RFC 7672 §2.2.1: DANE only when every record leading to the host
	// was DNSSEC-authentic.
	if authentic && d.origAuthentic && (!d.haveMX || d.expandedAuthentic) && host.IsDomain() {
		daneRequired, recs, base, err := smtpclient.GatherTLSA(ctx, log, c.Resolver, host.Domain, d.expandedAuthentic && expandedAuthentic, expandedHost)
		if err != nil && daneRequired {
			attemptErr = err
			set(pending, local(451, "4.7.5", fmt.Sprintf("DANE TLSA lookup for %s: %v", hostName, err)))
			return true
		}
		if daneRequired {
			tlsMode = smtpclient.TLSRequiredStartTLS
			if len(recs) > 0 {
				daneRecords = recs
				tlsNames = smtpclient.GatherTLSANames(d.haveMX, d.expandedAuthentic, expandedAuthentic, d.domain, d.expanded, host.Domain, base)
			}
		}
	}
	if m.RequireTLS {
		// RFC 8689 §4.2.1: only to a host whose MX is vouched for by
		// DNSSEC (DANE) or an MTA-STS policy, over verified TLS.
		if daneRecords == nil && !d.enforceMTASTS {
			attemptErr = errors.New("requiretls: no dane and no enforced mta-sts policy")
			r := local(554, "5.7.30", fmt.Sprintf("REQUIRETLS: %s has neither DANE nor an enforced MTA-STS policy", hostName))
			set(pending, r)
			return true
		}
		tlsMode = smtpclient.TLSRequiredStartTLS
		if daneRecords == nil {
			tlsPKIX = true
		}
	}

	modes := []smtpclient.TLSMode{tlsMode}
	if tlsMode == smtpclient.TLSOpportunistic {
		// A failed opportunistic handshake is retried without TLS
		// (RFC 7435 §3), on a new connection.
		modes = append(modes, smtpclient.TLSSkip)
	}
	for n, mode := range modes {
		var again bool
		again, tryNext = c.session(ctx, log, m, d, host, ips, mode, tlsPKIX, daneRecords, tlsNames, pending, decided, set, &ipStr, &tlsVersion, &attemptErr)
		if !again || n == len(modes)-1 {
			return tryNext
		}
		log.Info("tls handshake failed, retrying without tls", slog.String("domain", d.domain.ASCII), slog.String("host", hostName), slog.Any("err", attemptErr))
	}
	return tryNext
}

// session runs one SMTP session with host in TLS mode mode. again reports
// an opportunistic TLS failure to retry without TLS.
func (c *Client) session(ctx context.Context, log *slog.Logger, m *Message, d *dest, host dns.IPDomain, ips []net.IP, mode smtpclient.TLSMode, tlsPKIX bool, daneRecords []adns.TLSA, tlsNames []dns.Domain, pending []int, decided []bool, set func([]int, Result), ipStr, tlsVersion *string, attemptErr *error) (again, tryNext bool) {
	key := newPoolKey(host, d.port, mode, tlsPKIX, daneRecords, tlsNames)
	// Each round takes a parked session (fewer are left each time) or
	// makes a new one (the last round).
	for {
		s := c.reuse(key)
		reused := s != nil
		if !reused {
			s, again, tryNext = c.connect(ctx, log, d, host, ips, mode, tlsPKIX, daneRecords, tlsNames, pending, set, ipStr, tlsVersion, attemptErr)
			if s == nil {
				return again, tryNext
			}
		}
		tryNext = c.use(ctx, m, host, key, s, pending, decided, set, ipStr, tlsVersion, attemptErr)
		var stale *staleError
		if reused && errors.As(*attemptErr, &stale) {
			// Closed while parked: nothing was sent; try again.
			log.Debug("connection kept for reuse was gone", slog.String("host", host.String()), slog.Any("err", stale.err))
			*attemptErr = nil
			continue
		}
		return false, tryNext
	}
}

// use delivers m over s, and then parks s for reuse or ends it.
func (c *Client) use(ctx context.Context, m *Message, host dns.IPDomain, key poolKey, s *session, pending []int, decided []bool, set func([]int, Result), ipStr, tlsVersion *string, attemptErr *error) (tryNext bool) {
	*ipStr, *tlsVersion = s.ip, s.tlsVersion
	sctx, scancel := context.WithTimeout(ctx, c.sessionTimeout())
	defer scancel()
	// Every wait ends with the context: closing the connection unblocks
	// any read or write in progress.
	stop := context.AfterFunc(sctx, func() { s.conn.Close() })
	reusable := false
	defer func() {
		if stop() && reusable {
			// Not closed by the context: keep it for the next message.
			c.park(key, s)
			return
		}
		s.quit()
		s.conn.Close()
	}()
	tryNext, reusable = c.transactions(m, host, s, pending, decided, set, attemptErr)
	return tryNext
}

// connect makes a new session with host in TLS mode mode. again reports an
// opportunistic TLS failure to retry without TLS; a nil session means the
// failure is in the results.
func (c *Client) connect(ctx context.Context, log *slog.Logger, d *dest, host dns.IPDomain, ips []net.IP, mode smtpclient.TLSMode, tlsPKIX bool, daneRecords []adns.TLSA, tlsNames []dns.Domain, pending []int, set func([]int, Result), ipStr, tlsVersion *string, attemptErr *error) (_ *session, again, tryNext bool) {
	dctx, dcancel := context.WithTimeout(ctx, c.connectTimeout()*time.Duration(len(ips)))
	var localIPs []net.IP // mox uses the one of the remote address's family
	if c.SourceIP != nil {
		localIPs = []net.IP{c.SourceIP}
	}
	conn, ip, err := smtpclient.Dial(dctx, log, &net.Dialer{}, host, ips, d.port, d.dialed, localIPs)
	dcancel()
	if err != nil {
		*attemptErr = err
		set(pending, local(451, "4.4.1", fmt.Sprintf("connect to %s: %v", host, err)))
		return nil, false, true
	}
	*ipStr = ip.String()
	sctx, scancel := context.WithTimeout(ctx, c.sessionTimeout())
	defer scancel()
	// The setup ends with the context too.
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	defer stop()

	opts := smtpclient.Opts{DANERecords: daneRecords, DANEMoreHostnames: tlsNames[1:], RootCAs: c.RootCAs}
	sc, err := smtpclient.New(sctx, log, conn, mode, tlsPKIX, d.ehlo, tlsNames[0], opts)
	if err != nil {
		conn.Close()
		*attemptErr = err
		if errors.Is(err, smtpclient.ErrTLS) && mode == smtpclient.TLSOpportunistic {
			set(pending, local(451, "4.7.5", fmt.Sprintf("TLS with %s: %v", host, err)))
			return nil, true, true
		}
		set(pending, classify(sctx, err))
		return nil, false, true
	}
	if cs := sc.TLSConnectionState(); cs != nil {
		*tlsVersion = tls.VersionName(cs.Version)
	}
	tconn, err := sc.Conn()
	if err != nil {
		sc.Close()
		*attemptErr = err
		set(pending, local(451, "4.4.2", fmt.Sprintf("session with %s: %v", host, err)))
		return nil, false, true
	}
	s := &session{conn: tconn, r: bufio.NewReader(tconn), w: bufio.NewWriterSize(tconn, writeBufferSize),
		created: time.Now(), ip: *ipStr, tlsVersion: *tlsVersion}
	if err := s.ehlo(d.ehlo.ASCII); err != nil {
		tconn.Close()
		*attemptErr = err
		set(pending, local(451, "4.4.2", fmt.Sprintf("EHLO to %s: %v", host, err)))
		return nil, false, true
	}
	if sctx.Err() != nil {
		// The context closed the connection after the EHLO.
		tconn.Close()
		*attemptErr = sctx.Err()
		set(pending, classify(sctx, sctx.Err()))
		return nil, false, true
	}
	return s, false, true
}

// transactions delivers m to the recipients pending over s. reusable
// reports that s is fit for another message.
func (c *Client) transactions(m *Message, host dns.IPDomain, s *session, pending []int, decided []bool, set func([]int, Result), attemptErr *error) (tryNext, reusable bool) {
	size := int64(len(m.Header)) + m.Size
	switch {
	case m.SMTPUTF8 && !s.has("SMTPUTF8"):
		// RFC 6531 §3.2: no downgrade; the message bounces.
		*attemptErr = smtpclient.ErrSMTPUTF8Unsupported
		set(pending, local(553, "5.6.7", fmt.Sprintf("%s does not offer SMTPUTF8, which the message needs", host)))
		markAll(decided, pending)
		return false, true
	case m.RequireTLS && !s.has("REQUIRETLS"):
		// RFC 8689 §4.2.1.
		*attemptErr = smtpclient.ErrRequireTLSUnsupported
		set(pending, local(554, "5.7.30", fmt.Sprintf("%s does not offer REQUIRETLS", host)))
		return true, true
	case m.Has8bit && !s.has("8BITMIME"):
		// RFC 6152 §3: we do not convert to 7 bits.
		*attemptErr = smtpclient.Err8bitmimeUnsupported
		set(pending, local(554, "5.6.3", fmt.Sprintf("%s does not offer 8BITMIME, which the message needs", host)))
		return true, true
	case s.maxSize() > 0 && size > s.maxSize():
		// RFC 1870 §6.
		*attemptErr = smtpclient.ErrSize
		set(pending, local(552, "5.3.4", fmt.Sprintf("message of %d bytes larger than the %d bytes %s accepts", size, s.maxSize(), host)))
		markAll(decided, pending)
		return false, true
	}
	dsn := s.has("DSN")

	// Recipients go in transactions of at most the server's LIMITS
	// RCPTMAX; those refused with 452 "too many recipients" go in the
	// next transaction (RFC 5321 §4.5.3.1.10), as long as each
	// transaction delivers to someone.
	todo := append([]int(nil), pending...)
	for round := 0; len(todo) > 0 && round <= len(pending); round++ {
		batch := todo
		if max := s.rcptMax(); max > 0 && len(batch) > max {
			batch = batch[:max]
		}
		rest := todo[len(batch):]
		rcpts := make([]Recipient, len(batch))
		for j, i := range batch {
			rcpts[j] = m.Recipients[i]
		}
		msg := io.MultiReader(bytes.NewReader(m.Header), io.NewSectionReader(m.Body, 0, m.Size))
		res, err := s.transaction(m, rcpts, msg, size)
		if err != nil {
			*attemptErr = err
		}
		var retry []int
		delivered := 0
		for j, i := range batch {
			var r Result
			rr := res.rcpt[j]
			switch {
			case res.delivered[j]:
				r = fromReply(res.final, false)
				r.Delivered = true
				r.DSN = dsn
				delivered++
			case rr.code != 0 && rr.code/100 != 2:
				r = fromReply(rr, true)
				decided[i] = true
				if rr.code == 452 {
					retry = append(retry, i)
				}
			case res.final.code != 0:
				r = fromReply(res.final, false)
				decided[i] = true
			case err != nil:
				r = local(451, "4.4.2", fmt.Sprintf("connection to %s: %v", host, err))
			default:
				r = local(451, "4.4.2", "no reply for this recipient")
			}
			set([]int{i}, r)
		}
		if err != nil {
			// The connection is unusable: what is left goes to the
			// next host or attempt.
			return true, false
		}
		if delivered == 0 {
			retry = nil
		}
		todo = append(retry, rest...)
	}
	return true, !s.broken
}

func markAll(decided []bool, idx []int) {
	for _, i := range idx {
		decided[i] = true
	}
}

// fromReply makes the Result of a server's reply: 5xx permanent, except
// 552 to RCPT (RFC 5321 §4.5.3.1.10: treat as 452).
func fromReply(rp reply, rcpt bool) Result {
	r := Result{Code: rp.code, Enhanced: rp.enhanced, Text: rp.line}
	if r.Enhanced == "" {
		r.Enhanced = strconv.Itoa(rp.code/100) + ".0.0"
	}
	for _, t := range rp.text[min(1, len(rp.text)):] {
		r.Text += " " + t
	}
	r.Permanent = rp.code/100 == 5 && !(rp.code == 552 && rcpt)
	return r
}

// classify turns an error from mox's client into a Result: 5xx permanent,
// 4xx temporary (and 552 to RCPT, RFC 5321 §4.5.3.1.10), network errors
// temporary, a refused extension permanent.
func classify(ctx context.Context, err error) Result {
	var se smtpclient.Error
	if errors.As(err, &se) && se.Code != 0 {
		r := Result{Code: se.Code, Text: se.Line}
		if se.Secode != "" {
			r.Enhanced = strconv.Itoa(se.Code/100) + "." + se.Secode
		} else {
			r.Enhanced = strconv.Itoa(se.Code/100) + ".0.0"
		}
		r.Permanent = se.Code/100 == 5 && !(se.Code == 552 && se.Command == "rcptto")
		if r.Text == "" {
			r.Text = err.Error()
		}
		return r
	}
	switch {
	case errors.Is(err, smtpclient.ErrSize):
		return local(552, "5.3.4", err.Error())
	case errors.Is(err, smtpclient.Err8bitmimeUnsupported):
		return local(554, "5.6.3", err.Error())
	case errors.Is(err, smtpclient.ErrSMTPUTF8Unsupported):
		return local(553, "5.6.7", err.Error())
	case errors.Is(err, smtpclient.ErrRequireTLSUnsupported):
		return local(554, "5.7.30", err.Error())
	case errors.Is(err, smtpclient.ErrTLS):
		return local(451, "4.7.5", err.Error())
	case ctx.Err() != nil:
		return local(451, "4.4.7", "delivery attempt timed out or was canceled: "+err.Error())
	}
	return local(451, "4.4.2", err.Error())
}

// logAttempt writes the one line per attempt per host: at debug level when
// every recipient was delivered.
func (c *Client) logAttempt(log *slog.Logger, domain, host, ip, tlsVersion string, results []Result, start time.Time, err error) {
	codes := make([]string, len(results))
	delivered, permanent := 0, 0
	for i, r := range results {
		codes[i] = strconv.Itoa(r.Code)
		if r.Delivered {
			delivered++
		} else if r.Permanent {
			permanent++
		}
	}
	attrs := []any{
		slog.String("domain", domain),
		slog.String("host", host),
		slog.String("ip", ip),
		slog.String("tls", tlsVersion),
		slog.String("codes", strings.Join(codes, ",")),
		slog.Int("delivered", delivered),
		slog.Int("permanent", permanent),
		slog.Int("temporary", len(results)-delivered-permanent),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.Any("err", err))
	}
	if delivered == len(results) && err == nil {
		// The queue's line per recipient says it, with the message id.
		log.Debug("remote delivery attempt", attrs...)
		return
	}
	log.Info("remote delivery attempt", attrs...)
}

// parseRelayHost parses a relay host "host:port"; host is a name or an IP
// address.
func parseRelayHost(hostport string) (dns.IPDomain, int, error) {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return dns.IPDomain{}, 0, fmt.Errorf("relay host %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return dns.IPDomain{}, 0, fmt.Errorf("relay host %q: bad port", hostport)
	}
	if ip := net.ParseIP(h); ip != nil {
		return dns.IPDomain{IP: ip}, port, nil
	}
	d, err := dns.ParseDomain(h)
	if err != nil {
		return dns.IPDomain{}, 0, fmt.Errorf("relay host %q: %w", hostport, err)
	}
	return dns.IPDomain{Domain: d}, port, nil
}

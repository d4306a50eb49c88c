package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/mjl-/mox/dns"
	"github.com/mjl-/mox/mtasts"
)

const (
	// policyFetchTimeout bounds one HTTPS fetch of an MTA-STS policy.
	policyFetchTimeout = 20 * time.Second
	// policyRetryAfter is how long a failed fetch is not retried (mox's
	// FetchPolicy doc: back off 5 minutes).
	policyRetryAfter = 5 * time.Minute
	// policyMaxAge caps max_age (RFC 8461 §3.2: at most 31557600 s).
	policyMaxAge = 31557600 * time.Second
	// policyMaxSize caps a policy file (RFC 8461 §3.3 has no limit; mox
	// refuses more than 64 KiB too).
	policyMaxSize = 64 * 1024
	// policyCacheMax bounds the number of cached domains.
	policyCacheMax = 10000
)

// PolicyFetcher fetches the MTA-STS policy of domain from
// https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3).
type PolicyFetcher func(ctx context.Context, domain dns.Domain) (*mtasts.Policy, error)

// policyCache holds the MTA-STS policies seen, each until its max_age (RFC
// 8461 §5.1), keyed by the domain's A-label form.
type policyCache struct {
	mu      sync.Mutex
	entries map[string]*policyEntry
}

type policyEntry struct {
	policy      *mtasts.Policy // nil: never fetched successfully
	id          string         // the TXT record's id= when fetched
	expires     time.Time
	failedUntil time.Time
}

// policy returns the MTA-STS policy that applies to domain, or nil when the
// domain has none (opportunistic TLS). Errors are logged, never returned:
// RFC 8461 §5.1 says a sender treats a domain whose policy cannot be found
// as having none, unless a cached policy is still fresh.
func (c *Client) policy(ctx context.Context, log *slog.Logger, domain dns.Domain) *mtasts.Policy {
	now := time.Now()
	key := domain.ASCII
	c.policies.mu.Lock()
	var cached policyEntry
	if e := c.policies.entries[key]; e != nil {
		cached = *e
	}
	c.policies.mu.Unlock()
	fresh := cached.policy != nil && now.Before(cached.expires)

	rec, _, err := mtasts.LookupRecord(ctx, log, c.Resolver, domain)
	if err != nil {
		if !errors.Is(err, mtasts.ErrNoRecord) {
			log.Debug("mta-sts record lookup", slog.String("domain", key), slog.Any("err", err))
		}
		if fresh {
			return cached.policy
		}
		return nil
	}
	if fresh && cached.id == rec.ID {
		return cached.policy
	}
	if now.Before(cached.failedUntil) {
		if fresh {
			return cached.policy
		}
		return nil
	}
	fetch := c.FetchPolicy
	if fetch == nil {
		fetch = c.fetchPolicy
	}
	fctx, cancel := context.WithTimeout(ctx, policyFetchTimeout)
	p, err := fetch(fctx, domain)
	cancel()

	c.policies.mu.Lock()
	defer c.policies.mu.Unlock()
	if c.policies.entries == nil {
		c.policies.entries = map[string]*policyEntry{}
	}
	if len(c.policies.entries) >= policyCacheMax {
		for k, e := range c.policies.entries {
			if now.After(e.expires) && now.After(e.failedUntil) {
				delete(c.policies.entries, k)
			}
		}
	}
	e := c.policies.entries[key]
	if e == nil {
		if len(c.policies.entries) >= policyCacheMax {
			// Still full of fresh policies: use this one without caching it.
			if err != nil {
				return nil
			}
			return p
		}
		e = &policyEntry{}
		c.policies.entries[key] = e
	}
	if err != nil {
		log.Info("mta-sts policy fetch failed", slog.String("domain", key), slog.Any("err", err))
		e.failedUntil = now.Add(policyRetryAfter)
		if fresh {
			return cached.policy
		}
		return nil
	}
	maxAge := min(time.Duration(p.MaxAgeSeconds)*time.Second, policyMaxAge)
	*e = policyEntry{policy: p, id: rec.ID, expires: now.Add(maxAge)}
	return p
}

// fetchPolicy is the default PolicyFetcher: HTTPS on port 443, the host
// name resolved through c.Resolver, the certificate verified against
// c.RootCAs (nil: the system's roots), no redirects (RFC 8461 §3.3).
func (c *Client) fetchPolicy(ctx context.Context, domain dns.Domain) (*mtasts.Policy, error) {
	dialer := &net.Dialer{Timeout: c.connectTimeout()}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if c.httpsPort != 0 {
				port = strconv.Itoa(c.httpsPort)
			}
			ips, _, err := c.Resolver.LookupIP(ctx, "ip", host+".")
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", host, err)
			}
			var lastErr error = fmt.Errorf("no address for %s", host)
			for _, ip := range ips {
				conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return conn, nil
				}
				lastErr = err
			}
			return nil, lastErr
		},
		TLSClientConfig:     &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: policyFetchTimeout,
		DisableKeepAlives:   true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr,
		Timeout:   policyFetchTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirect not allowed for MTA-STS policies")
		},
	}
	url := "https://mta-sts." + domain.ASCII + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch %s: status %s", url, strconv.Itoa(resp.StatusCode))
	}
	// RFC 8461 §3.3: the media type is text/plain.
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("fetch %s: content-type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, policyMaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if len(buf) > policyMaxSize {
		return nil, fmt.Errorf("policy at %s larger than %d bytes", url, policyMaxSize)
	}
	p, err := mtasts.ParsePolicy(string(buf))
	if err != nil {
		return nil, fmt.Errorf("parse policy at %s: %w", url, err)
	}
	return p, nil
}

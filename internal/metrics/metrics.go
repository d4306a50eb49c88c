// Package metrics owns jodmai's Prometheus metrics: one Registry per
// server (no global registry), the counters and histograms the protocol
// packages feed through the small observer interfaces they define
// (listen.Observer, auth.LoginObserver, smtpd.Observer, queue.Observer),
// and gauges read at scrape time from the queue, the store and the
// certificates. Every metric is documented in the README ("Metrics").
//
// Observers only increment in-memory counters: nothing here blocks a
// session or touches the disk. Scrape-time reads are bounded by
// scrapeTimeout.
package metrics

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeTimeout bounds the reads a scrape makes (the queue's counts).
const scrapeTimeout = 2 * time.Second

// Metrics holds the server's metrics. Its methods are safe for concurrent
// use.
type Metrics struct {
	// Registry holds every metric; Handler serves it.
	Registry *prometheus.Registry

	conns, refused *prometheus.CounterVec
	open           *prometheus.GaugeVec
	logins         *prometheus.CounterVec
	messages       *prometheus.CounterVec
	accept         *prometheus.HistogramVec
	remote         prometheus.Histogram
	handshakes     *prometheus.CounterVec

	state *stateCollector
}

// latencyBuckets cover a local 250 (sub-millisecond to a few fsyncs) up
// to a slow disk; remoteBuckets cover a remote delivery from seconds to
// the queue's five days.
var (
	latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	remoteBuckets  = []float64{.1, .5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 5 * 24 * 3600}
)

// New returns metrics registered in a new Registry, with the Go runtime's
// and the process's own collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jodmai_connections_total", Help: "Connections accepted, by listener.",
		}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jodmai_connections_refused_total", Help: "Connections refused by a connection cap, by listener and cap.",
		}, []string{"listener", "cap"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jodmai_connections_open", Help: "Connections (sessions) open now, by listener.",
		}, []string{"listener"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jodmai_logins_total", Help: "Login attempts by protocol, mechanism and result (ok, failed, throttled).",
		}, []string{"proto", "mechanism", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jodmai_messages_total",
			Help: "Mail events: received (SMTP 250), delivered (filed in a local mailbox, per mailbox; DSNs filed for local senders included), queued (accepted into the outbound queue), sent (accepted by a remote server, per recipient), deferred (a temporary failure, per recipient and attempt), bounced (given up, per recipient).",
		}, []string{"event"}),
		accept: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jodmai_smtp_accept_seconds", Help: "Time from a message's last byte to its 250 (durable storage and queueing), by listener.",
			Buckets: latencyBuckets,
		}, []string{"listener"}),
		remote: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "jodmai_remote_delivery_seconds", Help: "Time from queueing to a remote server's acceptance, per recipient.",
			Buckets: remoteBuckets,
		}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jodmai_tls_handshakes_total", Help: "TLS handshakes completed, by protocol version.",
		}, []string{"version"}),
		state: newStateCollector(),
	}
	m.Registry.MustRegister(m.conns, m.refused, m.open, m.logins, m.messages, m.accept, m.remote, m.handshakes, m.state,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every event label exists from the start, so rates work from the
	// first scrape.
	for _, e := range []string{"received", "delivered", "queued", "sent", "deferred", "bounced"} {
		m.messages.WithLabelValues(e)
	}
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Timeout: scrapeTimeout, ErrorHandling: promhttp.ContinueOnError})
}

// Listener returns the observer of one listener's connections (a
// listen.Observer).
func (m *Metrics) Listener(name string) *ListenerObserver {
	m.open.WithLabelValues(name)
	return &ListenerObserver{
		accepted: m.conns.WithLabelValues(name),
		open:     m.open.WithLabelValues(name),
		refused:  m.refused.MustCurryWith(prometheus.Labels{"listener": name}),
	}
}

// ListenerObserver counts one listener's connections.
type ListenerObserver struct {
	accepted prometheus.Counter
	open     prometheus.Gauge
	refused  *prometheus.CounterVec
}

// Opened counts an accepted connection.
func (o *ListenerObserver) Opened() { o.accepted.Inc(); o.open.Inc() }

// Closed counts a connection closed.
func (o *ListenerObserver) Closed() { o.open.Dec() }

// Refused counts a connection a cap refused.
func (o *ListenerObserver) Refused(limit string) { o.refused.WithLabelValues(limit).Inc() }

// LoginResult counts a login decision (an auth.LoginObserver).
func (m *Metrics) LoginResult(proto, mech, result string) {
	m.logins.WithLabelValues(proto, mech, result).Inc()
}

// SMTP returns the observer of one SMTP listener (an smtpd.Observer).
func (m *Metrics) SMTP(listener string) *SMTPObserver {
	return &SMTPObserver{m: m, accept: m.accept.WithLabelValues(listener)}
}

// SMTPObserver counts one SMTP listener's messages.
type SMTPObserver struct {
	m      *Metrics
	accept prometheus.Observer
}

// MessageAccepted counts a message answered 250: filed in mailboxes
// local mailboxes, queued when queued for remote recipients, d after its
// last byte.
func (o *SMTPObserver) MessageAccepted(mailboxes int, queued bool, d time.Duration) {
	o.m.messages.WithLabelValues("received").Inc()
	o.m.messages.WithLabelValues("delivered").Add(float64(mailboxes))
	o.accept.Observe(d.Seconds())
}

// Filed counts a DSN or bounce the queue filed for a local sender, in
// mailboxes mailboxes (a queue.Observer): delivered, as SMTP's are.
func (m *Metrics) Filed(mailboxes int) {
	m.messages.WithLabelValues("delivered").Add(float64(mailboxes))
}

// Queued counts a message added to the outbound queue (a queue.Observer).
func (m *Metrics) Queued() { m.messages.WithLabelValues("queued").Inc() }

// Attempted counts one recipient's delivery attempt: outcome "delivered"
// (sent), "deferred", "bounced" or "expired" (bounced); age is how long
// the message had been queued.
func (m *Metrics) Attempted(outcome string, age time.Duration) {
	switch outcome {
	case "delivered":
		m.messages.WithLabelValues("sent").Inc()
		m.remote.Observe(age.Seconds())
	case "deferred":
		m.messages.WithLabelValues("deferred").Inc()
	default:
		m.messages.WithLabelValues("bounced").Inc()
	}
}

// tlsVersions names versions as Prometheus labels.
var tlsVersions = map[uint16]string{
	tls.VersionTLS10: "1.0", tls.VersionTLS11: "1.1", tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3",
}

// CountHandshakes makes conf count its completed handshakes by version,
// keeping any VerifyConnection it has. It returns conf.
func (m *Metrics) CountHandshakes(conf *tls.Config) *tls.Config {
	counters := map[uint16]prometheus.Counter{}
	for v, name := range tlsVersions {
		counters[v] = m.handshakes.WithLabelValues(name)
	}
	other := m.handshakes.WithLabelValues("other")
	next := conf.VerifyConnection
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if next != nil {
			if err := next(cs); err != nil {
				return err
			}
		}
		if c, ok := counters[cs.Version]; ok {
			c.Inc()
		} else {
			other.Inc()
		}
		return nil
	}
	return conf
}

// QueueStats, StoreStats and Cert are what the gauges read at scrape
// time; the server sets the functions that provide them.
type QueueStats struct {
	Messages, Pending int
	Oldest            time.Time
}

// StoreStats is the store's part.
type StoreStats struct {
	OpenAccounts      int
	PendingDeliveries int64
}

// DomainUsage is the storage the accounts of one domain use.
type DomainUsage struct {
	Bytes, Messages int64
}

// Cert is one certificate in use.
type Cert struct {
	Name, Source string
	NotAfter     time.Time
}

// Sources are the scrape-time readers; a nil one is skipped.
type Sources struct {
	Queue func(ctx context.Context) (QueueStats, error)
	Store func() StoreStats
	// Usage returns the storage used per domain; it must not open
	// accounts (a scrape costs O(domains)).
	Usage func(ctx context.Context) (map[string]DomainUsage, error)
	Certs func() []Cert
}

// Watch sets the scrape-time sources.
func (m *Metrics) Watch(s Sources) {
	m.state.mu.Lock()
	m.state.src = s
	m.state.mu.Unlock()
}

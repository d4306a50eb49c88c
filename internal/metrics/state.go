package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reads the queue, store and certificates at each scrape.
type stateCollector struct {
	mu  sync.Mutex
	src Sources
	now func() time.Time

	queueMessages, queuePending, queueOldest *prometheus.Desc
	journalLag, openAccounts                 *prometheus.Desc
	certExpiry                               *prometheus.Desc
	scrapeErrors                             *prometheus.Desc
}

func newStateCollector() *stateCollector {
	return &stateCollector{
		now:           time.Now,
		queueMessages: prometheus.NewDesc("jodmai_queue_messages", "Messages in the outbound queue.", nil, nil),
		queuePending:  prometheus.NewDesc("jodmai_queue_recipients_pending", "Recipients in the outbound queue still to be delivered.", nil, nil),
		queueOldest:   prometheus.NewDesc("jodmai_queue_oldest_age_seconds", "Age of the oldest message in the outbound queue; 0 when empty.", nil, nil),
		journalLag:    prometheus.NewDesc("jodmai_store_pending_deliveries", "Deliveries acknowledged (in the delivery journal) but not yet applied to their mailbox index: the journal's lag.", nil, nil),
		openAccounts:  prometheus.NewDesc("jodmai_store_open_accounts", "Accounts the store has open.", nil, nil),
		certExpiry:    prometheus.NewDesc("jodmai_tls_certificate_expiry_timestamp_seconds", "When each certificate in use expires (Unix time), by name it was served for (\"\": the default) and source (acme, file, self-signed).", []string{"name", "source"}, nil),
		scrapeErrors:  prometheus.NewDesc("jodmai_metrics_source_errors", "1 when a scrape-time source failed this scrape, by source.", []string{"source"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueMessages, c.queuePending, c.queueOldest, c.journalLag, c.openAccounts, c.certExpiry, c.scrapeErrors} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if src.Queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		st, err := src.Queue(ctx)
		cancel()
		if err != nil {
			gauge(c.scrapeErrors, 1, "queue")
		} else {
			gauge(c.scrapeErrors, 0, "queue")
			gauge(c.queueMessages, float64(st.Messages))
			gauge(c.queuePending, float64(st.Pending))
			age := 0.0
			if !st.Oldest.IsZero() {
				age = max(0, c.now().Sub(st.Oldest).Seconds())
			}
			gauge(c.queueOldest, age)
		}
	}
	if src.Store != nil {
		st := src.Store()
		gauge(c.journalLag, float64(st.PendingDeliveries))
		gauge(c.openAccounts, float64(st.OpenAccounts))
	}
	if src.Certs != nil {
		for _, cert := range src.Certs() {
			gauge(c.certExpiry, float64(cert.NotAfter.Unix()), cert.Name, cert.Source)
		}
	}
}

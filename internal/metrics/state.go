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
	storeBytes, storeMessages                *prometheus.Desc
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
		storeBytes:    prometheus.NewDesc("jodmai_store_bytes", "Storage used by the messages of each domain's accounts (sum of message sizes), by domain. An account's share is noted when it opens and closes and every 30 s while open, so it may lag by up to 30 s (5 minutes for changes made by admin commands beside the server).", []string{"domain"}, nil),
		storeMessages: prometheus.NewDesc("jodmai_store_messages", "Messages in each domain's accounts, by domain; lags like jodmai_store_bytes.", []string{"domain"}, nil),
		certExpiry:    prometheus.NewDesc("jodmai_tls_certificate_expiry_timestamp_seconds", "When each certificate in use expires (Unix time), by name it was served for (\"\": the default) and source (acme, file, self-signed).", []string{"name", "source"}, nil),
		scrapeErrors:  prometheus.NewDesc("jodmai_metrics_source_errors", "1 when a scrape-time source failed this scrape, by source.", []string{"source"}, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueMessages, c.queuePending, c.queueOldest, c.journalLag, c.openAccounts, c.storeBytes, c.storeMessages, c.certExpiry, c.scrapeErrors} {
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
	if src.Usage != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		usage, err := src.Usage(ctx)
		cancel()
		if err != nil {
			gauge(c.scrapeErrors, 1, "usage")
		} else {
			gauge(c.scrapeErrors, 0, "usage")
		}
		for domain, u := range usage {
			gauge(c.storeBytes, float64(u.Bytes), domain)
			gauge(c.storeMessages, float64(u.Messages), domain)
		}
	}
	if src.Certs != nil {
		for _, cert := range src.Certs() {
			gauge(c.certExpiry, float64(cert.NotAfter.Unix()), cert.Name, cert.Source)
		}
	}
}

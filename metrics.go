// Metrics: the Prometheus endpoint on a listener of its own (-metrics-addr),
// and the figures it reports.

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// latencyBuckets are the buckets of the request and commit histograms, in
// seconds: from a commit's fsync (half a millisecond) to a request slow
// enough for Entra to give up on it (10 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 5 * time.Second

// metrics is the registry behind GET /metrics: its own, not the global
// default, so that two servers in one process (tests) never share figures.
type metrics struct {
	registry *prometheus.Registry
	requests *requestMetrics
	certs    servedCert

	// cycleStatsFunc, when set, reports Entra's provisioning cycle in progress,
	// or the last one when none is: its operations and failures as Entra
	// counts them, and the quarantine risk. It is read at each scrape, and
	// must be set before the metrics listener serves. While it is nil, or
	// returns false (no cycle seen yet), the scimbox_entra_* metrics are left out.
	cycleStatsFunc func() (cycleMetrics, bool)
}

// cycleMetrics is what the metrics report of one Entra provisioning cycle; the
// cycle tracker fills it in (a type of its own, so the tracker's may differ).
type cycleMetrics struct {
	Operations        int     // SCIM calls in the cycle
	Failures          int     // failed calls Entra counts toward quarantine
	ReferenceFailures int     // failed manager and group-member references, which Entra counts apart
	QuarantineRisk    float64 // how close the cycle is to Entra's quarantine threshold: 1 means reached
	Started, LastCall time.Time
}

// newMetrics builds the registry: the Go runtime and process collectors,
// the SCIM requests, the store's writer and figures read at scrape time.
func newMetrics(store *Store, log *slog.Logger) *metrics {
	m := &metrics{registry: prometheus.NewRegistry(), requests: newRequestMetrics()}
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests.duration, m.requests.total, m.requests.provisioningFailures,
		store.stats.commitSeconds, store.stats.events,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scimbox_writer_waiting",
			Help: "Writes waiting for the database's single writer connection.",
		}, func() float64 { return float64(store.stats.waiting.Load()) }),
		&scrapeCollector{store: store, metrics: m, log: log},
	)
	return m
}

// endpoint serves GET /metrics and nothing else: 404 everywhere else.
func (m *metrics) endpoint(log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		ErrorLog:      newStdLogger(func(msg string) { log.Warn("metrics: " + msg) }),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

// attach watches the certificate each HTTPS server hands out and adds the
// metrics server on ln to servers; without a listener it changes nothing.
func (m *metrics) attach(servers []served, ln net.Listener, log *slog.Logger) []served {
	if m == nil || ln == nil {
		return servers
	}
	for _, s := range servers {
		if s.tls && s.srv.TLSConfig != nil && s.srv.TLSConfig.GetCertificate != nil {
			s.srv.TLSConfig.GetCertificate = m.certs.track(s.srv.TLSConfig.GetCertificate)
		}
	}
	return append(servers, served{newHTTPServer(m.endpoint(log), log), ln, false})
}

// listenMetrics binds -metrics-addr, or returns nil when it is not set. The
// endpoint has no credential, so an address others can reach is warned about.
func listenMetrics(cfg serveConfig, handover *handover, log *slog.Logger) (net.Listener, error) {
	if cfg.MetricsAddr == "" {
		return nil, nil
	}
	// Through the handover, like the other listeners: a SIGHUP upgrade passes
	// the socket on rather than failing to bind a port the old process holds.
	ln, err := handover.listen("metrics-addr", "metrics", cfg.MetricsAddr)
	if err != nil {
		return nil, err
	}
	if warning := metricsExposure(ln.Addr()); warning != "" {
		log.Warn("METRICS ARE PUBLIC: -metrics-addr "+warning+", and /metrics has no credential: anyone who reaches the port reads them. "+
			"Bind it to 127.0.0.1 or a private interface (-metrics-addr 127.0.0.1:9090), or firewall the port", "addr", ln.Addr().String())
	}
	return ln, nil
}

// sharedAddressSpace is RFC 6598's carrier-grade NAT range, which overlay
// networks such as Tailscale use for private addresses.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// metricsExposure says why the bound address is reachable by others, or ""
// when it is a loopback or private one.
func metricsExposure(addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return "is not an IP address"
	}
	ip := ap.Addr().Unmap()
	switch {
	case ip.IsUnspecified():
		return "listens on every interface, public ones included"
	case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), sharedAddressSpace.Contains(ip):
		return ""
	}
	return "is a public address"
}

// checkMetricsAddr validates -metrics-addr against the other listeners'.
func (c serveConfig) checkMetricsAddr() error {
	if c.MetricsAddr == "" {
		return nil
	}
	host, p, err := net.SplitHostPort(c.MetricsAddr)
	if err != nil || p == "" {
		return fmt.Errorf("-metrics-addr %q is not HOST:PORT (for example 127.0.0.1:9090)", c.MetricsAddr)
	}
	if p == "0" {
		return nil
	}
	others := []string{c.Addr}
	if c.mode() == modeACME || c.mode() == modeCert {
		others = []string{c.HTTPSAddr, c.HTTPAddr}
	}
	for _, o := range others {
		if oh, op, err := net.SplitHostPort(o); err == nil && op == p && (oh == host || oh == "" || host == "") {
			return fmt.Errorf("-metrics-addr %q and %q share a port: the metrics need a port of their own (for example 127.0.0.1:9090)", c.MetricsAddr, o)
		}
	}
	return nil
}

// ---- SCIM requests ----

// requestMetrics count SCIM requests by operation and outcome.
type requestMetrics struct {
	duration             *prometheus.HistogramVec
	total                *prometheus.CounterVec
	provisioningFailures prometheus.Counter
}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scimbox_scim_request_duration_seconds",
			Help:    "Time to answer SCIM requests, by operation and outcome (success, client_error, server_error).",
			Buckets: latencyBuckets,
		}, []string{"op", "outcome"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbox_scim_requests_total",
			Help: "SCIM requests answered, by operation and HTTP status code.",
		}, []string{"op", "code"}),
		provisioningFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimbox_provisioning_log_failures_total",
			Help: "Failed requests of authenticated SCIM clients: the failures the provisioning log records.",
		}),
	}
}

// observe counts a SCIM request once it is answered; other requests (admin
// page, API, health check) are not counted. A server without metrics has
// none (nil), and pays nothing.
func (m *requestMetrics) observe(r *http.Request, ri *requestInfo, status int, took time.Duration) {
	if m == nil || !strings.HasPrefix(r.URL.Path, scimBase+"/") {
		return
	}
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing: net/http answers 200
	}
	op := ri.op
	if op == "" {
		op = "no such endpoint" // the router found no route
	}
	outcome := "success"
	switch {
	case status >= 500:
		outcome = "server_error"
	case status >= 400:
		outcome = "client_error"
	}
	m.duration.WithLabelValues(op, outcome).Observe(took.Seconds())
	m.total.WithLabelValues(op, strconv.Itoa(status)).Inc()
	if ri.scim && status >= 400 {
		m.provisioningFailures.Inc()
	}
}

// ---- the store's writer ----

// writerStats instrument Store.write: how many writes wait for the writer
// connection, how long commits take, and the events committed.
type writerStats struct {
	waiting       atomic.Int64
	commitSeconds prometheus.Histogram
	events        *prometheus.CounterVec
	// pendingEvents counts the events of the write transaction in progress,
	// by type, until it commits. Only the goroutine holding the writer
	// connection touches it, so the connection is its lock.
	pendingEvents map[string]int
}

func newWriterStats() *writerStats {
	return &writerStats{
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scimbox_writer_commit_duration_seconds",
			Help:    "Time to commit a write transaction (the WAL append and its fsync); its count is the number of commits.",
			Buckets: latencyBuckets,
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimbox_events_total",
			Help: "Change-feed events committed, by type.",
		}, []string{"type"}),
	}
}

// noteEvents counts n events of type typ in the write transaction in progress.
func (w *writerStats) noteEvents(typ string, n int) {
	if w.pendingEvents == nil {
		w.pendingEvents = map[string]int{}
	}
	w.pendingEvents[typ] += n
}

// takeEvents hands over the events counted in the transaction in progress.
func (w *writerStats) takeEvents() map[string]int {
	events := w.pendingEvents
	w.pendingEvents = nil
	return events
}

// committed records a commit that took took, and the events it made durable.
func (w *writerStats) committed(took time.Duration, events map[string]int) {
	w.commitSeconds.Observe(took.Seconds())
	for typ, n := range events {
		w.events.WithLabelValues(typ).Add(float64(n))
	}
}

// ---- the served certificate ----

// servedCert remembers when the certificate the HTTPS server last handed to
// a client expires: what Entra sees, across reloads and renewals.
type servedCert struct {
	last     atomic.Pointer[tls.Certificate]
	notAfter atomic.Int64 // Unix seconds; 0 before the first handshake
}

// track wraps a tls.Config's GetCertificate to note the certificate served.
// A TLS-ALPN-01 challenge's certificate is for the CA only, and not noted.
func (c *servedCert) track(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, err := get(hello)
		if err != nil || cert == nil || len(cert.Certificate) == 0 || slices.Equal(hello.SupportedProtos, []string{acmez.ACMETLS1Protocol}) {
			return cert, err
		}
		if c.last.Swap(cert) != cert { // parse only when the certificate changed
			leaf := cert.Leaf
			if leaf == nil {
				if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
					return cert, nil // the client will say what is wrong with it
				}
			}
			c.notAfter.Store(leaf.NotAfter.Unix())
		}
		return cert, nil
	}
}

// ---- figures read at scrape time ----

var (
	descDatabaseBytes = prometheus.NewDesc("scimbox_database_bytes",
		"Size of the database files: the database itself (file=\"db\") and its write-ahead log (file=\"wal\").", []string{"file"}, nil)
	descSnapshotAge = prometheus.NewDesc("scimbox_snapshot_age_seconds",
		"Age of the newest automatic snapshot in backups/ (absent while there is none).", nil, nil)
	descCertExpiry = prometheus.NewDesc("scimbox_tls_certificate_expiry_seconds",
		"Seconds until the HTTPS certificate last served to a client expires; negative once expired (absent before the first handshake and without HTTPS).", nil, nil)
	descWebhookPending = prometheus.NewDesc("scimbox_webhook_pending_deliveries",
		"Events queued for a webhook endpoint and not yet delivered.", []string{"webhook"}, nil)
	descWebhookLag = prometheus.NewDesc("scimbox_webhook_oldest_pending_age_seconds",
		"Age of the oldest event a webhook endpoint has not received yet; 0 when none waits.", []string{"webhook"}, nil)
	descWebhookDisabled = prometheus.NewDesc("scimbox_webhook_disabled",
		"1 when a webhook endpoint was disabled after repeated failures, else 0.", []string{"webhook"}, nil)
	descCycleOperations = prometheus.NewDesc("scimbox_entra_cycle_operations",
		"SCIM calls in Entra's current (or last) provisioning cycle.", nil, nil)
	descCycleFailures = prometheus.NewDesc("scimbox_entra_cycle_failures",
		"Failed calls in Entra's current (or last) provisioning cycle, by kind: reference failures (manager, group members) Entra counts apart.", []string{"kind"}, nil)
	descCycleDuration = prometheus.NewDesc("scimbox_entra_cycle_duration_seconds",
		"Time from the first to the last call of Entra's current (or last) provisioning cycle.", nil, nil)
	descCycleLastCall = prometheus.NewDesc("scimbox_entra_cycle_last_call_timestamp_seconds",
		"When Entra last called, as a Unix time.", nil, nil)
	descQuarantineRisk = prometheus.NewDesc("scimbox_entra_quarantine_risk_ratio",
		"How close the current cycle is to Entra's quarantine threshold: 1 means Entra would quarantine the job.", nil, nil)
)

// scrapeCollector reads, at each scrape, what is cheap to read then and
// costly to keep current: files' sizes and ages, the webhook queues (one
// indexed query; endpoints are few), the served certificate, the cycle.
type scrapeCollector struct {
	store   *Store
	metrics *metrics
	log     *slog.Logger
}

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDatabaseBytes, descSnapshotAge, descCertExpiry, descWebhookPending, descWebhookLag,
		descWebhookDisabled, descCycleOperations, descCycleFailures, descCycleDuration, descCycleLastCall, descQuarantineRisk} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	now := c.store.now()
	for file, path := range map[string]string{"db": c.store.path, "wal": c.store.path + "-wal"} {
		fi, err := os.Stat(path)
		switch {
		case err == nil:
			gauge(descDatabaseBytes, float64(fi.Size()), file)
		case errors.Is(err, os.ErrNotExist):
			gauge(descDatabaseBytes, 0, file)
		default:
			c.log.Warn("metrics: database file size", "path", path, "err", err)
		}
	}
	if snaps, err := c.store.Snapshots(); err != nil {
		c.log.Warn("metrics: snapshot age", "err", err)
	} else if len(snaps) > 0 {
		gauge(descSnapshotAge, now.Sub(snaps[0].Taken).Seconds())
	}
	if notAfter := c.metrics.certs.notAfter.Load(); notAfter != 0 {
		gauge(descCertExpiry, float64(notAfter-now.Unix()))
	}

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if backlogs, err := c.store.WebhookBacklogs(ctx); err != nil {
		c.log.Warn("metrics: webhook queues", "err", err)
	} else {
		for _, b := range backlogs {
			lag, disabled := 0.0, 0.0
			if b.Pending > 0 {
				lag = max(now.Sub(b.Oldest).Seconds(), 0)
			}
			if b.Disabled {
				disabled = 1
			}
			gauge(descWebhookPending, float64(b.Pending), b.ID)
			gauge(descWebhookLag, lag, b.ID)
			gauge(descWebhookDisabled, disabled, b.ID)
		}
	}

	if c.metrics.cycleStatsFunc != nil {
		if cs, ok := c.metrics.cycleStatsFunc(); ok {
			gauge(descCycleOperations, float64(cs.Operations))
			gauge(descCycleFailures, float64(cs.Failures), "non_reference")
			gauge(descCycleFailures, float64(cs.ReferenceFailures), "reference")
			gauge(descCycleDuration, max(cs.LastCall.Sub(cs.Started).Seconds(), 0))
			gauge(descCycleLastCall, float64(cs.LastCall.UnixMilli())/1000)
			gauge(descQuarantineRisk, cs.QuarantineRisk)
		}
	}
}

// watchReplica adds the replication's figures, read at each scrape; r nil (no replica) adds none.
func (m *metrics) watchReplica(r *replicator) {
	if r == nil {
		return
	}
	m.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scimbox_replica_lag_seconds",
			Help: "How long the oldest transaction not yet in the replica has waited (0 when the replica is caught up).",
		}, func() float64 { return r.Status().LagSeconds }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scimbox_replica_size_bytes",
			Help: "Size of the replica's files (snapshots and transaction files), read each minute.",
		}, func() float64 { return float64(r.Status().SizeBytes) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scimbox_replica_last_sync_timestamp_seconds",
			Help: "Unix time of the last successful upload to the replica (0 before the first).",
		}, func() float64 {
			if t := r.Status().LastSync; !t.IsZero() {
				return float64(t.UnixNano()) / 1e9
			}
			return 0
		}),
	)
}

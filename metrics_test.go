package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url and returns the body and its parsed metric families.
func scrape(t *testing.T, url string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want the text format", url, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", url, err, body)
	}
	return body, fams
}

// sample returns the value of the metric name whose labels include those
// given as name=value pairs; for a histogram, its count. ok is false when
// there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	fam := fams[name]
	if fam == nil {
		return 0, false
	}
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// promtoolCheck runs `promtool check metrics` on body: Prometheus's own
// linter of the exposition format. Without promtool the test is skipped
// locally, and fails in CI (.ci/promtool.sh installs it).
func promtoolCheck(t *testing.T, body []byte) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed: CI must run .ci/promtool.sh (apt-get install prometheus)")
		}
		t.Skip("promtool is not installed (apt-get install prometheus, or .ci/promtool.sh): /metrics was not checked with `promtool check metrics`")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s\n--- the metrics:\n%s", err, out, body)
	}
}

// TestMetricsEndpoint serves with -metrics-addr, sends SCIM requests and
// checks that /metrics on its own listener counts exactly those, passes
// promtool, and serves nothing else.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	cfg.Addr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0"
	// An endpoint that refuses every delivery keeps every event queued.
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer receiver.Close()
	s := openStoreAt(t, cfg.DB)
	hook, err := s.CreateWebhook(context.Background(), receiver.URL, []string{evUserCreated})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	addrs, logs, stop, done := runServe(t, cfg)
	if addrs.Metrics == "" {
		t.Fatal("serve with -metrics-addr reported no metrics address")
	}
	base := "http://" + addrs.Plain + scimBase
	c := &http.Client{Timeout: 10 * time.Second}
	const creates, failingPatches = 3, 2
	for i := range creates {
		status, doc, err := scimCall(c, "POST", base+"/Users", token, fmt.Sprintf(`{"schemas":["%s"],"userName":"m%d@example.com"}`, userSchema, i))
		if err != nil || status != http.StatusCreated {
			t.Fatalf("create %d: %d %v %v", i, status, doc, err)
		}
	}
	rename := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"X"}]}`
	for i := range failingPatches {
		status, doc, err := scimCall(c, "PATCH", base+"/Users/no-such-user-"+strconv.Itoa(i), token, rename)
		if err != nil || status != http.StatusNotFound {
			t.Fatalf("PATCH of an unknown user: %d %v %v", status, doc, err)
		}
	}
	if status, _, err := scimCall(c, "GET", base+"/Users", "not-a-token", ""); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("GET with a bad token: %d %v", status, err)
	}
	// Admin pages and the health check are not SCIM requests.
	for _, path := range []string{"/healthz", "/login"} {
		resp, err := c.Get("http://" + addrs.Plain + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	body, fams := scrape(t, "http://"+addrs.Metrics+"/metrics")
	for _, tc := range []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"creates by status", "scimbox_scim_requests_total", []string{"op", "create user", "code", "201"}, creates},
		{"creates by outcome", "scimbox_scim_request_duration_seconds", []string{"op", "create user", "outcome", "success"}, creates},
		{"failing PATCHes by status", "scimbox_scim_requests_total", []string{"op", "update user", "code", "404"}, failingPatches},
		{"failing PATCHes by outcome", "scimbox_scim_request_duration_seconds", []string{"op", "update user", "outcome", "client_error"}, failingPatches},
		{"bad token", "scimbox_scim_requests_total", []string{"op", "list users", "code", "401"}, 1},
		{"failures in the provisioning log (not the bad token's)", "scimbox_provisioning_log_failures_total", nil, failingPatches},
		{"events", "scimbox_events_total", []string{"type", evUserCreated}, creates},
		{"every event waits for the refusing endpoint", "scimbox_webhook_pending_deliveries", []string{"webhook", hook.ID}, creates},
		{"no write waits now", "scimbox_writer_waiting", nil, 0},
	} {
		got, ok := sample(fams, tc.metric, tc.labels...)
		if !ok || got != tc.want {
			t.Errorf("%s: %s%v = %v (present %v), want %v", tc.name, tc.metric, tc.labels, got, ok, tc.want)
		}
	}
	var scimSeries float64
	for _, m := range fams["scimbox_scim_requests_total"].GetMetric() {
		scimSeries += m.Counter.GetValue()
	}
	if got, want := scimSeries, float64(creates+failingPatches+1); got != want {
		t.Errorf("SCIM requests counted: %v, want %v (the admin page and /healthz are not SCIM)", got, want)
	}
	for _, name := range []string{"scimbox_writer_commit_duration_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		if v, ok := sample(fams, name); !ok || v <= 0 && name != "go_goroutines" && name != "process_resident_memory_bytes" {
			t.Errorf("%s = %v (present %v), want a positive value", name, v, ok)
		}
	}
	if v, ok := sample(fams, "scimbox_database_bytes", "file", "db"); !ok || v <= 0 {
		t.Errorf("scimbox_database_bytes{file=db} = %v (present %v), want the file's size", v, ok)
	}
	if _, ok := sample(fams, "scimbox_tls_certificate_expiry_seconds"); ok {
		t.Error("a certificate expiry is reported in plain-HTTP mode")
	}

	// The metrics listener serves /metrics only; the SCIM listener does not serve it.
	for _, tc := range []struct{ method, url string }{
		{"GET", "http://" + addrs.Metrics + "/"},
		{"GET", "http://" + addrs.Metrics + "/metrics/x"},
		{"GET", "http://" + addrs.Metrics + "/scim/v2/Users"},
		{"GET", "http://" + addrs.Metrics + "/healthz"},
		{"GET", "http://" + addrs.Plain + "/metrics"},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || bytes.Contains(got, []byte("scimbox_")) {
			t.Errorf("%s %s: %d, want 404 without metrics", tc.method, tc.url, resp.StatusCode)
		}
	}

	stop()
	waitServe(t, done, logs)
	if strings.Contains(logs.String(), "METRICS ARE PUBLIC") {
		t.Errorf("a loopback -metrics-addr was warned about:\n%s", logs)
	}
	promtoolCheck(t, body)
}

// TestMetricsOffByDefault: without -metrics-addr (or SCIMBOX_METRICS_ADDR)
// no metrics listener is opened.
func TestMetricsOffByDefault(t *testing.T) {
	t.Parallel()
	cfg, _ := testServeConfig(t)
	if cfg.MetricsAddr != "" {
		t.Fatalf("default -metrics-addr is %q, want off", cfg.MetricsAddr)
	}
	env := func(name string) (string, bool) {
		if name == "SCIMBOX_METRICS_ADDR" {
			return "127.0.0.1:9090", true
		}
		return "", false
	}
	if fromEnv, err := parseServeConfigEnv(nil, io.Discard, env); err != nil || fromEnv.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("SCIMBOX_METRICS_ADDR: -metrics-addr %q, err %v", fromEnv.MetricsAddr, err)
	}

	cfg.Addr = "127.0.0.1:0"
	addrs, logs, stop, done := runServe(t, cfg)
	if addrs.Metrics != "" {
		t.Errorf("a metrics listener on %s without -metrics-addr", addrs.Metrics)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addrs.Plain + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("scimbox_")) || bytes.Contains(body, []byte("go_goroutines")) {
		t.Errorf("the SCIM listener serves metrics:\n%s", body)
	}
	stop()
	waitServe(t, done, logs)
	if strings.Contains(logs.String(), "metrics=") {
		t.Errorf("the log names a metrics address:\n%s", logs)
	}
}

func TestMetricsAddrValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, true)
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for none
	}{
		{"off", nil, ""},
		{"loopback", []string{"-metrics-addr", "127.0.0.1:9090"}, ""},
		{"every interface is allowed (and warned about)", []string{"-metrics-addr", ":9090"}, ""},
		{"any free port", []string{"-metrics-addr", "127.0.0.1:0"}, ""},
		{"no port", []string{"-metrics-addr", "9090"}, "-metrics-addr \"9090\" is not HOST:PORT"},
		{"the SCIM address", []string{"-metrics-addr", defaultAddr}, "share a port"},
		{"the SCIM port on every interface", []string{"-metrics-addr", ":8080"}, "share a port"},
		{"another port of the same host", []string{"-metrics-addr", "127.0.0.1:8081"}, ""},
		{"the HTTPS port", []string{"-tls-cert", certFile, "-tls-key", keyFile, "-metrics-addr", "127.0.0.1:443"}, "share a port"},
		{"the redirect port", []string{"-tls-cert", certFile, "-tls-key", keyFile, "-metrics-addr", "127.0.0.1:80"}, "share a port"},
		{"HTTPS mode, own port", []string{"-tls-cert", certFile, "-tls-key", keyFile, "-metrics-addr", "127.0.0.1:8080"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServeConfigEnv(append([]string{"-db", filepath.Join(dir, "x.db")}, tc.args...), io.Discard, noEnv)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestMetricsExposure(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"127.0.0.1:9090", false},
		{"[::1]:9090", false},
		{"10.1.2.3:9090", false},
		{"172.16.0.9:9090", false},
		{"192.168.1.10:9090", false},
		{"[fd00::1]:9090", false},
		{"100.101.102.103:9090", false}, // Tailscale
		{"[fe80::1]:9090", false},
		{"0.0.0.0:9090", true},
		{"[::]:9090", true},
		{"8.8.8.8:9090", true},
		{"[2001:4860::8888]:9090", true},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := metricsExposure(addr); (got != "") != tc.public {
			t.Errorf("metricsExposure(%s) = %q, want public %v", tc.addr, got, tc.public)
		}
	}
}

// TestMetricsPublicAddressWarned: a -metrics-addr on every interface is
// served, with a loud warning.
func TestMetricsPublicAddressWarned(t *testing.T) {
	t.Parallel()
	cfg, _ := testServeConfig(t)
	cfg.Addr, cfg.MetricsAddr = "127.0.0.1:0", ":0"
	addrs, logs, stop, done := runServe(t, cfg)
	_, port, _ := net.SplitHostPort(addrs.Metrics)
	scrape(t, "http://127.0.0.1:"+port+"/metrics")
	stop()
	<-done
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "METRICS ARE PUBLIC") {
		t.Errorf("no warning about metrics on every interface:\n%s", logs)
	}
}

// TestMetricsCertificateExpiry: with HTTPS, the expiry of the certificate
// served to clients is reported once one has connected.
func TestMetricsCertificateExpiry(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	dir := t.TempDir()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg.HTTPSAddr, cfg.HTTPAddr, cfg.MetricsAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	cert := writeCert(t, cfg.TLSCert, cfg.TLSKey, true)
	s := startServe(t, cfg, nil)
	metricsURL := "http://" + s.addrs.Metrics + "/metrics"
	if _, fams := scrape(t, metricsURL); fams["scimbox_tls_certificate_expiry_seconds"] != nil {
		t.Error("a certificate expiry is reported before any client connected")
	}
	checkSCIMOverHTTPS(t, poolOf(cert), "https://localhost:"+strconv.Itoa(port(t, s.addrs.HTTPS)), token)
	// Whole seconds from the scrape to NotAfter: at most a second (the
	// truncation) more than from just before the scrape, and not a day less.
	left := time.Until(cert.NotAfter).Seconds()
	body, fams := scrape(t, metricsURL)
	got, ok := sample(fams, "scimbox_tls_certificate_expiry_seconds")
	if !ok || got > left+1 || got < left-86400 {
		t.Errorf("scimbox_tls_certificate_expiry_seconds = %v (present %v), want about %v", got, ok, left)
	}
	promtoolCheck(t, body)
}

// TestServedCertTracking: the expiry follows the certificate handed out,
// parsed only when it changes, and never a TLS-ALPN-01 challenge's.
func TestServedCertTracking(t *testing.T) {
	t.Parallel()
	newCert := func(notAfter time.Time, leaf bool) *tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		if leaf {
			c.Leaf, _ = x509.ParseCertificate(der)
		}
		return c
	}
	t1, t2 := time.Now().Add(30*24*time.Hour).Truncate(time.Second), time.Now().Add(-time.Hour).Truncate(time.Second)
	current := newCert(t1, true)
	var sc servedCert
	get := sc.track(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current, nil })
	hello, challenge := &tls.ClientHelloInfo{}, &tls.ClientHelloInfo{SupportedProtos: []string{acmez.ACMETLS1Protocol}}

	if got := sc.notAfter.Load(); got != 0 {
		t.Fatalf("before any handshake: %d", got)
	}
	get(hello)
	if got := sc.notAfter.Load(); got != t1.Unix() {
		t.Errorf("after a handshake: %d, want %d", got, t1.Unix())
	}
	current = newCert(t2, false) // an expired one, without a parsed leaf
	get(challenge)
	if got := sc.notAfter.Load(); got != t1.Unix() {
		t.Errorf("after a TLS-ALPN-01 challenge: %d, want the served certificate's %d", got, t1.Unix())
	}
	get(hello)
	if got := sc.notAfter.Load(); got != t2.Unix() {
		t.Errorf("after the certificate changed: %d, want %d", got, t2.Unix())
	}
}

// storeMetrics gathers a store's metrics as a scrape of /metrics would.
func storeMetrics(t *testing.T, s *Store) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := newMetrics(s, slog.New(slog.NewTextHandler(io.Discard, nil))).registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

// TestEventsCountedOnCommit: events count once committed, never when their
// transaction rolls back, nor in the transaction after that.
func TestEventsCountedOnCommit(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	emit := func(typ string, n int, fail error) error {
		return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
			data := make([]any, n)
			for i := range data {
				data[i] = map[string]any{"i": i}
			}
			if err := s.emitMany(ctx, tx, now, typ, "User", "u1", data); err != nil {
				return err
			}
			return fail
		})
	}
	if err := emit(evUserCreated, 2, nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := emit(evUserUpdated, 5, boom); !errors.Is(err, boom) {
		t.Fatalf("rolled-back write: %v", err)
	}
	if err := emit(evUserDeleted, 1, nil); err != nil {
		t.Fatal(err)
	}
	fams := storeMetrics(t, s)
	for typ, want := range map[string]float64{evUserCreated: 2, evUserUpdated: 0, evUserDeleted: 1} {
		if got, _ := sample(fams, "scimbox_events_total", "type", typ); got != want {
			t.Errorf("scimbox_events_total{type=%q} = %v, want %v", typ, got, want)
		}
	}
}

// TestWriterQueueDepth: a write waiting for the writer connection is counted
// while it waits, and the commits are timed.
func TestWriterQueueDepth(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	before, _ := sample(storeMetrics(t, s), "scimbox_writer_commit_duration_seconds")
	holding, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s.write(ctx, func(context.Context, *sql.Tx, time.Time) error {
			close(holding)
			<-release
			return nil
		})
	})
	<-holding
	wg.Go(func() { s.write(ctx, func(context.Context, *sql.Tx, time.Time) error { return nil }) })
	for deadline := time.Now().Add(10 * time.Second); s.stats.waiting.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("writer queue depth is %d while a write waits, want 1", s.stats.waiting.Load())
		}
	}
	if got, _ := sample(storeMetrics(t, s), "scimbox_writer_waiting"); got != 1 {
		t.Errorf("scimbox_writer_waiting = %v while a write waits, want 1", got)
	}
	close(release)
	wg.Wait()
	fams := storeMetrics(t, s)
	if got, _ := sample(fams, "scimbox_writer_waiting"); got != 0 {
		t.Errorf("scimbox_writer_waiting = %v once both wrote, want 0", got)
	}
	if got, _ := sample(fams, "scimbox_writer_commit_duration_seconds"); got != before+2 {
		t.Errorf("commits timed: %v, want %v", got, before+2)
	}
}

// TestWebhookBacklogs: each endpoint's pending deliveries and the time of the
// oldest one's event; a delivered event leaves the queue.
func TestWebhookBacklogs(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	clock := &stClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.now = clock.now
	busy, err := s.CreateWebhook(ctx, "https://a.example/hook", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := s.CreateWebhook(ctx, "https://b.example/hook", []string{evGroupCreated})
	if err != nil {
		t.Fatal(err)
	}
	first := clock.t
	for i := range 3 {
		if err := s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": fmt.Sprintf("b%d@example.com", i)}}); err != nil {
			t.Fatal(err)
		}
		clock.t = clock.t.Add(time.Minute)
	}
	d, err := s.NextDelivery(ctx, busy.ID)
	if err != nil || d == nil {
		t.Fatalf("next delivery: %v %v", d, err)
	}
	if err := s.RecordAttempt(ctx, busy.ID, d, DeliveryAttempt{Status: 204}, true, time.Time{}, 20); err != nil {
		t.Fatal(err)
	}
	got, err := s.WebhookBacklogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]WebhookBacklog{
		busy.ID: {ID: busy.ID, Pending: 2, Oldest: first.Add(time.Minute)},
		idle.ID: {ID: idle.ID},
	}
	if len(got) != len(want) {
		t.Fatalf("backlogs: %+v, want %+v", got, want)
	}
	for _, b := range got {
		if w := want[b.ID]; b.Pending != w.Pending || !b.Oldest.Equal(w.Oldest) || b.Disabled {
			t.Errorf("backlog %s: %+v, want %+v", b.ID, b, w)
		}
	}

	// A scrape reports the lag from the store's clock.
	clock.t = first.Add(10 * time.Minute)
	fams := storeMetrics(t, s)
	if got, _ := sample(fams, "scimbox_webhook_oldest_pending_age_seconds", "webhook", busy.ID); got != 9*60 {
		t.Errorf("lag of %s: %v s, want 540", busy.ID, got)
	}
	if got, ok := sample(fams, "scimbox_webhook_oldest_pending_age_seconds", "webhook", idle.ID); !ok || got != 0 {
		t.Errorf("lag of the idle endpoint: %v (present %v), want 0", got, ok)
	}
}

// TestMetricsCycleHook: the cycle tracker's figures, once wired, are served
// and pass promtool along with every other metric.
func TestMetricsCycleHook(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	m := newMetrics(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.cycleStatsFunc = func() (cycleMetrics, bool) {
		return cycleMetrics{Operations: 200, Failures: 30, ReferenceFailures: 4, QuarantineRisk: 0.375,
			Started: started, LastCall: started.Add(90 * time.Second)}, true
	}
	m.certs.notAfter.Store(time.Now().Add(time.Hour).Unix())
	if err := s.Snapshot(context.Background(), filepath.Join(filepath.Dir(s.path), backupDir, snapshotPrefix+"20260301T120000Z.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateWebhook(context.Background(), "https://a.example/hook", []string{"*"}); err != nil {
		t.Fatal(err)
	}
	m.requests.observe(httptest.NewRequest("POST", scimBase+"/Users", nil), &requestInfo{op: "create user", scim: true}, 409, time.Millisecond)
	srv := httptest.NewServer(m.endpoint(slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()

	body, fams := scrape(t, srv.URL+"/metrics")
	for _, tc := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"scimbox_entra_cycle_operations", nil, 200},
		{"scimbox_entra_cycle_failures", []string{"kind", "non_reference"}, 30},
		{"scimbox_entra_cycle_failures", []string{"kind", "reference"}, 4},
		{"scimbox_entra_cycle_duration_seconds", nil, 90},
		{"scimbox_entra_cycle_last_call_timestamp_seconds", nil, float64(started.Unix() + 90)},
		{"scimbox_entra_quarantine_risk_ratio", nil, 0.375},
	} {
		if got, ok := sample(fams, tc.metric, tc.labels...); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.metric, tc.labels, got, ok, tc.want)
		}
	}
	for _, name := range []string{"scimbox_snapshot_age_seconds", "scimbox_tls_certificate_expiry_seconds", "scimbox_webhook_disabled"} {
		if _, ok := sample(fams, name); !ok {
			t.Errorf("%s is missing", name)
		}
	}
	promtoolCheck(t, body)
}

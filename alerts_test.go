package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// ---- an SMTP server in the test: emersion/go-smtp, recording what it receives ----

const (
	testSMTPUser     = "alerts"
	testSMTPPassword = "pass word with spaces 7"
)

// smtpMessage is one message the test SMTP server accepted.
type smtpMessage struct {
	From, AuthUser string
	To             []string
	TLS            bool // the message came over an encrypted connection
	Subject, Body  string
}

// smtpRecorder is a go-smtp Backend that accepts AUTH PLAIN with the test
// credentials only and records every message.
type smtpRecorder struct {
	mu   sync.Mutex
	msgs []smtpMessage
}

func (rec *smtpRecorder) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{rec: rec, conn: c}, nil
}

func (rec *smtpRecorder) messages() []smtpMessage {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.msgs)
}

type smtpSession struct {
	rec  *smtpRecorder
	conn *smtp.Conn
	user string
	msg  smtpMessage
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != testSMTPUser || password != testSMTPPassword {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	_, tlsOn := s.conn.TLSConnectionState()
	s.msg = smtpMessage{From: from, AuthUser: s.user, TLS: tlsOn}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		return err
	}
	dec := new(mime.WordDecoder)
	s.msg.Subject, err = dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		return err
	}
	s.msg.Body = decodeBody(m.Header.Get("Content-Transfer-Encoding"), body)
	s.rec.mu.Lock()
	s.rec.msgs = append(s.rec.msgs, s.msg)
	s.rec.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// decodeBody undoes the body's transfer encoding.
func decodeBody(encoding string, body []byte) string {
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		b, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		return string(b)
	case "base64":
		b, _ := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(body)))
		return string(b)
	}
	return string(body)
}

// startSMTP starts an SMTP server on localhost with a new certificate:
// STARTTLS (AUTH offered only once TLS is on) or implicit TLS. It returns
// the recorder, the port and the pool that trusts the certificate.
func startSMTP(t *testing.T, mode string) (*smtpRecorder, string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	leaf := writeCert(t, certFile, keyFile, true)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rec := &smtpRecorder{}
	srv := smtp.NewServer(rec)
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.AllowInsecureAuth = false
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if mode == smtpTLS {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return rec, port, poolOf(leaf)
}

// ---- an incoming-webhook receiver ----

type hookRecorder struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []alertPayload
	paths    []string
}

func startHookReceiver(t *testing.T) *hookRecorder {
	t.Helper()
	h := &hookRecorder{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p alertPayload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.payloads = append(h.payloads, p)
		h.paths = append(h.paths, r.URL.Path)
		h.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookRecorder) received() []alertPayload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.payloads)
}

// ---- helpers ----

// openAlertStore opens (or reopens) the database at path with a fixed clock.
func openAlertStore(t *testing.T, path string, clock *stClock) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.now = clock.now
	return s
}

// testAlerter returns an alerter on s with only the conditions named, on
// clock, trusting roots for SMTP.
func testAlerter(s *Store, log *slog.Logger, flags alertFlags, clock *stClock, roots *x509.CertPool, keys ...string) *alerter {
	a := newAlerter(s, log, flags, alertSources{})
	a.now, a.tlsRoots = clock.now, roots
	a.conditions = slices.DeleteFunc(a.conditions, func(c alertCondition) bool { return !slices.Contains(keys, c.key) })
	return a
}

// disableWebhook makes an endpoint fail once with a limit of one failure.
func disableWebhook(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	if err := s.QueueTestEvent(ctx, id); err != nil {
		t.Fatal(err)
	}
	d, err := s.NextDelivery(ctx, id)
	if err != nil || d == nil {
		t.Fatalf("next delivery: %v, %v", d, err)
	}
	if err := s.RecordAttempt(ctx, id, d, DeliveryAttempt{Status: 500}, false, s.now().Add(time.Hour), 1); err != nil {
		t.Fatal(err)
	}
}

// alertCounts is how many messages each side received so far.
func alertCounts(rec *smtpRecorder, hook *hookRecorder) (int, int) {
	return len(rec.messages()), len(hook.received())
}

// ---- the tests ----

// TestAlertsFireOnceRemindAndResolve walks one condition (a disabled
// webhook endpoint) through firing, evaluations within the interval, a
// restart, a reminder and its resolution, against a real SMTP server (each
// TLS mode, with AUTH PLAIN) and a webhook receiver.
func TestAlertsFireOnceRemindAndResolve(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{smtpSTARTTLS, smtpTLS} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rec, port, roots := startSMTP(t, mode)
			hook := startHookReceiver(t)
			clock := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
			path := filepath.Join(t.TempDir(), "scimbox.db")
			s := openAlertStore(t, path, clock)
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			webhookURL := hook.URL + "/services/T000/B000/secretpart"
			cfg := alertConfig{SMTPHost: "localhost", SMTPPort: port, SMTPTLS: mode, SMTPUser: testSMTPUser, SMTPPassword: testSMTPPassword,
				From: "scimbox@example.com", To: "it@example.com, oncall@example.com", WebhookURL: webhookURL}
			if err := s.SetAlertSettings(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			flags := alertFlags{Renotify: time.Hour}
			a := testAlerter(s, log, flags, clock, roots, alertWebhookDisabled)

			a.evaluate(ctx)
			if e, w := alertCounts(rec, hook); e != 0 || w != 0 {
				t.Fatalf("nothing fires yet, but %d emails and %d webhooks were sent", e, w)
			}

			hookEndpoint, err := s.CreateWebhook(ctx, "https://app.example.com/events?key=abc", nil)
			if err != nil {
				t.Fatal(err)
			}
			disableWebhook(t, s, hookEndpoint.ID)
			a.evaluate(ctx)
			msgs, posts := rec.messages(), hook.received()
			if len(msgs) != 1 || len(posts) != 1 {
				t.Fatalf("after the endpoint was disabled: %d emails and %d webhooks, want 1 and 1", len(msgs), len(posts))
			}
			m := msgs[0]
			if !m.TLS || m.AuthUser != testSMTPUser || m.From != "scimbox@example.com" || !slices.Equal(m.To, []string{"it@example.com", "oncall@example.com"}) {
				t.Errorf("email: TLS %v, auth %q, from %q, to %q", m.TLS, m.AuthUser, m.From, m.To)
			}
			if !strings.Contains(m.Subject, "ALERT: A webhook endpoint was disabled") || !strings.Contains(m.Body, hookEndpoint.ID) ||
				!strings.Contains(m.Body, "What to do:") || strings.Contains(m.Body, "key=abc") {
				t.Errorf("email: subject %q, body:\n%s", m.Subject, m.Body)
			}
			if p := posts[0]; p.Alert.State != "firing" || p.Alert.Repeat || p.Alert.Condition != alertWebhookDisabled || !strings.Contains(p.Text, "A webhook endpoint was disabled") ||
				p.Attachments != nil {
				t.Errorf("webhook payload: %+v", p)
			}

			// Evaluations within the interval send nothing.
			for range 3 {
				clock.t = clock.t.Add(15 * time.Minute)
				a.evaluate(ctx)
			}
			if e, w := alertCounts(rec, hook); e != 1 || w != 1 {
				t.Fatalf("within the interval: %d emails and %d webhooks in all, want still 1 and 1", e, w)
			}

			// A restart keeps what was sent: nothing is repeated.
			s.Close()
			s = openAlertStore(t, path, clock)
			a = testAlerter(s, log, flags, clock, roots, alertWebhookDisabled)
			a.evaluate(ctx)
			if e, w := alertCounts(rec, hook); e != 1 || w != 1 {
				t.Fatalf("after a restart: %d emails and %d webhooks in all, want still 1 and 1", e, w)
			}

			// Once the interval has passed, one reminder each.
			clock.t = clock.t.Add(15 * time.Minute)
			a.evaluate(ctx)
			a.evaluate(ctx)
			msgs, posts = rec.messages(), hook.received()
			if len(msgs) != 2 || len(posts) != 2 {
				t.Fatalf("after the interval: %d emails and %d webhooks in all, want 2 and 2", len(msgs), len(posts))
			}
			if !strings.Contains(msgs[1].Subject, "Still firing") || !posts[1].Alert.Repeat || posts[1].Alert.Since != "2025-03-01T12:00:00Z" {
				t.Errorf("reminder: subject %q, payload %+v", msgs[1].Subject, posts[1].Alert)
			}

			// Enabled again: one "resolved" each, then silence.
			if err := s.EnableWebhook(ctx, hookEndpoint.ID); err != nil {
				t.Fatal(err)
			}
			clock.t = clock.t.Add(time.Minute)
			a.evaluate(ctx)
			a.evaluate(ctx)
			msgs, posts = rec.messages(), hook.received()
			if len(msgs) != 3 || len(posts) != 3 {
				t.Fatalf("after it cleared: %d emails and %d webhooks in all, want 3 and 3", len(msgs), len(posts))
			}
			if !strings.Contains(msgs[2].Subject, "Resolved: A webhook endpoint was disabled") || posts[2].Alert.State != "resolved" {
				t.Errorf("resolved: subject %q, payload %+v", msgs[2].Subject, posts[2].Alert)
			}
			s.Close()
			s = openAlertStore(t, path, clock)
			testAlerter(s, log, flags, clock, roots, alertWebhookDisabled).evaluate(ctx)
			if e, w := alertCounts(rec, hook); e != 3 || w != 3 {
				t.Fatalf("after resolving and a restart: %d emails and %d webhooks, want 3 and 3", e, w)
			}
			for _, secret := range []string{testSMTPPassword, "secretpart"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log holds the secret %q:\n%s", secret, logs.String())
				}
			}
		})
	}
}

// TestAlertFailureBurst fires on the provisioning log's failures within the
// window, on an injected clock, and resolves once they fall out of it.
func TestAlertFailureBurst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hook := startHookReceiver(t)
	clock := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := openAlertStore(t, filepath.Join(t.TempDir(), "scimbox.db"), clock)
	if err := s.SetAlertSettings(ctx, alertConfig{WebhookURL: hook.URL, WebhookFormat: webhookTeams}); err != nil {
		t.Fatal(err)
	}
	a := testAlerter(s, stDiscardLog(), alertFlags{Renotify: time.Hour, BurstFailures: 3, BurstWindow: 10 * time.Minute}, clock, nil, alertFailureBurst)
	logAt := func(at time.Time, outcome string, status int) {
		t.Helper()
		if err := s.writeLog(ctx, []LogEntry{{At: at, Op: "create user", ResourceType: "User", Target: "ann", Outcome: outcome, Status: status, Detail: "userName is already taken"}}); err != nil {
			t.Fatal(err)
		}
	}
	logAt(clock.t.Add(-11*time.Minute), "failure", 409) // before the window
	logAt(clock.t.Add(-5*time.Minute), "failure", 409)
	logAt(clock.t.Add(-4*time.Minute), "success", 201)
	logAt(clock.t.Add(-3*time.Minute), "failure", 409)
	a.evaluate(ctx)
	if n := len(hook.received()); n != 0 {
		t.Fatalf("2 failures in the window (threshold 3): %d alerts", n)
	}
	logAt(clock.t, "failure", 500)
	a.evaluate(ctx)
	posts := hook.received()
	if len(posts) != 1 {
		t.Fatalf("3 failures in the window: %d alerts, want 1", len(posts))
	}
	p := posts[0]
	if p.Alert.Condition != alertFailureBurst || !strings.Contains(p.Alert.Detail, "3 SCIM requests failed") ||
		!strings.Contains(p.Alert.Detail, "2 × create user, HTTP 409: userName is already taken") {
		t.Errorf("alert: %+v", p.Alert)
	}
	if p.Type != "message" || len(p.Attachments) != 1 || p.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		p.Attachments[0].Content["type"] != "AdaptiveCard" {
		t.Errorf("teams format: type %q, attachments %+v", p.Type, p.Attachments)
	}

	clock.t = clock.t.Add(6 * time.Minute) // two of the three fall out of the window
	a.evaluate(ctx)
	a.evaluate(ctx)
	posts = hook.received()
	if len(posts) != 2 || posts[1].Alert.State != "resolved" {
		t.Fatalf("after the window passed: %d alerts (want 2, the last resolved): %+v", len(posts), posts)
	}
}

// TestAlertNoDirectoryCall fires once no token has been used for longer than
// the limit, and not before any token was ever used.
func TestAlertNoDirectoryCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hook := startHookReceiver(t)
	clock := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := openAlertStore(t, filepath.Join(t.TempDir(), "scimbox.db"), clock)
	if err := s.SetAlertSettings(ctx, alertConfig{WebhookURL: hook.URL}); err != nil {
		t.Fatal(err)
	}
	a := testAlerter(s, stDiscardLog(), alertFlags{Renotify: time.Hour, NoCallAfter: 80 * time.Minute}, clock, nil, alertNoDirectoryCall)
	tok, _, err := s.CreateToken(ctx, "entra")
	if err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(3 * time.Hour)
	a.evaluate(ctx)
	if n := len(hook.received()); n != 0 {
		t.Fatalf("a token never used: %d alerts", n)
	}
	if _, err := s.AuthenticateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(80 * time.Minute)
	a.evaluate(ctx)
	if n := len(hook.received()); n != 0 {
		t.Fatalf("80 minutes after the last call: %d alerts, want none yet", n)
	}
	clock.t = clock.t.Add(time.Minute)
	a.evaluate(ctx)
	posts := hook.received()
	if len(posts) != 1 || !strings.Contains(posts[0].Alert.Detail, `1 h 21 min ago`) || !strings.Contains(posts[0].Alert.Detail, `token "entra"`) {
		t.Fatalf("81 minutes after the last call: %+v", posts)
	}
	if _, err := s.AuthenticateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	a.evaluate(ctx)
	if posts = hook.received(); len(posts) != 2 || posts[1].Alert.State != "resolved" {
		t.Fatalf("after a call: %+v", posts)
	}
}

// TestAlertDeliveryRetried: a message the channel refused is sent at the
// next evaluation, and only then counts as sent.
func TestAlertDeliveryRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var mu sync.Mutex
	var answers []int
	status := http.StatusServiceUnavailable
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		answers = append(answers, status)
		w.WriteHeader(status)
	}))
	t.Cleanup(hook.Close)
	clock := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := openAlertStore(t, filepath.Join(t.TempDir(), "scimbox.db"), clock)
	if err := s.SetAlertSettings(ctx, alertConfig{WebhookURL: hook.URL + "/hook/secretpart"}); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a := testAlerter(s, slog.New(slog.NewTextHandler(&logs, nil)), alertFlags{Renotify: time.Hour}, clock, nil, alertWebhookDisabled)
	w, err := s.CreateWebhook(ctx, "https://app.example.com/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	disableWebhook(t, s, w.ID)
	a.evaluate(ctx)
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	clock.t = clock.t.Add(time.Minute)
	a.evaluate(ctx)
	a.evaluate(ctx)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(answers, []int{503, 200}) {
		t.Errorf("answers %v, want one refused then one delivered", answers)
	}
	if !strings.Contains(logs.String(), "answered HTTP 503") || strings.Contains(logs.String(), "secretpart") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// TestAlertSnapshotFailureRecorded: RunSnapshots records a failed snapshot
// and the condition fires on it; before the first attempt it cannot tell.
func TestAlertSnapshotFailureRecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openAlertStore(t, filepath.Join(dir, "scimbox.db"), &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)})
	if _, _, err := snapshotAlert(s, true); !errors.Is(err, errAlertUnknown) {
		t.Fatalf("before any snapshot: %v, want errAlertUnknown", err)
	}
	if firing, _, err := snapshotAlert(s, false); firing || err != nil {
		t.Fatalf("snapshots off: firing %v, %v", firing, err)
	}
	// A file where the backups folder goes: the snapshot cannot be written.
	if err := os.WriteFile(filepath.Join(dir, backupDir), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunSnapshots(ctx, time.Hour, 1); close(done) }()
	for {
		if _, ok := s.LastSnapshot(); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	firing, detail, err := snapshotAlert(s, true)
	if !firing || err != nil || !strings.Contains(detail, "failed") {
		t.Fatalf("after a failed snapshot: firing %v, %q, %v", firing, detail, err)
	}

	// The folder can be made again: the next snapshot succeeds.
	if err := os.Remove(filepath.Join(dir, backupDir)); err != nil {
		t.Fatal(err)
	}
	s.snapshotResult.Store(nil)
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { s.RunSnapshots(ctx, time.Hour, 1); close(done) }()
	for {
		if _, ok := s.LastSnapshot(); ok {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if firing, _, err := snapshotAlert(s, true); firing || err != nil {
		t.Fatalf("after a snapshot that succeeded: firing %v, %v", firing, err)
	}
}

func TestAlertCertificate(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	leaf := func(lifetime, left time.Duration) *x509.Certificate {
		return &x509.Certificate{NotBefore: now.Add(left - lifetime), NotAfter: now.Add(left)}
	}
	day := 24 * time.Hour
	tests := []struct {
		name   string
		status certHealthStatus
		firing bool
	}{
		{"nothing known (no TLS)", certHealthStatus{}, false},
		{"fresh 90-day certificate", certHealthStatus{Leaf: leaf(90*day, 80*day)}, false},
		{"90-day certificate, 20 days left", certHealthStatus{Leaf: leaf(90*day, 20*day)}, false},
		{"90-day certificate, 13 days left", certHealthStatus{Leaf: leaf(90*day, 13*day)}, true},
		{"6-day certificate, 2 days left", certHealthStatus{Leaf: leaf(6*day, 2*day)}, false},
		{"6-day certificate, 20 hours left", certHealthStatus{Leaf: leaf(6*day, 20*time.Hour)}, true},
		{"expired", certHealthStatus{Leaf: leaf(90*day, -time.Hour)}, true},
		{"renewal failed", certHealthStatus{FailedAt: now, Failure: "connection refused", Leaf: leaf(90*day, 29*day)}, true},
	}
	for _, tt := range tests {
		if firing, detail, err := certAlert(tt.status, now); firing != tt.firing || err != nil {
			t.Errorf("%s: firing %v (%q), want %v", tt.name, firing, detail, tt.firing)
		}
	}
}

// TestCertReloaderReportsHealth: the certificate loaded is recorded, and so
// is changed files that cannot be used.
func TestCertReloaderReportsHealth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, true)
	health := &certHealth{}
	c, err := newCertReloader(certFile, keyFile, health, nil, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	if st := health.status(); st.Leaf == nil || !st.Leaf.Equal(first) || !st.FailedAt.IsZero() {
		t.Fatalf("after loading: %+v", st)
	}
	writeCert(t, certFile, keyFile, false) // a certificate whose key is not there yet
	c.GetCertificate(nil)
	if st := health.status(); st.FailedAt.IsZero() || !strings.Contains(st.Failure, "cannot use -tls-cert") {
		t.Fatalf("after a bad pair: %+v", st)
	}
	third := writeCert(t, certFile, keyFile, true)
	c.GetCertificate(nil)
	if st := health.status(); !st.FailedAt.IsZero() || !st.Leaf.Equal(third) {
		t.Fatalf("after a good pair: %+v", st)
	}
}

func TestAlertDiskNearlyFull(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	const gib = 1 << 30
	tests := []struct {
		name        string
		free, total uint64
		firing      bool
	}{
		{"plenty", 50 * gib, 100 * gib, false},
		{"under 5 %", 4 * gib, 100 * gib, true},
		{"under 1 GiB on a small disk", gib - 1, 8 * gib, true},
		{"just enough on a small disk", gib, 8 * gib, false},
	}
	for _, tt := range tests {
		a := newAlerter(s, stDiscardLog(), alertFlags{}, alertSources{})
		a.diskSpace = func(string) (uint64, uint64, error) { return tt.free, tt.total, nil }
		if firing, detail, err := a.diskNearlyFull(context.Background()); firing != tt.firing || err != nil {
			t.Errorf("%s: firing %v (%q, %v), want %v", tt.name, firing, detail, err, tt.firing)
		}
	}
	// The real file system answers.
	if free, total, err := diskSpace(t.TempDir()); err != nil || total == 0 || free > total {
		t.Errorf("diskSpace: %d free of %d, %v", free, total, err)
	}
}

func TestAlertConfigCheck(t *testing.T) {
	t.Parallel()
	good := alertConfig{SMTPHost: "smtp.example.com", From: "a@example.com", To: "b@example.com"}
	tests := []struct {
		name    string
		edit    func(c *alertConfig)
		wantErr string
	}{
		{"complete", func(*alertConfig) {}, ""},
		{"nothing at all", func(c *alertConfig) { *c = alertConfig{} }, ""},
		{"webhook only", func(c *alertConfig) { *c = alertConfig{WebhookURL: "https://hooks.slack.com/services/x"} }, ""},
		{"no recipient", func(c *alertConfig) { c.To = " , " }, "at least one recipient"},
		{"no host", func(c *alertConfig) { c.SMTPHost = "" }, "need the SMTP host"},
		{"host with port", func(c *alertConfig) { c.SMTPHost = "smtp.example.com:587" }, "host name alone"},
		{"bad port", func(c *alertConfig) { c.SMTPPort = "70000" }, "not a port number"},
		{"bad TLS mode", func(c *alertConfig) { c.SMTPTLS = "ssl" }, "starttls, tls or none"},
		{"bad recipient", func(c *alertConfig) { c.To = "b@example.com, nobody" }, `"nobody" is not an email address`},
		{"password without user", func(c *alertConfig) { c.SMTPPassword = "x" }, "needs the user name"},
		{"password in the clear", func(c *alertConfig) { c.SMTPUser, c.SMTPTLS = "u", smtpPlain }, "in the clear"},
		{"webhook not http", func(c *alertConfig) { c.WebhookURL = "ftp://x/secretpart" }, "not an https:// address"},
		{"bad webhook format", func(c *alertConfig) { c.WebhookFormat = "xml" }, "generic or teams"},
	}
	for _, tt := range tests {
		c := good
		tt.edit(&c)
		err := errors.Join(c.check()...)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "secretpart"):
			t.Errorf("%s: the error shows the webhook URL: %v", tt.name, err)
		}
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "alerts", alertConfig{SMTPPassword: "hunter2", WebhookURL: "https://h/secretpart"})
	if strings.Contains(buf.String(), "hunter2") || strings.Contains(buf.String(), "secretpart") {
		t.Errorf("a logged configuration shows its secrets: %s", buf.String())
	}
}

// TestAlertFlags: the flags and their environment variables override the
// page's values, and bad ones are refused at start.
func TestAlertFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SCIMBOX_ALERT_SMTP_PASSWORD": "from-env", "SCIMBOX_ALERT_RENOTIFY": "30m"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseServeConfigEnv([]string{"-alert-smtp-host", "smtp.example.com", "-alert-smtp-user", "u"}, io.Discard, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.Alerts; f.SMTPHost != "smtp.example.com" || f.SMTPPassword != "from-env" || f.Renotify != 30*time.Minute ||
		f.NoCallAfter != 80*time.Minute || f.BurstFailures != 50 || f.BurstWindow != 15*time.Minute {
		t.Errorf("alert flags: %+v", f)
	}
	got := alertConfig{SMTPHost: "page.example.com", From: "a@example.com"}.overlay(cfg.Alerts.alertConfig)
	if got.SMTPHost != "smtp.example.com" || got.From != "a@example.com" || got.SMTPPassword != "from-env" {
		t.Errorf("overlay: %+v", got)
	}
	if o := cfg.Alerts.overridden(); !slices.Contains(o, "-alert-smtp-password (SCIMBOX_ALERT_SMTP_PASSWORD)") {
		t.Errorf("overridden: %v", o)
	}
	for _, args := range [][]string{{"-alert-smtp-tls", "ssl"}, {"-alert-renotify", "10s"}, {"-alert-no-call-after", "5m"}, {"-alert-to", "nobody"}} {
		if _, err := parseServeConfigEnv(args, io.Discard, noEnv); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}

// TestAlertsSettingsPage saves the configuration on the page, checks that
// the secrets never come back, and sends a test alert with the button
// (POST with CSRF, then a redirect to the page, which shows the outcome).
func TestAlertsSettingsPage(t *testing.T) {
	t.Parallel()
	rec, port, roots := startSMTP(t, smtpSTARTTLS)
	hook := startHookReceiver(t)
	store := newTestStore(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	al := newAlerter(store, log, alertFlags{Renotify: time.Hour}, alertSources{})
	al.tlsRoots = roots
	al.diskSpace = func(string) (uint64, uint64, error) { return 100 << 30, 200 << 30, nil }
	srv := httptest.NewServer((&server{store: store, log: log, alerts: al}).handler())
	t.Cleanup(srv.Close)
	ac := setUpAdmin(t, &testServer{Server: srv, store: store})

	status, _, body := ac.get(t, "/settings")
	if status != http.StatusOK || !strings.Contains(body, `href="/settings/alerts"`) {
		t.Fatalf("settings page: %d, no link to the alerts", status)
	}
	// Nothing to send to yet.
	status, h, _ := ac.post(t, "/settings/alerts/test", url.Values{"csrf": {ac.csrf(t)}})
	if status != http.StatusSeeOther || h.Get("Location") != "/settings/alerts?done=nothing" {
		t.Fatalf("test without channels: %d to %q", status, h.Get("Location"))
	}

	webhookURL := hook.URL + "/services/T000/B000/secretpart"
	form := url.Values{"csrf": {ac.csrf(t)}, "smtp_host": {"localhost"}, "smtp_port": {port}, "smtp_tls": {smtpSTARTTLS},
		"smtp_user": {testSMTPUser}, "smtp_password": {testSMTPPassword}, "from": {"scimbox@example.com"}, "to": {"it@example.com"},
		"webhook_url": {webhookURL}, "webhook_format": {webhookPlain}}
	// Without the CSRF token nothing is saved.
	noCSRF := url.Values{}
	for k, v := range form {
		if k != "csrf" {
			noCSRF[k] = v
		}
	}
	if status, _, _ := ac.post(t, "/settings/alerts", noCSRF); status != http.StatusForbidden {
		t.Errorf("save without CSRF: %d, want 403", status)
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("to", "")
	if status, _, body := ac.post(t, "/settings/alerts", bad); status != http.StatusBadRequest || !strings.Contains(body, "at least one recipient") ||
		strings.Contains(body, testSMTPPassword) || strings.Contains(body, "secretpart") {
		t.Errorf("save without a recipient: %d\n%s", status, body)
	}
	if c, _ := store.AlertSettings(context.Background()); c.SMTPHost != "" {
		t.Fatalf("a refused form was saved: %+v", c)
	}
	status, h, _ = ac.post(t, "/settings/alerts", form)
	if status != http.StatusSeeOther || h.Get("Location") != "/settings/alerts?done=saved" {
		t.Fatalf("save: %d to %q", status, h.Get("Location"))
	}

	// Saved again with the secret fields left empty: the secrets are kept.
	form.Set("smtp_password", "")
	form.Set("webhook_url", "")
	form.Set("to", "it@example.com, oncall@example.com")
	if status, _, _ := ac.post(t, "/settings/alerts", form); status != http.StatusSeeOther {
		t.Fatalf("save again: %d", status)
	}
	status, _, body = ac.get(t, "/settings/alerts?done=saved")
	if status != http.StatusOK || !strings.Contains(body, "Alert settings saved") || !strings.Contains(body, "oncall@example.com") ||
		!strings.Contains(body, "saved: leave empty to keep it") || !strings.Contains(body, redactURL(webhookURL)) {
		t.Fatalf("alerts page: %d\n%s", status, body)
	}
	if strings.Contains(body, testSMTPPassword) || strings.Contains(body, "secretpart") {
		t.Fatalf("the alerts page shows a secret:\n%s", body)
	}

	status, h, _ = ac.post(t, "/settings/alerts/test", url.Values{"csrf": {ac.csrf(t)}})
	if status != http.StatusSeeOther || h.Get("Location") != "/settings/alerts?done=tested" {
		t.Fatalf("test: %d to %q", status, h.Get("Location"))
	}
	msgs, posts := rec.messages(), hook.received()
	if len(msgs) != 1 || len(posts) != 1 {
		t.Fatalf("test alert: %d emails and %d webhooks, want 1 and 1", len(msgs), len(posts))
	}
	if m := msgs[0]; !strings.Contains(m.Subject, "Test: Test alert") || m.AuthUser != testSMTPUser || !m.TLS || len(m.To) != 2 {
		t.Errorf("test email: %+v", m)
	}
	hook.mu.Lock()
	path := hook.paths[0]
	hook.mu.Unlock()
	if p := posts[0]; p.Alert.State != "test" || path != "/services/T000/B000/secretpart" {
		t.Errorf("test webhook: %+v at %s", p.Alert, path)
	}
	status, _, body = ac.get(t, "/settings/alerts?done=tested")
	if status != http.StatusOK || strings.Count(body, "delivered") != 2 {
		t.Errorf("after the test: %d, want two channels delivered\n%s", status, body)
	}

	// Clearing the webhook removes it.
	form.Set("clear_webhook_url", "on")
	if status, _, _ := ac.post(t, "/settings/alerts", form); status != http.StatusSeeOther {
		t.Fatalf("clear the webhook: %d", status)
	}
	if c, _ := store.AlertSettings(context.Background()); c.WebhookURL != "" || c.SMTPPassword != testSMTPPassword {
		t.Errorf("after clearing the webhook: webhook %q, password kept %v", c.WebhookURL, c.SMTPPassword == testSMTPPassword)
	}
	for _, secret := range []string{testSMTPPassword, "secretpart"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds the secret %q:\n%s", secret, logs.String())
		}
	}
}

// TestAlertRegisteredConditions: the conditions other features own (the
// cycle tracker's quarantine risk, the safety rails' held mass change) are
// one register call each, and go through the same debouncing.
func TestAlertRegisteredConditions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hook := startHookReceiver(t)
	clock := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := openAlertStore(t, filepath.Join(t.TempDir(), "scimbox.db"), clock)
	if err := s.SetAlertSettings(ctx, alertConfig{WebhookURL: hook.URL}); err != nil {
		t.Fatal(err)
	}
	a := testAlerter(s, stDiscardLog(), alertFlags{Renotify: time.Hour}, clock, nil)
	risky, held := false, false
	a.register(quarantineRiskCondition(func(context.Context) (bool, string, error) {
		return risky, "412 of 900 operations failed in this cycle (46 %)", nil
	}))
	a.register(massChangeHeldCondition(func(context.Context) (bool, string, error) { return held, "", nil }))
	a.evaluate(ctx)
	risky = true
	a.evaluate(ctx)
	a.evaluate(ctx)
	held = true
	a.evaluate(ctx)
	risky, held = false, false
	a.evaluate(ctx)
	var got []string
	for _, p := range hook.received() {
		got = append(got, p.Alert.Condition+" "+p.Alert.State)
	}
	want := []string{"quarantine-risk firing", "mass-change-held firing", "quarantine-risk resolved", "mass-change-held resolved"}
	if !slices.Equal(got, want) {
		t.Errorf("messages %q, want %q", got, want)
	}
}

// TestACMEEventsReportHealth: certmagic's failure and success events reach
// the certificate's health.
func TestACMEEventsReportHealth(t *testing.T) {
	t.Parallel()
	h := &certHealth{}
	m := &acmeManager{domain: "scim.example.com", log: stDiscardLog(), health: h}
	ctx := context.Background()
	m.onEvent(ctx, "cert_failed", map[string]any{"identifier": "scim.example.com", "renewal": true, "error": errors.New("connection refused")})
	if st := h.status(); st.FailedAt.IsZero() || !strings.Contains(st.Failure, "connection refused") {
		t.Fatalf("after a failed renewal: %+v", st)
	}
	m.onEvent(ctx, "cert_obtained", map[string]any{"identifier": "scim.example.com", "renewal": true})
	if st := h.status(); !st.FailedAt.IsZero() || st.Failure != "" {
		t.Fatalf("after a renewal: %+v", st)
	}
}

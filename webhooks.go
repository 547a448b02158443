package main

// Webhook deliveries: events queued in SQLite (so a restart loses nothing)
// are sent to each endpoint in order, signed the Standard Webhooks way
// (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256), retried
// with exponential backoff, and the endpoint is disabled after a long run of
// failures. The sender runs beside the server and never blocks a SCIM request.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// webhookTimeout bounds one delivery attempt, from connecting to the answer.
const webhookTimeout = 10 * time.Second

// webhookSender delivers queued events: each endpoint on its own, so a slow
// or failing endpoint delays only itself, and each in the order of its queue.
type webhookSender struct {
	store       *Store
	log         *slog.Logger
	client      *http.Client
	tick        time.Duration
	maxFailures int
	backoff     func(attempts int) time.Duration

	mu      sync.Mutex
	sending map[string]bool // endpoints with a delivery run in progress
	runs    sync.WaitGroup  // the delivery runs in progress
}

// newWebhookSender returns a sender that disables an endpoint after 20 failures in a row.
func newWebhookSender(store *Store, log *slog.Logger) *webhookSender {
	return &webhookSender{
		store: store, log: log, tick: time.Second, maxFailures: 20, sending: map[string]bool{},
		client: &http.Client{
			Timeout: webhookTimeout,
			// A receiver that redirects is answered as a failure: a redirect
			// could send signed directory data to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		// 5 s, 10 s, 20 s … capped at an hour: 20 failures span about 14 hours.
		backoff: func(attempts int) time.Duration { return min(5*time.Second<<min(attempts, 20), time.Hour) },
	}
}

// Run delivers until ctx ends, then waits for the attempts in flight: they
// are cancelled and stay queued, or finished and are recorded, before Run
// returns (and so before the store closes).
func (ws *webhookSender) Run(ctx context.Context) {
	defer ws.runs.Wait()
	t := time.NewTicker(ws.tick)
	defer t.Stop()
	for {
		ws.startRuns(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// deliverDue sends every enabled endpoint's due events, endpoints
// concurrently, and returns when all are done.
func (ws *webhookSender) deliverDue(ctx context.Context) {
	ws.startRuns(ctx)
	ws.runs.Wait()
}

// startRuns starts a delivery run for each enabled endpoint that has none in
// progress.
func (ws *webhookSender) startRuns(ctx context.Context) {
	hooks, err := ws.store.Webhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			ws.log.Error("webhook deliveries: read the endpoints", "err", err)
		}
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range hooks {
		if w.DisabledReason != "" || ws.sending[w.ID] {
			continue
		}
		ws.sending[w.ID] = true
		ws.runs.Go(func() {
			ws.deliverEndpoint(ctx, w)
			ws.mu.Lock()
			delete(ws.sending, w.ID)
			ws.mu.Unlock()
		})
	}
}

// deliverEndpoint sends one endpoint's due events in order until none is
// due, one fails (nothing overtakes it) or ctx ends.
func (ws *webhookSender) deliverEndpoint(ctx context.Context, w Webhook) {
	for ctx.Err() == nil {
		d, err := ws.store.NextDelivery(ctx, w.ID)
		if err != nil {
			if ctx.Err() == nil {
				ws.log.Error("webhook deliveries: read the queue", "webhook", w.ID, "err", err)
			}
			return
		}
		if d == nil || !ws.send(ctx, w, d) {
			return
		}
	}
}

// redactURL returns what a log may say about a URL: its scheme and host,
// with "/…" standing for a path, query or fragment. Webhook endpoints often
// carry their secret there (or in user info, which is dropped).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(an unreadable URL)"
	}
	out := u.Scheme + "://" + u.Host
	if strings.Trim(u.EscapedPath(), "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		out += "/…"
	}
	return out
}

// signWebhook computes the Standard Webhooks signature header value.
func signWebhook(secret, id string, ts int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// send makes one attempt and records it; it reports success.
func (ws *webhookSender) send(ctx context.Context, w Webhook, d *Delivery) bool {
	body, _ := json.Marshal(map[string]any{"type": d.Event.Type, "timestamp": d.Event.At, "data": d.Event.Data})
	now := time.Now()
	a := DeliveryAttempt{DeliveryID: d.ID}
	sig, err := signWebhook(w.Secret, d.Event.ID, now.Unix(), body)
	if err == nil {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "scimbox-webhooks")
			req.Header.Set("webhook-id", d.Event.ID)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			req.Header.Set("webhook-signature", sig)
			var resp *http.Response
			if resp, err = ws.client.Do(req); err == nil {
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				a.Status = resp.StatusCode
			}
		}
	}
	a.Millis = time.Since(now).Milliseconds()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return false
		}
		// The error names the URL, secret parts and all; it is logged below.
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL)
		}
		a.Error = err.Error()
	}
	ok := err == nil && a.Status >= 200 && a.Status < 300
	if !ok && a.Error == "" && a.Status >= 300 && a.Status < 400 {
		a.Error = fmt.Sprintf("HTTP %d: redirects are not followed", a.Status)
	}
	retryAt := now.Add(ws.backoff(d.Attempts))
	if err := ws.store.RecordAttempt(context.WithoutCancel(ctx), w.ID, d, a, ok, retryAt, ws.maxFailures); err != nil {
		if errors.Is(err, ErrDatabaseLost) {
			return false // reported once, where it was noticed
		}
		ws.log.Error("record webhook attempt", "webhook", w.ID, "err", err)
		return false
	}
	if !ok {
		ws.log.Warn("webhook delivery failed", "webhook", w.ID, "url", redactURL(w.URL), "event", d.Event.Type, "status", a.Status,
			"err", a.Error, "retry_at", retryAt.UTC().Format(time.RFC3339))
	}
	return ok
}

// Webhook endpoints, their delivery queue and the log of delivery attempts.

package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Webhook is an endpoint that receives events.
type Webhook struct {
	ID, URL, Secret string
	Types           []string // event types, or ["*"]
	Created         time.Time
	Failures        int
	DisabledReason  string
}

// Delivery is a queued event for one webhook.
type Delivery struct {
	ID       int64
	Attempts int
	Event    Event
}

// DeliveryAttempt is one try of a delivery, for the delivery log.
type DeliveryAttempt struct {
	DeliveryID int64
	EventType  string
	At         time.Time
	Status     int
	Error      string
	Millis     int64
}

// CreateWebhook registers an endpoint with a new signing secret.
func (s *Store) CreateWebhook(ctx context.Context, url string, types []string) (Webhook, error) {
	secret := make([]byte, 24)
	rand.Read(secret)
	w := Webhook{ID: "wh_" + randomBase62(16), URL: url, Secret: "whsec_" + base64.StdEncoding.EncodeToString(secret), Types: types}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		w.Created = now
		_, err := tx.ExecContext(ctx, "INSERT INTO webhooks (id, url, secret, types, created) VALUES (?, ?, ?, ?, ?)",
			w.ID, w.URL, w.Secret, strings.Join(types, ","), formatTime(now))
		if err == nil {
			s.hasWebhooks.Store(true)
		}
		return err
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	return w, nil
}

// refreshHasWebhooks records whether any webhook exists.
func (s *Store) refreshHasWebhooks(ctx context.Context, q queryer) error {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil {
		return fmt.Errorf("count webhooks: %w", err)
	}
	s.hasWebhooks.Store(n > 0)
	return nil
}

// Webhooks lists the endpoints.
func (s *Store) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, url, secret, types, created, failures, disabled_reason FROM webhooks ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		var w Webhook
		var types, created string
		if err := rows.Scan(&w.ID, &w.URL, &w.Secret, &types, &created, &w.Failures, &w.DisabledReason); err != nil {
			return nil, fmt.Errorf("webhooks: %w", err)
		}
		w.Types, w.Created = strings.Split(types, ","), parseTime(created)
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook removes an endpoint and its queue.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?", id); err != nil {
			return err
		}
		return s.refreshHasWebhooks(ctx, tx)
	})
}

// EnableWebhook turns a disabled endpoint back on; its queue resumes where it stopped.
func (s *Store) EnableWebhook(ctx context.Context, id string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		_, err := tx.ExecContext(ctx, "UPDATE webhooks SET disabled_reason = '', failures = 0 WHERE id = ?", id)
		if err == nil {
			_, err = tx.ExecContext(ctx, "UPDATE deliveries SET next_at = ? WHERE webhook_id = ? AND done = 0", formatTime(now), id)
		}
		return err
	})
}

// QueueTestEvent queues a webhook.test event for one endpoint only.
func (s *Store) QueueTestEvent(ctx context.Context, webhookID string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var cursor int64
		err := tx.QueryRowContext(ctx, `INSERT INTO events (id, at, type, resource_type, resource_id, data) VALUES (?, ?, 'webhook.test', '', '', '{"test":true}')
			RETURNING cursor`, "evt_"+randomBase62(24), formatTime(now)).Scan(&cursor)
		if err != nil {
			return err
		}
		s.stats.noteEvents("webhook.test", 1)
		_, err = tx.ExecContext(ctx, "INSERT INTO deliveries (webhook_id, event_cursor, next_at) VALUES (?, ?, ?)", webhookID, cursor, formatTime(now))
		return err
	})
}

// NextDelivery returns the oldest undelivered event of an enabled endpoint if
// it is due. Later events wait behind it, so each endpoint receives events in order.
func (s *Store) NextDelivery(ctx context.Context, webhookID string) (*Delivery, error) {
	var d Delivery
	var nextAt, at, data string
	err := s.r.QueryRowContext(ctx, `SELECT d.id, d.attempts, d.next_at, e.cursor, e.id, e.at, e.type, e.resource_type, e.resource_id, e.data
		FROM deliveries d JOIN events e ON e.cursor = d.event_cursor JOIN webhooks w ON w.id = d.webhook_id
		WHERE d.webhook_id = ? AND d.done = 0 AND w.disabled_reason = '' ORDER BY d.id LIMIT 1`, webhookID).
		Scan(&d.ID, &d.Attempts, &nextAt, &d.Event.Cursor, &d.Event.ID, &at, &d.Event.Type, &d.Event.ResourceType, &d.Event.ResourceID, &data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("next delivery: %w", err)
	}
	if parseTime(nextAt).After(s.now()) {
		return nil, nil
	}
	d.Event.At, d.Event.Data = parseTime(at), json.RawMessage(data)
	return &d, nil
}

// RecordAttempt logs one try of a delivery. On success the delivery is done
// and the endpoint's failure count resets; on failure it is retried at
// retryAt, and after maxFailures consecutive failures the endpoint is disabled with reason.
func (s *Store) RecordAttempt(ctx context.Context, webhookID string, d *Delivery, a DeliveryAttempt, ok bool, retryAt time.Time, maxFailures int) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO delivery_attempts (delivery_id, webhook_id, at, status, error, ms) VALUES (?, ?, ?, ?, ?, ?)",
			d.ID, webhookID, formatTime(now), a.Status, a.Error, a.Millis)
		if err != nil {
			return err
		}
		if ok {
			if _, err := tx.ExecContext(ctx, "UPDATE deliveries SET done = 1, attempts = attempts + 1 WHERE id = ?", d.ID); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, "UPDATE webhooks SET failures = 0 WHERE id = ?", webhookID)
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE deliveries SET attempts = attempts + 1, next_at = ? WHERE id = ?", formatTime(retryAt), d.ID); err != nil {
			return err
		}
		reason := fmt.Sprintf("disabled after %d failed attempts in a row; last: %s", maxFailures, attemptOutcome(a))
		_, err = tx.ExecContext(ctx, `UPDATE webhooks SET failures = failures + 1,
			disabled_reason = CASE WHEN failures + 1 >= ? THEN ? ELSE disabled_reason END WHERE id = ?`, maxFailures, reason, webhookID)
		return err
	})
}

// attemptOutcome says how an attempt failed: its error, or its HTTP status.
func attemptOutcome(a DeliveryAttempt) string {
	if a.Error != "" {
		return a.Error
	}
	return fmt.Sprintf("HTTP %d", a.Status)
}

// DeliveryAttempts returns an endpoint's latest attempts, newest first.
func (s *Store) DeliveryAttempts(ctx context.Context, webhookID string, limit int) ([]DeliveryAttempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT a.delivery_id, e.type, a.at, a.status, a.error, a.ms FROM delivery_attempts a
		JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.cursor = d.event_cursor
		WHERE a.webhook_id = ? ORDER BY a.id DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("delivery log: %w", err)
	}
	defer rows.Close()
	var out []DeliveryAttempt
	for rows.Next() {
		var a DeliveryAttempt
		var at string
		if err := rows.Scan(&a.DeliveryID, &a.EventType, &at, &a.Status, &a.Error, &a.Millis); err != nil {
			return nil, err
		}
		a.At = parseTime(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// WebhookBacklog is one endpoint's delivery queue.
type WebhookBacklog struct {
	ID       string
	Disabled bool
	Pending  int       // deliveries not done
	Oldest   time.Time // when the oldest pending delivery's event happened; zero when none
}

// WebhookBacklogs returns every endpoint's delivery queue, for the metrics.
// Endpoints are few, and both figures come from the deliveries_pending index.
func (s *Store) WebhookBacklogs(ctx context.Context) ([]WebhookBacklog, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT w.id, w.disabled_reason <> '',
			(SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.done = 0),
			coalesce((SELECT e.at FROM deliveries d JOIN events e ON e.cursor = d.event_cursor
				WHERE d.webhook_id = w.id AND d.done = 0 ORDER BY d.id LIMIT 1), '')
		FROM webhooks w ORDER BY w.id`)
	if err != nil {
		return nil, fmt.Errorf("webhook backlogs: %w", err)
	}
	defer rows.Close()
	var out []WebhookBacklog
	for rows.Next() {
		var b WebhookBacklog
		var oldest string
		if err := rows.Scan(&b.ID, &b.Disabled, &b.Pending, &oldest); err != nil {
			return nil, fmt.Errorf("webhook backlogs: %w", err)
		}
		b.Oldest = parseTime(oldest)
		out = append(out, b)
	}
	return out, rows.Err()
}

// The change feed: events written in the transaction of the change they describe.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// eventRetentionDays bounds the change feed; an app that falls further behind re-reads the API.
const eventRetentionDays = 30

// Event is one entry of the change feed.
type Event struct {
	Cursor       int64           `json:"cursor"`
	ID           string          `json:"id"`
	At           time.Time       `json:"timestamp"`
	Type         string          `json:"type"`
	ResourceType string          `json:"resourceType"`
	ResourceID   string          `json:"resourceId"`
	Data         json.RawMessage `json:"data"`
}

// emit records an event in the transaction of the change it describes, so the
// feed never misses a change nor describes one that was rolled back, and
// queues it for every webhook subscribed to its type. A disabled endpoint's
// queue keeps growing (the Apps page shows how much waits, and the feed's
// retention bounds it), so that enabling it again delivers everything.
func (s *Store) emit(ctx context.Context, tx *sql.Tx, now time.Time, typ, resourceType, resourceID string, data any) error {
	return s.emitMany(ctx, tx, now, typ, resourceType, resourceID, []any{data})
}

// queueDeliveriesSQL queues the events with cursors between two bounds for
// every webhook subscribed to their type.
const queueDeliveriesSQL = `INSERT INTO deliveries (webhook_id, event_cursor, next_at)
	SELECT w.id, e.cursor, ? FROM events e JOIN webhooks w
		ON w.types = '*' OR instr(',' || w.types || ',', ',' || e.type || ',') > 0
	WHERE e.cursor BETWEEN ? AND ? ORDER BY e.cursor`

// insertEventsSQL records one event per element of a JSON array.
const insertEventsSQL = `INSERT INTO events (id, at, type, resource_type, resource_id, data)
	SELECT 'evt_' || lower(hex(randomblob(12))), ?, ?, ?, ?, j.value FROM json_each(?) j WHERE true
	RETURNING cursor`

// emitMany records several events of one type and resource with one statement
// for the events and one for their deliveries, whatever their number.
func (s *Store) emitMany(ctx context.Context, tx *sql.Tx, now time.Time, typ, resourceType, resourceID string, data []any) error {
	if len(data) == 0 {
		return nil
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	rows, err := s.in(tx).QueryContext(ctx, insertEventsSQL, formatTime(now), typ, resourceType, resourceID, string(raw))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	first, last, err := cursorRange(rows)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	s.stats.noteEvents(typ, len(data))
	if !s.hasWebhooks.Load() {
		return nil
	}
	_, err = s.in(tx).ExecContext(ctx, queueDeliveriesSQL, formatTime(now), first, last)
	if err != nil {
		return fmt.Errorf("queue event: %w", err)
	}
	return nil
}

// emitEach records one event of a type for each resource in ids (data[i]
// about ids[i]), with one statement for the events and one for their
// deliveries, whatever their number: a role rule can change thousands of users.
func (s *Store) emitEach(ctx context.Context, tx *sql.Tx, now time.Time, typ, resourceType string, ids []string, data []any) error {
	if len(ids) == 0 {
		return nil
	}
	pairs := make([]any, len(ids))
	for i, id := range ids {
		pairs[i] = []any{id, data[i]}
	}
	raw, err := json.Marshal(pairs)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `INSERT INTO events (id, at, type, resource_type, resource_id, data)
		SELECT 'evt_' || lower(hex(randomblob(12))), ?, ?, ?, j.value->>0, j.value->'$[1]' FROM json_each(?) j WHERE true
		RETURNING cursor`, formatTime(now), typ, resourceType, string(raw))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	first, last, err := cursorRange(rows)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	if !s.hasWebhooks.Load() {
		return nil
	}
	if _, err := tx.ExecContext(ctx, queueDeliveriesSQL, formatTime(now), first, last); err != nil {
		return fmt.Errorf("queue event: %w", err)
	}
	return nil
}

// cursorRange reads the cursors an INSERT … RETURNING cursor gave, and
// closes rows: the first and last of them, for the deliveries to queue.
func cursorRange(rows *sql.Rows) (first, last int64, err error) {
	defer rows.Close()
	for rows.Next() {
		var c int64
		if err := rows.Scan(&c); err != nil {
			return 0, 0, err
		}
		if first == 0 || c < first {
			first = c
		}
		last = max(last, c)
	}
	return first, last, rows.Err()
}

// policyIn returns the source-of-truth policy for a write: from memory once
// read (SetPolicy keeps it current), else from the transaction.
func (s *Store) policyIn(ctx context.Context, q queryer) (Policy, error) {
	if p := s.policy.Load(); p != nil {
		return *p, nil
	}
	raw, err := setting(ctx, q, settingPolicy)
	p := PresetPolicy(presetHybrid)
	if err != nil {
		return p, err
	}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &p); err != nil {
			return p, err
		}
	}
	s.policy.Store(&p)
	return p, nil
}

// eventsAfterSQL reads a page of the change feed after a cursor.
const eventsAfterSQL = `SELECT cursor, id, at, type, resource_type, resource_id, data FROM events
	WHERE cursor > ? ORDER BY cursor LIMIT ?`

// Events returns up to limit events after the cursor, oldest first.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, eventsAfterSQL, after, limit)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at, data string
		if err := rows.Scan(&e.Cursor, &e.ID, &at, &e.Type, &e.ResourceType, &e.ResourceID, &data); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.At, e.Data = parseTime(at), json.RawMessage(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PruneEvents drops events older than days, and delivered or abandoned
// deliveries of them. Events still waiting for an endpoint are dropped too (the
// feed's retention bounds every queue), with a warning naming the endpoint.
func (s *Store) PruneEvents(ctx context.Context, days int) error {
	dropped := map[string]int{}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		clear(dropped)
		cut := formatTime(now.AddDate(0, 0, -days))
		rows, err := tx.QueryContext(ctx, `SELECT webhook_id, count(*) FROM deliveries
			WHERE done = 0 AND event_cursor IN (SELECT cursor FROM events WHERE at < ?) GROUP BY webhook_id`, cut)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			dropped[id] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE event_cursor IN (SELECT cursor FROM events WHERE at < ?)", cut); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM events WHERE at < ?", cut)
		return err
	})
	if err != nil {
		return err
	}
	for id, n := range dropped {
		s.log.Warn("webhook events older than the change feed's retention dropped undelivered", "webhook", id, "events", n, "days", days)
	}
	return nil
}

// WaitingDeliveries returns how many events wait for each webhook (by id),
// whether the endpoint is failing, disabled or just behind.
func (s *Store) WaitingDeliveries(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT w.id, (SELECT count(*) FROM deliveries d WHERE d.webhook_id = w.id AND d.done = 0)
		FROM webhooks w`)
	if err != nil {
		return nil, fmt.Errorf("waiting deliveries: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("waiting deliveries: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

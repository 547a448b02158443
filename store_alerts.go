// Alerts: their configuration, what each channel was told, and the counts the conditions read.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// AlertSettings returns the alert configuration saved on the Settings page
// (the flags' overrides are applied by the caller).
func (s *Store) AlertSettings(ctx context.Context) (alertConfig, error) {
	keys := alertSettingKeys()
	rows, err := s.r.QueryContext(ctx, "SELECT key, value FROM settings WHERE key IN (?"+strings.Repeat(", ?", len(keys)-1)+")", keys...)
	if err != nil {
		return alertConfig{}, fmt.Errorf("alert settings: %w", err)
	}
	defer rows.Close()
	stored := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return alertConfig{}, fmt.Errorf("alert settings: %w", err)
		}
		stored[k] = v
	}
	if err := rows.Err(); err != nil {
		return alertConfig{}, fmt.Errorf("alert settings: %w", err)
	}
	return alertConfigFromSettings(stored), nil
}

// SetAlertSettings saves the whole alert configuration in one transaction.
func (s *Store) SetAlertSettings(ctx context.Context, c alertConfig) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		return putSettings(ctx, tx, c.settings())
	})
	if err != nil {
		return fmt.Errorf("save alert settings: %w", err)
	}
	return nil
}

// AlertState is what one channel was told about one condition: a row exists
// from the moment the condition fires until the channel has been told it
// resolved.
type AlertState struct {
	Condition, Channel string
	Since              time.Time // when the condition began firing
	LastSent           time.Time // the last firing message delivered; zero if none was yet
	Detail             string
}

// AlertStates returns every condition that some channel sees firing.
func (s *Store) AlertStates(ctx context.Context) ([]AlertState, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT condition, channel, firing_since, last_sent, detail FROM alert_state ORDER BY condition, channel")
	if err != nil {
		return nil, fmt.Errorf("alert states: %w", err)
	}
	defer rows.Close()
	var out []AlertState
	for rows.Next() {
		var st AlertState
		var since, sent string
		if err := rows.Scan(&st.Condition, &st.Channel, &since, &sent, &st.Detail); err != nil {
			return nil, fmt.Errorf("alert states: %w", err)
		}
		st.Since, st.LastSent = parseTime(since), parseTime(sent)
		out = append(out, st)
	}
	return out, rows.Err()
}

// PutAlertState records what a channel was told about a condition.
func (s *Store) PutAlertState(ctx context.Context, st AlertState) error {
	sent := ""
	if !st.LastSent.IsZero() {
		sent = formatTime(st.LastSent)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO alert_state (condition, channel, firing_since, last_sent, detail) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (condition, channel) DO UPDATE SET firing_since = excluded.firing_since, last_sent = excluded.last_sent, detail = excluded.detail`,
			st.Condition, st.Channel, formatTime(st.Since), sent, clip(st.Detail, maxLogDetail))
		return err
	})
	if err != nil {
		return fmt.Errorf("save alert state %s/%s: %w", st.Condition, st.Channel, err)
	}
	return nil
}

// DeleteAlertState forgets a condition for a channel, once told it resolved.
func (s *Store) DeleteAlertState(ctx context.Context, condition, channel string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM alert_state WHERE condition = ? AND channel = ?", condition, channel)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete alert state %s/%s: %w", condition, channel, err)
	}
	return nil
}

// FailureSummary counts the provisioning log's failures in a window, with
// the commonest kinds first.
type FailureSummary struct {
	Total int
	Top   []FailureKind // at most three
}

// FailureKind is one operation failing with one status, and one of its details.
type FailureKind struct {
	Op     string
	Status int
	Count  int
	Detail string
}

// FailuresSince summarizes the failed requests logged at or after since
// (answered from the (outcome, at) index).
func (s *Store) FailuresSince(ctx context.Context, since time.Time) (FailureSummary, error) {
	var sum FailureSummary
	rows, err := s.r.QueryContext(ctx, `SELECT op, status, count(*), max(detail) FROM provisioning_log
		WHERE outcome = 'failure' AND at >= ? GROUP BY op, status ORDER BY count(*) DESC, op, status`, formatTime(since))
	if err != nil {
		return sum, fmt.Errorf("count failures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k FailureKind
		if err := rows.Scan(&k.Op, &k.Status, &k.Count, &k.Detail); err != nil {
			return sum, fmt.Errorf("count failures: %w", err)
		}
		sum.Total += k.Count
		if len(sum.Top) < 3 {
			sum.Top = append(sum.Top, k)
		}
	}
	return sum, rows.Err()
}

// The audit trail: who did what on the admin page, when and from where,
// sign-ins and refused attempts included.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// AuditEntry is one admin action.
type AuditEntry struct {
	ID      int64
	At      time.Time
	Actor   string // the admin's name, or what a failed sign-in claimed to be
	Action  string // e.g. "sign-in", "POST /apps/keys"
	Target  string // what it concerned, when there is one
	Outcome string // "success" or "refused"
	Client  string // the client address
	Detail  string
}

// Audit outcomes.
const (
	auditSuccess = "success"
	auditRefused = "refused"
)

// auditRetention is how long audit entries are kept.
const auditRetention = 400 * 24 * time.Hour

// RecordAudit appends e to the audit trail (At is the store's now), and
// forgets entries older than auditRetention.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM audit WHERE at < ?", formatTime(now.Add(-auditRetention))); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO audit (at, actor, action, target, outcome, client, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
			formatTime(now), e.Actor, e.Action, e.Target, e.Outcome, e.Client, e.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("record audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditQuery filters the audit trail: each non-empty field must match.
type AuditQuery struct {
	Actor   string // the actor's name, case-insensitive
	Outcome string
	Action  string // a prefix of the action, such as "sign-in" or "POST /apps"
	Limit   int
	Offset  int
}

// AuditEntries returns the entries q selects, newest first, and how many there are.
func (s *Store) AuditEntries(ctx context.Context, q AuditQuery) ([]AuditEntry, int, error) {
	var where []string
	var args []any
	if q.Actor != "" {
		where, args = append(where, "actor = ? COLLATE NOCASE"), append(args, q.Actor)
	}
	if q.Outcome != "" {
		where, args = append(where, "outcome = ?"), append(args, q.Outcome)
	}
	if q.Action != "" {
		where, args = append(where, "substr(action, 1, ?) = ?"), append(args, len(q.Action), q.Action)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM audit"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count audit: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT id, at, actor, action, target, outcome, client, detail FROM audit"+cond+" ORDER BY id DESC LIMIT ? OFFSET ?",
		append(args, max(q.Limit, 1), max(q.Offset, 0))...)
	if err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Client, &e.Detail); err != nil {
			return nil, 0, fmt.Errorf("list audit: %w", err)
		}
		e.At = parseTime(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	return out, total, nil
}

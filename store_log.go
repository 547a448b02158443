// The provisioning log: written asynchronously in batches, searched by the admin page.

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// LogEntry is one SCIM request that changed something or failed.
type LogEntry struct {
	ID           int64
	At           time.Time
	Op           string // "create user", "add members", "disable user", …
	ResourceType string // User, Group or "" (a request that named none)
	ResourceID   string
	Target       string // userName or displayName when known, else the id
	Outcome      string // success or failure
	Status       int
	Detail       string // the error detail for failures
}

const (
	// maxLogText and maxLogDetail cap what a row stores of the operation,
	// resource type, id and target, and of the error detail: a request can
	// name an id of up to a MiB.
	maxLogText       = 256
	maxLogDetail     = 1024
	logQueueSize     = 4096                   // entries waiting for the writer before Log drops them
	logFlushEvery    = 500 * time.Millisecond // how often the writer writes a batch
	defaultLogDays   = 30                     // retention unless Settings say otherwise
	maxLogRows       = 500_000                // the log is pruned to this many rows whatever the retention
	logRetentionDays = "log_retention_days"   // the setting that holds the retention
)

// Log queues an entry for the provisioning log. It never blocks a request:
// when the queue is full the entry is dropped and a warning logged. After
// Close, entries are dropped (a request that outlived the server's shutdown).
func (s *Store) Log(e LogEntry) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.Op, e.ResourceType, e.ResourceID = clip(e.Op, maxLogText), clip(e.ResourceType, maxLogText), clip(e.ResourceID, maxLogText)
	e.Target, e.Detail = clip(e.Target, maxLogText), clip(e.Detail, maxLogDetail)
	s.logMu.RLock()
	defer s.logMu.RUnlock()
	if s.logClosed {
		s.log.Debug("provisioning log closed: entry dropped", "op", e.Op)
		return
	}
	select {
	case s.logQueue <- e:
	default:
		s.log.Warn("provisioning log queue full: entry dropped", "op", e.Op, "target", e.Target)
	}
}

// logWriter writes queued entries in batches, one transaction each. When ctx
// ends (Close has stopped new entries first) it writes what is still queued.
func (s *Store) logWriter(ctx context.Context) {
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	var batch []LogEntry
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// Not ctx: the last entries are written while the store closes.
		if err := s.writeLog(context.Background(), batch); err != nil && !errors.Is(err, ErrDatabaseLost) {
			s.log.Error("write provisioning log", "entries", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	add := func(e LogEntry) {
		if batch = append(batch, e); len(batch) >= 256 {
			flush()
		}
	}
	for {
		select {
		case e := <-s.logQueue:
			add(e)
		case <-tick.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case e := <-s.logQueue:
					add(e)
				default:
					flush()
					return
				}
			}
		}
	}
}

// writeLog writes a batch of entries in one transaction.
func (s *Store) writeLog(ctx context.Context, batch []LogEntry) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		for _, e := range batch {
			_, err := tx.ExecContext(ctx, `INSERT INTO provisioning_log (at, op, resource_type, resource_id, target, outcome,
				status, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, formatTime(e.At), e.Op, e.ResourceType, e.ResourceID,
				e.Target, e.Outcome, e.Status, e.Detail)
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// FlushLog waits until every entry queued before the call is written.
func (s *Store) FlushLog(ctx context.Context) error {
	for len(s.logQueue) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The writer may hold the last batch in memory until its next tick.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * logFlushEvery):
	}
	return nil
}

// PruneLog deletes entries older than the retention setting (default 30 days)
// and the oldest beyond maxLogRows, so that the file does not grow forever.
func (s *Store) PruneLog(ctx context.Context) error {
	days := defaultLogDays
	if v, err := s.Setting(ctx, logRetentionDays); err == nil && v != "" {
		fmt.Sscan(v, &days)
	}
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM provisioning_log WHERE at < ?", formatTime(now.AddDate(0, 0, -days))); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM provisioning_log WHERE id <= (SELECT max(id) FROM provisioning_log) - ?", maxLogRows)
		return err
	})
}

// LogQuery selects provisioning log entries, newest first.
type LogQuery struct {
	Outcome    string // "", success or failure
	Target     string // prefix of the target, case-insensitive
	ResourceID string
	Before     int64 // entries with a smaller id (keyset paging); 0 for the newest
	Limit      int
}

// ListLog returns log entries, newest first.
func (s *Store) ListLog(ctx context.Context, q LogQuery) ([]LogEntry, error) {
	query, args := listLogSQL(q)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list log: %w", err)
	}
	defer rows.Close()
	var out []LogEntry
	for rows.Next() {
		var e LogEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Op, &e.ResourceType, &e.ResourceID, &e.Target, &e.Outcome, &e.Status, &e.Detail); err != nil {
			return nil, fmt.Errorf("list log: %w", err)
		}
		e.At = parseTime(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// clip makes s valid UTF-8 and at most n bytes long, cutting at a character
// boundary and marking the cut with an ellipsis.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// listLogSQL is the statement ListLog runs for q.
func listLogSQL(q LogQuery) (string, []any) {
	var where []string
	var args []any
	if q.Outcome != "" {
		where, args = append(where, "outcome = ?"), append(args, q.Outcome)
	}
	if q.Target != "" {
		// LIKE is case-insensitive (ASCII) by itself; a COLLATE clause here
		// would keep SQLite from answering the prefix from the NOCASE target index.
		where, args = append(where, "target LIKE ? ESCAPE '\\'"), append(args, likePrefix(q.Target))
	}
	if q.ResourceID != "" {
		where, args = append(where, "resource_id = ?"), append(args, q.ResourceID)
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	query := "SELECT id, at, op, resource_type, resource_id, target, outcome, status, detail FROM provisioning_log"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return query + " ORDER BY id DESC LIMIT ?", append(args, max(q.Limit, 1))
}

// likePrefix is a LIKE pattern matching values that start with s (escape '\'), wildcards in s escaped.
func likePrefix(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "%", "\\%", "_", "\\_")
	return r.Replace(s) + "%"
}

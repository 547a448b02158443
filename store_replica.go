// The SQL of replication and of the reconcile after a restore: the restore
// marker (settings written into the restored file), the objects the
// directory has touched since, and its requests for ids the restore lost.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// reconcileMigration adds what the reconcile after a restore records: the
// users and groups the directory has touched since the restore, and its
// requests for ids the restored database does not have (Entra's InvalidAnchor).
const reconcileMigration = `CREATE TABLE reconcile_seen (
		resource_type TEXT NOT NULL,
		id TEXT NOT NULL,
		at TEXT NOT NULL,
		PRIMARY KEY (resource_type, id)
	) STRICT, WITHOUT ROWID;
	CREATE TABLE reconcile_unknown (
		resource_type TEXT NOT NULL,
		id TEXT NOT NULL,
		method TEXT NOT NULL,
		count INTEGER NOT NULL,
		first TEXT NOT NULL,
		last TEXT NOT NULL,
		PRIMARY KEY (resource_type, id)
	) STRICT, WITHOUT ROWID;`

// Settings of the restore marker, written into the restored file by every restore.
const (
	settingRestorePoint      = "restore_point"      // the time of the state restored
	settingRestoredAt        = "restored_at"        // when the restore ran
	settingRestoreSource     = "restore_source"     // what was restored: a file, or a replica URL without password
	settingRestoreReconciled = "restore_reconciled" // when every object was confirmed or the admin closed the reconcile; "" while open
)

// handOverCheckpoints leaves checkpointing to Litestream for as long as the
// store is open: the checkpointer stops, and Close does not fold the WAL.
// Litestream holds a read transaction and checkpoints itself; a TRUNCATE or
// RESTART by anyone else restarts the WAL under it and costs a full upload.
func (s *Store) handOverCheckpoints() { s.replicated.Store(true) }

// RestoreMarker is what the last restore wrote into the database.
type RestoreMarker struct {
	Point      time.Time // the state restored is that of this time
	RestoredAt time.Time
	Source     string
	Reconciled time.Time // zero while the reconcile is open
}

// writeRestoreMarker writes the marker into the database file at path (not
// open in any server) and clears what an earlier reconcile recorded there.
func writeRestoreMarker(ctx context.Context, path string, m RestoreMarker) error {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := putSettings(ctx, tx, map[string]string{
		settingRestorePoint:      formatTime(m.Point),
		settingRestoredAt:        formatTime(m.RestoredAt),
		settingRestoreSource:     m.Source,
		settingRestoreReconciled: "",
	}); err != nil {
		return fmt.Errorf("write the restore marker: %w", err)
	}
	// A database older than the reconcile has no such tables yet: its migration creates them empty.
	for _, table := range []string{"reconcile_seen", "reconcile_unknown"} {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// RestoreMarker returns the marker of the last restore, nil when the database was never restored.
func (s *Store) RestoreMarker(ctx context.Context) (*RestoreMarker, error) {
	vals := map[string]string{}
	for _, k := range []string{settingRestorePoint, settingRestoredAt, settingRestoreSource, settingRestoreReconciled} {
		v, err := setting(ctx, s.r, k)
		if err != nil {
			return nil, fmt.Errorf("restore marker: %w", err)
		}
		vals[k] = v
	}
	if vals[settingRestoredAt] == "" {
		return nil, nil
	}
	m := &RestoreMarker{Point: parseTime(vals[settingRestorePoint]), RestoredAt: parseTime(vals[settingRestoredAt]),
		Source: vals[settingRestoreSource]}
	if vals[settingRestoreReconciled] != "" {
		m.Reconciled = parseTime(vals[settingRestoreReconciled])
	}
	return m, nil
}

// ConfirmSeen records that the directory has touched these objects since the restore.
func (s *Store) ConfirmSeen(ctx context.Context, resourceType string, ids []string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO reconcile_seen (resource_type, id, at) VALUES (?, ?, ?)",
				resourceType, id, formatTime(now)); err != nil {
				return err
			}
		}
		return nil
	})
}

// NoteUnknownAfterRestore counts a directory request for an id the restored database does not have.
func (s *Store) NoteUnknownAfterRestore(ctx context.Context, resourceType, id, method string) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO reconcile_unknown (resource_type, id, method, count, first, last) VALUES (?, ?, ?, 1, ?, ?)
			ON CONFLICT (resource_type, id) DO UPDATE SET count = count + 1, last = excluded.last, method = excluded.method`,
			resourceType, id, method, formatTime(now), formatTime(now))
		return err
	})
}

// CloseReconcile ends the reconcile: every object was confirmed, or the admin closed it.
func (s *Store) CloseReconcile(ctx context.Context) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		return putSettings(ctx, tx, map[string]string{settingRestoreReconciled: formatTime(now)})
	})
}

// UnconfirmedObject is a user or group the directory has not touched since the restore.
type UnconfirmedObject struct {
	ID, Name string
	Modified time.Time
}

// UnknownRequest is a directory request for an id the restored database lacks.
type UnknownRequest struct {
	ResourceType, ID, Method string
	Count                    int
	First, Last              time.Time
}

// ReconcileState is the reconcile's progress.
type ReconcileState struct {
	UnconfirmedUsers, UnconfirmedGroups int
	Users, Groups                       []UnconfirmedObject // the first limit of each, by name
	UnknownTotal                        int                 // requests for unknown ids, all counted
	Unknown                             []UnknownRequest    // the latest limit ids
}

// unconfirmedUsersSQL: directory accounts (the kinds SCIM sees) not touched since the restore.
const unconfirmedUsersSQL = `FROM users WHERE kind NOT IN ('manual', 'deprovisioned', 'retained')
	AND NOT EXISTS (SELECT 1 FROM reconcile_seen r WHERE r.resource_type = 'User' AND r.id = users.id)`

const unconfirmedGroupsSQL = `FROM groups WHERE NOT EXISTS (SELECT 1 FROM reconcile_seen r WHERE r.resource_type = 'Group' AND r.id = groups.id)`

// ReconcileCounts counts the users and groups still unconfirmed.
func (s *Store) ReconcileCounts(ctx context.Context) (users, groups int, err error) {
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) "+unconfirmedUsersSQL).Scan(&users); err != nil {
		return 0, 0, fmt.Errorf("reconcile: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) "+unconfirmedGroupsSQL).Scan(&groups); err != nil {
		return 0, 0, fmt.Errorf("reconcile: %w", err)
	}
	return users, groups, nil
}

// Reconcile returns the reconcile's progress, with up to limit objects of each kind.
func (s *Store) Reconcile(ctx context.Context, limit int) (ReconcileState, error) {
	var st ReconcileState
	var err error
	if st.UnconfirmedUsers, st.UnconfirmedGroups, err = s.ReconcileCounts(ctx); err != nil {
		return st, err
	}
	objects := func(query string) ([]UnconfirmedObject, error) {
		rows, err := s.r.QueryContext(ctx, query, limit)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []UnconfirmedObject
		for rows.Next() {
			var o UnconfirmedObject
			var modified string
			if err := rows.Scan(&o.ID, &o.Name, &modified); err != nil {
				return nil, err
			}
			o.Modified = parseTime(modified)
			out = append(out, o)
		}
		return out, rows.Err()
	}
	if st.Users, err = objects("SELECT id, user_name, modified " + unconfirmedUsersSQL + " ORDER BY user_name_key LIMIT ?"); err != nil {
		return st, fmt.Errorf("reconcile: %w", err)
	}
	if st.Groups, err = objects("SELECT id, display_name, modified " + unconfirmedGroupsSQL + " ORDER BY display_name_key LIMIT ?"); err != nil {
		return st, fmt.Errorf("reconcile: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(count), 0) FROM reconcile_unknown").Scan(&st.UnknownTotal); err != nil {
		return st, fmt.Errorf("reconcile: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT resource_type, id, method, count, first, last FROM reconcile_unknown ORDER BY last DESC LIMIT ?", limit)
	if err != nil {
		return st, fmt.Errorf("reconcile: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u UnknownRequest
		var first, last string
		if err := rows.Scan(&u.ResourceType, &u.ID, &u.Method, &u.Count, &first, &last); err != nil {
			return st, err
		}
		u.First, u.Last = parseTime(first), parseTime(last)
		st.Unknown = append(st.Unknown, u)
	}
	return st, rows.Err()
}

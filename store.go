package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Store errors. Callers compare with errors.Is; details are wrapped around them.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Store is scimbox's SQLite database: one writer connection and a pool of
// read-only connections on the same WAL file.
type Store struct {
	r, w *sql.DB
	now  func() time.Time
	log  *slog.Logger

	mu       sync.Mutex
	lastUsed map[string]time.Time // token id → last time its use was written

	logQueue chan LogEntry // provisioning log entries waiting to be written
	logDone  chan struct{} // closed when the log writer has flushed and stopped

	health                 *Health // Entra's cycles, counted in memory and written by cycleWriter
	stopHealth, healthDone chan struct{}

	closeOnce sync.Once
	closeErr  error

	policy      atomic.Pointer[Policy] // the source-of-truth policy, once read
	hasWebhooks atomic.Bool            // whether events need queueing for deliveries

	path            string
	lock            *os.File // shared flock held while open
	writes          atomic.Int64
	stopCheckpoints chan struct{}
	checkpointsDone chan struct{}
}

// migrations are applied in order and tracked with PRAGMA user_version.
// Append only: a shipped entry is never edited.
var migrations = []string{
	`CREATE TABLE users (
		id TEXT PRIMARY KEY,
		user_name TEXT NOT NULL,
		user_name_key TEXT NOT NULL UNIQUE,
		external_id TEXT,
		display_name TEXT,
		display_name_key TEXT,
		active INTEGER,
		attrs TEXT NOT NULL,
		created TEXT NOT NULL,
		modified TEXT NOT NULL,
		version INTEGER NOT NULL
	) STRICT;
	CREATE INDEX users_external_id ON users(external_id);
	CREATE INDEX users_display_name_key ON users(display_name_key);
	CREATE INDEX users_created ON users(created);
	CREATE INDEX users_modified ON users(modified);
	CREATE TABLE user_emails (
		value_key TEXT NOT NULL,
		user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		PRIMARY KEY (value_key, user_id)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX user_emails_user ON user_emails(user_id);
	CREATE TABLE groups (
		id TEXT PRIMARY KEY,
		display_name TEXT NOT NULL,
		display_name_key TEXT NOT NULL UNIQUE,
		external_id TEXT,
		attrs TEXT NOT NULL,
		member_count INTEGER NOT NULL DEFAULT 0,
		created TEXT NOT NULL,
		modified TEXT NOT NULL,
		version INTEGER NOT NULL
	) STRICT;
	CREATE INDEX groups_external_id ON groups(external_id);
	CREATE INDEX groups_created ON groups(created);
	CREATE INDEX groups_modified ON groups(modified);
	CREATE TABLE members (
		group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
		member_id TEXT NOT NULL,
		member_type TEXT NOT NULL,
		PRIMARY KEY (group_id, member_id)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX members_member ON members(member_id);
	CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		hash BLOB NOT NULL,
		created TEXT NOT NULL,
		last_used TEXT
	) STRICT;`,
	`CREATE TABLE admins (
		id INTEGER PRIMARY KEY,
		username TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		created TEXT NOT NULL,
		updated TEXT NOT NULL
	) STRICT;
	CREATE TABLE sessions (
		id TEXT PRIMARY KEY,
		hash BLOB NOT NULL,
		admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
		csrf TEXT NOT NULL,
		created TEXT NOT NULL,
		expires TEXT NOT NULL
	) STRICT;
	CREATE INDEX sessions_admin ON sessions(admin_id);
	CREATE TABLE settings (
		key TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) STRICT;
	CREATE TABLE provisioning_log (
		id INTEGER PRIMARY KEY,
		at TEXT NOT NULL,
		op TEXT NOT NULL,
		resource_type TEXT NOT NULL,
		resource_id TEXT NOT NULL,
		target TEXT NOT NULL,
		outcome TEXT NOT NULL,
		status INTEGER NOT NULL,
		detail TEXT NOT NULL
	) STRICT;
	CREATE INDEX provisioning_log_at ON provisioning_log(at);
	CREATE INDEX provisioning_log_resource ON provisioning_log(resource_id, id);
	CREATE INDEX provisioning_log_outcome ON provisioning_log(outcome, id);
	CREATE INDEX provisioning_log_target ON provisioning_log(target COLLATE NOCASE, id);`,
	`ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'directory';
	ALTER TABLE users ADD COLUMN overrides TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE users ADD COLUMN inactive_since TEXT;
	CREATE INDEX users_kind ON users(kind);
	CREATE INDEX users_inactive_since ON users(inactive_since) WHERE inactive_since IS NOT NULL;`,
	`CREATE TABLE events (
		cursor INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		at TEXT NOT NULL,
		type TEXT NOT NULL,
		resource_type TEXT NOT NULL,
		resource_id TEXT NOT NULL,
		data TEXT NOT NULL
	) STRICT;
	CREATE INDEX events_at ON events(at);
	CREATE TABLE app_keys (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		hash BLOB NOT NULL,
		created TEXT NOT NULL,
		last_used TEXT
	) STRICT;
	CREATE TABLE webhooks (
		id TEXT PRIMARY KEY,
		url TEXT NOT NULL,
		secret TEXT NOT NULL,
		types TEXT NOT NULL,
		created TEXT NOT NULL,
		failures INTEGER NOT NULL DEFAULT 0,
		disabled_reason TEXT NOT NULL DEFAULT ''
	) STRICT;
	CREATE TABLE deliveries (
		id INTEGER PRIMARY KEY,
		webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
		event_cursor INTEGER NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_at TEXT NOT NULL,
		done INTEGER NOT NULL DEFAULT 0
	) STRICT;
	CREATE INDEX deliveries_pending ON deliveries(webhook_id, done, id);
	CREATE TABLE delivery_attempts (
		id INTEGER PRIMARY KEY,
		delivery_id INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
		webhook_id TEXT NOT NULL,
		at TEXT NOT NULL,
		status INTEGER NOT NULL,
		error TEXT NOT NULL,
		ms INTEGER NOT NULL
	) STRICT;
	CREATE INDEX delivery_attempts_webhook ON delivery_attempts(webhook_id, id);`,
	`CREATE INDEX users_active ON users(active);`,
	`CREATE TABLE cycles (
		id INTEGER PRIMARY KEY,
		first_call TEXT NOT NULL,
		last_call TEXT NOT NULL,
		requests INTEGER NOT NULL,
		events INTEGER NOT NULL,
		failures INTEGER NOT NULL,
		reference_failures INTEGER NOT NULL,
		skipped_members INTEGER NOT NULL,
		probe INTEGER NOT NULL,
		first_op TEXT NOT NULL,
		first_status INTEGER NOT NULL,
		causes TEXT NOT NULL
	) STRICT;
	CREATE TABLE skipped_members (
		group_id TEXT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
		member_id TEXT NOT NULL,
		first_skipped TEXT NOT NULL,
		last_skipped TEXT NOT NULL,
		count INTEGER NOT NULL,
		PRIMARY KEY (group_id, member_id)
	) STRICT, WITHOUT ROWID;`,
}

// OpenStore opens (creating if needed) the database at path and migrates it.
func OpenStore(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if path == "" || strings.Contains(path, ":memory:") {
		return nil, fmt.Errorf("open store: a database file path is required")
	}
	dsn := func(extra string) string {
		// busy_timeout first, so that the pragmas after it wait rather than fail.
		return "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)" + extra
	}
	// A shared lock on the file for as long as the store is open: restore
	// takes it exclusively, so it cannot replace the file under a running server.
	// Alone with the file (no server running on it), a -wal with content is a
	// leftover to be checked; otherwise it is the live log of that server.
	lock, err := lockFile(path, true)
	alone := err == nil
	if alone {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	} else {
		lock, err = lockFile(path, false)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, path: path, lock: lock, now: time.Now, log: log, lastUsed: map[string]time.Time{}}
	fail := func(err error) (*Store, error) {
		w.Close()
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if alone {
		if err := s.checkLeftoverWAL(ctx); err != nil {
			return fail(err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		return fail(s.explainDamage(err))
	}
	if err := s.refreshHasWebhooks(ctx, s.w); err != nil {
		return fail(err)
	}
	if err := s.restoreHealth(ctx); err != nil {
		return fail(err)
	}
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s.r = r
	s.logQueue, s.logDone = make(chan LogEntry, logQueueSize), make(chan struct{})
	go s.logWriter()
	s.stopHealth, s.healthDone = make(chan struct{}), make(chan struct{})
	go s.cycleWriter()
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpointer()
	return s, nil
}

// Close writes the pending log entries, checkpoints the WAL fully into the
// database file and closes both pools.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopHealthWriter()
		close(s.logQueue)
		<-s.logDone
		close(s.stopCheckpoints)
		<-s.checkpointsDone
		if err := s.checkpoint(context.Background(), "TRUNCATE"); err != nil {
			s.log.Warn("final checkpoint", "err", err)
		}
		s.closeErr = errors.Join(s.r.Close(), s.w.Close(), s.lock.Close())
	})
	return s.closeErr
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("the database has schema version %d, newer than this scimbox knows (%d): use a newer scimbox", version, len(migrations))
	}
	if version > 0 && version < len(migrations) {
		// Upgrading a database that has data: keep a copy of it as it was.
		dest := filepath.Join(filepath.Dir(s.path), backupDir,
			fmt.Sprintf("pre-migration-v%d-%s.db", version, s.now().UTC().Format("20060102T150405Z")))
		if err := s.Snapshot(ctx, dest); err != nil {
			return fmt.Errorf("snapshot before migrating from schema version %d: %w", version, err)
		}
		s.log.Info("database upgraded: a copy of the old version was kept", "copy", dest)
	}
	for i := version; i < len(migrations); i++ {
		err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	return nil
}

// write runs fn in one immediate write transaction; now is taken once for it.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, now time.Time) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx, s.now().UTC().Truncate(time.Millisecond)); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.writes.Add(1)
	return nil
}

// unavailable reports whether err is a failure of the database itself rather
// than of the request, and why in words for the admin.
func unavailable(err error) (string, bool) {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return "", false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL:
		return "the disk is full", true
	case sqlite3.SQLITE_READONLY:
		return "the database file is read-only", true
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return "the database file cannot be read or written", true
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return "the database is locked by another program", true
	case sqlite3.SQLITE_NOMEM:
		return "the server is out of memory", true
	}
	return "", false
}

// translate turns SQLite constraint errors into store sentinels.
func translate(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return ErrConflict
		}
	}
	return err
}

// queryer is what reads need: a read pool or a write transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// newID returns a random UUID (version 4): opaque, URL-safe and unguessable.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

func decodeAttrs(raw string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode stored attributes: %w", err)
	}
	return m, nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func stringAttr(attrs map[string]any, name string) string {
	s, _ := attrs[name].(string)
	return s
}

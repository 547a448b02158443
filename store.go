// The store: one SQLite file behind a read pool and a single-writer pool,
// the append-only migrations, write transactions and the translation of
// SQLite errors. Each concern's queries are in a store_<concern>.go of its own.

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
	// ErrSchemaMismatch reports a database this scimbox may not use as it is.
	ErrSchemaMismatch = errors.New("wrong schema version")
	ErrInvalid        = errors.New("invalid value") // a value the store refuses to hold
)

// Store is scimbox's SQLite database: one writer connection and a pool of
// read-only connections on the same WAL file.
type Store struct {
	r, w *sql.DB
	// cp is the checkpointer's own connection: a checkpoint on the writer's
	// held every write while it copied the WAL and fsynced the file.
	cp  *sql.DB
	now func() time.Time
	log *slog.Logger

	mu       sync.Mutex
	lastUsed map[string]time.Time // token id → last time its use was written

	logQueue  chan LogEntry // provisioning log entries waiting to be written
	logMu     sync.RWMutex  // Log holds it to read; Close to set logClosed
	logClosed bool          // once set, Log drops entries instead of queueing them

	// workers are the store's own background loops, the provisioning-log
	// writer and the checkpointer: started by OpenStore, joined by Close.
	workers *workerGroup

	health *Health // Entra's cycles, counted in memory and written by cycleWriter

	closeOnce sync.Once
	closeErr  error

	policy      atomic.Pointer[Policy] // the source-of-truth policy, once read
	hasWebhooks atomic.Bool            // whether events need queueing for deliveries
	// searchDeferred: the schema has user_search_dirty, so batches bring
	// the search index up to date before they commit (syncSearchDue says
	// which); searchBehindSince is when a batch first left it behind (unix
	// nanoseconds, 0: up to date).
	searchDeferred    atomic.Bool
	searchBehindSince atomic.Int64

	path         string
	lock         *os.File              // shared flock held while open
	identity     os.FileInfo           // the file opened, to notice it removed or replaced
	lost         atomic.Pointer[error] // ErrDatabaseLost with what to do, once CheckFile noticed
	migratedFrom int                   // the schema version found when opening
	writes       atomic.Int64          // acknowledged writes
	queue        writeQueue            // writes waiting for the writer (store_commit.go)
	// replicated: Litestream replicates the file and owns checkpointing;
	// the checkpointer and Close leave the WAL to it (store_replica.go).
	replicated atomic.Bool

	snapshotResult atomic.Pointer[snapshotResult] // the last automatic snapshot's outcome; nil before the first
	stats          *writerStats                   // what write measures, for the metrics
	rstmts, wstmts *stmtCache                     // prepared statements of the hot paths (store_prepared.go)
	secrets        secretCache                    // hashes of secrets that authenticated (store_secrets.go)
	memberReadHook func() error                   // tests only: called before each read of group members
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
	`CREATE TABLE password_attempts (
		id INTEGER PRIMARY KEY,
		key TEXT NOT NULL,
		at TEXT NOT NULL
	) STRICT;
	CREATE INDEX password_attempts_key ON password_attempts(key, at);
	CREATE INDEX password_attempts_at ON password_attempts(at);`,
	stripPasswordsMigration,
	// Deleting old deliveries cascades to their attempts, which needs the
	// index on delivery_id; pruning the feed finds deliveries by event.
	`CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id);
	CREATE INDEX deliveries_event_cursor ON deliveries(event_cursor);`,
	// A group's members page is sorted by name: members carry their member's
	// folded name (what the page shows: displayName, else userName), kept
	// current by triggers on every path that adds a member or renames one.
	`ALTER TABLE members ADD COLUMN name_key TEXT;
	UPDATE members SET name_key = coalesce(
		(SELECT coalesce(display_name_key, user_name_key) FROM users WHERE id = members.member_id),
		(SELECT display_name_key FROM groups WHERE id = members.member_id));
	CREATE INDEX members_by_name ON members(group_id, name_key, member_id, member_type);
	CREATE TRIGGER members_name_key AFTER INSERT ON members BEGIN
		UPDATE members SET name_key = coalesce(
			(SELECT coalesce(display_name_key, user_name_key) FROM users WHERE id = new.member_id),
			(SELECT display_name_key FROM groups WHERE id = new.member_id))
		WHERE group_id = new.group_id AND member_id = new.member_id;
	END;
	CREATE TRIGGER users_name_key_to_members AFTER UPDATE OF user_name_key, display_name_key ON users
		WHEN new.user_name_key IS NOT old.user_name_key OR new.display_name_key IS NOT old.display_name_key BEGIN
		UPDATE members SET name_key = coalesce(new.display_name_key, new.user_name_key) WHERE member_id = new.id;
	END;
	CREATE TRIGGER groups_name_key_to_members AFTER UPDATE OF display_name_key ON groups
		WHEN new.display_name_key IS NOT old.display_name_key BEGIN
		UPDATE members SET name_key = new.display_name_key WHERE member_id = new.id;
	END;`,
	rekeyUserNamesMigration,
	// The admin page's search: a trigram index over the names and email
	// addresses of each user (local edits included), kept by triggers. FTS5
	// rows are keyed by user_search_rows.rid, a rowid that VACUUM keeps.
	// Also: the change feed by resource, for the log's "what changed".
	`CREATE INDEX events_resource ON events(resource_id, at);
	CREATE TABLE user_search_rows (
		rid INTEGER PRIMARY KEY,
		user_id TEXT NOT NULL UNIQUE
	) STRICT;
	CREATE VIRTUAL TABLE user_search USING fts5(text, tokenize = 'trigram');
	CREATE TRIGGER user_search_insert AFTER INSERT ON users BEGIN
		INSERT INTO user_search_rows (user_id) VALUES (NEW.id);
		INSERT INTO user_search (rowid, text) VALUES (last_insert_rowid(), concat_ws(' ', NEW.user_name, NEW.display_name, NEW.attrs->>'$.name.givenName', NEW.attrs->>'$.name.familyName',
			NEW.attrs->>'$.name.formatted', NEW.attrs->>'$.nickName',
			(SELECT group_concat(e.value->>'$.value', ' ') FROM json_each(NEW.attrs, '$.emails') e),
			(SELECT group_concat(o.value->>'$.value', ' ') FROM json_each(NEW.overrides) o)));
	END;
	CREATE TRIGGER user_search_update AFTER UPDATE ON users BEGIN
		UPDATE user_search SET text = concat_ws(' ', NEW.user_name, NEW.display_name, NEW.attrs->>'$.name.givenName', NEW.attrs->>'$.name.familyName',
			NEW.attrs->>'$.name.formatted', NEW.attrs->>'$.nickName',
			(SELECT group_concat(e.value->>'$.value', ' ') FROM json_each(NEW.attrs, '$.emails') e),
			(SELECT group_concat(o.value->>'$.value', ' ') FROM json_each(NEW.overrides) o))
		WHERE rowid = (SELECT rid FROM user_search_rows WHERE user_id = NEW.id);
	END;
	CREATE TRIGGER user_search_delete AFTER DELETE ON users BEGIN
		DELETE FROM user_search WHERE rowid = (SELECT rid FROM user_search_rows WHERE user_id = OLD.id);
		DELETE FROM user_search_rows WHERE user_id = OLD.id;
	END;
	INSERT INTO user_search_rows (user_id) SELECT id FROM users;
	INSERT INTO user_search (rowid, text) SELECT r.rid, concat_ws(' ', u.user_name, u.display_name, u.attrs->>'$.name.givenName', u.attrs->>'$.name.familyName',
			u.attrs->>'$.name.formatted', u.attrs->>'$.nickName',
			(SELECT group_concat(e.value->>'$.value', ' ') FROM json_each(u.attrs, '$.emails') e),
			(SELECT group_concat(o.value->>'$.value', ' ') FROM json_each(u.overrides) o))
		FROM users u JOIN user_search_rows r ON r.user_id = u.id;`,
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
	// What each alert channel was told, so a restart neither repeats an
	// alert nor forgets to say it resolved; and the index that counts the
	// provisioning log's recent failures for the burst alert.
	`CREATE TABLE alert_state (
		condition TEXT NOT NULL,
		channel TEXT NOT NULL,
		firing_since TEXT NOT NULL,
		last_sent TEXT NOT NULL,
		detail TEXT NOT NULL,
		PRIMARY KEY (condition, channel)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX provisioning_log_outcome_at ON provisioning_log(outcome, at);`,
	// Safety rails (store_holds.go): directory changes the effective view
	// does not take (held for review, rejected, refused for a protected
	// account), the directory's removals per class for the mass-change
	// window, and protected accounts. A member-remove hold in a kept state
	// is a membership the effective view still has: effective_members is
	// the membership apps see.
	`CREATE TABLE holds (
		id INTEGER PRIMARY KEY,
		at TEXT NOT NULL,
		kind TEXT NOT NULL,
		state TEXT NOT NULL,
		resource_type TEXT NOT NULL,
		resource_id TEXT NOT NULL,
		member_id TEXT NOT NULL DEFAULT '',
		member_type TEXT NOT NULL DEFAULT '',
		target TEXT NOT NULL,
		member_name TEXT NOT NULL DEFAULT '',
		parent INTEGER,
		request TEXT NOT NULL,
		before TEXT NOT NULL,
		mode TEXT NOT NULL DEFAULT '',
		decided_at TEXT,
		decided_by TEXT NOT NULL DEFAULT ''
	) STRICT;
	CREATE INDEX holds_state ON holds(state, kind, id);
	CREATE INDEX holds_resource ON holds(resource_id, id);
	CREATE INDEX holds_parent ON holds(parent) WHERE parent IS NOT NULL;
	CREATE INDEX holds_kept_members ON holds(resource_id, member_id)
		WHERE kind = 'member-remove' AND state IN ('held', 'rejected', 'protected');
	CREATE INDEX holds_kept_memberships ON holds(member_id)
		WHERE kind = 'member-remove' AND state IN ('held', 'rejected', 'protected');
	CREATE TABLE directory_removals (
		id INTEGER PRIMARY KEY,
		at TEXT NOT NULL,
		class TEXT NOT NULL,
		n INTEGER NOT NULL
	) STRICT;
	CREATE INDEX directory_removals_window ON directory_removals(class, at, n);
	CREATE TABLE protected_users (
		user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
		by TEXT NOT NULL,
		at TEXT NOT NULL
	) STRICT;
	CREATE VIEW effective_members (group_id, member_id, member_type) AS
		SELECT group_id, member_id, member_type FROM members
		UNION ALL
		SELECT resource_id, member_id, member_type FROM holds
			WHERE kind = 'member-remove' AND state IN ('held', 'rejected', 'protected');`,
	rolesMigration,
	driftMigration,
	// App keys open one interface each: /api/v1 (the keys made so far) or LDAP binds.
	// The users with local overrides are few; an LDAP search reads them all,
	// since the indexed columns hold the directory's values.
	`ALTER TABLE app_keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'api' CHECK (scope IN ('api', 'ldap'));
	CREATE INDEX users_overridden ON users(id) WHERE overrides <> '{}';`,
	adminsMigration,
	// Servers cache the hashes of SCIM tokens and app keys that authenticated;
	// every deletion (revoke, disconnect, from any process) bumps this
	// generation, which each request reads, so a revocation holds at once.
	`INSERT INTO settings (key, value) VALUES ('secrets_generation', '0');
	CREATE TRIGGER tokens_revoked AFTER DELETE ON tokens BEGIN
		INSERT INTO settings (key, value) VALUES ('secrets_generation', '1')
			ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
	END;
	CREATE TRIGGER app_keys_revoked AFTER DELETE ON app_keys BEGIN
		INSERT INTO settings (key, value) VALUES ('secrets_generation', '1')
			ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
	END;`,
	reconcileMigration,
	// The search index is brought up to date once per committed batch of
	// writes (syncUserSearch) rather than by a trigger per write: FTS5 writes
	// its pending rows out as a new segment at every savepoint and statement
	// of a transaction it took part in, so one trigger per write cost a segment,
	// and merging them, per write (a fifth of a user creation's CPU). The
	// triggers now only note which users changed.
	`DROP TRIGGER user_search_insert;
	DROP TRIGGER user_search_update;
	DROP TRIGGER user_search_delete;
	CREATE TABLE user_search_dirty (user_id TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
	CREATE TRIGGER user_search_inserted AFTER INSERT ON users BEGIN
		INSERT INTO user_search_dirty (user_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
	END;
	CREATE TRIGGER user_search_updated AFTER UPDATE OF user_name, display_name, attrs, overrides ON users BEGIN
		INSERT INTO user_search_dirty (user_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
	END;
	CREATE TRIGGER user_search_deleted AFTER DELETE ON users BEGIN
		INSERT INTO user_search_dirty (user_id) VALUES (OLD.id) ON CONFLICT DO NOTHING;
	END;`,
	// The mass-change rails compare a burst of removals with the size of the
	// directory; counting 100,000 users on every disable held the writer for
	// milliseconds, so the two totals are kept by triggers.
	`CREATE TABLE totals (name TEXT PRIMARY KEY, n INTEGER NOT NULL) STRICT, WITHOUT ROWID;
	INSERT INTO totals (name, n) VALUES
		('directory_users', (SELECT count(*) FROM users WHERE kind = 'directory')),
		('memberships', (SELECT coalesce(sum(member_count), 0) FROM groups));
	CREATE TRIGGER totals_user_inserted AFTER INSERT ON users WHEN NEW.kind = 'directory' BEGIN
		UPDATE totals SET n = n + 1 WHERE name = 'directory_users';
	END;
	CREATE TRIGGER totals_user_deleted AFTER DELETE ON users WHEN OLD.kind = 'directory' BEGIN
		UPDATE totals SET n = n - 1 WHERE name = 'directory_users';
	END;
	CREATE TRIGGER totals_user_kind AFTER UPDATE OF kind ON users WHEN OLD.kind IS NOT NEW.kind BEGIN
		UPDATE totals SET n = n + (NEW.kind = 'directory') - (OLD.kind = 'directory') WHERE name = 'directory_users';
	END;
	CREATE TRIGGER totals_group_inserted AFTER INSERT ON groups BEGIN
		UPDATE totals SET n = n + NEW.member_count WHERE name = 'memberships';
	END;
	CREATE TRIGGER totals_group_deleted AFTER DELETE ON groups BEGIN
		UPDATE totals SET n = n - OLD.member_count WHERE name = 'memberships';
	END;
	CREATE TRIGGER totals_group_members AFTER UPDATE OF member_count ON groups WHEN OLD.member_count <> NEW.member_count BEGIN
		UPDATE totals SET n = n + NEW.member_count - OLD.member_count WHERE name = 'memberships';
	END;`,
}

// goMigrations are the entries of migrations that SQL cannot express: the
// entry's text names the step, which runs in the migration's transaction.
var goMigrations = map[string]func(s *Store, ctx context.Context, tx *sql.Tx) error{
	rekeyUserNamesMigration: (*Store).rekeyUserNames,
	rolesMigration:          (*Store).createRoles,
}

// stripPasswordsMigration removes the passwords that PATCH used to store in
// the clear (a writeOnly attribute, now never stored) from users and from the
// events that copied them: the value, and its name in a user.updated event's
// list of changed attributes.
const stripPasswordsMigration = `UPDATE users SET attrs = json_remove(attrs, '$.password')
		WHERE json_type(attrs, '$.password') IS NOT NULL;
	UPDATE events SET data = json_remove(data, '$.password', '$.user.password')
		WHERE json_type(data, '$.password') IS NOT NULL OR json_type(data, '$.user.password') IS NOT NULL;
	UPDATE events SET data = json_set(data, '$.changed',
			json((SELECT json_group_array(c.value) FROM json_each(events.data, '$.changed') c WHERE c.value <> 'password')))
		WHERE json_type(data, '$.changed') = 'array'
			AND EXISTS (SELECT 1 FROM json_each(events.data, '$.changed') c WHERE c.value = 'password');`

// storeOptions say what opening a database may do besides reading it.
type storeOptions struct {
	// migrate upgrades a database with an older schema: only the server and
	// `scimbox migrate` do, never with another scimbox process on the file.
	// Without it such a database is refused. A new, empty database is always
	// set up.
	migrate bool
	// allowFresh creates a new database even where a backups or certs folder
	// beside the path shows that one existed there.
	allowFresh bool
}

// OpenStore opens the database at path as the server does: creating it if
// missing (unless one evidently existed there) and migrating it.
func OpenStore(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	return openStore(ctx, path, log, storeOptions{migrate: true})
}

// openStore is OpenStore with options: whether to migrate (the server and scimbox migrate) and to start a fresh database where one evidently existed.
func openStore(ctx context.Context, path string, log *slog.Logger, opts storeOptions) (*Store, error) {
	if path == "" || strings.Contains(path, ":memory:") {
		return nil, fmt.Errorf("open store: a database file path is required")
	}
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 {
		if err := checkFreshStart(path, opts.allowFresh); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
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
	identity, err := lock.Stat()
	if err == nil && alone {
		err = checkLeftoverWAL(ctx, path, log)
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// temp_store(MEMORY): group commit runs each write in a savepoint, whose
	// sub-journal (the pages as they were) would otherwise spill to a temp
	// file past 64 KiB and cost a write(2) per page (store_commit.go).
	// SQLite's automatic checkpoint stays on for the writer: it runs inside
	// the commit that grows the WAL past 1,000 pages, and is what lets the
	// WAL start again from its beginning while writes and reads go on (a
	// checkpoint on another connection always finds newer frames). The
	// checkpointer copies most frames before it, off the writer's path.
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate&_pragma=temp_store(MEMORY)"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, path: path, lock: lock, identity: identity, now: time.Now, log: log, lastUsed: map[string]time.Time{},
		stats: newWriterStats()}
	fail := func(err error) (*Store, error) {
		w.Close()
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := s.migrate(ctx, opts.migrate, alone); err != nil {
		return fail(s.explainDamage(err))
	}
	s.searchDeferred.Store(true)
	if s.migratedFrom < len(migrations) {
		// Index what the migrations changed (an empty write syncs the index).
		if err := s.write(ctx, func(context.Context, *sql.Tx, time.Time) error { return nil }); err != nil {
			return fail(err)
		}
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
	// The checkpointer's connection is opened now, while the file is known to
	// be there, and kept: opened later, after the file was removed, it would
	// create an empty database at the path (CheckFile's whole point).
	cp, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		r.Close()
		return fail(err)
	}
	cp.SetMaxOpenConns(1)
	cp.SetConnMaxLifetime(0)
	cp.SetConnMaxIdleTime(0)
	s.cp = cp
	if err := cp.PingContext(ctx); err != nil {
		r.Close()
		cp.Close()
		return fail(err)
	}
	if err := s.prepareStatements(ctx); err != nil {
		r.Close()
		cp.Close()
		return fail(err)
	}
	s.logQueue = make(chan LogEntry, logQueueSize)
	s.workers = newWorkerGroup(context.Background(), log)
	s.workers.Go("provisioning log writer", s.logWriter)
	s.workers.Go("checkpointer", s.checkpointer)
	s.workers.Go("cycle writer", s.cycleWriter)
	return s, nil
}

// Close writes the pending log entries, checkpoints the WAL fully into the
// database file and closes both pools. Log entries that come after it are
// dropped; other calls after it fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.logMu.Lock()
		s.logClosed = true
		s.logMu.Unlock()
		s.workers.Stop() // the log writer writes what was queued before it returns
		if !s.replicated.Load() {
			if err := s.checkpoint(context.Background(), "TRUNCATE"); err != nil {
				s.log.Warn("final checkpoint", "err", err)
			}
		}
		s.closeErr = errors.Join(s.r.Close(), s.cp.Close(), s.w.Close(), s.lock.Close())
	})
	return s.closeErr
}

// migrate brings the schema up to this version's. A new, empty database
// (schema version 0) is always set up; an older one is upgraded only when
// upgrade is set and no other scimbox process (an older server still running,
// a command) has the file open, since that process would go on using the old
// schema.
func (s *Store) migrate(ctx context.Context, upgrade, alone bool) error {
	var version int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	s.migratedFrom = version
	switch {
	case version > len(migrations):
		return fmt.Errorf("%w: the database has schema version %d, newer than this scimbox knows (%d): it was upgraded by a newer scimbox; use that version",
			ErrSchemaMismatch, version, len(migrations))
	case version == len(migrations):
		return nil
	case version > 0 && !upgrade:
		return fmt.Errorf("%w: the database has schema version %d and this scimbox uses %d: it belongs to an older scimbox, which may still be running, "+
			"and commands do not upgrade it. Stop the older server, then run `scimbox migrate -db %s` or start this version's server, which upgrades it",
			ErrSchemaMismatch, version, len(migrations), s.path)
	case version > 0 && !alone:
		return fmt.Errorf("%w: the database has schema version %d and this scimbox uses %d, but another scimbox process has it open: "+
			"stop the older server (and any running scimbox command), then try again", ErrSchemaMismatch, version, len(migrations))
	}
	if version > 0 {
		// Upgrading a database that has data: keep a copy of it as it was.
		dest := filepath.Join(filepath.Dir(s.path), backupDir,
			fmt.Sprintf("pre-migration-v%d-%s.db", version, s.now().UTC().Format("20060102T150405Z")))
		if err := s.Snapshot(ctx, dest); err != nil {
			return fmt.Errorf("snapshot before migrating from schema version %d: %w", version, err)
		}
		s.log.Info("database upgraded: a copy of the old version was kept", "copy", dest)
	}
	for i := version; i < len(migrations); i++ {
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
			// Two processes may set up the same new file: the second skips
			// what the first applied while it waited for the write lock.
			var current int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil || current > i {
				return err
			}

			if step, ok := goMigrations[migrations[i]]; ok {
				if err := step(s, ctx, tx); err != nil {
					return err
				}
			} else if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
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

// unavailable reports whether err is a failure of the database itself rather
// than of the request, and why in words for the admin.
func unavailable(err error) (string, bool) {
	if errors.Is(err, ErrDatabaseLost) {
		return "the database file was removed or replaced while the server ran; the administrator must restore it (scimbox restore) and restart the server", true
	}
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

// parseTime reads a time stored by formatTime; the zero time for "" or garbage.
func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}

// decodeAttrs decodes stored attributes, keeping numbers as json.Number so that they round-trip exactly.
func decodeAttrs(raw string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode stored attributes: %w", err)
	}
	return m, nil
}

// nullString stores "" as NULL, so that unique indexes ignore absent values.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// stringAttr returns a top-level string attribute, "" when absent or not a string.
func stringAttr(attrs map[string]any, name string) string {
	s, _ := attrs[name].(string)
	return s
}

// queryPlan returns the detail lines of EXPLAIN QUERY PLAN for a statement,
// for the tests that keep hot queries on their indexes.
func (s *Store) queryPlan(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, fmt.Errorf("explain %q: %w", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return nil, err
		}
		plan = append(plan, detail)
	}
	return plan, rows.Err()
}

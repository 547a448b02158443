package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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

// User is a SCIM user as stored. Attrs holds the attributes the client wrote,
// under their canonical names, without id, meta, schemas and groups.
type User struct {
	ID       string
	Attrs    map[string]any
	Groups   []GroupRef // derived from group memberships; filled on read
	Created  time.Time
	Modified time.Time
	Version  int64
	// Kind is accountDirectory (the zero value means it too), accountManual
	// or accountDeprovisioned. Only directory accounts are visible to SCIM.
	Kind string
	// Overrides are local edits of a directory account; Attrs stay what the directory wrote.
	Overrides map[string]Override
}

// GroupRef is a direct membership of a user in a group.
type GroupRef struct{ ID, Display string }

// Group is a SCIM group as stored. Attrs holds everything but members.
type Group struct {
	ID       string
	Attrs    map[string]any
	Members  []Member // filled only when asked for
	Created  time.Time
	Modified time.Time
	Version  int64
}

// Member is one member of a group: a user or a group.
type Member struct{ ID, Type, Display string }

// Member types.
const (
	memberUser  = "User"
	memberGroup = "Group"
)

// MemberChange is one step of a membership update, applied in order.
type MemberChange struct {
	Kind   memberChangeKind
	IDs    []string   // for add, remove and replace
	Filter filterExpr // for removeMatching: a filter over member attributes
}

type memberChangeKind int

const (
	membersAdd memberChangeKind = iota
	membersRemove
	membersRemoveAll
	membersReplace
	membersRemoveMatching
)

// ListQuery selects a page of resources.
type ListQuery struct {
	// DirectoryOnly limits users to directory-managed accounts: what SCIM sees.
	DirectoryOnly bool
	Filter        filterExpr // nil for all
	SortBy        string     // attribute path, "" for creation order
	Descending    bool
	StartIndex    int // 1-based
	Count         int
}

// Token is a SCIM bearer token's record; the secret itself is never stored.
type Token struct {
	ID       string
	Name     string
	Created  time.Time
	LastUsed time.Time // zero if never used
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
	s.stopCheckpoints, s.checkpointsDone = make(chan struct{}), make(chan struct{})
	go s.checkpointer()
	return s, nil
}

// Close writes the pending log entries, checkpoints the WAL fully into the
// database file and closes both pools.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
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

// ---- users ----

// userColumns maps filterable user attributes to indexed columns.
var userColumns = map[string]sqlColumn{
	schemaKey:           {expr: userSchema},
	"id":                {expr: "users.id", kind: colExact},
	"username":          {expr: "users.user_name_key", kind: colFolded},
	"externalid":        {expr: "users.external_id", kind: colExact},
	"displayname":       {expr: "users.display_name_key", kind: colFolded},
	"active":            {expr: "users.active", kind: colBool},
	"meta.created":      {expr: "users.created", kind: colTime},
	"meta.lastmodified": {expr: "users.modified", kind: colTime},
	"emails.value":      emailColumn,
	"emails":            emailColumn,
	"groups.value":      {expr: "users.id IN (SELECT member_id FROM members WHERE group_id = ?)", kind: colExistsEq},
	"groups":            {expr: "users.id IN (SELECT member_id FROM members WHERE group_id = ?)", kind: colExistsEq},
}

// Relations are matched with "id IN (subquery)" rather than a correlated
// EXISTS: SQLite then drives the lookup from the relation's index, and can
// combine such terms with others in one multi-index OR (the admin search).
var emailColumn = sqlColumn{
	expr:       "users.id IN (SELECT user_id FROM user_emails WHERE value_key = ?)",
	kind:       colExistsFolded,
	prefixExpr: "users.id IN (SELECT user_id FROM user_emails WHERE value_key >= ? AND value_key < ?)",
}

// nullableColumns are sort columns that may hold NULL.
var nullableColumns = map[string]bool{"users.external_id": true, "users.display_name_key": true, "groups.external_id": true}

var userSortColumns = map[string]string{
	"id": "users.id", "username": "users.user_name_key", "externalid": "users.external_id",
	"displayname": "users.display_name_key", "meta.created": "users.created", "meta.lastmodified": "users.modified",
}

const userSelect = "SELECT users.id, users.attrs, users.created, users.modified, users.version, users.kind, users.overrides FROM users"

func scanUser(rows interface{ Scan(...any) error }) (*User, error) {
	var u User
	var attrs, created, modified, overrides string
	if err := rows.Scan(&u.ID, &attrs, &created, &modified, &u.Version, &u.Kind, &overrides); err != nil {
		return nil, err
	}
	if overrides != "{}" {
		if err := json.Unmarshal([]byte(overrides), &u.Overrides); err != nil {
			return nil, fmt.Errorf("decode overrides of %s: %w", u.ID, err)
		}
	}
	var err error
	if u.Attrs, err = decodeAttrs(attrs); err != nil {
		return nil, err
	}
	u.Created, u.Modified = parseTime(created), parseTime(modified)
	return &u, nil
}

// userEmailKeys returns the folded email values of a user, for the email index.
func userEmailKeys(attrs map[string]any) []string {
	var keys []string
	list, _ := attrs["emails"].([]any)
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			if v, ok := m["value"].(string); ok && v != "" {
				keys = append(keys, foldCase(v))
			}
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// putUser writes the user's row and its email index.
func putUser(ctx context.Context, tx *sql.Tx, u *User, insert bool) error {
	raw, err := json.Marshal(u.Attrs)
	if err != nil {
		return fmt.Errorf("encode attributes: %w", err)
	}
	userName := stringAttr(u.Attrs, "userName")
	displayName := stringAttr(u.Attrs, "displayName")
	var active any
	if b, ok := u.Attrs["active"].(bool); ok {
		active = b
	}
	if u.Kind == "" {
		u.Kind = accountDirectory
	}
	overrides := []byte("{}")
	if len(u.Overrides) > 0 {
		if overrides, err = json.Marshal(u.Overrides); err != nil {
			return fmt.Errorf("encode overrides: %w", err)
		}
	}
	// inactive_since remembers when the account was disabled, for the purge policy.
	args := []any{userName, foldCase(userName), nullString(stringAttr(u.Attrs, "externalId")),
		nullString(displayName), nullString(foldCase(displayName)), active, string(raw),
		formatTime(u.Created), formatTime(u.Modified), u.Version, u.Kind, string(overrides), active, formatTime(u.Modified), u.ID}
	if insert {
		_, err = tx.ExecContext(ctx, `INSERT INTO users (user_name, user_name_key, external_id, display_name,
			display_name_key, active, attrs, created, modified, version, kind, overrides, inactive_since, id)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?, CASE WHEN ? = 0 THEN ? END, ?)`, args...)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE users SET user_name = ?, user_name_key = ?, external_id = ?, display_name = ?,
			display_name_key = ?, active = ?, attrs = ?, created = ?, modified = ?, version = ?, kind = ?, overrides = ?,
			inactive_since = CASE WHEN ? = 0 THEN coalesce(inactive_since, ?) END WHERE id = ?`, args...)
	}
	if err := translate(err); err != nil {
		if errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w: userName %q is already taken", ErrConflict, userName)
		}
		return err
	}
	if !insert {
		if _, err := tx.ExecContext(ctx, "DELETE FROM user_emails WHERE user_id = ?", u.ID); err != nil {
			return err
		}
	}
	for _, k := range userEmailKeys(u.Attrs) {
		if _, err := tx.ExecContext(ctx, "INSERT INTO user_emails (value_key, user_id) VALUES (?, ?)", k, u.ID); err != nil {
			return err
		}
	}
	return nil
}

// CreateUser stores a new user, assigning its id and meta data.
// It returns ErrConflict if the userName is taken (case-insensitively).
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		u.ID, u.Created, u.Modified, u.Version = newID(), now, now, 1
		if err := putUser(ctx, tx, u, true); err != nil {
			return err
		}
		return s.userEvents(ctx, tx, now, nil, u)
	})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// UserByID returns the user with its groups, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, userSelect+" WHERE users.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", id, err)
	}
	if err := fillUserGroups(ctx, s.r, []*User{u}); err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateUser applies fn to the user inside one write transaction. fn may return
// an error (a failed precondition, an invalid patch) to leave the user unchanged.
// If fn leaves the attributes as they were, nothing is written and the version
// stays. It returns ErrNotFound or ErrConflict (userName taken).
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(u *User) error) (*User, error) {
	var out *User
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		before, prev := userState(u), copyUser(u)
		if err := fn(u); err != nil {
			return err
		}
		if userState(u) != before {
			u.Modified, u.Version = now, u.Version+1
			if err := putUser(ctx, tx, u, false); err != nil {
				return err
			}
			if err := s.userEvents(ctx, tx, now, prev, u); err != nil {
				return err
			}
		}
		out = u
		return fillUserGroups(ctx, tx, []*User{u})
	})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	return out, nil
}

// copyUser copies what events compare.
func copyUser(u *User) *User {
	c := *u
	c.Attrs, c.Overrides = cloneJSON(u.Attrs), maps.Clone(u.Overrides)
	return &c
}

// userState is what UpdateUser compares to know whether anything changed.
func userState(u *User) string {
	b, _ := json.Marshal([]any{u.Attrs, u.Kind, u.Overrides})
	return string(b)
}

// DeleteUser removes the user and its group memberships. check, if not nil, sees
// the current version first and may veto. It returns ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string, check func(version int64) error) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(u.Version); err != nil {
				return err
			}
		}
		return s.deleteUserIn(ctx, tx, now, u)
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// deleteUserIn deletes a user and its memberships, recording the events.
func (s *Store) deleteUserIn(ctx context.Context, tx *sql.Tx, now time.Time, u *User) error {
	if err := s.removeMemberEverywhere(ctx, tx, u.ID, now); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM users WHERE id = ?", u.ID); err != nil {
		return err
	}
	return s.userEvents(ctx, tx, now, u, nil)
}

// removeMemberEverywhere takes id out of every group it belongs to, updating
// those groups' meta and recording a member_removed event for each.
func (s *Store) removeMemberEverywhere(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `UPDATE groups SET member_count = member_count - 1, modified = ?, version = version + 1
		WHERE id IN (SELECT group_id FROM members WHERE member_id = ?) RETURNING id`, formatTime(now), id)
	if err != nil {
		return err
	}
	var groups []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		groups = append(groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM members WHERE member_id = ?", id); err != nil {
		return err
	}
	for _, g := range groups {
		if err := s.emit(ctx, tx, now, evMemberRemoved, "Group", g, map[string]any{"group": g, "member": id}); err != nil {
			return err
		}
	}
	return nil
}

// fillUserGroups sets the Groups of each user with one query.
func fillUserGroups(ctx context.Context, q queryer, users []*User) error {
	if len(users) == 0 {
		return nil
	}
	byID := make(map[string]*User, len(users))
	args := make([]any, len(users))
	for i, u := range users {
		byID[u.ID], args[i] = u, u.ID
		u.Groups = nil
	}
	rows, err := q.QueryContext(ctx, `SELECT m.member_id, g.id, g.display_name FROM members m JOIN groups g ON g.id = m.group_id
		WHERE m.member_id IN (?`+strings.Repeat(",?", len(users)-1)+`) ORDER BY g.display_name_key`, args...)
	if err != nil {
		return fmt.Errorf("user groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		var g GroupRef
		if err := rows.Scan(&uid, &g.ID, &g.Display); err != nil {
			return fmt.Errorf("user groups: %w", err)
		}
		byID[uid].Groups = append(byID[uid].Groups, g)
	}
	return rows.Err()
}

// ListUsers returns one page of the users that match q, and how many match in all.
func (s *Store) ListUsers(ctx context.Context, q ListQuery) ([]*User, int, error) {
	var users []*User
	total, err := s.list(ctx, listSpec{
		table: "users", selectSQL: userSelect, cols: userColumns, sortCols: userSortColumns,
		scan: func(r *sql.Rows) (any, error) { return scanUser(r) },
		doc: func(ctx context.Context, q queryer, v any, needRelations bool) (map[string]any, error) {
			u := v.(*User)
			if needRelations {
				if err := fillUserGroups(ctx, q, []*User{u}); err != nil {
					return nil, err
				}
			}
			return u.doc(""), nil
		},
		relation: "groups", rt: userType,
		collect: func(v any) { users = append(users, v.(*User)) },
	}, q)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	if err := fillUserGroups(ctx, s.r, users); err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// listSpec describes a resource table to the shared list implementation.
type listSpec struct {
	table, selectSQL string
	cols             map[string]sqlColumn
	sortCols         map[string]string
	scan             func(*sql.Rows) (any, error)
	// doc renders a scanned resource for evaluation; q is the connection the
	// scan runs on, so that loading relations never waits for a second one.
	doc      func(ctx context.Context, q queryer, v any, needRelations bool) (map[string]any, error)
	relation string // the derived attribute (groups, members) a filter may need loaded
	rt       *resourceType
	collect  func(any)
}

// list pages through a resource table. Filters that translate exactly to SQL
// (the hot path: eq on indexed attributes) are answered with COUNT and
// LIMIT/OFFSET on indexes; others are narrowed by SQL where possible and
// evaluated in Go, streaming the candidates.
func (s *Store) list(ctx context.Context, spec listSpec, q ListQuery) (int, error) {
	var sf sqlFilter
	sf.exact = true
	if q.Filter != nil {
		sf = toSQL(q.Filter, spec.cols)
	}
	var conds []string
	if sf.where != "" {
		conds = append(conds, sf.where)
	}
	if q.DirectoryOnly && spec.table == "users" {
		// Usually every account is a directory account and the condition is
		// left out. When it is needed, the unary + keeps the planner from
		// choosing the kind index over the filter's or the sort's own index.
		var others int
		if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE kind IN ('manual', 'deprovisioned')").Scan(&others); err != nil {
			return 0, err
		}
		if others > 0 {
			conds = append(conds, "+users.kind = 'directory'")
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	sortKey := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(q.SortBy, userSchema+":"), groupSchema+":"))
	sortCol, indexedSort := spec.sortCols[sortKey]
	if q.SortBy == "" {
		// Creation order, from the narrow created index rather than the wide table.
		sortCol, indexedSort = spec.table+".created", true
	}
	dir := ""
	if q.Descending {
		dir = " DESC"
	}
	order := " ORDER BY "
	if nullableColumns[sortCol] {
		// Resources without the sort attribute come last ascending and first
		// descending, as if missing sorted highest (RFC 7644 §3.4.2.3).
		order += sortCol + " IS NULL" + dir + ", "
	}
	order += sortCol + dir + ", " + spec.table + ".rowid" + dir
	start := max(q.StartIndex, 1) - 1

	if sf.exact && indexedSort {
		var total int
		if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM "+spec.table+where, sf.args...).Scan(&total); err != nil {
			return 0, err
		}
		if q.Count <= 0 || start >= total {
			return total, nil
		}
		// The page's rowids come from an index (skipping OFFSET rows there is
		// cheap); only the page's rows are read from the table.
		page := "SELECT " + spec.table + ".rowid FROM " + spec.table + where + order + " LIMIT ? OFFSET ?"
		rows, err := s.r.QueryContext(ctx, spec.selectSQL+" WHERE "+spec.table+".rowid IN ("+page+")"+order,
			append(sf.args, q.Count, start)...)
		if err != nil {
			return 0, err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := spec.scan(rows)
			if err != nil {
				return 0, err
			}
			spec.collect(v)
		}
		return total, rows.Err()
	}

	if !indexedSort {
		order = " ORDER BY " + spec.table + ".rowid"
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, spec.selectSQL+where+order, sf.args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	needRelations := q.Filter != nil && referencesAttr(q.Filter, spec.relation)
	type hit struct {
		v   any
		key string
	}
	var hits []hit // only when sorting in Go
	total := 0
	for rows.Next() {
		v, err := spec.scan(rows)
		if err != nil {
			return 0, err
		}
		if q.Filter != nil && !sf.exact || !indexedSort {
			doc, err := spec.doc(ctx, conn, v, needRelations)
			if err != nil {
				return 0, err
			}
			if q.Filter != nil && !matches(q.Filter, spec.rt, doc) {
				continue
			}
			if !indexedSort {
				hits = append(hits, hit{v, sortValue(doc, q.SortBy)})
				continue
			}
		}
		if total >= start && total < start+q.Count {
			spec.collect(v)
		}
		total++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if indexedSort {
		return total, nil
	}
	// As in SQL above: a missing sort value sorts highest.
	slices.SortStableFunc(hits, func(a, b hit) int {
		var c int
		switch {
		case a.key == b.key:
			return 0
		case a.key == "":
			c = 1
		case b.key == "":
			c = -1
		default:
			c = strings.Compare(a.key, b.key)
		}
		if q.Descending {
			c = -c
		}
		return c
	})
	for i := start; i < len(hits) && i < start+q.Count; i++ {
		spec.collect(hits[i].v)
	}
	return len(hits), nil
}

// sortValue is the folded string form of the first value of the sort attribute.
func sortValue(doc map[string]any, sortBy string) string {
	p, err := parseAttrPath(sortBy)
	if err != nil {
		return ""
	}
	vals := pathValues(doc, p)
	if len(vals) == 0 {
		return ""
	}
	v := vals[0]
	if p.Sub == "" { // a multi-valued attribute sorts by its primary value (RFC 7644 §3.4.2.3)
		for _, el := range vals {
			if m, ok := el.(map[string]any); ok && m["primary"] == true {
				v = el
			}
		}
	}
	if m, ok := v.(map[string]any); ok {
		v, _ = member(m, "value")
	}
	if v == nil {
		return ""
	}
	return foldCase(fmt.Sprint(v))
}

// ---- groups ----

var groupColumns = map[string]sqlColumn{
	schemaKey:           {expr: groupSchema},
	"id":                {expr: "groups.id", kind: colExact},
	"displayname":       {expr: "groups.display_name_key", kind: colFolded},
	"externalid":        {expr: "groups.external_id", kind: colExact},
	"meta.created":      {expr: "groups.created", kind: colTime},
	"meta.lastmodified": {expr: "groups.modified", kind: colTime},
	"members.value":     {expr: "groups.id IN (SELECT group_id FROM members WHERE member_id = ?)", kind: colExistsEq},
	"members":           {expr: "groups.id IN (SELECT group_id FROM members WHERE member_id = ?)", kind: colExistsEq},
}

var groupSortColumns = map[string]string{
	"id": "groups.id", "displayname": "groups.display_name_key", "externalid": "groups.external_id",
	"meta.created": "groups.created", "meta.lastmodified": "groups.modified",
}

const groupSelect = "SELECT groups.id, groups.attrs, groups.created, groups.modified, groups.version FROM groups"

func scanGroup(rows interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	var attrs, created, modified string
	if err := rows.Scan(&g.ID, &attrs, &created, &modified, &g.Version); err != nil {
		return nil, err
	}
	var err error
	if g.Attrs, err = decodeAttrs(attrs); err != nil {
		return nil, err
	}
	g.Created, g.Modified = parseTime(created), parseTime(modified)
	return &g, nil
}

func putGroup(ctx context.Context, tx *sql.Tx, g *Group, insert bool) error {
	raw, err := json.Marshal(g.Attrs)
	if err != nil {
		return fmt.Errorf("encode attributes: %w", err)
	}
	name := stringAttr(g.Attrs, "displayName")
	args := []any{name, foldCase(name), nullString(stringAttr(g.Attrs, "externalId")), string(raw),
		formatTime(g.Created), formatTime(g.Modified), g.Version, g.ID}
	if insert {
		_, err = tx.ExecContext(ctx, `INSERT INTO groups (display_name, display_name_key, external_id, attrs, created,
			modified, version, id) VALUES (?,?,?,?,?,?,?,?)`, args...)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE groups SET display_name = ?, display_name_key = ?, external_id = ?, attrs = ?,
			created = ?, modified = ?, version = ? WHERE id = ?`, args...)
	}
	if err := translate(err); err != nil {
		if errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w: a group named %q already exists", ErrConflict, name)
		}
		return err
	}
	return nil
}

// CreateGroup stores a new group with its initial members (user or group ids).
// It returns ErrConflict if the displayName is taken (case-insensitively), and
// an *UnknownMembersError if a member does not exist.
func (s *Store) CreateGroup(ctx context.Context, g *Group, members []string) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		g.ID, g.Created, g.Modified, g.Version = newID(), now, now, 1
		if err := putGroup(ctx, tx, g, true); err != nil {
			return err
		}
		added, _, err := applyMemberChanges(ctx, tx, g.ID, []MemberChange{{Kind: membersAdd, IDs: members}})
		if err != nil {
			return err
		}
		return s.groupEvents(ctx, tx, now, nil, g, added, nil)
	})
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	return nil
}

// GroupByID returns the group, with its members if withMembers, or ErrNotFound.
func (s *Store) GroupByID(ctx context.Context, id string, withMembers bool) (*Group, error) {
	g, err := scanGroup(s.r.QueryRowContext(ctx, groupSelect+" WHERE groups.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("group %q: %w", id, err)
	}
	if withMembers {
		if g.Members, err = groupMembers(ctx, s.r, id); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// groupMembers returns all members of a group with their display names.
func groupMembers(ctx context.Context, q queryer, groupID string) ([]Member, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.member_id, m.member_type,
			coalesce(u.display_name, u.user_name, g.display_name, '')
		FROM members m LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
			LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
		WHERE m.group_id = ?`, groupID)
	if err != nil {
		return nil, fmt.Errorf("group members: %w", err)
	}
	defer rows.Close()
	members := []Member{}
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.ID, &m.Type, &m.Display); err != nil {
			return nil, fmt.Errorf("group members: %w", err)
		}
		members = append(members, m)
	}
	return members, rows.Err()
}

// UnknownMembersError reports member ids that are neither users nor groups.
type UnknownMembersError struct{ IDs []string }

func (e *UnknownMembersError) Error() string {
	return "no user or group has the id " + strings.Join(e.IDs, ", ")
}

// applyMemberChanges applies membership changes in order, each costing
// O(ids changed) except replace and remove-all. It reports whether anything changed.
func applyMemberChanges(ctx context.Context, tx *sql.Tx, groupID string, changes []MemberChange) (added, removed []string, err error) {
	delta := 0
	// initial and final membership of every id the changes touched, so that a
	// request whose net effect is nothing (remove then re-add) changes nothing.
	initial, final := map[string]bool{}, map[string]bool{}
	touch := func(id string, was, is bool) {
		if _, seen := initial[id]; !seen {
			initial[id] = was
		}
		final[id] = is
	}
	// Each change is one set-based statement over a JSON array of ids, so a
	// batch of k members costs one statement, not k, whatever the group's size.
	ids := func(list []string) string {
		if len(list) == 0 {
			return "[]" // json_each('null') would yield one NULL row
		}
		b, _ := json.Marshal(list)
		return string(b)
	}
	returning := func(query string, args ...any) (map[string]bool, error) {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		got := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			got[id] = true
		}
		return got, rows.Err()
	}
	remove := func(query string, arg any, candidates []string) error {
		removed, err := returning(query, groupID, arg)
		if err != nil {
			return err
		}
		delta -= len(removed)
		for id := range removed {
			touch(id, true, false)
		}
		for _, id := range candidates {
			if !removed[id] {
				touch(id, false, false)
			}
		}
		return nil
	}
	for _, c := range changes {
		switch c.Kind {
		case membersRemoveAll:
			err = remove("DELETE FROM members WHERE group_id = ?1 AND ?2 IS NULL RETURNING member_id", nil, nil)
		case membersReplace:
			err = remove(`DELETE FROM members WHERE group_id = ? AND member_id NOT IN (SELECT value FROM json_each(?))
				RETURNING member_id`, ids(c.IDs), nil)
			if err == nil {
				err = addMembers(ctx, tx, groupID, c.IDs, ids(c.IDs), returning, touch, &delta)
			}
		case membersAdd:
			err = addMembers(ctx, tx, groupID, c.IDs, ids(c.IDs), returning, touch, &delta)
		case membersRemove:
			err = remove(`DELETE FROM members WHERE group_id = ? AND member_id IN (SELECT value FROM json_each(?))
				RETURNING member_id`, ids(c.IDs), c.IDs)
		case membersRemoveMatching:
			var matched []string
			if matched, err = matchingMembers(ctx, tx, groupID, c.Filter); err == nil {
				err = remove(`DELETE FROM members WHERE group_id = ? AND member_id IN (SELECT value FROM json_each(?))
					RETURNING member_id`, ids(matched), matched)
			}
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if delta != 0 {
		if _, err := tx.ExecContext(ctx, "UPDATE groups SET member_count = member_count + ? WHERE id = ?", delta, groupID); err != nil {
			return nil, nil, err
		}
	}
	for id, was := range initial {
		switch {
		case final[id] && !was:
			added = append(added, id)
		case !final[id] && was:
			removed = append(removed, id)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed, nil
}

// addMembers adds users or groups by id in one statement, after checking that
// every id exists; it refuses the whole batch, naming all unknown ids, if not.
func addMembers(ctx context.Context, tx *sql.Tx, groupID string, list []string, idsJSON string,
	returning func(string, ...any) (map[string]bool, error), touch func(string, bool, bool), delta *int) error {
	if slices.Contains(list, groupID) {
		return &UnknownMembersError{IDs: []string{groupID + " (a group cannot be a member of itself)"}}
	}
	unknown, err := returning(`SELECT j.value FROM json_each(?2) j WHERE ?1 IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM users WHERE id = j.value) AND NOT EXISTS (SELECT 1 FROM groups WHERE id = j.value)`, groupID, idsJSON)
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		var names []string
		for _, id := range list { // in the order the client sent them
			if unknown[id] && !slices.Contains(names, id) {
				names = append(names, id)
			}
		}
		return &UnknownMembersError{IDs: names}
	}
	// "WHERE true" lets SQLite parse the upsert after a SELECT.
	added, err := returning(`INSERT INTO members (group_id, member_id, member_type)
		SELECT ?1, j.value, CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = j.value) THEN 'User' ELSE 'Group' END
		FROM json_each(?2) j WHERE true
		ON CONFLICT DO NOTHING RETURNING member_id`, groupID, idsJSON)
	if err != nil {
		return err
	}
	*delta += len(added)
	for _, id := range list {
		touch(id, !added[id], true)
	}
	return nil
}

// matchingMembers returns the ids of a group's members that a member filter selects.
// The usual `value eq "id"` (or a disjunction of them) costs nothing per member;
// any other filter is evaluated over the member list.
func matchingMembers(ctx context.Context, tx *sql.Tx, groupID string, f filterExpr) ([]string, error) {
	if ids, ok := memberIDsOf(f); ok {
		return ids, nil
	}
	members, err := groupMembers(ctx, tx, groupID)
	if err != nil {
		return nil, err
	}
	defs := func(p attrPath) *Attr { return groupSchemaDef.attr("members").sub(p.Attr) }
	var ids []string
	for _, m := range members {
		if eval(f, defs, map[string]any{"value": m.ID, "type": m.Type, "display": m.Display}) {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// memberIDsOf recognises `value eq "a" or value eq "b" …` and returns the ids.
func memberIDsOf(f filterExpr) ([]string, bool) {
	switch f := f.(type) {
	case compareExpr:
		s, ok := f.Value.(string)
		if f.Op == "eq" && ok && f.Path.URN == "" && f.Path.Sub == "" && strings.EqualFold(f.Path.Attr, "value") {
			return []string{s}, true
		}
	case logicalExpr:
		if !f.And {
			l, ok1 := memberIDsOf(f.Left)
			r, ok2 := memberIDsOf(f.Right)
			return append(l, r...), ok1 && ok2
		}
	}
	return nil, false
}

// UpdateGroup applies fn inside one write transaction: fn changes the group's
// attributes and returns the membership changes to apply after them. Nothing
// is written when nothing changes. It returns ErrNotFound, ErrConflict
// (displayName taken) or an *UnknownMembersError, and then changes nothing.
func (s *Store) UpdateGroup(ctx context.Context, id string, fn func(g *Group) ([]MemberChange, error)) (*Group, error) {
	var out *Group
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		g, err := scanGroup(tx.QueryRowContext(ctx, groupSelect+" WHERE groups.id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("group %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		beforeAttrs := cloneJSON(g.Attrs)
		raw, _ := json.Marshal(g.Attrs)
		beforeJSON := string(raw)
		changes, err := fn(g)
		if err != nil {
			return err
		}
		added, removed, err := applyMemberChanges(ctx, tx, id, changes)
		if err != nil {
			return err
		}
		before := &Group{ID: g.ID, Attrs: beforeAttrs}
		if after, _ := json.Marshal(g.Attrs); len(added)+len(removed) > 0 || string(after) != beforeJSON {
			g.Modified, g.Version = now, g.Version+1
			if err := putGroup(ctx, tx, g, false); err != nil {
				return err
			}
			if err := s.groupEvents(ctx, tx, now, before, g, added, removed); err != nil {
				return err
			}
		}
		out = g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update group: %w", err)
	}
	return out, nil
}

// DeleteGroup removes the group, its memberships and its membership in other
// groups; its members themselves stay. check may veto as in DeleteUser.
func (s *Store) DeleteGroup(ctx context.Context, id string, check func(version int64) error) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		var version int64
		err := tx.QueryRowContext(ctx, "SELECT version FROM groups WHERE id = ?", id).Scan(&version)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("group %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(version); err != nil {
				return err
			}
		}
		if err := s.removeMemberEverywhere(ctx, tx, id, now); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, "DELETE FROM groups WHERE id = ?", id); err != nil {
			return err
		}
		return s.emit(ctx, tx, now, evGroupDeleted, "Group", id, map[string]any{"id": id})
	})
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	return nil
}

// ListGroups returns one page of the groups that match q, with members if
// withMembers, and how many match in all.
func (s *Store) ListGroups(ctx context.Context, q ListQuery, withMembers bool) ([]*Group, int, error) {
	var groups []*Group
	total, err := s.list(ctx, listSpec{
		table: "groups", selectSQL: groupSelect, cols: groupColumns, sortCols: groupSortColumns,
		scan: func(r *sql.Rows) (any, error) { return scanGroup(r) },
		doc: func(ctx context.Context, q queryer, v any, needRelations bool) (map[string]any, error) {
			g := v.(*Group)
			if needRelations {
				var err error
				if g.Members, err = groupMembers(ctx, q, g.ID); err != nil {
					return nil, err
				}
			}
			return g.doc(""), nil
		},
		relation: "members", rt: groupType,
		collect: func(v any) { groups = append(groups, v.(*Group)) },
	}, q)
	if err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", err)
	}
	if withMembers {
		for _, g := range groups {
			if g.Members, err = groupMembers(ctx, s.r, g.ID); err != nil {
				return nil, 0, err
			}
		}
	}
	return groups, total, nil
}

// ---- tokens ----

const (
	tokenPrefix    = "scimbox_"
	tokenIDLen     = 8
	tokenSecretLen = 35
	tokenCRCLen    = 6
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// lastUsedEvery bounds how often a token's last use is written.
	lastUsedEvery = time.Minute
)

func randomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = base62[v.Int64()]
	}
	return string(b)
}

func crcBase62(s string) string {
	v := uint64(crc32.ChecksumIEEE([]byte(s)))
	b := make([]byte, tokenCRCLen)
	for i := tokenCRCLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b)
}

// parseToken splits a token into its id, checking its shape and checksum.
func parseToken(tok string) (id string, ok bool) { return parseSecret(tokenPrefix, tok) }

// parseSecret checks the shape and checksum of a prefixed secret (SCIM token
// or app key) and returns its id.
func parseSecret(prefix, tok string) (id string, ok bool) {
	if len(tok) != len(prefix)+tokenIDLen+tokenSecretLen+tokenCRCLen || !strings.HasPrefix(tok, prefix) {
		return "", false
	}
	body, sum := tok[:len(tok)-tokenCRCLen], tok[len(tok)-tokenCRCLen:]
	if subtle.ConstantTimeCompare([]byte(crcBase62(body)), []byte(sum)) != 1 {
		return "", false
	}
	return tok[len(prefix) : len(prefix)+tokenIDLen], true
}

// newSecret returns a new prefixed secret and its id.
func newSecret(prefix string) (plain, id string) {
	id = randomBase62(tokenIDLen)
	body := prefix + id + randomBase62(tokenSecretLen)
	return body + crcBase62(body), id
}

func tokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// secretKind is a table of hashed bearer secrets: SCIM tokens or app keys.
type secretKind struct{ table, prefix, what string }

var (
	scimTokens = secretKind{"tokens", tokenPrefix, "token"}
	appKeys    = secretKind{"app_keys", appKeyPrefix, "app key"}
)

// createSecret creates a secret and returns it in clear text: the only time it
// exists outside the client. Only its SHA-256 is stored.
func (s *Store) createSecret(ctx context.Context, k secretKind, name string) (string, Token, error) {
	plain, id := newSecret(k.prefix)
	t := Token{ID: id, Name: name}
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		t.Created = now
		_, err := tx.ExecContext(ctx, "INSERT INTO "+k.table+" (id, name, hash, created) VALUES (?, ?, ?, ?)",
			id, name, tokenHash(plain), formatTime(now))
		return err
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create %s: %w", k.what, err)
	}
	return plain, t, nil
}

func (s *Store) listSecrets(ctx context.Context, k secretKind) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, created, coalesce(last_used, '') FROM "+k.table+" ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", k.what, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var created, used string
		if err := rows.Scan(&t.ID, &t.Name, &created, &used); err != nil {
			return nil, fmt.Errorf("list %ss: %w", k.what, err)
		}
		t.Created, t.LastUsed = parseTime(created), parseTime(used)
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *Store) revokeSecret(ctx context.Context, k secretKind, id string) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM "+k.table+" WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s %q: %w", k.what, id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke %s: %w", k.what, err)
	}
	return nil
}

// authenticateSecret returns the record of a presented secret, or ErrNotFound.
// The comparison is constant-time; the last use is recorded at most once a
// minute per secret, so that authentication is not a write per request.
func (s *Store) authenticateSecret(ctx context.Context, k secretKind, presented string) (Token, error) {
	id, ok := parseSecret(k.prefix, presented)
	if !ok {
		return Token{}, ErrNotFound
	}
	var t Token
	var hash []byte
	var created string
	err := s.r.QueryRowContext(ctx, "SELECT id, name, hash, created FROM "+k.table+" WHERE id = ?", id).Scan(&t.ID, &t.Name, &hash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, tokenHash(presented)) != 1 {
		return Token{}, ErrNotFound
	}
	t.Created = parseTime(created)
	now := s.now()
	s.mu.Lock()
	due := now.Sub(s.lastUsed[k.table+":"+id]) >= lastUsedEvery
	if due {
		s.lastUsed[k.table+":"+id] = now
	}
	s.mu.Unlock()
	if due {
		err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
			_, err := tx.ExecContext(ctx, "UPDATE "+k.table+" SET last_used = ? WHERE id = ?", formatTime(now), id)
			return err
		})
		if err != nil {
			s.log.Warn("record "+k.what+" use", "id", id, "err", err)
		}
	}
	return t, nil
}

// CreateToken creates a SCIM bearer token, returned in clear text once.
func (s *Store) CreateToken(ctx context.Context, name string) (string, Token, error) {
	return s.createSecret(ctx, scimTokens, name)
}

// Tokens lists all SCIM tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) { return s.listSecrets(ctx, scimTokens) }

// RevokeToken deletes a token; requests using it fail from then on. It returns ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.revokeSecret(ctx, scimTokens, id)
}

// AuthenticateToken returns the token record for a presented bearer token, or ErrNotFound.
func (s *Store) AuthenticateToken(ctx context.Context, presented string) (Token, error) {
	return s.authenticateSecret(ctx, scimTokens, presented)
}

// ---- admin accounts, sessions and settings ----

// Admin is an account of the admin page.
type Admin struct {
	ID           int64
	Username     string
	PasswordHash string
}

// Session is a logged-in admin page session.
type Session struct {
	ID      string
	AdminID int64
	CSRF    string
	Expires time.Time
}

// AdminExists reports whether the first-run setup has been completed.
func (s *Store) AdminExists(ctx context.Context) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM admins").Scan(&n); err != nil {
		return false, fmt.Errorf("count admins: %w", err)
	}
	return n > 0, nil
}

// NewSetupCode creates a one-time code, valid for validFor, that lets its
// holder set the admin password (first run, or a reset). Only its hash is
// stored; it replaces any earlier code.
func (s *Store) NewSetupCode(ctx context.Context, validFor time.Duration) (string, error) {
	code := randomBase62(32)
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		return putSettings(ctx, tx, map[string]string{
			"setup_code_hash":    fmt.Sprintf("%x", tokenHash(code)),
			"setup_code_expires": formatTime(now.Add(validFor)),
		})
	})
	if err != nil {
		return "", fmt.Errorf("new setup code: %w", err)
	}
	return code, nil
}

func putSettings(ctx context.Context, tx *sql.Tx, kv map[string]string) error {
	for k, v := range kv {
		if _, err := tx.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", k, v); err != nil {
			return err
		}
	}
	return nil
}

func setting(ctx context.Context, q queryer, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// Setting returns a setting's value, or "" if it is not set.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	v, err := setting(ctx, s.r, key)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		return putSettings(ctx, tx, map[string]string{key: value})
	})
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// checkSetupCode reports whether code is the current, unexpired setup code.
func checkSetupCode(ctx context.Context, q queryer, code string, now time.Time) (bool, error) {
	hash, err := setting(ctx, q, "setup_code_hash")
	if err != nil || hash == "" {
		return false, err
	}
	expires, err := setting(ctx, q, "setup_code_expires")
	if err != nil {
		return false, err
	}
	ok := subtle.ConstantTimeCompare([]byte(hash), []byte(fmt.Sprintf("%x", tokenHash(code)))) == 1
	return ok && now.Before(parseTime(expires)), nil
}

// SetupCodeValid reports whether code is the current, unexpired setup code.
func (s *Store) SetupCodeValid(ctx context.Context, code string) (bool, error) {
	ok, err := checkSetupCode(ctx, s.r, code, s.now())
	if err != nil {
		return false, fmt.Errorf("check setup code: %w", err)
	}
	return ok, nil
}

// ErrBadSetupCode is returned when a setup code is wrong, used or expired.
var ErrBadSetupCode = errors.New("the setup link is invalid or has expired")

// SetupAdmin uses a setup code to create the admin account, or to set the
// existing admin's password (a reset); all sessions end and the code is used up.
func (s *Store) SetupAdmin(ctx context.Context, code, username, passwordHash string) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		ok, err := checkSetupCode(ctx, tx, code, now)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadSetupCode
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM settings WHERE key IN ('setup_code_hash', 'setup_code_expires')"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions"); err != nil {
			return err
		}
		var id int64
		err = tx.QueryRowContext(ctx, "SELECT id FROM admins ORDER BY id LIMIT 1").Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, "INSERT INTO admins (username, password_hash, created, updated) VALUES (?, ?, ?, ?)",
				username, passwordHash, formatTime(now), formatTime(now))
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE admins SET username = ?, password_hash = ?, updated = ? WHERE id = ?",
				username, passwordHash, formatTime(now), id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set up admin: %w", err)
	}
	return nil
}

// AdminByUsername returns the admin with that username (case-insensitive), or ErrNotFound.
func (s *Store) AdminByUsername(ctx context.Context, username string) (Admin, error) {
	var a Admin
	err := s.r.QueryRowContext(ctx, "SELECT id, username, password_hash FROM admins WHERE username = ? COLLATE NOCASE", username).
		Scan(&a.ID, &a.Username, &a.PasswordHash)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("admin %q: %w", username, err)
	}
	return a, nil
}

// AdminByID returns the admin with that id, or ErrNotFound.
func (s *Store) AdminByID(ctx context.Context, id int64) (Admin, error) {
	var a Admin
	err := s.r.QueryRowContext(ctx, "SELECT id, username, password_hash FROM admins WHERE id = ?", id).Scan(&a.ID, &a.Username, &a.PasswordHash)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("admin %d: %w", id, err)
	}
	return a, nil
}

// SetAdminPassword changes an admin's password and ends its other sessions.
func (s *Store) SetAdminPassword(ctx context.Context, adminID int64, passwordHash, keepSession string) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "UPDATE admins SET password_hash = ?, updated = ? WHERE id = ?", passwordHash, formatTime(now), adminID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE admin_id = ? AND id <> ?", adminID, keepSession)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// CreateSession starts a session and returns its cookie value (id.secret);
// only the secret's hash is stored. Expired sessions are swept at the same time.
func (s *Store) CreateSession(ctx context.Context, adminID int64, lifetime time.Duration) (string, Session, error) {
	sess := Session{ID: randomBase62(16), AdminID: adminID, CSRF: randomBase62(32)}
	secret := randomBase62(32)
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		sess.Expires = now.Add(lifetime)
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires < ?", formatTime(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions (id, hash, admin_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
			sess.ID, tokenHash(secret), adminID, sess.CSRF, formatTime(now), formatTime(sess.Expires))
		return err
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	return sess.ID + "." + secret, sess, nil
}

// SessionByCookie returns the live session a cookie value names, or ErrNotFound.
// The secret is compared in constant time.
func (s *Store) SessionByCookie(ctx context.Context, cookie string) (Session, error) {
	id, secret, ok := strings.Cut(cookie, ".")
	if !ok || id == "" || secret == "" {
		return Session{}, ErrNotFound
	}
	var sess Session
	var hash []byte
	var expires string
	err := s.r.QueryRowContext(ctx, "SELECT id, hash, admin_id, csrf, expires FROM sessions WHERE id = ?", id).
		Scan(&sess.ID, &hash, &sess.AdminID, &sess.CSRF, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	sess.Expires = parseTime(expires)
	if subtle.ConstantTimeCompare(hash, tokenHash(secret)) != 1 || !s.now().Before(sess.Expires) {
		return Session{}, ErrNotFound
	}
	return sess, nil
}

// DeleteSession ends a session (logout).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// ---- provisioning log ----

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
	logQueueSize     = 4096
	logFlushEvery    = 500 * time.Millisecond
	logPruneEvery    = time.Hour
	defaultLogDays   = 30
	maxLogRows       = 500_000
	logRetentionDays = "log_retention_days"
)

// Log queues an entry for the provisioning log. It never blocks a request:
// when the queue is full the entry is dropped and a warning logged.
func (s *Store) Log(e LogEntry) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	select {
	case s.logQueue <- e:
	default:
		s.log.Warn("provisioning log queue full: entry dropped", "op", e.Op, "target", e.Target)
	}
}

// logWriter writes queued entries in batches, one transaction each, and prunes old ones.
func (s *Store) logWriter() {
	defer close(s.logDone)
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	var batch []LogEntry
	lastPrune := time.Time{}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := s.writeLog(context.Background(), batch); err != nil {
			s.log.Error("write provisioning log", "entries", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case e, ok := <-s.logQueue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			if len(batch) >= 256 {
				flush()
			}
		case <-tick.C:
			flush()
			if time.Since(lastPrune) >= logPruneEvery {
				lastPrune = time.Now()
				if err := s.PruneLog(context.Background()); err != nil {
					s.log.Error("prune provisioning log", "err", err)
				}
				s.purgeBySetting(context.Background())
				if err := s.PruneEvents(context.Background(), eventRetentionDays); err != nil {
					s.log.Error("prune change feed", "err", err)
				}
			}
		}
	}
}

func (s *Store) writeLog(ctx context.Context, batch []LogEntry) error {
	return s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
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
	return s.write(ctx, func(tx *sql.Tx, now time.Time) error {
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
	var where []string
	var args []any
	if q.Outcome != "" {
		where, args = append(where, "outcome = ?"), append(args, q.Outcome)
	}
	if q.Target != "" {
		where, args = append(where, "target LIKE ? ESCAPE '\\' COLLATE NOCASE"), append(args, likePrefix(q.Target))
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
	rows, err := s.r.QueryContext(ctx, query+" ORDER BY id DESC LIMIT ?", append(args, max(q.Limit, 1))...)
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

func likePrefix(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "%", "\\%", "_", "\\_")
	return r.Replace(s) + "%"
}

// Stats are the dashboard's figures.
type Stats struct {
	Users, ActiveUsers, Groups int
	Failures24h                int
	LastChange                 time.Time // newest provisioning log entry
}

// Stats counts users, groups and recent failures.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var last string
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users WHERE active = 1),
		(SELECT count(*) FROM groups), (SELECT count(*) FROM provisioning_log WHERE outcome = 'failure' AND at >= ?),
		coalesce((SELECT at FROM provisioning_log ORDER BY id DESC LIMIT 1), '')`, formatTime(s.now().Add(-24*time.Hour))).
		Scan(&st.Users, &st.ActiveUsers, &st.Groups, &st.Failures24h, &last)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.LastChange = parseTime(last)
	return st, nil
}

// GroupMembersPage returns one page of a group's members, ordered by display
// name, and the group's member count.
func (s *Store) GroupMembersPage(ctx context.Context, groupID string, offset, limit int) ([]Member, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT member_count FROM groups WHERE id = ?", groupID).Scan(&total); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("group members: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT m.member_id, m.member_type, coalesce(u.display_name, u.user_name, g.display_name, '')
		FROM members m LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
			LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
		WHERE m.group_id = ? ORDER BY m.member_id LIMIT ? OFFSET ?`, groupID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("group members: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.ID, &m.Type, &m.Display); err != nil {
			return nil, 0, fmt.Errorf("group members: %w", err)
		}
		out = append(out, m)
	}
	return out, total, rows.Err()
}

// GroupMemberCounts returns the member counts of the given groups.
func (s *Store) GroupMemberCounts(ctx context.Context, ids []string) (map[string]int, error) {
	out := make(map[string]int, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.r.QueryContext(ctx, "SELECT id, member_count FROM groups WHERE id IN (?"+strings.Repeat(",?", len(ids)-1)+")", args...)
	if err != nil {
		return nil, fmt.Errorf("member counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("member counts: %w", err)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// ---- durability: checkpoints, snapshots, restore ----

const (
	backupDir = "backups"
	// checkpointIdle is how long the database must be idle before the WAL is
	// folded completely into the main file, so that a copy of it is complete.
	checkpointIdle = 3 * time.Second
)

// lockFile opens path (creating it) and takes a flock on it: shared for the
// store, exclusive for restore. flock does not interfere with SQLite's own
// POSIX locks.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if exclusive {
			return nil, fmt.Errorf("%s is in use by a running scimbox: stop it first", path)
		}
		return nil, fmt.Errorf("%s is being restored: try again when restore has finished", path)
	}
	return f, nil
}

// checkpoint copies the WAL into the database file (PASSIVE: what it can
// without waiting; TRUNCATE: everything, and empty the WAL).
func (s *Store) checkpoint(ctx context.Context, mode string) error {
	var busy, logFrames, done int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// checkpointer keeps the main database file current: a passive checkpoint
// each second after writes, and a full one once writes pause.
func (s *Store) checkpointer() {
	defer close(s.checkpointsDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var seen, truncated int64
	lastWrite := time.Now()
	for {
		select {
		case <-s.stopCheckpoints:
			return
		case <-tick.C:
		}
		n := s.writes.Load()
		switch {
		case n != seen:
			seen, lastWrite = n, time.Now()
			if err := s.checkpoint(context.Background(), "PASSIVE"); err != nil {
				s.log.Warn("checkpoint", "err", err)
			}
		case n != truncated && time.Since(lastWrite) >= checkpointIdle:
			if err := s.checkpoint(context.Background(), "TRUNCATE"); err != nil {
				s.log.Warn("checkpoint", "err", err)
				continue
			}
			truncated = n
		}
	}
}

// ErrDamaged reports a database that fails its integrity check.
var ErrDamaged = errors.New("the database is damaged")

// explainDamage turns SQLite's "malformed" errors into ErrDamaged with what to do.
func (s *Store) explainDamage(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_CORRUPT || se.Code()&0xff == sqlite3.SQLITE_NOTADB) {
		return fmt.Errorf("%w: %v. Restore the latest snapshot from %s with `scimbox restore`", ErrDamaged, err,
			filepath.Join(filepath.Dir(s.path), backupDir))
	}
	return err
}

// checkLeftoverWAL runs when a -wal file with content is found at start: the
// server crashed, or a -wal from another copy of the database lies next to a
// restored file. A crash is recovered by SQLite; a foreign -wal would
// corrupt the file, so the combination must pass quick_check first.
func (s *Store) checkLeftoverWAL(ctx context.Context) error {
	fi, err := os.Stat(s.path + "-wal")
	if err != nil || fi.Size() == 0 {
		return nil
	}
	if err := s.quickCheck(ctx, s.w); err != nil {
		return fmt.Errorf("%w: %s-wal does not belong to this database or the file is corrupt (%v). "+
			"If you copied the database file back, use `scimbox restore`, which removes stale -wal/-shm files; "+
			"otherwise restore the latest snapshot from %s", ErrDamaged, s.path, err, filepath.Join(filepath.Dir(s.path), backupDir))
	}
	s.log.Info("recovered writes from the -wal file left by an unclean shutdown")
	return nil
}

func (s *Store) quickCheck(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Check runs SQLite's quick_check; the server refuses to start on a damaged file.
func (s *Store) Check(ctx context.Context) error {
	if err := s.quickCheck(ctx, s.r); err != nil {
		return fmt.Errorf("%w: %v. Restore the latest snapshot from %s with `scimbox restore`", ErrDamaged, err,
			filepath.Join(filepath.Dir(s.path), backupDir))
	}
	return nil
}

// Snapshot writes a consistent copy of the live database to dest (which must
// not exist) with VACUUM INTO on a connection of its own, so writes go on,
// then checks the copy and makes it durable.
func (s *Store) Snapshot(ctx context.Context, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	tmp := dest + ".partial"
	os.Remove(tmp)
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.path}).EscapedPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := verifyDatabase(ctx, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: the copy does not check out: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return syncFile(filepath.Dir(dest))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// verifyDatabase checks a database file that no server uses: integrity_check
// passes, it is a scimbox database, and not from a newer scimbox.
func verifyDatabase(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&result); err != nil {
		return fmt.Errorf("not a readable SQLite database: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("integrity_check: %s", result)
	}
	var version, tables int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('users', 'groups', 'tokens')").Scan(&tables); err != nil {
		return err
	}
	switch {
	case tables != 3 || version == 0:
		return errors.New("it is not a scimbox database")
	case version > len(migrations):
		return fmt.Errorf("it is from a newer scimbox (schema version %d)", version)
	}
	return nil
}

// restoreDatabase replaces the database at dst with a verified copy of src.
// No server may be running on dst. The replaced file (and any -wal) is kept
// beside it as <dst>.before-restore-<time>, and stale -wal/-shm files are removed.
func restoreDatabase(ctx context.Context, src, dst string, now time.Time) (kept string, err error) {
	if err := verifyDatabase(ctx, src); err != nil {
		return "", fmt.Errorf("restore %s: %w", src, err)
	}
	if _, err := os.Stat(dst); err == nil {
		lock, err := lockFile(dst, true)
		if err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
		defer lock.Close()
	}
	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		kept = fmt.Sprintf("%s.before-restore-%s", dst, now.UTC().Format("20060102T150405Z"))
		if err := os.Rename(dst, kept); err != nil {
			return "", fmt.Errorf("restore: keep the old database: %w", err)
		}
		if err := os.Rename(dst+"-wal", kept+"-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Remove(dst + "-shm"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Remove(dst + "-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return kept, syncFile(filepath.Dir(dst))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Snapshots lists the automatic snapshots, newest first.
func (s *Store) Snapshots() ([]SnapshotInfo, error) {
	dir := filepath.Join(filepath.Dir(s.path), backupDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []SnapshotInfo
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, snapshotPrefix) || !strings.HasSuffix(name, ".db") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, SnapshotInfo{Path: filepath.Join(dir, name), Size: fi.Size(), Taken: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return b.Taken.Compare(a.Taken) })
	return out, nil
}

// SnapshotInfo describes one automatic snapshot.
type SnapshotInfo struct {
	Path  string
	Size  int64
	Taken time.Time
}

const snapshotPrefix = "scimbox-"

// RunSnapshots takes a snapshot into backups/ every interval (the first one
// when the newest is older than interval) and keeps the newest keep of them,
// until ctx ends.
func (s *Store) RunSnapshots(ctx context.Context, interval time.Duration, keep int) {
	for {
		wait := time.Duration(0)
		if snaps, err := s.Snapshots(); err == nil && len(snaps) > 0 {
			wait = max(interval-time.Since(snaps[0].Taken), 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		dest := filepath.Join(filepath.Dir(s.path), backupDir, snapshotPrefix+time.Now().UTC().Format("20060102T150405Z")+".db")
		if err := s.Snapshot(ctx, dest); err != nil {
			s.log.Error("automatic snapshot failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(interval, time.Hour)):
			}
			continue
		}
		s.log.Info("snapshot taken", "path", dest)
		if snaps, err := s.Snapshots(); err == nil {
			for _, old := range snaps[min(keep, len(snaps)):] {
				if err := os.Remove(old.Path); err != nil {
					s.log.Warn("remove old snapshot", "path", old.Path, "err", err)
				}
			}
		}
	}
}

// ---- source of truth: policy, claims, deprovisioning, disconnect ----

// Policy returns the source-of-truth policy (the hybrid preset until the admin changes it).
func (s *Store) Policy(ctx context.Context) (Policy, error) {
	p, err := s.policyIn(ctx, s.r)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return maps.Clone(p), nil
}

// SetPolicy stores the source-of-truth policy.
func (s *Store) SetPolicy(ctx context.Context, p Policy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode policy: %w", err)
	}
	if err := s.SetSetting(ctx, settingPolicy, string(raw)); err != nil {
		return err
	}
	p = maps.Clone(p)
	s.policy.Store(&p)
	return nil
}

// ClaimUser hands the account holding userName to fn inside one write
// transaction, when that account is not directory-managed: fn turns it into a
// directory account (a claim of a manual account, or the return of a
// deprovisioned one) or refuses with an error. It returns ErrConflict when a
// directory account holds the name, ErrNotFound when none does.
func (s *Store) ClaimUser(ctx context.Context, userName string, fn func(u *User) error) (*User, error) {
	var out *User
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.user_name_key = ?", foldCase(userName)))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if u.Kind == accountDirectory {
			return fmt.Errorf("%w: userName %q is already taken", ErrConflict, userName)
		}
		prev := copyUser(u)
		if err := fn(u); err != nil {
			return err
		}
		u.Modified, u.Version = now, u.Version+1
		if err := putUser(ctx, tx, u, false); err != nil {
			return err
		}
		if err := s.userEvents(ctx, tx, now, prev, u); err != nil {
			return err
		}
		out = u
		return fillUserGroups(ctx, tx, []*User{u})
	})
	if err != nil {
		return nil, fmt.Errorf("claim user: %w", err)
	}
	return out, nil
}

// Deprovision keeps a user the directory deleted, disabled and hidden from
// the directory, and takes it out of its groups. It returns ErrNotFound.
func (s *Store) Deprovision(ctx context.Context, id string, check func(version int64) error) error {
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ? AND users.kind = 'directory'", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(u.Version); err != nil {
				return err
			}
		}
		prev := copyUser(u)
		u.Kind, u.Modified, u.Version = accountDeprovisioned, now, u.Version+1
		u.Attrs["active"] = false
		if err := s.removeMemberEverywhere(ctx, tx, id, now); err != nil {
			return err
		}
		if err := putUser(ctx, tx, u, false); err != nil {
			return err
		}
		return s.userEvents(ctx, tx, now, prev, u)
	})
	if err != nil {
		return fmt.Errorf("deprovision user: %w", err)
	}
	return nil
}

// Disconnect ends the directory connection: every SCIM token is revoked and
// every directory account becomes a manual one with its effective values.
// Groups stay. It returns how many accounts were converted.
func (s *Store) Disconnect(ctx context.Context, p Policy) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM tokens"); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, userSelect+" WHERE users.kind = 'directory'")
		if err != nil {
			return err
		}
		var users []*User
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return err
			}
			users = append(users, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, u := range users {
			u.Attrs, u.Overrides, u.Kind = Disconnected(u.Attrs, u.Overrides, p), nil, accountManual
			u.Modified, u.Version = now, u.Version+1
			if err := putUser(ctx, tx, u, false); err != nil {
				return err
			}
		}
		n = len(users)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disconnect: %w", err)
	}
	s.mu.Lock()
	clear(s.lastUsed)
	s.mu.Unlock()
	return n, nil
}

// PurgeInactive deletes directory accounts disabled for longer than days,
// with their memberships, and returns their userNames.
func (s *Store) PurgeInactive(ctx context.Context, days int) ([]string, error) {
	var names []string
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, user_name FROM users WHERE kind = 'directory' AND inactive_since IS NOT NULL
			AND inactive_since < ?`, formatTime(now.AddDate(0, 0, -days)))
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id, name string
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return err
			}
			ids, names = append(ids, id), append(names, name)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ?", id))
			if err != nil {
				return err
			}
			if err := s.deleteUserIn(ctx, tx, now, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("purge inactive users: %w", err)
	}
	return names, nil
}

// purgeBySetting applies the "delete disabled accounts after N days" policy.
func (s *Store) purgeBySetting(ctx context.Context) {
	v, err := s.Setting(ctx, settingPurgeInactive)
	days, _ := strconv.Atoi(v)
	if err != nil || days <= 0 {
		return
	}
	names, err := s.PurgeInactive(ctx, days)
	if err != nil {
		s.log.Error("purge inactive users", "err", err)
		return
	}
	for _, name := range names {
		s.log.Info("deleted an account disabled for longer than the policy allows", "userName", name, "days", days)
		s.Log(LogEntry{Op: "delete disabled user (policy)", ResourceType: "User", Target: name, Outcome: "success", Status: 204,
			Detail: fmt.Sprintf("disabled for more than %d days", days)})
	}
}

// ---- change feed and webhooks ----

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
// queues it for every enabled webhook subscribed to its type.
func (s *Store) emit(ctx context.Context, tx *sql.Tx, now time.Time, typ, resourceType, resourceID string, data any) error {
	return s.emitMany(ctx, tx, now, typ, resourceType, resourceID, []any{data})
}

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
	rows, err := tx.QueryContext(ctx, `INSERT INTO events (id, at, type, resource_type, resource_id, data)
		SELECT 'evt_' || lower(hex(randomblob(12))), ?, ?, ?, ?, j.value FROM json_each(?) j WHERE true
		RETURNING cursor`, formatTime(now), typ, resourceType, resourceID, string(raw))
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	var first, last int64
	for rows.Next() {
		var c int64
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("record event: %w", err)
		}
		if first == 0 || c < first {
			first = c
		}
		last = max(last, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	if !s.hasWebhooks.Load() {
		return nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO deliveries (webhook_id, event_cursor, next_at)
		SELECT w.id, e.cursor, ? FROM events e JOIN webhooks w
			ON w.disabled_reason = '' AND (w.types = '*' OR instr(',' || w.types || ',', ',' || e.type || ',') > 0)
		WHERE e.cursor BETWEEN ? AND ? ORDER BY e.cursor`, formatTime(now), first, last)
	if err != nil {
		return fmt.Errorf("queue event: %w", err)
	}
	return nil
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

// Events returns up to limit events after the cursor, oldest first.
func (s *Store) Events(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT cursor, id, at, type, resource_type, resource_id, data FROM events
		WHERE cursor > ? ORDER BY cursor LIMIT ?`, after, limit)
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

// PruneEvents drops events older than days, and delivered or abandoned deliveries of them.
func (s *Store) PruneEvents(ctx context.Context, days int) error {
	return s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		cut := formatTime(now.AddDate(0, 0, -days))
		if _, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE event_cursor IN (SELECT cursor FROM events WHERE at < ?)", cut); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM events WHERE at < ?", cut)
		return err
	})
}

// ---- app keys (the read-only API) ----

// appKeyPrefix marks app keys; SCIM tokens start with scimbox_ and neither
// is accepted where the other belongs.
const appKeyPrefix = "scimboxapp_"

// CreateAppKey creates a key for the read-only API, returned in clear text once.
func (s *Store) CreateAppKey(ctx context.Context, name string) (string, Token, error) {
	return s.createSecret(ctx, appKeys, name)
}

// AppKeys lists the app keys, oldest first.
func (s *Store) AppKeys(ctx context.Context) ([]Token, error) { return s.listSecrets(ctx, appKeys) }

// RevokeAppKey deletes an app key; it returns ErrNotFound.
func (s *Store) RevokeAppKey(ctx context.Context, id string) error {
	return s.revokeSecret(ctx, appKeys, id)
}

// AuthenticateAppKey checks a presented app key; ErrNotFound if it is not one.
func (s *Store) AuthenticateAppKey(ctx context.Context, presented string) error {
	_, err := s.authenticateSecret(ctx, appKeys, presented)
	return err
}

// UsersAfter returns up to limit users after the cursor (a row number), in
// creation order, with the cursor of the last one: keyset paging for apps and exports.
func (s *Store) UsersAfter(ctx context.Context, after int64, limit int) ([]*User, int64, error) {
	users, next, err := rowsAfter(ctx, s.r, userSelect, "users", after, limit, scanUser)
	if err != nil {
		return nil, 0, err
	}
	return users, next, fillUserGroups(ctx, s.r, users)
}

// GroupsAfter is UsersAfter for groups (without members).
func (s *Store) GroupsAfter(ctx context.Context, after int64, limit int) ([]*Group, int64, error) {
	return rowsAfter(ctx, s.r, groupSelect, "groups", after, limit, scanGroup)
}

// rowsAfter pages through a resource table by rowid.
func rowsAfter[T any](ctx context.Context, q queryer, selectSQL, table string, after int64, limit int,
	scan func(interface{ Scan(...any) error }) (T, error)) ([]T, int64, error) {
	rows, err := q.QueryContext(ctx, strings.Replace(selectSQL, "SELECT ", "SELECT "+table+".rowid, ", 1)+
		" WHERE "+table+".rowid > ? ORDER BY "+table+".rowid LIMIT ?", after, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", table, err)
	}
	defer rows.Close()
	var out []T
	next := after
	for rows.Next() {
		var rowid int64
		v, err := scan(scanPrefix{rows, &rowid})
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", table, err)
		}
		out, next = append(out, v), rowid
	}
	return out, next, rows.Err()
}

// MembersAfter returns up to limit members of a group after the member id cursor.
func (s *Store) MembersAfter(ctx context.Context, groupID, after string, limit int) ([]Member, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM groups WHERE id = ?", groupID).Scan(&n); err != nil || n == 0 {
		if err == nil {
			err = fmt.Errorf("group %q: %w", groupID, ErrNotFound)
		}
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT m.member_id, m.member_type, coalesce(u.display_name, u.user_name, g.display_name, '')
		FROM members m LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
			LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
		WHERE m.group_id = ? AND m.member_id > ? ORDER BY m.member_id LIMIT ?`, groupID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("group members: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.ID, &m.Type, &m.Display); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// scanPrefix scans a leading extra column before handing the rest to a scan function.
type scanPrefix struct {
	rows  *sql.Rows
	first any
}

func (sp scanPrefix) Scan(dest ...any) error {
	return sp.rows.Scan(append([]any{sp.first}, dest...)...)
}

// ---- webhooks ----

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
	err := s.write(ctx, func(tx *sql.Tx, now time.Time) error {
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
	return s.write(ctx, func(tx *sql.Tx, _ time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?", id); err != nil {
			return err
		}
		return s.refreshHasWebhooks(ctx, tx)
	})
}

// EnableWebhook turns a disabled endpoint back on; its queue resumes where it stopped.
func (s *Store) EnableWebhook(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		_, err := tx.ExecContext(ctx, "UPDATE webhooks SET disabled_reason = '', failures = 0 WHERE id = ?", id)
		if err == nil {
			_, err = tx.ExecContext(ctx, "UPDATE deliveries SET next_at = ? WHERE webhook_id = ? AND done = 0", formatTime(now), id)
		}
		return err
	})
}

// QueueTestEvent queues a webhook.test event for one endpoint only.
func (s *Store) QueueTestEvent(ctx context.Context, webhookID string) error {
	return s.write(ctx, func(tx *sql.Tx, now time.Time) error {
		var cursor int64
		err := tx.QueryRowContext(ctx, `INSERT INTO events (id, at, type, resource_type, resource_id, data) VALUES (?, ?, 'webhook.test', '', '', '{"test":true}')
			RETURNING cursor`, "evt_"+randomBase62(24), formatTime(now)).Scan(&cursor)
		if err != nil {
			return err
		}
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
	return s.write(ctx, func(tx *sql.Tx, now time.Time) error {
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

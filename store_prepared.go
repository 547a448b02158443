// Prepared statements for the hot paths: SQL parsed once per connection.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
)

// stmtCache keeps prepared statements of one pool, keyed by their SQL.
// modernc's driver prepares every unprepared call afresh, and parsing was
// 16 % of the server's CPU (docs/performance.md); a *sql.Stmt is prepared on
// each pooled connection the first time it runs there and kept for the
// connection's life.
//
// Preparing a statement takes a connection of the pool, so it happens only
// where the caller holds none: statements run inside a write transaction are
// prepared when the store opens (the writer has a single connection, which
// the transaction holds), and a statement missing from the cache is run
// unprepared there rather than waiting for itself.
type stmtCache struct {
	db *sql.DB
	// limit bounds the statements kept: list queries are built per filter
	// shape, and only the common shapes are worth a statement on every connection.
	limit int

	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB, limit int) *stmtCache {
	return &stmtCache{db: db, limit: limit, stmts: map[string]*sql.Stmt{}}
}

// lookup returns the statement for query if it was prepared, else nil.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stmts[query]
}

// prepare returns the statement for query, preparing it if the cache has
// room. It returns nil (run the SQL unprepared) when the cache is full or
// preparing failed: the unprepared call then reports the error. The caller
// must hold none of the pool's connections.
func (c *stmtCache) prepare(ctx context.Context, query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st := c.lookup(query); st != nil {
		return st
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stmts[query]; st != nil || len(c.stmts) >= c.limit {
		return st
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.stmts[query] = st
	return st
}

// QueryContext runs a read on the pool, prepared: the cache is a queryer.
func (c *stmtCache) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := c.prepare(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.db.QueryContext(ctx, query, args...)
}

// QueryRowContext is QueryContext for one row.
func (c *stmtCache) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := c.prepare(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.db.QueryRowContext(ctx, query, args...)
}

// txStmts runs statements in a write transaction, prepared when the store
// prepared them on opening (writerStatements), otherwise as they are.
type txStmts struct {
	*sql.Tx
	c *stmtCache
}

func (t txStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.c.lookup(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t txStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.c.lookup(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t txStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.c.lookup(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// in returns tx running the writer's prepared statements.
func (s *Store) in(tx *sql.Tx) txStmts { return txStmts{tx, s.wstmts} }

// writerStatements are the statements of the hot write paths, prepared on
// the writer's connection when the store opens: a user or group read for
// update, a user's row and email index written, a user's roles, membership
// changes, and the change feed's event insert and webhook queueing.
var writerStatements = []string{
	userByIDSQL, userGroupsSQL(1), groupByIDSQL,
	insertUserSQL, updateUserSQL, deleteUserEmailsSQL, insertUserEmailSQL,
	storedRolesSQL, rolesInUseSQL,
	unknownMembersSQL, addMembersSQL, removeMembersSQL, memberCountSQL,
	insertEventsSQL, queueDeliveriesSQL,
	userSearchDirtySQL,
	insertGroupSQL, updateGroupSQL, groupGrantsSQL, usersUnderSQL,
	savepointSQL, releaseSQL,
}

// prepareStatements sets up the statement caches of both pools.
func (s *Store) prepareStatements(ctx context.Context) error {
	s.rstmts = newStmtCache(s.r, 64)
	s.wstmts = newStmtCache(s.w, len(writerStatements)+len(syncUserSearchSQL))
	for _, q := range slices.Concat(writerStatements, syncUserSearchSQL) {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.wstmts.stmts[q] = st
	}
	return nil
}

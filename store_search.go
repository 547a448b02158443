// The admin page's user search, answered from the user_search trigram index.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"unicode/utf8"
)

// SearchUsers returns one page of the users (accounts of every kind) whose
// user name, display, given, family or nick name, or an email address
// contains every word of q, case-insensitively, sorted by user name; and how
// many match in all. Words of three characters or more are looked up in the
// trigram index; shorter ones are matched by scanning it.
func (s *Store) SearchUsers(ctx context.Context, q string, offset, limit int) ([]*User, int, error) {
	var match []string
	var conds []string
	var args []any
	for _, w := range strings.Fields(q) {
		if utf8.RuneCountInString(w) >= 3 {
			match = append(match, `"`+strings.ReplaceAll(w, `"`, `""`)+`"`)
		} else {
			conds, args = append(conds, "user_search.text LIKE ? ESCAPE '\\'"), append(args, "%"+likePrefix(w))
		}
	}
	if len(match) > 0 {
		conds, args = append(conds, "user_search MATCH ?"), append(args, strings.Join(match, " AND "))
	}
	if len(conds) == 0 {
		return nil, 0, nil
	}
	where := " WHERE " + strings.Join(conds, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM user_search"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("search users: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, userSelect+` JOIN user_search_rows r ON r.user_id = users.id
		JOIN user_search ON user_search.rowid = r.rid`+where+` ORDER BY users.user_name_key LIMIT ? OFFSET ?`,
		append(args, limit, offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	var users []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("search users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("search users: %w", err)
	}
	if err := fillUserGroups(ctx, s.r, users); err != nil {
		return nil, 0, err
	}
	if err := fillUserRoles(ctx, s.r, users); err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// userSearchDirtySQL says whether a write of the transaction changed a user
// the search index has not caught up with.
const userSearchDirtySQL = `SELECT EXISTS (SELECT 1 FROM user_search_dirty)`

// syncUserSearchSQL re-indexes the users the transaction changed, and drops
// the rows of the ones it deleted, in one pass for a whole batch of writes.
var syncUserSearchSQL = []string{
	`DELETE FROM user_search WHERE rowid IN (SELECT r.rid FROM user_search_dirty d CROSS JOIN user_search_rows r ON r.user_id = d.user_id)`,
	`DELETE FROM user_search_rows WHERE user_id IN (SELECT user_id FROM user_search_dirty)`,
	`INSERT INTO user_search_rows (user_id) SELECT u.id FROM user_search_dirty d CROSS JOIN users u ON u.id = d.user_id`,
	`INSERT INTO user_search (rowid, text) SELECT r.rid, concat_ws(' ', u.user_name, u.display_name, u.attrs->>'$.name.givenName', u.attrs->>'$.name.familyName',
			u.attrs->>'$.name.formatted', u.attrs->>'$.nickName',
			(SELECT group_concat(e.value->>'$.value', ' ') FROM json_each(u.attrs, '$.emails') e),
			(SELECT group_concat(o.value->>'$.value', ' ') FROM json_each(u.overrides) o))
		FROM user_search_dirty d CROSS JOIN users u ON u.id = d.user_id CROSS JOIN user_search_rows r ON r.user_id = u.id`,
	`DELETE FROM user_search_dirty`,
}

// syncUserSearch brings the search index up to date with the writes of tx
// and those before it, just before tx commits (see the migration that added
// user_search_dirty), when due; it reports whether the index is current.
func (s *Store) syncUserSearch(ctx context.Context, tx *sql.Tx, due bool) (bool, error) {
	in := s.in(tx)
	var dirty bool
	if err := in.QueryRowContext(ctx, userSearchDirtySQL).Scan(&dirty); err != nil || !dirty {
		return err == nil, err
	}
	if !due {
		return false, nil
	}
	for _, q := range syncUserSearchSQL {
		if _, err := in.ExecContext(ctx, q); err != nil {
			return false, fmt.Errorf("search index: %w", err)
		}
	}
	return true, nil
}

// The admin page's user search, answered from the user_search trigram index.

package main

import (
	"context"
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

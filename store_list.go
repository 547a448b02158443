// Lists: a SCIM filter and sort turned into indexed SQL pages, and the keyset pages of /api/v1.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
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

// nullableColumns are sort columns that may hold NULL.
var nullableColumns = map[string]bool{"users.external_id": true, "users.display_name_key": true, "groups.external_id": true}

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

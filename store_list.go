// Lists: a SCIM filter and sort turned into indexed SQL pages, and the keyset pages of /api/v1.

package main

import (
	"cmp"
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
		listTable: usersTable,
		scan:      func(r interface{ Scan(...any) error }) (any, error) { return scanUser(r) },
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
	groupsOf := queryer(s.r)
	if len(users) == 1 {
		groupsOf = s.rstmts // a match by userName or externalId: Entra's most frequent read
	}
	if err := fillUserGroups(ctx, groupsOf, users); err != nil {
		return nil, 0, err
	}
	if err := fillUserRoles(ctx, s.r, users); err != nil {
		return nil, 0, err
	}
	return users, total, nil
}

// listTable is what a list's SQL needs to know about a resource table.
type listTable struct {
	table, selectSQL string
	cols             map[string]sqlColumn // filterable attributes on indexed columns
	sortCols         map[string]string    // sortable attributes on indexed columns
}

var (
	// usersTable and groupsTable are what the list queries know of each table.
	usersTable  = listTable{"users", userSelect, userColumns, userSortColumns}
	groupsTable = listTable{"groups", groupSelect, groupColumns, groupSortColumns}
)

// listSpec describes a resource table to the shared list implementation.
type listSpec struct {
	listTable
	scan func(interface{ Scan(...any) error }) (any, error)
	// doc renders a scanned resource for evaluation; q is the connection the
	// scan runs on, so that loading relations never waits for a second one.
	doc      func(ctx context.Context, q queryer, v any, needRelations bool) (map[string]any, error)
	relation string // the derived attribute (groups, members) a filter may need loaded
	rt       *resourceType
	collect  func(any)
}

// unindexedSortWindow bounds how deep a list sorted by an attribute without
// an index may page: such a sort keeps the sort keys of the first
// startIndex+count results in memory while it reads every candidate.
const unindexedSortWindow = 10_000

// SortWindowError reports a page beyond unindexedSortWindow of a list sorted
// by an attribute without an index.
type SortWindowError struct{ SortBy string }

// Error says how deep an unindexed sort may page.
func (e *SortWindowError) Error() string {
	return fmt.Sprintf("sorting by %s reaches only the first %d results; sort by an indexed attribute "+
		"(id, userName, displayName, externalId, meta.created, meta.lastModified) or narrow the filter", e.SortBy, unindexedSortWindow)
}

// listSQL is the SQL of one list query. When indexed, count and page answer
// it from indexes (page takes the count and offset after args); otherwise
// stream yields the candidates, with their rowid first, for evaluation in Go.
type listSQL struct {
	indexed, indexedSort bool
	count, page, stream  string
	args                 []any
}

// listStatements builds the SQL for q. kindFilter adds the directory-only
// condition, needed only when some account is not a directory account.
func (t listTable) listStatements(q ListQuery, kindFilter bool) listSQL {
	sf := sqlFilter{exact: true}
	if q.Filter != nil {
		sf = toSQL(q.Filter, t.cols)
	}
	var conds []string
	if sf.where != "" {
		conds = append(conds, sf.where)
	}
	if kindFilter {
		// The unary + keeps the planner from choosing the kind index over the
		// filter's or the sort's own index.
		conds = append(conds, "+users.kind = 'directory'")
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	sortKey := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(q.SortBy, userSchema+":"), groupSchema+":"))
	sortCol, indexedSort := t.sortCols[sortKey]
	if q.SortBy == "" {
		// Creation order, from the narrow created index rather than the wide table.
		sortCol, indexedSort = t.table+".created", true
	}
	rowid := t.table + ".rowid"
	streamSelect := strings.Replace(t.selectSQL, "SELECT ", "SELECT "+rowid+", ", 1)
	if !indexedSort {
		return listSQL{stream: streamSelect + where + " ORDER BY " + rowid, args: sf.args}
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
	order += sortCol + dir + ", " + rowid + dir
	// The page's rowids come from an index (skipping OFFSET rows there is
	// cheap); only the page's rows are read from the table.
	page := "SELECT " + rowid + " FROM " + t.table + where + order + " LIMIT ? OFFSET ?"
	return listSQL{
		indexed: sf.exact, indexedSort: true, args: sf.args,
		count:  "SELECT count(*) FROM " + t.table + where,
		page:   t.selectSQL + " WHERE " + rowid + " IN (" + page + ")" + order,
		stream: streamSelect + where + order,
	}
}

// nonDirectoryCountSQL counts the accounts SCIM does not see, before every SCIM list.
const nonDirectoryCountSQL = "SELECT count(*) FROM users WHERE kind IN ('manual', 'deprovisioned', 'retained')"

// list pages through a resource table. Filters that translate exactly to SQL
// (the hot path: eq on indexed attributes) are answered with COUNT and
// LIMIT/OFFSET on indexes; others are narrowed by SQL where possible and
// evaluated in Go, streaming the candidates. A sort by an attribute without
// an index keeps only the sort keys of the first startIndex+count results.
func (s *Store) list(ctx context.Context, spec listSpec, q ListQuery) (int, error) {
	kindFilter := false
	if q.DirectoryOnly && spec.table == "users" {
		// Usually every account is a directory account and the condition is left out.
		var others int
		if err := s.rstmts.QueryRowContext(ctx, nonDirectoryCountSQL).Scan(&others); err != nil {
			return 0, err
		}
		kindFilter = others > 0
	}
	st := spec.listStatements(q, kindFilter)
	start := max(q.StartIndex, 1) - 1

	if st.indexed {
		// The fast paths (no filter, or one comparison such as userName eq)
		// have few shapes, and run prepared; other shapes are as they come.
		db := queryer(s.r)
		if _, single := q.Filter.(compareExpr); q.Filter == nil || single {
			db = s.rstmts
		}
		var total int
		if err := db.QueryRowContext(ctx, st.count, st.args...).Scan(&total); err != nil {
			return 0, err
		}
		if q.Count <= 0 || start >= total {
			return total, nil
		}
		rows, err := db.QueryContext(ctx, st.page, append(st.args, q.Count, start)...)
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

	window := 0 // how many of the best sort keys to keep
	if !st.indexedSort && q.Count > 0 {
		window = start + q.Count
		if window > unindexedSortWindow {
			return 0, &SortWindowError{SortBy: q.SortBy}
		}
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	// One read transaction, so that the page read after sorting is the
	// snapshot that was sorted.
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, st.stream, st.args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	needRelations := q.Filter != nil && referencesAttr(q.Filter, spec.relation)
	best := sortedHits{descending: q.Descending, keep: window}
	total := 0
	for rows.Next() {
		var rowid int64
		v, err := spec.scan(scanPrefix{rows, &rowid})
		if err != nil {
			return 0, err
		}
		if q.Filter != nil || !st.indexedSort {
			doc, err := spec.doc(ctx, tx, v, needRelations)
			if err != nil {
				return 0, err
			}
			if q.Filter != nil && !matches(q.Filter, spec.rt, doc) {
				continue
			}
			if !st.indexedSort {
				total++
				if window > 0 {
					best.add(sortHit{sortValue(doc, q.SortBy), rowid})
				}
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
	rows.Close()
	if st.indexedSort {
		return total, nil
	}
	hits := best.result()
	if start >= len(hits) {
		return total, nil
	}
	return total, s.collectByRowid(ctx, tx, spec, hits[start:])
}

// collectByRowid reads the page's rows, whose rowids hits holds in order.
func (s *Store) collectByRowid(ctx context.Context, q queryer, spec listSpec, hits []sortHit) error {
	args := make([]any, len(hits))
	pos := make(map[int64]int, len(hits))
	for i, h := range hits {
		args[i], pos[h.rowid] = h.rowid, i
	}
	rowid := spec.table + ".rowid"
	rows, err := q.QueryContext(ctx, strings.Replace(spec.selectSQL, "SELECT ", "SELECT "+rowid+", ", 1)+
		" WHERE "+rowid+" IN (?"+strings.Repeat(",?", len(args)-1)+")", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	page := make([]any, len(hits))
	for rows.Next() {
		var id int64
		v, err := spec.scan(scanPrefix{rows, &id})
		if err != nil {
			return err
		}
		page[pos[id]] = v
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, v := range page {
		if v != nil {
			spec.collect(v)
		}
	}
	return nil
}

// sortHit is a candidate of a sort without an index: its sort key ("" when
// it has no value) and its row.
type sortHit struct {
	key   string
	rowid int64
}

// sortedHits keeps the first keep hits in sort order while hits are added
// one by one, in memory proportional to keep: a buffer of up to twice keep
// is sorted and cut back to keep whenever it fills.
type sortedHits struct {
	descending bool
	keep       int
	hits       []sortHit
}

// add keeps h, trimming to the best keep once twice as many are held: memory stays bounded by the window.
func (b *sortedHits) add(h sortHit) {
	b.hits = append(b.hits, h)
	if len(b.hits) >= 2*b.keep {
		b.hits = b.result()
	}
}

// result returns the first keep hits in order.
func (b *sortedHits) result() []sortHit {
	slices.SortFunc(b.hits, b.compare)
	return b.hits[:min(len(b.hits), b.keep)]
}

// compare orders as the SQL sorts do: a missing value sorts highest (last
// ascending, first descending, RFC 7644 §3.4.2.3), ties in row order.
func (b *sortedHits) compare(x, y sortHit) int {
	var c int
	switch {
	case x.key == y.key:
		c = cmp.Compare(x.rowid, y.rowid)
	case x.key == "":
		c = 1
	case y.key == "":
		c = -1
	default:
		c = strings.Compare(x.key, y.key)
	}
	if b.descending {
		c = -c
	}
	return c
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
		listTable: groupsTable,
		scan:      func(r interface{ Scan(...any) error }) (any, error) { return scanGroup(r) },
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
// creation order, with the cursor of the last one: keyset paging for apps and
// exports, with their roles, and their groups (the directory's and the ones a
// safety rail keeps) if withGroups.
func (s *Store) UsersAfter(ctx context.Context, after int64, limit int, withGroups bool) ([]*User, int64, error) {
	users, next, err := rowsAfter(ctx, s.r, userSelect, "users", after, limit, scanUser)
	if err != nil || len(users) == 0 {
		return users, next, err
	}
	if withGroups {
		if err := fillUserGroupsBetween(ctx, s.r, users, after, next); err != nil {
			return nil, 0, err
		}
	}
	return users, next, fillUserRoles(ctx, s.r, users)
}

// userGroupsBetweenSQL reads the groups of the users in a range of rows: two
// arguments, where fillUserGroups binds one per user.
const userGroupsBetweenSQL = `SELECT m.member_id, g.id, g.display_name FROM members m JOIN groups g ON g.id = m.group_id
	WHERE m.member_id IN (SELECT id FROM users WHERE rowid > ? AND rowid <= ?) ORDER BY g.display_name_key`

// fillUserGroupsBetween sets the Groups and HeldGroups of users, which are
// the users with row numbers in (after, last] when they were read; users
// created in that range since are skipped.
func fillUserGroupsBetween(ctx context.Context, q queryer, users []*User, after, last int64) error {
	byID := make(map[string]*User, len(users))
	ids := make([]any, len(users))
	for i, u := range users {
		byID[u.ID], ids[i] = u, u.ID
		u.Groups, u.HeldGroups = nil, nil
	}
	rows, err := q.QueryContext(ctx, userGroupsBetweenSQL, after, last)
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
		if u := byID[uid]; u != nil {
			u.Groups = append(u.Groups, g)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("user groups: %w", err)
	}
	return fillHeldGroups(ctx, q, byID, ids)
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

// membersAfterSQL pages through the effective members: the directory's, and
// the ones a safety rail keeps (holds.go), both read in member id order from
// their indexes and merged.
const membersAfterSQL = `SELECT m.member_id, m.member_type, coalesce(u.display_name, u.user_name, g.display_name, '')
	FROM (SELECT member_id, member_type FROM members WHERE group_id = ?1 AND member_id > ?2
		UNION ALL
		SELECT member_id, member_type FROM holds WHERE kind = 'member-remove' AND state IN ` + keptStatesSQL + `
			AND resource_id = ?1 AND member_id > ?2
		ORDER BY 1 LIMIT ?3) m
		LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
		LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
	ORDER BY m.member_id`

// MembersAfter returns up to limit members of a group after the member id
// cursor, as apps see them (with the memberships a safety rail keeps).
func (s *Store) MembersAfter(ctx context.Context, groupID, after string, limit int) ([]Member, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM groups WHERE id = ?", groupID).Scan(&n); err != nil || n == 0 {
		if err == nil {
			err = fmt.Errorf("group %q: %w", groupID, ErrNotFound)
		}
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, membersAfterSQL, groupID, after, limit)
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

// Groups and their members: set-based membership changes, member pages and counts.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	// SkippedMembers are the member ids the last write skipped because no
	// user or group has them (filled in by CreateGroup and UpdateGroup).
	SkippedMembers []string
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

// memberChangeKind is what a memberChange does to a group's members.
type memberChangeKind int

const (
	membersAdd memberChangeKind = iota
	membersRemove
	membersRemoveAll
	membersReplace
	membersRemoveMatching
)

// groupColumns are the group attributes a filter can answer from indexed columns.
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

// groupSortColumns are the group attributes sortBy pages through indexes.
var groupSortColumns = map[string]string{
	"id": "groups.id", "displayname": "groups.display_name_key", "externalid": "groups.external_id",
	"meta.created": "groups.created", "meta.lastmodified": "groups.modified",
}

// groupSelect is the column list scanGroup reads; groupByIDSQL reads one
// group; memberCountSQL moves a group's member count by a delta.
const (
	groupSelect    = "SELECT groups.id, groups.attrs, groups.created, groups.modified, groups.version FROM groups"
	groupByIDSQL   = groupSelect + " WHERE groups.id = ?"
	memberCountSQL = "UPDATE groups SET member_count = member_count + ? WHERE id = ?"
)

// scanGroup reads a row of groupSelect, without members.
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

// putGroup inserts or updates g's row (not its members); ErrConflict when its displayName is taken.
// The statements that write a group's row (putGroup).
const (
	insertGroupSQL = `INSERT INTO groups (display_name, display_name_key, external_id, attrs, created,
			modified, version, id) VALUES (?,?,?,?,?,?,?,?)`
	updateGroupSQL = `UPDATE groups SET display_name = ?, display_name_key = ?, external_id = ?, attrs = ?,
			created = ?, modified = ?, version = ? WHERE id = ?`
)

func putGroup(ctx context.Context, tx writeTx, g *Group, insert bool) error {
	raw, err := json.Marshal(g.Attrs)
	if err != nil {
		return fmt.Errorf("encode attributes: %w", err)
	}
	name := stringAttr(g.Attrs, "displayName")
	args := []any{name, foldCase(name), nullString(stringAttr(g.Attrs, "externalId")), string(raw),
		formatTime(g.Created), formatTime(g.Modified), g.Version, g.ID}
	if insert {
		_, err = tx.ExecContext(ctx, insertGroupSQL, args...)
	} else {
		_, err = tx.ExecContext(ctx, updateGroupSQL, args...)
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
// Member ids that no user or group has are skipped and recorded, and listed
// in g.SkippedMembers. It returns ErrConflict if the displayName is taken
// (case-insensitively).
func (s *Store) CreateGroup(ctx context.Context, g *Group, members []string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		g.ID, g.Created, g.Modified, g.Version = newID(), now, now, 1
		if err := putGroup(ctx, s.in(tx), g, true); err != nil {
			return err
		}
		added, _, skipped, err := s.applyMemberChanges(ctx, tx, g.ID, []MemberChange{{Kind: membersAdd, IDs: members}})
		if err != nil {
			return err
		}
		if err := recordSkippedMembers(ctx, tx, g.ID, skipped, now); err != nil {
			return err
		}
		g.SkippedMembers = skipped
		return s.groupEvents(ctx, tx, now, nil, g, added, nil)
	})
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	return nil
}

// GroupByID returns the group, with its members if withMembers, or ErrNotFound.
func (s *Store) GroupByID(ctx context.Context, id string, withMembers bool) (*Group, error) {
	g, err := scanGroup(s.rstmts.QueryRowContext(ctx, groupByIDSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("group %q: %w", id, err)
	}
	if withMembers {
		if err := s.readingMembers(); err != nil {
			return nil, err
		}
		if g.Members, err = groupMembers(ctx, s.r, id); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// groupMembers returns all members of a group with their display names, in
// name order (as StreamGroup and the admin page's member pages).
func groupMembers(ctx context.Context, q queryer, groupID string) ([]Member, error) {
	rows, err := q.QueryContext(ctx, `SELECT m.member_id, m.member_type,
			coalesce(u.display_name, u.user_name, g.display_name, '')
		FROM members m LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
			LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
		WHERE m.group_id = ? ORDER BY m.name_key, m.member_id`, groupID)
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

// memberBatch is how many members StreamGroup reads and hands on at a time:
// enough that a batch costs little per member, few enough that a group of any
// size streams in bounded memory.
const memberBatch = 1000

// Batches of a group's members in name order, read from the members_by_name
// index after the last member of the batch before (?2 its name key, ?3 its
// id); ?4 is the batch size. The first batch, and a batch after a member
// without a name key (they sort first; a NULL compares with nothing), use
// memberBatchAfterNullSQL.
const (
	memberBatchSQL = `SELECT m.member_id, m.member_type, m.name_key, coalesce(u.display_name, u.user_name, g.display_name, '')
	FROM (SELECT member_id, member_type, name_key FROM members WHERE group_id = ?1 AND (name_key, member_id) > (?2, ?3)
			ORDER BY name_key, member_id LIMIT ?4) m
		LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
		LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
	ORDER BY m.name_key, m.member_id`
	memberBatchAfterNullSQL = `SELECT m.member_id, m.member_type, m.name_key, coalesce(u.display_name, u.user_name, g.display_name, '')
	FROM (SELECT member_id, member_type, name_key FROM members WHERE group_id = ?1 AND ?2 IS NULL
			AND (name_key IS NULL AND member_id > ?3 OR name_key IS NOT NULL)
			ORDER BY name_key, member_id LIMIT ?4) m
		LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
		LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
	ORDER BY m.name_key, m.member_id`
)

// StreamGroup reads a group and then its members, memberBatch at a time in
// name order (as groupMembers), all from one snapshot of the database, so
// that the members are those of the version head sees. head gets the group
// before any member is read and says whether to read them; each gets every
// non-empty batch in turn and may keep nothing of it (the slice is reused).
// An error from head or each ends the reading and is returned. It returns
// ErrNotFound if there is no such group.
func (s *Store) StreamGroup(ctx context.Context, id string, head func(*Group) (bool, error), each func([]Member) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("group %q: %w", id, err)
	}
	defer tx.Rollback()
	g, err := scanGroup(tx.QueryRowContext(ctx, groupByIDSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("group %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("group %q: %w", id, err)
	}
	if more, err := head(g); err != nil || !more {
		return err
	}
	var key sql.NullString // of the last member read
	after := ""
	batch := make([]Member, 0, memberBatch)
	for {
		if err := s.readingMembers(); err != nil {
			return err
		}
		query, args := memberBatchAfterNullSQL, []any{id, nil, after, memberBatch}
		if key.Valid {
			query, args[1] = memberBatchSQL, key.String
		}
		if batch, err = readMemberBatch(ctx, tx, batch[:0], &key, query, args); err != nil {
			return fmt.Errorf("group %q members: %w", id, err)
		}
		if len(batch) > 0 {
			after = batch[len(batch)-1].ID
			if err := each(batch); err != nil {
				return err
			}
		}
		if len(batch) < memberBatch {
			return nil
		}
	}
}

// readMemberBatch appends the members a batch query returns to batch and
// leaves the last one's name key in key.
func readMemberBatch(ctx context.Context, tx *sql.Tx, batch []Member, key *sql.NullString, query string, args []any) ([]Member, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.ID, &m.Type, key, &m.Display); err != nil {
			return nil, err
		}
		batch = append(batch, m)
	}
	return batch, rows.Err()
}

// readingMembers is called before every read of a group's members (a whole
// list or a batch): a hook for tests, which count the reads or fail one.
func (s *Store) readingMembers() error {
	if s.memberReadHook != nil {
		return s.memberReadHook()
	}
	return nil
}

// UnknownMembersError reports member ids that cannot be members: a group
// naming itself. (Ids that no user or group has are skipped instead.)
type UnknownMembersError struct{ IDs []string }

// Error lists the unknown member ids.
func (e *UnknownMembersError) Error() string {
	return "no user or group has the id " + strings.Join(e.IDs, ", ")
}

// applyMemberChanges applies membership changes in order, each costing
// O(ids changed) except replace and remove-all. It returns the members added
// and removed, and the ids it skipped because no user or group has them.
//
// Skipping is deliberate: Entra sends ids it cached, so a user deleted here
// stays in its member batches; refusing the whole request would fail every
// co-batched member every cycle, and Entra never re-reads members after a
// success (entra-field.md 7, 8). The skipped ids are recorded instead, and
// forgotten when Entra removes them from the group.
func (s *Store) applyMemberChanges(ctx context.Context, tx *sql.Tx, groupID string, changes []MemberChange) (added, removed, skipped []string, err error) {
	ptx := s.in(tx)
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
	ids := idList
	returning := func(query string, args ...any) (map[string]bool, error) {
		rows, err := ptx.QueryContext(ctx, query, args...)
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
	skippedSet := map[string]bool{}
	add := func(list []string) error {
		unknown, err := addMembers(ctx, tx, groupID, list, ids(list), returning, touch, &delta)
		for _, id := range unknown {
			if !skippedSet[id] {
				skippedSet[id] = true
				skipped = append(skipped, id)
			}
		}
		return err
	}
	for _, c := range changes {
		switch c.Kind {
		case membersRemoveAll:
			err = remove("DELETE FROM members WHERE group_id = ?1 AND ?2 IS NULL RETURNING member_id", nil, nil)
			if err == nil {
				err = forgetSkippedMembers(ctx, tx, groupID, nil)
			}
		case membersReplace:
			err = remove(`DELETE FROM members WHERE group_id = ? AND member_id NOT IN (SELECT value FROM json_each(?))
				RETURNING member_id`, ids(c.IDs), nil)
			if err == nil {
				err = keepSkippedMembers(ctx, tx, groupID, c.IDs)
			}
			if err == nil {
				err = add(c.IDs)
			}
		case membersAdd:
			err = add(c.IDs)
		case membersRemove:
			err = remove(removeMembersSQL, ids(c.IDs), c.IDs)
			if err == nil {
				err = forgetSkippedMembers(ctx, tx, groupID, c.IDs)
			}
		case membersRemoveMatching:
			var matched []string
			if matched, err = matchingMembers(ctx, tx, groupID, c.Filter); err == nil {
				err = remove(removeMembersSQL, ids(matched), matched)
			}
			if err == nil {
				err = forgetSkippedMembers(ctx, tx, groupID, matched)
			}
		}
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if delta != 0 {
		if _, err := ptx.ExecContext(ctx, memberCountSQL, delta, groupID); err != nil {
			return nil, nil, nil, err
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
	return added, removed, skipped, nil
}

// Membership changes, one statement for a whole batch of ids (a JSON array):
// ?1 is the group, ?2 the ids. "WHERE true" lets SQLite parse the upsert after a SELECT.
const (
	removeMembersSQL = `DELETE FROM members WHERE group_id = ? AND member_id IN (SELECT value FROM json_each(?))
		RETURNING member_id`
	addMembersSQL = `INSERT INTO members (group_id, member_id, member_type)
		SELECT ?1, j.value, CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = j.value) THEN 'User' ELSE 'Group' END
		FROM json_each(?2) j WHERE true
		ON CONFLICT DO NOTHING RETURNING member_id`
	// unknownMembersSQL returns the ids no user or group has.
	unknownMembersSQL = `SELECT j.value FROM json_each(?2) j WHERE ?1 IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM users WHERE id = j.value) AND NOT EXISTS (SELECT 1 FROM groups WHERE id = j.value)`
)

// addMembers adds the users or groups among list in one statement and
// returns the ids no user or group has, in the order the client sent them,
// which it skips. A group naming itself is refused.
func addMembers(ctx context.Context, tx *sql.Tx, groupID string, list []string, idsJSON string,
	returning func(string, ...any) (map[string]bool, error), touch func(string, bool, bool), delta *int) (unknownIDs []string, err error) {
	if slices.Contains(list, groupID) {
		return nil, &UnknownMembersError{IDs: []string{groupID + " (a group cannot be a member of itself)"}}
	}
	unknown, err := returning(unknownMembersSQL, groupID, idsJSON)
	if err != nil {
		return nil, err
	}
	known := list
	if len(unknown) > 0 {
		known = make([]string, 0, len(list))
		for _, id := range list {
			switch {
			case !unknown[id]:
				known = append(known, id)
			case !slices.Contains(unknownIDs, id):
				unknownIDs = append(unknownIDs, id)
			}
		}
		idsJSON = idList(known)
	}
	added, err := returning(addMembersSQL, groupID, idsJSON)
	if err != nil {
		return nil, err
	}
	*delta += len(added)
	for _, id := range known {
		touch(id, !added[id], true)
	}
	return unknownIDs, nil
}

// idList is ids as a JSON array for json_each: never null, which json_each
// would read as one NULL row.
func idList(ids []string) string {
	if len(ids) == 0 {
		return "[]"
	}
	raw, _ := json.Marshal(ids)
	return string(raw)
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
// is written when nothing changes. Member ids that no user or group has are
// skipped and recorded, and listed in the returned group's SkippedMembers.
// It returns ErrNotFound, ErrConflict (displayName taken) or an
// *UnknownMembersError (the group named as its own member), and then changes nothing.
func (s *Store) UpdateGroup(ctx context.Context, id string, fn func(g *Group) ([]MemberChange, error)) (*Group, error) {
	var out *Group
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		g, err := scanGroup(s.in(tx).QueryRowContext(ctx, groupByIDSQL, id))
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
		added, removed, skipped, err := s.applyMemberChanges(ctx, tx, id, changes)
		if err != nil {
			return err
		}
		if err := recordSkippedMembers(ctx, tx, id, skipped, now); err != nil {
			return err
		}
		g.SkippedMembers = skipped
		before := &Group{ID: g.ID, Attrs: beforeAttrs}
		if after, _ := json.Marshal(g.Attrs); len(added)+len(removed) > 0 || string(after) != beforeJSON {
			g.Modified, g.Version = now, g.Version+1
			if err := putGroup(ctx, s.in(tx), g, false); err != nil {
				return err
			}
			// The SCIM view took every change; apps get the ones the safety rails let through.
			added, removed, err := s.railMemberChanges(ctx, tx, now, g, added, removed)
			if err != nil {
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
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
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
		// The users under the group, while its memberships are there to say who.
		affected, err := usersUnder(ctx, s.in(tx), id, []string{id})
		if err != nil {
			return err
		}
		if err := s.countGroupDelete(ctx, tx, now, id); err != nil {
			return err
		}
		if err := s.removeMemberEverywhere(ctx, tx, id, now); err != nil {
			return err
		}
		if err := mootGroupHolds(ctx, tx, now, id); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, "DELETE FROM groups WHERE id = ?", id); err != nil {
			return err
		}
		if err := s.emit(ctx, tx, now, evGroupDeleted, "Group", id, map[string]any{"id": id}); err != nil {
			return err
		}
		_, err = s.updateRoles(ctx, tx, now, affected)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	return nil
}

// groupMembersPageSQL reads a page of members from the members_by_name index
// (skipping OFFSET entries there) and looks up names for that page's rows only.
const groupMembersPageSQL = `SELECT m.member_id, m.member_type, coalesce(u.display_name, u.user_name, g.display_name, '')
	FROM (SELECT member_id, member_type, name_key FROM members WHERE group_id = ?
			ORDER BY name_key, member_id LIMIT ? OFFSET ?) m
		LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
		LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
	ORDER BY m.name_key, m.member_id`

// GroupMembersPage returns one page of a group's members, ordered by display
// name (else userName), case-insensitively, and the group's member count.
func (s *Store) GroupMembersPage(ctx context.Context, groupID string, offset, limit int) ([]Member, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT member_count FROM groups WHERE id = ?", groupID).Scan(&total); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, fmt.Errorf("group members: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, groupMembersPageSQL, groupID, limit, offset)
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

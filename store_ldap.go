// The LDAP interface's reads: a search filter's indexable part as SQL over
// the users and groups tables, keyset pages in rowid order, and the names
// that entries refer to each other by.

package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ldapCondKind is what one term of an LDAP prefilter tests.
type ldapCondKind int

const (
	condAll              ldapCondKind = iota // no constraint
	condNone                                 // nothing matches
	condAnd                                  // every kid
	condOr                                   // some kid
	condUserName                             // users.user_name_key = value
	condUserNameRange                        // value <= users.user_name_key < upper (a prefix)
	condMail                                 // an email's value_key = value
	condMailRange                            // an email's value_key in [value, upper)
	condDisplayName                          // users.display_name_key = value
	condDisplayNameRange                     // users.display_name_key in [value, upper)
	condUserID                               // users.id = value
	condMemberOf                             // the user is an effective member of the group with id value
	condGroupName                            // groups.display_name_key = value
	condGroupNameRange                       // groups.display_name_key in [value, upper)
	condGroupID                              // groups.id = value
	condHasMember                            // the group's effective members include id value
)

// ldapCond is the part of an LDAP filter that indexes can answer: a
// superset of the entries the filter matches, which the search then
// evaluates exactly on the effective entries.
type ldapCond struct {
	kind         ldapCondKind
	value, upper string
	kids         []ldapCond
}

// ldapCondSQL renders c as a WHERE condition; all reports that it does not constrain.
func ldapCondSQL(c ldapCond) (where string, args []any, all bool) {
	switch c.kind {
	case condAll:
		return "", nil, true
	case condNone:
		return "0", nil, false
	case condAnd, condOr:
		var parts []string
		for _, k := range c.kids {
			w, a, kAll := ldapCondSQL(k)
			if kAll {
				if c.kind == condOr {
					return "", nil, true
				}
				continue
			}
			parts, args = append(parts, "("+w+")"), append(args, a...)
		}
		if len(parts) == 0 {
			return "", nil, c.kind == condAnd
		}
		op := " AND "
		if c.kind == condOr {
			op = " OR "
		}
		return strings.Join(parts, op), args, false
	}
	one := map[ldapCondKind]string{
		condUserName:    "users.user_name_key = ?",
		condMail:        "users.id IN (SELECT user_id FROM user_emails WHERE value_key = ?)",
		condDisplayName: "users.display_name_key = ?",
		condUserID:      "users.id = ?",
		condMemberOf:    "users.id IN (SELECT member_id FROM effective_members WHERE group_id = ?)",
		condGroupName:   "groups.display_name_key = ?",
		condGroupID:     "groups.id = ?",
		condHasMember:   "groups.id IN (SELECT group_id FROM effective_members WHERE member_id = ?)",
	}
	if sql, ok := one[c.kind]; ok {
		return sql, []any{c.value}, false
	}
	ranged := map[ldapCondKind]string{
		condUserNameRange:    "users.user_name_key >= ? AND users.user_name_key < ?",
		condMailRange:        "users.id IN (SELECT user_id FROM user_emails WHERE value_key >= ? AND value_key < ?)",
		condDisplayNameRange: "users.display_name_key >= ? AND users.display_name_key < ?",
		condGroupNameRange:   "groups.display_name_key >= ? AND groups.display_name_key < ?",
	}
	return ranged[c.kind], []any{c.value, c.upper}, false
}

// ldapUsersSQL is the page query of the users that c selects after a rowid.
// The order by rowid+0 keeps SQLite from walking the whole table in rowid
// order to skip a sort: a constrained search is driven by its index and
// sorts the few rows it finds.
func ldapUsersSQL(c ldapCond) (string, []any) {
	where, args, all := ldapCondSQL(c)
	sel := strings.Replace(userSelect, "SELECT ", "SELECT users.rowid, ", 1)
	if all {
		return sel + " WHERE users.rowid > ? ORDER BY users.rowid LIMIT ?", nil
	}
	return sel + " WHERE users.rowid > ? AND (" + where + ") ORDER BY users.rowid+0 LIMIT ?", args
}

// ldapOverriddenUsersSQL pages through the users with local overrides, whose
// effective values the columns may not show: a search reads them all.
const ldapOverriddenUsersSQL = "SELECT users.rowid, users.id, users.attrs, users.created, users.modified, users.version, users.kind, users.overrides " +
	"FROM users INDEXED BY users_overridden WHERE users.overrides <> '{}' AND users.rowid > ? ORDER BY users.rowid LIMIT ?"

// LDAPUsers returns up to limit users after the rowid cursor, in rowid
// order, that c may select, with their groups (those a safety rail keeps
// included), and the cursor of the last one. Users with local overrides are
// always included: c tests the directory's values.
func (s *Store) LDAPUsers(ctx context.Context, c ldapCond, after int64, limit int) ([]*User, []int64, error) {
	query, args := ldapUsersSQL(c)
	type row struct {
		rowid int64
		u     *User
	}
	read := func(query string, args ...any) ([]row, error) {
		rows, err := s.r.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("ldap users: %w", err)
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if r.u, err = scanUser(scanPrefix{rows, &r.rowid}); err != nil {
				return nil, fmt.Errorf("ldap users: %w", err)
			}
			out = append(out, r)
		}
		return out, rows.Err()
	}
	found, err := read(query, slices.Concat([]any{after}, args, []any{limit})...)
	if err != nil {
		return nil, nil, err
	}
	if _, _, all := ldapCondSQL(c); !all {
		overridden, err := read(ldapOverriddenUsersSQL, after, limit)
		if err != nil {
			return nil, nil, err
		}
		found = append(found, overridden...)
		slices.SortFunc(found, func(a, b row) int { return cmp.Compare(a.rowid, b.rowid) })
		found = slices.CompactFunc(found, func(a, b row) bool { return a.rowid == b.rowid })
		found = found[:min(len(found), limit)]
	}
	users := make([]*User, len(found))
	rowids := make([]int64, len(found))
	for i, r := range found {
		users[i], rowids[i] = r.u, r.rowid
	}
	if err := fillUserGroups(ctx, s.r, users); err != nil {
		return nil, nil, err
	}
	return users, rowids, nil
}

// LDAPGroups returns up to limit groups after the rowid cursor that c
// selects, with their effective members, and their rowid cursors.
func (s *Store) LDAPGroups(ctx context.Context, c ldapCond, after int64, limit int) ([]*Group, []int64, error) {
	where, args, all := ldapCondSQL(c)
	query := strings.Replace(groupSelect, "SELECT ", "SELECT groups.rowid, ", 1) + " WHERE groups.rowid > ?"
	order := " ORDER BY groups.rowid LIMIT ?"
	if !all {
		query += " AND (" + where + ")"
		order = " ORDER BY groups.rowid+0 LIMIT ?"
	}
	groups, rowids, err := func() ([]*Group, []int64, error) {
		rows, err := s.r.QueryContext(ctx, query+order, slices.Concat([]any{after}, args, []any{limit})...)
		if err != nil {
			return nil, nil, fmt.Errorf("ldap groups: %w", err)
		}
		defer rows.Close()
		var out []*Group
		var rowids []int64
		for rows.Next() {
			var rowid int64
			g, err := scanGroup(scanPrefix{rows, &rowid})
			if err != nil {
				return nil, nil, fmt.Errorf("ldap groups: %w", err)
			}
			out, rowids = append(out, g), append(rowids, rowid)
		}
		return out, rowids, rows.Err()
	}()
	if err != nil || len(groups) == 0 {
		return groups, rowids, err
	}
	return groups, rowids, s.fillLDAPMembers(ctx, groups)
}

// ldapMembersSQL reads the effective members of n groups, with what their
// entries are named by: a user's userName (and what may override it), a
// group's displayName.
func ldapMembersSQL(n int) string {
	return `SELECT m.group_id, m.member_id, m.member_type,
			coalesce(u.user_name, g.display_name, ''), coalesce(u.overrides, '{}'), coalesce(u.active, 1), coalesce(u.kind, '')
		FROM effective_members m
		LEFT JOIN users u ON m.member_type = 'User' AND u.id = m.member_id
		LEFT JOIN groups g ON m.member_type = 'Group' AND g.id = m.member_id
		WHERE m.group_id IN (?` + strings.Repeat(",?", n-1) + `)
		ORDER BY m.group_id, m.member_id`
}

// fillLDAPMembers sets each group's Members (Display is the name the
// member's DN uses: a user's effective userName) and LDAP activity.
func (s *Store) fillLDAPMembers(ctx context.Context, groups []*Group) error {
	p, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	byID := make(map[string]*Group, len(groups))
	args := make([]any, len(groups))
	for i, g := range groups {
		byID[g.ID], args[i] = g, g.ID
		g.Members = nil
	}
	rows, err := s.r.QueryContext(ctx, ldapMembersSQL(len(groups)), args...)
	if err != nil {
		return fmt.Errorf("ldap members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var gid, kind, overrides string
		var m Member
		var active bool
		if err := rows.Scan(&gid, &m.ID, &m.Type, &m.Display, &overrides, &active, &kind); err != nil {
			return fmt.Errorf("ldap members: %w", err)
		}
		if m.Type == memberUser {
			m.Display, active = effectiveLDAPUser(m.Display, active, overrides, p)
			switch {
			case kind == accountDeprovisioned:
				m.Type = memberDeprovisionedUser
			case !active:
				m.Type = memberDisabledUser
			}
		}
		byID[gid].Members = append(byID[gid].Members, m)
	}
	return rows.Err()
}

// Member types of the users the LDAP tree may not show: a deprovisioned
// user never, a disabled one only with -ldap-show-disabled.
const (
	memberDisabledUser      = "User (disabled)"
	memberDeprovisionedUser = "User (deprovisioned)"
)

// effectiveLDAPUser is a user's effective userName and active, from the
// columns and the overrides.
func effectiveLDAPUser(userName string, active bool, overrides string, p Policy) (string, bool) {
	if overrides != "{}" && overrides != "" {
		var o map[string]Override
		if json.Unmarshal([]byte(overrides), &o) == nil {
			eff := Effective(map[string]any{"userName": userName, "active": active}, o, p)
			userName, _ = eff["userName"].(string)
			active, _ = eff["active"].(bool)
		}
	}
	return userName, active
}

// LDAPUserNames returns the effective userNames of the users with ids (a
// page's managers), by id; ids not found are left out.
func (s *Store) LDAPUserNames(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	p, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.r.QueryContext(ctx, "SELECT id, user_name, coalesce(active, 1), overrides FROM users WHERE id IN (?"+
		strings.Repeat(",?", len(ids)-1)+")", args...)
	if err != nil {
		return nil, fmt.Errorf("ldap managers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name, overrides string
		var active bool
		if err := rows.Scan(&id, &name, &active, &overrides); err != nil {
			return nil, fmt.Errorf("ldap managers: %w", err)
		}
		out[id], _ = effectiveLDAPUser(name, active, overrides, p)
	}
	return out, rows.Err()
}

// LDAPUserID returns the id of the user whose directory userName is name,
// or "" if none is.
func (s *Store) LDAPUserID(ctx context.Context, name string) (string, error) {
	return s.ldapID(ctx, "SELECT id FROM users WHERE user_name_key = ?", userNameKey(name))
}

// LDAPGroupID returns the id of the group with displayName name, or "".
func (s *Store) LDAPGroupID(ctx context.Context, name string) (string, error) {
	return s.ldapID(ctx, "SELECT id FROM groups WHERE display_name_key = ?", foldCase(name))
}

func (s *Store) ldapID(ctx context.Context, query, key string) (string, error) {
	var id string
	err := s.r.QueryRowContext(ctx, query, key).Scan(&id)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return id, err
}

// LDAPFirstUserName returns the userName of the oldest user, whose domain
// names the LDAP tree when no base DN is configured; "" without users.
func (s *Store) LDAPFirstUserName(ctx context.Context) (string, error) {
	var name string
	err := s.r.QueryRowContext(ctx, "SELECT user_name FROM users ORDER BY rowid LIMIT 1").Scan(&name)
	if err == sql.ErrNoRows {
		return "", nil
	}
	return name, err
}

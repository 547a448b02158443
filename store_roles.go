// Roles: named roles, the rules that grant them (group membership, direct or
// nested; an Entra app-role assignment), manual grants, and each user's
// effective roles, kept current in the transaction of every change.

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// rolesMigration is the migration that creates the roles' tables (rolesSchema)
// and indexes the app roles users already have, which only Go can parse.
const rolesMigration = "-- Go: Store.createRoles creates the roles tables and indexes the app roles of existing users"

// rolesSchema: roles are identified by name (what apps see; the feed's
// before/after lists name them, also once a role is gone). A group rule keeps
// its group id when the group is deleted, so the Roles page can say that it
// grants nothing any more rather than the rule vanishing. user_app_roles
// holds each user's app-role keys (appRoleKeys), kept by putUser, so that
// rules find their users through an index. user_roles holds every user's
// effective roles: the state a change is compared with to emit
// user.roles_changed, and what the API and pages read.
const rolesSchema = `CREATE TABLE roles (
		name TEXT PRIMARY KEY,
		name_key TEXT NOT NULL UNIQUE,
		description TEXT NOT NULL,
		created TEXT NOT NULL,
		created_by TEXT NOT NULL
	) STRICT;
	CREATE TABLE role_rules (
		id INTEGER PRIMARY KEY,
		role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
		group_id TEXT,
		nested INTEGER NOT NULL DEFAULT 0,
		app_role TEXT,
		app_role_key TEXT,
		created TEXT NOT NULL,
		created_by TEXT NOT NULL,
		CHECK ((group_id IS NULL) <> (app_role_key IS NULL))
	) STRICT;
	CREATE UNIQUE INDEX role_rules_group ON role_rules(group_id, role);
	CREATE UNIQUE INDEX role_rules_app_role ON role_rules(app_role_key, role);
	CREATE INDEX role_rules_role ON role_rules(role);
	CREATE TABLE role_grants (
		user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
		granted TEXT NOT NULL,
		granted_by TEXT NOT NULL,
		PRIMARY KEY (user_id, role)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX role_grants_role ON role_grants(role);
	CREATE TABLE user_app_roles (
		user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		key TEXT NOT NULL,
		PRIMARY KEY (user_id, key)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX user_app_roles_key ON user_app_roles(key);
	CREATE TABLE user_roles (
		user_id TEXT NOT NULL,
		role TEXT NOT NULL,
		PRIMARY KEY (user_id, role)
	) STRICT, WITHOUT ROWID;
	CREATE INDEX user_roles_role ON user_roles(role);`

// createRoles is the roles migration: the tables, then the app-role keys of
// the users that have roles. No role exists yet, so user_roles starts empty.
func (s *Store) createRoles(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, rolesSchema); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, json_object('roles', json(attrs->'$.roles')) FROM users
		WHERE json_type(attrs, '$.roles') = 'array'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	keys := map[string][]string{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return err
		}
		attrs, err := decodeAttrs(raw)
		if err != nil {
			return err
		}
		keys[id] = appRoleKeys(attrs)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for id, k := range keys {
		if err := insertAppRoleKeys(ctx, tx, id, k); err != nil {
			return err
		}
	}
	return nil
}

// putAppRoleKeys writes the app-role keys of a user being written by putUser.
func putAppRoleKeys(ctx context.Context, tx writeTx, u *User, insert bool) error {
	if !insert {
		if _, err := tx.ExecContext(ctx, "DELETE FROM user_app_roles WHERE user_id = ?", u.ID); err != nil {
			return err
		}
	}
	return insertAppRoleKeys(ctx, tx, u.ID, appRoleKeys(u.Attrs))
}

func insertAppRoleKeys(ctx context.Context, tx writeTx, userID string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO user_app_roles (user_id, key) SELECT ?, value FROM json_each(?) WHERE true
		ON CONFLICT DO NOTHING`, userID, idList(keys))
	return err
}

// Role is a role named in scimbox, with the rules that grant it.
type Role struct {
	Name, Description string
	Created           time.Time
	CreatedBy         string
	Rules             []RoleRule
	Holders           int // users who hold it now
}

// RoleRule grants a role to the members of a group, or to the users Entra
// assigned an app role. Exactly one of GroupID and AppRole is set.
type RoleRule struct {
	ID      int64
	Role    string
	GroupID string // the group whose members hold the role
	// Nested extends a group rule to the members of the groups nested in the
	// group, at any depth; without it only direct members hold the role.
	Nested bool
	// AppRole is matched, case-insensitively, against the value, display
	// name and id of each app role Entra assigned a user (appRoleKeys).
	AppRole   string
	Created   time.Time
	CreatedBy string
}

// Where a user's role comes from (RoleSource.Kind).
const (
	roleByGroup   = "group"
	roleByAppRole = "app role"
	roleByGrant   = "grant"
)

// RoleSource is one reason a user holds a role.
type RoleSource struct {
	Role    string
	Kind    string // roleByGroup, roleByAppRole or roleByGrant
	GroupID string // roleByGroup: the rule's group
	Direct  bool   // roleByGroup: the user is a direct member of it (else through a nested group)
	Detail  string // roleByAppRole: the rule's app role; roleByGrant: who granted it
	At      time.Time
}

// keptMembershipSQL selects, from holds h, the memberships the directory
// removed that a safety rail keeps in the effective view (the holds_kept_*
// partial indexes have the same condition, so lookups by member or group use
// them). Roles follow the effective memberships (effective_members): the
// directory's plus these, so a held removal takes no role until approved and
// a rejected one never does. The walks below join members and these holds
// each in a recursive step of its own, rather than the effective_members
// view, so that every step stays one index lookup.
const keptMembershipSQL = "h.kind = 'member-remove' AND h.state IN " + keptStatesSQL

// roleSourcesSQL lists every reason each user of ?1 (a JSON array of ids)
// holds a role. It is the one definition of effective roles: refreshRoles
// stores what it gives. Effective group memberships (keptMembershipSQL) are
// followed upward with a recursive CTE, each step one lookup in
// members_member or holds_kept_memberships; UNION (not UNION ALL) ends the
// walk in a cycle of nested groups. CROSS JOIN keeps the given users
// driving every join, so the cost is that of their memberships, whatever the
// size of members or of the rules (SQLite, without statistics, would rather
// scan a small-looking table). Accounts the directory deleted and scimbox
// keeps hidden (deprovisioned) hold no role.
const roleSourcesSQL = `WITH RECURSIVE
	cand(user_id) AS (
		SELECT users.id FROM json_each(?1) j CROSS JOIN users ON users.id = j.value WHERE users.kind <> 'deprovisioned'),
	up(user_id, group_id, direct) AS (
		SELECT m.member_id, m.group_id, 1 FROM cand CROSS JOIN members m ON m.member_id = cand.user_id
		UNION
		SELECT h.member_id, h.resource_id, 1 FROM cand CROSS JOIN holds h ON h.member_id = cand.user_id AND ` + keptMembershipSQL + `
		UNION
		SELECT up.user_id, m.group_id, 0 FROM up CROSS JOIN members m ON m.member_id = up.group_id
		UNION
		SELECT up.user_id, h.resource_id, 0 FROM up CROSS JOIN holds h ON h.member_id = up.group_id AND ` + keptMembershipSQL + `)
	SELECT up.user_id, r.role, 'group', r.group_id, up.direct, '', '' FROM up CROSS JOIN role_rules r ON r.group_id = up.group_id
		WHERE r.nested = 1 OR up.direct = 1
	UNION ALL
	SELECT cand.user_id, r.role, 'app role', '', 0, r.app_role, '' FROM cand
		CROSS JOIN user_app_roles a ON a.user_id = cand.user_id CROSS JOIN role_rules r ON r.app_role_key = a.key
	UNION ALL
	SELECT cand.user_id, g.role, 'grant', '', 0, g.granted_by, g.granted FROM cand CROSS JOIN role_grants g ON g.user_id = cand.user_id`

// usersUnderSQL lists the users that a membership change of the ids in ?1
// (a JSON array of users and groups) can give or take roles: the users
// themselves and the users in each group, directly or through groups nested
// in it, by effective membership. Only what a member belongs to changes,
// never what is below it, so these are all the users whose upward walk
// (roleSourcesSQL) can differ. CROSS JOIN as in roleSourcesSQL: without it
// SQLite scans members_member.
const usersUnderSQL = `WITH RECURSIVE down(id) AS (
		SELECT value FROM json_each(?1)
		UNION
		SELECT m.member_id FROM down CROSS JOIN members m ON m.group_id = down.id AND m.member_type = 'Group'
		UNION
		SELECT h.member_id FROM down CROSS JOIN holds h ON h.resource_id = down.id AND h.member_type = 'Group' AND ` + keptMembershipSQL + `)
	SELECT value FROM json_each(?1)
	UNION
	SELECT m.member_id FROM down CROSS JOIN members m ON m.group_id = down.id AND m.member_type = 'User'
	UNION
	SELECT h.member_id FROM down CROSS JOIN holds h ON h.resource_id = down.id AND h.member_type = 'User' AND ` + keptMembershipSQL

// storedRolesSQL reads the effective roles of the users in ?1 (a JSON array of ids).
const storedRolesSQL = `SELECT user_id, role FROM user_roles WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id, role`

// rolesInUseSQL says whether any role is named.
const rolesInUseSQL = "SELECT EXISTS (SELECT 1 FROM roles)"

// roleHoldersSQL lists the users who hold a role.
const roleHoldersSQL = `SELECT user_id FROM user_roles WHERE role = ?`

// appRoleUsersSQL lists the users Entra assigned an app role with a key.
const appRoleUsersSQL = `SELECT user_id FROM user_app_roles WHERE key = ?`

// groupUsersSQL lists the users who are direct members of a group (effective memberships).
const groupUsersSQL = `SELECT member_id FROM members WHERE group_id = ?1 AND member_type = 'User'
	UNION
	SELECT h.member_id FROM holds h WHERE h.resource_id = ?1 AND h.member_type = 'User' AND ` + keptMembershipSQL

// roleChange is one user's effective roles before and after a change.
type roleChange struct{ Before, After []string }

// roleChanges are the effective roles of the users a change concerned, by id.
type roleChanges map[string]roleChange

// changed returns the ids of the users whose roles differ, sorted.
func (rc roleChanges) changed() []string {
	var ids []string
	for id, c := range rc {
		if !slices.Equal(c.Before, c.After) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// rolesInUse reports whether any role exists. Without one no user can gain a
// role, and writes skip the work of roles.
func rolesInUse(ctx context.Context, q queryer) (bool, error) {
	var inUse bool
	err := q.QueryRowContext(ctx, rolesInUseSQL).Scan(&inUse)
	return inUse, err
}

// queryStrings runs a query whose rows are one string each.
func queryStrings(ctx context.Context, q queryer, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// readUserRoles reads the stored effective roles of the users in idsJSON, each sorted.
func readUserRoles(ctx context.Context, q queryer, idsJSON string) (map[string][]string, error) {
	rows, err := q.QueryContext(ctx, storedRolesSQL, idsJSON)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, role string
		if err := rows.Scan(&id, &role); err != nil {
			return nil, err
		}
		out[id] = append(out[id], role)
	}
	return out, rows.Err()
}

// roleSources returns every reason each user of idsJSON holds a role, by
// user id, one per role and kind (a direct membership before a nested one).
func roleSources(ctx context.Context, q queryer, idsJSON string) (map[string][]RoleSource, error) {
	rows, err := q.QueryContext(ctx, roleSourcesSQL, idsJSON)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]RoleSource{}
	for rows.Next() {
		var id, at string
		var src RoleSource
		if err := rows.Scan(&id, &src.Role, &src.Kind, &src.GroupID, &src.Direct, &src.Detail, &at); err != nil {
			return nil, err
		}
		src.At = parseTime(at)
		i := slices.IndexFunc(out[id], func(o RoleSource) bool {
			return o.Role == src.Role && o.Kind == src.Kind && o.GroupID == src.GroupID && o.Detail == src.Detail
		})
		switch {
		case i < 0:
			out[id] = append(out[id], src)
		case src.Direct:
			out[id][i].Direct = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, list := range out {
		slices.SortStableFunc(list, func(a, b RoleSource) int { return strings.Compare(a.Role, b.Role) })
	}
	return out, nil
}

// refreshRoles recomputes the effective roles of the users with the given ids
// (roleSourcesSQL), stores them and returns, for each user who holds or held
// a role, the roles before and after. A user who no longer exists ends with
// none. The cost is that of the users given, never of all users.
func refreshRoles(ctx context.Context, tx writeTx, ids []string) (roleChanges, error) {
	out := roleChanges{}
	if len(ids) == 0 {
		return out, nil
	}
	idsJSON := idList(ids)
	before, err := readUserRoles(ctx, tx, idsJSON)
	if err != nil {
		return nil, fmt.Errorf("roles before: %w", err)
	}
	if len(before) == 0 { // nothing to take: with no role to give either, nothing to do
		if inUse, err := rolesInUse(ctx, tx); err != nil || !inUse {
			return out, err
		}
	}
	sources, err := roleSources(ctx, tx, idsJSON)
	if err != nil {
		return nil, fmt.Errorf("roles after: %w", err)
	}
	var gone, gained [][2]string
	for id, list := range sources {
		var after []string
		for _, src := range list {
			after = append(after, src.Role)
		}
		slices.Sort(after)
		out[id] = roleChange{After: slices.Compact(after)}
	}
	for id, b := range before {
		c := out[id]
		c.Before = b
		out[id] = c
	}
	for id, c := range out {
		for _, r := range c.Before {
			if !slices.Contains(c.After, r) {
				gone = append(gone, [2]string{id, r})
			}
		}
		for _, r := range c.After {
			if !slices.Contains(c.Before, r) {
				gained = append(gained, [2]string{id, r})
			}
		}
	}
	if len(gone) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_roles WHERE (user_id, role) IN
			(SELECT value->>0, value->>1 FROM json_each(?))`, pairList(gone)); err != nil {
			return nil, fmt.Errorf("store roles: %w", err)
		}
	}
	if len(gained) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO user_roles (user_id, role)
			SELECT value->>0, value->>1 FROM json_each(?) WHERE true ON CONFLICT DO NOTHING`, pairList(gained)); err != nil {
			return nil, fmt.Errorf("store roles: %w", err)
		}
	}
	return out, nil
}

// pairList is pairs as a JSON array of two-element arrays, for json_each.
func pairList(pairs [][2]string) string {
	list := make([]string, len(pairs))
	for i, p := range pairs {
		list[i] = idList(p[:])
	}
	return "[" + strings.Join(list, ",") + "]"
}

// refreshUserRoles recomputes the roles of the user a write concerns (before
// nil: a creation; after nil: a deletion) and sets Roles on both sides, so
// that the events of the write show the roles before and after it.
func refreshUserRoles(ctx context.Context, tx writeTx, before, after *User) (roleChanges, error) {
	id := ""
	if after != nil {
		id = after.ID
	} else {
		id = before.ID
	}
	rc, err := refreshRoles(ctx, tx, []string{id})
	if err != nil {
		return nil, err
	}
	if before != nil {
		before.Roles = rc[id].Before
	}
	if after != nil {
		after.Roles = rc[id].After
	}
	return rc, nil
}

// updateRoles refreshes the roles of the users with the given ids and
// records user.roles_changed for each whose roles changed. It returns how
// many changed.
func (s *Store) updateRoles(ctx context.Context, tx *sql.Tx, now time.Time, ids []string) (int, error) {
	rc, err := refreshRoles(ctx, tx, ids)
	if err != nil {
		return 0, err
	}
	return len(rc.changed()), s.roleEvents(ctx, tx, now, rc)
}

// groupGrantsSQL says whether a rule names the group ?1 or a group it is
// nested in (by effective membership), at any depth: only then can a change
// of its members change roles.
const groupGrantsSQL = `WITH RECURSIVE up(id) AS (
		SELECT ?1
		UNION
		SELECT m.group_id FROM up CROSS JOIN members m ON m.member_id = up.id
		UNION
		SELECT h.resource_id FROM up CROSS JOIN holds h ON h.member_id = up.id AND ` + keptMembershipSQL + `)
	SELECT EXISTS (SELECT 1 FROM up CROSS JOIN role_rules r ON r.group_id = up.id)`

// usersUnder returns the users whose roles a change of the group's members
// (the users and groups in members, added or removed) may change
// (usersUnderSQL): none unless a rule names the group or a group above it,
// so that Entra's churn in groups no rule names costs one lookup.
func usersUnder(ctx context.Context, tx queryer, groupID string, members []string) ([]string, error) {
	if len(members) == 0 {
		return nil, nil
	}
	var grants bool
	if err := tx.QueryRowContext(ctx, groupGrantsSQL, groupID).Scan(&grants); err != nil || !grants {
		return nil, err
	}
	users, err := queryStrings(ctx, tx, usersUnderSQL, idList(members))
	if err != nil {
		return nil, fmt.Errorf("users under %d members: %w", len(members), err)
	}
	return users, nil
}

// membershipRoles updates the roles of the users under the members a change
// of a group added or removed (usersUnder), with their events.
func (s *Store) membershipRoles(ctx context.Context, tx *sql.Tx, now time.Time, groupID string, members []string) error {
	users, err := usersUnder(ctx, s.in(tx), groupID, members)
	if err == nil {
		_, err = s.updateRoles(ctx, tx, now, users)
	}
	return err
}

// fillUserRoles sets the Roles of each user with one query.
func fillUserRoles(ctx context.Context, q queryer, users []*User) error {
	if len(users) == 0 {
		return nil
	}
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	roles, err := readUserRoles(ctx, q, idList(ids))
	if err != nil {
		return fmt.Errorf("user roles: %w", err)
	}
	for _, u := range users {
		u.Roles = roles[u.ID]
	}
	return nil
}

// UserRoleSources returns why the user holds each of its roles, by role name.
func (s *Store) UserRoleSources(ctx context.Context, userID string) ([]RoleSource, error) {
	sources, err := roleSources(ctx, s.r, idList([]string{userID}))
	if err != nil {
		return nil, fmt.Errorf("role sources of %q: %w", userID, err)
	}
	return sources[userID], nil
}

// Roles returns every role, by name case-insensitively, with its rules and
// how many users hold it.
func (s *Store) Roles(ctx context.Context) ([]Role, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, description, created, created_by,
		(SELECT count(*) FROM user_roles WHERE role = roles.name) FROM roles ORDER BY name_key`)
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	defer rows.Close()
	var roles []Role
	for rows.Next() {
		var r Role
		var created string
		if err := rows.Scan(&r.Name, &r.Description, &created, &r.CreatedBy, &r.Holders); err != nil {
			return nil, fmt.Errorf("roles: %w", err)
		}
		r.Created = parseTime(created)
		roles = append(roles, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	rows.Close()
	rules, err := s.r.QueryContext(ctx, `SELECT id, role, coalesce(group_id, ''), nested, coalesce(app_role, ''), created, created_by
		FROM role_rules ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("role rules: %w", err)
	}
	defer rules.Close()
	for rules.Next() {
		var rr RoleRule
		var created string
		if err := rules.Scan(&rr.ID, &rr.Role, &rr.GroupID, &rr.Nested, &rr.AppRole, &created, &rr.CreatedBy); err != nil {
			return nil, fmt.Errorf("role rules: %w", err)
		}
		rr.Created = parseTime(created)
		if i := slices.IndexFunc(roles, func(r Role) bool { return r.Name == rr.Role }); i >= 0 {
			roles[i].Rules = append(roles[i].Rules, rr)
		}
	}
	return roles, rules.Err()
}

// maxRoleNameLen bounds a role's name, which every event and export repeats.
const maxRoleNameLen = 100

// CreateRole names a new role. It returns ErrInvalid for an empty or
// overlong name, or one with an invisible character, and ErrConflict when a
// role has the same name compared case-insensitively.
func (s *Store) CreateRole(ctx context.Context, name, description, by string) error {
	name, description = strings.TrimSpace(name), strings.TrimSpace(description)
	switch {
	case name == "":
		return fmt.Errorf("%w: a role needs a name", ErrInvalid)
	case utf8.RuneCountInString(name) > maxRoleNameLen:
		return fmt.Errorf("%w: a role's name has at most %d characters", ErrInvalid, maxRoleNameLen)
	case strings.IndexFunc(name, invisible) >= 0:
		return fmt.Errorf("%w: the name holds an invisible character (a zero-width space, a direction mark or a control character)", ErrInvalid)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO roles (name, name_key, description, created, created_by) VALUES (?, ?, ?, ?, ?)`,
			name, foldCase(name), description, formatTime(now), by)
		if err = translate(err); errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w: a role named %q already exists", ErrConflict, name)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create role: %w", err)
	}
	return nil
}

// roleNameIn returns the name of the role called name (compared
// case-insensitively) or ErrNotFound.
func roleNameIn(ctx context.Context, q queryer, name string) (string, error) {
	var stored string
	err := q.QueryRowContext(ctx, "SELECT name FROM roles WHERE name_key = ?", foldCase(strings.TrimSpace(name))).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("role %q: %w", name, ErrNotFound)
	}
	return stored, err
}

// DeleteRole deletes a role with its rules and grants; its holders lose it,
// with an event each. It returns how many users lost it, or ErrNotFound.
func (s *Store) DeleteRole(ctx context.Context, name string) (int, error) {
	n := 0
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		role, err := roleNameIn(ctx, tx, name)
		if err != nil {
			return err
		}
		holders, err := queryStrings(ctx, tx, roleHoldersSQL, role)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM roles WHERE name = ?", role); err != nil {
			return err
		}
		n, err = s.updateRoles(ctx, tx, now, holders)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete role: %w", err)
	}
	return n, nil
}

// AddRoleRule adds a rule (GroupID or AppRole set) to the role rule.Role
// and gives the role to the users it matches, with an event each. It returns
// how many users gained the role; ErrNotFound for an unknown role or group,
// ErrConflict when the same rule exists, ErrInvalid for an empty app role.
func (s *Store) AddRoleRule(ctx context.Context, rule RoleRule, by string) (int, error) {
	rule.AppRole = strings.TrimSpace(rule.AppRole)
	if (rule.GroupID == "") == (rule.AppRole == "") {
		return 0, fmt.Errorf("add role rule: %w: a rule names either a group or an app role", ErrInvalid)
	}
	n := 0
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		role, err := roleNameIn(ctx, tx, rule.Role)
		if err != nil {
			return err
		}
		var matched []string
		if rule.GroupID != "" {
			var exists bool
			if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM groups WHERE id = ?)", rule.GroupID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("group %q: %w", rule.GroupID, ErrNotFound)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO role_rules (role, group_id, nested, created, created_by) VALUES (?, ?, ?, ?, ?)`,
				role, rule.GroupID, rule.Nested, formatTime(now), by)
			if err == nil && rule.Nested {
				matched, err = queryStrings(ctx, tx, usersUnderSQL, idList([]string{rule.GroupID}))
			} else if err == nil {
				matched, err = queryStrings(ctx, tx, groupUsersSQL, rule.GroupID)
			}
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO role_rules (role, app_role, app_role_key, created, created_by) VALUES (?, ?, ?, ?, ?)`,
				role, rule.AppRole, appRoleKey(rule.AppRole), formatTime(now), by)
			if err == nil {
				matched, err = queryStrings(ctx, tx, appRoleUsersSQL, appRoleKey(rule.AppRole))
			}
		}
		if err = translate(err); errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w: the role %s already has this rule", ErrConflict, role)
		}
		if err != nil {
			return err
		}
		n, err = s.updateRoles(ctx, tx, now, matched)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("add role rule: %w", err)
	}
	return n, nil
}

// DeleteRoleRule deletes a rule; the users who held its role only through it
// lose the role, with an event each. It returns how many, or ErrNotFound.
func (s *Store) DeleteRoleRule(ctx context.Context, id int64) (int, error) {
	n := 0
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var role string
		err := tx.QueryRowContext(ctx, "DELETE FROM role_rules WHERE id = ? RETURNING role", id).Scan(&role)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("role rule %d: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		holders, err := queryStrings(ctx, tx, roleHoldersSQL, role)
		if err != nil {
			return err
		}
		n, err = s.updateRoles(ctx, tx, now, holders)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete role rule: %w", err)
	}
	return n, nil
}

// errNotManual refuses a grant on an account the directory manages: the
// directory decides its roles, through groups and app roles.
var errNotManual = fmt.Errorf("%w: roles are granted by hand only to manual accounts; the directory decides the roles of its own, through groups and app roles", ErrInvalid)

// GrantRole grants a role by hand to a manual account, with an event if its
// roles change. It returns ErrNotFound (user or role) or errNotManual.
func (s *Store) GrantRole(ctx context.Context, userID, role, by string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var kind string
		err := tx.QueryRowContext(ctx, "SELECT kind FROM users WHERE id = ?", userID).Scan(&kind)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", userID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if kind != accountManual {
			return errNotManual
		}
		if role, err = roleNameIn(ctx, tx, role); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO role_grants (user_id, role, granted, granted_by) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, userID, role, formatTime(now), by); err != nil {
			return err
		}
		_, err = s.updateRoles(ctx, tx, now, []string{userID})
		return err
	})
	if err != nil {
		return fmt.Errorf("grant role: %w", err)
	}
	return nil
}

// RevokeRole takes back a role granted by hand (from any account: one the
// directory claimed since keeps its grants until revoked), with an event if
// the user's roles change. It returns ErrNotFound when there is no such grant.
func (s *Store) RevokeRole(ctx context.Context, userID, role string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM role_grants WHERE user_id = ? AND role = ?", userID, role)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("grant of %q to %q: %w", role, userID, ErrNotFound)
		}
		_, err = s.updateRoles(ctx, tx, now, []string{userID})
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke role: %w", err)
	}
	return nil
}

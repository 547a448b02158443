// Users: rows, e-mail index, create, read, update, delete.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
)

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
	// HeldGroups are memberships the directory removed that a safety rail
	// keeps in the effective view (holds.go); filled on read, never shown to SCIM.
	HeldGroups []GroupRef
	// Roles are the effective roles (store_roles.go), sorted; filled on read
	// where apps or the admin page see them.
	Roles []string
	// stored is the attributes' JSON text as scanUser read it: UpdateUser
	// compares the one encoding a write makes with it.
	stored string
}

// userColumns maps filterable user attributes to indexed columns.
var userColumns = map[string]sqlColumn{
	schemaKey:           {expr: userSchema},
	"id":                {expr: "users.id", kind: colExact},
	"username":          {expr: "users.user_name_key", kind: colFolded, fold: userNameKey},
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

// userSortColumns are the user attributes sortBy pages through indexes.
var userSortColumns = map[string]string{
	"id": "users.id", "username": "users.user_name_key", "externalid": "users.external_id",
	"displayname": "users.display_name_key", "meta.created": "users.created", "meta.lastmodified": "users.modified",
}

// userSelect is the column list scanUser reads.
const userSelect = "SELECT users.id, users.attrs, users.created, users.modified, users.version, users.kind, users.overrides FROM users"

// scanUser reads a row of userSelect, without groups.
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
	u.stored = attrs
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

// putUser writes the user's row and its index rows (emails, app roles).
func putUser(ctx context.Context, tx *sql.Tx, u *User, insert bool) error {
	raw, err := json.Marshal(u.Attrs)
	if err != nil {
		return fmt.Errorf("encode attributes: %w", err)
	}
	return writeUser(ctx, tx, u, raw, insert, nil)
}

// writeTx runs the statements of a write transaction: a *sql.Tx, or the
// same transaction with the writer's prepared statements (Store.in).
type writeTx interface {
	queryer
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// The statements that write a user's row and its email index.
const (
	insertUserSQL = `INSERT INTO users (user_name, user_name_key, external_id, display_name,
			display_name_key, active, attrs, created, modified, version, kind, overrides, inactive_since, id)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?, CASE WHEN ? = 0 THEN ? END, ?)`
	updateUserSQL = `UPDATE users SET user_name = ?, user_name_key = ?, external_id = ?, display_name = ?,
			display_name_key = ?, active = ?, attrs = ?, created = ?, modified = ?, version = ?, kind = ?, overrides = ?,
			inactive_since = CASE WHEN ? = 0 THEN coalesce(inactive_since, ?) END WHERE id = ?`
	deleteUserEmailsSQL = "DELETE FROM user_emails WHERE user_id = ?"
	insertUserEmailSQL  = "INSERT INTO user_emails (value_key, user_id) VALUES (?, ?)"
)

// writeUser is putUser with the attributes already encoded (raw). Given
// prev, the user as the transaction read it, an index whose rows the change
// leaves as they were is not rewritten.
func writeUser(ctx context.Context, tx writeTx, u *User, raw []byte, insert bool, prev *User) error {
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
		var err error
		if overrides, err = json.Marshal(u.Overrides); err != nil {
			return fmt.Errorf("encode overrides: %w", err)
		}
	}
	// inactive_since remembers when the account was disabled, for the purge policy.
	args := []any{userName, userNameKey(userName), nullString(stringAttr(u.Attrs, "externalId")),
		nullString(displayName), nullString(foldCase(displayName)), active, string(raw),
		formatTime(u.Created), formatTime(u.Modified), u.Version, u.Kind, string(overrides), active, formatTime(u.Modified), u.ID}
	query := updateUserSQL
	if insert {
		query = insertUserSQL
	}
	_, err := tx.ExecContext(ctx, query, args...)
	if err := translate(err); err != nil {
		if errors.Is(err, ErrConflict) {
			return fmt.Errorf("%w: userName %q is already taken", ErrConflict, userName)
		}
		return err
	}
	if err := markDirectoryWrite(ctx, tx, u); err != nil {
		return err
	}
	emails := userEmailKeys(u.Attrs)
	if prev == nil || !slices.Equal(emails, userEmailKeys(prev.Attrs)) {
		if !insert {
			if _, err := tx.ExecContext(ctx, deleteUserEmailsSQL, u.ID); err != nil {
				return err
			}
		}
		for _, k := range emails {
			if _, err := tx.ExecContext(ctx, insertUserEmailSQL, k, u.ID); err != nil {
				return err
			}
		}
	}
	if prev != nil && slices.Equal(appRoleKeys(u.Attrs), appRoleKeys(prev.Attrs)) {
		return nil
	}
	return putAppRoleKeys(ctx, tx, u, insert)
}

// checkNewUserName refuses a userName holding an invisible character when
// it is written anew (prev nil) or changed: such a name looks like another
// one. An account that already has one can still be changed otherwise.
func checkNewUserName(prev, u *User) error {
	name := stringAttr(u.Attrs, "userName")
	if prev != nil && stringAttr(prev.Attrs, "userName") == name {
		return nil
	}
	for i, r := range name {
		if invisible(r) {
			return fmt.Errorf("%w: userName %q holds the invisible character U+%04X at byte %d; "+
				"names with zero-width, bidirectional-control, format or control characters look like other names",
				ErrInvalid, name, r, i)
		}
	}
	return nil
}

// invisible reports characters that render as nothing or only steer how
// their neighbours render: controls, format characters (zero-width spaces
// and joiners, bidirectional controls, the soft hyphen), line and paragraph
// separators, other default-ignorable characters (Hangul fillers) and
// variation selectors.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

// rekeyUserNamesMigration is the migration that moves user_name_key from
// foldCase to userNameKey.
const rekeyUserNamesMigration = "-- Go: Store.rekeyUserNames recomputes users.user_name_key with userNameKey"

// rekeyUserNames recomputes users.user_name_key with userNameKey. Names that
// differed under foldCase can share the new key (look-alikes created before);
// that must not stop the start-up: the account already holding the key keeps
// it, else the oldest takes it, and the others keep their old key (a filter by
// their name finds both, see compareSQL). Each such pair is logged with both
// ids, for the admin to rename or delete one.
func (s *Store) rekeyUserNames(ctx context.Context, tx *sql.Tx) error {
	type change struct{ id, name, key string }
	var changes []change // only names whose key changes: few, non-ASCII ones
	rows, err := tx.QueryContext(ctx, "SELECT id, user_name, user_name_key FROM users ORDER BY created, rowid")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c change
		var old string
		if err := rows.Scan(&c.id, &c.name, &old); err != nil {
			return err
		}
		if c.key = userNameKey(c.name); c.key != old {
			changes = append(changes, c)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for _, c := range changes {
		_, err := tx.ExecContext(ctx, "UPDATE users SET user_name_key = ? WHERE id = ?", c.key, c.id)
		if err = translate(err); !errors.Is(err, ErrConflict) {
			if err != nil {
				return err
			}
			continue
		}
		var holder, holderName string
		if err := tx.QueryRowContext(ctx, "SELECT id, user_name FROM users WHERE user_name_key = ?", c.key).Scan(&holder, &holderName); err != nil {
			return err
		}
		s.log.Warn("two accounts have look-alike userNames: the second keeps its old key; rename or delete one of them",
			"id", holder, "userName", holderName, "lookalikeID", c.id, "lookalikeUserName", c.name)
	}
	return nil
}

// CreateUser stores a new user, assigning its id and meta data. It returns
// ErrConflict if the userName is taken (compared by userNameKey), ErrInvalid
// if it holds an invisible character.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		u.ID, u.Created, u.Modified, u.Version = newID(), now, now, 1
		if err := checkNewUserName(nil, u); err != nil {
			return err
		}
		raw, err := json.Marshal(u.Attrs)
		if err != nil {
			return fmt.Errorf("encode attributes: %w", err)
		}
		if err := writeUser(ctx, s.in(tx), u, raw, true, nil); err != nil {
			return err
		}
		return s.userEvents(ctx, tx, now, nil, u)
	})
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// userByIDSQL reads one user by id.
const userByIDSQL = userSelect + " WHERE users.id = ?"

// UserByID returns the user with its groups, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	u, err := scanUser(s.rstmts.QueryRowContext(ctx, userByIDSQL, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", id, err)
	}
	if err := fillUserGroups(ctx, s.rstmts, []*User{u}); err != nil {
		return nil, err
	}
	if err := fillUserRoles(ctx, s.r, []*User{u}); err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateUser applies fn to the user inside one write transaction. fn may return
// an error (a failed precondition, an invalid patch) to leave the user unchanged.
// If fn leaves the attributes as they were, nothing is written and the version
// stays. It returns ErrNotFound, ErrConflict (userName taken) or ErrInvalid
// (a new userName with an invisible character).
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(u *User) error) (*User, error) {
	var out *User
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		wtx := s.in(tx)
		u, err := scanUser(wtx.QueryRowContext(ctx, userByIDSQL, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		prev := copyUser(u)
		if err := fn(u); err != nil {
			return err
		}
		if err := s.railUserChange(ctx, tx, now, prev, u); err != nil {
			return err
		}
		out = u
		// The one encoding of the attributes: compared with the text read,
		// then written.
		raw, err := json.Marshal(u.Attrs)
		if err != nil {
			return fmt.Errorf("encode attributes: %w", err)
		}
		if !userChanged(prev, u, raw) {
			return nil
		}
		if err := checkNewUserName(prev, u); err != nil {
			return err
		}
		u.Modified, u.Version = now, u.Version+1
		if err := writeUser(ctx, wtx, u, raw, false, prev); err != nil {
			return err
		}
		return s.userEvents(ctx, tx, now, prev, u)
	})
	if err != nil {
		return nil, fmt.Errorf("update user: %w", err)
	}
	// The groups are read after the commit, from the read pool: a user's
	// write does not change them, and whatever runs inside the transaction
	// holds the one writer that every other write waits for.
	if err := fillUserGroups(ctx, s.rstmts, []*User{out}); err != nil {
		return nil, err
	}
	return out, nil
}

// userChanged reports whether u, whose attributes encode to raw, differs
// from prev, the user as read: in its kind, its overrides or its attributes.
// Attributes equal to prev's are no change even when the text read is in
// another form (one a migration wrote in SQL).
func userChanged(prev, u *User, raw []byte) bool {
	if u.Kind != prev.Kind {
		return true
	}
	if len(prev.Overrides) > 0 || len(u.Overrides) > 0 {
		before, _ := json.Marshal(prev.Overrides)
		after, _ := json.Marshal(u.Overrides)
		if string(before) != string(after) {
			return true
		}
	}
	return string(raw) != prev.stored && !reflect.DeepEqual(prev.Attrs, u.Attrs)
}

// copyUser copies what events compare.
func copyUser(u *User) *User {
	c := *u
	c.Attrs, c.Overrides = cloneJSON(u.Attrs), maps.Clone(u.Overrides)
	return &c
}

// DeleteUser removes the user and its group memberships. check, if not nil,
// sees the user as it is inside the deleting transaction and may veto: what it
// checks (the account's kind, its version) cannot change before the delete.
// It returns ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string, check func(u *User) error) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		u, err := scanUser(s.in(tx).QueryRowContext(ctx, userByIDSQL, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(u); err != nil {
				return err
			}
		}
		if retained, err := s.retainDirectoryDelete(ctx, tx, now, u, deprovisionDelete); err != nil || retained {
			return err
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

// leaveGroups counts member id out of every group it belongs to (member
// count, modified, version) and returns those groups' ids; the caller
// deletes or keeps the membership rows.
func leaveGroups(ctx context.Context, tx *sql.Tx, now time.Time, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, `UPDATE groups SET member_count = member_count - 1, modified = ?, version = version + 1
		WHERE id IN (SELECT group_id FROM members WHERE member_id = ?) RETURNING id`, formatTime(now), id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var groups []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, rows.Err()
}

// removeMemberEverywhere takes id out of every group it belongs to, updating
// those groups' meta and recording a member_removed event for each.
func (s *Store) removeMemberEverywhere(ctx context.Context, tx *sql.Tx, id string, now time.Time) error {
	groups, err := leaveGroups(ctx, tx, now, id)
	if err != nil {
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
	return s.releaseKept(ctx, tx, now, id)
}

// userGroupsSQL reads the groups of n users.
func userGroupsSQL(n int) string {
	return `SELECT m.member_id, g.id, g.display_name FROM members m JOIN groups g ON g.id = m.group_id
		WHERE m.member_id IN (?` + strings.Repeat(",?", n-1) + `) ORDER BY g.display_name_key`
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
		u.Groups, u.HeldGroups = nil, nil
	}
	rows, err := q.QueryContext(ctx, userGroupsSQL(len(users)), args...)
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
	if err := rows.Err(); err != nil {
		return fmt.Errorf("user groups: %w", err)
	}
	return fillHeldGroups(ctx, q, byID, args)
}

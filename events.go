package main

// The change feed: which events a change produces. Events carry effective
// values (the source-of-truth policy applied), as downstream apps see them.

import (
	"context"
	"database/sql"
	"maps"
	"slices"
	"time"
)

// Event types.
const (
	evUserCreated   = "user.created"
	evUserUpdated   = "user.updated"
	evUserDisabled  = "user.disabled"
	evUserEnabled   = "user.enabled"
	evUserDeleted   = "user.deleted"
	evGroupCreated  = "group.created"
	evGroupUpdated  = "group.updated"
	evGroupDeleted  = "group.deleted"
	evMemberAdded   = "group.member_added"
	evMemberRemoved = "group.member_removed"
	// evUserRolesChanged reports a user's effective roles before and after
	// any change that changed them (roles.go).
	evUserRolesChanged = "user.roles_changed"
)

// eventTypes lists every event type, for webhook subscriptions.
var eventTypes = []string{evUserCreated, evUserUpdated, evUserDisabled, evUserEnabled, evUserDeleted,
	evGroupCreated, evGroupUpdated, evGroupDeleted, evMemberAdded, evMemberRemoved, evUserRolesChanged}

// appUser is a user as apps see it: effective values, no SCIM plumbing.
func appUser(u *User, p Policy) map[string]any {
	d := maps.Clone(userType.visible(Effective(u.Attrs, u.Overrides, p)))
	d["id"] = u.ID
	d["kind"] = orDefault(u.Kind, accountDirectory)
	if u.Kind == accountRetained {
		d["kind"] = accountDirectory // apps see the account as it was until the delete is approved
	}
	d["created"] = formatTime(u.Created)
	d["lastModified"] = formatTime(u.Modified)
	withRoles(d, u)
	return d
}

// appGroup is a group as apps see it (without members).
func appGroup(g *Group) map[string]any {
	d := maps.Clone(groupType.visible(g.Attrs))
	d["id"] = g.ID
	d["created"] = formatTime(g.Created)
	d["lastModified"] = formatTime(g.Modified)
	return d
}

// changedKeys lists the top-level attributes (and extension attributes, as
// urn:attr) whose values differ.
func changedKeys(a, b map[string]any) []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range []map[string]any{a, b} {
		for k := range m {
			if seen[k] {
				continue
			}
			seen[k] = true
			am, aok := a[k].(map[string]any)
			bm, bok := b[k].(map[string]any)
			if len(k) > 4 && k[:4] == "urn:" && (aok || bok) {
				for _, sub := range changedKeys(am, bm) {
					out = append(out, k+":"+sub)
				}
				continue
			}
			if !jsonEqual(a[k], b[k]) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// userEvents records what a change to a user means for apps: before nil is a
// creation, after nil a deletion. Every write of a user passes here, so it
// also brings the user's effective roles up to date (refreshUserRoles); a
// change of them is told by user.roles_changed after the user's own events,
// or before user.deleted.
func (s *Store) userEvents(ctx context.Context, tx *sql.Tx, now time.Time, before, after *User) error {
	roles, err := refreshUserRoles(ctx, s.in(tx), before, after)
	if err != nil {
		return err
	}
	if after == nil {
		if err := s.roleEvents(ctx, tx, now, roles); err != nil {
			return err
		}
		return s.userValueEvents(ctx, tx, now, before, after)
	}
	if err := s.userValueEvents(ctx, tx, now, before, after); err != nil {
		return err
	}
	return s.roleEvents(ctx, tx, now, roles)
}

// roleEvents records user.roles_changed, with the role names before and
// after, for each user whose roles changed, in user id order.
func (s *Store) roleEvents(ctx context.Context, tx *sql.Tx, now time.Time, rc roleChanges) error {
	ids := rc.changed()
	data := make([]any, len(ids))
	for i, id := range ids {
		data[i] = map[string]any{"id": id, "before": append([]string{}, rc[id].Before...), "after": append([]string{}, rc[id].After...)}
	}
	return s.emitEach(ctx, tx, now, evUserRolesChanged, "User", ids, data)
}

// userValueEvents records the change of a user's effective values. A change
// that leaves them as they were (a directory edit hidden by a local
// override) records nothing. Roles are told by roleEvents.
func (s *Store) userValueEvents(ctx context.Context, tx *sql.Tx, now time.Time, before, after *User) error {
	p, err := s.policyIn(ctx, tx)
	if err != nil {
		return err
	}
	switch {
	case before == nil:
		return s.emit(ctx, tx, now, evUserCreated, "User", after.ID, appUser(after, p))
	case after == nil:
		return s.emit(ctx, tx, now, evUserDeleted, "User", before.ID, map[string]any{"id": before.ID, "userName": stringAttr(before.Attrs, "userName")})
	}
	b, a := appUser(before, p), appUser(after, p)
	changed := slices.DeleteFunc(changedKeys(b, a), func(k string) bool { return k == "lastModified" || k == "kind" || k == "roles" })
	if i := slices.Index(changed, "active"); i >= 0 {
		typ := evUserEnabled
		if a["active"] == false {
			typ = evUserDisabled
		}
		if err := s.emit(ctx, tx, now, typ, "User", after.ID, a); err != nil {
			return err
		}
		changed = slices.Delete(changed, i, i+1)
	}
	if len(changed) == 0 {
		return nil
	}
	return s.emit(ctx, tx, now, evUserUpdated, "User", after.ID, map[string]any{"changed": changed, "user": a})
}

// groupEvents records a group's creation (before nil), update and membership
// changes, then the roles those membership changes give or take (membershipRoles).
func (s *Store) groupEvents(ctx context.Context, tx *sql.Tx, now time.Time, before, after *Group, added, removed []string) error {
	if err := s.groupValueEvents(ctx, tx, now, before, after, added, removed); err != nil {
		return err
	}
	return s.membershipRoles(ctx, tx, now, after.ID, slices.Concat(added, removed))
}

// groupValueEvents records a group's creation (before nil), update and membership changes.
func (s *Store) groupValueEvents(ctx context.Context, tx *sql.Tx, now time.Time, before, after *Group, added, removed []string) error {
	if before == nil {
		if err := s.emit(ctx, tx, now, evGroupCreated, "Group", after.ID, appGroup(after)); err != nil {
			return err
		}
	} else if changed := changedKeys(before.Attrs, after.Attrs); len(changed) > 0 {
		if err := s.emit(ctx, tx, now, evGroupUpdated, "Group", after.ID, map[string]any{"changed": changed, "group": appGroup(after)}); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		typ string
		ids []string
	}{{evMemberAdded, added}, {evMemberRemoved, removed}} {
		data := make([]any, len(m.ids))
		for i, id := range m.ids {
			data[i] = map[string]any{"group": after.ID, "member": id}
		}
		if err := s.emitMany(ctx, tx, now, m.typ, "Group", after.ID, data); err != nil {
			return err
		}
	}
	return nil
}

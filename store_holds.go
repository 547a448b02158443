// Safety rails in the store: holds (directory changes the effective view does
// not take), the mass-change window, approvals and rejections, protected accounts.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Hold is one directory change that a safety rail kept out of the effective view.
type Hold struct {
	ID                               int64
	At                               time.Time
	Kind, State                      string
	ResourceType, ResourceID         string // the user, or the group of a member-remove
	MemberID, MemberType, MemberName string // a member-remove's member
	Target                           string // the userName, or the group's name, at the time
	Parent                           int64  // a member-remove that came with a held delete: that delete
	Request                          string // the SCIM request that made the change
	Before                           map[string]any
	Mode                             string // a delete: what the deprovisioning setting said then (delete or hide)
	DecidedAt                        time.Time
	DecidedBy                        string
	// Memberships is how many memberships a delete holds with it (filled by Holds).
	Memberships int
}

// keptStatesSQL are the states in which the effective view keeps the state
// before the change (the partial indexes on holds name them the same way).
const keptStatesSQL = "('held', 'rejected', 'protected')"

const holdSelect = `SELECT id, at, kind, state, resource_type, resource_id, member_id, member_type, member_name, target,
	coalesce(parent, 0), request, before, mode, coalesce(decided_at, ''), decided_by FROM holds`

func scanHold(row interface{ Scan(...any) error }) (Hold, error) {
	var h Hold
	var at, before, decided string
	if err := row.Scan(&h.ID, &at, &h.Kind, &h.State, &h.ResourceType, &h.ResourceID, &h.MemberID, &h.MemberType,
		&h.MemberName, &h.Target, &h.Parent, &h.Request, &before, &h.Mode, &decided, &h.DecidedBy); err != nil {
		return h, err
	}
	h.At, h.DecidedAt = parseTime(at), parseTime(decided)
	if err := json.Unmarshal([]byte(before), &h.Before); err != nil {
		return h, fmt.Errorf("decode hold %d: %w", h.ID, err)
	}
	return h, nil
}

func queryHolds(ctx context.Context, q queryer, query string, args ...any) ([]Hold, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// insertHold records a hold and returns its id.
func insertHold(ctx context.Context, tx *sql.Tx, h Hold) (int64, error) {
	before, err := json.Marshal(h.Before)
	if err != nil {
		return 0, fmt.Errorf("encode hold: %w", err)
	}
	var parent any
	if h.Parent != 0 {
		parent = h.Parent
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO holds (at, kind, state, resource_type, resource_id, member_id, member_type,
		member_name, target, parent, request, before, mode) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`,
		formatTime(h.At), h.Kind, h.State, h.ResourceType, h.ResourceID, h.MemberID, h.MemberType, h.MemberName,
		h.Target, parent, h.Request, string(before), h.Mode).Scan(&id)
	return id, err
}

// holdSettingsIn reads the mass-change hold's settings.
func holdSettingsIn(ctx context.Context, q queryer) (HoldSettings, error) {
	rows, err := q.QueryContext(ctx, "SELECT key, value FROM settings WHERE key IN (?, ?, ?, ?)",
		settingHoldOff, settingHoldPercent, settingHoldMinimum, settingHoldWindow)
	if err != nil {
		return HoldSettings{}, err
	}
	defer rows.Close()
	kv := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return HoldSettings{}, err
		}
		kv[k] = v
	}
	return parseHoldSettings(func(k string) string { return kv[k] }), rows.Err()
}

// HoldSettings returns the mass-change hold's settings (the defaults until the admin changes them).
func (s *Store) HoldSettings(ctx context.Context) (HoldSettings, error) {
	hs, err := holdSettingsIn(ctx, s.r)
	if err != nil {
		return hs, fmt.Errorf("hold settings: %w", err)
	}
	return hs, nil
}

// SetHoldSettings stores the mass-change hold's settings; it returns
// ErrInvalid when one is out of range.
func (s *Store) SetHoldSettings(ctx context.Context, hs HoldSettings) error {
	if errs := hs.validate(); len(errs) > 0 {
		return fmt.Errorf("%w: hold settings out of range", ErrInvalid)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error { return putSettings(ctx, tx, hs.values()) })
	if err != nil {
		return fmt.Errorf("set hold settings: %w", err)
	}
	return nil
}

// admitRemovals records that the directory makes n removals of a class now
// and returns how many of them may reach the effective view; the others are
// to be held. While a change of the class waits for review, none may: a burst
// the admin has not judged yet is still the same burst. Otherwise the window's
// removals (held ones too) count against the threshold, and the first ones up
// to it pass. The window is one indexed range; the base (directory users or
// memberships) is counted only once the minimum is reached.
func (s *Store) admitRemovals(ctx context.Context, tx *sql.Tx, now time.Time, class string, n int) (int, error) {
	hs, err := holdSettingsIn(ctx, tx)
	if err != nil || hs.Off || n == 0 {
		return n, err
	}
	since := formatTime(now.Add(-hs.Window))
	if _, err := tx.ExecContext(ctx, "DELETE FROM directory_removals WHERE class = ? AND at < ?", class, since); err != nil {
		return 0, err
	}
	var done int
	if err := tx.QueryRowContext(ctx, windowRemovalsSQL, class, since).Scan(&done); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO directory_removals (at, class, n) VALUES (?, ?, ?)", formatTime(now), class, n); err != nil {
		return 0, err
	}
	kinds := "('disable', 'delete')"
	if class == classMembers {
		kinds = "('member-remove')"
	}
	var waiting bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM holds WHERE state = 'held' AND kind IN "+kinds+")").Scan(&waiting); err != nil {
		return 0, err
	}
	if waiting {
		return 0, nil
	}
	if done+n <= hs.Minimum {
		return n, nil
	}
	total, err := directoryTotal(ctx, tx, class)
	if err != nil {
		return 0, err
	}
	return min(max(hs.threshold(total)-done, 0), n), nil
}

// directoryTotal is the size a class of removals is measured against: the
// directory's users, or its memberships, kept by triggers (see the
// migration that made the totals table).
func directoryTotal(ctx context.Context, q queryer, class string) (int, error) {
	name := "directory_users"
	if class == classMembers {
		name = "memberships"
	}
	var total int
	err := q.QueryRowContext(ctx, "SELECT n FROM totals WHERE name = ?", name).Scan(&total)
	return total, err
}

// countGroupDelete counts the memberships a directory's group delete
// removes (its members, and its own memberships of other groups) as
// membership removals in the mass-change window, so that the removals that
// follow in a burst are held. The delete itself is not held: keeping a group
// for apps while SCIM no longer has it would need a retained group, as a
// held user delete keeps a retained user, and no surface knows such a group.
// Past the threshold the request's log entry says so.
func (s *Store) countGroupDelete(ctx context.Context, tx *sql.Tx, now time.Time, groupID string) error {
	dw := directoryWriteOf(ctx)
	if dw == nil {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT (SELECT member_count FROM groups WHERE id = ?1)
		+ (SELECT count(*) FROM members WHERE member_id = ?1)`, groupID).Scan(&n); err != nil {
		return err
	}
	pass, err := s.admitRemovals(ctx, tx, now, classMembers, n)
	if err == nil && pass < n {
		dw.note("the group delete removed %d membership(s), past the mass-change threshold: a group delete is not held, the membership removals that follow are", n)
	}
	return err
}

// windowRemovalsSQL sums a class's removals since a time, from the window index alone.
const windowRemovalsSQL = "SELECT coalesce(sum(n), 0) FROM directory_removals WHERE class = ? AND at >= ?"

// protectedIn reports whether a user is protected.
func protectedIn(ctx context.Context, q queryer, id string) (bool, error) {
	var p bool
	err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM protected_users WHERE user_id = ?)", id).Scan(&p)
	return p, err
}

// railUserChange applies the safety rails to the directory's write of a user,
// inside its transaction (prev is the user before, u after the directory's
// change): a value a rail kept that the directory now agrees with is let go,
// and a disable of a protected account, or one past the mass-change
// threshold, is kept out of the effective view by pinning the active value
// the effective view had. Other writes pass untouched.
func (s *Store) railUserChange(ctx context.Context, tx *sql.Tx, now time.Time, prev, u *User) error {
	dw := directoryWriteOf(ctx)
	if dw == nil || u.Kind != accountDirectory {
		return nil
	}
	if err := releaseAgreedPins(ctx, tx, now, u); err != nil {
		return err
	}
	if prev.Attrs["active"] == false || u.Attrs["active"] != false {
		return nil
	}
	p, err := s.policyIn(ctx, tx)
	if err != nil {
		return err
	}
	was := Effective(prev.Attrs, prev.Overrides, p)["active"]
	if was == false || Effective(u.Attrs, u.Overrides, p)["active"] != false {
		return nil // not a disable in the effective view
	}
	h := Hold{At: now, Kind: holdDisable, State: holdHeld, ResourceType: "User", ResourceID: u.ID,
		Target: stringAttr(u.Attrs, "userName"), Request: dw.request, Before: map[string]any{"active": was}}
	protected, err := protectedIn(ctx, tx, u.ID)
	if err != nil {
		return err
	}
	if protected {
		h.State = holdProtected
	} else if pass, err := s.admitRemovals(ctx, tx, now, classUsers, 1); err != nil || pass == 1 {
		return err
	}
	id, err := insertHold(ctx, tx, h)
	if err != nil {
		return err
	}
	if u.Overrides == nil {
		u.Overrides = map[string]Override{}
	}
	by := "mass-change hold"
	if protected {
		by = "protected account"
	}
	u.Overrides["active"] = Override{Value: was, By: by, At: now, Hold: id}
	dw.note("%s (hold %d)", holdNote(h), id)
	return nil
}

// holdNote says what a rail did with a change, for the provisioning log.
func holdNote(h Hold) string {
	if h.State == holdProtected {
		return h.What() + ": refused in the effective view, the account is protected; SCIM shows the change"
	}
	return h.What() + ": held for review (mass-change hold); SCIM shows the change, apps do not until an admin approves it on the Holds page"
}

// releaseAgreedPins lets go of values a rail kept that the directory's own
// value now equals (it re-enabled a user whose disable was held): the hold
// no longer applies and the effective view does not change.
func releaseAgreedPins(ctx context.Context, tx *sql.Tx, now time.Time, u *User) error {
	for key, o := range u.Overrides {
		if o.Hold == 0 || !jsonEqual(getField(u.Attrs, key), o.Value) {
			continue
		}
		u.Overrides = maps.Clone(u.Overrides)
		delete(u.Overrides, key)
		if err := mootHolds(ctx, tx, now, "the directory reverted it", "id = ?", o.Hold); err != nil {
			return err
		}
	}
	return nil
}

// mootHolds marks the kept holds that where selects as no longer applying.
func mootHolds(ctx context.Context, tx *sql.Tx, now time.Time, why, where string, args ...any) error {
	_, err := tx.ExecContext(ctx, "UPDATE holds SET state = 'moot', decided_at = ?, decided_by = ? WHERE state IN "+keptStatesSQL+
		" AND "+where, append([]any{formatTime(now), why}, args...)...)
	return err
}

// retainDirectoryDelete applies the safety rails to the directory's delete
// of u (mode: what the deprovisioning setting says), inside its transaction.
// When the account is protected or the delete is past the mass-change
// threshold, the user becomes a retained account: gone for SCIM (so are its
// memberships), unchanged for apps, with no event. It reports whether it
// kept the user; if not, the caller deletes it as usual.
func (s *Store) retainDirectoryDelete(ctx context.Context, tx *sql.Tx, now time.Time, u *User, mode DeprovisionMode) (bool, error) {
	dw := directoryWriteOf(ctx)
	if dw == nil || u.Kind != accountDirectory {
		return false, nil
	}
	protected, err := protectedIn(ctx, tx, u.ID)
	if err != nil {
		return false, err
	}
	h := Hold{At: now, Kind: holdDelete, State: holdHeld, ResourceType: "User", ResourceID: u.ID,
		Target: stringAttr(u.Attrs, "userName"), Request: dw.request, Mode: string(mode)}
	if protected {
		h.State = holdProtected
	} else if pass, err := s.admitRemovals(ctx, tx, now, classUsers, 1); err != nil || pass == 1 {
		return false, err
	}
	p, err := s.policyIn(ctx, tx)
	if err != nil {
		return false, err
	}
	h.Before = appUser(u, p)
	id, err := insertHold(ctx, tx, h)
	if err != nil {
		return false, err
	}
	if err := moveMembershipsToHolds(ctx, tx, now, u, id, h.State, dw.request); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE users SET kind = ? WHERE id = ?", accountRetained, u.ID); err != nil {
		return false, err
	}
	dw.note("%s (hold %d)", holdNote(h), id)
	return true, nil
}

// moveMembershipsToHolds takes a retained user out of its groups for SCIM
// (each group's members, count and version change as for a delete) and keeps
// each membership for apps as a member-remove hold that comes with the delete's.
func moveMembershipsToHolds(ctx context.Context, tx *sql.Tx, now time.Time, u *User, parent int64, state, request string) error {
	groups, err := leaveGroups(ctx, tx, now, u.ID)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM members WHERE member_id = ?", u.ID); err != nil {
		return err
	}
	slices.Sort(groups)
	_, err = tx.ExecContext(ctx, `INSERT INTO holds (at, kind, state, resource_type, resource_id, member_id, member_type,
			member_name, target, parent, request, before, mode)
		SELECT ?1, 'member-remove', ?2, 'Group', g.id, ?3, 'User', ?4, g.display_name, ?5, ?6, '{}', ''
		FROM json_each(?7) j JOIN groups g ON g.id = j.value ORDER BY j.key`,
		formatTime(now), state, u.ID, stringAttr(u.Attrs, "userName"), parent, request, idList(groups))
	return err
}

// railMemberChanges applies the safety rails to the directory's membership
// changes of group g, after the SCIM view took them, and returns the changes
// the effective view takes (for its events). A member added back that the
// effective view kept is no change for apps, and its hold no longer applies.
// Removals of protected accounts' memberships are refused, and removals past
// the mass-change threshold are held; either way the effective view keeps them.
func (s *Store) railMemberChanges(ctx context.Context, tx *sql.Tx, now time.Time, g *Group, added, removed []string) ([]string, []string, error) {
	if len(added) > 0 {
		rows, err := tx.QueryContext(ctx, `UPDATE holds SET state = 'moot', decided_at = ?, decided_by = 'the directory added the member back'
			WHERE kind = 'member-remove' AND state IN `+keptStatesSQL+` AND resource_id = ? AND member_id IN (SELECT value FROM json_each(?))
			RETURNING member_id`, formatTime(now), g.ID, idList(added))
		if err != nil {
			return nil, nil, err
		}
		kept, err := scanIDs(rows)
		if err != nil {
			return nil, nil, err
		}
		added = slices.DeleteFunc(slices.Clone(added), func(id string) bool { return slices.Contains(kept, id) })
	}
	dw := directoryWriteOf(ctx)
	if dw == nil || len(removed) == 0 {
		return added, removed, nil
	}
	rows, err := tx.QueryContext(ctx, "SELECT user_id FROM protected_users WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id", idList(removed))
	if err != nil {
		return nil, nil, err
	}
	protected, err := scanIDs(rows)
	if err != nil {
		return nil, nil, err
	}
	candidates := slices.DeleteFunc(slices.Clone(removed), func(id string) bool { return slices.Contains(protected, id) })
	pass, err := s.admitRemovals(ctx, tx, now, classMembers, len(candidates))
	if err != nil {
		return nil, nil, err
	}
	held := candidates[pass:]
	for _, kept := range []struct {
		state string
		ids   []string
	}{{holdProtected, protected}, {holdHeld, held}} {
		if len(kept.ids) == 0 {
			continue
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO holds (at, kind, state, resource_type, resource_id, member_id, member_type,
				member_name, target, request, before, mode)
			SELECT ?1, 'member-remove', ?2, 'Group', ?3, j.value,
				CASE WHEN EXISTS (SELECT 1 FROM users WHERE id = j.value) THEN 'User' ELSE 'Group' END,
				coalesce((SELECT user_name FROM users WHERE id = j.value), (SELECT display_name FROM groups WHERE id = j.value), j.value),
				?4, ?5, '{}', ''
			FROM json_each(?6) j ORDER BY j.key`,
			formatTime(now), kept.state, g.ID, stringAttr(g.Attrs, "displayName"), dw.request, idList(kept.ids))
		if err != nil {
			return nil, nil, err
		}
	}
	if len(protected) > 0 {
		dw.note("%d membership removal(s) of protected accounts refused in the effective view", len(protected))
	}
	if len(held) > 0 {
		dw.note("%d membership removal(s) held for review (mass-change hold); SCIM shows them, apps do not until an admin approves them on the Holds page", len(held))
	}
	return added, candidates[:pass], nil
}

// scanIDs reads a column of ids and closes rows.
func scanIDs(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// releaseKept ends what a rail kept for a user or group that leaves the
// effective view (deleted, or deprovisioned): its kept disable or delete no
// longer applies, and apps saw its kept memberships, so each gets its
// member_removed event.
func (s *Store) releaseKept(ctx context.Context, tx *sql.Tx, now time.Time, memberID string) error {
	if err := mootHolds(ctx, tx, now, "the user was deleted", "kind IN ('disable', 'delete') AND resource_id = ?", memberID); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `UPDATE holds SET state = 'moot', decided_at = ?, decided_by = 'the member was deleted'
		WHERE kind = 'member-remove' AND state IN `+keptStatesSQL+` AND member_id = ? RETURNING resource_id`, formatTime(now), memberID)
	if err != nil {
		return err
	}
	groups, err := scanIDs(rows)
	if err != nil {
		return err
	}
	slices.Sort(groups)
	for _, g := range groups {
		if err := s.emit(ctx, tx, now, evMemberRemoved, "Group", g, map[string]any{"group": g, "member": memberID}); err != nil {
			return err
		}
	}
	return nil
}

// mootGroupHolds: the memberships a rail kept in a group that is deleted go with it.
func mootGroupHolds(ctx context.Context, tx *sql.Tx, now time.Time, groupID string) error {
	return mootHolds(ctx, tx, now, "the group was deleted", "kind = 'member-remove' AND resource_id = ?", groupID)
}

// restoreRetained: the directory created again (by POST) a user whose delete
// a rail kept; the delete no longer applies, nor does a kept value the
// directory now agrees with. The memberships kept with the delete stay kept
// until the directory adds them back (as Entra does after a re-creation).
func restoreRetained(ctx context.Context, tx *sql.Tx, now time.Time, u *User) error {
	if err := mootHolds(ctx, tx, now, "the directory created the user again", "kind = 'delete' AND resource_id = ?", u.ID); err != nil {
		return err
	}
	return releaseAgreedPins(ctx, tx, now, u)
}

// fillHeldGroups sets each user's HeldGroups: the memberships the directory
// removed that a rail keeps in the effective view. args are the users' ids.
func fillHeldGroups(ctx context.Context, q queryer, byID map[string]*User, args []any) error {
	rows, err := q.QueryContext(ctx, `SELECT h.member_id, g.id, g.display_name FROM holds h JOIN groups g ON g.id = h.resource_id
		WHERE h.kind = 'member-remove' AND h.state IN `+keptStatesSQL+` AND h.member_id IN (?`+strings.Repeat(",?", len(args)-1)+`)
		ORDER BY g.display_name_key`, args...)
	if err != nil {
		return fmt.Errorf("kept groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		var g GroupRef
		if err := rows.Scan(&uid, &g.ID, &g.Display); err != nil {
			return fmt.Errorf("kept groups: %w", err)
		}
		byID[uid].HeldGroups = append(byID[uid].HeldGroups, g)
	}
	return rows.Err()
}

// HeldChanges returns how many directory changes wait for an admin's
// decision, and when the oldest was made (zero when none): for alerts.
func (s *Store) HeldChanges(ctx context.Context) (count int, oldest time.Time, err error) {
	var at string
	err = s.r.QueryRowContext(ctx, `SELECT count(*), coalesce((SELECT at FROM holds WHERE state = 'held' ORDER BY id LIMIT 1), '')
		FROM holds WHERE state = 'held'`).Scan(&count, &at)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("held changes: %w", err)
	}
	return count, parseTime(at), nil
}

// HoldQuery selects holds: by state (all when empty), about one user, the
// changes themselves (a held delete's memberships counted with it, not listed).
type HoldQuery struct {
	States []string
	UserID string
	Limit  int
}

// Holds returns the holds q selects, oldest first, and how many match in all.
func (s *Store) Holds(ctx context.Context, q HoldQuery) ([]Hold, int, error) {
	where := []string{"parent IS NULL"}
	var args []any
	if len(q.States) > 0 {
		where = append(where, "state IN (SELECT value FROM json_each(?))")
		args = append(args, idList(q.States))
	}
	if q.UserID != "" {
		where = append(where, "resource_id = ?")
		args = append(args, q.UserID)
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM holds"+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("holds: %w", err)
	}
	holds, err := queryHolds(ctx, s.r, holdSelect+cond+" ORDER BY id LIMIT ?", append(args, max(q.Limit, 1))...)
	if err != nil {
		return nil, 0, fmt.Errorf("holds: %w", err)
	}
	for i, h := range holds {
		if h.Kind != holdDelete {
			continue
		}
		if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM holds WHERE parent = ?", h.ID).Scan(&holds[i].Memberships); err != nil {
			return nil, 0, fmt.Errorf("holds: %w", err)
		}
	}
	return holds, total, nil
}

// ApproveHolds releases changes a rail kept (held, rejected or refused for a
// protected account) into the effective view, in the order the directory made
// them, recording the events they held back then; with all, every held change.
// A delete brings the memberships held with it and the user's earlier kept
// disable, so that apps see what the directory did, in order. Holds that no
// longer apply are left alone. It returns the holds released.
func (s *Store) ApproveHolds(ctx context.Context, ids []int64, all bool, by string) ([]Hold, error) {
	var done []Hold
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		chosen, err := chosenHolds(ctx, tx, ids, all, "state IN "+keptStatesSQL)
		if err != nil {
			return err
		}
		order, err := approvalOrder(ctx, tx, chosen)
		if err != nil {
			return err
		}
		// Roles follow the effective memberships: those released take their
		// roles once every release is recorded, after the events released.
		removedFrom := map[string][]string{}
		for _, h := range order {
			state, err := s.release(ctx, tx, now, h)
			if err != nil {
				return fmt.Errorf("hold %d: %w", h.ID, err)
			}
			if _, err := tx.ExecContext(ctx, "UPDATE holds SET state = ?, decided_at = ?, decided_by = ? WHERE id = ?",
				state, formatTime(now), by, h.ID); err != nil {
				return err
			}
			h.State, h.DecidedAt, h.DecidedBy = state, now, by
			if h.Parent == 0 {
				done = append(done, h)
			}
			if h.Kind == holdMemberRemove && state == holdApproved {
				removedFrom[h.ResourceID] = append(removedFrom[h.ResourceID], h.MemberID)
			}
		}
		for _, g := range slices.Sorted(maps.Keys(removedFrom)) {
			if err := s.membershipRoles(ctx, tx, now, g, removedFrom[g]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("approve held changes: %w", err)
	}
	return done, nil
}

// chosenHolds reads the holds an admin chose (ids, or every held one with
// all) among those in the states cond allows, oldest first.
func chosenHolds(ctx context.Context, tx *sql.Tx, ids []int64, all bool, cond string) ([]Hold, error) {
	if all {
		return queryHolds(ctx, tx, holdSelect+" WHERE state = 'held' ORDER BY id")
	}
	raw, _ := json.Marshal(ids)
	if ids == nil {
		raw = []byte("[]")
	}
	return queryHolds(ctx, tx, holdSelect+" WHERE id IN (SELECT value FROM json_each(?)) AND "+cond+" ORDER BY id", string(raw))
}

// approvalOrder adds to the chosen holds what approving them implies (a
// delete's memberships and the user's earlier kept disable) and orders them
// as the directory's changes happened: a delete's membership removals come
// just before it, as a delete's events do.
func approvalOrder(ctx context.Context, tx *sql.Tx, chosen []Hold) ([]Hold, error) {
	set := map[int64]Hold{}
	for _, h := range chosen {
		set[h.ID] = h
	}
	children := map[int64][]Hold{}
	for _, h := range chosen {
		if h.Kind != holdDelete {
			continue
		}
		more, err := queryHolds(ctx, tx, holdSelect+" WHERE state IN "+keptStatesSQL+
			" AND (parent = ? OR (kind = 'disable' AND resource_id = ? AND id < ?)) ORDER BY id", h.ID, h.ResourceID, h.ID)
		if err != nil {
			return nil, err
		}
		for _, m := range more {
			set[m.ID] = m
		}
	}
	var top []Hold
	for _, h := range set {
		if _, ok := set[h.Parent]; h.Parent != 0 && ok {
			children[h.Parent] = append(children[h.Parent], h)
		} else {
			top = append(top, h)
		}
	}
	byID := func(a, b Hold) int { return int(a.ID - b.ID) }
	slices.SortFunc(top, byID)
	var order []Hold
	for _, h := range top {
		kids := children[h.ID]
		slices.SortFunc(kids, byID)
		order = append(append(order, kids...), h)
	}
	return order, nil
}

// release applies one kept change to the effective view, with its events,
// and returns the hold's new state: approved, or moot when what it kept is
// gone (the user or group deleted since, the value let go).
func (s *Store) release(ctx context.Context, tx *sql.Tx, now time.Time, h Hold) (string, error) {
	if h.Kind == holdMemberRemove {
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM groups WHERE id = ?)", h.ResourceID).Scan(&exists); err != nil || !exists {
			return holdMoot, err
		}
		return holdApproved, s.emit(ctx, tx, now, evMemberRemoved, "Group", h.ResourceID, map[string]any{"group": h.ResourceID, "member": h.MemberID})
	}
	u, err := scanUser(tx.QueryRowContext(ctx, userByIDSQL, h.ResourceID))
	if errors.Is(err, sql.ErrNoRows) {
		return holdMoot, nil
	}
	if err != nil {
		return "", err
	}
	if h.Kind == holdDisable {
		if o, ok := u.Overrides["active"]; !ok || o.Hold != h.ID {
			return holdMoot, nil
		}
		prev := copyUser(u)
		delete(u.Overrides, "active")
		u.Modified, u.Version = now, u.Version+1
		if err := putUser(ctx, tx, u, false); err != nil {
			return "", err
		}
		return holdApproved, s.userEvents(ctx, tx, now, prev, u)
	}
	if u.Kind != accountRetained {
		return holdMoot, nil
	}
	if h.Mode == string(deprovisionHide) {
		return holdApproved, s.deprovisionIn(ctx, tx, now, u)
	}
	return holdApproved, s.deleteUserIn(ctx, tx, now, u)
}

// RejectHolds keeps the effective view as it is for held changes (ids, or
// every held change with all): they stay visible as drift. A delete's
// memberships are rejected with it. It returns the holds rejected.
func (s *Store) RejectHolds(ctx context.Context, ids []int64, all bool, by string) ([]Hold, error) {
	var done []Hold
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		chosen, err := chosenHolds(ctx, tx, ids, all, "state = 'held'")
		if err != nil {
			return err
		}
		for _, h := range chosen {
			if _, err := tx.ExecContext(ctx, `UPDATE holds SET state = 'rejected', decided_at = ?, decided_by = ?
				WHERE state = 'held' AND (id = ? OR parent = ?)`, formatTime(now), by, h.ID, h.ID); err != nil {
				return err
			}
			h.State, h.DecidedAt, h.DecidedBy = holdRejected, now, by
			if h.Parent == 0 {
				done = append(done, h)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reject held changes: %w", err)
	}
	return done, nil
}

// Protection is an admin's mark on an account the directory may not disable or delete.
type Protection struct {
	By string
	At time.Time
}

// SetProtected marks a user protected (or not). It returns ErrNotFound.
func (s *Store) SetProtected(ctx context.Context, id string, protect bool, by string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		var err error
		if protect {
			_, err = tx.ExecContext(ctx, `INSERT INTO protected_users (user_id, by, at) VALUES (?, ?, ?)
				ON CONFLICT (user_id) DO NOTHING`, id, by, formatTime(now))
		} else {
			_, err = tx.ExecContext(ctx, "DELETE FROM protected_users WHERE user_id = ?", id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("protect user: %w", err)
	}
	return nil
}

// UserProtection returns who protected the user and when, or nil.
func (s *Store) UserProtection(ctx context.Context, id string) (*Protection, error) {
	var p Protection
	var at string
	err := s.r.QueryRowContext(ctx, "SELECT by, at FROM protected_users WHERE user_id = ?", id).Scan(&p.By, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("user protection: %w", err)
	}
	p.At = parseTime(at)
	return &p, nil
}

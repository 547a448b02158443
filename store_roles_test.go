package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// roleEvent is a user.roles_changed event as apps read it.
type roleEvent struct {
	ID     string   `json:"id"`
	Before []string `json:"before"`
	After  []string `json:"after"`
}

// roleEventsAfter returns the user.roles_changed events after the cursor,
// in feed order, and the last cursor of the feed.
func roleEventsAfter(t testing.TB, s *Store, after int64) ([]roleEvent, int64) {
	t.Helper()
	events, err := s.Events(context.Background(), after, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []roleEvent
	last := after
	for _, e := range events {
		last = e.Cursor
		if e.Type != evUserRolesChanged {
			continue
		}
		var re roleEvent
		if err := json.Unmarshal(e.Data, &re); err != nil {
			t.Fatal(err)
		}
		if e.ResourceID != re.ID || e.ResourceType != "User" {
			t.Errorf("event about %s %s carries the user %s", e.ResourceType, e.ResourceID, re.ID)
		}
		out = append(out, re)
	}
	return out, last
}

// feedCursor is the cursor of the newest event.
func feedCursor(t testing.TB, s *Store) int64 {
	t.Helper()
	_, last := roleEventsAfter(t, s, 0)
	return last
}

// checkRoleEvents compares the roles events after cursor with want and
// returns the new cursor.
func checkRoleEvents(t testing.TB, s *Store, cursor int64, step string, want ...roleEvent) int64 {
	t.Helper()
	got, last := roleEventsAfter(t, s, cursor)
	norm := func(list []roleEvent) []roleEvent {
		for i := range list {
			list[i].Before, list[i].After = orEmpty(list[i].Before), orEmpty(list[i].After)
		}
		return list
	}
	if !reflect.DeepEqual(norm(got), norm(want)) {
		t.Errorf("%s: user.roles_changed events\n got %+v\nwant %+v", step, got, want)
	}
	return last
}

func orEmpty(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// apiRoles reads a user's effective roles from /api/v1/users/{id}.
func apiRoles(t testing.TB, ts *testServer, key, id string) []string {
	t.Helper()
	status, doc := apiGet(t, ts, key, "/api/v1/users/"+id)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/users/%s: %d %v", id, status, doc)
	}
	var roles []string
	list, ok := doc["roles"].([]any)
	if !ok {
		t.Fatalf("the API's user has no roles array: %v", doc["roles"])
	}
	for _, r := range list {
		roles = append(roles, r.(string))
	}
	return orEmpty(roles)
}

func mustRole(t testing.TB, s *Store, name string, rules ...RoleRule) {
	t.Helper()
	if err := s.CreateRole(context.Background(), name, "", "admin"); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		r.Role = name
		if _, err := s.AddRoleRule(context.Background(), r, "admin"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRolesFollowGroupMembership walks roles granted by group membership
// through SCIM, as Entra changes it: a direct rule and a nested one, a group
// nested in the mapped group, a cycle of nested groups, a removal and a group
// delete. Each change shows in the API and as one event per affected user.
func TestRolesFollowGroupMembership(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	s := ts.store
	key, _, err := s.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	eng, platform := ts.createGroup(t, "Engineering"), ts.createGroup(t, "Platform")
	alice, bob, carol := ts.createUser(t, "alice@x"), ts.createUser(t, "bob@x"), ts.createUser(t, "carol@x")
	mustRole(t, s, "engineer", RoleRule{GroupID: eng, Nested: true})
	mustRole(t, s, "eng-lead", RoleRule{GroupID: eng}) // direct members only
	cursor := feedCursor(t, s)

	addMembersByPatch(t, ts, eng, alice)
	cursor = checkRoleEvents(t, s, cursor, "alice joins Engineering", roleEvent{alice, nil, []string{"eng-lead", "engineer"}})
	addMembersByPatch(t, ts, platform, bob, carol)
	cursor = checkRoleEvents(t, s, cursor, "bob and carol join Platform, not yet nested")
	addMembersByPatch(t, ts, eng, platform)
	wantNested := []roleEvent{{bob, nil, []string{"engineer"}}, {carol, nil, []string{"engineer"}}}
	slices.SortFunc(wantNested, func(a, b roleEvent) int { return strings.Compare(a.ID, b.ID) })
	cursor = checkRoleEvents(t, s, cursor, "Platform nested in Engineering", wantNested...)
	dave := ts.createUser(t, "dave@x")
	addMembersByPatch(t, ts, platform, dave) // a change in a group below the one the rule names
	cursor = checkRoleEvents(t, s, cursor, "dave joins Platform, nested in Engineering", roleEvent{dave, nil, []string{"engineer"}})
	for id, want := range map[string][]string{alice: {"eng-lead", "engineer"}, bob: {"engineer"}, carol: {"engineer"}} {
		if got := apiRoles(t, ts, key, id); !slices.Equal(got, want) {
			t.Errorf("API roles of %s = %q, want %q", id, got, want)
		}
	}

	// A cycle: Engineering in Platform too. Nobody's roles change, and the walk ends.
	addMembersByPatch(t, ts, platform, eng)
	cursor = checkRoleEvents(t, s, cursor, "a cycle of nested groups")
	if got := apiRoles(t, ts, key, bob); !slices.Equal(got, []string{"engineer"}) {
		t.Errorf("bob's roles in a cycle = %q", got)
	}

	status, _, doc := ts.do(t, "PATCH", "/Groups/"+eng, patchBody(map[string]any{"op": "Remove", "path": fmt.Sprintf("members[value eq %q]", alice)}))
	if status != http.StatusNoContent {
		t.Fatalf("remove alice: %d %v", status, doc)
	}
	cursor = checkRoleEvents(t, s, cursor, "alice leaves Engineering", roleEvent{alice, []string{"eng-lead", "engineer"}, nil})
	if got := apiRoles(t, ts, key, alice); len(got) != 0 {
		t.Errorf("alice's roles after leaving = %q", got)
	}

	if status, _, doc := ts.do(t, "DELETE", "/Groups/"+platform, nil); status != http.StatusNoContent {
		t.Fatalf("delete Platform: %d %v", status, doc)
	}
	wantGone := []roleEvent{{bob, []string{"engineer"}, nil}, {carol, []string{"engineer"}, nil}, {dave, []string{"engineer"}, nil}}
	slices.SortFunc(wantGone, func(a, b roleEvent) int { return strings.Compare(a.ID, b.ID) })
	cursor = checkRoleEvents(t, s, cursor, "Platform deleted", wantGone...)

	// A PUT of Engineering that names bob: a membership change by replacement.
	status, _, doc = ts.do(t, "PUT", "/Groups/"+eng, map[string]any{"schemas": []string{groupSchema}, "displayName": "Engineering",
		"members": []any{map[string]any{"value": bob}}})
	if status != http.StatusOK {
		t.Fatalf("PUT Engineering: %d %v", status, doc)
	}
	checkRoleEvents(t, s, cursor, "PUT names bob", roleEvent{bob, nil, []string{"eng-lead", "engineer"}})

	// Deleting the user: its roles end, told before user.deleted.
	if status, _, doc := ts.do(t, "DELETE", "/Users/"+bob, nil); status != http.StatusNoContent {
		t.Fatalf("delete bob: %d %v", status, doc)
	}
	events, err := s.Events(context.Background(), cursor, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		if e.ResourceID == bob {
			types = append(types, e.Type)
		}
	}
	if want := []string{evUserRolesChanged, evUserRolesChanged, evUserDeleted}; !slices.Equal(types, want) {
		t.Errorf("bob's events through the PUT and the delete = %q, want %q", types, want)
	}
}

// TestAppRolesBothShapesGiveOneRole sends one Entra app role in both shapes:
// in a POST as an object, in a PATCH as stringified JSON. SCIM returns each
// exactly as sent; the API maps both to the same role, and the assignment to
// the same appRoles entry.
func TestAppRolesBothShapesGiveOneRole(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	s := ts.store
	key, _, err := s.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	mustRole(t, s, "administrators", RoleRule{AppRole: "Admin"})
	mustRole(t, s, "role-1234", RoleRule{AppRole: "Role1234"}) // by display name, as in Microsoft's example
	cursor := feedCursor(t, s)

	postRole := map[string]any{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}
	body := newUserBody("posted@x")
	body["roles"] = []any{postRole}
	status, _, doc := ts.do(t, "POST", "/Users", body)
	if status != http.StatusCreated {
		t.Fatalf("POST: %d %v", status, doc)
	}
	posted := doc["id"].(string)

	patched := ts.createUser(t, "patched@x")
	stringified := `{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"Admin","displayName":"Administrator"}`
	op := `{"schemas":["` + patchSchema + `"],"Operations":[{"op":"Add","path":"roles","value":[{"value":` + jsonString(stringified) + `}]}]}`
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+patched, op); status != http.StatusOK {
		t.Fatalf("PATCH stringified roles: %d %v", status, doc)
	}
	example := ts.createUser(t, "example@x")
	exampleRole := `{"id":"06b07648-ecfe-589f-9d2f-6325724a46ee","value":"25","displayName":"Role1234"}`
	op = `{"schemas":["` + patchSchema + `"],"Operations":[{"op":"Add","path":"roles","value":[{"value":` + jsonString(exampleRole) + `}]}]}`
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+example, op); status != http.StatusOK {
		t.Fatalf("PATCH Microsoft's example: %d %v", status, doc)
	}

	// SCIM returns exactly what Entra sent.
	for _, tc := range []struct {
		id   string
		want []any
	}{
		{posted, []any{postRole}},
		{patched, []any{map[string]any{"value": stringified}}},
		{example, []any{map[string]any{"value": exampleRole}}},
	} {
		_, _, doc := ts.do(t, "GET", "/Users/"+tc.id, nil)
		if !reflect.DeepEqual(doc["roles"], tc.want) {
			t.Errorf("SCIM GET roles = %#v, want what was sent %#v", doc["roles"], tc.want)
		}
	}
	// The API maps both shapes to the same role.
	for id, want := range map[string][]string{posted: {"administrators"}, patched: {"administrators"}, example: {"role-1234"}} {
		if got := apiRoles(t, ts, key, id); !slices.Equal(got, want) {
			t.Errorf("API roles of %s = %q, want %q", id, got, want)
		}
	}
	_, doc = apiGet(t, ts, key, "/api/v1/users/"+patched)
	if got, want := doc["appRoles"], []any{map[string]any{"id": "06b07648-ecfe-589f-9d2f-6325724a46ee", "value": "Admin", "displayName": "Administrator"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("API appRoles = %#v, want %#v", got, want)
	}
	_, doc = apiGet(t, ts, key, "/api/v1/users/"+posted)
	if got, want := doc["appRoles"], []any{map[string]any{"value": "Admin"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("API appRoles of the POST shape = %#v, want %#v", got, want)
	}
	cursor = checkRoleEvents(t, s, cursor, "app roles assigned",
		roleEvent{posted, nil, []string{"administrators"}}, roleEvent{patched, nil, []string{"administrators"}}, roleEvent{example, nil, []string{"role-1234"}})

	// Entra removes the assignment (Remove with the same stringified value).
	op = `{"schemas":["` + patchSchema + `"],"Operations":[{"op":"Remove","path":"roles","value":[{"value":` + jsonString(stringified) + `}]}]}`
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+patched, op); status != http.StatusOK {
		t.Fatalf("PATCH remove roles: %d %v", status, doc)
	}
	checkRoleEvents(t, s, cursor, "app role removed", roleEvent{patched, []string{"administrators"}, nil})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestRoleRuleChangesTellEachUser changes rules as the admin does: each
// change records one event for every user whose roles it changed, and
// nothing for the others.
func TestRoleRuleChangesTellEachUser(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	var admins []string
	for i := range 3 {
		u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("admin%d@x", i),
			"roles": []any{map[string]any{"value": `{"id":"r1","value":"Admin"}`}}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		admins = append(admins, u.ID)
	}
	other := &User{Attrs: map[string]any{"userName": "other@x", "roles": []any{map[string]any{"value": "Reader"}}}}
	if err := s.CreateUser(ctx, other); err != nil {
		t.Fatal(err)
	}
	slices.Sort(admins)
	mustRole(t, s, "ops")
	cursor := feedCursor(t, s)

	n, err := s.AddRoleRule(ctx, RoleRule{Role: "OPS", AppRole: " admin "}, "root") // role and app role compared case-insensitively
	if err != nil || n != 3 {
		t.Fatalf("AddRoleRule: %d users, %v; want 3", n, err)
	}
	var want []roleEvent
	for _, id := range admins {
		want = append(want, roleEvent{id, nil, []string{"ops"}})
	}
	cursor = checkRoleEvents(t, s, cursor, "app-role rule added", want...)
	if _, err := s.AddRoleRule(ctx, RoleRule{Role: "ops", AppRole: "ADMIN"}, "root"); !errors.Is(err, ErrConflict) {
		t.Errorf("the same rule again: %v, want ErrConflict", err)
	}
	if _, err := s.AddRoleRule(ctx, RoleRule{Role: "ops", GroupID: "no-such-group"}, "root"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a rule on an unknown group: %v, want ErrNotFound", err)
	}
	if _, err := s.AddRoleRule(ctx, RoleRule{Role: "nobody", AppRole: "x"}, "root"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a rule of an unknown role: %v, want ErrNotFound", err)
	}

	roles, err := s.Roles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != 1 || roles[0].Holders != 3 || len(roles[0].Rules) != 1 || roles[0].Rules[0].AppRole != "admin" {
		t.Fatalf("Roles() = %+v", roles)
	}
	n, err = s.DeleteRoleRule(ctx, roles[0].Rules[0].ID)
	if err != nil || n != 3 {
		t.Fatalf("DeleteRoleRule: %d users, %v; want 3", n, err)
	}
	for i := range want {
		want[i].Before, want[i].After = want[i].After, nil
	}
	cursor = checkRoleEvents(t, s, cursor, "app-role rule deleted", want...)

	// Deleting the role takes it from its holders.
	if _, err := s.AddRoleRule(ctx, RoleRule{Role: "ops", AppRole: "reader"}, "root"); err != nil {
		t.Fatal(err)
	}
	cursor = checkRoleEvents(t, s, cursor, "reader rule", roleEvent{other.ID, nil, []string{"ops"}})
	if n, err := s.DeleteRole(ctx, "Ops"); err != nil || n != 1 {
		t.Fatalf("DeleteRole: %d, %v", n, err)
	}
	checkRoleEvents(t, s, cursor, "role deleted", roleEvent{other.ID, []string{"ops"}, nil})
	if err := s.CreateRole(ctx, "Ops", "", "root"); err != nil {
		t.Fatalf("a deleted role's name is free again: %v", err)
	}
	if err := s.CreateRole(ctx, "OPS", "", "root"); !errors.Is(err, ErrConflict) {
		t.Errorf("a second role named like the first: %v, want ErrConflict", err)
	}
	for _, name := range []string{"", "  ", "a\u200bb", strings.Repeat("r", maxRoleNameLen+1)} {
		if err := s.CreateRole(ctx, name, "", "root"); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateRole(%q): %v, want ErrInvalid", name, err)
		}
	}
}

// TestRoleGrantsOnManualAccounts grants roles by hand: only to manual
// accounts; revoked again; the roles of a user end with the user (told
// before user.deleted), and with a directory delete that keeps the account hidden.
func TestRoleGrantsOnManualAccounts(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	manual := &User{Attrs: map[string]any{"userName": "contractor@x"}, Kind: accountManual}
	directory := &User{Attrs: map[string]any{"userName": "staff@x", "roles": []any{map[string]any{"value": "Admin"}}}}
	for _, u := range []*User{manual, directory} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	mustRole(t, s, "support", RoleRule{AppRole: "Admin"})
	cursor := feedCursor(t, s)
	if err := s.GrantRole(ctx, manual.ID, "Support", "root"); err != nil {
		t.Fatal(err)
	}
	cursor = checkRoleEvents(t, s, cursor, "granted", roleEvent{manual.ID, nil, []string{"support"}})
	if err := s.GrantRole(ctx, manual.ID, "support", "root"); err != nil {
		t.Errorf("granting again: %v", err)
	}
	cursor = checkRoleEvents(t, s, cursor, "granted again")
	if err := s.GrantRole(ctx, directory.ID, "support", "root"); !errors.Is(err, ErrInvalid) {
		t.Errorf("grant on a directory account: %v, want ErrInvalid", err)
	}
	if err := s.GrantRole(ctx, manual.ID, "nope", "root"); !errors.Is(err, ErrNotFound) {
		t.Errorf("grant of an unknown role: %v, want ErrNotFound", err)
	}
	sources, err := s.UserRoleSources(ctx, manual.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != 1 || sources[0].Kind != roleByGrant || sources[0].Detail != "root" || sources[0].At.IsZero() {
		t.Errorf("sources of a grant = %+v", sources)
	}
	if err := s.RevokeRole(ctx, manual.ID, "support"); err != nil {
		t.Fatal(err)
	}
	cursor = checkRoleEvents(t, s, cursor, "revoked", roleEvent{manual.ID, []string{"support"}, nil})
	if err := s.RevokeRole(ctx, manual.ID, "support"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}

	// Deleted by the directory and kept hidden: no roles while hidden.
	if err := s.Deprovision(ctx, directory.ID, nil); err != nil {
		t.Fatal(err)
	}
	checkRoleEvents(t, s, cursor, "deprovisioned", roleEvent{directory.ID, []string{"support"}, nil})

	if err := s.GrantRole(ctx, manual.ID, "support", "root"); err != nil {
		t.Fatal(err)
	}
	cursor = feedCursor(t, s)
	if err := s.DeleteUser(ctx, manual.ID, nil); err != nil {
		t.Fatal(err)
	}
	events, err := s.Events(ctx, cursor, 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if want := []string{evUserRolesChanged, evUserDeleted}; !slices.Equal(types, want) {
		t.Errorf("deleting a user with a role records %q, want %q", types, want)
	}
}

// TestRolesMigrationIndexesExistingAppRoles upgrades a database whose users
// already have app roles (in both shapes): a rule added afterwards finds them.
func TestRolesMigrationIndexesExistingAppRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	version := slices.Index(migrations, rolesMigration)
	if version < 0 {
		t.Fatal("rolesMigration is not in migrations")
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:version] { // a Go step's text is an SQL comment: nothing to do on an empty database
		if _, err := raw.ExecContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	for i, roles := range []string{
		`[{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}]`,
		`[{"value":"{\"id\":\"r1\",\"value\":\"Admin\"}"}]`,
		`[{"value":"Reader"}]`,
	} {
		name := fmt.Sprintf("u%d", i)
		if _, err := raw.ExecContext(ctx, `INSERT INTO users (id, user_name, user_name_key, attrs, created, modified, version)
			VALUES (?, ?, ?, json_object('userName', ?, 'roles', json(?)), '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 1)`,
			name, name, name, name, roles); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustRole(t, s, "admins", RoleRule{AppRole: "admin"})
	for id, want := range map[string][]string{"u0": {"admins"}, "u1": {"admins"}, "u2": nil} {
		u, err := s.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(u.Roles, want) {
			t.Errorf("roles of %s after the migration = %q, want %q", id, u.Roles, want)
		}
	}
}

// TestRolesQueriesUseIndexes keeps the roles of one user, and the users a
// membership change concerns, on indexes: EXPLAIN QUERY PLAN may scan only
// the JSON array of ids and the recursive CTEs' own queues, never users,
// members or the roles tables.
func TestRolesQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	one := `["u1"]`
	tests := []struct {
		name string
		sql  string
		args []any
	}{
		{"stored roles of one user", storedRolesSQL, []any{one}},
		{"why one user holds its roles (the effective roles)", roleSourcesSQL, []any{one}},
		{"users affected by a membership change", usersUnderSQL, []any{`["g1"]`}},
		{"whether a rule names a group or a group above it", groupGrantsSQL, []any{"g1"}},
		{"holders of a role", roleHoldersSQL, []any{"ops"}},
		{"users with an app role", appRoleUsersSQL, []any{"admin"}},
		{"direct members of a group", groupUsersSQL, []any{"g1"}},
		{"roles taken", `DELETE FROM user_roles WHERE (user_id, role) IN (SELECT value->>0, value->>1 FROM json_each(?))`, []any{`[["u1","ops"]]`}},
	}
	scan := regexp.MustCompile(`^SCAN (\S+)`)
	allowed := []string{"j", "json_each", "cand", "up", "down", "CONSTANT"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := s.queryPlan(context.Background(), tc.sql, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range plan {
				if m := scan.FindStringSubmatch(line); m != nil && !slices.Contains(allowed, m[1]) {
					t.Errorf("%s in the plan:\n%s", line, strings.Join(plan, "\n"))
				}
			}
		})
	}
}

// TestExportsCarryRoles checks the roles column of the CSV export and the
// roles array of the JSON one.
func TestExportsCarryRoles(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u := &User{Attrs: map[string]any{"userName": "a@x", "roles": []any{map[string]any{"value": "Admin"}}}}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	mustRole(t, s, "admins", RoleRule{AppRole: "Admin"})
	mustRole(t, s, "billing", RoleRule{AppRole: "Admin"})
	var out bytes.Buffer
	if err := exportUsers(ctx, s, &out, "csv", []string{"userName", "roles"}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"userName", "roles"}, {"a@x", "admins; billing"}}; !reflect.DeepEqual(rows, want) {
		t.Errorf("CSV = %q, want %q", rows, want)
	}
	out.Reset()
	if err := exportUsers(ctx, s, &out, "json", nil); err != nil {
		t.Fatal(err)
	}
	var users []map[string]any
	if err := json.Unmarshal(out.Bytes(), &users); err != nil {
		t.Fatal(err)
	}
	if got, want := users[0]["roles"], []any{"admins", "billing"}; !reflect.DeepEqual(got, want) {
		t.Errorf("JSON roles = %#v, want %#v", got, want)
	}
}

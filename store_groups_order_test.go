package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// memberNames pages through a group's members two at a time and returns the
// names shown, in order.
func memberNames(t *testing.T, s *Store, groupID string) []string {
	t.Helper()
	var names []string
	for offset := 0; ; offset += 2 {
		page, total, err := s.GroupMembersPage(context.Background(), groupID, offset, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			names = append(names, m.Display)
		}
		if len(page) < 2 {
			if total != len(names) {
				t.Errorf("member count %d, paged %d", total, len(names))
			}
			return names
		}
	}
}

// TestGroupMembersPageSortedByName checks the group page's documented order:
// by display name (else userName, and a nested group by its name),
// case-insensitively, and still after a member is renamed.
func TestGroupMembersPageSortedByName(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	newUser := func(userName, displayName string) string {
		attrs := map[string]any{"userName": userName}
		if displayName != "" {
			attrs["displayName"] = displayName
		}
		u := &User{Attrs: attrs}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	// Enough members that UUID order matching name order by chance is unlikely.
	var ids []string
	for _, n := range []string{"Mallory", "alice", "Trent", "bob", "Eve", "carol", "Peggy", "dave", "Victor", "oscar"} {
		ids = append(ids, newUser(strings.ToLower(n)+"@x", n))
	}
	noDisplay := newUser("nadia@x", "")
	nested := &Group{Attrs: map[string]any{"displayName": "Frank's team"}}
	if err := s.CreateGroup(ctx, nested, nil); err != nil {
		t.Fatal(err)
	}
	g := &Group{Attrs: map[string]any{"displayName": "Everyone"}}
	if err := s.CreateGroup(ctx, g, append(ids, noDisplay, nested.ID)); err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "bob", "carol", "dave", "Eve", "Frank's team", "Mallory", "nadia@x", "oscar", "Peggy", "Trent", "Victor"}
	if got := memberNames(t, s, g.ID); !slices.Equal(got, want) {
		t.Errorf("members %q, want %q", got, want)
	}
	// Renaming a member (user or group) moves it.
	if _, err := s.UpdateUser(ctx, ids[0], func(u *User) error { u.Attrs["displayName"] = "Zed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, noDisplay, func(u *User) error { u.Attrs["userName"] = "Aaron@x"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateGroup(ctx, nested.ID, func(g *Group) ([]MemberChange, error) {
		g.Attrs["displayName"] = "Bravo team"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	want = []string{"Aaron@x", "alice", "bob", "Bravo team", "carol", "dave", "Eve", "oscar", "Peggy", "Trent", "Victor", "Zed"}
	if got := memberNames(t, s, g.ID); !slices.Equal(got, want) {
		t.Errorf("after renames: members %q, want %q", got, want)
	}
}

// TestMembersNameMigration upgrades a database made before members carried
// their names and checks that existing members come out sorted by name.
func TestMembersNameMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	before := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "members_by_name") })
	if before < 0 {
		t.Fatal("no migration creates members_by_name")
	}
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:before] {
		if _, err := raw.ExecContext(ctx, m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	stmts := []string{
		fmt.Sprintf("PRAGMA user_version = %d", before),
		`INSERT INTO groups (id, display_name, display_name_key, attrs, created, modified, version, member_count)
			VALUES ('g', 'Staff', 'staff', '{}', '', '', 1, 5), ('n', 'Board', 'board', '{}', '', '', 1, 0)`,
	}
	for i, name := range []string{"Yolanda", "", "Wendy", "Xavier"} {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO users (id, user_name, user_name_key, display_name, display_name_key,
			attrs, created, modified, version) VALUES ('u%d', 'z%d@x', 'z%d@x', nullif('%s', ''), nullif(lower('%s'), ''), '{}', '', '', 1)`,
			i, i, i, name, name))
		stmts = append(stmts, fmt.Sprintf("INSERT INTO members (group_id, member_id, member_type) VALUES ('g', 'u%d', 'User')", i))
	}
	stmts = append(stmts, "INSERT INTO members (group_id, member_id, member_type) VALUES ('g', 'n', 'Group')")
	for _, q := range stmts {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStoreAt(t, path)
	defer s.Close()
	if got, want := memberNames(t, s, "g"), []string{"Board", "Wendy", "Xavier", "Yolanda", "z1@x"}; !slices.Equal(got, want) {
		t.Errorf("members after the upgrade %q, want %q", got, want)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStoreCreateGroupWithMembers(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u1 := &User{Attrs: map[string]any{"userName": "m1@example.com", "displayName": "Member One"}}
	if err := s.CreateUser(ctx, u1); err != nil {
		t.Fatal(err)
	}
	u2 := stUser(t, s, "m2@example.com")
	sub := stGroup(t, s, "Sub Team")
	g := stGroup(t, s, "Team", u1.ID, sub.ID, u2.ID, u1.ID) // duplicate id is harmless

	if got, want := g.Version, int64(1); got != want {
		t.Errorf("Version = %d, want %d", got, want)
	}
	want := []Member{
		{ID: u1.ID, Type: memberUser, Display: "Member One"},
		{ID: u2.ID, Type: memberUser, Display: "m2@example.com"},
		{ID: sub.ID, Type: memberGroup, Display: "Sub Team"},
	}
	slices.SortFunc(want, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	if got := stMembers(t, s, g.ID); !slices.Equal(got, want) {
		t.Errorf("members = %+v, want %+v", got, want)
	}
	if got, want := stMemberCount(t, s, g.ID), 3; got != want {
		t.Errorf("member_count = %d, want %d", got, want)
	}
	// Without members, Members stays nil.
	g2, err := s.GroupByID(ctx, g.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if g2.Members != nil {
		t.Errorf("GroupByID(withMembers=false).Members = %v, want nil", g2.Members)
	}
	if got, want := stringAttr(g2.Attrs, "displayName"), "Team"; got != want {
		t.Errorf("displayName = %q, want %q", got, want)
	}
}

// Unknown member ids are skipped, not refused: the known members are added
// and the skipped ids recorded (Entra sends ids it cached; see applyMemberChanges).
func TestStoreCreateGroupSkipsUnknownMembers(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u1 := stUser(t, s, "k1@example.com")
	u2 := stUser(t, s, "k2@example.com")
	g := &Group{Attrs: map[string]any{"displayName": "Ghosts"}}
	if err := s.CreateGroup(ctx, g, []string{u1.ID, "ghost-1", u2.ID, "ghost-2", "ghost-1"}); err != nil {
		t.Fatalf("CreateGroup with unknown members: %v", err)
	}
	if got, want := g.SkippedMembers, []string{"ghost-1", "ghost-2"}; !slices.Equal(got, want) {
		t.Errorf("SkippedMembers = %v, want %v (in the order sent, once each)", got, want)
	}
	if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(u1.ID, u2.ID); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	if got, want := stMemberCount(t, s, g.ID), 2; got != want {
		t.Errorf("member_count = %d, want %d", got, want)
	}
	skipped, err := s.SkippedMembers(ctx, g.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(skipped), 2; got != want {
		t.Fatalf("skipped rows = %v, want %d", skipped, want)
	}
	for _, k := range skipped {
		if k.GroupID != g.ID || k.GroupName != "Ghosts" || k.Count != 1 || k.FirstSkipped.IsZero() {
			t.Errorf("skipped row = %+v, want group %s named Ghosts, count 1, with a time", k, g.ID)
		}
	}
}

// The skipped list is the drift Entra cannot see: ids it believes are members.
// It counts repeats, and forgets an id once Entra removes it from the group.
func TestStoreSkippedMembersTrackDrift(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u := []string{stUser(t, s, "d0@example.com").ID, stUser(t, s, "d1@example.com").ID, stUser(t, s, "d2@example.com").ID}
	g := stGroup(t, s, "Drift", u[0], u[1])
	other := stGroup(t, s, "Other")
	update := func(changes ...MemberChange) *Group {
		t.Helper()
		out, err := s.UpdateGroup(ctx, g.ID, func(g *Group) ([]MemberChange, error) {
			g.Attrs["displayName"] = "Drift"
			return changes, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	skippedIDs := func(groupID string) map[string]int {
		t.Helper()
		rows, err := s.SkippedMembers(ctx, groupID, 100)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range rows {
			out[r.MemberID] = r.Count
		}
		return out
	}

	got := update(MemberChange{Kind: membersRemove, IDs: []string{u[0]}},
		MemberChange{Kind: membersAdd, IDs: []string{u[2], "ghost-a", "ghost-b"}})
	if want := []string{"ghost-a", "ghost-b"}; !slices.Equal(got.SkippedMembers, want) {
		t.Errorf("SkippedMembers = %v, want %v", got.SkippedMembers, want)
	}
	if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(u[1], u[2]); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v: the known members must be applied", got, want)
	}
	if got, want := got.Version, int64(2); got != want {
		t.Errorf("Version = %d, want %d", got, want)
	}
	// The same stale id again: counted, and a request of only unknown ids changes no version.
	if got := update(MemberChange{Kind: membersAdd, IDs: []string{"ghost-a"}}); got.Version != 2 {
		t.Errorf("Version after an add of only unknown ids = %d, want 2", got.Version)
	}
	if got, want := skippedIDs(g.ID), map[string]int{"ghost-a": 2, "ghost-b": 1}; !maps.Equal(got, want) {
		t.Errorf("skipped = %v, want %v", got, want)
	}
	if _, err := s.UpdateGroup(ctx, other.ID, func(*Group) ([]MemberChange, error) {
		return []MemberChange{{Kind: membersAdd, IDs: []string{"ghost-a"}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	sum, err := s.SkippedMembersSummary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.IDs != 3 || sum.Groups != 2 || sum.LastSkipped.IsZero() {
		t.Errorf("summary = %+v, want 3 ids in 2 groups", sum)
	}

	// Entra removes what it believes is a member: the drift is gone.
	update(MemberChange{Kind: membersRemove, IDs: []string{"ghost-a"}})
	if got, want := skippedIDs(g.ID), map[string]int{"ghost-b": 1}; !maps.Equal(got, want) {
		t.Errorf("skipped after removing ghost-a = %v, want %v", got, want)
	}
	// A replacement keeps only the skipped ids it names again.
	update(MemberChange{Kind: membersAdd, IDs: []string{"ghost-c"}})
	update(MemberChange{Kind: membersReplace, IDs: []string{u[1], "ghost-c"}})
	if got, want := skippedIDs(g.ID), map[string]int{"ghost-c": 2}; !maps.Equal(got, want) {
		t.Errorf("skipped after replace = %v, want %v", got, want)
	}
	update(MemberChange{Kind: membersRemoveAll})
	if got := skippedIDs(g.ID); len(got) != 0 {
		t.Errorf("skipped after removing all members = %v, want none", got)
	}
	// Deleting a group deletes its skipped ids.
	if err := s.DeleteGroup(ctx, other.ID, nil); err != nil {
		t.Fatal(err)
	}
	if got := skippedIDs(""); len(got) != 0 {
		t.Errorf("skipped after deleting the group = %v, want none", got)
	}
}

func TestStoreGroupDisplayNameUnique(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		first, again string
		conflict     bool
	}{
		{name: "same", first: "Admins", again: "Admins", conflict: true},
		{name: "ascii case", first: "Admins", again: "aDMINS", conflict: true},
		{name: "non-ascii case", first: "Ärzte", again: "äRZTE", conflict: true},
		{name: "different", first: "Ärzte", again: "Arzte", conflict: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := context.Background()
			stGroup(t, s, tc.first)
			g := &Group{Attrs: map[string]any{"displayName": tc.again}}
			err := s.CreateGroup(ctx, g, nil)
			if tc.conflict != errors.Is(err, ErrConflict) || !tc.conflict && err != nil {
				t.Fatalf("CreateGroup(%q) after %q: err = %v, want conflict %v", tc.again, tc.first, err, tc.conflict)
			}
			if !tc.conflict {
				return
			}
			// Renaming another group onto the name conflicts too and changes nothing.
			other := stGroup(t, s, "Other")
			_, err = s.UpdateGroup(ctx, other.ID, func(g *Group) ([]MemberChange, error) {
				g.Attrs["displayName"] = tc.again
				return nil, nil
			})
			if !errors.Is(err, ErrConflict) {
				t.Fatalf("rename onto %q: err = %v, want ErrConflict", tc.again, err)
			}
			got, err := s.GroupByID(ctx, other.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := stringAttr(got.Attrs, "displayName"), "Other"; got != want {
				t.Errorf("displayName after failed rename = %q, want %q", got, want)
			}
			if got, want := got.Version, int64(1); got != want {
				t.Errorf("Version after failed rename = %d, want %d", got, want)
			}
		})
	}
}

func TestStoreUpdateGroupMemberChanges(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	clock := stSetClock(s)
	u := make([]string, 6)
	for i := range u {
		u[i] = stUser(t, s, fmt.Sprintf("mc%d@example.com", i)).ID
	}
	sub := stGroup(t, s, "nested").ID
	g := stGroup(t, s, "changing")

	add := func(ids ...string) MemberChange { return MemberChange{Kind: membersAdd, IDs: ids} }
	remove := func(ids ...string) MemberChange { return MemberChange{Kind: membersRemove, IDs: ids} }
	replace := func(ids ...string) MemberChange { return MemberChange{Kind: membersReplace, IDs: ids} }
	removeAll := MemberChange{Kind: membersRemoveAll}
	matching := func(f string) MemberChange {
		return MemberChange{Kind: membersRemoveMatching, Filter: stFilter(t, f)}
	}

	// The steps run in order on the same group.
	steps := []struct {
		name    string
		changes []MemberChange
		want    []string
		changed bool
	}{
		{"add three", []MemberChange{add(u[0], u[1], u[2])}, []string{u[0], u[1], u[2]}, true},
		{"duplicate add", []MemberChange{add(u[1])}, []string{u[0], u[1], u[2]}, false},
		{"duplicate add of all", []MemberChange{add(u[2], u[0], u[1])}, []string{u[0], u[1], u[2]}, false},
		{"remove non-member", []MemberChange{remove(u[4])}, []string{u[0], u[1], u[2]}, false},
		{"remove unknown id", []MemberChange{remove("no-such-id")}, []string{u[0], u[1], u[2]}, false},
		{"remove one", []MemberChange{remove(u[0])}, []string{u[1], u[2]}, true},
		{"add group and user, then remove", []MemberChange{add(sub, u[3]), remove(u[1])}, []string{u[2], u[3], sub}, true},
		{"remove matching ids", []MemberChange{matching(fmt.Sprintf(`value eq "%s" or value eq "%s"`, u[2], u[3]))}, []string{sub}, true},
		{"remove matching absent ids", []MemberChange{matching(fmt.Sprintf(`value eq "%s" or value eq "%s"`, u[0], u[5]))}, []string{sub}, false},
		{"add users, remove groups by type", []MemberChange{add(u[0], u[1]), matching(`type eq "Group"`)}, []string{u[0], u[1]}, true},
		{"remove by type, none match", []MemberChange{matching(`type eq "Group"`)}, []string{u[0], u[1]}, false},
		{"remove by display", []MemberChange{matching(`display eq "MC1@example.com"`)}, []string{u[0]}, true},
		{"replace", []MemberChange{replace(u[5], sub)}, []string{u[5], sub}, true},
		{"remove all", []MemberChange{removeAll}, []string{}, true},
		{"remove all when empty", []MemberChange{removeAll}, []string{}, false},
		{"remove all then add", []MemberChange{add(u[0]), removeAll, add(u[1])}, []string{u[1]}, true},
		{"add then remove all", []MemberChange{add(u[2]), removeAll}, []string{}, true},
		{"replace with empty on empty", []MemberChange{replace()}, []string{}, false},
	}
	version := g.Version
	for i, st := range steps {
		clock.t = clock.t.Add(time.Second)
		before, err := s.GroupByID(ctx, g.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.UpdateGroup(ctx, g.ID, func(*Group) ([]MemberChange, error) { return st.changes, nil })
		if err != nil {
			t.Fatalf("step %d %s: %v", i, st.name, err)
		}
		if st.changed {
			version++
		}
		if got, want := out.Version, version; got != want {
			t.Errorf("step %d %s: returned Version = %d, want %d", i, st.name, got, want)
		}
		after, err := s.GroupByID(ctx, g.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := after.Version, version; got != want {
			t.Errorf("step %d %s: stored Version = %d, want %d", i, st.name, got, want)
		}
		wantModified := before.Modified
		if st.changed {
			wantModified = clock.t
		}
		if got, want := after.Modified, wantModified; !got.Equal(want) {
			t.Errorf("step %d %s: Modified = %v, want %v", i, st.name, got, want)
		}
		if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(st.want...); !slices.Equal(got, want) {
			t.Errorf("step %d %s: members = %v, want %v", i, st.name, got, want)
		}
	}
}

// TestStoreUpdateGroupNetNoOpKeepsVersion documents UpdateGroup's contract
// "Nothing is written when nothing changes": membership changes whose net
// effect is nil (typically a PUT that repeats the current member list) must
// leave version and lastModified alone, as UpdateUser does for attributes.
func TestStoreUpdateGroupNetNoOpKeepsVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		changes func(u1, u2, u3 string) []MemberChange
	}{
		{"replace with the same set", func(u1, u2, u3 string) []MemberChange {
			return []MemberChange{{Kind: membersReplace, IDs: []string{u2, u1}}}
		}},
		{"add then remove a non-member", func(u1, u2, u3 string) []MemberChange {
			return []MemberChange{{Kind: membersAdd, IDs: []string{u3}}, {Kind: membersRemove, IDs: []string{u3}}}
		}},
		{"remove then re-add a member", func(u1, u2, u3 string) []MemberChange {
			return []MemberChange{{Kind: membersRemove, IDs: []string{u1}}, {Kind: membersAdd, IDs: []string{u1}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := context.Background()
			clock := stSetClock(s)
			u1 := stUser(t, s, "same1@example.com")
			u2 := stUser(t, s, "same2@example.com")
			u3 := stUser(t, s, "same3@example.com")
			g := stGroup(t, s, "same", u1.ID, u2.ID)
			clock.t = clock.t.Add(time.Hour)
			out, err := s.UpdateGroup(ctx, g.ID, func(*Group) ([]MemberChange, error) {
				return tc.changes(u1.ID, u2.ID, u3.ID), nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := out.Version, g.Version; got != want {
				t.Errorf("Version = %d, want %d (the members did not change)", got, want)
			}
			if got, want := out.Modified, g.Modified; !got.Equal(want) {
				t.Errorf("Modified = %v, want %v (the members did not change)", got, want)
			}
			if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(u1.ID, u2.ID); !slices.Equal(got, want) {
				t.Errorf("members = %v, want %v", got, want)
			}
		})
	}
}

func TestStoreUpdateGroupFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	errFn := errors.New("fn failed")
	for _, tc := range []struct {
		name      string
		fn        func(self string, u []string) func(*Group) ([]MemberChange, error)
		wantErr   error
		wantIDs   []string // for *UnknownMembersError (a group naming itself), the ids it must name
		wantNamed bool
	}{
		{name: "self as member", fn: func(self string, u []string) func(*Group) ([]MemberChange, error) {
			return func(g *Group) ([]MemberChange, error) {
				return []MemberChange{{Kind: membersAdd, IDs: []string{u[2], self}}}, nil
			}
		}, wantIDs: []string{"self"}},
		{name: "self by replace", fn: func(self string, u []string) func(*Group) ([]MemberChange, error) {
			return func(g *Group) ([]MemberChange, error) {
				return []MemberChange{{Kind: membersReplace, IDs: []string{self}}}, nil
			}
		}, wantIDs: []string{"self"}},
		{name: "fn error", fn: func(self string, u []string) func(*Group) ([]MemberChange, error) {
			return func(g *Group) ([]MemberChange, error) {
				g.Attrs["displayName"] = "renamed"
				return []MemberChange{{Kind: membersRemoveAll}}, errFn
			}
		}, wantErr: errFn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := context.Background()
			u := []string{stUser(t, s, "f0@example.com").ID, stUser(t, s, "f1@example.com").ID,
				stUser(t, s, "f2@example.com").ID}
			g := stGroup(t, s, "fixed", u[0], u[1])
			_, err := s.UpdateGroup(ctx, g.ID, tc.fn(g.ID, u))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			} else {
				var ume *UnknownMembersError
				if !errors.As(err, &ume) {
					t.Fatalf("err = %v, want *UnknownMembersError", err)
				}
				for _, id := range tc.wantIDs {
					if id == "self" {
						id = g.ID
					}
					if !strings.Contains(strings.Join(ume.IDs, " "), id) {
						t.Errorf("UnknownMembersError.IDs = %q, want it to name %s", ume.IDs, id)
					}
				}
			}
			got, err := s.GroupByID(ctx, g.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := got.Version, int64(1); got != want {
				t.Errorf("Version = %d, want %d", got, want)
			}
			if got, want := stringAttr(got.Attrs, "displayName"), "fixed"; got != want {
				t.Errorf("displayName = %q, want %q", got, want)
			}
			if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(u[0], u[1]); !slices.Equal(got, want) {
				t.Errorf("members = %v, want %v", got, want)
			}
		})
	}
}

func TestStoreUserGroupsField(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u := stUser(t, s, "grouped@example.com")
	loner := stUser(t, s, "loner@example.com")
	beta := stGroup(t, s, "Beta", u.ID)
	alpha := stGroup(t, s, "alpha", u.ID)
	stGroup(t, s, "Outer", alpha.ID) // u is only an indirect member of Outer

	for _, tc := range []struct {
		name string
		id   string
		want []GroupRef
	}{
		{"member of two, nested in a third", u.ID, []GroupRef{{alpha.ID, "alpha"}, {beta.ID, "Beta"}}},
		{"member of none", loner.ID, nil},
	} {
		got, err := s.UserByID(ctx, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Groups, tc.want) {
			t.Errorf("%s: Groups = %v, want %v", tc.name, got.Groups, tc.want)
		}
	}

	// Renaming a group shows in the user's groups; so does UpdateUser's result.
	if _, err := s.UpdateGroup(ctx, beta.ID, func(g *Group) ([]MemberChange, error) {
		g.Attrs["displayName"] = "Aardvarks"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	out, err := s.UpdateUser(ctx, u.ID, func(*User) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.Groups, []GroupRef{{beta.ID, "Aardvarks"}, {alpha.ID, "alpha"}}; !slices.Equal(got, want) {
		t.Errorf("UpdateUser Groups = %v, want %v", got, want)
	}
	// ListUsers fills Groups too.
	users, total, err := s.ListUsers(ctx, ListQuery{Filter: stFilter(t, `groups eq "`+alpha.ID+`"`), Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if total != 1 || len(users) != 1 || users[0].ID != u.ID {
		t.Fatalf("ListUsers groups eq alpha = %d users (total %d), want just %s", len(users), total, u.ID)
	}
	if got, want := len(users[0].Groups), 2; got != want {
		t.Errorf("ListUsers Groups = %v, want %d groups", users[0].Groups, want)
	}
}

func TestStoreDeleteGroup(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u1 := stUser(t, s, "d1@example.com")
	u2 := stUser(t, s, "d2@example.com")
	u3 := stUser(t, s, "d3@example.com")
	child := stGroup(t, s, "child", u1.ID, u2.ID)
	parent := stGroup(t, s, "parent", child.ID, u3.ID)
	other := stGroup(t, s, "other", u3.ID)

	errVeto := errors.New("veto")
	if err := s.DeleteGroup(ctx, child.ID, func(int64) error { return errVeto }); !errors.Is(err, errVeto) {
		t.Fatalf("vetoed DeleteGroup: err = %v, want %v", err, errVeto)
	}
	if got, want := stMemberIDs(stMembers(t, s, parent.ID)), stSorted(child.ID, u3.ID); !slices.Equal(got, want) {
		t.Errorf("parent members after vetoed delete = %v, want %v", got, want)
	}

	if err := s.DeleteGroup(ctx, child.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GroupByID(ctx, child.ID, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupByID of deleted group: err = %v, want ErrNotFound", err)
	}
	for _, id := range []string{u1.ID, u2.ID} {
		u, err := s.UserByID(ctx, id)
		if err != nil {
			t.Errorf("member user %s of the deleted group: %v", id, err)
			continue
		}
		if len(u.Groups) != 0 {
			t.Errorf("user %s Groups = %v, want none", id, u.Groups)
		}
	}
	if got, want := stMemberIDs(stMembers(t, s, parent.ID)), []string{u3.ID}; !slices.Equal(got, want) {
		t.Errorf("parent members = %v, want %v", got, want)
	}
	p, err := s.GroupByID(ctx, parent.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Version, int64(2); got != want {
		t.Errorf("parent Version = %d, want %d", got, want)
	}
	if got, want := stMemberIDs(stMembers(t, s, other.ID)), []string{u3.ID}; !slices.Equal(got, want) {
		t.Errorf("unrelated group members = %v, want %v", got, want)
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM members WHERE group_id = ? OR member_id = ?", child.ID, child.ID), 0; got != want {
		t.Errorf("membership rows of the deleted group = %d, want %d", got, want)
	}
	if err := s.DeleteGroup(ctx, child.ID, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteGroup: err = %v, want ErrNotFound", err)
	}
}

// benchGroups is a store with 100,000 users, one group per size in
// benchGroupSizes holding that many of them, and spare users in no group.
func benchGroups(b *testing.B) (s *Store, groups map[string]string, spare []string) {
	b.Helper()
	s, ids := benchStore100k(b)
	spare = benchUsers(b, s, "spare", 1_000)
	groups = map[string]string{}
	for _, bs := range benchGroupSizes {
		g := stGroup(b, s, "group "+bs.name, ids[:bs.n]...)
		groups[bs.name] = g.ID
		if got := stMemberCount(b, s, g.ID); got != bs.n {
			b.Fatalf("group %s: member_count = %d, want %d", bs.name, got, bs.n)
		}
	}
	return s, groups, spare
}

func BenchmarkGroupAddMember(b *testing.B) {
	s, groups, spare := benchGroups(b)
	ctx := context.Background()
	for _, bs := range benchGroupSizes {
		b.Run(bs.name, func(b *testing.B) {
			id := groups[bs.name]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m := spare[i%len(spare)]
				i++
				for _, kind := range []memberChangeKind{membersAdd, membersRemove} {
					if _, err := s.UpdateGroup(ctx, id, func(*Group) ([]MemberChange, error) {
						return []MemberChange{{Kind: kind, IDs: []string{m}}}, nil
					}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if got := stMemberCount(b, s, id); got != bs.n {
				b.Fatalf("member_count after the benchmark = %d, want %d", got, bs.n)
			}
		})
	}
}

func BenchmarkGroupReadExcludeMembers(b *testing.B) {
	s, groups, _ := benchGroups(b)
	ctx := context.Background()
	for _, bs := range benchGroupSizes {
		b.Run(bs.name, func(b *testing.B) {
			id := groups[bs.name]
			b.ReportAllocs()
			for b.Loop() {
				g, err := s.GroupByID(ctx, id, false)
				if err != nil {
					b.Fatal(err)
				}
				if g.Members != nil {
					b.Fatal("members loaded")
				}
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// newTestStore opens a real database file in a fresh temporary directory.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "scimbox.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ---- helpers ----

// stClock is an injectable clock for Store.now; tests that use it do not run
// it concurrently with writes from other goroutines.
type stClock struct{ t time.Time }

func (c *stClock) now() time.Time { return c.t }

// stSetClock makes s use a fixed, settable clock starting at a whole millisecond.
func stSetClock(s *Store) *stClock {
	c := &stClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s.now = c.now
	return c
}

func stUser(t testing.TB, s *Store, userName string) *User {
	t.Helper()
	u := &User{Attrs: map[string]any{"userName": userName}}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("create user %q: %v", userName, err)
	}
	return u
}

func stGroup(t testing.TB, s *Store, name string, members ...string) *Group {
	t.Helper()
	g := &Group{Attrs: map[string]any{"displayName": name}}
	if err := s.CreateGroup(context.Background(), g, members); err != nil {
		t.Fatalf("create group %q: %v", name, err)
	}
	return g
}

func stFilter(t testing.TB, s string) filterExpr {
	t.Helper()
	f, err := parseFilter(s)
	if err != nil {
		t.Fatalf("parse filter %q: %v", s, err)
	}
	return f
}

// stMemberCount reads the stored member_count of a group.
func stMemberCount(t testing.TB, s *Store, groupID string) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), "SELECT member_count FROM groups WHERE id = ?", groupID).Scan(&n); err != nil {
		t.Fatalf("member_count of %s: %v", groupID, err)
	}
	return n
}

func stCountRows(t testing.TB, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// stMembers returns a group's members (stSorted by id) and checks member_count agrees.
func stMembers(t testing.TB, s *Store, groupID string) []Member {
	t.Helper()
	g, err := s.GroupByID(context.Background(), groupID, true)
	if err != nil {
		t.Fatalf("group %s: %v", groupID, err)
	}
	slices.SortFunc(g.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	if got, want := stMemberCount(t, s, groupID), len(g.Members); got != want {
		t.Errorf("group %s: member_count = %d, want %d (the number of member rows)", groupID, got, want)
	}
	return g.Members
}

func stMemberIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids
}

func stSorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

func stDiscardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ---- migrations ----

func TestStoreOpenTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "twice.db")
	s1, err := OpenStore(ctx, path, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	u := stUser(t, s1, "kept@example.com")
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	// Re-applying migration 1 would fail with "table users already exists".
	s2, err := OpenStore(ctx, path, stDiscardLog())
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer s2.Close()
	got, err := s2.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("user after reopen: %v", err)
	}
	if got, want := stringAttr(got.Attrs, "userName"), "kept@example.com"; got != want {
		t.Errorf("userName after reopen = %q, want %q", got, want)
	}
	var version int
	if err := s2.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if got, want := version, len(migrations); got != want {
		t.Errorf("user_version after reopen = %d, want %d", got, want)
	}
}

func TestStoreMigrationUserVersion(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	var version int
	if err := s.r.QueryRowContext(context.Background(), "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if got, want := version, len(migrations); got != want {
		t.Errorf("user_version = %d, want len(migrations) = %d", got, want)
	}
}

func TestStoreMigrationRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "future.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, "PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenStore(ctx, path, stDiscardLog())
	if err == nil {
		s.Close()
		t.Fatal("OpenStore on a database with user_version 99 succeeded, want an error")
	}
	for _, want := range []string{"99", fmt.Sprint(len(migrations)), "newer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// The refused database is left as it was: no tables, version still 99.
	raw, err = sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var version, tables int
	if err := raw.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := raw.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if got, want := version, 99; got != want {
		t.Errorf("user_version after refused open = %d, want %d", got, want)
	}
	if got, want := tables, 0; got != want {
		t.Errorf("schema objects after refused open = %d, want %d", got, want)
	}
}

func TestStoreOpenStoreRequiresFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path string }{
		{"empty", ""},
		{"memory", ":memory:"},
		{"memory uri", "file::memory:?cache=shared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := OpenStore(context.Background(), tc.path, stDiscardLog())
			if err == nil {
				s.Close()
				t.Fatalf("OpenStore(%q) succeeded, want an error", tc.path)
			}
		})
	}
}

// ---- users ----

func TestStoreCreateUserAssignsMeta(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	clock := stSetClock(s)
	clock.t = clock.t.Add(1234567 * time.Microsecond) // sub-millisecond part is dropped
	u := &User{Attrs: map[string]any{"userName": "meta@example.com", "displayName": "Meta"}}
	if err := s.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if ok, _ := regexp.MatchString(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, u.ID); !ok {
		t.Errorf("id = %q, want a UUIDv4", u.ID)
	}
	wantTime := clock.t.UTC().Truncate(time.Millisecond)
	if got, want := u.Created, wantTime; !got.Equal(want) {
		t.Errorf("Created = %v, want %v", got, want)
	}
	if got, want := u.Modified, wantTime; !got.Equal(want) {
		t.Errorf("Modified = %v, want %v", got, want)
	}
	if got, want := u.Version, int64(1); got != want {
		t.Errorf("Version = %d, want %d", got, want)
	}

	got, err := s.UserByID(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := got.ID, u.ID; got != want {
		t.Errorf("read ID = %q, want %q", got, want)
	}
	if !got.Created.Equal(wantTime) || !got.Modified.Equal(wantTime) || got.Version != 1 {
		t.Errorf("read meta = %v/%v/v%d, want %v/%v/v1", got.Created, got.Modified, got.Version, wantTime, wantTime)
	}
	if got, want := stringAttr(got.Attrs, "displayName"), "Meta"; got != want {
		t.Errorf("read displayName = %q, want %q", got, want)
	}

	other := stUser(t, s, "other@example.com")
	if other.ID == u.ID {
		t.Errorf("two users got the same id %q", u.ID)
	}
}

func TestStoreUserNameUniqueCaseInsensitive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		first, again string
		conflict     bool
	}{
		{name: "same", first: "alice@x", again: "alice@x", conflict: true},
		{name: "ascii case", first: "Alice@Example.com", again: "aLICE@example.COM", conflict: true},
		{name: "umlaut", first: "ÄRGER@x", again: "ärger@x", conflict: true},
		{name: "umlaut reversed", first: "ärger@x", again: "ÄRGER@x", conflict: true},
		{name: "final sigma", first: "ΣΊΣΥΦΟΣ", again: "σίσυφος", conflict: true},
		{name: "kelvin sign", first: "\u212Aelvin", again: "kelvin", conflict: true},
		{name: "different letters", first: "ärger@x", again: "arger@x", conflict: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := context.Background()
			first := stUser(t, s, tc.first)
			err := s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": tc.again}})
			if tc.conflict {
				if !errors.Is(err, ErrConflict) {
					t.Fatalf("second CreateUser(%q) after %q: err = %v, want ErrConflict", tc.again, tc.first, err)
				}
				if got, want := stCountRows(t, s, "SELECT count(*) FROM users"), 1; got != want {
					t.Errorf("users after conflict = %d, want %d", got, want)
				}
				// The first user is intact.
				u, err := s.UserByID(ctx, first.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := stringAttr(u.Attrs, "userName"), tc.first; got != want {
					t.Errorf("first userName = %q, want %q", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("second CreateUser(%q) after %q: %v", tc.again, tc.first, err)
			}
		})
	}
}

func TestStoreUpdateUser(t *testing.T) {
	t.Parallel()
	errPrecondition := errors.New("precondition failed")
	for _, tc := range []struct {
		name        string
		fn          func(u *User) error
		wantErr     error
		wantVersion int64
		wantDisplay string
		wantNewTime bool
	}{
		{name: "no change", fn: func(u *User) error { return nil }, wantVersion: 1, wantDisplay: "Old"},
		{name: "same value rewritten", fn: func(u *User) error { u.Attrs["displayName"] = "Old"; return nil },
			wantVersion: 1, wantDisplay: "Old"},
		{name: "change", fn: func(u *User) error { u.Attrs["displayName"] = "New"; return nil },
			wantVersion: 2, wantDisplay: "New", wantNewTime: true},
		{name: "fn error after mutating", fn: func(u *User) error {
			u.Attrs["displayName"] = "New"
			u.Attrs["userName"] = "changed@example.com"
			return errPrecondition
		}, wantErr: errPrecondition, wantVersion: 1, wantDisplay: "Old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			ctx := context.Background()
			clock := stSetClock(s)
			u := &User{Attrs: map[string]any{"userName": "upd@example.com", "displayName": "Old",
				"emails": []any{map[string]any{"value": "Upd@Example.com", "type": "work"}}}}
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			created := u.Modified
			clock.t = clock.t.Add(time.Hour)

			out, err := s.UpdateUser(ctx, u.ID, tc.fn)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("UpdateUser: err = %v, want %v", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("UpdateUser: %v", err)
				}
				if got, want := out.Version, tc.wantVersion; got != want {
					t.Errorf("returned Version = %d, want %d", got, want)
				}
			}
			got, err := s.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := got.Version, tc.wantVersion; got != want {
				t.Errorf("stored Version = %d, want %d", got, want)
			}
			wantModified := created
			if tc.wantNewTime {
				wantModified = clock.t
			}
			if got, want := got.Modified, wantModified; !got.Equal(want) {
				t.Errorf("stored Modified = %v, want %v", got, want)
			}
			if got, want := got.Created, created; !got.Equal(want) {
				t.Errorf("stored Created = %v, want %v", got, want)
			}
			if got, want := stringAttr(got.Attrs, "displayName"), tc.wantDisplay; got != want {
				t.Errorf("stored displayName = %q, want %q", got, want)
			}
			if got, want := stringAttr(got.Attrs, "userName"), "upd@example.com"; got != want {
				t.Errorf("stored userName = %q, want %q", got, want)
			}
			// The email index survives every case.
			if got, want := stCountRows(t, s, "SELECT count(*) FROM user_emails WHERE user_id = ? AND value_key = ?", u.ID, "upd@example.com"), 1; got != want {
				t.Errorf("email index rows = %d, want %d", got, want)
			}
		})
	}
}

func TestStoreUpdateUserRenameConflict(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	a := stUser(t, s, "Taken@example.com")
	b := stUser(t, s, "free@example.com")

	_, err := s.UpdateUser(ctx, b.ID, func(u *User) error {
		u.Attrs["userName"] = "TAKEN@EXAMPLE.COM"
		u.Attrs["displayName"] = "should not stick"
		return nil
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("rename onto a taken userName: err = %v, want ErrConflict", err)
	}
	for _, tc := range []struct {
		name, id, userName string
	}{
		{"renamed user", b.ID, "free@example.com"},
		{"other user", a.ID, "Taken@example.com"},
	} {
		u, err := s.UserByID(ctx, tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, want := stringAttr(u.Attrs, "userName"), tc.userName; got != want {
			t.Errorf("%s: userName = %q, want %q", tc.name, got, want)
		}
		if _, ok := u.Attrs["displayName"]; ok {
			t.Errorf("%s: displayName was written: %v", tc.name, u.Attrs["displayName"])
		}
		if got, want := u.Version, int64(1); got != want {
			t.Errorf("%s: Version = %d, want %d", tc.name, got, want)
		}
	}

	// Renaming to a case variant of one's own name is not a conflict.
	out, err := s.UpdateUser(ctx, b.ID, func(u *User) error { u.Attrs["userName"] = "FREE@example.com"; return nil })
	if err != nil {
		t.Fatalf("case-only rename of own userName: %v", err)
	}
	if got, want := out.Version, int64(2); got != want {
		t.Errorf("Version after case-only rename = %d, want %d", got, want)
	}
}

func TestStoreUserNotFound(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	stUser(t, s, "exists@example.com")
	const unknown = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"UserByID", func() error { _, err := s.UserByID(ctx, unknown); return err }},
		{"UpdateUser", func() error {
			_, err := s.UpdateUser(ctx, unknown, func(*User) error { return nil })
			return err
		}},
		{"DeleteUser", func() error { return s.DeleteUser(ctx, unknown, nil) }},
		{"GroupByID", func() error { _, err := s.GroupByID(ctx, unknown, true); return err }},
		{"UpdateGroup", func() error {
			_, err := s.UpdateGroup(ctx, unknown, func(*Group) ([]MemberChange, error) { return nil, nil })
			return err
		}},
		{"DeleteGroup", func() error { return s.DeleteGroup(ctx, unknown, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.call(); !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestStoreDeleteUserRemovesMemberships(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u1 := stUser(t, s, "u1@example.com")
	u2 := stUser(t, s, "u2@example.com")
	g1 := stGroup(t, s, "both", u1.ID, u2.ID)
	g2 := stGroup(t, s, "only u1", u1.ID)
	g3 := stGroup(t, s, "only u2", u2.ID)

	if err := s.DeleteUser(ctx, u1.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByID(ctx, u1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("UserByID of deleted user: err = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		name        string
		id          string
		want        []string
		wantVersion int64
	}{
		{"both", g1.ID, []string{u2.ID}, 2},
		{"only u1", g2.ID, []string{}, 2},
		{"only u2", g3.ID, []string{u2.ID}, 1},
	} {
		if got, want := stMemberIDs(stMembers(t, s, tc.id)), tc.want; !slices.Equal(got, want) {
			t.Errorf("%s: members = %v, want %v", tc.name, got, want)
		}
		g, err := s.GroupByID(ctx, tc.id, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := g.Version, tc.wantVersion; got != want {
			t.Errorf("%s: Version = %d, want %d", tc.name, got, want)
		}
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM members WHERE member_id = ?", u1.ID), 0; got != want {
		t.Errorf("membership rows of deleted user = %d, want %d", got, want)
	}
}

func TestStoreDeleteUserCheckVeto(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u := stUser(t, s, "veto@example.com")
	g := stGroup(t, s, "vetoed", u.ID)
	errVeto := errors.New("version mismatch")
	var seen int64
	err := s.DeleteUser(ctx, u.ID, func(version int64) error { seen = version; return errVeto })
	if !errors.Is(err, errVeto) {
		t.Fatalf("DeleteUser with veto: err = %v, want %v", err, errVeto)
	}
	if got, want := seen, int64(1); got != want {
		t.Errorf("check saw version %d, want %d", got, want)
	}
	if _, err := s.UserByID(ctx, u.ID); err != nil {
		t.Errorf("vetoed user is gone: %v", err)
	}
	if got, want := stMemberIDs(stMembers(t, s, g.ID)), []string{u.ID}; !slices.Equal(got, want) {
		t.Errorf("members after vetoed delete = %v, want %v", got, want)
	}
	// Without a veto the delete goes through.
	if err := s.DeleteUser(ctx, u.ID, func(int64) error { return nil }); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
}

// ---- groups ----

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

func TestStoreCreateGroupUnknownMembers(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	u1 := stUser(t, s, "k1@example.com")
	u2 := stUser(t, s, "k2@example.com")
	g := &Group{Attrs: map[string]any{"displayName": "Ghosts"}}
	err := s.CreateGroup(ctx, g, []string{u1.ID, "ghost-1", u2.ID, "ghost-2"})
	var ume *UnknownMembersError
	if !errors.As(err, &ume) {
		t.Fatalf("CreateGroup with unknown members: err = %v, want *UnknownMembersError", err)
	}
	if got, want := ume.IDs, []string{"ghost-1", "ghost-2"}; !slices.Equal(got, want) {
		t.Errorf("unknown ids = %v, want %v", got, want)
	}
	for _, id := range []string{"ghost-1", "ghost-2"} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name %s", err, id)
		}
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM groups"), 0; got != want {
		t.Errorf("groups after failed create = %d, want %d", got, want)
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM members"), 0; got != want {
		t.Errorf("member rows after failed create = %d, want %d", got, want)
	}
	// The name is still free.
	stGroup(t, s, "Ghosts", u1.ID)
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
		wantIDs   []string // for *UnknownMembersError, the ids it must name (substring match)
		wantNamed bool
	}{
		{name: "unknown member after a removal", fn: func(self string, u []string) func(*Group) ([]MemberChange, error) {
			return func(g *Group) ([]MemberChange, error) {
				g.Attrs["displayName"] = "renamed"
				return []MemberChange{{Kind: membersRemove, IDs: []string{u[0]}},
					{Kind: membersAdd, IDs: []string{u[2], "ghost-a", "ghost-b"}}}, nil
			}
		}, wantIDs: []string{"ghost-a", "ghost-b"}},
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

// ---- concurrency ----

// stCaseVariant spells s with the letters' case set by the bits of n.
func stCaseVariant(s string, n int) string {
	b := []byte(s)
	bit := 0
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			if n>>bit&1 == 1 {
				b[i] = c - 'a' + 'A'
			}
			bit++
		}
	}
	return string(b)
}

func TestStoreConcurrentCreateSameUserName(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": stCaseVariant("racer@example.com", i)}})
		})
	}
	close(start)
	wg.Wait()

	ok, conflicts := 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrConflict):
			conflicts++
		default:
			t.Errorf("goroutine %d: unexpected error: %v", i, err)
		}
	}
	if got, want := ok, 1; got != want {
		t.Errorf("successful creates = %d, want %d", got, want)
	}
	if got, want := conflicts, n-1; got != want {
		t.Errorf("conflicts = %d, want %d", got, want)
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM users"), 1; got != want {
		t.Errorf("users stored = %d, want %d", got, want)
	}
}

func TestStoreConcurrentGroupAdds(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = stUser(t, s, fmt.Sprintf("adder%d@example.com", i)).ID
	}
	g := stGroup(t, s, "crowded")
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.UpdateGroup(ctx, g.ID, func(*Group) ([]MemberChange, error) {
				return []MemberChange{{Kind: membersAdd, IDs: []string{ids[i]}}}, nil
			})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if got, want := stMemberIDs(stMembers(t, s, g.ID)), stSorted(ids...); !slices.Equal(got, want) {
		t.Errorf("members = %d ids, want all %d", len(got), len(want))
	}
	if got, want := stMemberCount(t, s, g.ID), n; got != want {
		t.Errorf("member_count = %d, want %d", got, want)
	}
	out, err := s.GroupByID(ctx, g.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.Version, int64(n+1); got != want {
		t.Errorf("Version = %d, want %d", got, want)
	}
}

func TestStoreConcurrentReadersAndWriters(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	const (
		writers      = 4
		writesEach   = 40
		readers      = 6
		readsEach    = 60
		seededUsers  = 100
		seededGroups = 5
	)
	var seeded []string
	for i := range seededUsers {
		u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("seed%03d@example.com", i),
			"displayName": fmt.Sprintf("Seed %d", i), "active": i%2 == 0,
			"emails": []any{map[string]any{"value": fmt.Sprintf("seed%03d@mail.example.com", i)}}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		seeded = append(seeded, u.ID)
	}
	var groups []string
	for i := range seededGroups {
		groups = append(groups, stGroup(t, s, fmt.Sprintf("team %d", i), seeded[i*10:i*10+10]...).ID)
	}

	filters := []string{
		`userName eq "seed042@example.com"`,
		`userName sw "seed0"`,
		`displayName co "ed 1"`,
		`active eq true and userName ew "example.com"`,
		`emails.value eq "SEED007@mail.example.com"`,
		`emails[value co "mail"]`,
		`groups eq "` + groups[0] + `"`,
		`not (active eq true) or userName eq "w0-1@example.com"`,
		`meta.created gt "2000-01-01T00:00:00Z"`,
	}
	parsed := make([]filterExpr, len(filters))
	for i, f := range filters {
		parsed[i] = stFilter(t, f)
	}

	errc := make(chan error, writers*writesEach+readers*readsEach)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range writesEach {
				u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("w%d-%d@example.com", w, i), "active": true}}
				if err := s.CreateUser(ctx, u); err != nil {
					errc <- fmt.Errorf("writer %d create: %w", w, err)
					continue
				}
				g := groups[(w+i)%len(groups)]
				if _, err := s.UpdateGroup(ctx, g, func(*Group) ([]MemberChange, error) {
					return []MemberChange{{Kind: membersAdd, IDs: []string{u.ID}}}, nil
				}); err != nil {
					errc <- fmt.Errorf("writer %d add member: %w", w, err)
				}
				if _, err := s.UpdateUser(ctx, u.ID, func(u *User) error {
					u.Attrs["displayName"] = fmt.Sprintf("Writer %d", i)
					return nil
				}); err != nil {
					errc <- fmt.Errorf("writer %d update: %w", w, err)
				}
				if i%3 == 0 {
					if err := s.DeleteUser(ctx, u.ID, nil); err != nil {
						errc <- fmt.Errorf("writer %d delete: %w", w, err)
					}
				}
			}
		})
	}
	for r := range readers {
		wg.Go(func() {
			for i := range readsEach {
				f := parsed[(r+i)%len(parsed)]
				if _, _, err := s.ListUsers(ctx, ListQuery{Filter: f, StartIndex: 1 + i%3, Count: 20}); err != nil {
					errc <- fmt.Errorf("reader %d ListUsers %s: %w", r, filters[(r+i)%len(filters)], err)
				}
				if _, err := s.UserByID(ctx, seeded[i%len(seeded)]); err != nil {
					errc <- fmt.Errorf("reader %d UserByID: %w", r, err)
				}
				if _, err := s.GroupByID(ctx, groups[i%len(groups)], true); err != nil {
					errc <- fmt.Errorf("reader %d GroupByID: %w", r, err)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for _, g := range groups {
		stMembers(t, s, g) // checks member_count against the member rows
	}
}

// TestStoreConcurrentListRelationFilter runs more concurrent list requests than
// the read pool has connections, with filters that are evaluated in Go and need
// each candidate's groups (or members) loaded. Every request must complete: a
// list that held a pooled connection for its rows while asking the pool for
// another one for the relations starved the pool and hung for good.
func TestStoreConcurrentListRelationFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		filter string
		want   int
		list   func(ctx context.Context, s *Store, f filterExpr) (int, int, error)
	}{
		{"users by groups.display", `groups.display eq "relation team"`, 10,
			func(ctx context.Context, s *Store, f filterExpr) (int, int, error) {
				users, total, err := s.ListUsers(ctx, ListQuery{Filter: f, Count: 100})
				return len(users), total, err
			}},
		// The team (member rel1) and solo 10…19 have a member displayed as rel1….
		{"groups by members.display", `members.display sw "rel1"`, 11,
			func(ctx context.Context, s *Store, f filterExpr) (int, int, error) {
				groups, total, err := s.ListGroups(ctx, ListQuery{Filter: f, Count: 100}, false)
				return len(groups), total, err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			var ids []string
			for i := range 20 {
				ids = append(ids, stUser(t, s, fmt.Sprintf("rel%d@example.com", i)).ID)
			}
			stGroup(t, s, "Relation Team", ids[:10]...)
			for i := 10; i < 20; i++ {
				stGroup(t, s, fmt.Sprintf("solo %d", i), ids[i])
			}
			f := stFilter(t, tc.filter)

			// The deadline only turns a hang into a failure (it is generous for
			// -race on a small machine); nothing here measures speed.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			const goroutines, iterations = 32, 5
			errs := make([]error, goroutines)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for g := range goroutines {
				wg.Go(func() {
					<-start
					for range iterations {
						n, total, err := tc.list(ctx, s, f)
						if err != nil {
							errs[g] = err
							return
						}
						if n != tc.want || total != tc.want {
							errs[g] = fmt.Errorf("got %d (total %d), want %d", n, total, tc.want)
							return
						}
					}
				})
			}
			close(start)
			wg.Wait()
			for g, err := range errs {
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
				}
			}
		})
	}
}

// ---- tokens ----

var stTokenPattern = regexp.MustCompile(`^scimbox_[0-9A-Za-z]{49}$`)

func TestStoreCreateTokenFormat(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 5 {
		tok, rec, err := s.CreateToken(ctx, fmt.Sprintf("client %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(tok), 57; got != want {
			t.Errorf("len(token) = %d, want %d", got, want)
		}
		if !stTokenPattern.MatchString(tok) {
			t.Errorf("token %q does not match %s", tok, stTokenPattern)
		}
		if got, want := tok[8:16], rec.ID; got != want {
			t.Errorf("token id part = %q, want record id %q", got, want)
		}
		if got, want := tok[51:], crcBase62(tok[:51]); got != want {
			t.Errorf("checksum part = %q, want %q", got, want)
		}
		if seen[tok] || seen[rec.ID] {
			t.Errorf("token or id repeated: %q", tok)
		}
		seen[tok], seen[rec.ID] = true, true
	}
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(list), 5; got != want {
		t.Fatalf("Tokens() = %d, want %d", got, want)
	}
	for _, tk := range list {
		if !tk.LastUsed.IsZero() {
			t.Errorf("token %s LastUsed = %v before any use, want zero", tk.ID, tk.LastUsed)
		}
	}
}

// stWithSecret returns tok with its secret replaced and a valid checksum.
func stWithSecret(tok, secret string) string {
	body := tok[:len(tokenPrefix)+tokenIDLen] + secret
	return body + crcBase62(body)
}

func TestStoreAuthenticateToken(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	tok, rec, err := s.CreateToken(ctx, "idp")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.CreateToken(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := stWithSecret(tok, strings.Repeat("A", tokenSecretLen))
	if _, ok := parseToken(wrongSecret); !ok {
		t.Fatalf("test token with wrong secret %q does not pass the checksum", wrongSecret)
	}
	unknownID := stWithSecret("scimbox_ZZZZZZZZ", tok[16:51])
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"valid", tok, true},
		{"other valid", other, true},
		{"empty", "", false},
		{"prefix only", "scimbox_", false},
		{"truncated", tok[:56], false},
		{"extra char", tok + "0", false},
		{"other secret, own checksum", stWithSecret(tok, other[16:51]), false},
		{"wrong secret, valid checksum", wrongSecret, false},
		{"unknown id, valid checksum", unknownID, false},
		{"other token's checksum", tok[:51] + other[51:], false},
		{"upper-cased prefix", "SCIMBOX_" + tok[8:], false},
		{"with Bearer", "Bearer " + tok, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.AuthenticateToken(ctx, tc.token)
			if !tc.ok {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("AuthenticateToken(%q): err = %v, want ErrNotFound", tc.token, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthenticateToken: %v", err)
			}
			if got.ID != tc.token[8:16] {
				t.Errorf("authenticated id = %q, want %q", got.ID, tc.token[8:16])
			}
		})
	}

	t.Run("every single-character change", func(t *testing.T) {
		t.Parallel()
		for i := range len(tok) {
			for _, c := range []byte{'0', 'z', 'Q', '_'} {
				if tok[i] == c {
					continue
				}
				changed := tok[:i] + string(c) + tok[i+1:]
				if _, ok := parseToken(changed); ok {
					t.Errorf("position %d → %q: checksum accepted the changed token", i, c)
				}
				if _, err := s.AuthenticateToken(ctx, changed); !errors.Is(err, ErrNotFound) {
					t.Errorf("position %d → %q: err = %v, want ErrNotFound", i, c, err)
				}
			}
		}
	})

	got, err := s.AuthenticateToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || got.Name != "idp" || !got.Created.Equal(rec.Created) {
		t.Errorf("AuthenticateToken = %+v, want id %s, name idp, created %v", got, rec.ID, rec.Created)
	}
}

func TestStoreRevokeToken(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	tok, rec, err := s.CreateToken(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := s.CreateToken(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateToken(ctx, tok); err != nil {
		t.Fatalf("before revoke: %v", err)
	}
	if err := s.RevokeToken(ctx, rec.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"authenticate revoked", func() error { _, err := s.AuthenticateToken(ctx, tok); return err }},
		{"revoke again", func() error { return s.RevokeToken(ctx, rec.ID) }},
		{"revoke unknown", func() error { return s.RevokeToken(ctx, "nonexist") }},
	} {
		if err := tc.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	if _, err := s.AuthenticateToken(ctx, keep); err != nil {
		t.Errorf("the other token stopped working: %v", err)
	}
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("Tokens() after revoke = %+v, want only \"kept\"", list)
	}
}

func TestStoreTokenPlaintextNeverStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := OpenStore(ctx, path, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for i := range 3 {
		tok, _, err := s.CreateToken(ctx, fmt.Sprintf("t%d", i))
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, tok); err != nil {
			s.Close()
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	if err := s.RevokeToken(ctx, toks[2][8:16]); err != nil {
		s.Close()
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(path + suffix)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	for i, tok := range toks {
		secret := tok[len(tokenPrefix)+tokenIDLen : len(tok)-tokenCRCLen]
		if bytes.Contains(all, []byte(tok)) {
			t.Errorf("token %d appears in clear in the database files", i)
		}
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("secret of token %d appears in clear in the database files", i)
		}
	}
	// Positive control: we read the right files, which hold the live hashes.
	for i, tok := range toks[:2] {
		if !bytes.Contains(all, tokenHash(tok)) {
			t.Errorf("hash of token %d not found in the database files: wrong file read?", i)
		}
	}
}

func TestStoreTokenLastUsed(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	clock := stSetClock(s)
	tok, rec, err := s.CreateToken(ctx, "used")
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		t.Helper()
		list, err := s.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			if tk.ID == rec.ID {
				return tk.LastUsed
			}
		}
		t.Fatalf("token %s not listed", rec.ID)
		return time.Time{}
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("LastUsed before use = %v, want zero", got)
	}
	t0 := clock.t
	for _, step := range []struct {
		name    string
		advance time.Duration
		want    time.Time
	}{
		{"first use", 0, t0},
		{"again at once", 0, t0},
		{"30s later", 30 * time.Second, t0},
		{"59.999s after first", 29999 * time.Millisecond, t0},
		{"a minute after first", time.Millisecond, t0.Add(time.Minute)},
		{"30s after that", 30 * time.Second, t0.Add(time.Minute)},
		{"61s after that", 31 * time.Second, t0.Add(2*time.Minute + time.Second)},
	} {
		clock.t = clock.t.Add(step.advance)
		if _, err := s.AuthenticateToken(ctx, tok); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got, want := lastUsed(), step.want; !got.Equal(want) {
			t.Errorf("%s: LastUsed = %v, want %v", step.name, got, want)
		}
	}
}

// ---- benchmarks ----

// benchUsers creates n users named <prefix>-<i>@example.com and returns their ids
// in creation order. There is no batch API, so each is its own transaction.
func benchUsers(b *testing.B, s *Store, prefix string, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		u := &User{Attrs: map[string]any{
			"userName":    fmt.Sprintf("%s-%d@example.com", prefix, i),
			"displayName": fmt.Sprintf("%s %d", prefix, i),
			"active":      true,
			"emails":      []any{map[string]any{"value": fmt.Sprintf("%s-%d@mail.example.com", prefix, i), "type": "work"}},
		}}
		if err := s.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	return ids
}

// benchStore100k is a store holding 100,000 users named user-<i>@example.com.
func benchStore100k(b *testing.B) (*Store, []string) {
	b.Helper()
	if testing.Short() {
		b.Skip("populates 100,000 users")
	}
	s := newTestStore(b)
	return s, benchUsers(b, s, "user", 100_000)
}

func BenchmarkFilterUserName100k(b *testing.B) {
	s, _ := benchStore100k(b)
	ctx := context.Background()
	f := stFilter(b, `userName eq "user-54321@example.com"`)
	b.ReportAllocs()
	for b.Loop() {
		users, total, err := s.ListUsers(ctx, ListQuery{Filter: f, StartIndex: 1, Count: 100})
		if err != nil {
			b.Fatal(err)
		}
		if total != 1 || len(users) != 1 {
			b.Fatalf("got %d users (total %d), want 1", len(users), total)
		}
	}
}

func BenchmarkUserByID100k(b *testing.B) {
	s, ids := benchStore100k(b)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.UserByID(ctx, ids[i*7919%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkListPage100k(b *testing.B) {
	s, _ := benchStore100k(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name       string
		startIndex int
	}{
		{"first", 1},
		{"start50000", 50_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				users, total, err := s.ListUsers(ctx, ListQuery{StartIndex: bc.startIndex, Count: 100})
				if err != nil {
					b.Fatal(err)
				}
				if total != 100_000 || len(users) != 100 {
					b.Fatalf("got %d users (total %d), want 100 of 100000", len(users), total)
				}
			}
		})
	}
}

var benchGroupSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"10k", 10_000}, {"100k", 100_000}}

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

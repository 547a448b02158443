package main

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"
)

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
	err := s.DeleteUser(ctx, u.ID, func(u *User) error { seen = u.Version; return errVeto })
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
	if err := s.DeleteUser(ctx, u.ID, func(*User) error { return nil }); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
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

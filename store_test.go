package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
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

// TestStoreMigrationStripsPasswords opens a database written before passwords
// were dropped (PATCH stored them in the clear and copied them into events)
// and checks that the migration leaves no password, and everything else.
func TestStoreMigrationStripsPasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	old := slices.Index(migrations, stripPasswordsMigration)
	if old < 0 {
		t.Fatal("stripPasswordsMigration is not in migrations")
	}
	for _, m := range migrations[:old] {
		if _, err := raw.ExecContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA user_version = %d", old),
		`INSERT INTO users (id, user_name, user_name_key, attrs, created, modified, version) VALUES
			('u1', 'leaky', 'leaky', '{"userName":"leaky","password":"hunter2","title":"Boss"}', '', '', 2),
			('u2', 'clean', 'clean', '{"userName":"clean","emails":[{"value":"c@x","primary":true}]}', '', '', 1)`,
		`INSERT INTO events (id, at, type, resource_type, resource_id, data) VALUES
			('e1', '', 'user.created', 'User', 'u1', '{"id":"u1","userName":"leaky","password":"hunter2"}'),
			('e2', '', 'user.updated', 'User', 'u1', '{"changed":["password","title"],"user":{"id":"u1","password":"hunter2","title":"Boss"}}'),
			('e3', '', 'user.updated', 'User', 'u1', '{"changed":["password"],"user":{"id":"u1","password":"hunter3"}}'),
			('e4', '', 'user.disabled', 'User', 'u2', '{"id":"u2","active":false}')`,
	} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenStore(ctx, path, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]string{
		"SELECT attrs FROM users WHERE id = 'u1'": `{"userName":"leaky","title":"Boss"}`,
		"SELECT attrs FROM users WHERE id = 'u2'": `{"userName":"clean","emails":[{"value":"c@x","primary":true}]}`,
		"SELECT data FROM events WHERE id = 'e1'": `{"id":"u1","userName":"leaky"}`,
		"SELECT data FROM events WHERE id = 'e2'": `{"changed":["title"],"user":{"id":"u1","title":"Boss"}}`,
		"SELECT data FROM events WHERE id = 'e3'": `{"changed":[],"user":{"id":"u1"}}`,
		"SELECT data FROM events WHERE id = 'e4'": `{"id":"u2","active":false}`,
		"SELECT count(*) FROM users":              `2`,
		"SELECT count(*) FROM events":             `4`,
	}
	for q, w := range want {
		var got string
		if err := s.r.QueryRowContext(ctx, q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != w {
			t.Errorf("%s = %s, want %s", q, got, w)
		}
	}
	if n := stCountRows(t, s, "SELECT count(*) FROM events WHERE instr(data, 'hunter') > 0 OR instr(data, 'password') > 0"); n != 0 {
		t.Errorf("%d events still mention the password", n)
	}
}

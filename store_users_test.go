package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
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
		// PRECIS preparation (RFC 8265 §3.3.2): width mapping, case mapping, NFC.
		{name: "fullwidth", first: "bob@example.com", again: "ｂｏｂ@example.com", conflict: true},
		{name: "fullwidth upper case", first: "bob@example.com", again: "ＢＯＢ＠ＥＸＡＭＰＬＥ．ＣＯＭ", conflict: true},
		{name: "fullwidth first", first: "ｂｏｂ", again: "Bob", conflict: true},
		{name: "halfwidth katakana", first: "ｶﾀｶﾅ", again: "カタカナ", conflict: true},
		{name: "decomposed after composed", first: "José", again: "Jose\u0301", conflict: true},
		{name: "composed after decomposed", first: "JOSE\u0301", again: "josé", conflict: true},
		{name: "ideographic space", first: "ann lee", again: "ann\u3000lee", conflict: true},
		{name: "sharp s is not ss", first: "straße", again: "strasse", conflict: false},
		{name: "accent is not its absence", first: "josé", again: "jose", conflict: false},
		{name: "no-break space is not a space", first: "ann lee", again: "ann\u00a0lee", conflict: false},
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

// TestStoreUserNameInvisibleCharacters: a userName with a character that
// renders as nothing is refused when written, so that it cannot pose as
// another name; nothing is stored.
func TestStoreUserNameInvisibleCharacters(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	existing := stUser(t, s, "bob@example.com")
	for _, name := range []string{
		"bo\u200bb@example.com",     // zero-width space
		"bob\u200d@example.com",     // zero-width joiner
		"\u200ebob@example.com",     // left-to-right mark
		"bob@\u202eexample.com",     // right-to-left override
		"bob\u2066@example.com",     // left-to-right isolate
		"b\u00adob@example.com",     // soft hyphen
		"bob\u2060@example.com",     // word joiner
		"\ufeffbob@example.com",     // byte order mark
		"bob\u3164@example.com",     // Hangul filler
		"bob\ufe0f@example.com",     // variation selector
		"bob\u0000@example.com",     // NUL
		"bob\t@example.com",         // tab
		"bob\u2028@example.com",     // line separator
		"bob\U000e0041@example.com", // tag letter
	} {
		err := s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": name}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateUser(%q): err = %v, want ErrInvalid", name, err)
		}
		_, err = s.UpdateUser(ctx, existing.ID, func(u *User) error {
			u.Attrs["userName"] = name
			return nil
		})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("rename to %q: err = %v, want ErrInvalid", name, err)
		}
	}
	if got, want := stCountRows(t, s, "SELECT count(*) FROM users"), 1; got != want {
		t.Errorf("users = %d, want %d", got, want)
	}
	u, err := s.UserByID(ctx, existing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stringAttr(u.Attrs, "userName"), "bob@example.com"; got != want || u.Version != 1 {
		t.Errorf("after refused renames: userName %q version %d, want %q version 1", got, u.Version, want)
	}
	// Visible characters that are not ASCII stay welcome.
	for _, name := range []string{"ann lee", "Zoë@example.com", "用户@例子.广告", "שלום@example.com", "😀@example.com"} {
		if err := s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": name}}); err != nil {
			t.Errorf("CreateUser(%q): %v", name, err)
		}
	}
}

// TestUserNameKeyIsIdempotent: keys of keys are keys, which the migration's
// collision rule and the filter's SQL translation rely on.
func TestUserNameKeyIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"Bob", "ＢＯＢ", "ΣΊΣΥΦΟΣ", "σίσυφος", "\u212Aelvin", "İstanbul", "ſ", "straße", "JOSE\u0301",
		"ｶﾀｶﾅ", "Ⅻ", "ﬁ", "a\u3000b", "x\u200by", "Ǆ", "ᾼ", "ΐ"} {
		k := userNameKey(s)
		if again := userNameKey(k); again != k {
			t.Errorf("userNameKey(%q) = %q, but userNameKey(%q) = %q", s, k, k, again)
		}
		if k != foldCase(s) && userNameKey(foldCase(s)) != k {
			t.Errorf("userNameKey(%q) = %q differs from userNameKey(foldCase) = %q", s, k, userNameKey(foldCase(s)))
		}
	}
}

// TestStoreMigrationRekeysUserNames opens a database from before
// userNameKey, holding look-alike userNames the old key told apart: the
// start-up must succeed, every other key must be the new one, one account of
// each look-alike group holds the shared key, and the pair is logged with
// both ids. The names stay findable and new look-alikes are refused.
func TestStoreMigrationRekeysUserNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	version := slices.Index(migrations, rekeyUserNamesMigration)
	if version < 0 {
		t.Fatal("rekeyUserNamesMigration is not in migrations")
	}
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:version] {
		if _, err := raw.ExecContext(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	// The old rows, keyed by foldCase as the code before wrote them.
	users := []struct{ id, name string }{
		{"a-bob", "bob@example.com"},
		{"b-bob-fullwidth", "ｂｏｂ@example.com"}, // looks like a-bob, which holds the new key already
		{"c-jose-decomposed", "Jose\u0301"},    // older than d, but d holds the new key already
		{"d-jose-composed", "JOSÉ"},
		{"e-carol-1", "ｃarol"}, // e and f both change to "carol": the older takes it
		{"f-carol-2", "cａrol"},
		{"g-alice", "ＡＬＩＣＥ"},         // alone: rekeyed
		{"h-zero-width", "x\u200by"}, // refused today; kept with its old key
		{"i-plain", "plain"},
	}
	for i, u := range users {
		created := formatTime(time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC))
		if _, err := raw.ExecContext(ctx, `INSERT INTO users (id, user_name, user_name_key, attrs, created, modified, version)
			VALUES (?, ?, ?, json_object('userName', ?), ?, ?, 1)`, u.id, u.name, foldCase(u.name), u.name, created, created); err != nil {
			t.Fatalf("insert %s: %v", u.id, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	var logged strings.Builder
	s, err := OpenStore(ctx, path, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("start-up with look-alike userNames: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	wantKeys := map[string]string{
		"a-bob":             "bob@example.com",
		"b-bob-fullwidth":   foldCase("ｂｏｂ@example.com"), // its old key
		"c-jose-decomposed": foldCase("Jose\u0301"),
		"d-jose-composed":   "jos\u00e9",
		"e-carol-1":         "carol",
		"f-carol-2":         foldCase("cａrol"),
		"g-alice":           "alice",
		"h-zero-width":      "x\u200by",
		"i-plain":           "plain",
	}
	for id, want := range wantKeys {
		var got string
		if err := s.r.QueryRowContext(ctx, "SELECT user_name_key FROM users WHERE id = ?", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: user_name_key %q, want %q", id, got, want)
		}
	}
	for _, pair := range [][2]string{{"a-bob", "b-bob-fullwidth"}, {"d-jose-composed", "c-jose-decomposed"}, {"e-carol-1", "f-carol-2"}} {
		want := fmt.Sprintf("id=%s ", pair[0])
		line := ""
		for l := range strings.Lines(logged.String()) {
			if strings.Contains(l, "lookalikeID="+pair[1]) {
				line = l
			}
		}
		if !strings.Contains(line, "look-alike") || !strings.Contains(line, want) {
			t.Errorf("log has no look-alike line naming %s and %s:\n%s", pair[0], pair[1], logged.String())
		}
	}

	// New look-alikes are refused, also of the accounts that kept their old key.
	for _, name := range []string{"BOB@example.com", "ｂｏｂ@ｅｘａｍｐｌｅ.com", "josé", "Carol", "ａｌｉｃｅ"} {
		if err := s.CreateUser(ctx, &User{Attrs: map[string]any{"userName": name}}); !errors.Is(err, ErrConflict) {
			t.Errorf("CreateUser(%q) after the migration: err = %v, want ErrConflict", name, err)
		}
	}
	// A filter by the name of an account that kept its old key finds it and
	// its look-alike (a client sees two accounts rather than the wrong one).
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"ｂｏｂ@example.com", []string{"a-bob", "b-bob-fullwidth"}},
		{"cａrol", []string{"e-carol-1", "f-carol-2"}},
		{"ＡＬＩＣＥ", []string{"g-alice"}},
		{"alice", []string{"g-alice"}},
		{"x\u200by", []string{"h-zero-width"}},
	} {
		f, err := filterFor(compareExpr{Path: attrPath{Attr: "userName"}, Op: "eq", Value: tc.name}, userType)
		if err != nil {
			t.Fatal(err)
		}
		list, _, err := s.ListUsers(ctx, ListQuery{Filter: f, Count: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, u := range list {
			got = append(got, u.ID)
		}
		if !slices.Equal(stSorted(got...), tc.want) {
			t.Errorf("userName eq %q lists %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestUserNameLookalikesOnEverySurface: SCIM, the filter Entra matches with,
// the admin page's manual accounts and claims all compare userName by one
// key, so a fullwidth or differently normalised spelling is the same account
// everywhere, and an invisible character is 400 invalidValue that changes nothing.
func TestUserNameLookalikesOnEverySurface(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	bob := ts.createUser(t, "bob@example.com")

	// Entra matches by filter, then creates: both must agree.
	for _, name := range []string{"ｂｏｂ@example.com", "ＢＯＢ＠ＥＸＡＭＰＬＥ．ＣＯＭ"} {
		_, _, list := ts.do(t, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+name+`"`), nil)
		if list["totalResults"] != float64(1) || jsonPath(list, "Resources", 0, "id") != bob {
			t.Errorf("filter userName eq %q: %v, want bob", name, list["Resources"])
		}
		if status, _, doc := ts.do(t, "POST", "/Users", newUserBody(name)); status != http.StatusConflict || doc["scimType"] != "uniqueness" {
			t.Errorf("POST %q: %d %v, want 409 uniqueness", name, status, doc)
		}
	}
	jose := ts.createUser(t, "jose\u0301@example.com")
	if status, _, doc := ts.do(t, "POST", "/Users", newUserBody("JOSÉ@example.com")); status != http.StatusConflict {
		t.Errorf("POST the composed form of a decomposed name: %d %v, want 409", status, doc)
	}
	_, _, list := ts.do(t, "GET", "/Users?filter="+url.QueryEscape(`userName sw "josé"`), nil)
	if list["totalResults"] != float64(1) || jsonPath(list, "Resources", 0, "id") != jose {
		t.Errorf("filter userName sw composed: %v, want the decomposed account", list["Resources"])
	}

	// Invisible characters: refused on POST, PUT and PATCH, nothing changed.
	invisibleName := "bob\u200b@example.com"
	if status, _, doc := ts.do(t, "POST", "/Users", newUserBody(invisibleName)); status != 400 || doc["scimType"] != "invalidValue" ||
		!strings.Contains(doc["detail"].(string), "U+200B") {
		t.Errorf("POST with a zero-width space: %d %v, want 400 invalidValue naming U+200B", status, doc)
	}
	if status, _, doc := ts.do(t, "PUT", "/Users/"+bob, newUserBody("\u202ebob@example.com")); status != 400 || doc["scimType"] != "invalidValue" {
		t.Errorf("PUT with a right-to-left override: %d %v, want 400 invalidValue", status, doc)
	}
	patch := patchBody(map[string]any{"op": "replace", "path": "userName", "value": invisibleName})
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+bob, patch); status != 400 || doc["scimType"] != "invalidValue" {
		t.Errorf("PATCH to a zero-width space: %d %v, want 400 invalidValue", status, doc)
	}
	if _, _, u := ts.do(t, "GET", "/Users/"+bob, nil); u["userName"] != "bob@example.com" || jsonPath(u, "meta", "version") != `W/"1"` {
		t.Errorf("after refused writes: %v %v, want bob@example.com at version 1", u["userName"], jsonPath(u, "meta", "version"))
	}

	// The admin page's manual accounts use the same key…
	status, _, body := ac.post(t, "/users/new", url.Values{"csrf": {ac.csrf(t)}, "userName": {"ｂｏｂ@example.com"}})
	if status != http.StatusConflict {
		t.Errorf("manual account with a fullwidth look-alike: %d, want 409\n%s", status, body)
	}
	status, _, body = ac.post(t, "/users/new", url.Values{"csrf": {ac.csrf(t)}, "userName": {"carol\u200d@example.com"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "invisible") {
		t.Errorf("manual account with a zero-width joiner: %d, want 400 naming the invisible character", status)
	}
	status, h, _ := ac.post(t, "/users/new", url.Values{"csrf": {ac.csrf(t)}, "userName": {"ｃａｒｏｌ@example.com"}})
	if status != http.StatusSeeOther {
		t.Fatalf("manual account: %d", status)
	}
	manualID := strings.TrimPrefix(h.Get("Location"), "/users/")
	// …and so does a claim: the directory's spelling finds the manual account.
	ac.post(t, "/settings/provisioning", url.Values{"csrf": {ac.csrf(t)}, "claim": {"on"}, "deprovision": {"delete"}, "purge_days": {"0"}, "confirmed": {"yes"}})
	if status, _, doc := ts.do(t, "POST", "/Users", newUserBody("Carol@example.com")); status != http.StatusCreated || doc["id"] != manualID {
		t.Errorf("claim of a fullwidth manual account: %d %v, want 201 with id %s", status, doc["id"], manualID)
	}
}

// TestUserPatchKeepsIndexesInStep: a user PATCH encodes the attributes once,
// rewrites the email and app-role index rows only when they change, and
// reads the user's groups after its commit. Each step checks what those
// shortcuts could get wrong: the filter by email, the roles an app-role rule
// gives, the groups in the response, and a PATCH that changes nothing
// (even against attributes stored in another textual form, as SQL writes
// them) writing nothing.
func TestUserPatchKeepsIndexesInStep(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	if err := ts.store.CreateRole(ctx, "admins", "", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.store.AddRoleRule(ctx, RoleRule{Role: "admins", AppRole: "Admin"}, "admin"); err != nil {
		t.Fatal(err)
	}
	body := newUserBody("ada@example.com")
	body["roles"] = []any{map[string]any{"value": "Admin", "primary": false}}
	status, _, doc := ts.do(t, "POST", "/Users", body)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, doc)
	}
	id := doc["id"].(string)
	gid := ts.createGroup(t, "Staff")
	addMembersByPatch(t, ts, gid, id)

	byEmail := func(email string) float64 {
		t.Helper()
		_, _, list := ts.do(t, "GET", "/Users?filter="+url.QueryEscape(`emails.value eq "`+email+`"`), nil)
		return list["totalResults"].(float64)
	}
	roles := func() []string {
		t.Helper()
		u, err := ts.store.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return u.Roles
	}
	patch := func(op map[string]any) map[string]any {
		t.Helper()
		status, _, doc := ts.do(t, "PATCH", "/Users/"+id, patchBody(op))
		if status != http.StatusOK {
			t.Fatalf("PATCH %v: %d %v", op, status, doc)
		}
		return doc
	}
	version := func(doc map[string]any) string { return doc["meta"].(map[string]any)["version"].(string) }

	doc = patch(map[string]any{"op": "Replace", "path": "displayName", "value": "Ada & co"})
	if groups, _ := doc["groups"].([]any); len(groups) != 1 || groups[0].(map[string]any)["value"] != gid {
		t.Errorf("PATCH response groups %v, want the group %s", doc["groups"], gid)
	}
	if n := byEmail("ada@example.com"); n != 1 {
		t.Errorf("filter by the unchanged email after a displayName PATCH: %v results, want 1", n)
	}
	if got := roles(); !slices.Equal(got, []string{"admins"}) {
		t.Errorf("roles after a displayName PATCH: %v, want [admins]", got)
	}

	patch(map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "lovelace@example.com"})
	if old, now := byEmail("ada@example.com"), byEmail("lovelace@example.com"); old != 0 || now != 1 {
		t.Errorf("filter by email after the email changed: old %v, new %v results; want 0 and 1", old, now)
	}

	patch(map[string]any{"op": "Remove", "path": "roles"})
	if got := roles(); len(got) != 0 {
		t.Errorf("roles after the app role was removed: %v, want none", got)
	}

	before := patch(map[string]any{"op": "Replace", "path": "displayName", "value": "Ada & co"})
	if _, err := ts.store.w.ExecContext(ctx, `UPDATE users SET attrs = json_set(attrs, '$.displayName', 'Ada & co') WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	var stored string
	if err := ts.store.r.QueryRowContext(ctx, "SELECT attrs FROM users WHERE id = ?", id).Scan(&stored); err != nil || !strings.Contains(stored, `"Ada & co"`) {
		t.Fatalf("setup: the stored attributes are not in SQL's form: %v %s", err, stored)
	}
	after := patch(map[string]any{"op": "Replace", "path": "displayName", "value": "Ada & co"})
	if version(after) != version(before) {
		t.Errorf("a PATCH that changes nothing moved the version from %s to %s", version(before), version(after))
	}
}

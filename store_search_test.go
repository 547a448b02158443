package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSearchUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	add := func(userName, given, family, display, email string) string {
		t.Helper()
		u := &User{Attrs: map[string]any{"userName": userName, "displayName": display,
			"name":   map[string]any{"givenName": given, "familyName": family},
			"emails": []any{map[string]any{"value": email, "primary": true}}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	alice := add("ajohnson", "Alice", "Johnson", "Alice Johnson", "alice.j@example.com")
	bob := add("bob", "Bob", "Stone", "Bobby", "b.stone@corp.example")
	add("carol", "Carol", "Ng", "Carol Ng", "carol@example.org")
	if _, err := s.UpdateUser(ctx, bob, func(u *User) error {
		u.Overrides = map[string]Override{"displayName": {Value: "Robert the Builder", By: "admin", At: time.Now()}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, q string
		want    []string // userNames, sorted
	}{
		{"family name anywhere", "johnson", []string{"ajohnson"}},
		{"case and middle of a word", "OHNS", []string{"ajohnson"}},
		{"given name", "carol", []string{"carol"}},
		{"email domain", "corp.example", []string{"bob"}},
		{"a local edit", "builder", []string{"bob"}},
		{"every word must match", "alice johnson", []string{"ajohnson"}},
		{"words in any order", "johnson alice", []string{"ajohnson"}},
		{"short word", "ng", []string{"carol"}},
		{"nobody", "zebra", nil},
		{"many", "example", []string{"ajohnson", "bob", "carol"}},
		{"quotes are text, not syntax", `"johnson`, nil},
		{"operators are text", "johnson OR carol", nil},
		{"like wildcards are text", "a%", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users, total, err := s.SearchUsers(ctx, tc.q, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range users {
				got = append(got, stringAttr(u.Attrs, "userName"))
			}
			if !slices.Equal(got, tc.want) || total != len(tc.want) {
				t.Errorf("search %q: %q (total %d), want %q", tc.q, got, total, tc.want)
			}
		})
	}
	// The index follows changes and deletions.
	if _, err := s.UpdateUser(ctx, alice, func(u *User) error {
		u.Attrs["name"] = map[string]any{"givenName": "Alice", "familyName": "Smith"}
		u.Attrs["displayName"] = "Alice Smith"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := s.SearchUsers(ctx, "smith", 0, 10); n != 1 {
		t.Errorf("after a rename the new name matches %d users, want 1", n)
	}
	if err := s.DeleteUser(ctx, alice, nil); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := s.SearchUsers(ctx, "alice", 0, 10); n != 0 {
		t.Errorf("a deleted user is still found (%d)", n)
	}
}

// TestSearchUsersIsIndexed measures the admin search on a few hundred
// users; the plan, not the clock, is what is checked.
func TestSearchUsersIsIndexed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	for i := range 500 {
		u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("user%05d@example.com", i), "displayName": fmt.Sprintf("User %d", i),
			"name": map[string]any{"givenName": "Given", "familyName": fmt.Sprintf("Family%05d", i)}}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	users, total, err := s.SearchUsers(ctx, "family00321", 0, 50)
	if err != nil || total != 1 || len(users) != 1 {
		t.Fatalf("search: %d users, total %d, %v", len(users), total, err)
	}
	t.Logf("search in 500 users: %v", time.Since(start))
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN SELECT count(*) FROM user_search WHERE user_search MATCH ?", `"family00321"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		rows.Scan(&id, &parent, &notused, &detail)
		plan += detail + "; "
	}
	if want := "VIRTUAL TABLE INDEX"; !strings.Contains(plan, want) {
		t.Errorf("search plan %q does not use the index", plan)
	}
}

// TestSearchIndexFollowsABatch: the search index is brought up to date once
// per committed batch, so the writes of one batch — creations, a rename, a
// deletion, and a write that fails and is rolled back alone — leave it
// exactly as one write at a time would: one row per user, with its text.
func TestSearchIndexFollowsABatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	gone, renamed := emailUser("gone@example.com"), emailUser("before@example.com")
	for _, u := range []*User{gone, renamed} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	errs := make([]error, 5)
	wg.Go(func() { errs[0] = s.CreateUser(ctx, emailUser("new@example.com")) })
	waitQueued(t, s, 1)
	wg.Go(func() {
		_, errs[1] = s.UpdateUser(ctx, renamed.ID, func(u *User) error {
			u.Attrs["displayName"] = "Zebulon Quux"
			return nil
		})
	})
	waitQueued(t, s, 2)
	wg.Go(func() { errs[2] = s.DeleteUser(ctx, gone.ID, nil) })
	waitQueued(t, s, 3)
	wg.Go(func() {
		_, errs[3] = s.UpdateUser(ctx, renamed.ID, func(u *User) error {
			u.Attrs["displayName"] = "Rolled Back"
			return errors.New("refused after the change")
		})
	})
	waitQueued(t, s, 4)
	wg.Go(func() { errs[4] = s.CreateUser(ctx, emailUser("new@example.com")) }) // taken in this batch: 409
	waitQueued(t, s, 5)
	release()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || errs[2] != nil || errs[3] == nil || !errors.Is(errs[4], ErrConflict) {
		t.Fatalf("the batch's writes: %v", errs)
	}
	for q, want := range map[string]int{"new@example": 1, "zebulon": 1, "before@example": 1, "gone@example": 0, "rolled": 0} {
		if _, n, err := s.SearchUsers(ctx, q, 0, 10); err != nil || n != want {
			t.Errorf("search %q: %d users (%v), want %d", q, n, err, want)
		}
	}
	var users, rows, indexed, dirty int
	if err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM user_search_rows),
		(SELECT count(*) FROM user_search), (SELECT count(*) FROM user_search_dirty)`).Scan(&users, &rows, &indexed, &dirty); err != nil {
		t.Fatal(err)
	}
	if rows != users || indexed != users || dirty != 0 {
		t.Errorf("%d users, %d search rows, %d indexed, %d left to index; want %d, %d, %d, 0", users, rows, indexed, dirty, users, users, users)
	}
}

// TestSearchIndexCatchesUpWhenWritesPause: a batch with writes waiting
// behind it leaves the index to a later batch (under a burst it is written
// once a second, not per batch); the first batch with nobody waiting brings
// it up to date, with the earlier batches' changes.
func TestSearchIndexCatchesUpWhenWritesPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	renamed := emailUser("renamed@example.com")
	if err := s.CreateUser(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	found := func(q string) int {
		t.Helper()
		_, n, err := s.SearchUsers(ctx, q, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	var next sync.WaitGroup
	running, release := make(chan struct{}), make(chan struct{})
	var nextErr error
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET display_name = 'Quixote Zed' WHERE id = ?", renamed.ID); err != nil {
			return err
		}
		next.Go(func() {
			nextErr = s.write(ctx, func(context.Context, *sql.Tx, time.Time) error {
				close(running)
				<-release
				return nil
			})
		})
		waitQueued(t, s, 1) // this batch commits with a write waiting behind it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-running
	if n := found("quixote"); n != 0 || s.searchBehindSince.Load() == 0 {
		t.Errorf("with a write waiting, the batch indexed its change (%d found, behind since %d)", n, s.searchBehindSince.Load())
	}
	close(release)
	next.Wait()
	if nextErr != nil {
		t.Fatal(nextErr)
	}
	if n := found("quixote"); n != 1 || s.searchBehindSince.Load() != 0 {
		t.Errorf("after a batch with nobody waiting: %d found, behind since %d; want 1, 0", n, s.searchBehindSince.Load())
	}
}

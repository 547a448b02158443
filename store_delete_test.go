package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readsAsOfNow copies the store's database now. Calling the function it
// returns makes the store answer reads from that copy, blind to the writes
// made since, as a request is that read before another transaction committed;
// calling the function that one returns puts the live reads back. It lets a
// test put a claim or a disconnect between a handler's reads and its write.
func readsAsOfNow(t *testing.T, s *Store) (useThem func() (restore func())) {
	t.Helper()
	snap := filepath.Join(t.TempDir(), "as-read.db")
	if err := s.Snapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return func() func() {
		stale, err := sql.Open("sqlite", "file:"+snap+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		// Both read paths: the pool, and the prepared statements on it
		// (token checks among them).
		live, liveStmts := s.r, s.rstmts
		s.r, s.rstmts = stale, newStmtCache(stale, 64)
		return func() { s.r, s.rstmts = live, liveStmts; stale.Close() }
	}
}

// A SCIM DELETE that read the account as a directory one, while a disconnect
// made it manual before the delete ran, must not delete it: the kind is checked
// inside the deleting transaction, in both deprovisioning modes.
func TestSCIMDeleteChecksKindInItsTransaction(t *testing.T) {
	t.Parallel()
	for _, mode := range []DeprovisionMode{deprovisionDelete, deprovisionHide} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ts := newTestServer(t)
			id := ts.createUser(t, "raced@example.com")
			if err := ts.store.SetSetting(ctx, settingDeprovision, string(mode)); err != nil {
				t.Fatal(err)
			}
			readsBeforeDisconnect := readsAsOfNow(t, ts.store)
			p, err := ts.store.Policy(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ts.store.Disconnect(ctx, p); err != nil {
				t.Fatal(err)
			}
			restore := readsBeforeDisconnect()
			status, _, doc := ts.do(t, "DELETE", "/Users/"+id, nil)
			restore()
			if status != http.StatusNotFound {
				t.Errorf("DELETE of an account disconnected after the request read it: %d %v, want 404", status, doc)
			}
			u, err := ts.store.UserByID(ctx, id)
			if err != nil {
				t.Fatalf("the manual account is gone: %v", err)
			}
			if u.Kind != accountManual || u.Attrs["active"] == false {
				t.Errorf("the manual account was changed: kind %s, active %v", u.Kind, u.Attrs["active"])
			}
		})
	}
}

// The admin page deletes only accounts the directory does not manage: an
// account claimed by the directory after the page read it stays.
func TestAdminDeleteChecksKindInItsTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	u := &User{Kind: accountManual, Attrs: map[string]any{"userName": "local@example.com"}}
	if err := ts.store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	csrf := ac.csrf(t)
	readsBeforeClaim := readsAsOfNow(t, ts.store)
	if _, err := ts.store.ClaimUser(ctx, "local@example.com", func(u *User) error { u.Kind = accountDirectory; return nil }); err != nil {
		t.Fatal(err)
	}
	restore := readsBeforeClaim()
	status, _, body := ac.post(t, "/users/"+u.ID, url.Values{"csrf": {csrf}, "action": {"delete"}})
	restore()
	if status != http.StatusConflict || !strings.Contains(body, "The directory manages this account") {
		t.Errorf("admin delete of an account claimed after the page read it: %d, want 409", status)
	}
	got, err := ts.store.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatalf("the claimed account is gone: %v", err)
	}
	if got.Kind != accountDirectory {
		t.Errorf("kind %s, want directory", got.Kind)
	}
}

// Disconnect converts accounts in batches, each its own transaction, and
// keeps every account; run again it has nothing left to do.
func TestDisconnectInBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	const n = 5*disconnectBatch + 7
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		for i := range n {
			u := &User{ID: newID(), Created: now, Modified: now, Version: 1,
				Attrs: map[string]any{"userName": fmt.Sprintf("u%d@example.com", i), "displayName": fmt.Sprintf("User %d", i)}}
			if err := putUser(ctx, tx, u, true); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, "entra"); err != nil {
		t.Fatal(err)
	}
	p, err := s.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.writes.Load()
	converted, err := s.Disconnect(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if converted != n {
		t.Errorf("converted %d accounts, want %d", converted, n)
	}
	// One transaction revokes the tokens, then one per batch (the log writer's
	// background pruning may add a few of its own).
	if got, want := s.writes.Load()-before, int64(1+n/disconnectBatch+1); got < want {
		t.Errorf("%d write transactions, want at least %d (tokens, then batches of %d)", got, want, disconnectBatch)
	}
	if tokens, _ := s.Tokens(ctx); len(tokens) != 0 {
		t.Errorf("%d tokens left", len(tokens))
	}
	users, total, err := s.ListUsers(ctx, ListQuery{Count: n + 1})
	if err != nil {
		t.Fatal(err)
	}
	if total != n || len(users) != n {
		t.Fatalf("%d of %d accounts after disconnect, want %d", len(users), total, n)
	}
	names := map[string]bool{}
	for _, u := range users {
		if u.Kind != accountManual {
			t.Fatalf("account %s is %s after disconnect", u.ID, u.Kind)
		}
		names[stringAttr(u.Attrs, "userName")] = true
	}
	if len(names) != n {
		t.Errorf("%d distinct userNames after disconnect, want %d", len(names), n)
	}
	if again, err := s.Disconnect(ctx, p); err != nil || again != 0 {
		t.Errorf("second disconnect: %d, %v; want 0, nil", again, err)
	}
}

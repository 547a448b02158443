package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestMaintenance: one pass of the maintenance loop applies every retention
// rule: accounts disabled longer than the purge setting go, whether the
// directory disabled them or deleted them in "hide" mode (kept disabled),
// old provisioning log entries go, and old events go with their webhook
// deliveries and delivery attempts.
func TestMaintenance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStore(t)
	// The log writer reads the clock too, so it is guarded.
	var clockMu sync.Mutex
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	advance := func(days int) {
		clockMu.Lock()
		defer clockMu.Unlock()
		now = now.AddDate(0, 0, days)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := s.SetSetting(ctx, settingPurgeInactive, "30"); err != nil {
		t.Fatal(err)
	}
	hook, err := s.CreateWebhook(ctx, "http://127.0.0.1:1/", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(userName, kind string, active bool) *User {
		t.Helper()
		u := &User{Kind: kind, Attrs: map[string]any{"userName": userName, "active": active}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	create("disabled@example.com", accountDirectory, false)
	hidden := create("hidden@example.com", accountDirectory, true)
	if err := s.Deprovision(ctx, hidden.ID, nil); err != nil { // a SCIM DELETE in "hide" mode
		t.Fatal(err)
	}
	create("active@example.com", accountDirectory, true)
	create("manual@example.com", accountManual, false)
	d, err := s.NextDelivery(ctx, hook.ID)
	if err != nil || d == nil {
		t.Fatalf("no delivery queued: %v", err)
	}
	if err := s.RecordAttempt(ctx, hook.ID, d, DeliveryAttempt{Error: "refused"}, false, s.now(), 20); err != nil {
		t.Fatal(err)
	}
	s.Log(LogEntry{Op: "old entry", Outcome: "success", Status: 200})
	if err := s.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}

	userNames := func() []string {
		t.Helper()
		users, _, err := s.UsersAfter(ctx, 0, 100, true)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range users {
			names = append(names, stringAttr(u.Attrs, "userName"))
		}
		slices.Sort(names)
		return names
	}
	count := func(table string) int {
		t.Helper()
		var n int
		if err := s.r.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	advance(29)
	maintain(ctx, s, log)
	if got, want := userNames(), []string{"active@example.com", "disabled@example.com", "hidden@example.com", "manual@example.com"}; !slices.Equal(got, want) {
		t.Errorf("after 29 days: users %q, want %q", got, want)
	}
	if count("events") == 0 || count("deliveries") == 0 || count("delivery_attempts") == 0 {
		t.Errorf("after 29 days the feed or the webhook queue was pruned")
	}

	advance(2)
	maintain(ctx, s, log)
	if got, want := userNames(), []string{"active@example.com", "manual@example.com"}; !slices.Equal(got, want) {
		t.Errorf("after 31 days: users %q, want %q (accounts disabled by the directory, hidden ones too, purged)", got, want)
	}
	if err := s.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ListLog(ctx, LogQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, e := range entries {
		ops = append(ops, e.Op+" "+e.Target)
	}
	if want := []string{"delete disabled user (policy) hidden@example.com", "delete disabled user (policy) disabled@example.com"}; !slices.Equal(ops, want) &&
		!slices.Equal(ops, []string{want[1], want[0]}) {
		t.Errorf("provisioning log after the purge: %q, want only %q", ops, want)
	}
	// What is left of the feed are the purges' own events, not yet due.
	if got := count("events"); got != 2 {
		t.Errorf("%d events left, want the 2 user.deleted of the purge", got)
	}
	if got := count("deliveries") + count("delivery_attempts"); got != 2 {
		t.Errorf("%d deliveries and attempts left, want the 2 deliveries of the purge's events", got)
	}
}

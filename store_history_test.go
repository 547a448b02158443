package main

import (
	"context"
	"testing"
	"time"
)

// A SCIM request's log entry is written by the batching log writer after the
// request, an admin's at once: the admin's entry can get the lower id though
// its request arrived later. Each entry must still show its own request's
// events, found by arrival time.
func TestRequestChangesFollowArrivalNotIDs(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	clock := stSetClock(s)

	createdAt := clock.t
	u := stUser(t, s, "worker@example.com")
	clock.t = clock.t.Add(time.Second)
	editedAt := clock.t
	if _, err := s.UpdateUser(ctx, u.ID, func(u *User) error {
		u.Attrs["displayName"] = "Queen Bee"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The later request's entry is written first, as LogNow does.
	if err := s.LogNow(ctx, LogEntry{At: editedAt, Op: "local edit", ResourceType: "User", ResourceID: u.ID,
		Outcome: "success", Status: 200}); err != nil {
		t.Fatal(err)
	}
	if err := s.LogNow(ctx, LogEntry{At: createdAt, Op: "create user", ResourceType: "User", ResourceID: u.ID,
		Outcome: "success", Status: 201}); err != nil {
		t.Fatal(err)
	}
	entries, err := s.ListLog(ctx, LogQuery{ResourceID: u.ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	changes, err := s.RequestChanges(ctx, entries)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"local edit": "user.updated", "create user": "user.created"}
	for _, e := range entries {
		var types []string
		if re := changes[e.ID]; re != nil {
			for _, ev := range re.Events {
				types = append(types, ev.Type)
			}
		}
		if len(types) != 1 || types[0] != want[e.Op] {
			t.Errorf("%s (id %d): events %v, want one %s", e.Op, e.ID, types, want[e.Op])
		}
	}
}

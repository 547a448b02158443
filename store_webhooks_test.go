package main

import (
	"context"
	"strings"
	"testing"
)

// queryPlan returns EXPLAIN QUERY PLAN's details for query, one per line.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestWebhookQueueQueryPlans: pruning old deliveries must not scan the
// attempts once per deleted delivery (ON DELETE CASCADE looks them up by
// delivery_id) nor the whole queue per pruned event.
func TestWebhookQueueQueryPlans(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	tests := []struct {
		name, query, index, table string
	}{
		{"the cascade from a delivery to its attempts", "SELECT id FROM delivery_attempts WHERE delivery_id = ?",
			"delivery_attempts_delivery", "delivery_attempts"},
		{"the deliveries of old events", "SELECT id FROM deliveries WHERE event_cursor IN (SELECT cursor FROM events WHERE at < ?)",
			"deliveries_event_cursor", "deliveries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := queryPlan(t, s, tt.query, 1)
			if strings.Contains(plan, "SCAN "+tt.table) || !strings.Contains(plan, "INDEX "+tt.index+" ") {
				t.Errorf("%s: plan\n%s\nwants a search with %s, no scan of %s", tt.query, plan, tt.index, tt.table)
			}
		})
	}
}

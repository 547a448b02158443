package main

import (
	"context"
	"slices"
	"testing"
)

// TestLogSearchByTarget checks the provisioning log's target search: a
// case-insensitive prefix, with % and _ taken literally.
func TestLogSearchByTarget(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	var batch []LogEntry
	for _, target := range []string{"alice@x", "ALIBABA", "bob@x", "%admin", "a_b", "axb", "malice"} {
		batch = append(batch, LogEntry{At: s.now(), Op: "create user", Target: target, Outcome: "success", Status: 201})
	}
	if err := s.writeLog(ctx, batch); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		want   []string // newest first
	}{
		{"ali", []string{"ALIBABA", "alice@x"}},
		{"ALICE", []string{"alice@x"}},
		{"%", []string{"%admin"}},
		{"a_", []string{"a_b"}},
		{"nobody", nil},
	}
	for _, tc := range tests {
		entries, err := s.ListLog(ctx, LogQuery{Target: tc.target, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Target)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("target %q: %q, want %q", tc.target, got, tc.want)
		}
	}
}

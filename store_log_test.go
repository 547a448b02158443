package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestLogCapsLengths: whatever a request names (ids of up to a MiB in the
// URL), a provisioning log row stays small and valid UTF-8.
func TestLogCapsLengths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := newTestServer(t)
	long := strings.Repeat("é", 40<<10)
	for _, method := range []string{"GET", "DELETE", "PATCH"} {
		if status, _, _ := ts.do(t, method, "/Users/"+long, patchBody(map[string]any{"op": "add", "path": "nickName", "value": "x"})); status != http.StatusNotFound {
			t.Fatalf("%s of an unknown long id: %d", method, status)
		}
	}
	ts.store.Log(LogEntry{Op: strings.Repeat("ö", 1000), Target: long, ResourceID: long, ResourceType: long, Detail: long, Outcome: "failure", Status: 400})
	if err := ts.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := ts.store.ListLog(ctx, LogQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d log entries, want 4", len(entries))
	}
	for _, e := range entries {
		for name, v := range map[string]string{"op": e.Op, "resource type": e.ResourceType, "resource id": e.ResourceID, "target": e.Target} {
			if len(v) > maxLogText || !utf8.ValidString(v) {
				t.Errorf("%s: %d bytes (valid UTF-8: %v), want at most %d", name, len(v), utf8.ValidString(v), maxLogText)
			}
		}
		if len(e.Detail) > maxLogDetail || !utf8.ValidString(e.Detail) {
			t.Errorf("detail: %d bytes, want at most %d", len(e.Detail), maxLogDetail)
		}
		if e.Target == "" || e.Detail == "" {
			t.Errorf("entry lost its target or detail: %+v", e)
		}
	}
}

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

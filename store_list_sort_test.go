package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
)

// TestSortedHitsKeepsOnlyItsWindow checks the selection behind sortBy on an
// attribute without an index: whatever the number of candidates, it never
// holds more than twice the window, and returns the same first results as a
// full sort (missing values highest, ties in row order).
func TestSortedHitsKeepsOnlyItsWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		candidates int
		keep       int
		descending bool
	}{
		{name: "one of many", candidates: 5000, keep: 1},
		{name: "a page of many", candidates: 5000, keep: 100},
		{name: "descending", candidates: 5000, keep: 37, descending: true},
		{name: "window larger than the candidates", candidates: 30, keep: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(tc.candidates+tc.keep)))
			var all []sortHit
			b := sortedHits{descending: tc.descending, keep: tc.keep}
			for i := range tc.candidates {
				key := ""
				if rng.IntN(10) > 0 { // some have no value
					key = fmt.Sprintf("k%03d", rng.IntN(500)) // and many share one
				}
				h := sortHit{key, int64(i + 1)}
				all = append(all, h)
				b.add(h)
				if len(b.hits) > 2*tc.keep {
					t.Fatalf("after %d candidates the selection holds %d, more than twice its window %d", i+1, len(b.hits), tc.keep)
				}
			}
			full := sortedHits{descending: tc.descending, keep: len(all), hits: all}
			want := full.result()[:min(tc.keep, len(all))]
			if got := b.result(); !slices.Equal(got, want) {
				t.Errorf("first %d: got %v, want %v", tc.keep, got, want)
			}
		})
	}
}

// TestUnindexedSortWindow checks that a page beyond the window of a sort
// without an index is refused with 400 tooMany (RFC 7644 §3.12) instead of
// holding every candidate, while pages inside it and indexed sorts are served.
func TestUnindexedSortWindow(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for i := range 3 {
		ts.createUser(t, fmt.Sprintf("window%d@x", i))
	}
	tests := []struct {
		name, query string
		status      int
		scimType    string
	}{
		{name: "inside the window", query: "?sortBy=title&count=2", status: http.StatusOK},
		{name: "last page inside the window", query: fmt.Sprintf("?sortBy=title&startIndex=%d&count=1", unindexedSortWindow), status: http.StatusOK},
		{name: "beyond the window", query: fmt.Sprintf("?sortBy=title&startIndex=%d&count=2", unindexedSortWindow), status: http.StatusBadRequest, scimType: "tooMany"},
		{name: "beyond the window with a filter", query: fmt.Sprintf("?sortBy=name.familyName&filter=active+eq+true&startIndex=%d", unindexedSortWindow), status: http.StatusBadRequest, scimType: "tooMany"},
		{name: "count 0 counts only", query: fmt.Sprintf("?sortBy=title&startIndex=%d&count=0", 10*unindexedSortWindow), status: http.StatusOK},
		{name: "indexed sort has no window", query: fmt.Sprintf("?sortBy=userName&startIndex=%d&count=2", 10*unindexedSortWindow), status: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, doc := ts.do(t, "GET", "/Users"+tc.query, nil)
			if status != tc.status || (tc.scimType != "" && doc["scimType"] != tc.scimType) {
				t.Errorf("GET /Users%s: %d %v, want %d %s", tc.query, status, doc, tc.status, tc.scimType)
			}
		})
	}
	_, _, err := ts.store.ListUsers(context.Background(), ListQuery{SortBy: "title", StartIndex: unindexedSortWindow + 1, Count: 1})
	var we *SortWindowError
	if !errors.As(err, &we) {
		t.Errorf("store: %v, want a SortWindowError", err)
	}
}

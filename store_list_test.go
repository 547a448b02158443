package main

import (
	"context"
	"fmt"
	"testing"
)

// benchUsers creates n users named <prefix>-<i>@example.com and returns their ids
// in creation order. There is no batch API, so each is its own transaction.
func benchUsers(b *testing.B, s *Store, prefix string, n int) []string {
	b.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		u := &User{Attrs: map[string]any{
			"userName":    fmt.Sprintf("%s-%d@example.com", prefix, i),
			"displayName": fmt.Sprintf("%s %d", prefix, i),
			"active":      true,
			"emails":      []any{map[string]any{"value": fmt.Sprintf("%s-%d@mail.example.com", prefix, i), "type": "work"}},
		}}
		if err := s.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	return ids
}

// benchStore100k is a store holding 100,000 users named user-<i>@example.com.
func benchStore100k(b *testing.B) (*Store, []string) {
	b.Helper()
	if testing.Short() {
		b.Skip("populates 100,000 users")
	}
	s := newTestStore(b)
	return s, benchUsers(b, s, "user", 100_000)
}

func BenchmarkFilterUserName100k(b *testing.B) {
	s, _ := benchStore100k(b)
	ctx := context.Background()
	f := stFilter(b, `userName eq "user-54321@example.com"`)
	b.ReportAllocs()
	for b.Loop() {
		users, total, err := s.ListUsers(ctx, ListQuery{Filter: f, StartIndex: 1, Count: 100})
		if err != nil {
			b.Fatal(err)
		}
		if total != 1 || len(users) != 1 {
			b.Fatalf("got %d users (total %d), want 1", len(users), total)
		}
	}
}

func BenchmarkListPage100k(b *testing.B) {
	s, _ := benchStore100k(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name       string
		startIndex int
	}{
		{"first", 1},
		{"start50000", 50_000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				users, total, err := s.ListUsers(ctx, ListQuery{StartIndex: bc.startIndex, Count: 100})
				if err != nil {
					b.Fatal(err)
				}
				if total != 100_000 || len(users) != 100 {
					b.Fatalf("got %d users (total %d), want 100 of 100000", len(users), total)
				}
			}
		})
	}
}

var benchGroupSizes = []struct {
	name string
	n    int
}{{"1k", 1_000}, {"10k", 10_000}, {"100k", 100_000}}

package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
)

// newTestStore opens a real database file in a fresh temporary directory.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "scimbox.db"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

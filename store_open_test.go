package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// A -wal from another database must be refused before anything can fold it
// into the file: the file's bytes are exactly as they were after the refusal.
func TestForeignWALIsRefusedWithoutTouchingTheFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	// The foreign -wal holds a few writes of another database made after
	// its last full checkpoint, as a crashed server leaves it.
	other := openStoreAt(t, filepath.Join(dir, "other.db"))
	addUsers(t, other, "other", 30)
	if err := other.checkpoint(ctx, "TRUNCATE"); err != nil {
		t.Fatal(err)
	}
	addUsers(t, other, "late", 5)
	foreignWAL, err := os.ReadFile(other.path + "-wal")
	if err != nil || len(foreignWAL) == 0 {
		t.Fatalf("no -wal to borrow: %v", err)
	}
	other.Close()

	for i := range 12 {
		db := filepath.Join(dir, fmt.Sprintf("scimbox%d.db", i))
		s := openStoreAt(t, db)
		addUsers(t, s, "mine", 60)
		s.Close()
		before, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db+"-wal", foreignWAL, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err = OpenStore(ctx, db, stDiscardLog())
		if err == nil {
			s.Close()
			t.Fatalf("run %d: a foreign -wal was accepted", i)
		}
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("run %d: %v, want ErrDamaged", i, err)
		}
		after, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("run %d: refusing the foreign -wal changed the database file (%d bytes before, %d after)", i, len(before), len(after))
		}
	}
}

// The -wal a crash leaves behind is this database's own: its writes are recovered.
func TestOwnLeftoverWALIsRecovered(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStoreAt(t, filepath.Join(dir, "live.db"))
	defer s.Close()
	addUsers(t, s, "u", 20)
	if err := s.checkpoint(context.Background(), "TRUNCATE"); err != nil {
		t.Fatal(err)
	}
	addUsers(t, s, "late", 5)
	// The file and its -wal as they are on disk at this moment: what a crash leaves.
	crashed := filepath.Join(dir, "crashed.db")
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(s.path+suffix, crashed+suffix); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(crashed + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no -wal to recover: %v", err)
	}
	c := openStoreAt(t, crashed)
	defer c.Close()
	if got := countUsers(t, c); got != 25 {
		t.Errorf("recovered %d users, want 25", got)
	}
}

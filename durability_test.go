package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openStoreAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addUsers(t *testing.T, s *Store, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := s.CreateUser(context.Background(), &User{Attrs: map[string]any{"userName": fmt.Sprintf("%s%d", prefix, i)}}); err != nil {
			t.Fatal(err)
		}
	}
}

func countUsers(t *testing.T, s *Store) int {
	t.Helper()
	_, total, err := s.ListUsers(context.Background(), ListQuery{Count: 0})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "scimbox.db")
	s := openStoreAt(t, db)
	addUsers(t, s, "before", 20)
	snap := filepath.Join(dir, "copy.db")
	if err := s.Snapshot(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	addUsers(t, s, "after", 5)

	// A running server holds the file: restore refuses.
	if _, err := restoreDatabase(context.Background(), snap, db, time.Now()); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("restore under a running store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A stale -wal and -shm next to the file must not be applied to the restored copy.
	if err := os.WriteFile(db+"-wal", []byte("stale wal from another life"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db+"-shm", []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept, err := restoreDatabase(context.Background(), snap, db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the replaced database was not kept: %v", err)
	}
	if _, err := os.Stat(db + "-shm"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale -shm left behind: %v", err)
	}
	s = openStoreAt(t, db)
	defer s.Close()
	if got := countUsers(t, s); got != 20 {
		t.Errorf("restored database has %d users, want the snapshot's 20", got)
	}
	old := openStoreAt(t, kept)
	defer old.Close()
	if got := countUsers(t, old); got != 25 {
		t.Errorf("kept database has %d users, want 25", got)
	}
}

func TestRestoreRefusesBadSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o600)
	other := filepath.Join(dir, "other.db")
	o := openStoreAt(t, other)
	o.Close()
	newer := filepath.Join(dir, "newer.db")
	n := openStoreAt(t, newer)
	n.w.Exec("PRAGMA user_version = 999")
	n.Close()
	target := filepath.Join(dir, "scimbox.db")
	tests := []struct{ name, src, want string }{
		{"missing file", filepath.Join(dir, "nope.db"), "no such file"},
		{"not SQLite", garbage, "not a readable SQLite database"},
		{"from a newer scimbox", newer, "newer scimbox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := restoreDatabase(context.Background(), tt.src, target, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Error("a refused restore created the target")
			}
		})
	}
}

// A copy of the .db file alone, taken while the server is idle, is complete:
// the checkpointer has folded the WAL into it.
func TestCopyOfIdleDatabaseIsComplete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "scimbox.db")
	s := openStoreAt(t, db)
	defer s.Close()
	addUsers(t, s, "u", 50)
	time.Sleep(checkpointIdle + 2*time.Second)
	copyPath := filepath.Join(dir, "copied.db")
	if err := copyFile(db, copyPath); err != nil {
		t.Fatal(err)
	}
	if err := verifyDatabase(context.Background(), copyPath); err != nil {
		t.Fatalf("copy of the idle file: %v", err)
	}
	c := openStoreAt(t, copyPath)
	defer c.Close()
	if got := countUsers(t, c); got != 50 {
		t.Errorf("copy has %d users, want 50", got)
	}
}

func TestSnapshotRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStoreAt(t, filepath.Join(dir, "scimbox.db"))
	defer s.Close()
	addUsers(t, s, "u", 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunSnapshots(ctx, 1100*time.Millisecond, 2); close(done) }()
	time.Sleep(4 * time.Second)
	cancel()
	<-done
	snaps, err := s.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots kept, want 2", len(snaps))
	}
	for _, sn := range snaps {
		if err := verifyDatabase(context.Background(), sn.Path); err != nil {
			t.Errorf("snapshot %s: %v", sn.Path, err)
		}
	}
}

func TestDatabaseUnavailableAnswers503(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pragma, why string
	}{
		// max_page_count makes SQLite report SQLITE_FULL exactly as a full disk does.
		{"disk full", "PRAGMA max_page_count = %d", "disk is full"},
		{"read-only", "PRAGMA query_only = 1", "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			id := ts.createUser(t, "existing@example.com")
			var pages int
			ts.store.w.QueryRow("PRAGMA page_count").Scan(&pages)
			pragma := tt.pragma
			if strings.Contains(pragma, "%d") {
				pragma = fmt.Sprintf(pragma, pages)
			}
			if _, err := ts.store.w.Exec(pragma); err != nil {
				t.Fatal(err)
			}
			var status int
			var h http.Header
			var doc map[string]any
			for i := 0; i < 200 && status != http.StatusServiceUnavailable; i++ {
				body := newUserBody(fmt.Sprintf("filler%d@example.com", i))
				body["title"] = strings.Repeat("x", 4000)
				status, h, doc = ts.do(t, "POST", "/Users", body)
				if status != http.StatusCreated && status != http.StatusServiceUnavailable {
					t.Fatalf("status %d: %v", status, doc)
				}
			}
			if status != http.StatusServiceUnavailable {
				t.Fatalf("never answered 503")
			}
			if h.Get("Retry-After") == "" || !strings.Contains(doc["detail"].(string), tt.why) {
				t.Errorf("503 without Retry-After or reason: %v %v", h, doc)
			}
			// Reads go on, and the file is sound.
			if status, _, _ := ts.do(t, "GET", "/Users/"+id, nil); status != 200 {
				t.Errorf("read during outage: %d", status)
			}
			if err := ts.store.Check(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := ts.createUser(t, "victim@example.com")
	gid := ts.createGroup(t, "Victims")
	injections := []string{`' OR 1=1 --`, `"; DROP TABLE users; --`, `\" or \"1\"=\"1`, `%`, `_`, `x') UNION SELECT * FROM tokens --`}
	attrs := []string{"id", "userName", "externalId", "displayName", "active", "emails.value", "groups.value", "meta.created", "title", "emails[type eq \"work\"].value"}
	for _, inj := range injections {
		for _, a := range attrs {
			for _, op := range []string{"eq", "sw", "co", "gt"} {
				f := fmt.Sprintf(`%s %s "%s"`, a, op, strings.ReplaceAll(inj, `"`, `\"`))
				status, _, doc := ts.do(t, "GET", "/Users?filter="+url.QueryEscape(f), nil)
				if status != 200 && status != 400 {
					t.Errorf("filter %s: %d %v", f, status, doc)
				}
				if status == 200 && op != "gt" && doc["totalResults"] != float64(0) { // gt compares text legitimately
					t.Errorf("filter %s matched %v", f, doc["totalResults"])
				}
			}
		}
		status, _, _ := ts.do(t, "GET", "/Users?sortBy="+url.QueryEscape(inj), nil)
		if status != 400 {
			t.Errorf("sortBy %q: %d, want 400", inj, status)
		}
		ts.do(t, "GET", "/Groups?filter="+url.QueryEscape(`members.value eq "`+strings.ReplaceAll(inj, `"`, `\"`)+`"`), nil)
	}
	deep := strings.Repeat(`{"a":`, 100) + `1` + strings.Repeat(`}`, 100)
	if status, _, doc := ts.do(t, "POST", "/Users", deep); status != 400 || doc["scimType"] != "invalidSyntax" {
		t.Errorf("deeply nested body: %d %v", status, doc)
	}
	ops := make([]map[string]any, maxPatchOps+1)
	for i := range ops {
		ops[i] = map[string]any{"op": "Add", "path": "nickName", "value": "x"}
	}
	if status, _, _ := ts.do(t, "PATCH", "/Users/"+id, patchBody(ops...)); status != 400 {
		t.Errorf("%d operations: %d, want 400", len(ops), status)
	}
	if status, _, _ := ts.do(t, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+strings.Repeat("a", maxFilterLen)+`"`), nil); status != 400 {
		t.Errorf("oversized filter: %d, want 400", status)
	}
	big := newUserBody("big@example.com")
	big["title"] = strings.Repeat("t", maxValueBytes+1)
	if status, _, _ := ts.do(t, "POST", "/Users", big); status != 400 {
		t.Errorf("oversized value: %d, want 400", status)
	}
	// Nothing was damaged.
	_, _, doc := ts.do(t, "GET", "/Users", nil)
	if doc["totalResults"] != float64(1) {
		t.Errorf("users after hostile requests: %v", doc["totalResults"])
	}
	if status, _, _ := ts.do(t, "GET", "/Groups/"+gid, nil); status != 200 {
		t.Errorf("group after hostile requests: %d", status)
	}
}

func TestInvalidTokensAreRateLimited(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	bad := &testServer{Server: ts.Server, store: ts.store, token: "scimbox_wrong"}
	var last int
	var h http.Header
	for i := 0; i <= authFailures; i++ {
		last, h, _ = bad.do(t, "GET", "/Users", nil)
	}
	if last != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("after %d invalid tokens: %d Retry-After=%q, want 429", authFailures+1, last, h.Get("Retry-After"))
	}
	// The valid token from the same address is never throttled.
	status, h, _ := ts.do(t, "GET", "/Users", nil)
	if status != 200 {
		t.Errorf("valid token after the flood: %d", status)
	}
	for _, name := range []string{"X-Content-Type-Options", "Cache-Control", "X-Frame-Options"} {
		if h.Get(name) == "" {
			t.Errorf("SCIM response without %s", name)
		}
	}
}

func TestServeRefusesDamagedDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "scimbox.db")
	s := openStoreAt(t, path)
	for i := 0; i < 20; i++ {
		addUsers(t, s, fmt.Sprintf("bulk%d-", i), 50)
	}
	s.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	garbage := []byte(strings.Repeat("\xde\xad\xbe\xef", 4096/4*8))
	// The last pages hold users' rows and indexes: start-up itself reads none
	// of them, so only the integrity check can notice.
	if _, err := f.WriteAt(garbage, fi.Size()-int64(len(garbage))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = run(ctx, []string{"serve", "-db", path, "-addr", "127.0.0.1:0", "-backup-interval", "0"}, io.Discard, io.Discard)
	if !errors.Is(err, ErrDamaged) {
		t.Fatalf("serve on a damaged file: %v, want ErrDamaged", err)
	}
	if ctx.Err() != nil {
		t.Fatal("serve kept running on a damaged file")
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// A database file deleted or replaced under the running server: writes stop
// at once with a 503 that says why (not a 201 for a write nobody will see
// again), /healthz answers 503, and the log says so at ERROR once.
func TestDatabaseFileLostStopsWrites(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		lose func(t *testing.T, path string)
	}{
		{"removed", func(t *testing.T, path string) {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
			}
		}},
		{"replaced", func(t *testing.T, path string) {
			other := filepath.Join(t.TempDir(), "other.db")
			openStoreAt(t, other).Close()
			if err := copyFile(other, path+".new"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(path+".new", path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &tlsLog{}
			store := openStoreAt(t, filepath.Join(t.TempDir(), "scimbox.db"))
			store.log = slog.New(slog.NewTextHandler(logs, nil))
			defer store.Close()
			tok, _, err := store.CreateToken(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer((&server{store: store, log: store.log}).handler())
			defer srv.Close()
			ts := &testServer{Server: srv, store: store, token: tok}
			id := ts.createUser(t, "before@example.com")

			tt.lose(t, store.path)
			for i := range 3 {
				status, h, doc := ts.do(t, "POST", "/Users", newUserBody(fmt.Sprintf("after%d@example.com", i)))
				if status != http.StatusServiceUnavailable {
					t.Fatalf("write %d after the file was %s: %d %v, want 503", i, tt.name, status, doc)
				}
				if detail, _ := doc["detail"].(string); !strings.Contains(detail, "removed or replaced") || !strings.Contains(detail, "scimbox restore") {
					t.Errorf("503 detail %q does not say what happened and how to restore", detail)
				}
				if h.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}
			if status, _, _ := ts.do(t, "DELETE", "/Users/"+id, nil); status != http.StatusServiceUnavailable {
				t.Errorf("delete after the file was %s: %d, want 503", tt.name, status)
			}
			resp, err := http.Get(srv.URL + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "removed or replaced") {
				t.Errorf("/healthz after the file was %s: %d %q, want 503 saying why", tt.name, resp.StatusCode, body)
			}
			// A snapshot now would copy whatever lies at the path (or create it): refused.
			if err := store.Snapshot(context.Background(), filepath.Join(t.TempDir(), "snap.db")); !errors.Is(err, ErrDatabaseLost) {
				t.Errorf("snapshot of a lost file: %v, want ErrDatabaseLost", err)
			}
			if tt.name == "removed" {
				if _, err := os.Stat(store.path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("something created a new file at the path: %v", err)
				}
			}
			if n := strings.Count(logs.String(), "level=ERROR"); n != 1 || !strings.Contains(logs.String(), "removed or replaced") {
				t.Errorf("%d ERROR lines, want one saying the file was removed or replaced:\n%s", n, logs)
			}
		})
	}
}

// A start without a database where a backups or certs folder shows that one
// existed is refused, with the command that restores the newest snapshot;
// -allow-fresh-db starts anyway. A -wal left without its file is refused either way.
func TestServeRefusesFreshDatabaseWhereOneExisted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		leave      func(t *testing.T, dir, db string) // what an earlier database left beside db
		allowFresh bool
		want       []string // in the refusal; nil: serve starts
	}{
		{"nothing there", func(*testing.T, string, string) {}, false, nil},
		{"snapshots", leaveSnapshot, false, []string{"no database at", "backups", "scimbox restore -db", "scimbox-20260101T000000Z.db", "-allow-fresh-db"}},
		{"certificates", leaveCerts, false, []string{"no database at", "certs", "scimbox restore -db", "-allow-fresh-db"}},
		{"snapshots, -allow-fresh-db", leaveSnapshot, true, nil},
		{"certificates, -allow-fresh-db", leaveCerts, true, nil},
		{"-wal without its file", leaveWAL, true, []string{"-wal", "the database file was deleted or moved", "scimbox restore -db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg, err := parseServeConfigEnv([]string{"-addr", "127.0.0.1:0", "-backup-interval", "0"}, io.Discard, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			cfg.DB, cfg.AllowFreshDB = filepath.Join(dir, "scimbox.db"), tt.allowFresh
			tt.leave(t, dir, cfg.DB)
			if tt.want == nil {
				srv := startServe(t, cfg, nil)
				if !waitHealthy("http://"+srv.addrs.Plain+"/healthz", 10*time.Second) {
					t.Fatal("serve did not answer /healthz")
				}
				if _, err := os.Stat(cfg.DB); err != nil {
					t.Errorf("serve started without creating the database: %v", err)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			started := false
			cfg.hooks.ready = func(boundAddrs) { started = true; cancel() }
			err = serve(ctx, cfg, io.Discard, io.Discard)
			if started || err == nil {
				t.Fatalf("serve started on a fresh database where one existed (%v)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not mention %q", err, w)
				}
			}
			if _, err := os.Stat(cfg.DB); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused start created %s: %v", cfg.DB, err)
			}
		})
	}
	// The flag can also come from the environment, as the systemd unit sets flags.
	cfg, err := parseServeConfigEnv(nil, io.Discard, func(name string) (string, bool) {
		return "true", name == "SCIMBOX_ALLOW_FRESH_DB"
	})
	if err != nil || !cfg.AllowFreshDB {
		t.Errorf("SCIMBOX_ALLOW_FRESH_DB=true: AllowFreshDB=%v, %v", cfg.AllowFreshDB, err)
	}
}

func leaveSnapshot(t *testing.T, dir, _ string) {
	s := openStoreAt(t, filepath.Join(t.TempDir(), "old.db"))
	defer s.Close()
	if err := s.Snapshot(context.Background(), filepath.Join(dir, backupDir, "scimbox-20260101T000000Z.db")); err != nil {
		t.Fatal(err)
	}
}

func leaveCerts(t *testing.T, dir, _ string) {
	if err := os.MkdirAll(filepath.Join(dir, "certs", "acme"), 0o700); err != nil {
		t.Fatal(err)
	}
}

func leaveWAL(t *testing.T, _, db string) {
	if err := os.WriteFile(db+"-wal", []byte("the log of a deleted database"), 0o600); err != nil {
		t.Fatal(err)
	}
}

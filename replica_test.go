package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// replicaRPO is the promise the kill test checks: every write acknowledged
// more than this long before the server was killed is in the replica.
const replicaRPO = 5 * time.Second

// replicaTarget is a replica kind the tests run against: its URL and the
// environment the server and restore need for it.
type replicaTarget struct {
	name string
	url  func(t *testing.T) (string, []string)
}

var replicaTargets = []replicaTarget{
	{"file", func(t *testing.T) (string, []string) {
		return "file://" + filepath.Join(t.TempDir(), "replica"), nil
	}},
	{"s3 (gofakes3)", func(t *testing.T) (string, []string) {
		backend := s3mem.New()
		if err := backend.CreateBucket("scimbox"); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gofakes3.New(backend).Server())
		t.Cleanup(srv.Close)
		// AWS_CA_BUNDLE (set on some machines) breaks Litestream's S3 client: see replicator.run.
		env := []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test-secret", "AWS_CA_BUNDLE="}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		return "s3://scimbox/prod/db?endpoint=" + srv.URL + "&region=us-east-1&force-path-style=true", env
	}},
}

// buildScimbox builds the binary once per test.
func buildScimbox(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scimbox")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ack is a user creation the server acknowledged, and when.
type ack struct {
	id, name string
	at       time.Time
}

// replicaHealth reads the replication status the server reports.
func replicaHealth(t *testing.T, base string) replicaStatus {
	t.Helper()
	resp, err := http.Get(base + "/healthz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Replication *replicaStatus `json:"replication"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	if rep.Replication == nil {
		t.Fatal("/healthz?verbose reports no replication")
	}
	return *rep.Replication
}

// waitCaughtUp waits until the replica has every transaction of the database.
func waitCaughtUp(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st := replicaHealth(t, base)
		if st.Started && st.LocalPosition != "" && st.LocalPosition == st.ReplicaPosition && st.LagSeconds == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the replica did not catch up: %+v", replicaHealth(t, base))
}

// TestReplicaSurvivesKill runs a built scimbox with -replica under a
// directory-like write load, takes a point in time in a pause, writes more,
// kills the server with SIGKILL, and restores on a fresh path: every write
// acknowledged more than replicaRPO before the kill is in the latest
// restore, and the restore to the point in time holds exactly the users of then.
func TestReplicaSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server; skipped with -short")
	}
	bin := buildScimbox(t)
	for _, target := range replicaTargets {
		t.Run(target.name, func(t *testing.T) {
			replicaURL, env := target.url(t)
			dir := t.TempDir()
			db := filepath.Join(dir, "scimbox.db")
			out, err := exec.Command(bin, "token", "create", "-db", db, "-name", "replica").Output()
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			token := lines[len(lines)-1]
			port := freePort(t)
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			cmd := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "warn", "-replica", replicaURL)
			cmd.Env = append(os.Environ(), env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			if !waitHealthy(base+"/healthz", 20*time.Second) {
				t.Fatalf("server did not start:\n%s", stderr.String())
			}
			client := &crashClient{base: base + "/scim/v2", token: token}
			load := func(phase string, d time.Duration) []ack {
				var mu sync.Mutex
				var acks []ack
				var wg sync.WaitGroup
				stop := time.Now().Add(d)
				for worker := range 4 {
					wg.Go(func() {
						for n := 0; time.Now().Before(stop); n++ {
							name := fmt.Sprintf("%s-w%d-n%d@example.com", phase, worker, n)
							status, doc := client.send("POST", "/Users", newUserBody(name))
							if status == 0 {
								return
							}
							if status != http.StatusCreated {
								t.Errorf("create %s: %d %v", name, status, doc)
								return
							}
							mu.Lock()
							acks = append(acks, ack{id: doc["id"].(string), name: name, at: time.Now()})
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				return acks
			}
			before := load("a", 2*time.Second)
			waitCaughtUp(t, base)
			point := time.Now().UTC()
			time.Sleep(1100 * time.Millisecond) // the point's second is over before the next writes
			var after []ack
			var killedAt time.Time
			var loadDone sync.WaitGroup
			loadDone.Go(func() { after = load("b", 6*time.Second) })
			time.Sleep(4 * time.Second)
			killedAt = time.Now()
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			loadDone.Wait()

			// The latest state, on a fresh path.
			latest := filepath.Join(t.TempDir(), "restored.db")
			restore := exec.Command(bin, "restore", "-db", latest, "-from-replica", replicaURL)
			restore.Env = append(os.Environ(), env...)
			if out, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("restore: %v\n%s", err, out)
			}
			names := restoredUserNames(t, latest)
			var lost []time.Duration
			var newestMissing time.Duration
			for _, a := range append(before, after...) {
				if names[a.name] {
					continue
				}
				age := killedAt.Sub(a.at)
				lost = append(lost, age)
				newestMissing = max(newestMissing, age)
				if age > replicaRPO {
					t.Errorf("%s, acknowledged %s before the kill, is not in the replica", a.name, age.Round(time.Millisecond))
				}
			}
			t.Logf("%s: %d writes acknowledged (%d before the point in time); %d of them missing from the restore, acknowledged at most %s before the kill (promise checked: %s)",
				target.name, len(before)+len(after), len(before), len(lost), newestMissing.Round(time.Millisecond), replicaRPO)
			if len(after) < 10 {
				t.Errorf("only %d writes after the point in time: the load did not run", len(after))
			}

			// The point in time: exactly the users acknowledged before it.
			then := filepath.Join(t.TempDir(), "then.db")
			restore = exec.Command(bin, "restore", "-db", then, "-from-replica", replicaURL, "-timestamp", point.Format(time.RFC3339Nano))
			restore.Env = append(os.Environ(), env...)
			if out, err := restore.CombinedOutput(); err != nil {
				t.Fatalf("restore -timestamp: %v\n%s", err, out)
			}
			got := restoredUserNames(t, then)
			want := map[string]bool{}
			for _, a := range before {
				want[a.name] = true
			}
			if diff := setDiff(got, want); diff != "" {
				t.Errorf("restore to %s is not the state of then: %s", point.Format(time.RFC3339Nano), diff)
			}
			m := restoredMarker(t, then)
			if m == nil || !m.Point.Equal(point.Truncate(time.Millisecond)) || !strings.HasPrefix(m.Source, strings.SplitN(replicaURL, "?", 2)[0]) {
				t.Errorf("restore marker %+v, want point %s from %s", m, point, replicaURL)
			}
		})
	}
}

// restoredUserNames opens a restored database as the server does and returns its userNames.
func restoredUserNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	s, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open the restored database: %v", err)
	}
	defer s.Close()
	users, _, err := s.ListUsers(context.Background(), ListQuery{StartIndex: 1, Count: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, u := range users {
		names[stringAttr(u.Attrs, "userName")] = true
	}
	return names
}

// restoredMarker returns the restore marker of a restored database.
func restoredMarker(t *testing.T, path string) *RestoreMarker {
	t.Helper()
	s, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := s.RestoreMarker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setDiff describes how got differs from want ("" when equal).
func setDiff(got, want map[string]bool) string {
	var extra, missing []string
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	if len(extra)+len(missing) == 0 {
		return ""
	}
	sort.Strings(extra)
	sort.Strings(missing)
	return fmt.Sprintf("%d extra %v, %d missing %v", len(extra), head(extra), len(missing), head(missing))
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// serveStoreAt opens the database at path as the server does and serves it through httptest with a new token.
func serveStoreAt(t *testing.T, path string) *testServer {
	t.Helper()
	store, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tok, _, err := store.CreateToken(context.Background(), "after restore")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler())
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: store, token: tok}
}

// TestReconcileAfterEachKindOfRestore restores a database from a snapshot,
// from a copy of the stopped file and from a file replica, each taken after
// two users and a group existed and before a third user was created. After
// each, every object is unconfirmed; the directory's requests confirm the
// objects they find and count those for the lost user's id (InvalidAnchor);
// the reconcile closes once everything was touched, and the Reconcile page
// says what to do.
func TestReconcileAfterEachKindOfRestore(t *testing.T) {
	kinds := []struct {
		name string
		// take keeps the state of the store at path (which it may close) and
		// returns a function that restores it into dst, with the restore point.
		take func(t *testing.T, s *Store, path string) func(dst string) time.Time
	}{
		{"snapshot", func(t *testing.T, s *Store, path string) func(string) time.Time {
			snap := filepath.Join(t.TempDir(), "backups", "scimbox-snap.db")
			if err := s.Snapshot(context.Background(), snap); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(snap)
			return func(dst string) time.Time {
				if _, err := restoreDatabase(context.Background(), snap, dst, time.Now()); err != nil {
					t.Fatal(err)
				}
				return fi.ModTime()
			}
		}},
		{"copy", func(t *testing.T, s *Store, path string) func(string) time.Time {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(t.TempDir(), "copy.db")
			if err := copyFile(path, cp); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(cp)
			return func(dst string) time.Time {
				var out bytes.Buffer
				if err := restoreCommand(context.Background(), []string{"-db", dst, cp}, &out, io.Discard); err != nil {
					t.Fatal(err)
				}
				return fi.ModTime()
			}
		}},
		{"replica", func(t *testing.T, s *Store, path string) func(string) time.Time {
			replicaURL := "file://" + filepath.Join(t.TempDir(), "replica")
			rep, err := newReplicator(path, replicaURL, s.writes.Load, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			s.handOverCheckpoints()
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { rep.run(ctx); close(done) }()
			for st := rep.Status(); !st.Started || st.ReplicaPosition == "0000000000000000"; st = rep.Status() {
				time.Sleep(20 * time.Millisecond)
			}
			stop() // the final upload happens on the way out
			<-done
			return func(dst string) time.Time {
				var out bytes.Buffer
				if err := restoreCommand(context.Background(), []string{"-db", dst, "-from-replica", replicaURL}, &out, io.Discard); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out.String(), "Reconcile") {
					t.Errorf("restore output does not point to the reconcile: %s", out.String())
				}
				return time.Time{}
			}
		}},
	}
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "scimbox.db")
			ts := serveStoreAt(t, path)
			var ids []string
			for _, name := range []string{"ada@example.com", "bob@example.com"} {
				status, _, doc := ts.do(t, "POST", "/Users", newUserBody(name))
				if status != http.StatusCreated {
					t.Fatalf("create %s: %d %v", name, status, doc)
				}
				ids = append(ids, doc["id"].(string))
			}
			status, _, doc := ts.do(t, "POST", "/Groups", map[string]any{"displayName": "Staff"})
			if status != http.StatusCreated {
				t.Fatalf("create group: %d %v", status, doc)
			}
			groupID := doc["id"].(string)
			restore := kind.take(t, ts.store, path)
			lost := ""
			if kind.name != "copy" { // the copy's store is closed
				status, _, doc = ts.do(t, "POST", "/Users", newUserBody("late@example.com"))
				if status != http.StatusCreated {
					t.Fatalf("create late user: %d %v", status, doc)
				}
				lost = doc["id"].(string)
			} else {
				lost = "00000000-0000-4000-8000-000000000000" // an id Entra holds from after the copy
			}
			ts.Close()
			ts.store.Close()

			dst := filepath.Join(t.TempDir(), "restored.db")
			point := restore(dst)
			after := serveStoreAt(t, dst)
			m, err := after.store.RestoreMarker(ctx)
			if err != nil || m == nil || !m.Reconciled.IsZero() {
				t.Fatalf("restore marker %+v, %v: want an open reconcile", m, err)
			}
			if !point.IsZero() && !m.Point.Equal(point.UTC().Truncate(time.Millisecond)) {
				t.Errorf("restore point %s, want %s", m.Point, point)
			}
			if users, groups, _ := after.store.ReconcileCounts(ctx); users != 2 || groups != 1 {
				t.Fatalf("unconfirmed after the restore: %d users, %d groups; want 2 and 1", users, groups)
			}
			// Entra's initial cycle: a filtered GET per user, a PATCH for the group.
			if status, _, doc := after.do(t, "GET", `/Users?filter=userName+eq+"ada@example.com"`, nil); status != http.StatusOK || doc["totalResults"].(float64) != 1 {
				t.Fatalf("filter: %d %v", status, doc)
			}
			if status, _, doc := after.do(t, "GET", "/Users/"+lost, nil); status != http.StatusNotFound {
				t.Fatalf("GET the lost user: %d %v", status, doc)
			}
			st, err := after.store.Reconcile(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			if st.UnconfirmedUsers != 1 || len(st.Users) != 1 || st.Users[0].ID != ids[1] || st.UnknownTotal != 1 || st.Unknown[0].ID != lost {
				t.Fatalf("after one lookup and one unknown id: %+v", st)
			}
			admin := setUpAdmin(t, after)
			if code, _, body := admin.get(t, "/reconcile"); code != http.StatusOK || !strings.Contains(body, "Restart provisioning") ||
				!strings.Contains(body, "bob@example.com") || strings.Contains(body, "ada@example.com") || !strings.Contains(body, lost) {
				t.Fatalf("reconcile page: %d\n%s", code, between(body, "<main", "</main>"))
			}
			if code, _, body := admin.get(t, "/"); code != http.StatusOK || !strings.Contains(body, `href="/reconcile"`) {
				t.Errorf("the dashboard does not point to the reconcile: %d", code)
			}
			if status, _, doc := after.do(t, "PATCH", "/Users/"+ids[1], patchBody(map[string]any{"op": "replace", "path": "active", "value": true})); status != http.StatusOK {
				t.Fatalf("PATCH bob: %d %v", status, doc)
			}
			if status, _, doc := after.do(t, "PATCH", "/Groups/"+groupID, patchBody(map[string]any{"op": "replace", "path": "displayName", "value": "Staff"})); status >= 300 {
				t.Fatalf("PATCH group: %d %v", status, doc)
			}
			if code, _, body := admin.get(t, "/reconcile"); code != http.StatusOK || !strings.Contains(body, "Reconciled on") {
				t.Fatalf("reconcile page once everything was touched: %d\n%s", code, between(body, "<main", "</main>"))
			}
			if m, _ := after.store.RestoreMarker(ctx); m == nil || m.Reconciled.IsZero() {
				t.Errorf("the reconcile did not close: %+v", m)
			}
		})
	}
}

// TestCopyOfIdleReplicatedDatabaseIsComplete: with a replica, Litestream
// checkpoints instead of scimbox, and a copy of the file alone is still
// complete once writes have paused for replicaCheckpointInterval and
// Litestream's next sync (the README's promise, with a replica).
func TestCopyOfIdleReplicatedDatabaseIsComplete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "scimbox.db")
	s := openStoreAt(t, db)
	defer s.Close()
	rep, err := newReplicator(db, "file://"+filepath.Join(dir, "replica"), s.writes.Load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.handOverCheckpoints()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	addUsers(t, s, "u", 50)
	time.Sleep(replicaCheckpointInterval + 2*time.Second + 2*time.Second) // the interval, Litestream's sync, slack
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
	if st := rep.Status(); st.LastError != "" || st.LagSeconds != 0 {
		t.Errorf("replication after the pause: %+v", st)
	}
}

// TestReplicaURLs: the kinds accepted, and one replica only.
func TestReplicaURLs(t *testing.T) {
	for _, tc := range []struct {
		urls    []string
		wantErr string
	}{
		{[]string{"file:///var/backups/scimbox"}, ""},
		{[]string{"s3://bucket/scimbox?endpoint=http://127.0.0.1:9000&region=us-east-1"}, ""},
		{[]string{"sftp://backup@host.example.com/scimbox"}, ""},
		{[]string{"file://relative/path"}, "file:///absolute/path"},
		{[]string{"s3:///prefix"}, "name the bucket"},
		{[]string{"gs://bucket/x"}, "the kinds are file, s3, sftp"},
		{[]string{"file:///a", "s3://bucket/b"}, "only one -replica"},
	} {
		var got replicaURLs
		var err error
		for _, u := range tc.urls {
			if err = got.Set(u); err != nil {
				break
			}
		}
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v: error %v, want %q", tc.urls, err, tc.wantErr)
		}
	}
	if got := replicaDisplayURL("sftp://backup:hunter2@host/path"); strings.Contains(got, "hunter2") {
		t.Errorf("the password shows: %s", got)
	}
}

// TestReplicaFailureIsReported: a replica that cannot be written shows its
// error and a growing lag in the status, the metric and the alert.
func TestReplicaFailureIsReported(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "scimbox.db")
	s := openStoreAt(t, db)
	defer s.Close()
	blocker := filepath.Join(dir, "not-a-directory")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := newReplicator(db, "file://"+filepath.Join(blocker, "replica"), s.writes.Load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rep.lagLimit = time.Millisecond
	s.handOverCheckpoints()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	addUsers(t, s, "u", 3)
	deadline := time.Now().Add(30 * time.Second)
	st := rep.Status()
	for (st.LastError == "" || st.LagSeconds == 0) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		st = rep.Status()
	}
	if st.LastError == "" || !strings.Contains(st.LastError, "not a directory") || st.LagSeconds == 0 {
		t.Fatalf("status of a failing replica: %+v", st)
	}
	firing, detail, err := rep.lagAlert(context.Background())
	if err != nil || !firing || !strings.Contains(detail, "behind") || !strings.Contains(detail, "not a directory") {
		t.Errorf("alert: %v %q %v", firing, detail, err)
	}
	m := newMetrics(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.watchReplica(rep)
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lag float64 = -1
	for _, f := range families {
		if f.GetName() == "scimbox_replica_lag_seconds" {
			lag = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if lag <= 0 {
		t.Errorf("scimbox_replica_lag_seconds = %v, want > 0", lag)
	}
}

// runReplicaFor opens the store at path, replicates it to replicaURL while
// fn writes, and closes both as the server does (replication first).
func runReplicaFor(t *testing.T, path, replicaURL string, fn func(s *Store)) {
	t.Helper()
	s := openStoreAt(t, path)
	rep, err := newReplicator(path, replicaURL, s.writes.Load, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.handOverCheckpoints()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.run(ctx); close(done) }()
	for !rep.Status().Started {
		time.Sleep(10 * time.Millisecond)
	}
	fn(s)
	stop()
	<-done
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaAcrossRestarts: the server stopped and started again on the
// same replica keeps one history: a restore has the writes of both runs,
// and a point in time within the first run is still that of then.
func TestReplicaAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "scimbox.db")
	replicaURL := "file://" + filepath.Join(dir, "replica")
	var between time.Time
	runReplicaFor(t, path, replicaURL, func(s *Store) {
		addUsers(t, s, "first", 20)
		time.Sleep(2 * time.Second) // Litestream's sync
		between = time.Now()
		time.Sleep(1100 * time.Millisecond)
		addUsers(t, s, "second", 5)
	})
	runReplicaFor(t, path, replicaURL, func(s *Store) { addUsers(t, s, "third", 7) })
	for _, tc := range []struct {
		at   time.Time
		want int
	}{{time.Time{}, 32}, {between, 20}} {
		out := filepath.Join(t.TempDir(), "restored.db")
		if _, err := restoreFromReplica(context.Background(), replicaURL, out, tc.at, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
			t.Fatal(err)
		}
		if got := len(restoredUserNames(t, out)); got != tc.want {
			t.Errorf("restore at %v: %d users, want %d", tc.at, got, tc.want)
		}
	}
}

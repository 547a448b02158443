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

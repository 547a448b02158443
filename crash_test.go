package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCrashSafety kills a real scimbox process with SIGKILL at random moments
// while clients write to it, many times over, then checks that every write it
// acknowledged (2xx) is in the database and that the file passes integrity_check.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "scimbox.db")
	out, err := exec.Command(bin, "token", "create", "-db", db, "-name", "crash").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := lines[len(lines)-1]

	const kills = 12
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	ackedUsers := map[string]string{} // id → userName
	ackedMembers := map[string]bool{} // user ids acknowledged as members of the group
	groupID := ""

	for round := 0; round < kills; round++ {
		port := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d/scim/v2", port)
		cmd := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "error")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 10*time.Second) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: server did not start after a kill:\n%s", round, stderr.String())
		}
		client := &crashClient{base: base, token: token}
		if groupID == "" {
			status, doc := client.send("POST", "/Groups", map[string]any{"displayName": "Everyone"})
			if status != http.StatusCreated {
				t.Fatalf("create group: %d %v", status, doc)
			}
			groupID = doc["id"].(string)
		}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for worker := 0; worker < 8; worker++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					name := fmt.Sprintf("r%d-w%d-n%d@example.com", round, worker, n)
					status, doc := client.send("POST", "/Users", newUserBody(name))
					if status == 0 {
						return // the server is gone
					}
					if status != http.StatusCreated {
						t.Errorf("create %s: %d %v", name, status, doc)
						return
					}
					id := doc["id"].(string)
					mu.Lock()
					ackedUsers[id] = name
					mu.Unlock()
					status, doc = client.send("PATCH", "/Groups/"+groupID, patchBody(map[string]any{
						"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
					if status == 0 {
						return
					}
					if status != http.StatusNoContent {
						t.Errorf("add member: %d %v", status, doc)
						return
					}
					mu.Lock()
					ackedMembers[id] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		stop()
		wg.Wait()
	}

	// Open the database the way the server does (recovering the -wal) and check everything acknowledged.
	s, err := OpenStore(context.Background(), db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open after %d kills: %v", kills, err)
	}
	defer s.Close()
	ctx := context.Background()
	for id, name := range ackedUsers {
		u, err := s.UserByID(ctx, id)
		if err != nil {
			t.Errorf("acknowledged user %s (%s) is missing: %v", id, name, err)
			continue
		}
		if got := stringAttr(u.Attrs, "userName"); got != name {
			t.Errorf("user %s: userName %q, want %q", id, got, name)
		}
	}
	g, err := s.GroupByID(ctx, groupID, true)
	if err != nil {
		t.Fatal(err)
	}
	members := map[string]bool{}
	for _, m := range g.Members {
		members[m.ID] = true
	}
	for id := range ackedMembers {
		if !members[id] {
			t.Errorf("acknowledged membership of %s is missing", id)
		}
	}
	var integrity string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check after %d kills: %q %v", kills, integrity, err)
	}
	if len(ackedUsers) < kills {
		t.Errorf("only %d writes were acknowledged: the test did not exercise the server", len(ackedUsers))
	}
	t.Logf("%d kills; checked %d acknowledged user creations and %d acknowledged membership adds: all present, integrity_check ok",
		kills, len(ackedUsers), len(ackedMembers))
}

// crashClient sends SCIM requests; status 0 means the server could not be reached.
type crashClient struct{ base, token string }

func (c *crashClient) send(method, path string, body any) (int, map[string]any) {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil && err != io.EOF {
		return 0, nil // cut off mid-response: not acknowledged
	}
	return resp.StatusCode, doc
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHealthy(url string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestCrashGroupCommitAllOrNothing kills a real scimbox process with SIGKILL
// while 16 clients create users and PATCH their emails, so that batches of
// writes are committing when it dies. Afterwards every acknowledged write is
// there, and every request's writes are all there or not at all: no user
// without its email index rows or its user.created event, no email index out
// of step with the user's emails, no event without its user, and a user's
// emails are the last acknowledged ones or the ones of the PATCH in flight.
func TestCrashGroupCommitAllOrNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a real server; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "scimbox.db")
	out, err := exec.Command(bin, "token", "create", "-db", db, "-name", "crash").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	token := lines[len(lines)-1]

	emails := func(name string, n int) []any {
		return []any{
			map[string]any{"type": "work", "value": fmt.Sprintf("%s-%d-work@example.com", name, n), "primary": true},
			map[string]any{"type": "home", "value": fmt.Sprintf("%s-%d-home@example.net", name, n)},
		}
	}
	type userState struct {
		name            string
		acked, inFlight int // the emails' generation last acknowledged, and of the PATCH sent after it (-1: none)
	}
	const kills, workers = 6, 16
	rng := rand.New(rand.NewPCG(3, 4))
	var mu sync.Mutex
	users := map[string]*userState{} // acknowledged creations by id
	acked := 0
	for round := 0; round < kills; round++ {
		port := freePort(t)
		cmd := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-log-level", "error")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 10*time.Second) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: server did not start after a kill:\n%s", round, stderr.String())
		}
		client := &crashClient{base: fmt.Sprintf("http://127.0.0.1:%d/scim/v2", port), token: token}
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for worker := range workers {
			wg.Go(func() {
				for n := 0; ctx.Err() == nil; n++ {
					name := fmt.Sprintf("g%d-w%d-n%d", round, worker, n)
					body := newUserBody(name + "@example.com")
					body["emails"] = emails(name, 0)
					status, doc := client.send("POST", "/Users", body)
					if status == 0 {
						return // the server is gone
					}
					if status != http.StatusCreated {
						t.Errorf("create %s: %d %v", name, status, doc)
						return
					}
					st := &userState{name: name, inFlight: -1}
					mu.Lock()
					users[doc["id"].(string)] = st
					acked++
					mu.Unlock()
					for gen := 1; gen <= 2 && ctx.Err() == nil; gen++ {
						mu.Lock()
						st.inFlight = gen
						mu.Unlock()
						status, doc = client.send("PATCH", "/Users/"+doc["id"].(string), patchBody(map[string]any{
							"op": "replace", "path": "emails", "value": emails(name, gen)}))
						if status == 0 {
							return
						}
						if status != http.StatusOK {
							t.Errorf("patch %s: %d %v", name, status, doc)
							return
						}
						mu.Lock()
						st.acked, st.inFlight = gen, -1
						acked++
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		stop()
		wg.Wait()
	}

	s, err := OpenStore(context.Background(), db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("open after %d kills: %v", kills, err)
	}
	defer s.Close()
	ctx := context.Background()
	rows, err := s.r.QueryContext(ctx, `SELECT id, user_name, attrs, version,
		(SELECT group_concat(value_key, ' ') FROM (SELECT value_key FROM user_emails WHERE user_id = users.id ORDER BY value_key)),
		(SELECT count(*) FROM events WHERE resource_id = users.id AND type = ?),
		(SELECT count(*) FROM events WHERE resource_id = users.id AND type = ?)
		FROM users`, evUserCreated, evUserUpdated)
	if err != nil {
		t.Fatal(err)
	}
	seen, unacked := map[string]bool{}, 0
	for rows.Next() {
		var id, userName, raw string
		var indexed sql.NullString
		var version, created, updated int
		if err := rows.Scan(&id, &userName, &raw, &version, &indexed, &created, &updated); err != nil {
			t.Fatal(err)
		}
		seen[id] = true
		attrs, err := decodeAttrs(raw)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(userEmailKeys(attrs), " "); indexed.String != want || len(userEmailKeys(attrs)) != 2 {
			t.Errorf("user %s (%s): email index %q, its emails %q: a write was cut in half", id, userName, indexed.String, want)
		}
		if created != 1 || updated != version-1 {
			t.Errorf("user %s (%s) at version %d has %d user.created and %d user.updated events: a write was cut in half", id, userName, version, created, updated)
		}
		st := users[id]
		if st == nil {
			unacked++ // its creation was in flight: all of it is there, checked above
			continue
		}
		gen := version - 1
		if gen != st.acked && gen != st.inFlight {
			t.Errorf("user %s (%s) is at PATCH %d; the last acknowledged was %d, and %d was in flight", id, st.name, gen, st.acked, st.inFlight)
		}
		if got := fmt.Sprintf("%s-%d-work@example.com", st.name, gen); !strings.Contains(raw, got) {
			t.Errorf("user %s (%s) at version %d does not hold %s", id, st.name, version, got)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, st := range users {
		if !seen[id] {
			t.Errorf("acknowledged user %s (%s) is missing", id, st.name)
		}
	}
	var orphans int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE resource_type = 'User' AND resource_id NOT IN (SELECT id FROM users)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d user events without their user (%v)", orphans, err)
	}
	var integrity string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check after %d kills: %q %v", kills, integrity, err)
	}
	if len(users) < kills {
		t.Errorf("only %d creations were acknowledged: the test did not exercise the server", len(users))
	}
	t.Logf("%d kills; %d acknowledged writes (%d users) present; %d unacknowledged creations committed whole", kills, acked, len(users), unacked)
}

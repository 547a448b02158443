package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventTypesSince lists the feed's event types after a cursor.
func eventTypesSince(t *testing.T, s *Store, after int64) ([]string, int64) {
	t.Helper()
	events, err := s.Events(context.Background(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types, after = append(types, e.Type), e.Cursor
	}
	return types, after
}

func TestFeedRecordsEffectiveChanges(t *testing.T) {
	t.Parallel()
	ts, ac := policyServer(t)
	step := func(name string, want []string, do func()) {
		t.Helper()
		_, before := eventTypesSince(t, ts.store, 0)
		do()
		got, _ := eventTypesSince(t, ts.store, before)
		if !slices.Equal(got, want) {
			t.Errorf("%s: events %q, want %q", name, got, want)
		}
	}
	var id, gid string
	step("create", []string{evUserCreated}, func() { id = ts.createUser(t, "feed@example.com") })
	step("update", []string{evUserUpdated}, func() {
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "CTO"}))
	})
	step("identical PATCH", nil, func() {
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "CTO"}))
	})
	step("disable", []string{evUserDisabled}, func() {
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	})
	step("enable", []string{evUserEnabled}, func() {
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "True"}))
	})
	step("local override", []string{evUserUpdated}, func() { ac.editField(t, id, "displayName", "Local") })
	step("directory change hidden by the override", nil, func() {
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "displayName", "value": "Entra"}))
	})
	step("group with a member", []string{evGroupCreated, evMemberAdded}, func() {
		gid = ts.createGroup(t, "Feed")
		ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
	})
	step("rename", []string{evGroupUpdated}, func() {
		ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Replace", "path": "displayName", "value": "Feed 2"}))
	})
	step("delete user", []string{evMemberRemoved, evUserDeleted}, func() { ts.do(t, "DELETE", "/Users/"+id, nil) })
	step("delete group", []string{evGroupDeleted}, func() { ts.do(t, "DELETE", "/Groups/"+gid, nil) })

	// The override's event carries the effective value.
	events, _ := ts.store.Events(context.Background(), 0, 100)
	var upd map[string]any
	for _, e := range events {
		if e.Type == evUserUpdated && strings.Contains(string(e.Data), "Local") {
			json.Unmarshal(e.Data, &upd)
		}
	}
	if upd == nil || jsonPath(upd, "user", "displayName") != "Local" || !strings.Contains(fmt.Sprint(upd["changed"]), "displayName") {
		t.Errorf("override event %v", upd)
	}
}

func TestFeedCompleteUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	gid := ts.createGroup(t, "All")
	var mu sync.Mutex
	acked := map[string]int{} // user id → acknowledged writes that must each be one event
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 10; n++ {
				status, _, doc := ts.do(t, "POST", "/Users", newUserBody(fmt.Sprintf("w%d-%d@x", w, n)))
				if status != 201 {
					continue
				}
				id := doc["id"].(string)
				status, _, _ = ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
				mu.Lock()
				acked[id] = 1
				if status == 204 {
					acked[id] = 2
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	events, err := ts.store.Events(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range events {
		var d map[string]any
		json.Unmarshal(e.Data, &d)
		switch e.Type {
		case evUserCreated:
			seen[e.ResourceID]++
		case evMemberAdded:
			seen[d["member"].(string)]++
		}
	}
	for id, n := range acked {
		if seen[id] != n {
			t.Errorf("user %s: %d events for %d acknowledged writes", id, seen[id], n)
		}
	}
	if len(acked) != 80 {
		t.Errorf("%d users acknowledged, want 80", len(acked))
	}
}

func TestAppAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	key, _, err := ts.store.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		ts.createUser(t, fmt.Sprintf("api%d@x", i))
	}
	get := func(auth, path string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		json.NewDecoder(resp.Body).Decode(&doc)
		return resp.StatusCode, doc
	}
	// Scopes: the SCIM token cannot read the API, the app key cannot use SCIM.
	if status, _ := get(ts.token, "/api/v1/users"); status != 401 {
		t.Errorf("API with a SCIM token: %d, want 401", status)
	}
	if status, _ := get("", "/api/v1/users"); status != 401 {
		t.Errorf("API without a key: %d", status)
	}
	appAsSCIM := &testServer{Server: ts.Server, store: ts.store, token: key}
	if status, _, _ := appAsSCIM.do(t, "GET", "/Users", nil); status != 401 {
		t.Errorf("SCIM with an app key: %d, want 401", status)
	}
	// Paging by cursor walks every user once.
	var names []string
	for cursor := "0"; cursor != ""; {
		status, doc := get(key, "/api/v1/users?limit=2&after="+cursor)
		if status != 200 {
			t.Fatalf("page: %d %v", status, doc)
		}
		for _, u := range doc["data"].([]any) {
			names = append(names, u.(map[string]any)["userName"].(string))
		}
		cursor = doc["next"].(string)
	}
	if len(names) != 5 {
		t.Errorf("paged %v, want 5 users", names)
	}
	// Long-poll: the request waits for the next event.
	_, doc := get(key, "/api/v1/events?limit=1000")
	cursor := doc["next"].(string)
	done := make(chan map[string]any)
	go func() {
		_, doc := get(key, "/api/v1/events?wait=10&after="+cursor)
		done <- doc
	}()
	time.Sleep(300 * time.Millisecond)
	ts.createUser(t, "late@x")
	select {
	case doc := <-done:
		data, _ := doc["data"].([]any)
		if len(data) != 1 || jsonPath(data[0], "type") != evUserCreated {
			t.Errorf("long-poll answer %v", doc)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("long-poll did not return on a new event")
	}
}

// receiver is a webhook endpoint that verifies Standard Webhooks signatures
// independently of the sender's code and answers with scripted statuses.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	script []int // statuses to answer, in order; 204 once exhausted
	got    []string
	calls  int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(rc.secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if !hmac.Equal([]byte(sig), []byte(want)) {
		rc.t.Errorf("bad signature %q for %s", sig, id)
	}
	status := 204
	if len(rc.script) > 0 {
		status, rc.script = rc.script[0], rc.script[1:]
	}
	if status < 300 {
		var ev map[string]any
		json.Unmarshal(body, &ev)
		rc.got = append(rc.got, fmt.Sprint(ev["type"]))
	}
	w.WriteHeader(status)
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func fastSender(s *Store) *webhookSender {
	ws := newWebhookSender(s, s.log)
	ws.backoff = func(int) time.Duration { return 20 * time.Millisecond }
	return ws
}

// drain runs the sender until want events arrived or the time is up.
func drain(t *testing.T, ws *webhookSender, rc *receiver, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.received()) < want && time.Now().Before(deadline) {
		ws.deliverDue(context.Background())
		time.Sleep(25 * time.Millisecond)
	}
}

func TestWebhookDeliveryRetryAndRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "scimbox.db")
	s := openStoreAt(t, path)
	rc := &receiver{t: t, script: []int{500, 503}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	hook, err := s.CreateWebhook(context.Background(), srv.URL, []string{evUserCreated, evUserDeleted})
	if err != nil {
		t.Fatal(err)
	}
	rc.secret = hook.Secret
	addUsers(t, s, "hook", 3)
	// Two failed attempts, then scimbox stops before delivering anything.
	ws := fastSender(s)
	ws.deliverDue(context.Background())
	time.Sleep(30 * time.Millisecond)
	ws.deliverDue(context.Background())
	if got := rc.received(); len(got) != 0 {
		t.Fatalf("delivered %v while the receiver failed", got)
	}
	s.Close()
	// After a restart the queue is intact and goes out in order.
	s = openStoreAt(t, path)
	defer s.Close()
	u, _, _ := s.UsersAfter(context.Background(), 0, 1, true)
	if err := s.DeleteUser(context.Background(), u[0].ID, nil); err != nil {
		t.Fatal(err)
	}
	drain(t, fastSender(s), rc, 4)
	if got, want := rc.received(), []string{evUserCreated, evUserCreated, evUserCreated, evUserDeleted}; !slices.Equal(got, want) {
		t.Errorf("received %v, want %v in order", got, want)
	}
	attempts, _ := s.DeliveryAttempts(context.Background(), hook.ID, 20)
	if len(attempts) != 6 || attempts[len(attempts)-1].Status != 500 {
		t.Errorf("delivery log %+v, want 6 attempts starting with a 500", attempts)
	}
}

func TestWebhookDisabledAfterFailures(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	rc := &receiver{t: t, script: []int{500, 500, 500, 500, 500}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	hook, _ := s.CreateWebhook(context.Background(), srv.URL, []string{"*"})
	rc.secret = hook.Secret
	addUsers(t, s, "x", 1)
	ws := fastSender(s)
	ws.maxFailures = 3
	for i := 0; i < 10; i++ {
		ws.deliverDue(context.Background())
		time.Sleep(25 * time.Millisecond)
	}
	hooks, _ := s.Webhooks(context.Background())
	if hooks[0].DisabledReason == "" || rc.calls != 3 {
		t.Fatalf("after 3 failures: reason %q, %d calls", hooks[0].DisabledReason, rc.calls)
	}
	// Enabling it again resumes where it stopped.
	rc.script = nil
	s.EnableWebhook(context.Background(), hook.ID)
	drain(t, ws, rc, 1)
	if got := rc.received(); !slices.Equal(got, []string{evUserCreated}) {
		t.Errorf("after enabling: %v", got)
	}
	// A redirect is a failure, never followed.
	redirect := httptest.NewServer(http.RedirectHandler("http://example.invalid/", http.StatusFound))
	defer redirect.Close()
	h2, _ := s.CreateWebhook(context.Background(), redirect.URL, []string{"*"})
	s.QueueTestEvent(context.Background(), h2.ID)
	ws.deliverDue(context.Background())
	attempts, _ := s.DeliveryAttempts(context.Background(), h2.ID, 5)
	if len(attempts) != 1 || !strings.Contains(attempts[0].Error, "redirects are not followed") {
		t.Errorf("redirect attempt %+v", attempts)
	}
}

func TestExports(t *testing.T) {
	t.Parallel()
	ts, ac := policyServer(t)
	id := ts.createUser(t, "export@example.com")
	ac.editField(t, id, "displayName", "Effective Name")
	gid := ts.createGroup(t, "Exported")
	ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
	status, _, body := ac.get(t, "/export/users.csv?columns="+url.QueryEscape("userName,displayName,groups"))
	if status != 200 {
		t.Fatalf("csv: %d", status)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 2 || !slices.Equal(rows[1], []string{"export@example.com", "Effective Name", "Exported"}) {
		t.Errorf("csv %q %v", rows, err)
	}
	var out bytes.Buffer
	if err := exportGroups(context.Background(), ts.store, &out); err != nil {
		t.Fatal(err)
	}
	var groups []map[string]any
	if err := json.Unmarshal(out.Bytes(), &groups); err != nil || len(groups) != 1 || jsonPath(groups[0], "members", 0, "id") != id {
		t.Errorf("groups json %s %v", out.String(), err)
	}
	if status, _, _ := ac.get(t, "/export/users.csv?columns=password"); status == 200 {
		t.Error("an unknown column was exported")
	}
}

// TestWebhookSlowEndpointDelaysOnlyItself: an endpoint that hangs until the
// attempt times out holds up its own queue only; another endpoint's events
// go out meanwhile, and stopping the sender joins the hanging attempt.
func TestWebhookSlowEndpointDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	hanging := make(chan struct{})
	var hangingOnce sync.Once
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangingOnce.Do(func() { close(hanging) })
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	fast := &receiver{t: t}
	fastSrv := httptest.NewServer(fast)
	defer fastSrv.Close()

	// The slow endpoint comes first in the list, as the older one.
	clock := stSetClock(s)
	slowHook, _ := s.CreateWebhook(context.Background(), slow.URL, []string{"*"})
	clock.t = clock.t.Add(time.Second)
	fastHook, _ := s.CreateWebhook(context.Background(), fastSrv.URL, []string{"*"})
	fast.secret = fastHook.Secret
	addUsers(t, s, "u", 2)
	s.now = time.Now

	var logs tlsLog
	ws := fastSender(s)
	ws.log = slog.New(slog.NewTextHandler(&logs, nil))
	ws.tick = 10 * time.Millisecond
	ws.client.Timeout = 5 * time.Second // the slow endpoint's attempt ends then
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { ws.Run(ctx); close(stopped) }()

	<-hanging
	for deadline := time.Now().Add(20 * time.Second); len(fast.received()) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	// With one sender for all endpoints, the slow endpoint's attempt would
	// have timed out and been recorded before the other endpoint got anything.
	slowAttempts, _ := s.DeliveryAttempts(context.Background(), slowHook.ID, 10)
	if got := fast.received(); len(got) != 2 || len(slowAttempts) != 0 {
		t.Errorf("the other endpoint got %v (want 2 events) while the slow one had %d attempts recorded (want 0: still hanging)", got, len(slowAttempts))
	}
	stop()
	<-stopped
	// Stopped mid-attempt: the delivery stays queued, nothing is recorded
	// and nothing is logged as an error.
	d, err := s.NextDelivery(context.Background(), slowHook.ID)
	if err != nil || d == nil || d.Attempts != 0 {
		t.Errorf("slow endpoint's first delivery after stopping: %v (err %v); want it pending, never attempted", d != nil, err)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("sender logged errors:\n%s", logs.String())
	}
}

// TestWebhookQueueReadErrorsAreLogged: a queue that cannot be read is an
// error in the log, not a silent stop of deliveries.
func TestWebhookQueueReadErrorsAreLogged(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	if _, err := s.CreateWebhook(context.Background(), "http://127.0.0.1:1/", []string{"*"}); err != nil {
		t.Fatal(err)
	}
	// The queue's read joins the events; without them it fails.
	if _, err := s.w.Exec("ALTER TABLE events RENAME TO events_gone"); err != nil {
		t.Fatal(err)
	}
	var logs tlsLog
	ws := fastSender(s)
	ws.log = slog.New(slog.NewTextHandler(&logs, nil))
	ws.deliverDue(context.Background())
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "no such table") {
		t.Errorf("log after a failed queue read:\n%s", logs.String())
	}
}

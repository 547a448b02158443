package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runServe starts serve(cfg) with its log captured; cancelling the returned
// context is what SIGTERM does to the binary.
func runServe(t *testing.T, cfg serveConfig) (addrs boundAddrs, logs *tlsLog, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	logs = &tlsLog{}
	ready := make(chan boundAddrs, 1)
	cfg.hooks.ready = func(a boundAddrs) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, io.Discard, logs) }()
	t.Cleanup(cancel)
	select {
	case addrs = <-ready:
	case err := <-errc:
		t.Fatalf("serve stopped before listening: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not listen within 20s")
	}
	return addrs, logs, cancel, errc
}

// waitServe waits for serve to return and checks that it stopped cleanly:
// no error returned or logged, no write to a closed database.
func waitServe(t *testing.T, done <-chan error, logs *tlsLog) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60s\n%s", logs)
	}
	for _, bad := range []string{"level=ERROR", "database is closed", "panic"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("the log has %q:\n%s", bad, logs)
		}
	}
}

// scimCall sends a SCIM request from a goroutine that may not call t.Fatal.
func scimCall(c *http.Client, method, url, token, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var doc map[string]any
	raw, err := io.ReadAll(resp.Body)
	if err == nil && len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		err = json.Unmarshal(raw, &doc)
	}
	return resp.StatusCode, doc, err
}

// TestShutdownUnderLoad stops the server (as SIGTERM does) in the middle of
// an Entra-like run of concurrent creates and PATCHes, while a webhook
// receiver hangs on a delivery: serve stops cleanly, every acknowledged
// write is in the database, and the webhook sender recorded each answer it
// got before the store closed; the delivery in flight stays queued.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	cfg.Addr = "127.0.0.1:0"

	// The hanging delivery must outlast the run up to the shutdown, however
	// slow the machine: only the shutdown may end it.
	cfg.hooks.webhookTimeout = 10 * time.Minute
	const answered = 5 // deliveries the receiver answers before it hangs
	var calls atomic.Int64
	hanging := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch n := calls.Add(1); {
		case n <= answered:
			w.WriteHeader(http.StatusNoContent)
		case n == answered+1:
			close(hanging)
			<-r.Context().Done() // until scimbox gives up on it
		default:
			t.Errorf("delivery %d: the sender went past the hanging delivery", n)
		}
	}))
	defer receiver.Close()
	s := openStoreAt(t, cfg.DB)
	hook, err := s.CreateWebhook(context.Background(), receiver.URL, []string{evUserCreated})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	addrs, logs, stop, done := runServe(t, cfg)
	base := "http://" + addrs.Plain + "/scim/v2"
	var (
		mu      sync.Mutex
		titles  = map[string]int{} // user id → the last title acknowledged (0: none)
		creates atomic.Int64
		writers sync.WaitGroup
	)
	client := &http.Client{Timeout: time.Minute}
	for w := range 8 {
		writers.Go(func() {
			for i := 0; ; i++ {
				status, doc, err := scimCall(client, "POST", base+"/Users", token,
					fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"w%d-%d@example.com","active":true}`, w, i))
				if err != nil {
					return // the server has gone
				}
				if status != http.StatusCreated {
					continue
				}
				id, _ := doc["id"].(string)
				mu.Lock()
				titles[id] = 0
				mu.Unlock()
				creates.Add(1)
				for n := 1; n <= 3; n++ {
					status, _, err := scimCall(client, "PATCH", base+"/Users/"+id, token,
						fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":"t%d"}]}`, n))
					if err != nil {
						return
					}
					if status == http.StatusOK || status == http.StatusNoContent {
						mu.Lock()
						titles[id] = n
						mu.Unlock()
					}
				}
			}
		})
	}
	// Stop once writes are flowing and a delivery is in flight.
	deadline := time.After(30 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-hanging:
			waiting = creates.Load() < 40
			if waiting {
				time.Sleep(10 * time.Millisecond)
			}
		case <-deadline:
			t.Fatalf("after 30s: %d creates, %d deliveries\n%s", creates.Load(), calls.Load(), logs)
		}
	}
	stop()
	waitServe(t, done, logs)
	writers.Wait()

	s = openStoreAt(t, cfg.DB)
	defer s.Close()
	mu.Lock()
	defer mu.Unlock()
	for id, title := range titles {
		u, err := s.UserByID(context.Background(), id)
		if err != nil {
			t.Errorf("acknowledged user %s: %v", id, err)
			continue
		}
		var got int
		fmt.Sscanf(stringAttr(u.Attrs, "title"), "t%d", &got)
		if got < title {
			t.Errorf("user %s has title t%d, but t%d was acknowledged", id, got, title)
		}
	}
	attempts, err := s.DeliveryAttempts(context.Background(), hook.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != answered {
		t.Errorf("%d delivery attempts recorded, want the %d answered ones: %+v", len(attempts), answered, attempts)
	}
	if d, err := s.NextDelivery(context.Background(), hook.ID); err != nil || d == nil || d.Attempts != 0 {
		t.Errorf("the delivery in flight at shutdown: queued %v, err %v; want it queued, never attempted", d != nil, err)
	}
	t.Logf("%d users created, %d acknowledged writes checked", creates.Load(), len(titles))
}

// TestShutdownCancelsRequestsPastTheGrace: a request still running when the
// shutdown grace period ends (here: a client that stopped sending its body)
// is cancelled and has returned before the store closes, so it never
// writes to a closed database.
func TestShutdownCancelsRequestsPastTheGrace(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	cfg.Addr = "127.0.0.1:0"
	cfg.hooks.shutdownGrace = 100 * time.Millisecond
	addrs, logs, stop, done := runServe(t, cfg)

	conn, err := net.Dial("tcp", addrs.Plain)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"late@example.com"}`
	// With Expect: 100-continue the server answers "100 Continue" when the
	// handler first reads the body: then the request is surely in flight.
	fmt.Fprintf(conn, "POST /scim/v2/Users HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/scim+json\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n",
		addrs.Plain, token, len(body))
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("waiting for the handler to read the body: %q, %v", line, err)
	}
	conn.Write([]byte(body[:10]))
	time.Sleep(50 * time.Millisecond) // let the first bytes arrive; the handler waits for the rest
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop\n%s", logs)
	}
	// The rest of the body, once the store is closed, changes nothing.
	conn.Write([]byte(body[10:]))
	time.Sleep(100 * time.Millisecond)
	for _, bad := range []string{"database is closed", "panic"} {
		if strings.Contains(logs.String(), bad) {
			t.Errorf("the log has %q:\n%s", bad, logs)
		}
	}
	out := logs.String()
	if !strings.Contains(out, "cancelling them") {
		t.Errorf("no warning about the cancelled request:\n%s", out)
	}
	// The request ended (its log line) before the store closed (its workers stopped).
	if ended, closing := strings.Index(out, "msg=request method=POST"), strings.Index(out, "worker=checkpointer"); ended < 0 || closing < 0 || ended > closing {
		t.Errorf("the request did not end before the store closed:\n%s", out)
	}
	s := openStoreAt(t, cfg.DB)
	defer s.Close()
	if n := countUsers(t, s); n != 0 {
		t.Errorf("%d users after the cancelled create, want 0", n)
	}
}

// TestStoreLogAfterClose: a provisioning log entry that comes after Close
// (a request that outlived the server) is dropped, not a panic; the ones
// before Close are written.
func TestStoreLogAfterClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "scimbox.db")
	var logs tlsLog
	s, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	s.Log(LogEntry{Op: "before close", Outcome: "success", Status: 200})
	// Entries keep coming while the store closes.
	var loggers sync.WaitGroup
	for range 4 {
		loggers.Go(func() {
			for range 1000 {
				s.Log(LogEntry{Op: "during close", Outcome: "success", Status: 200})
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	loggers.Wait()
	s.Log(LogEntry{Op: "after close", Outcome: "success", Status: 200})
	if !strings.Contains(logs.String(), "entry dropped") {
		t.Errorf("no debug line for the dropped entry:\n%s", logs.String())
	}

	s = openStoreAt(t, path)
	defer s.Close()
	entries, err := s.ListLog(context.Background(), LogQuery{Limit: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, e := range entries {
		ops[e.Op]++
	}
	if ops["before close"] != 1 || ops["after close"] != 0 {
		t.Errorf("entries written: %v; want the one before Close and none after", ops)
	}
}

// TestDownloadsOutliveTheWriteTimeout: exports and backup downloads are not
// bound by the server's WriteTimeout (here as short as can be, so any write
// after it fails), which every other page is.
func TestDownloadsOutliveTheWriteTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ts.createUser(t, "exported@example.com")
	csrf := ac.csrf(t)

	strict := httptest.NewUnstartedServer(ts.Config.Handler)
	strict.Config.WriteTimeout = time.Nanosecond
	strict.Start()
	defer strict.Close()
	get := func(path string) (*http.Response, error) { return ac.c.Get(strict.URL + path) }
	post := func(path string, form url.Values) (*http.Response, error) {
		req, _ := http.NewRequest("POST", strict.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", strict.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return ac.c.Do(req)
	}
	tests := []struct {
		name     string
		do       func() (*http.Response, error)
		download bool
		want     string // in the body
	}{
		{"users.csv", func() (*http.Response, error) { return get("/export/users.csv") }, true, "exported@example.com"},
		{"users.json", func() (*http.Response, error) { return get("/export/users.json") }, true, "exported@example.com"},
		{"groups.json", func() (*http.Response, error) { return get("/export/groups.json") }, true, "["},
		{"backup", func() (*http.Response, error) { return post("/settings/backup", url.Values{"csrf": {csrf}}) }, true, "SQLite format 3"},
		{"a page", func() (*http.Response, error) { return get("/users") }, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.do()
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			switch {
			case !tt.download && err == nil:
				t.Errorf("a page was answered after the WriteTimeout: %d", resp.StatusCode)
			case tt.download && err != nil:
				t.Errorf("download cut off by the WriteTimeout: %v", err)
			case tt.download && (resp.StatusCode != 200 || !bytes.Contains(body, []byte(tt.want))):
				t.Errorf("download: %d, %d bytes without %q", resp.StatusCode, len(body), tt.want)
			}
		})
	}
}

// TestServeStopsWorkersBeforeClosingTheStore: the order of the log says
// that every worker stopped before the store closed.
func TestServeStopsWorkersBeforeClosingTheStore(t *testing.T) {
	t.Parallel()
	cfg, _ := testServeConfig(t)
	cfg.Addr = "127.0.0.1:0"
	_, logs, stop, done := runServe(t, cfg)
	waitForLog(t, logs, 10*time.Second, "database integrity check passed")
	stop()
	waitServe(t, done, logs)
	out := logs.String()
	closed := strings.Index(out, `msg="worker stopped" worker=checkpointer`)
	for _, w := range []string{`"integrity check"`, "snapshots", `"webhook sender"`, "maintenance"} {
		if i := strings.Index(out, `msg="worker stopped" worker=`+w); i < 0 || closed < 0 || i > closed {
			t.Errorf("worker %q did not stop before the store closed:\n%s", w, out)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cfg.DB), backupDir)); err != nil {
		t.Errorf("no snapshot was taken: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCSVExportNeutralisesFormulas checks OWASP's CSV-injection advice on
// users.csv: a directory value that a spreadsheet would run as a formula is
// prefixed with a single quote, and every field is quoted.
func TestCSVExportNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, title, want string
	}{
		{name: "equals", title: `=HYPERLINK("http://evil.example","x")`, want: `'=HYPERLINK("http://evil.example","x")`},
		{name: "plus", title: "+1+cmd|' /C calc'!A0", want: "'+1+cmd|' /C calc'!A0"},
		{name: "minus", title: "-2+3", want: "'-2+3"},
		{name: "at", title: "@SUM(1,2)", want: "'@SUM(1,2)"},
		{name: "tab", title: "\t=1", want: "'\t=1"},
		{name: "carriage return", title: "\r=1", want: "'\r=1"},
		{name: "formula after a separator stays in its cell", title: "a;=1+1,b", want: "a;=1+1,b"},
		{name: "plain value", title: "Engineer", want: "Engineer"},
		{name: "formula character later", title: "R&D = fun", want: "R&D = fun"},
		{name: "empty", title: "", want: ""},
	}
	s := newTestStore(t)
	ctx := context.Background()
	for _, tc := range tests {
		attrs := map[string]any{"userName": tc.name}
		if tc.title != "" {
			attrs["title"] = tc.title
		}
		if err := s.CreateUser(ctx, &User{Attrs: attrs}); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := exportUsers(ctx, s, &out, "csv", []string{"userName", "title"}); err != nil {
		t.Fatal(err)
	}
	// Every field is quoted: each line starts and ends with a quote.
	for line := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, `"`) {
			t.Errorf("line %q does not start with a quoted field", line)
		}
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	titles := map[string]string{}
	for _, row := range rows[1:] {
		titles[row[0]] = row[1]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := titles[tc.name]; got != tc.want {
				t.Errorf("title cell = %q, want %q", got, tc.want)
			}
		})
	}
}

// apiGet calls the read API with an app key and decodes the JSON answer.
func apiGet(t testing.TB, ts *testServer, key, path string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, doc
}

// TestAPIGroupMembersCursor checks that the members cursor is opaque and
// carries a walk past the first page, and that a forged one is refused.
func TestAPIGroupMembersCursor(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	key, _, err := ts.store.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	gid := ts.createGroup(t, "Cursor")
	var want []string
	for i := range 5 {
		want = append(want, ts.createUser(t, fmt.Sprintf("member%d@x", i)))
	}
	addMembersByPatch(t, ts, gid, want...)
	var got []string
	path := "/api/v1/groups/" + gid + "/members?limit=2"
	for page := 0; ; page++ {
		status, doc := apiGet(t, ts, key, path)
		if status != http.StatusOK {
			t.Fatalf("page %d: %d %v", page, status, doc)
		}
		for _, m := range doc["data"].([]any) {
			got = append(got, m.(map[string]any)["id"].(string))
		}
		next := doc["next"].(string)
		if next == "" {
			break
		}
		if slices.Contains(want, next) {
			t.Errorf("cursor %q is a bare member id, not an opaque cursor", next)
		}
		path = "/api/v1/groups/" + gid + "/members?limit=2&after=" + url.QueryEscape(next)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("walked %v, want %v", got, want)
	}
	for _, bad := range []string{"not a cursor!", "///", "12"} {
		if status, doc := apiGet(t, ts, key, "/api/v1/groups/"+gid+"/members?after="+url.QueryEscape(bad)); status != http.StatusBadRequest {
			t.Errorf("after=%s: %d %v, want 400", bad, status, doc)
		}
	}
}

// addMembersByPatch adds members to a group the way Entra does.
func addMembersByPatch(t testing.TB, ts *testServer, groupID string, ids ...string) {
	t.Helper()
	values := make([]any, len(ids))
	for i, id := range ids {
		values[i] = map[string]any{"value": id}
	}
	status, _, doc := ts.do(t, "PATCH", "/Groups/"+groupID, patchBody(map[string]any{"op": "Add", "path": "members", "value": values}))
	if status != http.StatusNoContent && status != http.StatusOK {
		t.Fatalf("add members: %d %v", status, doc)
	}
}

// TestInvalidAppKeysAreRateLimited: failed app keys are throttled per client
// address like failed SCIM tokens (429 with Retry-After), and a valid key
// from the same address never is.
func TestInvalidAppKeysAreRateLimited(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	key, _, err := ts.store.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	get := func(key string) (int, http.Header) {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/users", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	wrong := appKeyPrefix + "wrong"
	for i := range authFailures {
		if status, _ := get(wrong); status != http.StatusUnauthorized {
			t.Fatalf("invalid app key %d: %d, want 401", i+1, status)
		}
	}
	if status, h := get(wrong); status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("after %d invalid app keys: %d Retry-After=%q, want 429 with Retry-After", authFailures, status, h.Get("Retry-After"))
	}
	if status, _ := get(key); status != http.StatusOK {
		t.Errorf("the valid key after the flood: %d, want 200", status)
	}
}

// TestLongPollEndsOnShutdown: a long poll of the change feed answers (with
// what there is) as soon as the server begins to shut down, instead of
// holding the shutdown up for its wait; an idle server stops at once.
func TestLongPollEndsOnShutdown(t *testing.T) {
	t.Parallel()
	cfg, _ := testServeConfig(t)
	cfg.Addr = "127.0.0.1:0"
	// Longer than the test's patience, shorter than the poll's 30 s: a poll
	// that holds the shutdown is cancelled, and the log says so.
	cfg.hooks.shutdownGrace = 10 * time.Second
	s := openStoreAt(t, cfg.DB)
	key, _, err := s.CreateAppKey(context.Background(), "poller")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	addrs, logs, stop, done := runServe(t, cfg)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addrs.Plain+"/api/v1/events?wait=30", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	// The key's first use is written before the handler starts to wait: once
	// it is in the file, the poll is in flight.
	raw, err := sql.Open("sqlite", "file:"+cfg.DB+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for {
		var used string
		if err := raw.QueryRow("SELECT coalesce(last_used, '') FROM app_keys").Scan(&used); err != nil {
			t.Fatal(err)
		}
		if used != "" {
			break
		}
		select {
		case a := <-answered:
			t.Fatalf("the poll ended before shutdown: %+v", a)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !strings.Contains(a.body, `"data":[]`) {
		t.Errorf("the long poll during shutdown: %d %q %v, want 200 with an empty page", a.status, a.body, a.err)
	}
	waitServe(t, done, logs)
	if strings.Contains(logs.String(), "requests still running after the shutdown grace period") {
		t.Errorf("the long poll held the shutdown up:\n%s", logs)
	}
}

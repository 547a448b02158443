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

// TestGroupsExportStreamsMembers: groups.json, whose members are written a
// batch at a time, is the JSON of each group with its whole member list (an
// empty list for a group without members), for a group of several batches,
// a small one and an empty one.
func TestGroupsExportStreamsMembers(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	ids := stManyUsers(t, s, "x", 2*memberBatch+7)
	small := stGroup(t, s, `Small "<&>"`, ids[:3]...)
	big := stGroup(t, s, "Big", append(ids, small.ID)...)
	empty := stGroup(t, s, "Empty")
	var out bytes.Buffer
	if err := exportGroups(ctx, s, &out); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	want.WriteString("[")
	for i, g := range []*Group{small, big, empty} {
		g, err := s.GroupByID(ctx, g.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		d := appGroup(g)
		members := []any{}
		page, err := s.MembersAfter(ctx, g.ID, "", len(ids)+10)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			members = append(members, map[string]any{"id": m.ID, "type": m.Type, "display": m.Display})
		}
		d["members"] = members
		b, _ := json.Marshal(d)
		if i > 0 {
			want.WriteString(",\n")
		}
		want.Write(b)
	}
	want.WriteString("]\n")
	if out.String() != want.String() {
		t.Errorf("groups.json differs (%d vs %d bytes)\ngot  %.500s\nwant %.500s", out.Len(), want.Len(), out.String(), want.String())
	}
}

// TestUsersExportAcrossBatches: users.json and users.csv hold every user
// once, across several batches read ahead of the writing, with the user's
// effective values and groups as the API shows them.
func TestUsersExportAcrossBatches(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	ids := stManyUsers(t, s, "b", 2*exportBatch+3)
	g := stGroup(t, s, "Staff", ids[exportBatch-1], ids[exportBatch], ids[len(ids)-1])
	p, err := s.Policy(ctx)
	if err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := exportUsers(ctx, s, &out, "json", nil); err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(out.Bytes(), &docs); err != nil {
		t.Fatalf("users.json is not a JSON array: %v", err)
	}
	byID := map[string]map[string]any{}
	for _, d := range docs {
		byID[d["id"].(string)] = d
	}
	if len(docs) != len(ids) || len(byID) != len(ids) {
		t.Fatalf("users.json has %d users (%d distinct), want %d", len(docs), len(byID), len(ids))
	}
	for _, id := range []string{ids[0], ids[exportBatch-1], ids[exportBatch], ids[len(ids)-1]} {
		u, err := s.UserByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(appUserWithGroups(u, p))
		if got, _ := json.Marshal(byID[id]); string(got) != string(raw) {
			t.Errorf("user %s in users.json:\ngot  %s\nwant %s", id, got, raw)
		}
	}

	out.Reset()
	if err := exportUsers(ctx, s, &out, "csv", []string{"id", "groups"}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ids)+1 {
		t.Fatalf("users.csv has %d rows, want %d and a header", len(rows), len(ids))
	}
	inStaff := 0
	for _, row := range rows[1:] {
		if row[1] == "Staff" {
			inStaff++
		}
	}
	if inStaff != 3 {
		t.Errorf("%d rows name the group %s, want 3", inStaff, g.ID)
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

// TestStreamedViewsKeepWhatRailsKeep: the streamed and batched paths (SCIM
// GET of a group, the API's member pages, groups.json, users.json and
// users.csv) show the view each surface owes, for a group of more than one
// batch whose removals a safety rail partly kept (held past the threshold,
// refused for a protected account): SCIM the directory's members, apps the
// effective ones, and each exported user as GET /api/v1/users/{id} shows it,
// kept groups and the roles they give included. The oracle is SQL over the
// members table and the effective_members view, not the code under test.
func TestStreamedViewsKeepWhatRailsKeep(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 2)
	ctx := context.Background()
	ids := stManyUsers(t, rs.store, "kept", memberBatch+10)
	g := stGroup(t, rs.store, "Everyone", ids...)
	if err := rs.store.CreateRole(ctx, "staff", "", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.store.AddRoleRule(ctx, RoleRule{Role: "staff", GroupID: g.ID}, "admin"); err != nil {
		t.Fatal(err)
	}
	protected := ids[memberBatch+5]
	if err := rs.store.SetProtected(ctx, protected, true, "admin"); err != nil {
		t.Fatal(err)
	}
	var remove []any
	for _, id := range ids[memberBatch : memberBatch+6] {
		remove = append(remove, map[string]any{"value": id})
	}
	if status, _, doc := rs.do(t, "PATCH", "/Groups/"+g.ID, patchBody(map[string]any{"op": "Remove", "path": "members", "value": remove})); status != http.StatusNoContent {
		t.Fatalf("remove members: %d %v", status, doc)
	}

	memberIDs := func(query string) []string {
		t.Helper()
		rows, err := rs.store.r.QueryContext(ctx, query, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		out, err := scanIDs(rows)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	directory := memberIDs("SELECT member_id FROM members WHERE group_id = ?")
	effective := memberIDs("SELECT member_id FROM effective_members WHERE group_id = ?")
	if len(directory) != len(ids)-6 || len(effective) <= len(directory) || !slices.Contains(effective, protected) {
		t.Fatalf("setup: %d directory members, %d effective (protected kept: %v); want %d directory and some kept",
			len(directory), len(effective), slices.Contains(effective, protected), len(ids)-6)
	}

	// SCIM: the directory's members, streamed in two batches.
	if got := rs.memberIDsOfGroup(t, g.ID); !slices.Equal(got, directory) {
		t.Errorf("SCIM GET has %d members, want the directory's %d", len(got), len(directory))
	}

	// API member pages: the effective members, across the batch boundary.
	var paged []string
	for path := "/api/v1/groups/" + g.ID + "/members?limit=1000"; ; {
		status, doc := apiGet(t, rs.testServer, rs.key, path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v", path, status, doc)
		}
		for _, m := range doc["data"].([]any) {
			paged = append(paged, m.(map[string]any)["id"].(string))
		}
		next := doc["next"].(string)
		if next == "" {
			break
		}
		path = "/api/v1/groups/" + g.ID + "/members?limit=1000&after=" + url.QueryEscape(next)
	}
	if !slices.Equal(paged, effective) {
		t.Errorf("API member pages have %d members, want the %d effective ones", len(paged), len(effective))
	}

	// groups.json: the effective members, written a batch at a time.
	var out bytes.Buffer
	if err := exportGroups(ctx, rs.store, &out); err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		ID      string `json:"id"`
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	if err := json.Unmarshal(out.Bytes(), &groups); err != nil || len(groups) != 1 || groups[0].ID != g.ID {
		t.Fatalf("groups.json: %v %.300s", err, out.String())
	}
	var exported []string
	for _, m := range groups[0].Members {
		exported = append(exported, m.ID)
	}
	slices.Sort(exported)
	if !slices.Equal(exported, effective) {
		t.Errorf("groups.json has %d members, want the %d effective ones", len(exported), len(effective))
	}

	// users.json: each user as the API's user page shows it.
	out.Reset()
	if err := exportUsers(ctx, rs.store, &out, "json", nil); err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(out.Bytes(), &docs); err != nil || len(docs) != len(ids) {
		t.Fatalf("users.json: %d users, %v", len(docs), err)
	}
	for _, d := range docs {
		id := d["id"].(string)
		_, want := apiGet(t, rs.testServer, rs.key, "/api/v1/users/"+id)
		if got, want := fmt.Sprint(d), fmt.Sprint(want); got != want {
			t.Errorf("user %s in users.json:\ngot  %s\nwant %s", id, got, want)
		}
		if id == protected && (len(d["groups"].([]any)) != 1 || fmt.Sprint(d["roles"]) != "[staff]") {
			t.Errorf("the protected user in users.json: groups %v roles %v, want Everyone and staff", d["groups"], d["roles"])
		}
	}

	// users.csv: the kept group and its role in their columns.
	out.Reset()
	if err := exportUsers(ctx, rs.store, &out, "csv", []string{"id", "groups", "roles"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"`+protected+`","Everyone","staff"`) {
		t.Errorf("users.csv lacks the protected user's kept group and role:\n%.500s", out.String())
	}
}

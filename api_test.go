package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
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

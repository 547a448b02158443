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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// testServer is a scimbox served through httptest with a real database and token.
type testServer struct {
	*httptest.Server
	store *Store
	token string
}

// newTestServer starts a server on a fresh database and creates a token for it.
func newTestServer(t testing.TB) *testServer {
	t.Helper()
	store := newTestStore(t)
	tok, _, err := store.CreateToken(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler())
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: store, token: tok}
}

// do sends a SCIM request (body marshalled to JSON unless it is a string) and
// returns the status, headers and decoded JSON body (nil when empty).
func (ts *testServer) do(t testing.TB, method, path string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.URL+"/scim/v2"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s: response is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, resp.Header, doc
}

// jsonPath digs into a decoded JSON document: keys for objects, indexes for arrays.
func jsonPath(doc any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := doc.(map[string]any)
			doc = m[k]
		case int:
			l, _ := doc.([]any)
			if k >= len(l) {
				return nil
			}
			doc = l[k]
		}
	}
	return doc
}

func newUserBody(userName string) map[string]any {
	return map[string]any{
		"schemas":  []string{userSchema, enterpriseSchema},
		"userName": userName, "active": true, "externalId": userName + "-ext",
		"name":   map[string]any{"givenName": "Given", "familyName": "Family"},
		"emails": []any{map[string]any{"type": "work", "value": userName, "primary": true}},
		"meta":   map[string]any{"resourceType": "User"},
		"roles":  []any{},
	}
}

// createUser POSTs a user and returns its id.
func (ts *testServer) createUser(t testing.TB, userName string) string {
	t.Helper()
	status, _, doc := ts.do(t, "POST", "/Users", newUserBody(userName))
	if status != http.StatusCreated {
		t.Fatalf("create user %s: status %d: %v", userName, status, doc)
	}
	return doc["id"].(string)
}

func (ts *testServer) createGroup(t testing.TB, name string) string {
	t.Helper()
	status, _, doc := ts.do(t, "POST", "/Groups", map[string]any{
		"schemas":     []string{groupSchema, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
		"displayName": name, "externalId": name + "-ext", "meta": map[string]any{"resourceType": "Group"},
	})
	if status != http.StatusCreated {
		t.Fatalf("create group %s: status %d: %v", name, status, doc)
	}
	return doc["id"].(string)
}

func patchBody(ops ...map[string]any) map[string]any {
	list := make([]any, len(ops))
	for i, op := range ops {
		list[i] = op
	}
	return map[string]any{"schemas": []string{patchSchema}, "Operations": list}
}

func TestTestConnectionProbe(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{
		"/Users?filter=userName+eq+%227d420df3-9995-4831-a406-ecf8166f5f6a%22",
		"/Users/?filter=userName+eq+%227d420df3-9995-4831-a406-ecf8166f5f6a%22&aadOptscim062020",
		"/Groups?excludedAttributes=members&filter=displayName+eq+%229e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b%22",
	} {
		status, h, doc := ts.do(t, "GET", path, nil)
		if status != http.StatusOK {
			t.Fatalf("%s: status %d: %v", path, status, doc)
		}
		if got, want := h.Get("Content-Type"), scimContentType; got != want {
			t.Errorf("%s: Content-Type %q, want %q", path, got, want)
		}
		if got := jsonPath(doc, "totalResults"); got != float64(0) {
			t.Errorf("%s: totalResults %v, want 0", path, got)
		}
		if got, ok := doc["Resources"].([]any); !ok || len(got) != 0 {
			t.Errorf("%s: Resources %v, want []", path, doc["Resources"])
		}
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	other, _, err := ts.store.CreateToken(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, auth string
		want       int
	}{
		{"no header", "", 401},
		{"basic scheme", "Basic dXNlcjpwYXNz", 401},
		{"garbage token", "Bearer not-a-valid-token", 401},
		{"lower-case scheme", "bearer " + ts.token, 200},
		{"second token", "Bearer " + other, 200},
		{"token with one character changed", "Bearer " + ts.token[:20] + string(ts.token[20]^1) + ts.token[21:], 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+"/scim/v2/Users", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode; got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
			if tt.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// A revoked token stops working at once, without a restart.
	id, _ := parseToken(other)
	if err := ts.store.RevokeToken(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/scim/v2/Users", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("revoked token: status %d, want 401", resp.StatusCode)
	}
	// Health checks need no token.
	resp, err = http.Get(ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz: status %d", resp.StatusCode)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := ts.createUser(t, "existing@example.com")
	huge := `{"userName":"big","displayName":"` + string(bytes.Repeat([]byte("x"), maxBodyBytes)) + `"}`
	tests := []struct {
		name, method, path string
		body               any
		contentType        string
		status             int
		scimType           string
	}{
		{"malformed JSON", "POST", "/Users", `{"userName": `, "", 400, "invalidSyntax"},
		{"JSON array body", "POST", "/Users", `[1,2]`, "", 400, "invalidSyntax"},
		{"trailing garbage", "POST", "/Users", `{"userName":"a"} x`, "", 400, "invalidSyntax"},
		{"empty body", "POST", "/Users", "", "", 400, "invalidSyntax"},
		{"missing userName", "POST", "/Users", map[string]any{"displayName": "x"}, "", 400, "invalidValue"},
		{"userName not a string", "POST", "/Users", map[string]any{"userName": map[string]any{"a": 1}}, "", 400, "invalidValue"},
		{"active not a boolean", "POST", "/Users", map[string]any{"userName": "z", "active": "maybe"}, "", 400, "invalidValue"},
		{"duplicate userName in other case", "POST", "/Users", newUserBody("EXISTING@example.com"), "", 409, "uniqueness"},
		{"body too large", "POST", "/Users", huge, "", 413, ""},
		{"wrong content type", "POST", "/Users", `{"userName":"ct"}`, "text/plain", 415, ""},
		{"invalid filter", "GET", "/Users?filter=userName+eq+%22unterminated", nil, "", 400, "invalidFilter"},
		{"unknown filter operator", "GET", "/Users?filter=userName+xx+%22a%22", nil, "", 400, "invalidFilter"},
		{"bad startIndex", "GET", "/Users?startIndex=abc", nil, "", 400, "invalidValue"},
		{"bad sortOrder", "GET", "/Users?sortBy=userName&sortOrder=sideways", nil, "", 400, "invalidValue"},
		{"unknown user", "GET", "/Users/5171a35d82074e068ce2", nil, "", 404, ""},
		{"patch unknown user", "PATCH", "/Users/5171a35d82074e068ce2", patchBody(map[string]any{"op": "Replace", "path": "active", "value": false}), "", 404, ""},
		{"unknown patch op", "PATCH", "/Users/" + id, patchBody(map[string]any{"op": "Frobnicate", "path": "active", "value": false}), "", 400, "invalidSyntax"},
		{"bad patch path", "PATCH", "/Users/" + id, patchBody(map[string]any{"op": "Replace", "path": "emails[type eq", "value": "x"}), "", 400, "invalidPath"},
		{"remove without path", "PATCH", "/Users/" + id, patchBody(map[string]any{"op": "Remove"}), "", 400, "noTarget"},
		{"patch read-only id", "PATCH", "/Users/" + id, patchBody(map[string]any{"op": "Replace", "path": "id", "value": "x"}), "", 400, "mutability"},
		{"patch removes required userName", "PATCH", "/Users/" + id, patchBody(map[string]any{"op": "Remove", "path": "userName"}), "", 400, "invalidValue"},
		{"unknown endpoint", "GET", "/Nope", nil, "", 404, ""},
		{"method not allowed", "DELETE", "/Users", nil, "", 405, ""},
		{"POST on a user id", "POST", "/Users/" + id, map[string]any{}, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader
			switch b := tt.body.(type) {
			case string:
				rd = bytes.NewBufferString(b)
			case nil:
			default:
				raw, _ := json.Marshal(b)
				rd = bytes.NewReader(raw)
			}
			req, _ := http.NewRequest(tt.method, ts.URL+"/scim/v2"+tt.path, rd)
			req.Header.Set("Authorization", "Bearer "+ts.token)
			ct := tt.contentType
			if ct == "" {
				ct = "application/scim+json"
			}
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var doc map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if got, want := resp.StatusCode, tt.status; got != want {
				t.Errorf("status %d, want %d (%v)", got, want, doc)
			}
			if got, want := resp.Header.Get("Content-Type"), scimContentType; got != want {
				t.Errorf("Content-Type %q, want %q", got, want)
			}
			if got, want := jsonPath(doc, "schemas", 0), errorSchema; got != want {
				t.Errorf("schemas[0] = %v, want %v", got, want)
			}
			if got, want := jsonPath(doc, "status"), strconv.Itoa(tt.status); got != want {
				t.Errorf("status field = %v, want %q", got, want)
			}
			if got, _ := doc["scimType"].(string); got != tt.scimType {
				t.Errorf("scimType %q, want %q", got, tt.scimType)
			}
			if d, _ := doc["detail"].(string); d == "" || strings.Contains(d, "database") {
				t.Errorf("detail %q: want an explanation without internals", d)
			}
		})
	}
	// None of the bad requests changed anything.
	_, _, doc := ts.do(t, "GET", "/Users", nil)
	if got := doc["totalResults"]; got != float64(1) {
		t.Errorf("after bad requests: %v users, want 1", got)
	}
	_, _, u := ts.do(t, "GET", "/Users/"+id, nil)
	if got := u["userName"]; got != "existing@example.com" {
		t.Errorf("userName changed to %v", got)
	}
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	status, h, created := ts.do(t, "POST", "/Users", newUserBody("Alice@Contoso.example"))
	if status != 201 {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	if got, want := h.Get("Location"), ts.URL+"/scim/v2/Users/"+id; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if got, want := jsonPath(created, "meta", "location"), ts.URL+"/scim/v2/Users/"+id; got != want {
		t.Errorf("meta.location %v, want %v", got, want)
	}
	if h.Get("ETag") == "" || h.Get("ETag") != jsonPath(created, "meta", "version") {
		t.Errorf("ETag %q vs meta.version %v", h.Get("ETag"), jsonPath(created, "meta", "version"))
	}
	if _, ok := created["password"]; ok {
		t.Error("password returned")
	}

	// Entra's disable: capitalised op, string boolean.
	status, _, patched := ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	if status != 200 || patched["active"] != false {
		t.Fatalf("disable: %d active=%v", status, patched["active"])
	}
	// A disabled user is still found by its matching attribute, in any case.
	_, _, list := ts.do(t, "GET", "/Users?filter=userName+eq+%22alice%40contoso.EXAMPLE%22", nil)
	if got := jsonPath(list, "Resources", 0, "id"); got != id {
		t.Fatalf("filter after disable: %v", list)
	}
	if got := jsonPath(list, "Resources", 0, "active"); got != false {
		t.Errorf("active = %v, want false", got)
	}
	_, _, list = ts.do(t, "GET", "/Users?filter=active+eq+false", nil)
	if got := jsonPath(list, "totalResults"); got != float64(1) {
		t.Errorf("active eq false: %v results", got)
	}

	// PUT replaces: attributes not sent are gone.
	status, _, put := ts.do(t, "PUT", "/Users/"+id, map[string]any{"userName": "alice@contoso.example", "displayName": "Alice", "misspeled": "x"})
	if status != 200 {
		t.Fatalf("put: %d %v", status, put)
	}
	if put["emails"] != nil || put["misspeled"] != nil || put["displayName"] != "Alice" {
		t.Errorf("put result %v", put)
	}

	status, _, _ = ts.do(t, "DELETE", "/Users/"+id, nil)
	if status != 204 {
		t.Fatalf("delete: %d", status)
	}
	if status, _, _ := ts.do(t, "GET", "/Users/"+id, nil); status != 404 {
		t.Errorf("get after delete: %d", status)
	}
	_, _, list = ts.do(t, "GET", "/Users?filter=userName+eq+%22alice%40contoso.example%22", nil)
	if got := jsonPath(list, "totalResults"); got != float64(0) {
		t.Errorf("filter after delete: %v", got)
	}
	if status, _, _ := ts.do(t, "DELETE", "/Users/"+id, nil); status != 404 {
		t.Errorf("second delete: %d, want 404", status)
	}
}

func TestETags(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := ts.createUser(t, "etag@example.com")
	_, h, _ := ts.do(t, "GET", "/Users/"+id, nil)
	tag := h.Get("ETag")
	send := func(method, header, value string, body any) int {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, ts.URL+"/scim/v2/Users/"+id, bytes.NewReader(raw))
		if body == nil {
			req, _ = http.NewRequest(method, ts.URL+"/scim/v2/Users/"+id, nil)
		}
		req.Header.Set("Authorization", "Bearer "+ts.token)
		req.Header.Set(header, value)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := send("GET", "If-None-Match", tag, nil); got != 304 {
		t.Errorf("If-None-Match current: %d, want 304", got)
	}
	if got := send("GET", "If-None-Match", `W/"999"`, nil); got != 200 {
		t.Errorf("If-None-Match stale: %d, want 200", got)
	}
	nick := patchBody(map[string]any{"op": "Add", "path": "nickName", "value": "N"})
	if got := send("PATCH", "If-Match", `W/"999"`, nick); got != 412 {
		t.Errorf("If-Match stale: %d, want 412", got)
	}
	if got := send("PATCH", "If-Match", tag, nick); got != 200 {
		t.Errorf("If-Match current: %d, want 200", got)
	}
	// The version changed, so the old tag no longer matches.
	if got := send("DELETE", "If-Match", tag, nil); got != 412 {
		t.Errorf("delete with old tag: %d, want 412", got)
	}
	// An identical PATCH changes nothing, not even the version.
	_, h1, _ := ts.do(t, "GET", "/Users/"+id, nil)
	ts.do(t, "PATCH", "/Users/"+id, nick)
	_, h2, _ := ts.do(t, "GET", "/Users/"+id, nil)
	if h1.Get("ETag") != h2.Get("ETag") {
		t.Errorf("no-op PATCH changed the ETag: %s → %s", h1.Get("ETag"), h2.Get("ETag"))
	}
}

func TestListing(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, n := range []string{"c@x", "a@x", "b@x", "d@x", "e@x"} {
		ts.createUser(t, n)
	}
	tests := []struct {
		name, query string
		total       int
		userNames   []string
	}{
		{"first page", "?startIndex=1&count=2", 5, []string{"c@x", "a@x"}},
		{"second page", "?startIndex=3&count=2", 5, []string{"b@x", "d@x"}},
		{"past the end", "?startIndex=9&count=2", 5, nil},
		{"count zero", "?count=0", 5, nil},
		{"startIndex below one", "?startIndex=-4&count=1", 5, []string{"c@x"}},
		{"sorted", "?sortBy=userName&count=3", 5, []string{"a@x", "b@x", "c@x"}},
		{"sorted descending", "?sortBy=userName&sortOrder=descending&count=2", 5, []string{"e@x", "d@x"}},
		{"filter or", "?filter=userName+eq+%22a%40x%22+or+userName+eq+%22e%40x%22", 2, []string{"a@x", "e@x"}},
		{"filter sw with sort", "?filter=userName+sw+%22%22+or+userName+co+%22%40%22&sortBy=userName&count=1", 5, []string{"a@x"}},
		{"filter on non-indexed attribute", "?filter=name.givenName+eq+%22given%22&startIndex=5", 5, []string{"e@x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, doc := ts.do(t, "GET", "/Users"+tt.query, nil)
			if status != 200 {
				t.Fatalf("status %d: %v", status, doc)
			}
			if got := doc["totalResults"]; got != float64(tt.total) {
				t.Errorf("totalResults %v, want %d", got, tt.total)
			}
			res, _ := doc["Resources"].([]any)
			var got []string
			for _, r := range res {
				got = append(got, r.(map[string]any)["userName"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.userNames, ",") {
				t.Errorf("userNames %v, want %v", got, tt.userNames)
			}
			if doc["itemsPerPage"] != float64(len(res)) {
				t.Errorf("itemsPerPage %v, want %d", doc["itemsPerPage"], len(res))
			}
		})
	}
	// .search takes the same parameters in a body.
	status, _, doc := ts.do(t, "POST", "/Users/.search", map[string]any{
		"schemas": []string{searchSchema}, "filter": `userName eq "d@x"`, "attributes": []string{"userName"}, "count": 10,
	})
	if status != 200 || jsonPath(doc, "Resources", 0, "userName") != "d@x" {
		t.Fatalf(".search: %d %v", status, doc)
	}
	if r := jsonPath(doc, "Resources", 0).(map[string]any); r["emails"] != nil || r["id"] == nil {
		t.Errorf(".search projection: %v", r)
	}
}

func TestProjection(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := ts.createUser(t, "p@x")
	ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Add", "path": enterpriseSchema + ":department", "value": "R&D"}))
	tests := []struct {
		name, query  string
		want, absent []string
	}{
		{"attributes", "?attributes=userName,emails.value", []string{"id", "schemas", "userName", "emails"}, []string{"name", "active", "meta"}},
		{"excluded", "?excludedAttributes=emails,name", []string{"id", "userName", "active"}, []string{"emails", "name"}},
		{"excluded id is still returned", "?excludedAttributes=id", []string{"id"}, nil},
		{"extension attribute", "?attributes=" + enterpriseSchema + ":department", []string{enterpriseSchema}, []string{"userName"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, doc := ts.do(t, "GET", "/Users/"+id+tt.query, nil)
			for _, k := range tt.want {
				if _, ok := doc[k]; !ok {
					t.Errorf("%s missing from %v", k, doc)
				}
			}
			for _, k := range tt.absent {
				if _, ok := doc[k]; ok {
					t.Errorf("%s present in %v", k, doc)
				}
			}
		})
	}
	_, _, doc := ts.do(t, "GET", "/Users/"+id+"?attributes=emails.value", nil)
	if got := jsonPath(doc, "emails", 0); len(got.(map[string]any)) != 1 {
		t.Errorf("emails.value projection kept %v", got)
	}
}

func TestPathLeniency(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for _, path := range []string{"/Users/", "/users", "/ServiceProviderConfig/", "/serviceproviderconfig", "/ResourceTypes/", "/ResourceTypes/User", "/Schemas/", "/Schemas/" + groupSchema, "/Groups/?aadOptscim062020"} {
		if status, _, doc := ts.do(t, "GET", path, nil); status != 200 {
			t.Errorf("%s: status %d: %v", path, status, doc)
		}
	}
	// Discovery requires the token too.
	resp, err := http.Get(ts.URL + "/scim/v2/Schemas")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unauthenticated /Schemas: %d", resp.StatusCode)
	}
}

func TestConcurrentCreatesOfOneUserName(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	const n = 30
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "same@example.com"
			if i%2 == 1 {
				name = "SAME@example.com"
			}
			status, _, _ := ts.do(t, "POST", "/Users", newUserBody(name))
			statuses <- status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Errorf("statuses %v, want one 201 and %d 409", count, n-1)
	}
}

// memberIDsOfGroup GETs a group and returns its member ids.
func (ts *testServer) memberIDsOfGroup(t testing.TB, id string) []string {
	t.Helper()
	status, _, doc := ts.do(t, "GET", "/Groups/"+id, nil)
	if status != 200 {
		t.Fatalf("get group: %d %v", status, doc)
	}
	var ids []string
	members, _ := doc["members"].([]any)
	for _, m := range members {
		ids = append(ids, m.(map[string]any)["value"].(string))
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

func TestGroupMembershipDialects(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	u1, u2, u3 := ts.createUser(t, "u1@x"), ts.createUser(t, "u2@x"), ts.createUser(t, "u3@x")
	nested := ts.createGroup(t, "Nested")
	ref := func(id string) map[string]any { return map[string]any{"$ref": nil, "value": id} }
	tests := []struct {
		name string
		ops  []map[string]any
		want []string
	}{
		{"Entra add with $ref null", []map[string]any{{"op": "Add", "path": "members", "value": []any{ref(u1), ref(u2)}}}, sorted(u1, u2)},
		{"duplicate add is a no-op", []map[string]any{{"op": "add", "path": "members", "value": []any{ref(u1)}}}, sorted(u1, u2)},
		{"Entra default remove with value removes only that member", []map[string]any{{"op": "Remove", "path": "members", "value": []any{ref(u2)}}}, sorted(u1)},
		{"removing a non-member is a no-op", []map[string]any{{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": u3}}}}, sorted(u1)},
		{"several ops in one request, nested group, bare string id", []map[string]any{
			{"op": "Add", "path": "members", "value": []any{ref(u2), ref(nested)}},
			{"op": "Add", "path": "members", "value": u3},
			{"op": "Remove", "path": "members", "value": []any{ref(u1)}},
		}, sorted(u2, u3, nested)},
		{"filtered remove (aadOptscim062020)", []map[string]any{{"op": "remove", "path": `members[value eq "` + u2 + `"]`}}, sorted(u3, nested)},
		{"replace members", []map[string]any{{"op": "Replace", "path": "members", "value": []any{ref(u1)}}}, sorted(u1)},
		{"rename and add in one request", []map[string]any{
			{"op": "Replace", "path": "displayName", "value": "Engineering Team"},
			{"op": "Add", "path": "members", "value": []any{ref(u2)}},
		}, sorted(u1, u2)},
		{"remove without value removes all", []map[string]any{{"op": "Remove", "path": "members"}}, nil},
	}
	g := ts.createGroup(t, "Engineering")
	for _, tt := range tests { // sequential: each step builds on the last
		status, _, doc := ts.do(t, "PATCH", "/Groups/"+g, patchBody(tt.ops...))
		if status != http.StatusNoContent {
			t.Fatalf("%s: status %d: %v", tt.name, status, doc)
		}
		if got := ts.memberIDsOfGroup(t, g); !slices.Equal(got, tt.want) {
			t.Errorf("%s: members %v, want %v", tt.name, got, tt.want)
		}
	}
	_, _, doc := ts.do(t, "GET", "/Groups/"+g+"?excludedAttributes=members", nil)
	if doc["displayName"] != "Engineering Team" {
		t.Errorf("rename lost: %v", doc["displayName"])
	}

	// Unknown member ids are skipped: the rest of the request is applied, the
	// answer is a success, and the skip is in the provisioning log and the
	// group's skipped list (see TestUnknownMembersAreSkippedVisibly).
	ts.do(t, "PATCH", "/Groups/"+g, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{ref(u1)}}))
	status, _, doc := ts.do(t, "PATCH", "/Groups/"+g, patchBody(
		map[string]any{"op": "Replace", "path": "displayName", "value": "Renamed"},
		map[string]any{"op": "Add", "path": "members", "value": []any{ref(u2), ref("no-such-id-1"), ref("no-such-id-2")}},
	))
	if status != http.StatusNoContent {
		t.Fatalf("unknown members: %d %v", status, doc)
	}
	if got, want := ts.memberIDsOfGroup(t, g), sorted(u1, u2); !slices.Equal(got, want) {
		t.Errorf("members after PATCH with unknown ids: %v, want %v", got, want)
	}
	_, _, doc = ts.do(t, "GET", "/Groups/"+g, nil)
	if doc["displayName"] != "Renamed" {
		t.Errorf("the rename in the same PATCH was not applied: %v", doc["displayName"])
	}
}

func TestGroupsAndUsers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	alice, bob := ts.createUser(t, "alice@x"), ts.createUser(t, "bob@x")
	eng, ops := ts.createGroup(t, "Engineering"), ts.createGroup(t, "Ops")
	if status, _, doc := ts.do(t, "POST", "/Groups", map[string]any{"displayName": "ENGINEERING"}); status != 409 || doc["scimType"] != "uniqueness" {
		t.Errorf("duplicate displayName: %d %v", status, doc)
	}
	for _, g := range []string{eng, ops} {
		ts.do(t, "PATCH", "/Groups/"+g, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": alice}}}))
	}
	ts.do(t, "PATCH", "/Groups/"+eng, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": bob}}}))

	// Users carry their direct groups, read-only and filterable.
	_, _, u := ts.do(t, "GET", "/Users/"+alice, nil)
	groups, _ := u["groups"].([]any)
	if len(groups) != 2 || jsonPath(u, "groups", 0, "display") != "Engineering" {
		t.Errorf("alice's groups: %v", u["groups"])
	}
	_, _, list := ts.do(t, "GET", "/Users?filter=groups.value+eq+%22"+ops+"%22", nil)
	if list["totalResults"] != float64(1) || jsonPath(list, "Resources", 0, "id") != alice {
		t.Errorf("groups.value filter: %v", list)
	}
	_, _, list = ts.do(t, "GET", "/Groups?filter=members.value+eq+%22"+bob+"%22&excludedAttributes=members", nil)
	if list["totalResults"] != float64(1) || jsonPath(list, "Resources", 0, "members") != nil {
		t.Errorf("members.value filter with excludedAttributes: %v", list)
	}
	_, _, list = ts.do(t, "GET", "/Groups?filter=displayName+eq+%22engineering%22", nil)
	if n, _ := jsonPath(list, "Resources", 0, "members").([]any); len(n) != 2 {
		t.Errorf("group list with members: %v", list)
	}

	// Deleting a user removes its memberships; deleting a group leaves its users.
	ts.do(t, "DELETE", "/Users/"+bob, nil)
	if got := ts.memberIDsOfGroup(t, eng); !slices.Equal(got, []string{alice}) {
		t.Errorf("members after deleting bob: %v", got)
	}
	ts.do(t, "DELETE", "/Groups/"+eng, nil)
	status, _, u := ts.do(t, "GET", "/Users/"+alice, nil)
	if status != 200 {
		t.Fatalf("alice gone with her group: %d", status)
	}
	if groups, _ := u["groups"].([]any); len(groups) != 1 || jsonPath(u, "groups", 0, "value") != ops {
		t.Errorf("alice's groups after deleting Engineering: %v", u["groups"])
	}
}

func TestConcurrentMemberAdds(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	g := ts.createGroup(t, "Everyone")
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		ids[i] = ts.createUser(t, fmt.Sprintf("user%d@x", i))
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, doc := ts.do(t, "PATCH", "/Groups/"+g, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
			if status != 204 {
				errs <- fmt.Sprintf("%d %v", status, doc)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := ts.memberIDsOfGroup(t, g); !slices.Equal(got, sorted(ids...)) {
		t.Errorf("%d members after %d parallel adds", len(got), n)
	}
}

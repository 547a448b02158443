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
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a server's log lines; handlers write to it concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestServerWith is newTestServer with the server's log kept, and its
// handler wrapped by wrap when wrap is not nil.
func newTestServerWith(t testing.TB, wrap func(*Store, http.Handler) http.Handler) (*testServer, *syncBuffer) {
	t.Helper()
	store := newTestStore(t)
	tok, _, err := store.CreateToken(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	h := (&server{store: store, log: slog.New(slog.NewTextHandler(logs, nil))}).handler()
	if wrap != nil {
		h = wrap(store, h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: store, token: tok}, logs
}

// sendRaw writes a request byte for byte on a new connection, half-closes
// it (so that a body shorter than announced ends), and reads the response.
func sendRaw(t testing.TB, ts *testServer, raw string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestBrokenRequestBodies sends bodies that are cut short, framed wrongly or
// followed by more data over raw HTTP to every write on Users and Groups:
// each is a 400 invalidSyntax (the client's fault, not logged as an error),
// and nothing changes.
func TestBrokenRequestBodies(t *testing.T) {
	t.Parallel()
	ts, logs := newTestServerWith(t, nil)
	userID := ts.createUser(t, "existing@example.com")
	groupID := ts.createGroup(t, "Existing")
	_, _, before := ts.do(t, "GET", "/Users/"+userID, nil)
	_, _, groupBefore := ts.do(t, "GET", "/Groups/"+groupID, nil)

	userPatch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Changed"}]}`
	writes := []struct{ method, path, body string }{
		{"POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"new@example.com"}`},
		{"PUT", "/Users/" + userID, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"renamed@example.com"}`},
		{"PATCH", "/Users/" + userID, userPatch},
		{"POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"New"}`},
		{"PUT", "/Groups/" + groupID, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Renamed"}`},
		{"PATCH", "/Groups/" + groupID, userPatch},
	}
	head := func(method, path string) string {
		return method + " /scim/v2" + path + " HTTP/1.1\r\nHost: scimbox.test\r\nAuthorization: Bearer " + ts.token +
			"\r\nContent-Type: application/scim+json\r\nConnection: close\r\n"
	}
	sized := func(body string) string { return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body }
	breakages := []struct {
		name  string
		frame func(body string) string // headers after the common ones, and the body
	}{
		{"body shorter than Content-Length", func(b string) string {
			return "Content-Length: " + strconv.Itoa(len(b)+50) + "\r\n\r\n" + b
		}},
		{"chunk size that is not hex", func(b string) string {
			return "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + b + "\r\n0\r\n\r\n"
		}},
		{"chunked body cut short", func(b string) string {
			return "Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(b)+50), 16) + "\r\n" + b
		}},
		{"chunked body without its last chunk", func(b string) string {
			return "Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(b)), 16) + "\r\n" + b + "\r\n"
		}},
		{"closing bracket after the object", func(b string) string { return sized(b + "]") }},
		{"closing brace after the object", func(b string) string { return sized(b + "}") }},
		{"second object", func(b string) string { return sized(b + "{}") }},
		{"second value after a newline", func(b string) string { return sized(b + "\n[1]") }},
	}
	for _, w := range writes {
		if !json.Valid([]byte(w.body)) {
			t.Fatalf("%s %s: the intact body is not JSON", w.method, w.path)
		}
		for _, br := range breakages {
			t.Run(w.method+" "+strings.SplitN(w.path[1:], "/", 2)[0]+"/"+br.name, func(t *testing.T) {
				resp := sendRaw(t, ts, head(w.method, w.path)+br.frame(w.body))
				var doc map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
					t.Fatalf("status %d, body is not JSON: %v", resp.StatusCode, err)
				}
				if got, want := resp.StatusCode, http.StatusBadRequest; got != want {
					t.Errorf("status %d, want %d (%v)", got, want, doc)
				}
				if got, want := doc["scimType"], "invalidSyntax"; got != want {
					t.Errorf("scimType %v, want %v (%v)", got, want, doc)
				}
			})
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a broken body was logged as a server error:\n%s", logs.String())
	}
	for _, c := range []struct{ path, name string }{{"/Users", "users"}, {"/Groups", "groups"}} {
		if _, _, doc := ts.do(t, "GET", c.path, nil); doc["totalResults"] != float64(1) {
			t.Errorf("%s: %v after broken writes, want 1", c.name, doc["totalResults"])
		}
	}
	if _, _, after := ts.do(t, "GET", "/Users/"+userID, nil); !jsonEqual(before, after) {
		t.Errorf("user changed by broken writes:\n%v\n%v", before, after)
	}
	if _, _, after := ts.do(t, "GET", "/Groups/"+groupID, nil); !jsonEqual(groupBefore, after) {
		t.Errorf("group changed by broken writes:\n%v\n%v", groupBefore, after)
	}
}

// TestAPIAuthenticatesEveryRoute walks every /api/v1 route with every kind of
// credential: anything but a valid app key is a 401 (never a 404 that would
// tell an app its users were deleted), and a refused request writes nothing.
func TestAPIAuthenticatesEveryRoute(t *testing.T) {
	t.Parallel()
	ts, _ := newTestServerWith(t, nil)
	ctx := context.Background()
	// Created through the store: SCIM writes would queue provisioning log
	// rows that land while the matrix runs.
	userID := stUser(t, ts.store, "api@example.com").ID
	groupID := stGroup(t, ts.store, "API", userID).ID
	key, _, err := ts.store.CreateAppKey(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	revoked, revokedKey, err := ts.store.CreateAppKey(ctx, "old app")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.RevokeAppKey(ctx, revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	// A well-formed key (right prefix and checksum) that was never issued.
	bogus, _ := newSecret(appKeyPrefix)

	credentials := []struct {
		name, auth string
		valid      bool
	}{
		{"no credential", "", false},
		{"not a bearer scheme", "Basic " + key, false},
		{"garbage key", "Bearer scimboxapp_nope", false},
		{"well-formed unknown key", "Bearer " + bogus, false},
		{"revoked key", "Bearer " + revoked, false},
		{"SCIM token", "Bearer " + ts.token, false},
		{"valid key", "Bearer " + key, true},
	}
	// Each route with an id is tried with an existing and an unknown one.
	ids := map[string]string{"/api/v1/users/:id": userID, "/api/v1/groups/:id/members": groupID}
	type target struct {
		path string
		want int // with a valid key
	}
	var targets []target
	for _, e := range (&server{}).apiEndpoints() {
		if id, ok := ids[e.path]; ok {
			targets = append(targets, target{strings.Replace(e.path, ":id", id, 1), 200},
				target{strings.Replace(e.path, ":id", "5171a35d-8207-4e06-8ce2-000000000000", 1), 404})
			continue
		}
		if strings.Contains(e.path, ":") {
			t.Fatalf("route %s has a parameter this test does not know", e.path)
		}
		targets = append(targets, target{e.path, 200})
	}
	for _, c := range credentials {
		for _, tg := range targets {
			t.Run(c.name+" "+tg.path, func(t *testing.T) {
				before := dbFingerprint(t, ts.store)
				req, _ := http.NewRequest("GET", ts.URL+tg.path, nil)
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var doc map[string]any
				if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
					t.Fatalf("status %d: body is not JSON: %v", resp.StatusCode, err)
				}
				want := tg.want
				if !c.valid {
					want = http.StatusUnauthorized
				}
				if got := resp.StatusCode; got != want {
					t.Errorf("status %d, want %d (%v)", got, want, doc)
				}
				if want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				if want >= 400 && doc["error"] == "" {
					t.Errorf("error response without an explanation: %v", doc)
				}
				if after := dbFingerprint(t, ts.store); !c.valid && after != before {
					t.Errorf("a refused request wrote to the database: %s, then %s", before, after)
				}
			})
		}
	}
}

// dbFingerprint sums up what a request could write: resources, the change
// feed, the provisioning log and the last use of every credential.
func dbFingerprint(t testing.TB, s *Store) string {
	t.Helper()
	var fp string
	err := s.r.QueryRow(`SELECT (SELECT count(*) FROM users) || '/' || (SELECT count(*) FROM groups) || '/' ||
		(SELECT coalesce(max(cursor), 0) FROM events) || '/' || (SELECT count(*) FROM provisioning_log) || '/' ||
		(SELECT coalesce(group_concat(coalesce(last_used, '-')), '') FROM app_keys) || '/' ||
		(SELECT coalesce(group_concat(coalesce(last_used, '-')), '') FROM tokens)`).Scan(&fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// TestExportErrors: a bad request for an export is an ordinary error page,
// not a file; an error once the file has begun breaks the download instead
// of appending an error page to it.
func TestExportErrors(t *testing.T) {
	t.Parallel()
	t.Run("unknown column", func(t *testing.T) {
		t.Parallel()
		ts, _ := newTestServerWith(t, nil)
		ac := setUpAdmin(t, ts)
		ts.createUser(t, "export@example.com")
		for _, path := range []string{"/export/users.csv?columns=userName,password", "/export/users.csv?columns=", "/export/nope.csv"} {
			status, h, body := ac.get(t, path)
			want := http.StatusBadRequest
			if strings.Contains(path, "nope") {
				want = http.StatusNotFound
			}
			if strings.HasSuffix(path, "columns=") {
				want = http.StatusOK // no choice is the default columns
			}
			if status != want {
				t.Errorf("%s: status %d, want %d\n%s", path, status, want, body)
			}
			if want == http.StatusOK {
				continue
			}
			if cd := h.Get("Content-Disposition"); cd != "" {
				t.Errorf("%s: the error page is sent as a download (%s)", path, cd)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("%s: error page Content-Type %q", path, ct)
			}
			if want == http.StatusBadRequest && !strings.Contains(body, "password") {
				t.Errorf("%s: the page does not name the unknown column:\n%s", path, body)
			}
		}
	})
	for _, file := range []string{"users.json", "groups.json"} {
		t.Run("store fails mid-stream "+file, func(t *testing.T) {
			t.Parallel()
			// The read pool closes as soon as the export's first byte is
			// written, so every read after it fails.
			ts, logs := newTestServerWith(t, func(s *Store, h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasPrefix(r.URL.Path, "/export/") {
						w = &closeStoreOnWrite{ResponseWriter: w, store: s}
					}
					h.ServeHTTP(w, r)
				})
			})
			ac := setUpAdmin(t, ts)
			ts.createUser(t, "export@example.com")
			ts.createGroup(t, "Exported")
			// A fresh connection: on a reused one, net/http would quietly
			// retry the GET when the server closes it, as browsers do.
			fresh := &http.Client{Jar: ac.c.Jar, Transport: &http.Transport{}}
			resp, err := fresh.Get(ts.URL + "/export/" + file)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatalf("the download completed (status %d) although the store failed:\n%s", resp.StatusCode, body)
			}
			if bytes.Contains(body, []byte("<html")) || bytes.Contains(body, []byte("internal error")) {
				t.Errorf("an error page was appended to the download:\n%s", body)
			}
			if !strings.Contains(logs.String(), "database is closed") {
				t.Errorf("the cause is not in the log:\n%s", logs.String())
			}
		})
	}
}

// closeStoreOnWrite closes the store's read pool at the first byte written.
type closeStoreOnWrite struct {
	http.ResponseWriter
	store *Store
	once  sync.Once
}

func (c *closeStoreOnWrite) Write(b []byte) (int, error) {
	c.once.Do(func() { c.store.r.Close() })
	return c.ResponseWriter.Write(b)
}

// TestErrorClassification pins what each kind of error is, whichever surface
// renders it.
func TestErrorClassification(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest("GET", "/scim/v2/Users/abc", nil)
	tests := []struct {
		name     string
		err      error
		status   int
		scimType string
		detail   string // a substring
	}{
		{"not found", fmt.Errorf("user %q: %w", "abc", ErrNotFound), 404, "", "User abc not found"},
		{"conflict", fmt.Errorf("create user: %w: userName %q is taken", ErrConflict, "a"), 409, "uniqueness", `userName "a" is taken`},
		{"invalid input", badRequest("invalidFilter", "bad filter"), 400, "invalidFilter", "bad filter"},
		{"unknown members", &UnknownMembersError{IDs: []string{"x"}}, 400, "invalidValue", "x"},
		{"body too large", fmt.Errorf("read: %w", &http.MaxBytesError{Limit: 10}), 413, "", "10 bytes"},
		{"unauthorized", unauthorized("no token"), 401, "", "no token"},
		{"refused edit", &ErrReadOnlyField{Key: "title", Why: "the directory owns it"}, 403, "", "title"},
		{"too many requests", tooManyRequests("slow down", 90*time.Second), 429, "", "slow down"},
		{"body cut short", bodyReadError(io.ErrUnexpectedEOF), 400, "invalidSyntax", "cut short"},
		{"body too slow", bodyReadError(fmt.Errorf("read: %w", os.ErrDeadlineExceeded)), 408, "", "in time"},
		{"internal", fmt.Errorf("scan: %w", io.ErrUnexpectedEOF), 500, "", "internal error"},
		{"cancelled while the client is still there", fmt.Errorf("query: %w", context.Canceled), 500, "", "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := classify(r, tt.err)
			if p.Status != tt.status || p.ScimType != tt.scimType || !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("classify(%v) = %+v, want %d %q %q", tt.err, p, tt.status, tt.scimType, tt.detail)
			}
			if tt.status == 500 && p.Detail != "internal error" {
				t.Errorf("an internal error's cause reaches the client: %q", p.Detail)
			}
		})
	}
	if p := classify(r, tooManyRequests("slow down", 1500*time.Millisecond)); p.RetryAfter != 1500*time.Millisecond {
		t.Errorf("429 RetryAfter %v", p.RetryAfter)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p := classify(r.WithContext(ctx), fmt.Errorf("query: %w", context.Canceled)); p.Status != statusClientClosed {
		t.Errorf("cancelled by the client leaving: %d, want %d", p.Status, statusClientClosed)
	}
}

// TestErrorSurfacesAgree: one error, three renderings with the same status.
func TestErrorSurfacesAgree(t *testing.T) {
	t.Parallel()
	ts, _ := newTestServerWith(t, nil)
	ac := setUpAdmin(t, ts)
	key, _, err := ts.store.CreateAppKey(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	unknown := "5171a35d-8207-4e06-8ce2-000000000000"
	if status, _, doc := ts.do(t, "GET", "/Users/"+unknown, nil); status != 404 || doc["detail"] == "" {
		t.Errorf("SCIM: %d %v", status, doc)
	}
	if status, h, body := ac.get(t, "/users/"+unknown); status != 404 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Errorf("admin: %d %s", status, body)
	}
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/users/"+unknown, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	json.NewDecoder(resp.Body).Decode(&doc)
	if resp.StatusCode != 404 || doc["error"] == "" {
		t.Errorf("API: %d %v", resp.StatusCode, doc)
	}
	// An API path that does not exist answers in the API's JSON.
	req, _ = http.NewRequest("GET", ts.URL+"/api/v1/nope", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != 404 || !strings.HasPrefix(resp2.Header.Get("Content-Type"), "application/json") {
		t.Errorf("unknown API path: %d %s", resp2.StatusCode, resp2.Header.Get("Content-Type"))
	}
}

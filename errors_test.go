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

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSafeNext keeps the post-login redirect on this site: only a host-less,
// scheme-less absolute path survives, whatever a browser would make of the rest.
func TestSafeNext(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, next, want string
	}{
		{"empty", "", "/"},
		{"root", "/", "/"},
		{"page", "/groups", "/groups"},
		{"page with query", "/users?q=a%20b&page=2", "/users?q=a%20b&page=2"},
		{"page with fragment", "/log#top", "/log#top"},
		{"relative", "groups", "/"},
		{"protocol-relative", "//evil.example", "/"},
		{"protocol-relative with path", "//evil.example/x", "/"},
		{"backslash", "/\\evil.example", "/"},
		{"backslashes", "\\\\evil.example", "/"},
		{"encoded tab then slash", "/%09/evil.example", "/"},
		{"tab then slash", "/\t/evil.example", "/"},
		{"newline then slash", "/\n/evil.example", "/"},
		{"carriage return", "/\r/evil.example", "/"},
		{"NUL", "/\x00/evil.example", "/"},
		{"leading tab", "\t//evil.example", "/"},
		{"leading space", " //evil.example", "/"},
		{"tab alone", "\t", "/"},
		{"encoded slash", "/%2F/evil.example", "/"},
		{"encoded slash lower case", "/%2f/evil.example", "/"},
		{"encoded backslash", "/%5C/evil.example", "/"},
		{"encoded slash and backslash", "/%2F%5Cevil.example", "/"},
		{"scheme", "https://evil.example", "/"},
		{"scheme without slashes", "https:evil.example", "/"},
		{"javascript", "javascript:alert(1)", "/"},
		{"javascript after slash", "/javascript:alert(1)", "/javascript:alert(1)"},
		{"userinfo", "//user@evil.example", "/"},
		{"unicode line separator", "/\u2028/evil.example", "/"},
		{"bad escape", "/%zz", "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := safeNext(tt.next); got != tt.want {
				t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
			}
		})
	}
}

// TestLoginRedirectStaysOnSite logs in with next values that browsers turn
// into another site, and checks the Location that goes out.
func TestLoginRedirectStaysOnSite(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	setUpAdmin(t, ts)
	for _, next := range []string{"/\t/evil.example", "/%09/evil.example", "/%2F/evil.example", "https:evil.example"} {
		status, h, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {next}})
		if status != http.StatusSeeOther || h.Get("Location") != "/" {
			t.Errorf("next=%q: %d Location %q, want 303 to /", next, status, h.Get("Location"))
		}
	}
}

// TestRequestsWithoutAValidTokenLeaveNoTrace sends 200 requests with unknown
// or revoked tokens (the limiter's 429s among them) and some without any:
// the provisioning log and the dashboard's error count do not move, and the
// Connection page counts the rejected tokens per address instead.
func TestRequestsWithoutAValidTokenLeaveNoTrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	if status, _, _ := ts.do(t, "GET", "/Users/no-such-user", nil); status != http.StatusNotFound {
		t.Fatalf("authenticated GET of an unknown user: %d", status)
	}
	revoked, tok, err := ts.store.CreateToken(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := ts.store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logBefore := stCountRows(t, ts.store, "SELECT count(*) FROM provisioning_log")
	if before.Failures24h != 1 || logBefore != 1 {
		t.Fatalf("before: %d failures in 24 h, %d log rows; want the one authenticated 404", before.Failures24h, logBefore)
	}

	longID := strings.Repeat("x", 64<<10)
	statuses := map[int]int{}
	send := func(method, path, token string) {
		req, err := http.NewRequest(method, ts.URL+"/scim/v2"+path, strings.NewReader(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"intruder"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/scim+json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
	for i := range 200 {
		switch i % 4 {
		case 0:
			send("DELETE", "/Users/"+longID, "scimbox_unknown")
		case 1:
			send("POST", "/Users", revoked)
		case 2:
			send("PATCH", "/Groups/"+longID, revoked)
		case 3:
			send("GET", "/Users/"+longID, "not even a token")
		}
	}
	for range 20 {
		send("DELETE", "/Users/"+longID, "")
	}
	if statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != 220 || statuses[http.StatusTooManyRequests] == 0 {
		t.Fatalf("statuses %v, want 401s and the limiter's 429s only", statuses)
	}
	if err := ts.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := ts.store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.Failures24h, before.Failures24h; got != want {
		t.Errorf("errors in 24 h: %d after the bogus requests, want %d", got, want)
	}
	if got, want := stCountRows(t, ts.store, "SELECT count(*) FROM provisioning_log"), logBefore; got != want {
		t.Errorf("provisioning log: %d rows after the bogus requests, want %d", got, want)
	}
	_, _, page := ac.get(t, "/connection")
	if want := "200 requests with an unknown token from 127.0.0.1"; !strings.Contains(page, want) {
		t.Errorf("the Connection page does not say %q:\n%s", want, page)
	}
	if !strings.Contains(page, "User no-such-user not found") {
		t.Errorf("the Connection page lost the real last error:\n%s", page)
	}
}

// TestRejectedTokensAreBounded checks that the per-address counter keeps at
// most maxRejectedAddrs addresses, and that a busy one (a revoked Entra job
// still calling) survives a spray of one-off addresses.
func TestRejectedTokensAreBounded(t *testing.T) {
	t.Parallel()
	var rt rejectedTokens
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for range 50 {
		now = now.Add(time.Second)
		rt.record("203.0.113.7", now)
	}
	for i := range 10 * maxRejectedAddrs {
		now = now.Add(time.Second)
		rt.record(fmt.Sprintf("198.51.100.%d/%d", i%256, i), now)
	}
	got := rt.list()
	if len(got) != maxRejectedAddrs {
		t.Fatalf("%d addresses kept, want %d", len(got), maxRejectedAddrs)
	}
	if !slices.ContainsFunc(got, func(a RejectedAddr) bool { return a.Addr == "203.0.113.7" && a.Count == 50 }) {
		t.Errorf("the busy address was evicted by one-off ones: %v", got[:3])
	}
	if !slices.IsSortedFunc(got, func(a, b RejectedAddr) int { return b.Last.Compare(a.Last) }) {
		t.Error("not newest first")
	}
}

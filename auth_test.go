package main

import (
	"context"
	"fmt"
	"io"
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

// newGatedServer is newTestServer that also returns the server, whose
// password gate counts the argon2id computations.
func newGatedServer(t *testing.T) (*testServer, *server) {
	t.Helper()
	store := newTestStore(t)
	s := &server{store: store, log: stDiscardLog()}
	hs := httptest.NewServer(s.handler())
	t.Cleanup(hs.Close)
	return &testServer{Server: hs, store: store}, s
}

// TestConcurrentWrongLoginsAreLimited sends 64 wrong logins at once from one
// address: at most loginAttempts of them reach the password hash (each holds
// 19 MiB), the others get 429, and the right password is refused too.
func TestConcurrentWrongLoginsAreLimited(t *testing.T) {
	t.Parallel()
	ts, srv := newGatedServer(t)
	setUpAdmin(t, ts)
	before := srv.passwords.computed.Load()
	const attempts = 64
	statuses := make(chan int, attempts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range attempts {
		wg.Go(func() {
			<-start
			resp, err := http.PostForm(ts.URL+"/login", url.Values{"username": {"admin"}, "password": {"wrong password!"}})
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if got := srv.passwords.computed.Load() - before; got > loginAttempts {
		t.Errorf("%d password hashes computed for %d concurrent attempts, want at most %d", got, attempts, loginAttempts)
	}
	if count[http.StatusUnauthorized] > loginAttempts || count[http.StatusUnauthorized]+count[http.StatusTooManyRequests]+count[http.StatusServiceUnavailable] != attempts {
		t.Errorf("statuses %v: want at most %d 401s, the rest 429 (or 503 when the hashes queue too long)", count, loginAttempts)
	}
	status, h, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("right password after the burst: %d Retry-After=%q, want 429", status, h.Get("Retry-After"))
	}
}

// TestPasswordAttemptsSurviveRestart: the count of wrong passwords is in the
// database, so restarting the server does not grant a fresh allowance.
func TestPasswordAttemptsSurviveRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scimbox.db")
	s := openStoreAt(t, path)
	clock := stSetClock(s)
	for i := range loginAttempts {
		if wait, err := s.ReservePasswordAttempt(ctx, "login 192.0.2.1", loginAttempts, loginWindow); err != nil || wait != 0 {
			t.Fatalf("attempt %d: wait %v, %v", i, wait, err)
		}
		clock.t = clock.t.Add(time.Second)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path)
	clock = stSetClock(s)
	clock.t = clock.t.Add(loginAttempts * time.Second)
	wait, err := s.ReservePasswordAttempt(ctx, "login 192.0.2.1", loginAttempts, loginWindow)
	if err != nil || wait <= 0 || wait > loginWindow {
		t.Errorf("after a restart: wait %v, %v; want the rest of the window", wait, err)
	}
	if wait, err := s.ReservePasswordAttempt(ctx, "login 192.0.2.2", loginAttempts, loginWindow); err != nil || wait != 0 {
		t.Errorf("another address: wait %v, %v; want 0", wait, err)
	}
	clock.t = clock.t.Add(loginWindow)
	if wait, err := s.ReservePasswordAttempt(ctx, "login 192.0.2.1", loginAttempts, loginWindow); err != nil || wait != 0 {
		t.Errorf("a window later: wait %v, %v; want 0", wait, err)
	}
	if err := s.ClearPasswordAttempts(ctx, "login 192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n := stCountRows(t, s, "SELECT count(*) FROM password_attempts WHERE key = 'login 192.0.2.1'"); n != 0 {
		t.Errorf("%d attempts left after clearing", n)
	}
	s.Close()
}

// TestSettingsPasswordIsRateLimited: a stolen session cannot guess the
// current password on Settings → change password without limit.
func TestSettingsPasswordIsRateLimited(t *testing.T) {
	t.Parallel()
	ts, srv := newGatedServer(t)
	ac := setUpAdmin(t, ts)
	csrf := ac.csrf(t)
	change := func(current string) int {
		status, _, _ := ac.post(t, "/settings/password", url.Values{"csrf": {csrf}, "current": {current},
			"password": {"a brand new password"}, "confirm": {"a brand new password"}})
		return status
	}
	for i := range loginAttempts {
		if status := change(fmt.Sprintf("guess %d", i)); status != http.StatusBadRequest {
			t.Fatalf("wrong current password %d: %d, want 400", i, status)
		}
	}
	before := srv.passwords.computed.Load()
	if status := change(testPassword); status != http.StatusTooManyRequests {
		t.Errorf("after %d wrong current passwords, the right one: %d, want 429", loginAttempts, status)
	}
	if got := srv.passwords.computed.Load() - before; got != 0 {
		t.Errorf("%d hashes computed for a refused attempt", got)
	}
	// The login limit is per address and separate: the admin can still log in elsewhere.
	if status, _, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}}); status != http.StatusSeeOther {
		t.Errorf("login after the settings lock-out: %d, want 303", status)
	}
}

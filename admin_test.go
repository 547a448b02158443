package main

import (
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// adminClient is a browser-like HTTP client (cookie jar, no redirects followed
// unless asked) for the admin page of a test server.
type adminClient struct {
	ts *testServer
	c  *http.Client
}

func newAdminClient(t testing.TB, ts *testServer) *adminClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &adminClient{ts: ts, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// get fetches a page and returns status, headers and body.
func (ac *adminClient) get(t testing.TB, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := ac.c.Get(ac.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// post submits a form the way a same-origin browser does.
func (ac *adminClient) post(t testing.TB, path string, form url.Values) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", ac.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ac.ts.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := ac.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page the client fetches.
func (ac *adminClient) csrf(t testing.TB) string {
	t.Helper()
	_, _, body := ac.get(t, "/settings")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on /settings:\n%s", body)
	}
	return m[1]
}

const testPassword = "correct horse battery staple"

// setUpAdmin completes first-run setup and leaves the client logged in.
func setUpAdmin(t testing.TB, ts *testServer) *adminClient {
	t.Helper()
	code, err := ts.store.NewSetupCode(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ac := newAdminClient(t, ts)
	status, _, body := ac.post(t, "/setup", url.Values{"code": {code}, "username": {"admin"}, "password": {testPassword}, "confirm": {testPassword}})
	if status != http.StatusSeeOther {
		t.Fatalf("setup: status %d\n%s", status, body)
	}
	return ac
}

func TestAdminPagesAreRegistered(t *testing.T) {
	t.Parallel()
	entries, err := fs.ReadDir(webFS, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "layout.html" || strings.HasPrefix(e.Name(), "partials") {
			continue
		}
		if !slices.Contains(adminPages, e.Name()) {
			t.Errorf("web/%s is not in adminPages, so it is never parsed", e.Name())
		}
	}
}

func TestAdminSetupAndLogin(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	anon := newAdminClient(t, ts)

	// Before setup: pages send you to log in, and login explains how to set up.
	status, h, _ := anon.get(t, "/users")
	if status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Fatalf("anonymous /users: %d %s", status, h.Get("Location"))
	}
	_, _, body := anon.get(t, "/login")
	if !strings.Contains(body, "No admin account exists yet") {
		t.Error("login page does not explain first-run setup")
	}
	// Without the code nobody can claim the instance.
	status, _, _ = anon.post(t, "/setup", url.Values{"code": {"guess"}, "username": {"admin"}, "password": {testPassword}, "confirm": {testPassword}})
	if status != http.StatusForbidden {
		t.Errorf("setup with a wrong code: %d, want 403", status)
	}
	if ok, _ := ts.store.AdminExists(context.Background()); ok {
		t.Fatal("an admin was created with a wrong code")
	}

	code, err := ts.store.NewSetupCode(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	status, _, body = anon.post(t, "/setup", url.Values{"code": {code}, "username": {"admin"}, "password": {"short"}, "confirm": {"short"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "at least 12") {
		t.Errorf("short password: %d", status)
	}
	status, h, _ = anon.post(t, "/setup", url.Values{"code": {code}, "username": {"admin"}, "password": {testPassword}, "confirm": {testPassword}})
	if status != http.StatusSeeOther {
		t.Fatalf("setup: %d", status)
	}
	cookie := h.Get("Set-Cookie")
	for _, want := range []string{"scimbox_session=", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("session cookie %q lacks %s", cookie, want)
		}
	}
	// The code works once.
	status, _, _ = newAdminClient(t, ts).post(t, "/setup", url.Values{"code": {code}, "username": {"evil"}, "password": {testPassword}, "confirm": {testPassword}})
	if status != http.StatusForbidden {
		t.Errorf("setup code reused: %d, want 403", status)
	}
	if status, _, _ := anon.get(t, "/users"); status != 200 {
		t.Errorf("after setup /users: %d", status)
	}

	// Log out, then log in with a wrong and the right password.
	ac := anon
	csrf := ac.csrf(t)
	if status, _, _ := ac.post(t, "/logout", url.Values{"csrf": {csrf}}); status != http.StatusSeeOther {
		t.Errorf("logout: %d", status)
	}
	if status, _, _ := ac.get(t, "/users"); status != http.StatusSeeOther {
		t.Errorf("after logout /users: %d, want a redirect to login", status)
	}
	if status, _, _ := ac.post(t, "/login", url.Values{"username": {"admin"}, "password": {"wrong password!"}}); status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", status)
	}
	status, h, _ = ac.post(t, "/login", url.Values{"username": {"ADMIN"}, "password": {testPassword}, "next": {"/groups"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/groups" {
		t.Errorf("login: %d → %s", status, h.Get("Location"))
	}
	// next must stay on this site.
	_, h, _ = newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {"//evil.example/x"}})
	if h.Get("Location") != "/" {
		t.Errorf("open redirect: Location %q", h.Get("Location"))
	}
}

func TestAdminLoginRateLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	setUpAdmin(t, ts)
	ac := newAdminClient(t, ts)
	for i := 0; i < loginAttempts; i++ {
		if status, _, _ := ac.post(t, "/login", url.Values{"username": {"admin"}, "password": {"wrong"}}); status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, status)
		}
	}
	status, h, _ := ac.post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}})
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("after %d failures: %d Retry-After=%q, want 429 with Retry-After", loginAttempts, status, h.Get("Retry-After"))
	}
}

func TestAdminCSRFAndHeaders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	// A form without the session's CSRF token is refused and changes nothing.
	status, _, _ := ac.post(t, "/connection/tokens", url.Values{"name": {"sneaky"}, "csrf": {"wrong"}})
	if status != http.StatusForbidden {
		t.Errorf("missing CSRF token: %d, want 403", status)
	}
	// A cross-site post is refused by the cross-origin protection, token or not.
	req, _ := http.NewRequest("POST", ts.URL+"/connection/tokens", strings.NewReader(url.Values{"name": {"x"}, "csrf": {ac.csrf(t)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := ac.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d, want 403", resp.StatusCode)
	}
	tokens, _ := ts.store.Tokens(context.Background())
	if len(tokens) != 1 { // the test server's own
		t.Errorf("%d tokens after refused posts, want 1", len(tokens))
	}
	_, h, _ := ac.get(t, "/")
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", h)
	}
}

func TestAdminTokensAndSeparation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	status, _, body := ac.post(t, "/connection/tokens", url.Values{"name": {"entra"}, "csrf": {ac.csrf(t)}})
	if status != 200 {
		t.Fatalf("generate token: %d", status)
	}
	tok := regexp.MustCompile(`value="(scimbox_[0-9A-Za-z]+)"`).FindStringSubmatch(body)
	if tok == nil {
		t.Fatalf("new token not shown:\n%s", body)
	}
	if !strings.Contains(body, ts.URL+"/scim/v2") {
		t.Error("connection page does not show the Tenant URL")
	}
	// The token works for SCIM…
	scim := &testServer{Server: ts.Server, store: ts.store, token: tok[1]}
	if status, _, _ := scim.do(t, "GET", "/Users", nil); status != 200 {
		t.Errorf("SCIM with the new token: %d", status)
	}
	// …is shown once only…
	_, _, page := ac.get(t, "/connection")
	if strings.Contains(page, tok[1]) {
		t.Error("the token is shown again")
	}
	// …but never opens the admin page, and a session never opens SCIM.
	req, _ := http.NewRequest("GET", ts.URL+"/users", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("admin page with a SCIM token: %d, want a redirect to login", resp.StatusCode)
	}
	if status, _, _ := ac.get(t, "/scim/v2/Users"); status != http.StatusUnauthorized {
		t.Errorf("SCIM with an admin session: %d, want 401", status)
	}
	// Revoking in the admin page stops SCIM at once.
	id, _ := parseToken(tok[1])
	if status, _, _ := ac.post(t, "/connection/tokens/"+id+"/revoke", url.Values{"csrf": {ac.csrf(t)}}); status != http.StatusSeeOther {
		t.Errorf("revoke: %d", status)
	}
	if status, _, _ := scim.do(t, "GET", "/Users", nil); status != http.StatusUnauthorized {
		t.Errorf("SCIM after revoke: %d, want 401", status)
	}
}

func TestAdminEscapesDirectoryData(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	body := newUserBody("evil@example.com")
	body["displayName"] = evil
	body["title"] = `"><svg onload=alert(2)>`
	status, _, created := ts.do(t, "POST", "/Users", body)
	if status != 201 {
		t.Fatal(status)
	}
	gid := ts.createGroup(t, `<b onmouseover=alert(3)>grp</b>`)
	ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": created["id"]}}}))
	if err := ts.store.FlushLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"/users", "/users/" + created["id"].(string), "/groups", "/groups/" + gid, "/log", "/"} {
		_, _, html := ac.get(t, page)
		for _, raw := range []string{"<script>alert", "<img src=x", "<svg onload", "<b onmouseover"} {
			if strings.Contains(html, raw) {
				t.Errorf("%s contains unescaped %q", page, raw)
			}
		}
	}
	_, _, html := ac.get(t, "/users")
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Error("the escaped displayName is not shown on /users")
	}
}

func TestProvisioningLog(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	id := ts.createUser(t, "logged@example.com")
	ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"})) // no-op
	ts.do(t, "POST", "/Users", newUserBody("LOGGED@example.com"))                                                   // 409
	ts.do(t, "GET", "/Users/"+id, nil)                                                                              // a read
	if err := ts.store.FlushLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := ts.store.ListLog(context.Background(), LogQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Op+" "+e.Target+" "+e.Outcome)
	}
	want := []string{"create user LOGGED@example.com failure", "disable user logged@example.com success", "create user logged@example.com success"}
	if !slices.Equal(got, want) {
		t.Errorf("log %q, want %q", got, want)
	}
	if entries[0].Status != 409 || !strings.Contains(entries[0].Detail, "already taken") {
		t.Errorf("failure entry %+v", entries[0])
	}
}

func TestAdminBackupDownload(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ts.createUser(t, "kept@example.com")
	status, h, body := ac.post(t, "/settings/backup", url.Values{"csrf": {ac.csrf(t)}})
	if status != 200 || !strings.Contains(h.Get("Content-Disposition"), "attachment") {
		t.Fatalf("download: %d %v", status, h)
	}
	path := filepath.Join(t.TempDir(), "downloaded.db")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := verifyDatabase(context.Background(), path); err != nil {
		t.Fatalf("downloaded backup: %v", err)
	}
	s := openStoreAt(t, path)
	defer s.Close()
	if got := countUsers(t, s); got != 1 {
		t.Errorf("downloaded backup has %d users, want 1", got)
	}
}

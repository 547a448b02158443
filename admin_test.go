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

// shownSecret finds a secret shown once on a page (a Secret Token or an app key).
var shownSecret = regexp.MustCompile(`id="new-(?:token|key)" class="copyable">(scimbox(?:app)?_[0-9A-Za-z._-]+)<`)

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
	status, h, _ := ac.post(t, "/connection/tokens", url.Values{"name": {"entra"}, "csrf": {ac.csrf(t)}})
	if status != http.StatusSeeOther || h.Get("Location") != "/connection" {
		t.Fatalf("generate token: %d → %q, want a redirect to /connection", status, h.Get("Location"))
	}
	_, _, body := ac.get(t, "/connection")
	tok := shownSecret.FindStringSubmatch(body)
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

// TestAdminShowsDisabledUsers: an account the directory disabled is marked
// disabled on the list and on its page, never shown as active.
func TestAdminShowsDisabledUsers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	id := ts.createUser(t, "gone@example.com")
	ts.createUser(t, "here@example.com")
	if status, _, _ := ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": false})); status != 200 {
		t.Fatalf("disable: %d", status)
	}
	_, _, body := ac.get(t, "/users")
	if got := strings.Count(body, `<span class="badge success">active</span>`); got != 1 {
		t.Errorf("users list shows %d active badges, want 1 (one of two users is disabled)", got)
	}
	if got := strings.Count(body, `<span class="badge failure">disabled</span>`); got != 1 {
		t.Errorf("users list shows %d disabled badges, want 1", got)
	}
	_, _, body = ac.get(t, "/users/"+id)
	if h1 := between(body, "<h1", "</h1>"); !strings.Contains(h1, "disabled") {
		t.Errorf("user page heading does not say the account is disabled: %q", h1)
	}
}

// between returns the text of s from the first from to the next to.
func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	in, _, _ := strings.Cut(after, to)
	return in
}

// TestAdminAnonymousPagesShowNoNavigation: setup and login pages, failed or
// refused, never look logged in (no navigation, no "Log out <typed name>").
func TestAdminAnonymousPagesShowNoNavigation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	anon := newAdminClient(t, ts)
	code, err := ts.store.NewSetupCode(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, wantStatus, status int, body string) {
		t.Helper()
		if status != wantStatus {
			t.Errorf("%s: status %d, want %d", what, status, wantStatus)
		}
		for _, bad := range []string{"Log out", `href="/connection"`, `action="/logout"`} {
			if strings.Contains(body, bad) {
				t.Errorf("%s shows %q to an anonymous visitor", what, bad)
			}
		}
	}
	status, _, body := anon.get(t, "/setup?code="+code)
	check("setup page", 200, status, body)
	status, _, body = anon.post(t, "/setup", url.Values{"code": {code}, "username": {"mallory"}, "password": {"short"}, "confirm": {"short"}})
	check("refused setup", 400, status, body)
	status, _, body = anon.get(t, "/login")
	check("login page", 200, status, body)
	setUpAdmin(t, ts)
	for i := range loginAttempts {
		status, _, body = anon.post(t, "/login", url.Values{"username": {"mallory"}, "password": {"wrong"}})
		if i == 0 {
			check("failed login", 401, status, body)
		}
	}
	status, _, body = anon.post(t, "/login", url.Values{"username": {"mallory"}, "password": {"wrong"}})
	check("rate-limited login", 429, status, body)
}

// TestAdminFormsRedirectAfterPost: every form answers a successful POST with
// a redirect (so a reload never repeats it), and the page it leads to says
// what happened once; a new secret is shown once and never put in a URL.
func TestAdminFormsRedirectAfterPost(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	csrf := ac.csrf(t)
	for _, tc := range []struct {
		name, path string
		form       url.Values
		to, notice string
	}{
		{"secret token", "/connection/tokens", url.Values{"name": {"entra"}}, "/connection", "Your new Secret Token"},
		{"app key", "/apps/keys", url.Values{"name": {"intranet"}}, "/apps", "Your new app key"},
		{"webhook", "/apps/webhooks", url.Values{"url": {"https://hooks.example.com/x"}}, "/apps", "Webhook added"},
		{"log retention", "/settings/log", url.Values{"days": {"12"}}, "/settings", "keeps 12 days"},
		{"provisioning", "/settings/provisioning", url.Values{"deprovision": {"hide"}, "purge_days": {"0"}}, "/settings", "Provisioning settings saved"},
		{"policy preset", "/settings/policy", url.Values{"preset": {"local"}, "confirmed": {"yes"}}, "/settings", "Source of truth saved"},
		{"password", "/settings/password", url.Values{"current": {testPassword}, "password": {testPassword + "!"}, "confirm": {testPassword + "!"}}, "/settings", "Password changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", csrf)
			status, h, _ := ac.post(t, tc.path, tc.form)
			if status != http.StatusSeeOther || h.Get("Location") != tc.to {
				t.Fatalf("POST %s: %d → %q, want 303 → %s", tc.path, status, h.Get("Location"), tc.to)
			}
			_, _, page := ac.get(t, tc.to)
			if !strings.Contains(page, tc.notice) {
				t.Errorf("%s after the redirect does not say %q", tc.to, tc.notice)
			}
			secret := shownSecret.FindStringSubmatch(page)
			if _, _, again := ac.get(t, tc.to); strings.Contains(again, tc.notice) || (secret != nil && strings.Contains(again, secret[1])) {
				t.Errorf("%s says it again on reload", tc.to)
			}
		})
	}
	tokens, _ := ts.store.Tokens(context.Background())
	if len(tokens) != 2 { // the test server's own and the one generated above, however often its page was reloaded
		t.Errorf("%d tokens, want 2", len(tokens))
	}
}

// TestAdminPresetAsksFirst: a source-of-truth preset shows which fields it
// would change and changes nothing until confirmed.
func TestAdminPresetAsksFirst(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	_, _, page := ac.get(t, "/settings")
	if !strings.Contains(page, "Now: <strong>Hybrid (recommended)</strong>") {
		t.Errorf("settings does not show the active preset")
	}
	status, _, page := ac.post(t, "/settings/policy", url.Values{"csrf": {ac.csrf(t)}, "preset": {"directory"}})
	if status != 200 || !strings.Contains(page, "<strong>Display name</strong>: Local edit wins → Directory wins") {
		t.Errorf("preset without confirmation: %d, no list of changes", status)
	}
	p, err := ts.store.Policy(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.Source("displayName") != FromLocal {
		t.Error("an unconfirmed preset changed the policy")
	}
	status, _, page = ac.post(t, "/settings/log", url.Values{"csrf": {ac.csrf(t)}, "days": {"0"}})
	if status != http.StatusBadRequest || !regexp.MustCompile(`aria-invalid="true" aria-describedby="days-error">\s*<span class="field-error" id="days-error">`).MatchString(page) {
		t.Errorf("a bad retention is not reported next to its field: %d", status)
	}
}

// TestAdminDisconnectConfirms: after a disconnect a page says what happened,
// the danger zone is inactive with nothing left to disconnect, and the time
// of the directory's last request survives its token.
func TestAdminDisconnectConfirms(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ts.createUser(t, "kept@example.com")
	if _, _, page := ac.get(t, "/connection"); !strings.Contains(page, `action="/connection/disconnect"`) {
		t.Fatal("no disconnect form while connected")
	}
	status, h, _ := ac.post(t, "/connection/disconnect", url.Values{"csrf": {ac.csrf(t)}, "confirm": {"DISCONNECT"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/connection/disconnected" {
		t.Fatalf("disconnect: %d → %q", status, h.Get("Location"))
	}
	_, _, page := ac.get(t, "/connection/disconnected")
	for _, want := range []string{"Disconnected from the directory", "1 Secret Token revoked", "1 account the directory managed is now manual"} {
		if !strings.Contains(page, want) {
			t.Errorf("confirmation page lacks %q", want)
		}
	}
	_, _, page = ac.get(t, "/connection")
	if strings.Contains(page, `action="/connection/disconnect"`) || !strings.Contains(page, "Nothing is connected") {
		t.Error("the danger zone is still active with nothing connected")
	}
	if strings.Contains(page, "Last request from the directory: <strong>never") {
		t.Error("the directory's last request was forgotten with its token")
	}
}

// TestAdminUserSearch: the Users search finds a word anywhere in the names and emails.
func TestAdminUserSearch(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	body := newUserBody("alice@example.com")
	body["name"] = map[string]any{"givenName": "Alice", "familyName": "Johnson"}
	body["displayName"] = "Alice Johnson"
	if status, _, _ := ts.do(t, "POST", "/Users", body); status != http.StatusCreated {
		t.Fatal(status)
	}
	ts.createUser(t, "bob@example.com")
	_, _, page := ac.get(t, "/users?q=johnson")
	if !strings.Contains(page, "alice@example.com") || strings.Contains(page, "bob@example.com") {
		t.Errorf("searching johnson does not find just Alice Johnson")
	}
}

// TestAdminUserForm: a user's fields are one form with one Save; only the
// changed fields are saved; the page says what was saved, shows who made each
// local edit and when, and its History has the edit at once, with what
// changed. The manager is named and linked.
func TestAdminUserForm(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	bossBody := newUserBody("boss@example.com")
	bossBody["displayName"] = "The Boss"
	_, _, boss := ts.do(t, "POST", "/Users", bossBody)
	body := newUserBody("worker@example.com")
	body["displayName"] = "Worker Bee"
	body[enterpriseSchema] = map[string]any{"manager": map[string]any{"value": boss["id"]}}
	status, _, created := ts.do(t, "POST", "/Users", body)
	if status != http.StatusCreated {
		t.Fatal(status)
	}
	id := created["id"].(string)
	_, _, page := ac.get(t, "/users/"+id)
	if got := strings.Count(page, `type="submit"`) - strings.Count(page, `form="revert"`) - strings.Count(page, "/logout") -
		strings.Count(page, "Protect this account"); got != 1 {
		t.Errorf("the user page has %d submit buttons besides Revert, Protect and Log out, want one Save", got)
	}
	if !strings.Contains(page, `<a href="/users/`+boss["id"].(string)+`">The Boss</a>`) {
		t.Error("the manager is not shown by name with a link")
	}
	csrf := ac.csrf(t)
	status, h, _ := ac.post(t, "/users/"+id, url.Values{"csrf": {csrf}, "action": {"save"},
		"f:displayName": {"Queen Bee"}, "f:nickName": {""}, "f:active": {"false", "true"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/users/"+id {
		t.Fatalf("save: %d → %q", status, h.Get("Location"))
	}
	_, _, page = ac.get(t, "/users/"+id)
	if !strings.Contains(page, "Saved: Display name.") {
		t.Error("no feedback naming what was saved")
	}
	if !strings.Contains(page, "by admin, ") {
		t.Error("the override does not say who made it and when")
	}
	history := between(page, "<h2>History</h2>", "</table>")
	if !strings.Contains(history, ">worker@example.com</a>") || strings.Contains(history, ">"+id+"</a>") {
		t.Errorf("the local edit's history row does not name the user: %s", history)
	}
	if !strings.Contains(history, "<del>Worker Bee</del> → <ins>Queen Bee</ins>") {
		t.Errorf("the history does not show the edit right after Save, with what changed: %s", history)
	}
	u, err := ts.store.UserByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Overrides) != 1 {
		t.Errorf("overrides %v, want displayName only (unchanged fields are not saved)", u.Overrides)
	}
	status, h, _ = ac.post(t, "/users/"+id, url.Values{"csrf": {csrf}, "action": {"revert"}, "field": {"displayName"}})
	if status != http.StatusSeeOther {
		t.Fatalf("revert: %d", status)
	}
	if _, _, page = ac.get(t, h.Get("Location")); !strings.Contains(page, "Display name reverted") {
		t.Error("no feedback after Revert")
	}
}

// TestAdminLogSaysWhatChanged: the Log shows, from the change feed, the fields
// a request changed with before → after, and the members added by name.
func TestAdminLogSaysWhatChanged(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	body := newUserBody("ann@example.com")
	body["title"] = "Engineer"
	body["displayName"] = "Ann Example"
	_, _, created := ts.do(t, "POST", "/Users", body)
	id := created["id"].(string)
	ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "Architect"}))
	ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "Director"}))
	gid := ts.createGroup(t, "Builders")
	ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": id}}}))
	if err := ts.store.FlushLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, page := ac.get(t, "/log")
	if !strings.Contains(page, `<span class="what">Job title</span>:`) || !strings.Contains(page, "<del>Engineer</del> → <ins>Architect</ins>") {
		t.Errorf("the log does not say the title changed from Engineer to Architect")
	}
	if !strings.Contains(page, "<del>Architect</del> → <ins>Director</ins>") {
		t.Errorf("the log does not say the title changed from Architect to Director (a change after a change)")
	}
	if row := between(page, `<td data-label="Operation">add members</td>`, "</tr>"); !strings.Contains(row, `Members added (1)</span>:`) ||
		!strings.Contains(row, `<a href="/users/`+id+`">Ann Example</a>`) {
		t.Errorf("the log's add-members row does not name the member added: %s", row)
	}
	if row := between(page, `<td data-label="Operation">create group</td>`, "</tr>"); strings.Contains(row, "Members added") {
		t.Errorf("the group's creation is shown with the members added after it: %s", row)
	}
}

func TestAdminFavicon(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := newAdminClient(t, ts)
	_, _, page := ac.get(t, "/login")
	if !strings.Contains(page, `rel="icon" href="/static/favicon.svg"`) {
		t.Fatal("no favicon link")
	}
	if status, h, _ := ac.get(t, "/static/favicon.svg"); status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "image/svg+xml") {
		t.Errorf("favicon: %d %s", status, h.Get("Content-Type"))
	}
}

// TestAdminUserFormConflict: saving a user name another account has is refused, next to the field.
func TestAdminUserFormConflict(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ts.createUser(t, "taken@example.com")
	status, h, _ := ac.post(t, "/users/new", url.Values{"csrf": {ac.csrf(t)}, "userName": {"manual@example.com"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create manual: %d", status)
	}
	status, _, page := ac.post(t, h.Get("Location"), url.Values{"csrf": {ac.csrf(t)}, "action": {"save"}, "f:userName": {"taken@example.com"}})
	if status != http.StatusConflict || !strings.Contains(page, `<span class="field-error" id="e-userName">Taken by another account.</span>`) {
		t.Errorf("saving a taken user name: %d", status)
	}
}

// TestAdminRefusalsAreStyledPages checks that every refusal on the admin site
// is the admin page's own message page, with its status and security
// headers, and shows the navigation only to a logged-in admin: a form without
// its CSRF token, a cross-site post, a post after the session ended, and a
// missing static file.
func TestAdminRefusalsAreStyledPages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	anon := newAdminClient(t, ts)
	crossSite := func(c *adminClient, path string) (int, http.Header, string) {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(url.Values{"name": {"x"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := c.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(body)
	}
	tests := []struct {
		name    string
		do      func() (int, http.Header, string)
		status  int
		text    string
		withNav bool
	}{
		{"form without its CSRF token", func() (int, http.Header, string) {
			return ac.post(t, "/connection/tokens", url.Values{"name": {"sneaky"}, "csrf": {"wrong"}})
		}, http.StatusForbidden, "The form has expired or did not come from this page", true},
		{"cross-site post, logged in", func() (int, http.Header, string) { return crossSite(ac, "/connection/tokens") },
			http.StatusForbidden, "came from another site", false},
		{"cross-site post, anonymous", func() (int, http.Header, string) { return crossSite(anon, "/login") },
			http.StatusForbidden, "came from another site", false},
		{"post after the session ended", func() (int, http.Header, string) {
			return anon.post(t, "/connection/tokens", url.Values{"name": {"x"}})
		}, http.StatusForbidden, "Your session has ended", false},
		{"missing static file", func() (int, http.Header, string) { return anon.get(t, "/static/nope.css") },
			http.StatusNotFound, "There is nothing here", false},
	}
	for _, tt := range tests {
		status, h, body := tt.do()
		if status != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, status, tt.status)
		}
		if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(body, `<link rel="stylesheet" href="/static/style.css">`) ||
			!strings.Contains(body, tt.text) {
			t.Errorf("%s: not the styled message page saying %q: %s %q", tt.name, tt.text, h.Get("Content-Type"), body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q", tt.name, csp)
		}
		if nav := strings.Contains(body, "<nav>"); nav != tt.withNav {
			t.Errorf("%s: navigation shown %v, want %v", tt.name, nav, tt.withNav)
		}
	}
	if tokens, _ := ts.store.Tokens(context.Background()); len(tokens) != 1 {
		t.Errorf("%d tokens after refused posts, want 1 (the test server's)", len(tokens))
	}
}

// TestAdminWriteOnALostDatabase: once the database file is removed under the
// server, an admin page form answers 503 with the message page saying what
// happened and the restore command for this file, not a generic error; and
// the health line says so on every page.
func TestAdminWriteOnALostDatabase(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	csrf := ac.csrf(t)
	if err := os.Remove(ts.store.path); err != nil {
		t.Fatal(err)
	}
	status, h, body := ac.post(t, "/connection/tokens", url.Values{"name": {"after"}, "csrf": {csrf}})
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("a form after the file was removed: %d Retry-After=%q, want 503 with Retry-After", status, h.Get("Retry-After"))
	}
	for _, want := range []string{"The database file was removed or replaced", "scimbox restore -db " + ts.store.path, "Nothing was changed"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not say %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Something went wrong") {
		t.Errorf("the page shows the generic error:\n%s", body)
	}
	if _, _, page := ac.get(t, "/users"); !strings.Contains(page, `<aside class="attention"`) || !strings.Contains(page, "removed or replaced") {
		t.Errorf("the health line does not say the file is lost:\n%s", page)
	}
}

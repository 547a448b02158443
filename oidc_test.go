package main

// Sign-in with OpenID Connect end to end, through a real OpenID Provider
// (oidc_provider_test.go): each role, and every way a sign-in must fail.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ssoPeople are the provider's people: one per role (by group id or app
// role), one in no mapped group, and one whose token carries a wrong nonce.
func ssoPeople() map[string]*idpPerson {
	return map[string]*idpPerson{
		"u-owner":  {username: "olivia@contoso.example", groups: []string{"grp-staff", "grp-owners"}},
		"u-admin":  {username: "adam@contoso.example", roles: []string{"scimbox.operator"}},
		"u-viewer": {username: "vic@contoso.example", groups: []string{"grp-viewers"}},
		"u-nobody": {username: "nora@contoso.example", groups: []string{"grp-staff"}},
		"u-nonce":  {username: "nonce@contoso.example", groups: []string{"grp-owners"}, nonce: "a nonce of another sign-in"},
	}
}

// newSSOFixture starts scimbox and a provider that knows it.
func newSSOFixture(t *testing.T) (*ssoServer, *testIdP, *adminClient) {
	t.Helper()
	// The provider's address must be in scimbox's flags and scimbox's in the provider's client: reserve the provider's first.
	idp := newTestIdPUnstarted(t)
	ss, owner := newSSOServer(t, idp.issuer)
	idp.start(t, ss.URL+ssoCallbackPath, ssoPeople())
	return ss, idp, owner
}

// signedInAs reports the admin name and role the client's session has, "" when it has none.
func signedInAs(t *testing.T, ss *ssoServer, ac *adminClient) (string, AdminRole) {
	t.Helper()
	u, _ := url.Parse(ss.URL)
	for _, c := range ac.c.Jar.Cookies(u) {
		if c.Name != "scimbox_session" {
			continue
		}
		sess, err := ss.store.SessionByCookie(context.Background(), c.Value)
		if err != nil {
			return "", ""
		}
		adm, err := ss.store.AdminByID(context.Background(), sess.AdminID)
		if err != nil {
			return "", ""
		}
		return adm.Username, adm.Role
	}
	return "", ""
}

func TestSSOSignInPerRole(t *testing.T) {
	t.Parallel()
	ss, idp, _ := newSSOFixture(t)
	for _, tc := range []struct {
		name, person, username string
		role                   AdminRole
		page                   string // a page the role may open, and one it may not
		denied                 string
	}{
		{"owner by group", "u-owner", "olivia@contoso.example", RoleOwner, "/admins", ""},
		{"admin by app role", "u-admin", "adam@contoso.example", RoleAdmin, "/apps", "/admins"},
		{"viewer by group", "u-viewer", "vic@contoso.example", RoleViewer, "/users", "/settings/sso"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			browser := newAdminClient(t, ss.testServer)
			status, body := ssoSignIn(t, browser, idp, tc.person, nil)
			if status != http.StatusOK || !strings.Contains(body, `content="0;url=/users"`) {
				t.Fatalf("sign-in: %d\n%s", status, body)
			}
			if name, role := signedInAs(t, ss, browser); name != tc.username || role != tc.role {
				t.Errorf("signed in as %q %q, want %q %q", name, role, tc.username, tc.role)
			}
			if status, _, _ := browser.get(t, tc.page); status != http.StatusOK {
				t.Errorf("%s: %d", tc.page, status)
			}
			if tc.denied != "" {
				if status, _, _ := browser.get(t, tc.denied); status != http.StatusForbidden {
					t.Errorf("%s: %d, want 403", tc.denied, status)
				}
			}
		})
	}
	// A local edit by an SSO admin names the person, on the override and in the audit.
	browser := newAdminClient(t, ss.testServer)
	if status, _ := ssoSignIn(t, browser, idp, "u-admin", nil); status != http.StatusOK {
		t.Fatalf("sign-in: %d", status)
	}
	id := ss.createUser(t, "worker@example.com")
	if status, _, body := browser.post(t, "/users/"+id, url.Values{"csrf": {browser.csrf(t)}, "action": {"edit"}, "field": {"displayName"}, "value": {"Queen Bee"}}); status != http.StatusSeeOther {
		t.Fatalf("local edit: %d\n%s", status, body)
	}
	if _, _, page := browser.get(t, "/users/"+id); !strings.Contains(page, "by adam@contoso.example, ") {
		t.Error("the override does not name the person who signed in")
	}
	if edits, _, _ := ss.store.AuditEntries(context.Background(), AuditQuery{Actor: "adam@contoso.example", Action: "POST /users/", Limit: 1}); len(edits) != 1 || edits[0].Target != id {
		t.Errorf("the edit's audit entry: %+v", edits)
	}
	entries, _, err := ss.store.AuditEntries(context.Background(), AuditQuery{Action: "sign-in", Outcome: auditSuccess, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 || entries[1].Actor != "vic@contoso.example" || !strings.Contains(entries[1].Detail, "single sign-on as viewer") {
		t.Errorf("audited sign-ins: %+v", entries)
	}
}

func TestSSOSignInRefused(t *testing.T) {
	t.Parallel()
	ss, idp, _ := newSSOFixture(t)
	for _, tc := range []struct {
		name, person string
		tamper       func(*url.URL)
		before       func()
		status       int
		says         string // on the page
		why          string // in the audit trail
	}{
		{name: "no mapped group", person: "u-nobody", status: http.StatusForbidden, says: "none of the groups", why: "in no mapped group"},
		{name: "wrong audience", person: "u-owner", status: http.StatusForbidden, says: "could not be verified", why: "expected audience",
			// The owner's own ID token, but issued to another app.
			before: func() { tok := idp.idTokenForOtherApp(t, "u-owner"); idp.swapIDToken.Store(&tok) }},
		{name: "bad nonce", person: "u-nonce", status: http.StatusForbidden, says: "belongs to another sign-in", why: "nonce does not match"},
		{name: "bad state", person: "u-owner", status: http.StatusBadRequest, says: "did not start in this browser", why: "state does not match",
			tamper: func(u *url.URL) { q := u.Query(); q.Set("state", "forged"); u.RawQuery = q.Encode() }},
		{name: "no state", person: "u-owner", status: http.StatusBadRequest, says: "did not start in this browser", why: "state does not match",
			tamper: func(u *url.URL) { q := u.Query(); q.Del("state"); u.RawQuery = q.Encode() }},
		{name: "expired token", person: "u-owner", status: http.StatusForbidden, says: "could not be verified", why: "token is expired",
			// scimbox's clock is two hours ahead when the token arrives; the provider's tokens live one hour.
			tamper: func(*url.URL) { ss.clockOffset.Store(int64(2 * time.Hour)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer ss.clockOffset.Store(0)
			defer idp.swapIDToken.Store(nil)
			if tc.before != nil {
				tc.before()
			}
			browser := newAdminClient(t, ss.testServer)
			status, body := ssoSignIn(t, browser, idp, tc.person, tc.tamper)
			if status != tc.status || !strings.Contains(body, tc.says) {
				t.Errorf("%d, want %d saying %q\n%s", status, tc.status, tc.says, body)
			}
			if name, _ := signedInAs(t, ss, browser); name != "" {
				t.Errorf("a session as %q was started", name)
			}
			if status, _, _ := browser.get(t, "/users"); status != http.StatusSeeOther {
				t.Errorf("after a refused sign-in /users: %d, want 303 to login", status)
			}
			last, _, err := ss.store.AuditEntries(context.Background(), AuditQuery{Action: "sign-in", Limit: 1})
			if err != nil || len(last) != 1 || last[0].Outcome != auditRefused || !strings.Contains(last[0].Detail, tc.why) {
				t.Errorf("audited %+v (%v), want refused because %q", last, err, tc.why)
			}
		})
	}
	refused, _, err := ss.store.AuditEntries(context.Background(), AuditQuery{Action: "sign-in", Outcome: auditRefused, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 6 {
		t.Errorf("%d refused sign-ins audited, want 6: %+v", len(refused), refused)
	}
	// Nobody but the local owner got an account.
	admins, err := ss.store.Admins(context.Background())
	if err != nil || len(admins) != 1 {
		t.Errorf("admins after refused sign-ins: %+v %v", admins, err)
	}
}

// TestSSORoleReevaluatedAtSignIn: a person removed from the groups is
// refused at the next sign-in, and their earlier session ends with it.
func TestSSORoleReevaluatedAtSignIn(t *testing.T) {
	t.Parallel()
	ss, idp, _ := newSSOFixture(t)
	first := newAdminClient(t, ss.testServer)
	if status, _ := ssoSignIn(t, first, idp, "u-owner", nil); status != http.StatusOK {
		t.Fatalf("first sign-in: %d", status)
	}
	idp.storage.mu.Lock()
	idp.storage.people["u-owner"].groups = []string{"grp-viewers"}
	idp.storage.mu.Unlock()
	second := newAdminClient(t, ss.testServer)
	if status, _ := ssoSignIn(t, second, idp, "u-owner", nil); status != http.StatusOK {
		t.Fatalf("second sign-in: %d", status)
	}
	if status, _, _ := first.get(t, "/admins"); status != http.StatusForbidden {
		t.Errorf("demoted owner's earlier session opens /admins: %d, want 403", status)
	}
	idp.storage.mu.Lock()
	idp.storage.people["u-owner"].groups = nil
	idp.storage.mu.Unlock()
	if status, _ := ssoSignIn(t, newAdminClient(t, ss.testServer), idp, "u-owner", nil); status != http.StatusForbidden {
		t.Errorf("sign-in without groups: %d, want 403", status)
	}
	if status, _, _ := first.get(t, "/users"); status != http.StatusSeeOther {
		t.Errorf("earlier session of a person in no group: %d, want 303 to login", status)
	}
}

func TestSSOSigningKeyRotation(t *testing.T) {
	t.Parallel()
	ss, idp, _ := newSSOFixture(t)
	if status, body := ssoSignIn(t, newAdminClient(t, ss.testServer), idp, "u-viewer", nil); status != http.StatusOK {
		t.Fatalf("before the rotation: %d\n%s", status, body)
	}
	// scimbox has the old key cached; the provider now signs with a new one and publishes only it.
	idp.rotateKey(t)
	browser := newAdminClient(t, ss.testServer)
	if status, body := ssoSignIn(t, browser, idp, "u-viewer", nil); status != http.StatusOK {
		t.Fatalf("after the rotation: %d\n%s", status, body)
	}
	if name, _ := signedInAs(t, ss, browser); name != "vic@contoso.example" {
		t.Errorf("after the rotation signed in as %q", name)
	}
}

// TestSSOBreakGlassWhenIdPDown: with the provider unreachable, single
// sign-on explains itself and the local owner still logs in with its
// password, even with single sign-on mandatory; other local admins may not.
func TestSSOBreakGlassWhenIdPDown(t *testing.T) {
	t.Parallel()
	ss, idp, owner := newSSOFixture(t)
	join(t, ss.testServer, invite(t, owner, RoleAdmin), "local-admin")
	if err := ss.store.SetSetting(context.Background(), settingSSOMandatory, "true"); err != nil {
		t.Fatal(err)
	}
	idp.Close()

	browser := newAdminClient(t, ss.testServer)
	status, _, body := browser.get(t, "/sso/start")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "An owner can still log in with a password") {
		t.Errorf("sign-in with the provider down: %d\n%s", status, body)
	}
	if status, _, body := browser.post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}}); status != http.StatusSeeOther {
		t.Errorf("break-glass owner login: %d\n%s", status, body)
	}
	if status, _, _ := browser.get(t, "/admins"); status != http.StatusOK {
		t.Errorf("break-glass owner opens /admins: %d", status)
	}
	status, _, body = newAdminClient(t, ss.testServer).post(t, "/login", url.Values{"username": {"local-admin"}, "password": {testPassword}})
	if status != http.StatusForbidden || !strings.Contains(body, "Sign in with Microsoft Entra") {
		t.Errorf("local admin password login while SSO is mandatory: %d", status)
	}
}

// TestSSOSettingsPage: an owner configures single sign-on on the page; the
// client secret is write-only (never shown, kept when the field is left
// empty); the page shows the redirect URL; making SSO mandatory ends the
// password sessions of local admins who are not owners.
func TestSSOSettingsPage(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	owner := setUpAdmin(t, ts)
	local := join(t, ts, invite(t, owner, RoleAdmin), "local-admin")
	ctx := context.Background()
	save := func(form url.Values) {
		t.Helper()
		form.Set("csrf", owner.csrf(t))
		if status, _, body := owner.post(t, "/settings/sso", form); status != http.StatusSeeOther {
			t.Fatalf("save: %d\n%s", status, body)
		}
	}
	const secret = "s3cr3t~value-from-entra"
	save(url.Values{"issuer": {"https://login.microsoftonline.com/tenant-id/v2.0/"}, "client_id": {"app-id"}, "client_secret": {secret},
		"owner_groups": {"g-1, g-2"}, "viewer_groups": {"g-3"}})
	_, _, body := owner.get(t, "/settings/sso")
	if strings.Contains(body, secret) || !strings.Contains(body, "stored: leave empty to keep it") {
		t.Errorf("the settings page shows the secret, or not that one is stored")
	}
	if !strings.Contains(body, ts.URL+ssoCallbackPath) {
		t.Errorf("the settings page lacks the redirect URL %s", ts.URL+ssoCallbackPath)
	}
	save(url.Values{"issuer": {"https://login.microsoftonline.com/tenant-id/v2.0"}, "client_id": {"app-id"}, "owner_groups": {"g-1\ng-2"}, "mandatory": {"on"}})
	a := newAdmin(&server{store: ts.store})
	c, err := a.ssoConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret != secret || c.Issuer != "https://login.microsoftonline.com/tenant-id/v2.0" || !c.Mandatory ||
		strings.Join(c.Groups[RoleOwner], ",") != "g-1,g-2" || len(c.Groups[RoleViewer]) != 0 {
		t.Errorf("saved configuration: %+v", c)
	}
	if status, _, _ := local.get(t, "/users"); status != http.StatusSeeOther {
		t.Errorf("a local admin's password session after SSO became mandatory: %d, want 303 to login", status)
	}
	if status, _, _ := owner.get(t, "/users"); status != http.StatusOK {
		t.Errorf("the owner's session after SSO became mandatory: %d", status)
	}
	if _, _, body := newAdminClient(t, ts).get(t, "/login"); !strings.Contains(body, "Sign in with Microsoft Entra") {
		t.Errorf("the login page does not offer single sign-on")
	}
}

func TestSSOFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // a substring of the error; "" for valid
	}{
		{"none", nil, ""},
		{"Entra by flags and env", map[string]string{"SCIMBOX_OIDC_ISSUER": "https://login.microsoftonline.com/t/v2.0",
			"SCIMBOX_OIDC_CLIENT_ID": "app", "SCIMBOX_OIDC_CLIENT_SECRET": "s"}, ""},
		{"plain http issuer", map[string]string{"SCIMBOX_OIDC_ISSUER": "http://idp.example", "SCIMBOX_OIDC_CLIENT_ID": "app"}, "must be an https URL"},
		{"issuer without client id", map[string]string{"SCIMBOX_OIDC_ISSUER": "https://idp.example"}, "go together"},
		{"client id without issuer", map[string]string{"SCIMBOX_OIDC_CLIENT_ID": "app"}, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseServeConfigEnv(nil, io.Discard, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if cfg.SSO.ClientSecret != tc.env["SCIMBOX_OIDC_CLIENT_SECRET"] {
					t.Errorf("client secret %q not read from the environment", cfg.SSO.ClientSecret)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestSSODiscoveryFailureNotRetriedAtOnce: with the identity provider
// failing, anonymous visitors cannot make scimbox call it on every request.
func TestSSODiscoveryFailureNotRetriedAtOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer broken.Close()
	ss, _ := newSSOServer(t, broken.URL)
	for range 3 {
		if status, _, _ := newAdminClient(t, ss.testServer).get(t, "/sso/start"); status != http.StatusServiceUnavailable {
			t.Errorf("sign-in with the provider failing: %d, want 503", status)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the failing provider was called %d times, want 1", n)
	}
}

package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shownInvite finds the invitation link shown once on the Admins page.
var shownInvite = regexp.MustCompile(`id="new-invite" class="copyable">([^<]+)<`)

// invite has the owner of owner create an invitation for role and returns its link's path.
func invite(t *testing.T, owner *adminClient, role AdminRole) string {
	t.Helper()
	status, _, body := owner.post(t, "/admins", url.Values{"csrf": {owner.csrf(t)}, "action": {"invite"}, "role": {string(role)}})
	if status != http.StatusSeeOther {
		t.Fatalf("invite %s: %d\n%s", role, status, body)
	}
	_, _, body = owner.get(t, "/admins")
	m := shownInvite.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no invitation link on /admins:\n%s", body)
	}
	u, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	return u.RequestURI()
}

// join accepts an invitation link as username with testPassword and returns the logged-in client.
func join(t *testing.T, ts *testServer, link, username string) *adminClient {
	t.Helper()
	ac := newAdminClient(t, ts)
	u, _ := url.Parse(link)
	status, _, body := ac.post(t, "/invite", url.Values{"code": {u.Query().Get("code")}, "username": {username}, "password": {testPassword}, "confirm": {testPassword}})
	if status != http.StatusSeeOther {
		t.Fatalf("join as %s: %d\n%s", username, status, body)
	}
	return ac
}

func TestAdminInviteRolesAndLastOwner(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	owner := setUpAdmin(t, ts)
	ctx := context.Background()

	link := invite(t, owner, RoleViewer)
	viewer := join(t, ts, link, "vera")
	// The link works once.
	u, _ := url.Parse(link)
	if status, _, _ := newAdminClient(t, ts).post(t, "/invite", url.Values{"code": {u.Query().Get("code")}, "username": {"mallory"},
		"password": {testPassword}, "confirm": {testPassword}}); status != http.StatusForbidden {
		t.Errorf("invitation reused: %d, want 403", status)
	}
	vera, err := ts.store.AdminByUsername(ctx, "vera")
	if err != nil || vera.Role != RoleViewer || !vera.Local() {
		t.Fatalf("invited viewer: %+v, %v", vera, err)
	}

	// A viewer sees a webhook but not its signing secret; an owner sees both.
	hook, err := ts.store.CreateWebhook(ctx, "https://hooks.example/in?token=hush", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	// (The secret's base64 may be escaped on the page: look for its element.)
	secretShown := `id="secret-` + hook.ID + `"`
	if _, _, body := viewer.get(t, "/apps"); strings.Contains(body, secretShown) || strings.Contains(body, "hush") || !strings.Contains(body, "hooks.example") {
		t.Errorf("a viewer's /apps shows the webhook secret or URL query, or no webhook")
	}
	if _, _, body := owner.get(t, "/apps"); !strings.Contains(body, secretShown) {
		t.Errorf("an owner's /apps lacks the webhook secret")
	}
	// A viewer changes nothing, even with its own valid CSRF token.
	if status, _, _ := viewer.post(t, "/apps/keys", url.Values{"csrf": {viewer.csrf(t)}, "name": {"x"}}); status != http.StatusForbidden {
		t.Errorf("viewer creates an app key: %d, want 403", status)
	}

	// The last local owner can be neither demoted nor removed.
	adm, err := ts.store.AdminByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	id := url.Values{"csrf": {owner.csrf(t)}, "id": {strconv.FormatInt(adm.ID, 10)}}
	for _, action := range []url.Values{{"action": {"set-role"}, "role": {"admin"}}, {"action": {"remove"}}} {
		for k, v := range id {
			action[k] = v
		}
		if status, _, body := owner.post(t, "/admins", action); status != http.StatusConflict || !strings.Contains(body, "local owner must remain") {
			t.Errorf("%s of the last owner: %d", action.Get("action"), status)
		}
	}
	if got, _ := ts.store.AdminByUsername(ctx, "admin"); got.Role != RoleOwner {
		t.Errorf("last owner became %s", got.Role)
	}
	// With a second owner the first may step down; a promoted viewer's next request has the new role.
	if err := ts.store.SetAdminRole(ctx, vera.ID, RoleOwner); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := viewer.get(t, "/admins"); status != http.StatusOK {
		t.Errorf("promoted owner opens /admins: %d", status)
	}
	if err := ts.store.SetAdminRole(ctx, adm.ID, RoleViewer); err != nil {
		t.Errorf("demote one of two owners: %v", err)
	}
	if err := ts.store.DeleteAdmin(ctx, vera.ID); !errors.Is(err, ErrLastOwner) {
		t.Errorf("delete the remaining owner: %v, want ErrLastOwner", err)
	}
}

func TestResetPasswordSetsALocalOwner(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	code, err := ts.store.NewSetupCode(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	owner := newAdminClient(t, ts)
	if status, _, _ := owner.post(t, "/setup", url.Values{"code": {code}, "username": {"olga"}, "password": {testPassword}, "confirm": {testPassword}}); status != http.StatusSeeOther {
		t.Fatalf("setup: %d", status)
	}
	join(t, ts, invite(t, owner, RoleAdmin), "aaron")
	// Reset targets the first local owner, never an SSO owner or another local admin.
	if _, err := ts.store.SignInSSOAdmin(ctx, "https://idp.example sub-1", "zoe@example.com", RoleOwner); err != nil {
		t.Fatal(err)
	}
	code, err = ts.store.NewSetupCode(ctx, setupCodeTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, body := newAdminClient(t, ts).get(t, "/setup?code="+code); !strings.Contains(body, `name="username" value="olga"`) {
		t.Error("the reset form does not name the owner it resets")
	}
	if status, _, body := newAdminClient(t, ts).post(t, "/setup", url.Values{"code": {code}, "username": {"olga"},
		"password": {"a brand new password"}, "confirm": {"a brand new password"}}); status != http.StatusSeeOther {
		t.Fatalf("reset: %d\n%s", status, body)
	}
	adm, err := ts.store.AdminByUsername(ctx, "olga")
	if err != nil || adm.Role != RoleOwner || !checkPassword(adm.PasswordHash, "a brand new password") {
		t.Errorf("reset did not set the local owner's password: %+v %v", adm.Role, err)
	}
	aaron, _ := ts.store.AdminByUsername(ctx, "aaron")
	if !checkPassword(aaron.PasswordHash, testPassword) {
		t.Error("reset changed another admin's password")
	}
	// An SSO admin has no password: none gets it in, not even the dummy hash's.
	for _, pw := range []string{"", "not a password"} {
		if status, _, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"zoe@example.com"}, "password": {pw}}); status != http.StatusUnauthorized {
			t.Errorf("SSO admin with password %q: %d, want 401", pw, status)
		}
	}
}

func TestAuditRecordsSignInsAndActions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	owner := setUpAdmin(t, ts)
	ctx := context.Background()
	if status, _, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {"wrong password!"}}); status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", status)
	}
	if status, _, _ := owner.post(t, "/apps/keys", url.Values{"csrf": {owner.csrf(t)}, "name": {"intranet"}}); status != http.StatusSeeOther {
		t.Fatalf("create app key: %d", status)
	}
	if status, _, _ := owner.get(t, "/export/users.csv"); status != http.StatusOK {
		t.Fatalf("export: %d", status)
	}
	entries, _, err := ts.store.AuditEntries(ctx, AuditQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Actor+" "+e.Action+" "+e.Outcome)
		if e.Client == "" || e.At.IsZero() {
			t.Errorf("entry %+v lacks where from or when", e)
		}
	}
	want := []string{"admin export success", "admin POST /apps/keys success", "admin sign-in refused", "admin setup success"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("audit:\n got %q\nwant %q", got, want)
	}
	// The page filters.
	_, _, body := owner.get(t, "/audit?outcome=refused")
	if !strings.Contains(body, "wrong username or password") || strings.Contains(body, "POST /apps/keys") {
		t.Errorf("/audit?outcome=refused does not filter:\n%s", body)
	}
	_, _, body = owner.get(t, "/audit?action=POST+/apps")
	if !strings.Contains(body, "POST /apps/keys") || strings.Contains(body, "wrong username") {
		t.Errorf("/audit?action= does not filter")
	}
}

package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestAdminRolesPage walks Settings → Roles as an admin does: every form
// needs the CSRF token, redirects after its POST with a one-time notice
// saying how many users it changed, and a refused one is shown on the page
// with what was typed. The roles show on the users list, the user's page
// (with why) and in the API; manual accounts take grants by hand, directory
// accounts do not.
func TestAdminRolesPage(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	key, _, err := ts.store.CreateAppKey(context.Background(), "intranet")
	if err != nil {
		t.Fatal(err)
	}
	eng := ts.createGroup(t, "Engineering")
	alice := ts.createUser(t, "alice@example.com")
	addMembersByPatch(t, ts, eng, alice)
	csrf := ac.csrf(t)
	// post submits a form and, after its redirect, returns the page it leads to.
	post := func(step string, form url.Values, wantNotice string) {
		t.Helper()
		form.Set("csrf", csrf)
		status, h, body := ac.post(t, "/settings/roles", form)
		if status != http.StatusSeeOther || h.Get("Location") != "/settings/roles" {
			t.Fatalf("%s: %d %s\n%s", step, status, h.Get("Location"), body)
		}
		_, _, page := ac.get(t, "/settings/roles")
		if !strings.Contains(page, wantNotice) {
			t.Errorf("%s: the page after the redirect does not say %q", step, wantNotice)
		}
		if _, _, again := ac.get(t, "/settings/roles"); strings.Contains(again, wantNotice) {
			t.Errorf("%s: the notice is shown twice", step)
		}
	}
	refused := func(step string, path string, form url.Values, wantStatus int, want ...string) {
		t.Helper()
		form.Set("csrf", csrf)
		status, _, page := ac.post(t, path, form)
		if status != wantStatus {
			t.Errorf("%s: status %d, want %d", step, status, wantStatus)
		}
		for _, w := range want {
			if !strings.Contains(page, w) {
				t.Errorf("%s: the page does not say %q", step, w)
			}
		}
	}

	if _, _, page := ac.get(t, "/settings"); !strings.Contains(page, `href="/settings/roles"`) {
		t.Error("Settings does not link to Roles")
	}
	status, _, _ := ac.post(t, "/settings/roles", url.Values{"action": {"create"}, "name": {"Engineers"}})
	if status != http.StatusForbidden {
		t.Errorf("a form without the CSRF token: %d, want 403", status)
	}
	if roles, _ := ts.store.Roles(context.Background()); len(roles) != 0 {
		t.Fatalf("a form without the CSRF token created %+v", roles)
	}

	post("create", url.Values{"action": {"create"}, "name": {"Engineers"}, "description": {"Can deploy"}}, "Role Engineers created.")
	refused("create a taken name", "/settings/roles", url.Values{"action": {"create"}, "name": {"engineers"}}, http.StatusConflict,
		`a role named &#34;engineers&#34; already exists`, `value="engineers"`)
	refused("unknown group", "/settings/roles", url.Values{"action": {"add-group-rule"}, "role": {"Engineers"}, "group": {"Nobody"}},
		http.StatusBadRequest, "No group is named &#34;Nobody&#34;", `value="Nobody"`)
	post("group rule", url.Values{"action": {"add-group-rule"}, "role": {"Engineers"}, "group": {"engineering"}, "nested": {"on"}},
		"The members of Engineering and of the groups nested in it now hold Engineers; 1 user gained it.")
	if got := apiRoles(t, ts, key, alice); !slices.Equal(got, []string{"Engineers"}) {
		t.Errorf("API roles of alice = %q", got)
	}
	if _, _, page := ac.get(t, "/users"); !strings.Contains(page, `<span class="badge">Engineers</span>`) {
		t.Error("the users list shows no role badge")
	}
	_, _, page := ac.get(t, "/users/"+alice)
	if !strings.Contains(page, `<span class="badge">Engineers</span> <span class="muted small-text">member of Engineering</span>`) {
		t.Errorf("alice's page does not say why she holds the role:\n%s", page)
	}
	if strings.Contains(page, `name="action" value="grant-role"`) {
		t.Error("a directory account is offered a grant by hand")
	}
	refused("grant on a directory account", "/users/"+alice, url.Values{"action": {"grant-role"}, "role": {"Engineers"}},
		http.StatusBadRequest, "granted by hand only to manual accounts")

	status, h, _ := ac.post(t, "/users/new", url.Values{"csrf": {csrf}, "userName": {"contractor@example.com"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create manual account: %d", status)
	}
	manual := h.Get("Location")
	if _, _, page := ac.get(t, manual); !strings.Contains(page, `<option>Engineers</option>`) {
		t.Errorf("a manual account is not offered the role:\n%s", page)
	}
	status, h, _ = ac.post(t, manual, url.Values{"csrf": {csrf}, "action": {"grant-role"}, "role": {"Engineers"}})
	if status != http.StatusSeeOther || h.Get("Location") != manual {
		t.Fatalf("grant: %d %s", status, h.Get("Location"))
	}
	if _, _, page := ac.get(t, manual); !strings.Contains(page, "Role Engineers granted.") || !strings.Contains(page, "granted by admin") ||
		!strings.Contains(page, `value="revoke-role"`) {
		t.Errorf("the manual account's page after the grant:\n%s", page)
	}
	status, _, _ = ac.post(t, manual, url.Values{"csrf": {csrf}, "action": {"revoke-role"}, "role": {"Engineers"}})
	if status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", status)
	}
	if u, err := ts.store.UserByID(context.Background(), strings.TrimPrefix(manual, "/users/")); err != nil || len(u.Roles) != 0 {
		t.Errorf("after the revoke: %v, %v", u.Roles, err)
	}

	roles, err := ts.store.Roles(context.Background())
	if err != nil || len(roles) != 1 || len(roles[0].Rules) != 1 {
		t.Fatalf("Roles() = %+v, %v", roles, err)
	}
	rule := roles[0].Rules[0]
	post("delete rule", url.Values{"action": {"delete-rule"}, "role": {"Engineers"}, "rule": {strconv.FormatInt(rule.ID, 10)}}, "Rule removed from Engineers; 1 user lost the role.")
	if got := apiRoles(t, ts, key, alice); len(got) != 0 {
		t.Errorf("API roles of alice after the rule went = %q", got)
	}
	post("app-role rule", url.Values{"action": {"add-app-role-rule"}, "role": {"Engineers"}, "app_role": {"Deployer"}},
		"Users Entra assigns the app role Deployer now hold Engineers; no user gained it.")
	post("delete role", url.Values{"action": {"delete"}, "role": {"Engineers"}}, "Role Engineers deleted; no user lost it.")
}

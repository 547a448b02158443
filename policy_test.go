package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPresetPolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preset, field string
		want          Source
	}{
		{presetHybrid, "userName", FromDirectory},
		{presetHybrid, "emails", FromDirectory},
		{presetHybrid, enterpriseSchema + ":department", FromDirectory},
		{presetHybrid, "active", FromDirectory},
		{presetHybrid, "displayName", FromLocal},
		{presetHybrid, "phoneNumbers", FromLocal},
		{presetHybrid, "preferredLanguage", FromLocal},
		{presetDirectory, "displayName", FromDirectory},
		{presetLocal, "userName", FromLocal},
		{"unknown preset", "nickName", FromLocal},
		{presetHybrid, "not a policy field", FromDirectory},
	}
	for _, tt := range tests {
		if got := PresetPolicy(tt.preset).Source(tt.field); got != tt.want {
			t.Errorf("%s / %s: %s, want %s", tt.preset, tt.field, got, tt.want)
		}
	}
}

// TestLocalEditMatrix covers source of truth × who writes × previous state.
func TestLocalEditMatrix(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dirAttrs := func() map[string]any {
		return map[string]any{"userName": "a@x", "displayName": "Directory Name", "title": "Engineer",
			enterpriseSchema: map[string]any{"department": "R&D"}}
	}
	override := map[string]Override{"displayName": {Value: "Old Local", By: "admin", At: now}}
	tests := []struct {
		name         string
		kind         string
		policy       Policy
		overrides    map[string]Override
		field        string
		value        any
		wantErr      bool
		wantEff      any // effective value of field afterwards
		wantDir      any // directory (stored) value afterwards
		wantOverride bool
	}{
		{"directory-owned field refuses a local edit", accountDirectory, PresetPolicy(presetHybrid), nil, "title", "Boss", true, "Engineer", "Engineer", false},
		{"local-owned field takes a local edit", accountDirectory, PresetPolicy(presetHybrid), nil, "displayName", "Local Name", false, "Local Name", "Directory Name", true},
		{"local edit replaces an earlier one", accountDirectory, PresetPolicy(presetHybrid), override, "displayName", "Newer", false, "Newer", "Directory Name", true},
		{"editing back to the directory's value drops the override", accountDirectory, PresetPolicy(presetHybrid), override, "displayName", "Directory Name", false, "Directory Name", "Directory Name", false},
		{"local edit can clear a field", accountDirectory, PresetPolicy(presetHybrid), nil, "displayName", nil, false, nil, "Directory Name", true},
		{"users-are-truth preset allows the userName", accountDirectory, PresetPolicy(presetLocal), nil, "userName", "b@x", false, "b@x", "a@x", true},
		{"directory preset refuses everything", accountDirectory, PresetPolicy(presetDirectory), nil, "displayName", "x", true, "Directory Name", "Directory Name", false},
		{"manual account: any field, written directly", accountManual, PresetPolicy(presetDirectory), nil, "title", "Boss", false, "Boss", "Boss", false},
		{"manual account: extension field", accountManual, PresetPolicy(presetHybrid), nil, enterpriseSchema + ":department", "Sales", false, "Sales", "Sales", false},
		{"fields outside the policy are not editable", accountManual, PresetPolicy(presetLocal), nil, "password", "x", true, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attrs := dirAttrs()
			gotAttrs, gotOv, err := LocalEdit(tt.kind, attrs, tt.overrides, tt.policy, tt.field, tt.value, "admin", now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				var ro *ErrReadOnlyField
				if !errors.As(err, &ro) {
					t.Errorf("error %T, want *ErrReadOnlyField", err)
				}
				gotAttrs, gotOv = attrs, tt.overrides
			}
			if got := getField(Effective(gotAttrs, gotOv, tt.policy), tt.field); !jsonEqual(got, tt.wantEff) {
				t.Errorf("effective %v, want %v", got, tt.wantEff)
			}
			if got := getField(gotAttrs, tt.field); !jsonEqual(got, tt.wantDir) {
				t.Errorf("stored %v, want %v", got, tt.wantDir)
			}
			if _, got := gotOv[tt.field]; got != tt.wantOverride {
				t.Errorf("override present %v, want %v", got, tt.wantOverride)
			}
			if getField(attrs, "displayName") != "Directory Name" {
				t.Error("LocalEdit modified its input")
			}
		})
	}
}

func TestEffectiveFollowsThePolicy(t *testing.T) {
	t.Parallel()
	attrs := map[string]any{"displayName": "Dir", "nickName": "dn"}
	ov := map[string]Override{"displayName": {Value: "Local"}, "nickName": {Value: nil}}
	tests := []struct {
		name       string
		policy     Policy
		display    any
		nick       any
		originDisp FieldOrigin
	}{
		{"local wins", PresetPolicy(presetHybrid), "Local", nil, originOverride},
		{"directory wins: overrides kept but not shown", PresetPolicy(presetDirectory), "Dir", "dn", originDirectory},
	}
	for _, tt := range tests {
		eff := Effective(attrs, ov, tt.policy)
		if got := getField(eff, "displayName"); got != tt.display {
			t.Errorf("%s: displayName %v, want %v", tt.name, got, tt.display)
		}
		if got := getField(eff, "nickName"); got != tt.nick {
			t.Errorf("%s: nickName %v, want %v", tt.name, got, tt.nick)
		}
		if got := Origin(accountDirectory, ov, tt.policy, "displayName"); got != tt.originDisp {
			t.Errorf("%s: origin %s, want %s", tt.name, got, tt.originDisp)
		}
	}
	if attrs["displayName"] != "Dir" {
		t.Error("Effective modified its input")
	}
	if got := Origin(accountManual, nil, PresetPolicy(presetHybrid), "displayName"); got != originManual {
		t.Errorf("manual origin %s", got)
	}
}

func TestClaimedAndDisconnected(t *testing.T) {
	t.Parallel()
	p := PresetPolicy(presetHybrid)
	manual := map[string]any{"userName": "a@x", "displayName": "Chosen Locally", "title": "Local Title"}
	directory := map[string]any{"userName": "a@x", "displayName": "From Entra", "title": "Entra Title"}
	ov := Claimed(manual, directory, p, time.Now())
	if got := ov["displayName"].Value; got != "Chosen Locally" {
		t.Errorf("claimed: displayName override %v, want the manual value kept", got)
	}
	if _, ok := ov["title"]; ok {
		t.Error("claimed: title is directory-owned, yet the manual value was kept")
	}
	flat := Disconnected(directory, ov, p)
	if flat["displayName"] != "Chosen Locally" || flat["title"] != "Entra Title" {
		t.Errorf("disconnected values %v", flat)
	}
}

// policyServer is a test server with a logged-in admin.
func policyServer(t *testing.T) (*testServer, *adminClient) {
	t.Helper()
	ts := newTestServer(t)
	return ts, setUpAdmin(t, ts)
}

func (ac *adminClient) editField(t *testing.T, userID, field, value string) int {
	t.Helper()
	status, _, _ := ac.post(t, "/users/"+userID, url.Values{"csrf": {ac.csrf(t)}, "action": {"edit"}, "field": {field}, "value": {value}})
	return status
}

func TestLocalEditsAndTheDirectory(t *testing.T) {
	t.Parallel()
	for _, preset := range []string{presetHybrid, presetLocal} {
		t.Run(preset, func(t *testing.T) {
			t.Parallel()
			ts, ac := policyServer(t)
			if err := ts.store.SetPolicy(context.Background(), PresetPolicy(preset)); err != nil {
				t.Fatal(err)
			}
			id := ts.createUser(t, "edited@example.com")
			if got := ac.editField(t, id, "displayName", "Chosen Locally"); got != http.StatusSeeOther {
				t.Fatalf("local edit: %d", got)
			}
			// SCIM still answers with what the directory wrote…
			_, _, u := ts.do(t, "GET", "/Users/"+id, nil)
			if u["displayName"] != nil {
				t.Errorf("SCIM shows the local edit: %v", u["displayName"])
			}
			// …the directory's update is stored, an identical PATCH is a no-op…
			rename := patchBody(map[string]any{"op": "Replace", "path": "displayName", "value": "Entra Name"})
			ts.do(t, "PATCH", "/Users/"+id, rename)
			_, h1, _ := ts.do(t, "GET", "/Users/"+id, nil)
			ts.do(t, "PATCH", "/Users/"+id, rename)
			_, h2, u := ts.do(t, "GET", "/Users/"+id, nil)
			if u["displayName"] != "Entra Name" || h1.Get("ETag") != h2.Get("ETag") {
				t.Errorf("directory value %v; ETag %s then %s", u["displayName"], h1.Get("ETag"), h2.Get("ETag"))
			}
			// …and the local value keeps winning in the admin page.
			_, _, page := ac.get(t, "/users/"+id)
			if !strings.Contains(page, "Chosen Locally") || !strings.Contains(page, "local override") {
				t.Error("the user page does not show the local override")
			}
			_, _, list := ac.get(t, "/users")
			if !strings.Contains(list, "Chosen Locally") {
				t.Error("the users list does not show the effective name")
			}
			// Revert: the directory's value shows again.
			ac.post(t, "/users/"+id, url.Values{"csrf": {ac.csrf(t)}, "action": {"revert"}, "field": {"displayName"}})
			_, _, page = ac.get(t, "/users/"+id)
			// (The History still tells the edit and its revert.)
			if strings.Contains(page, `value="Chosen Locally"`) || !strings.Contains(page, `value="Entra Name"`) {
				t.Error("revert did not bring the directory's value back")
			}
		})
	}
}

func TestReadOnlyDirectoryFields(t *testing.T) {
	t.Parallel()
	ts, ac := policyServer(t)
	id := ts.createUser(t, "ro@example.com")
	if got := ac.editField(t, id, "title", "Self-appointed CEO"); got != http.StatusForbidden {
		t.Errorf("editing a directory-owned field: %d, want 403", got)
	}
	u, _ := ts.store.UserByID(context.Background(), id)
	if len(u.Overrides) != 0 || u.Attrs["title"] != nil {
		t.Errorf("a refused edit changed the user: %v %v", u.Overrides, u.Attrs["title"])
	}
	// The directory preset makes every field read-only.
	ts.store.SetPolicy(context.Background(), PresetPolicy(presetDirectory))
	if got := ac.editField(t, id, "displayName", "x"); got != http.StatusForbidden {
		t.Errorf("directory preset: %d, want 403", got)
	}
}

func TestManualAccountsClaimAndDisconnect(t *testing.T) {
	t.Parallel()
	ts, ac := policyServer(t)
	// A manual account, created in the admin page, is invisible to SCIM.
	status, h, _ := ac.post(t, "/users/new", url.Values{"csrf": {ac.csrf(t)}, "userName": {"local@example.com"}, "displayName": {"Local Person"}})
	if status != http.StatusSeeOther {
		t.Fatalf("create manual account: %d", status)
	}
	manualID := strings.TrimPrefix(h.Get("Location"), "/users/")
	if status, _, _ := ts.do(t, "GET", "/Users/"+manualID, nil); status != 404 {
		t.Errorf("SCIM GET of a manual account: %d, want 404", status)
	}
	_, _, list := ts.do(t, "GET", "/Users?filter=userName+eq+%22local%40example.com%22", nil)
	if list["totalResults"] != float64(0) {
		t.Errorf("SCIM filter finds a manual account")
	}
	// Its userName is refused to the directory…
	status, _, doc := ts.do(t, "POST", "/Users", newUserBody("LOCAL@example.com"))
	if status != 409 || !strings.Contains(doc["detail"].(string), "claim existing accounts") {
		t.Fatalf("POST over a manual account: %d %v", status, doc)
	}
	// …until claims are allowed: then the directory takes it over, keeping the local display name as an override.
	ac.post(t, "/settings/provisioning", url.Values{"csrf": {ac.csrf(t)}, "claim": {"on"}, "deprovision": {"delete"}, "purge_days": {"0"}, "confirmed": {"yes"}})
	status, _, doc = ts.do(t, "POST", "/Users", newUserBody("LOCAL@example.com"))
	if status != 201 || doc["id"] != manualID {
		t.Fatalf("claim: %d %v (want the manual account's id %s)", status, doc["id"], manualID)
	}
	u, _ := ts.store.UserByID(context.Background(), manualID)
	if u.Kind != accountDirectory || u.Overrides["displayName"].Value != "Local Person" {
		t.Errorf("claimed account: kind %s overrides %v", u.Kind, u.Overrides)
	}
	// Disconnect: tokens revoked, accounts manual with their effective values, groups kept, and editable.
	gid := ts.createGroup(t, "Kept")
	ts.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": manualID}}}))
	if status, _, _ := ac.post(t, "/connection/disconnect", url.Values{"csrf": {ac.csrf(t)}, "confirm": {"nope"}}); status != 400 {
		t.Errorf("disconnect without confirmation: %d", status)
	}
	if status, _, _ := ac.post(t, "/connection/disconnect", url.Values{"csrf": {ac.csrf(t)}, "confirm": {"DISCONNECT"}, "confirmed": {"yes"}}); status != http.StatusSeeOther {
		t.Fatalf("disconnect: %d", status)
	}
	if status, _, _ := ts.do(t, "GET", "/Users", nil); status != 401 {
		t.Errorf("SCIM after disconnect: %d, want 401", status)
	}
	u, _ = ts.store.UserByID(context.Background(), manualID)
	if u.Kind != accountManual || u.Attrs["displayName"] != "Local Person" || len(u.Groups) != 1 {
		t.Errorf("after disconnect: kind %s displayName %v groups %v", u.Kind, u.Attrs["displayName"], u.Groups)
	}
	if got := ac.editField(t, manualID, "title", "Now Editable"); got != http.StatusSeeOther {
		t.Errorf("editing a now-manual account: %d", got)
	}
}

func TestDeprovisioningSettings(t *testing.T) {
	t.Parallel()
	t.Run("delete removes the account", func(t *testing.T) {
		t.Parallel()
		ts, _ := policyServer(t)
		id := ts.createUser(t, "gone@example.com")
		ts.do(t, "DELETE", "/Users/"+id, nil)
		if _, err := ts.store.UserByID(context.Background(), id); !errors.Is(err, ErrNotFound) {
			t.Errorf("after DELETE: %v, want not found", err)
		}
	})
	t.Run("hide keeps it disabled and hidden, and a new POST brings it back", func(t *testing.T) {
		t.Parallel()
		ts, ac := policyServer(t)
		ac.post(t, "/settings/provisioning", url.Values{"csrf": {ac.csrf(t)}, "deprovision": {"hide"}, "purge_days": {"0"}})
		id := ts.createUser(t, "kept@example.com")
		if status, _, _ := ts.do(t, "DELETE", "/Users/"+id, nil); status != 204 {
			t.Fatalf("DELETE: %d", status)
		}
		if status, _, _ := ts.do(t, "GET", "/Users/"+id, nil); status != 404 {
			t.Errorf("SCIM GET after a hiding delete: %d, want 404", status)
		}
		u, err := ts.store.UserByID(context.Background(), id)
		if err != nil || u.Kind != accountDeprovisioned || u.Attrs["active"] != false {
			t.Fatalf("kept account: %v %+v", err, u)
		}
		status, _, doc := ts.do(t, "POST", "/Users", newUserBody("kept@example.com"))
		if status != 201 || doc["id"] != id || doc["active"] != true {
			t.Errorf("re-provisioning: %d %v", status, doc)
		}
	})
	t.Run("disabled accounts are deleted after N days", func(t *testing.T) {
		t.Parallel()
		ts, _ := policyServer(t)
		id := ts.createUser(t, "old@example.com")
		ts.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
		active := ts.createUser(t, "active@example.com")
		if names, _ := ts.store.PurgeInactive(context.Background(), 1); len(names) != 0 {
			t.Errorf("purged %v after less than a day", names)
		}
		ts.store.now = func() time.Time { return time.Now().Add(49 * time.Hour) }
		names, err := ts.store.PurgeInactive(context.Background(), 2)
		if err != nil || len(names) != 1 || names[0] != "old@example.com" {
			t.Errorf("purge after 2 days: %v %v", names, err)
		}
		if _, err := ts.store.UserByID(context.Background(), active); err != nil {
			t.Errorf("an active account was purged: %v", err)
		}
	})
}

// TestReplayWithEveryPreset runs Microsoft-Entra-shaped replay against a
// server with each preset and a local override in place: SCIM answers must
// not depend on the policy.
func TestReplayWithEveryPreset(t *testing.T) {
	script, corpus := filepath.Join("..", "shared", "scim-replay.py"), filepath.Join("..", "shared", "corpus", "entra-session.json")
	if _, err := os.Stat(script); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("../shared/scim-replay.py is missing")
		}
		t.Skip("../shared is not next to this checkout")
	}
	expected, err := os.ReadFile(filepath.Join(".ci", "replay-expected-failures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, preset := range []string{presetDirectory, presetHybrid, presetLocal} {
		t.Run(preset, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			if err := ts.store.SetPolicy(context.Background(), PresetPolicy(preset)); err != nil {
				t.Fatal(err)
			}
			out, _ := exec.Command("python3", script, corpus, ts.URL+"/scim/v2", ts.token).CombinedOutput()
			for _, line := range strings.Split(string(out), "\n") {
				if !strings.HasPrefix(line, "FAIL") {
					continue
				}
				fields := strings.Fields(strings.SplitN(line, ":", 2)[0]) // FAIL, step number, step name
				name := fields[len(fields)-1]
				if !strings.Contains(string(expected), "\n"+name+"\n") {
					t.Errorf("%s", line)
				}
			}
			if !strings.Contains(string(out), " passed, ") {
				t.Fatalf("replay did not run: %s", out)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// planFigure reads the figure a page's plan gives for a label.
func planFigure(t *testing.T, page, label string) int {
	t.Helper()
	m := regexp.MustCompile(`<strong>(\d+)</strong> ` + regexp.QuoteMeta(label)).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the plan does not say how many %q:\n%s", label, page)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// planIDs are the accounts a page's plan lists by name.
func planIDs(page string) []string {
	var ids []string
	for _, m := range regexp.MustCompile(`<td data-label="Account"><a href="/users/([^"]+)">`).FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return sorted(ids...)
}

// exported is every user as the JSON export shows it, by id, without lastModified.
func exported(t *testing.T, s *Store) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if err := exportUsers(context.Background(), s, &buf, "json", nil); err != nil {
		t.Fatal(err)
	}
	var users []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &users); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, u := range users {
		delete(u, "lastModified")
		b, _ := json.Marshal(u)
		out[u["id"].(string)] = string(b)
	}
	return out
}

// changedIDs are the ids whose entry differs between two snapshots.
func changedIDs(before, after map[string]string) []string {
	var ids []string
	for id, b := range before {
		if after[id] != b {
			ids = append(ids, id)
		}
	}
	return sorted(ids...)
}

func setOverride(t *testing.T, s *Store, id, key string, value any) {
	t.Helper()
	if _, err := s.UpdateUser(context.Background(), id, func(u *User) error {
		if u.Overrides == nil {
			u.Overrides = map[string]Override{}
		}
		u.Overrides[key] = Override{Value: value, By: "admin", At: time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDryRunPolicyPreset: a preset first shows how many users' values apps
// would see change, and which; applying it then changes exactly those users
// in the export, whichever way the preset goes.
func TestDryRunPolicyPreset(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	s := ts.store
	named, titled := ts.createUser(t, "named@example.com"), ts.createUser(t, "titled@example.com")
	ts.createUser(t, "plain@example.com") // no local edit: no preset changes it
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+titled, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "Engineer"})); status != http.StatusOK {
		t.Fatalf("PATCH title: %d %v", status, doc)
	}
	setOverride(t, s, named, "displayName", "Local Name") // a personal field: local wins under hybrid
	setOverride(t, s, titled, "title", "Boss")            // an organisation field: the directory wins under hybrid
	for _, tc := range []struct {
		preset string
		want   []string
	}{
		{presetLocal, []string{titled}},            // the title override shows
		{presetDirectory, []string{named, titled}}, // both overrides hide
		{presetHybrid, []string{named}},            // back: the display name override shows again
		{presetHybrid, nil},                        // the policy now: nothing changes
	} {
		before := exported(t, s)
		status, _, page := ac.post(t, "/settings/policy", url.Values{"csrf": {ac.csrf(t)}, "preset": {tc.preset}})
		if status != http.StatusOK {
			t.Fatalf("%s: preview %d\n%s", tc.preset, status, page)
		}
		if tc.want == nil {
			continue // "nothing would change": no plan, nothing to confirm
		}
		n, listed := planFigure(t, page, "users whose values shown to apps change"), planIDs(page)
		if after := exported(t, s); !slices.Equal(changedIDs(before, after), nil) {
			t.Fatalf("%s: the preview changed %v", tc.preset, changedIDs(before, after))
		}
		if status, _, _ := ac.post(t, "/settings/policy", url.Values{"csrf": {ac.csrf(t)}, "preset": {tc.preset}, "confirmed": {"yes"}}); status != http.StatusSeeOther {
			t.Fatalf("%s: apply %d", tc.preset, status)
		}
		changed := changedIDs(before, exported(t, s))
		if n != len(changed) || !slices.Equal(listed, changed) || !slices.Equal(changed, sorted(tc.want...)) {
			t.Errorf("%s: the preview said %d users %v; applying changed %v (want %v)", tc.preset, n, listed, changed, sorted(tc.want...))
		}
	}
}

// TestDryRunClaim: turning "claim existing accounts" on first shows the
// manual accounts the directory asked for and was refused; once confirmed,
// the directory's next attempt takes over exactly those.
func TestDryRunClaim(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	s := ts.store
	ctx := context.Background()
	var manual []string
	for _, name := range []string{"ann@example.com", "bob@example.com", "cat@example.com"} {
		u := &User{Kind: accountManual, Attrs: map[string]any{"userName": name, "displayName": "Local " + name}}
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		manual = append(manual, u.ID)
	}
	asked := []string{"ann@example.com", "BOB@example.com"} // the directory's spelling may differ in case
	for _, name := range asked {
		if status, _, doc := ts.do(t, "POST", "/Users", newUserBody(name)); status != http.StatusConflict {
			t.Fatalf("POST %s with claims off: %d %v", name, status, doc)
		}
	}
	if err := s.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"csrf": {ac.csrf(t)}, "claim": {"on"}, "deprovision": {"delete"}, "purge_days": {"0"}}
	status, _, page := ac.post(t, "/settings/provisioning", form)
	if status != http.StatusOK {
		t.Fatalf("preview: %d\n%s", status, page)
	}
	n := planFigure(t, page, "manual accounts the directory asked for and was refused")
	listed := planIDs(page)
	if all := planFigure(t, page, "manual accounts in all"); all != 3 {
		t.Errorf("the preview counts %d manual accounts, want 3", all)
	}
	if v, _ := s.Setting(ctx, settingClaim); v == "true" {
		t.Fatal("the preview turned claims on")
	}
	form.Set("confirmed", "yes")
	if status, _, _ := ac.post(t, "/settings/provisioning", form); status != http.StatusSeeOther {
		t.Fatalf("confirm: %d", status)
	}
	kinds := func() map[string]string {
		out := map[string]string{}
		for _, id := range manual {
			u, err := s.UserByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out[id] = u.Kind
		}
		return out
	}
	before := kinds()
	for _, name := range asked { // Entra retries the failed users at its next cycle
		if status, _, doc := ts.do(t, "POST", "/Users", newUserBody(name)); status != http.StatusCreated {
			t.Fatalf("POST %s with claims on: %d %v", name, status, doc)
		}
	}
	var claimed []string
	for id, k := range kinds() {
		if k != before[id] {
			claimed = append(claimed, id)
		}
	}
	claimed = sorted(claimed...)
	if n != len(claimed) || !slices.Equal(listed, claimed) || len(claimed) != 2 {
		t.Errorf("the preview said %d accounts %v; the directory's next attempt claimed %v", n, listed, claimed)
	}
}

// TestDryRunDisconnect: typing DISCONNECT first shows the tokens to revoke,
// the accounts that become manual and those whose local edits become their
// values; confirming then does exactly that.
func TestDryRunDisconnect(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	s := ts.store
	ctx := context.Background()
	edited, untouched := ts.createUser(t, "edited@example.com"), ts.createUser(t, "untouched@example.com")
	setOverride(t, s, edited, "displayName", "Local Name")
	if err := s.CreateUser(ctx, &User{Kind: accountManual, Attrs: map[string]any{"userName": "manual@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateToken(ctx, "spare"); err != nil {
		t.Fatal(err)
	}
	status, _, page := ac.post(t, "/connection/disconnect", url.Values{"csrf": {ac.csrf(t)}, "confirm": {"DISCONNECT"}})
	if status != http.StatusOK {
		t.Fatalf("preview: %d\n%s", status, page)
	}
	tokens := planFigure(t, page, "Secret Tokens revoked")
	accounts := planFigure(t, page, "directory accounts that become manual accounts")
	folded := planFigure(t, page, "of them with local edits that become their own values")
	listed := planIDs(page)

	type state struct {
		kind  string
		attrs string
	}
	snapshot := func() map[string]state {
		out := map[string]state{}
		if err := s.EachUser(ctx, func(u *User) error {
			b, _ := json.Marshal(u.Attrs)
			out[u.ID] = state{u.Kind, string(b)}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := snapshot()
	tokensBefore, _ := s.Tokens(ctx)
	if status, _, _ := ac.post(t, "/connection/disconnect", url.Values{"csrf": {ac.csrf(t)}, "confirm": {"DISCONNECT"}, "confirmed": {"yes"}}); status != http.StatusSeeOther {
		t.Fatalf("disconnect: %d", status)
	}
	tokensAfter, _ := s.Tokens(ctx)
	var converted []string
	valuesChanged := 0
	for id, a := range snapshot() {
		if a.kind != before[id].kind {
			converted = append(converted, id)
		}
		if a.attrs != before[id].attrs {
			valuesChanged++
		}
	}
	converted = sorted(converted...)
	if tokens != len(tokensBefore)-len(tokensAfter) || tokens != 2 {
		t.Errorf("the preview said %d tokens; %d were revoked", tokens, len(tokensBefore)-len(tokensAfter))
	}
	if accounts != len(converted) || !slices.Equal(listed, converted) || !slices.Equal(converted, sorted(edited, untouched)) {
		t.Errorf("the preview said %d accounts %v; %v became manual", accounts, listed, converted)
	}
	if folded != valuesChanged || folded != 1 {
		t.Errorf("the preview said %d accounts' values change; %d did", folded, valuesChanged)
	}
}

// TestPlanSample: a plan names at most planSampleSize changes and counts the rest.
func TestPlanSample(t *testing.T) {
	t.Parallel()
	var p Plan
	for i := range planSampleSize + 5 {
		p.add(PlanItem{ID: strconv.Itoa(i)})
	}
	if len(p.Sample) != planSampleSize || p.Total != planSampleSize+5 || p.More() != 5 {
		t.Errorf("sample %d, total %d, more %d", len(p.Sample), p.Total, p.More())
	}
}

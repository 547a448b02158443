package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// railsServer is a test server whose mass-change hold lets minimum removals
// through per hour (the percentage is 0), with an
// app key and a webhook receiver subscribed to every event.
type railsServer struct {
	*testServer
	key    string
	rc     *receiver
	sender *webhookSender
}

func newRailsServer(t *testing.T, minimum int) *railsServer {
	t.Helper()
	ts := newTestServer(t)
	ctx := context.Background()
	if err := ts.store.SetHoldSettings(ctx, HoldSettings{Minimum: minimum, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	key, _, err := ts.store.CreateAppKey(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{t: t}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	wh, err := ts.store.CreateWebhook(ctx, hook.URL, eventTypes)
	if err != nil {
		t.Fatal(err)
	}
	rc.secret = wh.Secret
	return &railsServer{testServer: ts, key: key, rc: rc, sender: fastSender(ts.store)}
}

// delivered runs the webhook sender until nothing is due and returns what the receiver got.
func (rs *railsServer) delivered() []string {
	rs.sender.deliverDue(context.Background())
	return rs.rc.received()
}

// disable sends Entra's soft-delete PATCH.
func (rs *railsServer) disable(t *testing.T, id string) {
	t.Helper()
	status, _, doc := rs.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	if status != http.StatusOK || doc["active"] != false {
		t.Fatalf("disable %s: %d %v", id, status, doc)
	}
}

// apiActive is a user's active value in the read API, or "404".
func (rs *railsServer) apiActive(t *testing.T, id string) any {
	t.Helper()
	status, doc := apiGet(t, rs.testServer, rs.key, "/api/v1/users/"+id)
	if status == http.StatusNotFound {
		return "404"
	}
	return doc["active"]
}

// eventsSince lists the feed after a cursor as "type resourceId" lines, and the last cursor.
func eventsSince(t *testing.T, s *Store, after int64) ([]string, int64) {
	t.Helper()
	events, err := s.Events(context.Background(), after, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		out, after = append(out, e.Type+" "+e.ResourceID), e.Cursor
	}
	return out, after
}

func usersNamed(t *testing.T, rs *railsServer, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = rs.createUser(t, fmt.Sprintf("%s%d@example.com", prefix, i))
	}
	return ids
}

func TestMassDisableIsHeldThenApprovedInOrder(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 3)
	ctx := context.Background()
	ids := usersNamed(t, rs, "burst", 8)
	_, cursor := eventsSince(t, rs.store, 0)
	before := len(rs.delivered())

	for _, id := range ids[:6] {
		rs.disable(t, id)
	}
	// The first three reach apps; the rest are held: SCIM shows them, apps do not.
	got, cursor := eventsSince(t, rs.store, cursor)
	want := []string{evUserDisabled + " " + ids[0], evUserDisabled + " " + ids[1], evUserDisabled + " " + ids[2]}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for i, id := range ids[:6] {
		_, _, doc := rs.do(t, "GET", "/Users/"+id, nil)
		if doc["active"] != false {
			t.Errorf("SCIM GET user %d: active %v, want false (SCIM shows what the directory wrote)", i, doc["active"])
		}
		if got, want := rs.apiActive(t, id), i < 3; got != !want {
			t.Errorf("API user %d: active %v, want %v", i, got, !want)
		}
	}
	if got := rs.delivered()[before:]; !slices.Equal(got, []string{evUserDisabled, evUserDisabled, evUserDisabled}) {
		t.Errorf("webhook received %v, want only the three disables that passed", got)
	}
	if n, oldest, err := rs.store.HeldChanges(ctx); err != nil || n != 3 || oldest.IsZero() {
		t.Errorf("HeldChanges = %d, %v, %v; want 3 and a time", n, oldest, err)
	}
	// The provisioning log says why apps did not see it.
	if err := rs.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := rs.store.ListLog(ctx, LogQuery{ResourceID: ids[5], Limit: 5})
	if err != nil || len(entries) == 0 || !strings.Contains(entries[0].Detail, "held for review") {
		t.Errorf("log entry of a held disable: %+v %v", entries, err)
	}

	approved, err := rs.store.ApproveHolds(ctx, nil, true, "admin")
	if err != nil || len(approved) != 3 {
		t.Fatalf("approve: %v %v", approved, err)
	}
	got, _ = eventsSince(t, rs.store, cursor)
	want = []string{evUserDisabled + " " + ids[3], evUserDisabled + " " + ids[4], evUserDisabled + " " + ids[5]}
	if !slices.Equal(got, want) {
		t.Errorf("approval released %q, want %q", got, want)
	}
	for i, id := range ids[:6] {
		if got := rs.apiActive(t, id); got != false {
			t.Errorf("API user %d after approval: active %v", i, got)
		}
	}
	if got := rs.delivered()[before:]; len(got) != 6 {
		t.Errorf("webhook received %v, want six disables", got)
	}
	if n, _, _ := rs.store.HeldChanges(ctx); n != 0 {
		t.Errorf("%d changes still held after approving all", n)
	}
}

func TestRejectedDisableKeepsTheEffectiveView(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 1)
	ctx := context.Background()
	ids := usersNamed(t, rs, "keep", 3)
	rs.disable(t, ids[0])
	_, cursor := eventsSince(t, rs.store, 0)
	rs.disable(t, ids[1])
	rs.disable(t, ids[2])
	holds, _, err := rs.store.Holds(ctx, HoldQuery{States: []string{holdHeld}, Limit: 10})
	if err != nil || len(holds) != 2 {
		t.Fatalf("held: %v %v", holds, err)
	}
	// Approve some: only the chosen one is released.
	if _, err := rs.store.ApproveHolds(ctx, []int64{holds[1].ID}, false, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.store.RejectHolds(ctx, []int64{holds[0].ID}, false, "admin"); err != nil {
		t.Fatal(err)
	}
	got, cursor := eventsSince(t, rs.store, cursor)
	if want := []string{evUserDisabled + " " + ids[2]}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if got := rs.apiActive(t, ids[1]); got != true {
		t.Errorf("API after reject: active %v, want true", got)
	}
	if _, _, doc := rs.do(t, "GET", "/Users/"+ids[1], nil); doc["active"] != false {
		t.Errorf("SCIM after reject: active %v, want false", doc["active"])
	}
	drift, _, err := rs.store.Holds(ctx, HoldQuery{States: []string{holdRejected}, Limit: 10})
	if err != nil || len(drift) != 1 || drift[0].ResourceID != ids[1] {
		t.Errorf("drift: %v %v", drift, err)
	}
	// The directory enables the user again: nothing changes for apps, and the drift is gone.
	status, _, _ := rs.do(t, "PATCH", "/Users/"+ids[1], patchBody(map[string]any{"op": "Replace", "path": "active", "value": "True"}))
	if status != http.StatusOK {
		t.Fatal(status)
	}
	if got, _ := eventsSince(t, rs.store, cursor); len(got) != 0 {
		t.Errorf("re-enabling a kept user recorded %q", got)
	}
	if drift, _, _ := rs.store.Holds(ctx, HoldQuery{States: []string{holdRejected}, Limit: 10}); len(drift) != 0 {
		t.Errorf("drift after the directory agreed: %v", drift)
	}
	u, err := rs.store.UserByID(ctx, ids[1])
	if err != nil || len(u.Overrides) != 0 {
		t.Errorf("overrides after the directory agreed: %v %v", u.Overrides, err)
	}
}

func TestMassDeleteIsHeld(t *testing.T) {
	t.Parallel()
	for _, mode := range []DeprovisionMode{deprovisionDelete, deprovisionHide} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			rs := newRailsServer(t, 1)
			ctx := context.Background()
			if err := rs.store.SetSetting(ctx, settingDeprovision, string(mode)); err != nil {
				t.Fatal(err)
			}
			ids := usersNamed(t, rs, "leaver", 2)
			gid := rs.createGroup(t, "Admins")
			addMembersByPatch(t, rs.testServer, gid, ids...)
			if status, _, _ := rs.do(t, "DELETE", "/Users/"+ids[0], nil); status != http.StatusNoContent {
				t.Fatal(status)
			}
			_, cursor := eventsSince(t, rs.store, 0)
			webhooks := len(rs.delivered())
			if status, _, doc := rs.do(t, "DELETE", "/Users/"+ids[1], nil); status != http.StatusNoContent {
				t.Fatalf("held delete: %d %v", status, doc)
			}
			// SCIM: gone, as Entra expects, and out of the group.
			if status, _, _ := rs.do(t, "GET", "/Users/"+ids[1], nil); status != http.StatusNotFound {
				t.Errorf("SCIM GET of a held delete: %d, want 404", status)
			}
			_, _, list := rs.do(t, "GET", `/Users?filter=userName+eq+"leaver1@example.com"`, nil)
			if list["totalResults"] != float64(0) {
				t.Errorf("SCIM filter finds a held delete: %v", list)
			}
			if got := rs.memberIDsOfGroup(t, gid); len(got) != 0 {
				t.Errorf("SCIM group members %v, want none", got)
			}
			if status, _, _ := rs.do(t, "DELETE", "/Users/"+ids[1], nil); status != http.StatusNotFound {
				t.Errorf("second SCIM DELETE: %d, want 404", status)
			}
			// Apps: still there, active, in the group; no event, no webhook.
			status, doc := apiGet(t, rs.testServer, rs.key, "/api/v1/users/"+ids[1])
			if status != http.StatusOK || doc["active"] != true || doc["kind"] != accountDirectory ||
				len(doc["groups"].([]any)) != 1 {
				t.Errorf("API user of a held delete: %d %v", status, doc)
			}
			_, members := apiGet(t, rs.testServer, rs.key, "/api/v1/groups/"+gid+"/members")
			if data := members["data"].([]any); len(data) != 1 || data[0].(map[string]any)["id"] != ids[1] {
				t.Errorf("API members %v, want the held user", data)
			}
			var export strings.Builder
			if err := exportUsers(ctx, rs.store, &export, "csv", []string{"userName", "groups"}); err != nil ||
				!strings.Contains(export.String(), `"leaver1@example.com","Admins"`) {
				t.Errorf("export: %v\n%s", err, export.String())
			}
			if got, _ := eventsSince(t, rs.store, cursor); len(got) != 0 {
				t.Errorf("a held delete recorded %q", got)
			}
			if got := rs.delivered(); len(got) != webhooks {
				t.Errorf("webhook received %v for a held delete", got[webhooks:])
			}

			if _, err := rs.store.ApproveHolds(ctx, nil, true, "admin"); err != nil {
				t.Fatal(err)
			}
			got, _ := eventsSince(t, rs.store, cursor)
			want := []string{evMemberRemoved + " " + gid, evUserDeleted + " " + ids[1]}
			if mode == deprovisionHide {
				want = []string{evMemberRemoved + " " + gid, evUserDisabled + " " + ids[1]}
			}
			if !slices.Equal(got, want) {
				t.Errorf("approval released %q, want %q", got, want)
			}
			wantActive := any("404")
			if mode == deprovisionHide {
				wantActive = false
			}
			if got := rs.apiActive(t, ids[1]); got != wantActive {
				t.Errorf("API after approval: %v, want %v", got, wantActive)
			}
			if _, members := apiGet(t, rs.testServer, rs.key, "/api/v1/groups/"+gid+"/members"); len(members["data"].([]any)) != 0 {
				t.Errorf("API members after approval: %v", members["data"])
			}
		})
	}
}

// Entra creates a user again (a scoping filter fixed) whose delete was held:
// the account comes back with its id, apps never lost it, and the hold no longer applies.
func TestDirectoryRecreatesAHeldDelete(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 0)
	ctx := context.Background()
	id := rs.createUser(t, "back@example.com")
	_, cursor := eventsSince(t, rs.store, 0)
	rs.do(t, "DELETE", "/Users/"+id, nil)
	status, _, doc := rs.do(t, "POST", "/Users", newUserBody("back@example.com"))
	if status != http.StatusCreated || doc["id"] != id {
		t.Fatalf("re-create: %d %v, want 201 with id %s", status, doc, id)
	}
	if status, _, _ := rs.do(t, "GET", "/Users/"+id, nil); status != http.StatusOK {
		t.Errorf("SCIM GET after re-create: %d", status)
	}
	if got, _ := eventsSince(t, rs.store, cursor); len(got) != 0 {
		t.Errorf("delete and re-create recorded %q for apps", got)
	}
	if n, _, _ := rs.store.HeldChanges(ctx); n != 0 {
		t.Errorf("%d changes held after the directory undid the delete", n)
	}
}

func TestMassMembershipRemovalIsHeld(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 2)
	ctx := context.Background()
	ids := usersNamed(t, rs, "member", 5)
	gid := rs.createGroup(t, "Everyone")
	addMembersByPatch(t, rs.testServer, gid, ids...)
	_, cursor := eventsSince(t, rs.store, 0)
	// Entra empties the group in one request.
	status, _, _ := rs.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Remove", "path": "members"}))
	if status != http.StatusNoContent {
		t.Fatal(status)
	}
	if got := rs.memberIDsOfGroup(t, gid); len(got) != 0 {
		t.Errorf("SCIM members %v, want none", got)
	}
	got, cursor := eventsSince(t, rs.store, cursor)
	if len(got) != 2 || !strings.HasPrefix(got[0], evMemberRemoved) {
		t.Errorf("events %q, want two member removals", got)
	}
	apiMembers := func() []string {
		_, doc := apiGet(t, rs.testServer, rs.key, "/api/v1/groups/"+gid+"/members")
		var out []string
		for _, m := range doc["data"].([]any) {
			out = append(out, m.(map[string]any)["id"].(string))
		}
		return out
	}
	kept := apiMembers()
	if len(kept) != 3 {
		t.Fatalf("API members %v, want the three held", kept)
	}
	// Entra adds one back: SCIM has it, apps never lost it, its hold no longer applies.
	addMembersByPatch(t, rs.testServer, gid, kept[0])
	if got := rs.memberIDsOfGroup(t, gid); !slices.Equal(got, kept[:1]) {
		t.Errorf("SCIM members %v, want %v", got, kept[:1])
	}
	if got, _ := eventsSince(t, rs.store, cursor); len(got) != 0 {
		t.Errorf("adding back a kept member recorded %q", got)
	}
	if got := apiMembers(); !slices.Equal(got, kept) {
		t.Errorf("API members %v, want %v", got, kept)
	}
	if _, err := rs.store.ApproveHolds(ctx, nil, true, "admin"); err != nil {
		t.Fatal(err)
	}
	got, _ = eventsSince(t, rs.store, cursor)
	want := []string{evMemberRemoved + " " + gid, evMemberRemoved + " " + gid}
	if !slices.Equal(got, want) {
		t.Errorf("approval released %q, want %q", got, want)
	}
	if got := apiMembers(); !slices.Equal(got, kept[:1]) {
		t.Errorf("API members after approval %v, want %v", got, kept[:1])
	}
}

func TestProtectedAccountSurvivesTheDirectory(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 100)
	ctx := context.Background()
	id := rs.createUser(t, "breakglass@example.com")
	gid := rs.createGroup(t, "Admins")
	addMembersByPatch(t, rs.testServer, gid, id)
	if err := rs.store.SetProtected(ctx, id, true, "admin"); err != nil {
		t.Fatal(err)
	}
	_, cursor := eventsSince(t, rs.store, 0)
	rs.disable(t, id)
	if got := rs.apiActive(t, id); got != true {
		t.Errorf("API after a directory disable of a protected account: active %v", got)
	}
	rs.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Remove", "path": `members[value eq "` + id + `"]`}))
	if got := rs.memberIDsOfGroup(t, gid); len(got) != 0 {
		t.Errorf("SCIM members after the removal: %v", got)
	}
	if status, _, _ := rs.do(t, "DELETE", "/Users/"+id, nil); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", status)
	}
	if status, _, _ := rs.do(t, "GET", "/Users/"+id, nil); status != http.StatusNotFound {
		t.Errorf("SCIM GET after DELETE: %d, want 404", status)
	}
	status, doc := apiGet(t, rs.testServer, rs.key, "/api/v1/users/"+id)
	if status != http.StatusOK || doc["active"] != true || len(doc["groups"].([]any)) != 1 {
		t.Errorf("API after a directory DELETE of a protected account: %d %v", status, doc)
	}
	if got, _ := eventsSince(t, rs.store, cursor); len(got) != 0 {
		t.Errorf("refused changes recorded %q", got)
	}
	// Nothing waits for review, the attempts are recorded, and the log says why.
	if n, _, _ := rs.store.HeldChanges(ctx); n != 0 {
		t.Errorf("%d held: a protected account's changes are refused, not held", n)
	}
	attempts, _, err := rs.store.Holds(ctx, HoldQuery{UserID: id, Limit: 10})
	if err != nil || len(attempts) != 2 || attempts[0].State != holdProtected || attempts[1].Kind != holdDelete {
		t.Errorf("attempts: %+v %v", attempts, err)
	}
	if err := rs.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	entries, _ := rs.store.ListLog(ctx, LogQuery{ResourceID: id, Limit: 10})
	refused := 0
	for _, e := range entries {
		if strings.Contains(e.Detail, "the account is protected") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("log entries saying the account is protected: %d, want 2 (%+v)", refused, entries)
	}
}

// Admin edits and claims never meet the rails: only the directory's writes are counted and held.
func TestRailsApplyOnlyToTheDirectory(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	if err := s.SetHoldSettings(ctx, HoldSettings{Minimum: 0, Window: time.Hour}); err != nil {
		t.Fatal(err)
	}
	u := &User{Attrs: map[string]any{"userName": "plain", "active": true}}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, func(u *User) error { u.Attrs["active"] = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	if holds, _, _ := s.Holds(ctx, HoldQuery{Limit: 10}); len(holds) != 0 {
		t.Errorf("writes that are not the directory's were held: %v", holds)
	}
}

func TestHoldThreshold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		hs            HoldSettings
		base, want    int
		invalidFields int
	}{
		{name: "default, small tenant: the minimum", hs: defaultHoldSettings, base: 40, want: 25},
		{name: "default, large tenant: the percentage", hs: defaultHoldSettings, base: 10_000, want: 1000},
		{name: "percentage rounds up", hs: HoldSettings{Percent: 10, Minimum: 0, Window: time.Hour}, base: 251, want: 26},
		{name: "zero holds everything", hs: HoldSettings{Window: time.Hour}, base: 100, want: 0},
		{name: "out of range", hs: HoldSettings{Percent: 101, Minimum: -1, Window: 0}, invalidFields: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(tc.hs.validate()); got != tc.invalidFields {
				t.Fatalf("validate: %d problems, want %d", got, tc.invalidFields)
			}
			if tc.invalidFields == 0 {
				if got := tc.hs.threshold(tc.base); got != tc.want {
					t.Errorf("threshold(%d) = %d, want %d", tc.base, got, tc.want)
				}
			}
		})
	}
}

// The window is counted from its index alone, whatever the number of
// removals, and the effective members page merges two index ranges.
func TestHoldWindowQueryPlan(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	plan, err := s.queryPlan(context.Background(), windowRemovalsSQL, classUsers, formatTime(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "COVERING INDEX directory_removals_window") {
		t.Errorf("plan %q does not use the covering window index", got)
	}
	plan, err = s.queryPlan(context.Background(), membersAfterSQL, "g", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(plan, "; ")
	for _, want := range []string{"MERGE (UNION ALL)", "SEARCH members USING PRIMARY KEY (group_id=? AND member_id>?)",
		"SEARCH holds USING INDEX holds_kept_members (resource_id=? AND member_id>?)"} {
		if !strings.Contains(got, want) {
			t.Errorf("effective members page: plan %q lacks %q", got, want)
		}
	}
}

func TestHoldsPage(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 1)
	ctx := context.Background()
	ac := setUpAdmin(t, rs.testServer)
	ids := usersNamed(t, rs, "page", 4)
	for _, id := range ids {
		rs.disable(t, id)
	}
	// The requests' log entries are queued; in the file before the
	// decisions' own, so that the newest entry is the decision.
	if err := rs.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, body := ac.get(t, "/holds")
	for _, want := range []string{"disable page1@example.com", "disable page3@example.com", "PATCH /scim/v2/Users/" + ids[1]} {
		if !strings.Contains(body, want) {
			t.Errorf("holds page lacks %q", want)
		}
	}
	held, _, err := rs.store.Holds(ctx, HoldQuery{States: []string{holdHeld}, Limit: 10})
	if err != nil || len(held) != 3 {
		t.Fatalf("held %v %v", held, err)
	}
	// A form without the session's CSRF token changes nothing.
	if status, _, _ := ac.post(t, "/holds", url.Values{"action": {"approve-all"}}); status != http.StatusForbidden {
		t.Errorf("approve without CSRF: %d, want 403", status)
	}
	status, h, _ := ac.post(t, "/holds", url.Values{"csrf": {ac.csrf(t)}, "action": {"approve"}, "id": {fmt.Sprint(held[0].ID)}})
	if status != http.StatusSeeOther || h.Get("Location") != "/holds" {
		t.Fatalf("approve chosen: %d %s", status, h.Get("Location"))
	}
	_, _, body = ac.get(t, "/holds")
	if !strings.Contains(body, "1 change(s) approved") || strings.Contains(body, "disable page1@example.com") {
		t.Errorf("after approving one, the page shows the flash and no longer lists it")
	}
	ac.post(t, "/holds", url.Values{"csrf": {ac.csrf(t)}, "action": {"reject-all"}})
	if got := rs.apiActive(t, ids[3]); got != true {
		t.Errorf("API after reject-all: %v", got)
	}
	_, _, body = ac.get(t, "/holds")
	if !strings.Contains(body, "rejected: apps keep the previous state") {
		t.Error("rejected changes are not listed as drift")
	}
	entries, err := rs.store.ListLog(ctx, LogQuery{ResourceID: ids[1], Limit: 10})
	if err != nil || entries[0].Op != "approve held disable" || !strings.Contains(entries[0].Detail, "by admin") {
		t.Errorf("log of the approval: %+v %v", entries, err)
	}
	entries, _ = rs.store.ListLog(ctx, LogQuery{ResourceID: ids[2], Limit: 10})
	if len(entries) == 0 || entries[0].Op != "reject held disable" {
		t.Errorf("log of the rejection: %+v", entries)
	}
	// The user page shows the kept value and does not offer to revert it.
	_, _, body = ac.get(t, "/users/"+ids[2])
	if !strings.Contains(body, string(originHeld)) || !strings.Contains(body, "review on Holds") {
		t.Error("user page does not show the kept value")
	}
	status, _, _ = ac.post(t, "/users/"+ids[2], url.Values{"csrf": {ac.csrf(t)}, "action": {"revert"}, "field": {"active"}})
	if status != http.StatusConflict || rs.apiActive(t, ids[2]) != true {
		t.Errorf("revert of a kept value: %d", status)
	}
}

func TestProtectOnTheUserPage(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 100)
	ac := setUpAdmin(t, rs.testServer)
	id := rs.createUser(t, "svc@example.com")
	status, _, _ := ac.post(t, "/users/"+id, url.Values{"csrf": {ac.csrf(t)}, "action": {"protect"}})
	if status != http.StatusSeeOther {
		t.Fatalf("protect: %d", status)
	}
	rs.do(t, "DELETE", "/Users/"+id, nil)
	_, _, body := ac.get(t, "/users/"+id)
	for _, want := range []string{"Protected</strong> by admin", "delete svc@example.com", "refused: protected account", "deleted by the directory, kept for apps"} {
		if !strings.Contains(body, want) {
			t.Errorf("user page lacks %q", want)
		}
	}
	if got := rs.apiActive(t, id); got != true {
		t.Errorf("API: %v", got)
	}
}

func TestHoldSettingsForm(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	status, _, body := ac.post(t, "/settings/holds", url.Values{"csrf": {ac.csrf(t)}, "hold_on": {"on"}, "hold_percent": {"150"},
		"hold_minimum": {"25"}, "hold_window": {"60"}})
	if status != http.StatusBadRequest || !strings.Contains(body, "A percentage from 0 to 100") {
		t.Errorf("out of range: %d", status)
	}
	status, _, _ = ac.post(t, "/settings/holds", url.Values{"csrf": {ac.csrf(t)}, "hold_on": {"on"}, "hold_percent": {"5"},
		"hold_minimum": {"50"}, "hold_window": {"30"}})
	if status != http.StatusSeeOther {
		t.Fatalf("save: %d", status)
	}
	hs, err := ts.store.HoldSettings(context.Background())
	if want := (HoldSettings{Percent: 5, Minimum: 50, Window: 30 * time.Minute}); err != nil || hs != want {
		t.Errorf("settings %+v, want %+v", hs, want)
	}
}

// `scimbox holds` lists, approves and rejects on the server's database while it runs.
func TestHoldsCommand(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 1)
	ctx := context.Background()
	ids := usersNamed(t, rs, "cli", 4)
	for _, id := range ids {
		rs.disable(t, id)
	}
	// The requests' log entries are queued; in the file before the
	// command's own, so that the newest entry is the decision.
	if err := rs.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append([]string{"holds", args[0], "-db", rs.store.path}, args[1:]...), &out, io.Discard)
		return out.String(), err
	}
	out, err := cli("list")
	if err != nil || strings.Count(out, "held") != 3 || !strings.Contains(out, "disable cli1@example.com") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	held, _, _ := rs.store.Holds(ctx, HoldQuery{States: []string{holdHeld}, Limit: 10})
	for _, bad := range [][]string{{"approve"}, {"approve", "-all", "3"}, {"reject", "x"}, {"hold"}} {
		if _, err := cli(bad...); err == nil {
			t.Errorf("holds %v succeeded", bad)
		}
	}
	_, cursor := eventsSince(t, rs.store, 0)
	if out, err := cli("approve", fmt.Sprint(held[0].ID), fmt.Sprint(held[2].ID)); err != nil || !strings.Contains(out, "2 change(s) approved") {
		t.Fatalf("approve: %v %s", err, out)
	}
	got, _ := eventsSince(t, rs.store, cursor)
	if want := []string{evUserDisabled + " " + ids[1], evUserDisabled + " " + ids[3]}; !slices.Equal(got, want) {
		t.Errorf("approval from the command line released %q, want %q", got, want)
	}
	if out, err := cli("reject", "-all"); err != nil || !strings.Contains(out, "1 change(s) rejected") {
		t.Fatalf("reject: %v %s", err, out)
	}
	if out, _ := cli("list"); strings.Count(out, "rejected") != 1 || strings.Contains(out, "approved") {
		t.Errorf("list after the decisions:\n%s", out)
	}
	entries, _ := rs.store.ListLog(ctx, LogQuery{ResourceID: ids[2], Limit: 5})
	if len(entries) == 0 || entries[0].Op != "reject held disable" || !strings.Contains(entries[0].Detail, "from the command line") {
		t.Errorf("log: %+v", entries)
	}
}

// TestHeldMembershipRemovalsKeepRoles: roles come from the effective
// memberships, so a held removal takes no role until it is approved (and a
// rejected one never does), even when something else makes scimbox compute
// the user's roles again (a directory edit of the user). A held removal of a
// nested group keeps the role its members hold through it.
func TestHeldMembershipRemovalsKeepRoles(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 2)
	ctx := context.Background()
	ids := usersNamed(t, rs, "staff", 5)
	staff, contractors := rs.createGroup(t, "Staff"), rs.createGroup(t, "Contractors")
	addMembersByPatch(t, rs.testServer, contractors, ids[4])
	addMembersByPatch(t, rs.testServer, staff, append(ids[:4:4], contractors)...)
	mustRole(t, rs.store, "staff", RoleRule{GroupID: staff})
	mustRole(t, rs.store, "everyone", RoleRule{GroupID: staff, Nested: true})
	both, nested := []string{"everyone", "staff"}, []string{"everyone"}
	cursor := feedCursor(t, rs.store)

	remove := func(ids ...string) {
		t.Helper()
		var ops []map[string]any
		for _, id := range ids {
			ops = append(ops, map[string]any{"op": "Remove", "path": `members[value eq "` + id + `"]`})
		}
		if status, _, doc := rs.do(t, "PATCH", "/Groups/"+staff, patchBody(ops...)); status != http.StatusNoContent {
			t.Fatalf("remove members: %d %v", status, doc)
		}
	}
	// touch is a directory edit of a user, which computes its roles again.
	touch := func(id, name string) {
		t.Helper()
		if status, _, doc := rs.do(t, "PATCH", "/Users/"+id, patchBody(map[string]any{"op": "Replace", "path": "displayName", "value": name})); status != http.StatusOK {
			t.Fatalf("edit %s: %d %v", id, status, doc)
		}
	}
	checkRoles := func(step string, want map[string][]string) {
		t.Helper()
		for id, w := range want {
			if got := apiRoles(t, rs.testServer, rs.key, id); !slices.Equal(got, orEmpty(w)) {
				t.Errorf("%s: API roles of %s = %q, want %q", step, id, got, w)
			}
		}
	}

	// Two removals are within the threshold: they take the roles at once.
	remove(ids[0], ids[1])
	// byUser orders events as one change records them: in user id order.
	byUser := func(list ...roleEvent) []roleEvent {
		slices.SortFunc(list, func(a, b roleEvent) int { return strings.Compare(a.ID, b.ID) })
		return list
	}
	cursor = checkRoleEvents(t, rs.store, cursor, "removals within the threshold",
		byUser(roleEvent{ids[0], both, nil}, roleEvent{ids[1], both, nil})...)
	// The rest of the group (two users and the nested group) is held.
	remove(ids[2], ids[3], contractors)
	if n, _, _ := rs.store.HeldChanges(ctx); n != 3 {
		t.Fatalf("%d changes held, want 3", n)
	}
	if got := rs.memberIDsOfGroup(t, staff); len(got) != 0 {
		t.Errorf("SCIM members %v, want none", got)
	}
	for i, id := range ids[2:] {
		touch(id, fmt.Sprintf("Edited %d", i))
	}
	cursor = checkRoleEvents(t, rs.store, cursor, "held removals, then directory edits of the held users")
	held := map[string][]string{ids[2]: both, ids[3]: both, ids[4]: nested}
	checkRoles("held", held)

	holds, _, err := rs.store.Holds(ctx, HoldQuery{States: []string{holdHeld}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	byMember := map[string]int64{}
	for _, h := range holds {
		byMember[h.MemberID] = h.ID
	}
	if _, err := rs.store.ApproveHolds(ctx, []int64{byMember[ids[2]], byMember[contractors]}, false, "admin"); err != nil {
		t.Fatal(err)
	}
	cursor = checkRoleEvents(t, rs.store, cursor, "approved: a user's removal and the nested group's",
		byUser(roleEvent{ids[2], both, nil}, roleEvent{ids[4], nested, nil})...)
	checkRoles("approved", map[string][]string{ids[2]: nil, ids[3]: both, ids[4]: nil})

	if _, err := rs.store.RejectHolds(ctx, []int64{byMember[ids[3]]}, false, "admin"); err != nil {
		t.Fatal(err)
	}
	touch(ids[3], "Edited again")
	checkRoleEvents(t, rs.store, cursor, "rejected, then a directory edit")
	checkRoles("rejected", map[string][]string{ids[3]: both})
}

// TestDirectoryGroupDeleteCountsTowardsTheHold: a group delete by the
// directory removes all its memberships, and they count as membership
// removals in the mass-change window. The delete itself goes through (a
// group has no retained state, see README "Safety rails"), and the removals
// that follow in the window are held.
func TestDirectoryGroupDeleteCountsTowardsTheHold(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 2)
	ctx := context.Background()
	ids := usersNamed(t, rs, "burst", 5)
	doomed, other := rs.createGroup(t, "Doomed"), rs.createGroup(t, "Other")
	addMembersByPatch(t, rs.testServer, doomed, ids[:3]...)
	addMembersByPatch(t, rs.testServer, other, ids[3:]...)
	if status, _, doc := rs.do(t, "DELETE", "/Groups/"+doomed, nil); status != http.StatusNoContent {
		t.Fatalf("delete group: %d %v", status, doc)
	}
	if status, _ := apiGet(t, rs.testServer, rs.key, "/api/v1/groups/"+doomed); status != http.StatusNotFound {
		t.Errorf("API group after the delete: %d, want 404", status)
	}
	status, _, _ := rs.do(t, "PATCH", "/Groups/"+other, patchBody(map[string]any{"op": "Remove", "path": `members[value eq "` + ids[3] + `"]`}))
	if status != http.StatusNoContent {
		t.Fatal(status)
	}
	if n, _, _ := rs.store.HeldChanges(ctx); n != 1 {
		t.Errorf("%d changes held after a group delete of 3 memberships and one removal (threshold 2), want 1", n)
	}
	_, doc := apiGet(t, rs.testServer, rs.key, "/api/v1/groups/"+other+"/members")
	if got := len(doc["data"].([]any)); got != 2 {
		t.Errorf("API members of the other group: %d, want 2 (the removal held)", got)
	}
}

// TestDirectoryTotalsFollowEveryWrite: the totals the rails measure a burst
// against (directory users, memberships) are kept by triggers; after every
// kind of write — creations, member adds and removes, a held delete (the
// account retained), its approval, a group delete — they equal a count.
func TestDirectoryTotalsFollowEveryWrite(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 1)
	ctx := context.Background()
	check := func(step string) {
		t.Helper()
		for _, c := range []struct{ class, count string }{
			{classUsers, "SELECT count(*) FROM users WHERE kind = 'directory'"},
			{classMembers, "SELECT coalesce(sum(member_count), 0) FROM groups"},
		} {
			var want int
			if err := rs.store.r.QueryRowContext(ctx, c.count).Scan(&want); err != nil {
				t.Fatal(err)
			}
			if got, err := directoryTotal(ctx, rs.store.r, c.class); err != nil || got != want {
				t.Errorf("%s: %s total %d (%v), counted %d", step, c.class, got, err, want)
			}
		}
	}
	check("empty")
	ids := usersNamed(t, rs, "tot", 4)
	gid, other := rs.createGroup(t, "Staff"), rs.createGroup(t, "Other")
	addMembersByPatch(t, rs.testServer, gid, ids...)
	addMembersByPatch(t, rs.testServer, other, ids[:2]...)
	check("created")
	if status, _, _ := rs.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Remove", "path": "members",
		"value": []any{map[string]any{"value": ids[3]}}})); status != http.StatusNoContent && status != http.StatusOK {
		t.Fatal(status)
	}
	check("member removed")
	for _, id := range ids[:2] { // the second is held: retained for apps
		if status, _, _ := rs.do(t, "DELETE", "/Users/"+id, nil); status != http.StatusNoContent {
			t.Fatal(status)
		}
	}
	check("deleted, one held")
	if _, err := rs.store.ApproveHolds(ctx, nil, true, "admin"); err != nil {
		t.Fatal(err)
	}
	check("hold approved")
	if status, _, _ := rs.do(t, "DELETE", "/Groups/"+other, nil); status != http.StatusNoContent {
		t.Fatal(status)
	}
	check("group deleted")
}

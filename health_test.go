package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testClock is a settable clock safe to read from request goroutines.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

var probeCall = call{op: "list users", status: http.StatusOK, probe: true}

func TestCycleBoundariesByQuietTime(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	h := newHealth(clock.now)
	if snap := h.Snapshot(); snap.Current != nil || snap.Last != nil || snap.Risk.Level != RiskOK {
		t.Fatalf("before any call: %+v", snap)
	}
	start := clock.now()
	h.record(probeCall)
	clock.advance(time.Minute)
	h.record(call{op: "create user", status: http.StatusCreated, write: true})
	clock.advance(cycleGap - time.Second) // a long pause, but shorter than the gap
	h.record(call{op: "update user", status: http.StatusOK, write: true})

	snap := h.Snapshot()
	if len(snap.Recent) != 1 || snap.Current == nil || snap.Last != nil {
		t.Fatalf("one open cycle expected: recent %d, current %v, last %v", len(snap.Recent), snap.Current, snap.Last)
	}
	c := snap.Current
	if c.ID != 1 || c.Requests != 3 || c.Events != 2 || !c.Probe || c.FirstOp != "list users" || !c.Open {
		t.Errorf("cycle = %+v, want id 1, 3 requests, 2 events (the probe is no event), opened by the probe", c)
	}
	if got, want := c.FirstCall, start; !got.Equal(want) {
		t.Errorf("FirstCall = %v, want %v", got, want)
	}
	if got, want := c.Duration(), time.Minute+cycleGap-time.Second; got != want {
		t.Errorf("Duration = %v, want %v", got, want)
	}

	// Quiet for the gap: the cycle is over, and the next call opens another.
	clock.advance(cycleGap)
	snap = h.Snapshot()
	if snap.Current != nil || snap.Last == nil || snap.Last.ID != 1 || snap.Last.Open {
		t.Fatalf("after the gap: current %v, last %v; want no current and cycle 1 closed", snap.Current, snap.Last)
	}
	h.record(call{op: "update user", status: http.StatusOK, write: true})
	snap = h.Snapshot()
	if snap.Current == nil || snap.Current.ID != 2 || snap.Current.Probe || snap.Last == nil || snap.Last.ID != 1 {
		t.Fatalf("next cycle: current %+v, last %+v", snap.Current, snap.Last)
	}
	if got, want := snap.LastCall, clock.now(); !got.Equal(want) {
		t.Errorf("LastCall = %v, want %v", got, want)
	}
}

// causes builds a cycle's failure groups for assess.
func failing(kind string, n int, reference bool) Cause {
	return Cause{Kind: kind, Op: "create user", Status: http.StatusConflict, ScimType: "uniqueness", Reference: reference, Count: n}
}

func TestQuarantineArithmetic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		cycle      Cycle
		want       RiskLevel
		wantReason string
	}{
		{name: "no failures", cycle: Cycle{Requests: 100, Events: 60, FirstStatus: 200}, want: RiskOK},
		{name: "a few failures", cycle: Cycle{Requests: 100, Events: 60, Failures: 3, FirstStatus: 200,
			Causes: []Cause{failing("username-taken", 3, false)}}, want: RiskWatch, wantReason: "retries them"},
		{name: "above 40 % in a small cycle", cycle: Cycle{Requests: 30, Events: 29, Failures: 12, FirstStatus: 200},
			want: RiskWarning, wantReason: "once it reaches 5000 failures"},
		{name: "above 40 % but too few failures to matter", cycle: Cycle{Requests: 3, Events: 2, Failures: 1, FirstStatus: 200},
			want: RiskWatch},
		{name: "above 40 % from 5,000 failures", cycle: Cycle{Events: 10_000, Failures: 5_000, FirstStatus: 200},
			want: RiskQuarantine, wantReason: "above Entra's 40 %"},
		{name: "40 % exactly is not above it", cycle: Cycle{Events: 12_500, Failures: 5_000, FirstStatus: 200},
			want: RiskWarning, wantReason: "half-way to Entra's 40 %"},
		{name: "more than 40,000 failures at a low ratio", cycle: Cycle{Events: 1_000_000, Failures: 40_001, FirstStatus: 200},
			want: RiskQuarantine, wantReason: "above Entra's 40000"},
		{name: "half-way to 40,000", cycle: Cycle{Events: 1_000_000, Failures: 20_000, FirstStatus: 200},
			want: RiskWarning, wantReason: "half-way"},
		{name: "reference failures are counted apart", cycle: Cycle{Events: 10_000, Failures: 10, ReferenceFailures: 6_000, FirstStatus: 200},
			want: RiskWatch},
		{name: "but count towards the cap of 60,000", cycle: Cycle{Events: 1_000_000, Failures: 10, ReferenceFailures: 60_000, FirstStatus: 200},
			want: RiskQuarantine, wantReason: "cap of 60000"},
		{name: "the first call failed", cycle: Cycle{Requests: 1, Events: 1, Failures: 1, FirstOp: "list users", FirstStatus: 503},
			want: RiskQuarantine, wantReason: "first call (list users) failed with 503"},
		{name: "a refused token later in the cycle", cycle: Cycle{Requests: 50, Events: 40, Failures: 1, FirstStatus: 200,
			Causes: []Cause{{Kind: "credential", Op: "update user", Status: 401, Count: 1}}},
			want: RiskQuarantine, wantReason: "Secret Token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			risk := assess(&tc.cycle)
			if risk.Level != tc.want {
				t.Errorf("level = %s, want %s (reasons %q)", risk.Level, tc.want, risk.Reasons)
			}
			if tc.wantReason != "" && !strings.Contains(strings.Join(risk.Reasons, "\n"), tc.wantReason) {
				t.Errorf("reasons %q do not say %q", risk.Reasons, tc.wantReason)
			}
		})
	}
}

func TestCauseAdvice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    call
		want string // a substring of the advice
	}{
		{"refused token", call{op: "list users", status: 401}, "Connection page"},
		{"manual account", call{op: "create user", status: 409, scimType: "uniqueness",
			detail: `userName "a" belongs to an account created in the admin page; …`}, "claim existing accounts"},
		{"directory account", call{op: "create user", status: 409, scimType: "uniqueness", detail: `userName "a" is already taken`}, "matching attribute"},
		{"group name", call{op: "create group", status: 409, scimType: "uniqueness"}, "group names are unique"},
		{"gone", call{op: "update user", status: 404}, "restart provisioning"},
		{"invalid", call{op: "update user", status: 400, scimType: "invalidValue"}, "attribute mapping"},
		{"disk", call{op: "create user", status: 503}, "disk space"},
		{"internal", call{op: "create user", status: 500}, "server log"},
		{"timeout", call{op: "create user", status: statusClientClosed}, "overloaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := adviceFor(Cause{Kind: causeKind(tc.c), Op: tc.c.op, Status: tc.c.status, ScimType: tc.c.scimType, Count: 2})
			if !strings.Contains(a.Summary, tc.want) || !strings.HasPrefix(a.Summary, "2 "+tc.c.op+" requests failed") {
				t.Errorf("summary %q, want it to start with the count and op and say %q", a.Summary, tc.want)
			}
		})
	}
}

// healthReportOf reads /healthz?verbose, or GET /api/v1/health with an app key.
func healthReportOf(t testing.TB, ts *testServer, appKey string) healthReport {
	t.Helper()
	path := "/healthz?verbose"
	if appKey != "" {
		path = "/api/v1/health"
	}
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	if appKey != "" {
		req.Header.Set("Authorization", "Bearer "+appKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	var rep healthReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, raw)
	}
	return rep
}

// A replayed cycle in which 12 of 29 writes fail because the userNames belong
// to accounts created in the admin page: above Entra's 40 %, so a warning
// (not yet quarantine: Entra evaluates from 5,000 failures) that names the
// cause and what to do, on every surface.
func TestReplayedFailingCycleRaisesTheRisk(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	for i := range 12 {
		u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("manual%d@example.com", i)}, Kind: accountManual}
		if err := ts.store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if status, _, _ := ts.do(t, "GET", `/Users?filter=userName+eq+%22`+newID()+`%22`, nil); status != http.StatusOK {
		t.Fatalf("probe: %d", status)
	}
	for i := range 17 {
		ts.createUser(t, fmt.Sprintf("new%d@example.com", i))
	}
	for i := range 12 {
		if status, _, doc := ts.do(t, "POST", "/Users", newUserBody(fmt.Sprintf("manual%d@example.com", i))); status != http.StatusConflict {
			t.Fatalf("POST over a manual account: %d %v", status, doc)
		}
	}

	snap := ts.store.Health().Snapshot()
	c := snap.Current
	if c == nil || c.Requests != 30 || c.Events != 29 || c.Failures != 12 || !c.Probe {
		t.Fatalf("cycle = %+v, want 30 requests, 29 events, 12 failures, opened by the probe", c)
	}
	if snap.Risk.Level != RiskWarning {
		t.Errorf("risk = %s (%q), want warning", snap.Risk.Level, snap.Risk.Reasons)
	}
	wantSummary := `12 create user requests failed (409 uniqueness): the userName is taken by an account created in the admin page — turn on "claim existing accounts"`

	public := healthReportOf(t, ts, "")
	if public.Risk.Level != RiskWarning || len(public.Risk.Advice) != 1 || !strings.HasPrefix(public.Risk.Advice[0].Summary, wantSummary) {
		t.Fatalf("/healthz?verbose risk = %+v, want a warning whose advice starts %q", public.Risk, wantSummary)
	}
	if d := public.Risk.Advice[0].Detail + public.Current.Causes[0].Detail; d != "" {
		t.Errorf("/healthz?verbose shows a failure's detail (it names users) without a credential: %q", d)
	}

	key, _, err := ts.store.CreateAppKey(ctx, "monitor")
	if err != nil {
		t.Fatal(err)
	}
	api := healthReportOf(t, ts, key)
	if api.Risk.Level != RiskWarning || len(api.Risk.Advice) != 1 || !strings.Contains(api.Risk.Advice[0].Detail, "manual11@example.com") {
		t.Errorf("/api/v1/health advice = %+v, want the latest failure's detail", api.Risk.Advice)
	}
	// The history is written in the background, within a flush interval.
	deadline := time.Now().Add(5 * time.Second)
	for len(api.History) == 0 || api.History[0].Requests != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("/api/v1/health history = %+v, want the cycle with its 30 requests", api.History)
		}
		time.Sleep(50 * time.Millisecond)
		api = healthReportOf(t, ts, key)
	}

	ac := setUpAdmin(t, ts)
	_, _, page := ac.get(t, "/")
	for _, want := range []string{"quarantine risk: warning", "the userName is taken by an account created in the admin page",
		"claim existing accounts", "manual11@example.com"} {
		if !strings.Contains(page, strings.ReplaceAll(want, `"`, "&#34;")) {
			t.Errorf("the dashboard does not show %q", want)
		}
	}
}

// Entra quarantines a job at once when a cycle's first calls fail, whatever
// the counts: one failed call is enough to say so.
func TestCycleWhoseFirstCallFailsIsFlaggedAtOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		calls     func(t *testing.T, ts *testServer)
		want      RiskLevel
		wantCycle bool
		wantWhy   string
	}{
		{name: "probe with a revoked token", calls: func(t *testing.T, ts *testServer) {
			ctx := context.Background()
			revoked, tok, err := ts.store.CreateToken(ctx, "old")
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.store.RevokeToken(ctx, tok.ID); err != nil {
				t.Fatal(err)
			}
			old := *ts
			old.token = revoked
			if status, _, _ := old.do(t, "GET", `/Users?filter=userName+eq+%22`+newID()+`%22`, nil); status != 401 {
				t.Fatalf("probe with a revoked token: %d", status)
			}
		}, want: RiskQuarantine, wantCycle: true, wantWhy: "first call (list users) failed with 401"},
		{name: "first write of a cycle fails", calls: func(t *testing.T, ts *testServer) {
			ts.do(t, "PATCH", "/Users/"+newID(), patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
		}, want: RiskQuarantine, wantCycle: true, wantWhy: "first call (disable user) failed with 404"},
		{name: "a stranger's token opens no cycle", calls: func(t *testing.T, ts *testServer) {
			stranger := *ts
			stranger.token = "let-me-in"
			stranger.do(t, "GET", "/Users", nil)
		}, want: RiskOK},
		{name: "a failure after a good probe is retried, not quarantined", calls: func(t *testing.T, ts *testServer) {
			ts.do(t, "GET", `/Users?filter=userName+eq+%22`+newID()+`%22`, nil)
			ts.do(t, "PATCH", "/Users/"+newID(), patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
		}, want: RiskWatch, wantCycle: true, wantWhy: "retries them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t)
			tc.calls(t, ts)
			rep := healthReportOf(t, ts, "")
			if rep.Risk.Level != tc.want {
				t.Errorf("risk = %s (%q), want %s", rep.Risk.Level, rep.Risk.Reasons, tc.want)
			}
			if got := rep.Current != nil; got != tc.wantCycle {
				t.Errorf("a cycle in progress: %v, want %v", got, tc.wantCycle)
			}
			if !strings.Contains(strings.Join(rep.Risk.Reasons, "\n"), tc.wantWhy) {
				t.Errorf("reasons %q do not say %q", rep.Risk.Reasons, tc.wantWhy)
			}
		})
	}
}

// One unknown id in a member PATCH (or a POST of a group) no longer refuses
// the request: the known members are applied, the answer is a success, and
// the skipped id shows in the log, the cycle, the health report, the API and
// the group's page.
func TestUnknownMembersAreSkippedVisibly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ctx := context.Background()
	u1, u2 := ts.createUser(t, "m1@example.com"), ts.createUser(t, "m2@example.com")
	g := ts.createGroup(t, "Skippers")
	ref := func(id string) map[string]any { return map[string]any{"$ref": nil, "value": id} }
	status, _, doc := ts.do(t, "PATCH", "/Groups/"+g, patchBody(map[string]any{"op": "Add", "path": "members",
		"value": []any{ref(u1), ref("stale-1"), ref(u2)}}))
	if status != http.StatusNoContent {
		t.Fatalf("PATCH with an unknown member: %d %v", status, doc)
	}
	if got, want := ts.memberIDsOfGroup(t, g), sorted(u1, u2); !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v", got, want)
	}
	// A PATCH of only an unknown id changes nothing, yet is logged.
	if status, _, doc := ts.do(t, "PATCH", "/Groups/"+g, patchBody(map[string]any{"op": "Add", "path": "members",
		"value": []any{ref("stale-1")}})); status != http.StatusNoContent {
		t.Fatalf("PATCH with only an unknown member: %d %v", status, doc)
	}
	status, _, doc = ts.do(t, "POST", "/Groups", map[string]any{"displayName": "Created with a ghost",
		"members": []any{ref(u1), ref("stale-2")}})
	if status != http.StatusCreated {
		t.Fatalf("POST with an unknown member: %d %v", status, doc)
	}
	g2 := doc["id"].(string)
	if got, want := ts.memberIDsOfGroup(t, g2), []string{u1}; !slices.Equal(got, want) {
		t.Errorf("members of the new group = %v, want %v", got, want)
	}

	if err := ts.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	entries, err := ts.store.ListLog(ctx, LogQuery{ResourceID: g, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 || entries[0].Outcome != "success" || !strings.Contains(entries[0].Detail, "stale-1") ||
		!strings.Contains(entries[1].Detail, "stale-1") {
		t.Errorf("log of the group = %+v, want both PATCHes logged as successes naming stale-1", entries)
	}

	snap := ts.store.Health().Snapshot()
	if c := snap.Current; c == nil || c.SkippedMembers != 3 || c.Failures+c.ReferenceFailures != 0 {
		t.Errorf("cycle = %+v, want 3 skipped member ids and no failure (Entra saw successes)", c)
	}
	rep := healthReportOf(t, ts, "")
	if got := rep.SkippedMembers; got.IDs != 2 || got.Groups != 2 || len(got.Items) != 0 {
		t.Errorf("/healthz?verbose skippedMembers = %+v, want 2 ids in 2 groups and no list", got)
	}
	key, _, err := ts.store.CreateAppKey(ctx, "drift")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range healthReportOf(t, ts, key).SkippedMembers.Items {
		ids = append(ids, k.GroupName+"/"+k.MemberID+fmt.Sprint(k.Count))
	}
	slices.Sort(ids)
	if want := []string{"Created with a ghost/stale-21", "Skippers/stale-12"}; !slices.Equal(ids, want) {
		t.Errorf("/api/v1/health skipped items = %v, want %v", ids, want)
	}

	ac := setUpAdmin(t, ts)
	if _, _, page := ac.get(t, "/groups/"+g); !strings.Contains(page, "Skipped member ids") || !strings.Contains(page, "stale-1") {
		t.Errorf("the group's page does not list the skipped id:\n%s", page)
	}
}

// Cycles are persisted: a restart keeps the history, and a restart in the
// middle of a cycle continues it rather than opening one that "starts" with
// whatever comes next.
func TestCycleHistorySurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scimbox.db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := newTestClock()
	open := func() *Store {
		t.Helper()
		s, err := OpenStore(ctx, path, log)
		if err != nil {
			t.Fatal(err)
		}
		s.now = clock.now
		return s
	}
	s := open()
	s.Health().record(probeCall)
	s.Health().record(call{op: "create user", status: 409, scimType: "uniqueness", write: true, detail: "taken"})
	clock.advance(cycleGap + time.Minute)
	s.Health().record(probeCall)
	s.Health().record(call{op: "add members", status: 204, write: true, reference: true, skipped: 2})
	before := s.Health().Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open()
	defer s.Close()
	after := s.Health().Snapshot()
	if len(after.Recent) != 2 {
		t.Fatalf("after a restart: %d cycles, want 2", len(after.Recent))
	}
	for i := range before.Recent {
		b, a := before.Recent[i], after.Recent[i]
		if a.ID != b.ID || a.Requests != b.Requests || a.Events != b.Events || a.Failures != b.Failures ||
			a.SkippedMembers != b.SkippedMembers || !a.FirstCall.Equal(b.FirstCall) || !a.LastCall.Equal(b.LastCall) ||
			a.Probe != b.Probe || a.FirstOp != b.FirstOp || a.FirstStatus != b.FirstStatus || len(a.Causes) != len(b.Causes) {
			t.Errorf("cycle %d after a restart = %+v, want %+v", i, a, b)
		}
	}
	if c := after.Last.Causes; len(c) != 1 || c[0].Count != 1 || c[0].Kind != "username-taken" || c[0].Detail != "taken" {
		t.Errorf("causes after a restart = %+v", c)
	}
	// Still within the gap of cycle 2: the next call continues it.
	s.Health().record(call{op: "update user", status: 200, write: true})
	if c := s.Health().Snapshot().Current; c == nil || c.ID != 2 || c.Requests != 3 {
		t.Errorf("current after a restart mid-cycle = %+v, want cycle 2 continued", c)
	}
	clock.advance(cycleGap)
	s.Health().record(probeCall)
	if c := s.Health().Snapshot().Current; c == nil || c.ID != 3 {
		t.Errorf("current after the gap = %+v, want a new cycle 3", c)
	}
}

// The database keeps the latest cycleHistory cycles, and none is lost when
// more cycles than the tracker keeps in memory pass between two writes.
func TestCycleHistoryIsBounded(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	h := newHealth(clock.now)
	for range recentCycleCount + 5 {
		h.record(probeCall)
		clock.advance(cycleGap)
	}
	if got, want := len(h.takeDirty()), recentCycleCount+5; got != want {
		t.Errorf("cycles to write = %d, want %d", got, want)
	}
	if got := h.takeDirty(); len(got) != 0 {
		t.Errorf("cycles to write again = %d, want 0", len(got))
	}

	s := newTestStore(t)
	var cycles []Cycle
	for i := range cycleHistory + 5 {
		cycles = append(cycles, Cycle{ID: int64(i + 1), FirstCall: clock.now(), LastCall: clock.now()})
	}
	if err := s.saveCycles(context.Background(), cycles); err != nil {
		t.Fatal(err)
	}
	kept, err := s.RecentCycles(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != cycleHistory || kept[0].ID != cycleHistory+5 || kept[len(kept)-1].ID != 6 {
		t.Errorf("kept %d cycles, %d to %d; want the latest %d, newest first", len(kept), kept[0].ID, kept[len(kept)-1].ID, cycleHistory)
	}
}

// A failed change of a group's members or of a user's manager is a
// reference failure, which Entra counts apart from the 40 % and 40,000.
func TestReferenceFailuresAreCountedApart(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ts.do(t, "GET", `/Users?filter=userName+eq+%22`+newID()+`%22`, nil)
	missing := newID()
	for _, tc := range []struct {
		path string
		op   map[string]any
	}{
		{"/Users/" + missing, map[string]any{"op": "Replace", "path": enterpriseSchema + ":manager", "value": newID()}},
		{"/Users/" + missing, map[string]any{"op": "Add", "path": "manager", "value": map[string]any{"value": newID()}}},
		{"/Groups/" + missing, map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": newID()}}}},
		{"/Groups/" + missing, map[string]any{"op": "Remove", "path": `members[value eq "` + newID() + `"]`}},
		{"/Users/" + missing, map[string]any{"op": "Replace", "path": "title", "value": "Boss"}}, // not a reference
	} {
		if status, _, doc := ts.do(t, "PATCH", tc.path, patchBody(tc.op)); status != http.StatusNotFound {
			t.Fatalf("PATCH %s %v: %d %v", tc.path, tc.op, status, doc)
		}
	}
	c := ts.store.Health().Snapshot().Current
	if c == nil || c.ReferenceFailures != 4 || c.Failures != 1 {
		t.Fatalf("cycle = %+v, want 4 reference failures and 1 other", c)
	}
	var ops []string
	for _, cause := range c.Causes {
		ops = append(ops, fmt.Sprintf("%s %v %d", cause.Op, cause.Reference, cause.Count))
	}
	slices.Sort(ops)
	if want := []string{"add members true 1", "remove members true 1", "update manager true 2", "update user false 1"}; !slices.Equal(ops, want) {
		t.Errorf("causes = %q, want %q", ops, want)
	}
}

func TestIsManagerPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"manager": true, "Manager.Value": true, enterpriseSchema + ":manager": true, enterpriseSchema + ":manager.value": true,
		`manager[value eq "x"]`: true, "title": false, enterpriseSchema + ":department": false, "managerName": false, "": false,
	} {
		if got := isManagerPath(path); got != want {
			t.Errorf("isManagerPath(%q) = %v, want %v", path, got, want)
		}
	}
}

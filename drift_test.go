package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// ageDirectoryWrite pretends the directory last wrote the user at t.
func ageDirectoryWrite(t *testing.T, s *Store, id string, at time.Time) {
	t.Helper()
	if _, err := s.w.ExecContext(context.Background(), "UPDATE users SET directory_written = ? WHERE id = ?", formatTime(at), id); err != nil {
		t.Fatal(err)
	}
}

// TestDriftReport walks each section of the drift report through the page
// and both exports: users the directory has not written since the chosen
// date (a SCIM write counts, an admin's edit does not; manual accounts are
// never listed), membership removals held, changes kept against the
// directory, and members skipped for an unknown id. A value that a
// spreadsheet would run as a formula is neutralised in the CSV.
func TestDriftReport(t *testing.T) {
	t.Parallel()
	rs := newRailsServer(t, 1)
	ctx := context.Background()
	s := rs.store
	ac := setUpAdmin(t, rs.testServer)
	now := time.Now().UTC()

	formula := "=HYPERLINK(\"https://evil.example\")@example.com"
	stale, evil, retouched, fresh := rs.createUser(t, "stale@example.com"), rs.createUser(t, formula),
		rs.createUser(t, "retouched@example.com"), rs.createUser(t, "fresh@example.com")
	for _, id := range []string{stale, evil, retouched} {
		ageDirectoryWrite(t, s, id, now.AddDate(0, 0, -60))
	}
	// The directory writes one of them again; an admin edits another: not the directory.
	if status, _, doc := rs.do(t, "PATCH", "/Users/"+retouched, patchBody(map[string]any{"op": "Replace", "path": "displayName", "value": "Back"})); status != http.StatusOK {
		t.Fatalf("PATCH: %d %v", status, doc)
	}
	if _, err := s.UpdateUser(ctx, stale, func(u *User) error {
		u.Overrides = map[string]Override{"displayName": {Value: "Edited here", By: "admin", At: now}}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	manual := &User{Kind: accountManual, Attrs: map[string]any{"userName": "manual@example.com"}}
	if err := s.CreateUser(ctx, manual); err != nil {
		t.Fatal(err)
	}
	ageDirectoryWrite(t, s, manual.ID, now.AddDate(0, 0, -60))

	// Three removals with a threshold of one: two are held; one of them is rejected.
	gid := rs.createGroup(t, "Team")
	addMembersByPatch(t, rs.testServer, gid, stale, retouched, fresh)
	if status, _, _ := rs.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Remove", "path": "members"})); status != http.StatusNoContent {
		t.Fatal(status)
	}
	held, _, err := s.HeldMemberships(ctx, 10)
	if err != nil || len(held) != 2 {
		t.Fatalf("held memberships %v, %v; want 2", held, err)
	}
	if _, err := s.RejectHolds(ctx, []int64{held[0].ID}, false, "admin"); err != nil {
		t.Fatal(err)
	}
	// Entra names a member by an id scimbox does not know, one a spreadsheet would run.
	ghost := "=1+2"
	if status, _, doc := rs.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members",
		"value": []any{map[string]any{"value": ghost}}})); status != http.StatusNoContent {
		t.Fatalf("PATCH with an unknown member: %d %v", status, doc)
	}

	t.Run("store", func(t *testing.T) {
		r, err := driftReport(ctx, s, now.AddDate(0, 0, -defaultDriftDays), 100)
		if err != nil {
			t.Fatal(err)
		}
		var untouched []string
		for _, u := range r.Untouched {
			untouched = append(untouched, u.ID)
		}
		if want := sorted(stale, evil); !slices.Equal(sorted(untouched...), want) || r.UntouchedTotal != 2 {
			t.Errorf("untouched %v (total %d), want %v", untouched, r.UntouchedTotal, want)
		}
		if len(r.HeldMemberships) != 1 || r.HeldMemberships[0].ID != held[1].ID || r.HeldMembershipsTotal != 1 {
			t.Errorf("held memberships %+v, want hold %d", r.HeldMemberships, held[1].ID)
		}
		if len(r.Rejected) != 1 || r.Rejected[0].ID != held[0].ID || r.RejectedTotal != 1 {
			t.Errorf("rejected %+v, want hold %d", r.Rejected, held[0].ID)
		}
		if len(r.Skipped) != 1 || r.Skipped[0].MemberID != ghost || r.SkippedTotal != 1 {
			t.Errorf("skipped %+v, want %q", r.Skipped, ghost)
		}
		// Further back than any write: nobody is untouched.
		if r, err := driftReport(ctx, s, now.AddDate(0, 0, -90), 100); err != nil || r.UntouchedTotal != 0 {
			t.Errorf("untouched since 90 days: %d, %v; want 0", r.UntouchedTotal, err)
		}
	})

	t.Run("page", func(t *testing.T) {
		status, _, body := ac.get(t, "/drift")
		if status != http.StatusOK {
			t.Fatalf("GET /drift: %d\n%s", status, body)
		}
		for _, want := range []string{"stale@example.com", "HYPERLINK", held[1].What(), held[0].What(), "rejected: apps keep the previous state", ghost,
			`value="` + now.AddDate(0, 0, -defaultDriftDays).Format(driftDateLayout) + `"`} {
			if !strings.Contains(body, want) && !strings.Contains(body, strings.ReplaceAll(html.EscapeString(want), "+", "&#43;")) {
				t.Errorf("the drift page does not show %q", want)
			}
		}
		for _, absent := range []string{"manual@example.com"} {
			if strings.Contains(body, absent) {
				t.Errorf("the drift page lists %q", absent)
			}
		}
		back := now.AddDate(0, 0, -90).Format(driftDateLayout)
		if status, _, body := ac.get(t, "/drift?since="+back); status != http.StatusOK ||
			!strings.Contains(body, "Not written by the directory since "+back+` <span class="muted">0</span>`) {
			t.Errorf("GET /drift 90 days back: %d, does not say 0 untouched users\n%s", status, body)
		}
		if status, _, _ := ac.get(t, "/drift?since=yesterday"); status != http.StatusBadRequest {
			t.Errorf("GET /drift with a bad date: %d, want 400", status)
		}
		for _, page := range []string{"/users", "/"} {
			if _, _, body := ac.get(t, page); !strings.Contains(body, `href="/drift"`) {
				t.Errorf("%s does not link the drift report", page)
			}
		}
	})

	t.Run("csv", func(t *testing.T) {
		status, hdr, body := ac.get(t, "/drift/drift.csv")
		if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
			t.Fatalf("GET /drift/drift.csv: %d %s\n%s", status, hdr.Get("Content-Type"), body)
		}
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rows[0], driftColumns) {
			t.Errorf("header %q", rows[0])
		}
		bySection := map[string][][]string{}
		for _, row := range rows[1:] {
			bySection[row[0]] = append(bySection[row[0]], row)
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
					t.Errorf("a cell a spreadsheet would run: %q", cell)
				}
			}
		}
		if got := len(bySection[driftUntouched]); got != 2 {
			t.Errorf("%d untouched rows, want 2", got)
		}
		names := []string{bySection[driftUntouched][0][2], bySection[driftUntouched][1][2]}
		if !slices.Contains(names, "'"+formula) {
			t.Errorf("untouched names %q: the formula is not neutralised", names)
		}
		if got := bySection[driftSkipped]; len(got) != 1 || got[0][1] != "'"+ghost {
			t.Errorf("skipped rows %q, want the id %q neutralised", got, ghost)
		}
		for _, sec := range []string{driftHeldMembership, driftRejected} {
			if got := len(bySection[sec]); got != 1 {
				t.Errorf("%d rows of %q, want 1", got, sec)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		status, hdr, body := ac.get(t, "/drift/drift.json?since="+url.QueryEscape(now.AddDate(0, 0, -defaultDriftDays).Format(driftDateLayout)))
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /drift/drift.json: %d %s\n%s", status, hdr.Get("Content-Type"), body)
		}
		var doc struct {
			Untouched       []DriftUser     `json:"untouchedUsers"`
			HeldMemberships []driftHold     `json:"heldMemberships"`
			Rejected        []driftHold     `json:"rejected"`
			Skipped         []SkippedMember `json:"skippedMembers"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		if len(doc.Untouched) != 2 || len(doc.HeldMemberships) != 1 || len(doc.Rejected) != 1 || len(doc.Skipped) != 1 {
			t.Errorf("JSON sections: %d untouched, %d held, %d rejected, %d skipped; want 2, 1, 1, 1\n%s",
				len(doc.Untouched), len(doc.HeldMemberships), len(doc.Rejected), len(doc.Skipped), body)
		}
		if doc.Rejected[0].State != holdRejected || doc.Skipped[0].MemberID != ghost {
			t.Errorf("JSON rejected %+v, skipped %+v", doc.Rejected, doc.Skipped)
		}
		if status, _, _ := ac.get(t, "/drift/drift.xml"); status != http.StatusNotFound {
			t.Errorf("GET /drift/drift.xml: %d, want 404", status)
		}
	})
}

// TestDriftQueryPlan keeps the untouched users' query on its partial index.
func TestDriftQueryPlan(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	plan, err := s.queryPlan(context.Background(), untouchedUsersSQL, formatTime(time.Now()), 10)
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "users_directory_written") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("plan:\n%s", p)
	}
}

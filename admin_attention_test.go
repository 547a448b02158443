package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAttentionItems(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	token := func(created, used time.Time) []Token { return []Token{{ID: "t1", Created: created, LastUsed: used}} }
	const gb = 1 << 30
	roomy := healthFacts{DiskFree: 50 * gb, DiskTotal: 100 * gb, DatabaseSize: 1 << 20}
	with := func(change func(*healthFacts)) healthFacts {
		f := roomy
		f.Now = now
		change(&f)
		return f
	}
	tests := []struct {
		name     string
		facts    healthFacts
		want     string // a phrase of the only item; "" for no item
		wantHref string
	}{
		{"healthy", with(func(f *healthFacts) { f.LastCall = now.Add(-30 * time.Minute) }), "", ""},
		{"quiet for less than two cycles", with(func(f *healthFacts) {
			f.LastCall = now.Add(-79 * time.Minute)
			f.Tokens = token(now.Add(-48*time.Hour), time.Time{})
		}), "", ""},
		{"quiet for more than two cycles", with(func(f *healthFacts) {
			f.LastCall = now.Add(-3 * time.Hour)
			f.Tokens = token(now.Add(-48*time.Hour), now.Add(-3*time.Hour))
		}), "The directory last called 3 h ago", "/connection"},
		{"a token used recently though the tracker saw nothing", with(func(f *healthFacts) {
			f.Tokens = token(now.Add(-48*time.Hour), now.Add(-10*time.Minute))
		}), "", ""},
		{"quiet, but no token: nothing is connected", with(func(f *healthFacts) { f.LastCall = now.Add(-3 * time.Hour) }), "", ""},
		{"never called, token made long ago", with(func(f *healthFacts) { f.Tokens = token(now.Add(-2*time.Hour), time.Time{}) }),
			"The directory has never called", "/connection"},
		{"never called, token just made", with(func(f *healthFacts) { f.Tokens = token(now.Add(-10*time.Minute), time.Time{}) }), "", ""},
		{"failures Entra retries", with(func(f *healthFacts) {
			f.Risk = Risk{Level: RiskWatch, Reasons: []string{"3 of the cycle's 40 events failed"}}
		}), "Failed requests: 3 of the cycle's 40 events failed", "/#health"},
		{"quarantine risk", with(func(f *healthFacts) {
			f.Risk = Risk{Level: RiskQuarantine, Reasons: []string{"the cycle's first call failed"}}
		}), "Quarantine risk quarantine: the cycle's first call failed", "/#health"},
		{"a disabled webhook", with(func(f *healthFacts) {
			f.DisabledWebhooks = []Webhook{{ID: "wh_1", URL: "https://hooks.example.com/x", DisabledReason: "disabled after 20 failed attempts"}}
		}), "The webhook https://hooks.example.com/x is disabled", "/apps#webhook-wh_1"},
		{"two disabled webhooks", with(func(f *healthFacts) {
			f.DisabledWebhooks = []Webhook{{ID: "wh_1", DisabledReason: "x"}, {ID: "wh_2", DisabledReason: "y"}}
		}), "2 webhooks are disabled", "/apps#webhooks"},
		{"a failed certificate renewal", with(func(f *healthFacts) { f.CertFailure = errors.New("rate limited") }),
			"The HTTPS certificate could not be renewed: rate limited", ""},
		{"a failed snapshot", with(func(f *healthFacts) {
			f.Snapshot = &SnapshotFailure{At: now.Add(-2 * time.Hour), Err: errors.New("snapshot: disk I/O error")}
		}), "The automatic snapshot failed 2 h ago: snapshot: disk I/O error", "/settings#backups"},
		{"a small disk nearly full", with(func(f *healthFacts) { f.DiskFree, f.DiskTotal = 500<<20, 10*gb }),
			"nearly full: 500.0 MB free of 10.0 GB", "/settings#backups"},
		{"a large disk with a few percent free", with(func(f *healthFacts) { f.DiskFree, f.DiskTotal = 30*gb, 1000*gb }), "", ""},
		{"no room for a copy of the database", with(func(f *healthFacts) { f.DiskFree, f.DiskTotal, f.DatabaseSize = 3*gb, 10*gb, 2*gb }),
			"nearly full: 3.0 GB free", "/settings#backups"},
		{"disk unknown", with(func(f *healthFacts) { f.DiskFree, f.DiskTotal = 0, 0 }), "", ""},
		{"database file lost", with(func(f *healthFacts) { f.DatabaseLost = ErrDatabaseLost }), "removed or replaced", "/settings#backups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := attentionItems(tt.facts)
			if tt.want == "" {
				if len(got) != 0 {
					t.Fatalf("items %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("items %+v, want one", got)
			}
			if !strings.Contains(got[0].Text, tt.want) || got[0].Href != tt.wantHref {
				t.Errorf("item %+v, want text with %q and link %q", got[0], tt.want, tt.wantHref)
			}
			if got[0].Href != "" && got[0].Action == "" {
				t.Errorf("item %+v links without a link text", got[0])
			}
		})
	}
}

// TestHealthLineOnEveryPage forces conditions through the real state they
// come from (a webhook disabled by its failures, a snapshot that failed,
// failing SCIM requests) and looks for the line on every kind of admin page,
// and for its absence on anonymous pages.
func TestHealthLineOnEveryPage(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ctx := context.Background()
	line := func(path string) string {
		t.Helper()
		_, _, body := ac.get(t, path)
		start := strings.Index(body, `<aside class="attention"`)
		if start < 0 {
			return ""
		}
		return body[start : start+strings.Index(body[start:], "</aside>")]
	}
	if l := line("/"); l != "" {
		t.Fatalf("a healthy server shows a health line: %s", l)
	}

	hook, err := ts.store.CreateWebhook(ctx, "https://hooks.example.com/scimbox", []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.QueueTestEvent(ctx, hook.ID); err != nil {
		t.Fatal(err)
	}
	d, err := ts.store.NextDelivery(ctx, hook.ID)
	if err != nil || d == nil {
		t.Fatalf("no delivery queued: %v", err)
	}
	if err := ts.store.RecordAttempt(ctx, hook.ID, d, DeliveryAttempt{Error: "connection refused"}, false, time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/users", "/groups", "/log", "/apps", "/settings", "/connection", "/users/no-such-user"} {
		if l := line(path); !strings.Contains(l, "https://hooks.example.com/scimbox is disabled") || !strings.Contains(l, `href="/apps#webhook-`+hook.ID+`"`) {
			t.Errorf("%s: health line %q, want the disabled webhook with a link to it", path, l)
		}
	}
	if _, _, body := ac.get(t, "/apps"); !strings.Contains(body, `id="webhook-`+hook.ID+`"`) {
		t.Error("the health line links to a webhook the Apps page has no anchor for")
	}
	anon := newAdminClient(t, ts)
	if _, _, body := anon.get(t, "/login"); strings.Contains(body, "attention") {
		t.Error("the login page shows the health line to an anonymous visitor")
	}

	// A snapshot fails (a file stands where the backups folder goes), then succeeds.
	backups := filepath.Join(filepath.Dir(ts.store.path), backupDir)
	if err := os.WriteFile(backups, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.takeSnapshot(ctx, 1); err == nil {
		t.Fatal("the snapshot succeeded with a file in the way of its folder")
	}
	if l := line("/users"); !strings.Contains(l, "The automatic snapshot failed") || !strings.Contains(l, `href="/settings#backups"`) {
		t.Errorf("after a failed snapshot the health line is %q", l)
	}
	if err := os.Remove(backups); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.takeSnapshot(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if l := line("/users"); strings.Contains(l, "snapshot") {
		t.Errorf("after a successful snapshot the health line still says %q", l)
	}

	// A failing directory request in a cycle that started well puts the risk on the line.
	ts.do(t, "GET", "/Users?filter="+url.QueryEscape(`userName eq "probe"`), nil)
	ts.do(t, "PATCH", "/Users/no-such-user", patchBody(map[string]any{"op": "Replace", "path": "active", "value": false}))
	if l := line("/settings"); !strings.Contains(l, "Failed requests:") || !strings.Contains(l, `href="/#health"`) {
		t.Errorf("after a failed SCIM request the health line is %q", l)
	}
	if status, _, _ := ac.get(t, "/"); status != http.StatusOK {
		t.Errorf("dashboard: %d", status)
	}
}

package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser for the end-to-end test. In CI a missing
// browser is a failure, never a skip: .ci/run installs Debian's chromium.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on this machine; .ci/run must install it (apt-get install chromium)")
	}
	t.Skip("no chromium on this machine: apt-get install chromium")
	return ""
}

// TestAdminInBrowser drives the admin page in real headless Chromium: first-run
// setup, a Secret Token used against SCIM, provisioned data shown inert,
// revocation, and screenshots of every page at laptop and phone widths
// (saved under $SCIMBOX_SCREENSHOTS when set).
func TestAdminInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	ts := newTestServer(t)
	shots := os.Getenv("SCIMBOX_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	// Not t.TempDir: Chromium's helper processes may still write to their
	// profile while the test's cleanup runs, which would fail the test.
	profile, err := os.MkdirTemp("", "scimbox-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	// Any alert() is injected script running; confirm() is the revoke button's question.
	var mu sync.Mutex
	var alerts []string
	chromedp.ListenTarget(ctx, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			if d.Type == page.DialogTypeAlert {
				mu.Lock()
				alerts = append(alerts, d.Message)
				mu.Unlock()
			}
			go chromedp.Run(ctx, page.HandleJavaScriptDialog(true))
		}
	})

	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			var loc, body string
			dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
			defer dcancel()
			chromedp.Run(dctx, chromedp.Location(&loc), chromedp.Text("body", &body))
			t.Fatalf("%s: %v (page %s: %.300q)", what, err, loc, body)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		for _, size := range []struct {
			label string
			w, h  int64
		}{{"laptop", 1280, 900}, {"phone", 390, 844}} {
			var buf []byte
			run("screenshot "+name,
				chromedp.EmulateViewport(size.w, size.h),
				chromedp.FullScreenshot(&buf, 100))
			if err := os.WriteFile(filepath.Join(shots, name+"-"+size.label+".png"), buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		run("reset viewport", chromedp.EmulateViewport(1280, 900))
	}

	// First run: the setup link creates the admin and logs in.
	code, err := ts.store.NewSetupCode(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run("open setup", chromedp.Navigate(ts.URL+"/setup?code="+code), chromedp.WaitVisible(`input[name=password]`, chromedp.ByQuery))
	screenshot("setup")
	run("set up admin",
		chromedp.SendKeys(`input[name=password]`, testPassword, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, testPassword, chromedp.ByQuery),
		chromedp.Click(`form.stack button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tenant-url`, chromedp.ByQuery))

	// Generate a Secret Token and read it from the page, as an admin would copy it.
	var token, tenantURL string
	run("generate token",
		chromedp.Value(`#tenant-url`, &tenantURL, chromedp.ByQuery),
		chromedp.Click(`form[action="/connection/tokens"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#new-token`, chromedp.ByQuery),
		chromedp.Value(`#new-token`, &token, chromedp.ByQuery))
	screenshot("connection-new-token")
	if !strings.HasPrefix(token, "scimbox_") || tenantURL != ts.URL+"/scim/v2" {
		t.Fatalf("token %q, tenant URL %q", token, tenantURL)
	}

	// The directory provisions a user with markup in it, and a group.
	scim := &testServer{Server: ts.Server, store: ts.store, token: token}
	body := newUserBody("mallory@example.com")
	body["displayName"] = `<script>alert("xss")</script>Mallory`
	body["title"] = `<img src=x onerror=alert("img")>`
	status, _, user := scim.do(t, "POST", "/Users", body)
	if status != http.StatusCreated {
		t.Fatalf("provision user: %d %v", status, user)
	}
	gid := scim.createGroup(t, "Sales <b>team</b>")
	scim.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": user["id"]}}}))
	scim.do(t, "PATCH", "/Users/nope", patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	if err := ts.store.FlushLog(context.Background()); err != nil {
		t.Fatal(err)
	}

	var text string
	run("users list", chromedp.Navigate(ts.URL+"/users"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, `<script>alert("xss")</script>Mallory`) || !strings.Contains(text, "Sales <b>team</b>") {
		t.Errorf("users page does not show the provisioned user as text: %q", text)
	}
	screenshot("users")
	run("user detail", chromedp.Click(`table a`, chromedp.ByQuery), chromedp.WaitVisible(`dl.attrs`, chromedp.ByQuery), chromedp.Text(`dl.attrs`, &text, chromedp.ByQuery))
	if !strings.Contains(text, `<img src=x onerror=alert("img")>`) {
		t.Errorf("user detail does not show the title as text: %q", text)
	}
	screenshot("user")
	run("groups", chromedp.Navigate(ts.URL+"/groups"), chromedp.WaitVisible(`table`, chromedp.ByQuery))
	screenshot("groups")
	run("group detail", chromedp.Navigate(ts.URL+"/groups/"+gid), chromedp.WaitVisible(`ul.members`, chromedp.ByQuery))
	screenshot("group")
	run("log", chromedp.Navigate(ts.URL+"/log"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "add members") || !strings.Contains(text, "failure") {
		t.Errorf("log page: %q", text)
	}
	screenshot("log")
	run("dashboard", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(`.stats`, chromedp.ByQuery))
	screenshot("dashboard")
	run("settings", chromedp.Navigate(ts.URL+"/settings"), chromedp.WaitVisible(`form`, chromedp.ByQuery))
	screenshot("settings")

	// Revoke the token in the page; SCIM refuses it from then on.
	tokenID, _ := parseToken(token)
	revoke := `form[action="/connection/tokens/` + tokenID + `/revoke"]`
	run("revoke", chromedp.Navigate(ts.URL+"/connection"), chromedp.WaitVisible(`#tenant-url`, chromedp.ByQuery),
		chromedp.Click(revoke+` button`, chromedp.ByQuery), chromedp.WaitNotPresent(revoke, chromedp.ByQuery))
	screenshot("connection")
	if status, _, _ := scim.do(t, "GET", "/Users", nil); status != http.StatusUnauthorized {
		t.Errorf("SCIM after revoking in the browser: %d, want 401", status)
	}

	// Source of truth: let local edits win for the job title, then edit two fields locally.
	userID := user["id"].(string)
	run("policy", chromedp.Navigate(ts.URL+"/settings"), chromedp.WaitVisible(`select[name="source:title"]`, chromedp.ByQuery),
		chromedp.SetValue(`select[name="source:title"]`, "local", chromedp.ByQuery),
		chromedp.Click(`form[action="/settings/policy"] p button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.notice`, chromedp.ByQuery))
	screenshot("settings-policy")
	run("local edits", chromedp.Navigate(ts.URL+"/users/"+userID), chromedp.WaitVisible(`#edit-displayName`, chromedp.ByQuery),
		chromedp.SetValue(`#edit-displayName input[name=value]`, "Mallory (local)", chromedp.ByQuery),
		chromedp.Click(`button[form="edit-displayName"]`, chromedp.ByQuery),
		chromedp.WaitReady(`.inline-form input[name=field][value=displayName]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#edit-title`, chromedp.ByQuery),
		chromedp.SetValue(`#edit-title input[name=value]`, "Chief Local Officer", chromedp.ByQuery),
		chromedp.Click(`button[form="edit-title"]`, chromedp.ByQuery),
		chromedp.WaitReady(`.inline-form input[name=field][value=title]`, chromedp.ByQuery),
		chromedp.Text(`table.fields`, &text, chromedp.ByQuery))
	var title string
	run("read title", chromedp.Value(`#edit-title input[name=value]`, &title, chromedp.ByQuery))
	if title != "Chief Local Officer" || !strings.Contains(text, "local override") {
		t.Errorf("user page after local edits: title %q, fields %q", title, text)
	}
	screenshot("user-overrides")
	run("list shows the override", chromedp.Navigate(ts.URL+"/users"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "Mallory (local)") {
		t.Errorf("users list does not show the local display name: %q", text)
	}

	// Disconnect, then the account is manual and every field editable.
	run("disconnect", chromedp.Navigate(ts.URL+"/connection"), chromedp.WaitVisible(`input[name=confirm]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, "DISCONNECT", chromedp.ByQuery),
		chromedp.Click(`form[action="/connection/disconnect"] button`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`form[action$="/revoke"]`, chromedp.ByQuery))
	run("manual account", chromedp.Navigate(ts.URL+"/users/"+userID), chromedp.WaitVisible(`#edit-userName`, chromedp.ByQuery),
		chromedp.SetValue(`#edit-userName input[name=value]`, "mallory@local.example", chromedp.ByQuery),
		chromedp.Click(`button[form="edit-userName"]`, chromedp.ByQuery),
		chromedp.WaitReady(`input[name=value][value="mallory@local.example"]`, chromedp.ByQuery),
		chromedp.Text(`h1`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "manual account") {
		t.Errorf("after disconnect the account is not manual: %q", text)
	}
	if u, err := ts.store.UserByID(context.Background(), userID); err != nil || stringAttr(u.Attrs, "userName") != "mallory@local.example" {
		t.Errorf("editing the manual account: %v", err)
	}
	screenshot("user-manual")

	// Log out and see the login page.
	run("log out", chromedp.Click(`.logout button`, chromedp.ByQuery), chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	screenshot("login")

	mu.Lock()
	defer mu.Unlock()
	if len(alerts) > 0 {
		t.Errorf("directory data ran as script: alerts %q", alerts)
	}
	t.Logf("screenshots in %s", shots)
}

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
	"github.com/chromedp/cdproto/runtime"
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

// viewports are the widths every page is checked and photographed at.
var viewports = []struct {
	label string
	w, h  int64
}{{"laptop", 1366, 768}, {"phone", 390, 844}}

// overflowScript lists what scrolls sideways: the document, and every element
// whose content is wider than its box (scrollWidth > clientWidth).
const overflowScript = `(() => {
  const out = [];
  const de = document.documentElement;
  if (de.scrollWidth > de.clientWidth) out.push("the document: " + de.scrollWidth + " > " + de.clientWidth);
  for (const el of document.querySelectorAll("body *")) {
    if (el.scrollWidth > el.clientWidth) {
      out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (el.className && el.className.baseVal === undefined ? "." + el.className.trim().replace(/\s+/g, ".") : "") +
        " «" + (el.textContent || "").trim().slice(0, 40) + "»: " + el.scrollWidth + " > " + el.clientWidth);
    }
  }
  return out;
})()`

// TestAdminInBrowser drives the admin page in real headless Chromium as an
// admin would: first-run setup, a Secret Token used against SCIM (once, even
// after a reload), provisioned data shown inert, disabled users marked,
// search, the one-form user editor with its history, the charts, revocation
// and disconnect. Every page is checked at laptop and phone widths for
// anything scrolling sideways, and photographed (under $SCIMBOX_SCREENSHOTS
// when set).
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
		chromedp.UserDataDir(profile), chromedp.WindowSize(int(viewports[0].w), int(viewports[0].h)))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 180*time.Second)
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
	axe := axeSource(t)
	// check looks at the page at both widths: nothing may scroll sideways and
	// axe-core may find no serious or critical violation; then photographs it.
	check := func(name string) {
		t.Helper()
		for _, size := range viewports {
			var overflow []string
			var buf []byte
			run("check "+name+" at "+size.label,
				chromedp.EmulateViewport(size.w, size.h),
				chromedp.Evaluate(overflowScript, &overflow),
				chromedp.FullScreenshot(&buf, 100))
			for _, o := range overflow {
				t.Errorf("%s at %d px: scrolls sideways: %s", name, size.w, o)
			}
			if err := os.WriteFile(filepath.Join(shots, name+"-"+size.label+".png"), buf, 0o644); err != nil {
				t.Fatal(err)
			}
			if axe != "" && size.label == "laptop" {
				for _, v := range axeViolations(t, ctx, axe) {
					t.Errorf("%s: accessibility: %s", name, v)
				}
			}
		}
		run("reset viewport", chromedp.EmulateViewport(viewports[0].w, viewports[0].h))
	}
	var text, loc string
	// noNavigation fails when an anonymous page looks logged in.
	noNavigation := func(name string) {
		t.Helper()
		var nav bool
		run(name+" navigation", chromedp.Evaluate(`!!document.querySelector("header nav, .logout")`, &nav))
		if nav {
			t.Errorf("%s shows the navigation and a Log out button to an anonymous visitor", name)
		}
	}

	// First run: the setup link creates the admin and logs in.
	code, err := ts.store.NewSetupCode(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	run("open setup", chromedp.Navigate(ts.URL+"/setup?code="+code), chromedp.WaitVisible(`input[name=password]`, chromedp.ByQuery))
	noNavigation("setup")
	check("setup")
	run("set up admin",
		chromedp.SendKeys(`input[name=password]`, testPassword, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, testPassword, chromedp.ByQuery),
		chromedp.Click(`form.stack button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tenant-url`, chromedp.ByQuery))

	// Generate a Secret Token and read it from the page, as an admin would copy it.
	var token, tenantURL string
	run("generate token",
		chromedp.Text(`#tenant-url`, &tenantURL, chromedp.ByQuery),
		chromedp.Click(`form[action="/connection/tokens"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#new-token`, chromedp.ByQuery),
		chromedp.Text(`#new-token`, &token, chromedp.ByQuery),
		chromedp.Location(&loc))
	check("connection-new-token")
	if !strings.HasPrefix(token, "scimbox_") || tenantURL != ts.URL+"/scim/v2" {
		t.Fatalf("token %q, tenant URL %q", token, tenantURL)
	}
	if loc != ts.URL+"/connection" {
		t.Errorf("after generating a token the browser is at %s, want the Connection page (redirect after POST)", loc)
	}
	// A reload neither shows the token again nor makes another.
	var shown bool
	run("reload", chromedp.Reload(), chromedp.WaitVisible(`#tenant-url`, chromedp.ByQuery),
		chromedp.Evaluate(`!!document.getElementById("new-token")`, &shown))
	if tokens, _ := ts.store.Tokens(context.Background()); shown || len(tokens) != 2 {
		t.Errorf("after a reload: token shown again %v, %d tokens (want 2: the test server's and this one)", shown, len(tokens))
	}

	// The directory provisions users (one with markup in it, one disabled, one with a manager) and a group.
	scim := &testServer{Server: ts.Server, store: ts.store, token: token}
	body := newUserBody("mallory@example.com")
	body["displayName"] = `<script>alert("xss")</script>Mallory`
	body["title"] = `<img src=x onerror=alert("img")>`
	status, _, user := scim.do(t, "POST", "/Users", body)
	if status != http.StatusCreated {
		t.Fatalf("provision user: %d %v", status, user)
	}
	userID := user["id"].(string)
	alice := newUserBody("alice.johnson.with.a.very.long.address@subsidiary.example.com")
	alice["displayName"] = "Alice Johnson"
	alice["name"] = map[string]any{"givenName": "Alice", "familyName": "Johnson"}
	alice[enterpriseSchema] = map[string]any{"manager": map[string]any{"value": userID}, "department": "Research and Development"}
	scim.do(t, "POST", "/Users", alice)
	dave := newUserBody("dave@example.com")
	dave["active"] = false
	scim.do(t, "POST", "/Users", dave)
	gid := scim.createGroup(t, "Sales <b>team</b>")
	scim.do(t, "PATCH", "/Groups/"+gid, patchBody(map[string]any{"op": "Add", "path": "members", "value": []any{map[string]any{"value": userID}}}))
	scim.do(t, "PATCH", "/Users/"+userID, patchBody(map[string]any{"op": "Replace", "path": "title", "value": "Chief <b>Executive</b>"}))
	scim.do(t, "PATCH", "/Users/nope", patchBody(map[string]any{"op": "Replace", "path": "active", "value": "False"}))
	if err := ts.store.FlushLog(context.Background()); err != nil {
		t.Fatal(err)
	}

	run("users list", chromedp.Navigate(ts.URL+"/users"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, `<script>alert("xss")</script>Mallory`) || !strings.Contains(text, "Sales <b>team</b>") {
		t.Errorf("users page does not show the provisioned user as text: %q", text)
	}
	var daveStatus string
	run("disabled user", chromedp.Text(`//tr[td[normalize-space()="dave@example.com"]]/td[@data-label="Active"]`, &daveStatus, chromedp.BySearch))
	if daveStatus != "disabled" {
		t.Errorf("the disabled user is shown as %q on the Users list", daveStatus)
	}
	check("users")
	// The results page is the one whose search box the server filled in (the
	// typed value is a property, not the attribute): Alice is on the list
	// before the search too, so waiting for her alone could read the old page.
	run("search", chromedp.SendKeys(`input[name=q]`, "johnson\n", chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=q][value="johnson"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//td[contains(., "Alice Johnson")]`, chromedp.BySearch), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if strings.Contains(text, "dave@example.com") {
		t.Errorf("searching johnson lists other users: %q", text)
	}
	check("users-search")
	run("user detail", chromedp.Navigate(ts.URL+"/users/"+userID), chromedp.WaitVisible(`dl.attrs`, chromedp.ByQuery), chromedp.Text(`dl.attrs`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "Chief <b>Executive</b>") {
		t.Errorf("user detail does not show the title as text: %q", text)
	}
	run("user history", chromedp.Text(`table.log`, &text, chromedp.ByQuery))
	if !strings.Contains(text, `<img src=x onerror=alert("img")> → Chief <b>Executive</b>`) {
		t.Errorf("user history does not show the title change as text: %q", text)
	}
	check("user")

	// One form, one Save: edit the display name and switch the account off locally.
	run("edit in the one form",
		chromedp.SetValue(`#f-displayName`, "Mallory (local)", chromedp.ByID),
		chromedp.Click(`.form-actions button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.notice`, chromedp.ByQuery),
		chromedp.Text(`p.notice`, &text, chromedp.ByQuery))
	if text != "Saved: Display name." {
		t.Errorf("feedback after Save: %q", text)
	}
	var history string
	run("history after save", chromedp.Text(`table.log`, &history, chromedp.ByQuery))
	if !strings.Contains(history, "local edit") || !strings.Contains(history, "Mallory (local)") {
		t.Errorf("History right after Save does not show the edit: %q", history)
	}
	check("user-overrides")
	run("list shows the override", chromedp.Navigate(ts.URL+"/users"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "Mallory (local)") {
		t.Errorf("users list does not show the local display name: %q", text)
	}
	run("user with a manager", chromedp.Navigate(ts.URL+"/users"), chromedp.Click(`//a[contains(., "Alice Johnson")]`, chromedp.BySearch),
		chromedp.WaitVisible(`dl.attrs`, chromedp.ByQuery), chromedp.Text(`.field-row:has(#l-urn\:ietf\:params\:scim\:schemas\:extension\:enterprise\:2\.0\:User\:manager) a`, &text, chromedp.ByQuery))
	if text != "Mallory (local)" && text != `<script>alert("xss")</script>Mallory` {
		t.Errorf("the manager is shown as %q, want the manager's name", text)
	}
	check("user-with-manager")
	run("new user form", chromedp.Navigate(ts.URL+"/users/new"), chromedp.WaitVisible(`input[name=userName]`, chromedp.ByQuery))
	check("newuser")
	run("groups", chromedp.Navigate(ts.URL+"/groups"), chromedp.WaitVisible(`table`, chromedp.ByQuery))
	check("groups")
	run("group detail", chromedp.Navigate(ts.URL+"/groups/"+gid), chromedp.WaitVisible(`ul.members`, chromedp.ByQuery))
	check("group")
	run("log", chromedp.Navigate(ts.URL+"/log"), chromedp.WaitVisible(`table`, chromedp.ByQuery), chromedp.Text(`table`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "add members") || !strings.Contains(text, "failure") || !strings.Contains(text, "Members added (1)") {
		t.Errorf("log page: %q", text)
	}
	check("log")
	run("log failures", chromedp.Navigate(ts.URL+"/log?outcome=failure"), chromedp.WaitVisible(`table`, chromedp.ByQuery))
	check("log-failures")
	run("dashboard", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(`.stats`, chromedp.ByQuery))
	var charts int
	run("charts", chromedp.Evaluate(`document.querySelectorAll("svg.chart").length`, &charts))
	if charts < 3 {
		t.Errorf("the dashboard has %d charts, want 3", charts)
	}
	check("dashboard")
	run("apps", chromedp.Navigate(ts.URL+"/apps"), chromedp.WaitVisible(`form[action="/apps/keys"]`, chromedp.ByQuery),
		chromedp.Click(`form[action="/apps/keys"] button`, chromedp.ByQuery), chromedp.WaitVisible(`#new-key`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=url]`, "https://intranet.example.com/hooks/scimbox", chromedp.ByQuery),
		chromedp.Click(`form[action="/apps/webhooks"] button`, chromedp.ByQuery), chromedp.WaitVisible(`details.secret`, chromedp.ByQuery))
	check("apps")

	// The endpoint fails its deliveries and is disabled: the health line says so on every page, with a link to it.
	hooks, err := ts.store.Webhooks(context.Background())
	if err != nil || len(hooks) != 1 {
		t.Fatalf("webhooks: %v %v", hooks, err)
	}
	if err := ts.store.QueueTestEvent(context.Background(), hooks[0].ID); err != nil {
		t.Fatal(err)
	}
	if d, err := ts.store.NextDelivery(context.Background(), hooks[0].ID); err != nil || d == nil {
		t.Fatalf("no delivery: %v", err)
	} else if err := ts.store.RecordAttempt(context.Background(), hooks[0].ID, d, DeliveryAttempt{Error: "connection refused"}, false, time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	var href string
	run("settings", chromedp.Navigate(ts.URL+"/settings"), chromedp.WaitVisible(`form`, chromedp.ByQuery),
		chromedp.Text(`aside.attention`, &text, chromedp.ByQuery),
		chromedp.AttributeValue(`//aside[@class="attention"]//li[contains(., "webhook")]/a`, "href", &href, nil, chromedp.BySearch))
	if !strings.Contains(text, "The webhook https://intranet.example.com/hooks/scimbox is disabled") || href != "/apps#webhook-"+hooks[0].ID {
		t.Errorf("health line %q, link %q", text, href)
	}
	check("settings")
	run("preset asks first", chromedp.Click(`//form[input[@name="preset"][@value="local"]]/button`, chromedp.BySearch),
		chromedp.WaitVisible(`.confirm`, chromedp.ByQuery), chromedp.Text(`.confirm`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "Job title: Directory wins → Local edit wins") {
		t.Errorf("the preset confirmation does not list what changes: %q", text)
	}
	check("settings-preset-confirm")
	run("preset applied", chromedp.Click(`.confirm button`, chromedp.ByQuery), chromedp.WaitVisible(`p.notice`, chromedp.ByQuery))
	run("roles", chromedp.Navigate(ts.URL+"/settings"), chromedp.Click(`a[href="/settings/roles"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=name]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=name]`, "Sales <i>lead</i>", chromedp.ByQuery),
		chromedp.Click(`//form[input[@value="create"]]//button`, chromedp.BySearch), chromedp.WaitVisible(`p.notice`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=group]`, "Sales <b>team</b>", chromedp.ByQuery),
		chromedp.Click(`//form[input[@value="add-group-rule"]]//button`, chromedp.BySearch), chromedp.WaitVisible(`ul.rules`, chromedp.ByQuery),
		chromedp.Text(`p.notice`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "1 user gained it") {
		t.Errorf("the roles page after adding a group rule says %q", text)
	}
	check("roles")
	run("drift", chromedp.Navigate(ts.URL+"/users"), chromedp.Click(`a[href="/drift"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=since]`, chromedp.ByQuery), chromedp.Text(`main`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "Members skipped: id unknown") {
		t.Errorf("the drift page says %q", text)
	}
	check("drift")
	run("not found", chromedp.Navigate(ts.URL+"/users/no-such-user"), chromedp.WaitVisible(`h1`, chromedp.ByQuery))
	check("not-found")

	// Revoke the token in the page; SCIM refuses it from then on.
	tokenID, _ := parseToken(token)
	revoke := `form[action="/connection/tokens/` + tokenID + `/revoke"]`
	run("revoke", chromedp.Navigate(ts.URL+"/connection"), chromedp.WaitVisible(`#tenant-url`, chromedp.ByQuery),
		chromedp.Click(revoke+` button`, chromedp.ByQuery), chromedp.WaitNotPresent(revoke, chromedp.ByQuery))
	check("connection")
	if status, _, _ := scim.do(t, "GET", "/Users", nil); status != http.StatusUnauthorized {
		t.Errorf("SCIM after revoking in the browser: %d, want 401", status)
	}

	// Disconnect: a page says what happened; then the account is manual and every field editable.
	run("disconnect", chromedp.Navigate(ts.URL+"/connection"), chromedp.WaitVisible(`input[name=confirm]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name=confirm]`, "DISCONNECT", chromedp.ByQuery),
		chromedp.Click(`form[action="/connection/disconnect"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`.confirm`, chromedp.ByQuery), chromedp.Text(`.confirm`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "3 directory accounts that become manual accounts") {
		t.Errorf("disconnect preview: %q", text)
	}
	check("disconnect-preview")
	run("disconnected", chromedp.Click(`.confirm button`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h1[contains(., "Disconnected")]`, chromedp.BySearch), chromedp.Text(`main`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "3 accounts the directory managed are now manual") {
		t.Errorf("disconnect confirmation: %q", text)
	}
	check("disconnected")
	run("manual account", chromedp.Navigate(ts.URL+"/users/"+userID), chromedp.WaitVisible(`#f-userName`, chromedp.ByID),
		chromedp.SetValue(`#f-userName`, "mallory@local.example", chromedp.ByID),
		chromedp.Click(`.form-actions button`, chromedp.ByQuery),
		chromedp.WaitVisible(`p.notice`, chromedp.ByQuery),
		chromedp.Text(`h1`, &text, chromedp.ByQuery))
	if !strings.Contains(text, "manual account") {
		t.Errorf("after disconnect the account is not manual: %q", text)
	}
	if u, err := ts.store.UserByID(context.Background(), userID); err != nil || stringAttr(u.Attrs, "userName") != "mallory@local.example" {
		t.Errorf("editing the manual account: %v", err)
	}
	check("user-manual")

	// Log out, see the login page, fail to log in: still no navigation.
	run("log out", chromedp.Click(`.logout button`, chromedp.ByQuery), chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	noNavigation("login")
	check("login")
	run("failed login", chromedp.SendKeys(`input[name=username]`, "mallory", chromedp.ByQuery),
		chromedp.SendKeys(`input[name=password]`, "wrong password", chromedp.ByQuery),
		chromedp.Click(`form.stack button`, chromedp.ByQuery), chromedp.WaitVisible(`p.alert`, chromedp.ByQuery))
	noNavigation("failed login")
	check("login-failed")

	mu.Lock()
	defer mu.Unlock()
	if len(alerts) > 0 {
		t.Errorf("directory data ran as script: alerts %q", alerts)
	}
	t.Logf("screenshots in %s", shots)
}

// axeSource reads axe-core from node_modules (installed by .ci/axe.sh), or
// returns "" and logs that the accessibility check is skipped.
func axeSource(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SCIMBOX_AXE")
	if dir == "" {
		dir = filepath.Join(".ci", "node_modules", "axe-core")
	}
	src, err := os.ReadFile(filepath.Join(dir, "axe.min.js"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("axe-core is missing (%v); .ci/axe.sh installs it", err)
		}
		t.Logf("accessibility check skipped: %v (run .ci/axe.sh)", err)
		return ""
	}
	return string(src)
}

// axeViolations injects axe-core into the page (through the DevTools
// protocol, so the page's CSP stays as it is) and returns its serious and
// critical violations.
func axeViolations(t *testing.T, ctx context.Context, src string) []string {
	t.Helper()
	var out []string
	err := chromedp.Run(ctx, chromedp.Evaluate(src, nil), chromedp.Evaluate(`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical")
			.map(v => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ")))`,
		&out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if err != nil {
		t.Fatalf("axe: %v", err)
	}
	return out
}

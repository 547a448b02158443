package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestSSOInBrowser signs in once through the real OpenID Provider in
// headless Chromium: the login page's button, the provider, the callback's
// page (a meta refresh, not a redirect) and the admin page with the
// person's session. Both servers listen on 127.0.0.1, which a browser counts
// as one site, so this does not show the cross-site return Entra makes.
func TestSSOInBrowser(t *testing.T) {
	bin := chromiumPath(t)
	ss, idp, _ := newSSOFixture(t)
	idp.signAs.Store(new("u-admin"))
	profile, err := os.MkdirTemp("", "scimbox-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(profile)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(profile))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	var logout, loc string
	err = chromedp.Run(ctx,
		chromedp.Navigate(ss.URL+"/users"), // to the login page, which remembers where to go next
		chromedp.Click(`a[href^="/sso/start"]`, chromedp.NodeVisible),
		chromedp.WaitVisible(`form.logout button`),
		chromedp.Text(`form.logout button`, &logout),
		chromedp.Location(&loc))
	if err != nil {
		t.Fatalf("sign-in in the browser: %v", err)
	}
	if !strings.Contains(logout, "adam@contoso.example") || loc != ss.URL+"/users" {
		t.Errorf("after sign-in: at %s, %q", loc, logout)
	}
}

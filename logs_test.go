package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, in, want string }{
		{"host only", "https://hooks.example", "https://hooks.example"},
		{"root", "https://hooks.example/", "https://hooks.example"},
		{"secret path", "https://hooks.example/T000/B000/XXXXsecret", "https://hooks.example/…"},
		{"secret query", "https://hooks.example?token=secret", "https://hooks.example/…"},
		{"user info", "https://user:secret@hooks.example:8443/", "https://hooks.example:8443"},
		{"fragment", "http://hooks.example/#secret", "http://hooks.example/…"},
		{"not a URL", "%%secret", "(an unreadable URL)"},
		{"no host", "/hooks/secret", "(an unreadable URL)"},
	} {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("%s: redactURL(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// TestSecretsStayOutOfLogs captures everything scimbox logs while the setup
// link is announced, webhooks are registered and deliveries fail (an error
// status, a refused connection): the setup code, the secret parts of the
// webhook URLs and the signing secrets never appear in it.
func TestSecretsStayOutOfLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logs := &tlsLog{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := OpenStore(ctx, filepath.Join(t.TempDir(), "scimbox.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := &server{store: store, log: logger}
	hs := httptest.NewServer(srv.handler())
	t.Cleanup(hs.Close)
	ts := &testServer{Server: hs, store: store}

	var stdout bytes.Buffer
	if err := srv.announceSetup(ctx, hs.URL, &stdout); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`/setup\?code=(\S+)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("the setup link is not on standard output:\n%s", stdout.String())
	}
	code := m[1]
	ac := newAdminClient(t, ts)
	if status, _, body := ac.post(t, "/setup", url.Values{"code": {code}, "username": {"admin"}, "password": {testPassword}, "confirm": {testPassword}}); status != http.StatusSeeOther {
		t.Fatalf("setup with the printed link: %d\n%s", status, body)
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	secrets := []string{code, "PathSecret1", "QuerySecret2", "PathSecret3", "QuerySecret4", "UserSecret5"}
	for _, target := range []string{
		failing.URL + "/hooks/PathSecret1?token=QuerySecret2",
		fmt.Sprintf("http://127.0.0.1:%d/hooks/PathSecret3?sig=QuerySecret4", closedPort(t)),
		fmt.Sprintf("http://hook:UserSecret5@127.0.0.1:%d/", closedPort(t)),
	} {
		if status, _, body := ac.post(t, "/apps/webhooks", url.Values{"url": {target}, "csrf": {ac.csrf(t)}}); status != http.StatusSeeOther {
			t.Fatalf("register webhook %s: %d\n%s", target, status, body)
		}
	}
	hooks, err := store.Webhooks(ctx)
	if err != nil || len(hooks) != 3 {
		t.Fatalf("webhooks: %v %v", hooks, err)
	}
	for _, h := range hooks {
		secrets = append(secrets, h.Secret, strings.TrimPrefix(h.Secret, "whsec_"))
	}
	stUser(t, store, "alice@example.com")
	newWebhookSender(store, logger).deliverDue(ctx)

	out := logs.String()
	if got := strings.Count(out, "webhook delivery failed"); got != 3 {
		t.Errorf("%d failed deliveries logged, want 3:\n%s", got, out)
	}
	for _, want := range []string{"webhook registered", failing.URL + "/…", "/setup"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log does not say %q:\n%s", want, out)
		}
	}
	for _, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains the secret %q:\n%s", secret, out)
		}
	}
}

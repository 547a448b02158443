package main

import (
	"net/http"
	"net/url"
	"testing"
)

// TestSafeNext keeps the post-login redirect on this site: only a host-less,
// scheme-less absolute path survives, whatever a browser would make of the rest.
func TestSafeNext(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, next, want string
	}{
		{"empty", "", "/"},
		{"root", "/", "/"},
		{"page", "/groups", "/groups"},
		{"page with query", "/users?q=a%20b&page=2", "/users?q=a%20b&page=2"},
		{"page with fragment", "/log#top", "/log#top"},
		{"relative", "groups", "/"},
		{"protocol-relative", "//evil.example", "/"},
		{"protocol-relative with path", "//evil.example/x", "/"},
		{"backslash", "/\\evil.example", "/"},
		{"backslashes", "\\\\evil.example", "/"},
		{"encoded tab then slash", "/%09/evil.example", "/"},
		{"tab then slash", "/\t/evil.example", "/"},
		{"newline then slash", "/\n/evil.example", "/"},
		{"carriage return", "/\r/evil.example", "/"},
		{"NUL", "/\x00/evil.example", "/"},
		{"leading tab", "\t//evil.example", "/"},
		{"leading space", " //evil.example", "/"},
		{"tab alone", "\t", "/"},
		{"encoded slash", "/%2F/evil.example", "/"},
		{"encoded slash lower case", "/%2f/evil.example", "/"},
		{"encoded backslash", "/%5C/evil.example", "/"},
		{"encoded slash and backslash", "/%2F%5Cevil.example", "/"},
		{"scheme", "https://evil.example", "/"},
		{"scheme without slashes", "https:evil.example", "/"},
		{"javascript", "javascript:alert(1)", "/"},
		{"javascript after slash", "/javascript:alert(1)", "/javascript:alert(1)"},
		{"userinfo", "//user@evil.example", "/"},
		{"unicode line separator", "/\u2028/evil.example", "/"},
		{"bad escape", "/%zz", "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := safeNext(tt.next); got != tt.want {
				t.Errorf("safeNext(%q) = %q, want %q", tt.next, got, tt.want)
			}
		})
	}
}

// TestLoginRedirectStaysOnSite logs in with next values that browsers turn
// into another site, and checks the Location that goes out.
func TestLoginRedirectStaysOnSite(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	setUpAdmin(t, ts)
	for _, next := range []string{"/\t/evil.example", "/%09/evil.example", "/%2F/evil.example", "https:evil.example"} {
		status, h, _ := newAdminClient(t, ts).post(t, "/login", url.Values{"username": {"admin"}, "password": {testPassword}, "next": {next}})
		if status != http.StatusSeeOther || h.Get("Location") != "/" {
			t.Errorf("next=%q: %d Location %q, want 303 to /", next, status, h.Get("Location"))
		}
	}
}

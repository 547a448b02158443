package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestDownloadsOutliveTheWriteTimeout: exports and backup downloads are not
// bound by the server's WriteTimeout (here as short as can be, so any write
// after it fails), which every other page is.
func TestDownloadsOutliveTheWriteTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ts.createUser(t, "exported@example.com")
	csrf := ac.csrf(t)

	strict := httptest.NewUnstartedServer(ts.Config.Handler)
	strict.Config.WriteTimeout = time.Nanosecond
	strict.Start()
	defer strict.Close()
	get := func(path string) (*http.Response, error) { return ac.c.Get(strict.URL + path) }
	post := func(path string, form url.Values) (*http.Response, error) {
		req, _ := http.NewRequest("POST", strict.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", strict.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return ac.c.Do(req)
	}
	tests := []struct {
		name     string
		do       func() (*http.Response, error)
		download bool
		want     string // in the body
	}{
		{"users.csv", func() (*http.Response, error) { return get("/export/users.csv") }, true, "exported@example.com"},
		{"users.json", func() (*http.Response, error) { return get("/export/users.json") }, true, "exported@example.com"},
		{"groups.json", func() (*http.Response, error) { return get("/export/groups.json") }, true, "["},
		{"backup", func() (*http.Response, error) { return post("/settings/backup", url.Values{"csrf": {csrf}}) }, true, "SQLite format 3"},
		{"a page", func() (*http.Response, error) { return get("/users") }, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.do()
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			switch {
			case !tt.download && err == nil:
				t.Errorf("a page was answered after the WriteTimeout: %d", resp.StatusCode)
			case tt.download && err != nil:
				t.Errorf("download cut off by the WriteTimeout: %v", err)
			case tt.download && (resp.StatusCode != 200 || !bytes.Contains(body, []byte(tt.want))):
				t.Errorf("download: %d, %d bytes without %q", resp.StatusCode, len(body), tt.want)
			}
		})
	}
}

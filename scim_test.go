package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// testServer is a scimbox served through httptest with a real database and token.
type testServer struct {
	*httptest.Server
	store *Store
	token string
}

// newTestServer starts a server on a fresh database and creates a token for it.
func newTestServer(t testing.TB) *testServer {
	t.Helper()
	store := newTestStore(t)
	tok, _, err := store.CreateToken(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler())
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, store: store, token: tok}
}

// do sends a SCIM request (body marshalled to JSON unless it is a string) and
// returns the status, headers and decoded JSON body (nil when empty).
func (ts *testServer) do(t testing.TB, method, path string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.URL+"/scim/v2"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s: response is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return resp.StatusCode, resp.Header, doc
}

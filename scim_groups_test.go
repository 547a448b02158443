package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// stManyUsers stores n users in one transaction (CreateUser commits, and
// fsyncs, once per user) and returns their ids. Display names vary: some
// need JSON escaping, some are missing (the member's display is then the
// userName), some are shared, so that name order and escaping are exercised.
func stManyUsers(t testing.TB, s *Store, prefix string, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		for i := range n {
			attrs := map[string]any{"userName": fmt.Sprintf("%s-%05d@example.com", prefix, i)}
			switch i % 5 {
			case 0:
				attrs["displayName"] = fmt.Sprintf("R&D <%d> \"quoted\" \\ é", i%37)
			case 1:
				attrs["displayName"] = "Same Name"
			case 2:
				attrs["displayName"] = fmt.Sprintf("user %d", n-i)
			}
			u := &User{ID: newID(), Attrs: attrs, Created: now, Modified: now, Version: 1}
			if err := putUser(ctx, tx, u, true); err != nil {
				return err
			}
			ids[i] = u.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// oldGroupResponse is the response of the in-memory path: the group with
// all its members read into a list, projected and written by writeResource.
func oldGroupResponse(t *testing.T, ts *testServer, id, query string) []byte {
	t.Helper()
	req := httptest.NewRequest("GET", ts.URL+scimBase+"/Groups/"+id+query, nil)
	p, err := projectionOf(req)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ts.store.GroupByID(req.Context(), id, !p.excludes("members"))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := writeResource(rec, req, http.StatusOK, g.doc(baseURL(req)), g.Version); err != nil {
		t.Fatal(err)
	}
	return rec.Body.Bytes()
}

// rawGet sends a GET with the test token and returns the response, body unread.
func rawGet(t *testing.T, ts *testServer, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestGroupGetStreamed: a group of 5,000 members (five batches and a bit,
// users and a group, names that need escaping) is streamed byte for byte as
// the in-memory path renders it, under every projection; members that are
// not wanted are not read.
func TestGroupGetStreamed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ids := stManyUsers(t, ts.store, "m", 4_999)
	sub := stGroup(t, ts.store, "A subgroup & co")
	big := stGroup(t, ts.store, "Big <group>", append(ids, sub.ID)...)
	empty := stGroup(t, ts.store, "Empty")
	var reads atomic.Int64
	ts.store.memberReadHook = func() error { reads.Add(1); return nil }

	batches := int64(5_000/memberBatch + 1) // the last one finds nothing more
	for _, tc := range []struct {
		name, group, query string
		reads              int64 // member reads by the streamed path
	}{
		{"whole", big.ID, "", batches},
		{"attributes=members", big.ID, "?attributes=members", batches},
		{"attributes with members", big.ID, "?attributes=displayName,members,externalId", batches},
		{"core URN path", big.ID, "?attributes=urn:ietf:params:scim:schemas:core:2.0:Group:members", batches},
		{"excluded other", big.ID, "?excludedAttributes=displayName,meta", batches},
		{"excludedAttributes=members", big.ID, "?excludedAttributes=members", 0},
		{"excluded Members, any case", big.ID, "?excludedAttributes=Members", 0},
		{"attributes without members", big.ID, "?attributes=displayName", 0},
		{"sub-attribute (in memory)", big.ID, "?attributes=members.value", 1},
		{"filtered members (in memory)", big.ID, "?excludedAttributes=" + url.QueryEscape(`members[type eq "Group"]`), 1},
		{"empty group", empty.ID, "", 1},
		{"empty group, attributes=members", empty.ID, "?attributes=members", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads.Store(0)
			resp := rawGet(t, ts, scimBase+"/Groups/"+tc.group+tc.query)
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, read error %v: %.300s", resp.StatusCode, err, got)
			}
			if n := reads.Load(); n != tc.reads {
				t.Errorf("member reads = %d, want %d", n, tc.reads)
			}
			if got, want := resp.Header.Get("ETag"), `W/"1"`; got != want {
				t.Errorf("ETag = %q, want %q", got, want)
			}
			if got, want := resp.Header.Get("Content-Type"), scimContentType; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if want := oldGroupResponse(t, ts, tc.group, tc.query); string(got) != string(want) {
				t.Errorf("body differs from the in-memory rendering (%d vs %d bytes)\ngot  %.400s\nwant %.400s", len(got), len(want), got, want)
			}
		})
	}
}

// TestGroupGetNotModifiedReadsNoMembers: If-None-Match with the current
// version answers 304 before any member is read.
func TestGroupGetNotModifiedReadsNoMembers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	g := stGroup(t, ts.store, "g", stManyUsers(t, ts.store, "n", 10)...)
	var reads atomic.Int64
	ts.store.memberReadHook = func() error { reads.Add(1); return nil }
	resp := rawGet(t, ts, scimBase+"/Groups/"+g.ID, "If-None-Match", `W/"1"`)
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("status %d, want 304", resp.StatusCode)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("member reads = %d, want 0", n)
	}
}

// TestGroupGetStreamError: a failure reading the first batch is an ordinary
// 500 (nothing was sent); a failure after the first batch was sent aborts
// the connection, so that the client sees a broken response rather than a
// complete-looking group with members missing.
func TestGroupGetStreamError(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	g := stGroup(t, ts.store, "g", stManyUsers(t, ts.store, "e", 1_500)...)
	var reads atomic.Int64
	failAt := atomic.Int64{}
	ts.store.memberReadHook = func() error {
		if reads.Add(1) == failAt.Load() {
			return errors.New("disk on fire")
		}
		return nil
	}

	failAt.Store(1)
	resp := rawGet(t, ts, scimBase+"/Groups/"+g.ID)
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("first batch failing: status %d, read error %v, want a whole 500: %s", resp.StatusCode, err, body)
	}

	reads.Store(0)
	failAt.Store(2)
	req, _ := http.NewRequest("GET", ts.URL+scimBase+"/Groups/"+g.ID, nil)
	req.Header.Set("Authorization", "Bearer "+ts.token)
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
	}
	if err == nil {
		t.Fatalf("second batch failing: the response ended normally (status %d, %d bytes)", resp.StatusCode, len(body))
	}
}

package main

// Benchmarks of the SCIM HTTP path with the requests Microsoft Entra ID sends
// (the bodies cmd/scimload sends). They drive the real handler in process
// (no TCP), so a CPU profile shows the server's own costs:
//
//	go test -run '^$' -bench BenchmarkEntra -benchmem -cpuprofile /tmp/cpu.out
//	go tool pprof -top -nodecount 40 /tmp/cpu.out

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

type benchSCIM struct {
	h     http.Handler
	token string
	users []string // ids of the fixture users, by index
	group string   // id of a group holding benchGroupMembers of them
}

const (
	benchFixtureUsers = 2000
	benchGroupMembers = 1000
)

func benchUserBody(i int, prefix string) map[string]any {
	return map[string]any{
		"schemas":     []string{userSchema, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
		"externalId":  fmt.Sprintf("%s.u%07d", prefix, i),
		"userName":    fmt.Sprintf("%s.u%07d@scimload.example", prefix, i),
		"active":      true,
		"displayName": "Ada Lovelace",
		"title":       "Engineer",
		"emails":      []any{map[string]any{"primary": true, "type": "work", "value": fmt.Sprintf("ada.%s.%d@scimload.example", prefix, i)}},
		"meta":        map[string]any{"resourceType": "User"},
		"name":        map[string]any{"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
		"addresses": []any{map[string]any{"type": "work", "formatted": "Building 7", "streetAddress": "1 Main Street",
			"locality": "Seattle", "region": "WA", "postalCode": "98052", "country": "US", "primary": false}},
		"phoneNumbers": []any{map[string]any{"type": "work", "value": "+1 425 555 0100"}, map[string]any{"type": "mobile", "value": "+1 425 555 0101"}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": map[string]any{"employeeNumber": fmt.Sprint(100000 + i), "department": "Sales"},
		"roles": []any{},
	}
}

// newBenchSCIM is a handler on a fresh database with benchFixtureUsers users
// created through POST /Users and one group of benchGroupMembers of them.
func newBenchSCIM(b *testing.B) *benchSCIM {
	b.Helper()
	store := newTestStore(b)
	tok, _, err := store.CreateToken(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSCIM{h: (&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler(), token: tok}
	for i := range benchFixtureUsers {
		s.users = append(s.users, s.id(b, s.must(b, "POST", "/Users", benchUserBody(i, "fixture"), 201)))
	}
	s.group = s.id(b, s.must(b, "POST", "/Groups", map[string]any{
		"schemas":     []string{groupSchema, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
		"displayName": "bench group", "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}, 201))
	for start := 0; start < benchGroupMembers; start += 100 {
		s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "Add", "path": "members",
			"value": benchMembers(s.users[start : start+100])}), 204)
	}
	return s
}

func benchPatch(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

func benchMembers(ids []string) []any {
	v := make([]any, len(ids))
	for i, id := range ids {
		v[i] = map[string]any{"$ref": nil, "value": id}
	}
	return v
}

func benchFilter(attr, value string) string {
	return "filter=" + url.QueryEscape(attr+` eq "`+value+`"`)
}

// do serves one request and returns its status and body.
func (s *benchSCIM) do(method, path string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, "http://127.0.0.1"+scimBase+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (s *benchSCIM) must(b *testing.B, method, path string, body any, want int) []byte {
	status, out := s.do(method, path, body)
	if status != want {
		b.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, out)
	}
	return out
}

func (s *benchSCIM) id(b *testing.B, body []byte) string {
	var v struct{ ID string }
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		b.Fatalf("no id in %s", body)
	}
	return v.ID
}

// BenchmarkEntraInitialUser is one user of Entra's initial cycle: the match
// query by userName, then the POST.
func BenchmarkEntraInitialUser(b *testing.B) {
	s := newBenchSCIM(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.must(b, "GET", "/Users?"+benchFilter("userName", fmt.Sprintf("new.u%07d@scimload.example", i)), nil, 200)
		s.must(b, "POST", "/Users", benchUserBody(i, "new"), 201)
		i++
	}
}

// BenchmarkEntraReads are the reads of a cycle, run on all cores.
func BenchmarkEntraReads(b *testing.B) {
	s := newBenchSCIM(b)
	for _, bc := range []struct {
		name string
		path func(i int) string
	}{
		{"filterUserName", func(i int) string {
			return "/Users?" + benchFilter("userName", fmt.Sprintf("fixture.u%07d@scimload.example", i%benchFixtureUsers))
		}},
		{"filterExternalId", func(i int) string {
			return "/Users?" + benchFilter("externalId", fmt.Sprintf("fixture.u%07d", i%benchFixtureUsers))
		}},
		{"getUser", func(i int) string { return "/Users/" + s.users[i%benchFixtureUsers] }},
		{"listPage100", func(i int) string { return fmt.Sprintf("/Users?startIndex=%d&count=100", 1+i%(benchFixtureUsers-100)) }},
		{"probe", func(i int) string {
			return "/Users?" + benchFilter("userName", fmt.Sprintf("7d420df3-9995-4831-a406-%012d", i))
		}},
		{"groupMatch", func(int) string {
			return "/Groups?excludedAttributes=members&" + benchFilter("displayName", "bench group")
		}},
		{"groupGetExcludeMembers", func(int) string { return "/Groups/" + s.group + "?excludedAttributes=members" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if status, out := s.do("GET", bc.path(int(n.Add(1))), nil); status != 200 {
						b.Fatalf("%d: %s", status, out)
					}
				}
			})
		})
	}
}

// BenchmarkEntraWrites are the writes of an incremental cycle.
func BenchmarkEntraWrites(b *testing.B) {
	s := newBenchSCIM(b)
	b.Run("patchUser", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.must(b, "PATCH", "/Users/"+s.users[i%benchFixtureUsers], benchPatch(
				map[string]any{"op": "Replace", "path": "displayName", "value": fmt.Sprintf("Ada %d", i)},
				map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("a%d@scimload.example", i)},
				map[string]any{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": fmt.Sprint("D", i)},
			), 200)
			i++
		}
	})
	b.Run("patchUserPathless", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.must(b, "PATCH", "/Users/"+s.users[i%benchFixtureUsers], benchPatch(
				map[string]any{"op": "replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("b%d@scimload.example", i)},
				map[string]any{"op": "replace", "value": map[string]any{"displayName": fmt.Sprint("Bo ", i), "name.givenName": "Bo",
					"name.familyName": fmt.Sprint("F", i), "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": fmt.Sprint(i)}},
			), 200)
			i++
		}
	})
	b.Run("disableEnable", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			v := "False"
			if i%2 == 1 {
				v = "True"
			}
			s.must(b, "PATCH", "/Users/"+s.users[(i/2)%benchFixtureUsers], benchPatch(
				map[string]any{"op": "Replace", "path": "active", "value": v}), 200)
			i++
		}
	})
	b.Run("groupRemoveAddMember", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := s.users[i%benchGroupMembers]
			if i%2 == 0 {
				s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "Remove", "path": "members",
					"value": []any{map[string]any{"value": m}}}), 204)
			} else {
				s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "remove", "path": `members[value eq "` + m + `"]`}), 204)
			}
			s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "Add", "path": "members", "value": benchMembers([]string{m})}), 204)
			i++
		}
	})
	b.Run("groupAdd50", func(b *testing.B) {
		// A batch of 50 new members (users outside the group), then their removal.
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			start := benchGroupMembers + (i*50)%(benchFixtureUsers-benchGroupMembers-50)
			ids := s.users[start : start+50]
			s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "Add", "path": "members", "value": benchMembers(ids)}), 204)
			var rm []any
			for _, id := range ids {
				rm = append(rm, map[string]any{"value": id})
			}
			s.must(b, "PATCH", "/Groups/"+s.group, benchPatch(map[string]any{"op": "Remove", "path": "members", "value": rm}), 204)
			i++
		}
	})
}

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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

type benchSCIM struct {
	h      http.Handler
	store  *Store
	token  string
	appKey string
	users  []string // ids of the fixture users, by index
	group  string   // id of a group holding benchGroupMembers of them
	big    string   // id of a group holding every fixture user
}

// benchUsersFlag is the size of the fixture: 2,000 users unless -benchusers says
// otherwise (the figures in docs/performance.md use 4,000 and 20,000).
var benchUsersFlag = flag.Int("benchusers", 2000, "users in the benchmark fixture (at least 2,000)")

// benchCopy keeps a copy of the fixture database, to measure the scimbox
// binary (exports, a served group) on the same data.
var benchCopy = flag.String("benchcopy", "", "also copy the fixture database to this path")

const benchGroupMembers = 1000

// benchFixtureUsers is the number of users in the fixture.
func benchFixtureUsers() int { return max(*benchUsersFlag, 2000) }

// benchFixture is a fixture database built once per process, closed (so
// that it is one checkpointed file) and copied for each benchmark.
type benchFixture struct {
	path          string
	token, appKey string
	users         []string
	group, big    string
	buildErr      error
	once          sync.Once
	dir           string
}

var benchShared benchFixture

func TestMain(m *testing.M) {
	code := m.Run()
	if benchShared.dir != "" {
		os.RemoveAll(benchShared.dir)
	}
	os.Exit(code)
}

// newBenchSCIM is a handler on a copy of the fixture: benchFixtureUsers
// users created through POST /Users, one group of benchGroupMembers of them
// and one ("big group") of all of them, a SCIM token and an app key.
func newBenchSCIM(b *testing.B) *benchSCIM {
	b.Helper()
	fx := &benchShared
	fx.once.Do(func() { fx.buildErr = fx.build() })
	if fx.buildErr != nil {
		b.Fatal(fx.buildErr)
	}
	path := filepath.Join(b.TempDir(), "scimbox.db")
	raw, err := os.ReadFile(fx.path)
	if err == nil {
		err = os.WriteFile(path, raw, 0o600)
	}
	if err != nil {
		b.Fatal(err)
	}
	store, err := OpenStore(context.Background(), path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	// The fixture (built on first use, a minute at 20k users) and its copy
	// are not what is measured: a benchmark whose first round built it would
	// stop at one round.
	b.ResetTimer()
	return &benchSCIM{h: (&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler(),
		store: store, token: fx.token, appKey: fx.appKey, users: fx.users, group: fx.group, big: fx.big}
}

func (fx *benchFixture) build() error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "scimbox-bench-")
	if err != nil {
		return err
	}
	fx.dir, fx.path = dir, filepath.Join(dir, "scimbox.db")
	ctx := context.Background()
	store, err := OpenStore(ctx, fx.path, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	defer store.Close()
	if fx.token, _, err = store.CreateToken(ctx, "bench"); err != nil {
		return err
	}
	if fx.appKey, _, err = store.CreateAppKey(ctx, "bench"); err != nil {
		return err
	}
	s := &benchSCIM{h: (&server{store: store, log: slog.New(slog.NewTextHandler(io.Discard, nil))}).handler(), token: fx.token}
	fail := func(method, path string, status int, out []byte) error {
		return fmt.Errorf("fixture: %s %s: %d: %s", method, path, status, out)
	}
	post := func(path string, body any) (string, error) {
		status, out := s.do("POST", path, body)
		var v struct{ ID string }
		if json.Unmarshal(out, &v); status != 201 || v.ID == "" {
			return "", fail("POST", path, status, out)
		}
		return v.ID, nil
	}
	for i := range benchFixtureUsers() {
		id, err := post("/Users", benchUserBody(i, "fixture"))
		if err != nil {
			return err
		}
		fx.users = append(fx.users, id)
	}
	for _, g := range []struct {
		id      *string
		name    string
		members []string
	}{
		{&fx.group, "bench group", fx.users[:benchGroupMembers]},
		{&fx.big, "big group", fx.users},
	} {
		if *g.id, err = post("/Groups", map[string]any{
			"schemas":     []string{groupSchema, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"},
			"displayName": g.name, "externalId": newID()}); err != nil {
			return err
		}
		for start := 0; start < len(g.members); start += 100 {
			path := "/Groups/" + *g.id
			body := benchPatch(map[string]any{"op": "Add", "path": "members", "value": benchMembers(g.members[start:min(start+100, len(g.members))])})
			if status, out := s.do("PATCH", path, body); status != 204 {
				return fail("PATCH", path, status, out)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "bench fixture: %d users built in %s\n", len(fx.users), time.Since(start).Round(time.Second))
	if err := store.Close(); err != nil || *benchCopy == "" {
		return err
	}
	raw, err := os.ReadFile(fx.path)
	if err != nil {
		return err
	}
	return os.WriteFile(*benchCopy, raw, 0o600)
}

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

// cpuPerOp reports the process's CPU time (user and system, every
// goroutine, GC included) per operation when the returned func runs, next to
// the wall time: on a shared machine the wall time also counts waiting for
// a CPU, the CPU time does not.
func cpuPerOp(b *testing.B) func() {
	start := processCPU(b)
	return func() {
		b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkEntraInitialUser is one user of Entra's initial cycle: the match
// query by userName, then the POST.
func BenchmarkEntraInitialUser(b *testing.B) {
	s := newBenchSCIM(b)
	b.ReportAllocs()
	defer cpuPerOp(b)()
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
			return "/Users?" + benchFilter("userName", fmt.Sprintf("fixture.u%07d@scimload.example", i%benchFixtureUsers()))
		}},
		{"filterExternalId", func(i int) string {
			return "/Users?" + benchFilter("externalId", fmt.Sprintf("fixture.u%07d", i%benchFixtureUsers()))
		}},
		{"getUser", func(i int) string { return "/Users/" + s.users[i%benchFixtureUsers()] }},
		{"listPage100", func(i int) string {
			return fmt.Sprintf("/Users?startIndex=%d&count=100", 1+i%(benchFixtureUsers()-100))
		}},
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
			defer cpuPerOp(b)()
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
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			s.must(b, "PATCH", "/Users/"+s.users[i%benchFixtureUsers()], benchPatch(
				map[string]any{"op": "Replace", "path": "displayName", "value": fmt.Sprintf("Ada %d", i)},
				map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("a%d@scimload.example", i)},
				map[string]any{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": fmt.Sprint("D", i)},
			), 200)
			i++
		}
	})
	b.Run("patchUserPathless", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			s.must(b, "PATCH", "/Users/"+s.users[i%benchFixtureUsers()], benchPatch(
				map[string]any{"op": "replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("b%d@scimload.example", i)},
				map[string]any{"op": "replace", "value": map[string]any{"displayName": fmt.Sprint("Bo ", i), "name.givenName": "Bo",
					"name.familyName": fmt.Sprint("F", i), "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": fmt.Sprint(i)}},
			), 200)
			i++
		}
	})
	b.Run("disableEnable", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			v := "False"
			if i%2 == 1 {
				v = "True"
			}
			s.must(b, "PATCH", "/Users/"+s.users[(i/2)%benchFixtureUsers()], benchPatch(
				map[string]any{"op": "Replace", "path": "active", "value": v}), 200)
			i++
		}
	})
	b.Run("groupRemoveAddMember", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
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
		defer cpuPerOp(b)()
		i := 0
		for b.Loop() {
			start := benchGroupMembers + (i*50)%(benchFixtureUsers()-benchGroupMembers-50)
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

// BenchmarkBigGroup reads the group of every fixture user whole: the SCIM
// GET with its members, and every page of /api/v1/groups/{id}/members.
func BenchmarkBigGroup(b *testing.B) {
	s := newBenchSCIM(b)
	b.Run("scimGetMembers", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if out := s.must(b, "GET", "/Groups/"+s.big, nil, 200); !bytes.Contains(out, []byte(s.users[len(s.users)-1])) {
				b.Fatal("the last member is missing")
			}
		}
	})
	b.Run("apiMembersAllPages", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			n := 0
			for after := ""; ; {
				req := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/groups/"+s.big+"/members?limit=1000&after="+after, nil)
				req.Header.Set("Authorization", "Bearer "+s.appKey)
				rec := httptest.NewRecorder()
				s.h.ServeHTTP(rec, req)
				var page struct {
					Data []any
					Next string
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &page); rec.Code != 200 || err != nil {
					b.Fatalf("%d: %s", rec.Code, rec.Body.Bytes())
				}
				n += len(page.Data)
				if after = page.Next; after == "" {
					break
				}
			}
			if n != len(s.users) {
				b.Fatalf("%d members, want %d", n, len(s.users))
			}
		}
	})
}

// BenchmarkExport writes every user (CSV, JSON) and every group with its
// members (JSON) to io.Discard, as `scimbox export` and the Apps page do.
func BenchmarkExport(b *testing.B) {
	s := newBenchSCIM(b)
	ctx := context.Background()
	for _, bc := range []struct {
		name   string
		export func(io.Writer) error
	}{
		{"usersCSV", func(w io.Writer) error { return exportUsers(ctx, s.store, w, "csv", nil) }},
		{"usersCSVNoGroups", func(w io.Writer) error {
			return exportUsers(ctx, s.store, w, "csv", []string{"id", "userName", "email", "active"})
		}},
		{"usersJSON", func(w io.Writer) error { return exportUsers(ctx, s.store, w, "json", nil) }},
		{"groupsJSON", func(w io.Writer) error { return exportGroups(ctx, s.store, w) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			defer cpuPerOp(b)()
			for b.Loop() {
				if err := bc.export(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTokenCheck is the bearer token check every SCIM request makes, on all cores.
func BenchmarkTokenCheck(b *testing.B) {
	s := newBenchSCIM(b)
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.store.AuthenticateToken(ctx, s.token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

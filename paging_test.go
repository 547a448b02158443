package main

import (
	"context"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pagedItems accumulates the items of a paged walk and checks that each is seen once.
type pagedItems struct {
	t     *testing.T
	seen  map[string]bool
	order []string
	pages int
}

func newPagedItems(t *testing.T) *pagedItems { return &pagedItems{t: t, seen: map[string]bool{}} }

func (p *pagedItems) page(items []string) {
	p.t.Helper()
	p.pages++
	for _, id := range items {
		if p.seen[id] {
			p.t.Errorf("page %d: %s seen again", p.pages, id)
		}
		p.seen[id] = true
		p.order = append(p.order, id)
	}
}

// check compares the walk with the items expected, and that it took several pages.
func (p *pagedItems) check(want []string) {
	p.t.Helper()
	if p.pages < 2 {
		p.t.Errorf("the walk took %d page(s), want at least 2", p.pages)
	}
	got := slices.Sorted(slices.Values(p.order))
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		p.t.Errorf("walked %d items, want %d: missing %v, extra %v", len(got), len(want), minus(want, got), minus(got, want))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, v := range a {
		if !slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

var (
	uuidLink    = regexp.MustCompile(`href="/(users|groups)/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"`)
	nextLink    = regexp.MustCompile(`<a href="([^"]+)">Next →</a>`)
	olderLink   = regexp.MustCompile(`<a href="([^"]+)">Older →</a>`)
	logRowRE    = regexp.MustCompile(`(?s)<tr class="(?:success|failure)">(.*?)</tr>`)
	tableCell   = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	tag         = regexp.MustCompile(`<[^>]+>`)
	membersList = regexp.MustCompile(`(?s)<ul class="members">(.*?)</ul>`)
)

// TestEveryPagedEndpointWalksToItsEnd walks each paged surface (SCIM lists
// with and without filter and sort, .search, the read API, the change feed
// and the admin pages) to its end over several pages, and checks that every
// item comes exactly once and the totals are right.
func TestEveryPagedEndpointWalksToItsEnd(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	ac := setUpAdmin(t, ts)
	ctx := context.Background()
	key, _, err := ts.store.CreateAppKey(ctx, "pager")
	if err != nil {
		t.Fatal(err)
	}

	const nUsers, nGroups = 120, 60
	var users, groups []string
	userName := map[string]string{}
	for i := range nUsers {
		body := newUserBody(fmt.Sprintf("pw%03d@x", i))
		if i%5 != 0 { // some without a title: missing values sort together
			body["title"] = fmt.Sprintf("Title %03d", (i*37)%nUsers)
		}
		status, _, doc := ts.do(t, "POST", "/Users", body)
		if status != 201 {
			t.Fatalf("create user: %d %v", status, doc)
		}
		users = append(users, doc["id"].(string))
		userName[doc["id"].(string)] = doc["userName"].(string)
	}
	groupName := map[string]string{}
	for i := range nGroups {
		id := ts.createGroup(t, fmt.Sprintf("PG%03d", i))
		groups = append(groups, id)
		groupName[id] = fmt.Sprintf("PG%03d", i)
	}
	big := groups[0]
	addMembersByPatch(t, ts, big, users...)
	addMembersByPatch(t, ts, big, groups[1])
	bigMembers := append(slices.Clone(users), groups[1])
	if err := ts.store.FlushLog(ctx); err != nil {
		t.Fatal(err)
	}
	usersWhere := func(keep func(name string) bool) []string {
		var out []string
		for _, id := range users {
			if keep(userName[id]) {
				out = append(out, id)
			}
		}
		return out
	}
	groupsWhere := func(keep func(name string) bool) []string {
		var out []string
		for _, id := range groups {
			if keep(groupName[id]) {
				out = append(out, id)
			}
		}
		return out
	}

	// SCIM lists, by startIndex and count, GET and POST .search.
	scimTests := []struct {
		name, resource, query string
		want                  []string
	}{
		{"users", "Users", "", users},
		{"users, exact filter", "Users", `filter=userName sw "pw0"`, usersWhere(func(n string) bool { return strings.HasPrefix(n, "pw0") })},
		{"users, filter evaluated in Go", "Users", `filter=emails co "w1"`, usersWhere(func(n string) bool { return strings.Contains(n, "w1") })},
		{"users sorted by userName descending", "Users", "sortBy=userName&sortOrder=descending", users},
		{"users sorted by an attribute without an index", "Users", "sortBy=title", users},
		{"users sorted without an index, filtered", "Users", `sortBy=title&sortOrder=descending&filter=emails co "w1"`, usersWhere(func(n string) bool { return strings.Contains(n, "w1") })},
		{"users sorted by displayName, exact filter", "Users", `sortBy=displayName&filter=active eq true`, users},
		{"groups", "Groups", "excludedAttributes=members", groups},
		{"groups, exact filter", "Groups", `filter=displayName sw "pg00"`, groupsWhere(func(n string) bool { return strings.HasPrefix(n, "PG00") })},
		{"groups sorted by displayName descending", "Groups", "sortBy=displayName&sortOrder=descending", groups},
		{"groups sorted by externalId", "Groups", "sortBy=externalId&attributes=displayName", groups},
		{"groups with a member", "Groups", fmt.Sprintf(`filter=members.value eq "%s" or displayName sw "PG0"`, groups[1]), groupsWhere(func(n string) bool { return strings.HasPrefix(n, "PG0") })},
	}
	for _, tc := range scimTests {
		for _, viaSearch := range []bool{false, true} {
			name := tc.name
			if viaSearch {
				name += " via .search"
			}
			t.Run(name, func(t *testing.T) {
				q, err := url.ParseQuery(tc.query)
				if err != nil {
					t.Fatal(err)
				}
				walk := newPagedItems(t)
				for start := 1; ; {
					var status int
					var doc map[string]any
					if viaSearch {
						body := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "startIndex": start, "count": 7}
						for k, name := range map[string]string{"filter": "filter", "sortBy": "sortBy", "sortOrder": "sortOrder"} {
							if v := q.Get(k); v != "" {
								body[name] = v
							}
						}
						status, _, doc = ts.do(t, "POST", "/"+tc.resource+"/.search", body)
					} else {
						page := url.Values{}
						for k, v := range q {
							page[k] = v
						}
						page.Set("startIndex", strconv.Itoa(start))
						page.Set("count", "7")
						status, _, doc = ts.do(t, "GET", "/"+tc.resource+"?"+page.Encode(), nil)
					}
					if status != 200 {
						t.Fatalf("startIndex %d: %d %v", start, status, doc)
					}
					if got, want := int(doc["totalResults"].(float64)), len(tc.want); got != want {
						t.Fatalf("startIndex %d: totalResults %d, want %d", start, got, want)
					}
					resources, _ := doc["Resources"].([]any)
					if got := int(doc["itemsPerPage"].(float64)); got != len(resources) {
						t.Errorf("itemsPerPage %d for %d resources", got, len(resources))
					}
					var ids []string
					for _, r := range resources {
						ids = append(ids, r.(map[string]any)["id"].(string))
					}
					walk.page(ids)
					start += len(resources)
					if len(resources) == 0 || start > len(tc.want) {
						break
					}
				}
				walk.check(tc.want)
			})
		}
	}

	// The read API, by cursor.
	apiTests := []struct {
		name, path string
		want       []string
	}{
		{"api users", "/api/v1/users", users},
		{"api groups", "/api/v1/groups", groups},
		{"api group members", "/api/v1/groups/" + big + "/members", bigMembers},
	}
	for _, tc := range apiTests {
		t.Run(tc.name, func(t *testing.T) {
			walk := newPagedItems(t)
			for next := ""; ; {
				status, doc := apiGet(t, ts, key, tc.path+"?limit=7&after="+url.QueryEscape(next))
				if status != 200 {
					t.Fatalf("after %q: %d %v", next, status, doc)
				}
				var ids []string
				for _, item := range doc["data"].([]any) {
					ids = append(ids, item.(map[string]any)["id"].(string))
				}
				walk.page(ids)
				if next = doc["next"].(string); next == "" {
					break
				}
			}
			walk.check(tc.want)
		})
	}
	t.Run("api events", func(t *testing.T) {
		all, err := ts.store.Events(ctx, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, e := range all {
			want = append(want, e.ID)
		}
		walk := newPagedItems(t)
		for after := "0"; ; {
			status, doc := apiGet(t, ts, key, "/api/v1/events?limit=50&after="+after)
			if status != 200 {
				t.Fatalf("after %s: %d %v", after, status, doc)
			}
			data := doc["data"].([]any)
			if len(data) == 0 {
				break
			}
			var ids []string
			for _, e := range data {
				ids = append(ids, e.(map[string]any)["id"].(string))
			}
			walk.page(ids)
			after = doc["next"].(string)
		}
		walk.check(want)
		if !slices.Equal(walk.order, want) {
			t.Error("events did not come in cursor order")
		}
	})

	// The admin pages, following their Next/Older links.
	adminWalk := func(t *testing.T, path string, items func(page string) []string, next *regexp.Regexp) *pagedItems {
		walk := newPagedItems(t)
		for path != "" {
			status, _, page := ac.get(t, path)
			if status != 200 {
				t.Fatalf("%s: %d", path, status)
			}
			walk.page(items(page))
			m := next.FindStringSubmatch(page)
			if m == nil {
				break
			}
			link := html.UnescapeString(m[1])
			if strings.HasPrefix(link, "?") {
				link = strings.SplitN(path, "?", 2)[0] + link
			}
			path = link
		}
		return walk
	}
	links := func(kind string) func(string) []string {
		return func(page string) []string {
			var ids []string
			for _, m := range uuidLink.FindAllStringSubmatch(page, -1) {
				if m[1] == kind {
					ids = append(ids, m[2])
				}
			}
			return ids
		}
	}
	t.Run("admin users", func(t *testing.T) {
		adminWalk(t, "/users", links("users"), nextLink).check(users)
	})
	t.Run("admin users search", func(t *testing.T) {
		adminWalk(t, "/users?q=pw0", links("users"), nextLink).check(usersWhere(func(n string) bool { return strings.HasPrefix(n, "pw0") }))
	})
	t.Run("admin groups", func(t *testing.T) {
		adminWalk(t, "/groups", links("groups"), nextLink).check(groups)
	})
	t.Run("admin group members", func(t *testing.T) {
		members := func(page string) []string {
			m := membersList.FindStringSubmatch(page)
			if m == nil {
				t.Fatal("no member list on the group page")
			}
			var ids []string
			for _, l := range uuidLink.FindAllStringSubmatch(m[1], -1) {
				ids = append(ids, l[2])
			}
			return ids
		}
		adminWalk(t, "/groups/"+big, members, nextLink).check(bigMembers)
	})
	t.Run("admin log", func(t *testing.T) {
		entries, err := ts.store.ListLog(ctx, LogQuery{Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, e := range entries {
			want = append(want, fmt.Sprintf("%d %s %s", e.ID, e.Op, e.Target))
		}
		// Rows carry no id; number them in the order the store lists them.
		n := 0
		rows := func(page string) []string {
			var out []string
			for _, row := range logRowRE.FindAllStringSubmatch(page, -1) {
				cells := tableCell.FindAllStringSubmatch(row[1], -1)
				out = append(out, fmt.Sprintf("%d %s %s", entries[min(n, len(entries)-1)].ID,
					html.UnescapeString(cells[1][1]), html.UnescapeString(tag.ReplaceAllString(cells[2][1], ""))))
				n++
			}
			return out
		}
		walk := adminWalk(t, "/log", rows, olderLink)
		walk.check(want)
		if !slices.Equal(walk.order, want) {
			t.Error("the log pages are not newest first, in the store's order")
		}
	})
}

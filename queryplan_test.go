package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestHotQueriesUseIndexes runs EXPLAIN QUERY PLAN on the statements behind
// the hot paths (SCIM reads and filters, membership changes, the API's pages,
// the log search, token checks) and fails on any SCAN unless the case names
// it as harmless: a JSON array of ids, a handful of webhooks, a page already
// cut to its LIMIT, an index walk or a scan that stops at the LIMIT.
func TestHotQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	filter := func(src string) filterExpr {
		f, err := parseFilter(src)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	list := func(lt listTable, q ListQuery, kindFilter bool) []statement {
		st := lt.listStatements(q, kindFilter)
		if !st.indexed {
			t.Fatalf("%+v is not answered from indexes", q)
		}
		return []statement{{st.count, st.args}, {st.page, append(st.args, q.Count, q.StartIndex-1)}}
	}
	// A filter that SQL only narrows: the candidates it streams must come from an index.
	narrowed := func(lt listTable, q ListQuery) []statement {
		st := lt.listStatements(q, false)
		if st.indexed {
			t.Fatalf("%+v is answered from indexes alone", q)
		}
		return []statement{{st.stream, st.args}}
	}
	one := func(sql string, args ...any) []statement { return []statement{{sql, args}} }
	logStatements := func(q LogQuery) []statement {
		sql, args := listLogSQL(q)
		return one(sql, args...)
	}
	tests := []struct {
		name       string
		statements []statement
		allowScans []string // tables or aliases that may be scanned here
	}{
		{name: "user by id", statements: append(one(userByIDSQL, "id"), one(userGroupsSQL(1), "id")...)},
		{name: "groups of a page of users", statements: one(userGroupsSQL(3), "a", "b", "c")},
		{name: "groups of a range of users (exports, API pages)", statements: one(userGroupsBetweenSQL, 10, 1010)},
		{name: "group by id", statements: one(groupSelect+" WHERE groups.id = ?", "id")},
		{name: "filter userName eq", statements: list(usersTable, ListQuery{Filter: filter(`userName eq "a@x"`), StartIndex: 1, Count: 100}, false)},
		{name: "filter userName eq, directory only", statements: list(usersTable, ListQuery{Filter: filter(`userName eq "a@x"`), StartIndex: 1, Count: 100}, true)},
		{name: "filter externalId eq", statements: list(usersTable, ListQuery{Filter: filter(`externalId eq "e"`), StartIndex: 1, Count: 100}, true)},
		{name: "filter email eq", statements: list(usersTable, ListQuery{Filter: filter(`emails.value eq "a@x"`), StartIndex: 1, Count: 100}, false)},
		{name: "filter on a value path, narrowed by the email index", statements: narrowed(usersTable, ListQuery{Filter: filter(`emails[type eq "work"].value eq "a@x"`), StartIndex: 1, Count: 100})},
		{name: "group filter displayName eq", statements: list(groupsTable, ListQuery{Filter: filter(`displayName eq "Staff"`), StartIndex: 1, Count: 100}, false)},
		{name: "groups of a member", statements: list(groupsTable, ListQuery{Filter: filter(`members.value eq "id"`), StartIndex: 1, Count: 100}, false)},
		// An unfiltered list counts every row for totalResults (on the narrowest
		// index) and walks its sort index to the page: both read index entries
		// only, and the walk stops at OFFSET+LIMIT.
		{name: "user list page in creation order", statements: list(usersTable, ListQuery{StartIndex: 501, Count: 100}, false),
			allowScans: []string{"users USING COVERING INDEX users_active", "users USING COVERING INDEX users_created"}},
		{name: "user list sorted by userName", statements: list(usersTable, ListQuery{SortBy: "userName", StartIndex: 51, Count: 50}, false),
			allowScans: []string{"users USING COVERING INDEX users_active", "users USING COVERING INDEX sqlite_autoindex_users_2"}},
		{name: "admin user search", statements: list(usersTable, ListQuery{Filter: searchFilter("al", "userName", "displayName", "emails.value"), SortBy: "userName", StartIndex: 1, Count: 50}, false)},
		{name: "group list page", statements: list(groupsTable, ListQuery{SortBy: "displayName", StartIndex: 51, Count: 50}, false),
			allowScans: []string{"groups USING COVERING INDEX groups_modified", "groups USING COVERING INDEX sqlite_autoindex_groups_2"}},
		{name: "accounts SCIM does not see", statements: one(nonDirectoryCountSQL)},
		{name: "group member add", statements: one(addMembersSQL, "g", `["a","b"]`), allowScans: []string{"j"}},
		{name: "group member remove", statements: one(removeMembersSQL, "g", `["a","b"]`), allowScans: []string{"json_each"}},
		{name: "group member page (admin)", statements: one(groupMembersPageSQL, "g", 50, 500), allowScans: []string{"m"}},
		// The directory's members and the ones a safety rail keeps, merged from
		// two index ranges; m is that merge, already cut to its LIMIT.
		{name: "group member page (API)", statements: one(membersAfterSQL, "g", "after", 100), allowScans: []string{"m"}},
		// Streamed members: a batch after the last one, from members_by_name,
		// is a range of that index; the page's rows are then read in order.
		{name: "group member batch (streamed GET)", statements: append(one(memberBatchSQL, "g", "name", "id", 1000),
			one(memberBatchAfterNullSQL, "g", nil, "", 1000)...), allowScans: []string{"m"}},
		{name: "secrets generation", statements: one(secretsGenerationSQL)},
		// The search index's catch-up reads the users a batch changed, not the table.
		{name: "search index sync", statements: append(one(userSearchDirtySQL), func() (st []statement) {
			for _, q := range syncUserSearchSQL {
				st = append(st, one(q)...)
			}
			return st
		}()...), allowScans: []string{"d", "user_search_dirty", "user_search VIRTUAL TABLE INDEX 0:=", "e", "o"}},
		{name: "mass-change window", statements: one(windowRemovalsSQL, classUsers, "2026-01-01T00:00:00.000Z")},
		{name: "events after a cursor", statements: one(eventsAfterSQL, 10, 100)},
		// A handful of webhooks; the scan of delivery_attempts is the foreign key
		// check of a new parent row, which runs only while a violation is pending.
		{name: "events queued for webhooks", statements: one(queueDeliveriesSQL, "now", 1, 5), allowScans: []string{"w", "delivery_attempts"}},
		{name: "log search by target", statements: logStatements(LogQuery{Target: "alice", Limit: 51})},
		{name: "log search by target and outcome", statements: logStatements(LogQuery{Target: "alice", Outcome: "failure", Before: 1000, Limit: 51})},
		{name: "log of a resource", statements: logStatements(LogQuery{ResourceID: "id", Limit: 50})},
		{name: "log failures", statements: logStatements(LogQuery{Outcome: "failure", Limit: 51})},
		// Newest first from the end of the table, stopping at the LIMIT.
		{name: "log newest page", statements: logStatements(LogQuery{Before: 1000, Limit: 51}), allowScans: []string{"provisioning_log"}},
		{name: "SCIM token lookup", statements: one(scimTokens.lookupSQL(), "id")},
		{name: "app key lookup", statements: one(appKeys.lookupSQL(), "id")},
	}
	scan := regexp.MustCompile(`^SCAN (.+)`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, st := range tc.statements {
				plan, err := s.queryPlan(context.Background(), st.sql, st.args...)
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range plan {
					m := scan.FindStringSubmatch(line)
					allowed := slices.ContainsFunc(tc.allowScans, func(a string) bool { return m != nil && (m[1] == a || strings.HasPrefix(m[1], a+" ")) })
					if m == nil || strings.HasPrefix(m[1], "CONSTANT ROW") || allowed {
						continue
					}
					t.Errorf("%s in the plan of\n%s\nplan:\n%s", line, st.sql, strings.Join(plan, "\n"))
				}
			}
		})
	}
}

// statement is a SQL statement with its arguments.
type statement struct {
	sql  string
	args []any
}

package main

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestResolveFilter: filters on one resource type name its attributes the way
// PATCH paths do (an extension attribute also without its URN), and a filter
// that names no attribute of the type, or compares one in a way its type does
// not support, is invalidFilter (RFC 7644 §3.4.2.2) rather than a silent empty list.
func TestResolveFilter(t *testing.T) {
	t.Parallel()
	const ent = "<" + enterpriseSchema + ">"
	tests := []struct {
		name   string
		rt     *resourceType
		filter string
		want   string // renderFilter of the result, or "error: <detail substring>"
	}{
		// Core and common attributes are left as written.
		{"core attribute", userType, `userName eq "x"`, `(userName eq "x")`},
		{"common attribute", userType, `meta.lastModified gt "2024-01-01T00:00:00Z"`, `(meta.lastModified gt "2024-01-01T00:00:00Z")`},
		{"core URN", groupType, groupSchema + `:displayName eq "x"`, `(<` + groupSchema + `>displayName eq "x")`},
		{"attribute names case-insensitive", userType, `USERNAME eq "x" and Emails.VALUE pr`, `((USERNAME eq "x") and (Emails.VALUE pr))`},
		// Extension attributes named without their URN (Entra's legacy reference check).
		{"manager short", userType, `manager eq "id"`, `(` + ent + `manager eq "id")`},
		{"manager.value short", userType, `manager.value eq "id"`, `(` + ent + `manager.value eq "id")`},
		{"employeeNumber short", userType, `employeeNumber eq "701984"`, `(` + ent + `employeeNumber eq "701984")`},
		{"department short, other case", userType, `DEPARTMENT eq "sales"`, `(` + ent + `DEPARTMENT eq "sales")`},
		{"Entra reference check", userType, `id eq 54D382A4 and manager eq 2819c223`,
			`((id eq "54D382A4") and (` + ent + `manager eq "2819c223"))`},
		{"manager value path short", userType, `manager[value eq "id"]`, `(` + ent + `manager[(value eq "id")])`},
		{"short name inside not and or", userType, `not (department pr) or userName eq "x"`,
			`(not((` + ent + `department pr)) or (userName eq "x"))`},
		{"enterprise URN kept", userType, enterpriseSchema + `:manager.value eq "id"`, `(` + ent + `manager.value eq "id")`},
		// An extension scimbox does not model is kept as sent, so it filters as sent.
		{"unmodeled extension", userType, `urn:example:acme:2.0:User:badge eq "42"`, `(<urn:example:acme:2.0:User>badge eq "42")`},
		{"unmodeled extension value path", userType, `urn:example:acme:2.0:User:emails[type eq "x"]`, `(<urn:example:acme:2.0:User>emails[(type eq "x")])`},
		// Names that resolve nowhere.
		{"unknown attribute", userType, `nickname2 eq "x"`, `error: User has no attribute "nickname2"`},
		{"unknown sub-attribute", userType, `name.middle eq "x"`, `error: User has no attribute "name.middle"`},
		{"sub-attribute of a simple attribute", userType, `userName.value eq "x"`, `error: User has no attribute "userName.value"`},
		{"unknown in an and", userType, `userName eq "x" and foo pr`, `error: User has no attribute "foo"`},
		{"unknown inside not", userType, `not (foo pr)`, `error: User has no attribute "foo"`},
		{"unknown inside brackets", userType, `emails[kind eq "work"]`, `error: User has no attribute "emails.kind"`},
		{"unknown after brackets", userType, `emails[type eq "work"].address eq "x"`, `error: User has no attribute "emails.address"`},
		{"enterprise attribute on groups", groupType, `manager eq "id"`, `error: Group has no attribute "manager"`},
		{"enterprise URN on groups", groupType, enterpriseSchema + `:department eq "x"`, `error: Group has no attribute "` + enterpriseSchema + `:department"`},
		{"user attribute on groups", groupType, `userName eq "x"`, `error: Group has no attribute "userName"`},
		{"group attribute on users", userType, `members pr`, `error: User has no attribute "members"`},
		{"User schema URN on groups", groupType, userSchema + `:externalId eq "x"`, `error: Group has no attribute "` + userSchema + `:externalId"`},
		{"Group schema URN on users", userType, groupSchema + `:externalId eq "x"`, `error: User has no attribute "` + groupSchema + `:externalId"`},
		{"unknown attribute of the enterprise extension", userType, enterpriseSchema + `:level eq 1`, `error: User has no attribute "` + enterpriseSchema + `:level"`},
		// Comparisons a type does not support (RFC 7644 §3.4.2.2: gt, ge, lt
		// and le on a boolean or binary are invalidFilter).
		{"boolean gt", userType, `active gt false`, `error: active is a boolean: it cannot be compared with "gt"`},
		{"boolean ge", userType, `active ge true`, `error: active is a boolean`},
		{"boolean lt", userType, `active lt "True"`, `error: active is a boolean`},
		{"boolean le", userType, `active le true`, `error: active is a boolean`},
		{"boolean le with URN", userType, userSchema + `:active le true`, `error: ` + userSchema + `:active is a boolean`},
		{"boolean gt in an or", userType, `userName eq "x" or active gt false`, `error: active is a boolean`},
		{"boolean sub-attribute gt in brackets", userType, `emails[primary gt false]`, `error: primary is a boolean`},
		{"boolean sub-attribute lt after brackets", userType, `emails[type eq "work"].primary lt true`, `error: emails.primary is a boolean`},
		{"boolean sub-attribute ge", userType, `emails.primary ge true`, `error: emails.primary is a boolean`},
		{"binary gt", userType, `x509Certificates.value gt "AAAA"`, `error: x509Certificates.value is a binary`},
		{"binary compared by value", userType, `x509Certificates lt "AAAA"`, `error: x509Certificates is a binary`},
		{"boolean eq", userType, `active eq true`, `(active eq true)`},
		{"boolean ne", userType, `active ne "False"`, `(active ne "False")`},
		{"boolean pr", userType, `active pr`, `(active pr)`},
		{"boolean sub-attribute eq in brackets", userType, `emails[primary eq true]`, `(emails[(primary eq true)])`},
		{"unmodeled extension gt", userType, `urn:example:acme:2.0:User:flag gt false`, `(<urn:example:acme:2.0:User>flag gt false)`},
		// A complex attribute compares by its "value"; without one it cannot compare.
		{"complex with value", userType, `emails co "example"`, `(emails co "example")`},
		{"complex without value", userType, `name eq "x"`, `error: name is complex`},
		{"complex without value sw", groupType, `meta sw "x"`, `error: meta is complex`},
		{"complex eq null", userType, `name eq null`, `(name eq null)`},
		{"complex pr", userType, `addresses pr`, `(addresses pr)`},
		{"brackets on a simple attribute", userType, `userName[value eq "x"]`, `error: userName is not complex`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parsed, err := parseFilter(tc.filter)
			if err != nil {
				t.Fatalf("parseFilter(%q): %v", tc.filter, err)
			}
			f, err := filterFor(parsed, tc.rt)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil {
					t.Fatalf("filterFor(%s, %s) = %s, want an error containing %q", tc.filter, tc.rt.Name, renderFilter(f), want)
				}
				if !errors.Is(err, errInvalidFilter) || !strings.Contains(err.Error(), want) {
					t.Errorf("filterFor(%s, %s) error %q, want one wrapping errInvalidFilter containing %q", tc.filter, tc.rt.Name, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("filterFor(%s, %s): %v", tc.filter, tc.rt.Name, err)
			}
			if got := renderFilter(f); got != tc.want {
				t.Errorf("filterFor(%s, %s)\n got %s\nwant %s", tc.filter, tc.rt.Name, got, tc.want)
			}
		})
	}
}

// TestFilterOverHTTP: list and search endpoints resolve extension attributes
// named without their URN (Entra's legacy reference check), answer
// invalidFilter for attributes a resource type lacks and for ordering a
// boolean, and the root search accepts an attribute of either resource type.
func TestFilterOverHTTP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	managerID := ts.createUser(t, "boss@example.com")
	create := func(userName, employeeNumber, department string) string {
		t.Helper()
		body := newUserBody(userName)
		body[enterpriseSchema] = map[string]any{"employeeNumber": employeeNumber, "department": department,
			"manager": map[string]any{"value": managerID}}
		status, _, doc := ts.do(t, "POST", "/Users", body)
		if status != http.StatusCreated {
			t.Fatalf("create %s: %d %v", userName, status, doc)
		}
		return doc["id"].(string)
	}
	alice := create("alice@example.com", "1001", "Sales")
	bob := create("bob@example.com", "1002", "Research")
	groupID := ts.createGroup(t, "Sales Team")
	q := url.QueryEscape
	tests := []struct {
		name, method, path string
		body               any
		status             int
		want               []string // ids listed, in order, when status is 200
		detail             string   // substring of the error detail otherwise
	}{
		{name: "Entra reference check", method: "GET",
			path:   "/Users?attributes=id&filter=" + q("id eq "+alice+" and manager eq "+managerID),
			status: 200, want: []string{alice}},
		{name: "reference check against another manager", method: "GET",
			path:   "/Users?attributes=id&filter=" + q("id eq "+alice+" and manager eq "+bob),
			status: 200, want: []string{}},
		{name: "manager.value short", method: "GET", path: "/Users?filter=" + q(`manager.value eq "`+managerID+`"`),
			status: 200, want: []string{alice, bob}},
		{name: "employeeNumber short", method: "GET", path: "/Users?filter=" + q(`employeeNumber eq "1002"`),
			status: 200, want: []string{bob}},
		{name: "department short in search", method: "POST", path: "/Users/.search",
			body: map[string]any{"schemas": []string{searchSchema}, "filter": `department eq "sales"`}, status: 200, want: []string{alice}},
		{name: "zero hits", method: "GET", path: "/Users?filter=" + q(`userName eq "nobody@example.com"`), status: 200, want: []string{}},
		{name: "boolean gt", method: "GET", path: "/Users?filter=" + q(`active gt false`), status: 400, detail: `active is a boolean`},
		{name: "boolean le", method: "GET", path: "/Users?filter=" + q(`active le true`), status: 400, detail: `active is a boolean`},
		{name: "boolean lt in search", method: "POST", path: "/Users/.search",
			body: map[string]any{"schemas": []string{searchSchema}, "filter": `active lt true`}, status: 400, detail: `active is a boolean`},
		{name: "boolean ge in a value path", method: "GET", path: "/Users?filter=" + q(`emails[primary ge true]`), status: 400, detail: `primary is a boolean`},
		{name: "unknown attribute", method: "GET", path: "/Users?filter=" + q(`favouriteColour eq "blue"`), status: 400,
			detail: `User has no attribute "favouriteColour"`},
		{name: "user attribute on groups", method: "GET", path: "/Groups?filter=" + q(`userName eq "x"`), status: 400,
			detail: `Group has no attribute "userName"`},
		{name: "manager on groups", method: "GET", path: "/Groups?filter=" + q(`manager eq "x"`), status: 400,
			detail: `Group has no attribute "manager"`},
		{name: "root search across types", method: "POST", path: "/.search",
			body:   map[string]any{"schemas": []string{searchSchema}, "filter": `userName eq "bob@example.com" or displayName eq "sales team"`},
			status: 200, want: []string{bob, groupID}},
		{name: "root search short extension name", method: "POST", path: "/.search",
			body:   map[string]any{"schemas": []string{searchSchema}, "filter": `employeeNumber eq "1001" or members pr`},
			status: 200, want: []string{alice}},
		{name: "root search unknown everywhere", method: "POST", path: "/.search",
			body:   map[string]any{"schemas": []string{searchSchema}, "filter": `userName eq "x" or favouriteColour pr`},
			status: 400, detail: `no resource type has the attribute "favouriteColour"`},
		{name: "root search unknown sub-attribute", method: "POST", path: "/.search",
			body:   map[string]any{"schemas": []string{searchSchema}, "filter": `emails[kind eq "work"]`},
			status: 400, detail: `"emails.kind"`},
		{name: "root search boolean gt", method: "POST", path: "/.search",
			body:   map[string]any{"schemas": []string{searchSchema}, "filter": `active gt false`},
			status: 400, detail: `active is a boolean`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, _, doc := ts.do(t, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %v", tc.method, tc.path, status, tc.status, doc)
			}
			if status != http.StatusOK {
				if got := doc["scimType"]; got != "invalidFilter" {
					t.Errorf("scimType %v, want invalidFilter", got)
				}
				if d, _ := doc["detail"].(string); !strings.Contains(d, tc.detail) {
					t.Errorf("detail %q, want it to contain %q", d, tc.detail)
				}
				return
			}
			got := []string{}
			resources, _ := doc["Resources"].([]any)
			for _, r := range resources {
				got = append(got, jsonPath(r, "id").(string))
			}
			if !slices.Equal(got, tc.want) || doc["totalResults"] != float64(len(tc.want)) {
				t.Errorf("listed %v (totalResults %v), want %v", got, doc["totalResults"], tc.want)
			}
		})
	}
}

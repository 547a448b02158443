package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// The attribute gate is tested from the outside, driven by what /Schemas
// serves: every attribute and sub-attribute of User, EnterpriseUser and Group
// is written through every write path (POST, PUT, PATCH add and replace with
// a path, a URN-qualified path, a filtered path, a whole multi-valued
// attribute, and path-less value objects with path keys and with objects).
// What the schema forbids must never be stored or shown: a readOnly value is
// ignored or refused with 400 mutability; a writeOnly or returned:never value
// is accepted and then found nowhere (responses, lists, searches, filters,
// the change feed, the read API, exports, the admin page, the database). What
// the schema allows must be stored, so that no path is vacuously "safe"
// because the test spelled it wrong.

// gateTarget is one attribute, or one sub-attribute of a complex attribute, as /Schemas describes it.
type gateTarget struct {
	endpoint string         // "/Users" or "/Groups"
	urn      string         // the schema that defines it
	core     bool           // urn is the resource's core schema
	attr     map[string]any // the attribute's definition
	sub      map[string]any // the sub-attribute's, or nil
}

func (g gateTarget) attrName() string { return g.attr["name"].(string) }

func (g gateTarget) subName() string {
	if g.sub == nil {
		return ""
	}
	return g.sub["name"].(string)
}

func (g gateTarget) String() string {
	s := strings.TrimPrefix(g.endpoint, "/") + " " + g.urn[strings.LastIndexByte(g.urn, ':')+1:] + " " + g.attrName()
	if g.sub != nil {
		s += "." + g.subName()
	}
	return s
}

func (g gateTarget) def() map[string]any {
	if g.sub != nil {
		return g.sub
	}
	return g.attr
}

func (g gateTarget) multi() bool { return g.attr["multiValued"] == true }

// readOnly: the target or the attribute it belongs to may not be written.
func (g gateTarget) readOnly() bool {
	return g.attr["mutability"] == "readOnly" || g.def()["mutability"] == "readOnly"
}

func (g gateTarget) parentReadOnly() bool { return g.sub != nil && g.attr["mutability"] == "readOnly" }

func (g gateTarget) immutable() bool { return g.def()["mutability"] == "immutable" }

// hidden: the target's values must never leave scimbox.
func (g gateTarget) hidden() bool {
	for _, d := range []map[string]any{g.attr, g.sub} {
		if d != nil && (d["returned"] == "never" || d["mutability"] == "writeOnly") {
			return true
		}
	}
	return false
}

// gateTargets walks the documents /Schemas serves, plus the common attributes
// id and meta, which every resource has (RFC 7643 §3.1) but /Schemas need not list.
func gateTargets(t *testing.T, ts *testServer) []gateTarget {
	t.Helper()
	status, _, doc := ts.do(t, "GET", "/Schemas", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /Schemas: %d", status)
	}
	var common []any
	raw, _ := json.Marshal(attrDocs([]*Attr{idAttr, metaAttr}))
	json.Unmarshal(raw, &common)
	var out []gateTarget
	for _, s := range doc["Resources"].([]any) {
		sc := s.(map[string]any)
		id := sc["id"].(string)
		var g gateTarget
		switch id {
		case userSchema:
			g = gateTarget{endpoint: "/Users", urn: id, core: true}
		case enterpriseSchema:
			g = gateTarget{endpoint: "/Users", urn: id}
		case groupSchema:
			g = gateTarget{endpoint: "/Groups", urn: id, core: true}
		default:
			t.Fatalf("/Schemas serves %s, which this test does not know: teach it", id)
		}
		attrs := sc["attributes"].([]any)
		if g.core {
			attrs = append(attrs, common...)
		}
		for _, a := range attrs {
			g.attr, g.sub = a.(map[string]any), nil
			subs, _ := g.attr["subAttributes"].([]any)
			if len(subs) == 0 {
				out = append(out, g)
			}
			for _, sa := range subs {
				g.sub = sa.(map[string]any)
				out = append(out, g)
			}
		}
	}
	return out
}

// gateRig is the server the matrix runs against, with the resources its writes need.
type gateRig struct {
	ts       *testServer
	schemas  map[string]map[string]map[string]any // attribute definitions by endpoint and name, for anchors
	memberID string                               // a user that groups hold as their member
	seq      atomic.Int64
}

func (rig *gateRig) marker() string { return fmt.Sprintf("gatemark%05d", rig.seq.Add(1)) }

// raw sends a SCIM request and returns the status and the body as text.
func (rig *gateRig) raw(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, rig.ts.URL+"/scim/v2"+path, rd)
	req.Header.Set("Authorization", "Bearer "+rig.ts.token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// anchor is the element a multi-valued attribute of a fresh resource already
// holds, so that filtered paths (attr[type eq "work"].sub) have a target.
func (rig *gateRig) anchor(g gateTarget) map[string]any {
	name := g.attrName()
	if g.endpoint == "/Groups" && name == "members" {
		return map[string]any{"value": rig.memberID}
	}
	el := map[string]any{"type": "work"}
	for _, s := range g.attr["subAttributes"].([]any) {
		sn := s.(map[string]any)["name"].(string)
		if sn == "value" {
			return map[string]any{"type": "work", "value": "anchor-" + name}
		}
		if _, ok := el["anchor"]; !ok && s.(map[string]any)["type"] == "string" && sn != "type" && sn != "display" {
			el[sn] = "anchor-" + name // addresses: formatted
			el["anchor"] = sn
		}
	}
	delete(el, "anchor")
	return el
}

// base is the body of a fresh resource: a unique name, an anchor in every
// writable multi-valued attribute, a manager.
func (rig *gateRig) base(endpoint string) map[string]any {
	if endpoint == "/Groups" {
		return map[string]any{"schemas": []any{groupSchema}, "displayName": rig.marker() + "-group",
			"members": []any{map[string]any{"value": rig.memberID}}}
	}
	body := map[string]any{"schemas": []any{userSchema, enterpriseSchema}, "userName": rig.marker() + "@example.com",
		enterpriseSchema: map[string]any{"manager": map[string]any{"value": "anchor-manager"}}}
	for name, a := range rig.schemas["/Users"] {
		if a["multiValued"] == true && a["mutability"] != "readOnly" {
			body[name] = []any{rig.anchor(gateTarget{endpoint: "/Users", attr: a})}
		}
	}
	return body
}

// create POSTs a fresh resource and returns its id.
func (rig *gateRig) create(t *testing.T, endpoint string) string {
	t.Helper()
	status, body := rig.raw(t, "POST", endpoint, rig.base(endpoint))
	if status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s", endpoint, status, body)
	}
	var doc map[string]any
	json.Unmarshal([]byte(body), &doc)
	return doc["id"].(string)
}

// value is what the matrix writes: a marker, or true for booleans.
func (g gateTarget) value(marker string) any {
	if g.def()["type"] == "boolean" {
		return true
	}
	return marker
}

// element is the target's value as it sits in its attribute: v itself, an
// object {sub: v} (with the value a single complex attribute needs to exist),
// or for a multi-valued attribute an element like the anchor.
func (rig *gateRig) element(g gateTarget, v any) any {
	if g.sub == nil {
		return v
	}
	var el map[string]any
	switch {
	case g.multi() && g.attr["mutability"] != "readOnly":
		el = rig.anchor(g)
	case g.attrName() == "manager":
		el = map[string]any{"value": "anchor-manager"}
	default:
		el = map[string]any{}
	}
	el[g.subName()] = v
	if g.multi() {
		return []any{el}
	}
	return el
}

// put sets the target in a resource body.
func (rig *gateRig) put(body map[string]any, g gateTarget, v any) {
	if g.core {
		body[g.attrName()] = rig.element(g, v)
		return
	}
	ext, _ := body[g.urn].(map[string]any)
	if ext == nil {
		ext = map[string]any{}
	}
	ext[g.attrName()] = rig.element(g, v)
	body[g.urn] = ext
}

// gateWrite is one way of writing a value.
type gateWrite struct {
	name   string
	method string
	body   any
	// names is true when a PATCH path names the target itself (or the
	// read-only attribute it belongs to), so that a forbidden write must be
	// refused rather than ignored.
	names bool
}

// writes lists every way of writing v to the target.
func (rig *gateRig) writes(g gateTarget, v any) []gateWrite {
	body := rig.base(g.endpoint)
	rig.put(body, g, v)
	replaced := rig.base(g.endpoint)
	rig.put(replaced, g, v)
	out := []gateWrite{{name: "POST", method: "POST", body: body}, {name: "PUT", method: "PUT", body: replaced}}

	name, sub := g.attrName(), g.subName()
	filter := `[type eq "work"]`
	if g.endpoint == "/Groups" && name == "members" {
		filter = `[value eq "` + rig.memberID + `"]`
	}
	type path struct {
		label, path string
		value       any
		names       bool
	}
	var rel []path // paths relative to the target's schema
	switch {
	case g.sub == nil:
		rel = []path{{"path", name, v, true}}
	case g.multi():
		rel = []path{{"whole attribute", name, rig.element(g, v), g.parentReadOnly()}, {"filtered path", name + filter + "." + sub, v, true}}
	default:
		rel = []path{{"sub-attribute path", name + "." + sub, v, true}}
	}
	var paths []path
	for _, p := range rel {
		qualified := p
		qualified.label, qualified.path = "URN-qualified "+p.label, g.urn+":"+p.path
		bare := p
		if !g.core { // Entra's legacy paths name extension attributes without their URN
			bare.label = "URN-less " + p.label
		}
		paths = append(paths, bare, qualified)
	}
	object := map[string]any{}
	if g.core {
		object[name] = rig.element(g, v)
	} else {
		object[g.urn] = map[string]any{name: rig.element(g, v)}
	}
	for _, op := range []string{"add", "replace"} {
		for _, p := range paths {
			out = append(out, gateWrite{name: "PATCH " + op + " " + p.label + " " + p.path, method: "PATCH", names: p.names,
				body: patchBody(map[string]any{"op": op, "path": p.path, "value": p.value})})
			// Path-less value objects whose keys are paths (aadOptscim062020): a
			// client echoing what it read is not refused, whatever the key names.
			out = append(out, gateWrite{name: "PATCH " + op + " path-less {" + p.path + "}", method: "PATCH",
				body: patchBody(map[string]any{"op": op, "value": map[string]any{p.path: p.value}})})
		}
		out = append(out, gateWrite{name: "PATCH " + op + " path-less object", method: "PATCH",
			body: patchBody(map[string]any{"op": op, "value": object})})
	}
	return out
}

// valuesAt returns the values of the target in a resource document.
func valuesAt(doc map[string]any, g gateTarget) []any {
	c := doc
	if !g.core {
		c, _ = doc[g.urn].(map[string]any)
	}
	v := c[g.attrName()]
	if g.sub == nil {
		return []any{v}
	}
	var out []any
	switch v := v.(type) {
	case map[string]any:
		out = append(out, v[g.subName()])
	case []any:
		for _, el := range v {
			if m, ok := el.(map[string]any); ok {
				out = append(out, m[g.subName()])
			}
		}
	}
	return out
}

func TestSchemaGateWritePaths(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	rig := &gateRig{ts: ts, schemas: map[string]map[string]map[string]any{"/Users": {}, "/Groups": {}}}
	targets := gateTargets(t, ts)
	for _, g := range targets {
		if g.core {
			rig.schemas[g.endpoint][g.attrName()] = g.attr
		}
	}
	rig.memberID = ts.createUser(t, "gate-member@example.com")
	key, _, err := ts.store.CreateAppKey(context.Background(), "gate")
	if err != nil {
		t.Fatal(err)
	}
	ac := setUpAdmin(t, ts)

	var hiddenSeen, readOnlySeen, writableSeen int
	for _, g := range targets {
		switch {
		case g.hidden():
			hiddenSeen++
		case g.readOnly():
			readOnlySeen++
		case !g.immutable():
			writableSeen++
		}
		if g.def()["returned"] == "request" {
			t.Errorf("%s is returned on request, which the gate does not implement: teach visible and this test", g)
		}
	}
	if hiddenSeen == 0 || readOnlySeen == 0 || writableSeen == 0 {
		t.Fatalf("targets: %d hidden, %d read-only, %d writable: the walk of /Schemas found too little", hiddenSeen, readOnlySeen, writableSeen)
	}

	for _, g := range targets {
		t.Run(g.String(), func(t *testing.T) {
			t.Parallel()
			var markers []string
			ids := map[string]bool{}
			for i := range rig.writes(g, nil) {
				marker := rig.marker()
				v := g.value(marker)
				id := rig.create(t, g.endpoint)
				w := rig.writes(g, v)[i]
				path := g.endpoint + "/" + id
				if w.method == "POST" {
					path = g.endpoint
				}
				status, resp := rig.raw(t, w.method, path, w.body)
				if w.method == "POST" && status == http.StatusCreated {
					var doc map[string]any
					json.Unmarshal([]byte(resp), &doc)
					id = doc["id"].(string)
				}
				ids[id] = true
				ok2xx := status >= 200 && status < 300
				got := resp // a successful write answers with the stored resource…
				if !ok2xx || status == http.StatusNoContent || g.hidden() {
					_, got = rig.raw(t, "GET", g.endpoint+"/"+id, nil) // …else read it back
				}
				var doc map[string]any
				json.Unmarshal([]byte(got), &doc)
				var scimErr map[string]any
				json.Unmarshal([]byte(resp), &scimErr)
				switch {
				case g.hidden():
					markers = append(markers, marker)
					if !ok2xx {
						t.Errorf("%s: %d %s, want it accepted (and dropped)", w.name, status, resp)
					}
					if strings.Contains(resp, marker) || strings.Contains(got, marker) {
						t.Errorf("%s: the never-returned value came back:\nresponse %s\nGET %s", w.name, resp, got)
					}
				case g.readOnly():
					refused := status == http.StatusBadRequest && scimErr["scimType"] == "mutability"
					if w.names && !refused {
						t.Errorf("%s: %d %s, want 400 mutability (RFC 7644 §3.5.2)", w.name, status, resp)
					}
					if !w.names && !ok2xx {
						t.Errorf("%s: %d %s, want the read-only value ignored (RFC 7644 §3.5.1)", w.name, status, resp)
					}
					if strings.Contains(got, marker) {
						t.Errorf("%s: the client wrote the read-only value: %s", w.name, got)
					}
				case g.immutable():
					if w.names && status != http.StatusBadRequest {
						t.Errorf("%s: %d %s, want the immutable value refused", w.name, status, resp)
					}
					if status >= 500 {
						t.Errorf("%s: %d %s", w.name, status, resp)
					}
				default:
					if !ok2xx {
						t.Errorf("%s: %d %s, want the writable value stored", w.name, status, resp)
						continue
					}
					if !containsJSON(valuesAt(doc, g), v) {
						t.Errorf("%s: %v not stored; GET %s", w.name, v, got)
					}
				}
			}
			if g.hidden() {
				checkHiddenEverywhere(t, rig, g, markers, ids, key, ac)
			}
		})
	}
}

func containsJSON(values []any, want any) bool {
	for _, v := range values {
		if v == want {
			return true
		}
	}
	return false
}

// checkHiddenEverywhere looks for the markers written to a never-returned
// attribute on every surface that shows users, and checks that it cannot be
// filtered or sorted on.
func checkHiddenEverywhere(t *testing.T, rig *gateRig, g gateTarget, markers []string, ids map[string]bool, appKey string, ac *adminClient) {
	t.Helper()
	ctx := context.Background()
	seen := func(surface, text string) {
		t.Helper()
		for _, m := range markers {
			if strings.Contains(text, m) {
				t.Errorf("%s shows the never-returned value %s", surface, m)
				return
			}
		}
	}
	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", rig.ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+appKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	_, list := rig.raw(t, "GET", g.endpoint+"?count=1000", nil)
	seen("SCIM list", list)
	_, search := rig.raw(t, "POST", g.endpoint+"/.search", map[string]any{"schemas": []any{searchSchema}, "count": 1000})
	seen("SCIM .search", search)
	_, root := rig.raw(t, "POST", "/.search", map[string]any{"schemas": []any{searchSchema}, "count": 1000})
	seen("SCIM root .search", root)
	seen("API users", get("/api/v1/users?limit=1000"))
	seen("API groups", get("/api/v1/groups?limit=1000"))
	for cursor := "0"; ; {
		page := get("/api/v1/events?limit=1000&after=" + cursor)
		seen("API events", page)
		var doc map[string]any
		json.Unmarshal([]byte(page), &doc)
		if data, _ := doc["data"].([]any); len(data) == 0 {
			break
		}
		cursor = doc["next"].(string)
	}
	for _, file := range []string{"users.json", "users.csv", "groups.json"} {
		status, _, body := ac.get(t, "/export/"+file)
		if status != http.StatusOK {
			t.Errorf("export %s: %d", file, status)
		}
		seen("export "+file, body)
	}
	for id := range ids {
		seen("API user", get("/api/v1/users/"+id))
		page := "/users/" + id
		if g.endpoint == "/Groups" {
			page = "/groups/" + id
		}
		if status, _, body := ac.get(t, page); status != http.StatusOK {
			t.Errorf("admin page %s: %d", page, status)
		} else {
			seen("admin page", body)
		}
	}
	// Not stored in the clear anywhere: neither the resource nor the feed.
	for _, q := range []string{"SELECT attrs || overrides FROM users", "SELECT attrs FROM groups", "SELECT data FROM events"} {
		rows, err := rig.ts.store.r.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			seen("database ("+q+")", s)
		}
		rows.Close()
	}

	// Never matched by a filter (RFC 7643 §2.2 lets a provider refuse), never sorted by.
	name := g.attrName()
	paths := []string{name, g.urn + ":" + name}
	if g.sub != nil {
		paths = []string{name + "." + g.subName(), g.urn + ":" + name + "." + g.subName()}
	}
	var filters []string
	for _, p := range paths {
		filters = append(filters, p+` eq "`+markers[0]+`"`, p+" pr", `not (`+p+` pr)`, `userName pr and `+p+` co "gate"`)
	}
	if g.sub != nil {
		filters = append(filters, name+`[`+g.subName()+` eq "`+markers[0]+`"]`)
	}
	for _, f := range filters {
		for _, req := range []struct{ method, path string }{
			{"GET", g.endpoint + "?filter=" + url.QueryEscape(f)},
			{"POST", g.endpoint + "/.search"},
			{"POST", "/.search"},
		} {
			var body any
			if req.method == "POST" {
				body = map[string]any{"schemas": []any{searchSchema}, "filter": f}
			}
			status, resp := rig.raw(t, req.method, req.path, body)
			var doc map[string]any
			json.Unmarshal([]byte(resp), &doc)
			if status != http.StatusBadRequest || doc["scimType"] != "invalidFilter" {
				t.Errorf("%s %s filter %s: %d %s, want 400 invalidFilter", req.method, req.path, f, status, resp)
			}
		}
	}
	if status, resp := rig.raw(t, "GET", g.endpoint+"?sortBy="+url.QueryEscape(paths[0]), nil); status != http.StatusBadRequest {
		t.Errorf("sortBy %s: %d %s, want 400", paths[0], status, resp)
	}
}

// TestMultiValuedPrimaryAndDuplicates covers the two rules RFC 7643 §2.4 sets
// for multi-valued attributes on POST and PUT: "primary" true at most once (a
// MUST: the first primary is kept, the others become false, as RFC 7644 §3.5.2
// has a PATCH do, so that a directory that sends two is not refused forever),
// and no (type, value) pair twice (a SHOULD NOT: duplicates are merged).
func TestMultiValuedPrimaryAndDuplicates(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	tests := []struct {
		name   string
		attr   string
		values string
		want   string
	}{
		{
			name:   "two primaries: the first stays primary",
			attr:   "emails",
			values: `[{"type":"work","value":"w@x","primary":true},{"type":"home","value":"h@x","primary":true}]`,
			want:   `[{"type":"work","value":"w@x","primary":true},{"type":"home","value":"h@x","primary":false}]`,
		},
		{
			name:   "primaries as Entra's strings",
			attr:   "phoneNumbers",
			values: `[{"type":"work","value":"1","primary":"False"},{"type":"mobile","value":"2","primary":"True"},{"type":"home","value":"3","primary":"True"}]`,
			want:   `[{"type":"work","value":"1","primary":false},{"type":"mobile","value":"2","primary":true},{"type":"home","value":"3","primary":false}]`,
		},
		{
			name:   "identical elements are stored once",
			attr:   "emails",
			values: `[{"type":"work","value":"w@x"},{"type":"work","value":"w@x"}]`,
			want:   `[{"type":"work","value":"w@x"}]`,
		},
		{
			name:   "emails are the same whatever their case (not caseExact)",
			attr:   "emails",
			values: `[{"type":"work","value":"w@x","display":"W"},{"type":"Work","value":"W@X"}]`,
			want:   `[{"type":"Work","value":"W@X","display":"W"}]`,
		},
		{
			name:   "a duplicate that is primary makes the element primary",
			attr:   "emails",
			values: `[{"type":"home","value":"h@x"},{"type":"work","value":"w@x"},{"type":"work","value":"w@x","primary":true}]`,
			want:   `[{"type":"home","value":"h@x"},{"type":"work","value":"w@x","primary":true}]`,
		},
		{
			name:   "the same value with another type is another element",
			attr:   "emails",
			values: `[{"type":"work","value":"w@x"},{"type":"home","value":"w@x"}]`,
			want:   `[{"type":"work","value":"w@x"},{"type":"home","value":"w@x"}]`,
		},
		{
			name:   "identical addresses (no value sub-attribute) are stored once",
			attr:   "addresses",
			values: `[{"type":"work","locality":"Paris"},{"type":"work","locality":"Paris"},{"type":"work","locality":"Lyon"}]`,
			want:   `[{"type":"work","locality":"Paris"},{"type":"work","locality":"Lyon"}]`,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var values any
			if err := json.Unmarshal([]byte(tt.values), &values); err != nil {
				t.Fatal(err)
			}
			userName := fmt.Sprintf("multi%d@example.com", i)
			body := map[string]any{"schemas": []any{userSchema}, "userName": userName, tt.attr: values}
			status, _, created := ts.do(t, "POST", "/Users", body)
			if status != http.StatusCreated {
				t.Fatalf("POST: %d %v", status, created)
			}
			id := created["id"].(string)
			put := map[string]any{"schemas": []any{userSchema}, "userName": userName}
			if status, _, doc := ts.do(t, "PUT", "/Users/"+id, put); status != http.StatusOK {
				t.Fatalf("PUT without %s: %d %v", tt.attr, status, doc)
			}
			put[tt.attr] = values
			status, _, replaced := ts.do(t, "PUT", "/Users/"+id, put)
			if status != http.StatusOK {
				t.Fatalf("PUT: %d %v", status, replaced)
			}
			_, _, got := ts.do(t, "GET", "/Users/"+id, nil)
			for _, c := range []struct {
				name string
				doc  map[string]any
			}{{"POST", created}, {"PUT", replaced}, {"GET", got}} {
				if got, want := patchTestJSON(t, c.doc[tt.attr]), patchTestJSON(t, tt.want); got != want {
					t.Errorf("%s %s = %s, want %s", c.name, tt.attr, got, want)
				}
			}
		})
	}
}

// TestRequestLimitsOnEveryWritePath: the bounds on values per request and on
// one value's size hold for POST and PUT as they do for PATCH, for users and
// groups, members and unknown extensions included; a refused request changes
// nothing.
func TestRequestLimitsOnEveryWritePath(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	uid := ts.createUser(t, "limits@example.com")
	gid := ts.createGroup(t, "Limits")
	emails := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"value": fmt.Sprintf("e%d@x", i)}
		}
		return out
	}
	members := make([]any, maxValuesPerRequest+1)
	for i := range members {
		members[i] = map[string]any{"value": uid}
	}
	long := strings.Repeat("x", maxValueBytes+1)
	tooMany := emails(maxValuesPerRequest + 1)
	tests := []struct {
		name, method, path string
		body               any
	}{
		{"POST user with too many emails", "POST", "/Users", map[string]any{"userName": "many@example.com", "emails": tooMany}},
		{"PUT user with too many emails", "PUT", "/Users/" + uid, map[string]any{"userName": "limits@example.com", "emails": tooMany}},
		{"PATCH path-less with too many emails", "PATCH", "/Users/" + uid, patchBody(map[string]any{"op": "add", "value": map[string]any{"emails": tooMany}})},
		{"PATCH with too many emails", "PATCH", "/Users/" + uid, patchBody(map[string]any{"op": "add", "path": "emails", "value": tooMany})},
		{"POST group with too many members", "POST", "/Groups", map[string]any{"displayName": "Many", "members": members}},
		{"PUT group with too many members", "PUT", "/Groups/" + gid, map[string]any{"displayName": "Limits", "members": members}},
		{"PATCH group with too many members", "PATCH", "/Groups/" + gid, patchBody(map[string]any{"op": "add", "path": "members", "value": members})},
		{"POST user with a long value in an unknown extension", "POST", "/Users",
			map[string]any{"userName": "long@example.com", "urn:example:ext:2.0:User": map[string]any{"badge": long}}},
		{"POST user with a long unknown sub-attribute", "POST", "/Users",
			map[string]any{"userName": "long2@example.com", "emails": []any{map[string]any{"value": "a@x", "note": long}}}},
		{"POST group with a long member id", "POST", "/Groups", map[string]any{"displayName": "Long", "members": []any{map[string]any{"value": long}}}},
		{"PATCH group with a long member id", "PATCH", "/Groups/" + gid, patchBody(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": long}}})},
		{"PATCH user with a long value in a path-less object", "PATCH", "/Users/" + uid, patchBody(map[string]any{"op": "replace", "value": map[string]any{"title": long}})},
	}
	for _, tt := range tests {
		status, _, doc := ts.do(t, tt.method, tt.path, tt.body)
		if status != http.StatusBadRequest || doc["scimType"] != "invalidValue" {
			t.Errorf("%s: %d %v, want 400 invalidValue", tt.name, status, doc)
		}
	}
	_, _, users := ts.do(t, "GET", "/Users", nil)
	_, _, groups := ts.do(t, "GET", "/Groups", nil)
	_, _, user := ts.do(t, "GET", "/Users/"+uid, nil)
	_, _, group := ts.do(t, "GET", "/Groups/"+gid, nil)
	if users["totalResults"] != float64(1) || groups["totalResults"] != float64(1) || jsonPath(user, "meta", "version") != `W/"1"` ||
		jsonPath(group, "meta", "version") != `W/"1"` {
		t.Errorf("refused requests changed something: %v users, %v groups, user %v, group %v", users["totalResults"], groups["totalResults"], user, group)
	}
	// At the bound, the request goes through.
	if status, _, doc := ts.do(t, "POST", "/Users", map[string]any{"userName": "bound@example.com", "emails": emails(maxValuesPerRequest)}); status != http.StatusCreated {
		t.Errorf("POST with %d emails: %d %v", maxValuesPerRequest, status, doc["detail"])
	}
	atBound := patchBody(map[string]any{"op": "add", "path": "members", "value": members[:maxValuesPerRequest]},
		map[string]any{"op": "replace", "path": "externalId", "value": "x"})
	if status, _, doc := ts.do(t, "PATCH", "/Groups/"+gid, atBound); status != http.StatusNoContent {
		t.Errorf("PATCH with %d members and another operation: %d %v", maxValuesPerRequest, status, doc["detail"])
	}
}

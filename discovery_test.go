package main

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// discoveryChecker collects violations of RFC 7643 §5–§8.7 in the discovery
// documents, with the JSON location of each, so that one run reports them all.
type discoveryChecker struct {
	t        *testing.T
	problems []string
}

func (c *discoveryChecker) fail(where, format string, args ...any) {
	c.problems = append(c.problems, where+": "+fmt.Sprintf(format, args...))
}

// str returns obj[key] as a non-empty string, reporting a problem otherwise.
func (c *discoveryChecker) str(where string, obj map[string]any, key string) string {
	s, ok := obj[key].(string)
	if !ok || s == "" {
		c.fail(where, "%q must be a non-empty string, got %#v", key, obj[key])
	}
	return s
}

// boolean reports a problem unless obj[key] is a JSON boolean.
func (c *discoveryChecker) boolean(where string, obj map[string]any, key string) {
	if _, ok := obj[key].(bool); !ok {
		c.fail(where, "%q must be a boolean, got %#v", key, obj[key])
	}
}

// integer reports a problem unless obj[key] is a non-negative JSON integer.
func (c *discoveryChecker) integer(where string, obj map[string]any, key string) {
	n, ok := obj[key].(float64)
	if !ok || n < 0 || n != float64(int64(n)) {
		c.fail(where, "%q must be a non-negative integer, got %#v", key, obj[key])
	}
}

// object returns obj[key] as an object, reporting a problem otherwise.
func (c *discoveryChecker) object(where string, obj map[string]any, key string) map[string]any {
	m, ok := obj[key].(map[string]any)
	if !ok {
		c.fail(where, "%q must be an object, got %#v", key, obj[key])
	}
	return m
}

// oneOf reports a problem unless obj[key] is one of the allowed strings.
func (c *discoveryChecker) oneOf(where string, obj map[string]any, key string, allowed ...string) {
	if s, _ := obj[key].(string); !slices.Contains(allowed, s) {
		c.fail(where, "%q is %#v, want one of %v", key, obj[key], allowed)
	}
}

// onlyKeys reports members that the RFC does not define, which catches typos
// such as "referenceType" that a strict client would reject or ignore.
func (c *discoveryChecker) onlyKeys(where string, obj map[string]any, allowed ...string) {
	for k := range obj {
		if !slices.Contains(allowed, k) {
			c.fail(where, "unexpected member %q (allowed: %v)", k, allowed)
		}
	}
}

// schemasIs checks the "schemas" array of a discovery resource.
func (c *discoveryChecker) schemasIs(where string, obj map[string]any, urn string) {
	if got := obj["schemas"]; !reflect.DeepEqual(got, []any{urn}) {
		c.fail(where, `"schemas" is %#v, want [%q]`, got, urn)
	}
}

// meta checks meta.resourceType and meta.location (RFC 7643 §3.1), and that
// the location serves the same document.
func (c *discoveryChecker) meta(ts *testServer, where string, doc map[string]any, resourceType, location string) {
	m := c.object(where, doc, "meta")
	if m == nil {
		return
	}
	if got := m["resourceType"]; got != resourceType {
		c.fail(where, "meta.resourceType is %#v, want %q", got, resourceType)
	}
	want := ts.URL + "/scim/v2" + location
	if got := m["location"]; got != want {
		c.fail(where, "meta.location is %#v, want %q", got, want)
		return
	}
	status, _, fetched := ts.do(c.t, "GET", location, nil)
	if status != http.StatusOK || !reflect.DeepEqual(fetched, doc) {
		c.fail(where, "GET meta.location answers %d with a different document: %v", status, fetched)
	}
}

// list checks a ListResponse envelope (RFC 7644 §3.4.2) and returns its resources.
func (c *discoveryChecker) list(where string, doc map[string]any) []map[string]any {
	c.schemasIs(where, doc, listSchema)
	raw, ok := doc["Resources"].([]any)
	if !ok || len(raw) == 0 {
		c.fail(where, "Resources must be a non-empty array, got %#v", doc["Resources"])
		return nil
	}
	if got := doc["totalResults"]; got != float64(len(raw)) {
		c.fail(where, "totalResults is %#v, want %d", got, len(raw))
	}
	if got := doc["itemsPerPage"]; got != float64(len(raw)) {
		c.fail(where, "itemsPerPage is %#v, want %d", got, len(raw))
	}
	if got := doc["startIndex"]; got != float64(1) {
		c.fail(where, "startIndex is %#v, want 1", got)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		if out[i], ok = r.(map[string]any); !ok {
			c.fail(fmt.Sprintf("%s.Resources[%d]", where, i), "not an object")
		}
	}
	return out
}

// attributeKeys are the members of an attribute definition (RFC 7643 §7).
var attributeKeys = []string{"name", "type", "multiValued", "description", "required", "canonicalValues",
	"caseExact", "mutability", "returned", "uniqueness", "referenceTypes", "subAttributes"}

// attributes checks a list of attribute definitions; sub is true for subAttributes.
func (c *discoveryChecker) attributes(where string, raw any, sub bool, resourceTypes []string) {
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		c.fail(where, "must be a non-empty array, got %#v", raw)
		return
	}
	seen := map[string]bool{}
	for i, el := range list {
		a, ok := el.(map[string]any)
		if !ok {
			c.fail(fmt.Sprintf("%s[%d]", where, i), "not an object")
			continue
		}
		name, _ := a["name"].(string)
		at := fmt.Sprintf("%s[%d] %s", where, i, name)
		if !validAttrName(name) || name == "$ref" && !sub {
			c.fail(at, "name %#v is not an ATTRNAME (RFC 7643 §2.1)", a["name"])
		}
		if seen[strings.ToLower(name)] {
			c.fail(at, "name is defined twice (attribute names are case-insensitive)")
		}
		seen[strings.ToLower(name)] = true
		c.onlyKeys(at, a, attributeKeys...)

		c.oneOf(at, a, "type", typeString, typeBoolean, typeDecimal, typeInteger, typeDateTime, typeReference, typeComplex, typeBinary)
		typ, _ := a["type"].(string)
		c.boolean(at, a, "multiValued")
		if _, ok := a["description"].(string); !ok {
			c.fail(at, `"description" must be a string, got %#v`, a["description"])
		}
		c.boolean(at, a, "required")
		switch typ {
		case typeString, typeReference, typeBinary:
			c.boolean(at, a, "caseExact")
		default:
			if _, present := a["caseExact"]; present {
				c.boolean(at, a, "caseExact")
			}
		}
		c.oneOf(at, a, "mutability", "readOnly", "readWrite", "immutable", "writeOnly")
		c.oneOf(at, a, "returned", "always", "never", "default", "request")
		c.oneOf(at, a, "uniqueness", "none", "server", "global")

		if typ == typeReference {
			refs, ok := a["referenceTypes"].([]any)
			if !ok || len(refs) == 0 {
				c.fail(at, `a reference needs "referenceTypes" (RFC 7643 §7), got %#v`, a["referenceTypes"])
			}
			for _, r := range refs {
				if s, _ := r.(string); s != "external" && s != "uri" && !slices.Contains(resourceTypes, s) {
					c.fail(at, "referenceTypes holds %#v: want external, uri or a resource type of /ResourceTypes %v", r, resourceTypes)
				}
			}
		} else if _, present := a["referenceTypes"]; present {
			c.fail(at, `"referenceTypes" on a %s attribute`, typ)
		}

		if raw, present := a["canonicalValues"]; present {
			values, ok := raw.([]any)
			if !ok || len(values) == 0 {
				c.fail(at, "canonicalValues must be a non-empty array, got %#v", raw)
			}
			for _, v := range values {
				var ok bool
				switch typ {
				case typeString, typeReference, typeDateTime, typeBinary:
					_, ok = v.(string)
				case typeBoolean:
					_, ok = v.(bool)
				case typeInteger, typeDecimal:
					_, ok = v.(float64)
				}
				if !ok {
					c.fail(at, "canonical value %#v is not of type %s", v, typ)
				}
			}
		}

		subs, hasSubs := a["subAttributes"]
		switch {
		case typ == typeComplex && sub:
			c.fail(at, "a sub-attribute must not be complex (RFC 7643 §2.3.8)")
		case typ == typeComplex && !hasSubs:
			c.fail(at, "a complex attribute needs subAttributes")
		case typ != typeComplex && hasSubs:
			c.fail(at, "subAttributes on a %s attribute", typ)
		}
		if hasSubs && !sub {
			c.attributes(at+".subAttributes", subs, true, resourceTypes)
		}
	}
}

// TestDiscoveryDocumentsFollowRFC7643 fetches /ServiceProviderConfig,
// /ResourceTypes and /Schemas over HTTP and checks them against RFC 7643 §5
// (service provider configuration), §6 (resource types), §7 (schema
// definitions) and §8.7 (the schemas' own representation): strict clients
// refuse to start on a server whose discovery documents break these rules.
func TestDiscoveryDocumentsFollowRFC7643(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	c := &discoveryChecker{t: t}

	// §5 Service provider configuration.
	status, _, spc := ts.do(t, "GET", "/ServiceProviderConfig", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /ServiceProviderConfig: %d", status)
	}
	c.schemasIs("ServiceProviderConfig", spc, spcSchema)
	c.onlyKeys("ServiceProviderConfig", spc, "schemas", "documentationUri", "patch", "bulk", "filter",
		"changePassword", "sort", "etag", "authenticationSchemes", "meta")
	for _, feature := range []string{"patch", "bulk", "filter", "changePassword", "sort", "etag"} {
		at := "ServiceProviderConfig." + feature
		if f := c.object("ServiceProviderConfig", spc, feature); f != nil {
			c.boolean(at, f, "supported")
			switch feature {
			case "bulk":
				c.integer(at, f, "maxOperations")
				c.integer(at, f, "maxPayloadSize")
			case "filter":
				c.integer(at, f, "maxResults")
			}
		}
	}
	if schemes, ok := spc["authenticationSchemes"].([]any); !ok || len(schemes) == 0 {
		c.fail("ServiceProviderConfig", "authenticationSchemes must be a non-empty array, got %#v", spc["authenticationSchemes"])
	} else {
		for i, raw := range schemes {
			at := fmt.Sprintf("ServiceProviderConfig.authenticationSchemes[%d]", i)
			s, _ := raw.(map[string]any)
			c.onlyKeys(at, s, "type", "name", "description", "specUri", "documentationUri", "primary")
			c.oneOf(at, s, "type", "oauth", "oauth2", "oauthbearertoken", "httpbasic", "httpdigest")
			c.str(at, s, "name")
			c.str(at, s, "description")
		}
	}
	c.meta(ts, "ServiceProviderConfig", spc, "ServiceProviderConfig", "/ServiceProviderConfig")

	// §7 Schemas first, so that resource types can be checked against them.
	status, _, schemaList := ts.do(t, "GET", "/Schemas", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /Schemas: %d", status)
	}
	status, _, rtList := ts.do(t, "GET", "/ResourceTypes", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /ResourceTypes: %d", status)
	}
	rts := c.list("ResourceTypes", rtList)
	var rtNames []string
	for _, rt := range rts {
		if name, ok := rt["name"].(string); ok {
			rtNames = append(rtNames, name)
		}
	}
	schemaIDs := map[string]bool{}
	for i, sc := range c.list("Schemas", schemaList) {
		id, _ := sc["id"].(string)
		at := fmt.Sprintf("Schemas[%d] %s", i, id)
		c.schemasIs(at, sc, schemaSchema)
		c.onlyKeys(at, sc, "schemas", "id", "name", "description", "attributes", "meta")
		if !strings.HasPrefix(id, "urn:") {
			c.fail(at, "id %#v is not a URN", sc["id"])
		}
		if schemaIDs[id] {
			c.fail(at, "schema listed twice")
		}
		schemaIDs[id] = true
		c.str(at, sc, "name")
		c.attributes(at+".attributes", sc["attributes"], false, rtNames)
		c.meta(ts, at, sc, "Schema", "/Schemas/"+id)
	}

	// §6 Resource types.
	for i, rt := range rts {
		name, _ := rt["name"].(string)
		at := fmt.Sprintf("ResourceTypes[%d] %s", i, name)
		c.schemasIs(at, rt, rtSchema)
		c.onlyKeys(at, rt, "schemas", "id", "name", "description", "endpoint", "schema", "schemaExtensions", "meta")
		c.str(at, rt, "name")
		if endpoint := c.str(at, rt, "endpoint"); !strings.HasPrefix(endpoint, "/") {
			c.fail(at, "endpoint %q is not relative to the base URL", endpoint)
		}
		if s := c.str(at, rt, "schema"); !schemaIDs[s] {
			c.fail(at, "schema %q is not served by /Schemas", s)
		}
		exts, present := rt["schemaExtensions"]
		if list, ok := exts.([]any); present && !ok {
			c.fail(at, "schemaExtensions must be an array, got %#v", exts)
		} else {
			for j, raw := range list {
				eat := fmt.Sprintf("%s.schemaExtensions[%d]", at, j)
				e, _ := raw.(map[string]any)
				c.onlyKeys(eat, e, "schema", "required")
				if s := c.str(eat, e, "schema"); !schemaIDs[s] {
					c.fail(eat, "schema %q is not served by /Schemas", s)
				}
				c.boolean(eat, e, "required")
			}
		}
		c.meta(ts, at, rt, "ResourceType", "/ResourceTypes/"+name)
	}

	for _, p := range c.problems {
		t.Error(p)
	}
}

package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// The PATCH engine is tested on attribute maps, with operations decoded from
// JSON bodies by decodePatch so that the real decoding path (field-name and op
// casing, json.Number, null) is exercised. The bodies are the ones Entra sends
// (../shared/entra-scim.md §2.6, §2.7, §2.9, §5, §8).

const (
	entUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	// defaultUser is the stored user most cases start from.
	defaultUser = `{"userName":"bjensen"}`
	// twoEmails is a user with a work and a home email.
	twoEmails = `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com"}]}`
)

// patchTestAttrs turns a JSON document into stored attributes, as a POST would.
func patchTestAttrs(t testing.TB, rt *resourceType, doc string) map[string]any {
	t.Helper()
	var body map[string]any
	if err := decodeJSON([]byte(doc), &body); err != nil {
		t.Fatalf("bad test attributes %s: %v", doc, err)
	}
	attrs, err := normalizeAttrs(rt, body)
	if err != nil {
		t.Fatalf("normalizeAttrs(%s): %v", doc, err)
	}
	return attrs
}

// patchTestApply decodes body with decodePatch and applies it to the stored
// attributes start. A decoding error is returned like an apply error.
func patchTestApply(t testing.TB, rt *resourceType, start, body string) (map[string]any, []MemberChange, error) {
	t.Helper()
	attrs := patchTestAttrs(t, rt, start)
	req, err := decodePatch([]byte(body))
	if err != nil {
		return attrs, nil, err
	}
	changes, err := applyPatch(rt, attrs, req.Operations)
	return attrs, changes, err
}

// patchTestJSON renders v as canonical JSON (sorted keys); a string is first
// parsed as JSON, so that expected documents can be written by hand.
func patchTestJSON(t testing.TB, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		var doc any
		if err := decodeJSON([]byte(s), &doc); err != nil {
			t.Fatalf("bad expected JSON %s: %v", s, err)
		}
		v = doc
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	return string(b)
}

// patchTestErr checks err against the expected scimType ("" for no error).
func patchTestErr(t testing.TB, err error, wantType string) {
	t.Helper()
	if wantType == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want scimType %q", wantType)
	}
	var se *scimError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *scimError", err, err)
	}
	if got, want := se.ScimType, wantType; got != want {
		t.Errorf("scimType = %q, want %q (detail %q)", got, want, se.Detail)
	}
	if got, want := se.Status, http.StatusBadRequest; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if se.Detail == "" {
		t.Error("error has no detail")
	}
}

// patchTestMembers are the members a membersRemoveMatching filter is tried on.
var patchTestMembers = []string{"u1", "u2", "7f4bc1a3-285e-48ae-8202-5accb43efb0e", "f648f8d5ea4e4cd38e9c"}

// patchTestChanges describes membership changes as strings, e.g. "add u1,u2";
// a membersRemoveMatching lists which of patchTestMembers its filter selects.
func patchTestChanges(changes []MemberChange) []string {
	var out []string
	for _, c := range changes {
		switch c.Kind {
		case membersAdd:
			out = append(out, "add "+strings.Join(c.IDs, ","))
		case membersRemove:
			out = append(out, "remove "+strings.Join(c.IDs, ","))
		case membersRemoveAll:
			out = append(out, "removeAll")
		case membersReplace:
			out = append(out, "replace "+strings.Join(c.IDs, ","))
		case membersRemoveMatching:
			defs := func(p attrPath) *Attr { return groupSchemaDef.attr("members").sub(p.Attr) }
			var hits []string
			for _, id := range patchTestMembers {
				if eval(c.Filter, defs, map[string]any{"value": id, "type": "User"}) {
					hits = append(hits, id)
				}
			}
			out = append(out, "removeMatching "+strings.Join(hits, ","))
		default:
			out = append(out, "unknown kind")
		}
	}
	return out
}

func TestApplyPatchUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		start   string // stored attributes (JSON); "" is defaultUser
		body    string // the PatchOp request
		want    string // stored attributes afterwards (JSON), when no error
		wantErr string // scimType of the expected error
	}{
		// ---- op names and field names in any case (§2.6, §8 row 1) ----
		{
			name: "Replace capitalised",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"nickName","value":"Babs"}]}`,
			want: `{"userName":"bjensen","nickName":"Babs"}`,
		},
		{
			name: "Add capitalised on absent single-valued attribute",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"nickName","value":"Babs"}]}`,
			want: `{"userName":"bjensen","nickName":"Babs"}`,
		},
		{
			name:  "add lower case on present single-valued attribute replaces",
			start: `{"userName":"bjensen","nickName":"Old"}`,
			body:  `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"nickName","value":"Babs"}]}`,
			want:  `{"userName":"bjensen","nickName":"Babs"}`,
		},
		{
			name: "REPLACE upper case, lower-case operations key, capitalised field names",
			body: `{"operations":[{"OP":"REPLACE","Path":"title","Value":"Boss"}],"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`,
			want: `{"userName":"bjensen","title":"Boss"}`,
		},
		{
			name: "op with surrounding spaces",
			body: `{"Operations":[{"op":" replace ","path":"title","value":"Boss"}]}`,
			want: `{"userName":"bjensen","title":"Boss"}`,
		},
		{
			name:  "Remove capitalised",
			start: `{"userName":"bjensen","nickName":"Babs"}`,
			body:  `{"Operations":[{"op":"Remove","path":"nickName"}]}`,
			want:  `{"userName":"bjensen"}`,
		},
		{
			name:  "rEmOvE mixed case",
			start: `{"userName":"bjensen","nickName":"Babs"}`,
			body:  `{"Operations":[{"op":"rEmOvE","path":"nickName"}]}`,
			want:  `{"userName":"bjensen"}`,
		},
		{
			name:    "unknown op",
			body:    `{"Operations":[{"op":"Merge","path":"nickName","value":"Babs"}]}`,
			wantErr: "invalidSyntax",
		},
		{
			name:    "empty op",
			body:    `{"Operations":[{"path":"nickName","value":"Babs"}]}`,
			wantErr: "invalidSyntax",
		},
		{
			name:    "remove without a path",
			body:    `{"Operations":[{"op":"Remove","value":{"nickName":"Babs"}}]}`,
			wantErr: "noTarget",
		},
		{
			name:    "body is not JSON",
			body:    `{"Operations":[`,
			wantErr: "invalidSyntax",
		},
		{
			name: "attribute names in paths are case-insensitive",
			body: `{"Operations":[{"op":"Replace","path":"NICKNAME","value":"Babs"},{"op":"Replace","path":"Name.GivenName","value":"Barbara"}]}`,
			want: `{"userName":"bjensen","nickName":"Babs","name":{"givenName":"Barbara"}}`,
		},
		{
			name: "several ops in order",
			body: `{"Operations":[{"op":"Add","path":"nickName","value":"A"},{"op":"Replace","path":"nickName","value":"B"},{"op":"Add","path":"title","value":"T"},{"op":"Remove","path":"title"}]}`,
			want: `{"userName":"bjensen","nickName":"B"}`,
		},

		// ---- string booleans (§2.6(10), §2.7, §8 row 2) ----
		{
			name:  "active False string, Entra disable without the flag",
			start: `{"userName":"bjensen","active":true}`,
			body:  `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			want:  `{"userName":"bjensen","active":false}`,
		},
		{
			name:  "active false JSON, with the flag",
			start: `{"userName":"bjensen","active":true}`,
			body:  `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`,
			want:  `{"userName":"bjensen","active":false}`,
		},
		{
			name:  "active lower-case false string",
			start: `{"userName":"bjensen","active":true}`,
			body:  `{"Operations":[{"op":"Replace","path":"active","value":"false"}]}`,
			want:  `{"userName":"bjensen","active":false}`,
		},
		{
			name:  "active True string re-enables",
			start: `{"userName":"bjensen","active":false}`,
			body:  `{"Operations":[{"op":"Replace","path":"active","value":"True"}]}`,
			want:  `{"userName":"bjensen","active":true}`,
		},
		{
			name: "active TRUE upper case via Add",
			body: `{"Operations":[{"op":"Add","path":"active","value":"TRUE"}]}`,
			want: `{"userName":"bjensen","active":true}`,
		},
		{
			name:    "active non-boolean string",
			start:   `{"userName":"bjensen","active":true}`,
			body:    `{"Operations":[{"op":"Replace","path":"active","value":"yes"}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "active number",
			body:    `{"Operations":[{"op":"Replace","path":"active","value":1}]}`,
			wantErr: "invalidValue",
		},
		{
			name: "active True string in a path-less value object (validator)",
			body: `{"Operations":[{"op":"Replace","value":{"active":"True"}}]}`,
			want: `{"userName":"bjensen","active":true}`,
		},
		{
			name:  "emails work primary string false",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].primary","value":"False"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":false},{"type":"home","value":"home@example.com"}]}`,
		},
		{
			// RFC 7644 §3.5.2: setting one primary SHALL set the others false.
			name:  "emails home primary string true moves primary from work",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails[type eq \"home\"].primary","value":"true"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":false},{"type":"home","value":"home@example.com","primary":true}]}`,
		},
		{
			name:    "emails primary non-boolean string",
			start:   twoEmails,
			body:    `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].primary","value":"maybe"}]}`,
			wantErr: "invalidValue",
		},

		// ---- filtered paths create the element they name (§2.6(1), §8 rows 6, 7) ----
		{
			name: "Replace emails work value on a user without emails creates it",
			body: `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"}]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"updatedEmail@microsoft.com"}]}`,
		},
		{
			name: "Add emails work value on a user without emails creates it",
			body: `{"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"test@test.com"}]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"test@test.com"}]}`,
		},
		{
			name: "D1 multi-valued example: filtered email and name.familyName",
			body: `{
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [
					{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
					{"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
				]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"updatedEmail@microsoft.com"}],"name":{"familyName":"updatedFamilyName"}}`,
		},
		{
			name: "SimpleIdServer#376: value, string primary and type of one new element",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"test@test.com"},{"op":"Add","path":"emails[type eq \"work\"].primary","value":"true"},{"op":"Add","path":"emails[type eq \"work\"].type","value":"work"}]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"test@test.com","primary":true}]}`,
		},
		{
			// Same ops as above, primary first: "several ops with the same
			// filter in one request must land in the same element" (§2.6(1)).
			name: "primary before value of a new element lands in the same element",
			body: `{"Operations":[{"op":"Add","path":"emails[type eq \"work\"].primary","value":"true"},{"op":"Add","path":"emails[type eq \"work\"].value","value":"test@test.com"}]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"test@test.com","primary":true}]}`,
		},
		{
			name: "default address mappings land in one work address",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
				{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Microsoft Way"},
				{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},
				{"op":"Add","path":"addresses[type eq \"work\"].region","value":"WA"},
				{"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98052"},
				{"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"},
				{"op":"Add","path":"addresses[type eq \"work\"].formatted","value":"1 Microsoft Way, Redmond, WA 98052, US"}]}`,
			want: `{"userName":"bjensen","addresses":[{"type":"work","streetAddress":"1 Microsoft Way","locality":"Redmond","region":"WA","postalCode":"98052","country":"US","formatted":"1 Microsoft Way, Redmond, WA 98052, US"}]}`,
		},
		{
			name:  "address ops with mixed Add and Replace update the existing work address only",
			start: `{"userName":"bjensen","addresses":[{"type":"home","locality":"Paris"},{"type":"work","locality":"Redmond","country":"US"}]}`,
			body: `{"Operations":[
				{"op":"Replace","path":"addresses[type eq \"work\"].locality","value":"Seattle"},
				{"op":"Add","path":"addresses[type eq \"work\"].postalCode","value":"98101"}]}`,
			want: `{"userName":"bjensen","addresses":[{"type":"home","locality":"Paris"},{"type":"work","locality":"Seattle","country":"US","postalCode":"98101"}]}`,
		},
		{
			name:  "replace on the existing work email leaves the home email alone",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"new@example.com","primary":true},{"type":"home","value":"home@example.com"}]}`,
		},
		{
			name:  "filter value and attribute names are case-insensitive",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"EMAILS[TYPE eq \"Work\"].Value","value":"new@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"new@example.com","primary":true},{"type":"home","value":"home@example.com"}]}`,
		},
		{
			name:  "add of a new type next to existing ones",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails[type eq \"other\"].value","value":"other@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com"},{"type":"other","value":"other@example.com"}]}`,
		},
		{
			name: "phoneNumbers mobile and work in one request",
			body: `{"Operations":[{"op":"Add","path":"phoneNumbers[type eq \"work\"].value","value":"+1 555 0100"},{"op":"Add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+1 555 0101"}]}`,
			want: `{"userName":"bjensen","phoneNumbers":[{"type":"work","value":"+1 555 0100"},{"type":"mobile","value":"+1 555 0101"}]}`,
		},
		{
			name: "roles with a string boolean in the filter (SingleAppRoleAssignment)",
			body: `{"Operations":[
				{"op":"Add","path":"roles[primary eq \"True\"].value","value":"Admin"},
				{"op":"Add","path":"roles[primary eq \"True\"].display","value":"Administrator"},
				{"op":"Add","path":"roles[primary eq \"True\"].type","value":"WindowsAzureActiveDirectoryRole"}]}`,
			want: `{"userName":"bjensen","roles":[{"primary":true,"value":"Admin","display":"Administrator","type":"WindowsAzureActiveDirectoryRole"}]}`,
		},
		{
			name:  "filtered path without a sub-attribute merges into the element",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"home\"]","value":{"value":"h2@example.com","primary":"False"}}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"h2@example.com","primary":false}]}`,
		},
		{
			name:    "filter that does not describe an element to create",
			body:    `{"Operations":[{"op":"Replace","path":"emails[value co \"@example.com\"].type","value":"work"}]}`,
			wantErr: "noTarget",
		},
		// ---- create-on-absent only for the shapes Entra sends (issue 15 item 11) ----
		{
			name:    "a filter on value does not invent an element",
			body:    `{"Operations":[{"op":"Replace","path":"emails[value eq \"x@example.com\"].type","value":"work"}]}`,
			wantErr: "noTarget",
		},
		{
			name:    "type and another term does not invent an element",
			body:    `{"Operations":[{"op":"Add","path":"emails[type eq \"work\" and primary eq false].value","value":"x@example.com"}]}`,
			wantErr: "noTarget",
		},
		{
			name:    "either of two types does not invent an element",
			body:    `{"Operations":[{"op":"Add","path":"emails[type eq \"work\" or type eq \"home\"].value","value":"x@example.com"}]}`,
			wantErr: "noTarget",
		},
		{
			name:    "primary eq false does not invent an element",
			body:    `{"Operations":[{"op":"Add","path":"roles[primary eq false].value","value":"Admin"}]}`,
			wantErr: "noTarget",
		},
		{
			name:    "a negated type does not invent an element",
			body:    `{"Operations":[{"op":"Add","path":"emails[not (type eq \"work\")].value","value":"x@example.com"}]}`,
			wantErr: "noTarget",
		},
		{
			name:  "a filter on value still updates the element it matches",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails[value eq \"HOME@example.com\"].display","value":"Home"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com","display":"Home"}]}`,
		},

		// ---- one primary, no duplicates (RFC 7643 §2.4, RFC 7644 §3.5.2; issue 15 items 7, 10) ----
		{
			name:  "Entra's emails[type eq work].primary True takes primary from home",
			start: `{"userName":"bjensen","emails":[{"type":"work","value":"w@x"},{"type":"home","value":"h@x","primary":true}]}`,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].primary","value":"True"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"w@x","primary":true},{"type":"home","value":"h@x","primary":false}]}`,
		},
		{
			name:  "adding a primary email makes the others non-primary",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"other","value":"o@x","primary":true}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":false},{"type":"home","value":"home@example.com"},{"type":"other","value":"o@x","primary":true}]}`,
		},
		{
			name:  "a path-less add of a primary email makes the others non-primary",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","value":{"emails":[{"type":"home","value":"home@example.com","primary":"true"}]}}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":false},{"type":"home","value":"home@example.com","primary":true}]}`,
		},
		{
			name:  "replacing emails with two primaries keeps the first",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails","value":[{"type":"work","value":"a@x","primary":true},{"type":"home","value":"b@x","primary":true}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"a@x","primary":true},{"type":"home","value":"b@x","primary":false}]}`,
		},
		{
			name:  "emails.primary without a filter leaves one primary",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails.primary","value":true}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com","primary":false}]}`,
		},
		{
			name:  "adding an email that is there in another case merges into it",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"Home","value":"HOME@example.com","display":"Home"}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"Home","value":"HOME@example.com","display":"Home"}]}`,
		},
		{
			name:  "a filtered replace that makes two elements the same merges them",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"home\"].type","value":"work"},{"op":"Replace","path":"emails[value eq \"home@example.com\"].value","value":"work@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true}]}`,
		},
		{
			name: "a password is accepted and never stored",
			body: `{"Operations":[{"op":"Replace","path":"password","value":"hunter2"},{"op":"Add","value":{"password":"hunter3","urn:ietf:params:scim:schemas:core:2.0:User:password":"hunter4"}},{"op":"Add","path":"urn:ietf:params:scim:schemas:core:2.0:User:password","value":"hunter5"}]}`,
			want: `{"userName":"bjensen"}`,
		},
		{
			name: "path-less keys naming read-only attributes are ignored",
			body: `{"Operations":[{"op":"Replace","value":{"id":"x","meta.created":"2020-01-01T00:00:00Z","groups":[{"value":"g1"}],"nickName":"Babs"}}]}`,
			want: `{"userName":"bjensen","nickName":"Babs"}`,
		},
		{
			name:    "filtered path on a simple attribute",
			body:    `{"Operations":[{"op":"Replace","path":"nickName[value eq \"x\"]","value":"y"}]}`,
			wantErr: "invalidPath",
		},

		// ---- path-less value objects with dotted and URN keys (§2.6(4), §5, §8 row 5) ----
		{
			name:  "aadOptscim062020 verbatim: filtered email and a path-less replace",
			start: `{"userName":"bjensen","displayName":"Old","name":{"givenName":"Old","familyName":"Old","formatted":"Old Old"}}`,
			body: `{
				"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
				"Operations": [
					{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "TestMhvaes@test.microsoft.com"},
					{"op": "replace", "value": {
						"displayName": "Bjfe",
						"name.givenName": "Kkom",
						"name.familyName": "Unua",
						"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
					}}
				]}`,
			want: `{"userName":"bjensen","displayName":"Bjfe","name":{"givenName":"Kkom","familyName":"Unua","formatted":"Old Old"},
				"emails":[{"type":"work","value":"TestMhvaes@test.microsoft.com"}],
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"Aklq"}}`,
		},
		{
			name: "path-less add with dotted keys (scimitar#123)",
			body: `{"Operations":[{"op":"add","value":{"name.givenName":"Barbara","name.familyName":"Jensen","name.formatted":"Barbara Jensen","displayName":"Babs","title":"Tour Guide"}}]}`,
			want: `{"userName":"bjensen","name":{"givenName":"Barbara","familyName":"Jensen","formatted":"Barbara Jensen"},"displayName":"Babs","title":"Tour Guide"}`,
		},
		{
			name:  "path-less value ignores id, schemas and meta",
			start: `{"userName":"bjensen","active":false}`,
			body: `{"Operations":[{"op":"Replace","value":{
				"id":"someone-else","schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
				"meta":{"resourceType":"User","version":"W/\"9\""},
				"active":"True","displayName":"Babs"}}]}`,
			want: `{"userName":"bjensen","active":true,"displayName":"Babs"}`,
		},
		{
			name:  "path-less value with a filtered key and a whole name object",
			start: `{"userName":"bjensen","name":{"givenName":"Old","familyName":"Jensen"}}`,
			body:  `{"Operations":[{"op":"Replace","value":{"emails[type eq \"work\"].value":"w@example.com","name":{"givenName":"Barbara"}}}]}`,
			want:  `{"userName":"bjensen","name":{"givenName":"Barbara","familyName":"Jensen"},"emails":[{"type":"work","value":"w@example.com"}]}`,
		},
		{
			name:  "gallery null update: path-less empty strings clear",
			start: `{"userName":"bjensen","displayName":"Babs","title":"Boss","name":{"givenName":"Barbara","familyName":"Jensen"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}`,
			body:  `{"Operations":[{"op":"replace","value":{"displayName":"","title":null,"name.givenName":"","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":""}}]}`,
			want:  `{"userName":"bjensen","name":{"familyName":"Jensen"}}`,
		},
		{
			name:    "path-less value that is not an object",
			body:    `{"Operations":[{"op":"Replace","value":"Babs"}]}`,
			wantErr: "invalidValue",
		},

		// ---- URN-qualified paths (§2.6(3), §8 row 9) ----
		{
			name: "Add enterprise department",
			body: `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}]}`,
			want: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail"}}`,
		},
		{
			name:  "Replace enterprise employeeNumber mixed with core ops",
			start: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"1","department":"Retail"}}`,
			body: `{"Operations":[
				{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"701984"},
				{"op":"Replace","path":"externalId","value":"ext-1"},
				{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter","value":"4130"}]}`,
			want: `{"userName":"bjensen","externalId":"ext-1","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"701984","department":"Retail","costCenter":"4130"}}`,
		},
		{
			name: "URN and attribute in other case",
			body: `{"Operations":[{"op":"Add","path":"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department","value":"Retail"}]}`,
			want: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail"}}`,
		},
		{
			name: "core URN-qualified path",
			body: `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:displayName","value":"Babs"},{"op":"Replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName","value":"Barbara"}]}`,
			want: `{"userName":"bjensen","displayName":"Babs","name":{"givenName":"Barbara"}}`,
		},
		{
			name:  "Remove the last enterprise attribute drops the extension",
			start: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail"}}`,
			body:  `{"Operations":[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]}`,
			want:  `{"userName":"bjensen"}`,
		},
		{
			name:  "whole extension as the path",
			start: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail"}}`,
			body:  `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"employeeNumber":"42","manager":"m1"}}]}`,
			want:  `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail","employeeNumber":"42","manager":{"value":"m1"}}}`,
		},
		{
			name:  "whole extension removed",
			start: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Retail"}}`,
			body:  `{"Operations":[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]}`,
			want:  `{"userName":"bjensen"}`,
		},

		// ---- Remove, with and without a value (§2.6(7), §8 row 21) ----
		{
			name:  "Remove with a matching value on emails work value removes it",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"work@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"home","value":"home@example.com"}]}`,
		},
		{
			name:  "Remove with a value, attribute value in other case",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"WORK@example.com"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"home","value":"home@example.com"}]}`,
		},
		{
			name: "Remove with a value on a user without emails creates nothing",
			body: `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"updated@example.org"}]}`,
			want: `{"userName":"bjensen"}`,
		},
		{
			name:  "Remove emails work value without a value",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"home","value":"home@example.com"}]}`,
		},
		{
			name:  "Remove a whole filtered element",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"home\"]"}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true}]}`,
		},
		{
			name:  "Remove without a value deletes the attribute",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails"}]}`,
			want:  `{"userName":"bjensen"}`,
		},
		{
			name:  "Remove a sub-attribute",
			start: `{"userName":"bjensen","name":{"givenName":"Barbara","familyName":"Jensen"}}`,
			body:  `{"Operations":[{"op":"Remove","path":"name.givenName"}]}`,
			want:  `{"userName":"bjensen","name":{"familyName":"Jensen"}}`,
		},
		{
			name:  "Remove of an absent attribute is a no-op",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Remove","path":"nickName"},{"op":"Remove","path":"name.givenName"},{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]}`,
			want:  defaultUser,
		},
		{
			name:  "Remove a multi-valued attribute with a value array removes only those",
			start: `{"userName":"bjensen","emails":[{"type":"work","value":"a@example.com"},{"type":"home","value":"b@example.com"},{"type":"other","value":"c@example.com"}]}`,
			body:  `{"Operations":[{"op":"Remove","path":"emails","value":[{"value":"a@example.com"},{"value":"c@example.com"}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"home","value":"b@example.com"}]}`,
		},
		{
			name:  "Remove roles with a value array",
			start: `{"userName":"bjensen","roles":[{"value":"Admin"},{"value":"User"}]}`,
			body:  `{"Operations":[{"op":"Remove","path":"roles","value":[{"value":"Admin"}]}]}`,
			want:  `{"userName":"bjensen","roles":[{"value":"User"}]}`,
		},
		{
			name:  "Remove a single-valued attribute with a different value keeps it",
			start: `{"userName":"bjensen","nickName":"Babs"}`,
			body:  `{"Operations":[{"op":"Remove","path":"nickName","value":"Other"}]}`,
			want:  `{"userName":"bjensen","nickName":"Babs"}`,
		},

		// ---- Add to multi-valued attributes (§2.6, RFC 7644 §3.5.2.1) ----
		{
			name:  "Add emails array appends",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"other","value":"o@example.com"}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com"},{"type":"other","value":"o@example.com"}]}`,
		},
		{
			name:  "Add emails array does not duplicate an identical element",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"home","value":"home@example.com"},{"type":"other","value":"o@example.com"}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"work@example.com","primary":true},{"type":"home","value":"home@example.com"},{"type":"other","value":"o@example.com"}]}`,
		},
		{
			name:  "Add of an identical element with a string boolean is not duplicated",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"work","value":"work@example.com","primary":"True"}]}]}`,
			want:  twoEmails,
		},
		{
			name: "Add a single object to a multi-valued attribute",
			body: `{"Operations":[{"op":"Add","path":"emails","value":{"type":"work","value":"w@example.com","primary":"true"}}]}`,
			want: `{"userName":"bjensen","emails":[{"type":"work","value":"w@example.com","primary":true}]}`,
		},
		{
			name: "roles as stringified JSON (AppRoleAssignmentsComplex) are kept as strings",
			body: `{"Operations":[{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]}]}`,
			want: `{"userName":"bjensen","roles":[{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}]}`,
		},
		{
			name:  "Replace emails replaces the whole list",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Replace","path":"emails","value":[{"type":"work","value":"only@example.com"}]}]}`,
			want:  `{"userName":"bjensen","emails":[{"type":"work","value":"only@example.com"}]}`,
		},

		// ---- userName is required (§2.6(2)) ----
		{
			name: "Replace userName",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"userName","value":"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}`,
			want: `{"userName":"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}`,
		},
		{
			name:    "Replace userName with an empty string",
			body:    `{"Operations":[{"op":"Replace","path":"userName","value":""}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "Replace userName with null",
			body:    `{"Operations":[{"op":"Replace","path":"userName","value":null}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "Remove userName",
			body:    `{"Operations":[{"op":"Remove","path":"userName"}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "path-less userName empty",
			body:    `{"Operations":[{"op":"Replace","value":{"userName":""}}]}`,
			wantErr: "invalidValue",
		},

		// ---- clearing with "" and null (§2.6(8)) ----
		{
			name:  "Replace with empty string and null clears",
			start: `{"userName":"bjensen","nickName":"Babs","title":"Boss","name":{"givenName":"Barbara"}}`,
			body:  `{"Operations":[{"op":"replace","path":"nickName","value":""},{"op":"replace","path":"title","value":null},{"op":"replace","path":"name.givenName","value":""}]}`,
			want:  `{"userName":"bjensen"}`,
		},

		// ---- unknown, read-only and malformed paths ----
		{
			name: "unknown attributes are ignored",
			body: `{"Operations":[
				{"op":"Add","path":"favouriteColour","value":"blue"},
				{"op":"Replace","path":"shoe.size","value":"42"},
				{"op":"Replace","path":"pets[type eq \"cat\"].name","value":"Tom"},
				{"op":"Remove","path":"gadget"},
				{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:badge","value":"7"},
				{"op":"Replace","value":{"hobby":"chess","name.givenName":"Barbara"}}]}`,
			want: `{"userName":"bjensen","name":{"givenName":"Barbara"}}`,
		},
		{
			name:    "id is read-only",
			body:    `{"Operations":[{"op":"Replace","path":"id","value":"x"}]}`,
			wantErr: "mutability",
		},
		{
			name:    "meta is read-only",
			body:    `{"Operations":[{"op":"Replace","path":"meta.lastModified","value":"2020-01-01T00:00:00Z"}]}`,
			wantErr: "mutability",
		},
		{
			name:    "groups is read-only",
			body:    `{"Operations":[{"op":"Add","path":"groups","value":[{"value":"g1"}]}]}`,
			wantErr: "mutability",
		},
		{
			name:    "manager displayName is read-only",
			body:    `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName","value":"Boss"}]}`,
			wantErr: "mutability",
		},
		{
			name:    "unterminated filter",
			body:    `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"","value":"x"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "empty filter",
			body:    `{"Operations":[{"op":"Replace","path":"emails[]","value":"x"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "double dot",
			body:    `{"Operations":[{"op":"Replace","path":"name..x","value":"x"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "sub-attribute of a simple attribute",
			body:    `{"Operations":[{"op":"Replace","path":"nickName.x","value":"x"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "blank path",
			body:    `{"Operations":[{"op":"Replace","path":"  ","value":"x"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "bad path in a path-less key",
			body:    `{"Operations":[{"op":"Replace","value":{"emails[]":"x"}}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "array on a filtered path",
			body:    `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"]","value":[{"value":"x"}]}]}`,
			wantErr: "invalidValue",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := tt.start
			if start == "" {
				start = defaultUser
			}
			attrs, changes, err := patchTestApply(t, userType, start, tt.body)
			patchTestErr(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got, want := patchTestJSON(t, attrs), patchTestJSON(t, tt.want); got != want {
				t.Errorf("attrs =\n%s\nwant\n%s", got, want)
			}
			if got, want := len(changes), 0; got != want {
				t.Errorf("user patch returned %d member changes", got)
			}
		})
	}
}

// TestApplyPatchUnknownOp calls applyPatch directly, bypassing decodePatch.
func TestApplyPatchUnknownOp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rt   *resourceType
		ops  []patchOp
	}{
		{name: "user merge", rt: userType, ops: []patchOp{{Op: "merge", Path: "nickName", Value: "x"}}},
		{name: "user empty", rt: userType, ops: []patchOp{{Path: "nickName", Value: "x"}}},
		{name: "user after a valid op", rt: userType, ops: []patchOp{{Op: "Add", Path: "nickName", Value: "x"}, {Op: "Copy", Path: "title", Value: "y"}}},
		{name: "group delete", rt: groupType, ops: []patchOp{{Op: "Delete", Path: "members", Value: []any{map[string]any{"value": "u1"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attrs := map[string]any{"userName": "bjensen", "displayName": "Eng"}
			_, err := applyPatch(tt.rt, attrs, tt.ops)
			patchTestErr(t, err, "invalidSyntax")
		})
	}
}

// TestApplyPatchRemoveNeverSets covers Remove with path and value
// (AzureAD/SCIMReferenceCode#87): whatever else happens, the value is never set.
func TestApplyPatchRemoveNeverSets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start string
		body  string
	}{
		{
			name:  "different value on the work email",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"updated@example.org"}]}`,
		},
		{
			name:  "no work email",
			start: `{"userName":"bjensen","emails":[{"type":"home","value":"home@example.com"}]}`,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"updated@example.org"}]}`,
		},
		{
			name:  "no emails",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"updated@example.org"}]}`,
		},
		{
			name:  "whole attribute",
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails","value":[{"type":"work","value":"updated@example.org"}]}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attrs, _, err := patchTestApply(t, userType, tt.start, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if got := patchTestJSON(t, attrs); strings.Contains(got, "updated@example.org") {
				t.Errorf("Remove set the value: %s", got)
			}
			emails, _ := attrs["emails"].([]any)
			before, _ := patchTestAttrs(t, userType, tt.start)["emails"].([]any)
			if got, want := len(emails), len(before); got > want {
				t.Errorf("Remove added emails: %d, had %d", got, want)
			}
		})
	}
}

// TestApplyPatchManager covers the four manager shapes of §2.6(6) and its removal.
func TestApplyPatchManager(t *testing.T) {
	t.Parallel()
	const withManager = `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}}}`
	const withManagerAndDept = `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"},"department":"Sales"}}`
	tests := []struct {
		name     string
		start    string
		body     string
		want     string // manager.value afterwards, "" for no manager
		wantDept string // department afterwards
	}{
		{
			name:  "Add raw string id",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"271"}]}`,
			want:  "271",
		},
		{
			name:  "add lower case raw string id",
			start: defaultUser,
			body:  `{"Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"271"}]}`,
			want:  "271",
		},
		{
			name:  "replace raw string id",
			start: withManager,
			body:  `{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m2"}]}`,
			want:  "m2",
		},
		{
			name:  "value object",
			start: withManager,
			body:  `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":"m2"}}]}`,
			want:  "m2",
		},
		{
			name:  "array of $ref and value",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":[{"$ref":"http://example.com/scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee","value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}`,
			want:  "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
		},
		{
			name:  "manager.value sub-attribute path",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"m3"}]}`,
			want:  "m3",
		},
		{
			name:  "path-less URN key with raw id",
			start: defaultUser,
			body:  `{"Operations":[{"op":"replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"m4"}}]}`,
			want:  "m4",
		},
		{
			// The legacy documented shape (D1 Example 5): un-prefixed path.
			name:  "legacy un-prefixed path manager with $ref and value",
			start: defaultUser,
			body:  `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"manager","value":[{"$ref":"http://example.com/scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee","value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}`,
			want:  "00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
		},
		{
			name:  "legacy un-prefixed path manager with raw id",
			start: defaultUser,
			body:  `{"Operations":[{"op":"Replace","path":"manager","value":"271"}]}`,
			want:  "271",
		},
		{
			name:  "replace with empty string clears and drops the extension",
			start: withManager,
			body:  `{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]}`,
		},
		{
			name:  "replace with null clears",
			start: withManager,
			body:  `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":null}]}`,
		},
		{
			name:  "replace with empty value object clears",
			start: withManager,
			body:  `{"Operations":[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":{"value":""}}]}`,
		},
		{
			name:     "replace with empty string keeps the rest of the extension",
			start:    withManagerAndDept,
			body:     `{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]}`,
			wantDept: "Sales",
		},
		{
			name:  "Remove without a value",
			start: withManager,
			body:  `{"Operations":[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]}`,
		},
		{
			name:  "remove by filter on the URN path",
			start: withManager,
			body:  `{"Operations":[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"m1\"]"}]}`,
		},
		{
			name:  "remove by filter that does not match keeps the manager",
			start: withManager,
			body:  `{"Operations":[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"m9\"]"}]}`,
			want:  "m1",
		},
		{
			// thomaspoignant/scim-patch#453, with the flag: un-prefixed path.
			name:     "remove by filter on the un-prefixed path manager",
			start:    withManagerAndDept,
			body:     `{"Operations":[{"op":"remove","path":"manager[value eq \"m1\"]"}]}`,
			wantDept: "Sales",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attrs, _, err := patchTestApply(t, userType, tt.start, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			ext, hasExt := attrs[entUser].(map[string]any)
			if hasExt && len(ext) == 0 {
				t.Errorf("empty extension object left in attrs: %s", patchTestJSON(t, attrs))
			}
			if _, ok := attrs["manager"]; ok {
				t.Errorf("manager stored as a core attribute: %s", patchTestJSON(t, attrs))
			}
			var gotValue any
			if m, ok := ext["manager"]; ok {
				mgr, isMap := m.(map[string]any)
				if !isMap {
					t.Fatalf("manager = %#v, want an object", m)
				}
				for k := range mgr {
					if k != "value" && k != "$ref" {
						t.Errorf("manager has key %q: %s", k, patchTestJSON(t, mgr))
					}
				}
				gotValue = mgr["value"]
				if gotValue == nil {
					t.Errorf("manager without value: %s", patchTestJSON(t, mgr))
				}
			}
			if tt.want == "" {
				if gotValue != nil {
					t.Errorf("manager.value = %v, want no manager", gotValue)
				}
			} else if got, want := gotValue, any(tt.want); got != want {
				t.Errorf("manager.value = %v, want %q (attrs %s)", got, want, patchTestJSON(t, attrs))
			}
			if got, want := ext["department"], any(tt.wantDept); tt.wantDept != "" && got != want {
				t.Errorf("department = %v, want %q", got, want)
			}
			if tt.want == "" && tt.wantDept == "" && hasExt {
				t.Errorf("extension left after clearing its only attribute: %s", patchTestJSON(t, attrs))
			}
		})
	}
}

func TestApplyPatchGroup(t *testing.T) {
	t.Parallel()
	const start = `{"displayName":"Eng","externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}`
	tests := []struct {
		name        string
		body        string
		wantChanges []string // see patchTestChanges
		want        string   // attributes afterwards; "" for unchanged
		wantErr     string
	}{
		{
			name:        "D1 Add members with $ref null",
			body:        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}`,
			wantChanges: []string{"add f648f8d5ea4e4cd38e9c"},
		},
		{
			name:        "Add several members in one op",
			body:        `{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1"},{"value":"u2","display":"Two"},{"$ref":"http://x/Users/u3","value":"u3","type":"User"}]}]}`,
			wantChanges: []string{"add u1,u2,u3"},
		},
		{
			name:        "Add the same member twice in one op",
			body:        `{"Operations":[{"op":"add","path":"members","value":[{"value":"u1"},{"value":"u1"}]}]}`,
			wantChanges: []string{"add u1"},
		},
		{
			name:        "Add a bare string member (Microsoft's Postman)",
			body:        `{"Operations":[{"op":"Add","path":"members","value":"u1"}]}`,
			wantChanges: []string{"add u1"},
		},
		{
			name:        "Add an array of bare string members",
			body:        `{"Operations":[{"op":"Add","path":"members","value":["u1","u2"]}]}`,
			wantChanges: []string{"add u1,u2"},
		},
		{
			name:        "Add a single member object",
			body:        `{"Operations":[{"op":"Add","path":"members","value":{"value":"u1"}}]}`,
			wantChanges: []string{"add u1"},
		},
		{
			name:        "member key casing",
			body:        `{"Operations":[{"op":"ADD","path":"Members","value":[{"Value":"u1"}]}]}`,
			wantChanges: []string{"add u1"},
		},
		{
			name:        "URN-qualified members path",
			body:        `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:core:2.0:Group:members","value":[{"value":"u1"}]}]}`,
			wantChanges: []string{"add u1"},
		},
		{
			name:        "D1 Remove members with a value array removes those only",
			body:        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}`,
			wantChanges: []string{"remove f648f8d5ea4e4cd38e9c"},
		},
		{
			name:        "D2 Remove members without $ref",
			body:        `{"Operations":[{"op":"Remove","path":"members","value":[{"value":"u1"},{"value":"u2"}]}]}`,
			wantChanges: []string{"remove u1,u2"},
		},
		{
			name:        "aadOptscim062020 remove by filter",
			body:        `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"7f4bc1a3-285e-48ae-8202-5accb43efb0e\"]"}]}`,
			wantChanges: []string{"removeMatching 7f4bc1a3-285e-48ae-8202-5accb43efb0e"},
		},
		{
			name:        "remove by filter with or",
			body:        `{"Operations":[{"op":"Remove","path":"members[value eq \"u1\" or value eq \"u2\"]"}]}`,
			wantChanges: []string{"removeMatching u1,u2"},
		},
		{
			name:        "remove members without a value removes all",
			body:        `{"Operations":[{"op":"remove","path":"members"}]}`,
			wantChanges: []string{"removeAll"},
		},
		{
			name:        "Replace members",
			body:        `{"Operations":[{"op":"Replace","path":"members","value":[{"value":"u1"},{"value":"u2"}]}]}`,
			wantChanges: []string{"replace u1,u2"},
		},
		{
			name:        "Replace members with an empty array",
			body:        `{"Operations":[{"op":"Replace","path":"members","value":[]}]}`,
			wantChanges: []string{"replace "},
		},
		{
			name: "several member ops kept in order",
			body: `{"Operations":[
				{"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2"}]},
				{"op":"Remove","path":"members","value":[{"value":"u1"}]},
				{"op":"remove","path":"members[value eq \"u2\"]"},
				{"op":"Replace","path":"members","value":[{"value":"f648f8d5ea4e4cd38e9c"}]},
				{"op":"Remove","path":"members"},
				{"op":"Add","path":"members","value":"u2"}]}`,
			wantChanges: []string{"add u1,u2", "remove u1", "removeMatching u2", "replace f648f8d5ea4e4cd38e9c", "removeAll", "add u2"},
		},
		{
			name:        "rename and member removal in one request (azure-docs#57965)",
			body:        `{"Operations":[{"op":"Replace","path":"displayName","value":"Eng2"},{"op":"Remove","path":"members","value":[{"value":"u1"}]}]}`,
			wantChanges: []string{"remove u1"},
			want:        `{"displayName":"Eng2","externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}`,
		},
		{
			name: "D1 Replace displayName",
			body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}`,
			want: `{"displayName":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName","externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}`,
		},
		{
			name:        "path-less value with members and displayName",
			body:        `{"Operations":[{"op":"Add","value":{"displayName":"Eng2","members":[{"$ref":null,"value":"u1"},{"value":"u2"}]}}]}`,
			wantChanges: []string{"add u1,u2"},
			want:        `{"displayName":"Eng2","externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}`,
		},
		{
			name: "path-less value ignores id, schemas and meta",
			body: `{"Operations":[{"op":"Replace","value":{"id":"other","schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"meta":{"resourceType":"Group"},"displayName":"Eng2"}}]}`,
			want: `{"displayName":"Eng2","externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}`,
		},
		{
			name: "Replace externalId and unknown attribute ignored",
			body: `{"Operations":[{"op":"Replace","path":"externalId","value":"e2"},{"op":"Add","path":"description","value":"x"}]}`,
			want: `{"displayName":"Eng","externalId":"e2"}`,
		},
		{
			name:    "member without value",
			body:    `{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null}]}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "member with an empty value",
			body:    `{"Operations":[{"op":"Add","path":"members","value":[{"value":""}]}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "member with a numeric value",
			body:    `{"Operations":[{"op":"Add","path":"members","value":[{"value":42}]}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "Remove members with an item without value",
			body:    `{"Operations":[{"op":"Remove","path":"members","value":[{"value":"u1"},{"display":"Two"}]}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "Add members by filter",
			body:    `{"Operations":[{"op":"Add","path":"members[value eq \"u1\"]","value":[{"value":"u1"}]}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "members sub-attribute is immutable",
			body:    `{"Operations":[{"op":"Replace","path":"members.value","value":"u1"}]}`,
			wantErr: "mutability",
		},
		{
			// Before, the sub-attribute was ignored and the member removed whole.
			name:    "remove of a filtered member's display is refused, not a member removal",
			body:    `{"Operations":[{"op":"Remove","path":"members[value eq \"u1\"].display"}]}`,
			wantErr: "mutability",
		},
		{
			name:    "unknown members sub-attribute",
			body:    `{"Operations":[{"op":"Replace","path":"members.colour","value":"u1"}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "Replace displayName with an empty string",
			body:    `{"Operations":[{"op":"Replace","path":"displayName","value":""}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "Remove displayName",
			body:    `{"Operations":[{"op":"Remove","path":"displayName"}]}`,
			wantErr: "invalidValue",
		},
		{
			name:    "id is read-only",
			body:    `{"Operations":[{"op":"Replace","path":"id","value":"x"}]}`,
			wantErr: "mutability",
		},
		{
			name:    "bad members filter",
			body:    `{"Operations":[{"op":"Remove","path":"members[value eq \"u1\""}]}`,
			wantErr: "invalidPath",
		},
		{
			name:    "unknown op",
			body:    `{"Operations":[{"op":"Delete","path":"members","value":[{"value":"u1"}]}]}`,
			wantErr: "invalidSyntax",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			attrs, changes, err := patchTestApply(t, groupType, start, tt.body)
			patchTestErr(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if got, want := strings.Join(patchTestChanges(changes), " | "), strings.Join(tt.wantChanges, " | "); got != want {
				t.Errorf("changes = %q, want %q", got, want)
			}
			want := tt.want
			if want == "" {
				want = start
			}
			if got, want := patchTestJSON(t, attrs), patchTestJSON(t, want); got != want {
				t.Errorf("attrs =\n%s\nwant\n%s", got, want)
			}
			if _, ok := attrs["members"]; ok {
				t.Errorf("members stored in attrs: %s", patchTestJSON(t, attrs))
			}
		})
	}
}

// TestApplyPatchIdempotent applies Entra PATCHes twice: Entra retries, and
// the second application must leave the same attributes (and, for groups,
// produce the same membership changes).
func TestApplyPatchIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		rt    *resourceType
		start string
		body  string
	}{
		{
			name:  "D1 multi-valued update",
			rt:    userType,
			start: defaultUser,
			body:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]}`,
		},
		{
			name:  "aadOptscim062020 path-less replace",
			rt:    userType,
			start: twoEmails,
			body:  `{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq","active":"True"}}]}`,
		},
		{
			name:  "SimpleIdServer#376 adds",
			rt:    userType,
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"test@test.com"},{"op":"Add","path":"emails[type eq \"work\"].primary","value":"true"},{"op":"Add","path":"emails[type eq \"work\"].type","value":"work"}]}`,
		},
		{
			name:  "address mappings",
			rt:    userType,
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Way"},{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"},{"op":"Add","path":"addresses[type eq \"work\"].country","value":"US"}]}`,
		},
		{
			name:  "Add emails array",
			rt:    userType,
			start: twoEmails,
			body:  `{"Operations":[{"op":"Add","path":"emails","value":[{"type":"other","value":"o@example.com","primary":"False"}]}]}`,
		},
		{
			name:  "Add roles stringified",
			rt:    userType,
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"06b0\",\"value\":\"25\"}"}]}]}`,
		},
		{
			name:  "manager raw id and department",
			rt:    userType,
			start: defaultUser,
			body:  `{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"271"},{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Retail"}]}`,
		},
		{
			name:  "manager removal",
			rt:    userType,
			start: `{"userName":"bjensen","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m1"}}}`,
			body:  `{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":""}]}`,
		},
		{
			name:  "disable",
			rt:    userType,
			start: `{"userName":"bjensen","active":true}`,
			body:  `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		},
		{
			name:  "remove with value",
			rt:    userType,
			start: twoEmails,
			body:  `{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"work@example.com"},{"op":"Remove","path":"emails","value":[{"value":"home@example.com"}]}]}`,
		},
		{
			name:  "group rename and members",
			rt:    groupType,
			start: `{"displayName":"Eng"}`,
			body:  `{"Operations":[{"op":"Replace","path":"displayName","value":"Eng2"},{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1"}]},{"op":"Remove","path":"members","value":[{"value":"u2"}]},{"op":"remove","path":"members[value eq \"u3\"]"}]}`,
		},
		{
			name:  "group path-less",
			rt:    groupType,
			start: `{"displayName":"Eng"}`,
			body:  `{"Operations":[{"op":"Add","value":{"displayName":"Eng2","members":[{"value":"u1"}]}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := decodePatch([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			attrs := patchTestAttrs(t, tt.rt, tt.start)
			first, err := applyPatch(tt.rt, attrs, req.Operations)
			if err != nil {
				t.Fatalf("first: %v", err)
			}
			once := patchTestJSON(t, attrs)
			// A fresh decode, as a retried request would be.
			req, err = decodePatch([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			second, err := applyPatch(tt.rt, attrs, req.Operations)
			if err != nil {
				t.Fatalf("second: %v", err)
			}
			if got, want := patchTestJSON(t, attrs), once; got != want {
				t.Errorf("after the second application\n%s\nafter the first\n%s", got, want)
			}
			if got, want := strings.Join(patchTestChanges(second), " | "), strings.Join(patchTestChanges(first), " | "); got != want {
				t.Errorf("second changes = %q, first %q", got, want)
			}
		})
	}
}

func TestParsePatchPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		path       string
		wantURN    string
		wantAttr   string
		wantSub    string
		wantFilter bool
		wantErr    bool
	}{
		{name: "simple", path: "userName", wantAttr: "userName"},
		{name: "spaces around", path: "  nickName\t", wantAttr: "nickName"},
		{name: "sub-attribute", path: "name.givenName", wantAttr: "name", wantSub: "givenName"},
		{name: "filter", path: `emails[type eq "work"]`, wantAttr: "emails", wantFilter: true},
		{name: "filter and sub-attribute", path: `emails[type eq "work"].value`, wantAttr: "emails", wantSub: "value", wantFilter: true},
		{name: "filter with spaces", path: `emails[ type eq "work" ] .value`, wantAttr: "emails", wantSub: "value", wantFilter: true},
		{name: "address filter", path: `addresses[type eq "work"].streetAddress`, wantAttr: "addresses", wantSub: "streetAddress", wantFilter: true},
		{name: "string boolean filter", path: `roles[primary eq "True"].display`, wantAttr: "roles", wantSub: "display", wantFilter: true},
		{name: "bracket inside the filter string", path: `emails[value eq "a]b"].type`, wantAttr: "emails", wantSub: "type", wantFilter: true},
		{name: "logical filter", path: `emails[type eq "work" and value co "@example.com"]`, wantAttr: "emails", wantFilter: true},
		{name: "members filter", path: `members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]`, wantAttr: "members", wantFilter: true},
		{name: "enterprise attribute", path: entUser + ":employeeNumber", wantURN: entUser, wantAttr: "employeeNumber"},
		{name: "enterprise department", path: entUser + ":department", wantURN: entUser, wantAttr: "department"},
		{name: "enterprise manager sub", path: entUser + ":manager.value", wantURN: entUser, wantAttr: "manager", wantSub: "value"},
		{name: "enterprise manager filter", path: entUser + `:manager[value eq "m1"]`, wantURN: entUser, wantAttr: "manager", wantFilter: true},
		{name: "whole enterprise extension", path: entUser, wantURN: entUser},
		{name: "whole extension in other case", path: strings.ToUpper(entUser), wantURN: entUser},
		{name: "core URN", path: userSchema + ":name.familyName", wantURN: userSchema, wantAttr: "name", wantSub: "familyName"},
		{name: "unknown extension", path: "urn:example:custom:2.0:User:badge", wantURN: "urn:example:custom:2.0:User", wantAttr: "badge"},
		{name: "$ref sub-attribute", path: "members.$ref", wantAttr: "members", wantSub: "$ref"},

		{name: "empty", path: "", wantErr: true},
		{name: "blank", path: "   ", wantErr: true},
		{name: "unterminated filter", path: `emails[type eq "work"`, wantErr: true},
		{name: "unterminated string", path: `emails[type eq "work]`, wantErr: true},
		{name: "empty filter", path: "emails[]", wantErr: true},
		{name: "double dot", path: "name..x", wantErr: true},
		{name: "trailing dot", path: "name.", wantErr: true},
		{name: "leading dot", path: ".name", wantErr: true},
		{name: "two sub-attributes", path: "name.givenName.x", wantErr: true},
		{name: "extra closing bracket", path: `emails[type eq "work"]]`, wantErr: true},
		{name: "two filters", path: `emails[type eq "work"][value eq "x"]`, wantErr: true},
		{name: "sub-attribute without dot", path: `emails[type eq "work"]value`, wantErr: true},
		{name: "empty sub-attribute", path: `emails[type eq "work"].`, wantErr: true},
		{name: "nested sub-attribute after filter", path: `emails[type eq "work"].value.x`, wantErr: true},
		{name: "filter after a sub-attribute", path: `name.givenName[value eq "x"]`, wantErr: true},
		{name: "filter without attribute", path: `[type eq "work"]`, wantErr: true},
		{name: "filter without operator", path: `emails[type]`, wantErr: true},
		{name: "filter without value", path: `emails[type eq]`, wantErr: true},
		{name: "unknown filter operator", path: `emails[type is "work"]`, wantErr: true},
		{name: "two words", path: "emails type", wantErr: true},
		{name: "quoted", path: `"userName"`, wantErr: true},
		{name: "digit first", path: "1name", wantErr: true},
		{name: "bad character", path: "user*Name", wantErr: true},
		{name: "URN without attribute", path: entUser + ":", wantErr: true},
		{name: "parenthesis", path: "(userName)", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parsePatchPath(tt.path)
			if tt.wantErr {
				patchTestErr(t, err, "invalidPath")
				return
			}
			if err != nil {
				t.Fatalf("parsePatchPath(%q): %v", tt.path, err)
			}
			if got, want := p.URN, tt.wantURN; got != want {
				t.Errorf("URN = %q, want %q", got, want)
			}
			if got, want := p.Attr, tt.wantAttr; got != want {
				t.Errorf("Attr = %q, want %q", got, want)
			}
			if got, want := p.Sub, tt.wantSub; got != want {
				t.Errorf("Sub = %q, want %q", got, want)
			}
			if got, want := p.Filter != nil, tt.wantFilter; got != want {
				t.Errorf("has filter = %v, want %v", got, want)
			}
		})
	}
}

// TestParsePatchPathFilter checks that the filter of a path selects the element it names.
func TestParsePatchPathFilter(t *testing.T) {
	t.Parallel()
	emails := userSchemaDef.attr("emails")
	tests := []struct {
		name    string
		path    string
		element string
		want    bool
	}{
		{name: "type matches", path: `emails[type eq "work"].value`, element: `{"type":"work","value":"a@x"}`, want: true},
		{name: "type in other case", path: `emails[type eq "Work"]`, element: `{"type":"work"}`, want: true},
		{name: "other type", path: `emails[type eq "work"].value`, element: `{"type":"home","value":"a@x"}`, want: false},
		{name: "bracket in string", path: `emails[value eq "a]b"]`, element: `{"value":"a]b"}`, want: true},
		{name: "string boolean", path: `emails[primary eq "True"]`, element: `{"primary":true}`, want: true},
		{name: "and", path: `emails[type eq "work" and value co "@x"]`, element: `{"type":"work","value":"a@x"}`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := parsePatchPath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var el map[string]any
			if err := decodeJSON([]byte(tt.element), &el); err != nil {
				t.Fatal(err)
			}
			nv, err := normalizeSingle(emails, el)
			if err != nil {
				t.Fatal(err)
			}
			el, _ = nv.(map[string]any)
			if got, want := eval(p.Filter, func(sp attrPath) *Attr { return emails.sub(sp.Attr) }, el), tt.want; got != want {
				t.Errorf("filter of %s on %s = %v, want %v", tt.path, tt.element, got, want)
			}
		})
	}
}

// patchFuzzUser and patchFuzzGroup are fresh sample resources for the fuzz targets.
func patchFuzzUser() map[string]any {
	return map[string]any{
		"userName":    "bjensen",
		"displayName": "Babs",
		"active":      true,
		"name":        map[string]any{"givenName": "Barbara", "familyName": "Jensen"},
		"emails": []any{
			map[string]any{"type": "work", "value": "work@example.com", "primary": true},
			map[string]any{"type": "home", "value": "home@example.com"},
		},
		"addresses": []any{map[string]any{"type": "work", "locality": "Redmond"}},
		"roles":     []any{map[string]any{"value": "Admin", "primary": true}},
		entUser: map[string]any{
			"department": "Sales",
			"manager":    map[string]any{"value": "m1"},
		},
		"urn:example:custom:2.0:User": map[string]any{"badge": "7"},
	}
}

func patchFuzzGroup() map[string]any {
	return map[string]any{"displayName": "Eng", "externalId": "e1"}
}

func FuzzParsePatchPath(f *testing.F) {
	for _, s := range []string{
		"userName", "name.givenName", `emails[type eq "work"].value`, `emails[type eq "work"]`,
		`addresses[type eq "work"].streetAddress`, `roles[primary eq "True"].display`,
		`members[value eq "7f4bc1a3-285e-48ae-8202-5accb43efb0e"]`, entUser, entUser + ":employeeNumber",
		entUser + ":manager", entUser + `:manager[value eq "m1"]`, entUser + ":manager.value", "manager",
		userSchema + ":name.familyName", groupSchema, groupSchema + ":members", "urn:example:custom:2.0:User:badge",
		`emails[type eq "work"`, "emails[]", "name..x", `emails[value eq "a]b"].type`, `emails[not (type eq "x")].value`,
		`emails[type eq "work" or type eq "home"].value`, `emails[value pr].type`, `name[givenName eq "x"].familyName`,
		"id", "meta.created", "groups", "active", `x[y eq 1].z`, "urn:", "urn::", `urn:a[b eq "c"]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePatchPath(s)
		if err != nil {
			var se *scimError
			if !errors.As(err, &se) || se.ScimType != "invalidPath" {
				t.Fatalf("parsePatchPath(%q): error %v is not an invalidPath *scimError", s, err)
			}
			return
		}
		if p.Attr == "" && p.URN == "" {
			t.Fatalf("parsePatchPath(%q) = %+v: no attribute and no URN", s, p)
		}
		for _, op := range []string{"replace", "add", "remove"} {
			for _, v := range []any{"x", nil} {
				_, _ = applyPatch(userType, patchFuzzUser(), []patchOp{{Op: op, Path: s, Value: v}})
				_, _ = applyPatch(groupType, patchFuzzGroup(), []patchOp{{Op: op, Path: s, Value: v}})
			}
		}
	})
}

func FuzzApplyPatch(f *testing.F) {
	for _, s := range []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]}`,
		`{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
		`{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"T@test.microsoft.com"},{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}`,
		`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"271"}]}`,
		`{"Operations":[{"op":"Add","path":"manager","value":[{"$ref":"http://x/Users/1","value":"1"}]}]}`,
		`{"Operations":[{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager[value eq \"m1\"]"}]}`,
		`{"Operations":[{"op":"Remove","path":"emails[type eq \"work\"].value","value":"work@example.com"}]}`,
		`{"Operations":[{"op":"Add","path":"addresses[type eq \"work\"].streetAddress","value":"1 Way"},{"op":"Add","path":"addresses[type eq \"work\"].locality","value":"Redmond"}]}`,
		`{"Operations":[{"op":"Add","path":"roles","value":[{"value":"{\"id\":\"1\"}"}]}]}`,
		`{"Operations":[{"op":"Add","path":"roles[primary eq \"True\"].value","value":"Admin"}]}`,
		`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"x","manager":{"value":"m"}}}]}`,
		`{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:core:2.0:User","value":{"userName":"x","name":{"givenName":"y"}}}]}`,
		`{"Operations":[{"op":"Add","path":"urn:example:custom:2.0:User:badge","value":{"a":[1,2,null]}}]}`,
		`{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]}`,
		`{"Operations":[{"op":"Remove","path":"members","value":[{"value":"u1"}]}]}`,
		`{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"}]}`,
		`{"Operations":[{"op":"Replace","value":{"displayName":"x","members":["u1",{"value":"u2"}],"id":"1","meta":{}}}]}`,
		`{"Operations":[{"op":"Replace","path":"emails","value":[[1]]}]}`,
		`{"Operations":[{"op":"Add","path":"name","value":["x",{"givenName":true}]}]}`,
		`{"Operations":[{"op":"Add","path":"emails[type eq \"work\"]","value":{"value":{"nested":[]},"primary":"TRUE"}}]}`,
		`{"Operations":null}`, `{}`, `[]`, `null`, `{"Operations":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodePatch(body)
		if err != nil {
			return
		}
		if _, err := applyPatch(userType, patchFuzzUser(), req.Operations); err != nil {
			var se *scimError
			if !errors.As(err, &se) {
				t.Fatalf("user: error %v is not a *scimError", err)
			}
		}
		// Decode again: applyPatch may keep references to the decoded values.
		if req, err = decodePatch(body); err != nil {
			t.Fatalf("second decode failed: %v", err)
		}
		if _, err := applyPatch(groupType, patchFuzzGroup(), req.Operations); err != nil {
			var se *scimError
			if !errors.As(err, &se) {
				t.Fatalf("group: error %v is not a *scimError", err)
			}
		}
	})
}

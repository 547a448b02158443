package main

import (
	"encoding/json"
	"slices"
	"testing"
)

// TestParseAppRole reads both shapes Entra sends an app role in (the POST's
// object, the PATCH's stringified JSON) and the values that only look like one.
func TestParseAppRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		el   string // one element of roles, as stored
		want AppRole
		ok   bool
	}{
		{name: "POST shape (SingleAppRoleAssignment)", el: `{"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}`,
			want: AppRole{Value: "Admin"}, ok: true},
		{name: "PATCH shape: stringified JSON", el: `{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"Admin\",\"displayName\":\"Administrator\"}"}`,
			want: AppRole{ID: "06b07648-ecfe-589f-9d2f-6325724a46ee", Value: "Admin", DisplayName: "Administrator"}, ok: true},
		{name: "Microsoft's PATCH example", el: `{"value":"{\"id\":\"06b07648-ecfe-589f-9d2f-6325724a46ee\",\"value\":\"25\",\"displayName\":\"Role1234\"}"}`,
			want: AppRole{ID: "06b07648-ecfe-589f-9d2f-6325724a46ee", Value: "25", DisplayName: "Role1234"}, ok: true},
		{name: "AppRoleAssignmentsComplex POST with display", el: `{"primary":false,"value":"Admin","display":"Administrator"}`,
			want: AppRole{Value: "Admin", DisplayName: "Administrator"}, ok: true},
		{name: "objects with id and displayName (feature flag)", el: `{"id":"r1","value":"Admin","displayName":"Administrator"}`,
			want: AppRole{ID: "r1", Value: "Admin", DisplayName: "Administrator"}, ok: true},
		{name: "stringified JSON with spaces around it", el: `{"value":"  {\"value\":\"Admin\"} "}`, want: AppRole{Value: "Admin"}, ok: true},
		{name: "stringified JSON with a numeric value", el: `{"value":"{\"id\":\"r1\",\"value\":25}"}`, want: AppRole{ID: "r1", Value: "25"}, ok: true},
		{name: "stringified JSON without a value keeps the outer display name", el: `{"display":"Outer","value":"{\"id\":\"r1\"}"}`,
			want: AppRole{ID: "r1", DisplayName: "Outer"}, ok: true},
		{name: "malformed JSON stays a plain value", el: `{"value":"{\"id\":\"r1\",\"value\":"}`, want: AppRole{Value: `{"id":"r1","value":`}, ok: true},
		{name: "JSON after the object stays a plain value", el: `{"value":"{\"value\":\"a\"} {}"}`, want: AppRole{Value: `{"value":"a"} {}`}, ok: true},
		{name: "an object naming nothing stays a plain value", el: `{"value":"{\"primary\":true}"}`, want: AppRole{Value: `{"primary":true}`}, ok: true},
		{name: "a JSON number is a plain value", el: `{"value":"25"}`, want: AppRole{Value: "25"}, ok: true},
		{name: "a JSON array is a plain value", el: `{"value":"[\"Admin\"]"}`, want: AppRole{Value: `["Admin"]`}, ok: true},
		{name: "a bare string", el: `"Admin"`, want: AppRole{Value: "Admin"}, ok: true},
		{name: "nothing to name a role by", el: `{"primary":true,"type":"WindowsAzureActiveDirectoryRole"}`, ok: false},
		{name: "not an object", el: `true`, ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var el any
			if err := json.Unmarshal([]byte(tc.el), &el); err != nil {
				t.Fatal(err)
			}
			got, ok := parseAppRole(el)
			if got != tc.want || ok != tc.ok {
				t.Errorf("parseAppRole(%s) = %+v, %v; want %+v, %v", tc.el, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestAppRoleKeysOfBothShapes checks that the POST and the PATCH shape of the
// same app role give the keys a rule matches, and that keys are case-folded.
func TestAppRoleKeysOfBothShapes(t *testing.T) {
	t.Parallel()
	post := map[string]any{"roles": []any{map[string]any{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "Admin"}}}
	patch := map[string]any{"roles": []any{map[string]any{"value": `{"id":"06b0","value":"ADMIN","displayName":"Administrator"}`}}}
	if got := appRoleKeys(post); !slices.Equal(got, []string{"admin"}) {
		t.Errorf("POST shape keys = %q", got)
	}
	if got := appRoleKeys(patch); !slices.Equal(got, []string{"06b0", "admin", "administrator"}) {
		t.Errorf("PATCH shape keys = %q", got)
	}
	if got := appRoleKeys(map[string]any{}); len(got) != 0 {
		t.Errorf("no roles: keys %q", got)
	}
}

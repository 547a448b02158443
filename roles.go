package main

// Roles in the effective view: the Entra app-role assignments a user's SCIM
// roles attribute holds, read the same whichever shape Entra sent them in,
// and the roles scimbox grants (store_roles.go keeps them). Pure functions.

import (
	"encoding/json"
	"slices"
	"strings"
)

// AppRole is one Entra app-role assignment as apps see it.
type AppRole struct {
	ID          string `json:"id,omitempty"`
	Value       string `json:"value,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// parseAppRole reads one element of the SCIM roles attribute. Entra sends an
// app role in two shapes (entra-scim.md 2.6(9)): in a POST as an object,
// {"primary":true,"type":"WindowsAzureActiveDirectoryRole","value":"Admin"}
// (AppRoleAssignmentsComplex adds display or displayName); in a PATCH as an
// object whose value is the assignment as stringified JSON,
// {"value":"{\"id\":\"…\",\"value\":\"Admin\",\"displayName\":\"Administrator\"}"}.
// Both give the same AppRole. A value that is not a JSON object with an id,
// value or displayName (malformed JSON, a number) is a plain value. It
// returns false for an element with nothing to name a role by.
func parseAppRole(el any) (AppRole, bool) {
	var obj map[string]any
	switch el := el.(type) {
	case map[string]any:
		obj = el
	case string:
		obj = map[string]any{"value": el}
	default:
		return AppRole{}, false
	}
	r := AppRole{ID: stringOf(obj["id"]), Value: stringOf(obj["value"]),
		DisplayName: firstNonEmpty(stringOf(obj["displayName"]), stringOf(obj["display"]))}
	if inner, ok := stringifiedAppRole(r.Value); ok {
		r = AppRole{ID: firstNonEmpty(inner.ID, r.ID), Value: inner.Value, DisplayName: firstNonEmpty(inner.DisplayName, r.DisplayName)}
	}
	return r, r != AppRole{}
}

// stringifiedAppRole decodes the PATCH shape's value: a JSON object with at
// least one of id, value and displayName (or display) as a string or number.
func stringifiedAppRole(s string) (AppRole, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		return AppRole{}, false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || dec.More() {
		return AppRole{}, false
	}
	r := AppRole{ID: stringOf(obj["id"]), Value: stringOf(obj["value"]),
		DisplayName: firstNonEmpty(stringOf(obj["displayName"]), stringOf(obj["display"]))}
	return r, r != AppRole{}
}

// stringOf is a JSON string or number as text, else "".
func stringOf(v any) string {
	switch v := v.(type) {
	case string:
		return strings.TrimSpace(v)
	case json.Number:
		return v.String()
	}
	return ""
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// appRolesOf returns the app-role assignments in a user's roles attribute, in order.
func appRolesOf(attrs map[string]any) []AppRole {
	list, _ := attrs["roles"].([]any)
	out := []AppRole{}
	for _, el := range list {
		if r, ok := parseAppRole(el); ok && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// appRoleKeys returns what an app-role rule can match in a user's roles:
// the value, display name and id of each assignment, case-folded as the
// schema compares roles values (not caseExact), without duplicates.
func appRoleKeys(attrs map[string]any) []string {
	var keys []string
	for _, r := range appRolesOf(attrs) {
		for _, k := range []string{r.Value, r.DisplayName, r.ID} {
			if k != "" {
				keys = append(keys, appRoleKey(k))
			}
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// appRoleKey is how an app-role rule's text and an assignment's names are compared.
func appRoleKey(s string) string { return foldCase(strings.TrimSpace(s)) }

// withRoles puts the roles into an app's view of a user (d, from
// appUser): "roles" becomes the user's effective roles (the names scimbox
// grants), and the assignments Entra wrote, in either shape, become
// "appRoles". The SCIM view keeps the roles attribute exactly as Entra sent it.
func withRoles(d map[string]any, u *User) {
	d["appRoles"] = appRolesOf(d)
	d["roles"] = append([]string{}, u.Roles...)
}

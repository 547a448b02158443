package main

// Source of truth per field: whether the directory's value or a local edit
// wins. Pure functions over attribute maps, with no I/O; the store keeps both
// layers (what the directory last wrote, and local overrides) and the admin
// page shows the effective values these functions compute.

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"time"
)

// Source says which side owns a field.
type Source string

const (
	// FromDirectory: the directory's value is always shown; local edits are not allowed.
	FromDirectory Source = "directory"
	// FromLocal: once edited locally, the local value wins whatever the directory sends later.
	FromLocal Source = "local"
)

// Account kinds.
const (
	accountDirectory     = "directory"     // created or last claimed by SCIM
	accountManual        = "manual"        // created in the admin page, or left behind by a disconnect
	accountDeprovisioned = "deprovisioned" // deleted by the directory but kept, disabled and hidden from it
)

// Field is a user field whose source of truth the admin chooses.
type Field struct {
	Key   string // the attribute path: "displayName", "name.givenName", or a URN-qualified enterprise attribute
	Label string
	// Personal fields default to local in the hybrid preset; the others are
	// identity and organisation fields that the directory owns.
	Personal bool
}

// policyFields are the user fields a policy covers, in display order.
var policyFields = []Field{
	{"userName", "User name", false},
	{"name.givenName", "Given name", false},
	{"name.familyName", "Family name", false},
	{"displayName", "Display name", true},
	{"nickName", "Nickname", true},
	{"emails", "Email addresses", false},
	{"phoneNumbers", "Phone numbers", true},
	{"title", "Job title", false},
	{enterpriseSchema + ":department", "Department", false},
	{enterpriseSchema + ":employeeNumber", "Employee number", false},
	{enterpriseSchema + ":manager", "Manager", false},
	{"addresses", "Office address", false},
	{"preferredLanguage", "Preferred language", true},
	{"profileUrl", "Profile URL", true},
	{"active", "Active", false},
}

// fieldByKey returns the policy field with that key, or false.
func fieldByKey(key string) (Field, bool) {
	for _, f := range policyFields {
		if f.Key == key {
			return f, true
		}
	}
	return Field{}, false
}

// Policy maps each field key to its source of truth.
type Policy map[string]Source

// Presets the admin can apply in one go.
const (
	presetDirectory = "directory" // the directory is the source of truth for everything
	presetLocal     = "local"     // local edits win for every field
	presetHybrid    = "hybrid"    // the directory owns identity and organisation, local edits win for personal fields
)

// PresetPolicy returns the policy of a preset; unknown names give the hybrid default.
func PresetPolicy(preset string) Policy {
	p := Policy{}
	for _, f := range policyFields {
		switch {
		case preset == presetDirectory:
			p[f.Key] = FromDirectory
		case preset == presetLocal:
			p[f.Key] = FromLocal
		case f.Personal:
			p[f.Key] = FromLocal
		default:
			p[f.Key] = FromDirectory
		}
	}
	return p
}

// Source returns the source of truth of a field; fields the policy does not
// name belong to the directory.
func (p Policy) Source(key string) Source {
	if s, ok := p[key]; ok && (s == FromDirectory || s == FromLocal) {
		return s
	}
	return FromDirectory
}

// Override is a local edit of one field of a directory-managed account.
type Override struct {
	Value any       `json:"value"` // nil clears the field locally
	By    string    `json:"by"`
	At    time.Time `json:"at"`
	// Hold is the safety-rail hold (holds.go) that keeps this value against
	// the directory's, whatever the policy says; 0 for a local edit.
	Hold int64 `json:"hold,omitempty"`
}

// fieldPath resolves a field key to an attribute path.
func fieldPath(key string) attrPath {
	if strings.HasPrefix(key, enterpriseSchema+":") {
		return attrPath{URN: enterpriseSchema, Attr: strings.TrimPrefix(key, enterpriseSchema+":")}
	}
	p, _ := parseAttrPath(key)
	return p
}

// getField returns a field's value in attrs (nil when absent).
func getField(attrs map[string]any, key string) any {
	p := fieldPath(key)
	obj := attrs
	if p.URN != "" {
		obj, _ = attrs[p.URN].(map[string]any)
	}
	v := obj[p.Attr]
	if p.Sub == "" {
		return v
	}
	m, _ := v.(map[string]any)
	return m[p.Sub]
}

// setField sets (or, with nil, removes) a field in attrs, removing containers left empty.
func setField(attrs map[string]any, key string, v any) {
	p := fieldPath(key)
	obj := attrs
	if p.URN != "" {
		obj, _ = attrs[p.URN].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
		}
		defer func() {
			if len(obj) == 0 {
				delete(attrs, p.URN)
			} else {
				attrs[p.URN] = obj
			}
		}()
	}
	if p.Sub == "" {
		if v == nil {
			delete(obj, p.Attr)
		} else {
			obj[p.Attr] = v
		}
		return
	}
	m, _ := obj[p.Attr].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	if v == nil {
		delete(m, p.Sub)
	} else {
		m[p.Sub] = v
	}
	if len(m) == 0 {
		delete(obj, p.Attr)
	} else {
		obj[p.Attr] = m
	}
}

// Effective returns the attributes everyone but the directory sees: the
// directory's values, with local overrides applied to the fields whose source
// of truth is local. attrs is not modified.
func Effective(attrs map[string]any, overrides map[string]Override, p Policy) map[string]any {
	if len(overrides) == 0 {
		return attrs
	}
	out := cloneJSON(attrs)
	for key, o := range overrides {
		if p.Source(key) == FromLocal || o.Hold != 0 {
			setField(out, key, o.Value)
		}
	}
	return out
}

// cloneJSON deep-copies a JSON-shaped map.
func cloneJSON(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

// cloneValue deep-copies a JSON value, so that an override never aliases the stored attributes.
func cloneValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return cloneJSON(v)
	case []any:
		out := make([]any, len(v))
		for i, el := range v {
			out[i] = cloneValue(el)
		}
		return out
	}
	return v
}

// FieldOrigin says where a shown value comes from.
type FieldOrigin string

const (
	originDirectory FieldOrigin = "directory"
	originOverride  FieldOrigin = "local override"
	originManual    FieldOrigin = "manual"
	originHeld      FieldOrigin = "kept by a safety rail"
)

// directoryManaged reports whether the directory manages an account in the
// effective view: a directory account, or one whose deletion a safety rail
// keeps (accountRetained), which apps still see as the directory's.
func directoryManaged(kind string) bool {
	return kind == accountDirectory || kind == accountRetained
}

// Origin reports where a field's effective value comes from.
func Origin(kind string, overrides map[string]Override, p Policy, key string) FieldOrigin {
	if !directoryManaged(kind) {
		return originManual
	}
	o, ok := overrides[key]
	if ok && o.Hold != 0 {
		return originHeld
	}
	if ok && p.Source(key) == FromLocal {
		return originOverride
	}
	return originDirectory
}

// CanEdit reports whether the admin may edit a field of an account, and if
// not, why in words for the page.
func CanEdit(kind string, p Policy, key string) (bool, string) {
	if _, ok := fieldByKey(key); !ok {
		return false, "this field cannot be edited here"
	}
	switch {
	case !directoryManaged(kind):
		return true, ""
	case p.Source(key) == FromLocal:
		return true, ""
	}
	return false, "the directory is the source of truth for this field"
}

// ErrReadOnlyField is returned for an edit the policy does not allow.
type ErrReadOnlyField struct{ Key, Why string }

// Error says which field is read-only and why.
func (e *ErrReadOnlyField) Error() string {
	return fmt.Sprintf("%s cannot be edited: %s", e.Key, e.Why)
}

// LocalEdit applies an admin's edit of one field. For a manual account it
// changes the attributes; for a directory-managed one it records an override
// (or removes it when the value equals the directory's). It returns the new
// attributes and overrides; the inputs are not modified.
func LocalEdit(kind string, attrs map[string]any, overrides map[string]Override, p Policy, key string, value any, by string, now time.Time) (map[string]any, map[string]Override, error) {
	if ok, why := CanEdit(kind, p, key); !ok {
		return nil, nil, &ErrReadOnlyField{key, why}
	}
	if !directoryManaged(kind) {
		out := cloneJSON(attrs)
		setField(out, key, value)
		return out, overrides, nil
	}
	out := maps.Clone(overrides)
	if out == nil {
		out = map[string]Override{}
	}
	if jsonEqual(getField(attrs, key), value) {
		delete(out, key) // the same as the directory's: nothing to override
	} else {
		out[key] = Override{Value: value, By: by, At: now}
	}
	return attrs, out, nil
}

// Revert drops a local override, so that the directory's value shows again.
func Revert(overrides map[string]Override, key string) map[string]Override {
	out := maps.Clone(overrides)
	delete(out, key)
	return out
}

// Disconnected turns a directory-managed account into a manual one carrying
// its effective values; overrides are folded in and dropped.
func Disconnected(attrs map[string]any, overrides map[string]Override, p Policy) map[string]any {
	return cloneJSON(Effective(attrs, overrides, p))
}

// Claimed is what a manual account becomes when the directory claims it with
// a POST: the directory's attributes, with the manual values kept as
// overrides for the fields the policy lets local edits own.
func Claimed(manual, directory map[string]any, p Policy, now time.Time) map[string]Override {
	overrides := map[string]Override{}
	for _, f := range policyFields {
		if p.Source(f.Key) != FromLocal {
			continue
		}
		local := getField(manual, f.Key)
		if local != nil && !jsonEqual(local, getField(directory, f.Key)) {
			overrides[f.Key] = Override{Value: local, By: "kept when the directory claimed the account", At: now}
		}
	}
	return overrides
}

// jsonEqual compares JSON values by their encoding, so json.Number 1 equals float64 1.
func jsonEqual(a, b any) bool {
	if reflect.DeepEqual(a, b) {
		return true
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// DeprovisionMode says what a SCIM DELETE does to a user.
type DeprovisionMode string

const (
	deprovisionDelete DeprovisionMode = "delete" // remove the account (the default)
	deprovisionHide   DeprovisionMode = "hide"   // keep it, disabled and hidden from the directory
)

// Settings keys for the policy.
const (
	settingPolicy        = "policy"
	settingClaim         = "claim_existing_accounts"
	settingDeprovision   = "deprovision_mode"
	settingPurgeInactive = "purge_inactive_after_days"
)

// The schemas (RFC 7643 §4) and the one attribute gate: what may be written,
// returned, filtered and exported is decided here from the definitions that
// /Schemas serves, for every surface.

package main

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
)

// Schema URNs that scimbox knows.
const (
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	groupSchema      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	listSchema       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	errorSchema      = "urn:ietf:params:scim:api:messages:2.0:Error"
	patchSchema      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	searchSchema     = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	spcSchema        = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	rtSchema         = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaSchema     = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// Attribute types (RFC 7643 §2.3).
const (
	typeString    = "string"
	typeBoolean   = "boolean"
	typeDecimal   = "decimal"
	typeInteger   = "integer"
	typeDateTime  = "dateTime"
	typeReference = "reference"
	typeComplex   = "complex"
	typeBinary    = "binary"
)

// Attr is one attribute definition of a schema. The same definitions are served
// by /Schemas and drive the code: canonical attribute names, boolean coercion,
// case sensitivity of filters and which attributes a client may write.
type Attr struct {
	Name        string
	Type        string
	Multi       bool
	Required    bool
	CaseExact   bool
	Mutability  string // readWrite (default), readOnly, immutable, writeOnly
	Returned    string // default (default), always, never, request
	Uniqueness  string // none (default), server, global
	Canonical   []string
	RefTypes    []string
	Description string
	Sub         []*Attr
}

// Schema is a resource schema or extension (RFC 7643 §7).
type Schema struct {
	ID          string
	Name        string
	Description string
	Attrs       []*Attr
}

// ReadOnly reports whether clients may not write the attribute.
func (a *Attr) ReadOnly() bool { return a.Mutability == "readOnly" }

// sub finds a sub-attribute by name, case-insensitively.
func (a *Attr) sub(name string) *Attr {
	return findAttr(a.Sub, name)
}

// attr finds a top-level attribute by name, case-insensitively.
func (s *Schema) attr(name string) *Attr {
	return findAttr(s.Attrs, name)
}

// findAttr returns the definition named name, case-insensitively, or nil.
func findAttr(list []*Attr, name string) *Attr {
	for _, a := range list {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// str and boolean shorten the many plain definitions below.
func str(name, desc string) *Attr { return &Attr{Name: name, Type: typeString, Description: desc} }

func boolean(name, desc string) *Attr { return &Attr{Name: name, Type: typeBoolean, Description: desc} }

// multiComplex builds the usual multi-valued complex attribute with value, display, type and primary.
func multiComplex(name, desc string, types []string, valueType string) *Attr {
	value := &Attr{Name: "value", Type: valueType, Description: "The value of the " + name + " entry."}
	if valueType == typeReference {
		value.RefTypes = []string{"external"} // photos (RFC 7643 §8.7.1)
	}
	return &Attr{Name: name, Type: typeComplex, Multi: true, Description: desc, Sub: []*Attr{
		value,
		str("display", "A human-readable name, primarily used for display purposes."),
		{Name: "type", Type: typeString, Canonical: types, Description: "A label indicating the attribute's function."},
		boolean("primary", "Indicates the 'primary' or preferred value."),
	}}
}

var (
	// idAttr, externalIDAttr and metaAttr are the common attributes of every resource (RFC 7643 §3.1).
	idAttr = &Attr{Name: "id", Type: typeString, CaseExact: true, Mutability: "readOnly", Returned: "always",
		Uniqueness: "server", Description: "Unique identifier for the resource, assigned by the service provider."}
	externalIDAttr = &Attr{Name: "externalId", Type: typeString, CaseExact: true,
		Description: "Identifier of the resource as defined by the provisioning client."}
	metaAttr = &Attr{Name: "meta", Type: typeComplex, Mutability: "readOnly", Description: "Resource metadata.", Sub: []*Attr{
		{Name: "resourceType", Type: typeString, CaseExact: true, Mutability: "readOnly"},
		{Name: "created", Type: typeDateTime, Mutability: "readOnly"},
		{Name: "lastModified", Type: typeDateTime, Mutability: "readOnly"},
		{Name: "location", Type: typeReference, Mutability: "readOnly", CaseExact: true, RefTypes: []string{"uri"}},
		{Name: "version", Type: typeString, CaseExact: true, Mutability: "readOnly"},
	}}
)

// userSchemaDef is the core User schema (RFC 7643 §4.1) as scimbox stores and serves it.
var userSchemaDef = &Schema{ID: userSchema, Name: "User", Description: "User Account", Attrs: []*Attr{
	{Name: "userName", Type: typeString, Required: true, Uniqueness: "server",
		Description: "Unique identifier for the User, typically used to sign in. Matched case-insensitively."},
	{Name: "name", Type: typeComplex, Description: "The components of the user's real name.", Sub: []*Attr{
		str("formatted", "The full name, formatted for display."),
		str("familyName", "The family name of the User."),
		str("givenName", "The given name of the User."),
		str("middleName", "The middle name(s) of the User."),
		str("honorificPrefix", "The honorific prefix(es) of the User."),
		str("honorificSuffix", "The honorific suffix(es) of the User."),
	}},
	str("displayName", "The name of the User, suitable for display to end-users."),
	str("nickName", "The casual way to address the user."),
	{Name: "profileUrl", Type: typeReference, RefTypes: []string{"external"}, Description: "A URI to the User's online profile."},
	str("title", "The user's title, such as \"Vice President\"."),
	str("userType", "Identifies the relationship between the organization and the user."),
	str("preferredLanguage", "The User's preferred written or spoken language."),
	str("locale", "The User's default location for localizing items."),
	str("timezone", "The User's time zone in the 'Olson' time zone database format."),
	boolean("active", "The User's administrative status."),
	{Name: "password", Type: typeString, Mutability: "writeOnly", Returned: "never",
		Description: "Accepted for compatibility and never stored or returned."},
	multiComplex("emails", "Email addresses for the user.", []string{"work", "home", "other"}, typeString),
	multiComplex("phoneNumbers", "Phone numbers for the User.", []string{"work", "home", "mobile", "fax", "pager", "other"}, typeString),
	multiComplex("ims", "Instant messaging addresses for the User.", nil, typeString),
	multiComplex("photos", "URLs of photos of the User.", []string{"photo", "thumbnail"}, typeReference),
	{Name: "addresses", Type: typeComplex, Multi: true, Description: "A physical mailing address for this User.", Sub: []*Attr{
		str("formatted", "The full mailing address, formatted for display."),
		str("streetAddress", "The full street address component."),
		str("locality", "The city or locality component."),
		str("region", "The state or region component."),
		str("postalCode", "The zip code or postal code component."),
		str("country", "The country name component."),
		{Name: "type", Type: typeString, Canonical: []string{"work", "home", "other"}},
		boolean("primary", "Indicates the preferred mailing address."),
	}},
	{Name: "groups", Type: typeComplex, Multi: true, Mutability: "readOnly",
		Description: "The groups the user belongs to directly, derived from group memberships.", Sub: []*Attr{
			{Name: "value", Type: typeString, CaseExact: true, Mutability: "readOnly"},
			{Name: "$ref", Type: typeReference, Mutability: "readOnly", RefTypes: []string{"Group"}},
			{Name: "display", Type: typeString, Mutability: "readOnly"},
			{Name: "type", Type: typeString, Mutability: "readOnly", Canonical: []string{"direct", "indirect"}},
		}},
	multiComplex("entitlements", "A list of entitlements for the User.", nil, typeString),
	multiComplex("roles", "A list of roles for the User.", nil, typeString),
	multiComplex("x509Certificates", "A list of certificates issued to the User.", nil, typeBinary),
}}

// enterpriseSchemaDef is the enterprise User extension (RFC 7643 §4.3).
var enterpriseSchemaDef = &Schema{ID: enterpriseSchema, Name: "EnterpriseUser", Description: "Enterprise User", Attrs: []*Attr{
	str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
	str("costCenter", "Identifies the name of a cost center."),
	str("organization", "Identifies the name of an organization."),
	str("division", "Identifies the name of a division."),
	str("department", "Identifies the name of a department."),
	{Name: "manager", Type: typeComplex, Description: "The User's manager.", Sub: []*Attr{
		{Name: "value", Type: typeString, CaseExact: true, Description: "The id of the SCIM resource representing the manager."},
		{Name: "$ref", Type: typeReference, RefTypes: []string{"User"}},
		{Name: "displayName", Type: typeString, Mutability: "readOnly"},
	}},
}}

// groupSchemaDef is the Group schema (RFC 7643 §4.2).
var groupSchemaDef = &Schema{ID: groupSchema, Name: "Group", Description: "Group", Attrs: []*Attr{
	{Name: "displayName", Type: typeString, Required: true, Uniqueness: "server",
		Description: "A human-readable name for the Group, unique case-insensitively."},
	{Name: "members", Type: typeComplex, Multi: true, Description: "A list of members of the Group. " +
		"A member id that no User or Group has is skipped, not refused: the other members are applied, the answer is a success, " +
		"and the skipped id is listed on the group's admin page.", Sub: []*Attr{
		{Name: "value", Type: typeString, CaseExact: true, Mutability: "immutable"},
		{Name: "$ref", Type: typeReference, Mutability: "immutable", RefTypes: []string{"User", "Group"}},
		{Name: "display", Type: typeString, Mutability: "readOnly"},
		{Name: "type", Type: typeString, Mutability: "immutable", Canonical: []string{"User", "Group"}},
	}},
}}

// resourceType describes a SCIM resource type and the schemas it is made of.
type resourceType struct {
	Name       string
	Endpoint   string
	Schema     *Schema
	Extensions []*Schema
}

var (
	// userType and groupType tie each endpoint to its schemas.
	userType  = &resourceType{Name: "User", Endpoint: "/Users", Schema: userSchemaDef, Extensions: []*Schema{enterpriseSchemaDef}}
	groupType = &resourceType{Name: "Group", Endpoint: "/Groups", Schema: groupSchemaDef}
	// resourceTypes are the resource types /ResourceTypes serves.
	resourceTypes = []*resourceType{userType, groupType}
)

// allSchemas lists every schema served by /Schemas.
func allSchemas() []*Schema { return []*Schema{userSchemaDef, enterpriseSchemaDef, groupSchemaDef} }

// commonAttrs are the attributes every resource has (RFC 7643 §3.1).
var commonAttrs = []*Attr{idAttr, externalIDAttr, metaAttr}

// extension returns the resource's extension schema with the given URN (case-insensitive), or nil.
func (rt *resourceType) extension(urn string) *Schema {
	for _, s := range rt.Extensions {
		if strings.EqualFold(s.ID, urn) {
			return s
		}
	}
	return nil
}

// extensionOf returns the extension schema that defines the attribute name, or nil.
func (rt *resourceType) extensionOf(name string) *Schema {
	for _, s := range rt.Extensions {
		if s.attr(name) != nil {
			return s
		}
	}
	return nil
}

// lookup resolves an attribute path of this resource type to its definition.
// urn may be empty (core schema); sub may be empty. Unknown attributes return nil.
func (rt *resourceType) lookup(urn, name, sub string) *Attr {
	var a *Attr
	switch {
	case urn == "" || strings.EqualFold(urn, rt.Schema.ID):
		a = findAttr(commonAttrs, name)
		if a == nil {
			a = rt.Schema.attr(name)
		}
	default:
		if ext := rt.extension(urn); ext != nil {
			a = ext.attr(name)
		}
	}
	if a == nil || sub == "" {
		return a
	}
	return a.sub(sub)
}

// ---- the attribute gate ----
//
// One place decides, from the definitions /Schemas serves, what a client may
// write, what may leave scimbox, what may be filtered on, when two values are
// the same and which value is primary. POST, PUT and every PATCH dialect ask
// writeGate; SCIM responses, the change feed, the read API, exports and the
// admin page show attributes through visible; lists and searches check their
// filter and sort with checkFilterable and checkSortable.

// writeAction is what happens to a value a client sends for an attribute.
type writeAction int

const (
	writeStore  writeAction = iota // the value is stored
	writeIgnore                    // the request goes on without the value
	writeRefuse                    // the request fails with 400 mutability
)

// writeGate decides what happens to a client's value for def. named is true
// when a PATCH path names the attribute or one of its sub-attributes; false
// for a key of a POST or PUT body or of a PATCH value object.
//   - readOnly values are ignored in bodies (RFC 7644 §3.5.1: "SHALL be
//     ignored"; clients echo id, meta and groups back) and refused when a path
//     names them (RFC 7644 §3.5.2: "a client MUST NOT modify").
//   - writeOnly values (password) are accepted and never stored, not even
//     hashed: scimbox authenticates no one with them, and what is not kept
//     cannot be returned, filtered on or leak through the feed.
//   - immutable values (a member's value and type) come with the element they
//     belong to; a path that names one to change it is refused.
func writeGate(def *Attr, named bool) writeAction {
	switch def.Mutability {
	case "writeOnly":
		return writeIgnore
	case "readOnly":
		if named {
			return writeRefuse
		}
		return writeIgnore
	case "immutable":
		if named {
			return writeRefuse
		}
	}
	return writeStore
}

// mutabilityError is the answer to a write that writeGate refuses.
func mutabilityError(def *Attr) error {
	return badRequest("mutability", "%s is %s: clients cannot change it", def.Name, def.Mutability)
}

// neverReturned reports whether values of the attribute must never leave
// scimbox (returned "never", or writeOnly, RFC 7643 §2.2).
func (a *Attr) neverReturned() bool { return a.Returned == "never" || a.Mutability == "writeOnly" }

// hidesSomething reports whether the attribute or one of its sub-attributes is never returned.
func (a *Attr) hidesSomething() bool {
	if a.neverReturned() {
		return true
	}
	for _, s := range a.Sub {
		if s.hidesSomething() {
			return true
		}
	}
	return false
}

// visible returns the attributes of a resource of this type without the
// values that are never returned. Every surface that shows a resource (SCIM
// responses, events, the read API, exports, the admin page) goes through it.
// attrs is not modified; it is returned as is when nothing has to go.
func (rt *resourceType) visible(attrs map[string]any) map[string]any {
	if !rt.hide(attrs, true) {
		return attrs
	}
	out := cloneJSON(attrs)
	rt.hide(out, false)
	return out
}

// hide removes the never-returned values from attrs (only reports whether
// there are any when dryRun is set).
func (rt *resourceType) hide(attrs map[string]any, dryRun bool) bool {
	found := hideIn(attrs, rt.Schema.Attrs, dryRun)
	for _, ext := range rt.Extensions {
		if k, ok := keyOf(attrs, ext.ID); ok {
			if obj, ok := attrs[k].(map[string]any); ok {
				found = hideIn(obj, ext.Attrs, dryRun) || found
			}
		}
	}
	return found
}

// hideIn removes from obj what defs say is never returned, and reports whether there was any; dryRun only reports.
func hideIn(obj map[string]any, defs []*Attr, dryRun bool) bool {
	found := false
	for _, a := range defs {
		if !a.hidesSomething() {
			continue
		}
		k, ok := keyOf(obj, a.Name)
		if !ok {
			continue
		}
		if a.neverReturned() {
			found = true
			if !dryRun {
				delete(obj, k)
			}
			continue
		}
		switch v := obj[k].(type) {
		case map[string]any:
			found = hideIn(v, a.Sub, dryRun) || found
		case []any:
			for _, el := range v {
				if m, ok := el.(map[string]any); ok {
					found = hideIn(m, a.Sub, dryRun) || found
				}
			}
		}
	}
	return found
}

// resolveAnywhere finds the definition a filter or sort path names in any
// resource type (a root .search spans them all), extension attributes named
// without their URN included. It returns nil for an unknown attribute.
func resolveAnywhere(p attrPath) []*Attr {
	var out []*Attr
	for _, rt := range resourceTypes {
		def := rt.lookup(p.URN, p.Attr, p.Sub)
		if def == nil && p.URN == "" {
			if ext := rt.extensionOf(p.Attr); ext != nil {
				def = rt.lookup(ext.ID, p.Attr, p.Sub)
			}
		}
		if def != nil {
			out = append(out, def)
		}
	}
	return out
}

// checkFilterable refuses a filter that compares an attribute that is never
// returned. RFC 7643 §2.2 lets a provider allow it, but scimbox keeps no such
// value, and any answer (even an empty list) would tell the client something
// about a secret: 400 invalidFilter says plainly that it cannot be asked.
func checkFilterable(f filterExpr) error {
	var walk func(f filterExpr, parent attrPath) error
	check := func(p attrPath) error {
		for _, def := range resolveAnywhere(p) {
			if def.neverReturned() {
				return badRequest("invalidFilter", "%s is never returned and cannot be filtered on", p)
			}
		}
		return nil
	}
	walk = func(f filterExpr, parent attrPath) error {
		switch f := f.(type) {
		case logicalExpr:
			if err := walk(f.Left, parent); err != nil {
				return err
			}
			return walk(f.Right, parent)
		case notExpr:
			return walk(f.X, parent)
		case compareExpr:
			if parent.Attr != "" { // inside attr[…]: paths are its sub-attributes
				return check(attrPath{URN: parent.URN, Attr: parent.Attr, Sub: f.Path.Attr})
			}
			return check(f.Path)
		case valuePathExpr:
			if err := check(f.Path); err != nil {
				return err
			}
			if f.Sub != "" {
				if err := check(attrPath{URN: f.Path.URN, Attr: f.Path.Attr, Sub: f.Sub}); err != nil {
					return err
				}
			}
			return walk(f.Filter, f.Path)
		}
		return nil
	}
	if f == nil {
		return nil
	}
	return walk(f, attrPath{})
}

// checkSortable refuses sorting by an attribute that is never returned: the
// order would reveal its values.
func checkSortable(p attrPath) error {
	for _, def := range resolveAnywhere(p) {
		if def.neverReturned() {
			return badRequest("invalidValue", "%s is never returned and cannot be sorted by", p)
		}
	}
	return nil
}

// sameValue compares two values of def: complex ones by their "value" when
// they have one, strings case-insensitively unless the attribute is caseExact.
func sameValue(def *Attr, a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		if av, ok := am["value"]; ok {
			var vdef *Attr
			if def != nil {
				vdef = def.sub("value")
			}
			return sameValue(vdef, av, bm["value"])
		}
		return reflect.DeepEqual(am, bm)
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok && (def == nil || !def.CaseExact) {
		return foldCase(as) == foldCase(bs)
	}
	return reflect.DeepEqual(a, b)
}

// elementKey is the identity of an element of the multi-valued attribute def
// for RFC 7643 §2.4, which asks that no (type, value) pair appear twice: its
// type and value, folded unless their definitions are caseExact. An element
// without a value (an address) is identified by all its sub-attributes.
func elementKey(def *Attr, el any) string {
	m, isObj := el.(map[string]any)
	if !isObj {
		return identityOf(def, el)
	}
	if v := m["value"]; v != nil && def.sub("value") != nil {
		return identityOf(def.sub("type"), m["type"]) + "\x00" + identityOf(def.sub("value"), v)
	}
	b, _ := json.Marshal(m) // sorted keys
	return "w" + string(b)
}

// identityOf renders a value so that values sameValue finds equal render alike.
func identityOf(def *Attr, v any) string {
	if s, ok := v.(string); ok {
		if def == nil || !def.CaseExact {
			s = foldCase(s)
		}
		return "s" + s
	}
	b, _ := json.Marshal(v)
	return "j" + string(b)
}

// mergeElements adds the elements added to list, the elements of the
// multi-valued attribute def. An element the same as one already there
// (elementKey) is merged into it, its sub-attributes winning, rather than
// stored twice. It returns the list and, for each added element, the element
// now holding its values. It takes linear time: a request may carry 10,000.
func mergeElements(def *Attr, list, added []any) ([]any, []any) {
	index := make(map[string]any, len(list)+len(added))
	for _, el := range list {
		if k := elementKey(def, el); index[k] == nil {
			index[k] = el
		}
	}
	held := make([]any, len(added))
	for i, el := range added {
		k := elementKey(def, el)
		cur := index[k]
		if cur == nil {
			list = append(list, el)
			index[k], held[i] = el, el
			continue
		}
		cm, cok := cur.(map[string]any)
		em, eok := el.(map[string]any)
		if cok && eok {
			maps.Copy(cm, em)
		}
		held[i] = cur
	}
	return list, held
}

// settlePrimary leaves at most one element of a multi-valued attribute with
// primary true (RFC 7643 §2.4): the first of wrote (the elements a write just
// set) that is primary, else the first primary of the list; the others become
// false, as RFC 7644 §3.5.2 has a PATCH that sets one do.
func settlePrimary(list []any, wrote []any) {
	var winner map[string]any
	for _, candidates := range [][]any{wrote, list} {
		for _, el := range candidates {
			if m, ok := el.(map[string]any); ok && m["primary"] == true {
				winner = m
				break
			}
		}
		if winner != nil {
			break
		}
	}
	if winner == nil {
		return
	}
	for _, el := range list {
		if m, ok := el.(map[string]any); ok && m["primary"] == true {
			m["primary"] = false
		}
	}
	winner["primary"] = true
}

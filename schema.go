package main

import (
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

func findAttr(list []*Attr, name string) *Attr {
	for _, a := range list {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

func str(name, desc string) *Attr { return &Attr{Name: name, Type: typeString, Description: desc} }

func boolean(name, desc string) *Attr { return &Attr{Name: name, Type: typeBoolean, Description: desc} }

// multiComplex builds the usual multi-valued complex attribute with value, display, type and primary.
func multiComplex(name, desc string, types []string, valueType string) *Attr {
	value := &Attr{Name: "value", Type: valueType, Description: "The value of the " + name + " entry."}
	return &Attr{Name: name, Type: typeComplex, Multi: true, Description: desc, Sub: []*Attr{
		value,
		str("display", "A human-readable name, primarily used for display purposes."),
		{Name: "type", Type: typeString, Canonical: types, Description: "A label indicating the attribute's function."},
		boolean("primary", "Indicates the 'primary' or preferred value."),
	}}
}

var (
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
	userType  = &resourceType{Name: "User", Endpoint: "/Users", Schema: userSchemaDef, Extensions: []*Schema{enterpriseSchemaDef}}
	groupType = &resourceType{Name: "Group", Endpoint: "/Groups", Schema: groupSchemaDef}
)

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

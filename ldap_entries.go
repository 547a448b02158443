// The LDAP tree: BASE with ou=people (users as inetOrgPerson, uid = the
// whole userName) and ou=groups (groupOfNames), built from the effective
// values apps see on /api/v1; RootDSE and the subschema entry.

package main

import (
	"context"
	"slices"
	"strings"
	"sync"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// ldapDirectory names the tree's entries and builds them from the store.
type ldapDirectory struct {
	store        *Store
	configured   string
	showDisabled bool

	mu      sync.Mutex
	derived string // the base DN derived from the oldest user's domain, once there is one
}

func newLDAPDirectory(store *Store, cfg ldapConfig) *ldapDirectory {
	return &ldapDirectory{store: store, configured: cfg.BaseDN, showDisabled: cfg.ShowDisabled}
}

// base is the tree's base DN: -ldap-base-dn, else dc= components of the
// domain of the oldest user's userName (alice@example.com gives
// dc=example,dc=com), else dc=scimbox until a user arrives. Once derived it
// stays for the life of the process, so clients never see it move.
func (d *ldapDirectory) base() string {
	if d.configured != "" {
		return d.configured
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.derived != "" {
		return d.derived
	}
	name, err := d.store.LDAPFirstUserName(context.Background())
	if err != nil || name == "" {
		return "dc=scimbox"
	}
	d.derived = baseDNFor(name)
	return d.derived
}

// baseDNFor derives a base DN from a userName's domain.
func baseDNFor(userName string) string {
	_, domain, ok := strings.Cut(userName, "@")
	if !ok || domain == "" {
		return "dc=scimbox"
	}
	var parts []string
	for _, label := range strings.Split(strings.ToLower(domain), ".") {
		if label != "" {
			parts = append(parts, "dc="+ldap.EscapeDN(label))
		}
	}
	return strings.Join(parts, ",")
}

func (d *ldapDirectory) userDN(userName string) string {
	return "uid=" + ldap.EscapeDN(userName) + ",ou=people," + d.base()
}

func (d *ldapDirectory) groupDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + ",ou=groups," + d.base()
}

func (d *ldapDirectory) appDN(name string) string {
	return "cn=" + ldap.EscapeDN(name) + ",ou=apps," + d.base()
}

// appName is the app key name a bind DN cn=NAME,ou=apps,BASE names.
func (d *ldapDirectory) appName(bindDN string) (string, bool) {
	dn, err := ldap.ParseDN(bindDN)
	if err != nil || len(dn.RDNs) < 2 || len(dn.RDNs[0].Attributes) != 1 {
		return "", false
	}
	first := dn.RDNs[0].Attributes[0]
	parent := foldCase((&ldap.DN{RDNs: dn.RDNs[1:]}).String())
	if ldapAttrKey(first.Type) != "cn" || parent != normDN("ou=apps,"+d.base()) {
		return "", false
	}
	return first.Value, true
}

// ldapEntry is an entry: its DN and attributes in the order they are sent.
type ldapEntry struct {
	dn    string
	attrs []ldapAttr
}

type ldapAttr struct {
	name string
	vals []string
}

// add appends an attribute, skipping empty values.
func (e *ldapEntry) add(name string, vals ...string) {
	vals = slices.DeleteFunc(vals, func(v string) bool { return v == "" })
	if len(vals) > 0 {
		e.attrs = append(e.attrs, ldapAttr{name, vals})
	}
}

// get returns the values of the attribute with lookup key key.
func (e *ldapEntry) get(key string) []string {
	for _, a := range e.attrs {
		if ldapAttrKey(a.name) == key {
			return a.vals
		}
	}
	return nil
}

// packet is the entry as a SearchResultEntry with the attributes req asks
// for: all user attributes for none or "*", none for "1.1".
func (e *ldapEntry) packet(req *ldapSearch) *ber.Packet {
	all := len(req.attrs) == 0
	want := map[string]bool{}
	for _, a := range req.attrs {
		if a == "*" || a == "+" {
			all = true
		}
		want[ldapAttrKey(a)] = true
	}
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, e.dn, ""))
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range e.attrs {
		if !all && !want[ldapAttrKey(a.name)] {
			continue
		}
		pa := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, ""))
		set := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		if !req.typesOnly {
			for _, v := range a.vals {
				set.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
			}
		}
		pa.AppendChild(set)
		attrs.AppendChild(pa)
	}
	p.AppendChild(attrs)
	return p
}

// The object classes of users and groups, for objectClass filters.
var (
	userClasses  = map[string]bool{"top": true, "person": true, "organizationalperson": true, "inetorgperson": true}
	groupClasses = map[string]bool{"top": true, "groupofnames": true}
)

// containers are the root entry and the two organizational units.
func (d *ldapDirectory) containers() (root, people, groups *ldapEntry) {
	base := d.base()
	root = &ldapEntry{dn: base}
	root.add("objectClass", "top", "domain")
	if dn, err := ldap.ParseDN(base); err == nil && len(dn.RDNs) > 0 && len(dn.RDNs[0].Attributes) > 0 {
		a := dn.RDNs[0].Attributes[0]
		root.add(a.Type, a.Value)
	}
	people = &ldapEntry{dn: "ou=people," + base}
	people.add("objectClass", "top", "organizationalUnit")
	people.add("ou", "people")
	groups = &ldapEntry{dn: "ou=groups," + base}
	groups.add("objectClass", "top", "organizationalUnit")
	groups.add("ou", "groups")
	return root, people, groups
}

// userEntries builds the entries of users as apps see them: effective
// values, and the groups a safety rail keeps. An entry is nil for a user the
// tree does not show: deprovisioned, or disabled without -ldap-show-disabled.
func (d *ldapDirectory) userEntries(ctx context.Context, users []*User) ([]*ldapEntry, error) {
	p, err := d.store.Policy(ctx)
	if err != nil {
		return nil, err
	}
	effective := make([]map[string]any, len(users))
	var managers []string
	for i, u := range users {
		effective[i] = Effective(u.Attrs, u.Overrides, p)
		if id := managerID(effective[i]); id != "" {
			managers = append(managers, id)
		}
	}
	managerNames, err := d.store.LDAPUserNames(ctx, managers)
	if err != nil {
		return nil, err
	}
	out := make([]*ldapEntry, len(users))
	for i, u := range users {
		attrs := effective[i]
		active, ok := attrs["active"].(bool)
		disabled := ok && !active
		if u.Kind == accountDeprovisioned || disabled && !d.showDisabled {
			continue
		}
		userName := stringAttr(attrs, "userName")
		e := &ldapEntry{dn: d.userDN(userName)}
		e.add("objectClass", "top", "person", "organizationalPerson", "inetOrgPerson")
		e.add("uid", userName)
		name, _ := attrs["name"].(map[string]any)
		given, family := stringAttr(name, "givenName"), stringAttr(name, "familyName")
		display := stringAttr(attrs, "displayName")
		e.add("cn", cmpOr(display, userName))
		e.add("sn", cmpOr(family, display, userName)) // sn is required by person
		e.add("givenName", given)
		e.add("displayName", display)
		e.add("mail", emailValues(attrs)...)
		e.add("title", stringAttr(attrs, "title"))
		ent, _ := attrs[enterpriseSchema].(map[string]any)
		e.add("departmentNumber", stringAttr(ent, "department"))
		e.add("employeeNumber", stringAttr(ent, "employeeNumber"))
		if id := managerID(attrs); managerNames[id] != "" {
			e.add("manager", d.userDN(managerNames[id]))
		}
		e.add("entryUUID", u.ID)
		var memberOf []string
		for _, g := range effectiveGroups(u) {
			memberOf = append(memberOf, d.groupDN(g.Display))
		}
		e.add("memberOf", memberOf...)
		if disabled {
			e.add("nsAccountLock", "TRUE")
		}
		out[i] = e
	}
	return out, nil
}

// cmpOr is the first non-empty string.
func cmpOr(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// managerID is the id in the enterprise extension's manager, or "".
func managerID(attrs map[string]any) string {
	ent, _ := attrs[enterpriseSchema].(map[string]any)
	m, _ := ent["manager"].(map[string]any)
	return stringAttr(m, "value")
}

// emailValues are the user's email addresses, the primary one first.
func emailValues(attrs map[string]any) []string {
	list, _ := attrs["emails"].([]any)
	var out []string
	for _, v := range list {
		m, _ := v.(map[string]any)
		addr := stringAttr(m, "value")
		if primary, _ := m["primary"].(bool); primary {
			out = append([]string{addr}, out...)
		} else {
			out = append(out, addr)
		}
	}
	return out
}

// groupEntry builds a group's entry; its members are users and nested groups.
func (d *ldapDirectory) groupEntry(g *Group) *ldapEntry {
	name := stringAttr(g.Attrs, "displayName")
	e := &ldapEntry{dn: d.groupDN(name)}
	e.add("objectClass", "top", "groupOfNames")
	e.add("cn", name)
	var members []string
	for _, m := range g.Members {
		switch {
		case m.Type == memberUser, m.Type == memberDisabledUser && d.showDisabled:
			members = append(members, d.userDN(m.Display))
		case m.Type == memberGroup:
			members = append(members, d.groupDN(m.Display))
		}
	}
	e.add("member", members...)
	e.add("entryUUID", g.ID)
	return e
}

// rootDSE is the entry with the empty DN (RFC 4512 §5.1) that clients read
// to find the naming context, the controls and StartTLS.
func (d *ldapDirectory) rootDSE() *ldapEntry {
	e := &ldapEntry{dn: ""}
	e.add("objectClass", "top")
	e.add("namingContexts", d.base())
	e.add("subschemaSubentry", "cn=subschema")
	e.add("supportedLDAPVersion", "3")
	e.add("supportedControl", oidPaging)
	e.add("supportedExtension", oidStartTLS, oidWhoAmI)
	e.add("vendorName", "scimbox")
	e.add("vendorVersion", version())
	return e
}

// subschemaEntry lists the attribute types and object classes the tree uses
// (RFC 4512 §4.2), with their standard definitions.
func subschemaEntry() *ldapEntry {
	e := &ldapEntry{dn: "cn=subschema"}
	e.add("objectClass", "top", "subschema")
	e.add("cn", "subschema")
	e.add("attributeTypes",
		"( 2.5.4.0 NAME 'objectClass' EQUALITY objectIdentifierMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.38 )",
		"( 2.5.4.3 NAME ( 'cn' 'commonName' ) SUP name )",
		"( 2.5.4.4 NAME ( 'sn' 'surname' ) SUP name )",
		"( 2.5.4.41 NAME 'name' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
		"( 2.5.4.42 NAME ( 'givenName' 'gn' ) SUP name )",
		"( 2.5.4.11 NAME 'ou' SUP name )",
		"( 2.5.4.12 NAME 'title' SUP name )",
		"( 0.9.2342.19200300.100.1.1 NAME ( 'uid' 'userid' ) EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
		"( 0.9.2342.19200300.100.1.3 NAME ( 'mail' 'rfc822Mailbox' ) EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )",
		"( 0.9.2342.19200300.100.1.25 NAME 'dc' EQUALITY caseIgnoreIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )",
		"( 0.9.2342.19200300.100.1.10 NAME 'manager' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
		"( 2.16.840.1.113730.3.1.241 NAME 'displayName' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )",
		"( 2.16.840.1.113730.3.1.2 NAME 'departmentNumber' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )",
		"( 2.16.840.1.113730.3.1.3 NAME 'employeeNumber' EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )",
		"( 2.5.4.31 NAME 'member' SUP distinguishedName )",
		"( 2.5.4.49 NAME 'distinguishedName' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )",
		"( 1.2.840.113556.1.2.102 NAME 'memberOf' EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 NO-USER-MODIFICATION )",
		"( 1.3.6.1.1.16.4 NAME 'entryUUID' EQUALITY UUIDMatch ORDERING UUIDOrderingMatch SYNTAX 1.3.6.1.1.16.1 SINGLE-VALUE NO-USER-MODIFICATION )",
		"( 2.16.840.1.113730.3.1.610 NAME 'nsAccountLock' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )",
	)
	e.add("objectClasses",
		"( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
		"( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( description ) )",
		"( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( title $ ou ) )",
		"( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( departmentNumber $ displayName $ employeeNumber $ givenName $ mail $ manager $ uid ) )",
		"( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST cn MAY ( member $ description ) )",
		"( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou )",
		"( 0.9.2342.19200300.100.4.13 NAME 'domain' SUP top STRUCTURAL MUST dc )",
		"( 2.5.20.1 NAME 'subschema' AUXILIARY MAY ( attributeTypes $ objectClasses ) )",
	)
	return e
}

// LDAP searches: the request, its filter (parsed, evaluated on entries, and
// its indexable part handed to the store as an ldapCond), scopes, size
// limits and the Simple Paged Results control (RFC 2696).

package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// ldapBatch is how many rows one store read fetches while a search fills a page.
const ldapBatch = 500

// ldapFilter is a parsed search filter. op is the filter's context tag:
// and, or, not, equality, substrings, >=, <=, present, approx, extensible.
type ldapFilter struct {
	op             ber.Tag
	attr, value    string
	initial, final string
	any            []string
	kids           []*ldapFilter
}

const (
	filterAnd ber.Tag = iota
	filterOr
	filterNot
	filterEqual
	filterSubstrings
	filterGreaterOrEqual
	filterLessOrEqual
	filterPresent
	filterApprox
	filterExtensible
)

// berString is the content of a primitive BER element as a string.
func berString(p *ber.Packet) string {
	if s, ok := p.Value.(string); ok {
		return s
	}
	return p.Data.String()
}

// parseLDAPFilter reads a Filter (RFC 4511 §4.5.1).
func parseLDAPFilter(p *ber.Packet) (*ldapFilter, error) {
	if p.ClassType != ber.ClassContext {
		return nil, errors.New("filter: not a filter choice")
	}
	f := &ldapFilter{op: p.Tag}
	switch p.Tag {
	case filterAnd, filterOr, filterNot:
		for _, c := range p.Children {
			k, err := parseLDAPFilter(c)
			if err != nil {
				return nil, err
			}
			f.kids = append(f.kids, k)
		}
		if p.Tag == filterNot && len(f.kids) != 1 {
			return nil, errors.New("filter: not takes one filter")
		}
	case filterEqual, filterGreaterOrEqual, filterLessOrEqual, filterApprox:
		if len(p.Children) != 2 {
			return nil, errors.New("filter: an assertion has an attribute and a value")
		}
		f.attr, f.value = ldapAttrKey(berString(p.Children[0])), berString(p.Children[1])
	case filterSubstrings:
		if len(p.Children) != 2 {
			return nil, errors.New("filter: substrings has an attribute and parts")
		}
		f.attr = ldapAttrKey(berString(p.Children[0]))
		for _, part := range p.Children[1].Children {
			switch v := berString(part); part.Tag {
			case 0:
				f.initial = v
			case 1:
				f.any = append(f.any, v)
			case 2:
				f.final = v
			}
		}
	case filterPresent:
		f.attr = ldapAttrKey(berString(p))
	case filterExtensible:
		// Matching rules are not offered: such a filter is Undefined, matching nothing.
	default:
		return nil, fmt.Errorf("filter: unknown choice %d", p.Tag)
	}
	return f, nil
}

// ldapAttrAliases maps alternative attribute names to the ones entries use.
var ldapAttrAliases = map[string]string{
	"commonname": "cn", "surname": "sn", "userid": "uid", "gn": "givenname",
	"rfc822mailbox": "mail", "email": "mail", "objectclasses": "objectclass",
}

// ldapAttrKey is an attribute description's lookup key: lower case, without options, aliases resolved.
func ldapAttrKey(name string) string {
	name, _, _ = strings.Cut(strings.ToLower(name), ";")
	if a, ok := ldapAttrAliases[name]; ok {
		return a
	}
	return name
}

// dnValued are the attributes whose values are DNs, compared as DNs.
var dnValued = map[string]bool{"member": true, "memberof": true, "manager": true, "uniquemember": true}

// normDN is a DN in a form that compares equal for equal DNs: parsed,
// spaced and escaped canonically, case folded; s itself if it does not parse.
func normDN(s string) string {
	if dn, err := ldap.ParseDN(s); err == nil {
		return foldCase(dn.String())
	}
	return foldCase(s)
}

// matches evaluates f on e; Undefined counts as false.
func (f *ldapFilter) matches(e *ldapEntry) bool {
	switch f.op {
	case filterAnd:
		for _, k := range f.kids {
			if !k.matches(e) {
				return false
			}
		}
		return true
	case filterOr:
		for _, k := range f.kids {
			if k.matches(e) {
				return true
			}
		}
		return false
	case filterNot:
		return !f.kids[0].matches(e)
	case filterPresent:
		return f.attr == "objectclass" || len(e.get(f.attr)) > 0
	case filterExtensible:
		return false
	}
	want := foldCase(f.value)
	if dnValued[f.attr] {
		want = normDN(f.value)
	}
	for _, v := range e.get(f.attr) {
		have := foldCase(v)
		if dnValued[f.attr] {
			have = normDN(v)
		}
		switch f.op {
		case filterEqual, filterApprox:
			if have == want {
				return true
			}
		case filterGreaterOrEqual:
			if have >= want {
				return true
			}
		case filterLessOrEqual:
			if have <= want {
				return true
			}
		case filterSubstrings:
			if substringsMatch(have, foldCase(f.initial), f.any, foldCase(f.final)) {
				return true
			}
		}
	}
	return false
}

// substringsMatch reports whether v starts with initial, holds each of any
// in order after it, and ends with final, none overlapping.
func substringsMatch(v, initial string, any []string, final string) bool {
	if !strings.HasPrefix(v, initial) {
		return false
	}
	v = v[len(initial):]
	for _, a := range any {
		i := strings.Index(v, foldCase(a))
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return len(v) >= len(final) && strings.HasSuffix(v, final)
}

// ldapSearch is a SearchRequest (RFC 4511 §4.5.1), the paging asked for, and
// the fingerprint a page cookie must carry.
type ldapSearch struct {
	base      string
	scope     int64
	sizeLimit int64
	typesOnly bool
	filter    *ldapFilter
	attrs     []string
	paging    *ldap.ControlPaging // nil without the control
	print     string
}

// parseLDAPSearch reads a SearchRequest and its controls.
func parseLDAPSearch(op *ber.Packet, controls []*ber.Packet) (*ldapSearch, uint16, error) {
	if len(op.Children) != 8 {
		return nil, ldap.LDAPResultProtocolError, errors.New("malformed search request")
	}
	c := op.Children
	req := &ldapSearch{base: berString(c[0])}
	req.scope, _ = c[1].Value.(int64)
	req.sizeLimit, _ = c[3].Value.(int64)
	req.typesOnly, _ = c[5].Value.(bool)
	f, err := parseLDAPFilter(c[6])
	if err != nil {
		return nil, ldap.LDAPResultProtocolError, err
	}
	req.filter = f
	for _, a := range c[7].Children {
		req.attrs = append(req.attrs, berString(a))
	}
	h := fnv.New64a()
	h.Write(c[0].Bytes())
	h.Write(c[1].Bytes())
	h.Write(c[6].Bytes())
	req.print = strconv.FormatUint(h.Sum64(), 36)
	for _, cp := range controls {
		ctrl, err := ldap.DecodeControl(cp)
		if err != nil {
			return nil, ldap.LDAPResultProtocolError, fmt.Errorf("control: %v", err)
		}
		switch ctrl := ctrl.(type) {
		case *ldap.ControlPaging:
			req.paging = ctrl
		default:
			if critical(cp) {
				return nil, ldap.LDAPResultUnavailableCriticalExtension, fmt.Errorf("the control %s is not supported", ctrl.GetControlType())
			}
		}
	}
	return req, 0, nil
}

// critical reports a control's criticality (RFC 4511 §4.1.11).
func critical(p *ber.Packet) bool {
	if len(p.Children) > 1 {
		b, _ := p.Children[1].Value.(bool)
		return b
	}
	return false
}

// search answers a SearchRequest. RootDSE and the subschema entry are open
// to every client, as they must be for clients to find StartTLS; the tree
// needs a bind.
func (s *ldapServer) search(sess *ldapSession, id int64, op *ber.Packet, controls []*ber.Packet) {
	done := func(code uint16, msg string, ctrl ...ldap.Control) {
		sess.send(id, ldapResult(ldap.ApplicationSearchResultDone, code, msg), ctrl...)
	}
	req, code, err := parseLDAPSearch(op, controls)
	if err != nil {
		done(code, err.Error())
		return
	}
	open := req.scope == ldap.ScopeBaseObject && (req.base == "" || normDN(req.base) == "cn=subschema")
	switch {
	case open:
	case !sess.tls && !sess.secured:
		done(ldap.LDAPResultConfidentialityRequired, "use StartTLS or LDAPS")
		return
	default:
		if code, msg := s.stillBound(sess); code != ldap.LDAPResultSuccess {
			done(code, msg)
			return
		}
	}
	var limit int64 = -1 // entries this response may carry; -1 for no limit
	after := ldapCursor{}
	if req.paging != nil {
		if req.paging.PagingSize == 0 { // the client abandons the paged search
			done(ldap.LDAPResultSuccess, "", ldap.NewControlPaging(0))
			return
		}
		limit = int64(req.paging.PagingSize)
		if len(req.paging.Cookie) > 0 {
			if after, err = parseLDAPCursor(req.paging.Cookie, req.print); err != nil {
				done(ldap.LDAPResultUnwillingToPerform, err.Error())
				return
			}
		}
	}
	sizeExceeded := false
	if req.sizeLimit > 0 && (limit < 0 || req.sizeLimit < limit) {
		limit, sizeExceeded = req.sizeLimit, true
	}
	sent := int64(0)
	next, code, msg := s.dir.walk(s.ctx, req, after, func(e *ldapEntry) bool {
		if limit >= 0 && sent == limit {
			return false
		}
		sess.send(id, e.packet(req))
		sent++
		return true
	})
	if code != ldap.LDAPResultSuccess {
		done(code, msg)
		return
	}
	var resp []ldap.Control
	if next != nil && sizeExceeded {
		code, msg = ldap.LDAPResultSizeLimitExceeded, fmt.Sprintf("the size limit of %d entries was reached", req.sizeLimit)
	}
	if req.paging != nil {
		ctrl := ldap.NewControlPaging(0)
		if next != nil && code == ldap.LDAPResultSuccess {
			ctrl.SetCookie(next.cookie(req.print))
		}
		resp = append(resp, ctrl)
	}
	done(code, msg, resp...)
}

// ldapCursor is where a paged search resumes: the phase (static entries,
// users, groups) and the position in it.
type ldapCursor struct {
	phase int
	after int64
}

func (c ldapCursor) cookie(print string) []byte {
	return []byte(base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d.%s", c.phase, c.after, print)))
}

// parseLDAPCursor reads a cookie, which must come from the same search.
func parseLDAPCursor(cookie []byte, print string) (ldapCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(string(cookie))
	parts := strings.Split(string(raw), ".")
	if err != nil || len(parts) != 3 || parts[2] != print {
		return ldapCursor{}, errors.New("the paged results cookie does not belong to this search: start the search again without one")
	}
	var c ldapCursor
	c.phase, err = strconv.Atoi(parts[0])
	if err == nil {
		c.after, err = strconv.ParseInt(parts[1], 10, 64)
	}
	if err != nil {
		return ldapCursor{}, errors.New("the paged results cookie is damaged: start the search again without one")
	}
	return c, nil
}

// Phases of a walk through the tree, in the order entries are returned.
const (
	phaseStatic = iota // the root, ou=people, ou=groups, RootDSE, the subschema
	phaseUsers
	phaseGroups
)

// walkPlan is what a search's base and scope reach.
type walkPlan struct {
	static        []*ldapEntry
	users, groups bool
	userCond      ldapCond // besides the filter's: the base entry a base search names
	groupCond     ldapCond
	exact         string // a base-scope search's base, normalised: only that entry
	leaf          bool   // the base is a user or a group: noSuchObject if it does not exist
}

// walk emits the entries req selects from cursor on, in order, until emit
// returns false; it returns where to resume (nil when all were emitted) and
// the result code.
func (d *ldapDirectory) walk(ctx context.Context, req *ldapSearch, from ldapCursor, emit func(*ldapEntry) bool) (*ldapCursor, uint16, string) {
	plan, code, msg := d.plan(ctx, req)
	if code != ldap.LDAPResultSuccess {
		return nil, code, msg
	}
	found := false
	keep := func(e *ldapEntry) bool {
		if plan.exact != "" && normDN(e.dn) != plan.exact {
			return false
		}
		found = true
		return req.filter.matches(e)
	}
	if from.phase == phaseStatic {
		for i := int(from.after); i < len(plan.static); i++ {
			if e := plan.static[i]; keep(e) && !emit(e) {
				return &ldapCursor{phaseStatic, int64(i)}, ldap.LDAPResultSuccess, ""
			}
		}
		from = ldapCursor{phaseUsers, 0}
	}
	if from.phase == phaseUsers && plan.users {
		cond := ldapCond{kind: condAnd, kids: []ldapCond{plan.userCond, d.userCond(ctx, req.filter)}}
		for after := from.after; ; {
			users, rowids, err := d.store.LDAPUsers(ctx, cond, after, ldapBatch)
			if err != nil {
				return ldapStoreError(err)
			}
			entries, err := d.userEntries(ctx, users)
			if err != nil {
				return ldapStoreError(err)
			}
			for i, e := range entries {
				if e != nil && keep(e) && !emit(e) {
					return &ldapCursor{phaseUsers, rowids[i] - 1}, ldap.LDAPResultSuccess, ""
				}
			}
			if len(users) < ldapBatch {
				break
			}
			after = rowids[len(rowids)-1]
		}
		from = ldapCursor{phaseGroups, 0}
	}
	if from.phase <= phaseGroups && plan.groups {
		cond := ldapCond{kind: condAnd, kids: []ldapCond{plan.groupCond, d.groupCond(ctx, req.filter)}}
		for after := from.after; ; {
			groups, rowids, err := d.store.LDAPGroups(ctx, cond, after, ldapBatch)
			if err != nil {
				return ldapStoreError(err)
			}
			for i, g := range groups {
				if e := d.groupEntry(g); keep(e) && !emit(e) {
					return &ldapCursor{phaseGroups, rowids[i] - 1}, ldap.LDAPResultSuccess, ""
				}
			}
			if len(groups) < ldapBatch {
				break
			}
			after = rowids[len(rowids)-1]
		}
	}
	if plan.leaf && !found {
		return nil, ldap.LDAPResultNoSuchObject, "no entry has this DN"
	}
	return nil, ldap.LDAPResultSuccess, ""
}

// ldapStoreError is the result of a search the store failed.
func ldapStoreError(err error) (*ldapCursor, uint16, string) {
	if errors.Is(err, context.Canceled) {
		return nil, ldap.LDAPResultUnavailable, "scimbox is stopping"
	}
	return nil, ldap.LDAPResultOther, "the directory could not be read: " + err.Error()
}

// plan resolves the search base: which parts of the tree the scope reaches.
func (d *ldapDirectory) plan(ctx context.Context, req *ldapSearch) (walkPlan, uint16, string) {
	var p walkPlan
	base := d.base()
	switch b := normDN(req.base); {
	case req.base == "":
		if req.scope != ldap.ScopeBaseObject {
			return p, ldap.LDAPResultNoSuchObject, "search under the naming context " + base + " (ldapsearch -b " + base + ")"
		}
		p.static = []*ldapEntry{d.rootDSE()}
	case b == "cn=subschema":
		if req.scope == ldap.ScopeBaseObject {
			p.static = []*ldapEntry{subschemaEntry()}
		}
	case b == normDN(base):
		root, people, groups := d.containers()
		switch req.scope {
		case ldap.ScopeBaseObject:
			p.static = []*ldapEntry{root}
		case ldap.ScopeSingleLevel:
			p.static = []*ldapEntry{people, groups}
		default:
			p.static, p.users, p.groups = []*ldapEntry{root, people, groups}, true, true
		}
	case b == normDN("ou=people,"+base) || b == normDN("ou=groups,"+base):
		_, people, groups := d.containers()
		c := people
		if strings.HasPrefix(b, "ou=groups") {
			c = groups
		}
		if req.scope != ldap.ScopeSingleLevel {
			p.static = []*ldapEntry{c}
		}
		if req.scope != ldap.ScopeBaseObject {
			p.users, p.groups = c == people, c == groups
		}
	default:
		dn, err := ldap.ParseDN(req.base)
		if err != nil {
			return p, ldap.LDAPResultInvalidDNSyntax, "the search base is not a DN"
		}
		kind, name := d.leaf(dn)
		if kind == "" {
			return p, ldap.LDAPResultNoSuchObject, "the tree is " + base + " with ou=people and ou=groups under it"
		}
		if req.scope == ldap.ScopeSingleLevel {
			return p, ldap.LDAPResultSuccess, "" // a user or a group has no entries under it
		}
		p.leaf, p.exact = true, b
		if kind == "uid" {
			p.users, p.userCond, p.groupCond = true, d.userNameCond(ctx, name), ldapCond{kind: condNone}
		} else {
			p.groups, p.groupCond, p.userCond = true, ldapCond{kind: condGroupName, value: foldCase(name)}, ldapCond{kind: condNone}
		}
	}
	return p, ldap.LDAPResultSuccess, ""
}

// leaf says whether dn names a user (uid, name) or a group (cn, name) of the tree.
func (d *ldapDirectory) leaf(dn *ldap.DN) (kind, name string) {
	if len(dn.RDNs) < 2 || len(dn.RDNs[0].Attributes) != 1 {
		return "", ""
	}
	parent := foldCase((&ldap.DN{RDNs: dn.RDNs[1:]}).String())
	first := dn.RDNs[0].Attributes[0]
	switch t := ldapAttrKey(first.Type); {
	case t == "uid" && parent == normDN("ou=people,"+d.base()):
		return "uid", first.Value
	case t == "cn" && parent == normDN("ou=groups,"+d.base()):
		return "cn", first.Value
	}
	return "", ""
}

// userNameCond selects the user whose userName is name, or the users whose
// local overrides may make it theirs.
func (d *ldapDirectory) userNameCond(_ context.Context, name string) ldapCond {
	return ldapCond{kind: condUserName, value: userNameKey(name)}
}

// userCond is the indexable part of f for users: a superset of the users f matches.
func (d *ldapDirectory) userCond(ctx context.Context, f *ldapFilter) ldapCond {
	switch f.op {
	case filterAnd, filterOr:
		c := ldapCond{kind: condAnd}
		if f.op == filterOr {
			c.kind = condOr
		}
		for _, k := range f.kids {
			c.kids = append(c.kids, d.userCond(ctx, k))
		}
		return c
	case filterEqual, filterApprox:
		switch f.attr {
		case "uid":
			return d.userNameCond(ctx, f.value)
		case "mail":
			return ldapCond{kind: condMail, value: foldCase(f.value)}
		case "displayname":
			return ldapCond{kind: condDisplayName, value: foldCase(f.value)}
		case "cn": // cn is the displayName, or the userName without one
			return ldapCond{kind: condOr, kids: []ldapCond{{kind: condDisplayName, value: foldCase(f.value)}, d.userNameCond(ctx, f.value)}}
		case "entryuuid":
			return ldapCond{kind: condUserID, value: f.value}
		case "objectclass":
			if !userClasses[foldCase(f.value)] {
				return ldapCond{kind: condNone}
			}
		case "memberof":
			id, _ := d.groupIDOf(ctx, f.value)
			if id == "" {
				return ldapCond{kind: condNone}
			}
			return ldapCond{kind: condMemberOf, value: id}
		}
	case filterSubstrings:
		if f.initial == "" || !isASCII(f.initial) {
			break
		}
		lo := foldCase(f.initial)
		switch f.attr {
		case "uid":
			return ldapCond{kind: condUserNameRange, value: lo, upper: lo + prefixBound}
		case "mail":
			return ldapCond{kind: condMailRange, value: lo, upper: lo + prefixBound}
		case "displayname":
			return ldapCond{kind: condDisplayNameRange, value: lo, upper: lo + prefixBound}
		}
	}
	return ldapCond{kind: condAll}
}

// groupCond is the indexable part of f for groups.
func (d *ldapDirectory) groupCond(ctx context.Context, f *ldapFilter) ldapCond {
	switch f.op {
	case filterAnd, filterOr:
		c := ldapCond{kind: condAnd}
		if f.op == filterOr {
			c.kind = condOr
		}
		for _, k := range f.kids {
			c.kids = append(c.kids, d.groupCond(ctx, k))
		}
		return c
	case filterEqual, filterApprox:
		switch f.attr {
		case "cn":
			return ldapCond{kind: condGroupName, value: foldCase(f.value)}
		case "entryuuid":
			return ldapCond{kind: condGroupID, value: f.value}
		case "objectclass":
			if !groupClasses[foldCase(f.value)] {
				return ldapCond{kind: condNone}
			}
		case "member", "uniquemember":
			if id := d.memberIDOf(ctx, f.value); id != "" {
				return ldapCond{kind: condHasMember, value: id}
			}
		}
	case filterSubstrings:
		if f.attr == "cn" && f.initial != "" && isASCII(f.initial) {
			lo := foldCase(f.initial)
			return ldapCond{kind: condGroupNameRange, value: lo, upper: lo + prefixBound}
		}
	}
	return ldapCond{kind: condAll}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// groupIDOf is the id of the group a DN names, or "".
func (d *ldapDirectory) groupIDOf(ctx context.Context, value string) (string, error) {
	dn, err := ldap.ParseDN(value)
	if err != nil {
		return "", nil
	}
	if kind, name := d.leaf(dn); kind == "cn" {
		return d.store.LDAPGroupID(ctx, name)
	}
	return "", nil
}

// memberIDOf is the id of the user or group a member DN names, or "" when
// it cannot be told from the indexes (the filter then decides alone).
func (d *ldapDirectory) memberIDOf(ctx context.Context, value string) string {
	dn, err := ldap.ParseDN(value)
	if err != nil {
		return ""
	}
	var id string
	switch kind, name := d.leaf(dn); kind {
	case "uid":
		id, _ = d.store.LDAPUserID(ctx, name)
	case "cn":
		id, _ = d.store.LDAPGroupID(ctx, name)
	}
	return id
}

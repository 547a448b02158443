package main

// Turning client JSON into stored attributes (canonical names, coerced types,
// read-only and unknown attributes dropped) and stored resources back into
// SCIM JSON, with attribute projection.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// invalidValue reports a value that does not fit its attribute's definition.
func invalidValue(format string, args ...any) error {
	return badRequest("invalidValue", format, args...)
}

// normalizeAttrs validates a resource body from a client (POST or PUT) and
// returns the attributes to store. Keys that are URNs of extensions are kept
// (unknown extensions verbatim, so that what Entra sends comes back); unknown
// core attributes are dropped, and writeGate decides about the others. null
// means absent.
func normalizeAttrs(rt *resourceType, body map[string]any) (map[string]any, error) {
	if err := checkLimits(body); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range body {
		if err := setAttr(rt, out, k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setAttr stores one top-level key of a client body into attrs.
func setAttr(rt *resourceType, attrs map[string]any, key string, v any) error {
	if strings.EqualFold(key, "schemas") {
		return nil
	}
	if len(key) > 4 && strings.EqualFold(key[:4], "urn:") {
		return setURNAttr(rt, attrs, key, v)
	}
	def := findAttr(commonAttrs, key)
	if def == nil {
		def = rt.Schema.attr(key)
	}
	if def == nil {
		if ext := rt.extensionOf(key); ext != nil { // "manager" or "department" without its URN
			return setExtAttr(attrs, ext, key, v)
		}
	}
	if def == nil || writeGate(def, false) != writeStore || rt == groupType && def.Name == "members" {
		return nil // members are stored as memberships, not attributes
	}
	return putValue(attrs, def, v)
}

// setURNAttr handles a key that is an extension URN (value: an object of its
// attributes) or a URN-qualified attribute ("urn:…:User:department").
func setURNAttr(rt *resourceType, attrs map[string]any, key string, v any) error {
	if strings.EqualFold(key, rt.Schema.ID) { // the core schema spelled out as a namespace
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for k, sv := range obj {
			if err := setAttr(rt, attrs, k, sv); err != nil {
				return err
			}
		}
		return nil
	}
	if ext := rt.extension(key); ext != nil {
		if v == nil {
			delete(attrs, ext.ID)
			return nil
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return invalidValue("%s must be an object of its attributes", ext.ID)
		}
		for k, sv := range obj {
			if err := setExtAttr(attrs, ext, k, sv); err != nil {
				return err
			}
		}
		return nil
	}
	i := strings.LastIndexByte(key, ':')
	urn, name := key[:i], key[i+1:]
	if strings.EqualFold(urn, rt.Schema.ID) {
		return setAttr(rt, attrs, name, v)
	}
	if ext := rt.extension(urn); ext != nil {
		return setExtAttr(attrs, ext, name, v)
	}
	if _, isObj := v.(map[string]any); isObj || !validAttrName(name) || len(urn) <= 4 || strings.HasSuffix(urn, ":") {
		// An extension we do not model: keep it as sent. (A URN ending in
		// ":" — "…:User::a" — is no namespace to nest under: nested, it
		// would read back as an attribute of the URN without the colon.)
		if v == nil {
			delete(attrs, key)
		} else {
			attrs[key] = v
		}
		return nil
	}
	// "urn:…:CustomExt:2.0:User:attr": value — keep it under its extension.
	obj, _ := attrs[urn].(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	if v == nil || v == "" {
		delete(obj, name)
	} else {
		obj[name] = v
	}
	if len(obj) == 0 {
		delete(attrs, urn)
	} else {
		attrs[urn] = obj
	}
	return nil
}

// setExtAttr stores v under ext's object in attrs when the schema gate lets it be written.
func setExtAttr(attrs map[string]any, ext *Schema, name string, v any) error {
	def := ext.attr(name)
	if def == nil || writeGate(def, false) != writeStore {
		return nil
	}
	obj, _ := attrs[ext.ID].(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	if err := putValue(obj, def, v); err != nil {
		return err
	}
	if len(obj) == 0 {
		delete(attrs, ext.ID)
	} else {
		attrs[ext.ID] = obj
	}
	return nil
}

// putValue normalizes v for def and stores it under def's canonical name, or
// removes the attribute when v is empty.
func putValue(obj map[string]any, def *Attr, v any) error {
	nv, err := normalizeValue(def, v)
	if err != nil {
		return err
	}
	if nv == nil {
		delete(obj, def.Name)
	} else {
		obj[def.Name] = nv
	}
	return nil
}

// Limits on what one request may carry, whatever its method and resource.
const (
	// maxValuesPerRequest bounds the elements of all arrays in a request
	// (emails, members…), so that no request holds the only writer for long.
	maxValuesPerRequest = 10000
	// maxValueBytes bounds one string value (a certificate in base64 fits).
	maxValueBytes = 64 << 10
)

// checkLimits refuses the values of one request (a POST or PUT body, the
// values of a PATCH's operations) when they carry more than
// maxValuesPerRequest array elements in all, or a string longer than
// maxValueBytes anywhere, unknown attributes and member ids included.
func checkLimits(values ...any) error {
	n := 0
	for _, v := range values {
		if err := checkLimitsFrom(v, "", &n); err != nil {
			return err
		}
	}
	return nil
}

// checkLimitsFrom checks v, the value of the attribute name; count carries
// the array elements already seen in the request.
func checkLimitsFrom(v any, name string, count *int) error {
	switch v := v.(type) {
	case string:
		if len(v) > maxValueBytes {
			return invalidValue("%s is longer than %d bytes", orDefault(name, "a value"), maxValueBytes)
		}
	case []any:
		if *count += len(v); *count > maxValuesPerRequest {
			return invalidValue("a request may carry at most %d values (elements of emails, members and the like): send them in batches", maxValuesPerRequest)
		}
		for _, el := range v {
			if err := checkLimitsFrom(el, name, count); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, el := range v {
			if len(k) > maxValueBytes {
				return invalidValue("an attribute name is longer than %d bytes", maxValueBytes)
			}
			if err := checkLimitsFrom(el, k, count); err != nil {
				return err
			}
		}
	}
	return nil
}

// normalizeValue coerces v to def's type. It returns nil for an empty value.
func normalizeValue(def *Attr, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if def.Multi {
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		var out []any
		for _, el := range list {
			nv, err := normalizeSingle(def, el)
			if err != nil {
				return nil, err
			}
			if nv != nil {
				out = append(out, nv)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		out, _ = mergeElements(def, nil, out)
		settlePrimary(out, nil)
		return out, nil
	}
	if list, ok := v.([]any); ok && def.Type == typeComplex {
		// A single-valued complex attribute sent as a one-element array: Entra's legacy manager shape.
		if len(list) == 0 {
			return nil, nil
		}
		v = list[0]
	}
	return normalizeSingle(def, v)
}

// normalizeSingle coerces one value to def's type (string booleans, numbers, sub-attributes), or says why it cannot.
func normalizeSingle(def *Attr, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch def.Type {
	case typeComplex:
		obj, ok := v.(map[string]any)
		if !ok {
			if _, isList := v.([]any); isList {
				return nil, invalidValue("%s must be an object, not an array", def.Name)
			}
			// A bare value stands for {"value": v}: manager as a raw id, a member as an id string.
			if v == "" {
				return nil, nil
			}
			obj = map[string]any{"value": v}
		}
		out := map[string]any{}
		for k, sv := range obj {
			sub := def.sub(k)
			if sub == nil {
				if sv != nil {
					out[k] = sv // unknown sub-attributes are kept as sent
				}
				continue
			}
			if writeGate(sub, false) != writeStore {
				continue
			}
			if err := putValue(out, sub, sv); err != nil {
				return nil, err
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		if def.Sub != nil && def.sub("value") != nil && !def.Multi && out["value"] == nil {
			return nil, nil // manager {"value": ""} clears it
		}
		return out, nil
	case typeBoolean:
		b, ok := coerceBool(v)
		if !ok {
			return nil, invalidValue("%s must be a boolean, got %s", def.Name, describe(v))
		}
		return b, nil
	case typeInteger, typeDecimal:
		switch n := v.(type) {
		case json.Number:
			return n, nil
		case string:
			if _, err := strconv.ParseFloat(n, 64); err == nil {
				return json.Number(n), nil
			}
		}
		return nil, invalidValue("%s must be a number, got %s", def.Name, describe(v))
	default:
		switch s := v.(type) {
		case string:
			if s == "" {
				return nil, nil
			}
			if len(s) > maxValueBytes {
				return nil, invalidValue("%s is longer than %d bytes", def.Name, maxValueBytes)
			}
			return s, nil
		case json.Number:
			return s.String(), nil
		case bool:
			return strconv.FormatBool(s), nil
		}
		return nil, invalidValue("%s must be a string, got %s", def.Name, describe(v))
	}
}

// describe names the JSON type of v for error details ("an object", "an array").
func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		b = append(b[:40], "…"...)
	}
	return string(b)
}

// checkRequired reports a missing required attribute of the core schema.
func checkRequired(rt *resourceType, attrs map[string]any) error {
	for _, a := range rt.Schema.Attrs {
		if a.Required && attrs[a.Name] == nil {
			return invalidValue("%s is required", a.Name)
		}
	}
	return nil
}

// ---- rendering ----

// doc renders the user as SCIM JSON. base is the SCIM base URL for locations ("" for none).
func (u *User) doc(base string) map[string]any {
	d := maps.Clone(userType.visible(u.Attrs))
	d["id"] = u.ID
	d["schemas"] = schemasOf(userType, u.Attrs)
	d["meta"] = meta("User", base, "/Users/", u.ID, u.Created, u.Modified, u.Version)
	if len(u.Groups) > 0 {
		groups := make([]any, len(u.Groups))
		for i, g := range u.Groups {
			m := map[string]any{"value": g.ID, "display": g.Display, "type": "direct"}
			if base != "" {
				m["$ref"] = base + "/Groups/" + g.ID
			}
			groups[i] = m
		}
		d["groups"] = groups
	}
	return d
}

// doc renders the group as SCIM JSON; members appear only if they were loaded.
func (g *Group) doc(base string) map[string]any {
	d := maps.Clone(groupType.visible(g.Attrs))
	d["id"] = g.ID
	d["schemas"] = schemasOf(groupType, g.Attrs)
	d["meta"] = meta("Group", base, "/Groups/", g.ID, g.Created, g.Modified, g.Version)
	if g.Members != nil {
		members := make([]any, len(g.Members))
		for i, m := range g.Members {
			el := map[string]any{"value": m.ID, "type": m.Type}
			if m.Display != "" {
				el["display"] = m.Display
			}
			if base != "" {
				el["$ref"] = base + "/" + m.Type + "s/" + m.ID
			}
			members[i] = el
		}
		d["members"] = members
	}
	return d
}

// meta builds a resource's meta attribute, with a weak ETag from its version.
func meta(resourceType, base, path, id string, created, modified time.Time, version int64) map[string]any {
	m := map[string]any{
		"resourceType": resourceType,
		"created":      formatTime(created),
		"lastModified": formatTime(modified),
		"version":      etag(version),
	}
	if base != "" {
		m["location"] = base + path + id
	}
	return m
}

// etag is the weak entity tag of a resource version.
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// schemasOf lists the core schema and every extension the attributes use.
func schemasOf(rt *resourceType, attrs map[string]any) []any {
	out := []any{rt.Schema.ID}
	var exts []string
	for k := range attrs {
		if strings.HasPrefix(k, "urn:") {
			exts = append(exts, k)
		}
	}
	slices.Sort(exts)
	for _, e := range exts {
		out = append(out, e)
	}
	return out
}

// projection is a parsed attributes / excludedAttributes pair (RFC 7644 §3.4.2.5).
type projection struct {
	include, exclude []projPath
}

// projPath is an attribute named in a projection. Beyond the RFC, a value
// filter is accepted (emails[type eq "work"]), as Microsoft's test collection sends it.
type projPath struct {
	attrPath
	filter filterExpr
}

// keeps reports whether a multi-valued element passes the path's filter.
func (p projPath) keeps(el any) bool {
	if p.filter == nil {
		return true
	}
	m, ok := el.(map[string]any)
	return ok && eval(p.filter, func(attrPath) *Attr { return nil }, m)
}

// parseProjection parses the comma-separated attribute lists.
func parseProjection(attributes, excluded string) (projection, error) {
	var p projection
	var err error
	if p.include, err = parseAttrList(attributes); err != nil {
		return p, err
	}
	p.exclude, err = parseAttrList(excluded)
	return p, err
}

// parseAttrList parses a comma-separated attributes or excludedAttributes parameter.
func parseAttrList(s string) ([]projPath, error) {
	var out []projPath
	for _, part := range splitAttrList(s) {
		if strings.Contains(part, "[") {
			pp, err := parsePatchPath(part)
			if err != nil {
				return nil, fmt.Errorf("%w: bad attribute %q", errInvalidFilter, part)
			}
			out = append(out, projPath{pp.attrPath, pp.Filter})
			continue
		}
		if ext := findExtensionURN(part); ext != "" {
			out = append(out, projPath{attrPath: attrPath{URN: ext}})
			continue
		}
		p, err := parseAttrPath(part)
		if err != nil {
			return nil, err
		}
		out = append(out, projPath{attrPath: p})
	}
	return out, nil
}

// splitAttrList splits at commas outside brackets and quotes.
func splitAttrList(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch c := s[i]; {
			case c == '"' && (i == 0 || s[i-1] != '\\'):
				quoted = !quoted
			case quoted:
			case c == '[':
				depth++
			case c == ']':
				depth--
			}
			if s[i] != ',' || quoted || depth > 0 {
				continue
			}
		}
		if part := strings.TrimSpace(s[start:i]); part != "" {
			out = append(out, part)
		}
		start = i + 1
	}
	return out
}

// findExtensionURN returns s if it names a whole schema (a URN with no attribute).
func findExtensionURN(s string) string {
	for _, rt := range resourceTypes {
		if strings.EqualFold(s, rt.Schema.ID) {
			return rt.Schema.ID
		}
		if ext := rt.extension(s); ext != nil {
			return ext.ID
		}
	}
	return ""
}

// excludes reports whether the projection leaves out the top-level attribute name,
// so that callers can skip loading it (members of a large group).
func (p projection) excludes(name string) bool {
	for _, e := range p.exclude {
		if e.URN == "" && e.Sub == "" && e.filter == nil && strings.EqualFold(e.Attr, name) {
			return true
		}
	}
	if len(p.include) == 0 {
		return false
	}
	for _, in := range p.include {
		if strings.EqualFold(in.Attr, name) && (in.URN == "" || strings.EqualFold(in.URN, userSchema) || strings.EqualFold(in.URN, groupSchema)) {
			return false
		}
	}
	return true
}

// apply returns the projected document. id and schemas are always returned.
func (p projection) apply(doc map[string]any) map[string]any {
	if len(p.include) > 0 {
		out := map[string]any{"id": doc["id"], "schemas": doc["schemas"]}
		for _, in := range p.include {
			copyPath(out, doc, in)
		}
		dropEmptyElements(out)
		doc = out
	}
	for _, ex := range p.exclude {
		if ex.URN == "" && ex.Sub == "" && (strings.EqualFold(ex.Attr, "id") || strings.EqualFold(ex.Attr, "schemas")) {
			continue
		}
		deletePath(doc, ex)
	}
	return doc
}

// container returns the object holding p's attribute in doc (the document or an extension object).
func container(doc map[string]any, p attrPath) (map[string]any, string) {
	if p.URN == "" || strings.EqualFold(p.URN, userSchema) || strings.EqualFold(p.URN, groupSchema) {
		return doc, p.Attr
	}
	for k, v := range doc {
		if strings.EqualFold(k, p.URN) {
			m, _ := v.(map[string]any)
			return m, p.Attr
		}
	}
	return nil, ""
}

// keyOf finds the key of obj that is name case-insensitively, as SCIM attribute names are.
func keyOf(obj map[string]any, name string) (string, bool) {
	if _, ok := obj[name]; ok {
		return name, true
	}
	for k := range obj {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// copyPath copies what p names from src into dst, for attributes=.
func copyPath(dst, src map[string]any, p projPath) {
	if p.Attr == "" { // a whole extension
		if k, ok := keyOf(src, p.URN); ok {
			dst[k] = src[k]
		}
		return
	}
	from, name := container(src, p.attrPath)
	if from == nil {
		return
	}
	k, ok := keyOf(from, name)
	if !ok {
		return
	}
	to := dst
	if p.URN != "" && !strings.EqualFold(p.URN, userSchema) && !strings.EqualFold(p.URN, groupSchema) {
		urnKey, _ := keyOf(src, p.URN)
		m, _ := dst[urnKey].(map[string]any)
		if m == nil {
			m = map[string]any{}
			dst[urnKey] = m
		}
		to = m
	}
	if p.Sub == "" {
		if list, ok := from[k].([]any); ok && p.filter != nil {
			var kept []any
			for _, el := range list {
				if p.keeps(el) {
					kept = append(kept, el)
				}
			}
			to[k] = kept
			return
		}
		to[k] = from[k]
		return
	}
	pick := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		sk, ok := keyOf(m, p.Sub)
		if !ok {
			return nil
		}
		return map[string]any{sk: m[sk]}
	}
	switch v := from[k].(type) {
	case []any:
		// Kept aligned with the source elements so that several sub-attributes
		// of one attribute (emails.value,emails.type) land in the same elements.
		list, _ := to[k].([]any)
		if len(list) != len(v) {
			list = make([]any, len(v))
			for i := range list {
				list[i] = map[string]any{}
			}
		}
		for i, el := range v {
			if got := pick(el); got != nil && p.keeps(el) {
				maps.Copy(list[i].(map[string]any), got)
			}
		}
		to[k] = list
	case map[string]any:
		got := pick(v)
		if got == nil {
			return
		}
		if m, ok := to[k].(map[string]any); ok {
			maps.Copy(m, got)
		} else {
			to[k] = got
		}
	}
}

// dropEmptyElements removes the empty elements that sub-attribute projection leaves.
func dropEmptyElements(obj map[string]any) {
	for k, v := range obj {
		switch v := v.(type) {
		case []any:
			kept := slices.DeleteFunc(slices.Clone(v), func(el any) bool {
				m, ok := el.(map[string]any)
				return ok && len(m) == 0
			})
			if len(kept) == 0 {
				delete(obj, k)
			} else {
				obj[k] = kept
			}
		case map[string]any:
			if strings.HasPrefix(k, "urn:") {
				dropEmptyElements(v)
			}
		}
	}
}

// deletePath removes what p names from doc, for excludedAttributes=.
func deletePath(doc map[string]any, p projPath) {
	if p.Attr == "" {
		if k, ok := keyOf(doc, p.URN); ok {
			delete(doc, k)
		}
		return
	}
	obj, name := container(doc, p.attrPath)
	if obj == nil {
		return
	}
	k, ok := keyOf(obj, name)
	if !ok {
		return
	}
	if p.Sub == "" {
		if list, ok := obj[k].([]any); ok && p.filter != nil {
			var kept []any
			for _, el := range list {
				if !p.keeps(el) {
					kept = append(kept, el)
				}
			}
			obj[k] = kept
			return
		}
		delete(obj, k)
		return
	}
	strip := func(v any) any {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		m = maps.Clone(m)
		if sk, ok := keyOf(m, p.Sub); ok {
			delete(m, sk)
		}
		return m
	}
	switch v := obj[k].(type) {
	case []any:
		list := make([]any, len(v))
		for i, el := range v {
			list[i] = strip(el)
		}
		obj[k] = list
	case map[string]any:
		obj[k] = strip(v)
	}
}

package main

// The PATCH engine (RFC 7644 §3.5.2) with every dialect Entra speaks: ops in
// any case, string booleans, filtered paths that create the element they name,
// path-less value objects whose keys are paths, URN-qualified paths, manager as
// a bare id, and Remove with a value.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// patchRequest is a PatchOp message. encoding/json matches the field names
// case-insensitively, as Entra and others vary their casing.
type patchRequest struct {
	Schemas    []string
	Operations []patchOp
}

// patchOp is one operation of a PATCH request (RFC 7644 §3.5.2).
type patchOp struct {
	Op    string
	Path  string
	Value any
}

// patchPath is a parsed PATCH path: attr, attr.sub, attr[filter] or attr[filter].sub,
// optionally URN-qualified, or a whole extension (Attr empty).
type patchPath struct {
	attrPath
	Filter filterExpr
}

// parsePatchPath parses a PATCH path. Errors are SCIM invalidPath errors.
func parsePatchPath(s string) (patchPath, error) {
	s = strings.TrimSpace(s)
	if ext := findExtensionURN(s); ext != "" {
		return patchPath{attrPath: attrPath{URN: ext}}, nil
	}
	toks, err := lexFilter(s)
	if err != nil || len(toks) == 0 || toks[0].kind != tokWord {
		return patchPath{}, badRequest("invalidPath", "invalid path %q", s)
	}
	ap, err := parseAttrPath(toks[0].text)
	if err != nil {
		return patchPath{}, badRequest("invalidPath", "invalid path %q", s)
	}
	pp := patchPath{attrPath: ap}
	if len(toks) == 1 {
		return pp, nil
	}
	if toks[1].kind != tokLBracket || ap.Sub != "" {
		return patchPath{}, badRequest("invalidPath", "invalid path %q", s)
	}
	// The filter runs to the last ']'; an optional ".sub" may follow it.
	last := len(toks) - 1
	if toks[last].kind == tokWord && strings.HasPrefix(toks[last].text, ".") {
		pp.Sub = toks[last].text[1:]
		if !validAttrName(pp.Sub) {
			return patchPath{}, badRequest("invalidPath", "invalid sub-attribute in path %q", s)
		}
		last--
	}
	if toks[last].kind != tokRBracket || last < 3 {
		return patchPath{}, badRequest("invalidPath", "invalid path %q", s)
	}
	inner := s[toks[1].pos+1 : toks[last].pos]
	if pp.Filter, err = parseFilter(inner); err != nil {
		return patchPath{}, badRequest("invalidPath", "invalid filter in path %q: %s", s, strings.TrimPrefix(err.Error(), errInvalidFilter.Error()+": "))
	}
	return pp, nil
}

// opName returns the lower-case operation, checking it.
func (op patchOp) name() (string, error) {
	name := strings.ToLower(strings.TrimSpace(op.Op))
	switch name {
	case "add", "replace", "remove":
		return name, nil
	}
	return "", badRequest("invalidSyntax", "unknown PATCH operation %q: use add, replace or remove", op.Op)
}

// maxPatchOps bounds the operations of one PATCH request; checkLimits bounds their values.
const maxPatchOps = 1000

// decodePatch reads and checks a PatchOp body.
func decodePatch(body []byte) (*patchRequest, error) {
	var req patchRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	if len(req.Operations) > maxPatchOps {
		return nil, badRequest("invalidValue", "a PATCH may have at most %d operations, this one has %d", maxPatchOps, len(req.Operations))
	}
	values := make([]any, len(req.Operations))
	for i, op := range req.Operations {
		values[i] = op.Value
	}
	if err := checkLimits(values...); err != nil {
		return nil, err
	}
	for i, op := range req.Operations {
		if _, err := op.name(); err != nil {
			return nil, err
		}
		if op.Path == "" && strings.EqualFold(op.Op, "remove") {
			return nil, badRequest("noTarget", "operation %d: remove needs a path", i+1)
		}
	}
	return &req, nil
}

// applyPatch applies the operations to a resource's stored attributes, in
// order. For groups, membership operations are not applied to attrs but
// returned as changes for the store, in order.
func applyPatch(rt *resourceType, attrs map[string]any, ops []patchOp) ([]MemberChange, error) {
	var changes []MemberChange
	for i, op := range ops {
		name, err := op.name()
		if err != nil {
			return nil, err
		}
		if op.Path == "" {
			obj, ok := op.Value.(map[string]any)
			if !ok {
				return nil, badRequest("invalidValue", "operation %d: without a path, the value must be an object of attributes", i+1)
			}
			for key, v := range obj {
				if strings.EqualFold(key, "schemas") {
					continue
				}
				c, err := applyPathOp(rt, attrs, name, key, v, false)
				if err != nil {
					return nil, fmt.Errorf("operation %d: %w", i+1, err)
				}
				changes = append(changes, c...)
			}
			continue
		}
		c, err := applyPathOp(rt, attrs, name, op.Path, op.Value, true)
		if err != nil {
			return nil, fmt.Errorf("operation %d: %w", i+1, err)
		}
		changes = append(changes, c...)
	}
	pruneAll(rt, attrs)
	return changes, checkRequired(rt, attrs)
}

// pruneAll tidies multi-valued attributes once all the request's operations
// have run: elements left without substance are dropped (a filtered op may
// create an element that a later op of the same request fills: primary
// before value), elements made the same are merged and at most one stays
// primary.
func pruneAll(rt *resourceType, attrs map[string]any) {
	prune := func(obj map[string]any, s *Schema) {
		for _, a := range s.Attrs {
			if a.Multi && a.Type == typeComplex && !a.ReadOnly() {
				if _, ok := obj[a.Name]; ok {
					pruneElements(obj, a)
					mergeDuplicates(obj, a)
				}
			}
		}
	}
	prune(attrs, rt.Schema)
	for _, ext := range rt.Extensions {
		if obj, ok := attrs[ext.ID].(map[string]any); ok {
			prune(obj, ext)
		}
	}
}

// applyPathOp applies one operation on one path. named is false for the keys
// of a value object (path-less, or the value of a whole extension): clients
// echo id, meta and schemas back in them, which writeGate then ignores.
func applyPathOp(rt *resourceType, attrs map[string]any, op, rawPath string, value any, named bool) ([]MemberChange, error) {
	p, err := parsePatchPath(rawPath)
	if err != nil {
		return nil, err
	}
	if p.Attr == "" { // a whole schema: its attributes one by one
		if op == "remove" {
			delete(attrs, p.URN)
			return nil, nil
		}
		obj, ok := value.(map[string]any)
		if !ok {
			return nil, badRequest("invalidValue", "the value of %s must be an object", p.URN)
		}
		var changes []MemberChange
		for k, v := range obj {
			if strings.EqualFold(k, "schemas") {
				continue
			}
			c, err := applyPathOp(rt, attrs, op, p.URN+":"+k, v, false)
			if err != nil {
				return nil, err
			}
			changes = append(changes, c...)
		}
		return changes, nil
	}
	if rt == groupType && strings.EqualFold(p.Attr, "members") && (p.URN == "" || strings.EqualFold(p.URN, groupSchema)) {
		return memberOp(op, p, value, named)
	}
	def := rt.lookup(p.URN, p.Attr, "")
	if def == nil && p.URN == "" {
		// An extension attribute named without its URN, like Entra's legacy
		// "manager" path: it belongs to the extension that defines it.
		if ext := rt.extensionOf(p.Attr); ext != nil {
			p.URN, def = ext.ID, ext.attr(p.Attr)
		}
	}
	if def == nil {
		if p.URN != "" && rt.extension(p.URN) == nil && !strings.EqualFold(p.URN, rt.Schema.ID) && p.Filter == nil && p.Sub == "" {
			// An extension we do not model: keep its attributes as sent.
			if op == "remove" {
				value = nil
			}
			return nil, setURNAttr(rt, attrs, p.URN+":"+p.Attr, value)
		}
		// Unknown attributes are ignored rather than failing the whole request:
		// Entra would otherwise retry the same PATCH for days.
		return nil, nil
	}
	gated := def
	if sub := def.sub(p.Sub); p.Sub != "" && sub != nil && writeGate(def, named) == writeStore {
		gated = sub // manager.displayName: the sub-attribute decides
	}
	switch writeGate(gated, named) {
	case writeRefuse:
		return nil, mutabilityError(gated)
	case writeIgnore:
		return nil, nil
	}
	obj := attrs
	if ext := rt.extension(p.URN); ext != nil {
		obj, _ = attrs[ext.ID].(map[string]any)
		if obj == nil {
			obj = map[string]any{}
		}
		defer func() {
			if len(obj) == 0 {
				delete(attrs, ext.ID)
			} else {
				attrs[ext.ID] = obj
			}
		}()
	}
	switch {
	case p.Filter != nil:
		return nil, patchFiltered(obj, def, op, p, value)
	case p.Sub != "":
		return nil, patchSub(obj, def, op, p.Sub, value)
	}
	return nil, patchAttr(obj, def, op, value)
}

// patchAttr handles a path naming a whole attribute.
func patchAttr(obj map[string]any, def *Attr, op string, value any) error {
	if op == "remove" {
		if value == nil {
			delete(obj, def.Name)
			return nil
		}
		return removeValues(obj, def, value)
	}
	nv, err := normalizeValue(def, value)
	if err != nil {
		return err
	}
	if nv == nil {
		delete(obj, def.Name) // "" or null clears
		return nil
	}
	switch {
	case def.Multi && op == "add":
		list, _ := obj[def.Name].([]any)
		list, wrote := mergeElements(def, list, nv.([]any))
		settlePrimary(list, wrote)
		obj[def.Name] = list
	case def.Type == typeComplex && !def.Multi && def.sub("value") == nil:
		// name: the sub-attributes given replace theirs; the others stay (RFC 7644 §3.5.2.1, §3.5.2.3).
		cur, _ := obj[def.Name].(map[string]any)
		if cur == nil {
			cur = map[string]any{}
		}
		for k, v := range nv.(map[string]any) {
			cur[k] = v
		}
		obj[def.Name] = cur
	default:
		obj[def.Name] = nv
	}
	return nil
}

// removeValues handles Remove with a value: only the given values go, never a set.
func removeValues(obj map[string]any, def *Attr, value any) error {
	cur, ok := obj[def.Name]
	if !ok {
		return nil
	}
	nv, err := normalizeValue(def, value)
	if err != nil || nv == nil {
		return err
	}
	if !def.Multi {
		if sameValue(def, cur, nv) {
			delete(obj, def.Name)
		}
		return nil
	}
	list, _ := cur.([]any)
	var kept []any
	for _, el := range list {
		if !containsValueOf(def, nv.([]any), el) {
			kept = append(kept, el)
		}
	}
	if len(kept) == 0 {
		delete(obj, def.Name)
	} else {
		obj[def.Name] = kept
	}
	return nil
}

// containsValueOf reports whether list already holds v, compared as def says (sameValue).
func containsValueOf(def *Attr, list []any, v any) bool {
	for _, el := range list {
		if sameValue(def, el, v) {
			return true
		}
	}
	return false
}

// patchSub handles attr.sub without a filter.
func patchSub(obj map[string]any, def *Attr, op, sub string, value any) error {
	subDef := def.sub(sub)
	if def.Type != typeComplex {
		return badRequest("invalidPath", "%s has no sub-attributes", def.Name)
	}
	if def.Multi {
		// emails.value without a filter: every element (RFC 7644 §3.5.2).
		list, _ := obj[def.Name].([]any)
		if len(list) == 0 && op != "remove" {
			list = []any{map[string]any{}}
		}
		for _, el := range list {
			if m, ok := el.(map[string]any); ok {
				if err := setSub(m, subDef, sub, op, value); err != nil {
					return err
				}
			}
		}
		settlePrimary(list, list)
		obj[def.Name] = list
		return nil
	}
	cur, _ := obj[def.Name].(map[string]any)
	if cur == nil {
		if op == "remove" {
			return nil
		}
		cur = map[string]any{}
	}
	if err := setSub(cur, subDef, sub, op, value); err != nil {
		return err
	}
	if len(cur) == 0 || def.sub("value") != nil && cur["value"] == nil {
		delete(obj, def.Name)
	} else {
		obj[def.Name] = cur
	}
	return nil
}

// setSub sets, or removes, one sub-attribute of an element.
func setSub(el map[string]any, subDef *Attr, sub, op string, value any) error {
	key := sub
	if subDef != nil {
		key = subDef.Name
	} else if k, ok := keyOf(el, sub); ok {
		key = k
	}
	if op == "remove" {
		if value == nil || subDef == nil || sameValue(subDef, el[key], value) {
			delete(el, key)
		}
		return nil
	}
	if subDef == nil {
		if value == nil {
			delete(el, key)
		} else {
			el[key] = value
		}
		return nil
	}
	return putValue(el, subDef, value)
}

// pruneElements drops elements of a multi-valued attribute left without
// substance (only type, primary or display), and the attribute if none remain.
func pruneElements(obj map[string]any, def *Attr) {
	list, _ := obj[def.Name].([]any)
	var kept []any
	for _, el := range list {
		m, ok := el.(map[string]any)
		if ok && !hasSubstance(m) {
			continue
		}
		kept = append(kept, el)
	}
	if len(kept) == 0 {
		delete(obj, def.Name)
	} else {
		obj[def.Name] = kept
	}
}

// mergeDuplicates merges elements of def that operations made the same, and
// leaves at most one primary.
func mergeDuplicates(obj map[string]any, def *Attr) {
	list, ok := obj[def.Name].([]any)
	if !ok {
		return
	}
	out, _ := mergeElements(def, nil, list)
	settlePrimary(out, nil)
	obj[def.Name] = out
}

// hasSubstance reports whether a multi-valued element holds more than type, primary and display.
func hasSubstance(m map[string]any) bool {
	for k := range m {
		switch strings.ToLower(k) {
		case "type", "primary", "display":
		default:
			return true
		}
	}
	return false
}

// patchFiltered handles attr[filter] and attr[filter].sub. Add and Replace on
// a filter that matches nothing create the element the filter describes, which
// is what Entra expects for emails[type eq "work"].value and the like.
func patchFiltered(obj map[string]any, def *Attr, op string, p patchPath, value any) error {
	if def.Type != typeComplex {
		return badRequest("invalidPath", "%s cannot be filtered", def.Name)
	}
	defs := func(sp attrPath) *Attr { return def.sub(sp.Attr) }
	var list []any
	if def.Multi {
		list, _ = obj[def.Name].([]any)
	} else if cur, ok := obj[def.Name].(map[string]any); ok {
		list = []any{cur} // manager[value eq "id"]
	}
	var hits []map[string]any
	var kept []any
	for _, el := range list {
		m, ok := el.(map[string]any)
		if ok && eval(p.Filter, defs, m) {
			hits = append(hits, m)
			if op == "remove" && p.Sub == "" {
				continue
			}
		}
		kept = append(kept, el)
	}
	if op == "remove" {
		if p.Sub != "" {
			for _, m := range hits {
				if err := setSub(m, def.sub(p.Sub), p.Sub, op, value); err != nil {
					return err
				}
			}
		}
		obj[def.Name] = kept
		if !def.Multi {
			if len(kept) == 0 || !hasSubstance(kept[0].(map[string]any)) {
				delete(obj, def.Name)
			} else {
				obj[def.Name] = kept[0]
			}
			return nil
		}
		return nil
	}
	if len(hits) == 0 {
		el, ok := elementFromFilter(p.Filter, def)
		if !ok {
			return badRequest("noTarget", "no value of %s matches the filter, and it does not say how to create one", def.Name)
		}
		hits = []map[string]any{el}
		if def.Multi {
			obj[def.Name] = append(list, el)
		} else {
			obj[def.Name] = el
		}
	}
	wrote := make([]any, len(hits))
	for i, m := range hits {
		wrote[i] = m
		if p.Sub != "" {
			if err := setSub(m, def.sub(p.Sub), p.Sub, op, value); err != nil {
				return err
			}
			continue
		}
		nv, err := normalizeSingle(def, value)
		if err != nil {
			return err
		}
		if nm, ok := nv.(map[string]any); ok {
			for k, v := range nm {
				m[k] = v
			}
		}
	}
	if list, ok := obj[def.Name].([]any); ok {
		settlePrimary(list, wrote)
	}
	return nil
}

// elementFromFilter builds the element that an Add or Replace on a filtered
// path that matches nothing creates. RFC 7644 §3.5.2.3 answers noTarget;
// Entra expects the element to be created, and only for the shapes it sends
// (../shared/entra-scim.md §2.6 (1) and (9)): one equality on type
// (emails[type eq "work"].value → {"type": "work"}) or primary eq true
// (roles[primary eq "True"].value → {"primary": true}). Any other filter does
// not say which element to create.
func elementFromFilter(f filterExpr, def *Attr) (map[string]any, bool) {
	c, ok := f.(compareExpr)
	if !ok || c.Op != "eq" || c.Path.URN != "" || c.Path.Sub != "" || c.Value == nil {
		return nil, false
	}
	sub := def.sub(c.Path.Attr)
	if sub == nil || sub.Name != "type" && sub.Name != "primary" {
		return nil, false
	}
	nv, err := normalizeValue(sub, c.Value)
	if err != nil || nv == nil || sub.Name == "primary" && nv != true {
		return nil, false
	}
	return map[string]any{sub.Name: nv}, true
}

// memberOp turns an operation on a group's members into membership changes.
func memberOp(op string, p patchPath, value any, named bool) ([]MemberChange, error) {
	if p.Sub != "" {
		// A member's value and type are immutable, its display read-only: a member is added or removed whole.
		if sub := groupSchemaDef.attr("members").sub(p.Sub); sub != nil {
			switch writeGate(sub, named) {
			case writeRefuse:
				return nil, mutabilityError(sub)
			case writeIgnore:
				return nil, nil
			}
		}
		return nil, badRequest("invalidPath", "members.%s cannot be changed; add or remove members instead", p.Sub)
	}
	if p.Filter != nil {
		if op != "remove" {
			return nil, badRequest("invalidPath", "members can only be removed by filter; add them with a value")
		}
		return []MemberChange{{Kind: membersRemoveMatching, Filter: p.Filter}}, nil
	}
	ids, err := memberIDs(value)
	if err != nil {
		return nil, err
	}
	switch op {
	case "add":
		return []MemberChange{{Kind: membersAdd, IDs: ids}}, nil
	case "replace":
		return []MemberChange{{Kind: membersReplace, IDs: ids}}, nil
	}
	// Remove with a value removes those members (Entra's default dialect);
	// only a Remove without a value removes them all (RFC 7644 §3.5.2.2).
	if value == nil {
		return []MemberChange{{Kind: membersRemoveAll}}, nil
	}
	return []MemberChange{{Kind: membersRemove, IDs: ids}}, nil
}

// memberIDs reads member ids from a value: an array (or a single item) of
// {"value": id, "$ref": …} objects or of bare id strings.
func memberIDs(value any) ([]string, error) {
	if value == nil {
		return nil, nil
	}
	list, ok := value.([]any)
	if !ok {
		list = []any{value}
	}
	ids := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, item := range list {
		var id any = item
		if m, ok := item.(map[string]any); ok {
			id, _ = member(m, "value")
		}
		s, ok := id.(string)
		if !ok || strings.TrimSpace(s) == "" {
			return nil, badRequest("invalidValue", "each member needs a \"value\" with the id of a user or group, got %s", describe(item))
		}
		if !seen[s] {
			seen[s] = true
			ids = append(ids, s)
		}
	}
	return ids, nil
}

// decodeJSON decodes a request body strictly enough to reject garbage and
// keeps numbers as written.
func decodeJSON(body []byte, v any) error {
	if jsonDepth(body) > maxJSONDepth {
		return badRequest("invalidSyntax", "the request body nests deeper than %d levels", maxJSONDepth)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalidSyntax", "the request body is not valid JSON: %s", jsonErrorDetail(err))
	}
	// More() is false at a stray ']' or '}', so ask for the next token: only the end will do.
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalidSyntax", "the request body has data after its JSON value")
	}
	return nil
}

// maxJSONDepth bounds nesting in request bodies; SCIM resources nest three deep.
const maxJSONDepth = 32

// jsonDepth returns the deepest nesting of objects and arrays in a JSON text.
func jsonDepth(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// jsonErrorDetail says where and why a body is not the JSON expected, without echoing the body.
func jsonErrorDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("%s must not be %s", te.Field, te.Value)
		}
		return fmt.Sprintf("expected an object, not %s", te.Value)
	}
	return err.Error()
}

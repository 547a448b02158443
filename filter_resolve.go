package main

// Filters resolved against a resource type: the names a filter uses are
// checked against the type's schemas, and extension attributes named without
// their URN are qualified, before the store translates or evaluates it.

import (
	"fmt"
	"strings"
)

// resolveFilter checks f against the attributes of rt and returns it with every
// extension attribute named without its URN qualified by that URN, as PATCH
// paths are resolved (Entra's legacy reference check filters on "manager").
// Paths that name no attribute of rt are left as they are, so that they match
// nothing, and are returned in unknown. Comparisons the attribute's type does
// not support are errors wrapping errInvalidFilter: ordering a boolean or a
// binary (RFC 7644 §3.4.2.2) and comparing a complex attribute that has no
// "value". Attributes of extensions scimbox does not model are kept as sent,
// so filters on them are evaluated as they are, unchecked.
func resolveFilter(f filterExpr, rt *resourceType) (resolved filterExpr, unknown []attrPath, err error) {
	r := &filterResolver{}
	resolved, err = r.resolve(f, rt.filterScope)
	return resolved, r.unknown, err
}

// filterFor is resolveFilter for a filter on one resource type, where naming
// an attribute the type does not have is an error (invalidFilter).
func filterFor(f filterExpr, rt *resourceType) (filterExpr, error) {
	if f == nil {
		return nil, nil
	}
	f, unknown, err := resolveFilter(f, rt)
	if err == nil && len(unknown) > 0 {
		err = fmt.Errorf("%w: %s has no attribute %q", errInvalidFilter, rt.Name, unknown[0].String())
	}
	return f, err
}

// filterScope resolves a path of a filter; known is false when it names no
// attribute (resolved is then the path to report), def is nil for an
// unmodeled extension.
type filterScope func(p attrPath) (resolved attrPath, def *Attr, known bool)

// filterResolver resolves a filter's paths, collecting the unknown ones for one error.
type filterResolver struct{ unknown []attrPath }

// resolve returns f with every path resolved in scope.
func (r *filterResolver) resolve(f filterExpr, scope filterScope) (filterExpr, error) {
	switch f := f.(type) {
	case logicalExpr:
		var err error
		if f.Left, err = r.resolve(f.Left, scope); err != nil {
			return nil, err
		}
		if f.Right, err = r.resolve(f.Right, scope); err != nil {
			return nil, err
		}
		return f, nil
	case notExpr:
		x, err := r.resolve(f.X, scope)
		return notExpr{x}, err
	case compareExpr:
		p, def, known := scope(f.Path)
		if !known {
			r.unknown = append(r.unknown, p)
			return f, nil
		}
		f.Path = p
		return f, checkComparison(def, p, f.Op, f.Value)
	case valuePathExpr:
		p, def, known := scope(f.Path)
		if !known {
			r.unknown = append(r.unknown, p)
			return f, nil
		}
		f.Path = p
		if def == nil {
			return f, nil
		}
		if def.Type != typeComplex {
			return nil, fmt.Errorf("%w: %s is not complex: it has no sub-attributes to filter in brackets", errInvalidFilter, p)
		}
		// Inside the brackets, names are the attribute's sub-attributes.
		elem := func(q attrPath) (attrPath, *Attr, bool) {
			if sub := def.sub(q.Attr); sub != nil && q.URN == "" && q.Sub == "" {
				return q, sub, true
			}
			return attrPath{URN: p.URN, Attr: p.Attr, Sub: q.String()}, nil, false
		}
		var err error
		if f.Filter, err = r.resolve(f.Filter, elem); err != nil {
			return nil, err
		}
		if f.Op == "" {
			return f, nil
		}
		full := attrPath{URN: p.URN, Attr: p.Attr, Sub: f.Sub}
		sub := def.sub(f.Sub)
		if sub == nil {
			r.unknown = append(r.unknown, full)
			return f, nil
		}
		return f, checkComparison(sub, full, f.Op, f.Value)
	}
	return f, nil
}

// checkComparison reports a comparison that the attribute's type does not
// support; def nil (an unmodeled extension) supports anything.
func checkComparison(def *Attr, p attrPath, op string, value any) error {
	if def == nil || op == "pr" {
		return nil
	}
	switch def.Type {
	case typeBoolean, typeBinary:
		if op == "gt" || op == "ge" || op == "lt" || op == "le" {
			return fmt.Errorf("%w: %s is a %s: it cannot be compared with %q", errInvalidFilter, p, def.Type, op)
		}
	case typeComplex:
		if value == nil { // "eq null" asks whether it is absent
			return nil
		}
		// A complex value compares by its "value" (as in emails eq "x").
		v := def.sub("value")
		if v == nil {
			return fmt.Errorf("%w: %s is complex: compare one of its sub-attributes", errInvalidFilter, p)
		}
		return checkComparison(v, p, op, value)
	}
	return nil
}

// filterScope resolves a top-level filter path against the resource type: the
// common and core attributes, then the extensions, also by short name.
func (rt *resourceType) filterScope(p attrPath) (attrPath, *Attr, bool) {
	var def *Attr
	switch {
	case p.URN == "" || strings.EqualFold(p.URN, rt.Schema.ID):
		def = rt.lookup(p.URN, p.Attr, "")
		if def == nil && p.URN == "" {
			if ext := rt.extensionOf(p.Attr); ext != nil {
				p.URN, def = ext.ID, ext.attr(p.Attr)
			}
		}
	case rt.extension(p.URN) != nil:
		def = rt.lookup(p.URN, p.Attr, "")
	default:
		for _, sc := range allSchemas() {
			if strings.EqualFold(sc.ID, p.URN) {
				return p, nil, false // the schema of another resource type
			}
		}
		return p, nil, true // an extension kept as sent
	}
	if def != nil && p.Sub != "" {
		def = def.sub(p.Sub)
	}
	return p, def, def != nil
}

// --- evaluation ---

// foldCase is the case-insensitive key used for caseExact=false attributes,
// here and in the store's indexed columns. It folds beyond ASCII.
func foldCase(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c >= 'A' && c <= 'Z' {
			return strings.ToLower(strings.ToUpper(s))
		}
	}
	return s
}

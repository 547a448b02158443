package main

// The SCIM filter language (RFC 7644 §3.4.2.2): a parser, an evaluator over
// resources as JSON maps, and a translation to SQL that lets the store use its
// indexes. The evaluator is the definition of what a filter means; the SQL
// translation either matches it exactly (and the store trusts it) or only
// narrows the candidates (and the store evaluates the rest in Go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/secure/precis"
	"golang.org/x/text/unicode/norm"
)

// maxFilterDepth bounds nesting so that a hostile filter cannot exhaust the
// stack; maxFilterTerms bounds comparisons, which SQLite's expression depth limits.
const (
	maxFilterDepth = 64
	maxFilterTerms = 256
)

// errInvalidFilter is wrapped by every parse error.
var errInvalidFilter = errors.New("invalid filter")

// attrPath names an attribute: an optional schema URN, the attribute and an optional sub-attribute.
type attrPath struct {
	URN, Attr, Sub string
}

// String is the path as a filter writes it: urn:attr.sub.
func (p attrPath) String() string {
	s := p.Attr
	if p.URN != "" {
		s = p.URN + ":" + s
	}
	if p.Sub != "" {
		s += "." + p.Sub
	}
	return s
}

// filterExpr is a node of a parsed filter.
type filterExpr interface{ isFilter() }

// logicalExpr is "Left and Right" or "Left or Right".
type logicalExpr struct {
	And         bool // and, else or
	Left, Right filterExpr
}

// notExpr is "not (X)".
type notExpr struct{ X filterExpr }

// compareExpr is `path op value`, or `path pr` (Value nil).
type compareExpr struct {
	Path  attrPath
	Op    string // lower case
	Value any    // string, json.Number, bool or nil
}

// valuePathExpr is `attr[filter]`, optionally followed by `.sub op value`
// (the form Entra uses: emails[type eq "work"].value eq "x").
type valuePathExpr struct {
	Path   attrPath // URN and Attr only
	Filter filterExpr
	Sub    string
	Op     string // "" when there is no trailing comparison
	Value  any
}

// isFilter marks the types that are filter expressions.
func (logicalExpr) isFilter()   {}
func (notExpr) isFilter()       {}
func (compareExpr) isFilter()   {}
func (valuePathExpr) isFilter() {}

// --- lexer ---

// tokKind is the kind of a filter token.
type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
)

// token is one lexed piece of a filter, with its offset for error messages.
type token struct {
	kind tokKind
	text string // word text, or decoded string value
	pos  int
}

// lexFilter splits a filter into tokens: words, JSON strings, parentheses and brackets.
func lexFilter(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case c == '[':
			toks = append(toks, token{tokLBracket, "[", i})
			i++
		case c == ']':
			toks = append(toks, token{tokRBracket, "]", i})
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
					continue
				}
				if s[j] == '"' {
					break
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string at position %d", errInvalidFilter, i+1)
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, fmt.Errorf("%w: bad string at position %d", errInvalidFilter, i+1)
			}
			toks = append(toks, token{tokString, v, i})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n()[]\"", rune(s[j])) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i})
			i = j
		}
	}
	return toks, nil
}

// --- parser ---

// filterParser is a recursive-descent parser over the tokens; depth and terms bound what one filter may cost.
type filterParser struct {
	toks  []token
	i     int
	depth int
	terms int
}

// parseFilter parses a complete filter expression. Errors wrap errInvalidFilter.
func parseFilter(s string) (filterExpr, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%w: empty filter", errInvalidFilter)
	}
	p := &filterParser{toks: toks}
	f, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t != nil {
		return nil, fmt.Errorf("%w: unexpected %q at position %d", errInvalidFilter, t.text, t.pos+1)
	}
	return f, nil
}

// peek returns the next token without consuming it, nil at the end.
func (p *filterParser) peek() *token {
	if p.i < len(p.toks) {
		return &p.toks[p.i]
	}
	return nil
}

// next consumes and returns the next token, nil at the end.
func (p *filterParser) next() *token {
	t := p.peek()
	if t != nil {
		p.i++
	}
	return t
}

// keyword consumes the next token if it is the word kw, case-insensitively.
func (p *filterParser) keyword(kw string) bool {
	if t := p.peek(); t != nil && t.kind == tokWord && strings.EqualFold(t.text, kw) {
		p.i++
		return true
	}
	return false
}

// expect consumes a token of kind, or says that what was expected.
func (p *filterParser) expect(kind tokKind, what string) error {
	t := p.next()
	if t == nil {
		return fmt.Errorf("%w: expected %s at end of filter", errInvalidFilter, what)
	}
	if t.kind != kind {
		return fmt.Errorf("%w: expected %s at position %d, found %q", errInvalidFilter, what, t.pos+1, t.text)
	}
	return nil
}

// or parses "and-expression (or and-expression)*": or binds loosest.
func (p *filterParser) or() (filterExpr, error) {
	left, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.and()
		if err != nil {
			return nil, err
		}
		left = logicalExpr{And: false, Left: left, Right: right}
	}
	return left, nil
}

// and parses "unary (and unary)*".
func (p *filterParser) and() (filterExpr, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		left = logicalExpr{And: true, Left: left, Right: right}
	}
	return left, nil
}

// nested parses a parenthesised or bracketed expression, refusing nesting beyond maxFilterDepth.
func (p *filterParser) nested() (filterExpr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, fmt.Errorf("%w: nested too deeply", errInvalidFilter)
	}
	return p.or()
}

// unary parses "not (…)", "(…)" or an attribute expression.
func (p *filterParser) unary() (filterExpr, error) {
	t := p.peek()
	if t == nil {
		return nil, fmt.Errorf("%w: expression expected at end of filter", errInvalidFilter)
	}
	if t.kind == tokWord && strings.EqualFold(t.text, "not") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tokLParen {
		p.i++
		x, err := p.group()
		if err != nil {
			return nil, err
		}
		return notExpr{x}, nil
	}
	if t.kind == tokLParen {
		return p.group()
	}
	return p.attrExpr()
}

// group parses "( expression )".
func (p *filterParser) group() (filterExpr, error) {
	if err := p.expect(tokLParen, "'('"); err != nil {
		return nil, err
	}
	x, err := p.nested()
	if err != nil {
		return nil, err
	}
	if err := p.expect(tokRParen, "')'"); err != nil {
		return nil, err
	}
	return x, nil
}

// filterOps are the comparison operators of RFC 7644 §3.4.2.2, "pr" apart.
var filterOps = map[string]bool{"eq": true, "ne": true, "co": true, "sw": true, "ew": true,
	"gt": true, "ge": true, "lt": true, "le": true, "pr": true}

// attrExpr parses "attrPath op value", "attrPath pr" or "attrPath[filter]".
func (p *filterParser) attrExpr() (filterExpr, error) {
	if p.terms++; p.terms > maxFilterTerms {
		return nil, fmt.Errorf("%w: more than %d comparisons", errInvalidFilter, maxFilterTerms)
	}
	t := p.next()
	if t.kind != tokWord {
		return nil, fmt.Errorf("%w: attribute name expected at position %d, found %q", errInvalidFilter, t.pos+1, t.text)
	}
	path, err := parseAttrPath(t.text)
	if err != nil {
		return nil, err
	}
	if n := p.peek(); n != nil && n.kind == tokLBracket {
		if path.Sub != "" {
			return nil, fmt.Errorf("%w: a filter in brackets must follow an attribute, not %q", errInvalidFilter, t.text)
		}
		p.i++
		inner, err := p.nested()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tokRBracket, "']'"); err != nil {
			return nil, err
		}
		vp := valuePathExpr{Path: path, Filter: inner}
		if n := p.peek(); n != nil && n.kind == tokWord && strings.HasPrefix(n.text, ".") {
			p.i++
			vp.Sub = n.text[1:]
			if !validAttrName(vp.Sub) {
				return nil, fmt.Errorf("%w: bad sub-attribute %q", errInvalidFilter, vp.Sub)
			}
			vp.Op, vp.Value, err = p.comparison()
			if err != nil {
				return nil, err
			}
		}
		return vp, nil
	}
	op, value, err := p.comparison()
	if err != nil {
		return nil, err
	}
	return compareExpr{Path: path, Op: op, Value: value}, nil
}

// comparison parses `op value` or `pr`.
func (p *filterParser) comparison() (string, any, error) {
	t := p.next()
	if t == nil {
		return "", nil, fmt.Errorf("%w: operator expected at end of filter", errInvalidFilter)
	}
	op := strings.ToLower(t.text)
	if t.kind != tokWord || !filterOps[op] {
		return "", nil, fmt.Errorf("%w: unknown operator %q at position %d", errInvalidFilter, t.text, t.pos+1)
	}
	if op == "pr" {
		return op, nil, nil
	}
	v := p.next()
	if v == nil {
		return "", nil, fmt.Errorf("%w: value expected after %q", errInvalidFilter, t.text)
	}
	switch v.kind {
	case tokString:
		return op, v.text, nil
	case tokWord:
		return op, literal(v.text), nil
	}
	return "", nil, fmt.Errorf("%w: value expected at position %d, found %q", errInvalidFilter, v.pos+1, v.text)
}

// literal interprets an unquoted value: true, false, null, a number, or (as
// Entra's legacy documentation shows with `externalId eq jyoung`) a bare string.
func literal(w string) any {
	switch strings.ToLower(w) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if _, err := strconv.ParseFloat(w, 64); err == nil {
		return json.Number(w)
	}
	return w
}

// parseAttrPath parses `[urn:]attr[.sub]`. A URN is split at its last colon,
// since the URN itself contains dots ("2.0").
func parseAttrPath(s string) (attrPath, error) {
	var p attrPath
	rest := s
	if len(s) > 4 && strings.EqualFold(s[:4], "urn:") {
		i := strings.LastIndexByte(s, ':')
		p.URN, rest = s[:i], s[i+1:]
	}
	p.Attr, p.Sub, _ = strings.Cut(rest, ".")
	if !validAttrName(p.Attr) || (p.Sub != "" || strings.Contains(rest, ".")) && !validAttrName(p.Sub) {
		return attrPath{}, fmt.Errorf("%w: bad attribute path %q", errInvalidFilter, s)
	}
	return p, nil
}

// validAttrName reports whether s is an ATTRNAME of RFC 7643 §2.1 (or "$ref").
func validAttrName(s string) bool {
	if s == "$ref" {
		return true
	}
	if s == "" || !isASCIILetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// isASCIILetter reports whether c may start an attribute name (RFC 7643 §2.1 ATTRNAME).
func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// userNameProfile prepares a userName for comparison with the mappings of
// RFC 8265's UsernameCaseMapped profile (width mapping, case mapping, NFC),
// on the freeform class: a SCIM userName may hold spaces and symbols, which
// the identifier class of that profile refuses.
var userNameProfile = precis.NewFreeform(precis.FoldWidth, precis.LowerCase(), precis.Norm(norm.NFC))

// userNameKey is the key userName is unique on and compared by, everywhere
// (SCIM, filters, claims, the admin page): fullwidth, differently normalised
// and differently cased spellings of one name share it, so that none of them
// can create a look-alike account. foldCase comes first so that names equal
// before stay equal (final sigma, the Kelvin sign). A name PRECIS refuses (one
// stored before invisible characters were refused) keeps its foldCase key.
func userNameKey(s string) string {
	f := foldCase(s)
	if k, err := userNameProfile.String(f); err == nil {
		return k
	}
	return f
}

// userNameAttr compares by userNameKey, so that a filter on userName finds
// exactly the accounts a create of that name would collide with.
var userNameAttr = userType.lookup("", "userName", "")

// foldFor returns how values of a caseExact=false attribute are folded.
func foldFor(def *Attr) func(string) string {
	if def == userNameAttr {
		return userNameKey
	}
	return foldCase
}

// attrDefs resolves the definition of an attribute path in the evaluation context.
type attrDefs func(p attrPath) *Attr

// matches reports whether resource satisfies f. rt gives attribute definitions.
func matches(f filterExpr, rt *resourceType, resource map[string]any) bool {
	return eval(f, func(p attrPath) *Attr { return rt.lookup(p.URN, p.Attr, p.Sub) }, resource)
}

// eval reports whether obj (a rendered resource) matches f, comparing as the definitions in defs say.
func eval(f filterExpr, defs attrDefs, obj map[string]any) bool {
	switch f := f.(type) {
	case logicalExpr:
		if f.And {
			return eval(f.Left, defs, obj) && eval(f.Right, defs, obj)
		}
		return eval(f.Left, defs, obj) || eval(f.Right, defs, obj)
	case notExpr:
		return !eval(f.X, defs, obj)
	case compareExpr:
		return compareValues(defs(f.Path), pathValues(obj, f.Path), f.Op, f.Value)
	case valuePathExpr:
		parent := defs(f.Path)
		elemDefs := func(p attrPath) *Attr {
			if parent == nil {
				return nil
			}
			return parent.sub(p.Attr)
		}
		for _, el := range pathValues(obj, f.Path) {
			m, ok := el.(map[string]any)
			if !ok || !eval(f.Filter, elemDefs, m) {
				continue
			}
			if f.Op == "" {
				return true
			}
			if compareValues(elemDefs(attrPath{Attr: f.Sub}), pathValues(m, attrPath{Attr: f.Sub}), f.Op, f.Value) {
				return true
			}
		}
		return false
	}
	return false
}

// member returns obj's value for key, matching the key case-insensitively.
func member(obj map[string]any, key string) (any, bool) {
	if v, ok := obj[key]; ok {
		return v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// pathValues returns the values an attribute path designates in obj,
// flattening multi-valued attributes.
func pathValues(obj map[string]any, p attrPath) []any {
	cur := obj
	if p.URN != "" {
		ext, ok := member(obj, p.URN)
		if m, isMap := ext.(map[string]any); ok && isMap {
			cur = m
		} else if !isOwnCoreSchema(obj, p.URN) {
			return nil
		}
	}
	v, ok := member(cur, p.Attr)
	if !ok || v == nil {
		return nil
	}
	var out []any
	add := func(v any) {
		if p.Sub == "" {
			out = append(out, v)
			return
		}
		if m, ok := v.(map[string]any); ok {
			if s, ok := member(m, p.Sub); ok && s != nil {
				out = append(out, s)
			}
		}
	}
	if list, ok := v.([]any); ok {
		for _, el := range list {
			add(el)
		}
	} else {
		add(v)
	}
	return out
}

// isOwnCoreSchema reports whether urn is the core schema of the resource doc.
func isOwnCoreSchema(doc map[string]any, urn string) bool {
	schemas, _ := doc["schemas"].([]any)
	return len(schemas) > 0 && strings.EqualFold(fmt.Sprint(schemas[0]), urn)
}

// compareValues applies op to the attribute's values; true if any value matches.
// "ne" is the negation of "eq", so that it agrees with the SQL translation.
func compareValues(def *Attr, values []any, op string, want any) bool {
	switch op {
	case "pr":
		for _, v := range values {
			if present(v) {
				return true
			}
		}
		return false
	case "ne":
		return !compareValues(def, values, "eq", want)
	}
	if want == nil {
		return op == "eq" && !compareValues(def, values, "pr", nil)
	}
	for _, v := range values {
		vdef := def
		if m, ok := v.(map[string]any); ok { // a complex value compares by its "value"
			v, _ = member(m, "value")
			if def != nil {
				vdef = def.sub("value")
			}
		}
		if compareOne(vdef, v, op, want) {
			return true
		}
	}
	return false
}

// present is "pr": a value that is not null, "", or an empty array or object.
func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

// compareOne applies op to one value, with the attribute's type and case-exactness.
func compareOne(def *Attr, got any, op string, want any) bool {
	typ := ""
	caseExact := false
	if def != nil {
		typ, caseExact = def.Type, def.CaseExact
	}
	switch g := got.(type) {
	case bool:
		w, ok := coerceBool(want)
		if !ok {
			return false
		}
		return op == "eq" && g == w
	case json.Number, float64:
		gf, err1 := strconv.ParseFloat(fmt.Sprint(g), 64)
		wf, err2 := strconv.ParseFloat(fmt.Sprint(want), 64)
		if err1 != nil || err2 != nil {
			return false
		}
		return orderedCompare(op, gf, wf)
	case string:
		if typ == typeDateTime {
			gt, err1 := time.Parse(time.RFC3339Nano, g)
			wt, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(want))
			if err1 == nil && err2 == nil {
				return orderedCompare(op, gt.Compare(wt), 0)
			}
		}
		w, ok := want.(string)
		if !ok {
			if b, isBool := want.(bool); isBool {
				w = strconv.FormatBool(b)
			} else if n, isNum := want.(json.Number); isNum {
				w = n.String()
			} else {
				return false
			}
		}
		if !caseExact {
			fold := foldFor(def)
			g, w = fold(g), fold(w)
		}
		switch op {
		case "co":
			return strings.Contains(g, w)
		case "sw":
			return strings.HasPrefix(g, w)
		case "ew":
			return strings.HasSuffix(g, w)
		}
		return orderedCompare(op, g, w)
	}
	return false
}

// orderedCompare applies an ordering operator (eq, ne, gt, ge, lt, le) to comparable values.
func orderedCompare[T int | float64 | string](op string, a, b T) bool {
	switch op {
	case "eq":
		return a == b
	case "gt":
		return a > b
	case "ge":
		return a >= b
	case "lt":
		return a < b
	case "le":
		return a <= b
	}
	return false
}

// coerceBool accepts JSON booleans and the strings "true"/"false" in any case,
// which Entra sends for boolean attributes.
func coerceBool(v any) (bool, bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

// referencesAttr reports whether the filter mentions the top-level attribute name.
func referencesAttr(f filterExpr, name string) bool {
	switch f := f.(type) {
	case logicalExpr:
		return referencesAttr(f.Left, name) || referencesAttr(f.Right, name)
	case notExpr:
		return referencesAttr(f.X, name)
	case compareExpr:
		return strings.EqualFold(f.Path.Attr, name)
	case valuePathExpr:
		return strings.EqualFold(f.Path.Attr, name)
	}
	return false
}

// --- SQL translation ---

// sqlColumn describes how an attribute is stored in an indexed column.
type sqlColumn struct {
	expr string // column, or for exists-kind a subquery template with one '?'
	kind colKind
	// prefixExpr, for exists-kind columns, is a subquery template with two
	// '?' (low and high bound) that answers sw from the index.
	prefixExpr string
	// fold, for colFolded, is the function of the value the column holds
	// (foldFor of its attribute); nil means foldCase.
	fold func(string) string
}

// prefixBound is appended to a prefix to get an upper bound for every string
// that starts with it: no valid UTF-8 sequence starts with these bytes.
const prefixBound = "\xf4\x90"

// colKind says how an indexed column holds an attribute, and so which operators it can answer.
type colKind int

const (
	colExact        colKind = iota // text compared as is
	colFolded                      // text holding foldCase (or the column's fold) of the value
	colBool                        // 0/1
	colTime                        // fixed-width UTC timestamp text
	colExistsEq                    // EXISTS subquery matching one exact value: eq only
	colExistsFolded                // the same over folded values: eq, and sw with prefixExpr
)

// schemaKey is the entry of a column map that holds the table's core schema URN.
const schemaKey = "$schema"

// sqlFilter is a translated filter: where narrows the candidates with bound
// args; exact reports that it selects precisely what the filter means.
type sqlFilter struct {
	where string
	args  []any
	exact bool
}

// toSQL translates f for a table whose indexed attributes are given by cols
// (keyed by lower-case attribute path). The result never excludes a row that
// matches f; where is empty when nothing can be narrowed.
func toSQL(f filterExpr, cols map[string]sqlColumn) sqlFilter {
	switch f := f.(type) {
	case logicalExpr:
		l, r := toSQL(f.Left, cols), toSQL(f.Right, cols)
		if f.And {
			switch {
			case l.where == "":
				return sqlFilter{r.where, r.args, false}
			case r.where == "":
				return sqlFilter{l.where, l.args, false}
			}
			return sqlFilter{"(" + l.where + " AND " + r.where + ")", append(l.args, r.args...), l.exact && r.exact}
		}
		if l.where == "" || r.where == "" {
			return sqlFilter{}
		}
		return sqlFilter{"(" + l.where + " OR " + r.where + ")", append(l.args, r.args...), l.exact && r.exact}
	case notExpr:
		x := toSQL(f.X, cols)
		if !x.exact {
			return sqlFilter{}
		}
		return sqlFilter{"NOT coalesce(" + x.where + ", 0)", x.args, true}
	case compareExpr:
		return compareSQL(f.Path, f.Op, f.Value, cols)
	case valuePathExpr:
		if f.Op == "" {
			// members[value eq "x"] is narrowed by members.value eq "x".
			if c, ok := f.Filter.(compareExpr); ok && c.Op == "eq" && c.Path.Sub == "" && c.Path.URN == "" {
				n := compareSQL(attrPath{URN: f.Path.URN, Attr: f.Path.Attr, Sub: c.Path.Attr}, "eq", c.Value, cols)
				n.exact = false
				return n
			}
			return sqlFilter{}
		}
		// emails[type eq "work"].value eq "x" is narrowed by emails.value eq "x".
		n := compareSQL(attrPath{URN: f.Path.URN, Attr: f.Path.Attr, Sub: f.Sub}, f.Op, f.Value, cols)
		n.exact = false
		if f.Op == "ne" {
			return sqlFilter{}
		}
		return n
	}
	return sqlFilter{}
}

// compareSQL translates one comparison into SQL on an indexed column, or returns an empty sqlFilter when the column cannot answer it.
func compareSQL(p attrPath, op string, value any, cols map[string]sqlColumn) sqlFilter {
	key := strings.ToLower(p.Attr)
	if p.Sub != "" {
		key += "." + strings.ToLower(p.Sub)
	}
	if p.URN != "" && !strings.EqualFold(p.URN, cols[schemaKey].expr) {
		return sqlFilter{}
	}
	col, ok := cols[key]
	if !ok {
		return sqlFilter{}
	}
	if op == "pr" {
		switch col.kind {
		case colExistsEq, colExistsFolded:
			return sqlFilter{}
		case colBool, colTime:
			return sqlFilter{col.expr + " IS NOT NULL", nil, true}
		}
		return sqlFilter{"(" + col.expr + " IS NOT NULL AND " + col.expr + " <> '')", nil, true}
	}
	if value == nil {
		if op == "eq" || op == "ne" {
			pr := compareSQL(p, "pr", nil, cols)
			if !pr.exact {
				return sqlFilter{}
			}
			if op == "eq" {
				return sqlFilter{"NOT " + pr.where, nil, true}
			}
			return pr
		}
		return sqlFilter{}
	}
	if op == "ne" {
		eq := compareSQL(p, "eq", value, cols)
		if !eq.exact {
			return sqlFilter{}
		}
		// NULL-safe negation: a missing value is "not equal".
		return sqlFilter{"NOT coalesce(" + eq.where + ", 0)", eq.args, true}
	}
	switch col.kind {
	case colBool:
		b, ok := coerceBool(value)
		if !ok || op != "eq" {
			return sqlFilter{}
		}
		return sqlFilter{col.expr + " = ?", []any{b}, true}
	case colTime:
		s, ok := value.(string)
		if !ok || op == "co" || op == "sw" || op == "ew" {
			return sqlFilter{}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if y := t.UTC().Year(); err != nil || y < 1 || y > 9999 {
			return sqlFilter{} // outside what the fixed-width text can order
		}
		if ms := t.Truncate(time.Millisecond); !ms.Equal(t) {
			// Stored times have millisecond precision: between two of them,
			// x.0005 is greater than x.000 and smaller than x.001.
			switch op {
			case "eq":
				return sqlFilter{"0", nil, true}
			case "gt", "ge":
				op = "gt"
			case "lt", "le":
				op = "le"
			}
			t = ms
		}
		return sqlFilter{col.expr + " " + sqlOps[op] + " ?", []any{formatTime(t)}, true}
	}
	s, ok := value.(string)
	if !ok {
		return sqlFilter{}
	}
	legacyKey := "" // the value's foldCase, where the column's fold differs
	switch {
	case col.fold != nil:
		legacyKey, s = foldCase(s), col.fold(s)
		if legacyKey == s {
			legacyKey = ""
		}
	case col.kind == colFolded || col.kind == colExistsFolded:
		s = foldCase(s)
	}
	if col.kind == colExistsEq || col.kind == colExistsFolded {
		switch {
		case op == "eq":
			return sqlFilter{col.expr, []any{s}, true}
		case op == "sw" && col.prefixExpr != "":
			return sqlFilter{col.prefixExpr, []any{s, s + prefixBound}, true}
		}
		return sqlFilter{}
	}
	if op == "eq" && legacyKey != "" {
		// Look-alike accounts created before userNameKey kept their foldCase
		// key (rekeyUserNames): a filter by such a name finds both of them,
		// which a client reports, rather than only the account holding the key.
		return sqlFilter{col.expr + " IN (?, ?)", []any{s, legacyKey}, true}
	}
	switch op {
	case "sw":
		// A range, so that the index answers it (stored values are valid UTF-8).
		return sqlFilter{"(" + col.expr + " >= ? AND " + col.expr + " < ?)", []any{s, s + prefixBound}, true}
	case "co", "ew":
		// SQLite's text functions count characters where Go compares bytes;
		// these rare operators are left to the evaluator.
		return sqlFilter{}
	}
	return sqlFilter{col.expr + " " + sqlOps[op] + " ?", []any{s}, true}
}

// sqlOps are the comparisons with an SQL operator of their own.
var sqlOps = map[string]string{"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}

// timeLayout is fixed-width so that stored timestamps sort as text; it is also
// how timestamps appear in SCIM responses. The store keeps millisecond precision
// so that a timestamp read from a response compares equal to the stored one.
const timeLayout = "2006-01-02T15:04:05.000Z"

// formatTime is how times are stored: fixed-width UTC, so that text order is time order.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

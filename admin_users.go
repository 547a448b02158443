// The Users pages: list, detail with per-field source of truth, local edits and manual accounts.

package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// userRow is a row of the Users list, with effective values.
type userRow struct {
	ID, Name, UserName, Email, Kind string
	Status                          string // active, disabled, or "" when the directory sent neither
	Groups                          []string
	Roles                           []string // effective roles
	Modified                        time.Time
}

// activeStatus says whether an account is active, disabled or neither.
func activeStatus(attrs map[string]any) string {
	switch attrs["active"] {
	case true:
		return "active"
	case false:
		return "disabled"
	}
	return ""
}

// usersData is the data of web/users.html.
type usersData struct {
	layout
	Rows  []userRow
	Pager pager
}

// displayNameOf is how a user is named on the page.
func displayNameOf(attrs map[string]any) string {
	if n := stringAttr(attrs, "displayName"); n != "" {
		return n
	}
	if name, ok := attrs["name"].(map[string]any); ok {
		if f, _ := name["formatted"].(string); f != "" {
			return f
		}
		given, _ := name["givenName"].(string)
		family, _ := name["familyName"].(string)
		return strings.TrimSpace(given + " " + family)
	}
	return ""
}

// primaryEmail is the primary email, else the first.
func primaryEmail(attrs map[string]any) string {
	list, _ := attrs["emails"].([]any)
	first := ""
	for _, el := range list {
		m, _ := el.(map[string]any)
		v, _ := m["value"].(string)
		if first == "" {
			first = v
		}
		if p, _ := m["primary"].(bool); p {
			return v
		}
	}
	return first
}

// users serves GET /users, searched anywhere in the names and emails (store_search.go) and paged.
func (a *admin) users(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	var users []*User
	var total int
	var err error
	if q := strings.TrimSpace(r.URL.Query().Get("q")); q != "" {
		users, total, err = a.store.SearchUsers(r.Context(), q, (pageNumber(r)-1)*adminPageSize, adminPageSize)
	} else {
		users, total, err = a.store.ListUsers(r.Context(), ListQuery{SortBy: "userName",
			StartIndex: (pageNumber(r)-1)*adminPageSize + 1, Count: adminPageSize})
	}
	if err != nil {
		return err
	}
	p, err := a.store.Policy(r.Context())
	if err != nil {
		return err
	}
	d := usersData{layout: a.layout(r, sess, "Users", "users"), Pager: newPager(r, total)}
	for _, u := range users {
		attrs := Effective(u.Attrs, u.Overrides, p)
		row := userRow{ID: u.ID, Name: displayNameOf(attrs), UserName: stringAttr(attrs, "userName"), Email: primaryEmail(attrs),
			Kind: u.Kind, Status: activeStatus(attrs), Roles: u.Roles, Modified: u.Modified}
		for _, g := range effectiveGroups(u) {
			row.Groups = append(row.Groups, g.Display)
		}
		d.Rows = append(d.Rows, row)
	}
	return a.render(w, r, http.StatusOK, "users.html", d)
}

// attrRow is one attribute of a resource, flattened for display.
type attrRow struct{ Path, Value string }

// flatten lists a document's attributes as path/value rows, sorted by path.
func flatten(prefix string, v any, out *[]attrRow) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				sep := "."
				if strings.HasPrefix(prefix, "urn:") && !strings.Contains(prefix, ".") && !strings.Contains(prefix, "[") {
					sep = ":"
				}
				p = prefix + sep + k
			}
			flatten(p, v[k], out)
		}
	case []any:
		for i, el := range v {
			label := strconv.Itoa(i)
			if m, ok := el.(map[string]any); ok {
				if t, _ := m["type"].(string); t != "" {
					label = t
				}
			}
			flatten(fmt.Sprintf("%s[%s]", prefix, label), el, out)
		}
	case string:
		*out = append(*out, attrRow{prefix, v})
	default:
		b, _ := json.Marshal(v)
		*out = append(*out, attrRow{prefix, string(b)})
	}
}

// userData is the data of web/user.html.
type userData struct {
	layout
	User     *User
	Name     string
	Status   string // active, disabled or ""
	Fields   []fieldRow
	Editable bool // whether any field is
	Attrs    []attrRow
	History  []logRow
	Error    string
	// Safety rails (admin_holds.go): whether the account is protected, and
	// the directory's disables and deletes of it that apps did not get.
	Protection *Protection
	Attempts   []Hold
	Roles      userRoles
}

// fieldRow is one policy field of a user as the detail page shows it.
type fieldRow struct {
	Key, Label, Why string
	// Value is the field as text, as its edit box holds it; Manager links it.
	Value    string
	Manager  *link
	Origin   FieldOrigin
	Editable bool
	Input    string // text, multiline, switch or manager
	Error    string // a problem with the submitted value
	// Override is the local edit, with who made it and when.
	Override *Override
	Reverted bool // an override exists but the policy no longer lets it win
}

// inputKind is how a field is edited.
func inputKind(key string) string {
	switch {
	case key == "active":
		return "switch"
	case key == managerKey:
		return "manager"
	case multilineField(key):
		return "multiline"
	}
	return "text"
}

// managerKey is the form field and policy key of the enterprise manager.
const managerKey = enterpriseSchema + ":manager"

// userPage shows a user. After a refused save, form holds what was submitted
// and fieldErrs the problems by field key.
func (a *admin) userPage(w http.ResponseWriter, r *http.Request, sess *adminSession, id string, status int, problem string, form url.Values, fieldErrs map[string]string) error {
	ctx := r.Context()
	u, err := a.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	entries, err := a.store.ListLog(ctx, LogQuery{ResourceID: u.ID, Limit: 50})
	if err != nil {
		return err
	}
	history, err := a.logRows(ctx, entries)
	if err != nil {
		return err
	}
	eff := Effective(u.Attrs, u.Overrides, p)
	d := userData{layout: a.layout(r, sess, stringAttr(eff, "userName"), "users"), User: u, Name: displayNameOf(eff),
		Status: activeStatus(eff), History: history, Error: problem}
	if d.Protection, err = a.store.UserProtection(ctx, u.ID); err != nil {
		return err
	}
	if d.Attempts, _, err = a.store.Holds(ctx, HoldQuery{UserID: u.ID, Limit: 20}); err != nil {
		return err
	}
	for _, f := range policyFields {
		editable, why := CanEdit(u.Kind, p, f.Key)
		row := fieldRow{Key: f.Key, Label: f.Label, Origin: Origin(u.Kind, u.Overrides, p, f.Key), Editable: editable,
			Why: why, Input: inputKind(f.Key), Error: fieldErrs[f.Key]}
		if row.Value, err = a.fieldInputText(ctx, f.Key, getField(eff, f.Key)); err != nil {
			return err
		}
		if f.Key == managerKey {
			if m, _ := getField(eff, f.Key).(map[string]any); m != nil {
				mid, _ := m["value"].(string)
				names, err := a.store.ResourceNames(ctx, []string{mid})
				if err != nil {
					return err
				}
				row.Manager = &link{Href: "/users/" + mid, Text: cmp.Or(names[mid], row.Value)}
			}
		}
		if vals, ok := form["f:"+f.Key]; ok && len(vals) > 0 {
			row.Value = vals[len(vals)-1]
		}
		if o, ok := u.Overrides[f.Key]; ok {
			row.Override = &o
			row.Reverted = p.Source(f.Key) != FromLocal && o.Hold == 0
		}
		d.Editable = d.Editable || editable
		d.Fields = append(d.Fields, row)
	}
	flatten("", userType.visible(u.Attrs), &d.Attrs)
	if d.Roles, err = a.userRolesCard(ctx, u); err != nil {
		return err
	}
	return a.render(w, r, status, "user.html", d)
}

// fieldInputText is a field's value as its edit box shows it: fieldText,
// except that a manager is named by user name rather than by id.
func (a *admin) fieldInputText(ctx context.Context, key string, v any) (string, error) {
	text := fieldText(key, v)
	if key != managerKey || text == "" {
		return text, nil
	}
	m, err := a.store.UserByID(ctx, text)
	if errors.Is(err, ErrNotFound) {
		return text, nil // a manager the directory named but never sent
	}
	if err != nil {
		return "", err
	}
	return stringAttr(m.Attrs, "userName"), nil
}

// managerByName finds the user a manager box names: by user name, else by id.
func (a *admin) managerByName(ctx context.Context, text string) (string, error) {
	p, _ := parseAttrPath("userName")
	users, _, err := a.store.ListUsers(ctx, ListQuery{Filter: compareExpr{Path: p, Op: "eq", Value: text}, StartIndex: 1, Count: 1})
	if err != nil {
		return "", err
	}
	if len(users) == 1 {
		return users[0].ID, nil
	}
	if u, err := a.store.UserByID(ctx, text); err == nil {
		return u.ID, nil
	}
	return "", fmt.Errorf("no user has the user name %q", text)
}

// user serves GET /users/:id, and /users/new for the manual-account form.
func (a *admin) user(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if ps.ByName("id") == "new" {
		return a.render(w, r, http.StatusOK, "newuser.html", newUserData{layout: a.layout(r, sess, "New user", "users")})
	}
	return a.userPage(w, r, sess, ps.ByName("id"), http.StatusOK, "", nil, nil)
}

// newUserData is the data of web/newuser.html.
type newUserData struct {
	layout
	UserName, DisplayName, GivenName, FamilyName, Email, Error string
}

// createManualUser creates an account the directory does not manage.
func (a *admin) createManualUser(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
	arrived := a.store.now()
	d := newUserData{layout: a.layout(r, sess, "New user", "users")}
	for dst, key := range map[*string]string{&d.UserName: "userName", &d.DisplayName: "displayName", &d.GivenName: "givenName",
		&d.FamilyName: "familyName", &d.Email: "email"} {
		*dst = strings.TrimSpace(r.PostFormValue(key))
	}
	body := map[string]any{"userName": d.UserName, "displayName": d.DisplayName, "active": true,
		"name": map[string]any{"givenName": d.GivenName, "familyName": d.FamilyName}}
	if d.Email != "" {
		body["emails"] = []any{map[string]any{"type": "work", "value": d.Email, "primary": true}}
	}
	attrs, err := normalizeAttrs(userType, body)
	if err == nil {
		err = checkRequired(userType, attrs)
	}
	u := &User{Attrs: attrs, Kind: accountManual}
	if err == nil {
		err = a.store.CreateUser(r.Context(), u)
	}
	if v, ok := formError(r, err); ok {
		d.Error = v.Detail
		return a.render(w, r, v.Status, "newuser.html", d)
	}
	if errors.Is(err, ErrInvalid) {
		d.Error = "That user name holds an invisible character (a zero-width space, a direction mark or a control character): type it again."
		return a.render(w, r, http.StatusBadRequest, "newuser.html", d)
	}
	if err != nil {
		return err
	}
	if err := a.store.LogNow(r.Context(), LogEntry{At: arrived, Op: "create manual user (admin)", ResourceType: "User", ResourceID: u.ID,
		Target: d.UserName, Outcome: "success", Status: 201, Detail: "by " + sess.Username}); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/users/"+u.ID, flash{Notice: "Manual account created."})
}

// errDirectoryManaged vetoes an admin's delete of an account the directory manages.
var errDirectoryManaged = errors.New("the directory manages this account")

// userAction saves the user's form (every changed field at once), reverts
// a field to the directory's value, or deletes an account the directory does not manage.
func (a *admin) userAction(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx, id, arrived := r.Context(), ps.ByName("id"), a.store.now()
	if id == "new" {
		return a.createManualUser(w, r, sess)
	}
	u, err := a.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	userName := stringAttr(Effective(u.Attrs, u.Overrides, p), "userName")
	logDone := func(op string, status int) error {
		return a.store.LogNow(ctx, LogEntry{At: arrived, Op: op, ResourceType: "User", ResourceID: id, Target: userName,
			Outcome: "success", Status: status, Detail: "by " + sess.Username})
	}
	var saved []string // labels of the fields saved
	action := r.PostFormValue("action")
	if action == "edit" { // one field, as scripts and older pages post it
		key := r.PostFormValue("field")
		if ok, why := CanEdit(u.Kind, p, key); !ok {
			return a.userPage(w, r, sess, id, http.StatusForbidden, (&ErrReadOnlyField{key, why}).Error(), nil, nil)
		}
		r.PostForm.Set("f:"+key, r.PostFormValue("value"))
		action = "save"
	}
	switch action {
	case "protect", "unprotect":
		if u.Kind == accountManual {
			return a.userPage(w, r, sess, id, http.StatusConflict, "Only accounts the directory manages can be protected from it.", nil, nil)
		}
		return a.protectUser(w, r, sess, u, action == "protect", userName)
	case "grant-role", "revoke-role":
		return a.roleGrantAction(w, r, sess, id, userName, action)
	case "delete":
		if directoryManaged(u.Kind) {
			return a.userPage(w, r, sess, id, http.StatusConflict, "The directory manages this account: remove it in the directory, or disconnect first.", nil, nil)
		}
		// Checked again in the deleting transaction: a claim may have made it a directory account since.
		err = a.store.DeleteUser(ctx, id, func(u *User) error {
			if directoryManaged(u.Kind) {
				return errDirectoryManaged
			}
			return nil
		})
		if errors.Is(err, errDirectoryManaged) {
			return a.userPage(w, r, sess, id, http.StatusConflict, "The directory manages this account: remove it in the directory, or disconnect first.", nil, nil)
		}
		if err != nil {
			return err
		}
		if err := logDone("delete manual user (admin)", http.StatusNoContent); err != nil {
			return err
		}
		return a.redirect(w, r, sess, "/users", flash{Notice: fmt.Sprintf("Deleted the account %s.", userName)})
	case "revert":
		key := r.PostFormValue("field")
		f, ok := fieldByKey(key)
		if !ok {
			return a.userPage(w, r, sess, id, http.StatusBadRequest, "Unknown field.", nil, nil)
		}
		if _, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			if u.Overrides[key].Hold != 0 {
				return errHeldValue
			}
			u.Overrides = Revert(u.Overrides, key)
			return nil
		}); errors.Is(err, errHeldValue) {
			return a.userPage(w, r, sess, id, http.StatusConflict, errHeldValue.Error()+".", nil, nil)
		}
		if err != nil {
			return err
		}
		if err := logDone("local revert "+key, http.StatusOK); err != nil {
			return err
		}
		return a.redirect(w, r, sess, "/users/"+id, flash{Notice: f.Label + " reverted: the directory's value shows again."})
	case "save":
		changes, fieldErrs, ferr := a.formChanges(r, u, p)
		if ferr != nil {
			return ferr
		}
		if len(fieldErrs) > 0 {
			return a.userPage(w, r, sess, id, http.StatusBadRequest, "Nothing was saved: correct the fields marked below.", r.PostForm, fieldErrs)
		}
		if len(changes) == 0 {
			return a.redirect(w, r, sess, "/users/"+id, flash{Notice: "Nothing to save: no field was changed."})
		}
		now := time.Now().UTC()
		_, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			attrs, overrides := u.Attrs, u.Overrides
			for _, c := range changes {
				var err error
				if attrs, overrides, err = LocalEdit(u.Kind, attrs, overrides, p, c.key, c.value, sess.Username, now); err != nil {
					return err
				}
			}
			if u.Kind != accountDirectory {
				if err := checkRequired(userType, attrs); err != nil {
					return err
				}
			}
			u.Attrs, u.Overrides = attrs, overrides
			return nil
		})
		for _, c := range changes {
			saved = append(saved, c.label)
		}
	default:
		return a.userPage(w, r, sess, id, http.StatusBadRequest, "Unknown action.", nil, nil)
	}
	if v, ok := formError(r, err); ok {
		var fields map[string]string
		if v.Status == http.StatusConflict {
			fields = map[string]string{"userName": "Taken by another account."}
		}
		return a.userPage(w, r, sess, id, v.Status, v.Detail, r.PostForm, fields)
	}
	if err != nil {
		return err
	}
	if err := logDone("local edit", http.StatusOK); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/users/"+id, flash{Notice: "Saved: " + strings.Join(saved, ", ") + "."})
}

// fieldChange is a field of the user form whose submitted value differs from the shown one.
type fieldChange struct {
	key, label string
	value      any
}

// formChanges reads the user form: the editable fields whose submitted text
// differs from what the page showed, parsed, and the problems by field key.
func (a *admin) formChanges(r *http.Request, u *User, p Policy) ([]fieldChange, map[string]string, error) {
	eff := Effective(u.Attrs, u.Overrides, p)
	var changes []fieldChange
	problems := map[string]string{}
	for _, f := range policyFields {
		vals := r.PostForm["f:"+f.Key]
		if len(vals) == 0 {
			continue
		}
		if ok, _ := CanEdit(u.Kind, p, f.Key); !ok {
			continue // shown read-only; a forged value changes nothing
		}
		// The switch sends "false" from a hidden input and "true" after it when on.
		submitted := strings.TrimSpace(strings.ReplaceAll(vals[len(vals)-1], "\r\n", "\n"))
		shown, err := a.fieldInputText(r.Context(), f.Key, getField(eff, f.Key))
		if err != nil {
			return nil, nil, err
		}
		if f.Key == "active" && shown == "" {
			shown = "false" // an unset active shows as off
		}
		if submitted == shown {
			continue
		}
		var value any
		if f.Key == managerKey && submitted != "" {
			mid, err := a.managerByName(r.Context(), submitted)
			if err != nil {
				problems[f.Key] = "No user has that user name."
				continue
			}
			value = map[string]any{"value": mid}
		} else if value, err = parseFieldText(f.Key, submitted); err != nil {
			problems[f.Key] = err.Error()
			continue
		}
		changes = append(changes, fieldChange{f.Key, f.Label, value})
	}
	return changes, problems, nil
}

// multilineField reports fields edited as one value per line.
func multilineField(key string) bool {
	return key == "emails" || key == "phoneNumbers" || key == "addresses"
}

// fieldText formats a field's value for the page and its edit box:
// multi-valued ones as "type: value" lines, the primary first.
func fieldText(key string, v any) string {
	switch {
	case v == nil:
		return ""
	case multilineField(key):
		list, _ := v.([]any)
		var lines []string
		for _, el := range list {
			m, _ := el.(map[string]any)
			val, _ := m["value"].(string)
			if key == "addresses" {
				val, _ = m["formatted"].(string)
				if val == "" {
					var parts []string
					for _, k := range []string{"streetAddress", "locality", "region", "postalCode", "country"} {
						if s, _ := m[k].(string); s != "" {
							parts = append(parts, s)
						}
					}
					val = strings.Join(parts, ", ")
				}
			}
			line := val
			if t, _ := m["type"].(string); t != "" {
				line = t + ": " + val
			}
			if m["primary"] == true {
				lines = append([]string{line}, lines...)
			} else {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, "\n")
	}
	switch v := v.(type) {
	case string:
		return v
	case map[string]any: // manager
		s, _ := v["value"].(string)
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// parseFieldText reads an edit box back into a field value; empty clears the field.
func parseFieldText(key, text string) (any, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	switch {
	case key == "active":
		b, ok := coerceBool(text)
		if !ok {
			return nil, errors.New("active is true or false")
		}
		return b, nil
	case key == enterpriseSchema+":manager":
		return map[string]any{"value": text}, nil
	case multilineField(key):
		var list []any
		for i, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			typ, val, ok := strings.Cut(line, ":")
			if !ok || strings.ContainsAny(typ, " @") {
				typ, val = "work", line
			}
			el := map[string]any{"type": strings.TrimSpace(typ)}
			if key == "addresses" {
				el["formatted"] = strings.TrimSpace(val)
			} else {
				el["value"] = strings.TrimSpace(val)
			}
			if i == 0 {
				el["primary"] = true
			}
			list = append(list, el)
		}
		return list, nil
	}
	return text, nil
}

// suggestedUser is a user offered while choosing a manager.
type suggestedUser struct {
	UserName string `json:"userName"`
	Name     string `json:"name"`
}

// suggestUsers answers the manager box's search with up to 10 users as JSON.
func (a *admin) suggestUsers(w http.ResponseWriter, r *http.Request, _ httprouter.Params, _ *adminSession) error {
	users, _, err := a.store.SearchUsers(r.Context(), r.URL.Query().Get("q"), 0, 10)
	if err != nil {
		return err
	}
	out := []suggestedUser{}
	for _, u := range users {
		out = append(out, suggestedUser{UserName: stringAttr(u.Attrs, "userName"), Name: displayNameOf(u.Attrs)})
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

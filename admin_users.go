// The Users pages: list, detail with per-field source of truth, local edits and manual accounts.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

type userRow struct {
	ID, Name, UserName, Email, Kind string
	Status                          string // active, disabled, or "" when the directory sent neither
	Groups                          []string
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
			Kind: u.Kind, Status: activeStatus(attrs), Modified: u.Modified}
		for _, g := range u.Groups {
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

type userData struct {
	layout
	User    *User
	Name    string
	Status  string // active, disabled or ""
	Fields  []fieldRow
	Attrs   []attrRow
	History []LogEntry
	Error   string
}

// fieldRow is one policy field of a user as the detail page shows it.
type fieldRow struct {
	Key, Label, Value, Why string
	Origin                 FieldOrigin
	Editable, Multiline    bool
	Reverted               bool // an override exists but the policy no longer lets it win
}

func (a *admin) userPage(w http.ResponseWriter, r *http.Request, sess *adminSession, id string, status int, problem string) error {
	ctx := r.Context()
	u, err := a.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	history, err := a.store.ListLog(ctx, LogQuery{ResourceID: u.ID, Limit: 50})
	if err != nil {
		return err
	}
	eff := Effective(u.Attrs, u.Overrides, p)
	d := userData{layout: a.layout(r, sess, stringAttr(eff, "userName"), "users"), User: u, Name: displayNameOf(eff), Status: activeStatus(eff), History: history, Error: problem}
	for _, f := range policyFields {
		editable, why := CanEdit(u.Kind, p, f.Key)
		_, overridden := u.Overrides[f.Key]
		d.Fields = append(d.Fields, fieldRow{Key: f.Key, Label: f.Label, Value: fieldText(f.Key, getField(eff, f.Key)),
			Origin: Origin(u.Kind, u.Overrides, p, f.Key), Editable: editable, Why: why, Multiline: multilineField(f.Key),
			Reverted: overridden && p.Source(f.Key) != FromLocal})
	}
	flatten("", u.Attrs, &d.Attrs)
	return a.render(w, r, status, "user.html", d)
}

func (a *admin) user(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if ps.ByName("id") == "new" {
		return a.render(w, r, http.StatusOK, "newuser.html", newUserData{layout: a.layout(r, sess, "New user", "users")})
	}
	return a.userPage(w, r, sess, ps.ByName("id"), http.StatusOK, "")
}

type newUserData struct {
	layout
	UserName, DisplayName, GivenName, FamilyName, Email, Error string
}

// createManualUser creates an account the directory does not manage.
func (a *admin) createManualUser(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
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
	var se *scimError
	if errors.As(err, &se) {
		d.Error = se.Detail
		return a.render(w, r, http.StatusBadRequest, "newuser.html", d)
	}
	u := &User{Attrs: attrs, Kind: accountManual}
	err = a.store.CreateUser(r.Context(), u)
	if errors.Is(err, ErrConflict) {
		d.Error = "That user name is taken."
		return a.render(w, r, http.StatusConflict, "newuser.html", d)
	}
	if err != nil {
		return err
	}
	a.store.Log(LogEntry{Op: "create manual user (admin)", ResourceType: "User", ResourceID: u.ID, Target: d.UserName,
		Outcome: "success", Status: 201, Detail: "by " + sess.Username})
	http.Redirect(w, r, "/users/"+u.ID, http.StatusSeeOther)
	return nil
}

// userAction edits or reverts a field of a user, or deletes an account the directory does not manage.
func (a *admin) userAction(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx, id := r.Context(), ps.ByName("id")
	if id == "new" {
		return a.createManualUser(w, r, sess)
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	key := r.PostFormValue("field")
	switch r.PostFormValue("action") {
	case "delete":
		u, err := a.store.UserByID(ctx, id)
		if err != nil {
			return err
		}
		if u.Kind == accountDirectory {
			return a.userPage(w, r, sess, id, http.StatusConflict, "The directory manages this account: remove it in the directory, or disconnect first.")
		}
		if err := a.store.DeleteUser(ctx, id, nil); err != nil {
			return err
		}
		a.store.Log(LogEntry{Op: "delete manual user (admin)", ResourceType: "User", ResourceID: id, Target: stringAttr(u.Attrs, "userName"),
			Outcome: "success", Status: 204, Detail: "by " + sess.Username})
		http.Redirect(w, r, "/users", http.StatusSeeOther)
		return nil
	case "revert":
		_, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			u.Overrides = Revert(u.Overrides, key)
			return nil
		})
	case "edit":
		value, perr := parseFieldText(key, r.PostFormValue("value"))
		if perr != nil {
			return a.userPage(w, r, sess, id, http.StatusBadRequest, perr.Error())
		}
		_, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			attrs, overrides, err := LocalEdit(u.Kind, u.Attrs, u.Overrides, p, key, value, sess.Username, time.Now().UTC())
			if err != nil {
				return err
			}
			if u.Kind != accountDirectory {
				if err := checkRequired(userType, attrs); err != nil {
					return err
				}
			}
			u.Attrs, u.Overrides = attrs, overrides
			return nil
		})
	default:
		return a.userPage(w, r, sess, id, http.StatusBadRequest, "Unknown action.")
	}
	var ro *ErrReadOnlyField
	var se *scimError
	switch {
	case errors.As(err, &ro):
		return a.userPage(w, r, sess, id, http.StatusForbidden, ro.Error())
	case errors.As(err, &se):
		return a.userPage(w, r, sess, id, http.StatusBadRequest, se.Detail)
	case errors.Is(err, ErrConflict):
		return a.userPage(w, r, sess, id, http.StatusConflict, "That user name is taken by another account.")
	case err != nil:
		return err
	}
	a.store.Log(LogEntry{Op: "local " + r.PostFormValue("action") + " " + key, ResourceType: "User", ResourceID: id,
		Target: id, Outcome: "success", Status: 200, Detail: "by " + sess.Username})
	http.Redirect(w, r, "/users/"+id, http.StatusSeeOther)
	return nil
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

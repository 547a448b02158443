// Settings → Roles: roles and the rules that grant them; the roles of a user
// on its page, with why it holds each, and grants by hand on manual accounts.

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

type rolesData struct {
	layout
	Roles []roleView
	// Errors are the problems of a refused form: "create" for the new role,
	// "rule:NAME" for the rule forms of the role NAME.
	Errors map[string]string
	Form   url.Values // what the refused form held
}

// roleView is a role as the Roles page shows it.
type roleView struct {
	Role
	Rules []ruleView
}

// ruleView is a rule with the name of its group (GroupGone once it is deleted).
type ruleView struct {
	RoleRule
	GroupName string
	GroupGone bool
}

func (a *admin) rolesData(r *http.Request, sess *adminSession) (rolesData, error) {
	ctx := r.Context()
	d := rolesData{layout: a.layout(r, sess, "Roles", "settings")}
	roles, err := a.store.Roles(ctx)
	if err != nil {
		return d, err
	}
	var groups []string
	for _, role := range roles {
		for _, rule := range role.Rules {
			if rule.GroupID != "" {
				groups = append(groups, rule.GroupID)
			}
		}
	}
	names, err := a.store.ResourceNames(ctx, groups)
	if err != nil {
		return d, err
	}
	for _, role := range roles {
		v := roleView{Role: role}
		for _, rule := range role.Rules {
			name, ok := names[rule.GroupID]
			v.Rules = append(v.Rules, ruleView{RoleRule: rule, GroupName: cmp.Or(name, rule.GroupID), GroupGone: rule.GroupID != "" && !ok})
		}
		d.Roles = append(d.Roles, v)
	}
	return d, nil
}

func (a *admin) rolesPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.rolesData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "roles.html", d)
}

// rolesAction handles the Roles page's forms: create or delete a role, add
// or remove a rule. Each change says how many users it gave or took the role.
func (a *admin) rolesAction(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	role := strings.TrimSpace(r.PostFormValue("role"))
	formKey := "rule:" + role
	var notice string
	var err error
	switch action := r.PostFormValue("action"); action {
	case "create":
		formKey, role = "create", strings.TrimSpace(r.PostFormValue("name"))
		if err = a.store.CreateRole(ctx, role, r.PostFormValue("description"), sess.Username); err == nil {
			notice = fmt.Sprintf("Role %s created. Add a rule to say who holds it.", role)
		}
	case "delete":
		var n int
		if n, err = a.store.DeleteRole(ctx, role); err == nil {
			notice = fmt.Sprintf("Role %s deleted; %s lost it.", role, usersText(n))
		}
	case "add-group-rule":
		var groupID, groupName string
		if groupID, groupName, err = a.groupByName(ctx, r.PostFormValue("group")); err == nil {
			nested := r.PostFormValue("nested") == "on"
			var n int
			if n, err = a.store.AddRoleRule(ctx, RoleRule{Role: role, GroupID: groupID, Nested: nested}, sess.Username); err == nil {
				who := "direct members of " + groupName
				if nested {
					who = "members of " + groupName + " and of the groups nested in it"
				}
				notice = fmt.Sprintf("The %s now hold %s; %s gained it.", who, role, usersText(n))
			}
		}
	case "add-app-role-rule":
		appRole := strings.TrimSpace(r.PostFormValue("app_role"))
		var n int
		if n, err = a.store.AddRoleRule(ctx, RoleRule{Role: role, AppRole: appRole}, sess.Username); err == nil {
			notice = fmt.Sprintf("Users Entra assigns the app role %s now hold %s; %s gained it.", appRole, role, usersText(n))
		}
	case "delete-rule":
		id, perr := strconv.ParseInt(r.PostFormValue("rule"), 10, 64)
		if perr != nil {
			return badRequest("invalidValue", "unknown rule")
		}
		var n int
		if n, err = a.store.DeleteRoleRule(ctx, id); err == nil {
			notice = fmt.Sprintf("Rule removed from %s; %s lost the role.", role, usersText(n))
		}
	default:
		return badRequest("invalidValue", "unknown action %q", action)
	}
	if v, ok := formError(r, err); ok {
		d, derr := a.rolesData(r, sess)
		if derr != nil {
			return derr
		}
		d.Errors, d.Form = map[string]string{formKey: v.Detail}, r.PostForm
		return a.render(w, r, v.Status, "roles.html", d)
	}
	if err != nil {
		return err
	}
	a.log.Info("roles changed", "admin", sess.Username, "action", r.PostFormValue("action"), "role", role)
	return a.redirect(w, r, sess, "/settings/roles", flash{Notice: notice})
}

// usersText says how many users, in words.
func usersText(n int) string {
	switch n {
	case 0:
		return "no user"
	case 1:
		return "1 user"
	}
	return fmt.Sprintf("%d users", n)
}

// groupByName finds the group a rule form names: by display name
// (case-insensitively, as SCIM compares them), else by id. Not finding one is
// a problem with the form.
func (a *admin) groupByName(ctx context.Context, text string) (id, name string, err error) {
	text = strings.TrimSpace(text)
	p, _ := parseAttrPath("displayName")
	groups, _, err := a.store.ListGroups(ctx, ListQuery{Filter: compareExpr{Path: p, Op: "eq", Value: text}, StartIndex: 1, Count: 1}, false)
	if err != nil {
		return "", "", err
	}
	if len(groups) == 0 && text != "" {
		if g, gerr := a.store.GroupByID(ctx, text, false); gerr == nil {
			groups = append(groups, g)
		} else if !errors.Is(gerr, ErrNotFound) {
			return "", "", gerr
		}
	}
	if len(groups) == 0 {
		return "", "", badRequest("invalidValue", "No group is named %q: type a group's name as the Groups page shows it.", text)
	}
	return groups[0].ID, stringAttr(groups[0].Attrs, "displayName"), nil
}

// userRoles is the Roles card of a user's page.
type userRoles struct {
	Roles     []userRoleRow
	Grantable []string // roles that can still be granted by hand (manual accounts only)
	Any       bool     // whether any role exists at all
}

// userRoleRow is a role a user holds and why.
type userRoleRow struct {
	Role    string
	Why     []string
	Granted bool // granted by hand: it can be revoked
}

// userRolesCard says which roles u holds and why, and which can be granted.
func (a *admin) userRolesCard(ctx context.Context, u *User) (userRoles, error) {
	var card userRoles
	sources, err := a.store.UserRoleSources(ctx, u.ID)
	if err != nil {
		return card, err
	}
	var groups []string
	for _, src := range sources {
		groups = append(groups, src.GroupID)
	}
	names, err := a.store.ResourceNames(ctx, groups)
	if err != nil {
		return card, err
	}
	granted := map[string]bool{}
	for _, role := range u.Roles {
		row := userRoleRow{Role: role}
		for _, src := range sources {
			if src.Role != role {
				continue
			}
			switch src.Kind {
			case roleByGroup:
				if src.Direct {
					row.Why = append(row.Why, "member of "+names[src.GroupID])
				} else {
					row.Why = append(row.Why, "member of "+names[src.GroupID]+" through a nested group")
				}
			case roleByAppRole:
				row.Why = append(row.Why, "Entra app role "+src.Detail)
			case roleByGrant:
				row.Why = append(row.Why, "granted by "+src.Detail+", "+src.At.UTC().Format("2006-01-02"))
				row.Granted, granted[role] = true, true
			}
		}
		card.Roles = append(card.Roles, row)
	}
	roles, err := a.store.Roles(ctx)
	if err != nil {
		return card, err
	}
	card.Any = len(roles) > 0
	if u.Kind == accountManual {
		for _, r := range roles {
			if !granted[r.Name] {
				card.Grantable = append(card.Grantable, r.Name)
			}
		}
	}
	return card, nil
}

// roleGrantAction grants a role to a manual account, or revokes a grant,
// from the user's page.
func (a *admin) roleGrantAction(w http.ResponseWriter, r *http.Request, sess *adminSession, id, userName, action string) error {
	ctx, arrived := r.Context(), a.store.now()
	role := r.PostFormValue("role")
	var err error
	var op, notice string
	if action == "grant-role" {
		err = a.store.GrantRole(ctx, id, role, sess.Username)
		op, notice = "grant role "+role, "Role "+role+" granted."
	} else {
		err = a.store.RevokeRole(ctx, id, role)
		op, notice = "revoke role "+role, "Role "+role+" revoked."
	}
	if v, ok := formError(r, err); ok {
		return a.userPage(w, r, sess, id, v.Status, v.Detail, nil, nil)
	}
	if err != nil {
		return err
	}
	if err := a.store.LogNow(ctx, LogEntry{At: arrived, Op: op + " (admin)", ResourceType: "User", ResourceID: id, Target: userName,
		Outcome: "success", Status: http.StatusOK, Detail: "by " + sess.Username}); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/users/"+id, flash{Notice: notice})
}

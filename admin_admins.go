// Several admins: who may open which route (by admin role), the Admins page
// (invite by one-time link, change a role, remove) and accepting an invite.

package main

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// inviteTTL is how long an invitation link works.
const inviteTTL = 72 * time.Hour

// routeRoles are the admin routes that need another role than the default,
// which is viewer for a page (GET) and admin for a form (POST). The server
// checks it on every request (authed); hidden buttons are only a courtesy.
var routeRoles = map[string]AdminRole{
	"POST /logout":                RoleViewer,
	"POST /settings/password":     RoleViewer, // a local admin's own password
	"POST /connection/disconnect": RoleOwner,
	"POST /settings/backup":       RoleOwner, // the file holds every secret's hash and the SSO client secret
	"GET /admins":                 RoleOwner,
	"POST /admins":                RoleOwner,
	"GET /settings/sso":           RoleOwner,
	"POST /settings/sso":          RoleOwner,
}

// routeRole is the role a registered admin route needs.
func routeRole(method, path string) AdminRole {
	if role, ok := routeRoles[method+" "+path]; ok {
		return role
	}
	if method == http.MethodGet {
		return RoleViewer
	}
	return RoleAdmin
}

// seesSecrets reports whether the admin of sess may see secrets already
// stored (a webhook's signing secret): a viewer may not.
func (sess *adminSession) seesSecrets() bool { return sess.Role.Allows(RoleAdmin) }

// adminsData is the data of web/admins.html.
type adminsData struct {
	layout
	Admins  []Admin
	Invites []Invite
	Roles   []AdminRole
	Self    int64
	Error   string
}

// adminsPage serves GET /admins (owners only).
func (a *admin) adminsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	return a.renderAdmins(w, r, sess, http.StatusOK, "")
}

func (a *admin) renderAdmins(w http.ResponseWriter, r *http.Request, sess *adminSession, status int, problem string) error {
	d := adminsData{layout: a.layout(r, sess, "Admins", "settings"), Roles: adminRoles, Self: sess.AdminID, Error: problem}
	var err error
	if d.Admins, err = a.store.Admins(r.Context()); err != nil {
		return err
	}
	if d.Invites, err = a.store.Invites(r.Context()); err != nil {
		return err
	}
	return a.render(w, r, status, "admins.html", d)
}

// adminsAction serves POST /admins: invite, set-role, remove and revoke-invite.
func (a *admin) adminsAction(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	role := AdminRole(r.PostFormValue("role"))
	var err error
	switch r.PostFormValue("action") {
	case "invite":
		if role.rank() == 0 {
			return a.renderAdmins(w, r, sess, http.StatusBadRequest, "Choose a role for the new admin.")
		}
		code, err := a.store.CreateInvite(ctx, role, sess.Username, inviteTTL)
		if err != nil {
			return err
		}
		link := strings.TrimSuffix(baseURL(r), scimBase) + "/invite?code=" + code
		a.log.Info("admin invited", "role", role, "admin", sess.Username)
		return a.redirect(w, r, sess, "/admins", flash{Secret: link, SecretName: string(role)})
	case "set-role":
		if role.rank() == 0 {
			return a.renderAdmins(w, r, sess, http.StatusBadRequest, "Choose a role.")
		}
		err = a.store.SetAdminRole(ctx, id, role)
	case "remove":
		err = a.store.DeleteAdmin(ctx, id)
	case "revoke-invite":
		err = a.store.RevokeInvite(ctx, id)
	default:
		return &scimError{Status: http.StatusBadRequest, Detail: "Unknown action."}
	}
	if errors.Is(err, ErrLastOwner) {
		return a.renderAdmins(w, r, sess, http.StatusConflict, sentence(ErrLastOwner.Error()))
	}
	if errors.Is(err, ErrNotFound) {
		return a.renderAdmins(w, r, sess, http.StatusNotFound, "That admin no longer exists, or signs in with SSO: its role comes from its groups.")
	}
	if err != nil {
		return err
	}
	a.log.Info("admins changed", "action", r.PostFormValue("action"), "id", id, "admin", sess.Username)
	return a.redirect(w, r, sess, "/admins", flash{Notice: "Saved."})
}

// inviteData is the data of web/invite.html.
type inviteData struct {
	layout
	Code, Username, Error string
	Role                  AdminRole
	Valid                 bool
}

// invitePage serves GET /invite?code=…: the form to accept, or 403.
func (a *admin) invitePage(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	return a.renderInvite(w, r, http.StatusOK, r.URL.Query().Get("code"), "", "")
}

func (a *admin) renderInvite(w http.ResponseWriter, r *http.Request, status int, code, username, problem string) error {
	inv, err := a.store.InviteByCode(r.Context(), code)
	if err != nil && !errors.Is(err, ErrBadSetupCode) {
		return err
	}
	valid := err == nil
	if !valid {
		status = http.StatusForbidden
	}
	return a.render(w, r, status, "invite.html", inviteData{layout: layout{Title: "Join scimbox"},
		Code: code, Username: username, Error: problem, Role: inv.Role, Valid: valid})
}

// inviteSubmit serves POST /invite: creates the invited local admin and logs it in.
func (a *admin) inviteSubmit(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	code, username := r.PostFormValue("code"), strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	switch {
	case username == "":
		return a.renderInvite(w, r, http.StatusBadRequest, code, username, "Choose a username.")
	case len([]rune(password)) < minPasswordLen:
		return a.renderInvite(w, r, http.StatusBadRequest, code, username, fmt.Sprintf("Use a password of at least %d characters.", minPasswordLen))
	case password != r.PostFormValue("confirm"):
		return a.renderInvite(w, r, http.StatusBadRequest, code, username, "The two passwords differ.")
	}
	// The code is checked before hashing: a wrong one must not cost 19 MiB.
	if _, err := a.store.InviteByCode(r.Context(), code); err != nil {
		if errors.Is(err, ErrBadSetupCode) {
			return a.renderInvite(w, r, http.StatusForbidden, code, username, "")
		}
		return err
	}
	hash, err := a.passwords.hash(r.Context(), password)
	if errors.Is(err, errPasswordsBusy) {
		return a.renderInvite(w, r, http.StatusServiceUnavailable, code, username, passwordsBusy(w))
	}
	if err != nil {
		return err
	}
	adm, err := a.store.AcceptInvite(r.Context(), code, username, hash)
	switch {
	case errors.Is(err, ErrBadSetupCode):
		return a.renderInvite(w, r, http.StatusForbidden, code, username, "")
	case errors.Is(err, ErrConflict):
		return a.renderInvite(w, r, http.StatusConflict, code, username, "That username is taken: choose another.")
	case err != nil:
		return err
	}
	a.audit(r, adm.Username, "accept invite", "", auditSuccess, "role "+string(adm.Role))
	a.log.Info("invited admin joined", "username", adm.Username, "role", adm.Role, "client", clientAddr(r))
	if err := a.startSession(w, r, adm.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

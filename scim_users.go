// SCIM /Users: list, search, create, read, replace, patch and delete, with claims of manual accounts.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// listUsers serves GET /Users, Entra's match query included.
func (s *server) listUsers(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	lp, err := parseListParams(r)
	if err != nil {
		return err
	}
	return s.writeUsers(w, r, lp)
}

// searchUsers serves POST /Users/.search.
func (s *server) searchUsers(w http.ResponseWriter, r *http.Request) error {
	lp, err := readSearch(r)
	if err != nil {
		return err
	}
	return s.writeUsers(w, r, lp)
}

// writeUsers answers a user list or search.
func (s *server) writeUsers(w http.ResponseWriter, r *http.Request, lp listParams) error {
	var err error
	filtered := lp.Filter != nil
	if lp.Filter, err = filterFor(lp.Filter, userType); err != nil {
		return invalidFilter(err)
	}
	lp.DirectoryOnly = true
	users, total, err := s.store.ListUsers(r.Context(), lp.ListQuery)
	if err != nil {
		return err
	}
	base := baseURL(r)
	docs := make([]map[string]any, len(users))
	for i, u := range users {
		docs[i] = u.doc(base)
		if filtered {
			infoOf(r).listed = append(infoOf(r).listed, u.ID)
		}
	}
	writeList(w, lp, total, docs)
	return nil
}

// createUser serves POST /Users (or claims a manual account when Settings allow it).
func (s *server) createUser(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	body, err := readObject(r)
	if err != nil {
		return err
	}
	attrs, err := normalizeAttrs(userType, body)
	if err != nil {
		return err
	}
	if err := checkRequired(userType, attrs); err != nil {
		return err
	}
	u := &User{Attrs: attrs}
	about(r, "User", "", stringAttr(attrs, "userName"))
	err = s.store.CreateUser(r.Context(), u)
	if errors.Is(err, ErrConflict) {
		u, err = s.claim(r, attrs, err)
	}
	if err != nil {
		return err
	}
	about(r, "User", u.ID, "")
	return writeResource(w, r, http.StatusCreated, u.doc(baseURL(r)), u.Version)
}

// getUser serves GET /Users/{id}, with If-None-Match.
func (s *server) getUser(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	about(r, "User", ps.ByName("id"), "")
	u, err := s.directoryUser(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	if notModified(w, r, u.Version) {
		return nil
	}
	return writeResource(w, r, http.StatusOK, u.doc(baseURL(r)), u.Version)
}

// replaceUser serves PUT /Users/{id}.
func (s *server) replaceUser(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	body, err := readObject(r)
	if err != nil {
		return err
	}
	attrs, err := normalizeAttrs(userType, body)
	if err != nil {
		return err
	}
	if err := checkRequired(userType, attrs); err != nil {
		return err
	}
	about(r, "User", ps.ByName("id"), stringAttr(attrs, "userName"))
	u, err := s.store.UpdateUser(r.Context(), ps.ByName("id"), func(u *User) error {
		if u.Kind != accountDirectory {
			return fmt.Errorf("user %q: %w", u.ID, ErrNotFound)
		}
		if err := ifMatch(r, u.Version); err != nil {
			return err
		}
		s.noteUnchanged(r, u.Version)
		u.Attrs = attrs
		return nil
	})
	if err != nil {
		return err
	}
	s.checkUnchanged(r, u.Version)
	return writeResource(w, r, http.StatusOK, u.doc(baseURL(r)), u.Version)
}

// patchUser serves PATCH /Users/{id}, answering 200 with the user.
func (s *server) patchUser(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	req, err := decodePatch(body)
	if err != nil {
		return err
	}
	about(r, "User", ps.ByName("id"), "")
	infoOf(r).op = describeUserPatch(req.Operations)
	u, err := s.store.UpdateUser(r.Context(), ps.ByName("id"), func(u *User) error {
		if u.Kind != accountDirectory {
			return fmt.Errorf("user %q: %w", u.ID, ErrNotFound)
		}
		about(r, "User", u.ID, stringAttr(u.Attrs, "userName"))
		if err := ifMatch(r, u.Version); err != nil {
			return err
		}
		s.noteUnchanged(r, u.Version)
		_, err := applyPatch(userType, u.Attrs, req.Operations)
		return err
	})
	if err != nil {
		return err
	}
	about(r, "User", u.ID, stringAttr(u.Attrs, "userName"))
	s.checkUnchanged(r, u.Version)
	return writeResource(w, r, http.StatusOK, u.doc(baseURL(r)), u.Version)
}

// directoryUser returns a directory-managed user; other accounts do not exist for SCIM.
func (s *server) directoryUser(ctx context.Context, id string) (*User, error) {
	u, err := s.store.UserByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Kind != accountDirectory {
		return nil, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	return u, nil
}

// claim answers a POST whose userName belongs to an account SCIM cannot see:
// a deprovisioned account comes back; a manual account is taken over when the
// admin allows claims (its local values kept as overrides where the policy
// lets local edits win); otherwise the conflict stands, with what to do about it.
func (s *server) claim(r *http.Request, attrs map[string]any, conflict error) (*User, error) {
	ctx := r.Context()
	p, err := s.store.Policy(ctx)
	if err != nil {
		return nil, err
	}
	allow, err := s.store.Setting(ctx, settingClaim)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	u, err := s.store.ClaimUser(ctx, stringAttr(attrs, "userName"), func(u *User) error {
		op := claimDecision(u.Kind, allow == "true")
		switch {
		case op == "":
			return fmt.Errorf("%w: userName %q belongs to an account created in the admin page; "+
				"to let the directory take it over, turn on \"claim existing accounts\" in the admin page's settings",
				ErrConflict, stringAttr(attrs, "userName"))
		case u.Kind == accountDeprovisioned:
			u.Overrides = nil
		case u.Kind == accountManual:
			u.Overrides = Claimed(u.Attrs, attrs, p, now)
		} // a retained account's delete was kept by a safety rail: apps never lost it, nor its overrides
		infoOf(r).op = op
		u.Attrs, u.Kind = attrs, accountDirectory
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, conflict // taken by a directory account, or freed meanwhile: the first answer stands
	}
	if err == nil {
		s.log.Info("account taken over by the directory", "op", infoOf(r).op, "userName", stringAttr(attrs, "userName"), "id", u.ID)
	}
	return u, err
}

// deleteUser serves DELETE /Users/{id}: deleted or hidden, as the deprovisioning setting says.
func (s *server) deleteUser(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	ctx := r.Context()
	mode, err := s.store.Setting(ctx, settingDeprovision)
	if err != nil {
		return err
	}
	// The account is checked inside the deleting transaction: checked in a read
	// before it, a claim or a disconnect in between would let SCIM delete an
	// account the directory no longer manages.
	check := func(u *User) error {
		if u.Kind != accountDirectory {
			return fmt.Errorf("user %q: %w", u.ID, ErrNotFound)
		}
		about(r, "User", u.ID, stringAttr(u.Attrs, "userName"))
		return ifMatch(r, u.Version)
	}
	if DeprovisionMode(mode) == deprovisionHide {
		infoOf(r).op = "deprovision user (kept, hidden)"
		err = s.store.Deprovision(ctx, ps.ByName("id"), check)
	} else {
		err = s.store.DeleteUser(ctx, ps.ByName("id"), check)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// The Holds page: directory changes the safety rails keep out of the
// effective view, to approve or reject; the rails' settings; protected accounts.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// holdsPageLimit bounds the rows each list of the page shows.
const holdsPageLimit = 500

type holdsData struct {
	layout
	Held       []Hold
	HeldTotal  int
	Drift      []Hold // rejected, and refused for protected accounts
	DriftTotal int
	Settings   HoldSettings
}

func (a *admin) holdsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	d := holdsData{layout: a.layout(r, sess, "Holds", "holds")}
	var err error
	if d.Held, d.HeldTotal, err = a.store.Holds(ctx, HoldQuery{States: []string{holdHeld}, Limit: holdsPageLimit}); err != nil {
		return err
	}
	if d.Drift, d.DriftTotal, err = a.store.Holds(ctx, HoldQuery{States: []string{holdRejected, holdProtected}, Limit: holdsPageLimit}); err != nil {
		return err
	}
	if d.Settings, err = a.store.HoldSettings(ctx); err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "holds.html", d)
}

// holdsAction approves or rejects the chosen held changes, or all of them.
func (a *admin) holdsAction(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	action, all := strings.CutSuffix(r.PostFormValue("action"), "-all")
	var ids []int64
	for _, v := range r.PostForm["id"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("invalidValue", "a held change is named by its number")
		}
		ids = append(ids, id)
	}
	if !all && len(ids) == 0 {
		return a.redirect(w, r, sess, "/holds", flash{Notice: "Nothing was done: choose the changes first."})
	}
	var done []Hold
	var err error
	switch action {
	case "approve":
		done, err = a.store.ApproveHolds(ctx, ids, all, sess.Username)
	case "reject":
		done, err = a.store.RejectHolds(ctx, ids, all, sess.Username)
	default:
		return badRequest("invalidValue", "the action is approve or reject")
	}
	if err != nil {
		return err
	}
	if err := logDecisions(ctx, a.store, done, "by "+sess.Username); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/holds", flash{Notice: decisionText(done, action)})
}

// decisionText says what a decision did, for the page and the command line.
func decisionText(done []Hold, action string) string {
	approved, moot := 0, 0
	for _, h := range done {
		if h.State == holdMoot {
			moot++
		} else {
			approved++
		}
	}
	text := fmt.Sprintf("%d change(s) rejected: apps keep the previous state, and the change stays listed as kept against the directory.", len(done))
	if action == "approve" {
		text = fmt.Sprintf("%d change(s) approved: apps see them now, and their events went out in order.", approved)
	}
	if moot > 0 {
		text += fmt.Sprintf(" %d no longer applied (the user or group changed since) and were closed.", moot)
	}
	return text
}

// logDecisions records approvals and rejections in the provisioning log,
// one entry per change, on the page of the user or group it concerns.
func logDecisions(ctx context.Context, s *Store, done []Hold, who string) error {
	entries := make([]LogEntry, 0, len(done))
	for _, h := range done {
		verb := "approve"
		if h.State == holdRejected {
			verb = "reject"
		}
		if h.State == holdMoot {
			verb = "close"
		}
		detail := fmt.Sprintf("%s: %s, made %s by %s", who, h.What(), formatTime(h.At), h.Request)
		entries = append(entries, LogEntry{At: h.DecidedAt, Op: verb + " held " + h.Kind, ResourceType: h.ResourceType,
			ResourceID: h.ResourceID, Target: h.Target, Outcome: "success", Status: http.StatusOK, Detail: detail})
	}
	if len(entries) == 0 {
		return nil
	}
	return s.writeLog(ctx, entries)
}

// changeHoldSettings saves the mass-change hold's threshold (Settings page).
func (a *admin) changeHoldSettings(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	number := func(name string) int {
		n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue(name)))
		if err != nil {
			return -1
		}
		return n
	}
	hs := HoldSettings{Off: r.PostFormValue("hold_on") == "", Percent: number("hold_percent"), Minimum: number("hold_minimum"),
		Window: time.Duration(number("hold_window")) * time.Minute}
	if errs := hs.validate(); len(errs) > 0 {
		d.Errors, d.Holds = errs, hs
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetHoldSettings(r.Context(), hs); err != nil {
		return err
	}
	notice := fmt.Sprintf("Mass changes are held past %d%% of the directory's users (or memberships) or %d, whichever is larger, in %d minutes.",
		hs.Percent, hs.Minimum, hs.WindowMinutes())
	if hs.Off {
		notice = "The mass-change hold is off: every directory change reaches apps at once."
	}
	return a.redirect(w, r, sess, "/settings", flash{Notice: notice})
}

// protectUser marks a user protected or not (user page).
func (a *admin) protectUser(w http.ResponseWriter, r *http.Request, sess *adminSession, u *User, protect bool, userName string) error {
	ctx := r.Context()
	if err := a.store.SetProtected(ctx, u.ID, protect, sess.Username); err != nil {
		return err
	}
	op, notice := "protect user (admin)", "Protected: the directory can no longer disable or delete this account for apps."
	if !protect {
		op, notice = "unprotect user (admin)", "No longer protected: the directory's disables and deletes reach apps again."
	}
	if err := a.store.LogNow(ctx, LogEntry{Op: op, ResourceType: "User", ResourceID: u.ID, Target: userName,
		Outcome: "success", Status: http.StatusOK, Detail: "by " + sess.Username}); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/users/"+u.ID, flash{Notice: notice})
}

// errHeldValue refuses a revert of a value a safety rail keeps: the Holds page decides.
var errHeldValue = errors.New("this value is kept by a safety rail: approve or reject the change on the Holds page")

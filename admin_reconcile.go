// The Reconcile page: after a restore, the users and groups the directory
// has not touched since, its requests for ids the restore lost, and what the
// admin does about them (Restart provisioning in Entra).

package main

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// reconcilePageLimit bounds the rows each list of the page shows.
const reconcilePageLimit = 500

type reconcileData struct {
	layout
	Marker *RestoreMarker
	State  ReconcileState
	Limit  int
}

func (a *admin) reconcilePage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	d := reconcileData{layout: a.layout(r, sess, "Reconcile after a restore", "settings"), Limit: reconcilePageLimit}
	var err error
	if d.Marker, err = a.store.RestoreMarker(ctx); err != nil {
		return err
	}
	if d.Marker != nil && d.Marker.Reconciled.IsZero() && a.closeReconcileIfDone(ctx) {
		if d.Marker, err = a.store.RestoreMarker(ctx); err != nil {
			return err
		}
	}
	if d.Marker != nil {
		if d.State, err = a.store.Reconcile(ctx, reconcilePageLimit); err != nil {
			return err
		}
	}
	return a.render(w, r, http.StatusOK, "reconcile.html", d)
}

// closeReconcile ends the reconcile at the admin's word: the objects still
// unconfirmed are what the directory no longer has, and the admin has decided about them.
func (a *admin) closeReconcile(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	if err := a.store.CloseReconcile(r.Context()); err != nil {
		return err
	}
	a.reconcile.state.Store(reconcileClosed)
	a.store.Log(LogEntry{Op: "close reconcile", Outcome: "success", Status: http.StatusOK, Detail: "by " + sess.Username})
	return a.redirect(w, r, sess, "/reconcile", flash{Notice: "The reconcile is closed: directory requests no longer confirm objects."})
}

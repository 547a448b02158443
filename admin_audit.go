// The audit trail of the admin page: every form posted (who, what, when,
// from where), sign-ins and refused attempts, and the Audit page that lists
// and filters them.

package main

import (
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// audit records an admin action. A failed write is logged, not shown: the
// action itself has already happened or been refused.
func (a *admin) audit(r *http.Request, actor, action, target, outcome, detail string) {
	err := a.store.RecordAudit(r.Context(), AuditEntry{Actor: actor, Action: action, Target: target,
		Outcome: outcome, Client: clientAddr(r), Detail: detail})
	if err != nil {
		a.log.Error("audit not recorded", "action", action, "actor", actor, "err", err)
	}
}

// audited records every use of the form at the admin route path: the
// route, its parameters as the target, the form's "action" field as the
// detail (never another field: forms carry passwords and secrets), and
// whether it succeeded.
func (a *admin) audited(path string, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
		rec := &statusRecorder{ResponseWriter: w}
		err := h(rec, r, ps, sess)
		outcome := auditSuccess
		if err != nil || rec.status >= 400 {
			outcome = auditRefused
		}
		var target []string
		for _, p := range ps {
			target = append(target, p.Value)
		}
		a.audit(r, sess.Username, "POST "+path, strings.Join(target, " "), outcome, r.PostFormValue("action"))
		return err
	}
}

// auditData is the data of web/audit.html.
type auditData struct {
	layout
	Entries                []AuditEntry
	Actor, Outcome, Action string
	Pager                  pager
}

// auditPage serves GET /audit?actor=…&outcome=…&action=…&page=….
func (a *admin) auditPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	q := r.URL.Query()
	d := auditData{layout: a.layout(r, sess, "Audit", "audit"),
		Actor: strings.TrimSpace(q.Get("actor")), Outcome: q.Get("outcome"), Action: strings.TrimSpace(q.Get("action"))}
	query := AuditQuery{Actor: d.Actor, Outcome: d.Outcome, Action: d.Action, Limit: adminPageSize, Offset: (pageNumber(r) - 1) * adminPageSize}
	entries, total, err := a.store.AuditEntries(r.Context(), query)
	if err != nil {
		return err
	}
	d.Entries, d.Pager = entries, newPager(r, total)
	return a.render(w, r, http.StatusOK, "audit.html", d)
}

// The provisioning log page.

package main

import (
	"net/http"
	"strconv"

	"github.com/julienschmidt/httprouter"
)

type logData struct {
	layout
	Entries         []LogEntry
	Outcome, Target string
	Next            int64 // id to continue from, 0 when there is no more
}

func (a *admin) logPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	q := r.URL.Query()
	outcome := q.Get("outcome")
	if outcome != "success" && outcome != "failure" {
		outcome = ""
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	entries, err := a.store.ListLog(r.Context(), LogQuery{Outcome: outcome, Target: q.Get("target"), Before: before, Limit: adminPageSize + 1})
	if err != nil {
		return err
	}
	d := logData{layout: a.layout(r, sess, "Provisioning log", "log"), Outcome: outcome, Target: q.Get("target")}
	if len(entries) > adminPageSize {
		entries = entries[:adminPageSize]
		d.Next = entries[len(entries)-1].ID
	}
	d.Entries = entries
	return a.render(w, r, http.StatusOK, "log.html", d)
}

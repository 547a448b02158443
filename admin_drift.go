// The Drift page (Users → Drift): the drift report (drift.go) for a date the
// admin chooses, and its export as CSV or JSON.

package main

import (
	"io"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

// driftPageLimit bounds the rows each section of the page shows; the export has them all.
const driftPageLimit = 200

// driftExportLimit bounds each section of the export (a tenant's users, at most).
const driftExportLimit = 10_000_000

// driftDateLayout is the date the page's form sends (an <input type=date>).
const driftDateLayout = "2006-01-02"

type driftData struct {
	layout
	DriftReport
	SinceDate string // the chosen date, for the form and the export links
	Limit     int
}

// driftSince reads the date the admin chose (?since=YYYY-MM-DD, midnight
// UTC); without one, defaultDriftDays ago.
func driftSince(r *http.Request, now time.Time) (time.Time, error) {
	v := r.URL.Query().Get("since")
	if v == "" {
		return now.UTC().AddDate(0, 0, -defaultDriftDays).Truncate(24 * time.Hour), nil
	}
	t, err := time.Parse(driftDateLayout, v)
	if err != nil {
		return time.Time{}, badRequest("invalidValue", "The date %q is not a date like 2026-01-31.", v)
	}
	return t, nil
}

func (a *admin) driftPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	since, err := driftSince(r, time.Now())
	if err != nil {
		return err
	}
	report, err := driftReport(r.Context(), a.store, since, driftPageLimit)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "drift.html", driftData{layout: a.layout(r, sess, "Drift", "users"),
		DriftReport: report, SinceDate: since.Format(driftDateLayout), Limit: driftPageLimit})
}

// driftExport serves drift.csv and drift.json for the chosen date. The
// report is read whole before the first byte, so an error is a page, not a
// cut file.
func (a *admin) driftExport(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	file := ps.ByName("file")
	var contentType string
	var write func(DriftReport, io.Writer) error
	switch file {
	case "drift.csv":
		contentType, write = "text/csv; charset=utf-8", DriftReport.writeCSV
	case "drift.json":
		contentType, write = "application/json", DriftReport.writeJSON
	default:
		return ErrNotFound
	}
	since, err := driftSince(r, time.Now())
	if err != nil {
		return err
	}
	report, err := driftReport(r.Context(), a.store, since, driftExportLimit)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="scimbox-`+time.Now().UTC().Format("20060102")+"-"+file+`"`)
	a.log.Info("export", "file", file, "since", since.Format(driftDateLayout), "admin", sess.Username)
	return write(report, w)
}

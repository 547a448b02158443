// The drift report: where the effective view and the directory may have
// parted. Entra sends only changes: after a scoping change nothing says a
// user left, so the report lists the users the directory has not written
// since a date the admin chooses; memberships the directory removed that are
// held for review; changes an admin rejected or that protected accounts
// refused (apps keep the state before); and members Entra named by an id
// scimbox does not know. The page and the export (CSV, JSON) read the same
// report.

package main

import (
	"context"
	"encoding/json"
	"io"
	"strconv"
	"time"
)

// defaultDriftDays is how far back the report looks by default: most Entra
// tenants change something about most users (a sign-in attribute, a group)
// well within a month, and a cycle comes every 40 minutes.
const defaultDriftDays = 30

// DriftUser is a directory user the directory has not written since the report's date.
type DriftUser struct {
	ID                 string    `json:"id"`
	UserName           string    `json:"userName"`
	DisplayName        string    `json:"displayName,omitempty"`
	LastDirectoryWrite time.Time `json:"lastDirectoryWrite"`
}

// DriftReport is the drift report: each section's rows (at most the limit
// asked for) and how many there are in all.
type DriftReport struct {
	Since                time.Time
	Untouched            []DriftUser
	UntouchedTotal       int
	HeldMemberships      []Hold
	HeldMembershipsTotal int
	Rejected             []Hold // rejected by an admin, or refused for a protected account
	RejectedTotal        int
	Skipped              []SkippedMember
	SkippedTotal         int
}

// driftReport reads the report for users not written since since, with at
// most limit rows in each section.
func driftReport(ctx context.Context, store *Store, since time.Time, limit int) (DriftReport, error) {
	r := DriftReport{Since: since}
	var err error
	if r.Untouched, r.UntouchedTotal, err = store.UntouchedUsers(ctx, since, limit); err != nil {
		return r, err
	}
	if r.HeldMemberships, r.HeldMembershipsTotal, err = store.HeldMemberships(ctx, limit); err != nil {
		return r, err
	}
	if r.Rejected, r.RejectedTotal, err = store.Holds(ctx, HoldQuery{States: []string{holdRejected, holdProtected}, Limit: limit}); err != nil {
		return r, err
	}
	if r.Skipped, err = store.SkippedMembers(ctx, "", limit); err != nil {
		return r, err
	}
	sum, err := store.SkippedMembersSummary(ctx)
	r.SkippedTotal = sum.IDs
	return r, err
}

// Sections of the drift export, one per row.
const (
	driftUntouched      = "not written by the directory"
	driftHeldMembership = "membership removal held"
	driftRejected       = "kept against the directory"
	driftSkipped        = "member id unknown"
)

// driftColumns are the columns of the CSV export.
var driftColumns = []string{"section", "id", "name", "detail", "since"}

// rows returns the report as CSV records (without the header), section by section.
func (r DriftReport) rows() [][]string {
	var out [][]string
	for _, u := range r.Untouched {
		out = append(out, []string{driftUntouched, u.ID, u.UserName, u.DisplayName, formatTime(u.LastDirectoryWrite)})
	}
	for _, h := range r.HeldMemberships {
		out = append(out, []string{driftHeldMembership, strconv.FormatInt(h.ID, 10), h.What(), h.Request, formatTime(h.At)})
	}
	for _, h := range r.Rejected {
		out = append(out, []string{driftRejected, strconv.FormatInt(h.ID, 10), h.What(), h.StateText(), formatTime(h.At)})
	}
	for _, m := range r.Skipped {
		out = append(out, []string{driftSkipped, m.MemberID, m.GroupName, strconv.Itoa(m.Count) + " request(s) named it", formatTime(m.FirstSkipped)})
	}
	return out
}

// writeCSV writes the report as CSV, formulas neutralised (csvWriter).
func (r DriftReport) writeCSV(w io.Writer) error {
	cw := newCSVWriter(w)
	cw.Write(driftColumns)
	for _, row := range r.rows() {
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

// driftHold is a hold as the JSON export shows it.
type driftHold struct {
	ID     int64     `json:"id"`
	Kind   string    `json:"kind"`
	State  string    `json:"state"`
	What   string    `json:"what"`
	At     time.Time `json:"at"`
	By     string    `json:"decidedBy,omitempty"`
	Detail string    `json:"request"`
}

func driftHolds(list []Hold) []driftHold {
	out := make([]driftHold, len(list))
	for i, h := range list {
		out[i] = driftHold{ID: h.ID, Kind: h.Kind, State: h.State, What: h.What(), At: h.At, By: h.DecidedBy, Detail: h.Request}
	}
	return out
}

// writeJSON writes the report as one JSON object, a key per section.
func (r DriftReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{
		"since":           r.Since,
		"untouchedUsers":  orEmptySlice(r.Untouched),
		"heldMemberships": driftHolds(r.HeldMemberships),
		"rejected":        driftHolds(r.Rejected),
		"skippedMembers":  orEmptySlice(r.Skipped),
	})
}

// orEmptySlice is list, or an empty one: JSON says [] rather than null.
func orEmptySlice[T any](list []T) []T {
	if list == nil {
		return []T{}
	}
	return list
}

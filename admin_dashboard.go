// The dashboard: counts and the last directory activity at a glance.

package main

import (
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"
)

type dashboardData struct {
	layout
	Stats     Stats
	Tokens    []Token
	LastUsed  time.Time
	TenantURL string
	Recent    []LogEntry
	Health    healthCard
}

// healthCard is what the dashboard's health card shows.
type healthCard struct {
	HealthSnapshot
	Skipped SkippedSummary
}

// lastTokenUse is the most recent use of any token: when the directory last called.
func lastTokenUse(tokens []Token) time.Time {
	var last time.Time
	for _, t := range tokens {
		if t.LastUsed.After(last) {
			last = t.LastUsed
		}
	}
	return last
}

func (a *admin) dashboard(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	st, err := a.store.Stats(ctx)
	if err != nil {
		return err
	}
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return err
	}
	recent, err := a.store.ListLog(ctx, LogQuery{Limit: 10})
	if err != nil {
		return err
	}
	health := healthCard{HealthSnapshot: a.store.Health().Snapshot()}
	if health.Skipped, err = a.store.SkippedMembersSummary(ctx); err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "dashboard.html", dashboardData{layout: sess.layout("Dashboard", "dashboard"),
		Stats: st, Tokens: tokens, LastUsed: lastTokenUse(tokens), TenantURL: baseURL(r), Recent: recent, Health: health})
}

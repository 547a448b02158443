// Quarantine-aware health: Entra's own quarantine arithmetic applied to the
// cycles cycles.go recognises, the failures grouped by cause with what to do
// about each, and the surfaces that show it (/healthz?verbose, GET
// /api/v1/health; the dashboard card lives in admin_dashboard.go).
//
// Other parts of scimbox read the same thing through Store.Health().Snapshot().

package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// Entra's quarantine arithmetic (entra-field.md 2, entra-scim.md §6): a cycle
// is evaluated from 5,000 failures and quarantined when more than 40 % of its
// events fail or more than 40,000 fail, reference failures counted apart;
// 60,000 failures of any kind quarantine in any case; and a cycle whose
// start-up calls fail, or whose credentials are refused, is quarantined at
// once whatever the counts.
const (
	entraEvaluatesFrom  = 5_000
	entraFailureRatio   = 0.40
	entraMaxFailures    = 40_000
	entraMaxAllFailures = 60_000
	// warnMinFailures keeps one failed PATCH out of two from being called a
	// quarantine risk: above Entra's ratio, a warning needs this many failures.
	warnMinFailures = 10
	// warnRatio is half of Entra's ratio: with thousands of failures at this
	// rate, a larger cycle (a restart of provisioning) can cross 40 %.
	warnRatio         = entraFailureRatio / 2
	warnRatioFailures = entraEvaluatesFrom / 2
)

// RiskLevel says how close the provisioning job is to being quarantined.
type RiskLevel string

const (
	RiskOK         RiskLevel = "ok"         // no failures
	RiskWatch      RiskLevel = "watch"      // failures Entra will retry, far from any threshold
	RiskWarning    RiskLevel = "warning"    // a threshold is in reach: act before the next cycle
	RiskQuarantine RiskLevel = "quarantine" // Entra's criteria hold: it quarantines (or has quarantined) the job
)

// rank orders the levels, ok lowest.
func (l RiskLevel) rank() int {
	switch l {
	case RiskWatch:
		return 1
	case RiskWarning:
		return 2
	case RiskQuarantine:
		return 3
	}
	return 0
}

// Risk is the judgement of one cycle with Entra's arithmetic.
type Risk struct {
	Level   RiskLevel `json:"level"`
	CycleID int64     `json:"cycle,omitempty"` // the cycle judged; 0 before any
	// FailureRatio is the cycle's failures (reference failures apart) per event.
	FailureRatio float64  `json:"failureRatio"`
	Reasons      []string `json:"reasons"`
	Advice       []Advice `json:"advice"` // the cycle's failures by cause, most frequent first
}

// Advice is a cause of failures with what it means and what to do.
type Advice struct {
	Cause
	What    string `json:"what"`
	Do      string `json:"do"`
	Summary string `json:"summary"` // "12 update user requests failed (409 uniqueness): … — …"
}

// causeAdvice explains each kind of failure: what it means and what the admin
// can do. causeKind sorts failures into these from their status, scimType and
// operation, the classification errors.go made for the response.
var causeAdvice = map[string]struct{ what, do string }{
	"credential": {"the Secret Token was refused: revoked, expired or mistyped",
		"create a token on the Connection page, paste it into Entra's Admin Credentials (Secret Token) and click Test Connection"},
	"throttled": {"requests with a refused Secret Token were throttled",
		"the same as a refused token: give Entra a valid Secret Token"},
	"manual-account": {"the userName is taken by an account created in the admin page",
		"turn on \"claim existing accounts\" in Settings so that the directory takes such accounts over, or rename or delete the manual account"},
	"username-taken": {"the userName is taken by another directory account",
		"two Entra users map to one userName, or Entra's match query missed the account: check that userName is the matching attribute in Entra's attribute mappings, then restart provisioning"},
	"group-name-taken": {"the displayName is taken by another group",
		"group names are unique here: rename or delete the other group, or give the Entra groups distinct names"},
	"gone": {"the user or group no longer exists here, but Entra still links to it",
		"restart provisioning in Entra (it matches every object again), or restore the object from a snapshot"},
	"refused-edit": {"the change was refused by the source-of-truth policy",
		"see the detail; the policy is in Settings"},
	"changed": {"the object changed between Entra's read and its write",
		"nothing unless it repeats: the next attempt sends the current version"},
	"too-large": {"the request body is larger than scimbox accepts",
		"Entra's member batches fit easily: report it with the server log"},
	"timeout": {"the client gave up before the answer (Entra waits 60 s)",
		"the server is overloaded or its disk is slow: look at the server log and the machine's load"},
	"unavailable": {"the database could not be written (disk full, read-only or locked); nothing was changed",
		"free disk space or fix the database file's permissions; Entra retries the failed operations in later cycles"},
	"internal": {"an internal error", "the cause is in the server log (\"request failed\"); please report it"},
	"invalid": {"scimbox refused what Entra sent (the detail names the attribute and why)",
		"fix the attribute mapping the detail names in Entra's provisioning settings; Entra retries the object every cycle until then"},
}

// causeKind sorts a failure into one of causeAdvice's kinds.
func causeKind(c call) string {
	switch s := c.status; {
	case s == http.StatusUnauthorized:
		return "credential"
	case s == http.StatusTooManyRequests:
		return "throttled"
	case s == http.StatusConflict && strings.Contains(c.detail, "created in the admin page"):
		return "manual-account"
	case s == http.StatusConflict && (strings.Contains(c.op, "group") || strings.Contains(c.op, "members")):
		return "group-name-taken"
	case s == http.StatusConflict:
		return "username-taken"
	case s == http.StatusNotFound:
		return "gone"
	case s == http.StatusForbidden:
		return "refused-edit"
	case s == http.StatusPreconditionFailed:
		return "changed"
	case s == http.StatusRequestEntityTooLarge:
		return "too-large"
	case s == http.StatusRequestTimeout || s == statusClientClosed:
		return "timeout"
	case s == http.StatusServiceUnavailable:
		return "unavailable"
	case s >= 500:
		return "internal"
	}
	return "invalid"
}

// adviceFor explains a cause of failures with causeAdvice, in one summary line.
func adviceFor(c Cause) Advice {
	a := causeAdvice[c.Kind]
	if a.what == "" {
		a = causeAdvice["invalid"]
	}
	status := strconv.Itoa(c.Status)
	if c.ScimType != "" {
		status += " " + c.ScimType
	}
	plural := "s"
	if c.Count == 1 {
		plural = ""
	}
	return Advice{Cause: c, What: a.what, Do: a.do,
		Summary: fmt.Sprintf("%d %s request%s failed (%s): %s — %s", c.Count, c.Op, plural, status, a.what, a.do)}
}

// assess judges a cycle with Entra's quarantine arithmetic.
func assess(c *Cycle) Risk {
	risk := Risk{Level: RiskOK, Reasons: []string{}, Advice: []Advice{}}
	if c == nil {
		return risk
	}
	risk.CycleID = c.ID
	all := c.Failures + c.ReferenceFailures
	if c.Events > 0 {
		risk.FailureRatio = float64(c.Failures) / float64(c.Events)
	}
	ratio := risk.FailureRatio
	raise := func(l RiskLevel, format string, args ...any) {
		if l.rank() > risk.Level.rank() {
			risk.Level = l
		}
		risk.Reasons = append(risk.Reasons, fmt.Sprintf(format, args...))
	}
	credential := 0
	for _, cause := range c.Causes {
		if cause.Kind == "credential" || cause.Kind == "throttled" {
			credential += cause.Count
		}
	}
	if c.StartFailed() {
		raise(RiskQuarantine, "the cycle's first call (%s) failed with %d: Entra quarantines a job at once when its start-up calls fail, whatever the counts",
			c.FirstOp, c.FirstStatus)
	}
	if credential > 0 {
		raise(RiskQuarantine, "%d requests carried a Secret Token scimbox does not accept: Entra quarantines a job whose credentials fail", credential)
	}
	switch {
	case all > entraMaxAllFailures:
		raise(RiskQuarantine, "%d failures in one cycle: above Entra's cap of %d, reference failures included", all, entraMaxAllFailures)
	case c.Failures > entraMaxFailures:
		raise(RiskQuarantine, "%d failures in one cycle: above Entra's %d", c.Failures, entraMaxFailures)
	case all >= entraEvaluatesFrom && ratio > entraFailureRatio:
		raise(RiskQuarantine, "%.0f %% of the cycle's %d events failed, with %d failures: above Entra's 40 %% once it counts from %d",
			100*ratio, c.Events, all, entraEvaluatesFrom)
	case ratio > entraFailureRatio && c.Failures >= warnMinFailures:
		raise(RiskWarning, "%.0f %% of the cycle's %d events failed (%d, reference failures apart): above Entra's 40 %%; "+
			"Entra quarantines a cycle like this once it reaches %d failures, which a restart of provisioning or a large change can bring",
			100*ratio, c.Events, c.Failures, entraEvaluatesFrom)
	case c.Failures >= entraMaxFailures/2 || all >= entraMaxAllFailures/2:
		raise(RiskWarning, "%d failures in one cycle (%d of them reference failures): half-way to Entra's limits of %d and %d",
			all, c.ReferenceFailures, entraMaxFailures, entraMaxAllFailures)
	case ratio > warnRatio && all >= warnRatioFailures:
		raise(RiskWarning, "%.0f %% of the cycle's %d events failed, with %d failures: half-way to Entra's 40 %%",
			100*ratio, c.Events, all)
	case all > 0:
		raise(RiskWatch, "%d of the cycle's %d events failed (%d reference failures): Entra retries them in later cycles, so they come back until their cause is fixed",
			all, c.Events, c.ReferenceFailures)
	}
	view := c.view(c.LastCall)
	for _, cause := range view.Causes {
		risk.Advice = append(risk.Advice, adviceFor(cause))
	}
	return risk
}

// HealthSnapshot is the state of provisioning at one moment: the cycle in
// progress, the last completed one, the recent ones and the quarantine risk.
type HealthSnapshot struct {
	At       time.Time `json:"at"`
	LastCall time.Time `json:"lastCall"` // the directory's last SCIM call; zero if none yet
	Risk     Risk      `json:"risk"`
	Current  *Cycle    `json:"current"` // the cycle in progress; nil between cycles
	Last     *Cycle    `json:"last"`    // the latest completed cycle
	Recent   []Cycle   `json:"recent"`  // newest first, Current included
}

// Snapshot returns the current state. The risk is the worse of the cycle in
// progress and the last completed one: the failures of the last are retried
// in the next, so they count until a cycle has gone by without them.
func (h *Health) Snapshot() HealthSnapshot {
	now := h.now().UTC()
	h.mu.Lock()
	snap := HealthSnapshot{At: now, Recent: make([]Cycle, 0, len(h.recent))}
	for i := len(h.recent) - 1; i >= 0; i-- {
		snap.Recent = append(snap.Recent, h.recent[i].view(now))
	}
	h.mu.Unlock()
	for i := range snap.Recent {
		switch c := &snap.Recent[i]; {
		case c.Open && snap.Current == nil && snap.Last == nil:
			snap.Current = c
		case !c.Open && snap.Last == nil:
			snap.Last = c
		}
	}
	if len(snap.Recent) > 0 {
		snap.LastCall = snap.Recent[0].LastCall
	}
	snap.Risk = assess(snap.Current)
	if last := assess(snap.Last); last.Level.rank() > snap.Risk.Level.rank() {
		snap.Risk = last
	}
	return snap
}

// public is the snapshot without the details of failures, which name users
// and groups: what the unauthenticated /healthz?verbose shows.
func (snap HealthSnapshot) public() HealthSnapshot {
	for i := range snap.Recent {
		for j := range snap.Recent[i].Causes {
			snap.Recent[i].Causes[j].Detail = ""
		}
	}
	for i := range snap.Risk.Advice {
		snap.Risk.Advice[i].Detail = ""
	}
	return snap
}

// noteCall is the request middleware's hook: it counts a SCIM request in its
// cycle. Requests with a valid token count, and so do those whose token has
// scimbox's form but is refused: that is a directory with a revoked token,
// the credential failure Entra quarantines for at once.
func (s *server) noteCall(r *http.Request, ri *requestInfo, status int) {
	if ri.scim || status == http.StatusUnauthorized && presentsScimboxToken(r) {
		s.store.Health().record(callOf(r, ri, status))
	}
}

// healthReport is the body of /healthz?verbose and GET /api/v1/health.
type healthReport struct {
	Status string `json:"status"` // ok, or why not
	HealthSnapshot
	SkippedMembers skippedReport  `json:"skippedMembers"`
	History        []Cycle        `json:"history,omitempty"`     // persisted cycles, newest first (API only)
	Replication    *replicaStatus `json:"replication,omitempty"` // with -replica (the URL in the API only)
	Restore        *restoreReport `json:"restore,omitempty"`     // after a restore: its marker and the reconcile's progress
}

// skippedReport is the skipped members part of a healthReport.
type skippedReport struct {
	SkippedSummary
	Items []SkippedMember `json:"items,omitempty"` // the latest (API only)
}

// healthzVerbose serves /healthz?verbose: the quarantine risk, the cycles and
// the skipped members summary, without the failures' details (no credential
// is asked here, and details name users and groups).
func (s *server) healthzVerbose(w http.ResponseWriter, r *http.Request) {
	rep := healthReport{Status: "ok", HealthSnapshot: s.store.Health().Snapshot().public()}
	status := http.StatusOK
	sum, err := s.store.SkippedMembersSummary(r.Context())
	if err != nil {
		s.log.Warn("health: skipped members", "err", err)
		rep.Status, status = "database unavailable", http.StatusServiceUnavailable
	}
	rep.SkippedMembers.SkippedSummary = sum
	rep.Replication, rep.Restore = s.replicaAndRestore(r.Context())
	if rep.Replication != nil {
		rep.Replication.URL = "" // names the bucket or host, and this page asks no credential
	}
	writeAPI(w, status, rep)
}

// apiHealth serves GET /api/v1/health: everything /healthz?verbose shows with
// the failures' details, the persisted cycle history (limit, default 20, at
// most cycleHistory) and the latest skipped member ids.
func (s *server) apiHealth(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("invalidValue", "limit must be a positive number")
		}
		limit = min(n, cycleHistory)
	}
	ctx := r.Context()
	rep := healthReport{Status: "ok", HealthSnapshot: s.store.Health().Snapshot()}
	var err error
	if rep.History, err = s.store.RecentCycles(ctx, limit); err != nil {
		return err
	}
	if rep.SkippedMembers.SkippedSummary, err = s.store.SkippedMembersSummary(ctx); err != nil {
		return err
	}
	if rep.SkippedMembers.Items, err = s.store.SkippedMembers(ctx, "", 100); err != nil {
		return err
	}
	rep.Replication, rep.Restore = s.replicaAndRestore(ctx)
	writeAPI(w, http.StatusOK, rep)
	return nil
}

// quarantineAlert is the quarantine-risk alert's check: it fires while the
// risk is a warning or worse, and says why.
func (h *Health) quarantineAlert(context.Context) (bool, string, error) {
	risk := h.Snapshot().Risk
	if risk.Level != RiskWarning && risk.Level != RiskQuarantine {
		return false, "", nil
	}
	return true, "Quarantine risk: " + string(risk.Level) + ". " + strings.Join(risk.Reasons, " "), nil
}

// cycleMetrics is what /metrics reports of the newest cycle (in progress, or
// else the last): its counts, and the failure ratio as a share of Entra's
// 40 % (1 once Entra's criteria hold). False before the first cycle.
func (h *Health) cycleMetrics() (cycleMetrics, bool) {
	snap := h.Snapshot()
	c := snap.Current
	if c == nil {
		c = snap.Last
	}
	if c == nil {
		return cycleMetrics{}, false
	}
	risk := min(snap.Risk.FailureRatio/entraFailureRatio, 1)
	if snap.Risk.Level == RiskQuarantine {
		risk = 1
	}
	return cycleMetrics{Operations: c.Requests, Failures: c.Failures, ReferenceFailures: c.ReferenceFailures,
		QuarantineRisk: risk, Started: c.FirstCall, LastCall: c.LastCall}, true
}

// Entra's provisioning cycles, recognised from the SCIM traffic alone: a
// cycle opens with the start-up probe (GET /Users?filter=userName eq "<guid>")
// and a burst of calls, and ends when the directory has been quiet for
// cycleGap. The tracker counts each cycle in memory (a mutex and a few
// additions per request); store_cycles.go persists what changed in the
// background, as the provisioning log does.

package main

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// cycleGap is the pause without a SCIM call that ends a cycle. Entra runs
	// a cycle about every 40 minutes, not configurable (entra-field.md 22,
	// §4.1), and an incremental cycle takes seconds to "under 30 minutes";
	// within a cycle it calls back to back, up to ~16 per second, and waits at
	// most its 60-second request timeout for an answer. Ten minutes is ten
	// times the longest wait inside a cycle, and shorter than the quiet time
	// between two cycles unless one runs for more than 30 minutes — an
	// initial cycle, which keeps calling and so stays one cycle anyway.
	cycleGap = 10 * time.Minute
	// cycleHistory is how many cycles the database keeps.
	cycleHistory = 200
	// recentCycleCount is how many cycles the tracker keeps in memory for its snapshots.
	recentCycleCount = 10
)

// Cycle is one provisioning cycle as scimbox saw it. Failures are counted the
// way Entra's quarantine counts them (entra-field.md 2): a failure to change a
// group member or a manager is a reference failure, counted apart.
type Cycle struct {
	ID        int64     `json:"id"`
	FirstCall time.Time `json:"firstCall"`
	LastCall  time.Time `json:"lastCall"`
	// Open reports whether the directory may still be in this cycle (filled in by snapshots).
	Open bool `json:"open"`
	// DurationSeconds is LastCall − FirstCall (filled in by snapshots).
	DurationSeconds float64 `json:"durationSeconds"`
	Requests        int     `json:"requests"`
	// Events are the writes and the failed reads: what Entra counts as
	// provisioning events. Its match queries and probes that succeed are not
	// events of their own, so counting them would dilute the failure ratio.
	Events            int `json:"events"`
	Failures          int `json:"failures"` // failed events that are not reference failures
	ReferenceFailures int `json:"referenceFailures"`
	// SkippedMembers are member ids that no user or group has, skipped while
	// the rest of their request was applied: Entra saw a success, so they are
	// not failures in its count, but each is a membership it believes exists.
	SkippedMembers int `json:"skippedMembers"`
	// Probe reports whether the cycle opened with Entra's start-up probe, a filtered GET.
	Probe       bool    `json:"probe"`
	FirstOp     string  `json:"firstOp"`
	FirstStatus int     `json:"firstStatus"`
	Causes      []Cause `json:"causes"` // the failures grouped by cause, most frequent first in snapshots
}

// Duration is the time from the cycle's first call to its last.
func (c *Cycle) Duration() time.Duration { return c.LastCall.Sub(c.FirstCall).Round(time.Second) }

// StartFailed reports whether the cycle's first call failed: Entra
// quarantines a job at once when its start-up calls fail, whatever the counts.
func (c *Cycle) StartFailed() bool { return c.FirstStatus >= 400 }

// Cause is a group of a cycle's failures with one explanation: the same
// operation failing the same way.
type Cause struct {
	Kind      string    `json:"kind"` // a key of causeAdvice
	Op        string    `json:"op"`
	Status    int       `json:"status"`
	ScimType  string    `json:"scimType,omitempty"`
	Reference bool      `json:"reference"`
	Count     int       `json:"count"`
	Last      time.Time `json:"last"`
	Detail    string    `json:"detail,omitempty"` // the latest failure's detail, as the client was told
}

// call is what the tracker learns of one SCIM request.
type call struct {
	op       string
	status   int
	scimType string
	detail   string
	write    bool // a write (not a GET or a search)
	// reference is a change of group members or of a manager.
	reference bool
	// probe is a filtered GET of users or groups, the shape of Entra's start-up probe.
	probe   bool
	skipped int // member ids skipped
}

// Health tracks Entra's provisioning cycles and judges the risk that Entra
// quarantines the provisioning job. Its methods are safe for concurrent use.
type Health struct {
	now func() time.Time

	mu      sync.Mutex
	recent  []*Cycle // the latest cycles, oldest first; the last may still be open
	dirty   map[int64]bool
	evicted []Cycle // changed cycles that left recent before they were written
	nextID  int64
}

// newHealth returns an empty tracker on the clock now.
func newHealth(now func() time.Time) *Health {
	return &Health{now: now, dirty: map[int64]bool{}, nextID: 1}
}

// record counts one SCIM request in the cycle it belongs to, opening a new
// cycle after a quiet time of cycleGap.
func (h *Health) record(c call) {
	now := h.now().UTC()
	h.mu.Lock()
	defer h.mu.Unlock()
	var cur *Cycle
	if n := len(h.recent); n > 0 && now.Sub(h.recent[n-1].LastCall) < cycleGap {
		cur = h.recent[n-1]
	} else {
		cur = &Cycle{ID: h.nextID, FirstCall: now, FirstOp: c.op, FirstStatus: c.status, Probe: c.probe}
		h.nextID++
		h.recent = append(h.recent, cur)
		for len(h.recent) > recentCycleCount {
			if old := h.recent[0]; h.dirty[old.ID] {
				h.evicted = append(h.evicted, copyCycle(old))
				delete(h.dirty, old.ID)
			}
			h.recent = slices.Delete(h.recent, 0, 1)
		}
	}
	if now.After(cur.LastCall) {
		cur.LastCall = now
	}
	cur.Requests++
	cur.SkippedMembers += c.skipped
	failed := c.status >= 400
	if c.write || failed {
		cur.Events++
	}
	if failed {
		if c.reference {
			cur.ReferenceFailures++
		} else {
			cur.Failures++
		}
		kind := causeKind(c)
		i := slices.IndexFunc(cur.Causes, func(x Cause) bool {
			return x.Kind == kind && x.Op == c.op && x.Status == c.status && x.ScimType == c.scimType
		})
		if i < 0 {
			cur.Causes = append(cur.Causes, Cause{Kind: kind, Op: c.op, Status: c.status, ScimType: c.scimType, Reference: c.reference})
			i = len(cur.Causes) - 1
		}
		cur.Causes[i].Count++
		cur.Causes[i].Last, cur.Causes[i].Detail = now, c.detail
	}
	h.dirty[cur.ID] = true
}

// restore puts persisted cycles (oldest first) back after a restart, so that
// a restart in the middle of a cycle continues it.
func (h *Health) restore(cycles []Cycle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recent = h.recent[:0]
	for i := range cycles {
		c := cycles[i]
		h.recent = append(h.recent, &c)
		h.nextID = max(h.nextID, c.ID+1)
	}
	if len(h.recent) > recentCycleCount {
		h.recent = slices.Delete(h.recent, 0, len(h.recent)-recentCycleCount)
	}
}

// takeDirty returns copies of the cycles changed since the last call.
func (h *Health) takeDirty() []Cycle {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.evicted
	h.evicted = nil
	for _, c := range h.recent {
		if h.dirty[c.ID] {
			out = append(out, copyCycle(c))
		}
	}
	clear(h.dirty)
	return out
}

// markDirty asks for cycles to be written again (their write failed).
func (h *Health) markDirty(cycles []Cycle) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cycles {
		if slices.ContainsFunc(h.recent, func(r *Cycle) bool { return r.ID == c.ID }) {
			h.dirty[c.ID] = true
		} else {
			h.evicted = append(h.evicted, c)
		}
	}
}

// copyCycle copies c deep enough that the tracker's later changes do not show through.
func copyCycle(c *Cycle) Cycle {
	out := *c
	out.Causes = slices.Clone(c.Causes)
	return out
}

// view is a copy of c for a reader at now: open or not, its duration, and
// its causes most frequent first.
func (c *Cycle) view(now time.Time) Cycle {
	out := copyCycle(c)
	out.Open = now.Sub(c.LastCall) < cycleGap
	out.DurationSeconds = c.LastCall.Sub(c.FirstCall).Seconds()
	slices.SortStableFunc(out.Causes, func(a, b Cause) int { return b.Count - a.Count })
	if out.Causes == nil {
		out.Causes = []Cause{}
	}
	return out
}

// referenceOps are the operations whose failures Entra counts as reference
// failures: a group member or a manager that could not be changed.
var referenceOps = map[string]bool{"add members": true, "remove members": true, "replace members": true, "update manager": true}

// isManagerPath reports whether a PATCH path names the enterprise manager
// (Entra links it in a PATCH of its own, after both users exist).
func isManagerPath(path string) bool {
	p := strings.ToLower(strings.TrimSpace(path))
	p = strings.TrimPrefix(p, strings.ToLower(enterpriseSchema)+":")
	name, _, _ := strings.Cut(p, ".")
	name, _, _ = strings.Cut(name, "[")
	return name == "manager"
}

// callOf describes a finished SCIM request for the tracker.
func callOf(r *http.Request, ri *requestInfo, status int) call {
	c := call{op: ri.op, status: status, scimType: ri.scimType, detail: ri.detail,
		write:     r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasPrefix(ri.op, "search"),
		reference: referenceOps[ri.op], skipped: len(ri.skippedMembers)}
	c.probe = r.Method == http.MethodGet && (ri.op == "list users" || ri.op == "list groups") &&
		strings.Contains(r.URL.RawQuery, "filter=")
	return c
}

// presentsScimboxToken reports whether r carries a bearer token in scimbox's
// form: a directory whose token was revoked or mistyped, rather than a
// stranger probing the endpoint.
func presentsScimboxToken(r *http.Request) bool {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	_, ok := parseToken(strings.TrimSpace(tok))
	return ok && strings.EqualFold(scheme, "Bearer")
}

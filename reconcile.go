// The reconcile after a restore. A restored database is older than the
// directory's picture of it: Entra has cached the id of every user and group
// it created, so users created since the restore point are missing here (and
// Entra's requests for their ids fail with 404, which it logs as
// InvalidAnchor and never repairs by itself), and users deleted since are
// back. Until the directory has touched each object again, it is
// "unconfirmed"; the admin page says so and what to do (Restart provisioning).

package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reconcileCheckEvery bounds how often the open reconcile counts what is
// left, to close itself once the directory has touched every object.
const reconcileCheckEvery = 5 * time.Second

// Reconcile states as the server caches them.
const (
	reconcileUnknown int32 = iota // not read from the database yet
	reconcileOpen
	reconcileClosed
)

// reconcileGate caches whether a reconcile is open and which objects were
// already confirmed, so that a directory request costs a write only the
// first time it touches an object.
type reconcileGate struct {
	state     atomic.Int32
	mu        sync.Mutex
	confirmed map[string]bool // "User/id"
	lastCheck time.Time
}

// reconcileIsOpen reports whether the last restore's reconcile is still open.
func (s *server) reconcileIsOpen(ctx context.Context) bool {
	switch s.reconcile.state.Load() {
	case reconcileOpen:
		return true
	case reconcileClosed:
		return false
	}
	m, err := s.store.RestoreMarker(ctx)
	if err != nil {
		return false // not cached: asked again at the next request
	}
	if m != nil && m.Reconciled.IsZero() {
		s.reconcile.state.Store(reconcileOpen)
		return true
	}
	s.reconcile.state.Store(reconcileClosed)
	return false
}

// scimResourceType names the resource type of a SCIM path.
func scimResourceType(path string) string {
	switch {
	case strings.HasPrefix(path, scimBase+"/Users"):
		return "User"
	case strings.HasPrefix(path, scimBase+"/Groups"):
		return "Group"
	}
	return ""
}

// noteReconcile is the request middleware's hook: while a reconcile is
// open, an authenticated directory request that found an object confirms
// it, and one for an id the database lacks is counted.
func (s *server) noteReconcile(r *http.Request, ri *requestInfo, status int) {
	if !ri.scim {
		return
	}
	ctx := r.Context()
	if !s.reconcileIsOpen(ctx) {
		return
	}
	typ := scimResourceType(r.URL.Path)
	if typ == "" {
		return
	}
	if status == http.StatusNotFound && ri.resourceID != "" && r.Method != http.MethodPost {
		if err := s.store.NoteUnknownAfterRestore(ctx, typ, ri.resourceID, r.Method); err != nil {
			s.log.Warn("reconcile: count a request for an unknown id", "err", err)
		}
		return
	}
	for _, id := range ri.skippedMembers {
		if err := s.store.NoteUnknownAfterRestore(ctx, "member", id, r.Method+" member"); err != nil {
			s.log.Warn("reconcile: count a member reference to an unknown id", "err", err)
		}
	}
	if status >= 300 {
		return
	}
	ids := ri.listed
	if ri.resourceID != "" {
		ids = append(ids, ri.resourceID)
	}
	s.reconcile.mu.Lock()
	if s.reconcile.confirmed == nil {
		s.reconcile.confirmed = map[string]bool{}
	}
	var fresh []string
	for _, id := range ids {
		if !s.reconcile.confirmed[typ+"/"+id] {
			fresh = append(fresh, id)
		}
	}
	check := time.Since(s.reconcile.lastCheck) >= reconcileCheckEvery
	if check {
		s.reconcile.lastCheck = time.Now()
	}
	s.reconcile.mu.Unlock()
	if len(fresh) > 0 {
		if err := s.store.ConfirmSeen(ctx, typ, fresh); err != nil {
			s.log.Warn("reconcile: confirm objects", "err", err)
			return
		}
		s.reconcile.mu.Lock()
		for _, id := range fresh {
			s.reconcile.confirmed[typ+"/"+id] = true
		}
		s.reconcile.mu.Unlock()
	}
	if check {
		s.closeReconcileIfDone(ctx)
	}
}

// closeReconcileIfDone closes the reconcile once no user or group is left
// unconfirmed; it reports whether it did.
func (s *server) closeReconcileIfDone(ctx context.Context) bool {
	users, groups, err := s.store.ReconcileCounts(ctx)
	if err != nil || users+groups > 0 {
		return false
	}
	if err := s.store.CloseReconcile(ctx); err != nil {
		s.log.Warn("reconcile: close", "err", err)
		return false
	}
	s.reconcile.state.Store(reconcileClosed)
	s.log.Info("reconcile after the restore complete: the directory has touched every user and group again")
	return true
}

// restoreReport is the restore marker and the reconcile's progress, as the health report shows them.
type restoreReport struct {
	Point             time.Time `json:"point"`
	RestoredAt        time.Time `json:"restoredAt"`
	Reconciled        time.Time `json:"reconciled,omitzero"` // zero while the reconcile is open
	UnconfirmedUsers  int       `json:"unconfirmedUsers"`
	UnconfirmedGroups int       `json:"unconfirmedGroups"`
	UnknownIDRequests int       `json:"unknownIdRequests"` // Entra's InvalidAnchor: requests for ids the restore lost
}

// replicaAndRestore returns the replication's status (nil without a
// replica) and the last restore's report (nil when there was none, or when
// it cannot be read: the health report does not fail for it).
func (s *server) replicaAndRestore(ctx context.Context) (*replicaStatus, *restoreReport) {
	var rs *replicaStatus
	if s.replica != nil {
		st := s.replica.Status()
		rs = &st
	}
	m, err := s.store.RestoreMarker(ctx)
	if err != nil || m == nil {
		return rs, nil
	}
	rep := &restoreReport{Point: m.Point, RestoredAt: m.RestoredAt, Reconciled: m.Reconciled}
	st, err := s.store.Reconcile(ctx, 0)
	if err != nil {
		return rs, rep
	}
	rep.UnconfirmedUsers, rep.UnconfirmedGroups, rep.UnknownIDRequests = st.UnconfirmedUsers, st.UnconfirmedGroups, st.UnknownTotal
	return rs, rep
}

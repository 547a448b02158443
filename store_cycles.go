// The health record: Entra's provisioning cycles, written in the background
// from the in-memory tracker (cycles.go), and the member ids that group
// writes skipped because no user or group has them.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// cycleFlushEvery is how often changed cycles are written: like the
// provisioning log, never in the request's path.
const cycleFlushEvery = logFlushEvery

// Health returns the tracker of Entra's cycles and the quarantine risk.
func (s *Store) Health() *Health { return s.health }

// restoreHealth creates the tracker with the recent cycles from the database.
func (s *Store) restoreHealth(ctx context.Context) error {
	s.health = newHealth(func() time.Time { return s.now() })
	cycles, err := recentCycles(ctx, s.w, recentCycleCount)
	if err != nil {
		return err
	}
	for i, j := 0, len(cycles)-1; i < j; i, j = i+1, j-1 {
		cycles[i], cycles[j] = cycles[j], cycles[i]
	}
	s.health.restore(cycles)
	return nil
}

// cycleWriter writes the cycles the tracker changed, every cycleFlushEvery,
// and once more when ctx ends (the store is closing).
func (s *Store) cycleWriter(ctx context.Context) {
	tick := time.NewTicker(cycleFlushEvery)
	defer tick.Stop()
	flush := func() {
		cycles := s.health.takeDirty()
		if len(cycles) == 0 {
			return
		}
		err := s.saveCycles(context.Background(), cycles)
		if errors.Is(err, ErrDatabaseLost) {
			// Already reported once, where it was noticed; nothing can be
			// written until the admin restores and restarts.
			return
		}
		if err != nil {
			s.health.markDirty(cycles)
			s.log.Error("write provisioning cycles", "cycles", len(cycles), "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case <-tick.C:
			flush()
		}
	}
}

// saveCycles writes cycles (new or changed) and keeps the latest cycleHistory.
func (s *Store) saveCycles(ctx context.Context, cycles []Cycle) error {
	return s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		for _, c := range cycles {
			causes, err := json.Marshal(c.Causes)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO cycles (id, first_call, last_call, requests, events, failures,
				reference_failures, skipped_members, probe, first_op, first_status, causes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
				ON CONFLICT (id) DO UPDATE SET last_call = excluded.last_call, requests = excluded.requests,
				events = excluded.events, failures = excluded.failures, reference_failures = excluded.reference_failures,
				skipped_members = excluded.skipped_members, causes = excluded.causes`,
				c.ID, formatTime(c.FirstCall), formatTime(c.LastCall), c.Requests, c.Events, c.Failures,
				c.ReferenceFailures, c.SkippedMembers, c.Probe, c.FirstOp, c.FirstStatus, string(causes))
			if err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM cycles WHERE id <= (SELECT max(id) FROM cycles) - ?", cycleHistory)
		return err
	})
}

// RecentCycles returns up to limit persisted cycles, newest first. The
// cycle in progress is there as of its last write (at most a second old).
func (s *Store) RecentCycles(ctx context.Context, limit int) ([]Cycle, error) {
	cycles, err := recentCycles(ctx, s.r, limit)
	now := s.now()
	for i := range cycles {
		cycles[i] = cycles[i].view(now)
	}
	return cycles, err
}

// recentCycles reads the latest limit persisted cycles, newest first.
func recentCycles(ctx context.Context, q queryer, limit int) ([]Cycle, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, first_call, last_call, requests, events, failures, reference_failures,
		skipped_members, probe, first_op, first_status, causes FROM cycles ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("cycles: %w", err)
	}
	defer rows.Close()
	var out []Cycle
	for rows.Next() {
		var c Cycle
		var first, last, causes string
		if err := rows.Scan(&c.ID, &first, &last, &c.Requests, &c.Events, &c.Failures, &c.ReferenceFailures,
			&c.SkippedMembers, &c.Probe, &c.FirstOp, &c.FirstStatus, &causes); err != nil {
			return nil, fmt.Errorf("cycles: %w", err)
		}
		c.FirstCall, c.LastCall = parseTime(first), parseTime(last)
		if err := json.Unmarshal([]byte(causes), &c.Causes); err != nil {
			return nil, fmt.Errorf("cycle %d: causes: %w", c.ID, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SkippedMember is a member id a group write skipped because no user or group
// has it: Entra believes it is a member (it was answered with a success) and
// does not send it again until provisioning is restarted.
type SkippedMember struct {
	GroupID      string    `json:"groupId"`
	GroupName    string    `json:"groupName"`
	MemberID     string    `json:"memberId"`
	FirstSkipped time.Time `json:"firstSkipped"`
	LastSkipped  time.Time `json:"lastSkipped"`
	Count        int       `json:"count"` // how many requests named it
}

// SkippedSummary sums up the skipped member ids.
type SkippedSummary struct {
	IDs         int       `json:"ids"`    // distinct (group, member id) pairs
	Groups      int       `json:"groups"` // groups with any
	LastSkipped time.Time `json:"lastSkipped"`
}

// recordSkippedMembers notes, in the group write's transaction, member ids
// that were skipped.
func recordSkippedMembers(ctx context.Context, tx *sql.Tx, groupID string, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	at := formatTime(now)
	_, err := tx.ExecContext(ctx, `INSERT INTO skipped_members (group_id, member_id, first_skipped, last_skipped, count)
		SELECT ?1, j.value, ?3, ?3, 1 FROM json_each(?2) j WHERE true
		ON CONFLICT (group_id, member_id) DO UPDATE SET last_skipped = excluded.last_skipped, count = count + 1`,
		groupID, idList(ids), at)
	return err
}

// forgetSkippedMembers drops skipped ids that Entra has since removed from the
// group (all of them when ids is nil): the drift they stood for is gone.
func forgetSkippedMembers(ctx context.Context, tx *sql.Tx, groupID string, ids []string) error {
	if ids == nil {
		_, err := tx.ExecContext(ctx, "DELETE FROM skipped_members WHERE group_id = ?", groupID)
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM skipped_members WHERE group_id = ?
		AND member_id IN (SELECT value FROM json_each(?))`, groupID, idList(ids))
	return err
}

// keepSkippedMembers drops the skipped ids of a group that are not in ids: a
// replacement of the member list names every member Entra believes in.
func keepSkippedMembers(ctx context.Context, tx *sql.Tx, groupID string, ids []string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM skipped_members WHERE group_id = ?
		AND member_id NOT IN (SELECT value FROM json_each(?))`, groupID, idList(ids))
	return err
}

// SkippedMembers returns the skipped member ids of a group ("" for all
// groups), the most recently skipped first, at most limit.
func (s *Store) SkippedMembers(ctx context.Context, groupID string, limit int) ([]SkippedMember, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT k.group_id, coalesce(g.display_name, ''), k.member_id, k.first_skipped,
			k.last_skipped, k.count
		FROM skipped_members k LEFT JOIN groups g ON g.id = k.group_id
		WHERE ?1 = '' OR k.group_id = ?1 ORDER BY k.last_skipped DESC, k.member_id LIMIT ?2`, groupID, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("skipped members: %w", err)
	}
	defer rows.Close()
	out := []SkippedMember{}
	for rows.Next() {
		var m SkippedMember
		var first, last string
		if err := rows.Scan(&m.GroupID, &m.GroupName, &m.MemberID, &first, &last, &m.Count); err != nil {
			return nil, fmt.Errorf("skipped members: %w", err)
		}
		m.FirstSkipped, m.LastSkipped = parseTime(first), parseTime(last)
		out = append(out, m)
	}
	return out, rows.Err()
}

// SkippedMembersSummary counts the skipped member ids.
func (s *Store) SkippedMembersSummary(ctx context.Context) (SkippedSummary, error) {
	var sum SkippedSummary
	var last string
	err := s.r.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT group_id), coalesce(max(last_skipped), '')
		FROM skipped_members`).Scan(&sum.IDs, &sum.Groups, &last)
	if err != nil {
		return sum, fmt.Errorf("skipped members: %w", err)
	}
	sum.LastSkipped = parseTime(last)
	return sum, nil
}

// The health record: the member ids that group writes skipped because no
// user or group has them.

package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

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

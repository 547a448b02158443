// The drift report in the store: when the directory last wrote each user,
// and the parts of the report (drift.go) read from users, holds and
// skipped_members.

package main

import (
	"context"
	"fmt"
	"time"
)

// driftMigration adds users.directory_written: when the directory (a SCIM
// request) last wrote the user. Entra sends only changes, so a user it has
// not written for long may have left its scope without anything saying so.
// Existing directory users start from their last change, the best there is.
// The index serves the report's "not written since" range of directory users.
const driftMigration = `ALTER TABLE users ADD COLUMN directory_written TEXT;
	UPDATE users SET directory_written = modified WHERE kind = 'directory';
	CREATE INDEX users_directory_written ON users(kind, directory_written, id);`

// markDirectoryWrite records that the directory wrote u now (u.Modified is
// the write's time), when the write is the directory's: putUser calls it.
// A directory write that changes nothing writes no row and is not recorded.
func markDirectoryWrite(ctx context.Context, tx writeTx, u *User) error {
	if directoryWriteOf(ctx) == nil {
		return nil
	}
	_, err := tx.ExecContext(ctx, "UPDATE users SET directory_written = ? WHERE id = ?", formatTime(u.Modified), u.ID)
	return err
}

// untouchedUsersSQL lists the directory's users it has not written since ?1,
// the longest untouched first, in the order of users_directory_written.
const untouchedUsersSQL = `SELECT id, user_name, coalesce(display_name, ''), directory_written FROM users
	WHERE kind = 'directory' AND directory_written < ?1 ORDER BY directory_written, id LIMIT ?2`

// UntouchedUsers returns the directory's users it has not written since
// since, the longest untouched first, at most limit, and how many in all.
func (s *Store) UntouchedUsers(ctx context.Context, since time.Time, limit int) ([]DriftUser, int, error) {
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE kind = 'directory' AND directory_written < ?",
		formatTime(since)).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("untouched users: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, untouchedUsersSQL, formatTime(since), max(limit, 1))
	if err != nil {
		return nil, 0, fmt.Errorf("untouched users: %w", err)
	}
	defer rows.Close()
	var out []DriftUser
	for rows.Next() {
		var u DriftUser
		var at string
		if err := rows.Scan(&u.ID, &u.UserName, &u.DisplayName, &at); err != nil {
			return nil, 0, fmt.Errorf("untouched users: %w", err)
		}
		u.LastDirectoryWrite = parseTime(at)
		out = append(out, u)
	}
	return out, total, rows.Err()
}

// HeldMemberships returns the membership removals waiting for an admin's
// review (those held with a user's delete too), oldest first, at most limit,
// and how many in all.
func (s *Store) HeldMemberships(ctx context.Context, limit int) ([]Hold, int, error) {
	const cond = " WHERE kind = 'member-remove' AND state = 'held'"
	var total int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM holds"+cond).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("held memberships: %w", err)
	}
	holds, err := queryHolds(ctx, s.r, holdSelect+cond+" ORDER BY id LIMIT ?", max(limit, 1))
	if err != nil {
		return nil, 0, fmt.Errorf("held memberships: %w", err)
	}
	return holds, total, nil
}

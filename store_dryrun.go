// The dry runs' reads (dryrun.go): every user in turn, the accounts the
// directory asked for and was refused, and counts of accounts by kind.

package main

import (
	"context"
	"fmt"
)

// EachUser calls fn for every user (with groups and roles, as UsersAfter
// reads them), a batch at a time, in creation order; an error from fn stops it.
func (s *Store) EachUser(ctx context.Context, fn func(u *User) error) error {
	const batch = 500
	for after := int64(0); ; {
		users, next, err := s.UsersAfter(ctx, after, batch, true)
		if err != nil {
			return err
		}
		for _, u := range users {
			if err := fn(u); err != nil {
				return err
			}
		}
		if len(users) < batch {
			return nil
		}
		after = next
	}
}

// refusedCreatesSQL lists the userNames of the directory's user creations
// refused as conflicts that the provisioning log still holds.
const refusedCreatesSQL = `SELECT DISTINCT target FROM provisioning_log
	WHERE outcome = 'failure' AND status = 409 AND op = 'create user' AND resource_type = 'User'`

// RefusedClaims returns the accounts SCIM cannot see (manual, deprovisioned,
// retained) whose userName the directory sent in a creation that was
// refused as a conflict, as far as the provisioning log remembers.
func (s *Store) RefusedClaims(ctx context.Context) ([]*User, error) {
	names, err := queryStrings(ctx, s.r, refusedCreatesSQL)
	if err != nil {
		return nil, fmt.Errorf("refused claims: %w", err)
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = userNameKey(n)
	}
	rows, err := s.r.QueryContext(ctx, userSelect+` WHERE users.user_name_key IN (SELECT value FROM json_each(?))
		AND users.kind <> 'directory' ORDER BY users.user_name_key`, idList(keys))
	if err != nil {
		return nil, fmt.Errorf("refused claims: %w", err)
	}
	defer rows.Close()
	var out []*User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("refused claims: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CountUsersOfKind counts the accounts of one kind (accountManual, …).
func (s *Store) CountUsersOfKind(ctx context.Context, kind string) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM users WHERE kind = ?", kind).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s accounts: %w", kind, err)
	}
	return n, nil
}

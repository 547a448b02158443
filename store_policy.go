// Source of truth in the store: the policy setting, claims, deprovisioning, purges and disconnect.

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// Policy returns the source-of-truth policy (the hybrid preset until the admin changes it).
func (s *Store) Policy(ctx context.Context) (Policy, error) {
	p, err := s.policyIn(ctx, s.r)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return maps.Clone(p), nil
}

// SetPolicy stores the source-of-truth policy.
func (s *Store) SetPolicy(ctx context.Context, p Policy) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode policy: %w", err)
	}
	if err := s.SetSetting(ctx, settingPolicy, string(raw)); err != nil {
		return err
	}
	p = maps.Clone(p)
	s.policy.Store(&p)
	return nil
}

// ClaimUser hands the account holding userName to fn inside one write
// transaction, when that account is not directory-managed: fn turns it into a
// directory account (a claim of a manual account, or the return of a
// deprovisioned one) or refuses with an error. It returns ErrConflict when a
// directory account holds the name, ErrNotFound when none does.
func (s *Store) ClaimUser(ctx context.Context, userName string, fn func(u *User) error) (*User, error) {
	var out *User
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.user_name_key = ?", userNameKey(userName)))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if u.Kind == accountDirectory {
			return fmt.Errorf("%w: userName %q is already taken", ErrConflict, userName)
		}
		prev := copyUser(u)
		if err := fn(u); err != nil {
			return err
		}
		if prev.Kind == accountRetained {
			if err := restoreRetained(ctx, tx, now, u); err != nil {
				return err
			}
		}
		u.Modified, u.Version = now, u.Version+1
		if err := putUser(ctx, tx, u, false); err != nil {
			return err
		}
		if err := s.userEvents(ctx, tx, now, prev, u); err != nil {
			return err
		}
		out = u
		return fillUserGroups(ctx, tx, []*User{u})
	})
	if err != nil {
		return nil, fmt.Errorf("claim user: %w", err)
	}
	return out, nil
}

// Deprovision keeps a user the directory deleted, disabled and hidden from
// the directory, and takes it out of its groups. check, if not nil, sees the
// user inside the transaction and may veto. It returns ErrNotFound, also for
// an account the directory does not manage.
func (s *Store) Deprovision(ctx context.Context, id string, check func(u *User) error) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ? AND users.kind = 'directory'", id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(u); err != nil {
				return err
			}
		}
		if retained, err := s.retainDirectoryDelete(ctx, tx, now, u, deprovisionHide); err != nil || retained {
			return err
		}
		return s.deprovisionIn(ctx, tx, now, u)
	})
	if err != nil {
		return fmt.Errorf("deprovision user: %w", err)
	}
	return nil
}

// deprovisionIn disables u, hides it from the directory and takes it out of
// its groups, recording the events. Values a safety rail kept go with the delete.
func (s *Store) deprovisionIn(ctx context.Context, tx *sql.Tx, now time.Time, u *User) error {
	prev := copyUser(u)
	u.Kind, u.Modified, u.Version = accountDeprovisioned, now, u.Version+1
	u.Attrs["active"] = false
	for key, o := range u.Overrides {
		if o.Hold != 0 {
			delete(u.Overrides, key)
		}
	}
	if err := s.removeMemberEverywhere(ctx, tx, u.ID, now); err != nil {
		return err
	}
	if err := putUser(ctx, tx, u, false); err != nil {
		return err
	}
	return s.userEvents(ctx, tx, now, prev, u)
}

// disconnectBatch is how many accounts Disconnect converts per transaction,
// so that it never holds the only writer for long.
const disconnectBatch = 500

// Disconnect ends the directory connection: every SCIM token is revoked and
// every directory account becomes a manual one with its effective values.
// Groups stay. It returns how many accounts were converted. The tokens go
// first, so no new directory write comes between the batches; a Disconnect
// that fails half-way converted whole batches and is finished by running it again.
func (s *Store) Disconnect(ctx context.Context, p Policy) (int, error) {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM tokens")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("disconnect: %w", err)
	}
	s.mu.Lock()
	clear(s.lastUsed)
	s.mu.Unlock()
	n := 0
	for {
		converted := 0
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
			rows, err := tx.QueryContext(ctx, userSelect+" WHERE users.kind = 'directory' LIMIT ?", disconnectBatch)
			if err != nil {
				return err
			}
			var users []*User
			for rows.Next() {
				u, err := scanUser(rows)
				if err != nil {
					rows.Close()
					return err
				}
				users = append(users, u)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, u := range users {
				u, _ := disconnectUser(u, p) // the dry run (disconnectPlan) asks the same function
				u.Modified, u.Version = now, u.Version+1
				if err := putUser(ctx, tx, u, false); err != nil {
					return err
				}
			}
			converted = len(users)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("disconnect: %d accounts converted, then: %w", n, err)
		}
		n += converted
		if converted < disconnectBatch {
			return n, nil
		}
	}
}

// PurgeInactive deletes the accounts the directory disabled more than days
// ago, with their memberships, and returns their userNames: directory
// accounts that are disabled, and the ones a "hide" deprovisioning kept
// (disabled when the directory deleted them). Manual accounts stay.
func (s *Store) PurgeInactive(ctx context.Context, days int) ([]string, error) {
	var names []string
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		// A user whose active value a safety rail keeps is active for apps: never purged.
		rows, err := tx.QueryContext(ctx, `SELECT id, user_name FROM users WHERE kind IN ('directory', 'deprovisioned') AND inactive_since IS NOT NULL
			AND inactive_since < ? AND overrides->>'$.active.hold' IS NULL`, formatTime(now.AddDate(0, 0, -days)))
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id, name string
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return err
			}
			ids, names = append(ids, id), append(names, name)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			u, err := scanUser(tx.QueryRowContext(ctx, userSelect+" WHERE users.id = ?", id))
			if err != nil {
				return err
			}
			if err := s.deleteUserIn(ctx, tx, now, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("purge inactive users: %w", err)
	}
	return names, nil
}

// Several admins: their roles, invitations by one-time link, SSO accounts
// and the rule that a local owner always remains (the break-glass account).

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// adminsMigration gives every admin a role (the one admin of older versions
// becomes an owner) and an SSO subject (NULL for a local account), and adds
// invitations and the audit trail of admin actions (store_audit.go).
const adminsMigration = `ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
	ALTER TABLE admins ADD COLUMN sso_subject TEXT;
	CREATE UNIQUE INDEX admins_sso_subject ON admins(sso_subject) WHERE sso_subject IS NOT NULL;
	CREATE TABLE admin_invites (
		id INTEGER PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		role TEXT NOT NULL,
		created_by TEXT NOT NULL,
		created TEXT NOT NULL,
		expires TEXT NOT NULL
	) STRICT;
	CREATE TABLE audit (
		id INTEGER PRIMARY KEY,
		at TEXT NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		outcome TEXT NOT NULL,
		client TEXT NOT NULL,
		detail TEXT NOT NULL
	) STRICT;
	CREATE INDEX audit_actor ON audit(actor COLLATE NOCASE, id);
	CREATE INDEX audit_outcome ON audit(outcome, id);
	CREATE INDEX audit_at ON audit(at);`

// adminColumns are the columns Admin is scanned from, in its field order.
const adminColumns = "id, username, password_hash, role, coalesce(sso_subject, '')"

// AdminRole is what an admin may do on the admin page.
type AdminRole string

const (
	RoleViewer AdminRole = "viewer" // reads everything but secrets, changes nothing
	RoleAdmin  AdminRole = "admin"  // operates: tokens, keys, users, settings
	RoleOwner  AdminRole = "owner"  // everything, including admins, SSO and disconnecting
)

// adminRoles are the roles in rising order of power.
var adminRoles = []AdminRole{RoleViewer, RoleAdmin, RoleOwner}

// rank orders roles by power; an unknown role ranks below every known one.
func (r AdminRole) rank() int {
	for i, known := range adminRoles {
		if r == known {
			return i + 1
		}
	}
	return 0
}

// Allows reports whether role r may do what needs role need.
func (r AdminRole) Allows(need AdminRole) bool { return r.rank() > 0 && r.rank() >= need.rank() }

// ErrLastOwner is returned by a change that would leave no local owner: the
// break-glass account that signs in when the identity provider cannot.
var ErrLastOwner = errors.New("at least one local owner must remain: it is the way in when single sign-on fails")

// Admins lists every admin account, local ones first.
func (s *Store) Admins(ctx context.Context) ([]Admin, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+adminColumns+" FROM admins ORDER BY sso_subject IS NOT NULL, username COLLATE NOCASE")
	if err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	defer rows.Close()
	var out []Admin
	for rows.Next() {
		var a Admin
		if err := rows.Scan(&a.ID, &a.Username, &a.PasswordHash, &a.Role, &a.SSOSubject); err != nil {
			return nil, fmt.Errorf("list admins: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list admins: %w", err)
	}
	return out, nil
}

// checkLocalOwnerRemains fails with ErrLastOwner when no local owner is left in tx.
func checkLocalOwnerRemains(ctx context.Context, tx *sql.Tx) error {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM admins WHERE role = 'owner' AND sso_subject IS NULL").Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrLastOwner
	}
	return nil
}

// SetAdminRole changes a local admin's role. It returns ErrNotFound for an
// unknown or SSO admin (whose role the identity provider's groups decide) and
// ErrLastOwner when it would demote the last local owner.
func (s *Store) SetAdminRole(ctx context.Context, id int64, role AdminRole) error {
	if role.rank() == 0 {
		return fmt.Errorf("set admin role: unknown role %q", role)
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		res, err := tx.ExecContext(ctx, "UPDATE admins SET role = ?, updated = ? WHERE id = ? AND sso_subject IS NULL", role, formatTime(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return checkLocalOwnerRemains(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("set role of admin %d: %w", id, err)
	}
	return nil
}

// DeleteAdmin removes an admin account and its sessions; ErrNotFound if
// there is none, ErrLastOwner when it is the last local owner.
func (s *Store) DeleteAdmin(ctx context.Context, id int64) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM admins WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return checkLocalOwnerRemains(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("delete admin %d: %w", id, err)
	}
	return nil
}

// Invite is a pending invitation to become a local admin.
type Invite struct {
	ID        int64
	Role      AdminRole
	CreatedBy string
	Expires   time.Time
}

// CreateInvite makes a one-time code, valid for validFor, that lets its
// holder create a local admin account with role. Only its hash is stored.
func (s *Store) CreateInvite(ctx context.Context, role AdminRole, by string, validFor time.Duration) (string, error) {
	if role.rank() == 0 {
		return "", fmt.Errorf("create invite: unknown role %q", role)
	}
	code := randomBase62(32)
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM admin_invites WHERE expires < ?", formatTime(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO admin_invites (hash, role, created_by, created, expires) VALUES (?, ?, ?, ?, ?)",
			tokenHash(code), role, by, formatTime(now), formatTime(now.Add(validFor)))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create invite: %w", err)
	}
	return code, nil
}

// Invites lists the pending, unexpired invitations.
func (s *Store) Invites(ctx context.Context) ([]Invite, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, role, created_by, expires FROM admin_invites WHERE expires >= ? ORDER BY id", formatTime(s.now()))
	if err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	defer rows.Close()
	var out []Invite
	for rows.Next() {
		var inv Invite
		var expires string
		if err := rows.Scan(&inv.ID, &inv.Role, &inv.CreatedBy, &expires); err != nil {
			return nil, fmt.Errorf("list invites: %w", err)
		}
		inv.Expires = parseTime(expires)
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list invites: %w", err)
	}
	return out, nil
}

// RevokeInvite deletes a pending invitation.
func (s *Store) RevokeInvite(ctx context.Context, id int64) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM admin_invites WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke invite %d: %w", id, err)
	}
	return nil
}

// inviteByCode returns the unexpired invitation code opens, or ErrBadSetupCode.
func inviteByCode(ctx context.Context, q queryer, code string, now time.Time) (Invite, error) {
	var inv Invite
	err := q.QueryRowContext(ctx, "SELECT id, role, created_by FROM admin_invites WHERE hash = ? AND expires >= ?", tokenHash(code), formatTime(now)).
		Scan(&inv.ID, &inv.Role, &inv.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return inv, ErrBadSetupCode
	}
	return inv, err
}

// InviteByCode returns the invitation a code opens, or ErrBadSetupCode when
// it is wrong, used or expired. The code is looked up by its SHA-256, which
// an attacker cannot aim at.
func (s *Store) InviteByCode(ctx context.Context, code string) (Invite, error) {
	inv, err := inviteByCode(ctx, s.r, code, s.now())
	if err != nil && !errors.Is(err, ErrBadSetupCode) {
		return inv, fmt.Errorf("invite: %w", err)
	}
	return inv, err
}

// AcceptInvite uses up an invitation code and creates the local admin it
// invites. It returns ErrBadSetupCode for a wrong, used or expired code and
// ErrConflict when the username is taken.
func (s *Store) AcceptInvite(ctx context.Context, code, username, passwordHash string) (Admin, error) {
	adm := Admin{Username: username, PasswordHash: passwordHash}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		inv, err := inviteByCode(ctx, tx, code, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM admin_invites WHERE id = ?", inv.ID); err != nil {
			return err
		}
		adm.Role = inv.Role
		return tx.QueryRowContext(ctx, "INSERT INTO admins (username, password_hash, role, created, updated) VALUES (?, ?, ?, ?, ?) RETURNING id",
			username, passwordHash, inv.Role, formatTime(now), formatTime(now)).Scan(&adm.ID)
	})
	if err != nil {
		return adm, fmt.Errorf("accept invite as %q: %w", username, err)
	}
	return adm, nil
}

// SignInSSOAdmin creates or updates the SSO admin with subject (the
// issuer's URL and the person's sub), giving it role and the name it signs in
// with; a name another admin holds gets the subject's start appended. A
// person whose role is "" (in no mapped group) loses the account and every
// session: ErrNotFound is returned.
func (s *Store) SignInSSOAdmin(ctx context.Context, subject, name string, role AdminRole) (Admin, error) {
	adm := Admin{SSOSubject: subject, Username: name, Role: role}
	if role == "" {
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
			_, err := tx.ExecContext(ctx, "DELETE FROM admins WHERE sso_subject = ?", subject)
			return err
		})
		if err != nil {
			return adm, fmt.Errorf("sso sign-in of %q: %w", name, err)
		}
		return adm, ErrNotFound
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var taken int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM admins WHERE username = ? COLLATE NOCASE AND coalesce(sso_subject, '') <> ?", name, subject).Scan(&taken); err != nil {
			return err
		}
		if taken > 0 {
			adm.Username = fmt.Sprintf("%s (%.8s)", name, tokenHashHex(subject))
		}
		return tx.QueryRowContext(ctx, `INSERT INTO admins (username, password_hash, role, sso_subject, created, updated) VALUES (?, '', ?, ?, ?, ?)
			ON CONFLICT (sso_subject) WHERE sso_subject IS NOT NULL DO UPDATE SET username = excluded.username, role = excluded.role, updated = excluded.updated
			RETURNING id`, adm.Username, role, subject, formatTime(now), formatTime(now)).Scan(&adm.ID)
	})
	if err != nil {
		return adm, fmt.Errorf("sso sign-in of %q: %w", name, err)
	}
	return adm, nil
}

// tokenHashHex is the hex SHA-256 of s, for short stable names.
func tokenHashHex(s string) string { return fmt.Sprintf("%x", tokenHash(s)) }

// SaveSSOSettings stores the single sign-on settings kv in one transaction.
// When sso_mandatory becomes "true" it also ends the sessions of local
// admins other than owners, who may no longer sign in with a password.
func (s *Store) SaveSSOSettings(ctx context.Context, kv map[string]string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		if err := putSettings(ctx, tx, kv); err != nil {
			return err
		}
		if kv[settingSSOMandatory] != "true" {
			return nil
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE admin_id IN
			(SELECT id FROM admins WHERE sso_subject IS NULL AND role <> 'owner')`)
		return err
	})
	if err != nil {
		return fmt.Errorf("save single sign-on settings: %w", err)
	}
	return nil
}

// FirstLocalOwner returns the local owner a setup code resets (the
// break-glass account), or ErrNotFound before the first-run setup.
func (s *Store) FirstLocalOwner(ctx context.Context) (Admin, error) {
	var a Admin
	err := s.r.QueryRowContext(ctx, "SELECT "+adminColumns+" FROM admins WHERE sso_subject IS NULL AND role = 'owner' ORDER BY id LIMIT 1").
		Scan(&a.ID, &a.Username, &a.PasswordHash, &a.Role, &a.SSOSubject)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("first local owner: %w", err)
	}
	return a, nil
}

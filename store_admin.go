// The admin account, first-run setup codes, settings and the dashboard's figures.

package main

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Admin is an account of the admin page: a local one with a password, or
// one that signs in with OpenID Connect (SSOSubject set, no password).
type Admin struct {
	ID           int64
	Username     string
	PasswordHash string
	Role         AdminRole
	SSOSubject   string // issuer and subject of an SSO admin; "" for a local one
}

// Local reports whether a signs in with a password rather than SSO.
func (a Admin) Local() bool { return a.SSOSubject == "" }

// AdminExists reports whether the first-run setup has been completed.
func (s *Store) AdminExists(ctx context.Context) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM admins").Scan(&n); err != nil {
		return false, fmt.Errorf("count admins: %w", err)
	}
	return n > 0, nil
}

// NewSetupCode creates a one-time code, valid for validFor, that lets its
// holder set the admin password (first run, or a reset). Only its hash is
// stored; it replaces any earlier code.
func (s *Store) NewSetupCode(ctx context.Context, validFor time.Duration) (string, error) {
	code := randomBase62(32)
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		return putSettings(ctx, tx, map[string]string{
			"setup_code_hash":    fmt.Sprintf("%x", tokenHash(code)),
			"setup_code_expires": formatTime(now.Add(validFor)),
		})
	})
	if err != nil {
		return "", fmt.Errorf("new setup code: %w", err)
	}
	return code, nil
}

// putSettings upserts settings inside tx.
func putSettings(ctx context.Context, tx *sql.Tx, kv map[string]string) error {
	for k, v := range kv {
		if _, err := tx.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", k, v); err != nil {
			return err
		}
	}
	return nil
}

// setting reads one setting, "" when it was never set.
func setting(ctx context.Context, q queryer, key string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// Setting returns a setting's value, or "" if it is not set.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	v, err := setting(ctx, s.r, key)
	if err != nil {
		return "", fmt.Errorf("setting %s: %w", key, err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		return putSettings(ctx, tx, map[string]string{key: value})
	})
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// checkSetupCode reports whether code is the current, unexpired setup code.
func checkSetupCode(ctx context.Context, q queryer, code string, now time.Time) (bool, error) {
	hash, err := setting(ctx, q, "setup_code_hash")
	if err != nil || hash == "" {
		return false, err
	}
	expires, err := setting(ctx, q, "setup_code_expires")
	if err != nil {
		return false, err
	}
	ok := subtle.ConstantTimeCompare([]byte(hash), []byte(fmt.Sprintf("%x", tokenHash(code)))) == 1
	return ok && now.Before(parseTime(expires)), nil
}

// SetupCodeValid reports whether code is the current, unexpired setup code.
func (s *Store) SetupCodeValid(ctx context.Context, code string) (bool, error) {
	ok, err := checkSetupCode(ctx, s.r, code, s.now())
	if err != nil {
		return false, fmt.Errorf("check setup code: %w", err)
	}
	return ok, nil
}

// ErrBadSetupCode is returned when a setup code is wrong, used or expired.
var ErrBadSetupCode = errors.New("the setup link is invalid or has expired")

// SetupAdmin uses a setup code to create the admin account, or to set the
// existing admin's password (a reset); all sessions end and the code is used up.
func (s *Store) SetupAdmin(ctx context.Context, code, username, passwordHash string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		ok, err := checkSetupCode(ctx, tx, code, now)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadSetupCode
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM settings WHERE key IN ('setup_code_hash', 'setup_code_expires')"); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions"); err != nil {
			return err
		}
		// A reset is for a locked-out admin: let the new password in at once.
		if _, err := tx.ExecContext(ctx, "DELETE FROM password_attempts"); err != nil {
			return err
		}
		var id int64
		// The code is the break-glass way in: it sets the first local owner's password.
		err = tx.QueryRowContext(ctx, "SELECT id FROM admins WHERE sso_subject IS NULL AND role = 'owner' ORDER BY id LIMIT 1").Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, "INSERT INTO admins (username, password_hash, created, updated, role) VALUES (?, ?, ?, ?, 'owner')",
				username, passwordHash, formatTime(now), formatTime(now))
		case err == nil:
			_, err = tx.ExecContext(ctx, "UPDATE admins SET username = ?, password_hash = ?, updated = ? WHERE id = ?",
				username, passwordHash, formatTime(now), id)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set up admin: %w", err)
	}
	return nil
}

// AdminByUsername returns the admin with that username (case-insensitive), or ErrNotFound.
func (s *Store) AdminByUsername(ctx context.Context, username string) (Admin, error) {
	var a Admin
	err := s.r.QueryRowContext(ctx, "SELECT "+adminColumns+" FROM admins WHERE username = ? COLLATE NOCASE", username).
		Scan(&a.ID, &a.Username, &a.PasswordHash, &a.Role, &a.SSOSubject)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("admin %q: %w", username, err)
	}
	return a, nil
}

// AdminByID returns the admin with that id, or ErrNotFound.
func (s *Store) AdminByID(ctx context.Context, id int64) (Admin, error) {
	var a Admin
	err := s.r.QueryRowContext(ctx, "SELECT "+adminColumns+" FROM admins WHERE id = ?", id).
		Scan(&a.ID, &a.Username, &a.PasswordHash, &a.Role, &a.SSOSubject)
	if errors.Is(err, sql.ErrNoRows) {
		return a, ErrNotFound
	}
	if err != nil {
		return a, fmt.Errorf("admin %d: %w", id, err)
	}
	return a, nil
}

// SetAdminPassword changes an admin's password and ends its other sessions.
func (s *Store) SetAdminPassword(ctx context.Context, adminID int64, passwordHash, keepSession string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "UPDATE admins SET password_hash = ?, updated = ? WHERE id = ?", passwordHash, formatTime(now), adminID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE admin_id = ? AND id <> ?", adminID, keepSession)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

// maxPasswordAttemptRows bounds the password_attempts table under a spray
// of client addresses; the oldest attempts are forgotten first.
const maxPasswordAttemptRows = 100_000

// ReservePasswordAttempt counts one password attempt by key (a client
// address at login, an admin changing its password) before the password is
// checked, so that concurrent attempts cannot all pass a check made before
// any of them was counted. If limit attempts were made within window it
// counts nothing and returns how long key must wait; otherwise it returns 0.
// Attempts are kept in the database, so a restart does not reset them;
// ClearPasswordAttempts forgets them after a success.
func (s *Store) ReservePasswordAttempt(ctx context.Context, key string, limit int, window time.Duration) (time.Duration, error) {
	var wait time.Duration
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		if _, err := tx.ExecContext(ctx, "DELETE FROM password_attempts WHERE at <= ?", formatTime(now.Add(-window))); err != nil {
			return err
		}
		var n int
		var oldest string
		err := tx.QueryRowContext(ctx, "SELECT count(*), coalesce(min(at), '') FROM password_attempts WHERE key = ?", key).Scan(&n, &oldest)
		if err != nil {
			return err
		}
		if n >= limit {
			wait = max(window-now.Sub(parseTime(oldest)), time.Second)
			return nil
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO password_attempts (key, at) VALUES (?, ?)", key, formatTime(now)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM password_attempts WHERE id <= (SELECT max(id) FROM password_attempts) - ?", maxPasswordAttemptRows)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reserve password attempt: %w", err)
	}
	return wait, nil
}

// ClearPasswordAttempts forgets key's password attempts, after a success.
func (s *Store) ClearPasswordAttempts(ctx context.Context, key string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM password_attempts WHERE key = ?", key)
		return err
	})
	if err != nil {
		return fmt.Errorf("clear password attempts: %w", err)
	}
	return nil
}

// Stats are the dashboard's figures.
type Stats struct {
	Users, ActiveUsers, Groups int
	Failures24h                int
	LastChange                 time.Time // newest provisioning log entry
}

// Stats counts users, groups and recent failures.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var last string
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users WHERE active = 1),
		(SELECT count(*) FROM groups), (SELECT count(*) FROM provisioning_log WHERE outcome = 'failure' AND at >= ?),
		coalesce((SELECT at FROM provisioning_log ORDER BY id DESC LIMIT 1), '')`, formatTime(s.now().Add(-24*time.Hour))).
		Scan(&st.Users, &st.ActiveUsers, &st.Groups, &st.Failures24h, &last)
	if err != nil {
		return st, fmt.Errorf("stats: %w", err)
	}
	st.LastChange = parseTime(last)
	return st, nil
}

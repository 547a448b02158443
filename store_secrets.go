// Secrets: SCIM tokens, app keys and admin sessions, stored only as hashes.

package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Token is a SCIM bearer token's record; the secret itself is never stored.
type Token struct {
	ID       string
	Name     string
	Created  time.Time
	LastUsed time.Time // zero if never used
	// Scope is what an app key opens: scopeAPI (/api/v1) or scopeLDAP (LDAP
	// binds); empty for SCIM tokens.
	Scope string
}

// App key scopes: a key opens one interface only, so that a key handed to
// an LDAP client cannot read /api/v1 and the other way round.
const (
	scopeAPI  = "api"
	scopeLDAP = "ldap"
)

// ErrWrongScope: the app key is valid but was created for another interface.
var ErrWrongScope = errors.New("the app key's scope does not open this interface")

const (
	tokenPrefix    = "scimbox_" // makes a leaked token recognisable to secret scanners
	tokenIDLen     = 8          // the public id: looked up, shown on the Connection page
	tokenSecretLen = 35         // base62 characters: about 208 bits
	tokenCRCLen    = 6          // a checksum: a mistyped or made-up token is refused without a database lookup
	// base62 is the alphabet of tokens: no character a URL, a shell or a double-click splits on.
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// lastUsedEvery bounds how often a token's last use is written.
	lastUsedEvery = time.Minute
)

// randomBase62 returns n characters from crypto/rand.
func randomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = base62[v.Int64()]
	}
	return string(b)
}

// crcBase62 is s's CRC-32 in tokenCRCLen base62 characters.
func crcBase62(s string) string {
	v := uint64(crc32.ChecksumIEEE([]byte(s)))
	b := make([]byte, tokenCRCLen)
	for i := tokenCRCLen - 1; i >= 0; i-- {
		b[i] = base62[v%62]
		v /= 62
	}
	return string(b)
}

// parseToken splits a token into its id, checking its shape and checksum.
func parseToken(tok string) (id string, ok bool) { return parseSecret(tokenPrefix, tok) }

// parseSecret checks the shape and checksum of a prefixed secret (SCIM token
// or app key) and returns its id.
func parseSecret(prefix, tok string) (id string, ok bool) {
	if len(tok) != len(prefix)+tokenIDLen+tokenSecretLen+tokenCRCLen || !strings.HasPrefix(tok, prefix) {
		return "", false
	}
	body, sum := tok[:len(tok)-tokenCRCLen], tok[len(tok)-tokenCRCLen:]
	if subtle.ConstantTimeCompare([]byte(crcBase62(body)), []byte(sum)) != 1 {
		return "", false
	}
	return tok[len(prefix) : len(prefix)+tokenIDLen], true
}

// newSecret returns a new prefixed secret and its id.
func newSecret(prefix string) (plain, id string) {
	id = randomBase62(tokenIDLen)
	body := prefix + id + randomBase62(tokenSecretLen)
	return body + crcBase62(body), id
}

// tokenHash is what is stored of a secret: its SHA-256 (the secret is random, so no salt or slow hash is needed).
func tokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// secretKind is a table of hashed bearer secrets: SCIM tokens or app keys.
// scope is the SQL expression of a secret's scope (” where there is none).
type secretKind struct{ table, prefix, what, scope string }

var (
	// scimTokens are the Secret Tokens for SCIM; appKeys are the keys of the read API and of LDAP binds.
	scimTokens = secretKind{"tokens", tokenPrefix, "token", "''"}
	appKeys    = secretKind{"app_keys", appKeyPrefix, "app key", "scope"}
)

// createSecret creates a secret and returns it in clear text: the only time it
// exists outside the client. Only its SHA-256 is stored.
func (s *Store) createSecret(ctx context.Context, k secretKind, name, scope string) (string, Token, error) {
	plain, id := newSecret(k.prefix)
	t := Token{ID: id, Name: name, Scope: scope}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		t.Created = now
		var err error
		if scope == "" {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+k.table+" (id, name, hash, created) VALUES (?, ?, ?, ?)",
				id, name, tokenHash(plain), formatTime(now))
		} else {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+k.table+" (id, name, hash, created, scope) VALUES (?, ?, ?, ?, ?)",
				id, name, tokenHash(plain), formatTime(now), scope)
		}
		return err
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create %s: %w", k.what, err)
	}
	return plain, t, nil
}

// listSecrets lists the secrets of kind k, oldest first, never their hashes.
func (s *Store) listSecrets(ctx context.Context, k secretKind) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT id, name, created, coalesce(last_used, ''), "+k.scope+" FROM "+k.table+" ORDER BY created, id")
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", k.what, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var created, used string
		if err := rows.Scan(&t.ID, &t.Name, &created, &used, &t.Scope); err != nil {
			return nil, fmt.Errorf("list %ss: %w", k.what, err)
		}
		t.Created, t.LastUsed = parseTime(created), parseTime(used)
		out = append(out, t)
	}
	return out, rows.Err()
}

// revokeSecret deletes a secret; ErrNotFound if there is none with id. Its
// cached hash goes at once; servers in other processes notice the deletion
// by the generation its trigger bumps.
func (s *Store) revokeSecret(ctx context.Context, k secretKind, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM "+k.table+" WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s %q: %w", k.what, id, ErrNotFound)
		}
		return nil
	})
	s.secrets.forget(k.table + ":" + id)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", k.what, err)
	}
	return nil
}

// lookupSQL reads a secret of kind k by its id.
func (k secretKind) lookupSQL() string {
	return "SELECT id, name, hash, created, " + k.scope + " FROM " + k.table + " WHERE id = ?"
}

// secretsGenerationSQL reads the generation that every deletion of a SCIM
// token or app key bumps (a trigger does, in whatever process deletes it).
const secretsGenerationSQL = "SELECT value FROM settings WHERE key = 'secrets_generation'"

// secretCache holds the stored records of SCIM tokens and app keys that were
// looked up, keyed by table and id, for as long as no secret is deleted: a
// request then costs one read of the generation (one indexed row, prepared)
// instead of the lookup. Every deletion bumps the generation, so a
// revocation made by another process (scimbox token revoke) holds from the
// next request; one made here also forgets its entry at once.
type secretCache struct {
	mu         sync.Mutex
	generation string // the generation the entries were read under
	entries    map[string]cachedSecret
}

type cachedSecret struct {
	t    Token
	hash []byte
}

// get returns the entry for key if it was read under generation; a
// different generation empties the cache.
func (c *secretCache) get(generation, key string) (cachedSecret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if generation != c.generation {
		c.generation, c.entries = generation, nil
	}
	e, ok := c.entries[key]
	return e, ok
}

// put keeps an entry read after the generation was read, unless the cache
// has since moved to another generation: the entry may predate a deletion.
func (c *secretCache) put(generation, key string, e cachedSecret) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if generation != c.generation {
		return
	}
	if c.entries == nil {
		c.entries = map[string]cachedSecret{}
	}
	c.entries[key] = e
}

func (c *secretCache) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

// lookupSecret returns the stored record and hash of a secret by id, from the
// cache when no secret was deleted since it was read, or ErrNotFound.
func (s *Store) lookupSecret(ctx context.Context, k secretKind, id string) (cachedSecret, error) {
	var generation string
	err := s.rstmts.QueryRowContext(ctx, secretsGenerationSQL).Scan(&generation)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return cachedSecret{}, fmt.Errorf("authenticate: %w", err)
	}
	key := k.table + ":" + id
	if e, ok := s.secrets.get(generation, key); ok {
		return e, nil
	}
	var e cachedSecret
	var created string
	err = s.rstmts.QueryRowContext(ctx, k.lookupSQL(), id).Scan(&e.t.ID, &e.t.Name, &e.hash, &created, &e.t.Scope)
	if errors.Is(err, sql.ErrNoRows) {
		return cachedSecret{}, ErrNotFound
	}
	if err != nil {
		return cachedSecret{}, fmt.Errorf("authenticate: %w", err)
	}
	e.t.Created = parseTime(created)
	s.secrets.put(generation, key, e)
	return e, nil
}

// authenticateSecret returns the record of a presented secret, or ErrNotFound.
// The comparison is constant-time; the last use is recorded at most once a
// minute per secret, so that authentication is not a write per request.
func (s *Store) authenticateSecret(ctx context.Context, k secretKind, presented string) (Token, error) {
	id, ok := parseSecret(k.prefix, presented)
	if !ok {
		return Token{}, ErrNotFound
	}
	e, err := s.lookupSecret(ctx, k, id)
	if err != nil {
		return Token{}, err
	}
	if subtle.ConstantTimeCompare(e.hash, tokenHash(presented)) != 1 {
		return Token{}, ErrNotFound
	}
	t := e.t
	now := s.now()
	s.mu.Lock()
	due := now.Sub(s.lastUsed[k.table+":"+id]) >= lastUsedEvery
	if due {
		s.lastUsed[k.table+":"+id] = now
	}
	s.mu.Unlock()
	if due {
		err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
			_, err := tx.ExecContext(ctx, "UPDATE "+k.table+" SET last_used = ? WHERE id = ?", formatTime(now), id)
			return err
		})
		if err != nil {
			s.log.Warn("record "+k.what+" use", "id", id, "err", err)
		}
	}
	return t, nil
}

// CreateToken creates a SCIM bearer token, returned in clear text once.
func (s *Store) CreateToken(ctx context.Context, name string) (string, Token, error) {
	return s.createSecret(ctx, scimTokens, name, "")
}

// Tokens lists all SCIM tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) { return s.listSecrets(ctx, scimTokens) }

// RevokeToken deletes a token; requests using it fail from then on. It returns ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.revokeSecret(ctx, scimTokens, id)
}

// AuthenticateToken returns the token record for a presented bearer token, or ErrNotFound.
func (s *Store) AuthenticateToken(ctx context.Context, presented string) (Token, error) {
	return s.authenticateSecret(ctx, scimTokens, presented)
}

// Session is a logged-in admin page session.
type Session struct {
	ID      string
	AdminID int64
	CSRF    string
	Expires time.Time
}

// CreateSession starts a session and returns its cookie value (id.secret);
// only the secret's hash is stored. Expired sessions are swept at the same time.
func (s *Store) CreateSession(ctx context.Context, adminID int64, lifetime time.Duration) (string, Session, error) {
	sess := Session{ID: randomBase62(16), AdminID: adminID, CSRF: randomBase62(32)}
	secret := randomBase62(32)
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		sess.Expires = now.Add(lifetime)
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires < ?", formatTime(now)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions (id, hash, admin_id, csrf, created, expires) VALUES (?, ?, ?, ?, ?, ?)",
			sess.ID, tokenHash(secret), adminID, sess.CSRF, formatTime(now), formatTime(sess.Expires))
		return err
	})
	if err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	return sess.ID + "." + secret, sess, nil
}

// SessionByCookie returns the live session a cookie value names, or ErrNotFound.
// The secret is compared in constant time.
func (s *Store) SessionByCookie(ctx context.Context, cookie string) (Session, error) {
	id, secret, ok := strings.Cut(cookie, ".")
	if !ok || id == "" || secret == "" {
		return Session{}, ErrNotFound
	}
	var sess Session
	var hash []byte
	var expires string
	err := s.r.QueryRowContext(ctx, "SELECT id, hash, admin_id, csrf, expires FROM sessions WHERE id = ?", id).
		Scan(&sess.ID, &hash, &sess.AdminID, &sess.CSRF, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	sess.Expires = parseTime(expires)
	if subtle.ConstantTimeCompare(hash, tokenHash(secret)) != 1 || !s.now().Before(sess.Expires) {
		return Session{}, ErrNotFound
	}
	return sess, nil
}

// DeleteSession ends a session (logout).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE id = ?", id)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// appKeyPrefix marks app keys; SCIM tokens start with scimbox_ and neither
// is accepted where the other belongs.
const appKeyPrefix = "scimboxapp_"

// CreateAppKey creates a key for the read-only API, returned in clear text once.
func (s *Store) CreateAppKey(ctx context.Context, name string) (string, Token, error) {
	return s.CreateScopedAppKey(ctx, name, scopeAPI)
}

// CreateScopedAppKey creates an app key that opens scope (scopeAPI or
// scopeLDAP) only, returned in clear text once.
func (s *Store) CreateScopedAppKey(ctx context.Context, name, scope string) (string, Token, error) {
	if scope != scopeAPI && scope != scopeLDAP {
		return "", Token{}, fmt.Errorf("%w: an app key's scope is api or ldap, not %q", ErrInvalid, scope)
	}
	return s.createSecret(ctx, appKeys, name, scope)
}

// AppKeys lists the app keys, oldest first.
func (s *Store) AppKeys(ctx context.Context) ([]Token, error) { return s.listSecrets(ctx, appKeys) }

// RevokeAppKey deletes an app key; it returns ErrNotFound.
func (s *Store) RevokeAppKey(ctx context.Context, id string) error {
	return s.revokeSecret(ctx, appKeys, id)
}

// AuthenticateAppKey checks a presented app key for scope: ErrNotFound if
// it is not one, ErrWrongScope if it opens another interface.
func (s *Store) AuthenticateAppKey(ctx context.Context, presented, scope string) (Token, error) {
	t, err := s.authenticateSecret(ctx, appKeys, presented)
	if err == nil && t.Scope != scope {
		return Token{}, fmt.Errorf("app key %s has scope %s: %w", t.ID, t.Scope, ErrWrongScope)
	}
	return t, err
}

// Scan scans the row into first and then dest.
func (sp scanPrefix) Scan(dest ...any) error {
	return sp.rows.Scan(append([]any{sp.first}, dest...)...)
}

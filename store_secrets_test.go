package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var stTokenPattern = regexp.MustCompile(`^scimbox_[0-9A-Za-z]{49}$`)

func TestStoreCreateTokenFormat(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for i := range 5 {
		tok, rec, err := s.CreateToken(ctx, fmt.Sprintf("client %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(tok), 57; got != want {
			t.Errorf("len(token) = %d, want %d", got, want)
		}
		if !stTokenPattern.MatchString(tok) {
			t.Errorf("token %q does not match %s", tok, stTokenPattern)
		}
		if got, want := tok[8:16], rec.ID; got != want {
			t.Errorf("token id part = %q, want record id %q", got, want)
		}
		if got, want := tok[51:], crcBase62(tok[:51]); got != want {
			t.Errorf("checksum part = %q, want %q", got, want)
		}
		if seen[tok] || seen[rec.ID] {
			t.Errorf("token or id repeated: %q", tok)
		}
		seen[tok], seen[rec.ID] = true, true
	}
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(list), 5; got != want {
		t.Fatalf("Tokens() = %d, want %d", got, want)
	}
	for _, tk := range list {
		if !tk.LastUsed.IsZero() {
			t.Errorf("token %s LastUsed = %v before any use, want zero", tk.ID, tk.LastUsed)
		}
	}
}

// stWithSecret returns tok with its secret replaced and a valid checksum.
func stWithSecret(tok, secret string) string {
	body := tok[:len(tokenPrefix)+tokenIDLen] + secret
	return body + crcBase62(body)
}

func TestStoreAuthenticateToken(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	tok, rec, err := s.CreateToken(ctx, "idp")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.CreateToken(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := stWithSecret(tok, strings.Repeat("A", tokenSecretLen))
	if _, ok := parseToken(wrongSecret); !ok {
		t.Fatalf("test token with wrong secret %q does not pass the checksum", wrongSecret)
	}
	unknownID := stWithSecret("scimbox_ZZZZZZZZ", tok[16:51])
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"valid", tok, true},
		{"other valid", other, true},
		{"empty", "", false},
		{"prefix only", "scimbox_", false},
		{"truncated", tok[:56], false},
		{"extra char", tok + "0", false},
		{"other secret, own checksum", stWithSecret(tok, other[16:51]), false},
		{"wrong secret, valid checksum", wrongSecret, false},
		{"unknown id, valid checksum", unknownID, false},
		{"other token's checksum", tok[:51] + other[51:], false},
		{"upper-cased prefix", "SCIMBOX_" + tok[8:], false},
		{"with Bearer", "Bearer " + tok, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.AuthenticateToken(ctx, tc.token)
			if !tc.ok {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("AuthenticateToken(%q): err = %v, want ErrNotFound", tc.token, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("AuthenticateToken: %v", err)
			}
			if got.ID != tc.token[8:16] {
				t.Errorf("authenticated id = %q, want %q", got.ID, tc.token[8:16])
			}
		})
	}

	t.Run("every single-character change", func(t *testing.T) {
		t.Parallel()
		for i := range len(tok) {
			for _, c := range []byte{'0', 'z', 'Q', '_'} {
				if tok[i] == c {
					continue
				}
				changed := tok[:i] + string(c) + tok[i+1:]
				if _, ok := parseToken(changed); ok {
					t.Errorf("position %d → %q: checksum accepted the changed token", i, c)
				}
				if _, err := s.AuthenticateToken(ctx, changed); !errors.Is(err, ErrNotFound) {
					t.Errorf("position %d → %q: err = %v, want ErrNotFound", i, c, err)
				}
			}
		}
	})

	got, err := s.AuthenticateToken(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || got.Name != "idp" || !got.Created.Equal(rec.Created) {
		t.Errorf("AuthenticateToken = %+v, want id %s, name idp, created %v", got, rec.ID, rec.Created)
	}
}

func TestStoreRevokeToken(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	tok, rec, err := s.CreateToken(ctx, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	keep, _, err := s.CreateToken(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateToken(ctx, tok); err != nil {
		t.Fatalf("before revoke: %v", err)
	}
	if err := s.RevokeToken(ctx, rec.ID); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"authenticate revoked", func() error { _, err := s.AuthenticateToken(ctx, tok); return err }},
		{"revoke again", func() error { return s.RevokeToken(ctx, rec.ID) }},
		{"revoke unknown", func() error { return s.RevokeToken(ctx, "nonexist") }},
	} {
		if err := tc.call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", tc.name, err)
		}
	}
	if _, err := s.AuthenticateToken(ctx, keep); err != nil {
		t.Errorf("the other token stopped working: %v", err)
	}
	list, err := s.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("Tokens() after revoke = %+v, want only \"kept\"", list)
	}
}

func TestStoreTokenPlaintextNeverStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := OpenStore(ctx, path, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for i := range 3 {
		tok, _, err := s.CreateToken(ctx, fmt.Sprintf("t%d", i))
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, tok); err != nil {
			s.Close()
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	if err := s.RevokeToken(ctx, toks[2][8:16]); err != nil {
		s.Close()
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(path + suffix)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	for i, tok := range toks {
		secret := tok[len(tokenPrefix)+tokenIDLen : len(tok)-tokenCRCLen]
		if bytes.Contains(all, []byte(tok)) {
			t.Errorf("token %d appears in clear in the database files", i)
		}
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("secret of token %d appears in clear in the database files", i)
		}
	}
	// Positive control: we read the right files, which hold the live hashes.
	for i, tok := range toks[:2] {
		if !bytes.Contains(all, tokenHash(tok)) {
			t.Errorf("hash of token %d not found in the database files: wrong file read?", i)
		}
	}
}

func TestStoreTokenLastUsed(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	clock := stSetClock(s)
	tok, rec, err := s.CreateToken(ctx, "used")
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		t.Helper()
		list, err := s.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range list {
			if tk.ID == rec.ID {
				return tk.LastUsed
			}
		}
		t.Fatalf("token %s not listed", rec.ID)
		return time.Time{}
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("LastUsed before use = %v, want zero", got)
	}
	t0 := clock.t
	for _, step := range []struct {
		name    string
		advance time.Duration
		want    time.Time
	}{
		{"first use", 0, t0},
		{"again at once", 0, t0},
		{"30s later", 30 * time.Second, t0},
		{"59.999s after first", 29999 * time.Millisecond, t0},
		{"a minute after first", time.Millisecond, t0.Add(time.Minute)},
		{"30s after that", 30 * time.Second, t0.Add(time.Minute)},
		{"61s after that", 31 * time.Second, t0.Add(2*time.Minute + time.Second)},
	} {
		clock.t = clock.t.Add(step.advance)
		if _, err := s.AuthenticateToken(ctx, tok); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got, want := lastUsed(), step.want; !got.Equal(want) {
			t.Errorf("%s: LastUsed = %v, want %v", step.name, got, want)
		}
	}
}

// TestSecretRevocationHoldsOnTheNextRequest: a SCIM token or app key that
// authenticated (and is cached) is refused on the very next check after it
// is revoked or the directory is disconnected, whether that happened in
// the server's own process or through another handle on the same file, as
// `scimbox token revoke` does from another process. The other secrets keep
// working.
func TestSecretRevocationHoldsOnTheNextRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other := func(t *testing.T, server *Store) *Store {
		s, err := openCLIStore(ctx, server.path, io.Discard, false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	tokens := func(s *Store) (func(context.Context, string) (string, Token, error), func(context.Context, string) error) {
		return s.CreateToken, func(ctx context.Context, tok string) error { _, err := s.AuthenticateToken(ctx, tok); return err }
	}
	keys := func(s *Store) (func(context.Context, string) (string, Token, error), func(context.Context, string) error) {
		return s.CreateAppKey, func(ctx context.Context, key string) error {
			_, err := s.AuthenticateAppKey(ctx, key, scopeAPI)
			return err
		}
	}
	for _, tc := range []struct {
		name    string
		kind    func(*Store) (func(context.Context, string) (string, Token, error), func(context.Context, string) error)
		revoke  func(t *testing.T, server *Store, id string) error
		keepsOn bool // whether the other secret of the kind survives
	}{
		{"token revoked here", tokens, func(t *testing.T, s *Store, id string) error { return s.RevokeToken(ctx, id) }, true},
		{"token revoked by another handle", tokens, func(t *testing.T, s *Store, id string) error {
			return other(t, s).RevokeToken(ctx, id)
		}, true},
		{"token revoked by the CLI", tokens, func(t *testing.T, s *Store, id string) error {
			return tokenCommand(ctx, []string{"revoke", "-db", s.path, id}, io.Discard, io.Discard)
		}, true},
		{"disconnected by another handle", tokens, func(t *testing.T, s *Store, id string) error {
			_, err := other(t, s).Disconnect(ctx, Policy{})
			return err
		}, false},
		{"app key revoked here", keys, func(t *testing.T, s *Store, id string) error { return s.RevokeAppKey(ctx, id) }, true},
		{"app key revoked by another handle", keys, func(t *testing.T, s *Store, id string) error {
			return other(t, s).RevokeAppKey(ctx, id)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newTestStore(t)
			create, authenticate := tc.kind(s)
			secret, rec, err := create(ctx, "revoked")
			if err != nil {
				t.Fatal(err)
			}
			kept, _, err := create(ctx, "kept")
			if err != nil {
				t.Fatal(err)
			}
			for range 3 { // the first check fills the cache, the others use it
				if err := authenticate(ctx, secret); err != nil {
					t.Fatalf("before revoking: %v", err)
				}
				if err := authenticate(ctx, kept); err != nil {
					t.Fatalf("before revoking: %v", err)
				}
			}
			if err := tc.revoke(t, s, rec.ID); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if err := authenticate(ctx, secret); !errors.Is(err, ErrNotFound) {
				t.Errorf("the next check after revoking: err = %v, want ErrNotFound", err)
			}
			if err := authenticate(ctx, kept); (err == nil) != tc.keepsOn {
				t.Errorf("the other secret: err = %v, want it to work: %v", err, tc.keepsOn)
			}
		})
	}
}

// TestTokenRevokedByCLIRefusedOverHTTP: a server that has just accepted a
// token answers 401 to the very next request with it once `scimbox token
// revoke` (another handle on the file) has revoked it.
func TestTokenRevokedByCLIRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t)
	for range 2 {
		if status, _, body := ts.do(t, "GET", "/Users", nil); status != 200 {
			t.Fatalf("before revoking: %d %v", status, body)
		}
	}
	id, _ := parseToken(ts.token)
	if err := tokenCommand(context.Background(), []string{"revoke", "-db", ts.store.path, id}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if status, _, body := ts.do(t, "GET", "/Users", nil); status != 401 {
		t.Errorf("after revoking: %d %v, want 401", status, body)
	}
}

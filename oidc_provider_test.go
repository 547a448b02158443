package main

// A real OpenID Provider for the tests: zitadel/oidc's op package (an
// OpenID-certified library) over its example in-memory storage, in process.
// The test chooses who signs in at the provider's login step, each person's
// groups and app roles, and can rotate the signing key. A person may also be
// given a nonce other than the sign-in asked for, and the token endpoint's
// ID token may be swapped for one issued to another app: what a misbehaving
// provider or an attacker on the way could send.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"
)

const (
	testClientID     = "scimbox-admin"
	testClientSecret = "scimbox-client-secret"
)

// idpPerson is someone who can sign in at the test provider.
type idpPerson struct {
	username      string
	groups, roles []string
	nonce         string // if set, the ID token's nonce instead of the sign-in's
}

// idpKey is a signing key of the test provider.
type idpKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *idpKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *idpKey) Key() any                                    { return k.key }
func (k *idpKey) ID() string                                  { return k.id }
func (k *idpKey) Algorithm() jose.SignatureAlgorithm          { return jose.RS256 }
func (k *idpKey) Use() string                                 { return "sig" }

// idpPublicKey is the published half of an idpKey.
type idpPublicKey struct{ *idpKey }

func (k idpPublicKey) Key() any { return &k.key.PublicKey }

// idpStorage is zitadel's example storage with the test's people, keys and claims.
type idpStorage struct {
	*storage.Storage
	mu     sync.Mutex
	people map[string]*idpPerson // by user id, which is the subject
	key    *idpKey
}

func newIDPKey(t *testing.T) *idpKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &idpKey{id: randomBase62(12), key: k}
}

func (s *idpStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key, nil
}

func (s *idpStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet publishes only the current key: after a rotation the old one is gone.
func (s *idpStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []op.Key{idpPublicKey{s.key}}, nil
}

// SetUserinfoFromRequest adds the claims Entra puts in its ID tokens: preferred_username, groups and roles.
func (s *idpStorage) SetUserinfoFromRequest(ctx context.Context, info *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.people[req.GetSubject()]
	info.PreferredUsername = p.username
	if p.groups != nil {
		info.AppendClaims("groups", p.groups)
	}
	if p.roles != nil {
		info.AppendClaims("roles", p.roles)
	}
	return nil
}

// overriddenRequest is an auth request whose ID token gets another nonce.
type overriddenRequest struct {
	op.AuthRequest
	nonce string
}

func (r overriddenRequest) GetNonce() string {
	if r.nonce != "" {
		return r.nonce
	}
	return r.AuthRequest.GetNonce()
}

func (s *idpStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.people[req.GetSubject()]; p != nil && p.nonce != "" {
		return overriddenRequest{req, p.nonce}, nil
	}
	return req, nil
}

// idpUsers is the example storage's user store over the test's people.
type idpUsers struct{ s *idpStorage }

func (u idpUsers) GetUserByID(id string) *storage.User {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	p := u.s.people[id]
	if p == nil {
		return nil
	}
	return &storage.User{ID: id, Username: p.username, Password: "idp password", FirstName: "Test", LastName: id, Email: p.username, EmailVerified: true}
}

func (u idpUsers) GetUserByUsername(name string) *storage.User {
	u.s.mu.Lock()
	var id string
	for k, p := range u.s.people {
		if p.username == name {
			id = k
		}
	}
	u.s.mu.Unlock()
	return u.GetUserByID(id)
}

func (idpUsers) ExampleClientID() string { return "service" }

// testIdP is a running OpenID Provider.
type testIdP struct {
	*httptest.Server
	issuer  string
	storage *idpStorage
	signAs  atomic.Pointer[string] // who the next sign-in at the login step is
	// swapIDToken, when set, replaces the ID token of the token endpoint's
	// answers: a token substituted on the way, as an attacker holding one
	// issued to another app would try.
	swapIDToken atomic.Pointer[string]
}

// otherAppID is another app registered at the provider, whose tokens scimbox must refuse.
const (
	otherAppID       = "another-app"
	otherAppRedirect = "http://127.0.0.1:9/other-app/callback"
)

// idTokenForOtherApp signs person in to the other app and returns the ID token the provider issued it.
func (idp *testIdP) idTokenForOtherApp(t *testing.T, person string) string {
	t.Helper()
	idp.signAs.Store(&person)
	cfg := &oauth2.Config{ClientID: otherAppID, ClientSecret: testClientSecret, RedirectURL: otherAppRedirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: idp.issuer + "/authorize", TokenURL: idp.issuer + "/oauth/token"}}
	verifier := oauth2.GenerateVerifier()
	next := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		if strings.HasPrefix(next, otherAppRedirect) {
			u, _ := url.Parse(next)
			tok, err := cfg.Exchange(context.Background(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			return tok.Extra("id_token").(string)
		}
		resp, err := client.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || resp.Header.Get("Location") == "" {
			t.Fatalf("other app's sign-in stopped at %s: %d", next, resp.StatusCode)
		}
		next = loc.String()
	}
	t.Fatal("other app's sign-in did not end")
	return ""
}

// newTestIdPUnstarted reserves the provider's address, so that its issuer is
// known before the client (scimbox) is; start serves it.
func newTestIdPUnstarted(t *testing.T) *testIdP {
	t.Helper()
	idp := &testIdP{Server: httptest.NewUnstartedServer(nil)}
	idp.issuer = "http://" + idp.Listener.Addr().String()
	t.Cleanup(idp.Close)
	return idp
}

// start serves the provider with one client, scimbox at redirectURL, and people.
func (idp *testIdP) start(t *testing.T, redirectURL string, people map[string]*idpPerson) {
	t.Helper()
	idp.storage = &idpStorage{people: people, key: newIDPKey(t)}
	idp.storage.Storage = storage.NewStorageWithClients(idpUsers{idp.storage},
		map[string]*storage.Client{
			testClientID: storage.WebClient(testClientID, testClientSecret, redirectURL),
			otherAppID:   storage.WebClient(otherAppID, testClientSecret, otherAppRedirect),
		})
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])
	provider, err := op.NewProvider(&op.Config{CryptoKey: cryptoKey, CodeMethodS256: true, AuthMethodPost: true},
		idp.storage, op.StaticIssuer(idp.issuer), op.WithAllowInsecure(),
		op.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	// The login step: the person the test chose signs in with their password.
	callback := op.AuthCallbackURL(provider)
	mux.Handle("/login/username", op.NewIssuerInterceptor(provider.IssuerFromRequest).HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("authRequestID")
		who := idp.storage.people[*idp.signAs.Load()].username
		if err := idp.storage.CheckUsernamePassword(who, "idp password", id); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, callback(r.Context(), id), http.StatusFound)
	}))
	mux.Handle("/", provider)
	// The token endpoint's answer, with its ID token replaced when the test says so.
	mux.HandleFunc("/oauth/token", func(w http.ResponseWriter, r *http.Request) {
		swap := idp.swapIDToken.Load()
		if swap == nil {
			provider.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		provider.ServeHTTP(rec, r)
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer["id_token"] == nil {
			http.Error(w, "no ID token to swap", http.StatusInternalServerError)
			return
		}
		answer["id_token"] = *swap
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
	})
	idp.Config.Handler = mux
	idp.Start()
}

// rotateKey replaces the signing key; the old one is no longer published.
func (idp *testIdP) rotateKey(t *testing.T) {
	t.Helper()
	k := newIDPKey(t)
	idp.storage.mu.Lock()
	idp.storage.key = k
	idp.storage.mu.Unlock()
}

// ssoServer is scimbox configured (by its -oidc-* flags) for a provider at issuer,
// with a clock the test can move forward.
type ssoServer struct {
	*testServer
	clockOffset atomic.Int64 // added to the real time, in nanoseconds
}

// newSSOServer starts scimbox for the provider that will listen at issuer,
// with an owner set up (the break-glass account) and groups mapped to roles.
func newSSOServer(t *testing.T, issuer string) (*ssoServer, *adminClient) {
	t.Helper()
	st := newTestStore(t)
	ss := &ssoServer{}
	st.now = func() time.Time { return time.Now().Add(time.Duration(ss.clockOffset.Load())) }
	srv := httptest.NewServer((&server{store: st, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ssoFlags: ssoFlags{Issuer: issuer, ClientID: testClientID, ClientSecret: testClientSecret}}).handler())
	t.Cleanup(srv.Close)
	tok, _, err := st.CreateToken(context.Background(), "entra")
	if err != nil {
		t.Fatal(err)
	}
	ss.testServer = &testServer{Server: srv, store: st, token: tok}
	owner := setUpAdmin(t, ss.testServer)
	for key, v := range map[string]string{settingSSOOwnerGroups: "grp-owners", settingSSOAdminGroups: "grp-admins\nscimbox.operator", settingSSOViewerGroups: "grp-viewers"} {
		if err := st.SetSetting(context.Background(), key, v); err != nil {
			t.Fatal(err)
		}
	}
	return ss, owner
}

// ssoSignIn runs a sign-in in the browser of ac as person: from scimbox's
// start, through the provider's authorization and login, back to scimbox's
// callback, following redirects as a browser does. tamper, if set, may change
// the callback URL before the browser opens it. It returns scimbox's answer
// to the callback.
func ssoSignIn(t *testing.T, ac *adminClient, idp *testIdP, person string, tamper func(*url.URL)) (int, string) {
	t.Helper()
	idp.signAs.Store(&person)
	next := ac.ts.URL + "/sso/start?next=/users"
	for range 10 {
		u, err := url.Parse(next)
		if err != nil {
			t.Fatal(err)
		}
		if tamper != nil && strings.HasPrefix(next, ac.ts.URL+ssoCallbackPath) {
			tamper(u)
		}
		resp, err := ac.c.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(next, ac.ts.URL+ssoCallbackPath) || resp.StatusCode < 300 || resp.StatusCode >= 400 {
			return resp.StatusCode, string(body)
		}
		loc, err := u.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		next = loc.String()
	}
	t.Fatal("sign-in did not end within 10 redirects")
	return 0, ""
}

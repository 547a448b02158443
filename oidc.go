// Sign in to the admin page with OpenID Connect (Microsoft Entra): the
// authorization code flow with PKCE, state and nonce; discovery, key
// rotation and ID-token validation by coreos/go-oidc; the person's groups or
// app roles mapped to an admin role at every sign-in; the settings for it.

package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/julienschmidt/httprouter"
	"golang.org/x/oauth2"
)

// Settings of single sign-on, and what the flags of the same name override.
const (
	settingSSOIssuer       = "sso_issuer"
	settingSSOClientID     = "sso_client_id"
	settingSSOClientSecret = "sso_client_secret" // write-only on the page, never logged
	settingSSOOwnerGroups  = "sso_owner_groups"
	settingSSOAdminGroups  = "sso_admin_groups"
	settingSSOViewerGroups = "sso_viewer_groups"
	settingSSOMandatory    = "sso_mandatory"
)

const (
	ssoCallbackPath = "/sso/callback"
	ssoPendingTTL   = 10 * time.Minute // how long a sign-in may take at the identity provider
	ssoMaxPending   = 10000            // bounds the memory unfinished sign-ins hold
	ssoHTTPTimeout  = 10 * time.Second // for discovery, keys and the code exchange
	// ssoRetryDiscovery is how long a failed discovery is not retried.
	ssoRetryDiscovery = 10 * time.Second
)

// ssoFlags are the -oidc-* flags; a non-empty one overrides the Settings page.
type ssoFlags struct {
	Issuer, ClientID, ClientSecret string
}

// ssoFlagsOn defines the -oidc-* flags (and their SCIMBOX_OIDC_* variables) on fs.
func ssoFlagsOn(fs *flag.FlagSet, f *ssoFlags) {
	fs.StringVar(&f.Issuer, "oidc-issuer", "", "OpenID Connect issuer for admin sign-in, e.g. https://login.microsoftonline.com/<tenant id>/v2.0 (overrides the Settings page)")
	fs.StringVar(&f.ClientID, "oidc-client-id", "", "client (application) id of the admin page's app registration (overrides the Settings page)")
	fs.StringVar(&f.ClientSecret, "oidc-client-secret", "", "client secret of that app registration; prefer the SCIMBOX_OIDC_CLIENT_SECRET variable (overrides the Settings page)")
}

// validate checks the -oidc-* flags, in words an admin understands.
func (f ssoFlags) validate() []error {
	var errs []error
	if f.Issuer != "" {
		if u, err := url.Parse(f.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("-oidc-issuer must be an https URL such as https://login.microsoftonline.com/<tenant id>/v2.0, not %q", f.Issuer))
		}
	}
	if (f.Issuer != "") != (f.ClientID != "") {
		errs = append(errs, errors.New("-oidc-issuer and -oidc-client-id go together: give both, or neither and set them on the Settings page"))
	}
	return errs
}

// ssoConfig is single sign-on as configured: flags over settings.
type ssoConfig struct {
	Issuer, ClientID, ClientSecret string
	// Groups are the group object ids (or app role values) that give each role.
	Groups    map[AdminRole][]string
	Mandatory bool // local admins other than owners may not sign in with a password
	// FromFlags names the settings a flag overrides, so the page can say so.
	FromFlags map[string]bool
}

// Enabled reports whether sign-in with the identity provider is configured.
func (c ssoConfig) Enabled() bool { return c.Issuer != "" && c.ClientID != "" && c.ClientSecret != "" }

// roleFor is the most powerful role any of claims (group ids, app roles) maps to, "" for none.
func (c ssoConfig) roleFor(claims []string) AdminRole {
	for _, role := range slices.Backward(adminRoles) {
		for _, g := range c.Groups[role] {
			if slices.Contains(claims, g) {
				return role
			}
		}
	}
	return ""
}

// splitList reads a list typed one per line or separated by commas or spaces.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// ssoConfig reads the configuration: settings, overridden by non-empty flags.
func (a *admin) ssoConfig(ctx context.Context) (ssoConfig, error) {
	c := ssoConfig{Groups: map[AdminRole][]string{}, FromFlags: map[string]bool{}}
	read := func(key string) (string, error) { return a.store.Setting(ctx, key) }
	for _, f := range []struct {
		key  string
		dst  *string
		flag string
	}{
		{settingSSOIssuer, &c.Issuer, a.ssoFlags.Issuer},
		{settingSSOClientID, &c.ClientID, a.ssoFlags.ClientID},
		{settingSSOClientSecret, &c.ClientSecret, a.ssoFlags.ClientSecret},
	} {
		if f.flag != "" {
			*f.dst, c.FromFlags[f.key] = f.flag, true
			continue
		}
		v, err := read(f.key)
		if err != nil {
			return c, err
		}
		*f.dst = v
	}
	for role, key := range map[AdminRole]string{RoleOwner: settingSSOOwnerGroups, RoleAdmin: settingSSOAdminGroups, RoleViewer: settingSSOViewerGroups} {
		v, err := read(key)
		if err != nil {
			return c, err
		}
		c.Groups[role] = splitList(v)
	}
	mandatory, err := read(settingSSOMandatory)
	c.Mandatory = mandatory == "true"
	return c, err
}

// passwordSignInRefused says why adm may not sign in with its password: when
// single sign-on is mandatory only local owners may (the break-glass way in).
func (a *admin) passwordSignInRefused(ctx context.Context, adm Admin) (string, error) {
	if adm.Role == RoleOwner {
		return "", nil
	}
	c, err := a.ssoConfig(ctx)
	if err != nil || !c.Enabled() || !c.Mandatory {
		return "", err
	}
	return "Sign in with Microsoft Entra: passwords are kept for owners, for when single sign-on fails.", nil
}

// ssoState is what sign-ins in progress and the identity provider's
// discovery document need between requests. The zero value is ready to use.
type ssoState struct {
	mu         sync.Mutex
	issuer     string
	discovered *oidc.Provider // once per issuer; it refetches rotated keys itself
	// failedIssuer and failedAt remember a failed discovery, so that
	// anonymous visitors cannot make the server call an unreachable
	// identity provider more than once per ssoRetryDiscovery.
	failedIssuer string
	failedAt     time.Time
	pending      map[string]ssoPending
}

// ssoPending is a sign-in sent to the identity provider, by its state.
type ssoPending struct {
	nonce, verifier, next string
	expires               time.Time
}

// ssoHTTPContext carries the HTTP client go-oidc and oauth2 use: with a timeout, so an unreachable IdP fails fast.
func ssoHTTPContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, &http.Client{Timeout: ssoHTTPTimeout})
}

// provider returns the discovered provider of issuer. A failed discovery
// is not kept: the next sign-in tries again.
func (st *ssoState) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	st.mu.Lock()
	if st.discovered != nil && st.issuer == issuer {
		p := st.discovered
		st.mu.Unlock()
		return p, nil
	}
	if st.failedIssuer == issuer && time.Since(st.failedAt) < ssoRetryDiscovery {
		st.mu.Unlock()
		return nil, errors.New("discovery failed moments ago; not retried yet")
	}
	st.mu.Unlock()
	// The key set keeps the client of this context (not its deadline) for later key fetches.
	p, err := oidc.NewProvider(ssoHTTPContext(context.WithoutCancel(ctx)), issuer)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		st.failedIssuer, st.failedAt = issuer, time.Now()
		return nil, err
	}
	st.issuer, st.discovered = issuer, p
	return p, nil
}

// begin remembers a new sign-in and returns its state.
func (st *ssoState) begin(p ssoPending, now time.Time) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pending == nil {
		st.pending = map[string]ssoPending{}
	}
	for k, old := range st.pending {
		if now.After(old.expires) || len(st.pending) >= ssoMaxPending {
			delete(st.pending, k)
		}
	}
	state := randomBase62(32)
	p.expires = now.Add(ssoPendingTTL)
	st.pending[state] = p
	return state
}

// finish returns and forgets the sign-in of state, false if there is none (used, expired or made up).
func (st *ssoState) finish(state string, now time.Time) (ssoPending, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p, ok := st.pending[state]
	delete(st.pending, state)
	return p, ok && now.Before(p.expires)
}

// ssoCookieName carries the state to the callback, binding it to the browser that started the sign-in.
func ssoCookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-scimbox_sso"
	}
	return "scimbox_sso"
}

// oauthConfig is the OAuth 2 client of c for the request's host.
func oauthConfig(r *http.Request, c ssoConfig, p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: ssoRedirectURL(r), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
}

// ssoRedirectURL is the address the identity provider sends the browser back to.
func ssoRedirectURL(r *http.Request) string {
	return strings.TrimSuffix(baseURL(r), scimBase) + ssoCallbackPath
}

// errSSOUnavailable is shown when the identity provider cannot be reached.
var errSSOUnavailable = &scimError{Status: http.StatusServiceUnavailable,
	Detail: "The identity provider cannot be reached, so single sign-on does not work now. An owner can still log in with a password."}

// ssoStart serves GET /sso/start?next=…: it sends the browser to the identity provider.
func (a *admin) ssoStart(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	c, err := a.ssoConfig(r.Context())
	if err != nil {
		return err
	}
	if !c.Enabled() {
		return &scimError{Status: http.StatusNotFound, Detail: "Single sign-on is not set up."}
	}
	p, err := a.sso.provider(r.Context(), c.Issuer)
	if err != nil {
		a.log.Warn("single sign-on: identity provider unreachable", "issuer", c.Issuer, "err", err)
		return errSSOUnavailable
	}
	pending := ssoPending{nonce: randomBase62(32), verifier: oauth2.GenerateVerifier(), next: safeNext(r.URL.Query().Get("next"))}
	state := a.sso.begin(pending, time.Now())
	// Lax, not Strict: the callback is a navigation from the identity provider's site.
	http.SetCookie(w, &http.Cookie{Name: ssoCookieName(r), Value: state, Path: "/", MaxAge: int(ssoPendingTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	url := oauthConfig(r, c, p).AuthCodeURL(state, oidc.Nonce(pending.nonce), oauth2.S256ChallengeOption(pending.verifier))
	http.Redirect(w, r, url, http.StatusSeeOther)
	return nil
}

// ssoClaims are the ID token's claims scimbox reads.
type ssoClaims struct {
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	Email             string   `json:"email"`
	Groups            []string `json:"groups"`
	Roles             []string `json:"roles"`
	ClaimNames        struct {
		Groups string `json:"groups"`
	} `json:"_claim_names"` // Entra's group overage: too many groups to list
}

// displayName is how the person appears on the page and in the audit: their
// sign-in name, else their email, else their name.
func (c ssoClaims) displayName(sub string) string {
	for _, s := range []string{c.PreferredUsername, c.Email, c.Name} {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return sub
}

// ssoRefused ends a sign-in without a session: it is audited and explained.
func (a *admin) ssoRefused(r *http.Request, who, why string, status int, text string) error {
	a.log.Warn("single sign-on refused", "who", who, "why", why, "client", clientAddr(r))
	a.audit(r, who, "sign-in", "", auditRefused, "single sign-on: "+why)
	return &scimError{Status: status, Detail: text}
}

// ssoCallback serves GET /sso/callback: it checks state, exchanges the code
// with the PKCE verifier, verifies the ID token (signature, issuer,
// audience, expiry) and its nonce, maps the person's groups to a role and
// starts a session, or refuses.
func (a *admin) ssoCallback(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: ssoCookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	cookie, _ := r.Cookie(ssoCookieName(r))
	state := q.Get("state")
	if cookie == nil || state == "" || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(state)) != 1 {
		return a.ssoRefused(r, "", "state does not match this browser's sign-in", http.StatusBadRequest,
			"This sign-in did not start in this browser, or it took too long. Start again from the login page.")
	}
	pending, ok := a.sso.finish(state, time.Now())
	if !ok {
		return a.ssoRefused(r, "", "unknown or expired state", http.StatusBadRequest,
			"This sign-in was already used or took too long. Start again from the login page.")
	}
	if e := q.Get("error"); e != "" {
		return a.ssoRefused(r, "", "identity provider answered "+e, http.StatusForbidden,
			"The identity provider did not sign you in ("+e+"). Start again from the login page.")
	}
	c, err := a.ssoConfig(r.Context())
	if err != nil {
		return err
	}
	if !c.Enabled() {
		return &scimError{Status: http.StatusNotFound, Detail: "Single sign-on is not set up."}
	}
	p, err := a.sso.provider(r.Context(), c.Issuer)
	if err != nil {
		return errSSOUnavailable
	}
	ctx := ssoHTTPContext(r.Context())
	tok, err := oauthConfig(r, c, p).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pending.verifier))
	if err != nil {
		return a.ssoRefused(r, "", "code exchange failed: "+oauthErrorText(err), http.StatusBadGateway,
			"The identity provider refused to complete the sign-in. Start again from the login page.")
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: c.ClientID, Now: a.store.now}).Verify(ctx, raw)
	if err != nil {
		return a.ssoRefused(r, "", "ID token rejected: "+err.Error(), http.StatusForbidden,
			"The identity provider's answer could not be verified, so you are not signed in. Start again from the login page.")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pending.nonce)) != 1 {
		return a.ssoRefused(r, "", "ID token nonce does not match", http.StatusForbidden,
			"The identity provider's answer belongs to another sign-in, so you are not signed in. Start again from the login page.")
	}
	var claims ssoClaims
	if err := idt.Claims(&claims); err != nil {
		return a.ssoRefused(r, "", "ID token claims unreadable", http.StatusForbidden, "The identity provider's answer could not be read.")
	}
	name := claims.displayName(idt.Subject)
	role := c.roleFor(append(claims.Groups, claims.Roles...))
	adm, err := a.store.SignInSSOAdmin(r.Context(), idt.Issuer+" "+idt.Subject, name, role)
	if errors.Is(err, ErrNotFound) {
		text := "You signed in, but you are in none of the groups that may use this admin page, so you are not let in. Ask an owner to add you to one."
		if claims.ClaimNames.Groups != "" {
			text = "You are in too many groups for the token to list them. Ask an owner to map an app role instead, or to send only the groups assigned to the application."
		}
		return a.ssoRefused(r, name, "in no mapped group", http.StatusForbidden, text)
	}
	if err != nil {
		return err
	}
	a.log.Info("admin signed in with single sign-on", "username", adm.Username, "role", adm.Role, "client", clientAddr(r))
	a.audit(r, adm.Username, "sign-in", "", auditSuccess, "single sign-on as "+string(adm.Role))
	if err := a.startSession(w, r, adm.ID); err != nil {
		return err
	}
	// A page, not a redirect: the browser arrived from the identity
	// provider's site and would not send the SameSite=Strict session cookie
	// along a redirect that continues that navigation.
	return a.render(w, r, http.StatusOK, "signedin.html", signedInData{layout: layout{Title: "Signed in"}, Next: pending.next})
}

// oauthErrorText is the identity provider's error code, without the response body it may quote.
func oauthErrorText(err error) string {
	if re := (*oauth2.RetrieveError)(nil); errors.As(err, &re) {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		return fmt.Sprintf("status %d", re.Response.StatusCode)
	}
	return "no answer"
}

// signedInData is the data of web/signedin.html.
type signedInData struct {
	layout
	Next string
}

// ssoSettingsData is the data of web/sso.html.
type ssoSettingsData struct {
	layout
	Config      ssoConfig
	SecretSet   bool
	RedirectURL string
	Owner       string
	AdminGroups string
	Viewer      string
	Error       string
}

// ssoSettingsPage serves GET /settings/sso (owners only).
func (a *admin) ssoSettingsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	return a.renderSSOSettings(w, r, sess, http.StatusOK, "")
}

func (a *admin) renderSSOSettings(w http.ResponseWriter, r *http.Request, sess *adminSession, status int, problem string) error {
	c, err := a.ssoConfig(r.Context())
	if err != nil {
		return err
	}
	d := ssoSettingsData{layout: a.layout(r, sess, "Sign in with Microsoft Entra", "settings"), Config: c, SecretSet: c.ClientSecret != "",
		RedirectURL: ssoRedirectURL(r), Owner: strings.Join(c.Groups[RoleOwner], "\n"), AdminGroups: strings.Join(c.Groups[RoleAdmin], "\n"),
		Viewer: strings.Join(c.Groups[RoleViewer], "\n"), Error: problem}
	d.Config.ClientSecret = "" // write-only: never back to the page
	return a.render(w, r, status, "sso.html", d)
}

// ssoSettingsSave serves POST /settings/sso. An empty secret field keeps the stored secret.
func (a *admin) ssoSettingsSave(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	issuer := strings.TrimRight(strings.TrimSpace(r.PostFormValue("issuer")), "/")
	if issuer != "" && !strings.HasPrefix(issuer, "https://") && !strings.HasPrefix(issuer, "http://") {
		return a.renderSSOSettings(w, r, sess, http.StatusBadRequest, "The issuer is a URL, such as https://login.microsoftonline.com/<tenant id>/v2.0.")
	}
	kv := map[string]string{
		settingSSOIssuer:       issuer,
		settingSSOClientID:     strings.TrimSpace(r.PostFormValue("client_id")),
		settingSSOOwnerGroups:  strings.Join(splitList(r.PostFormValue("owner_groups")), "\n"),
		settingSSOAdminGroups:  strings.Join(splitList(r.PostFormValue("admin_groups")), "\n"),
		settingSSOViewerGroups: strings.Join(splitList(r.PostFormValue("viewer_groups")), "\n"),
		settingSSOMandatory:    fmt.Sprint(r.PostFormValue("mandatory") == "on"),
	}
	if secret := strings.TrimSpace(r.PostFormValue("client_secret")); secret != "" {
		kv[settingSSOClientSecret] = secret
	}
	if r.PostFormValue("forget_secret") == "on" {
		kv[settingSSOClientSecret] = ""
	}
	if err := a.store.SaveSSOSettings(r.Context(), kv); err != nil {
		return err
	}
	a.log.Info("single sign-on settings changed", "admin", sess.Username, "issuer", issuer, "mandatory", kv[settingSSOMandatory])
	return a.redirect(w, r, sess, "/settings/sso", flash{Notice: "Single sign-on settings saved."})
}

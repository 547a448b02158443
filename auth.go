// Admin sign-in: first-run setup, passwords, login rate limiting, sessions and CSRF.

package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/argon2"
)

// adminSession is the logged-in admin of a request.
type adminSession struct {
	Session
	Username string
}

// checkCSRF requires the session's CSRF token in every state-changing form,
// on top of the cross-origin protection applied to all admin routes.
func (a *admin) checkCSRF(h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
			return &scimError{Status: http.StatusForbidden, Detail: "The form has expired or did not come from this page. Go back, reload and try again."}
		}
		return h(w, r, ps, sess)
	}
}

// crossOriginRefused answers a cross-site request that
// http.CrossOriginProtection refused, before any session was looked at, with
// the message page for an anonymous visitor.
func (a *admin) crossOriginRefused(w http.ResponseWriter, r *http.Request) {
	infoOf(r).op = "admin " + r.URL.Path
	adminHeaders(w)
	a.fail(w, r, nil, &scimError{Status: http.StatusForbidden,
		Detail: "This form came from another site, so scimbox refused it. Open the admin page yourself and try again there."})
}

// cookieName is __Host- prefixed over HTTPS; browsers drop such cookies over plain HTTP.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-scimbox_session"
	}
	return "scimbox_session"
}

// session returns the request's logged-in admin, nil (without error) when there is none or the session expired.
func (a *admin) session(r *http.Request) (*adminSession, error) {
	c, err := r.Cookie(cookieName(r))
	if err != nil {
		return nil, nil
	}
	sess, err := a.store.SessionByCookie(r.Context(), c.Value)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	adm, err := a.store.AdminByID(r.Context(), sess.AdminID)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &adminSession{Session: sess, Username: adm.Username}, nil
}

// startSession logs the admin in with a new session (never a reused one) and sets its cookie.
func (a *admin) startSession(w http.ResponseWriter, r *http.Request, adminID int64) error {
	cookie, sess, err := a.store.CreateSession(r.Context(), adminID, sessionLifetime)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(r), Value: cookie, Path: "/", Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return nil
}

// argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// hashPassword returns an argon2id hash in the PHC string format.
func hashPassword(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// checkPassword verifies a password against a PHC argon2id hash in constant time.
func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked for unknown usernames so that a login takes as long either way.
var dummyHash = sync.OnceValue(func() string { return hashPassword("not a password") })

const (
	// concurrentHashes bounds the argon2id computations running at once:
	// each holds argonMemory (19 MiB), and anyone can ask for one by posting
	// the login form. Others queue for up to hashQueueWait, then get 503.
	concurrentHashes = 2
	hashQueueWait    = 5 * time.Second
)

// errPasswordsBusy is returned when no password check could start within hashQueueWait.
var errPasswordsBusy = errors.New("too many password checks at once")

// passwordGate runs argon2id computations, at most concurrentHashes at a
// time. The zero value is ready to use.
type passwordGate struct {
	once     sync.Once
	slots    chan struct{}
	computed atomic.Int64 // argon2id computations started, for tests
}

// run calls f in a free slot, or returns errPasswordsBusy or ctx's error.
func (g *passwordGate) run(ctx context.Context, f func()) error {
	g.once.Do(func() { g.slots = make(chan struct{}, concurrentHashes) })
	wait := time.NewTimer(hashQueueWait)
	defer wait.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-wait.C:
		return errPasswordsBusy
	}
	defer func() { <-g.slots }()
	g.computed.Add(1)
	f()
	return nil
}

// check verifies password against hash (checkPassword) in a slot.
func (g *passwordGate) check(ctx context.Context, hash, password string) (ok bool, err error) {
	err = g.run(ctx, func() { ok = checkPassword(hash, password) })
	return ok, err
}

// hash hashes password (hashPassword) in a slot.
func (g *passwordGate) hash(ctx context.Context, password string) (hash string, err error) {
	err = g.run(ctx, func() { hash = hashPassword(password) })
	return hash, err
}

// loginLimiter counts failed bearer tokens per client address, in memory.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	limit    int
	window   time.Duration
}

// newLimiter allows limit failures per client within window.
func newLimiter(limit int, window time.Duration) *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, limit: limit, window: window}
}

// blocked reports how long the client must wait, or 0.
func (l *loginLimiter) blocked(client string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	recent := slices.DeleteFunc(l.failures[client], func(t time.Time) bool { return now.Sub(t) > l.window })
	if len(recent) == 0 {
		delete(l.failures, client)
		return 0
	}
	l.failures[client] = recent
	if len(recent) < l.limit {
		return 0
	}
	return l.window - now.Sub(recent[0])
}

// fail counts a failure of client at now.
func (l *loginLimiter) fail(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) > 10000 { // bound memory under a spray of addresses
		for k := range l.failures {
			delete(l.failures, k)
			break
		}
	}
	l.failures[client] = append(l.failures[client], now)
}

// maxRejectedAddrs bounds the addresses rejectedTokens remembers.
const maxRejectedAddrs = 64

// RejectedAddr counts the requests from one client address whose bearer
// token was unknown or revoked.
type RejectedAddr struct {
	Addr        string
	Count       int64
	First, Last time.Time
}

// rejectedTokens counts requests with an unknown or revoked SCIM token per
// client address, so that a revoked token still configured in Entra shows on
// the Connection page without one provisioning log row per request.
//
// It lives in memory, not in the database: a request that did not
// authenticate must cost no write (nor compete with Entra for the single
// writer), and an Entra job retries every 40 minutes, so after a restart it
// shows again within one cycle. At most maxRejectedAddrs addresses are kept;
// a new one replaces the one with the fewest requests (the least recent among
// equals), so a spray of one-off addresses cannot push out a job that keeps
// calling. The zero value is ready to use.
type rejectedTokens struct {
	mu     sync.Mutex
	byAddr map[string]*RejectedAddr
}

// record counts a rejected token from addr, evicting as the type describes when full.
func (rt *rejectedTokens) record(addr string, now time.Time) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if a, ok := rt.byAddr[addr]; ok {
		a.Count++
		a.Last = now
		return
	}
	if rt.byAddr == nil {
		rt.byAddr = map[string]*RejectedAddr{}
	}
	if len(rt.byAddr) >= maxRejectedAddrs {
		var evict *RejectedAddr
		for _, a := range rt.byAddr {
			if evict == nil || a.Count < evict.Count || a.Count == evict.Count && a.Last.Before(evict.Last) {
				evict = a
			}
		}
		delete(rt.byAddr, evict.Addr)
	}
	rt.byAddr[addr] = &RejectedAddr{Addr: addr, Count: 1, First: now, Last: now}
}

// list returns the counted addresses, most recently seen first.
func (rt *rejectedTokens) list() []RejectedAddr {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]RejectedAddr, 0, len(rt.byAddr))
	for _, a := range rt.byAddr {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b RejectedAddr) int { return b.Last.Compare(a.Last) })
	return out
}

// clientAddr is the request's client IP without the port (trustProxies has already applied X-Forwarded-For).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// setupData is the data of web/setup.html.
type setupData struct {
	layout
	Code, Username, Error string
	Valid, Reset          bool
}

// setupPage serves GET /setup?code=…: the form, or 403 when the code is not valid.
func (a *admin) setupPage(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
	return a.renderSetup(w, r, http.StatusOK, r.URL.Query().Get("code"), "", "")
}

// renderSetup shows the setup form with problem; an invalid code always answers 403.
func (a *admin) renderSetup(w http.ResponseWriter, r *http.Request, status int, code, username, problem string) error {
	ctx := r.Context()
	valid, err := a.store.SetupCodeValid(ctx, code)
	if err != nil {
		return err
	}
	exists, err := a.store.AdminExists(ctx)
	if err != nil {
		return err
	}
	if username == "" {
		username = "admin"
	}
	if !valid {
		status = http.StatusForbidden
	}
	return a.render(w, r, status, "setup.html", setupData{layout: layout{Title: "Set up scimbox"},
		Code: code, Username: username, Error: problem, Valid: valid, Reset: exists})
}

// setupSubmit serves POST /setup: creates the admin (or sets its password) with a valid one-time code and logs in.
func (a *admin) setupSubmit(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	code, username := r.PostFormValue("code"), strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	switch {
	case username == "":
		return a.renderSetup(w, r, http.StatusBadRequest, code, username, "Choose a username.")
	case len([]rune(password)) < minPasswordLen:
		return a.renderSetup(w, r, http.StatusBadRequest, code, username, fmt.Sprintf("Use a password of at least %d characters.", minPasswordLen))
	case password != r.PostFormValue("confirm"):
		return a.renderSetup(w, r, http.StatusBadRequest, code, username, "The two passwords differ.")
	}
	// The code is checked before hashing too: a wrong one must not cost 19 MiB.
	if valid, err := a.store.SetupCodeValid(r.Context(), code); err != nil || !valid {
		if err != nil {
			return err
		}
		return a.renderSetup(w, r, http.StatusForbidden, code, username, "")
	}
	hash, err := a.passwords.hash(r.Context(), password)
	if errors.Is(err, errPasswordsBusy) {
		return a.renderSetup(w, r, http.StatusServiceUnavailable, code, username, passwordsBusy(w))
	}
	if err != nil {
		return err
	}
	err = a.store.SetupAdmin(r.Context(), code, username, hash)
	if errors.Is(err, ErrBadSetupCode) {
		return a.renderSetup(w, r, http.StatusForbidden, code, username, "")
	}
	if err != nil {
		return err
	}
	adm, err := a.store.AdminByUsername(r.Context(), username)
	if err != nil {
		return err
	}
	a.log.Info("admin account set up", "username", username, "client", clientAddr(r))
	if err := a.startSession(w, r, adm.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/connection", http.StatusSeeOther)
	return nil
}

// loginData is the data of web/login.html.
type loginData struct {
	layout
	Username, Next, Error string
	NoAdmin               bool
}

// safeNext keeps post-login redirects on this site: it returns next only if
// it is an absolute path without scheme or host, and "/" otherwise. Browsers
// strip tabs and newlines and read a backslash as a slash, so "/\t/x" and
// "/\\x" mean "//x", another site; such characters are refused anywhere, raw
// or percent-encoded, as is a path that decodes to start with "//".
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	for _, s := range []string{next, u.Path} {
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.ContainsRune(s, '\\') ||
			strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
			return "/"
		}
	}
	return next
}

// loginPage serves GET /login; a logged-in admin goes to the dashboard.
func (a *admin) loginPage(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
	if sess != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	exists, err := a.store.AdminExists(r.Context())
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "login.html", loginData{layout: layout{Title: "Log in"},
		Next: safeNext(r.URL.Query().Get("next")), NoAdmin: !exists})
}

// loginSubmit serves POST /login, rate-limited per client address before the password is hashed.
func (a *admin) loginSubmit(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	client := clientAddr(r)
	username, next := strings.TrimSpace(r.PostFormValue("username")), safeNext(r.PostFormValue("next"))
	data := loginData{layout: layout{Title: "Log in"}, Username: username, Next: next}
	refused, err := a.reservePasswordAttempt(w, r, "login from "+client)
	if err != nil {
		return err
	}
	if refused != "" {
		a.log.Warn("admin login rate-limited", "client", client)
		data.Error = refused
		return a.render(w, r, http.StatusTooManyRequests, "login.html", data)
	}
	adm, err := a.store.AdminByUsername(r.Context(), username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	hash := adm.PasswordHash
	if hash == "" {
		hash = dummyHash()
	}
	ok, err := a.passwords.check(r.Context(), hash, r.PostFormValue("password"))
	if errors.Is(err, errPasswordsBusy) {
		data.Error = passwordsBusy(w)
		return a.render(w, r, http.StatusServiceUnavailable, "login.html", data)
	}
	if err != nil {
		return err
	}
	if !ok || adm.ID == 0 {
		a.log.Warn("admin login failed", "username", username, "client", client)
		data.Error = "Wrong username or password."
		return a.render(w, r, http.StatusUnauthorized, "login.html", data)
	}
	if err := a.store.ClearPasswordAttempts(r.Context(), "login from "+client); err != nil {
		return err
	}
	a.log.Info("admin logged in", "username", adm.Username, "client", client)
	if err := a.startSession(w, r, adm.ID); err != nil {
		return err
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// reservePasswordAttempt counts an attempt by key before the password is
// checked (Store.ReservePasswordAttempt), so that simultaneous guesses
// cannot all slip under the limit. When key is over the limit it sets
// Retry-After and returns the message that refuses the attempt.
func (a *admin) reservePasswordAttempt(w http.ResponseWriter, r *http.Request, key string) (refused string, err error) {
	wait, err := a.store.ReservePasswordAttempt(r.Context(), key, loginAttempts, loginWindow)
	if err != nil || wait == 0 {
		return "", err
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return fmt.Sprintf("Too many wrong passwords. Try again in %d minutes.", int(math.Ceil(wait.Minutes()))), nil
}

// passwordsBusy sets Retry-After for a 503 answered because every password
// check slot stayed taken, and returns the message to show.
func passwordsBusy(w http.ResponseWriter) string {
	w.Header().Set("Retry-After", strconv.Itoa(int(hashQueueWait.Seconds())))
	return "The server is busy checking other passwords. Try again in a few seconds."
}

// logout serves POST /logout: deletes the session and its cookie.
func (a *admin) logout(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	if err := a.store.DeleteSession(r.Context(), sess.ID); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// announceSetup prints where the admin page is. Before the first admin
// exists it creates a one-time setup code and prints the link that claims
// the instance: nobody without it can. The structured log, which may be
// shipped elsewhere, says only where to look.
func (s *server) announceSetup(ctx context.Context, baseURL string, stdout io.Writer) error {
	baseURL = strings.TrimRight(baseURL, "/")
	exists, err := s.store.AdminExists(ctx)
	if err != nil {
		return err
	}
	if exists {
		fmt.Fprintf(stdout, "Admin page: %s/ (forgot the password? scimbox admin reset-password)\n", baseURL)
		return nil
	}
	code, err := s.store.NewSetupCode(ctx, setupCodeTTL)
	if err != nil {
		return err
	}
	link := baseURL + "/setup?code=" + code
	fmt.Fprintf(stdout, "First run: open this link to create the admin account (valid 24 hours, once):\n  %s\n", link)
	s.log.Info("first run: open the setup link printed on standard output to create the admin account (valid 24 h, once)",
		"url", baseURL+"/setup?code=…")
	return nil
}

package main

// The admin page: first-run setup, login, the Entra connection, users,
// groups, the provisioning log and settings. Server-rendered html/template
// pages embedded from web/; everything the directory sends is untrusted and
// only ever reaches the page through html/template's contextual escaping.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"golang.org/x/crypto/argon2"
)

//go:embed web
var webFS embed.FS

const (
	sessionLifetime = 12 * time.Hour
	setupCodeTTL    = 24 * time.Hour
	minPasswordLen  = 12
	adminPageSize   = 50
	// Failed logins allowed per client address within loginWindow.
	loginAttempts = 10
	loginWindow   = 15 * time.Minute
)

// admin serves the admin page.
type admin struct {
	*server
	pages   map[string]*template.Template
	limiter *loginLimiter
}

// adminPages are the templates in web/, each rendered inside web/layout.html
// with the shared pieces of web/partials.html.
var adminPages = []string{"setup.html", "login.html", "dashboard.html", "connection.html", "users.html",
	"user.html", "newuser.html", "groups.html", "group.html", "log.html", "settings.html", "apps.html", "message.html"}

var templateFuncs = template.FuncMap{
	// dict builds a map from key, value pairs, for small fixed lists in templates.
	"dict": func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	},
	"size": func(n int64) string {
		switch {
		case n >= 1<<30:
			return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
		}
		return fmt.Sprintf("%d kB", (n+1023)/1024)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return fmt.Sprintf("%d min ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h ago", int(d.Hours()))
		}
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	},
}

func newAdmin(s *server) *admin {
	a := &admin{server: s, pages: map[string]*template.Template{}, limiter: newLoginLimiter()}
	for _, p := range adminPages {
		a.pages[p] = template.Must(template.New("layout.html").Funcs(templateFuncs).ParseFS(webFS, "web/layout.html", "web/partials.html", "web/"+p))
	}
	return a
}

// routes registers the admin page on the router.
func (a *admin) routes(rt *httprouter.Router) {
	get := func(path string, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) {
		rt.GET(path, a.authed(h))
	}
	post := func(path string, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) {
		rt.POST(path, a.authed(a.checkCSRF(h)))
	}
	rt.GET("/setup", a.public(a.setupPage))
	rt.POST("/setup", a.public(a.setupSubmit))
	rt.GET("/login", a.public(a.loginPage))
	rt.POST("/login", a.public(a.loginSubmit))
	post("/logout", a.logout)
	get("/", a.dashboard)
	get("/connection", a.connection)
	post("/connection/tokens", a.createToken)
	post("/connection/tokens/:id/revoke", a.revokeToken)
	get("/users", a.users)
	get("/users/:id", a.user)
	post("/users/:id", a.userAction)
	post("/settings/policy", a.changePolicy)
	post("/settings/provisioning", a.changeProvisioning)
	post("/connection/disconnect", a.disconnect)
	get("/groups", a.groups)
	get("/groups/:id", a.group)
	get("/log", a.logPage)
	get("/apps", a.apps)
	post("/apps/keys", a.createAppKey)
	post("/apps/keys/:id/revoke", a.revokeAppKey)
	post("/apps/webhooks", a.createWebhook)
	post("/apps/webhooks/:id", a.webhookAction)
	get("/export/:file", a.export)
	get("/settings", a.settings)
	post("/settings/password", a.changePassword)
	post("/settings/log", a.changeLogRetention)
	post("/settings/backup", a.downloadBackup)
	static, _ := fs.Sub(webFS, "web/static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	rt.GET("/static/*filepath", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		infoOf(r).op = "static"
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// adminSession is the logged-in admin of a request.
type adminSession struct {
	Session
	Username string
}

// layout is what every page's template gets besides its own data.
type layout struct {
	Title    string
	Nav      string
	CSRF     string
	Username string
}

func (sess *adminSession) layout(title, nav string) layout {
	if sess == nil {
		return layout{Title: title, Nav: nav}
	}
	return layout{Title: title, Nav: nav, CSRF: sess.CSRF, Username: sess.Username}
}

// adminHeaders are sent with every admin response: a strict CSP without
// unsafe-inline, no caching of pages, no framing, no referrer.
func adminHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// render executes a page into a buffer first, so that a template error never sends half a page.
func (a *admin) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) error {
	var buf bytes.Buffer
	if err := a.pages[page].Execute(&buf, data); err != nil {
		return fmt.Errorf("render %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

type messageData struct {
	layout
	Heading, Text string
}

// fail answers an admin request whose handler failed.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, sess *adminSession, err error) {
	status, text := http.StatusInternalServerError, "Something went wrong; the details are in the server log."
	switch {
	case errors.Is(err, ErrNotFound):
		status, text = http.StatusNotFound, "There is nothing here. It may have been deleted."
	default:
		a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	infoOf(r).detail = text
	if rerr := a.render(w, r, status, "message.html", messageData{sess.layout("Error", ""), http.StatusText(status), text}); rerr != nil {
		http.Error(w, text, status)
	}
}

// public wraps handlers that need no session (setup and login).
func (a *admin) public(h func(http.ResponseWriter, *http.Request, *adminSession) error) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		infoOf(r).op = "admin " + r.URL.Path
		adminHeaders(w)
		sess, _ := a.session(r)
		if err := h(w, r, sess); err != nil {
			a.fail(w, r, sess, err)
		}
	}
}

// authed wraps handlers that need a logged-in admin; others go to the login
// page, or to the setup notice before the first admin exists.
func (a *admin) authed(h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		infoOf(r).op = "admin " + r.URL.Path
		adminHeaders(w)
		sess, err := a.session(r)
		if err != nil {
			a.fail(w, r, nil, err)
			return
		}
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "your session has ended: log in again", http.StatusForbidden)
			return
		}
		if err := h(w, r, ps, sess); err != nil {
			a.fail(w, r, sess, err)
		}
	}
}

// checkCSRF requires the session's CSRF token in every state-changing form,
// on top of the cross-origin protection applied to all admin routes.
func (a *admin) checkCSRF(h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, "The form has expired or did not come from this page. Go back, reload and try again.")
			return nil
		}
		return h(w, r, ps, sess)
	}
}

// cookieName is __Host- prefixed over HTTPS; browsers drop such cookies over plain HTTP.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-scimbox_session"
	}
	return "scimbox_session"
}

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

// ---- passwords ----

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

// ---- login rate limiting ----

// loginLimiter counts failures (logins, bearer tokens) per client address.
type loginLimiter struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	limit    int
	window   time.Duration
}

func newLimiter(limit int, window time.Duration) *loginLimiter {
	return &loginLimiter{failures: map[string][]time.Time{}, limit: limit, window: window}
}

func newLoginLimiter() *loginLimiter { return newLimiter(loginAttempts, loginWindow) }

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

func (l *loginLimiter) succeed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, client)
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ---- setup and login ----

type setupData struct {
	layout
	Code, Username, Error string
	Valid, Reset          bool
}

func (a *admin) setupPage(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
	return a.renderSetup(w, r, http.StatusOK, r.URL.Query().Get("code"), "", "")
}

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
	err := a.store.SetupAdmin(r.Context(), code, username, hashPassword(password))
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

type loginData struct {
	layout
	Username, Next, Error string
	NoAdmin               bool
}

// safeNext keeps post-login redirects on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

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

func (a *admin) loginSubmit(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	client, now := clientAddr(r), time.Now()
	username, next := strings.TrimSpace(r.PostFormValue("username")), safeNext(r.PostFormValue("next"))
	data := loginData{layout: layout{Title: "Log in"}, Username: username, Next: next}
	if wait := a.limiter.blocked(client, now); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		data.Error = fmt.Sprintf("Too many failed attempts. Try again in %d minutes.", int(math.Ceil(wait.Minutes())))
		a.log.Warn("admin login rate-limited", "client", client)
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
	if !checkPassword(hash, r.PostFormValue("password")) || adm.ID == 0 {
		a.limiter.fail(client, now)
		a.log.Warn("admin login failed", "username", username, "client", client)
		data.Error = "Wrong username or password."
		return a.render(w, r, http.StatusUnauthorized, "login.html", data)
	}
	a.limiter.succeed(client)
	a.log.Info("admin logged in", "username", adm.Username, "client", client)
	if err := a.startSession(w, r, adm.ID); err != nil {
		return err
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (a *admin) logout(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	if err := a.store.DeleteSession(r.Context(), sess.ID); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// ---- dashboard and connection ----

type dashboardData struct {
	layout
	Stats     Stats
	Tokens    []Token
	LastUsed  time.Time
	TenantURL string
	Recent    []LogEntry
}

// lastTokenUse is the most recent use of any token: when the directory last called.
func lastTokenUse(tokens []Token) time.Time {
	var last time.Time
	for _, t := range tokens {
		if t.LastUsed.After(last) {
			last = t.LastUsed
		}
	}
	return last
}

func (a *admin) dashboard(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	st, err := a.store.Stats(ctx)
	if err != nil {
		return err
	}
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return err
	}
	recent, err := a.store.ListLog(ctx, LogQuery{Limit: 10})
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "dashboard.html", dashboardData{layout: sess.layout("Dashboard", "dashboard"),
		Stats: st, Tokens: tokens, LastUsed: lastTokenUse(tokens), TenantURL: baseURL(r), Recent: recent})
}

type connectionData struct {
	layout
	TenantURL string
	Reachable bool // false when the URL is plain HTTP or a loopback address
	Tokens    []Token
	NewToken  string
	NewName   string
	LastUsed  time.Time
	LastError *LogEntry
	Error     string
}

// tenantURLReachable reports whether Entra could plausibly reach the URL:
// HTTPS on a name that is not loopback.
func tenantURLReachable(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified()) {
		return false
	}
	return r.TLS != nil && host != "localhost"
}

func (a *admin) connectionData(ctx context.Context, r *http.Request, sess *adminSession) (connectionData, error) {
	d := connectionData{layout: sess.layout("Entra connection", "connection"), TenantURL: baseURL(r), Reachable: tenantURLReachable(r)}
	var err error
	if d.Tokens, err = a.store.Tokens(ctx); err != nil {
		return d, err
	}
	d.LastUsed = lastTokenUse(d.Tokens)
	failures, err := a.store.ListLog(ctx, LogQuery{Outcome: "failure", Limit: 1})
	if err != nil {
		return d, err
	}
	if len(failures) > 0 {
		d.LastError = &failures[0]
	}
	return d, nil
}

func (a *admin) connection(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.connectionData(r.Context(), r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "connection.html", d)
}

// createToken generates a Secret Token and shows it in this one response only.
func (a *admin) createToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "entra"
	}
	if len(name) > 100 {
		name = name[:100]
	}
	plain, t, err := a.store.CreateToken(r.Context(), name)
	if err != nil {
		return err
	}
	a.log.Info("token created in the admin page", "token", t.ID, "name", t.Name, "admin", sess.Username)
	d, err := a.connectionData(r.Context(), r, sess)
	if err != nil {
		return err
	}
	d.NewToken, d.NewName = plain, t.Name
	return a.render(w, r, http.StatusOK, "connection.html", d)
}

func (a *admin) revokeToken(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if err := a.store.RevokeToken(r.Context(), ps.ByName("id")); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	a.log.Info("token revoked in the admin page", "token", ps.ByName("id"), "admin", sess.Username)
	http.Redirect(w, r, "/connection", http.StatusSeeOther)
	return nil
}

// ---- users and groups ----

// pager is the page navigation of a list.
type pager struct {
	Page, Pages, Total int
	Query              string
}

func (p pager) Prev() int { return p.Page - 1 }
func (p pager) Next() int { return p.Page + 1 }
func (p pager) HasPrev() bool {
	return p.Page > 1
}
func (p pager) HasNext() bool { return p.Page < p.Pages }

func newPager(r *http.Request, total int) pager {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pages := max((total+adminPageSize-1)/adminPageSize, 1)
	return pager{Page: min(max(page, 1), pages), Pages: pages, Total: total, Query: r.URL.Query().Get("q")}
}

func pageNumber(r *http.Request) int {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	return max(page, 1)
}

// searchFilter matches resources whose given attributes start with q
// (case-insensitively), built as a filter tree so that q is never parsed as syntax.
func searchFilter(q string, attrs ...string) filterExpr {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil
	}
	var f filterExpr
	for _, a := range attrs {
		p, _ := parseAttrPath(a)
		c := compareExpr{Path: p, Op: "sw", Value: q}
		if f == nil {
			f = c
		} else {
			f = logicalExpr{Left: f, Right: c}
		}
	}
	return f
}

type userRow struct {
	ID, Name, UserName, Email, Kind string
	Active                          *bool
	Groups                          []string
	Modified                        time.Time
}

type usersData struct {
	layout
	Rows  []userRow
	Pager pager
}

// displayNameOf is how a user is named on the page.
func displayNameOf(attrs map[string]any) string {
	if n := stringAttr(attrs, "displayName"); n != "" {
		return n
	}
	if name, ok := attrs["name"].(map[string]any); ok {
		if f, _ := name["formatted"].(string); f != "" {
			return f
		}
		given, _ := name["givenName"].(string)
		family, _ := name["familyName"].(string)
		return strings.TrimSpace(given + " " + family)
	}
	return ""
}

// primaryEmail is the primary email, else the first.
func primaryEmail(attrs map[string]any) string {
	list, _ := attrs["emails"].([]any)
	first := ""
	for _, el := range list {
		m, _ := el.(map[string]any)
		v, _ := m["value"].(string)
		if first == "" {
			first = v
		}
		if p, _ := m["primary"].(bool); p {
			return v
		}
	}
	return first
}

func (a *admin) users(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	q := r.URL.Query().Get("q")
	lq := ListQuery{Filter: searchFilter(q, "userName", "displayName", "emails.value"), SortBy: "userName",
		StartIndex: (pageNumber(r)-1)*adminPageSize + 1, Count: adminPageSize}
	users, total, err := a.store.ListUsers(r.Context(), lq)
	if err != nil {
		return err
	}
	p, err := a.store.Policy(r.Context())
	if err != nil {
		return err
	}
	d := usersData{layout: sess.layout("Users", "users"), Pager: newPager(r, total)}
	for _, u := range users {
		attrs := Effective(u.Attrs, u.Overrides, p)
		row := userRow{ID: u.ID, Name: displayNameOf(attrs), UserName: stringAttr(attrs, "userName"), Email: primaryEmail(attrs),
			Kind: u.Kind, Modified: u.Modified}
		if b, ok := attrs["active"].(bool); ok {
			row.Active = &b
		}
		for _, g := range u.Groups {
			row.Groups = append(row.Groups, g.Display)
		}
		d.Rows = append(d.Rows, row)
	}
	return a.render(w, r, http.StatusOK, "users.html", d)
}

// attrRow is one attribute of a resource, flattened for display.
type attrRow struct{ Path, Value string }

// flatten lists a document's attributes as path/value rows, sorted by path.
func flatten(prefix string, v any, out *[]attrRow) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				sep := "."
				if strings.HasPrefix(prefix, "urn:") && !strings.Contains(prefix, ".") && !strings.Contains(prefix, "[") {
					sep = ":"
				}
				p = prefix + sep + k
			}
			flatten(p, v[k], out)
		}
	case []any:
		for i, el := range v {
			label := strconv.Itoa(i)
			if m, ok := el.(map[string]any); ok {
				if t, _ := m["type"].(string); t != "" {
					label = t
				}
			}
			flatten(fmt.Sprintf("%s[%s]", prefix, label), el, out)
		}
	case string:
		*out = append(*out, attrRow{prefix, v})
	default:
		b, _ := json.Marshal(v)
		*out = append(*out, attrRow{prefix, string(b)})
	}
}

type userData struct {
	layout
	User    *User
	Name    string
	Fields  []fieldRow
	Attrs   []attrRow
	History []LogEntry
	Error   string
}

// fieldRow is one policy field of a user as the detail page shows it.
type fieldRow struct {
	Key, Label, Value, Why string
	Origin                 FieldOrigin
	Editable, Multiline    bool
	Reverted               bool // an override exists but the policy no longer lets it win
}

func (a *admin) userPage(w http.ResponseWriter, r *http.Request, sess *adminSession, id string, status int, problem string) error {
	ctx := r.Context()
	u, err := a.store.UserByID(ctx, id)
	if err != nil {
		return err
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	history, err := a.store.ListLog(ctx, LogQuery{ResourceID: u.ID, Limit: 50})
	if err != nil {
		return err
	}
	eff := Effective(u.Attrs, u.Overrides, p)
	d := userData{layout: sess.layout(stringAttr(eff, "userName"), "users"), User: u, Name: displayNameOf(eff), History: history, Error: problem}
	for _, f := range policyFields {
		editable, why := CanEdit(u.Kind, p, f.Key)
		_, overridden := u.Overrides[f.Key]
		d.Fields = append(d.Fields, fieldRow{Key: f.Key, Label: f.Label, Value: fieldText(f.Key, getField(eff, f.Key)),
			Origin: Origin(u.Kind, u.Overrides, p, f.Key), Editable: editable, Why: why, Multiline: multilineField(f.Key),
			Reverted: overridden && p.Source(f.Key) != FromLocal})
	}
	flatten("", u.Attrs, &d.Attrs)
	return a.render(w, r, status, "user.html", d)
}

func (a *admin) user(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if ps.ByName("id") == "new" {
		return a.render(w, r, http.StatusOK, "newuser.html", newUserData{layout: sess.layout("New user", "users")})
	}
	return a.userPage(w, r, sess, ps.ByName("id"), http.StatusOK, "")
}

type newUserData struct {
	layout
	UserName, DisplayName, GivenName, FamilyName, Email, Error string
}

// createManualUser creates an account the directory does not manage.
func (a *admin) createManualUser(w http.ResponseWriter, r *http.Request, sess *adminSession) error {
	d := newUserData{layout: sess.layout("New user", "users")}
	for dst, key := range map[*string]string{&d.UserName: "userName", &d.DisplayName: "displayName", &d.GivenName: "givenName",
		&d.FamilyName: "familyName", &d.Email: "email"} {
		*dst = strings.TrimSpace(r.PostFormValue(key))
	}
	body := map[string]any{"userName": d.UserName, "displayName": d.DisplayName, "active": true,
		"name": map[string]any{"givenName": d.GivenName, "familyName": d.FamilyName}}
	if d.Email != "" {
		body["emails"] = []any{map[string]any{"type": "work", "value": d.Email, "primary": true}}
	}
	attrs, err := normalizeAttrs(userType, body)
	if err == nil {
		err = checkRequired(userType, attrs)
	}
	var se *scimError
	if errors.As(err, &se) {
		d.Error = se.Detail
		return a.render(w, r, http.StatusBadRequest, "newuser.html", d)
	}
	u := &User{Attrs: attrs, Kind: accountManual}
	err = a.store.CreateUser(r.Context(), u)
	if errors.Is(err, ErrConflict) {
		d.Error = "That user name is taken."
		return a.render(w, r, http.StatusConflict, "newuser.html", d)
	}
	if err != nil {
		return err
	}
	a.store.Log(LogEntry{Op: "create manual user (admin)", ResourceType: "User", ResourceID: u.ID, Target: d.UserName,
		Outcome: "success", Status: 201, Detail: "by " + sess.Username})
	http.Redirect(w, r, "/users/"+u.ID, http.StatusSeeOther)
	return nil
}

// userAction edits or reverts a field of a user, or deletes an account the directory does not manage.
func (a *admin) userAction(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx, id := r.Context(), ps.ByName("id")
	if id == "new" {
		return a.createManualUser(w, r, sess)
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	key := r.PostFormValue("field")
	switch r.PostFormValue("action") {
	case "delete":
		u, err := a.store.UserByID(ctx, id)
		if err != nil {
			return err
		}
		if u.Kind == accountDirectory {
			return a.userPage(w, r, sess, id, http.StatusConflict, "The directory manages this account: remove it in the directory, or disconnect first.")
		}
		if err := a.store.DeleteUser(ctx, id, nil); err != nil {
			return err
		}
		a.store.Log(LogEntry{Op: "delete manual user (admin)", ResourceType: "User", ResourceID: id, Target: stringAttr(u.Attrs, "userName"),
			Outcome: "success", Status: 204, Detail: "by " + sess.Username})
		http.Redirect(w, r, "/users", http.StatusSeeOther)
		return nil
	case "revert":
		_, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			u.Overrides = Revert(u.Overrides, key)
			return nil
		})
	case "edit":
		value, perr := parseFieldText(key, r.PostFormValue("value"))
		if perr != nil {
			return a.userPage(w, r, sess, id, http.StatusBadRequest, perr.Error())
		}
		_, err = a.store.UpdateUser(ctx, id, func(u *User) error {
			attrs, overrides, err := LocalEdit(u.Kind, u.Attrs, u.Overrides, p, key, value, sess.Username, time.Now().UTC())
			if err != nil {
				return err
			}
			if u.Kind != accountDirectory {
				if err := checkRequired(userType, attrs); err != nil {
					return err
				}
			}
			u.Attrs, u.Overrides = attrs, overrides
			return nil
		})
	default:
		return a.userPage(w, r, sess, id, http.StatusBadRequest, "Unknown action.")
	}
	var ro *ErrReadOnlyField
	var se *scimError
	switch {
	case errors.As(err, &ro):
		return a.userPage(w, r, sess, id, http.StatusForbidden, ro.Error())
	case errors.As(err, &se):
		return a.userPage(w, r, sess, id, http.StatusBadRequest, se.Detail)
	case errors.Is(err, ErrConflict):
		return a.userPage(w, r, sess, id, http.StatusConflict, "That user name is taken by another account.")
	case err != nil:
		return err
	}
	a.store.Log(LogEntry{Op: "local " + r.PostFormValue("action") + " " + key, ResourceType: "User", ResourceID: id,
		Target: id, Outcome: "success", Status: 200, Detail: "by " + sess.Username})
	http.Redirect(w, r, "/users/"+id, http.StatusSeeOther)
	return nil
}

// multilineField reports fields edited as one value per line.
func multilineField(key string) bool {
	return key == "emails" || key == "phoneNumbers" || key == "addresses"
}

// fieldText formats a field's value for the page and its edit box:
// multi-valued ones as "type: value" lines, the primary first.
func fieldText(key string, v any) string {
	switch {
	case v == nil:
		return ""
	case multilineField(key):
		list, _ := v.([]any)
		var lines []string
		for _, el := range list {
			m, _ := el.(map[string]any)
			val, _ := m["value"].(string)
			if key == "addresses" {
				val, _ = m["formatted"].(string)
				if val == "" {
					var parts []string
					for _, k := range []string{"streetAddress", "locality", "region", "postalCode", "country"} {
						if s, _ := m[k].(string); s != "" {
							parts = append(parts, s)
						}
					}
					val = strings.Join(parts, ", ")
				}
			}
			line := val
			if t, _ := m["type"].(string); t != "" {
				line = t + ": " + val
			}
			if m["primary"] == true {
				lines = append([]string{line}, lines...)
			} else {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, "\n")
	}
	switch v := v.(type) {
	case string:
		return v
	case map[string]any: // manager
		s, _ := v["value"].(string)
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// parseFieldText reads an edit box back into a field value; empty clears the field.
func parseFieldText(key, text string) (any, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, nil
	}
	switch {
	case key == "active":
		b, ok := coerceBool(text)
		if !ok {
			return nil, errors.New("active is true or false")
		}
		return b, nil
	case key == enterpriseSchema+":manager":
		return map[string]any{"value": text}, nil
	case multilineField(key):
		var list []any
		for i, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			typ, val, ok := strings.Cut(line, ":")
			if !ok || strings.ContainsAny(typ, " @") {
				typ, val = "work", line
			}
			el := map[string]any{"type": strings.TrimSpace(typ)}
			if key == "addresses" {
				el["formatted"] = strings.TrimSpace(val)
			} else {
				el["value"] = strings.TrimSpace(val)
			}
			if i == 0 {
				el["primary"] = true
			}
			list = append(list, el)
		}
		return list, nil
	}
	return text, nil
}

type groupRow struct {
	ID, Name, ExternalID string
	Members              int
	Modified             time.Time
}

type groupsData struct {
	layout
	Rows  []groupRow
	Pager pager
}

func (a *admin) groups(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	lq := ListQuery{Filter: searchFilter(r.URL.Query().Get("q"), "displayName"), SortBy: "displayName",
		StartIndex: (pageNumber(r)-1)*adminPageSize + 1, Count: adminPageSize}
	groups, total, err := a.store.ListGroups(r.Context(), lq, false)
	if err != nil {
		return err
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = g.ID
	}
	counts, err := a.store.GroupMemberCounts(r.Context(), ids)
	if err != nil {
		return err
	}
	d := groupsData{layout: sess.layout("Groups", "groups"), Pager: newPager(r, total)}
	for _, g := range groups {
		d.Rows = append(d.Rows, groupRow{ID: g.ID, Name: stringAttr(g.Attrs, "displayName"),
			ExternalID: stringAttr(g.Attrs, "externalId"), Members: counts[g.ID], Modified: g.Modified})
	}
	return a.render(w, r, http.StatusOK, "groups.html", d)
}

type groupData struct {
	layout
	Group   *Group
	Name    string
	Attrs   []attrRow
	Members []Member
	Pager   pager
	History []LogEntry
}

func (a *admin) group(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	g, err := a.store.GroupByID(ctx, ps.ByName("id"), false)
	if err != nil {
		return err
	}
	members, total, err := a.store.GroupMembersPage(ctx, g.ID, (pageNumber(r)-1)*adminPageSize, adminPageSize)
	if err != nil {
		return err
	}
	history, err := a.store.ListLog(ctx, LogQuery{ResourceID: g.ID, Limit: 50})
	if err != nil {
		return err
	}
	d := groupData{layout: sess.layout(stringAttr(g.Attrs, "displayName"), "groups"), Group: g,
		Name: stringAttr(g.Attrs, "displayName"), Members: members, Pager: newPager(r, total), History: history}
	flatten("", g.Attrs, &d.Attrs)
	return a.render(w, r, http.StatusOK, "group.html", d)
}

// ---- provisioning log and settings ----

type logData struct {
	layout
	Entries         []LogEntry
	Outcome, Target string
	Next            int64 // id to continue from, 0 when there is no more
}

func (a *admin) logPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	q := r.URL.Query()
	outcome := q.Get("outcome")
	if outcome != "success" && outcome != "failure" {
		outcome = ""
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	entries, err := a.store.ListLog(r.Context(), LogQuery{Outcome: outcome, Target: q.Get("target"), Before: before, Limit: adminPageSize + 1})
	if err != nil {
		return err
	}
	d := logData{layout: sess.layout("Provisioning log", "log"), Outcome: outcome, Target: q.Get("target")}
	if len(entries) > adminPageSize {
		entries = entries[:adminPageSize]
		d.Next = entries[len(entries)-1].ID
	}
	d.Entries = entries
	return a.render(w, r, http.StatusOK, "log.html", d)
}

type settingsData struct {
	layout
	LogDays         int
	Message, Error  string
	DatabaseVersion int
	Snapshots       []SnapshotInfo
	Policy          []policyRow
	Claim           bool
	Deprovision     string
	PurgeDays       int
}

type policyRow struct {
	Key, Label string
	Local      bool
}

func (a *admin) settingsData(r *http.Request, sess *adminSession) (settingsData, error) {
	d := settingsData{layout: sess.layout("Settings", "settings"), LogDays: defaultLogDays, DatabaseVersion: len(migrations)}
	snaps, err := a.store.Snapshots()
	if err != nil {
		return d, err
	}
	d.Snapshots = snaps
	p, err := a.store.Policy(r.Context())
	if err != nil {
		return d, err
	}
	for _, f := range policyFields {
		d.Policy = append(d.Policy, policyRow{Key: f.Key, Label: f.Label, Local: p.Source(f.Key) == FromLocal})
	}
	for key, dst := range map[string]*string{settingDeprovision: &d.Deprovision} {
		if *dst, err = a.store.Setting(r.Context(), key); err != nil {
			return d, err
		}
	}
	if d.Deprovision == "" {
		d.Deprovision = string(deprovisionDelete)
	}
	claim, err := a.store.Setting(r.Context(), settingClaim)
	if err != nil {
		return d, err
	}
	d.Claim = claim == "true"
	purge, err := a.store.Setting(r.Context(), settingPurgeInactive)
	if err != nil {
		return d, err
	}
	d.PurgeDays, _ = strconv.Atoi(purge)
	v, err := a.store.Setting(r.Context(), logRetentionDays)
	if err != nil {
		return d, err
	}
	if n, err := strconv.Atoi(v); err == nil {
		d.LogDays = n
	}
	return d, nil
}

func (a *admin) settings(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changePassword(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	adm, err := a.store.AdminByID(r.Context(), sess.AdminID)
	if err != nil {
		return err
	}
	password := r.PostFormValue("password")
	switch {
	case !checkPassword(adm.PasswordHash, r.PostFormValue("current")):
		d.Error = "The current password is wrong."
	case len([]rune(password)) < minPasswordLen:
		d.Error = fmt.Sprintf("Use a password of at least %d characters.", minPasswordLen)
	case password != r.PostFormValue("confirm"):
		d.Error = "The two new passwords differ."
	}
	if d.Error != "" {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetAdminPassword(r.Context(), adm.ID, hashPassword(password), sess.ID); err != nil {
		return err
	}
	a.log.Info("admin password changed", "username", adm.Username)
	d.Message = "Password changed. Other sessions have been logged out."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changeLogRetention(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil || days < 1 || days > 3650 {
		d.Error = "Keep the log for 1 to 3650 days."
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetSetting(r.Context(), logRetentionDays, strconv.Itoa(days)); err != nil {
		return err
	}
	d.LogDays, d.Message = days, fmt.Sprintf("The provisioning log now keeps %d days.", days)
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

// changePolicy applies a preset, or the per-field choices of the form.
func (a *admin) changePolicy(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	var p Policy
	if preset := r.PostFormValue("preset"); preset != "" {
		p = PresetPolicy(preset)
	} else {
		p = Policy{}
		for _, f := range policyFields {
			p[f.Key] = FromDirectory
			if r.PostFormValue("source:"+f.Key) == string(FromLocal) {
				p[f.Key] = FromLocal
			}
		}
	}
	if err := a.store.SetPolicy(r.Context(), p); err != nil {
		return err
	}
	a.log.Info("source-of-truth policy changed", "admin", sess.Username)
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	d.Message = "Source of truth saved. The directory's values and local edits are both kept; only what is shown changes."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changeProvisioning(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	mode := DeprovisionMode(r.PostFormValue("deprovision"))
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("purge_days")))
	switch {
	case mode != deprovisionDelete && mode != deprovisionHide:
		d.Error = "Choose what a delete from the directory does."
	case err != nil || days < 0 || days > 3650:
		d.Error = "Delete disabled accounts after 0 (never) to 3650 days."
	}
	if d.Error != "" {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	claim := "false"
	if r.PostFormValue("claim") == "on" {
		claim = "true"
	}
	for k, v := range map[string]string{settingClaim: claim, settingDeprovision: string(mode), settingPurgeInactive: strconv.Itoa(days)} {
		if err := a.store.SetSetting(r.Context(), k, v); err != nil {
			return err
		}
	}
	a.log.Info("provisioning settings changed", "admin", sess.Username, "claim", claim, "deprovision", mode, "purge_days", days)
	if d, err = a.settingsData(r, sess); err != nil {
		return err
	}
	d.Message = "Provisioning settings saved."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

// disconnect ends the directory connection, after the admin typed DISCONNECT.
func (a *admin) disconnect(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	if strings.TrimSpace(r.PostFormValue("confirm")) != "DISCONNECT" {
		d, err := a.connectionData(ctx, r, sess)
		if err != nil {
			return err
		}
		d.Error = "Type DISCONNECT to confirm."
		return a.render(w, r, http.StatusBadRequest, "connection.html", d)
	}
	p, err := a.store.Policy(ctx)
	if err != nil {
		return err
	}
	n, err := a.store.Disconnect(ctx, p)
	if err != nil {
		return err
	}
	a.log.Warn("disconnected from the directory", "admin", sess.Username, "accounts", n)
	a.store.Log(LogEntry{Op: "disconnect from the directory", Target: "all accounts", Outcome: "success", Status: 200,
		Detail: fmt.Sprintf("by %s: tokens revoked, %d accounts are now manual", sess.Username, n)})
	http.Redirect(w, r, "/connection", http.StatusSeeOther)
	return nil
}

type appsData struct {
	layout
	Keys       []Token
	NewKey     string
	Webhooks   []webhookRow
	EventTypes []string
	NewSecret  string
	Error      string
	APIBase    string
}

type webhookRow struct {
	Webhook
	Attempts []DeliveryAttempt
}

func (a *admin) appsData(r *http.Request, sess *adminSession) (appsData, error) {
	ctx := r.Context()
	d := appsData{layout: sess.layout("Apps and webhooks", "apps"), EventTypes: eventTypes,
		APIBase: strings.TrimSuffix(baseURL(r), scimBase) + "/api/v1"}
	var err error
	if d.Keys, err = a.store.AppKeys(ctx); err != nil {
		return d, err
	}
	hooks, err := a.store.Webhooks(ctx)
	if err != nil {
		return d, err
	}
	for _, w := range hooks {
		attempts, err := a.store.DeliveryAttempts(ctx, w.ID, 10)
		if err != nil {
			return d, err
		}
		d.Webhooks = append(d.Webhooks, webhookRow{w, attempts})
	}
	return d, nil
}

func (a *admin) apps(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.appsData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "apps.html", d)
}

func (a *admin) createAppKey(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "app"
	}
	plain, k, err := a.store.CreateAppKey(r.Context(), name)
	if err != nil {
		return err
	}
	a.log.Info("app key created", "key", k.ID, "name", name, "admin", sess.Username)
	d, err := a.appsData(r, sess)
	if err != nil {
		return err
	}
	d.NewKey = plain
	return a.render(w, r, http.StatusOK, "apps.html", d)
}

func (a *admin) revokeAppKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if err := a.store.RevokeAppKey(r.Context(), ps.ByName("id")); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	a.log.Info("app key revoked", "key", ps.ByName("id"), "admin", sess.Username)
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
	return nil
}

func (a *admin) createWebhook(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	target := strings.TrimSpace(r.PostFormValue("url"))
	u, err := url.Parse(target)
	d, derr := a.appsData(r, sess)
	if derr != nil {
		return derr
	}
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		d.Error = "Enter the endpoint's full URL, such as https://intranet.example.com/hooks/scimbox."
		return a.render(w, r, http.StatusBadRequest, "apps.html", d)
	}
	r.ParseForm()
	types := r.PostForm["types"]
	for _, t := range types {
		if !slices.Contains(eventTypes, t) {
			d.Error = "Unknown event type " + t
			return a.render(w, r, http.StatusBadRequest, "apps.html", d)
		}
	}
	if len(types) == 0 {
		types = []string{"*"}
	}
	hook, err := a.store.CreateWebhook(r.Context(), target, types)
	if err != nil {
		return err
	}
	a.log.Info("webhook registered", "webhook", hook.ID, "url", target, "admin", sess.Username)
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
	return nil
}

// webhookAction deletes, re-enables or sends a test event to an endpoint.
func (a *admin) webhookAction(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	ctx, id := r.Context(), ps.ByName("id")
	var err error
	switch r.PostFormValue("action") {
	case "delete":
		err = a.store.DeleteWebhook(ctx, id)
	case "enable":
		err = a.store.EnableWebhook(ctx, id)
	case "test":
		err = a.store.QueueTestEvent(ctx, id)
	default:
		return a.render(w, r, http.StatusBadRequest, "message.html", messageData{sess.layout("Error", "apps"), "Unknown action", "Go back and try again."})
	}
	if err != nil {
		return err
	}
	a.log.Info("webhook "+r.PostFormValue("action"), "webhook", id, "admin", sess.Username)
	http.Redirect(w, r, "/apps", http.StatusSeeOther)
	return nil
}

// export streams users.csv, users.json or groups.json with effective values.
func (a *admin) export(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	file := ps.ByName("file")
	var cols []string
	if c := r.URL.Query().Get("columns"); c != "" {
		cols = strings.Split(c, ",")
	}
	w.Header().Set("Content-Disposition", `attachment; filename="scimbox-`+time.Now().UTC().Format("20060102")+"-"+file+`"`)
	a.log.Info("export", "file", file, "admin", sess.Username)
	switch file {
	case "users.csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		return exportUsers(r.Context(), a.store, w, "csv", cols)
	case "users.json":
		w.Header().Set("Content-Type", "application/json")
		return exportUsers(r.Context(), a.store, w, "json", nil)
	case "groups.json":
		w.Header().Set("Content-Type", "application/json")
		return exportGroups(r.Context(), a.store, w)
	}
	return ErrNotFound
}

// downloadBackup sends a fresh, checked snapshot of the database.
func (a *admin) downloadBackup(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	dir, err := os.MkdirTemp("", "scimbox-download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "scimbox.db")
	if err := a.store.Snapshot(r.Context(), path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	name := "scimbox-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	a.log.Info("backup downloaded from the admin page", "admin", sess.Username)
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(w, r, name, time.Now(), f)
	return nil
}

// announceSetup prints where the admin page is. Before the first admin
// exists it creates a one-time setup code and prints, and logs, the link
// that claims the instance: nobody without it can.
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
	s.log.Info("first run: open the setup link to create the admin account (valid 24 h, once)", slog.String("url", link))
	return nil
}

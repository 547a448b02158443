package main

// The admin page: first-run setup, login, the Entra connection, users,
// groups, the provisioning log and settings. Server-rendered html/template
// pages embedded from web/; everything the directory sends is untrusted and
// only ever reaches the page through html/template's contextual escaping.

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
)

//go:embed web
var webFS embed.FS

const (
	sessionLifetime = 12 * time.Hour // how long a login lasts; a new login makes a new session
	setupCodeTTL    = 24 * time.Hour // how long a printed setup link works
	minPasswordLen  = 12             // in characters (runes), not bytes
	adminPageSize   = 50             // rows per page of the admin lists
	// Wrong passwords allowed within loginWindow per client address at
	// login, and per admin on Settings → change password.
	loginAttempts = 10
	loginWindow   = 15 * time.Minute
)

// admin serves the admin page.
type admin struct {
	*server
	pages   map[string]*template.Template
	flashes flashBox
	sso     ssoState // sign-ins with the identity provider in progress (oidc.go)
}

// adminPages are the templates in web/, each rendered inside web/layout.html
// with the shared pieces of web/partials*.html.
var adminPages = []string{"setup.html", "login.html", "dashboard.html", "connection.html", "users.html",
	"user.html", "newuser.html", "groups.html", "group.html", "log.html", "settings.html", "apps.html", "message.html", "alerts.html", "holds.html", "roles.html", "drift.html",
	"admins.html", "invite.html", "audit.html", "sso.html", "signedin.html", "reconcile.html"}

// templateFuncs are the helpers every page template may call.
var templateFuncs = template.FuncMap{
	// dict builds a map from key, value pairs, for small fixed lists in templates.
	"dict": func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	},
	"size": sizeText,
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
		return agoText(time.Since(t))
	},
}

// sizeText is a file or disk size for people: "3.2 GB", "12.0 MB", "4 kB".
func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d kB", (n+1023)/1024)
}

// agoText says how long ago something was, d before now: "just now", "12 min ago", "3 h ago", "4 days ago".
func agoText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// newAdmin parses every page of web/ (a template error stops the server at
// start, not on a page view) for the admin page of s.
func newAdmin(s *server) *admin {
	a := &admin{server: s, pages: map[string]*template.Template{}}
	for _, p := range adminPages {
		a.pages[p] = template.Must(template.New("layout.html").Funcs(templateFuncs).ParseFS(webFS, "web/layout.html", "web/partials*.html", "web/"+p))
	}
	return a
}

// routes registers the admin page on the router.
func (a *admin) routes(rt *httprouter.Router) {
	get := func(path string, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) {
		rt.GET(path, a.authed(routeRole("GET", path), h))
	}
	post := func(path string, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) {
		rt.POST(path, a.authed(routeRole("POST", path), a.checkCSRF(a.audited(path, h))))
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
	get("/suggest/users", a.suggestUsers)
	post("/users/:id", a.userAction)
	post("/settings/policy", a.changePolicy)
	post("/settings/provisioning", a.changeProvisioning)
	post("/connection/disconnect", a.disconnect)
	get("/connection/disconnected", a.disconnected)
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
	get("/settings/alerts", a.alertsPage)
	post("/settings/alerts", a.saveAlerts)
	post("/settings/alerts/test", a.testAlert)
	get("/holds", a.holdsPage)
	get("/drift", a.driftPage)
	get("/drift/:file", a.driftExport)
	post("/holds", a.holdsAction)
	post("/settings/holds", a.changeHoldSettings)
	get("/reconcile", a.reconcilePage)
	post("/reconcile/close", a.closeReconcile)
	get("/settings/roles", a.rolesPage)
	post("/settings/roles", a.rolesAction)
	get("/admins", a.adminsPage)
	post("/admins", a.adminsAction)
	rt.GET("/invite", a.public(a.invitePage))
	rt.POST("/invite", a.public(a.inviteSubmit))
	get("/audit", a.auditPage)
	rt.GET("/sso/start", a.public(a.ssoStart))
	rt.GET(ssoCallbackPath, a.public(a.ssoCallback))
	get("/settings/sso", a.ssoSettingsPage)
	post("/settings/sso", a.ssoSettingsSave)
	static, _ := fs.Sub(webFS, "web/static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	rt.GET("/static/*filepath", func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		infoOf(r).op = "static"
		if fi, err := fs.Stat(static, strings.TrimPrefix(ps.ByName("filepath"), "/")); err != nil || fi.IsDir() {
			adminHeaders(w)
			a.fail(w, r, nil, ErrNotFound)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// layout is what every page's template gets besides its own data.
type layout struct {
	Title string
	Nav   string
	CSRF  string
	// Admin is the logged-in admin. Anonymous pages (setup, login) leave it
	// empty and show no navigation, whatever username their form holds.
	Admin string
	Flash *flash // what the form that led here has to say, once
	// Attention is the health line: what needs the admin, shown on every
	// page of a logged-in admin (never to anonymous visitors).
	Attention []attention
}

// layout is the frame of a page for the admin of sess (nil on anonymous pages).
func (a *admin) layout(r *http.Request, sess *adminSession, title, nav string) layout {
	if sess == nil {
		return layout{Title: title, Nav: nav}
	}
	return layout{Title: title, Nav: nav, CSRF: sess.CSRF, Admin: sess.Username, Flash: a.flashes.take(sess.ID, r.URL.Path),
		Attention: a.attentionLine(r.Context())}
}

// flash is what a form's POST has to tell the page it redirects to. Every
// form redirects after POST, so that a reload never repeats it; a new secret
// reaches the page only this way, shown once. Flashes are kept in memory
// keyed by session: never in a URL, a log line or the database.
type flash struct {
	Notice     string
	Secret     string // a new token or key, in plain text
	SecretName string
	path       string // the page that shows it
	expires    time.Time
}

// flashTTL bounds how long an unread flash (and the secret in it) is kept.
const flashTTL = 10 * time.Minute

// flashBox holds at most one pending flash per session.
type flashBox struct {
	mu sync.Mutex
	m  map[string]flash
}

// put keeps f for the session's next view of path, replacing any pending flash, and drops expired ones.
func (b *flashBox) put(sessionID, path string, f flash) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if b.m == nil {
		b.m = map[string]flash{}
	}
	for id, old := range b.m {
		if now.After(old.expires) {
			delete(b.m, id)
		}
	}
	f.path, f.expires = path, now.Add(flashTTL)
	b.m[sessionID] = f
}

// take returns and forgets the session's flash if it is meant for path.
func (b *flashBox) take(sessionID, path string) *flash {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.m[sessionID]
	if !ok || f.path != path {
		return nil
	}
	delete(b.m, sessionID)
	if time.Now().After(f.expires) {
		return nil
	}
	return &f
}

// redirect ends a successful form: the flash goes to the page at path, which the browser then GETs.
func (a *admin) redirect(w http.ResponseWriter, r *http.Request, sess *adminSession, path string, f flash) error {
	a.flashes.put(sess.ID, path, f)
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
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

// messageData is the data of web/message.html: a heading and a sentence, for errors and confirmations.
type messageData struct {
	layout
	Heading, Text string
}

// fail renders an error as the admin page's message page; what the error
// is, decide says. An error is never a download, whatever the handler had
// announced before it failed.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, sess *adminSession, err error) {
	v := a.decide(w, r, err)
	w.Header().Del("Content-Disposition")
	v.setHeaders(w, "")
	text := v.Detail
	switch v.Status {
	case http.StatusNotFound:
		text = "There is nothing here. It may have been deleted."
	case http.StatusInternalServerError:
		text = "Something went wrong; the details are in the server log."
	case http.StatusServiceUnavailable:
		// The admin gets the store's own words: this file's path and the
		// command that restores it. Anonymous visitors get the verdict's.
		if lost := a.store.CheckFile(); lost != nil && sess != nil && errors.Is(err, ErrDatabaseLost) {
			text = sentence(lost.Error()) + " Nothing was changed."
		}
	}
	if rerr := a.render(w, r, v.Status, "message.html", messageData{a.layout(r, sess, "Error", ""), http.StatusText(v.Status), text}); rerr != nil {
		http.Error(w, text, v.Status)
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

// authed wraps handlers that need a logged-in admin whose role allows need;
// others go to the login page, or to the setup notice before the first admin
// exists. An admin whose role is short is refused (403) and audited.
func (a *admin) authed(need AdminRole, h func(http.ResponseWriter, *http.Request, httprouter.Params, *adminSession) error) httprouter.Handle {
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
			a.fail(w, r, nil, &scimError{Status: http.StatusForbidden, Detail: "Your session has ended: log in again."})
			return
		}
		if !sess.Role.Allows(need) {
			a.audit(r, sess.Username, r.Method+" "+r.URL.Path, "", auditRefused, fmt.Sprintf("needs the %s role, has %s", need, sess.Role))
			a.fail(w, r, sess, &scimError{Status: http.StatusForbidden,
				Detail: fmt.Sprintf("Your admin role (%s) does not allow this: it needs %s. Ask an owner.", sess.Role, need)})
			return
		}
		if err := h(w, r, ps, sess); err != nil {
			a.fail(w, r, sess, err)
		}
	}
}

// pager is the page navigation of a list.
type pager struct {
	Page, Pages, Total int
	Query              string
}

// Prev, Next, HasPrev and HasNext are for the page links in web/partials.html.
func (p pager) Prev() int { return p.Page - 1 }
func (p pager) Next() int { return p.Page + 1 }
func (p pager) HasPrev() bool {
	return p.Page > 1
}
func (p pager) HasNext() bool { return p.Page < p.Pages }

// newPager reads ?page and ?q for a list of total rows, clamping the page into range.
func newPager(r *http.Request, total int) pager {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pages := max((total+adminPageSize-1)/adminPageSize, 1)
	return pager{Page: min(max(page, 1), pages), Pages: pages, Total: total, Query: r.URL.Query().Get("q")}
}

// pageNumber is ?page, at least 1, for lists whose total is not counted.
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

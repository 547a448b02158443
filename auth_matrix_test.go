package main

// The auth matrix: every route the binary serves, with every kind of
// credential (none, the wrong kind, a revoked one, the right one). A route
// added to the routers without a case here fails TestAuthMatrixCoversEveryRoute.

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// route is one registration on the router: a method and an httprouter pattern.
type route struct{ method, pattern string }

func (r route) String() string { return r.method + " " + r.pattern }

// routerFuncs are the functions that register the binary's routes.
var routerFuncs = []string{"handler", "routes", "apiRoutes"}

// registeredRoutes reads the routes from the source of routerFuncs: every
// rt.GET/POST/PUT/PATCH/DELETE/HEAD/OPTIONS(path, …), rt.Handle(method, path,
// …) and the admin's get/post(path, …) helpers. A registration it cannot read
// fails the test rather than going unchecked.
func registeredRoutes(t *testing.T) []route {
	t.Helper()
	fset := gotoken.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var bodies []*ast.BlockStmt
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok != gotoken.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
								consts[n.Name], _ = strconv.Unquote(lit.Value)
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv != nil && slices.Contains(routerFuncs, d.Name.Name) {
					bodies = append(bodies, d.Body)
				}
			}
		}
	}
	if len(bodies) != len(routerFuncs) {
		t.Fatalf("found %d of the router functions %v", len(bodies), routerFuncs)
	}
	var str func(e ast.Expr) (string, bool)
	str = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			s, err := strconv.Unquote(e.Value)
			return s, err == nil && e.Kind == gotoken.STRING
		case *ast.Ident:
			s, ok := consts[e.Name]
			return s, ok
		case *ast.SelectorExpr: // http.MethodGet and the like
			if x, ok := e.X.(*ast.Ident); ok && x.Name == "http" && strings.HasPrefix(e.Sel.Name, "Method") {
				return strings.ToUpper(strings.TrimPrefix(e.Sel.Name, "Method")), true
			}
		case *ast.BinaryExpr:
			l, ok1 := str(e.X)
			r, ok2 := str(e.Y)
			return l + r, ok1 && ok2 && e.Op == gotoken.ADD
		}
		return "", false
	}
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
	var routes []route
	for _, body := range bodies {
		// Helpers such as the admin's get(path, h) forward their parameter;
		// their callers are the registrations.
		forwarded := map[string]bool{}
		ast.Inspect(body, func(n ast.Node) bool {
			if lit, ok := n.(*ast.FuncLit); ok {
				for _, field := range lit.Type.Params.List {
					for _, name := range field.Names {
						forwarded[name.Name] = true
					}
				}
			}
			return true
		})
		ast.Inspect(body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var name string
			switch fun := call.Fun.(type) {
			case *ast.SelectorExpr:
				name = fun.Sel.Name
			case *ast.Ident:
				name = fun.Name
			}
			var method string
			var pathArg ast.Expr
			switch {
			case slices.Contains(methods, name) && len(call.Args) == 2:
				method, pathArg = name, call.Args[0]
			case (name == "get" || name == "post") && len(call.Args) == 2:
				method, pathArg = strings.ToUpper(name), call.Args[0]
			case (name == "Handle" || name == "Handler" || name == "HandlerFunc") && len(call.Args) == 3:
				var ok bool
				if method, ok = str(call.Args[0]); !ok {
					t.Fatalf("%s: cannot read the method of a route registration", fset.Position(call.Pos()))
				}
				pathArg = call.Args[1]
			default:
				return true
			}
			if id, ok := pathArg.(*ast.Ident); ok && forwarded[id.Name] {
				return true
			}
			if sel, ok := pathArg.(*ast.SelectorExpr); ok && sel.Sel.Name == "path" {
				return true // the API's table, read below from apiEndpoints itself
			}
			path, ok := str(pathArg)
			if !ok {
				t.Fatalf("%s: cannot read the path of a %s route registration: extend registeredRoutes", fset.Position(call.Pos()), method)
			}
			routes = append(routes, route{method, path})
			return true
		})
	}
	for _, e := range (&server{}).apiEndpoints() {
		routes = append(routes, route{"GET", e.path})
	}
	return routes
}

// routeFamily is who may call a route.
type routeFamily int

const (
	familySCIM   routeFamily = iota // a SCIM bearer token
	familyAPI                       // an app key
	familyAdmin                     // an admin session (and its CSRF token for POSTs)
	familyPublic                    // anyone: health, static files, login and setup
)

// matrixFixture is a server with one of everything the routes name.
type matrixFixture struct {
	ts                          *testServer
	userID, groupID             string
	spareTokenID, spareKeyID    string
	webhookID                   string
	appKey, revokedAppKey       string
	revokedToken                string
	cookie, csrf, revokedCookie string
}

func newMatrixFixture(t *testing.T) *matrixFixture {
	t.Helper()
	ctx := context.Background()
	ts := newTestServer(t)
	setUpAdmin(t, ts)
	fx := &matrixFixture{ts: ts, userID: ts.createUser(t, "alice@example.com"), groupID: ts.createGroup(t, "Staff")}
	adm, err := ts.store.AdminByUsername(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var tok Token
	_, tok, err = ts.store.CreateToken(ctx, "spare")
	must(err)
	fx.spareTokenID = tok.ID
	fx.revokedToken, tok, err = ts.store.CreateToken(ctx, "revoked")
	must(err)
	must(ts.store.RevokeToken(ctx, tok.ID))
	fx.appKey, _, err = ts.store.CreateAppKey(ctx, "app")
	must(err)
	_, tok, err = ts.store.CreateAppKey(ctx, "spare")
	must(err)
	fx.spareKeyID = tok.ID
	fx.revokedAppKey, tok, err = ts.store.CreateAppKey(ctx, "revoked")
	must(err)
	must(ts.store.RevokeAppKey(ctx, tok.ID))
	hook, err := ts.store.CreateWebhook(ctx, "http://127.0.0.1:9/hook", []string{"*"})
	must(err)
	fx.webhookID = hook.ID
	var sess Session
	fx.cookie, sess, err = ts.store.CreateSession(ctx, adm.ID, time.Hour)
	must(err)
	fx.csrf = sess.CSRF
	fx.revokedCookie, sess, err = ts.store.CreateSession(ctx, adm.ID, time.Hour)
	must(err)
	must(ts.store.DeleteSession(ctx, sess.ID))
	return fx
}

// matrixCase is the request a route gets: one that would change something
// if it were let through, so that "nothing written" means something.
type matrixCase struct {
	path string // the pattern with its parameters filled in
	json any    // a SCIM body
	form url.Values
}

func (fx *matrixFixture) cases() map[string]matrixCase {
	scimUser := newUserBody("intruder@example.com")
	rename := patchBody(map[string]any{"op": "replace", "path": "displayName", "value": "Intruded"})
	search := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:SearchRequest"}, "filter": `userName sw "a"`}
	u, g := "/scim/v2/Users/"+fx.userID, "/scim/v2/Groups/"+fx.groupID
	return map[string]matrixCase{
		"GET /healthz":                       {path: "/healthz"},
		"GET /scim/v2/Users":                 {path: "/scim/v2/Users"},
		"POST /scim/v2/Users":                {path: "/scim/v2/Users", json: scimUser},
		"GET /scim/v2/Users/:id":             {path: u},
		"PUT /scim/v2/Users/:id":             {path: u, json: scimUser},
		"PATCH /scim/v2/Users/:id":           {path: u, json: rename},
		"DELETE /scim/v2/Users/:id":          {path: u},
		"POST /scim/v2/Users/:id":            {path: "/scim/v2/Users/.search", json: search},
		"GET /scim/v2/Groups":                {path: "/scim/v2/Groups"},
		"POST /scim/v2/Groups":               {path: "/scim/v2/Groups", json: map[string]any{"schemas": []string{groupSchema}, "displayName": "Intruders"}},
		"GET /scim/v2/Groups/:id":            {path: g},
		"PUT /scim/v2/Groups/:id":            {path: g, json: map[string]any{"schemas": []string{groupSchema}, "displayName": "Intruded"}},
		"PATCH /scim/v2/Groups/:id":          {path: g, json: rename},
		"DELETE /scim/v2/Groups/:id":         {path: g},
		"POST /scim/v2/Groups/:id":           {path: "/scim/v2/Groups/.search", json: search},
		"POST /scim/v2/.search":              {path: "/scim/v2/.search", json: search},
		"GET /scim/v2/ServiceProviderConfig": {path: "/scim/v2/ServiceProviderConfig"},
		"GET /scim/v2/ResourceTypes":         {path: "/scim/v2/ResourceTypes"},
		"GET /scim/v2/ResourceTypes/:id":     {path: "/scim/v2/ResourceTypes/User"},
		"GET /scim/v2/Schemas":               {path: "/scim/v2/Schemas"},
		"GET /scim/v2/Schemas/:id":           {path: "/scim/v2/Schemas/" + userSchema},
		"GET /setup":                         {path: "/setup?code=not-the-code"},
		"POST /setup":                        {path: "/setup", form: url.Values{"code": {"not-the-code"}, "username": {"intruder"}, "password": {testPassword}, "confirm": {testPassword}}},
		"GET /login":                         {path: "/login"},
		"POST /login":                        {path: "/login", form: url.Values{"username": {"admin"}, "password": {"not the password"}}},
		"POST /logout":                       {path: "/logout", form: url.Values{}},
		"GET /":                              {path: "/"},
		"GET /connection":                    {path: "/connection"},
		"GET /connection/disconnected":       {path: "/connection/disconnected"},
		"GET /suggest/users":                 {path: "/suggest/users?q=a"},
		"POST /connection/tokens":            {path: "/connection/tokens", form: url.Values{"name": {"intruder"}}},
		"POST /connection/tokens/:id/revoke": {path: "/connection/tokens/" + fx.spareTokenID + "/revoke", form: url.Values{}},
		"GET /users":                         {path: "/users"},
		"GET /users/:id":                     {path: "/users/" + fx.userID},
		"POST /users/:id":                    {path: "/users/new", form: url.Values{"userName": {"intruder"}}},
		"POST /settings/policy":              {path: "/settings/policy", form: url.Values{"preset": {"local"}}},
		"POST /settings/provisioning":        {path: "/settings/provisioning", form: url.Values{"deprovision": {"hide"}, "purge_days": {"1"}, "claim": {"on"}}},
		"POST /connection/disconnect":        {path: "/connection/disconnect", form: url.Values{"confirm": {"DISCONNECT"}}},
		"GET /groups":                        {path: "/groups"},
		"GET /groups/:id":                    {path: "/groups/" + fx.groupID},
		"GET /log":                           {path: "/log"},
		"GET /apps":                          {path: "/apps"},
		"POST /apps/keys":                    {path: "/apps/keys", form: url.Values{"name": {"intruder"}}},
		"POST /apps/keys/:id/revoke":         {path: "/apps/keys/" + fx.spareKeyID + "/revoke", form: url.Values{}},
		"POST /apps/webhooks":                {path: "/apps/webhooks", form: url.Values{"url": {"https://intruder.example/hook"}}},
		"POST /apps/webhooks/:id":            {path: "/apps/webhooks/" + fx.webhookID, form: url.Values{"action": {"delete"}}},
		"GET /export/:file":                  {path: "/export/users.csv"},
		"GET /settings":                      {path: "/settings"},
		"POST /settings/password":            {path: "/settings/password", form: url.Values{"current": {testPassword}, "password": {"an intruder's password"}, "confirm": {"an intruder's password"}}},
		"POST /settings/log":                 {path: "/settings/log", form: url.Values{"days": {"1"}}},
		"POST /settings/backup":              {path: "/settings/backup", form: url.Values{}},
		"GET /settings/alerts":               {path: "/settings/alerts"},
		"POST /settings/alerts":              {path: "/settings/alerts", form: url.Values{"webhook_url": {"https://intruder.example/hook"}}},
		"POST /settings/alerts/test":         {path: "/settings/alerts/test", form: url.Values{}},
		"GET /holds":                         {path: "/holds"},
		"GET /drift":                         {path: "/drift"},
		"GET /drift/:file":                   {path: "/drift/drift.csv"},
		"POST /holds":                        {path: "/holds", form: url.Values{"action": {"approve-all"}}},
		"POST /settings/holds":               {path: "/settings/holds", form: url.Values{"hold_percent": {"0"}, "hold_minimum": {"0"}, "hold_window": {"1"}}},
		"GET /reconcile":                     {path: "/reconcile"},
		"POST /reconcile/close":              {path: "/reconcile/close", form: url.Values{}},
		"GET /settings/roles":                {path: "/settings/roles"},
		"POST /settings/roles":               {path: "/settings/roles", form: url.Values{"action": {"create"}, "name": {"intruders"}}},
		"GET /admins":                        {path: "/admins"},
		"POST /admins":                       {path: "/admins", form: url.Values{"action": {"invite"}, "role": {"owner"}}},
		"GET /invite":                        {path: "/invite?code=not-the-code"},
		"POST /invite":                       {path: "/invite", form: url.Values{"code": {"not-the-code"}, "username": {"intruder"}, "password": {testPassword}, "confirm": {testPassword}}},
		"GET /audit":                         {path: "/audit?actor=admin"},
		"GET /sso/start":                     {path: "/sso/start"},
		"GET /sso/callback":                  {path: "/sso/callback?state=forged&code=forged"},
		"GET /settings/sso":                  {path: "/settings/sso"},
		"POST /settings/sso":                 {path: "/settings/sso", form: url.Values{"issuer": {"https://intruder.example"}, "client_id": {"intruder"}, "client_secret": {"intruder"}}},
		"GET /static/*filepath":              {path: "/static/app.js"},
		"GET /api/v1/users":                  {path: "/api/v1/users"},
		"GET /api/v1/users/:id":              {path: "/api/v1/users/" + fx.userID},
		"GET /api/v1/groups":                 {path: "/api/v1/groups"},
		"GET /api/v1/groups/:id/members":     {path: "/api/v1/groups/" + fx.groupID + "/members"},
		"GET /api/v1/events":                 {path: "/api/v1/events"},
		"GET /api/v1/health":                 {path: "/api/v1/health"},
	}
}

func familyOf(r route) routeFamily {
	switch {
	case strings.HasPrefix(r.pattern, scimBase+"/"):
		return familySCIM
	case strings.HasPrefix(r.pattern, "/api/"):
		return familyAPI
	case r.pattern == "/healthz" || strings.HasPrefix(r.pattern, "/static/") || r.pattern == "/login" || r.pattern == "/setup" ||
		r.pattern == "/invite" || strings.HasPrefix(r.pattern, "/sso/"):
		return familyPublic
	}
	return familyAdmin
}

// credential is what a request presents.
type credential struct {
	name   string
	right  routeFamily // the family it opens; familyPublic for none
	bearer func(fx *matrixFixture) string
	cookie func(fx *matrixFixture) string
}

var matrixCredentials = []credential{
	{name: "none", right: familyPublic},
	{name: "SCIM token", right: familySCIM, bearer: func(fx *matrixFixture) string { return fx.ts.token }},
	{name: "app key", right: familyAPI, bearer: func(fx *matrixFixture) string { return fx.appKey }},
	{name: "admin session", right: familyAdmin, cookie: func(fx *matrixFixture) string { return fx.cookie }},
	{name: "revoked SCIM token", right: familyPublic, bearer: func(fx *matrixFixture) string { return fx.revokedToken }},
	{name: "revoked app key", right: familyPublic, bearer: func(fx *matrixFixture) string { return fx.revokedAppKey }},
	{name: "revoked admin session", right: familyPublic, cookie: func(fx *matrixFixture) string { return fx.revokedCookie }},
}

// send makes one request of the matrix and returns its status and headers.
func (fx *matrixFixture) send(t *testing.T, r route, c matrixCase, cred credential) (int, http.Header) {
	t.Helper()
	var body io.Reader
	contentType := ""
	switch {
	case c.json != nil:
		raw, err := json.Marshal(c.json)
		if err != nil {
			t.Fatal(err)
		}
		body, contentType = bytes.NewReader(raw), "application/scim+json"
	case c.form != nil:
		form := url.Values{"csrf": {fx.csrf}} // the live session's: only the credential may make the difference
		for k, v := range c.form {
			form[k] = v
		}
		body, contentType = strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(r.method, fx.ts.URL+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if cred.bearer != nil {
		req.Header.Set("Authorization", "Bearer "+cred.bearer(fx))
	}
	if cred.cookie != nil {
		req.AddCookie(&http.Cookie{Name: "scimbox_session", Value: cred.cookie(fx)})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// fingerprint sums up everything a request could write.
func (fx *matrixFixture) fingerprint(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, query := range map[string]string{
		"users":              "SELECT count(*) || ' ' || coalesce(sum(version), 0) || ' ' || coalesce(max(modified), '') || ' ' || coalesce(group_concat(kind), '') FROM users",
		"groups":             "SELECT count(*) || ' ' || coalesce(sum(version), 0) || ' ' || coalesce(max(modified), '') FROM groups",
		"members":            "SELECT count(*) FROM members",
		"provisioning log":   "SELECT count(*) FROM provisioning_log",
		"events":             "SELECT count(*) FROM events",
		"SCIM tokens":        "SELECT count(*) || ' ' || coalesce(group_concat(id || coalesce(last_used, '')), '') FROM tokens",
		"app keys":           "SELECT count(*) || ' ' || coalesce(group_concat(id || coalesce(last_used, '')), '') FROM app_keys",
		"admins":             "SELECT count(*) || ' ' || coalesce(group_concat(username || password_hash || role), '') FROM admins",
		"admin invites":      "SELECT count(*) FROM admin_invites",
		"sessions":           "SELECT count(*) FROM sessions",
		"settings":           "SELECT coalesce(group_concat(key || '=' || value), '') FROM (SELECT key, value FROM settings ORDER BY key)",
		"webhooks":           "SELECT count(*) || ' ' || coalesce(group_concat(id || disabled_reason), '') FROM webhooks",
		"webhook deliveries": "SELECT count(*) FROM deliveries",
		"roles":              "SELECT (SELECT count(*) FROM roles) || ' ' || (SELECT count(*) FROM role_rules) || ' ' || (SELECT count(*) FROM role_grants)",
	} {
		var v string
		if err := fx.ts.store.r.QueryRowContext(context.Background(), query).Scan(&v); err != nil {
			t.Fatalf("fingerprint %s: %v", name, err)
		}
		out[name] = v
	}
	return out
}

// TestAuthMatrixCoversEveryRoute fails when a route is registered without a
// case in the auth matrix, or the matrix names a route that is gone.
func TestAuthMatrixCoversEveryRoute(t *testing.T) {
	t.Parallel()
	routes := registeredRoutes(t)
	if len(routes) < 40 {
		t.Fatalf("read only %d routes from the routers: %v", len(routes), routes)
	}
	cases := (&matrixFixture{}).cases()
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r.String()] = true
		if _, ok := cases[r.String()]; !ok {
			t.Errorf("route %s has no case in the auth matrix (auth_matrix_test.go): add one", r)
		}
	}
	for name := range cases {
		if !seen[name] {
			t.Errorf("the auth matrix has a case for %s, which is not registered", name)
		}
	}
}

// TestAuthMatrix sends every route every kind of credential. The wrong ones
// (none, another kind, revoked) get 401 on SCIM and the API and the login
// page on the admin page (303 for a page, 403 for a form), and write nothing;
// the right one is let through.
func TestAuthMatrix(t *testing.T) {
	t.Parallel()
	routes := registeredRoutes(t)
	for _, cred := range matrixCredentials {
		t.Run(cred.name, func(t *testing.T) {
			t.Parallel()
			// A server per credential: the bearer-token limiter (30 a minute
			// per address) would otherwise answer 429 before the matrix ends.
			fx := newMatrixFixture(t)
			cases := fx.cases()
			if err := fx.ts.store.FlushLog(context.Background()); err != nil {
				t.Fatal(err)
			}
			before := fx.fingerprint(t)
			var allowed []route
			for _, r := range routes {
				c, ok := cases[r.String()]
				if !ok {
					continue // TestAuthMatrixCoversEveryRoute reports it
				}
				family := familyOf(r)
				if family == cred.right && family != familyPublic {
					allowed = append(allowed, r)
					continue
				}
				status, h := fx.send(t, r, c, cred)
				t.Run(r.String(), func(t *testing.T) {
					checkRefused(t, r, family, status, h, cred)
				})
			}
			if err := fx.ts.store.FlushLog(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := fx.fingerprint(t)
			for table, was := range before {
				if after[table] != was {
					t.Errorf("%s changed with the credential %q: %q → %q", table, cred.name, was, after[table])
				}
			}
			// The right credential is let through. Logging out ends the session: last.
			slices.SortStableFunc(allowed, func(a, b route) int {
				return boolCompare(a.pattern == "/logout", b.pattern == "/logout")
			})
			for _, r := range allowed {
				status, h := fx.send(t, r, cases[r.String()], cred)
				loc := h.Get("Location")
				toLogin := strings.HasPrefix(loc, "/login") && r.pattern != "/logout"
				if status == http.StatusUnauthorized || status == http.StatusForbidden || status >= 500 || toLogin {
					t.Errorf("%s with the right credential (%s): %d Location %q", r, cred.name, status, loc)
				}
			}
		})
	}
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// checkRefused checks the answer to a request with a credential that does
// not open the route.
func checkRefused(t *testing.T, r route, family routeFamily, status int, h http.Header, cred credential) {
	t.Helper()
	switch family {
	case familySCIM:
		if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s with %s: %d (WWW-Authenticate %q), want 401 with WWW-Authenticate", r, cred.name, status, h.Get("WWW-Authenticate"))
		}
	case familyAPI:
		if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s with %s: %d (WWW-Authenticate %q), want 401 with WWW-Authenticate", r, cred.name, status, h.Get("WWW-Authenticate"))
		}
	case familyAdmin:
		want := http.StatusForbidden
		if r.method == http.MethodGet {
			want = http.StatusSeeOther
		}
		if loc := h.Get("Location"); status != want || want == http.StatusSeeOther && !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("%s with %s: %d Location %q, want %d (to /login when a page)", r, cred.name, status, loc, want)
		}
	case familyPublic:
		if status >= 500 {
			t.Errorf("%s with %s: %d", r, cred.name, status)
		}
	}
}

// wantAdminRole is the least admin role that may use each admin route,
// written out here rather than read from routeRoles: a page needs viewer, a
// form admin, except these.
func wantAdminRole(r route) AdminRole {
	switch r.String() {
	case "POST /logout", "POST /settings/password":
		return RoleViewer // their own session and password
	case "POST /connection/disconnect", "POST /settings/backup", "GET /admins", "POST /admins", "GET /settings/sso", "POST /settings/sso":
		return RoleOwner
	}
	if r.method == http.MethodGet {
		return RoleViewer
	}
	return RoleAdmin
}

// addMatrixAdmin creates a local admin with role through an invitation, as
// an owner would, and returns a session cookie of it.
func addMatrixAdmin(t *testing.T, fx *matrixFixture, role AdminRole) string {
	t.Helper()
	ctx := context.Background()
	code, err := fx.ts.store.CreateInvite(ctx, role, "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := fx.ts.store.AcceptInvite(ctx, code, "a-"+string(role), hashPassword(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	cookie, sess, err := fx.ts.store.CreateSession(ctx, adm.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fx.csrf = sess.CSRF // send uses it: the credential alone makes the difference
	return cookie
}

// TestAuthMatrixRoles sends every admin route the session of a viewer and
// of an admin (the owner is the matrix's "admin session"). A route beyond
// the role answers 403 and writes nothing (but the audit trail's record of
// the refusal), a page as much as a form; a route within it is let through.
func TestAuthMatrixRoles(t *testing.T) {
	t.Parallel()
	routes := registeredRoutes(t)
	for _, role := range []AdminRole{RoleViewer, RoleAdmin} {
		t.Run(string(role), func(t *testing.T) {
			t.Parallel()
			fx := newMatrixFixture(t)
			cookie := addMatrixAdmin(t, fx, role)
			cred := credential{name: string(role) + " session", right: familyAdmin, cookie: func(*matrixFixture) string { return cookie }}
			cases := fx.cases()
			if err := fx.ts.store.FlushLog(context.Background()); err != nil {
				t.Fatal(err)
			}
			before := fx.fingerprint(t)
			var allowed []route
			refused := 0
			for _, r := range routes {
				c, ok := cases[r.String()]
				if !ok || familyOf(r) != familyAdmin {
					continue
				}
				if role.Allows(wantAdminRole(r)) {
					allowed = append(allowed, r)
					continue
				}
				refused++
				if status, h := fx.send(t, r, c, cred); status != http.StatusForbidden {
					t.Errorf("%s as %s: %d Location %q, want 403", r, role, status, h.Get("Location"))
				}
			}
			if refused == 0 {
				t.Fatalf("no route is beyond the %s role", role)
			}
			if err := fx.ts.store.FlushLog(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := fx.fingerprint(t)
			for table, was := range before {
				if after[table] != was {
					t.Errorf("%s changed with a %s session: %q → %q", table, role, was, after[table])
				}
			}
			slices.SortStableFunc(allowed, func(a, b route) int {
				return boolCompare(a.pattern == "/logout", b.pattern == "/logout")
			})
			for _, r := range allowed {
				status, h := fx.send(t, r, cases[r.String()], cred)
				loc := h.Get("Location")
				if status == http.StatusUnauthorized || status == http.StatusForbidden || status >= 500 || strings.HasPrefix(loc, "/login") && r.pattern != "/logout" {
					t.Errorf("%s as %s: %d Location %q, want it let through", r, role, status, loc)
				}
			}
		})
	}
}

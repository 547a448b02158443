// The SCIM API's plumbing: the server, its router and middleware (request
// log, authentication, trailing slashes), list and search parameters, and SCIM
// error JSON. The resource handlers are in scim_users.go and scim_groups.go.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
)

const (
	scimBase = "/scim/v2" // the path every SCIM endpoint is under
	// maxBodyBytes caps request bodies; Entra's largest are group PATCHes with member batches.
	maxBodyBytes = 1 << 20
	// defaultPageSize and maxPageSize bound list responses (advertised in /ServiceProviderConfig).
	defaultPageSize = 100
	maxPageSize     = 1000
	scimContentType = "application/scim+json; charset=utf-8" // of every SCIM response (RFC 7644 §3.1)
	maxFilterLen    = 4096                                   // characters of a filter; longer is 400 invalidFilter
	// Failed authentications allowed per client address within authWindow
	// before it gets 429s; a valid token is never throttled.
	authFailures = 30
	authWindow   = time.Minute
)

// server serves the SCIM API.
type server struct {
	store *Store
	log   *slog.Logger

	authLimit *loginLimiter // failed bearer tokens per client address (lazily created)
	limitOnce sync.Once
	rejected  rejectedTokens  // unknown or revoked bearer tokens per client address, for the Connection page
	stopping  shutdownSignal  // closed when shutdown begins, so that long polls answer at once
	passwords passwordGate    // bounds concurrent admin password hashes
	alerts    *alerter        // nil in tests that build a server without newApp
	tls       *tlsChecker     // the served certificate chain's health (tlsHealth); nil in tests
	certs     *certHealth     // obtaining and renewing the certificate; nil in tests
	metrics   *requestMetrics // nil unless -metrics-addr is set
	ssoFlags  ssoFlags        // the -oidc-* flags (oidc.go)
	replica   *replicator     // nil unless -replica is set
	reconcile reconcileGate   // whether a restore's reconcile is open (reconcile.go)
}

// scimHandler is a SCIM endpoint: it writes a response or returns an error.
type scimHandler func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error

// requestInfo carries what the access log line and the provisioning log
// report about a request. Handlers fill in what they learn.
type requestInfo struct {
	op           string
	detail       string
	scim         bool   // an authenticated SCIM API request (the provisioning log records these)
	resourceType string // User or Group
	resourceID   string
	target       string // userName or displayName, when known
	unchanged    bool   // a write that changed nothing (an identical PATCH)
	version      int64  // the resource's version before the write

	scimType       string   // of the error response, if any
	skippedMembers []string // member ids a group write skipped (no user or group has them)
	listed         []string // ids a filtered list returned (the reconcile after a restore counts them as seen)
}

// about records which resource a request concerns, for the logs.
func about(r *http.Request, resourceType, id, target string) {
	ri := infoOf(r)
	ri.resourceType, ri.resourceID = resourceType, id
	if target != "" {
		ri.target = target
	}
}

// requestInfoKey is the context key of a request's requestInfo.
type requestInfoKey struct{}

// infoOf returns the request's requestInfo (a throwaway one outside logRequests, as in unit tests).
func infoOf(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// scim adapts a handler: it authenticates the bearer token, names the
// operation for the log, and turns any error into a SCIM error response.
func (s *server) scim(op string, h scimHandler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		ri := infoOf(r)
		ri.op = op
		if err := s.authenticate(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		// Only an authenticated request reaches the provisioning log: anyone
		// can send the others, and they would evict the real history.
		ri.scim = true
		if id := ps.ByName("id"); id != "" {
			ri.resourceID = id
		}
		// The directory's writes meet the safety rails (holds.go); what they
		// did goes into the request's provisioning log entry.
		ctx, dw := withDirectoryWrite(r.Context(), r.Method+" "+r.URL.Path)
		if err := h(w, r.WithContext(ctx), ps); err != nil {
			s.writeError(w, r, err)
		} else if note := dw.summary(); note != "" {
			ri.detail = strings.TrimPrefix(ri.detail+"; "+note, "; ")
		}
	}
}

// authenticate checks the bearer token; refused tokens are counted per client address and throttled with 429 after authFailures.
func (s *server) authenticate(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	if auth == "" || !strings.EqualFold(scheme, "Bearer") {
		return unauthorized("a bearer token is required: Authorization: Bearer <Secret Token>")
	}
	_, err := s.store.AuthenticateToken(r.Context(), strings.TrimSpace(tok))
	if errors.Is(err, ErrNotFound) {
		s.rejected.record(clientAddr(r), time.Now())
		return s.refuseCredential(r, "the bearer token is not valid: it may have been revoked; generate a new Secret Token")
	}
	return err
}

// refuseCredential counts a refused bearer credential (a SCIM token or an app
// key) against the client's address and returns the 401 with detail, or a
// 429 with Retry-After once the address has failed authFailures times within
// authWindow. A valid credential never comes here, so it is never throttled.
func (s *server) refuseCredential(r *http.Request, detail string) error {
	s.limitOnce.Do(func() { s.authLimit = newLimiter(authFailures, authWindow) })
	client, now := clientAddr(r), time.Now()
	if wait := s.authLimit.blocked(client, now); wait > 0 {
		return tooManyRequests("too many requests with invalid credentials from this address; try again later", wait)
	}
	s.authLimit.fail(client, now)
	return unauthorized(detail)
}

// writeError renders an error as SCIM error JSON (RFC 7644 §3.12); what the
// error is, decide says.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	v := s.decide(w, r, err)
	infoOf(r).scimType = v.ScimType
	v.setHeaders(w, "scimbox")
	body := map[string]any{"schemas": []string{errorSchema}, "status": strconv.Itoa(v.Status), "detail": v.Detail}
	if v.ScimType != "" {
		body["scimType"] = v.ScimType
	}
	writeJSON(w, v.Status, body)
}

// writeJSON writes a SCIM JSON response, whatever the client asked for in Accept.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", scimContentType)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// readBody reads a capped JSON request body, checking its media type.
func readBody(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/scim+json" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return nil, &scimError{Status: http.StatusUnsupportedMediaType, Detail: fmt.Sprintf("unsupported Content-Type %q: send application/scim+json", ct)}
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyReadError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("invalidSyntax", "the request body is empty")
	}
	return body, nil
}

// readObject reads a JSON object body.
func readObject(r *http.Request) (map[string]any, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := decodeJSON(body, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, badRequest("invalidSyntax", "the request body must be a JSON object")
	}
	return obj, nil
}

// baseURL is the SCIM base URL as the client reached it, for meta.location.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + scimBase
}

// etagMatches reports whether an If-Match / If-None-Match header names version.
func etagMatches(header string, version int64) bool {
	want := strings.TrimPrefix(etag(version), "W/")
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == want {
			return true
		}
	}
	return false
}

// ifMatch checks the request's If-Match header against the current version.
func ifMatch(r *http.Request, version int64) error {
	if h := r.Header.Get("If-Match"); h != "" && !etagMatches(h, version) {
		return &scimError{Status: http.StatusPreconditionFailed, Detail: fmt.Sprintf("the resource has changed: its version is %s", etag(version))}
	}
	return nil
}

// writeResource writes one resource with its ETag, applying the request's projection.
func writeResource(w http.ResponseWriter, r *http.Request, status int, doc map[string]any, version int64) error {
	p, err := projectionOf(r)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(version))
	if status == http.StatusCreated {
		w.Header().Set("Location", doc["meta"].(map[string]any)["location"].(string))
	}
	writeJSON(w, status, p.apply(doc))
	return nil
}

// projectionOf reads ?attributes and ?excludedAttributes.
func projectionOf(r *http.Request) (projection, error) {
	q := r.URL.Query()
	p, err := parseProjection(q.Get("attributes"), q.Get("excludedAttributes"))
	if err != nil {
		return p, badRequest("invalidValue", "attributes: %s", strings.TrimPrefix(err.Error(), errInvalidFilter.Error()+": "))
	}
	return p, nil
}

// notModified answers 304 when If-None-Match names the current version.
func notModified(w http.ResponseWriter, r *http.Request, version int64) bool {
	if h := r.Header.Get("If-None-Match"); h != "" && etagMatches(h, version) {
		w.Header().Set("ETag", etag(version))
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	return false
}

// listParams are the query parameters of a list or .search request.
type listParams struct {
	ListQuery
	proj projection
}

// searchRequest is the body of POST /.search (RFC 7644 §3.4.3).
type searchRequest struct {
	Attributes         []string
	ExcludedAttributes []string
	Filter             string
	SortBy             string
	SortOrder          string
	StartIndex         *int
	Count              *int
}

// parseListParams reads the query parameters of a SCIM list (RFC 7644 §3.4.2).
func parseListParams(r *http.Request) (listParams, error) {
	q := r.URL.Query()
	sr := searchRequest{Filter: q.Get("filter"), SortBy: q.Get("sortBy"), SortOrder: q.Get("sortOrder")}
	for _, name := range []string{"startIndex", "count"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return listParams{}, badRequest("invalidValue", "%s must be an integer, got %q", name, v)
		}
		if name == "startIndex" {
			sr.StartIndex = &n
		} else {
			sr.Count = &n
		}
	}
	lp, err := sr.params()
	if err != nil {
		return lp, err
	}
	lp.proj, err = projectionOf(r)
	return lp, err
}

// params checks a SearchRequest body (or query parameters) and turns it into list parameters.
func (sr searchRequest) params() (listParams, error) {
	lp := listParams{ListQuery: ListQuery{StartIndex: 1, Count: defaultPageSize, SortBy: strings.TrimSpace(sr.SortBy)}}
	if len(sr.Filter) > maxFilterLen {
		return lp, badRequest("invalidFilter", "the filter is longer than %d characters", maxFilterLen)
	}
	if strings.TrimSpace(sr.Filter) != "" {
		f, err := parseFilter(sr.Filter)
		if err != nil {
			return lp, invalidFilter(err)
		}
		if err := checkFilterable(f); err != nil {
			return lp, err
		}
		lp.Filter = f
	}
	if lp.SortBy != "" {
		p, err := parseAttrPath(lp.SortBy)
		if err != nil {
			return lp, badRequest("invalidValue", "sortBy: bad attribute %q", lp.SortBy)
		}
		if err := checkSortable(p); err != nil {
			return lp, err
		}
	}
	switch strings.ToLower(strings.TrimSpace(sr.SortOrder)) {
	case "", "ascending":
	case "descending":
		lp.Descending = true
	default:
		return lp, badRequest("invalidValue", "sortOrder must be ascending or descending, got %q", sr.SortOrder)
	}
	if sr.StartIndex != nil && *sr.StartIndex > 1 {
		lp.StartIndex = *sr.StartIndex
	}
	if sr.Count != nil {
		lp.Count = min(max(*sr.Count, 0), maxPageSize)
	}
	return lp, nil
}

// invalidFilter is the SCIM response to an error wrapping errInvalidFilter.
func invalidFilter(err error) error {
	return badRequest("invalidFilter", "%s", strings.TrimPrefix(err.Error(), errInvalidFilter.Error()+": "))
}

// paramsWithProjection is params with attributes and excludedAttributes from the body.
func (sr searchRequest) paramsWithProjection() (listParams, error) {
	lp, err := sr.params()
	if err != nil {
		return lp, err
	}
	lp.proj, err = parseProjection(strings.Join(sr.Attributes, ","), strings.Join(sr.ExcludedAttributes, ","))
	if err != nil {
		return lp, badRequest("invalidValue", "attributes: %s", strings.TrimPrefix(err.Error(), errInvalidFilter.Error()+": "))
	}
	return lp, nil
}

// readSearch reads a POST .search body (RFC 7644 §3.4.3).
func readSearch(r *http.Request) (listParams, error) {
	body, err := readBody(r)
	if err != nil {
		return listParams{}, err
	}
	var sr searchRequest
	if err := decodeJSON(body, &sr); err != nil {
		return listParams{}, err
	}
	return sr.paramsWithProjection()
}

// writeList writes a ListResponse of docs, the page of total that lp asked for.
func writeList(w http.ResponseWriter, lp listParams, total int, docs []map[string]any) {
	resources := make([]any, len(docs))
	for i, d := range docs {
		resources[i] = lp.proj.apply(d)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":      []string{listSchema},
		"totalResults": total,
		"startIndex":   lp.StartIndex,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	})
}

// postByID serves POST /Users/.search and /Groups/.search, which share the :id route.
func (s *server) postByID(search func(http.ResponseWriter, *http.Request) error) scimHandler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		if ps.ByName("id") != ".search" {
			w.Header().Set("Allow", "GET, PUT, PATCH, DELETE")
			return &scimError{Status: http.StatusMethodNotAllowed, Detail: "POST is only for creating resources and for .search"}
		}
		return search(w, r)
	}
}

// handler builds the HTTP handler: SCIM API, health check, logging and recovery.
func (s *server) handler() http.Handler {
	rt := httprouter.New()
	rt.RedirectTrailingSlash = false // trailing slashes are stripped before routing instead
	rt.RedirectFixedPath = false
	rt.HandleMethodNotAllowed = true

	rt.GET("/healthz", s.healthz)

	rt.GET(scimBase+"/Users", s.scim("list users", s.listUsers))
	rt.POST(scimBase+"/Users", s.scim("create user", s.createUser))
	rt.GET(scimBase+"/Users/:id", s.scim("get user", s.getUser))
	rt.PUT(scimBase+"/Users/:id", s.scim("replace user", s.replaceUser))
	rt.PATCH(scimBase+"/Users/:id", s.scim("patch user", s.patchUser))
	rt.DELETE(scimBase+"/Users/:id", s.scim("delete user", s.deleteUser))
	rt.POST(scimBase+"/Users/:id", s.scim("search users", s.postByID(s.searchUsers)))

	rt.GET(scimBase+"/Groups", s.scim("list groups", s.listGroups))
	rt.POST(scimBase+"/Groups", s.scim("create group", s.createGroup))
	rt.GET(scimBase+"/Groups/:id", s.scim("get group", s.getGroup))
	rt.PUT(scimBase+"/Groups/:id", s.scim("replace group", s.replaceGroup))
	rt.PATCH(scimBase+"/Groups/:id", s.scim("patch group", s.patchGroup))
	rt.DELETE(scimBase+"/Groups/:id", s.scim("delete group", s.deleteGroup))
	rt.POST(scimBase+"/Groups/:id", s.scim("search groups", s.postByID(s.searchGroups)))

	rt.POST(scimBase+"/.search", s.scim("search", s.searchAll))

	rt.GET(scimBase+"/ServiceProviderConfig", s.scim("service provider config", s.serviceProviderConfig))
	rt.GET(scimBase+"/ResourceTypes", s.scim("resource types", s.resourceTypes))
	rt.GET(scimBase+"/ResourceTypes/:id", s.scim("resource type", s.resourceType))
	rt.GET(scimBase+"/Schemas", s.scim("schemas", s.schemas))
	rt.GET(scimBase+"/Schemas/:id", s.scim("schema", s.schema))

	adm := newAdmin(s)
	adm.routes(rt)
	s.apiRoutes(rt)

	// Requests the router cannot place are answered in their surface's format.
	answerError := func(w http.ResponseWriter, r *http.Request, err error) {
		switch {
		case strings.HasPrefix(r.URL.Path, scimBase+"/"):
			s.writeError(w, r, err)
		case strings.HasPrefix(r.URL.Path, "/api/"):
			s.writeAPIError(w, r, err)
		default:
			adminHeaders(w)
			adm.fail(w, r, nil, err)
		}
	}
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		detail := "no such endpoint"
		if strings.HasPrefix(r.URL.Path, scimBase+"/") {
			detail += " (the SCIM base is " + scimBase + ")"
		}
		answerError(w, r, &scimError{Status: http.StatusNotFound, Detail: detail})
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerError(w, r, &scimError{Status: http.StatusMethodNotAllowed, Detail: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
	})
	rt.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		if v == http.ErrAbortHandler {
			panic(v) // a deliberate abort: net/http closes the connection
		}
		s.log.Error("panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
		answerError(w, r, fmt.Errorf("panic: %v", v))
	}
	// The admin page is for browsers: refuse cross-origin form posts to it. The
	// SCIM API is for directory clients, which send no browser origin headers.
	crossOrigin := http.NewCrossOriginProtection()
	crossOrigin.SetDenyHandler(http.HandlerFunc(adm.crossOriginRefused))
	adminSite := crossOrigin.Handler(rt)
	return s.logRequests(normalizePath(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, scimBase+"/") || strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/healthz" {
			rt.ServeHTTP(w, r)
			return
		}
		adminSite.ServeHTTP(w, r)
	})))
}

// noteUnchanged and checkUnchanged mark a write whose version did not move as
// a no-op, which the provisioning log leaves out.
func (s *server) noteUnchanged(r *http.Request, version int64) {
	infoOf(r).unchanged = false
	infoOf(r).version = version
}

func (s *server) checkUnchanged(r *http.Request, version int64) {
	if ri := infoOf(r); ri.version == version {
		ri.unchanged = true
	}
}

// describeUserPatch names a user PATCH for the provisioning log.
func describeUserPatch(ops []patchOp) string {
	if len(ops) > 0 && !slices.ContainsFunc(ops, func(op patchOp) bool { return !isManagerPath(op.Path) }) {
		return "update manager" // a reference: Entra counts its failures apart
	}
	if len(ops) == 1 && strings.EqualFold(strings.TrimSpace(ops[0].Path), "active") {
		if b, ok := coerceBool(ops[0].Value); ok {
			if b {
				return "enable user"
			}
			return "disable user"
		}
	}
	return "update user"
}

// describeGroupPatch names a group PATCH for the provisioning log.
func describeGroupPatch(ops []patchOp) string {
	kinds := map[string]bool{}
	for _, op := range ops {
		path := strings.ToLower(strings.TrimSpace(op.Path))
		switch {
		case strings.HasPrefix(path, "members"):
			kinds[strings.ToLower(op.Op)+" members"] = true
		case path == "displayname":
			kinds["rename group"] = true
		default:
			kinds["update group"] = true
		}
	}
	switch {
	case len(kinds) != 1:
		return "update group"
	case kinds["add members"]:
		return "add members"
	case kinds["remove members"]:
		return "remove members"
	case kinds["replace members"]:
		return "replace members"
	case kinds["rename group"]:
		return "rename group"
	}
	return "update group"
}

// healthz serves GET /healthz without a token: 200 once the database answers, 503 when it does not or its file was lost.
func (s *server) healthz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	infoOf(r).op = "health"
	if err := s.store.CheckFile(); err != nil {
		http.Error(w, "database unavailable: the database file was removed or replaced; writes are refused until it is restored", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Query().Has("verbose") {
		s.healthzVerbose(w, r)
		return
	}
	if err := s.store.r.PingContext(r.Context()); err != nil {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// canonicalSegments maps lower-cased SCIM endpoint names to their spelling:
// resource endpoints are case-insensitive here, as some clients lower-case them.
var canonicalSegments = map[string]string{
	"users": "Users", "groups": "Groups", "schemas": "Schemas",
	"resourcetypes": "ResourceTypes", "serviceproviderconfig": "ServiceProviderConfig",
	"serviceproviderconfigs": "ServiceProviderConfig",
}

// normalizePath strips a trailing slash under the SCIM base (Entra and
// Microsoft's tests send /Users/?filter=…) and canonicalizes the endpoint name.
func normalizePath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if rest, ok := strings.CutPrefix(p, scimBase+"/"); ok {
			rest = strings.TrimRight(rest, "/")
			seg, tail, _ := strings.Cut(rest, "/")
			if c, ok := canonicalSegments[strings.ToLower(seg)]; ok {
				seg = c
			}
			p = scimBase + "/" + seg
			if tail != "" {
				p += "/" + tail
			}
			r.URL.Path, r.URL.RawPath = p, ""
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status written.
func (sr *statusRecorder) WriteHeader(code int) {
	if sr.status == 0 {
		sr.status = code
	}
	sr.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 before the first body byte.
func (sr *statusRecorder) Write(b []byte) (int, error) {
	if sr.status == 0 {
		sr.status = http.StatusOK
	}
	return sr.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer underneath, for the
// deadlines of downloads (streamingResponse).
func (sr *statusRecorder) Unwrap() http.ResponseWriter { return sr.ResponseWriter }

// logRequests caps bodies and writes one log line per request: method, path,
// status, duration and the SCIM operation. Never bodies, queries or tokens.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start, arrived := time.Now(), s.store.now()
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if strings.HasPrefix(r.URL.Path, scimBase+"/") {
			h.Set("Cache-Control", "no-store") // responses carry personal data
		}
		ri := &requestInfo{}
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri))
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		took := time.Since(start)
		s.metrics.observe(r, ri, rec.status, took)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.status,
			"ms", float64(took.Microseconds()) / 1000, "op", ri.op}
		if ri.detail != "" {
			attrs = append(attrs, "detail", ri.detail)
		}
		if ri.scim {
			s.recordProvisioning(r, ri, rec.status, arrived)
		}
		if strings.HasPrefix(r.URL.Path, scimBase+"/") {
			s.noteCall(r, ri, rec.status)
			s.noteReconcile(r, ri, rec.status)
		}
		level := slog.LevelInfo
		switch {
		case ri.op == "health":
			level = slog.LevelDebug
		case rec.status == http.StatusServiceUnavailable:
			level = slog.LevelWarn // a refusal whose cause is logged at ERROR where it is found
		case rec.status >= 500:
			level = slog.LevelError
		case rec.status >= 400:
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request", attrs...)
	})
}

// recordProvisioning adds a SCIM request to the provisioning log when it
// changed something or failed; reads and no-op writes are left out.
// The entry is stamped with the time the request arrived: the changes it
// made come after that and before the next request's, which is how the
// admin page finds them in the change feed.
func (s *server) recordProvisioning(r *http.Request, ri *requestInfo, status int, arrived time.Time) {
	read := r.Method == http.MethodGet || r.Method == http.MethodHead || strings.HasPrefix(ri.op, "search")
	if status < 400 && (read || ri.unchanged || status == http.StatusNotModified) && len(ri.skippedMembers) == 0 {
		return
	}
	e := LogEntry{At: arrived, Op: ri.op, ResourceType: ri.resourceType, ResourceID: ri.resourceID, Target: ri.target,
		Outcome: "success", Status: status, Detail: ri.detail}
	if e.Target == "" {
		e.Target = ri.resourceID
	}
	if status >= 400 {
		e.Outcome = "failure"
	}
	s.store.Log(e)
}

package main

// The read-only API for the organization's own apps (/api/v1) and the
// exports: effective values (the source-of-truth policy applied), keyset
// pagination, app keys that are separate from SCIM tokens.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

const (
	apiDefaultLimit = 100              // items per page of /api/v1 lists unless ?limit says otherwise
	apiMaxLimit     = 1000             // the largest ?limit
	apiMaxWait      = 30 * time.Second // the longest ?wait of a long poll on /api/v1/events
)

// apiEndpoint is one GET route of the read API.
type apiEndpoint struct {
	path, op string
	handle   func(http.ResponseWriter, *http.Request, httprouter.Params) error
}

// apiEndpoints are the read API's routes, listed once so that a test can walk them all.
func (s *server) apiEndpoints() []apiEndpoint {
	return []apiEndpoint{
		{"/api/v1/users", "api list users", s.apiUsers},
		{"/api/v1/users/:id", "api get user", s.apiUser},
		{"/api/v1/groups", "api list groups", s.apiGroups},
		{"/api/v1/groups/:id/members", "api group members", s.apiMembers},
		{"/api/v1/events", "api events", s.apiEvents},
		{"/api/v1/health", "api health", s.apiHealth},
	}
}

// apiRoutes registers the read-only API.
func (s *server) apiRoutes(rt *httprouter.Router) {
	for _, e := range s.apiEndpoints() {
		rt.GET(e.path, s.api(e.op, e.handle))
	}
}

// api authenticates the app key before the handler runs (a SCIM token is
// refused here), so that a refused request learns nothing, not even whether
// an id exists, and writes errors as the API's JSON.
func (s *server) api(op string, h func(http.ResponseWriter, *http.Request, httprouter.Params) error) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		infoOf(r).op = op
		w.Header().Set("Cache-Control", "no-store")
		err := s.authenticateApp(r)
		if err == nil {
			err = h(w, r, ps)
		}
		if err != nil {
			s.writeAPIError(w, r, err)
		}
	}
}

// authenticateApp checks the request's app key; its errors are 401s.
func (s *server) authenticateApp(r *http.Request) error {
	scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	key = strings.TrimSpace(key)
	switch {
	case !strings.EqualFold(scheme, "Bearer") || key == "":
		return unauthorized("an app key is required: Authorization: Bearer scimboxapp_…")
	case strings.HasPrefix(key, tokenPrefix):
		return unauthorized("SCIM tokens do not open this API: use an app key (scimboxapp_…) from the Apps page")
	}
	_, err := s.store.AuthenticateAppKey(r.Context(), key, scopeAPI)
	switch {
	case errors.Is(err, ErrNotFound):
		return s.refuseCredential(r, "the app key is not valid: it may have been revoked; create a new one on the Apps page")
	case errors.Is(err, ErrWrongScope):
		return s.refuseCredential(r, "this app key has the ldap scope: it binds to LDAP only; create a key with the api scope for /api/v1")
	}
	return err
}

// writeAPIError renders an error as the API's JSON, {"error": detail}; what
// the error is, decide says.
func (s *server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	v := s.decide(w, r, err)
	v.setHeaders(w, "scimbox-api")
	writeAPI(w, v.Status, map[string]any{"error": v.Detail})
}

// writeAPI writes v as the JSON body of an /api/v1 response.
func writeAPI(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// pageParams reads after (an integer cursor) and limit.
func pageParams(r *http.Request) (int64, int, error) {
	after := int64(0)
	if v := r.URL.Query().Get("after"); v != "" {
		var err error
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, badRequest("invalidValue", "after must be a cursor from an earlier page")
		}
	}
	limit, err := limitParam(r)
	return after, limit, err
}

// limitParam reads the page size, apiDefaultLimit when absent, at most apiMaxLimit.
func limitParam(r *http.Request) (int, error) {
	limit := apiDefaultLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return 0, badRequest("invalidValue", "limit must be a positive number")
		}
	}
	return min(limit, apiMaxLimit), nil
}

// writePage writes a page with the cursor of the next one ("" when it was the last).
func writePage(w http.ResponseWriter, data []any, next int64, full bool) {
	out := map[string]any{"data": data, "next": ""}
	if full {
		out["next"] = strconv.FormatInt(next, 10)
	}
	writeAPI(w, http.StatusOK, out)
}

// apiUsers serves GET /api/v1/users: effective users in id order, paged by an opaque cursor.
func (s *server) apiUsers(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	users, next, err := s.store.UsersAfter(r.Context(), after, limit, true)
	if err != nil {
		return err
	}
	p, err := s.store.Policy(r.Context())
	if err != nil {
		return err
	}
	data := make([]any, len(users))
	for i, u := range users {
		data[i] = appUserWithGroups(u, p)
	}
	writePage(w, data, next, len(users) == limit)
	return nil
}

// appUserWithGroups is appUser with the user's groups, for GET /api/v1/users/:id.
func appUserWithGroups(u *User, p Policy) map[string]any {
	d := appUser(u, p)
	groups := make([]any, 0, len(u.Groups))
	for _, g := range effectiveGroups(u) {
		groups = append(groups, map[string]any{"id": g.ID, "displayName": g.Display})
	}
	d["groups"] = groups
	return d
}

// apiUser serves GET /api/v1/users/:id.
func (s *server) apiUser(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	u, err := s.store.UserByID(r.Context(), ps.ByName("id"))
	if err != nil {
		return err
	}
	p, err := s.store.Policy(r.Context())
	if err != nil {
		return err
	}
	writeAPI(w, http.StatusOK, appUserWithGroups(u, p))
	return nil
}

// apiGroups serves GET /api/v1/groups, without their members.
func (s *server) apiGroups(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	groups, next, err := s.store.GroupsAfter(r.Context(), after, limit)
	if err != nil {
		return err
	}
	data := make([]any, len(groups))
	for i, g := range groups {
		data[i] = appGroup(g)
	}
	writePage(w, data, next, len(groups) == limit)
	return nil
}

// apiMembers serves GET /api/v1/groups/:id/members, paged by an opaque member cursor.
func (s *server) apiMembers(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	limit, err := limitParam(r)
	if err != nil {
		return err
	}
	after, err := memberCursor(r.URL.Query().Get("after"))
	if err != nil {
		return err
	}
	members, err := s.store.MembersAfter(r.Context(), ps.ByName("id"), after, limit)
	if err != nil {
		return err
	}
	data := make([]any, len(members))
	for i, m := range members {
		data[i] = map[string]any{"id": m.ID, "type": m.Type, "display": m.Display}
	}
	out := map[string]any{"data": data, "next": ""}
	if len(members) == limit {
		out["next"] = base64.RawURLEncoding.EncodeToString([]byte(members[len(members)-1].ID))
	}
	writeAPI(w, http.StatusOK, out)
	return nil
}

// memberCursor decodes the opaque cursor of a member page: the last member id
// of the page before, encoded so that apps treat it as a token, not a number.
func memberCursor(v string) (string, error) {
	after, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || !utf8.Valid(after) {
		return "", badRequest("invalidValue", "after must be a cursor from an earlier page")
	}
	return string(after), nil
}

// apiEvents returns the change feed after a cursor; with wait=N it waits up
// to N seconds (at most 30) for the first new event.
func (s *server) apiEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	wait := time.Duration(0)
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("invalidValue", "wait is a number of seconds")
		}
		wait = min(time.Duration(n)*time.Second, apiMaxWait)
	}
	deadline := time.Now().Add(wait)
	for {
		events, err := s.store.Events(r.Context(), after, limit)
		if err != nil {
			return err
		}
		if len(events) > 0 || !time.Now().Before(deadline) || s.stopping.begun() {
			data := make([]any, len(events))
			next := after
			for i, e := range events {
				data[i], next = e, e.Cursor
			}
			writeAPI(w, http.StatusOK, map[string]any{"data": data, "next": strconv.FormatInt(next, 10)})
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-s.stopping.done(): // answer with what there is: the server is stopping
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// shutdownSignal is closed when the server begins to shut down. A long poll
// would otherwise hold the graceful shutdown up for its whole wait. The zero
// value is ready to use.
type shutdownSignal struct {
	once, closeOnce sync.Once
	ch              chan struct{}
}

// done returns a channel that is closed once begin has been called.
func (sig *shutdownSignal) done() <-chan struct{} { return sig.channel() }

func (sig *shutdownSignal) channel() chan struct{} {
	sig.once.Do(func() { sig.ch = make(chan struct{}) })
	return sig.ch
}

// begin closes the signal; calling it again does nothing.
func (sig *shutdownSignal) begin() {
	ch := sig.channel()
	sig.closeOnce.Do(func() { close(ch) })
}

// begun reports whether begin has been called.
func (sig *shutdownSignal) begun() bool {
	select {
	case <-sig.done():
		return true
	default:
		return false
	}
}

// ---- exports ----

// exportColumns are the CSV columns that can be chosen, in their default order.
var exportColumns = []string{"id", "userName", "displayName", "givenName", "familyName", "email", "active", "title",
	"department", "employeeNumber", "manager", "groups", "roles", "kind", "lastModified"}

// exportValue is the text of one CSV export column of a rendered user.
func exportValue(u map[string]any, col string) string {
	name, _ := u["name"].(map[string]any)
	ext, _ := u[enterpriseSchema].(map[string]any)
	switch col {
	case "givenName", "familyName":
		s, _ := name[col].(string)
		return s
	case "email":
		return primaryEmail(u)
	case "department", "employeeNumber":
		s, _ := ext[col].(string)
		return s
	case "manager":
		m, _ := ext["manager"].(map[string]any)
		s, _ := m["value"].(string)
		return s
	case "groups":
		var names []string
		list, _ := u["groups"].([]any)
		for _, g := range list {
			if m, ok := g.(map[string]any); ok {
				names = append(names, fmt.Sprint(m["displayName"]))
			}
		}
		return strings.Join(names, "; ")
	case "roles":
		roles, _ := u["roles"].([]string)
		return strings.Join(roles, "; ")
	case "active":
		if b, ok := u["active"].(bool); ok {
			return strconv.FormatBool(b)
		}
		return ""
	}
	if s, ok := u[col].(string); ok {
		return s
	}
	return ""
}

// csvWriter writes CSV that spreadsheets open as data: directory values are
// untrusted, and a cell starting with = + - @, a tab or a carriage return
// would be run as a formula. As OWASP advises for CSV injection, such a value
// gets a leading single quote, and every field is quoted so that no
// separator inside a value (a ';' in locales that split on it) starts a cell.
type csvWriter struct {
	w   *bufio.Writer
	err error // of the last Flush
}

// newCSVWriter returns a csvWriter buffering into w.
func newCSVWriter(w io.Writer) *csvWriter { return &csvWriter{w: bufio.NewWriter(w)} }

// Write writes one record; errors surface from Flush and Error, as with encoding/csv.
func (c *csvWriter) Write(record []string) error {
	for i, field := range record {
		if i > 0 {
			c.w.WriteByte(',')
		}
		c.w.WriteByte('"')
		if field != "" && strings.ContainsRune("=+-@\t\r", rune(field[0])) {
			c.w.WriteByte('\'')
		}
		c.w.WriteString(strings.ReplaceAll(field, `"`, `""`))
		c.w.WriteByte('"')
	}
	return c.w.WriteByte('\n')
}

// Flush writes what is buffered; its error is kept for Error.
func (c *csvWriter) Flush() { c.err = c.w.Flush() }

// Error returns the error of the last Flush.
func (c *csvWriter) Error() error { return c.err }

// exportBatch is how many users an export reads at a time.
const exportBatch = 500

// userBatches yields every user, exportBatch at a time in creation order.
// The next batch is read (and its attributes decoded, most of an export's
// work) while the caller writes the one before: a goroutine reads ahead by
// one batch (handing it over unbuffered), so memory stays bounded by two batches.
func userBatches(ctx context.Context, store *Store, withGroups bool) iter.Seq2[[]*User, error] {
	return func(yield func([]*User, error) bool) {
		type batch struct {
			users []*User
			err   error
		}
		ctx, cancel := context.WithCancel(ctx)
		batches := make(chan batch)
		go func() {
			defer close(batches)
			for after := int64(0); ; {
				users, next, err := store.UsersAfter(ctx, after, exportBatch, withGroups)
				select {
				case batches <- batch{users, err}:
				case <-ctx.Done():
					return
				}
				if err != nil || len(users) < exportBatch {
					return
				}
				after = next
			}
		}()
		defer func() {
			cancel()
			for range batches { // until the reader has stopped
			}
		}()
		for b := range batches {
			if !yield(b.users, b.err) || b.err != nil {
				return
			}
		}
	}
}

// exportUsers streams every user with effective values, a batch at a time,
// as CSV (the chosen columns) or as a JSON array.
func exportUsers(ctx context.Context, store *Store, w io.Writer, format string, columns []string) error {
	p, err := store.Policy(ctx)
	if err != nil {
		return err
	}
	if len(columns) == 0 {
		columns = exportColumns
	}
	for _, c := range columns {
		if !slices.Contains(exportColumns, c) {
			return badRequest("invalidValue", "unknown column %q; the columns are %s", c, strings.Join(exportColumns, ", "))
		}
	}
	var cw *csvWriter
	switch format {
	case "csv":
		cw = newCSVWriter(w)
		cw.Write(columns)
	case "json":
		io.WriteString(w, "[")
	default:
		return badRequest("invalidValue", "format must be csv or json")
	}
	// A user's groups cost a query per batch; a CSV without the column skips it.
	withGroups := cw == nil || slices.Contains(columns, "groups")
	var buf bytes.Buffer
	first := true
	for users, err := range userBatches(ctx, store, withGroups) {
		if err != nil {
			return err
		}
		buf.Reset()
		for _, u := range users {
			d := appUserWithGroups(u, p)
			if cw != nil {
				row := make([]string, len(columns))
				for i, c := range columns {
					row[i] = exportValue(d, c)
				}
				cw.Write(row)
				continue
			}
			b, _ := json.Marshal(d)
			if !first {
				buf.WriteString(",\n")
			}
			first = false
			buf.Write(b)
		}
		if cw != nil {
			cw.Flush()
			err = cw.Error()
		} else {
			_, err = w.Write(buf.Bytes())
		}
		if err != nil {
			return err
		}
	}
	if cw == nil {
		io.WriteString(w, "]\n")
	}
	return nil
}

// exportGroups streams every group with its members as a JSON array. A
// group's members are written a batch at a time, so that a group of any size
// costs the memory of one batch.
func exportGroups(ctx context.Context, store *Store, w io.Writer) error {
	io.WriteString(w, "[")
	first := true
	for after := int64(0); ; {
		groups, next, err := store.GroupsAfter(ctx, after, 100)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if !first {
				io.WriteString(w, ",\n")
			}
			first = false
			if err := exportGroup(ctx, store, w, g); err != nil {
				return err
			}
		}
		if len(groups) < 100 {
			break
		}
		after = next
	}
	_, err := io.WriteString(w, "]\n")
	return err
}

// exportMember is a member in an export, fields in the order of their keys.
type exportMember struct {
	Display string `json:"display"`
	ID      string `json:"id"`
	Type    string `json:"type"`
}

// exportGroup writes one group: the document rendered around a random
// placeholder where the members go, and the members in batches in between.
func exportGroup(ctx context.Context, store *Store, w io.Writer, g *Group) error {
	d := appGroup(g)
	slot := "members:" + newID()
	d["members"] = slot
	doc, err := json.Marshal(d)
	if err != nil {
		return err
	}
	prefix, suffix, _ := bytes.Cut(doc, []byte(`"`+slot+`"`))
	w.Write(prefix)
	io.WriteString(w, "[")
	for cursor := ""; ; {
		batch, err := store.MembersAfter(ctx, g.ID, cursor, memberBatch)
		if err != nil {
			return err
		}
		for i, m := range batch {
			if i > 0 || cursor != "" {
				io.WriteString(w, ",")
			}
			b, _ := json.Marshal(exportMember{Display: m.Display, ID: m.ID, Type: m.Type})
			w.Write(b)
		}
		if len(batch) < memberBatch {
			break
		}
		cursor = batch[len(batch)-1].ID
	}
	io.WriteString(w, "]")
	_, err = w.Write(suffix)
	return err
}

// What an error is, decided in one place for every surface. Handlers and the
// store return errors; classify decides what each one is (not found,
// conflict, invalid input, unauthorized, forbidden, too many requests, too
// large, unavailable, internal), and the three renderers only put that
// decision into their format: SCIM error JSON (writeError in scim.go), the
// admin page's HTML (fail in admin.go) and the read API's JSON (api.go).

package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// scimError is an error whose answer its creator has already decided:
// invalid input, a refused credential, a missing endpoint. It is named after
// SCIM because every surface shares SCIM's error model (RFC 7644 §3.12):
// a status, a scimType for 400 and 409, and a detail safe to show.
type scimError struct {
	Status     int
	ScimType   string
	Detail     string
	retryAfter time.Duration // sent as Retry-After when set
}

// Error returns the detail, which is safe to show to the client.
func (e *scimError) Error() string { return e.Detail }

// badRequest returns a 400 error with a SCIM scimType.
func badRequest(scimType, format string, args ...any) error {
	return &scimError{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

// unauthorized returns a 401 error: no credential, or one that is not valid here.
func unauthorized(detail string) error {
	return &scimError{Status: http.StatusUnauthorized, Detail: detail}
}

// tooManyRequests returns a 429 error that tells the client how long to wait.
func tooManyRequests(detail string, wait time.Duration) error {
	return &scimError{Status: http.StatusTooManyRequests, Detail: detail, retryAfter: wait}
}

// verdict is classify's decision about an error.
type verdict struct {
	Status     int
	ScimType   string        // RFC 7644 §3.12 scimType, for 400 and 409
	Detail     string        // safe to show to the client
	RetryAfter time.Duration // sent as Retry-After when set (429, 503)
}

const (
	// internalDetail is all a client learns of an internal error; its cause goes to the log.
	internalDetail = "internal error"
	// statusClientClosed is nginx's 499: the client went away before the answer.
	statusClientClosed = 499
	// unavailableRetry is how long a client should wait when the database cannot be written.
	unavailableRetry = time.Minute
)

// classify decides what err is for the response to r. Anything it does not
// recognise is internal: its detail is internalDetail, never the cause.
func classify(r *http.Request, err error) verdict {
	var se *scimError
	var unknown *UnknownMembersError
	var tooBig *http.MaxBytesError
	var readOnly *ErrReadOnlyField
	var sortWindow *SortWindowError
	switch {
	case errors.As(err, &se):
		return verdict{Status: se.Status, ScimType: se.ScimType, Detail: se.Detail, RetryAfter: se.retryAfter}
	case errors.As(err, &readOnly):
		return verdict{Status: http.StatusForbidden, Detail: readOnly.Error()}
	case errors.As(err, &unknown):
		return verdict{Status: http.StatusBadRequest, ScimType: "invalidValue", Detail: "members not applied: " + unknown.Error()}
	case errors.As(err, &sortWindow):
		return verdict{Status: http.StatusBadRequest, ScimType: "tooMany", Detail: sortWindow.Error()}
	case errors.As(err, &tooBig):
		return verdict{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, ErrNotFound):
		return verdict{Status: http.StatusNotFound, Detail: notFoundDetail(r)}
	case errors.Is(err, ErrConflict):
		return verdict{Status: http.StatusConflict, ScimType: "uniqueness", Detail: storeDetail(err, ErrConflict)}
	case errors.Is(err, ErrInvalid):
		return verdict{Status: http.StatusBadRequest, ScimType: "invalidValue", Detail: storeDetail(err, ErrInvalid)}
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return verdict{Status: statusClientClosed, Detail: "the client went away"}
	}
	if why, ok := unavailable(err); ok {
		// Nothing was applied; Entra retries, and the admin sees why in the log.
		return verdict{Status: http.StatusServiceUnavailable, RetryAfter: unavailableRetry,
			Detail: "temporarily unavailable: " + why + "; nothing was changed, try again later"}
	}
	return verdict{Status: http.StatusInternalServerError, Detail: internalDetail}
}

// notFoundDetail names what a SCIM request did not find ("User 2819c223 not found").
func notFoundDetail(r *http.Request) string {
	if rest, ok := strings.CutPrefix(r.URL.Path, scimBase+"/"); ok {
		if kind, id, ok := strings.Cut(rest, "/"); ok {
			id, _, _ = strings.Cut(id, "/")
			return fmt.Sprintf("%s %s not found", strings.TrimSuffix(kind, "s"), id)
		}
	}
	return "not found"
}

// storeDetail is what follows "conflict: " or "invalid value: " in a wrapped
// store error (the store says there which value is taken or refused), without
// the context before it.
func storeDetail(err, kind error) string {
	detail := err.Error()
	if i := strings.Index(detail, kind.Error()+": "); i >= 0 {
		return detail[i+len(kind.Error())+2:]
	}
	return detail
}

// decide classifies err for the response to r and logs what the client is
// not told: the cause of every 5xx. It notes the detail for the request's log
// line. If the response has already begun (a download that failed half-way),
// no error can be appended to it: decide aborts the connection instead, so
// that the client sees a broken transfer rather than a complete-looking file.
func (s *server) decide(w http.ResponseWriter, r *http.Request, err error) verdict {
	v := classify(r, err)
	// A lost database file was said once, at ERROR, by the store when it noticed.
	if v.Status >= 500 && !errors.Is(err, ErrDatabaseLost) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", v.Status, "err", err)
	}
	infoOf(r).detail = v.Detail
	if responseStarted(w) {
		s.log.Warn("response aborted: it failed after it had begun", "method", r.Method, "path", r.URL.Path,
			"status", v.Status, "err", err)
		panic(http.ErrAbortHandler)
	}
	return v
}

// formError reports whether err is one a form shows next to its fields (invalid
// input, a conflict, a refused edit) and how; everything else (not found,
// unavailable, internal) is for an error page.
func formError(r *http.Request, err error) (verdict, bool) {
	if err == nil {
		return verdict{}, false
	}
	v := classify(r, err)
	return v, v.Status >= 400 && v.Status < 500 && v.Status != http.StatusNotFound && v.Status != statusClientClosed
}

// setHeaders sends the verdict's Retry-After and, on a 401, the challenge of realm.
func (v verdict) setHeaders(w http.ResponseWriter, realm string) {
	if v.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(v.RetryAfter.Seconds()))))
	}
	if v.Status == http.StatusUnauthorized && realm != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	}
}

// responseStarted reports whether w has sent its status line, through any
// wrappers that unwrap to the request's statusRecorder.
func responseStarted(w http.ResponseWriter) bool {
	for {
		switch rw := w.(type) {
		case *statusRecorder:
			return rw.status != 0
		case interface{ Unwrap() http.ResponseWriter }:
			w = rw.Unwrap()
		default:
			return false
		}
	}
}

// bodyReadError is what a failure to read a request body is: the client's
// fault (cut short, broken chunked encoding, too slow), not the server's.
func bodyReadError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &scimError{Status: http.StatusRequestTimeout, Detail: "the request body did not arrive in time"}
	}
	return badRequest("invalidSyntax", "the request body could not be read: it is cut short or its chunked encoding is broken")
}

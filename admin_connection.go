// The Connection page: the Tenant URL, SCIM tokens and disconnecting from the directory.

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// connectionData is the data of web/connection.html.
type connectionData struct {
	layout
	TenantURL string
	Reachable bool // false when the URL is plain HTTP or a loopback address
	Tokens    []Token
	LastUsed  time.Time
	LastError *LogEntry
	// Rejected are the addresses that sent unknown or revoked tokens, most
	// recent first (at most shownRejectedAddrs); RejectedMore counts the others.
	Rejected     []RejectedAddr
	RejectedMore int
	Error        string
	// DirectoryAccounts counts accounts the directory manages; with no
	// tokens and none of them there is nothing to disconnect.
	DirectoryAccounts int
	Connected         bool
}

// settingLastDirectoryCall keeps the time of the directory's last request
// once the token that made it is revoked, so that the page keeps that history.
const settingLastDirectoryCall = "last_directory_call"

// lastDirectoryCall is when the directory last called with any token, revoked ones included.
func (a *admin) lastDirectoryCall(ctx context.Context, tokens []Token) (time.Time, error) {
	last := lastTokenUse(tokens)
	kept, err := a.store.Setting(ctx, settingLastDirectoryCall)
	if err != nil {
		return last, err
	}
	if t := parseTime(kept); t.After(last) {
		last = t
	}
	return last, nil
}

// keepLastDirectoryCall records the directory's last call before tokens are revoked.
func (a *admin) keepLastDirectoryCall(ctx context.Context) error {
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return err
	}
	last, err := a.lastDirectoryCall(ctx, tokens)
	if err != nil || last.IsZero() {
		return err
	}
	return a.store.SetSetting(ctx, settingLastDirectoryCall, formatTime(last))
}

// shownRejectedAddrs is how many addresses with rejected tokens the page lists.
const shownRejectedAddrs = 10

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

// connectionData reads what the Connection page shows; the Tenant URL comes from the request, as the admin reached the page.
func (a *admin) connectionData(ctx context.Context, r *http.Request, sess *adminSession) (connectionData, error) {
	d := connectionData{layout: a.layout(r, sess, "Entra connection", "connection"), TenantURL: baseURL(r), Reachable: tenantURLReachable(r)}
	var err error
	if d.Tokens, err = a.store.Tokens(ctx); err != nil {
		return d, err
	}
	if d.LastUsed, err = a.lastDirectoryCall(ctx, d.Tokens); err != nil {
		return d, err
	}
	if _, d.DirectoryAccounts, err = a.store.ListUsers(ctx, ListQuery{DirectoryOnly: true, StartIndex: 1, Count: 1}); err != nil {
		return d, err
	}
	d.Connected = len(d.Tokens) > 0 || d.DirectoryAccounts > 0
	failures, err := a.store.ListLog(ctx, LogQuery{Outcome: "failure", Limit: 1})
	if err != nil {
		return d, err
	}
	if len(failures) > 0 {
		d.LastError = &failures[0]
	}
	d.Rejected = a.rejected.list()
	if n := len(d.Rejected); n > shownRejectedAddrs {
		d.Rejected, d.RejectedMore = d.Rejected[:shownRejectedAddrs], n-shownRejectedAddrs
	}
	return d, nil
}

// connection serves GET /connection: the Entra steps, the tokens and the disconnect danger zone.
func (a *admin) connection(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.connectionData(r.Context(), r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "connection.html", d)
}

// createToken generates a Secret Token; the Connection page shows it once.
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
	return a.redirect(w, r, sess, "/connection", flash{Secret: plain, SecretName: t.Name})
}

// revokeToken serves POST /connection/tokens/:id/revoke, keeping when the directory last called.
func (a *admin) revokeToken(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if err := a.keepLastDirectoryCall(r.Context()); err != nil {
		return err
	}
	if err := a.store.RevokeToken(r.Context(), ps.ByName("id")); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	a.log.Info("token revoked in the admin page", "token", ps.ByName("id"), "admin", sess.Username)
	return a.redirect(w, r, sess, "/connection", flash{Notice: "Token revoked: the directory can no longer use it."})
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
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return err
	}
	if err := a.keepLastDirectoryCall(ctx); err != nil {
		return err
	}
	n, err := a.store.Disconnect(ctx, p)
	if err != nil {
		return err
	}
	a.log.Warn("disconnected from the directory", "admin", sess.Username, "accounts", n)
	a.store.Log(LogEntry{Op: "disconnect from the directory", Target: "all accounts", Outcome: "success", Status: 200,
		Detail: fmt.Sprintf("by %s: tokens revoked, %d accounts are now manual", sess.Username, n)})
	return a.redirect(w, r, sess, "/connection/disconnected", flash{Notice: fmt.Sprintf(
		"%d Secret Token%s revoked: the directory's requests are refused from now on. %d account%s the directory managed %s now manual, "+
			"with the values shown before; you can edit or delete them under Users. Groups are kept. To connect again, generate a new token.",
		len(tokens), plural(len(tokens)), n, plural(n), map[bool]string{true: "is", false: "are"}[n == 1])})
}

// disconnected confirms a disconnect with what it did; without one it is the Connection page.
func (a *admin) disconnected(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	l := a.layout(r, sess, "Disconnected", "connection")
	if l.Flash == nil {
		http.Redirect(w, r, "/connection", http.StatusSeeOther)
		return nil
	}
	text := l.Flash.Notice
	l.Flash = nil
	return a.render(w, r, http.StatusOK, "message.html", messageData{l, "Disconnected from the directory", text})
}

// plural is "s" unless n is 1.
func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

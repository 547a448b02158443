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
	d := connectionData{layout: a.layout(r, sess, "Entra connection", "connection"), TenantURL: baseURL(r), Reachable: tenantURLReachable(r)}
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

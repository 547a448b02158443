// The Apps page: app keys for /api/v1, webhooks and exports.

package main

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// appsData is the data of web/apps.html.
type appsData struct {
	layout
	Keys       []Token
	Webhooks   []webhookRow
	EventTypes []string
	NewSecret  string
	Error      string
	APIBase    string
	EventDays  int // how long events, and so webhook queues, are kept
	// ExportColumns are the CSV export's columns, for the column picker.
	ExportColumns []string
}

// webhookRow is a webhook with its recent delivery attempts and its queue length.
type webhookRow struct {
	Webhook
	Attempts []DeliveryAttempt
	Waiting  int // events queued and not yet delivered
}

// appsData reads what the Apps page shows; createWebhook re-renders it with a form error.
func (a *admin) appsData(r *http.Request, sess *adminSession) (appsData, error) {
	ctx := r.Context()
	d := appsData{layout: a.layout(r, sess, "Apps and webhooks", "apps"), EventTypes: eventTypes, EventDays: eventRetentionDays, ExportColumns: exportColumns,
		APIBase: strings.TrimSuffix(baseURL(r), scimBase) + "/api/v1"}
	var err error
	if d.Keys, err = a.store.AppKeys(ctx); err != nil {
		return d, err
	}
	hooks, err := a.store.Webhooks(ctx)
	if err != nil {
		return d, err
	}
	waiting, err := a.store.WaitingDeliveries(ctx)
	if err != nil {
		return d, err
	}
	for _, w := range hooks {
		attempts, err := a.store.DeliveryAttempts(ctx, w.ID, 10)
		if err != nil {
			return d, err
		}
		d.Webhooks = append(d.Webhooks, webhookRow{w, attempts, waiting[w.ID]})
	}
	return d, nil
}

// apps serves GET /apps: app keys, webhooks and exports.
func (a *admin) apps(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.appsData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "apps.html", d)
}

// createAppKey serves POST /apps/keys; the new key is shown once, through a flash.
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
	return a.redirect(w, r, sess, "/apps", flash{Secret: plain, SecretName: k.Name})
}

// revokeAppKey serves POST /apps/keys/:id/revoke.
func (a *admin) revokeAppKey(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	if err := a.store.RevokeAppKey(r.Context(), ps.ByName("id")); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	a.log.Info("app key revoked", "key", ps.ByName("id"), "admin", sess.Username)
	return a.redirect(w, r, sess, "/apps", flash{Notice: "App key revoked."})
}

// createWebhook serves POST /apps/webhooks: an http(s) endpoint URL and the event types it wants.
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
	a.log.Info("webhook registered", "webhook", hook.ID, "url", redactURL(target), "admin", sess.Username)
	return a.redirect(w, r, sess, "/apps", flash{Notice: "Webhook added. Its signing secret is under “Show signing secret”."})
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
		return badRequest("invalidValue", "Unknown action %q: go back and try again.", r.PostFormValue("action"))
	}
	if err != nil {
		return err
	}
	a.log.Info("webhook "+r.PostFormValue("action"), "webhook", id, "admin", sess.Username)
	done := map[string]string{"delete": "Webhook deleted.", "enable": "Webhook enabled again.", "test": "Test event queued."}
	return a.redirect(w, r, sess, "/apps", flash{Notice: done[r.PostFormValue("action")]})
}

// export streams users.csv, users.json or groups.json with effective values.
// Everything that can be refused is checked before the first byte (an
// unknown column inside exportUsers, before it writes); an error after it
// aborts the download (see decide) rather than ending a file with a page.
func (a *admin) export(w http.ResponseWriter, r *http.Request, ps httprouter.Params, sess *adminSession) error {
	file := ps.ByName("file")
	cols := r.URL.Query()["col"] // the page's column picker
	if c := r.URL.Query().Get("columns"); c != "" {
		cols = append(cols, strings.Split(c, ",")...)
	}
	var contentType string
	var stream func(io.Writer) error
	w = streamingResponse(w)
	switch file {
	case "users.csv":
		contentType, stream = "text/csv; charset=utf-8", func(w io.Writer) error { return exportUsers(r.Context(), a.store, w, "csv", cols) }
	case "users.json":
		contentType, stream = "application/json", func(w io.Writer) error { return exportUsers(r.Context(), a.store, w, "json", nil) }
	case "groups.json":
		contentType, stream = "application/json", func(w io.Writer) error { return exportGroups(r.Context(), a.store, w) }
	default:
		return ErrNotFound
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="scimbox-`+time.Now().UTC().Format("20060102")+"-"+file+`"`)
	a.log.Info("export", "file", file, "admin", sess.Username)
	return stream(w)
}

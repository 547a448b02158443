// Settings → Alerts: where alerts go (email, a chat webhook), what is firing
// now, and a button that sends a test alert.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

type alertsPageData struct {
	layout
	Message, Error string
	Form           alertConfig // the saved values; the secrets are never put back in a page
	PasswordSet    bool
	WebhookSet     string // the saved webhook URL, redacted; "" if none
	Overridden     []string
	Problems       []string // what keeps the configuration in force from sending
	Conditions     []alertConditionRow
	Deliveries     []delivery
	Rules          string
}

type alertConditionRow struct {
	Title, State, Detail, Action string
	Firing                       bool
}

// alerter returns the server's alerter, or one without options for a
// server built without newApp (some tests).
func (a *admin) alerter() *alerter {
	if a.alerts != nil {
		return a.alerts
	}
	return newAlerter(a.store, a.log, alertFlags{}, alertSources{})
}

func (a *admin) alertsData(r *http.Request, sess *adminSession, al *alerter) (alertsPageData, error) {
	d := alertsPageData{layout: a.layout(r, sess, "Alerts", "settings"), Overridden: al.flags.overridden()}
	saved, err := a.store.AlertSettings(r.Context())
	if err != nil {
		return d, err
	}
	d.PasswordSet = saved.SMTPPassword != ""
	if saved.WebhookURL != "" {
		d.WebhookSet = redactURL(saved.WebhookURL)
	}
	saved.SMTPPassword, saved.WebhookURL = "", ""
	d.Form = saved
	inForce, err := al.config(r.Context())
	if err != nil {
		return d, err
	}
	for _, err := range inForce.check() {
		d.Problems = append(d.Problems, err.Error())
	}
	status, deliveries := al.snapshot()
	for _, c := range al.conditions {
		st, seen := status[c.key]
		row := alertConditionRow{Title: c.title, Detail: st.Detail, Action: c.action, Firing: st.Firing}
		switch {
		case !seen:
			row.State = "not checked yet"
		case st.Err != "":
			row.State, row.Detail = "check failed", st.Err
		case !st.Known:
			row.State = "not known yet"
		case st.Firing:
			row.State = "firing"
		default:
			row.State = "ok"
		}
		d.Conditions = append(d.Conditions, row)
	}
	for _, name := range []string{"email", "webhook"} {
		if dl, ok := deliveries[name]; ok {
			d.Deliveries = append(d.Deliveries, dl)
		}
	}
	f := al.flags
	d.Rules = fmt.Sprintf("Checked every minute. A firing alert is sent once, again every %s while it fires, and once more when it resolves.", roundDuration(f.Renotify))
	if f.NoCallAfter > 0 {
		d.Rules += fmt.Sprintf(" No call from the directory: after %s.", roundDuration(f.NoCallAfter))
	}
	if f.BurstFailures > 0 {
		d.Rules += fmt.Sprintf(" Failing requests: %d within %s.", f.BurstFailures, roundDuration(f.BurstWindow))
	}
	return d, nil
}

func (a *admin) alertsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.alertsData(r, sess, a.alerter())
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("done") {
	case "saved":
		d.Message = "Alert settings saved."
	case "tested":
		d.Message = "Test alert sent: the outcome for each channel is below."
	case "nothing":
		d.Error = "There is nowhere to send a test alert yet: save an email server or a webhook URL first."
	}
	return a.render(w, r, http.StatusOK, "alerts.html", d)
}

// saveAlerts saves the form. An empty password or webhook URL field keeps
// the saved one (it is never shown back), unless its clear box is ticked.
func (a *admin) saveAlerts(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	al := a.alerter()
	saved, err := a.store.AlertSettings(r.Context())
	if err != nil {
		return err
	}
	var c alertConfig
	for _, f := range c.fields() {
		v := r.PostFormValue(f.name)
		if f.name != "smtp_password" {
			v = strings.TrimSpace(v)
		}
		*f.value = v
	}
	if c.SMTPPassword == "" && r.PostFormValue("clear_smtp_password") == "" {
		c.SMTPPassword = saved.SMTPPassword
	}
	if c.WebhookURL == "" && r.PostFormValue("clear_webhook_url") == "" {
		c.WebhookURL = saved.WebhookURL
	}
	if errs := c.overlay(al.flags.alertConfig).check(); len(errs) > 0 {
		d, err := a.alertsData(r, sess, al)
		if err != nil {
			return err
		}
		d.Form = c
		d.Form.SMTPPassword, d.Form.WebhookURL = "", ""
		d.Error = "Not saved: " + errors.Join(errs...).Error()
		d.Error = strings.ReplaceAll(d.Error, "\n", "; ")
		return a.render(w, r, http.StatusBadRequest, "alerts.html", d)
	}
	if err := a.store.SetAlertSettings(r.Context(), c); err != nil {
		return err
	}
	a.log.Info("alert settings changed", "admin", sess.Username, "alerts", c)
	http.Redirect(w, r, "/settings/alerts?done=saved", http.StatusSeeOther)
	return nil
}

// alertTestTimeout bounds the test send, so a server that never answers
// does not hold the page.
const alertTestTimeout = 45 * time.Second

func (a *admin) testAlert(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx, cancel := context.WithTimeout(r.Context(), alertTestTimeout)
	defer cancel()
	results, err := a.alerter().sendTest(ctx)
	if errors.Is(err, errNoAlertChannel) {
		http.Redirect(w, r, "/settings/alerts?done=nothing", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	a.log.Info("test alert sent from the admin page", "admin", sess.Username, "channels", len(results))
	http.Redirect(w, r, "/settings/alerts?done=tested", http.StatusSeeOther)
	return nil
}

// The Settings page: password, log retention, source-of-truth policy, provisioning options and backups.

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

// settingsData is the data of web/settings.html.
type settingsData struct {
	layout
	LogDays         int
	DatabaseVersion int
	Snapshots       []SnapshotInfo
	Policy          []policyRow
	Preset          string // the preset the policy equals, or "" when fields were chosen one by one
	Presets         []presetChoice
	Claim           bool
	Deprovision     string
	PurgeDays       int
	Holds           HoldSettings   // the mass-change hold (admin_holds.go)
	Replication     *replicaStatus // nil without -replica
	Restore         *restoreReport // nil when the database was never restored
	// Errors are problems with the submitted form, by the name of the field they concern.
	Errors map[string]string
	// Confirm is a preset waiting for the admin's confirmation, with what it
	// would change: the fields, and the users whose values shown change (ConfirmPlan).
	Confirm     *presetChoice
	ConfirmPlan *Plan
	// ClaimPlan is what turning "claim existing accounts" on would change,
	// waiting for the admin's confirmation with the form's other values.
	ClaimPlan *Plan
}

// policyRow is one field of the source-of-truth table.
type policyRow struct {
	Key, Label string
	Local      bool
}

// presetChoice is a source-of-truth preset and the fields it would change now.
type presetChoice struct {
	Name, Label string
	Changes     []policyChange
}

// policyChange is one field whose source of truth a preset changes.
type policyChange struct{ Label, From, To string }

// presetLabels are the policy presets in the order the page offers them.
var presetLabels = []struct{ name, label string }{
	{presetDirectory, "Directory is the source of truth"},
	{presetHybrid, "Hybrid (recommended)"},
	{presetLocal, "Users are the source of truth"},
}

// sourceText names a source of truth as the policy table does.
func sourceText(s Source) string {
	if s == FromLocal {
		return "Local edit wins"
	}
	return "Directory wins"
}

// presetChoices lists the presets with what each would change in policy p, and which one p is.
func presetChoices(p Policy) (choices []presetChoice, active string) {
	for _, pl := range presetLabels {
		c := presetChoice{Name: pl.name, Label: pl.label}
		preset := PresetPolicy(pl.name)
		for _, f := range policyFields {
			if from, to := p.Source(f.Key), preset.Source(f.Key); from != to {
				c.Changes = append(c.Changes, policyChange{f.Label, sourceText(from), sourceText(to)})
			}
		}
		if len(c.Changes) == 0 {
			active = pl.name
		}
		choices = append(choices, c)
	}
	return choices, active
}

// settingsData reads what the Settings page shows; the forms re-render it with their errors.
func (a *admin) settingsData(r *http.Request, sess *adminSession) (settingsData, error) {
	d := settingsData{layout: a.layout(r, sess, "Settings", "settings"), LogDays: defaultLogDays, DatabaseVersion: len(migrations)}
	snaps, err := a.store.Snapshots()
	if err != nil {
		return d, err
	}
	d.Snapshots = snaps
	d.Replication, d.Restore = a.replicaAndRestore(r.Context())
	p, err := a.store.Policy(r.Context())
	if err != nil {
		return d, err
	}
	for _, f := range policyFields {
		d.Policy = append(d.Policy, policyRow{Key: f.Key, Label: f.Label, Local: p.Source(f.Key) == FromLocal})
	}
	d.Presets, d.Preset = presetChoices(p)
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
	if d.Holds, err = a.store.HoldSettings(r.Context()); err != nil {
		return d, err
	}
	v, err := a.store.Setting(r.Context(), logRetentionDays)
	if err != nil {
		return d, err
	}
	if n, err := strconv.Atoi(v); err == nil {
		d.LogDays = n
	}
	return d, nil
}

// settings serves GET /settings.
func (a *admin) settings(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

// changePassword serves POST /settings/password: the current password is checked (and rate-limited) first.
func (a *admin) changePassword(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	adm, err := a.store.AdminByID(r.Context(), sess.AdminID)
	if err != nil {
		return err
	}
	// A stolen session must not be a way to guess the password itself.
	attemptKey := fmt.Sprintf("settings password of admin %d", adm.ID)
	limited, err := a.reservePasswordAttempt(w, r, attemptKey)
	if err != nil {
		return err
	}
	if limited != "" {
		d.Errors = map[string]string{"current": limited}
		return a.render(w, r, http.StatusTooManyRequests, "settings.html", d)
	}
	current, err := a.passwords.check(r.Context(), adm.PasswordHash, r.PostFormValue("current"))
	if errors.Is(err, errPasswordsBusy) {
		d.Errors = map[string]string{"current": passwordsBusy(w)}
		return a.render(w, r, http.StatusServiceUnavailable, "settings.html", d)
	}
	if err != nil {
		return err
	}
	if current {
		if err := a.store.ClearPasswordAttempts(r.Context(), attemptKey); err != nil {
			return err
		}
	}
	password := r.PostFormValue("password")
	switch {
	case !current:
		d.Errors = map[string]string{"current": "The current password is wrong."}
	case len([]rune(password)) < minPasswordLen:
		d.Errors = map[string]string{"password": fmt.Sprintf("Use a password of at least %d characters.", minPasswordLen)}
	case password != r.PostFormValue("confirm"):
		d.Errors = map[string]string{"confirm": "The two new passwords differ."}
	}
	if d.Errors != nil {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	hash, err := a.passwords.hash(r.Context(), password)
	if errors.Is(err, errPasswordsBusy) {
		d.Errors = map[string]string{"password": passwordsBusy(w)}
		return a.render(w, r, http.StatusServiceUnavailable, "settings.html", d)
	}
	if err != nil {
		return err
	}
	if err := a.store.SetAdminPassword(r.Context(), adm.ID, hash, sess.ID); err != nil {
		return err
	}
	a.log.Info("admin password changed", "username", adm.Username)
	return a.redirect(w, r, sess, "/settings", flash{Notice: "Password changed. Other sessions have been logged out."})
}

// changeLogRetention serves POST /settings/log: how many days the provisioning log keeps.
func (a *admin) changeLogRetention(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil || days < 1 || days > 3650 {
		d.Errors = map[string]string{"days": "Keep the log for 1 to 3650 days."}
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetSetting(r.Context(), logRetentionDays, strconv.Itoa(days)); err != nil {
		return err
	}
	return a.redirect(w, r, sess, "/settings", flash{Notice: fmt.Sprintf("The provisioning log now keeps %d days.", days)})
}

// changePolicy applies a preset once the admin confirmed what it changes,
// or the per-field choices of the form.
func (a *admin) changePolicy(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	var p Policy
	if preset := r.PostFormValue("preset"); preset != "" {
		if r.PostFormValue("confirmed") != "yes" {
			d, err := a.settingsData(r, sess)
			if err != nil {
				return err
			}
			for i, c := range d.Presets {
				if c.Name == preset {
					d.Confirm = &d.Presets[i]
				}
			}
			if d.Confirm == nil {
				d.Errors = map[string]string{"preset": "Unknown preset."}
				return a.render(w, r, http.StatusBadRequest, "settings.html", d)
			}
			now, err := a.store.Policy(r.Context())
			if err != nil {
				return err
			}
			plan, err := policyPlan(r.Context(), a.store, now, PresetPolicy(preset))
			if err != nil {
				return err
			}
			d.ConfirmPlan = &plan
			return a.render(w, r, http.StatusOK, "settings.html", d)
		}
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
	return a.redirect(w, r, sess, "/settings", flash{Notice: "Source of truth saved. The directory's values and local edits are both kept; only what is shown changes."})
}

// changeProvisioning serves POST /settings/provisioning: claiming, deprovisioning and purging accounts.
func (a *admin) changeProvisioning(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	mode := DeprovisionMode(r.PostFormValue("deprovision"))
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("purge_days")))
	switch {
	case mode != deprovisionDelete && mode != deprovisionHide:
		d.Errors = map[string]string{"deprovision": "Choose what a delete from the directory does."}
	case err != nil || days < 0 || days > 3650:
		d.Errors = map[string]string{"purge_days": "Delete disabled accounts after 0 (never) to 3650 days."}
	}
	if d.Errors != nil {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	claim := "false"
	if r.PostFormValue("claim") == "on" {
		claim = "true"
	}
	if claim == "true" && !d.Claim && r.PostFormValue("confirmed") != "yes" {
		plan, err := claimPlan(r.Context(), a.store)
		if err != nil {
			return err
		}
		d.ClaimPlan, d.Claim, d.Deprovision, d.PurgeDays = &plan, true, string(mode), days
		return a.render(w, r, http.StatusOK, "settings.html", d)
	}
	for k, v := range map[string]string{settingClaim: claim, settingDeprovision: string(mode), settingPurgeInactive: strconv.Itoa(days)} {
		if err := a.store.SetSetting(r.Context(), k, v); err != nil {
			return err
		}
	}
	a.log.Info("provisioning settings changed", "admin", sess.Username, "claim", claim, "deprovision", mode, "purge_days", days)
	return a.redirect(w, r, sess, "/settings", flash{Notice: "Provisioning settings saved."})
}

// downloadBackup sends a fresh, checked snapshot of the database.
func (a *admin) downloadBackup(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	w = streamingResponse(w) // before the snapshot, which can take minutes
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
	info, err := f.Stat()
	if err != nil {
		return err
	}
	name := "scimbox-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	a.log.Info("backup downloaded from the admin page", "admin", sess.Username)
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size(), 10))
	// A copy that fails once bytes are out aborts the download (see decide).
	_, err = io.Copy(w, f)
	return err
}

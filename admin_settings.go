// The Settings page: password, log retention, source-of-truth policy, provisioning options and backups.

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
)

type settingsData struct {
	layout
	LogDays         int
	Message, Error  string
	DatabaseVersion int
	Snapshots       []SnapshotInfo
	Policy          []policyRow
	Claim           bool
	Deprovision     string
	PurgeDays       int
}

type policyRow struct {
	Key, Label string
	Local      bool
}

func (a *admin) settingsData(r *http.Request, sess *adminSession) (settingsData, error) {
	d := settingsData{layout: a.layout(r, sess, "Settings", "settings"), LogDays: defaultLogDays, DatabaseVersion: len(migrations)}
	snaps, err := a.store.Snapshots()
	if err != nil {
		return d, err
	}
	d.Snapshots = snaps
	p, err := a.store.Policy(r.Context())
	if err != nil {
		return d, err
	}
	for _, f := range policyFields {
		d.Policy = append(d.Policy, policyRow{Key: f.Key, Label: f.Label, Local: p.Source(f.Key) == FromLocal})
	}
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
	v, err := a.store.Setting(r.Context(), logRetentionDays)
	if err != nil {
		return d, err
	}
	if n, err := strconv.Atoi(v); err == nil {
		d.LogDays = n
	}
	return d, nil
}

func (a *admin) settings(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changePassword(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	adm, err := a.store.AdminByID(r.Context(), sess.AdminID)
	if err != nil {
		return err
	}
	password := r.PostFormValue("password")
	switch {
	case !checkPassword(adm.PasswordHash, r.PostFormValue("current")):
		d.Error = "The current password is wrong."
	case len([]rune(password)) < minPasswordLen:
		d.Error = fmt.Sprintf("Use a password of at least %d characters.", minPasswordLen)
	case password != r.PostFormValue("confirm"):
		d.Error = "The two new passwords differ."
	}
	if d.Error != "" {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetAdminPassword(r.Context(), adm.ID, hashPassword(password), sess.ID); err != nil {
		return err
	}
	a.log.Info("admin password changed", "username", adm.Username)
	d.Message = "Password changed. Other sessions have been logged out."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changeLogRetention(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("days")))
	if err != nil || days < 1 || days > 3650 {
		d.Error = "Keep the log for 1 to 3650 days."
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	if err := a.store.SetSetting(r.Context(), logRetentionDays, strconv.Itoa(days)); err != nil {
		return err
	}
	d.LogDays, d.Message = days, fmt.Sprintf("The provisioning log now keeps %d days.", days)
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

// changePolicy applies a preset, or the per-field choices of the form.
func (a *admin) changePolicy(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	var p Policy
	if preset := r.PostFormValue("preset"); preset != "" {
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
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	d.Message = "Source of truth saved. The directory's values and local edits are both kept; only what is shown changes."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

func (a *admin) changeProvisioning(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	d, err := a.settingsData(r, sess)
	if err != nil {
		return err
	}
	mode := DeprovisionMode(r.PostFormValue("deprovision"))
	days, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("purge_days")))
	switch {
	case mode != deprovisionDelete && mode != deprovisionHide:
		d.Error = "Choose what a delete from the directory does."
	case err != nil || days < 0 || days > 3650:
		d.Error = "Delete disabled accounts after 0 (never) to 3650 days."
	}
	if d.Error != "" {
		return a.render(w, r, http.StatusBadRequest, "settings.html", d)
	}
	claim := "false"
	if r.PostFormValue("claim") == "on" {
		claim = "true"
	}
	for k, v := range map[string]string{settingClaim: claim, settingDeprovision: string(mode), settingPurgeInactive: strconv.Itoa(days)} {
		if err := a.store.SetSetting(r.Context(), k, v); err != nil {
			return err
		}
	}
	a.log.Info("provisioning settings changed", "admin", sess.Username, "claim", claim, "deprovision", mode, "purge_days", days)
	if d, err = a.settingsData(r, sess); err != nil {
		return err
	}
	d.Message = "Provisioning settings saved."
	return a.render(w, r, http.StatusOK, "settings.html", d)
}

// downloadBackup sends a fresh, checked snapshot of the database.
func (a *admin) downloadBackup(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
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
	name := "scimbox-" + time.Now().UTC().Format("20060102T150405Z") + ".db"
	a.log.Info("backup downloaded from the admin page", "admin", sess.Username)
	w.Header().Set("Content-Type", "application/vnd.sqlite3")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(w, r, name, time.Now(), f)
	return nil
}

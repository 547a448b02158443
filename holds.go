package main

// Safety rails: the mass-change hold and protected accounts, the parts
// without I/O. When the directory disables or deletes many users (or removes
// many memberships) in a short time — a wrong scoping filter, an unassigned
// group — the changes past a threshold are held: SCIM answers success and
// its view shows them (Entra never sends a change again that it saw
// succeed), but the effective view (admin page, API, webhooks, exports)
// keeps the previous state until an admin approves or rejects them. A
// protected account is never disabled or deleted in the effective view by
// the directory. The store (store_holds.go) keeps what the rails held back.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Hold kinds: what the directory did.
const (
	holdDisable      = "disable"       // a user's active went to false
	holdDelete       = "delete"        // DELETE /Users/{id}
	holdMemberRemove = "member-remove" // a membership removed (a group write, or a held delete's)
)

// Hold states. In a kept state (held, rejected, protected) the change is in
// the SCIM view but not in the effective view.
const (
	holdHeld      = "held"      // waiting for an admin's decision
	holdApproved  = "approved"  // released into the effective view, with its events
	holdRejected  = "rejected"  // the effective view keeps the previous state: drift
	holdProtected = "protected" // refused because the account is protected: drift
	holdMoot      = "moot"      // no longer applies: the directory reverted it, or the user or group is gone
)

// accountRetained is the kind of a user the directory deleted while the
// effective view keeps it (a held delete, a rejected one, a protected
// account): hidden from SCIM like a deprovisioned account, shown everywhere
// else as the directory account it was.
const accountRetained = "retained"

// Removal classes, each counted against its own threshold.
const (
	classUsers   = "users"   // disables and deletes
	classMembers = "members" // membership removals
)

// Settings of the mass-change hold.
const (
	settingHoldOff     = "hold_off" // "true" turns the mass-change hold off
	settingHoldPercent = "hold_percent"
	settingHoldMinimum = "hold_minimum"
	settingHoldWindow  = "hold_window_minutes"
)

// HoldSettings are the mass-change hold's threshold: within Window, more
// removals of a class than Percent of its base (directory users, or
// memberships) or Minimum, whichever is larger, are held.
type HoldSettings struct {
	Off     bool
	Percent int // of the directory's users (or memberships)
	Minimum int
	Window  time.Duration
}

// defaultHoldSettings: 10 % or 25, in an hour. An Entra cycle comes every
// 40 minutes, so an hour sees at most two; a leaver wave of a whole
// department is a few percent of a tenant; a small tenant's test session
// (the replay: 3 deletes) stays far below 25.
var defaultHoldSettings = HoldSettings{Percent: 10, Minimum: 25, Window: time.Hour}

// maxHoldWindow bounds the window: the removals counted in it are kept that long.
const maxHoldWindow = 7 * 24 * time.Hour

// parseHoldSettings reads the settings' stored values; a value not set (or
// not a number) keeps its default.
func parseHoldSettings(get func(key string) string) HoldSettings {
	hs := defaultHoldSettings
	hs.Off = get(settingHoldOff) == "true"
	if n, err := strconv.Atoi(get(settingHoldPercent)); err == nil {
		hs.Percent = n
	}
	if n, err := strconv.Atoi(get(settingHoldMinimum)); err == nil {
		hs.Minimum = n
	}
	if n, err := strconv.Atoi(get(settingHoldWindow)); err == nil {
		hs.Window = time.Duration(n) * time.Minute
	}
	return hs
}

// validate returns, by setting, what is wrong with hs.
func (hs HoldSettings) validate() map[string]string {
	errs := map[string]string{}
	if hs.Percent < 0 || hs.Percent > 100 {
		errs["hold_percent"] = "A percentage from 0 to 100."
	}
	if hs.Minimum < 0 || hs.Minimum > 1_000_000 {
		errs["hold_minimum"] = "A number of changes from 0 to 1,000,000."
	}
	if hs.Window < time.Minute || hs.Window > maxHoldWindow {
		errs["hold_window"] = "From 1 minute to 7 days (10080 minutes)."
	}
	return errs
}

// values returns hs as settings.
func (hs HoldSettings) values() map[string]string {
	return map[string]string{
		settingHoldOff:     strconv.FormatBool(hs.Off),
		settingHoldPercent: strconv.Itoa(hs.Percent),
		settingHoldMinimum: strconv.Itoa(hs.Minimum),
		settingHoldWindow:  strconv.Itoa(int(hs.Window / time.Minute)),
	}
}

// threshold is how many removals of a class the window allows, for a base
// (directory users or memberships) of n.
func (hs HoldSettings) threshold(n int) int {
	return max(hs.Minimum, (n*hs.Percent+99)/100)
}

// WindowMinutes is the window in minutes, for the settings form.
func (hs HoldSettings) WindowMinutes() int { return int(hs.Window / time.Minute) }

// directoryWrite marks a write's context as the directory's (a SCIM
// request): only such writes meet the safety rails, never an admin's edit,
// a claim or an approval. It collects what the rails did, for the request's
// provisioning log entry.
type directoryWrite struct {
	request string // method and path, recorded with each hold

	mu    sync.Mutex
	notes []string
}

type directoryWriteKey struct{}

// withDirectoryWrite returns a context whose store writes are the directory's.
func withDirectoryWrite(ctx context.Context, request string) (context.Context, *directoryWrite) {
	dw := &directoryWrite{request: request}
	return context.WithValue(ctx, directoryWriteKey{}, dw), dw
}

// directoryWriteOf returns the directory write a context carries, or nil.
func directoryWriteOf(ctx context.Context) *directoryWrite {
	dw, _ := ctx.Value(directoryWriteKey{}).(*directoryWrite)
	return dw
}

func (dw *directoryWrite) note(format string, args ...any) {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	dw.notes = append(dw.notes, fmt.Sprintf(format, args...))
}

// summary is what the rails did, in words, or "".
func (dw *directoryWrite) summary() string {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	return strings.Join(dw.notes, "; ")
}

// effectiveGroups are a user's groups as apps see them: the directory's
// memberships and the ones a safety rail keeps, by name.
func effectiveGroups(u *User) []GroupRef {
	if len(u.HeldGroups) == 0 {
		return u.Groups
	}
	out := slices.Concat(u.Groups, u.HeldGroups)
	slices.SortFunc(out, func(a, b GroupRef) int {
		return cmp.Or(cmp.Compare(foldCase(a.Display), foldCase(b.Display)), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// What says in words what a hold's change is, for the page, the CLI and the log.
func (h Hold) What() string {
	switch h.Kind {
	case holdDisable:
		return "disable " + h.Target
	case holdDelete:
		if h.Mode == string(deprovisionHide) {
			return "delete " + h.Target + " (kept disabled and hidden)"
		}
		return "delete " + h.Target
	}
	return fmt.Sprintf("remove %s from %s", cmp.Or(h.MemberName, h.MemberID), h.Target)
}

// StateText says in words what a hold's state means.
func (h Hold) StateText() string {
	switch h.State {
	case holdHeld:
		return "held for review"
	case holdApproved:
		return "approved"
	case holdRejected:
		return "rejected: apps keep the previous state"
	case holdProtected:
		return "refused: protected account"
	}
	return "no longer applies"
}

// Kept reports whether the effective view keeps the state before the change.
func (h Hold) Kept() bool {
	return h.State == holdHeld || h.State == holdRejected || h.State == holdProtected
}

// heldChangesAlert is the alert's check of the safety rails: it fires while
// directory changes wait for an admin's review.
func (s *Store) heldChangesAlert(ctx context.Context) (bool, string, error) {
	n, oldest, err := s.HeldChanges(ctx)
	if err != nil || n == 0 {
		return false, "", err
	}
	return true, fmt.Sprintf("%d directory changes are held for review, the oldest since %s UTC: see the Holds page.",
		n, oldest.UTC().Format("2006-01-02 15:04")), nil
}

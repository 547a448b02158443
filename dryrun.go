// Dry runs: before "claim existing accounts" is turned on, a source-of-truth
// preset is applied or the directory is disconnected, the admin sees what
// would change (counts and a sample) and confirms. Each plan is computed by
// the code that applies the change, never by a second version of it: the
// claim decision (claimDecision) that SCIM's claim makes, the effective
// values (appUser) that every surface shows under a policy, and the account
// conversion (disconnectUser) that Disconnect writes.

package main

import (
	"context"
	"slices"
	"strings"
)

// planSampleSize is how many of the changes a plan lists by name.
const planSampleSize = 20

// Plan is what an action would change.
type Plan struct {
	Counts []PlanCount
	Sample []PlanItem // the first planSampleSize changes
	Total  int        // how many changes in all (the sample's population)
}

// PlanCount is one figure of a plan.
type PlanCount struct {
	N     int
	Label string
}

// PlanItem is one change a plan lists by name.
type PlanItem struct {
	ID, Name, Change string
}

// add counts a change and keeps it in the sample while there is room.
func (p *Plan) add(it PlanItem) {
	p.Total++
	if len(p.Sample) < planSampleSize {
		p.Sample = append(p.Sample, it)
	}
}

// More is how many changes the sample leaves out.
func (p Plan) More() int { return p.Total - len(p.Sample) }

// claimDecision says what a directory POST whose userName an account SCIM
// cannot see (kind) holds does to that account: the operation it is logged
// as, or "" when it is refused. allowClaims is the "claim existing accounts"
// setting. server.claim applies it; claimPlan asks it for the dry run.
func claimDecision(kind string, allowClaims bool) string {
	switch {
	case kind == accountDeprovisioned, kind == accountRetained:
		return "reprovision user" // the directory's own account comes back, whatever the setting
	case kind == accountManual && allowClaims:
		return "claim manual account"
	}
	return ""
}

// claimPlan is what turning "claim existing accounts" on would change: the
// accounts the directory already asked for by userName and was refused
// (their userNames in the provisioning log's conflicts), which it takes over
// at its next attempt (Entra retries a failed user every cycle); and how many
// manual accounts it could take over if it ever sends their userName.
func claimPlan(ctx context.Context, store *Store) (Plan, error) {
	var p Plan
	asked, err := store.RefusedClaims(ctx)
	if err != nil {
		return p, err
	}
	for _, u := range asked {
		if claimDecision(u.Kind, false) == "" && claimDecision(u.Kind, true) != "" {
			p.add(PlanItem{ID: u.ID, Name: stringAttr(u.Attrs, "userName"), Change: "taken over by the directory at its next attempt"})
		}
	}
	manual, err := store.CountUsersOfKind(ctx, accountManual)
	if err != nil {
		return p, err
	}
	p.Counts = []PlanCount{
		{p.Total, "manual accounts the directory asked for and was refused: it takes them over at its next attempt"},
		{manual, "manual accounts in all: the directory takes over any of them whose user name it sends"},
	}
	return p, nil
}

// policyPlan is what applying the policy next instead of now would change:
// the users whose values as apps see them (appUser: the API, exports,
// webhooks and the admin page) differ, with the fields that change. No
// value is lost either way; which one is shown changes.
func policyPlan(ctx context.Context, store *Store, now, next Policy) (Plan, error) {
	var p Plan
	fields := 0
	err := store.EachUser(ctx, func(u *User) error {
		changed := slices.DeleteFunc(changedKeys(appUser(u, now), appUser(u, next)), func(k string) bool { return k == "lastModified" })
		if len(changed) == 0 {
			return nil
		}
		fields += len(changed)
		p.add(PlanItem{ID: u.ID, Name: stringAttr(u.Attrs, "userName"), Change: "shows another value of " + fieldLabels(changed)})
		return nil
	})
	p.Counts = []PlanCount{{p.Total, "users whose values shown to apps change"}, {fields, "values that change in all"}}
	return p, err
}

// fieldLabels names attribute keys as the policy table does, where it names them.
func fieldLabels(keys []string) string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k
		for _, f := range policyFields {
			if f.Key == k || strings.HasPrefix(f.Key, k+".") {
				names[i] = f.Label
				break
			}
		}
	}
	return strings.Join(slices.Compact(names), ", ")
}

// disconnectUser is what Disconnect makes of an account: a directory
// account becomes a manual one carrying its effective values (local edits
// folded in). It reports false for any other account, which stays as it is.
func disconnectUser(u *User, p Policy) (*User, bool) {
	if u.Kind != accountDirectory {
		return u, false
	}
	out := copyUser(u)
	out.Attrs, out.Overrides, out.Kind = Disconnected(u.Attrs, u.Overrides, p), nil, accountManual
	return out, true
}

// disconnectPlan is what disconnecting would change: the tokens revoked,
// the accounts that become manual, and those among them whose own values
// change because local edits are folded in.
func disconnectPlan(ctx context.Context, store *Store, p Policy) (Plan, error) {
	var plan Plan
	folded := 0
	err := store.EachUser(ctx, func(u *User) error {
		after, converted := disconnectUser(u, p)
		if !converted {
			return nil
		}
		change := "becomes a manual account"
		if edited := changedKeys(u.Attrs, after.Attrs); len(edited) > 0 {
			folded++
			change += "; its local edits of " + fieldLabels(edited) + " become its values"
		}
		plan.add(PlanItem{ID: u.ID, Name: stringAttr(u.Attrs, "userName"), Change: change})
		return nil
	})
	if err != nil {
		return plan, err
	}
	tokens, err := store.Tokens(ctx)
	if err != nil {
		return plan, err
	}
	plan.Counts = []PlanCount{
		{len(tokens), "Secret Tokens revoked: the directory's requests are refused from then on"},
		{plan.Total, "directory accounts that become manual accounts, with the values shown now"},
		{folded, "of them with local edits that become their own values"},
	}
	return plan, nil
}

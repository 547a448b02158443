// The provisioning log page.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// logData is the data of web/log.html.
type logData struct {
	layout
	Entries         []logRow
	Outcome, Target string
	Next            int64 // id to continue from, 0 when there is no more
}

// logPage serves GET /log, filtered by outcome and target.
func (a *admin) logPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	q := r.URL.Query()
	outcome := q.Get("outcome")
	if outcome != "success" && outcome != "failure" {
		outcome = ""
	}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	entries, err := a.store.ListLog(r.Context(), LogQuery{Outcome: outcome, Target: q.Get("target"), Before: before, Limit: adminPageSize + 1})
	if err != nil {
		return err
	}
	d := logData{layout: a.layout(r, sess, "Provisioning log", "log"), Outcome: outcome, Target: q.Get("target")}
	if len(entries) > adminPageSize {
		entries = entries[:adminPageSize]
		d.Next = entries[len(entries)-1].ID
	}
	if d.Entries, err = a.logRows(r.Context(), entries); err != nil {
		return err
	}
	return a.render(w, r, http.StatusOK, "log.html", d)
}

// logRow is a log entry as the page shows it, with what its request changed.
type logRow struct {
	LogEntry
	Changes []changeLine
	More    int // changes left out of Changes
}

// changeLine is one thing a request changed: a field from Before to After,
// or the Members it added or removed.
type changeLine struct {
	What          string
	Before, After link
	Members       []link
}

// link is a value shown on the page, a link when Href is set.
type link struct{ Href, Text string }

// maxChangeLines bounds the lines shown per log entry.
const maxChangeLines = 12

// logRows adds to log entries what their requests changed, from the change
// feed, with users and groups named and linked.
func (a *admin) logRows(ctx context.Context, entries []LogEntry) ([]logRow, error) {
	changes, err := a.store.RequestChanges(ctx, entries)
	if err != nil {
		return nil, err
	}
	rows := make([]logRow, len(entries))
	var ids []string // resources to name
	for i, e := range entries {
		rows[i].LogEntry = e
		if e.Target == e.ResourceID && e.ResourceID != "" {
			ids = append(ids, e.ResourceID)
		}
		re := changes[e.ID]
		if re == nil {
			continue
		}
		lines := describeEvents(re)
		if len(lines) > maxChangeLines {
			rows[i].More, lines = len(lines)-maxChangeLines, lines[:maxChangeLines]
		}
		rows[i].Changes = lines
		for _, l := range lines {
			for _, v := range append([]link{l.Before, l.After}, l.Members...) {
				if v.Href != "" {
					ids = append(ids, path.Base(v.Href))
				}
			}
		}
	}
	names, err := a.store.ResourceNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	name := func(l *link) {
		if n := names[path.Base(l.Href)]; l.Href != "" && n != "" {
			l.Text = n
		}
	}
	for i := range rows {
		if n := names[rows[i].ResourceID]; rows[i].Target == rows[i].ResourceID && n != "" {
			rows[i].Target = n
		}
		for j := range rows[i].Changes {
			c := &rows[i].Changes[j]
			name(&c.Before)
			name(&c.After)
			for k := range c.Members {
				name(&c.Members[k])
			}
		}
	}
	return rows, nil
}

// describeEvents says what a request's events changed: fields before → after
// (against the resource as it was before), accounts enabled or disabled, and
// group members added or removed.
func describeEvents(re *RequestEvents) []changeLine {
	var before map[string]any
	if re.Before != nil {
		before = eventResource(*re.Before)
	}
	var lines []changeLine
	members := map[string][]link{}
	for _, e := range re.Events {
		switch e.Type {
		case evMemberAdded, evMemberRemoved:
			var m struct{ Member string }
			json.Unmarshal(e.Data, &m)
			href := "/users/" + m.Member
			members[e.Type] = append(members[e.Type], link{Href: href, Text: m.Member})
			continue
		case evUserEnabled, evUserDisabled:
			after := eventResource(e)
			lines = append(lines, changeLine{What: "Active", Before: link{Text: yesNo(before["active"])}, After: link{Text: yesNo(after["active"])}})
			before = after
		case evUserUpdated, evGroupUpdated:
			var d struct{ Changed []string }
			json.Unmarshal(e.Data, &d)
			after := eventResource(e)
			if before != nil {
				lines = append(lines, diffFields(before, after, d.Changed)...)
			} else {
				for _, k := range d.Changed {
					lines = append(lines, changeLine{What: fieldLabelOf(k), After: link{Text: "changed"}})
				}
			}
			before = after
		case evUserCreated, evGroupCreated:
			before = eventResource(e)
		}
	}
	for _, m := range []struct{ typ, what string }{{evMemberAdded, "Members added"}, {evMemberRemoved, "Members removed"}} {
		if list := members[m.typ]; len(list) > 0 {
			lines = append(lines, changeLine{What: fmt.Sprintf("%s (%d)", m.what, len(list)), Members: list})
		}
	}
	return lines
}

// eventResource reads the resource an event carries: its data, or for an
// update the resource under "user" or "group".
func eventResource(e Event) map[string]any {
	var doc map[string]any
	if json.Unmarshal(e.Data, &doc) != nil {
		return nil
	}
	switch e.Type {
	case evUserUpdated:
		doc, _ = doc["user"].(map[string]any)
	case evGroupUpdated:
		doc, _ = doc["group"].(map[string]any)
	}
	return doc
}

// yesNo shows a boolean attribute in words, and anything else as a dash.
func yesNo(v any) string {
	switch v {
	case true:
		return "yes"
	case false:
		return "no"
	}
	return "—"
}

// diffFields lists the changed top-level attributes (URN-qualified extension
// attributes as urn:attr) value by value, flattened to their leaves.
func diffFields(before, after map[string]any, changed []string) []changeLine {
	var lines []changeLine
	for _, key := range changed {
		b, a := map[string]string{}, map[string]string{}
		var order []string // paths in the order first seen
		seen := map[string]bool{}
		for _, side := range []struct {
			doc map[string]any
			out map[string]string
		}{{before, b}, {after, a}} {
			var flat []attrRow
			if v := lookupKey(side.doc, key); v != nil {
				flatten(key, v, &flat)
			}
			for _, r := range flat {
				if !seen[r.Path] {
					seen[r.Path] = true
					order = append(order, r.Path)
				}
				side.out[r.Path] = r.Value
			}
		}
		for _, p := range order {
			if b[p] == a[p] {
				continue
			}
			line := changeLine{What: fieldLabelOf(p), Before: link{Text: orDash(b[p])}, After: link{Text: orDash(a[p])}}
			if strings.HasSuffix(p, "manager.value") {
				line.What = "Manager"
				for _, l := range []*link{&line.Before, &line.After} {
					if l.Text != "—" {
						l.Href = "/users/" + l.Text
					}
				}
			}
			lines = append(lines, line)
		}
	}
	return lines
}

// lookupKey reads a top-level attribute, or urn:attr from an extension.
func lookupKey(doc map[string]any, key string) any {
	if v, ok := doc[key]; ok {
		return v
	}
	if i := strings.LastIndex(key, ":"); i > 0 {
		ext, _ := doc[key[:i]].(map[string]any)
		return ext[key[i+1:]]
	}
	return nil
}

// fieldLabelOf names an attribute path as the user page does where it can.
func fieldLabelOf(p string) string {
	if f, ok := fieldByKey(p); ok {
		return f.Label
	}
	return strings.TrimPrefix(p, enterpriseSchema+":")
}

// orDash shows an empty value as a dash, so that a change to or from nothing is visible.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

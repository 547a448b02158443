// What a logged request changed: the change-feed events it wrote, found for
// the admin page's Log and History, and the names of the resources they name.

package main

import (
	"context"
	"encoding/json"
	"fmt"
)

// RequestEvents are the change-feed events one logged request wrote, and the
// resource as it was before them: the newest earlier event that carries the
// whole resource, while the feed still holds one.
type RequestEvents struct {
	Before *Event
	Events []Event
}

// docEventTypes are the events whose data is the whole resource (user.updated
// and group.updated carry it under "user" and "group").
const docEventTypes = `'user.created', 'user.updated', 'user.enabled', 'user.disabled', 'group.created', 'group.updated'`

// RequestChanges returns, by log entry id, the events each successful entry's
// request wrote: entries are stamped when their request arrived, so these are
// the events of its resource from then until the resource's next log entry in
// arrival order. Not in id order: a SCIM request's entry is written by the
// batching log writer after the request, so an admin's entry written at once
// can get a lower id than the entry of a request that arrived before it.
// Entries without a resource are left out.
func (s *Store) RequestChanges(ctx context.Context, entries []LogEntry) (map[int64]*RequestEvents, error) {
	var page [][3]any
	for _, e := range entries {
		if e.ResourceID != "" && e.Outcome == "success" {
			page = append(page, [3]any{e.ID, e.ResourceID, formatTime(e.At)})
		}
	}
	out := map[int64]*RequestEvents{}
	if len(page) == 0 {
		return out, nil
	}
	raw, err := json.Marshal(page)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `WITH page(entry, rid, upto) AS (
			SELECT value->>0, value->>1, value->>2 FROM json_each(?)
		), win AS (
			SELECT entry, rid, upto AS since, coalesce((SELECT min(l.at) FROM provisioning_log l
				WHERE l.resource_id = page.rid AND (l.at > page.upto OR l.at = page.upto AND l.id > page.entry)), '9') AS upto FROM page
		)
		SELECT win.entry, 0, e.cursor, e.id, e.at, e.type, e.resource_type, e.resource_id, e.data
			FROM win JOIN events e ON e.resource_id = win.rid AND e.at >= win.since AND e.at < win.upto
		UNION ALL
		SELECT win.entry, 1, e.cursor, e.id, e.at, e.type, e.resource_type, e.resource_id, e.data
			FROM win JOIN events e ON e.cursor = (SELECT max(x.cursor) FROM events x
				WHERE x.resource_id = win.rid AND x.at < win.since AND x.type IN (`+docEventTypes+`))
		ORDER BY 1, 3`, string(raw))
	if err != nil {
		return nil, fmt.Errorf("request changes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var entry int64
		var before bool
		var e Event
		var at, data string
		if err := rows.Scan(&entry, &before, &e.Cursor, &e.ID, &at, &e.Type, &e.ResourceType, &e.ResourceID, &data); err != nil {
			return nil, fmt.Errorf("request changes: %w", err)
		}
		e.At, e.Data = parseTime(at), json.RawMessage(data)
		re := out[entry]
		if re == nil {
			re = &RequestEvents{}
			out[entry] = re
		}
		if before {
			re.Before = &e
		} else {
			re.Events = append(re.Events, e)
		}
	}
	return out, rows.Err()
}

// ResourceNames returns the display names (else user names) of the users and
// groups with the given ids; ids of neither are left out.
func (s *Store) ResourceNames(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	raw, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT u.id, coalesce(nullif(u.display_name, ''), u.user_name) FROM users u
			WHERE u.id IN (SELECT value FROM json_each(?1))
		UNION ALL
		SELECT g.id, g.display_name FROM groups g WHERE g.id IN (SELECT value FROM json_each(?1))`, string(raw))
	if err != nil {
		return nil, fmt.Errorf("resource names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("resource names: %w", err)
		}
		out[id] = name
	}
	return out, rows.Err()
}

// LogNow writes a log entry before returning, for the admin's own changes:
// the page it redirects to shows them at once. Like the directory's, the
// entry is to be stamped (At) before the change it records.
func (s *Store) LogNow(ctx context.Context, e LogEntry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	return s.writeLog(ctx, []LogEntry{e})
}

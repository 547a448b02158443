// Counts for the dashboard's charts, from the provisioning log and the change feed.

package main

import (
	"context"
	"fmt"
	"time"
)

// directoryLogOps keeps the directory's own requests: the admin page's and
// the policy's entries are marked in their op ("local edit", "… (admin)",
// "… (policy)", "disconnect from the directory").
const directoryLogOps = `op NOT LIKE 'local %' AND op NOT LIKE '%(admin)' AND op NOT LIKE '%(policy)' AND op NOT LIKE 'disconnect %'`

// HourCount is how many logged directory requests succeeded and failed in one hour.
type HourCount struct {
	Hour              time.Time
	Success, Failures int
}

// LogPerHour counts the directory's logged requests (those that changed
// something or failed) per UTC hour since since, hours without any left out.
func (s *Store) LogPerHour(ctx context.Context, since time.Time) ([]HourCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT substr(at, 1, 13), sum(outcome = 'success'), sum(outcome = 'failure')
		FROM provisioning_log WHERE at >= ? AND `+directoryLogOps+` GROUP BY 1 ORDER BY 1`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("log per hour: %w", err)
	}
	defer rows.Close()
	var out []HourCount
	for rows.Next() {
		var h HourCount
		var hour string
		if err := rows.Scan(&hour, &h.Success, &h.Failures); err != nil {
			return nil, fmt.Errorf("log per hour: %w", err)
		}
		h.Hour, _ = time.Parse("2006-01-02T15", hour)
		out = append(out, h)
	}
	return out, rows.Err()
}

// DayCount is how many users were created, updated and disabled on one UTC day.
type DayCount struct {
	Day                        time.Time
	Created, Updated, Disabled int
}

// UserChangesPerDay counts user events of the change feed per UTC day since since.
func (s *Store) UserChangesPerDay(ctx context.Context, since time.Time) ([]DayCount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT substr(at, 1, 10), sum(type = 'user.created'), sum(type = 'user.updated'),
		sum(type = 'user.disabled') FROM events WHERE at >= ? AND type IN ('user.created', 'user.updated', 'user.disabled')
		GROUP BY 1 ORDER BY 1`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("user changes per day: %w", err)
	}
	defer rows.Close()
	var out []DayCount
	for rows.Next() {
		var d DayCount
		var day string
		if err := rows.Scan(&day, &d.Created, &d.Updated, &d.Disabled); err != nil {
			return nil, fmt.Errorf("user changes per day: %w", err)
		}
		d.Day, _ = time.Parse(time.DateOnly, day)
		out = append(out, d)
	}
	return out, rows.Err()
}

// maxActivityTimes bounds DirectoryActivity on a day with a large first sync.
const maxActivityTimes = 20000

// DirectoryActivity returns when the directory's logged requests came since since, oldest first.
func (s *Store) DirectoryActivity(ctx context.Context, since time.Time) ([]time.Time, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT at FROM provisioning_log WHERE at >= ? AND `+directoryLogOps+`
		ORDER BY at LIMIT ?`, formatTime(since), maxActivityTimes)
	if err != nil {
		return nil, fmt.Errorf("directory activity: %w", err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at string
		if err := rows.Scan(&at); err != nil {
			return nil, fmt.Errorf("directory activity: %w", err)
		}
		out = append(out, parseTime(at))
	}
	return out, rows.Err()
}

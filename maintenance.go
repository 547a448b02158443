// Maintenance: the periodic clean-up of the database, in one loop beside the server.

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// maintenanceEvery is how often the clean-up runs (and once at start).
const maintenanceEvery = time.Hour

// runMaintenance runs maintain at once and then every interval until ctx ends.
func runMaintenance(ctx context.Context, s *Store, log *slog.Logger, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		maintain(ctx, s, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// maintain runs every clean-up job once: the provisioning log's retention,
// the change feed's (old events, and with them their webhook deliveries and
// delivery attempts) and the purge of accounts disabled for longer than the
// policy allows. A job that fails is logged and the others still run; a job
// interrupted by ctx is not an error.
func maintain(ctx context.Context, s *Store, log *slog.Logger) {
	report := func(job string, err error) {
		// A lost database file was reported once where it was noticed.
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrDatabaseLost) {
			log.Error(job, "err", err)
		}
	}
	report("prune provisioning log", s.PruneLog(ctx))
	report("prune change feed", s.PruneEvents(ctx, eventRetentionDays))
	report("purge inactive users", purgeBySetting(ctx, s, log))
}

// purgeBySetting applies the "delete disabled accounts after N days" policy.
func purgeBySetting(ctx context.Context, s *Store, log *slog.Logger) error {
	v, err := s.Setting(ctx, settingPurgeInactive)
	if err != nil {
		return err
	}
	days, _ := strconv.Atoi(v)
	if days <= 0 {
		return nil
	}
	names, err := s.PurgeInactive(ctx, days)
	if err != nil {
		return err
	}
	for _, name := range names {
		log.Info("deleted an account disabled for longer than the policy allows", "userName", name, "days", days)
		s.Log(LogEntry{Op: "delete disabled user (policy)", ResourceType: "User", Target: name, Outcome: "success", Status: 204,
			Detail: fmt.Sprintf("disabled for more than %d days", days)})
	}
	return nil
}

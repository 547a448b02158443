// The dashboard: counts and the last directory activity at a glance.

package main

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/julienschmidt/httprouter"
)

// dashboardData is the data of web/dashboard.html.
type dashboardData struct {
	layout
	Stats     Stats
	Tokens    []Token
	LastUsed  time.Time
	TenantURL string
	Recent    []logRow
	Charts    []chart
	Health    healthCard
	Restore   *restoreReport // nil unless the database was restored
}

// healthCard is what the dashboard's health card shows.
type healthCard struct {
	HealthSnapshot
	Skipped SkippedSummary
}

// lastTokenUse is the most recent use of any token: when the directory last called.
func lastTokenUse(tokens []Token) time.Time {
	var last time.Time
	for _, t := range tokens {
		if t.LastUsed.After(last) {
			last = t.LastUsed
		}
	}
	return last
}

// dashboard serves GET /: counts, the connection, the health card, charts and recent activity.
func (a *admin) dashboard(w http.ResponseWriter, r *http.Request, _ httprouter.Params, sess *adminSession) error {
	ctx := r.Context()
	st, err := a.store.Stats(ctx)
	if err != nil {
		return err
	}
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return err
	}
	entries, err := a.store.ListLog(ctx, LogQuery{Limit: 10})
	if err != nil {
		return err
	}
	recent, err := a.logRows(ctx, entries)
	if err != nil {
		return err
	}
	now := time.Now()
	hourly, err := a.store.LogPerHour(ctx, now.Add(-7*24*time.Hour))
	if err != nil {
		return err
	}
	daily, err := a.store.UserChangesPerDay(ctx, now.AddDate(0, 0, -14))
	if err != nil {
		return err
	}
	activity, err := a.store.DirectoryActivity(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	last, err := a.lastDirectoryCall(ctx, tokens)
	if err != nil {
		return err
	}
	health := healthCard{HealthSnapshot: a.store.Health().Snapshot()}
	if health.Skipped, err = a.store.SkippedMembersSummary(ctx); err != nil {
		return err
	}
	_, restore := a.replicaAndRestore(ctx)
	return a.render(w, r, http.StatusOK, "dashboard.html", dashboardData{layout: a.layout(r, sess, "Dashboard", "dashboard"), Restore: restore,
		Stats: st, Tokens: tokens, LastUsed: last, TenantURL: baseURL(r), Recent: recent, Health: health,
		Charts: []chart{cyclesChart(activity, now), requestsChart(hourly, now), changesChart(daily, now)}})
}

// chart is a bar chart drawn as SVG on the server: positions are computed
// here, colours come from classes in style.css (no inline style, no script).
type chart struct {
	ID, Title string
	Summary   string // what the chart shows, in words: its text alternative
	Width     int
	Height    int
	Baseline  float64
	Rects     []chartRect
	Labels    []chartLabel
	Legend    []chartKey
}

// chartRect is one bar (or burst) of a chart, in SVG user units.
type chartRect struct {
	X, Y, W, H float64
	Class, Tip string
}

// chartLabel is an axis label; Anchor is its SVG text-anchor.
type chartLabel struct {
	X, Y         float64
	Text, Anchor string
}

// chartKey is one entry of a chart's legend.
type chartKey struct{ Class, Text string }

const (
	// chartWidth and chartHeight are the SVG viewBox; CSS scales it to the card
	chartWidth  = 600
	chartHeight = 150
	chartTop    = 8  // room above the tallest bar for the scale label
	chartBottom = 20 // room for the labels under the bars
	// labelInset keeps labels off the left edge, where Chromium counts
	// SVG text as overflowing its box.
	labelInset = 30
)

// stackedBars lays out one bar per slot, each stacked from its values (bottom first).
func stackedBars(c *chart, slots int, values func(i int) []int, classes []string, tip func(i int) string) {
	c.Width, c.Height, c.Baseline = chartWidth, chartHeight, chartHeight-chartBottom
	top := 1
	for i := range slots {
		sum := 0
		for _, v := range values(i) {
			sum += v
		}
		top = max(top, sum)
	}
	plot := float64(chartHeight - chartTop - chartBottom)
	w := float64(chartWidth) / float64(slots)
	for i := range slots {
		y := c.Baseline
		for j, v := range values(i) {
			if v == 0 {
				continue
			}
			h := max(float64(v)/float64(top)*plot, 1)
			y -= h
			c.Rects = append(c.Rects, chartRect{X: float64(i) * w, Y: y, W: max(w-1, 1), H: h, Class: classes[j], Tip: tip(i)})
		}
	}
	c.Labels = append(c.Labels, chartLabel{X: chartWidth, Y: chartTop + 4, Text: fmt.Sprintf("%d", top), Anchor: "end"})
}

// requestsChart shows the directory's logged requests per hour over 7 days.
func requestsChart(counts []HourCount, now time.Time) chart {
	start := now.UTC().Truncate(time.Hour).Add(-167 * time.Hour)
	byHour := map[time.Time]HourCount{}
	var ok, failed int
	for _, c := range counts {
		byHour[c.Hour] = c
		ok, failed = ok+c.Success, failed+c.Failures
	}
	c := chart{ID: "chart-requests", Title: "Directory requests per hour, last 7 days",
		Summary: fmt.Sprintf("%d requests changed something and %d failed in the last 7 days (reads that changed nothing are not counted).", ok, failed),
		Legend:  []chartKey{{"ok", "changed something"}, {"bad", "failed"}}}
	hour := func(i int) time.Time { return start.Add(time.Duration(i) * time.Hour) }
	stackedBars(&c, 168, func(i int) []int { h := byHour[hour(i)]; return []int{h.Success, h.Failures} }, []string{"ok", "bad"},
		func(i int) string {
			h := byHour[hour(i)]
			return fmt.Sprintf("%s: %d changed, %d failed", hour(i).Format("Mon 2 Jan 15:00 UTC"), h.Success, h.Failures)
		})
	for i := range 168 {
		if hour(i).Hour() == 0 {
			c.Labels = append(c.Labels, chartLabel{X: max(float64(i)*chartWidth/168, labelInset), Y: chartHeight - 5, Text: hour(i).Format("Mon 2"), Anchor: "start"})
		}
	}
	return c
}

// changesChart shows users created, updated and disabled per day over 14 days.
func changesChart(counts []DayCount, now time.Time) chart {
	const days = 14
	start := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days - 1))
	byDay := map[time.Time]DayCount{}
	var created, updated, disabled int
	for _, d := range counts {
		byDay[d.Day] = d
		created, updated, disabled = created+d.Created, updated+d.Updated, disabled+d.Disabled
	}
	c := chart{ID: "chart-changes", Title: "Users created, updated and disabled per day, last 14 days",
		Summary: fmt.Sprintf("In the last 14 days: %d users created, %d updated, %d disabled.", created, updated, disabled),
		Legend:  []chartKey{{"created", "created"}, {"updated", "updated"}, {"disabled", "disabled"}}}
	day := func(i int) time.Time { return start.AddDate(0, 0, i) }
	stackedBars(&c, days, func(i int) []int { d := byDay[day(i)]; return []int{d.Created, d.Updated, d.Disabled} },
		[]string{"created", "updated", "disabled"}, func(i int) string {
			d := byDay[day(i)]
			return fmt.Sprintf("%s: %d created, %d updated, %d disabled", day(i).Format("Mon 2 Jan"), d.Created, d.Updated, d.Disabled)
		})
	for i := 0; i < days; i += 2 {
		c.Labels = append(c.Labels, chartLabel{X: max(float64(i)*chartWidth/days+2, labelInset), Y: chartHeight - 5, Text: day(i).Format("2 Jan"), Anchor: "start"})
	}
	return c
}

// cyclesChart marks each burst of directory activity over the last 24 hours on a time line.
func cyclesChart(times []time.Time, now time.Time) chart {
	end := now.UTC()
	start := end.Add(-24 * time.Hour)
	x := func(t time.Time) float64 { return float64(t.Sub(start)) / float64(24*time.Hour) * chartWidth }
	c := chart{ID: "chart-cycles", Title: "Provisioning cycles, last 24 hours", Width: chartWidth, Height: 70, Baseline: 50,
		Legend: []chartKey{{"cycle", "a burst of directory requests"}}}
	type burst struct{ from, to time.Time }
	var bursts []burst
	for _, t := range times {
		if n := len(bursts); n > 0 && t.Sub(bursts[n-1].to) <= cycleGap {
			bursts[n-1].to = t
			continue
		}
		bursts = append(bursts, burst{t, t})
	}
	var gaps []time.Duration
	for i, b := range bursts {
		c.Rects = append(c.Rects, chartRect{X: x(b.from), Y: 8, W: max(x(b.to)-x(b.from), 3), H: 42, Class: "cycle",
			Tip: fmt.Sprintf("%s to %s UTC", b.from.Format("15:04"), b.to.Format("15:04"))})
		if i > 0 {
			gaps = append(gaps, b.from.Sub(bursts[i-1].from))
		}
	}
	for h := 0; h < 24; h += 4 {
		t := start.Truncate(time.Hour).Add(time.Duration(h+1) * time.Hour)
		// Labels near an edge are anchored inside the chart, never drawn past it.
		lx, anchor := x(t), "middle"
		if lx < 30 {
			lx, anchor = max(lx, labelInset), "start"
		}
		c.Labels = append(c.Labels, chartLabel{X: lx, Y: 66, Text: t.Format("15:00"), Anchor: anchor})
	}
	switch {
	case len(bursts) == 0:
		c.Summary = "No directory request changed anything or failed in the last 24 hours."
	case len(gaps) == 0:
		c.Summary = fmt.Sprintf("One burst of directory activity, at %s UTC.", bursts[0].from.Format("15:04"))
	default:
		slices.Sort(gaps)
		c.Summary = fmt.Sprintf("%d bursts of directory activity, typically %d minutes apart; the last at %s UTC.",
			len(bursts), int(gaps[len(gaps)/2].Minutes()), bursts[len(bursts)-1].from.Format("15:04"))
	}
	return c
}

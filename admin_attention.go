// The health line: what needs the admin's attention, at the top of every
// admin page, each item with a link to where to act. It is gathered on every
// page view, so it reads only what is cheap: the cycle tracker and the
// snapshot outcome in memory, one statfs, and small tables only when memory
// says they may matter.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// silentAfter is how long the directory may be quiet before the line
	// says so: two of Entra's ~40-minute cycles.
	silentAfter = 2 * 40 * time.Minute
	// diskLowBytes and diskLowPercent: the disk is nearly full when less
	// than both are free (a large disk with 5 % free still has room), or when
	// less than two copies of the database fit (a snapshot needs one).
	diskLowBytes   = 1 << 30
	diskLowPercent = 10
)

// attention is one item of the health line.
type attention struct {
	Text   string
	Href   string // where to act; empty when no page can help
	Action string // the link's text
}

// healthFacts is what the health line is decided from.
type healthFacts struct {
	Now time.Time
	// LastCall is the directory's latest call (any token); zero if none.
	LastCall time.Time
	// Tokens are the Secret Tokens, read only when LastCall is older than
	// silentAfter (otherwise nil: the directory is calling, tokens or not).
	Tokens           []Token
	Risk             Risk
	DisabledWebhooks []Webhook
	CertFailure      error
	Snapshot         *SnapshotFailure
	DatabaseLost     error
	DiskFree         uint64 // bytes available to scimbox on the database's disk; 0 if unknown
	DiskTotal        uint64
	DatabaseSize     int64
}

// attentionItems decides the health line from the facts.
func attentionItems(f healthFacts) []attention {
	var out []attention
	if f.DatabaseLost != nil {
		out = append(out, attention{Text: f.DatabaseLost.Error(), Href: "/settings#backups", Action: "Backups"})
	}
	if len(f.Tokens) > 0 {
		since := f.LastCall
		for _, t := range f.Tokens {
			since = latest(since, t.LastUsed)
		}
		switch {
		case since.IsZero():
			var newest time.Time
			for _, t := range f.Tokens {
				newest = latest(newest, t.Created)
			}
			if f.Now.Sub(newest) > silentAfter {
				out = append(out, attention{Text: fmt.Sprintf("The directory has never called, and the newest Secret Token was made %s: "+
					"finish the provisioning setup in Entra with the Tenant URL and a Secret Token, and start provisioning.", agoText(f.Now.Sub(newest))),
					Href: "/connection", Action: "Connection"})
			}
		case f.Now.Sub(since) > silentAfter:
			out = append(out, attention{Text: fmt.Sprintf("The directory last called %s, but Entra calls about every 40 minutes: "+
				"check in Entra that provisioning is running and not quarantined, and that its Secret Token is still valid here.", agoText(f.Now.Sub(since))),
				Href: "/connection", Action: "Connection"})
		}
	}
	if f.Risk.Level != RiskOK && len(f.Risk.Reasons) > 0 {
		text := "Failed requests: " + f.Risk.Reasons[0]
		if f.Risk.Level != RiskWatch {
			text = fmt.Sprintf("Quarantine risk %s: %s", f.Risk.Level, f.Risk.Reasons[0])
		}
		out = append(out, attention{Text: text, Href: "/#health", Action: "What to do"})
	}
	switch n := len(f.DisabledWebhooks); {
	case n == 1:
		w := f.DisabledWebhooks[0]
		out = append(out, attention{Text: fmt.Sprintf("The webhook %s is disabled (%s); its events wait until it is enabled again.", w.URL, w.DisabledReason),
			Href: "/apps#webhook-" + w.ID, Action: "Webhooks"})
	case n > 1:
		out = append(out, attention{Text: fmt.Sprintf("%d webhooks are disabled after failing deliveries; their events wait until they are enabled again.", n),
			Href: "/apps#webhooks", Action: "Webhooks"})
	}
	if f.CertFailure != nil {
		out = append(out, attention{Text: "The HTTPS certificate could not be renewed: " + f.CertFailure.Error() +
			". The current one stays in use until it expires and scimbox keeps retrying; the server log says why."})
	}
	if f.Snapshot != nil {
		out = append(out, attention{Text: fmt.Sprintf("The automatic snapshot failed %s: %v", agoText(f.Now.Sub(f.Snapshot.At)), f.Snapshot.Err),
			Href: "/settings#backups", Action: "Backups"})
	}
	if f.DiskTotal > 0 && (f.DiskFree < uint64(2*f.DatabaseSize) || f.DiskFree < diskLowBytes && f.DiskFree*100 < f.DiskTotal*diskLowPercent) {
		out = append(out, attention{Text: fmt.Sprintf("The disk holding the database is nearly full: %s free of %s. "+
			"When it is full, every change from the directory fails.", sizeText(int64(f.DiskFree)), sizeText(int64(f.DiskTotal))),
			Href: "/settings#backups", Action: "Backups"})
	}
	for i := range out {
		out[i].Text = sentence(out[i].Text)
	}
	return out
}

// sentence makes s, which may be an error's text, read as a sentence: a
// capital first letter and a full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	r, size := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[size:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// latest returns the later of a and b.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// attentionLine gathers the facts for the health line and decides it. A fact
// that cannot be read is left out: the line must never fail a page.
func (a *admin) attentionLine(ctx context.Context) []attention {
	snap := a.store.Health().Snapshot()
	f := healthFacts{Now: a.store.now(), LastCall: snap.LastCall, Risk: snap.Risk,
		CertFailure: a.certificateRenewalFailure(), Snapshot: a.store.SnapshotFailure(), DatabaseLost: a.store.CheckFile()}
	if f.Now.Sub(snap.LastCall) > silentAfter {
		f.Tokens, _ = a.store.Tokens(ctx)
	}
	if a.store.hasWebhooks.Load() {
		hooks, _ := a.store.Webhooks(ctx)
		for _, w := range hooks {
			if w.DisabledReason != "" {
				f.DisabledWebhooks = append(f.DisabledWebhooks, w)
			}
		}
	}
	var st syscall.Statfs_t
	if syscall.Statfs(filepath.Dir(a.store.path), &st) == nil {
		f.DiskFree, f.DiskTotal = st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
		if fi, err := os.Stat(a.store.path); err == nil {
			f.DatabaseSize = fi.Size()
		}
	}
	return attentionItems(f)
}

// certificateRenewalFailure is the latest failure to obtain, renew or reload
// the certificate (certHealth in tls.go), nil once one succeeded again.
func (a *admin) certificateRenewalFailure() error {
	if st := a.certs.status(); !st.FailedAt.IsZero() {
		return errors.New(st.Failure)
	}
	return nil
}

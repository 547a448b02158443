// Alerts: the conditions scimbox watches, evaluated by one worker every
// minute, and the email and chat messages it sends when one fires, again at
// most once an interval while it keeps firing, and once when it clears.
// What each channel was told is kept in the database, so a restart neither
// repeats an alert nor forgets to say that it resolved.

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// alertEvery is how often the conditions are evaluated.
	alertEvery = time.Minute
	// Disk space below either bound fires the disk alert.
	diskFreeMinBytes   = 1 << 30
	diskFreeMinPercent = 5
)

// Keys of the conditions: stable, since they are stored in alert_state.
const (
	alertQuarantineRisk  = "quarantine-risk"
	alertNoDirectoryCall = "no-directory-call"
	alertFailureBurst    = "failure-burst"
	alertCertRenewal     = "certificate-renewal"
	alertWebhookDisabled = "webhook-disabled"
	alertSnapshotFailed  = "snapshot-failed"
	alertDiskFull        = "disk-nearly-full"
	alertMassChangeHeld  = "mass-change-held"
	alertReplicaLag      = "replica-lag"
)

// alertCondition is one thing scimbox watches. check reports whether it
// fires now and what to tell the admin (the detail may say something when
// it does not fire, too: the "resolved" message includes it). It returns
// errAlertUnknown while it cannot tell yet (nothing changes for the
// condition), and any other error when it failed (logged; nothing changes).
type alertCondition struct {
	key, title string
	action     string // what to do, included in every message
	check      func(ctx context.Context) (firing bool, detail string, err error)
}

// errAlertUnknown is what a check returns while it cannot tell yet.
var errAlertUnknown = errors.New("not known yet")

// quarantineRiskCondition is the alert of the Entra cycle tracker; check
// reports whether the current cycle's failures put the provisioning job at
// risk of quarantine. Register it with alerter.register.
func quarantineRiskCondition(check func(ctx context.Context) (bool, string, error)) alertCondition {
	return alertCondition{key: alertQuarantineRisk, title: "Provisioning job at risk of quarantine", check: check,
		action: "Entra quarantines the provisioning job when too many of a cycle's operations fail, and then provisions only once a day. " +
			"Fix the causes listed (the provisioning log shows each failed request), then watch the next cycle."}
}

// massChangeHeldCondition is the alert of the safety rails; check reports
// whether a mass change is held for the admin's decision. Register it with
// alerter.register.
func massChangeHeldCondition(check func(ctx context.Context) (bool, string, error)) alertCondition {
	return alertCondition{key: alertMassChangeHeld, title: "A mass change from the directory is held", check: check,
		action: "Review the held change on the admin page and apply or reject it; until then it is not applied."}
}

// replicaLagCondition is the alert of continuous replication; check reports
// whether the replica lags too far behind the database (or could not start).
// Register it with alerter.register.
func replicaLagCondition(check func(ctx context.Context) (bool, string, error)) alertCondition {
	return alertCondition{key: alertReplicaLag, title: "The replica is falling behind", check: check,
		action: "Writes since the replica's position would be lost with this machine. Check that the replica's storage is reachable " +
			"and its credentials valid (the log says what failed); the replication catches up by itself once it is."}
}

// alertConfig is where alerts go. Every field is text, as stored and as
// typed into the Settings page; "" means not set.
type alertConfig struct {
	SMTPHost, SMTPPort, SMTPTLS string
	SMTPUser, SMTPPassword      string
	From, To                    string // To: comma-separated addresses
	WebhookURL, WebhookFormat   string
}

// SMTP TLS modes and webhook formats.
const (
	smtpSTARTTLS  = "starttls"
	smtpTLS       = "tls"
	smtpPlain     = "none"
	webhookPlain  = "generic"
	webhookTeams  = "teams"
	redactedValue = "(set, not shown)"
)

// alertField is one field of alertConfig: its name (settings key
// alert_<name>, flag -alert-<name with dashes>, form field <name>).
type alertField struct {
	name   string
	value  *string
	secret bool // never shown back or logged
	help   string
}

func (c *alertConfig) fields() []alertField {
	return []alertField{
		{"smtp_host", &c.SMTPHost, false, "SMTP server for alert emails, e.g. smtp.office365.com"},
		{"smtp_port", &c.SMTPPort, false, "SMTP port (default 587 with starttls, 465 with tls, 25 with none)"},
		{"smtp_tls", &c.SMTPTLS, false, "SMTP encryption: starttls (default), tls (implicit, port 465) or none"},
		{"smtp_user", &c.SMTPUser, false, "SMTP user name, when the server requires authentication"},
		{"smtp_password", &c.SMTPPassword, true, "SMTP password; prefer the environment variable SCIMBOX_ALERT_SMTP_PASSWORD, as a command line is visible to other users"},
		{"from", &c.From, false, "sender address of alert emails"},
		{"to", &c.To, false, "comma-separated recipients of alert emails"},
		{"webhook_url", &c.WebhookURL, true, "incoming-webhook URL (Slack, Teams, Mattermost, …) that alerts are posted to as JSON; prefer SCIMBOX_ALERT_WEBHOOK_URL"},
		{"webhook_format", &c.WebhookFormat, false, "webhook payload: generic (text plus fields: Slack, Mattermost, Google Chat) or teams (adds an Adaptive Card for a Teams workflow)"},
	}
}

func alertSettingKeys() []any {
	var keys []any
	for _, f := range (&alertConfig{}).fields() {
		keys = append(keys, "alert_"+f.name)
	}
	return keys
}

func alertConfigFromSettings(stored map[string]string) alertConfig {
	var c alertConfig
	for _, f := range c.fields() {
		*f.value = stored["alert_"+f.name]
	}
	return c
}

func (c alertConfig) settings() map[string]string {
	m := map[string]string{}
	for _, f := range c.fields() {
		m["alert_"+f.name] = *f.value
	}
	return m
}

// overlay returns c with every field that o sets replaced by o's.
func (c alertConfig) overlay(o alertConfig) alertConfig {
	of := o.fields()
	for i, f := range c.fields() {
		if v := *of[i].value; v != "" {
			*f.value = v
		}
	}
	return c
}

// LogValue keeps the secrets out of any log line the configuration reaches.
func (c alertConfig) LogValue() slog.Value {
	var attrs []slog.Attr
	for _, f := range c.fields() {
		v := *f.value
		if f.secret && v != "" {
			v = redactedValue
		}
		attrs = append(attrs, slog.String(f.name, v))
	}
	return slog.GroupValue(attrs...)
}

func (c alertConfig) tlsMode() string {
	if c.SMTPTLS == "" {
		return smtpSTARTTLS
	}
	return c.SMTPTLS
}

func (c alertConfig) port() int {
	if p, err := strconv.Atoi(c.SMTPPort); err == nil {
		return p
	}
	switch c.tlsMode() {
	case smtpTLS:
		return 465
	case smtpPlain:
		return 25
	}
	return 587
}

func (c alertConfig) recipients() []string {
	var to []string
	for a := range strings.SplitSeq(c.To, ",") {
		if a = strings.TrimSpace(a); a != "" {
			to = append(to, a)
		}
	}
	return to
}

// checkFields checks each field that is set, on its own (for the flags,
// which override single fields).
func (c alertConfig) checkFields() []error { return append(c.emailErrors(false), c.webhookErrors()...) }

// check checks a whole configuration: its fields, and that email, when set
// up at all, has everything it needs.
func (c alertConfig) check() []error { return append(c.emailErrors(true), c.webhookErrors()...) }

// emailErrors checks the email fields; complete also requires what sending
// needs.
func (c alertConfig) emailErrors(complete bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.SMTPHost != "" && strings.ContainsAny(c.SMTPHost, "/: ") {
		add("SMTP host %q must be a host name alone, such as smtp.example.com (the port has its own field)", c.SMTPHost)
	}
	if c.SMTPPort != "" {
		if p, err := strconv.Atoi(c.SMTPPort); err != nil || p < 1 || p > 65535 {
			add("SMTP port %q is not a port number (587, 465 or 25)", c.SMTPPort)
		}
	}
	if !slices.Contains([]string{"", smtpSTARTTLS, smtpTLS, smtpPlain}, c.SMTPTLS) {
		add("SMTP encryption must be starttls, tls or none, not %q", c.SMTPTLS)
	}
	if c.From != "" {
		if a, err := mail.ParseAddress(c.From); err != nil || a.Address != c.From {
			add("the sender %q is not an email address such as scimbox@example.com", c.From)
		}
	}
	for _, to := range c.recipients() {
		if a, err := mail.ParseAddress(to); err != nil || a.Address != to {
			add("the recipient %q is not an email address such as it@example.com", to)
		}
	}
	if !complete {
		return errs
	}
	if c.SMTPHost != "" || c.From != "" || c.To != "" {
		if c.SMTPHost == "" {
			add("email alerts need the SMTP host")
		}
		if c.From == "" {
			add("email alerts need a sender address")
		}
		if len(c.recipients()) == 0 {
			add("email alerts need at least one recipient")
		}
	}
	if c.SMTPPassword != "" && c.SMTPUser == "" {
		add("an SMTP password needs the user name it belongs to")
	}
	if c.SMTPUser != "" && c.tlsMode() == smtpPlain {
		add("SMTP authentication without encryption would send the password in the clear: choose starttls or tls")
	}
	return errs
}

func (c alertConfig) webhookErrors() []error {
	var errs []error
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			// Not the URL itself: it is a secret.
			errs = append(errs, errors.New("the webhook URL is not an https:// address"))
		}
	}
	if !slices.Contains([]string{"", webhookPlain, webhookTeams}, c.WebhookFormat) {
		errs = append(errs, fmt.Errorf("the webhook format must be generic or teams, not %q", c.WebhookFormat))
	}
	return errs
}

// alertFlags are the alert options of `scimbox serve`. Each text option set
// overrides the Settings page's value.
type alertFlags struct {
	alertConfig
	Renotify      time.Duration // a firing alert is repeated this often
	NoCallAfter   time.Duration // no directory call for this long fires; 0 is off
	BurstFailures int           // this many failures within BurstWindow fire; 0 is off
	BurstWindow   time.Duration
}

// alertFlagsOn defines the alert options on fs, storing into f.
func alertFlagsOn(fs *flag.FlagSet, f *alertFlags) {
	for _, fd := range f.fields() {
		fs.StringVar(fd.value, "alert-"+strings.ReplaceAll(fd.name, "_", "-"), "", fd.help+" (overrides the Settings page)")
	}
	fs.DurationVar(&f.Renotify, "alert-renotify", time.Hour, "how often an alert that keeps firing is sent again")
	fs.DurationVar(&f.NoCallAfter, "alert-no-call-after", 80*time.Minute, "alert when the directory has made no authenticated SCIM request for this long (Entra's cycles are about 40 minutes apart); 0 turns it off")
	fs.IntVar(&f.BurstFailures, "alert-failures", 50, "alert when this many SCIM requests fail within -alert-failures-window; 0 turns it off")
	fs.DurationVar(&f.BurstWindow, "alert-failures-window", 15*time.Minute, "the window of -alert-failures")
}

// validate checks the alert options, in words an admin understands.
func (f alertFlags) validate() []error {
	var errs []error
	for _, err := range f.checkFields() {
		errs = append(errs, fmt.Errorf("alert options: %w", err))
	}
	if f.Renotify < time.Minute {
		errs = append(errs, fmt.Errorf("-alert-renotify must be at least 1m, not %s", f.Renotify))
	}
	if f.NoCallAfter != 0 && f.NoCallAfter < 10*time.Minute {
		errs = append(errs, fmt.Errorf("-alert-no-call-after must be 0 (off) or at least 10m, not %s: Entra calls about every 40 minutes", f.NoCallAfter))
	}
	if f.BurstFailures < 0 {
		errs = append(errs, fmt.Errorf("-alert-failures must be 0 (off) or more, not %d", f.BurstFailures))
	}
	if f.BurstFailures > 0 && f.BurstWindow < time.Minute {
		errs = append(errs, fmt.Errorf("-alert-failures-window must be at least 1m, not %s", f.BurstWindow))
	}
	return errs
}

// overridden lists the options given on the command line or in the
// environment, which the Settings page cannot change.
func (f alertFlags) overridden() []string {
	var out []string
	for _, fd := range f.fields() {
		if *fd.value != "" {
			flag := "alert-" + strings.ReplaceAll(fd.name, "_", "-")
			out = append(out, fmt.Sprintf("-%s (%s)", flag, envName(flag)))
		}
	}
	return out
}

// alertSources is what the built-in conditions read besides the store.
type alertSources struct {
	certs     *certHealth
	tls       bool // scimbox serves HTTPS itself (-domain or -tls-cert)
	snapshots bool // automatic snapshots are on
}

// alerter evaluates the conditions and tells the configured channels.
type alerter struct {
	store      *Store
	log        *slog.Logger
	flags      alertFlags
	conditions []alertCondition
	host       string // this machine's name, in every message

	// Set by tests only.
	now       func() time.Time
	tlsRoots  *x509.CertPool // the SMTP server's CA; nil is the system's
	diskSpace func(dir string) (free, total uint64, err error)

	mu         sync.Mutex
	status     map[string]conditionStatus // by condition key, from the last evaluation
	deliveries map[string]delivery        // by channel: the last message sent or tried
}

// conditionStatus is a condition's state at its last evaluation.
type conditionStatus struct {
	Firing, Known bool
	Detail, Err   string
	CheckedAt     time.Time
}

// delivery is the outcome of sending one message to one channel.
type delivery struct {
	Channel string
	At      time.Time
	Subject string
	Err     string // "" when delivered
}

// newAlerter returns an alerter with the built-in conditions registered.
func newAlerter(s *Store, log *slog.Logger, flags alertFlags, src alertSources) *alerter {
	host, _ := os.Hostname()
	a := &alerter{store: s, log: log, flags: flags, host: host, now: time.Now, diskSpace: diskSpace,
		status: map[string]conditionStatus{}, deliveries: map[string]delivery{}}
	if flags.Renotify <= 0 {
		a.flags.Renotify = time.Hour
	}
	a.register(alertCondition{key: alertNoDirectoryCall, title: "No call from the directory", check: a.noDirectoryCall,
		action: "Open the provisioning job in Entra (Enterprise applications → your app → Provisioning): is it running, paused or in quarantine? " +
			"Its provisioning logs say why it stopped. If it was stopped on purpose, this alert resolves once it runs again."})
	a.register(alertCondition{key: alertFailureBurst, title: "Many SCIM requests are failing", check: a.failureBurst,
		action: "Open the provisioning log (Failures) for the details of each request. Entra quarantines a provisioning job when more than 40 % " +
			"of a cycle's operations fail: fix the cause (for a userName already taken by a manual account, turn on claiming or rename it)."})
	a.register(alertCondition{key: alertCertRenewal, title: "The HTTPS certificate is not being renewed", check: func(context.Context) (bool, string, error) {
		st := src.certs.status()
		if src.tls && st.Leaf == nil && st.FailedAt.IsZero() {
			return false, "", errAlertUnknown // starting: the certificate is not loaded yet
		}
		return certAlert(st, a.now())
	}, action: "With -domain: check that DNS points at this machine and that ports 80 and 443 are reachable from the internet (the server log names the likely cause); " +
		"scimbox keeps retrying. With -tls-cert: replace the certificate files (they are reloaded by themselves). Entra refuses an expired certificate."})
	a.register(alertCondition{key: alertWebhookDisabled, title: "A webhook endpoint was disabled", check: a.webhookDisabled,
		action: "The endpoint failed too many deliveries in a row. Fix the receiving app, then press Enable again on the Apps page: its queue resumes where it stopped."})
	a.register(alertCondition{key: alertSnapshotFailed, title: "The automatic snapshot failed", check: func(context.Context) (bool, string, error) {
		return snapshotAlert(s, src.snapshots)
	}, action: "Check the free space and the permissions of the backups folder next to the database. Until a snapshot succeeds, " +
		"take a copy by hand (scimbox backup, or Download a backup on the Settings page)."})
	a.register(alertCondition{key: alertDiskFull, title: "The disk is nearly full", check: a.diskNearlyFull,
		action: "Free space on the disk that holds the database: old files in backups/, or a shorter provisioning-log retention (Settings). " +
			"When the disk is full every SCIM write fails, and Entra counts each as a failure."})
	return a
}

// register adds a condition; call it before the alerter runs.
func (a *alerter) register(c alertCondition) { a.conditions = append(a.conditions, c) }

// run evaluates the conditions at once and then every alertEvery until ctx ends.
func (a *alerter) run(ctx context.Context) {
	tick := time.NewTicker(alertEvery)
	defer tick.Stop()
	for {
		a.evaluate(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// config is the alert configuration in force: the Settings page's, with the
// flags' overrides.
func (a *alerter) config(ctx context.Context) (alertConfig, error) {
	stored, err := a.store.AlertSettings(ctx)
	if err != nil {
		return alertConfig{}, err
	}
	return stored.overlay(a.flags.alertConfig), nil
}

// evaluate checks every condition once and tells each channel what changed:
// a condition that begins firing, one that still fires once the renotify
// interval has passed since it was last sent, one that cleared. A message
// that could not be delivered is tried again at the next evaluation.
func (a *alerter) evaluate(ctx context.Context) {
	cfg, err := a.config(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("alerts: read configuration", "err", err)
		}
		return
	}
	channels := a.channels(cfg)
	states, err := a.store.AlertStates(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("alerts: read state", "err", err)
		}
		return
	}
	told := map[[2]string]AlertState{}
	for _, st := range states {
		told[[2]string{st.Condition, st.Channel}] = st
	}
	for _, c := range a.conditions {
		firing, detail, err := c.check(ctx)
		now := a.now()
		a.setStatus(c.key, firing, detail, err, now)
		if err != nil {
			if !errors.Is(err, errAlertUnknown) && ctx.Err() == nil {
				a.log.Error("alerts: check failed", "condition", c.key, "err", err)
			}
			continue
		}
		for _, ch := range channels {
			st, known := told[[2]string{c.key, ch.name()}]
			a.notify(ctx, ch, c, firing, detail, st, known, now)
		}
	}
}

// notify tells one channel about one condition, if it is due, and records it.
func (a *alerter) notify(ctx context.Context, ch alertChannel, c alertCondition, firing bool, detail string, st AlertState, known bool, now time.Time) {
	switch {
	case firing:
		if known && !st.LastSent.IsZero() && now.Sub(st.LastSent) < a.flags.Renotify {
			return
		}
		kind := alertFiring
		if !known {
			st = AlertState{Condition: c.key, Channel: ch.name(), Since: now}
		} else if !st.LastSent.IsZero() {
			kind = alertStillFiring
		}
		st.Detail = detail
		if a.deliver(ctx, ch, a.message(kind, c, st.Since, detail, now)) {
			st.LastSent = now
		}
		if err := a.store.PutAlertState(ctx, st); err != nil && ctx.Err() == nil {
			a.log.Error("alerts: save state", "err", err)
		}
	case known:
		// A channel never told that it fired is not told that it resolved.
		if !st.LastSent.IsZero() && !a.deliver(ctx, ch, a.message(alertResolved, c, st.Since, detail, now)) {
			return
		}
		if err := a.store.DeleteAlertState(ctx, c.key, ch.name()); err != nil && ctx.Err() == nil {
			a.log.Error("alerts: save state", "err", err)
		}
	}
}

// deliver sends m and records the outcome; it reports whether m was delivered.
func (a *alerter) deliver(ctx context.Context, ch alertChannel, m alertMessage) bool {
	err := ch.send(ctx, m)
	d := delivery{Channel: ch.name(), At: a.now(), Subject: m.subject()}
	if err != nil {
		d.Err = err.Error()
		if ctx.Err() == nil {
			a.log.Warn("alert not delivered; trying again in a minute", "channel", ch.name(), "condition", m.Key, "state", m.Kind, "err", err)
		}
	} else {
		a.log.Info("alert sent", "channel", ch.name(), "condition", m.Key, "state", m.Kind)
	}
	a.mu.Lock()
	a.deliveries[ch.name()] = d
	a.mu.Unlock()
	return err == nil
}

// errNoAlertChannel says that no alert channel is set up.
var errNoAlertChannel = errors.New("no alert channel is set up yet: save an email server or a webhook URL first")

// sendTest sends a test message to every channel configured; it returns
// the outcomes, or an error when no channel is.
func (a *alerter) sendTest(ctx context.Context) ([]delivery, error) {
	cfg, err := a.config(ctx)
	if err != nil {
		return nil, err
	}
	channels := a.channels(cfg)
	if len(channels) == 0 {
		return nil, errNoAlertChannel
	}
	c := alertCondition{key: "test", title: "Test alert", action: "Nothing: this message shows that alerts reach you."}
	var out []delivery
	for _, ch := range channels {
		a.deliver(ctx, ch, a.message(alertTest, c, a.now(), "Sent from the Settings page.", a.now()))
		a.mu.Lock()
		out = append(out, a.deliveries[ch.name()])
		a.mu.Unlock()
	}
	return out, nil
}

func (a *alerter) setStatus(key string, firing bool, detail string, err error, now time.Time) {
	st := conditionStatus{Firing: firing, Known: err == nil, Detail: detail, CheckedAt: now}
	if err != nil && !errors.Is(err, errAlertUnknown) {
		st.Err = err.Error()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status[key] = st
}

// snapshot returns the conditions' last states and the last deliveries.
func (a *alerter) snapshot() (map[string]conditionStatus, map[string]delivery) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st, ds := map[string]conditionStatus{}, map[string]delivery{}
	for k, v := range a.status {
		st[k] = v
	}
	for k, v := range a.deliveries {
		ds[k] = v
	}
	return st, ds
}

// ---- the built-in conditions ----

// noDirectoryCall fires when no SCIM token has been used for longer than
// -alert-no-call-after. A token's use is recorded at most once a minute,
// which is precise enough for cycles 40 minutes apart. Before any token was
// ever used there is nothing to miss.
func (a *alerter) noDirectoryCall(ctx context.Context) (bool, string, error) {
	if a.flags.NoCallAfter <= 0 {
		return false, "", nil
	}
	tokens, err := a.store.Tokens(ctx)
	if err != nil {
		return false, "", err
	}
	var last Token
	for _, t := range tokens {
		if t.LastUsed.After(last.LastUsed) {
			last = t
		}
	}
	if last.LastUsed.IsZero() {
		return false, "", nil
	}
	idle := a.now().Sub(last.LastUsed)
	detail := fmt.Sprintf("The last authenticated SCIM request came %s ago (%s, token %q).",
		roundDuration(idle), last.LastUsed.UTC().Format(time.RFC3339), last.Name)
	if idle <= a.flags.NoCallAfter {
		return false, detail, nil
	}
	return true, detail + fmt.Sprintf(" Entra calls at every cycle, about every 40 minutes; this alert fires after %s.", roundDuration(a.flags.NoCallAfter)), nil
}

// failureBurst fires when at least -alert-failures requests failed within
// the last -alert-failures-window.
func (a *alerter) failureBurst(ctx context.Context) (bool, string, error) {
	if a.flags.BurstFailures <= 0 {
		return false, "", nil
	}
	sum, err := a.store.FailuresSince(ctx, a.now().Add(-a.flags.BurstWindow))
	if err != nil {
		return false, "", err
	}
	detail := fmt.Sprintf("%d SCIM requests failed in the last %s (the alert fires at %d).", sum.Total, roundDuration(a.flags.BurstWindow), a.flags.BurstFailures)
	for _, k := range sum.Top {
		detail += fmt.Sprintf("\n- %d × %s, HTTP %d: %s", k.Count, k.Op, k.Status, k.Detail)
	}
	return sum.Total >= a.flags.BurstFailures, detail, nil
}

// certAlert fires when the last attempt to obtain, renew or reload the
// certificate failed, or when the certificate in use is close to expiring
// (less than a sixth of its lifetime left, at most 14 days: far past the
// point where it should have been renewed).
func certAlert(h certHealthStatus, now time.Time) (bool, string, error) {
	var parts []string
	if !h.FailedAt.IsZero() {
		parts = append(parts, fmt.Sprintf("The last attempt to get a certificate failed at %s: %s.", h.FailedAt.UTC().Format(time.RFC3339), h.Failure))
	}
	firing := len(parts) > 0
	if h.Leaf != nil {
		left := h.Leaf.NotAfter.Sub(now)
		firing = firing || left < min(h.Leaf.NotAfter.Sub(h.Leaf.NotBefore)/6, 14*24*time.Hour)
		if left <= 0 {
			parts = append(parts, fmt.Sprintf("The certificate in use EXPIRED on %s.", h.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		} else {
			parts = append(parts, fmt.Sprintf("The certificate in use expires in %s (%s).", roundDuration(left), h.Leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	return firing, strings.Join(parts, " "), nil
}

// webhookDisabled fires while an event webhook endpoint is disabled.
func (a *alerter) webhookDisabled(ctx context.Context) (bool, string, error) {
	hooks, err := a.store.Webhooks(ctx)
	if err != nil {
		return false, "", err
	}
	var lines []string
	for _, w := range hooks {
		if w.DisabledReason != "" {
			lines = append(lines, fmt.Sprintf("%s (%s): %s", w.ID, redactURL(w.URL), w.DisabledReason))
		}
	}
	return len(lines) > 0, strings.Join(lines, "\n"), nil
}

// snapshotAlert fires when the last automatic snapshot failed. Until the
// first one since the start has ended it cannot tell.
func snapshotAlert(s *Store, on bool) (bool, string, error) {
	if !on {
		return false, "", nil
	}
	r, ok := s.LastSnapshot()
	if !ok {
		return false, "", errAlertUnknown
	}
	if r.Err != "" {
		return true, fmt.Sprintf("The snapshot at %s failed: %s", r.At.UTC().Format(time.RFC3339), r.Err), nil
	}
	return false, fmt.Sprintf("The snapshot at %s succeeded.", r.At.UTC().Format(time.RFC3339)), nil
}

// diskNearlyFull fires when the disk holding the database has less than
// 1 GiB or less than 5 % free.
func (a *alerter) diskNearlyFull(context.Context) (bool, string, error) {
	dir := filepath.Dir(a.store.path)
	free, total, err := a.diskSpace(dir)
	if err != nil {
		return false, "", err
	}
	detail := fmt.Sprintf("%s free of %s on the disk holding %s.", formatBytes(free), formatBytes(total), dir)
	return free < diskFreeMinBytes || free*100 < total*diskFreeMinPercent, detail, nil
}

// diskSpace returns the space available to scimbox and the size of the
// file system holding dir.
func diskSpace(dir string) (free, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n/1024)
}

// roundDuration rounds d for people: minutes, or hours and minutes.
func roundDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Hour {
		return fmt.Sprintf("%d min", int(d.Minutes()))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

// alertHTTPTimeout bounds one webhook post.
const alertHTTPTimeout = 15 * time.Second

// newAlertHTTPClient returns the client alert webhooks are posted with:
// bounded, and not following redirects (a redirect is a failed delivery).
func newAlertHTTPClient() *http.Client {
	return &http.Client{Timeout: alertHTTPTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// Alert messages and the channels that carry them: email over SMTP and a
// JSON webhook for Slack, Teams and other chat tools.

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Kinds of alert message.
const (
	alertFiring      = "firing"
	alertStillFiring = "still firing"
	alertResolved    = "resolved"
	alertTest        = "test"
)

// alertMessage is one message about one condition.
type alertMessage struct {
	Kind       string
	Key, Title string
	Action     string
	Detail     string
	Since, At  time.Time
	Host       string
}

func (a *alerter) message(kind string, c alertCondition, since time.Time, detail string, now time.Time) alertMessage {
	return alertMessage{Kind: kind, Key: c.key, Title: c.title, Action: c.action, Detail: detail, Since: since, At: now, Host: a.host}
}

func (m alertMessage) subject() string {
	label := map[string]string{alertFiring: "ALERT", alertStillFiring: "Still firing", alertResolved: "Resolved", alertTest: "Test"}[m.Kind]
	return fmt.Sprintf("[scimbox %s] %s: %s", m.Host, label, m.Title)
}

// text is the message as plain text: the email body, and the webhook's text.
func (m alertMessage) text() string {
	var b strings.Builder
	fmt.Fprintln(&b, m.subject())
	switch m.Kind {
	case alertFiring:
		fmt.Fprintf(&b, "Firing since %s.\n", m.Since.UTC().Format(time.RFC3339))
	case alertStillFiring:
		fmt.Fprintf(&b, "Firing since %s (%s).\n", m.Since.UTC().Format(time.RFC3339), roundDuration(m.At.Sub(m.Since)))
	case alertResolved:
		fmt.Fprintf(&b, "Resolved at %s, after %s.\n", m.At.UTC().Format(time.RFC3339), roundDuration(m.At.Sub(m.Since)))
	}
	if m.Detail != "" {
		fmt.Fprintf(&b, "\n%s\n", m.Detail)
	}
	if m.Kind != alertResolved && m.Action != "" {
		fmt.Fprintf(&b, "\nWhat to do: %s\n", m.Action)
	}
	return b.String()
}

// alertChannel carries alert messages somewhere.
type alertChannel interface {
	name() string // stored in alert_state: stable
	send(ctx context.Context, m alertMessage) error
}

// channels returns the channels cfg sets up completely.
func (a *alerter) channels(cfg alertConfig) []alertChannel {
	// A channel set up incompletely or wrongly is left out; the Settings
	// page says what is missing.
	var out []alertChannel
	if cfg.SMTPHost != "" && len(cfg.emailErrors(true)) == 0 {
		out = append(out, emailChannel{cfg: cfg, tls: &tls.Config{ServerName: cfg.SMTPHost, RootCAs: a.tlsRoots, MinVersion: tls.VersionTLS12}})
	}
	if cfg.WebhookURL != "" && len(cfg.webhookErrors()) == 0 {
		out = append(out, webhookChannel{url: cfg.WebhookURL, format: cfg.WebhookFormat, client: newAlertHTTPClient()})
	}
	return out
}

// emailChannel sends alerts by SMTP.
type emailChannel struct {
	cfg alertConfig
	tls *tls.Config
}

func (emailChannel) name() string { return "email" }

// alertSMTPTimeout bounds connecting and each step of the SMTP conversation.
const alertSMTPTimeout = 30 * time.Second

func (e emailChannel) send(ctx context.Context, m alertMessage) error {
	msg := gomail.NewMsg()
	if err := msg.From(e.cfg.From); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := msg.To(e.cfg.recipients()...); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	msg.Subject(m.subject())
	msg.SetBodyString(gomail.TypeTextPlain, m.text())
	opts := []gomail.Option{gomail.WithPort(e.cfg.port()), gomail.WithTimeout(alertSMTPTimeout), gomail.WithTLSConfig(e.tls)}
	switch e.cfg.tlsMode() {
	case smtpTLS:
		opts = append(opts, gomail.WithSSL())
	case smtpPlain:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if e.cfg.SMTPUser != "" {
		// The strongest mechanism the server offers; PLAIN and LOGIN only
		// over an encrypted connection.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(e.cfg.SMTPUser), gomail.WithPassword(e.cfg.SMTPPassword))
	}
	client, err := gomail.NewClient(e.cfg.SMTPHost, opts...)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("email via %s:%d: %w", e.cfg.SMTPHost, e.cfg.port(), err)
	}
	return nil
}

// webhookChannel posts alerts as JSON to an incoming webhook.
type webhookChannel struct {
	url, format string
	client      *http.Client
}

func (webhookChannel) name() string { return "webhook" }

func (w webhookChannel) send(ctx context.Context, m alertMessage) error {
	body, err := json.Marshal(m.payload(w.format))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("webhook: the URL cannot be used") // not the URL itself: it is a secret
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", redactURLError(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s answered HTTP %d", redactURL(w.url), resp.StatusCode)
	}
	return nil
}

// redactURLError keeps the URL, which holds the webhook's secret, out of an
// HTTP client error.
func redactURLError(err error) error {
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

// alertPayload is the JSON posted to the webhook. Slack, Mattermost, Google
// Chat and Teams' older connectors show text; the alert object is for
// tools that read fields. The teams format adds an Adaptive Card in
// attachments, the only thing a Teams workflow ("When a Teams webhook
// request is received") posts.
type alertPayload struct {
	Text        string             `json:"text"`
	Alert       alertPayloadFields `json:"alert"`
	Type        string             `json:"type,omitempty"`
	Attachments []teamsAttachment  `json:"attachments,omitempty"`
}

type alertPayloadFields struct {
	Condition string `json:"condition"` // the condition's key, e.g. webhook-disabled
	Title     string `json:"title"`
	State     string `json:"state"`  // firing, resolved or test
	Repeat    bool   `json:"repeat"` // a reminder of an alert still firing
	Since     string `json:"since"`
	At        string `json:"at"`
	Detail    string `json:"detail"`
	Action    string `json:"action"`
	Host      string `json:"host"`
}

type teamsAttachment struct {
	ContentType string         `json:"contentType"`
	Content     map[string]any `json:"content"`
}

func (m alertMessage) payload(format string) alertPayload {
	state := m.Kind
	if state == alertStillFiring {
		state = alertFiring
	}
	p := alertPayload{Text: m.text(), Alert: alertPayloadFields{Condition: m.Key, Title: m.Title, State: state, Repeat: m.Kind == alertStillFiring,
		Since: m.Since.UTC().Format(time.RFC3339), At: m.At.UTC().Format(time.RFC3339), Detail: m.Detail, Action: m.Action, Host: m.Host}}
	if format == webhookTeams {
		color := map[string]string{alertFiring: "Attention", alertResolved: "Good", alertTest: "Accent"}[state]
		body := []any{
			map[string]any{"type": "TextBlock", "text": m.subject(), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
			map[string]any{"type": "FactSet", "facts": []any{
				map[string]any{"title": "State", "value": m.Kind},
				map[string]any{"title": "Since", "value": p.Alert.Since},
				map[string]any{"title": "Host", "value": m.Host},
			}},
		}
		if m.Detail != "" {
			body = append(body, map[string]any{"type": "TextBlock", "text": m.Detail, "wrap": true})
		}
		if m.Kind != alertResolved && m.Action != "" {
			body = append(body, map[string]any{"type": "TextBlock", "text": "What to do: " + m.Action, "wrap": true, "isSubtle": true})
		}
		p.Type = "message"
		p.Attachments = []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body}}}
	}
	return p
}

// scimbox serve: the configuration (flags with SCIMBOX_* fallbacks, validated
// at once), the HTTP servers of each mode, the run from start to shutdown, and
// the welcome text with the addresses to use.

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
)

// defaultAddr is where a plain ./scimbox serves: loopback only, for a local trial.
const defaultAddr = "127.0.0.1:8080"

// serveConfig is the configuration of `scimbox serve`.
type serveConfig struct {
	DB        string
	Addr      string
	LogFormat string
	LogLevel  string
	Version   bool

	// ownsProcess: serve runs as the scimbox process itself (not inside a
	// test), so it may take sockets passed by systemd or by the process it
	// replaces, and upgrade itself on SIGHUP. Only main sets it.
	ownsProcess bool

	// Domain switches on automatic HTTPS: certificates from ACME for this name.
	Domain     string
	HTTPSAddr  string
	HTTPAddr   string // "" turns the :80 listener off (ACME then uses TLS-ALPN-01 only)
	ACMECA     string // "" is Let's Encrypt, with ZeroSSL as fallback when ACMEEmail is set
	ACMEEmail  string
	ACMECARoot string // PEM file of a private ACME CA's root, for a CA such as step-ca

	// TLSCert and TLSKey serve an admin-supplied certificate instead of ACME.
	TLSCert string
	TLSKey  string

	// BehindProxy serves plain HTTP on Addr for a reverse proxy that terminates HTTPS.
	BehindProxy    bool
	TrustedProxies string // comma-separated addresses or CIDR ranges

	// Automatic snapshots into backups/ next to the database; 0 turns them off.
	BackupInterval time.Duration
	BackupKeep     int

	// Replicas is where Litestream replicates the database continuously (one URL).
	Replicas replicaURLs

	// AllowFreshDB starts with a new, empty database although backups or
	// certificates beside the path show that one existed there.
	AllowFreshDB bool

	Alerts alertFlags
	SSO    ssoFlags // admin sign-in with OpenID Connect (oidc.go)
	// MetricsAddr serves GET /metrics (Prometheus) on a listener of its own; "" turns it off.
	MetricsAddr string
	// LDAP is the read-only LDAP interface (ldap.go); off unless an address is given.
	LDAP ldapConfig

	hooks serveHooks
}

// serveHooks are set by tests only; their zero value is what users get.
type serveHooks struct {
	// ready, if set, is called with the bound addresses once every listener
	// is open and before any certificate is requested, so tests can listen
	// on port 0 and point a test CA at the ports they got.
	ready func(boundAddrs)
	// renewCheck overrides how often certmagic checks whether to renew.
	renewCheck time.Duration
	// noTLSALPN turns the TLS-ALPN-01 challenge off, to prove HTTP-01 alone.
	noTLSALPN bool
	// shutdownGrace, if set, replaces shutdownGrace: how long requests in
	// flight may take to finish once shutdown begins.
	shutdownGrace time.Duration
	// webhookTimeout, if set, replaces webhookTimeout for one delivery attempt.
	webhookTimeout time.Duration
	// noARI turns ACME Renewal Information off. Pebble v2.10.1 cannot find
	// the certificate an ARI renewal replaces when its serial number's DER
	// form has a leading zero byte (it keys certificates by big.Int.Bytes),
	// so with ARI half of the renewals against it fail.
	noARI bool
}

// boundAddrs are the addresses serve listens on; empty when unused.
type boundAddrs struct {
	Plain   string // plain HTTP: local trial mode or -behind-proxy
	HTTPS   string
	HTTP    string // the ACME HTTP-01 challenge and the redirect to HTTPS
	Metrics string // GET /metrics, with -metrics-addr
	LDAP    string // -ldap-addr
	LDAPS   string // -ldaps-addr
}

// serve modes, chosen by mode().
const (
	modeLocal = "local trial"
	modeProxy = "behind a reverse proxy"
	modeACME  = "automatic HTTPS"
	modeCert  = "HTTPS with your certificate"
)

// mode says how scimbox is reached, from the flags given.
func (c serveConfig) mode() string {
	switch {
	case c.Domain != "":
		return modeACME
	case c.TLSCert != "" || c.TLSKey != "":
		return modeCert
	case c.BehindProxy:
		return modeProxy
	}
	return modeLocal
}

// https reports whether browsers reach scimbox over HTTPS, directly or
// through the reverse proxy, so cookies can be Secure and __Host- prefixed.
// Per request, r.TLS != nil says the same (the proxy middleware sets it).
func (c serveConfig) https() bool { return c.mode() != modeLocal }

// certDir is where certmagic keeps certificates and the ACME account:
// next to the database, so one folder holds all of scimbox's state.
func (c serveConfig) certDir() string {
	db, err := filepath.Abs(c.DB)
	if err != nil {
		db = c.DB
	}
	return filepath.Join(filepath.Dir(db), "certs")
}

// newFlagSet returns a flag set whose flags fall back to SCIMBOX_* environment variables.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// envDefault applies SCIMBOX_<NAME> environment variables to flags not given on the command line.
func envDefault(fs *flag.FlagSet) error { return envDefaultFrom(fs, os.LookupEnv) }

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "SCIMBOX_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// envDefaultFrom is envDefault with the variables read through lookup.
func envDefaultFrom(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		if v, ok := lookup(env); ok && !given[f.Name] && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// dbFlag defines -db for the commands other than serve.
func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", "scimbox.db", "path of the SQLite database file (created if missing)")
}

// serveFlags defines the flags of `scimbox serve` on fs, storing into cfg.
func serveFlags(fs *flag.FlagSet, cfg *serveConfig) {
	fs.StringVar(&cfg.DB, "db", "scimbox.db", "path of the SQLite database file (created if missing); certificates go in a certs folder next to it")
	fs.StringVar(&cfg.Addr, "addr", defaultAddr, "address to serve plain HTTP on (local trial mode and -behind-proxy)")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&cfg.Version, "version", false, "print the version and exit")
	fs.StringVar(&cfg.Domain, "domain", "", "public DNS name, e.g. scim.example.com: serve HTTPS with a certificate obtained and renewed automatically (ACME)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", ":443", "address to serve HTTPS on (with -domain or -tls-cert)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", ":80", `address for the ACME HTTP-01 challenge and the redirect to HTTPS; "" turns it off`)
	fs.StringVar(&cfg.ACMECA, "acme-ca", "", "ACME directory URL of the certificate authority (default Let's Encrypt)")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", "", "email for the ACME account: the CA's notices; also enables ZeroSSL as a fallback CA")
	fs.StringVar(&cfg.ACMECARoot, "acme-ca-root", "", "PEM file with the root certificate of a private ACME CA given with -acme-ca")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM certificate chain file to serve HTTPS with your own certificate (reloaded when it changes)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM private key file for -tls-cert")
	fs.BoolVar(&cfg.BehindProxy, "behind-proxy", false, "serve plain HTTP on -addr for a reverse proxy that terminates HTTPS")
	fs.DurationVar(&cfg.BackupInterval, "backup-interval", 24*time.Hour, "how often to snapshot the database into a backups folder next to it; 0 turns snapshots off")
	fs.IntVar(&cfg.BackupKeep, "backup-keep", 7, "how many snapshots to keep")
	fs.BoolVar(&cfg.AllowFreshDB, "allow-fresh-db", false, "start with a new, empty database although a backups or certs folder beside -db shows that one existed (it was deleted or moved: restore it instead)")
	fs.Var(&cfg.Replicas, "replica", "replicate the database continuously with Litestream to file:///path, s3://bucket/prefix (?endpoint=URL&region=R&force-path-style=true; "+
		"credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or sftp://user@host/path; restore with scimbox restore -from-replica")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", `address to serve Prometheus metrics on (GET /metrics, no credential), e.g. 127.0.0.1:9090: bind it to loopback or a private interface; "" turns it off`)
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", "127.0.0.1,::1", "with -behind-proxy: comma-separated addresses or CIDR ranges whose X-Forwarded-Proto/For are believed")
	alertFlagsOn(fs, &cfg.Alerts)
	ldapFlagsOn(fs, &cfg.LDAP)
	ssoFlagsOn(fs, &cfg.SSO)
}

// parseServeConfig parses and validates the serve flags with the SCIMBOX_* environment.
func parseServeConfig(args []string, stderr io.Writer) (serveConfig, error) {
	return parseServeConfigEnv(args, stderr, os.LookupEnv)
}

// parseServeConfigEnv parses and validates the serve flags, with SCIMBOX_*
// variables looked up by lookup.
func parseServeConfigEnv(args []string, stderr io.Writer, lookup func(string) (string, bool)) (serveConfig, error) {
	fs := newFlagSet("serve", stderr)
	var cfg serveConfig
	serveFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := envDefaultFrom(fs, lookup); err != nil {
		return cfg, err
	}
	if cfg.Version {
		return cfg, nil
	}
	return cfg, cfg.validate()
}

// validate checks the whole configuration at once, in words an admin understands.
func (c serveConfig) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DB == "" {
		add("-db must name a database file")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add("-log-format must be text or json, not %q", c.LogFormat)
	}
	if c.BackupInterval < 0 || c.BackupInterval > 0 && c.BackupInterval < time.Minute {
		add("-backup-interval must be 0 (off) or at least 1m, not %s", c.BackupInterval)
	}
	if c.BackupInterval > 0 && c.BackupKeep < 1 {
		add("-backup-keep must be at least 1 while snapshots are on")
	}
	errs = append(errs, c.Alerts.validate()...)
	errs = append(errs, c.SSO.validate()...)
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		add("-log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	checkAddr := func(flag, addr, example string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			add("-%s %q is not HOST:PORT or :PORT (for example %s)", flag, addr, example)
		}
	}

	// Which way scimbox is reached: the options that pick it must not conflict.
	if c.Domain != "" && (c.TLSCert != "" || c.TLSKey != "") {
		add("-domain gets a certificate automatically and -tls-cert/-tls-key serve your own: use one or the other")
	}
	if c.BehindProxy && (c.Domain != "" || c.TLSCert != "" || c.TLSKey != "") {
		add("-behind-proxy means your reverse proxy handles HTTPS, so scimbox does not need -domain or -tls-cert/-tls-key: drop one side")
	}
	if c.TLSCert != "" && c.TLSKey == "" {
		add("-tls-cert needs -tls-key too: the file with the certificate's private key")
	}
	if c.TLSKey != "" && c.TLSCert == "" {
		add("-tls-key needs -tls-cert too: the file with the certificate (and its chain)")
	}
	if c.Domain == "" && (c.ACMECA != "" || c.ACMEEmail != "" || c.ACMECARoot != "") {
		add("-acme-ca, -acme-email and -acme-ca-root only apply with -domain, which turns automatic certificates on")
	}

	switch c.mode() {
	case modeLocal, modeProxy:
		checkAddr("addr", c.Addr, defaultAddr)
		if c.BehindProxy {
			if _, err := parseTrustedProxies(c.TrustedProxies); err != nil {
				errs = append(errs, err)
			}
		}
	case modeACME, modeCert:
		if c.Addr != defaultAddr {
			add("-addr is the plain-HTTP address of the local trial mode and -behind-proxy; with HTTPS use -https-addr (and -http-addr)")
		}
		checkAddr("https-addr", c.HTTPSAddr, ":443")
		if c.HTTPAddr != "" {
			checkAddr("http-addr", c.HTTPAddr, ":80")
			if _, p, _ := net.SplitHostPort(c.HTTPAddr); c.HTTPAddr == c.HTTPSAddr && p != "0" {
				add("-http-addr and -https-addr are both %q: they need different ports (normally :80 and :443)", c.HTTPAddr)
			}
		}
	}

	if err := c.checkMetricsAddr(); err != nil {
		errs = append(errs, err)
	}
	for _, a := range []struct{ flag, addr string }{{"ldap-addr", c.LDAP.Addr}, {"ldaps-addr", c.LDAP.TLSAddr}} {
		if a.addr != "" {
			checkAddr(a.flag, a.addr, "127.0.0.1:389")
		}
	}
	if err := c.LDAP.validate(c.mode() == modeACME || c.mode() == modeCert); err != nil {
		errs = append(errs, err)
	}
	if c.Domain != "" {
		if err := checkDomain(c.Domain, c.ACMECA == ""); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ACMECA != "" {
		if u, err := url.Parse(c.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
			add("-acme-ca %q is not the https:// URL of an ACME directory (for example %s)", c.ACMECA, certmagic.LetsEncryptStagingCA)
		}
	}
	if c.ACMEEmail != "" {
		if a, err := mail.ParseAddress(c.ACMEEmail); err != nil || a.Address != c.ACMEEmail {
			add("-acme-email %q is not an email address such as admin@example.com", c.ACMEEmail)
		}
	}
	if c.ACMECARoot != "" {
		if _, err := loadCARoots(c.ACMECARoot); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TLSCert != "" && c.TLSKey != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			add("cannot use -tls-cert %s with -tls-key %s: %v", c.TLSCert, c.TLSKey, err)
		}
	}
	return errors.Join(errs...)
}

// checkDomain checks a -domain value; public says the CA is a public one
// such as Let's Encrypt, which issues only for public DNS names.
func checkDomain(domain string, public bool) error {
	if strings.Contains(domain, "://") || strings.ContainsAny(domain, "/:") {
		return fmt.Errorf("-domain %q must be a host name alone, such as scim.example.com: no https://, port or path", domain)
	}
	if net.ParseIP(domain) != nil {
		return fmt.Errorf("-domain %q is an IP address: give the DNS name whose A record points at this machine", domain)
	}
	if !certmagic.SubjectQualifiesForCert(domain) || strings.Contains(domain, "*") {
		return fmt.Errorf("-domain %q is not a valid DNS name such as scim.example.com", domain)
	}
	if public && !certmagic.SubjectQualifiesForPublicCert(domain) {
		return fmt.Errorf("-domain %q is not a public DNS name, and Let's Encrypt only certifies public names: use a name in a domain you own, such as scim.example.com, or -acme-ca for a private CA", domain)
	}
	return nil
}

// parseTrustedProxies parses a comma-separated list of addresses and CIDR ranges.
func parseTrustedProxies(list string) ([]netip.Prefix, error) {
	var nets []netip.Prefix
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			nets = append(nets, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("-trusted-proxies: %q is neither an IP address (10.0.0.5) nor a CIDR range (10.0.0.0/24)", s)
		}
		nets = append(nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	if len(nets) == 0 {
		return nil, errors.New("-trusted-proxies is empty: list the address of your reverse proxy, such as 127.0.0.1")
	}
	return nets, nil
}

// newLogger builds the one logger of the process, text or JSON, at level.
func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serverWriteTimeout bounds writing a response, except for downloads (see streamingResponse).
const serverWriteTimeout = 60 * time.Second

// newHTTPServer returns a server with every timeout set, so slow or idle
// clients cannot hold connections open and exhaust it.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      serverWriteTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          serverErrorLog(log),
	}
}

// streamingResponse frees a download that may outlast the server's
// WriteTimeout (an export, a backup) from it: each write has
// serverWriteTimeout instead of the whole response, so a download lasts as
// long as it keeps moving and a stalled client is still cut off. (The
// ReadTimeout does not apply once the request is read.)
func streamingResponse(w http.ResponseWriter) http.ResponseWriter {
	sw := &streamingWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	sw.extend()
	return sw
}

// streamingWriter moves the write deadline forward before each write.
type streamingWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

// extend sets the write deadline; it cannot fail on a server's connection
// (only a ResponseWriter that is no connection, as in unit tests, has none).
func (sw *streamingWriter) extend() { sw.rc.SetWriteDeadline(time.Now().Add(serverWriteTimeout)) }

// Write moves the write deadline forward and writes p.
func (sw *streamingWriter) Write(p []byte) (int, error) {
	sw.extend()
	return sw.ResponseWriter.Write(p)
}

// Unwrap gives http.ResponseController the writer underneath.
func (sw *streamingWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// serve runs scimbox until ctx ends or a new process takes over (SIGHUP),
// in this order: take the sockets handed over (systemd, or the process this
// one replaces); open the store and build the server and its workers; bind
// the listeners still missing (a port in use is reported before anything
// starts); start the workers; serve, and tell the process being replaced to
// stop; then stop HTTP gracefully, stop and join every worker, and close
// the store last, so that nothing runs after it closes. Certificates come
// in the background.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	handover, err := newHandover(cfg, log)
	if err != nil {
		return err
	}
	defer handover.stop()
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return explainUpgradeOpen(handover, err)
	}
	defer a.close() // on the early returns; the end of serve closes it and reports the error

	// LDAP's and the metrics' sockets first: listenAll refuses the systemd
	// sockets still unclaimed.
	ldapLn, ldapsLn, err := listenLDAP(cfg.LDAP, handover)
	if err != nil {
		return err
	}
	for _, ln := range []net.Listener{ldapLn, ldapsLn} {
		if ln != nil {
			defer ln.Close()
		}
	}
	metricsLn, err := listenMetrics(cfg, handover, log)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close()
	}
	lns, err := listenAll(cfg, handover)
	if err != nil {
		return err
	}
	defer lns.close()
	addrs := lns.addrs()
	if metricsLn != nil {
		addrs.Metrics = metricsLn.Addr().String()
	}
	for _, l := range []struct {
		ln   net.Listener
		addr *string
	}{{ldapLn, &addrs.LDAP}, {ldapsLn, &addrs.LDAPS}} {
		if l.ln != nil {
			*l.addr = l.ln.Addr().String()
		}
	}
	if cfg.hooks.ready != nil {
		cfg.hooks.ready(addrs)
	}
	servers, acme, host, err := httpServers(cfg, lns, a.handler, a.certs, a.server.tls, log)
	if err != nil {
		return err
	}
	if acme != nil {
		defer acme.stop()
	}
	servers = a.metrics.attach(servers, metricsLn, log)
	printWelcome(stdout, cfg, host, addrs)
	if err := a.server.announceSetup(ctx, publicBaseURL(cfg, host, addrs), stdout); err != nil {
		return a.store.explainDamage(err)
	}

	a.startWorkers()
	log.Info("serving", "mode", cfg.mode(), "addrs", addrs.String(), "db", cfg.DB, "version", version(), "pid", os.Getpid())
	// LDAP clones the HTTPS server's TLS config: before ServeTLS, which
	// writes to it (NextProtos), runs.
	ldapServer := startLDAP(a.store, cfg.LDAP, ldapLn, ldapsLn, servers, log)
	errc := make(chan error, len(servers))
	for _, s := range servers {
		a.configure(s.srv)
		go func() {
			if s.tls {
				errc <- s.srv.ServeTLS(s.ln, "", "")
			} else {
				errc <- s.srv.Serve(s.ln)
			}
		}()
	}
	serveErr := handover.ready()
	sighupCtx, stopSIGHUP := context.WithCancel(ctx)
	defer stopSIGHUP()
	go handover.watchSIGHUP(sighupCtx)
	if acme != nil && serveErr == nil {
		// The servers are up, so the CA's challenges find them answering.
		if err := acme.start(ctx); err != nil {
			serveErr = fmt.Errorf("certificate management: %w", err)
		}
	}
	replaced := false
	if serveErr == nil {
		replaced, serveErr = a.wait(ctx, errc, handover.replaced())
	}

	if handover.keepsSockets(replaced) {
		a.handOver(servers)
	}
	log.Info("shutting down: finishing in-flight requests")
	ldapServer.stop()
	a.stopHTTP(servers)
	if err := a.close(); err != nil && serveErr == nil {
		serveErr = fmt.Errorf("close database: %w", err)
	}
	if serveErr == nil {
		log.Info("stopped")
	}
	return serveErr
}

// explainUpgradeOpen adds what to do when the process started by a SIGHUP
// upgrade cannot open the database while the old one still serves it.
func explainUpgradeOpen(h *handover, err error) error {
	if h.upg != nil && h.upg.HasParent() && errors.Is(err, ErrSchemaMismatch) {
		return fmt.Errorf("%w. This version changes the database schema, which cannot happen while the old process serves: "+
			"the old process keeps serving; stop it and start this version instead", err)
	}
	return err
}

// wait serves until ctx ends (nil), a new process takes over the sockets
// (replaced, nil), a server fails or the integrity check finds the database
// damaged (their error).
func (a *app) wait(ctx context.Context, errc <-chan error, takenOver <-chan struct{}) (replaced bool, err error) {
	checked := a.checked
	for {
		select {
		case err := <-errc:
			return false, fmt.Errorf("serve: %w", err)
		case err := <-checked:
			checked = nil // a nil channel is never ready again
			if err != nil {
				a.log.Error("refusing to serve a damaged database", "err", err)
				return false, err
			}
			a.log.Info("database integrity check passed")
		case <-takenOver:
			return true, nil
		case <-ctx.Done():
			return false, nil
		}
	}
}

// served is an HTTP server and the listener it serves.
type served struct {
	srv *http.Server
	ln  net.Listener
	tls bool
}

// httpServers builds the servers of cfg's mode on lns, and the certificate
// manager in ACME mode; host is the public name, for the welcome text. What
// happens to the certificate is reported to health (alerts), and each
// certificate served is checked by tlsCheck.
func httpServers(cfg serveConfig, lns *listeners, handler http.Handler, health *certHealth, tlsCheck *tlsChecker, log *slog.Logger) (servers []served, acme *acmeManager, host string, err error) {
	host = cfg.Domain
	switch cfg.mode() {
	case modeLocal:
		servers = append(servers, served{newHTTPServer(handler, log), lns.plain, false})
	case modeProxy:
		trusted, _ := parseTrustedProxies(cfg.TrustedProxies) // validated
		servers = append(servers, served{newHTTPServer(trustProxies(trusted, handler), log), lns.plain, false})
	case modeACME:
		acme, err = newACMEManager(cfg, lns, log)
		if err != nil {
			return nil, nil, "", err
		}
		acme.health = health
		acme.tlsCheck = tlsCheck
		srv := newHTTPServer(handler, log)
		srv.TLSConfig = acme.tlsConfig()
		servers = append(servers, served{srv, lns.https, true})
		if lns.http != nil {
			redirect := redirectToHTTPS(cfg.Domain, lns.https.Addr())
			servers = append(servers, served{newHTTPServer(acme.httpHandler(redirect, log), log), lns.http, false})
		}
	case modeCert:
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, health, tlsCheck, log)
		if err != nil {
			return nil, nil, "", err
		}
		srv := newHTTPServer(handler, log)
		srv.TLSConfig = forEntra(&tls.Config{GetCertificate: certs.GetCertificate})
		servers = append(servers, served{srv, lns.https, true})
		if lns.http != nil {
			servers = append(servers, served{newHTTPServer(redirectToHTTPS("", lns.https.Addr()), log), lns.http, false})
		}
		for _, name := range certs.names() {
			if !strings.HasPrefix(name, "*") {
				host = name
				break
			}
		}
	}
	return servers, acme, host, nil
}

// String lists the bound addresses for the log, as http=… https=… http-redirect=….
func (a boundAddrs) String() string {
	var parts []string
	for _, p := range []struct{ name, addr string }{{"http", a.Plain}, {"https", a.HTTPS}, {"http-redirect", a.HTTP}, {"metrics", a.Metrics}, {"ldap", a.LDAP}, {"ldaps", a.LDAPS}} {
		if p.addr != "" {
			parts = append(parts, p.name+"="+p.addr)
		}
	}
	return strings.Join(parts, " ")
}

// unknownHost stands for the public name when scimbox cannot know it.
const unknownHost = "<your host name>"

// publicBaseURL is the address of scimbox for people and for Entra, as far
// as scimbox can know it: the port is kept unless it is the scheme's
// default; a plain-HTTP listener on every address is shown as 127.0.0.1 (a
// browser on the machine can open it); a name scimbox cannot know (behind a
// proxy, or a certificate without one) is unknownHost, never a broken URL.
// host is the public name from -domain or the certificate, or "".
func publicBaseURL(cfg serveConfig, host string, addrs boundAddrs) string {
	switch cfg.mode() {
	case modeLocal:
		h, port, err := net.SplitHostPort(addrs.Plain)
		if err != nil {
			return "http://" + addrs.Plain
		}
		if ip, err := netip.ParseAddr(h); h == "" || err == nil && ip.IsUnspecified() {
			h = "127.0.0.1"
		}
		return "http://" + net.JoinHostPort(h, port)
	case modeProxy:
		return "https://" + unknownHost // the proxy's name and port
	}
	if host == "" {
		host = unknownHost
	}
	if _, port, err := net.SplitHostPort(addrs.HTTPS); err == nil && port != "443" {
		host = net.JoinHostPort(host, port)
	}
	return "https://" + host
}

// printWelcome tells the admin where scimbox is and what to do next; host
// is the public name clients use, or "" when scimbox cannot know it.
func printWelcome(w io.Writer, cfg serveConfig, host string, addrs boundAddrs) {
	self := "scimbox"
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		self = "go run ." // started with go run
	}
	db, _ := filepath.Abs(cfg.DB)
	token := fmt.Sprintf("%s token create -db %s -name entra", self, cfg.DB)
	base := publicBaseURL(cfg, host, addrs)
	switch cfg.mode() {
	case modeLocal:
		fmt.Fprintf(w, `scimbox %s — local trial mode (plain HTTP)
  SCIM base URL:  %s%s
  Database:       %s
Microsoft Entra cannot reach this address: it needs a public HTTPS Tenant URL.
To serve Entra, run on a VM with -domain scim.example.com (see docs/run-on-a-vm.md).
To try it locally, create a token and query it:
  %s token create -db %s -name trial
  curl -H "Authorization: Bearer <token>" '%s%s/Users?filter=userName+eq+%%22nobody%%22'
`, version(), base, scimBase, db, self, cfg.DB, base, scimBase)
	case modeProxy:
		fmt.Fprintf(w, `scimbox %s — behind a reverse proxy (plain HTTP on %s)
  Tenant URL:     %s%s
  Database:       %s
  Trusted proxies: %s (only they may set X-Forwarded-Proto/For)
Point the proxy's HTTPS site at http://%s, keeping the Host header.
Create the Secret Token for Entra with:
  %s
`, version(), addrs.Plain, base, scimBase, db, cfg.TrustedProxies, addrs.Plain, token)
	case modeACME:
		ca := cfg.ACMECA
		if ca == "" {
			ca = "Let's Encrypt"
		}
		fmt.Fprintf(w, `scimbox %s — HTTPS for %s (certificate from %s, obtained in the background)
  Tenant URL:     %s%s
  Database:       %s
  Certificates:   %s
  Listening:      %s
Create the Secret Token for Entra with:
  %s
`, version(), cfg.Domain, ca, base, scimBase, db, cfg.certDir(), addrs, token)
	case modeCert:
		fmt.Fprintf(w, `scimbox %s — HTTPS with the certificate in %s (reloaded when the file changes)
  Tenant URL:     %s%s
  Database:       %s
  Listening:      %s
Create the Secret Token for Entra with:
  %s
`, version(), cfg.TLSCert, base, scimBase, db, addrs, token)
	}
}

// buildVersion, when set at link time (go build -ldflags "-X main.buildVersion=1.4.2"),
// is the version scimbox reports, as packagers set it.
var buildVersion string

// version is buildVersion, else the module version when built from a tagged
// module, else the VCS revision.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

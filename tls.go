// Reaching scimbox: listeners, HTTPS with automatic certificates (certmagic)
// or the admin's own (reloaded when the files change), the :80 redirect,
// trusted reverse proxies and HSTS.

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hstsHeader tells browsers to use HTTPS only, for two years. It has no
// includeSubDomains: other names under the admin's domain are not ours.
const hstsHeader = "max-age=63072000"

// withHSTS adds the HSTS header to every response sent over HTTPS.
func withHSTS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", hstsHeader)
		}
		next.ServeHTTP(w, r)
	})
}

// ---- listeners ----

// listeners are the sockets serve binds before anything else starts.
type listeners struct {
	plain, https, http net.Listener
}

// listenAll gets every listener cfg's mode needs, or none: each one handed
// over by systemd or by the process being replaced, else bound here.
func listenAll(cfg serveConfig, h *handover) (*listeners, error) {
	l := &listeners{}
	var err error
	switch cfg.mode() {
	case modeLocal, modeProxy:
		l.plain, err = h.listen("addr", socketPlain, cfg.Addr)
	default:
		l.https, err = h.listen("https-addr", socketHTTPS, cfg.HTTPSAddr)
		if err == nil && cfg.HTTPAddr != "" {
			l.http, err = h.listen("http-addr", socketHTTP, cfg.HTTPAddr)
		}
	}
	if err == nil {
		err = h.unusedSockets(cfg)
	}
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// addrs returns the addresses actually bound (port 0 resolved).
func (l *listeners) addrs() boundAddrs {
	addr := func(ln net.Listener) string {
		if ln == nil {
			return ""
		}
		return ln.Addr().String()
	}
	return boundAddrs{Plain: addr(l.plain), HTTPS: addr(l.https), HTTP: addr(l.http)}
}

// close closes the listeners; http.Server.Shutdown closes them too, which is harmless.
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.plain, l.https, l.http} {
		if ln != nil {
			ln.Close()
		}
	}
}

// listen binds addr for flag, explaining a failure with listenError.
func listen(flag, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, listenError(flag, addr, err)
	}
	return ln, nil
}

// listenError explains the two failures an admin meets on a fresh VM.
func listenError(flag, addr string, err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("cannot listen on %s (-%s): the port is in use: another program, such as another scimbox or a web server (nginx, apache, caddy), is already listening there; stop it, or choose another address with -%s", addr, flag, flag)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("cannot listen on %s (-%s): permission denied: ports below 1024 need a privilege. "+
			"Run scimbox from its systemd unit (contrib/scimbox.service grants it with AmbientCapabilities=CAP_NET_BIND_SERVICE), "+
			"or grant it to the binary once (and again after each upgrade): sudo setcap cap_net_bind_service=+ep %s", addr, flag, installedPath())
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("cannot listen on %s (-%s): that IP address is not one of this machine's; use :PORT to listen on all of them", addr, flag)
	}
	return fmt.Errorf("cannot listen on %s (-%s): %w", addr, flag, err)
}

// installedPath is the path of the running binary, for commands to copy.
func installedPath() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, "go-build") || strings.HasSuffix(exe, ".test") {
		return "/usr/local/bin/scimbox"
	}
	return exe
}

// serverErrorLog routes http.Server's own messages to slog. TLS handshake
// errors go to debug: on a public address scanners cause them all day.
func serverErrorLog(log *slog.Logger) *log.Logger {
	return newStdLogger(func(msg string) {
		level := slog.LevelWarn
		if strings.Contains(msg, "TLS handshake error") {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, msg, "component", "http")
	})
}

// lineWriter is an io.Writer that hands each write to a function, as one line.
type lineWriter func(string)

// Write passes p to f without its trailing newline.
func (f lineWriter) Write(p []byte) (int, error) {
	f(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newStdLogger returns a *log.Logger (as http.Server wants) whose lines go to f.
func newStdLogger(f func(string)) *log.Logger { return log.New(lineWriter(f), "", 0) }

// ---- :80: challenges and the redirect ----

// redirectToHTTPS redirects every request to the same path over HTTPS, on
// domain or else on the host the client asked for, at the HTTPS listener's
// port. 308 keeps the method, so a client configured with http:// that
// POSTs is not silently turned into a GET.
func redirectToHTTPS(domain string, httpsAddr net.Addr) http.Handler {
	port := ""
	if _, p, err := net.SplitHostPort(httpsAddr.String()); err == nil && p != "443" {
		port = p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := domain
		if host == "" {
			host = r.Host
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				host = h
			}
			host = strings.Trim(host, "[]")
		}
		if host == "" {
			http.Error(w, "use https://", http.StatusBadRequest)
			return
		}
		if port != "" {
			host = net.JoinHostPort(host, port)
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// ---- -behind-proxy ----

// trustProxies makes a request forwarded by a trusted reverse proxy look as
// the client made it: X-Forwarded-For gives r.RemoteAddr (the right-most
// address that is not itself a trusted proxy), and X-Forwarded-Proto: https
// gives r.TLS a non-nil, empty ConnectionState. Handlers already derive
// https from r.TLS (meta.location in baseURL, Secure cookies, HSTS), so the
// proxy's word lives in that one field and no handler reads proxy headers;
// nothing may read the empty ConnectionState's fields. From any other peer
// the headers are removed, so nothing downstream can be fooled by them.
func trustProxies(trusted []netip.Prefix, next http.Handler) http.Handler {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			r.Header.Del("X-Forwarded-For")
			r.Header.Del("X-Forwarded-Proto")
			next.ServeHTTP(w, r)
			return
		}
		r2 := *r
		if protos := headerList(r.Header, "X-Forwarded-Proto"); len(protos) > 0 {
			// the last value is the one the nearest (trusted) proxy saw
			if strings.EqualFold(protos[len(protos)-1], "https") {
				r2.TLS = &tls.ConnectionState{}
			}
		}
		hops := headerList(r.Header, "X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				break
			}
			r2.RemoteAddr = netip.AddrPortFrom(a.Unmap(), 0).String()
			if !isTrusted(a) {
				break
			}
		}
		next.ServeHTTP(w, &r2)
	})
}

// headerList splits every value of a comma-separated header into its trimmed elements.
func headerList(h http.Header, name string) []string {
	var list []string
	for _, v := range h.Values(name) {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				list = append(list, s)
			}
		}
	}
	return list
}

// ---- -tls-cert / -tls-key ----

// certReloader serves an admin-supplied certificate and reloads it when
// either file changes, so a certificate renewed by another tool needs no
// restart. Each handshake stats both files, which costs far less than the
// handshake itself; only a change reads and parses them.
type certReloader struct {
	certFile, keyFile string
	tlsCheck          *tlsChecker
	log               *slog.Logger
	health            *certHealth // nil when nobody watches

	mu                sync.Mutex
	cert              *tls.Certificate
	certStat, keyStat os.FileInfo
}

// newCertReloader loads the pair, returning an error if it cannot be used.
func newCertReloader(certFile, keyFile string, health *certHealth, tlsCheck *tlsChecker, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log, health: health, tlsCheck: tlsCheck}
	cs, err := os.Stat(certFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert: %w", err)
	}
	ks, err := os.Stat(keyFile)
	if err != nil {
		return nil, fmt.Errorf("-tls-key: %w", err)
	}
	if err := c.load(cs, ks); err != nil {
		return nil, err
	}
	return c, nil
}

// load reads the pair whose files have the stats cs and ks, and logs its names and expiry.
func (c *certReloader) load(cs, ks os.FileInfo) error {
	c.certStat, c.keyStat = cs, ks
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("cannot use -tls-cert %s with -tls-key %s: %w", c.certFile, c.keyFile, err)
	}
	if cert.Leaf == nil { // with GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("-tls-cert %s: %w", c.certFile, err)
		}
	}
	c.cert = &cert
	c.health.renewed(cert.Leaf)
	attrs := []any{"file", c.certFile, "names", cert.Leaf.DNSNames, "expires", cert.Leaf.NotAfter.Format(time.RFC3339)}
	switch left := time.Until(cert.Leaf.NotAfter); {
	case left <= 0:
		c.log.Error("certificate loaded, but it has EXPIRED: Entra will refuse it; replace the files (scimbox reloads them by itself)", attrs...)
	case left < 14*24*time.Hour:
		c.log.Warn("certificate loaded; it expires in less than two weeks: replace the files in time (scimbox reloads them by itself)", attrs...)
	default:
		c.log.Info("certificate loaded", attrs...)
	}
	if c.tlsCheck != nil {
		c.tlsCheck.observe(&cert, "")
	}
	return nil
}

// names returns the DNS names of the certificate being served.
func (c *certReloader) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cert.Leaf.DNSNames
}

// GetCertificate is for tls.Config: it returns the current certificate,
// reloading it first if a file changed. A pair that cannot be loaded (the
// key not yet replaced, say) is reported once per change and the previous
// certificate stays in use.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, err1 := os.Stat(c.certFile)
	ks, err2 := os.Stat(c.keyFile)
	if err1 == nil && err2 == nil && (fileChanged(c.certStat, cs) || fileChanged(c.keyStat, ks)) {
		if err := c.load(cs, ks); err != nil {
			c.log.Warn("the changed certificate files cannot be used yet; still serving the previous certificate", "err", err)
			c.health.failed(time.Now(), err)
		}
	}
	return c.cert, nil
}

// fileChanged reports whether cur is another file than old, or the same file rewritten.
func fileChanged(old, cur os.FileInfo) bool {
	return old == nil || !os.SameFile(old, cur) || !old.ModTime().Equal(cur.ModTime()) || old.Size() != cur.Size()
}

// loadCARoots returns the system roots plus the certificates in a PEM file.
func loadCARoots(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-acme-ca-root: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("-acme-ca-root %s holds no PEM certificate", file)
	}
	return pool, nil
}

// certHealth is what the alerts know of the certificate: whether the last
// attempt to obtain or renew it failed, and when the one in use expires. Its
// methods do nothing on a nil *certHealth.
type certHealth struct {
	mu       sync.Mutex
	failedAt time.Time // zero once an attempt succeeded
	failure  string
	leaf     *x509.Certificate // the certificate in use, once known
}

// certHealthStatus is a copy of certHealth's state.
type certHealthStatus struct {
	FailedAt time.Time
	Failure  string
	Leaf     *x509.Certificate
}

// failed records an attempt to obtain, renew or reload the certificate that failed.
func (h *certHealth) failed(at time.Time, err error) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failedAt, h.failure = at, err.Error()
}

// renewed records a new certificate (leaf, when already known): a failure before it is over.
func (h *certHealth) renewed(leaf *x509.Certificate) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failedAt, h.failure = time.Time{}, ""
	if leaf != nil {
		h.leaf = leaf
	}
}

// inUse records the certificate being served.
func (h *certHealth) inUse(leaf *x509.Certificate) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leaf = leaf
}

func (h *certHealth) status() certHealthStatus {
	if h == nil {
		return certHealthStatus{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return certHealthStatus{FailedAt: h.failedAt, Failure: h.failure, Leaf: h.leaf}
}

// ---- -domain: ACME with certmagic ----

// acmeManager obtains and renews the certificate for one domain with
// certmagic, storing it and the ACME account in cfg.certDir().
type acmeManager struct {
	domain  string
	log     *slog.Logger
	health  *certHealth // nil when nobody watches
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuers []*certmagic.ACMEIssuer
	cancel  context.CancelFunc

	tlsCheck *tlsChecker // checks each certificate put in use; nil in some tests
}

// zeroSSLEABEndpoint gives the External Account Binding that ZeroSSL's ACME
// server requires, for an email address: free, without an API key.
const zeroSSLEABEndpoint = "https://api.zerossl.com/acme/eab-credentials-email"

// newACMEManager configures certmagic for cfg.Domain. The challenge ports
// are those of the listeners scimbox already holds: certmagic finds them in
// use, and the challenges are answered by acme.httpHandler on the HTTP
// listener and by tlsConfig's GetCertificate on the HTTPS one.
func newACMEManager(cfg serveConfig, lns *listeners, log *slog.Logger) (*acmeManager, error) {
	m := &acmeManager{domain: cfg.Domain, log: log}
	zl := zapToSlog(log.With("component", "certmagic"))
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.hooks.renewCheck,
		Logger:             zl,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: cfg.certDir()},
		DefaultServerName: cfg.Domain,
		OnEvent:           m.onEvent,
		DisableARI:        cfg.hooks.noARI,
		Logger:            zl,
	})
	m.magic = magic

	var roots *x509.CertPool
	if cfg.ACMECARoot != "" {
		var err error
		if roots, err = loadCARoots(cfg.ACMECARoot); err != nil {
			m.cache.Stop()
			return nil, err
		}
	}
	host, tlsPort := hostPort(lns.https)
	_, httpPort := hostPort(lns.http)
	template := certmagic.ACMEIssuer{
		CA:                      cfg.ACMECA, // "" is Let's Encrypt, with its staging CA to test retries
		Email:                   cfg.ACMEEmail,
		Agreed:                  true,
		DisableHTTPChallenge:    lns.http == nil,
		DisableTLSALPNChallenge: cfg.hooks.noTLSALPN,
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		TrustedRoots:            roots,
		Logger:                  zl,
	}
	m.issuers = append(m.issuers, certmagic.NewACMEIssuer(magic, template))
	if cfg.ACMECA == "" && cfg.ACMEEmail != "" {
		// ZeroSSL is the fallback CA when Let's Encrypt fails (outage,
		// rate limit), as in Caddy; its ACME server needs an email.
		zerossl := template
		zerossl.CA = certmagic.ZeroSSLProductionCA
		zerossl.NewAccountFunc = zeroSSLAccount(zeroSSLEABEndpoint)
		m.issuers = append(m.issuers, certmagic.NewACMEIssuer(magic, zerossl))
	}
	// Replace, not append: certmagic.New put a default Let's Encrypt issuer there.
	magic.Issuers = nil
	for _, iss := range m.issuers {
		magic.Issuers = append(magic.Issuers, iss)
	}
	return m, nil
}

// hostPort returns ln's host ("" when it listens on every address) and port.
func hostPort(ln net.Listener) (string, int) {
	if ln == nil {
		return "", 0
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return "", 0
	}
	if ap.Addr().IsUnspecified() {
		return "", int(ap.Port())
	}
	return ap.Addr().String(), int(ap.Port())
}

// tlsConfig serves the managed certificate and answers TLS-ALPN-01 challenges.
func (m *acmeManager) tlsConfig() *tls.Config {
	tc := forEntra(m.magic.TLSConfig())
	tc.NextProtos = []string{"h2", "http/1.1", acmez.ACMETLS1Protocol}
	return tc
}

// httpHandler answers HTTP-01 challenges and passes every other request to next.
func (m *acmeManager) httpHandler(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certmagic.LooksLikeHTTPChallenge(r) {
			for _, iss := range m.issuers {
				if iss.HandleHTTPChallenge(w, r) {
					log.Info("answered the CA's HTTP-01 challenge: port 80 is reachable", "domain", m.domain, "from", r.RemoteAddr)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// start begins managing the certificate in the background: obtaining it,
// retrying with backoff after a failure, and renewing it before it expires.
func (m *acmeManager) start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(ctx)
	go m.checkDNS(ctx)
	return m.magic.ManageAsync(ctx, []string{m.domain})
}

// stop ends certificate management.
func (m *acmeManager) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.cache.Stop()
}

// checkDNS logs what the domain resolves to, so an admin can compare it
// with the VM's public address, and says plainly when it does not resolve.
func (m *acmeManager) checkDNS(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, m.domain)
	switch {
	case ctx.Err() != nil && err != nil:
	case err != nil:
		m.log.Warn("DNS: the domain does not resolve from here; create an A record pointing it at this machine's public IP address, or the certificate cannot be obtained", "domain", m.domain, "err", err)
	default:
		m.log.Info("DNS: the domain resolves; the CA connects to these addresses, so they must be this machine's public ones", "domain", m.domain, "addresses", addrs)
	}
}

// onEvent turns certmagic's events into the few lines an admin needs.
func (m *acmeManager) onEvent(ctx context.Context, event string, data map[string]any) error {
	domain, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	switch event {
	case "cert_obtaining":
		if renewal {
			m.log.Info("certificate: renewing", "domain", domain)
		} else {
			m.log.Info("certificate: requesting one from the CA", "domain", domain, "ca", m.issuers[0].CA)
		}
	case "cert_obtained":
		m.log.Info("certificate obtained", "domain", domain, "issuer", data["issuer"], "renewal", renewal)
		m.health.renewed(nil)
	case "cached_managed_cert":
		// emitted once the certificate is loaded for handshakes: at start
		// from storage, or after it was obtained
		sans, _ := data["sans"].([]string)
		for _, cert := range m.cache.AllMatchingCertificates(m.domain) {
			if cert.Leaf != nil && slices.Equal(cert.Names, sans) {
				m.health.inUse(cert.Leaf)
				m.log.Info("certificate in use: HTTPS is ready", "domain", m.domain, "expires", cert.Leaf.NotAfter.Format(time.RFC3339))
				if m.tlsCheck != nil {
					m.tlsCheck.observe(&cert.Certificate, m.domain)
				}
				return nil
			}
		}
		m.log.Info("certificate in use: HTTPS is ready", "domain", m.domain)
	case "cert_failed":
		err, _ := data["error"].(error)
		msg := "certificate: could not obtain one; HTTPS does not work until it succeeds. scimbox keeps running and retries by itself"
		if renewal {
			msg = "certificate: could not renew it; the current one stays in use. scimbox retries by itself"
		}
		m.log.Error(msg, "domain", domain, "err", err, "likely_cause", acmeFailureHint(err, domain))
		if err == nil {
			err = errors.New("no error given")
		}
		m.health.failed(time.Now(), fmt.Errorf("%w (likely cause: %s)", err, acmeFailureHint(err, domain)))
	case "cert_ocsp_revoked":
		m.log.Warn("certificate: the CA says it is revoked; getting a new one", "domain", domain)
	}
	return nil
}

// acmeFailureHint names the likely cause of a failure to get a certificate,
// from the ACME problem the CA reported.
func acmeFailureHint(err error, domain string) string {
	if err == nil {
		return "unknown"
	}
	var p acme.Problem
	if !errors.As(err, &p) {
		if strings.Contains(err.Error(), "does not qualify for a public certificate") {
			return fmt.Sprintf("%s is not a public DNS name, so a public CA will not certify it", domain)
		}
		return "scimbox could not complete the exchange with the CA: check that this machine can make outbound HTTPS connections (and -acme-ca, if set)"
	}
	kinds := []string{p.Type}
	details := p.Detail
	for _, sp := range p.Subproblems {
		kinds = append(kinds, sp.Type)
		details += " " + sp.Detail
	}
	is := func(kind string) bool {
		for _, k := range kinds {
			if strings.HasSuffix(k, ":"+kind) {
				return true
			}
		}
		return false
	}
	switch {
	case is("rateLimited"):
		return "the CA's rate limit was reached (Let's Encrypt allows 5 certificates a week for the same name, and 5 failed validations an hour); waiting is the fix: scimbox retries by itself, do not restart it in a loop"
	case is("dns"):
		return fmt.Sprintf("the CA could not find %s in DNS: create an A record (and AAAA, if this machine has IPv6) pointing it at this machine's public IP address, then wait for it to propagate", domain)
	case is("caa"):
		return fmt.Sprintf("a CAA record in the DNS of %s does not allow this CA: add one that does (for Let's Encrypt: 0 issue \"letsencrypt.org\")", domain)
	case is("connection"), is("tls"), strings.Contains(strings.ToLower(details), "connect"), strings.Contains(strings.ToLower(details), "timeout"):
		return fmt.Sprintf("the CA could not connect to this machine: open TCP ports 80 and 443 to the internet (the VM's firewall and the cloud's network security group), and check that the A record of %s points at this machine", domain)
	case is("unauthorized"), is("incorrectResponse"):
		return fmt.Sprintf("the CA reached a server that did not answer its challenge: the A record of %s may point at another machine, or another web server or proxy answers ports 80/443 in front of scimbox", domain)
	case is("rejectedIdentifier"), is("unsupportedIdentifier"):
		return fmt.Sprintf("the CA refuses to certify %s", domain)
	case is("externalAccountRequired"):
		return "this CA needs an account bound to an external account (EAB), which scimbox sets up only for ZeroSSL"
	}
	return "see err for the CA's own words"
}

// zeroSSLAccount returns a certmagic NewAccountFunc that fetches, for the
// issuer's email, the External Account Binding ZeroSSL requires.
func zeroSSLAccount(endpoint string) func(context.Context, *certmagic.ACMEIssuer, acme.Account) (acme.Account, error) {
	return func(ctx context.Context, iss *certmagic.ACMEIssuer, acct acme.Account) (acme.Account, error) {
		if iss.ExternalAccount != nil {
			return acct, nil
		}
		if iss.Email == "" {
			return acct, errors.New("ZeroSSL needs an email address (-acme-email)")
		}
		form := url.Values{"email": {iss.Email}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		if err != nil {
			return acct, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return acct, fmt.Errorf("getting ZeroSSL account credentials: %w", err)
		}
		defer resp.Body.Close()
		var body struct {
			Success bool   `json:"success"`
			KeyID   string `json:"eab_kid"`
			MACKey  string `json:"eab_hmac_key"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
			return acct, fmt.Errorf("getting ZeroSSL account credentials: HTTP %d: %w", resp.StatusCode, err)
		}
		if !body.Success || body.KeyID == "" || body.MACKey == "" {
			return acct, fmt.Errorf("getting ZeroSSL account credentials: HTTP %d: none given for %s", resp.StatusCode, iss.Email)
		}
		iss.ExternalAccount = &acme.EAB{KeyID: body.KeyID, MACKey: body.MACKey}
		return acct, nil
	}
}

// ---- certmagic's zap logs into slog ----

// zapToSlog returns a zap logger that writes to log. certmagic narrates
// every step at info level, so that becomes debug here: scimbox logs its
// own summary lines (acmeManager.onEvent); warnings and errors stay.
func zapToSlog(log *slog.Logger) *zap.Logger { return zap.New(slogCore{h: log.Handler()}) }

// slogCore is a zapcore.Core that writes zap entries as slog records.
type slogCore struct {
	h      slog.Handler
	fields []zapcore.Field
}

// slogLevel maps zap's levels to slog's; certmagic's info lines become debug (onEvent says what matters).
func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// Enabled, With, Check, Write and Sync implement zapcore.Core on a slog.Handler.
func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{h: c.h, fields: append(slices.Clip(c.fields), fields...)}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		r.AddAttrs(slog.Any(k, enc.Fields[k]))
	}
	return c.h.Handle(context.Background(), r)
}

func (slogCore) Sync() error { return nil }

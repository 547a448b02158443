package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	pebbleca "github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	pebbleva "github.com/letsencrypt/pebble/v2/va"
	pebblewfe "github.com/letsencrypt/pebble/v2/wfe"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// ---- helpers ----

// tlsLog is a goroutine-safe buffer that servers log into.
type tlsLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *tlsLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *tlsLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitForLog waits until the log has a line containing all of parts, and returns it.
func waitForLog(t *testing.T, l *tlsLog, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for line := range strings.Lines(l.String()) {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q after %s", parts, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testServe is a running `scimbox serve`.
type testServe struct {
	addrs boundAddrs
	log   *tlsLog // stderr: the slog lines
	out   *tlsLog // stdout: the welcome text
	done  chan error
}

// testServeConfig returns the defaults of `scimbox serve` with a fresh
// database in a temporary folder, and a token for it.
func testServeConfig(t *testing.T) (serveConfig, string) {
	t.Helper()
	cfg, err := parseServeConfigEnv(nil, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DB = filepath.Join(t.TempDir(), "scimbox.db")
	cfg.LogLevel = "debug"
	store, err := OpenStore(context.Background(), cfg.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	token, _, err := store.CreateToken(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, token
}

func noEnv(string) (string, bool) { return "", false }

// startServe runs serve(cfg) until the test ends; onReady runs when it has
// bound its listeners, before it asks for a certificate.
func startServe(t *testing.T, cfg serveConfig, onReady func(boundAddrs)) *testServe {
	t.Helper()
	if err := cfg.validate(); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	ts := &testServe{log: &tlsLog{}, out: &tlsLog{}, done: make(chan error, 1)}
	ready := make(chan struct{})
	cfg.hooks.ready = func(a boundAddrs) {
		ts.addrs = a
		if onReady != nil {
			onReady(a)
		}
		close(ready)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { ts.done <- serve(ctx, cfg, ts.out, ts.log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("serve did not stop within 20s")
		}
		if t.Failed() {
			t.Logf("scimbox log:\n%s", ts.log)
		}
	})
	select {
	case <-ready:
	case err := <-ts.done:
		t.Fatalf("serve stopped before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not listen within 10s")
	}
	return ts
}

func port(t *testing.T, addr string) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return int(ap.Port())
}

// localhostAddr is the address "localhost" resolves to first: the one the
// test CA's validation authority connects to, so the one to listen on.
func localhostAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.DefaultResolver.LookupHost(context.Background(), "localhost")
	if err != nil || len(addrs) == 0 {
		t.Fatalf("localhost does not resolve: %v", err)
	}
	return addrs[0]
}

// noRedirects is an http.Client CheckRedirect that returns redirects as they are.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// httpsClient trusts only roots, as Entra trusts only public roots.
func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: noRedirects,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
}

// scimRequest sends a SCIM request with the bearer token and decodes the JSON answer.
func scimRequest(t *testing.T, c *http.Client, method, url, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
	return resp, doc
}

const aliceUser = `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@example.com","active":true}`

// newUserJSON is a SCIM user with a userName no other call gives.
func newUserJSON() string {
	return strings.Replace(aliceUser, "alice@", "alice-"+rand.Text()+"@", 1)
}

// checkSCIMOverHTTPS does what Entra's Test Connection and first
// provisioning do, over HTTPS verified against roots.
func checkSCIMOverHTTPS(t *testing.T, roots *x509.CertPool, base, token string) *tls.ConnectionState {
	t.Helper()
	c := httpsClient(roots)
	resp, doc := scimRequest(t, c, "GET", base+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "nobody"`), token, "")
	if resp.StatusCode != http.StatusOK || doc["totalResults"] != 0.0 {
		t.Fatalf("GET /Users over HTTPS: %d %v", resp.StatusCode, doc)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != hstsHeader {
		t.Errorf("Strict-Transport-Security = %q, want %q", got, hstsHeader)
	}
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatal("no verified certificate chain")
	}
	if v := resp.TLS.Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", v)
	}
	resp, _ = scimRequest(t, c, "POST", base+"/scim/v2/Users", token, newUserJSON())
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /Users over HTTPS: %d", resp.StatusCode)
	}
	if got, want := resp.Header.Get("Location"), base+"/scim/v2/Users/"; !strings.HasPrefix(got, want) {
		t.Errorf("Location = %q, want it to start with %q", got, want)
	}
	return resp.TLS
}

// ---- an in-process ACME CA: pebble ----

// testCA is pebble's ACME server behind httptest. Its validation authority
// needs the challenge ports, which are known only once scimbox listens, so
// start adds it then; until then the ACME server answers 503.
type testCA struct {
	dir      string         // ACME directory URL
	rootFile string         // PEM: pebble's root and the ACME server's own TLS certificate
	roots    *x509.CertPool // pebble's root alone, which issued certificates chain to
	log      *log.Logger
	db       *pebbledb.MemoryStore
	ca       *pebbleca.CAImpl
	handler  atomic.Pointer[http.Handler]
}

// pebbleEnv sets the two process-wide variables pebble reads when its
// parts are made: validate at once, and never reject a good nonce. They
// are set once and never changed, and nothing else reads them.
var pebbleEnv sync.Once

// newTestCA starts a CA whose certificates are valid for validity (0: 90 days).
func newTestCA(t *testing.T, validity time.Duration) *testCA {
	t.Helper()
	pebbleEnv.Do(func() {
		os.Setenv("PEBBLE_VA_NOSLEEP", "1")
		os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	})
	logs := &tlsLog{}
	tc := &testCA{log: log.New(logs, "pebble ", log.Lmicroseconds), db: pebbledb.NewMemoryStore()}
	tc.ca = pebbleca.New(tc.log, tc.db, "", "ecdsa", 0, 1,
		map[string]pebbleca.Profile{"default": {ValidityPeriod: uint64(validity / time.Second)}})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := tc.handler.Load()
		if h == nil {
			http.Error(w, "the test CA has not started", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pebble log:\n%s", logs)
		}
	})
	tc.dir = srv.URL + "/dir"
	root := tc.ca.GetRootCert(0)
	tc.roots = x509.NewCertPool()
	tc.roots.AddCert(root.Cert)
	var rootPEM bytes.Buffer
	pem.Encode(&rootPEM, &pem.Block{Type: "CERTIFICATE", Bytes: root.DER})
	pem.Encode(&rootPEM, &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	tc.rootFile = filepath.Join(t.TempDir(), "test-ca.pem")
	if err := os.WriteFile(tc.rootFile, rootPEM.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return tc
}

// start makes the CA validate challenges on these ports of localhost.
func (tc *testCA) start(httpPort, tlsPort int) {
	va := pebbleva.New(tc.log, httpPort, tlsPort, false, "", tc.db)
	wfe := pebblewfe.New(tc.log, tc.db, va, tc.ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	h := wfe.Handler()
	tc.handler.Store(&h)
}

// acmeConfig is a serve configuration for localhost with certificates from tc.
func acmeConfig(t *testing.T, tc *testCA) (serveConfig, string) {
	t.Helper()
	cfg, token := testServeConfig(t)
	lo := localhostAddr(t)
	cfg.Domain = "localhost"
	cfg.ACMECA = tc.dir
	cfg.ACMECARoot = tc.rootFile
	cfg.HTTPSAddr = net.JoinHostPort(lo, "0")
	cfg.HTTPAddr = net.JoinHostPort(lo, "0")
	return cfg, token
}

// certmagic keeps the challenges in progress in process-wide memory keyed
// by domain name, and every ACME test certifies "localhost" (the one name
// the CA can resolve to this machine): so they take turns.
var acmeTurn sync.Mutex

func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	acmeTurn.Lock()
	defer acmeTurn.Unlock()
	tc := newTestCA(t, 0)
	cfg, token := acmeConfig(t, tc)
	cfg.hooks.noTLSALPN = true // so only HTTP-01 can succeed
	start := time.Now()
	s := startServe(t, cfg, func(a boundAddrs) { tc.start(port(t, a.HTTP), port(t, a.HTTPS)) })
	waitForLog(t, s.log, 15*time.Second, "certificate in use: HTTPS is ready", "domain=localhost")
	t.Logf("certificate obtained through HTTP-01 in %s", time.Since(start).Round(time.Millisecond))
	waitForLog(t, s.log, time.Second, "answered the CA's HTTP-01 challenge")

	base := "https://localhost:" + strconv.Itoa(port(t, s.addrs.HTTPS))
	state := checkSCIMOverHTTPS(t, tc.roots, base, token)
	chain := state.VerifiedChains[0]
	if got := chain[len(chain)-1]; !tc.roots.Equal(poolOf(got)) {
		t.Errorf("chain ends at %q, not pebble's root", got.Subject)
	}
	if got := state.PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "localhost" {
		t.Errorf("certificate names %v, want [localhost]", got)
	}

	// The certificate and the ACME account are stored next to the database.
	certs, err := filepath.Glob(filepath.Join(filepath.Dir(cfg.DB), "certs", "certificates", "*", "localhost", "localhost.crt"))
	if err != nil || len(certs) != 1 {
		t.Errorf("stored certificate: %v %v", certs, err)
	}

	// Port 80 sends everything that is not a challenge to HTTPS.
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirects}
	for _, path := range []string{"/scim/v2/Users?count=1", "/.well-known/acme-challenge/not-a-token"} {
		resp, err := plain.Get("http://localhost:" + strconv.Itoa(port(t, s.addrs.HTTP)) + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := resp.Header.Get("Location"), base+path; resp.StatusCode != http.StatusPermanentRedirect || got != want {
			t.Errorf("GET http://…%s: %d to %q, want 308 to %q", path, resp.StatusCode, got, want)
		}
	}
	if !strings.Contains(s.out.String(), "Tenant URL:     "+base+"/scim/v2") { // the port is not 443: it is kept
		t.Errorf("welcome text without the Tenant URL:\n%s", s.out)
	}
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

func TestACMETLSALPN01(t *testing.T) {
	t.Parallel()
	acmeTurn.Lock()
	defer acmeTurn.Unlock()
	tc := newTestCA(t, 0)
	cfg, token := acmeConfig(t, tc)
	cfg.HTTPAddr = "" // no port 80: TLS-ALPN-01 on the HTTPS port is the only way
	closed := closedPort(t)
	s := startServe(t, cfg, func(a boundAddrs) { tc.start(closed, port(t, a.HTTPS)) })
	waitForLog(t, s.log, 15*time.Second, "certificate in use: HTTPS is ready", "domain=localhost")
	if strings.Contains(s.log.String(), "HTTP-01 challenge") {
		t.Error("HTTP-01 was answered without a port 80 listener")
	}
	checkSCIMOverHTTPS(t, tc.roots, "https://localhost:"+strconv.Itoa(port(t, s.addrs.HTTPS)), token)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(localhostAddr(t), "0"))
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr().String())
	ln.Close()
	return p
}

func TestACMERenewal(t *testing.T) {
	t.Parallel()
	acmeTurn.Lock()
	defer acmeTurn.Unlock()
	tc := newTestCA(t, 6*time.Second)
	cfg, _ := acmeConfig(t, tc)
	cfg.hooks.renewCheck = 100 * time.Millisecond
	cfg.hooks.noARI = true // see its comment: renewal by remaining lifetime alone
	s := startServe(t, cfg, func(a boundAddrs) { tc.start(port(t, a.HTTP), port(t, a.HTTPS)) })
	waitForLog(t, s.log, 15*time.Second, "certificate in use: HTTPS is ready", "domain=localhost")

	// Verified handshakes only: an expired certificate fails them.
	serial := func() (string, error) {
		conn, err := tls.Dial("tcp", s.addrs.HTTPS, &tls.Config{ServerName: "localhost", RootCAs: tc.roots})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	first, err := serial()
	if err != nil {
		t.Fatal(err)
	}
	// certmagic renews when a third of the lifetime is left: about 4s in.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := serial()
		if err == nil && got != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 6-second certificate %s was not replaced by a valid one within 20s (last handshake: %v)", first, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitForLog(t, s.log, time.Second, "certificate: renewing", "domain=localhost")
	waitForLog(t, s.log, time.Second, "certificate obtained", "renewal=true")
	if strings.Contains(s.log.String(), "could not renew") {
		t.Error("a renewal failed on the way")
	}
}

func TestACMEChallengeFails(t *testing.T) {
	t.Parallel()
	acmeTurn.Lock()
	defer acmeTurn.Unlock()
	tc := newTestCA(t, 0)
	cfg, _ := acmeConfig(t, tc)
	closed := closedPort(t) // the CA checks a port where nothing listens: "port 80 closed"
	s := startServe(t, cfg, func(boundAddrs) { tc.start(closed, closed) })

	line := waitForLog(t, s.log, 15*time.Second, "certificate: could not obtain one")
	for _, want := range []string{"level=ERROR", "domain=localhost", "retries by itself", "could not connect to this machine: open TCP ports 80 and 443"} {
		if !strings.Contains(line, want) {
			t.Errorf("failure line lacks %q:\n%s", want, line)
		}
	}
	// certmagic schedules the next attempt (then 2m, 2m, 5m, … for up to 30 days).
	waitForLog(t, s.log, 5*time.Second, "will retry", "retrying_in=1m0s")

	// The server stays up: port 80 still redirects, and no failure stopped serve.
	resp, err := (&http.Client{Timeout: 5 * time.Second, CheckRedirect: noRedirects}).Get("http://" + s.addrs.HTTP + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("port 80 answered %d, want 308", resp.StatusCode)
	}
	conn, err := tls.Dial("tcp", s.addrs.HTTPS, &tls.Config{ServerName: "localhost", RootCAs: tc.roots})
	if err == nil {
		conn.Close()
		t.Error("HTTPS handshake succeeded without a certificate")
	}
	select {
	case err := <-s.done:
		t.Fatalf("serve stopped: %v", err)
	default:
	}
}

func TestACMEIssuers(t *testing.T) {
	t.Parallel()
	lns := &listeners{}
	for _, ln := range []*net.Listener{&lns.https, &lns.http} {
		var err error
		if *ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	defer lns.close()
	tests := []struct {
		name, ca, email string
		want            []string
	}{
		{"Let's Encrypt", "", "", []string{certmagic.LetsEncryptProductionCA}},
		{"with ZeroSSL as fallback", "", "it@example.com", []string{certmagic.LetsEncryptProductionCA, certmagic.ZeroSSLProductionCA}},
		{"a chosen CA alone", "https://ca.example.com/acme/directory", "it@example.com", []string{"https://ca.example.com/acme/directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServeConfigEnv(nil, io.Discard, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			cfg.DB = filepath.Join(t.TempDir(), "scimbox.db")
			cfg.Domain, cfg.ACMECA, cfg.ACMEEmail = "scim.example.com", tt.ca, tt.email
			m, err := newACMEManager(cfg, lns, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer m.stop()
			var got []string
			for _, iss := range m.magic.Issuers {
				acmeIss, ok := iss.(*certmagic.ACMEIssuer)
				if !ok {
					t.Fatalf("issuer %T", iss)
				}
				got = append(got, acmeIss.CA)
				if acmeIss.AltHTTPPort != port(t, lns.http.Addr().String()) || acmeIss.AltTLSALPNPort != port(t, lns.https.Addr().String()) || acmeIss.ListenHost != "127.0.0.1" {
					t.Errorf("%s: challenge ports %d/%d on %q, not scimbox's listeners", acmeIss.CA, acmeIss.AltHTTPPort, acmeIss.AltTLSALPNPort, acmeIss.ListenHost)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("issuers %q, want %q", got, tt.want)
			}
		})
	}
}

// ---- -tls-cert / -tls-key ----

// writeCert writes a new self-signed certificate for localhost and its key,
// each by rename as tools that renew certificates do, and returns it.
// With keyToo false only the certificate file is replaced.
func writeCert(t *testing.T, certFile, keyFile string, keyToo bool) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(file, typ string, der []byte) {
		tmp := file + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	if keyToo {
		replace(keyFile, "PRIVATE KEY", keyDER)
	}
	replace(certFile, "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestTLSCertFilesReloaded(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	dir := t.TempDir()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg.HTTPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	first := writeCert(t, cfg.TLSCert, cfg.TLSKey, true)
	s := startServe(t, cfg, nil)
	base := "https://localhost:" + strconv.Itoa(port(t, s.addrs.HTTPS))
	state := checkSCIMOverHTTPS(t, poolOf(first), base, token)
	if got := state.PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("served serial %s, want %s", got, first.SerialNumber)
	}

	served := func() *big.Int {
		conn, err := tls.Dial("tcp", s.addrs.HTTPS, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}

	// A new certificate whose key is not written yet: the old pair stays.
	second := writeCert(t, cfg.TLSCert, cfg.TLSKey, false)
	if got := served(); got.Cmp(first.SerialNumber) != 0 {
		t.Errorf("with a mismatched pair on disk, served %s, want the previous %s", got, first.SerialNumber)
	}
	waitForLog(t, s.log, time.Second, "level=WARN", "cannot be used yet; still serving the previous certificate")
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("two certificates with one serial")
	}

	// Both files replaced: the next handshake serves the new certificate.
	third := writeCert(t, cfg.TLSCert, cfg.TLSKey, true)
	state = checkSCIMOverHTTPS(t, poolOf(third), base, token)
	if got := state.PeerCertificates[0].SerialNumber; got.Cmp(third.SerialNumber) != 0 {
		t.Errorf("after replacing the files, served %s, want %s", got, third.SerialNumber)
	}
	// Each certificate loaded was checked: self-signed ones Entra refuses.
	if got := strings.Count(s.log.String(), "level=ERROR msg=\"TLS check: the certificate is self-signed"); got != 2 {
		t.Errorf("the TLS check reported %d self-signed certificates, want 2 (the first and the third):\n%s", got, s.log.String())
	}

	// Port 80 redirects to the HTTPS port, on the name the client asked for.
	req, _ := http.NewRequest("POST", "http://"+s.addrs.HTTP+"/scim/v2/Users?x=1", nil)
	req.Host = "localhost"
	resp, err := (&http.Client{CheckRedirect: noRedirects}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), base+"/scim/v2/Users?x=1"; resp.StatusCode != http.StatusPermanentRedirect || got != want {
		t.Errorf("POST on port 80: %d to %q, want 308 to %q", resp.StatusCode, got, want)
	}
}

func TestRedirectToHTTPS(t *testing.T) {
	t.Parallel()
	tcp := func(s string) net.Addr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	tests := []struct {
		name, domain, https, host, target, want string
	}{
		{"domain, port 443", "scim.example.com", "[::]:443", "scim.example.com", "/scim/v2/Users?count=1", "https://scim.example.com/scim/v2/Users?count=1"},
		{"domain wins over Host", "scim.example.com", "0.0.0.0:443", "evil.example", "/", "https://scim.example.com/"},
		{"other HTTPS port", "scim.example.com", "0.0.0.0:8443", "scim.example.com:8080", "/x", "https://scim.example.com:8443/x"},
		{"no domain: the Host asked for", "", "0.0.0.0:443", "scim.example.org:80", "/a%20b", "https://scim.example.org/a%20b"},
		{"IPv6 Host", "", "[::]:443", "[2001:db8::1]:80", "/", "https://[2001:db8::1]/"},
		{"IPv6 Host, other port", "", "[::]:8443", "[2001:db8::1]", "/", "https://[2001:db8::1]:8443/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			redirectToHTTPS(tt.domain, tcp(tt.https)).ServeHTTP(w, r)
			if got, want := w.Code, http.StatusPermanentRedirect; got != want {
				t.Errorf("status %d, want %d", got, want)
			}
			if got := w.Header().Get("Location"); got != tt.want {
				t.Errorf("Location %q, want %q", got, tt.want)
			}
		})
	}
}

// ---- -behind-proxy ----

func TestProxyHeadersTrustedOnlyFromProxies(t *testing.T) {
	t.Parallel()
	trusted, err := parseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer    string
		proto, xff    []string
		wantTLS       bool
		wantRemote    string
		wantHeadersGo bool // the X-Forwarded headers are removed
	}{
		{"trusted proxy, https", "192.0.2.1:5555", []string{"https"}, []string{"203.0.113.7"}, true, "203.0.113.7:0", false},
		{"trusted proxy, http", "192.0.2.1:5555", []string{"http"}, nil, false, "192.0.2.1:5555", false},
		{"untrusted peer claims https", "198.51.100.9:5555", []string{"https"}, []string{"203.0.113.7"}, false, "198.51.100.9:5555", true},
		{"chain of trusted proxies", "10.0.0.1:1", []string{"https"}, []string{"203.0.113.7, 10.0.0.3", "10.0.0.2"}, true, "203.0.113.7:0", false},
		{"client-supplied hop left of the real client", "10.0.0.1:1", []string{"https"}, []string{"1.1.1.1, 203.0.113.7"}, true, "203.0.113.7:0", false},
		{"only proxies", "10.0.0.1:1", nil, []string{"10.0.0.9"}, false, "10.0.0.9:0", false},
		{"garbage hop", "10.0.0.1:1", nil, []string{"203.0.113.7, not-an-ip"}, false, "10.0.0.1:1", false},
		{"nearest proxy's proto wins", "10.0.0.1:1", []string{"https, http"}, nil, false, "10.0.0.1:1", false},
		{"IPv4-mapped peer", "[::ffff:192.0.2.1]:5555", []string{"HTTPS"}, nil, true, "[::ffff:192.0.2.1]:5555", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/scim/v2/Users", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.proto {
				r.Header.Add("X-Forwarded-Proto", v)
			}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			var got *http.Request
			trustProxies(trusted, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r })).ServeHTTP(httptest.NewRecorder(), r)
			if (got.TLS != nil) != tt.wantTLS {
				t.Errorf("r.TLS set = %v, want %v", got.TLS != nil, tt.wantTLS)
			}
			if got.RemoteAddr != tt.wantRemote {
				t.Errorf("RemoteAddr %q, want %q", got.RemoteAddr, tt.wantRemote)
			}
			if gone := got.Header.Get("X-Forwarded-Proto") == "" && got.Header.Get("X-Forwarded-For") == ""; tt.wantHeadersGo && !gone {
				t.Error("an untrusted peer's X-Forwarded headers reached the handler")
			}
		})
	}
}

func TestProxyModeLocations(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, trusted, wantScheme string
		wantHSTS                  bool
	}{
		{"loopback proxy trusted", "127.0.0.1,::1", "https", true},
		{"loopback not listed", "192.0.2.1", "http", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, token := testServeConfig(t)
			cfg.BehindProxy = true
			cfg.Addr = "127.0.0.1:0"
			cfg.TrustedProxies = tt.trusted
			s := startServe(t, cfg, nil)
			req, _ := http.NewRequest("POST", "http://"+s.addrs.Plain+"/scim/v2/Users", strings.NewReader(aliceUser))
			req.Host = "scim.example.com"
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/scim+json")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got, want := resp.Header.Get("Location"), tt.wantScheme+"://scim.example.com/scim/v2/Users/"; resp.StatusCode != http.StatusCreated || !strings.HasPrefix(got, want) {
				t.Errorf("%d, Location %q, want 201 and %q…", resp.StatusCode, got, want)
			}
			if got := resp.Header.Get("Strict-Transport-Security") != ""; got != tt.wantHSTS {
				t.Errorf("HSTS sent = %v, want %v", got, tt.wantHSTS)
			}
		})
	}
}

// ---- local trial mode, listening, versions ----

func TestServeLocalTrialMode(t *testing.T) {
	t.Parallel()
	cfg, token := testServeConfig(t)
	cfg.Addr = "127.0.0.1:0"
	s := startServe(t, cfg, nil)
	if s.addrs.HTTPS != "" || s.addrs.HTTP != "" {
		t.Errorf("local trial mode listens on %+v", s.addrs)
	}
	resp, _ := scimRequest(t, http.DefaultClient, "GET", "http://"+s.addrs.Plain+"/scim/v2/Users", token, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("GET /Users: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
	for _, want := range []string{"local trial mode (plain HTTP)", "Microsoft Entra cannot reach this address", "http://" + s.addrs.Plain + "/scim/v2"} {
		if !strings.Contains(s.out.String(), want) {
			t.Errorf("welcome text lacks %q:\n%s", want, s.out)
		}
	}
}

func TestServePortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg, _ := testServeConfig(t)
	cfg.Addr = ln.Addr().String()
	err = serve(context.Background(), cfg, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "the port is in use") || !strings.Contains(err.Error(), "-addr") {
		t.Errorf("serve on a busy port: %v", err)
	}
	cfg.Addr = defaultAddr
	cfg.TLSCert, cfg.TLSKey = filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	writeCert(t, cfg.TLSCert, cfg.TLSKey, true)
	cfg.HTTPSAddr, cfg.HTTPAddr = "127.0.0.1:0", ln.Addr().String()
	err = serve(context.Background(), cfg, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "the port is in use") || !strings.Contains(err.Error(), "-http-addr") {
		t.Errorf("serve with port 80 busy: %v", err)
	}
}

func TestServeListenPermissionDenied(t *testing.T) {
	t.Parallel()
	// Tests run as root here, so the error is made rather than provoked.
	err := listenError("https-addr", ":443", &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)})
	for _, want := range []string{"cannot listen on :443 (-https-addr): permission denied", "sudo setcap cap_net_bind_service=+ep /usr/local/bin/scimbox", "AmbientCapabilities=CAP_NET_BIND_SERVICE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestServeHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("timeouts: header %s, read %s, write %s, idle %s", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

func TestServeVersionFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "scimbox ") {
		t.Errorf("serve -version printed %q", out.String())
	}
}

// ---- validation ----

func TestValidateServeConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, true)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		set  func(*serveConfig)
		want []string // substrings of the error; none: valid
	}{
		{"defaults: local trial", func(*serveConfig) {}, nil},
		{"automatic HTTPS", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMEEmail = "it@example.com" }, nil},
		{"automatic HTTPS without port 80", func(c *serveConfig) { c.Domain = "scim.example.com"; c.HTTPAddr = "" }, nil},
		{"private CA may certify localhost", func(c *serveConfig) {
			c.Domain, c.ACMECA, c.ACMECARoot = "localhost", "https://ca.internal/acme/directory", certFile
		}, nil},
		{"own certificate", func(c *serveConfig) { c.TLSCert, c.TLSKey = certFile, keyFile }, nil},
		{"behind a proxy", func(c *serveConfig) { c.BehindProxy = true; c.TrustedProxies = "10.0.0.0/8, 192.0.2.1" }, nil},
		{"domain and own certificate", func(c *serveConfig) { c.Domain = "scim.example.com"; c.TLSCert, c.TLSKey = certFile, keyFile },
			[]string{"-domain gets a certificate automatically and -tls-cert/-tls-key serve your own: use one or the other"}},
		{"certificate without key", func(c *serveConfig) { c.TLSCert = certFile }, []string{"-tls-cert needs -tls-key too"}},
		{"key without certificate", func(c *serveConfig) { c.TLSKey = keyFile }, []string{"-tls-key needs -tls-cert too"}},
		{"unreadable certificate", func(c *serveConfig) { c.TLSCert, c.TLSKey = garbage, keyFile }, []string{"cannot use -tls-cert"}},
		{"missing certificate", func(c *serveConfig) { c.TLSCert, c.TLSKey = filepath.Join(dir, "nope.pem"), keyFile }, []string{"cannot use -tls-cert", "no such file"}},
		{"proxy and domain", func(c *serveConfig) { c.BehindProxy = true; c.Domain = "scim.example.com" }, []string{"-behind-proxy means your reverse proxy handles HTTPS"}},
		{"bad CIDR", func(c *serveConfig) { c.BehindProxy = true; c.TrustedProxies = "10.0.0.0/33" }, []string{`-trusted-proxies: "10.0.0.0/33" is neither an IP address`}},
		{"not an address", func(c *serveConfig) { c.BehindProxy = true; c.TrustedProxies = "proxy.local" }, []string{`"proxy.local" is neither`}},
		{"empty trusted list", func(c *serveConfig) { c.BehindProxy = true; c.TrustedProxies = " , " }, []string{"-trusted-proxies is empty"}},
		{"acme-ca over http", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMECA = "http://ca.example.com/dir" }, []string{"is not the https:// URL of an ACME directory"}},
		{"acme-ca not a URL", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMECA = "letsencrypt" }, []string{"is not the https:// URL"}},
		{"acme options without domain", func(c *serveConfig) { c.ACMEEmail = "it@example.com" }, []string{"only apply with -domain"}},
		{"bad email", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMEEmail = "it at example" }, []string{"is not an email address"}},
		{"missing CA root", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMECARoot = filepath.Join(dir, "nope.pem") }, []string{"-acme-ca-root"}},
		{"CA root without certificates", func(c *serveConfig) { c.Domain = "scim.example.com"; c.ACMECARoot = garbage }, []string{"holds no PEM certificate"}},
		{"domain with scheme", func(c *serveConfig) { c.Domain = "https://scim.example.com/" }, []string{"must be a host name alone"}},
		{"domain with port", func(c *serveConfig) { c.Domain = "scim.example.com:443" }, []string{"must be a host name alone"}},
		{"domain is an IP", func(c *serveConfig) { c.Domain = "203.0.113.7" }, []string{"is an IP address"}},
		{"wildcard", func(c *serveConfig) { c.Domain = "*.example.com" }, []string{"is not a valid DNS name"}},
		{"localhost from Let's Encrypt", func(c *serveConfig) { c.Domain = "localhost" }, []string{"is not a public DNS name"}},
		{"-addr with HTTPS", func(c *serveConfig) { c.Domain = "scim.example.com"; c.Addr = "0.0.0.0:8080" }, []string{"-addr is the plain-HTTP address"}},
		{"same port twice", func(c *serveConfig) { c.Domain = "scim.example.com"; c.HTTPAddr = ":443" }, []string{"need different ports"}},
		{"port without colon", func(c *serveConfig) { c.Domain = "scim.example.com"; c.HTTPSAddr = "443" }, []string{`-https-addr "443" is not HOST:PORT`}},
		{"bad -addr", func(c *serveConfig) { c.Addr = "localhost" }, []string{`-addr "localhost" is not HOST:PORT`}},
		{"everything reported at once", func(c *serveConfig) { c.LogFormat = "xml"; c.Domain = "localhost"; c.TLSKey = keyFile }, []string{
			"-log-format must be text or json", "-domain gets a certificate automatically", "-tls-key needs -tls-cert too", "is not a public DNS name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServeConfigEnv(nil, io.Discard, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			tt.set(&cfg)
			err = cfg.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestValidateEnvAndFlags(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SCIMBOX_DOMAIN": "scim.example.com", "SCIMBOX_HTTP_ADDR": "", "SCIMBOX_ACME_EMAIL": "it@example.com"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := parseServeConfigEnv([]string{"-acme-email", "ops@example.com"}, io.Discard, lookup)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "scim.example.com" || cfg.HTTPAddr != "" || cfg.ACMEEmail != "ops@example.com" || !cfg.https() {
		t.Errorf("flags and SCIMBOX_* variables: %+v", cfg)
	}
	if got, want := cfg.mode(), modeACME; got != want {
		t.Errorf("mode %q, want %q", got, want)
	}
	_, err = parseServeConfigEnv(nil, io.Discard, func(k string) (string, bool) {
		return "localhost", k == "SCIMBOX_DOMAIN"
	})
	if err == nil || !strings.Contains(err.Error(), "not a public DNS name") {
		t.Errorf("SCIMBOX_DOMAIN=localhost: %v", err)
	}
}

// ---- certmagic glue ----

func TestACMEFailureHints(t *testing.T) {
	t.Parallel()
	prob := func(typ, detail string) error {
		return fmt.Errorf("[scim.example.com] Obtain: %w", acme.Problem{Type: acme.ProblemTypeNamespace + typ, Detail: detail})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"rate limit", prob("rateLimited", "too many certificates"), "rate limit was reached"},
		{"no DNS record", prob("dns", "NXDOMAIN looking up A for scim.example.com"), "could not find scim.example.com in DNS"},
		{"port closed", prob("connection", "dial tcp 203.0.113.7:80: connect: connection refused"), "open TCP ports 80 and 443"},
		{"timeout", prob("unauthorized", "Timeout during connect (likely firewall problem)"), "open TCP ports 80 and 443"},
		{"another server answers", prob("unauthorized", "Invalid response from http://scim.example.com/.well-known/acme-challenge/x: 404"), "did not answer its challenge"},
		{"CAA", prob("caa", "CAA record prevents issuance"), "CAA record"},
		{"subproblem", fmt.Errorf("x: %w", acme.Problem{Type: acme.ProblemTypeNamespace + "compound", Subproblems: []acme.Subproblem{{Problem: acme.Problem{Type: acme.ProblemTypeNamespace + "rateLimited"}}}}), "rate limit"},
		{"CA unreachable", errors.New("registering account: dial tcp: lookup acme-v02.api.letsencrypt.org: no such host"), "outbound HTTPS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acmeFailureHint(tt.err, "scim.example.com"); !strings.Contains(got, tt.want) {
				t.Errorf("hint %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestACMEZeroSSLAccount(t *testing.T) {
	t.Parallel()
	var gotEmail string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotEmail = r.PostFormValue("email")
		if gotEmail == "bad@example.com" {
			io.WriteString(w, `{"success":false,"error":{"code":2900,"type":"invalid_email"}}`)
			return
		}
		io.WriteString(w, `{"success":true,"eab_kid":"kid-1","eab_hmac_key":"mac-1"}`)
	}))
	defer srv.Close()
	iss := &certmagic.ACMEIssuer{Email: "it@example.com"}
	if _, err := zeroSSLAccount(srv.URL)(context.Background(), iss, acme.Account{}); err != nil {
		t.Fatal(err)
	}
	if gotEmail != "it@example.com" || iss.ExternalAccount == nil || *iss.ExternalAccount != (acme.EAB{KeyID: "kid-1", MACKey: "mac-1"}) {
		t.Errorf("email %q, EAB %+v", gotEmail, iss.ExternalAccount)
	}
	iss = &certmagic.ACMEIssuer{Email: "bad@example.com"}
	if _, err := zeroSSLAccount(srv.URL)(context.Background(), iss, acme.Account{}); err == nil || iss.ExternalAccount != nil {
		t.Errorf("refused email: err %v, EAB %+v", err, iss.ExternalAccount)
	}
}

func TestACMEZapLogsReachSlog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zl := zapToSlog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))).Named("obtain").With(zap.String("identifier", "scim.example.com"))
	zl.Info("acquiring lock")
	zl.Error("will retry", zap.Error(errors.New("boom")), zap.Duration("retrying_in", time.Minute))
	out := buf.String()
	if strings.Contains(out, "acquiring lock") {
		t.Errorf("certmagic's info lines should be debug:\n%s", out)
	}
	for _, want := range []string{"level=ERROR", `msg="will retry"`, "logger=obtain", "identifier=scim.example.com", "error=boom", "retrying_in=1m0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// ---- the systemd unit ----

// unitFile is a parsed systemd unit: section → key → values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	const path = "contrib/scimbox.service"
	u := parseUnit(t, path)
	svc := u["Service"]
	for key, want := range map[string]string{
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"RestrictNamespaces":      "yes",
		"StateDirectory":          "scimbox",
		"Restart":                 "on-failure",
	} {
		if got := svc[key]; len(got) == 0 || got[0] != want {
			t.Errorf("[Service] %s = %q, want %q first", key, got, want)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}

	// Every SCIMBOX_ variable names a flag, and with them ExecStart parses
	// and validates exactly as the binary would at boot.
	var known serveConfig
	fs := newFlagSet("serve", io.Discard)
	serveFlags(fs, &known)
	flagOf := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { flagOf[envName(f.Name)] = true })
	env := map[string]string{}
	for _, assignments := range svc["Environment"] {
		for _, a := range strings.Fields(assignments) {
			k, v, _ := strings.Cut(a, "=")
			if k == "GOMEMLIMIT" { // the Go runtime's, checked with the memory limits below
				env[k] = v
				continue
			}
			if !flagOf[k] {
				t.Errorf("Environment %s is not a serve flag's variable", k)
			}
			env[k] = v
		}
	}
	checkUnitMemory(t, svc, env["GOMEMLIMIT"])

	execStart := svc["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("ExecStart = %q", execStart)
	}
	args := strings.Fields(execStart[0])
	if args[0] != "/usr/local/bin/scimbox" || len(args) < 2 || args[1] != "serve" {
		t.Fatalf("ExecStart %q does not run /usr/local/bin/scimbox serve", execStart[0])
	}
	cfg, err := parseServeConfigEnv(args[2:], io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("the unit's configuration is refused: %v", err)
	}
	if got, want := cfg.mode(), modeACME; got != want {
		t.Errorf("the unit serves in mode %q, want %q", got, want)
	}
	if got := filepath.Dir(cfg.DB); got != "/var/lib/scimbox" || svc["WorkingDirectory"][0] != got {
		t.Errorf("database %s (and WorkingDirectory %q) outside the StateDirectory /var/lib/scimbox", cfg.DB, svc["WorkingDirectory"])
	}

	sockets := checkSocketUnits(t, svc, cfg)

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is not installed (apt-get install systemd): the unit was checked above, but not by systemd itself")
		return
	}
	// systemd checks that ExecStart exists: point it at this test binary.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "scimbox.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(raw, []byte("/usr/local/bin/scimbox"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := []string{"verify", unit}
	for _, socket := range sockets {
		raw, err := os.ReadFile(filepath.Join("contrib", socket))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, socket), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		verify = append(verify, filepath.Join(dir, socket))
	}
	if out, err := exec.Command(analyze, verify...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The overall exposure level must stay at 2.0 or below ("OK" is below 4).
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
	switch {
	case err != nil && bytes.Contains(out, []byte("unrecognized option")):
		t.Logf("this systemd-analyze cannot judge a unit file offline: %s", bytes.TrimSpace(out))
	case err != nil:
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}

// checkSocketUnits checks the socket units the service takes its sockets
// from: each exists in contrib/, activates scimbox.service, and holds one
// socket named for the listener it replaces, on the port the service's
// configuration would bind for that listener; together they cover every
// listener of the service's mode. It returns their file names.
func checkSocketUnits(t *testing.T, svc map[string][]string, cfg serveConfig) []string {
	t.Helper()
	var sockets []string
	for _, v := range svc["Sockets"] {
		sockets = append(sockets, strings.Fields(v)...)
	}
	// The address each socket name replaces, in the service's configuration.
	replaces := map[string]string{socketHTTPS: cfg.HTTPSAddr, socketHTTP: cfg.HTTPAddr}
	covered := map[string]bool{}
	for _, name := range sockets {
		u := parseUnit(t, filepath.Join("contrib", name))
		sock := u["Socket"]
		if got := sock["Service"]; len(got) != 1 || got[0] != "scimbox.service" {
			t.Errorf("%s: Service = %q, want scimbox.service", name, got)
		}
		if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "sockets.target" {
			t.Errorf("%s: [Install] WantedBy = %q, want sockets.target", name, got)
		}
		streams, fdName := sock["ListenStream"], sock["FileDescriptorName"]
		if len(streams) != 1 || len(fdName) != 1 {
			t.Errorf("%s: ListenStream = %q, FileDescriptorName = %q: scimbox takes one socket per name", name, streams, fdName)
			continue
		}
		addr, ok := replaces[fdName[0]]
		if !ok {
			t.Errorf("%s: FileDescriptorName = %q, which the service's mode (%s) does not use", name, fdName[0], cfg.mode())
			continue
		}
		if _, port, _ := net.SplitHostPort(addr); port != streams[0] {
			t.Errorf("%s: ListenStream = %s, but the service would bind %s itself for %q", name, streams[0], addr, fdName[0])
		}
		covered[fdName[0]] = true
	}
	for name := range replaces {
		if !covered[name] {
			t.Errorf("no socket unit in Sockets = %q replaces the %q listener", sockets, name)
		}
	}
	return sockets
}

// checkUnitMemory requires the unit to bound scimbox's memory, in an order
// that works: the Go runtime's soft limit below the kernel's reclaim point
// below the hard limit, and the hard limit above what scimbox may
// legitimately hold (its idle size plus every password hash slot).
func checkUnitMemory(t *testing.T, svc map[string][]string, goMemLimit string) {
	t.Helper()
	size := func(what, v string, units map[string]int64) int64 {
		for suffix, unit := range units {
			if n, err := strconv.ParseInt(strings.TrimSuffix(v, suffix), 10, 64); err == nil && strings.HasSuffix(v, suffix) {
				return n * unit
			}
		}
		t.Errorf("%s = %q: not a size", what, v)
		return 0
	}
	systemd := map[string]int64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
	value := func(key string) string {
		if v := svc[key]; len(v) == 1 {
			return v[0]
		}
		t.Errorf("[Service] %s = %q, want one value", key, svc[key])
		return ""
	}
	high, hard := size("MemoryHigh", value("MemoryHigh"), systemd), size("MemoryMax", value("MemoryMax"), systemd)
	soft := size("GOMEMLIMIT", goMemLimit, map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30})
	if !(soft < high && high < hard) {
		t.Errorf("GOMEMLIMIT %d < MemoryHigh %d < MemoryMax %d does not hold", soft, high, hard)
	}
	if need := int64(64<<20 + concurrentHashes*argonMemory<<10); soft < 2*need {
		t.Errorf("GOMEMLIMIT %d leaves too little room for scimbox (%d idle and hashing)", soft, need)
	}
	if got := value("MemorySwapMax"); got != "0" {
		t.Errorf("MemorySwapMax = %q, want 0: swapped pages hold password hashes and tokens in the clear", got)
	}
}

package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA hierarchy made for a test: a root, an intermediate it
// signed, and leaves the intermediate signs.
type testPKI struct {
	now                time.Time
	root, intermediate *x509.Certificate
	rootKey, interKey  crypto.Signer
	roots              *x509.CertPool
}

func newTestPKI(t *testing.T, now time.Time) *testPKI {
	t.Helper()
	p := &testPKI{now: now, rootKey: newECKey(t), interKey: newECKey(t)}
	ca := func(name string) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	p.root = signCert(t, ca("Test Root"), nil, p.rootKey.Public(), p.rootKey)
	p.intermediate = signCert(t, ca("Test Intermediate"), p.root, p.interKey.Public(), p.rootKey)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	return p
}

func newECKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signCert signs tmpl with key as parent (tmpl itself when parent is nil).
func signCert(t *testing.T, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leaf returns a server certificate for name, valid for validFor, with pub.
func (p *testPKI) leaf(t *testing.T, name string, validFor time.Duration, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	return signCert(t, leafTemplate(name, p.now, validFor), p.intermediate, pub, p.interKey)
}

func leafTemplate(name string, now time.Time, validFor time.Duration) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validFor),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
}

// TestCheckChain judges generated chains as Entra would: only a complete
// chain to a trusted root, for the right name, valid for weeks more, with a
// strong enough key, passes.
func TestCheckChain(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	pki := newTestPKI(t, now)
	key := newECKey(t)
	good := pki.leaf(t, "scim.example.com", 60*24*time.Hour, key.Public())
	selfKey := newECKey(t)
	self := signCert(t, leafTemplate("scim.example.com", now, 60*24*time.Hour), nil, selfKey.Public(), selfKey)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		chain      []*x509.Certificate
		serverName string
		roots      *x509.CertPool
		want       []string // one substring per problem expected, in order; none: ok
		refused    bool
	}{
		{name: "complete chain to the trusted root", chain: []*x509.Certificate{good, pki.intermediate}, serverName: "scim.example.com"},
		{name: "root sent too", chain: []*x509.Certificate{good, pki.intermediate, pki.root}},
		{name: "self-signed", chain: []*x509.Certificate{self}, want: []string{"self-signed"}, refused: true},
		{name: "intermediate missing", chain: []*x509.Certificate{good}, want: []string{`chain is incomplete: "scim.example.com" was issued by "Test Intermediate"`}, refused: true},
		{name: "expires in 3 days", chain: []*x509.Certificate{pki.leaf(t, "scim.example.com", 3*24*time.Hour, key.Public()), pki.intermediate},
			want: []string{"expires in 3 days"}},
		{name: "expired", chain: []*x509.Certificate{pki.leaf(t, "scim.example.com", -time.Minute, key.Public()), pki.intermediate},
			want: []string{"EXPIRED"}, refused: true},
		{name: "root Microsoft does not trust", chain: []*x509.Certificate{good, pki.intermediate}, roots: x509.NewCertPool(),
			want: []string{`chain is incomplete: "Test Intermediate" was issued by "Test Root"`}, refused: true},
		{name: "untrusted root sent", chain: []*x509.Certificate{good, pki.intermediate, pki.root}, roots: x509.NewCertPool(),
			want: []string{`leads to "Test Root", which is not among the roots Microsoft trusts`}, refused: true},
		{name: "another name", chain: []*x509.Certificate{good, pki.intermediate}, serverName: "other.example.com",
			want: []string{"is for scim.example.com, not other.example.com"}, refused: true},
		{name: "RSA key too short", chain: []*x509.Certificate{pki.leaf(t, "scim.example.com", 60*24*time.Hour, &weak.PublicKey), pki.intermediate},
			want: []string{"RSA key has 1024 bits"}, refused: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			roots := pki.roots
			if tt.roots != nil {
				roots = tt.roots
			}
			h := checkChain(tt.chain, tt.serverName, roots, now)
			if len(h.Problems) != len(tt.want) {
				t.Fatalf("problems %+v, want %d: %q", h.Problems, len(tt.want), tt.want)
			}
			for i, p := range h.Problems {
				if !strings.Contains(p.Problem, tt.want[i]) || p.Fix == "" {
					t.Errorf("problem %q (fix %q), want it to say %q and what to do", p.Problem, p.Fix, tt.want[i])
				}
				if p.Refused != tt.refused {
					t.Errorf("problem %q: Refused = %v, want %v", p.Problem, p.Refused, tt.refused)
				}
			}
			if got, want := h.OK(), len(tt.want) == 0; got != want {
				t.Errorf("OK() = %v, want %v", got, want)
			}
			if h.OK() && h.Root != "Test Root" {
				t.Errorf("Root = %q, want Test Root", h.Root)
			}
		})
	}
}

// TestTLSCheckerObserves logs the verdict on each chain put in use, loudly
// when Entra would refuse it, and answers tlsHealth with the verdict as of
// the time of asking.
func TestTLSCheckerObserves(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	pki := newTestPKI(t, now)
	var logs bytes.Buffer
	c := newTLSChecker(slog.New(slog.NewTextHandler(&logs, nil)))
	c.roots, c.now = pki.roots, func() time.Time { return now }
	if _, ok := c.tlsHealth(); ok {
		t.Error("tlsHealth before any chain was served says it has a verdict")
	}
	key := newECKey(t)
	leaf := pki.leaf(t, "scim.example.com", 20*24*time.Hour, key.Public())
	served := &tls.Certificate{Certificate: [][]byte{leaf.Raw, pki.intermediate.Raw}}
	if h := c.observe(served, "scim.example.com"); !h.OK() {
		t.Fatalf("a good chain: %+v", h.Problems)
	}
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "Entra will accept") {
		t.Errorf("log after a good chain:\n%s", logs.String())
	}
	now = now.Add(10 * 24 * time.Hour) // no event: the certificate just nears its end
	h, ok := c.tlsHealth()
	if !ok || len(h.Problems) != 1 || !strings.Contains(h.Problems[0].Problem, "expires in 10 days") {
		t.Errorf("tlsHealth ten days later: %v %+v", ok, h.Problems)
	}

	logs.Reset()
	c.observe(&tls.Certificate{Certificate: [][]byte{leaf.Raw}}, "scim.example.com") // a reload without the intermediate
	if line := logs.String(); !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "chain is incomplete") || !strings.Contains(line, "fix=") {
		t.Errorf("log after an incomplete chain:\n%s", line)
	}
}

// TestCertReloaderChecksEachLoad runs the check when -tls-cert is loaded and
// again when the files change.
func TestCertReloaderChecksEachLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, certFile, keyFile, true) // self-signed
	var logs bytes.Buffer
	check := newTLSChecker(slog.New(slog.NewTextHandler(&logs, nil)))
	r, err := newCertReloader(certFile, keyFile, nil, check, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := check.tlsHealth(); !ok || len(h.Problems) != 1 || !strings.Contains(h.Problems[0].Problem, "self-signed") {
		t.Fatalf("after loading a self-signed certificate: %v %+v", ok, h.Problems)
	}

	// The admin installs a certificate from a CA (here one the checker is told to trust).
	pki := newTestPKI(t, time.Now())
	check.roots = pki.roots
	key := newECKey(t)
	leaf := pki.leaf(t, "localhost", 60*24*time.Hour, key.Public())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	var chain bytes.Buffer
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: pki.intermediate.Raw})
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, chain.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
	if h, ok := check.tlsHealth(); !ok || !h.OK() {
		t.Errorf("after reloading a complete chain: %v %+v\n%s", ok, h.Problems, logs.String())
	}
}

// TestMicrosoftRoots checks the embedded list: every entry a CA certificate
// valid today, among them the roots of the CAs scimbox's ACME client uses
// (Let's Encrypt, and ZeroSSL through Sectigo's USERTrust).
func TestMicrosoftRoots(t *testing.T) {
	t.Parallel()
	rest := microsoftRootsPEM
	names := map[string]bool{}
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !c.IsCA || !selfSigned(c) {
			t.Errorf("%s is not a self-signed CA certificate", c.Subject)
		}
		if time.Now().After(c.NotAfter) {
			t.Errorf("%s expired on %s: remove it from tlsroots.pem", c.Subject, c.NotAfter)
		}
		names[c.Subject.CommonName] = true
	}
	for _, want := range []string{"ISRG Root X1", "ISRG Root X2", "USERTrust RSA Certification Authority", "DigiCert Global Root G2", "GlobalSign", "GTS Root R1"} {
		if !names[want] {
			t.Errorf("tlsroots.pem lacks %s", want)
		}
	}
	if len(names) < 30 {
		t.Errorf("tlsroots.pem holds %d roots", len(names))
	}
}

// TestEntraTLSSuites: the HTTPS server answers a TLS 1.2 client that offers
// only one of the ECDHE suites Entra uses, with an RSA and an ECDSA
// certificate, and refuses TLS 1.1.
func TestEntraTLSSuites(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, time.Now())
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey := newECKey(t)
	certs := map[string]tls.Certificate{
		"RSA":   {Certificate: [][]byte{pki.leaf(t, "localhost", time.Hour, &rsaKey.PublicKey).Raw, pki.intermediate.Raw}, PrivateKey: rsaKey},
		"ECDSA": {Certificate: [][]byte{pki.leaf(t, "localhost", time.Hour, ecKey.Public()).Raw, pki.intermediate.Raw}, PrivateKey: ecKey},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := forEntra(&tls.Config{Certificates: []tls.Certificate{certs["ECDSA"], certs["RSA"]}})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				tls.Server(conn, srv).Handshake()
			}()
		}
	}()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.ServerName, cfg.RootCAs = "localhost", pki.roots
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	for _, suite := range entraCipherSuites {
		name := tls.CipherSuiteName(suite)
		state, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
		if err != nil {
			t.Errorf("TLS 1.2 with only %s: %v", name, err)
			continue
		}
		if state.Version != tls.VersionTLS12 || state.CipherSuite != suite {
			t.Errorf("offered only %s: negotiated %s, %s", name, tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
		}
		wantKey := map[bool]string{true: "ECDSA", false: "RSA"}[strings.Contains(name, "ECDSA")]
		if got := state.PeerCertificates[0].PublicKeyAlgorithm.String(); got != wantKey {
			t.Errorf("%s: served a %s certificate", name, got)
		}
	}
	if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
}

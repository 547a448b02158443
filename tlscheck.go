// The certificate chain Entra will accept: checked when it is loaded (at
// start, after each ACME renewal, after each reload of -tls-cert) against the
// roots Microsoft trusts, so that a chain Entra would refuse is reported in
// the log, with what to do, before a provisioning cycle fails on it.

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// microsoftRootsPEM are the roots of Microsoft's Trusted Root Program that
// scimbox knows; the file's header says which and why.
//
//go:embed tlsroots.pem
var microsoftRootsPEM []byte

// tlsMinValidity is how long the served certificate must still be valid
// before it is reported: ACME renews a 90-day certificate 30 days before it
// expires, so 14 days left means renewal has been failing for two weeks.
const tlsMinValidity = 14 * 24 * time.Hour

// entraCipherSuites are the TLS 1.2 suites of Microsoft's "minimum bar" for
// SCIM endpoints that Go implements without known weaknesses: the ECDHE
// AES-GCM ones. (The list's CBC-SHA256/384 suites are either absent from Go
// or among its insecure ones; Entra offers the GCM ones too.) TLS 1.3,
// whose suites are not configurable, stays on for browsers.
var entraCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
}

// forEntra sets what Entra's provisioning service requires of the TLS
// server: TLS 1.2 or later, and the ECDHE suites it offers.
func forEntra(tc *tls.Config) *tls.Config {
	tc.MinVersion = tls.VersionTLS12
	tc.CipherSuites = entraCipherSuites
	return tc
}

// TLSHealth is the verdict on the certificate chain scimbox serves.
type TLSHealth struct {
	Checked  time.Time
	Names    []string  // the DNS names the certificate is for
	Issuer   string    // who issued it
	Root     string    // the root it chains to among Microsoft's; "" when it does not
	NotAfter time.Time // when it expires
	Problems []TLSProblem
}

// TLSProblem is one reason Entra may refuse the chain, and what to do.
type TLSProblem struct {
	Problem string
	Fix     string
	// Refused: Entra refuses a chain with this problem (otherwise it will
	// soon, or may).
	Refused bool
}

// OK reports whether the chain has no problem.
func (h TLSHealth) OK() bool { return len(h.Problems) == 0 }

// tlsChecker checks each chain scimbox starts serving and keeps the last one.
type tlsChecker struct {
	roots *x509.CertPool // the roots Microsoft trusts (tests inject their own)
	now   func() time.Time
	log   *slog.Logger

	mu         sync.Mutex
	chain      []*x509.Certificate
	serverName string
}

func newTLSChecker(log *slog.Logger) *tlsChecker {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(microsoftRootsPEM) // checked by TestMicrosoftRoots
	return &tlsChecker{roots: roots, now: time.Now, log: log}
}

// observe checks the chain of cert, now being served for serverName ("" when
// unknown, as with -tls-cert), and logs the verdict: one line if it is fine,
// one loud line per problem otherwise.
func (c *tlsChecker) observe(cert *tls.Certificate, serverName string) TLSHealth {
	var chain []*x509.Certificate
	for _, der := range cert.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			c.log.Error("TLS check: a certificate of the chain cannot be parsed", "err", err)
			return TLSHealth{}
		}
		chain = append(chain, x)
	}
	if len(chain) == 0 {
		return TLSHealth{}
	}
	c.mu.Lock()
	c.chain, c.serverName = chain, serverName
	c.mu.Unlock()
	h := checkChain(chain, serverName, c.roots, c.now())
	attrs := []any{"names", h.Names, "issuer", h.Issuer, "expires", h.NotAfter.Format(time.RFC3339)}
	if h.OK() {
		c.log.Info("TLS check: Entra will accept this certificate chain", append(attrs, "root", h.Root)...)
	}
	for _, p := range h.Problems {
		level := slog.LevelWarn
		if p.Refused {
			level = slog.LevelError
		}
		c.log.Log(context.Background(), level, "TLS check: "+p.Problem, append(attrs, "fix", p.Fix)...)
	}
	return h
}

// tlsHealth returns the verdict on the chain being served, as of now (a
// certificate nears its end without any event), and false before any chain
// was served or without HTTPS in scimbox itself.
func (c *tlsChecker) tlsHealth() (TLSHealth, bool) {
	if c == nil {
		return TLSHealth{}, false
	}
	c.mu.Lock()
	chain, name := c.chain, c.serverName
	c.mu.Unlock()
	if chain == nil {
		return TLSHealth{}, false
	}
	return checkChain(chain, name, c.roots, c.now()), true
}

// checkChain judges a served chain (leaf first, as sent) as Entra's client
// would: it must lead, with the certificates sent, to one of roots; the
// leaf must be valid now and for tlsMinValidity more, be for serverName
// (when known), and have a key Entra accepts (RSA ≥ 2048 bits, ECDSA ≥ 256).
func checkChain(chain []*x509.Certificate, serverName string, roots *x509.CertPool, now time.Time) TLSHealth {
	leaf := chain[0]
	h := TLSHealth{Checked: now, Names: leaf.DNSNames, Issuer: nameOf(leaf.Issuer.CommonName, leaf.Issuer.Organization), NotAfter: leaf.NotAfter}
	add := func(refused bool, fix, format string, args ...any) {
		h.Problems = append(h.Problems, TLSProblem{Problem: fmt.Sprintf(format, args...), Fix: fix, Refused: refused})
	}
	newCert := "get a new certificate: with -domain scimbox obtains one from Let's Encrypt by itself"

	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 {
			add(true, newCert, "the certificate's RSA key has %d bits; Entra requires at least 2048", bits)
		}
	case *ecdsa.PublicKey:
		if bits := k.Curve.Params().BitSize; bits < 256 {
			add(true, newCert, "the certificate's ECDSA key has %d bits; Entra requires at least 256", bits)
		}
	default:
		add(true, newCert+" (with an RSA or ECDSA key)", "the certificate has a %T key; Entra's TLS 1.2 suites need an RSA or ECDSA one", leaf.PublicKey)
	}

	timeReported := true
	switch left := leaf.NotAfter.Sub(now); {
	case now.Before(leaf.NotBefore):
		add(true, "check this machine's clock, or wait until the certificate is valid", "the certificate is not valid before %s", leaf.NotBefore.Format(time.RFC3339))
	case left <= 0:
		add(true, renewFix(), "the certificate EXPIRED on %s", leaf.NotAfter.Format(time.RFC3339))
	case left < tlsMinValidity:
		add(false, renewFix(), "the certificate expires in %d days (%s)", int(left.Hours()/24), leaf.NotAfter.Format(time.RFC3339))
		timeReported = false // Verify still accepts it
	default:
		timeReported = false
	}

	if selfSigned(leaf) {
		add(true, newCert+", or one from your organization's public CA, with its full chain",
			"the certificate is self-signed: Entra accepts only a chain from a public CA that Microsoft trusts")
		return h
	}

	// The path as sent: from the leaf up through the certificates sent. It
	// must end at a root, or at a certificate a trusted root issued.
	top, chainReported := leaf, false
	for range chain {
		issuer := issuerIn(top, chain)
		if issuer == nil {
			break
		}
		top = issuer
	}
	if !selfSigned(top) && !issuedByRoot(top, roots, now) {
		// Either an intermediate was left out, or a private CA issued it:
		// without the issuer's certificate the two look alike.
		add(true, "serve the full chain: put the intermediate certificate(s) after yours in the -tls-cert file (fullchain.pem rather than cert.pem); "+
			"if the chain is complete, the CA is not a public one: "+newCert,
			"the chain is incomplete: %q was issued by %q, which is neither sent nor a root Microsoft trusts",
			nameOf(top.Subject.CommonName, top.Subject.Organization), nameOf(top.Issuer.CommonName, top.Issuer.Organization))
		chainReported = true
	}

	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
		root := chains[0][len(chains[0])-1]
		h.Root = nameOf(root.Subject.CommonName, root.Subject.Organization)
	case errors.As(err, &hostErr):
		add(true, "get a certificate for the name in Entra's Tenant URL", "the certificate is for %s, not %s", strings.Join(leaf.DNSNames, ", "), serverName)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired && timeReported:
	case errors.As(err, &unknown) && !chainReported:
		root := nameOf(top.Issuer.CommonName, top.Issuer.Organization)
		if selfSigned(top) {
			root = nameOf(top.Subject.CommonName, top.Subject.Organization)
		}
		add(true, "use a certificate from a public CA in Microsoft's Trusted Root Program (Let's Encrypt, DigiCert, Sectigo, GlobalSign, GoDaddy…; -domain gets one by itself); "+
			"if your CA is public, check that Microsoft's program includes its root (the CCADB \"Microsoft Included CA Certificate Report\") and ignore this",
			"the chain leads to %q, which is not among the roots Microsoft trusts that scimbox knows", root)
	case errors.As(err, &unknown):
	default:
		add(true, "get a certificate for server authentication from a public CA", "the chain does not verify: %v", err)
	}
	return h
}

func renewFix() string {
	return "with -domain, see the certificate lines of the log for why renewal fails; with -tls-cert, replace the files (scimbox reloads them by itself)"
}

// selfSigned reports whether c is its own issuer. (CheckSignatureFrom
// would refuse a leaf, which is no CA, and the SHA-1 self-signatures of old
// roots, which nobody checks.)
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawSubject, c.RawIssuer) {
		return false
	}
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	return err == nil || errors.As(err, new(x509.InsecureAlgorithmError))
}

// issuerIn returns the certificate of chain that signed c, other than c.
func issuerIn(c *x509.Certificate, chain []*x509.Certificate) *x509.Certificate {
	for _, p := range chain {
		if p != c && !p.Equal(c) && c.Issuer.String() == p.Subject.String() && c.CheckSignatureFrom(p) == nil {
			return p
		}
	}
	return nil
}

// issuedByRoot reports whether one of roots signed c directly.
func issuedByRoot(c *x509.Certificate, roots *x509.CertPool, now time.Time) bool {
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil || !errors.As(err, new(x509.UnknownAuthorityError))
}

// nameOf names a certificate's subject or issuer for the log.
func nameOf(commonName string, org []string) string {
	switch {
	case commonName != "":
		return commonName
	case len(org) > 0:
		return org[0]
	}
	return "(unnamed)"
}

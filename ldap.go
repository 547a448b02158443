// A read-only LDAP v3 interface to the directory, for the apps on the LAN
// that speak only LDAP: app keys with the ldap scope bind as
// cn=NAME,ou=apps,BASE and search the effective users and groups.
//
// The protocol is served on go-ldap's message definitions, controls and DN
// parser with go-asn1-ber rather than on an LDAP server framework: the one
// tried (jimlambrt/gldap v0.1.14) binds its own socket in Run, so a SIGHUP
// upgrade could not hand the listener over (the new process would find the
// port taken) and tests could not listen on port 0, and its read timeout is
// one deadline for a connection's whole life.

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

const (
	// ldapIdleTimeout closes a connection that sends nothing for this long.
	ldapIdleTimeout = 5 * time.Minute
	// ldapWriteTimeout bounds writing one response to a client that does not read.
	ldapWriteTimeout = time.Minute
	// ldapMaxRequest bounds a request's size: a search request is a few hundred bytes.
	ldapMaxRequest = 1 << 20

	oidStartTLS = "1.3.6.1.4.1.1466.20037"
	oidWhoAmI   = "1.3.6.1.4.1.4203.1.11.3"
	oidPaging   = ldap.ControlTypePaging
)

// ldapConfig is what serve's -ldap-* flags say.
type ldapConfig struct {
	Addr         string // plain LDAP with StartTLS; "" turns it off
	TLSAddr      string // LDAPS; "" turns it off
	BaseDN       string // "" derives it from the users' userName domain
	AllowPlain   bool   // binds and searches without TLS on a non-loopback address
	ShowDisabled bool   // disabled users are listed with nsAccountLock: TRUE instead of hidden
}

func (c ldapConfig) enabled() bool { return c.Addr != "" || c.TLSAddr != "" }

// validate checks the LDAP flags against how scimbox gets a certificate.
func (c ldapConfig) validate(haveCert bool) error {
	if !c.enabled() {
		return nil
	}
	if c.BaseDN != "" {
		if _, err := ldap.ParseDN(c.BaseDN); err != nil || c.BaseDN == "" {
			return fmt.Errorf("-ldap-base-dn %q is not a DN such as dc=example,dc=com: %v", c.BaseDN, err)
		}
	}
	if c.TLSAddr != "" && !haveCert {
		return errors.New("-ldaps-addr needs a certificate: serve with -domain or -tls-cert/-tls-key, whose certificate LDAPS uses too")
	}
	if c.Addr != "" && !haveCert && !c.AllowPlain && !loopbackAddr(c.Addr) {
		return fmt.Errorf("-ldap-addr %s is reachable from other machines, but without -domain or -tls-cert there is no certificate for StartTLS, "+
			"so app keys would cross the network in the clear: listen on 127.0.0.1, serve with a certificate, or give -ldap-allow-plain if the network is yours", c.Addr)
	}
	return nil
}

// loopbackAddr reports whether addr (HOST:PORT) listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ldapServer serves LDAP on its listeners until stop.
type ldapServer struct {
	store *Store
	log   *slog.Logger
	cfg   ldapConfig
	tls   *tls.Config // nil without a certificate: no StartTLS, no LDAPS
	dir   *ldapDirectory
	limit *loginLimiter // failed binds per client address, as for SCIM tokens

	mu    sync.Mutex
	lns   []ldapListener
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
	ctx   context.Context
	stopc context.CancelFunc
}

// ldapListener is a listener and whether it speaks TLS from the first byte.
type ldapListener struct {
	ln  net.Listener
	tls bool
}

func newLDAPServer(store *Store, cfg ldapConfig, tlsConfig *tls.Config, log *slog.Logger) *ldapServer {
	ctx, cancel := context.WithCancel(context.Background())
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.NextProtos = nil // the HTTPS config offers h2 and acme-tls/1
	}
	return &ldapServer{store: store, log: log, cfg: cfg, tls: tlsConfig, dir: newLDAPDirectory(store, cfg),
		limit: newLimiter(authFailures, authWindow), conns: map[net.Conn]struct{}{}, ctx: ctx, stopc: cancel}
}

// serve accepts connections on ln until stop; tlsFirst wraps them in TLS (LDAPS).
func (s *ldapServer) serve(ln net.Listener, tlsFirst bool) {
	s.mu.Lock()
	s.lns = append(s.lns, ldapListener{ln, tlsFirst})
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				return // closed by stop
			}
			if tlsFirst {
				c = tls.Server(c, s.tls)
			}
			if !s.track(c, true) {
				c.Close()
				return
			}
			s.wg.Go(func() {
				defer s.track(c, false)
				defer c.Close()
				s.serveConn(c, tlsFirst)
			})
		}
	})
}

// track adds or removes an open connection; adding fails once stopping.
func (s *ldapServer) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.done {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// closeListeners stops accepting: on a SIGHUP hand-over the new process
// accepts on the same sockets from then on.
func (s *ldapServer) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lns {
		l.ln.Close()
	}
}

// stop closes the listeners and every connection (an operation in flight is
// cancelled), and returns once every connection's goroutine has: before the
// store closes.
func (s *ldapServer) stop() {
	if s == nil {
		return
	}
	s.closeListeners()
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.stopc()
	s.wg.Wait()
}

// ldapSession is one client connection's state.
type ldapSession struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	tls     bool
	bound   string // the app key's name once bound; "" anonymous
	key     string // the bound app key, checked again before each search so that revoking it takes effect at once
	client  string // the client's IP address, for the bind limiter and the log
	secured bool   // plain LDAP allowed here: loopback or -ldap-allow-plain
}

// serveConn reads requests one at a time and answers each before the next:
// LDAP clients may pipeline, and they get their answers in order.
func (s *ldapServer) serveConn(c net.Conn, tlsFirst bool) {
	sess := &ldapSession{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), tls: tlsFirst, client: hostOf(c.RemoteAddr())}
	local, _ := netip.ParseAddrPort(c.LocalAddr().String())
	sess.secured = s.cfg.AllowPlain || local.Addr().Unmap().IsLoopback()
	defer func() {
		if sess.conn != c { // after StartTLS
			sess.conn.Close()
			s.track(sess.conn, false)
		}
	}()
	for {
		sess.conn.SetReadDeadline(time.Now().Add(ldapIdleTimeout))
		p, err := readLDAPPacket(sess.r)
		if err != nil {
			return
		}
		if len(p.Children) < 2 {
			return // not an LDAPMessage: nothing sensible to answer
		}
		id, ok := p.Children[0].Value.(int64)
		if !ok {
			return
		}
		op := p.Children[1]
		var controls []*ber.Packet
		if len(p.Children) > 2 && p.Children[2].ClassType == ber.ClassContext && p.Children[2].Tag == 0 {
			controls = p.Children[2].Children
		}
		sess.conn.SetWriteDeadline(time.Now().Add(ldapWriteTimeout))
		keep := s.handle(sess, id, op, controls)
		if err := sess.w.Flush(); err != nil || !keep {
			return
		}
	}
}

// readLDAPPacket reads one BER message, refusing one larger than ldapMaxRequest.
func readLDAPPacket(r *bufio.Reader) (*ber.Packet, error) {
	// ber reads a packet's whole announced length; peek at it first so that
	// a forged length cannot make it allocate gigabytes.
	hdr, err := r.Peek(2)
	if err != nil {
		return nil, err
	}
	if n := int(hdr[1]); n&0x80 != 0 {
		size := n & 0x7f
		if size == 0 || size > 4 {
			return nil, errors.New("ldap: unsupported length")
		}
		b, err := r.Peek(2 + size)
		if err != nil {
			return nil, err
		}
		length := 0
		for _, x := range b[2:] {
			length = length<<8 | int(x)
		}
		if length > ldapMaxRequest {
			return nil, errors.New("ldap: request too large")
		}
	}
	return ber.ReadPacket(r)
}

// hostOf is the IP address of a TCP address.
func hostOf(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// handle answers one request; false closes the connection.
func (s *ldapServer) handle(sess *ldapSession, id int64, op *ber.Packet, controls []*ber.Packet) bool {
	if op.ClassType != ber.ClassApplication {
		return false
	}
	switch op.Tag {
	case ldap.ApplicationBindRequest:
		code, msg := s.bind(sess, op)
		sess.send(id, ldapResult(ldap.ApplicationBindResponse, code, msg))
	case ldap.ApplicationUnbindRequest:
		return false
	case ldap.ApplicationSearchRequest:
		s.search(sess, id, op, controls)
	case ldap.ApplicationExtendedRequest:
		return s.extended(sess, id, op)
	case ldap.ApplicationAbandonRequest:
		// Requests are answered one at a time, so there is nothing left to abandon.
	case ldap.ApplicationModifyRequest, ldap.ApplicationAddRequest, ldap.ApplicationDelRequest,
		ldap.ApplicationModifyDNRequest, ldap.ApplicationCompareRequest:
		// Each response's tag is its request's plus one.
		sess.send(id, ldapResult(op.Tag+1, ldap.LDAPResultUnwillingToPerform,
			"scimbox serves the directory read-only: changes come from Entra ID or the admin page"))
	default:
		sess.send(id, ldapResult(ldap.ApplicationExtendedResponse, ldap.LDAPResultProtocolError, "unknown operation"))
		return false
	}
	return true
}

// bind checks a simple bind as cn=NAME,ou=apps,BASE with an ldap-scope app
// key. Anonymous and SASL binds are refused; failures count against the
// client's address like refused SCIM tokens.
func (s *ldapServer) bind(sess *ldapSession, op *ber.Packet) (uint16, string) {
	sess.bound, sess.key = "", ""
	if len(op.Children) < 3 {
		return ldap.LDAPResultProtocolError, "malformed bind request"
	}
	if v, _ := op.Children[0].Value.(int64); v != 3 {
		return ldap.LDAPResultProtocolError, "scimbox speaks LDAP version 3 only"
	}
	name, _ := op.Children[1].Value.(string)
	auth := op.Children[2]
	if auth.ClassType != ber.ClassContext || auth.Tag != 0 {
		return ldap.LDAPResultAuthMethodNotSupported, "use a simple bind: cn=NAME,ou=apps," + s.dir.base() + " and an app key with the ldap scope"
	}
	password := auth.Data.String()
	if name == "" || password == "" {
		return ldap.LDAPResultInappropriateAuthentication, "anonymous binds are refused: bind as cn=NAME,ou=apps," + s.dir.base() + " with an app key with the ldap scope"
	}
	if !sess.tls && !sess.secured {
		return ldap.LDAPResultConfidentialityRequired, "use StartTLS or LDAPS: the app key would cross the network in the clear"
	}
	now := time.Now()
	if wait := s.limit.blocked(sess.client, now); wait > 0 {
		return ldap.LDAPResultBusy, fmt.Sprintf("too many failed binds from this address; try again in %s", wait.Round(time.Second))
	}
	appName, ok := s.dir.appName(name)
	key, err := s.store.AuthenticateAppKey(s.ctx, password, scopeLDAP)
	switch {
	case err == nil && ok && strings.EqualFold(key.Name, appName):
		sess.bound, sess.key = key.Name, password
		s.log.Info("ldap bind", "app", key.Name, "key", key.ID, "client", sess.client)
		return ldap.LDAPResultSuccess, ""
	case err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrWrongScope):
		s.log.Error("ldap bind", "client", sess.client, "err", err)
		return ldap.LDAPResultUnavailable, "the directory is not available right now"
	}
	s.limit.fail(sess.client, now)
	s.log.Info("ldap bind refused", "dn", name, "client", sess.client, "wrong_scope", errors.Is(err, ErrWrongScope))
	return ldap.LDAPResultInvalidCredentials, ""
}

// stillBound checks the bound key again: a key revoked since the bind no
// longer reads. The check is an indexed lookup; the key's last use is
// written at most once a minute.
func (s *ldapServer) stillBound(sess *ldapSession) (uint16, string) {
	if sess.bound == "" {
		return ldap.LDAPResultInsufficientAccessRights, "bind first as cn=NAME,ou=apps," + s.dir.base() + " with an app key with the ldap scope"
	}
	_, err := s.store.AuthenticateAppKey(s.ctx, sess.key, scopeLDAP)
	switch {
	case err == nil:
		return ldap.LDAPResultSuccess, ""
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrWrongScope):
		sess.bound, sess.key = "", ""
		return ldap.LDAPResultInsufficientAccessRights, "the app key was revoked: bind again with a valid one"
	}
	s.log.Error("ldap key check", "client", sess.client, "err", err)
	return ldap.LDAPResultUnavailable, "the directory is not available right now"
}

// extended serves StartTLS and Who am I?; false closes the connection.
func (s *ldapServer) extended(sess *ldapSession, id int64, op *ber.Packet) bool {
	var name string
	if len(op.Children) > 0 {
		name = op.Children[0].Data.String()
	}
	switch name {
	case oidStartTLS:
		if s.tls == nil || sess.tls {
			sess.send(id, extendedResult(ldap.LDAPResultOperationsError, "TLS is not available here, or already on", name, ""))
			return true
		}
		sess.send(id, extendedResult(ldap.LDAPResultSuccess, "", name, ""))
		if sess.w.Flush() != nil {
			return false
		}
		tc := tls.Server(sess.conn, s.tls)
		tc.SetDeadline(time.Now().Add(ldapWriteTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Info("ldap StartTLS handshake failed", "client", sess.client, "err", err)
			return false
		}
		tc.SetDeadline(time.Time{})
		s.mu.Lock()
		s.conns[tc] = struct{}{} // stop closes the TLS conn, and the raw one under it
		s.mu.Unlock()
		sess.conn, sess.r, sess.w, sess.tls, sess.bound, sess.key = tc, bufio.NewReader(tc), bufio.NewWriter(tc), true, "", ""
		return true
	case oidWhoAmI:
		who := ""
		if sess.bound != "" {
			who = "dn:" + s.dir.appDN(sess.bound)
		}
		p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedResponse, nil, "")
		appendResult(p, ldap.LDAPResultSuccess, "")
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, who, ""))
		sess.send(id, p)
		return true
	}
	sess.send(id, extendedResult(ldap.LDAPResultProtocolError, "unsupported extended operation "+name, "", ""))
	return true
}

// send writes one response message (buffered; serveConn flushes).
func (sess *ldapSession) send(id int64, op *ber.Packet, controls ...ldap.Control) {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	p.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, c := range controls {
			cs.AppendChild(c.Encode())
		}
		p.AppendChild(cs)
	}
	sess.w.Write(p.Bytes())
}

// ldapResult is an LDAPResult-shaped response with tag.
func ldapResult(tag ber.Tag, code uint16, msg string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	appendResult(p, code, msg)
	return p
}

func appendResult(p *ber.Packet, code uint16, msg string) {
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), ""))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", ""))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, msg, ""))
}

// extendedResult is an ExtendedResponse with the operation's name.
func extendedResult(code uint16, msg, name, value string) *ber.Packet {
	p := ldapResult(ldap.ApplicationExtendedResponse, code, msg)
	if name != "" {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, ""))
	}
	if value != "" {
		p.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 11, value, ""))
	}
	return p
}

// ldapFlagsOn defines serve's -ldap-* flags.
func ldapFlagsOn(fs *flag.FlagSet, c *ldapConfig) {
	fs.StringVar(&c.Addr, "ldap-addr", "", `address to serve read-only LDAP (with StartTLS) on, e.g. 127.0.0.1:389 or :389; "" turns it off`)
	fs.StringVar(&c.TLSAddr, "ldaps-addr", "", `address to serve LDAPS on with the HTTPS certificate, e.g. :636; "" turns it off`)
	fs.StringVar(&c.BaseDN, "ldap-base-dn", "", "the LDAP tree's base DN (default: from the domain of the first user's userName, e.g. dc=example,dc=com)")
	fs.BoolVar(&c.AllowPlain, "ldap-allow-plain", false, "allow LDAP binds and searches without TLS on a non-loopback -ldap-addr (app keys then cross the network in the clear)")
	fs.BoolVar(&c.ShowDisabled, "ldap-show-disabled", false, "list disabled users in LDAP with nsAccountLock: TRUE instead of hiding them")
}

// listenLDAP binds -ldap-addr and -ldaps-addr through the handover, so that a
// SIGHUP upgrade passes the sockets on like the HTTP ones.
func listenLDAP(cfg ldapConfig, h *handover) (plain, secure net.Listener, err error) {
	if cfg.Addr != "" {
		if plain, err = h.listen("ldap-addr", "ldap", cfg.Addr); err != nil {
			return nil, nil, err
		}
	}
	if cfg.TLSAddr != "" {
		if secure, err = h.listen("ldaps-addr", "ldaps", cfg.TLSAddr); err != nil {
			if plain != nil {
				plain.Close()
			}
			return nil, nil, err
		}
	}
	return plain, secure, nil
}

// startLDAP serves LDAP on the listeners bound, with the certificate of the
// HTTPS server among servers; nil when LDAP is off.
func startLDAP(store *Store, cfg ldapConfig, plain, secure net.Listener, servers []served, log *slog.Logger) *ldapServer {
	if plain == nil && secure == nil {
		return nil
	}
	var tlsConfig *tls.Config
	for _, s := range servers {
		if s.tls && s.srv.TLSConfig != nil {
			tlsConfig = s.srv.TLSConfig
			break
		}
	}
	s := newLDAPServer(store, cfg, tlsConfig, log)
	if plain != nil {
		s.serve(plain, false)
	}
	if secure != nil {
		s.serve(secure, true)
	}
	log.Info("serving LDAP", "ldap", cfg.Addr, "ldaps", cfg.TLSAddr, "base_dn", s.dir.base(), "starttls", tlsConfig != nil)
	return s
}

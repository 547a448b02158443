package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// ldapFixture is a test server with an LDAP listener on loopback and a
// self-signed certificate for StartTLS.
type ldapFixture struct {
	*testServer
	ldap    *ldapServer
	addr    string
	roots   *x509.CertPool
	key     string // an app key with the ldap scope, named gitea
	bindDN  string
	baseDN  string
	apiKey  string
	keyID   string
	userIDs map[string]string
}

// selfSignedTLS returns a server config for 127.0.0.1 and a pool trusting it.
func selfSignedTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}, pool
}

// newLDAPFixture creates alice, bob and carol (disabled) @example.com, the
// group Sales (alice and the nested group Engineering, which holds bob),
// and serves LDAP with the default base DN.
func newLDAPFixture(t testing.TB, cfg ldapConfig) *ldapFixture {
	t.Helper()
	ts := newTestServer(t)
	f := &ldapFixture{testServer: ts, userIDs: map[string]string{}}
	for _, n := range []string{"alice", "bob", "carol"} {
		f.userIDs[n] = ts.createUser(t, n+"@example.com")
	}
	if status, _, doc := ts.do(t, "PATCH", "/Users/"+f.userIDs["carol"], map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "replace", "path": "active", "value": false}},
	}); status != http.StatusOK {
		t.Fatalf("disable carol: %d %v", status, doc)
	}
	sales, eng := ts.createGroup(t, "Sales"), ts.createGroup(t, "Engineering")
	addMembersByPatch(t, ts, sales, f.userIDs["alice"], eng, f.userIDs["carol"])
	addMembersByPatch(t, ts, eng, f.userIDs["bob"])
	ctx := context.Background()
	var k Token
	var err error
	if f.key, k, err = ts.store.CreateScopedAppKey(ctx, "gitea", scopeLDAP); err != nil {
		t.Fatal(err)
	}
	f.keyID = k.ID
	if f.apiKey, _, err = ts.store.CreateScopedAppKey(ctx, "intranet", scopeAPI); err != nil {
		t.Fatal(err)
	}
	tlsConfig, roots := selfSignedTLS(t)
	f.roots = roots
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ldap = newLDAPServer(ts.store, cfg, tlsConfig, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.ldap.serve(ln, false)
	t.Cleanup(f.ldap.stop)
	f.addr = ln.Addr().String()
	f.baseDN = f.ldap.dir.base()
	f.bindDN = "cn=gitea,ou=apps," + f.baseDN
	return f
}

// dial connects a go-ldap client.
func (f *ldapFixture) dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL("ldap://" + f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// bound is a connection bound as the gitea app key.
func (f *ldapFixture) bound(t testing.TB) *ldap.Conn {
	t.Helper()
	c := f.dial(t)
	if err := c.Bind(f.bindDN, f.key); err != nil {
		t.Fatalf("bind: %v", err)
	}
	return c
}

func resultCode(err error) uint16 {
	var le *ldap.Error
	if errors.As(err, &le) {
		return le.ResultCode
	}
	return 0
}

func dns(res *ldap.SearchResult) []string {
	var out []string
	for _, e := range res.Entries {
		out = append(out, e.DN)
	}
	return out
}

// TestLDAPBinds: only an ldap-scope app key binds, as its own cn under
// ou=apps; anonymous, wrong, api-scope and revoked keys are refused, and a
// refused connection reads nothing.
func TestLDAPBinds(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	if f.baseDN != "dc=example,dc=com" {
		t.Errorf("base DN %q, want dc=example,dc=com derived from the userNames", f.baseDN)
	}
	f.bound(t)
	revoked, k, err := f.store.CreateScopedAppKey(context.Background(), "old", scopeLDAP)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeAppKey(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dn, password string
		code               uint16
	}{
		{"wrong password", f.bindDN, f.key + "x", ldap.LDAPResultInvalidCredentials},
		{"api-scope key", "cn=intranet,ou=apps," + f.baseDN, f.apiKey, ldap.LDAPResultInvalidCredentials},
		{"another app's name", "cn=other,ou=apps," + f.baseDN, f.key, ldap.LDAPResultInvalidCredentials},
		{"revoked key", "cn=old,ou=apps," + f.baseDN, revoked, ldap.LDAPResultInvalidCredentials},
		{"a SCIM token", f.bindDN, f.token, ldap.LDAPResultInvalidCredentials},
		{"outside ou=apps", "uid=alice@example.com,ou=people," + f.baseDN, f.key, ldap.LDAPResultInvalidCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.dial(t)
			if err := c.Bind(tc.dn, tc.password); resultCode(err) != tc.code {
				t.Fatalf("bind: %v, want code %d", err, tc.code)
			}
			_, err := c.Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil))
			if resultCode(err) != ldap.LDAPResultInsufficientAccessRights {
				t.Fatalf("search after a refused bind: %v", err)
			}
		})
	}
	// Revoking a key takes effect at once, also on a connection bound with it.
	c := f.bound(t)
	if err := f.store.RevokeAppKey(context.Background(), f.keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); resultCode(err) != ldap.LDAPResultInsufficientAccessRights {
		t.Errorf("search on a connection bound with a key revoked since: %v", err)
	}
	c = f.dial(t)
	if err := c.UnauthenticatedBind(""); err == nil {
		t.Error("anonymous bind accepted")
	}
	// RootDSE is open, so clients can find the naming context and StartTLS.
	res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("namingContexts") != f.baseDN ||
		!slices.Contains(res.Entries[0].GetAttributeValues("supportedExtension"), oidStartTLS) {
		t.Fatalf("RootDSE: %v %+v", err, res)
	}
	res, err = c.Search(ldap.NewSearchRequest("cn=subschema", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=subschema)", []string{"objectClasses"}, nil))
	if err != nil || len(res.Entries) != 1 || len(res.Entries[0].GetAttributeValues("objectClasses")) == 0 {
		t.Fatalf("subschema: %v %+v", err, res)
	}
}

// TestLDAPBindsThrottled: failed binds from one address are refused with
// busy once they reach the SCIM tokens' limit, and even the right key waits.
func TestLDAPBindsThrottled(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	c := f.dial(t)
	for range authFailures {
		if err := c.Bind(f.bindDN, "scimboxapp_nope"); resultCode(err) != ldap.LDAPResultInvalidCredentials {
			t.Fatalf("bind: %v", err)
		}
	}
	if err := c.Bind(f.bindDN, f.key); resultCode(err) != ldap.LDAPResultBusy {
		t.Fatalf("bind after %d failures: %v, want busy", authFailures, err)
	}
}

// TestLDAPTree: a subtree search lists the effective users (disabled ones
// hidden) and groups with their attributes, memberOf and nested members.
func TestLDAPTree(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	c := f.bound(t)
	base := f.baseDN
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{base, "ou=people," + base, "ou=groups," + base,
		"uid=alice@example.com,ou=people," + base, "uid=bob@example.com,ou=people," + base,
		"cn=Sales,ou=groups," + base, "cn=Engineering,ou=groups," + base}
	if got := dns(res); !slices.Equal(got, want) {
		t.Fatalf("subtree:\n got %q\nwant %q", got, want)
	}
	alice := res.Entries[3]
	for attr, v := range map[string]string{"uid": "alice@example.com", "givenName": "Given", "sn": "Family", "mail": "alice@example.com",
		"entryUUID": f.userIDs["alice"], "cn": "alice@example.com", "memberOf": "cn=Sales,ou=groups," + base} {
		if got := alice.GetAttributeValue(attr); got != v {
			t.Errorf("alice %s = %q, want %q", attr, got, v)
		}
	}
	sales := res.Entries[5]
	if got := sales.GetAttributeValues("member"); !slices.Equal(got, []string{"uid=alice@example.com,ou=people," + base, "cn=Engineering,ou=groups," + base}) &&
		!slices.Equal(got, []string{"cn=Engineering,ou=groups," + base, "uid=alice@example.com,ou=people," + base}) {
		t.Errorf("Sales members %q: want alice and the nested Engineering, not the disabled carol", got)
	}

	// Filters, scopes and attribute selection, each checked against the DNs it returns.
	tests := []struct {
		base   string
		scope  int
		filter string
		want   []string
	}{
		{base, ldap.ScopeWholeSubtree, "(uid=ALICE@example.com)", []string{"uid=alice@example.com,ou=people," + base}},
		{base, ldap.ScopeWholeSubtree, "(memberOf=cn=sales,ou=groups," + base + ")", []string{"uid=alice@example.com,ou=people," + base}},
		{base, ldap.ScopeWholeSubtree, "(memberOf=cn=Nobody,ou=groups," + base + ")", nil},
		{base, ldap.ScopeWholeSubtree, "(&(objectClass=inetOrgPerson)(|(uid=bob*)(mail=*lice@*)))", []string{"uid=alice@example.com,ou=people," + base, "uid=bob@example.com,ou=people," + base}},
		{base, ldap.ScopeWholeSubtree, "(&(objectClass=inetOrgPerson)(!(uid=bob@example.com)))", []string{"uid=alice@example.com,ou=people," + base}},
		{base, ldap.ScopeWholeSubtree, "(&(objectClass=groupOfNames)(member=uid=bob@example.com,ou=people," + base + "))", []string{"cn=Engineering,ou=groups," + base}},
		{base, ldap.ScopeWholeSubtree, "(&(uid>=b)(uid<=c))", []string{"uid=bob@example.com,ou=people," + base}},
		{base, ldap.ScopeWholeSubtree, "(cn=Eng*)", []string{"cn=Engineering,ou=groups," + base}},
		{base, ldap.ScopeSingleLevel, "(objectClass=*)", []string{"ou=people," + base, "ou=groups," + base}},
		{"ou=groups," + base, ldap.ScopeSingleLevel, "(objectClass=*)", []string{"cn=Sales,ou=groups," + base, "cn=Engineering,ou=groups," + base}},
		{"uid=bob@example.com,ou=people," + base, ldap.ScopeBaseObject, "(objectClass=*)", []string{"uid=bob@example.com,ou=people," + base}},
		{"uid=carol@example.com,ou=people," + base, ldap.ScopeBaseObject, "(objectClass=*)", nil}, // hidden: disabled
	}
	for _, tc := range tests {
		res, err := c.Search(ldap.NewSearchRequest(tc.base, tc.scope, 0, 0, 0, false, tc.filter, []string{"uid"}, nil))
		if tc.want == nil && resultCode(err) == ldap.LDAPResultNoSuchObject {
			continue
		}
		if err != nil {
			t.Errorf("%s %s: %v", tc.base, tc.filter, err)
			continue
		}
		if got := dns(res); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s:\n got %q\nwant %q", tc.base, tc.filter, got, tc.want)
		}
		for _, e := range res.Entries {
			for _, a := range e.Attributes {
				if a.Name != "uid" {
					t.Errorf("%s: attribute %s sent, only uid asked for", e.DN, a.Name)
				}
			}
		}
	}
	// Size limit.
	res, err = c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, 0, 2, 0, false, "(objectClass=*)", nil, nil))
	if resultCode(err) != ldap.LDAPResultSizeLimitExceeded || res == nil || len(res.Entries) != 2 {
		t.Errorf("size limit 2: %v, %d entries", err, len(res.Entries))
	}
	// Writes are refused.
	if err := c.Del(ldap.NewDelRequest("uid=bob@example.com,ou=people,"+base, nil)); resultCode(err) != ldap.LDAPResultUnwillingToPerform {
		t.Errorf("delete: %v", err)
	}
}

// TestLDAPShowDisabled: with -ldap-show-disabled the disabled user is listed, flagged.
func TestLDAPShowDisabled(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{ShowDisabled: true})
	res, err := f.bound(t).Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(nsAccountLock=TRUE)", nil, nil))
	if err != nil || !slices.Equal(dns(res), []string{"uid=carol@example.com,ou=people," + f.baseDN}) {
		t.Fatalf("%v %q", err, dns(res))
	}
}

// TestLDAPGiteaQueries replays what Gitea's "LDAP (via BindDN)" source
// sends with the usual settings: the user search with its user filter and
// attributes, then the group membership check by the user's DN.
func TestLDAPGiteaQueries(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	c := f.bound(t)
	userFilter := fmt.Sprintf("(&(objectClass=inetOrgPerson)(uid=%s))", ldap.EscapeFilter("alice@example.com"))
	res, err := c.Search(ldap.NewSearchRequest("ou=people,"+f.baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		userFilter, []string{"uid", "givenName", "sn", "mail", "memberOf"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("user search: %v %+v", err, res)
	}
	userDN := res.Entries[0].DN
	if res.Entries[0].GetAttributeValue("mail") != "alice@example.com" {
		t.Errorf("mail %q", res.Entries[0].GetAttributeValue("mail"))
	}
	groupFilter := fmt.Sprintf("(&(objectClass=groupOfNames)(member=%s))", ldap.EscapeFilter(userDN))
	res, err = c.Search(ldap.NewSearchRequest("ou=groups,"+f.baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		groupFilter, []string{"cn"}, nil))
	if err != nil || !slices.Equal(dns(res), []string{"cn=Sales,ou=groups," + f.baseDN}) {
		t.Fatalf("group check: %v %q", err, dns(res))
	}
}

// TestLDAPPagedSearch: the Simple Paged Results control walks the whole
// tree in pages that never exceed the page size, and a foreign cookie is refused.
func TestLDAPPagedSearch(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	for i := range 7 {
		f.createUser(t, fmt.Sprintf("user%d@example.com", i))
	}
	c := f.bound(t)
	paging := ldap.NewControlPaging(3)
	var all []string
	pages := 0
	for {
		res, err := c.Search(ldap.NewSearchRequest("ou=people,"+f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false,
			"(objectClass=inetOrgPerson)", []string{"uid"}, []ldap.Control{paging}))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(res.Entries) > 3 {
			t.Fatalf("page %d has %d entries", pages, len(res.Entries))
		}
		all = append(all, dns(res)...)
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil {
			t.Fatal("no paging control in the response")
		}
		if len(ctrl.Cookie) == 0 {
			break
		}
		paging.SetCookie(ctrl.Cookie)
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 9 || pages != 3 || len(slices.Compact(slices.Sorted(slices.Values(all)))) != 9 {
		t.Fatalf("%d pages, %d entries: %q", pages, len(all), all)
	}
	// go-ldap's own pager agrees.
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil), 2)
	if err != nil || len(res.Entries) != 3+9+2 {
		t.Fatalf("SearchWithPaging: %v, %d entries", err, len(res.Entries))
	}
	// A cookie from another search is refused.
	other := ldap.NewControlPaging(3)
	other.SetCookie(paging.Cookie)
	_, err = c.Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=*)", nil, []ldap.Control{other}))
	if resultCode(err) != ldap.LDAPResultUnwillingToPerform {
		t.Fatalf("foreign cookie: %v", err)
	}
}

// TestLDAPStartTLS: on a connection that is not loopback (a pipe here),
// binding in the clear is refused; after StartTLS with the server's
// certificate the bind and searches work.
func TestLDAPStartTLS(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	dialPipe := func() *ldap.Conn {
		client, server := net.Pipe()
		f.ldap.wg.Go(func() {
			f.ldap.track(server, true)
			defer f.ldap.track(server, false)
			defer server.Close()
			f.ldap.serveConn(server, false)
		})
		c := ldap.NewConn(client, false)
		c.Start()
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dialPipe()
	if err := c.Bind(f.bindDN, f.key); resultCode(err) != ldap.LDAPResultConfidentialityRequired {
		t.Fatalf("bind in the clear off loopback: %v", err)
	}
	c = dialPipe()
	if err := c.StartTLS(&tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c.Bind(f.bindDN, f.key); err != nil {
		t.Fatalf("bind over TLS: %v", err)
	}
	res, err := c.Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=bob@example.com)", nil, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search over TLS: %v", err)
	}
	// Real TCP too, with go-ldap's StartTLS against the listener.
	tc := f.dial(t)
	if err := tc.StartTLS(&tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("StartTLS over TCP: %v", err)
	}
	if err := tc.Bind(f.bindDN, f.key); err != nil {
		t.Fatal(err)
	}
}

// TestAppKeyScopes: an ldap-scope key does not read /api/v1; scimbox
// app-key creates, lists and revokes keys of either scope.
func TestAppKeyScopes(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	if status, doc := apiGet(t, f.testServer, f.key, "/api/v1/users"); status != http.StatusUnauthorized ||
		!strings.Contains(fmt.Sprint(doc["error"]), "ldap scope") {
		t.Errorf("ldap key on the API: %d %v", status, doc)
	}
	if status, doc := apiGet(t, f.testServer, f.apiKey, "/api/v1/users"); status != http.StatusOK {
		t.Errorf("api key on the API: %d %v", status, doc)
	}

	db := t.TempDir() + "/cli.db"
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := appKeyCommand(context.Background(), slices.Concat(args[:1], []string{"-db", db}, args[1:]), &out, &errOut)
		return out.String(), err
	}
	out, err := run("create", "-name", "nas", "-scope", "ldap")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, appKeyPrefix) {
		t.Fatalf("the key is not the last line: %q", out)
	}
	if _, err := run("create", "-name", "x", "-scope", "admin"); err == nil {
		t.Error("scope admin accepted")
	}
	out, err = run("list")
	if err != nil || !strings.Contains(out, "nas") || !strings.Contains(out, "ldap") {
		t.Fatalf("list: %v %q", err, out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, err := run("revoke", id); err != nil || !strings.Contains(out, id) {
		t.Fatalf("revoke: %v %q", err, out)
	}
	out, _ = run("list")
	if strings.Contains(out, "nas") {
		t.Errorf("revoked key still listed: %q", out)
	}
}

// TestLDAPQueryPlans: the searches apps send most, (uid=…) and
// (memberOf=…), and a group membership check, are answered from indexes.
func TestLDAPQueryPlans(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	for _, tc := range []struct {
		name string
		cond ldapCond
	}{
		{"uid", ldapCond{kind: condUserName, value: "alice@example.com"}},
		{"memberOf", ldapCond{kind: condMemberOf, value: "group-id"}},
		{"uid prefix", ldapCond{kind: condUserNameRange, value: "al", upper: "al" + prefixBound}},
		{"mail", ldapCond{kind: condMail, value: "alice@example.com"}},
	} {
		query, args := ldapUsersSQL(ldapCond{kind: condAnd, kids: []ldapCond{{kind: condAll}, tc.cond}})
		plan := queryPlan(t, s, query, slices.Concat([]any{0}, args, []any{10})...)
		if strings.Contains(plan, "SCAN users") {
			t.Errorf("%s scans users:\n%s", tc.name, plan)
		}
		t.Logf("%s:\n%s", tc.name, plan)
	}
	if plan := queryPlan(t, s, ldapOverriddenUsersSQL, 0, 10); !strings.Contains(plan, "users_overridden") {
		t.Errorf("overridden users are not read from their index:\n%s", plan)
	}
	where, args, _ := ldapCondSQL(ldapCond{kind: condHasMember, value: "user-id"})
	if plan := queryPlan(t, s, groupSelect+" WHERE groups.rowid > 0 AND "+where+" ORDER BY groups.rowid+0 LIMIT 10", args...); strings.Contains(plan, "SCAN groups") {
		t.Errorf("member check scans groups:\n%s", plan)
	}
}

// TestLDAPServeWithCertificate: serve with -tls-cert answers StartTLS on
// -ldap-addr and LDAPS on -ldaps-addr with the HTTPS certificate.
func TestLDAPServeWithCertificate(t *testing.T) {
	t.Parallel()
	cfg, _ := testServeConfig(t)
	dir := t.TempDir()
	cfg.TLSCert, cfg.TLSKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg.HTTPSAddr, cfg.HTTPAddr = "127.0.0.1:0", ""
	cfg.LDAP = ldapConfig{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", BaseDN: "dc=example,dc=com"}
	cert := writeCert(t, cfg.TLSCert, cfg.TLSKey, true)
	store, err := OpenStore(context.Background(), cfg.DB, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := store.CreateScopedAppKey(context.Background(), "nas", scopeLDAP)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg, nil)
	tlsConfig := &tls.Config{RootCAs: poolOf(cert), ServerName: "localhost"}
	check := func(name string, c *ldap.Conn) {
		t.Helper()
		state, ok := c.TLSConnectionState()
		if !ok || state.PeerCertificates[0].SerialNumber.Cmp(cert.SerialNumber) != 0 {
			t.Fatalf("%s: not the HTTPS certificate", name)
		}
		if err := c.Bind("cn=nas,ou=apps,dc=example,dc=com", key); err != nil {
			t.Fatalf("%s: bind: %v", name, err)
		}
		res, err := c.Search(ldap.NewSearchRequest("dc=example,dc=com", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("%s: search: %v", name, err)
		}
		c.Close()
	}
	c, err := ldap.DialURL("ldap://" + s.addrs.LDAP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(tlsConfig); err != nil {
		t.Fatal(err)
	}
	check("StartTLS", c)
	c, err = ldap.DialURL("ldaps://"+s.addrs.LDAPS, ldap.DialWithTLSConfig(tlsConfig))
	if err != nil {
		t.Fatal(err)
	}
	check("LDAPS", c)
}

// TestLDAPConfig: plain LDAP on an address others reach needs a certificate
// for StartTLS or -ldap-allow-plain; LDAPS needs a certificate.
func TestLDAPConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg      ldapConfig
		haveCert bool
		ok       bool
	}{
		{ldapConfig{Addr: "127.0.0.1:389"}, false, true},
		{ldapConfig{Addr: "[::1]:389"}, false, true},
		{ldapConfig{Addr: ":389"}, false, false},
		{ldapConfig{Addr: "192.168.1.5:389"}, false, false},
		{ldapConfig{Addr: ":389", AllowPlain: true}, false, true},
		{ldapConfig{Addr: ":389"}, true, true},
		{ldapConfig{TLSAddr: ":636"}, false, false},
		{ldapConfig{TLSAddr: ":636"}, true, true},
		{ldapConfig{Addr: "127.0.0.1:389", BaseDN: "not a dn"}, false, false},
		{ldapConfig{}, false, true},
	} {
		if err := tc.cfg.validate(tc.haveCert); (err == nil) != tc.ok {
			t.Errorf("%+v with certificate %v: %v, want ok %v", tc.cfg, tc.haveCert, err, tc.ok)
		}
	}
}

// TestLDAPEffectiveValues: a local override whose source of truth is local
// shows in LDAP, and searches find the user by the effective value, not by
// the directory's, although the indexed columns hold the directory's.
func TestLDAPEffectiveValues(t *testing.T) {
	t.Parallel()
	f := newLDAPFixture(t, ldapConfig{})
	ctx := context.Background()
	if err := f.store.SetPolicy(ctx, Policy{"displayName": FromLocal, "userName": FromLocal}); err != nil {
		t.Fatal(err)
	}
	_, err := f.store.UpdateUser(ctx, f.userIDs["bob"], func(u *User) error {
		p, err := f.store.Policy(ctx)
		if err != nil {
			return err
		}
		for key, v := range map[string]string{"displayName": "Robert Local", "userName": "robert@example.com"} {
			if u.Attrs, u.Overrides, err = LocalEdit(u.Kind, u.Attrs, u.Overrides, p, key, v, "admin", time.Now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := f.bound(t)
	robert := "uid=robert@example.com,ou=people," + f.baseDN
	for filter, want := range map[string][]string{
		"(uid=robert@example.com)": {robert},
		"(uid=bob@example.com)":    nil,
		"(cn=Robert Local)":        {robert},
		"(displayName=robert*)":    {robert},
	} {
		res, err := c.Search(ldap.NewSearchRequest(f.baseDN, ldap.ScopeWholeSubtree, 0, 0, 0, false, filter, nil, nil))
		if err != nil || !slices.Equal(dns(res), want) {
			t.Errorf("%s: %v %q, want %q", filter, err, dns(res), want)
		}
	}
	res, err := c.Search(ldap.NewSearchRequest("cn=Engineering,ou=groups,"+f.baseDN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"member"}, nil))
	if err != nil || !slices.Equal(res.Entries[0].GetAttributeValues("member"), []string{robert}) {
		t.Errorf("Engineering's member is not named by the effective userName: %v %+v", err, res)
	}
}

// TestLDAPSystemdSockets: sockets systemd passes as ldap and ldaps serve
// LDAP, rather than being refused as unused by the HTTP listeners.
func TestLDAPSystemdSockets(t *testing.T) {
	t.Parallel()
	h := &handover{log: stDiscardLog(), systemd: map[string]net.Listener{}}
	passed := map[string]net.Listener{}
	for _, name := range []string{"ldap", "ldaps", "metrics", socketPlain} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		passed[name], h.systemd[name] = ln, ln
	}
	cfg := serveConfig{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", LDAP: ldapConfig{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0"}}
	// In serve's order: LDAP and metrics claim theirs before listenAll.
	plain, secure, err := listenLDAP(cfg.LDAP, h)
	if err != nil {
		t.Fatal(err)
	}
	if plain != passed["ldap"] || secure != passed["ldaps"] {
		t.Error("LDAP did not take the sockets named ldap and ldaps")
	}
	metrics, err := listenMetrics(cfg, h, stDiscardLog())
	if err != nil {
		t.Fatal(err)
	}
	if metrics != passed["metrics"] {
		t.Error("metrics did not take the socket named metrics")
	}
	lns, err := listenAll(cfg, h)
	if err != nil {
		t.Fatalf("listenAll after LDAP took its sockets: %v", err)
	}
	lns.close()
}

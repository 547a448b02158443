package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// BenchmarkLDAP measures, at 10,000 users in 20 groups of 500 (more with
// -benchusers 100000: 20 groups of 5,000), a bind, a (uid=…) search and a (memberOf=…) search (p50 and
// p99 over b.N rounds of each) and one full paged dump of ou=people:
//
//	go test -run '^$' -bench BenchmarkLDAP -benchtime 500x .
//	go test -run '^$' -bench BenchmarkLDAP -benchtime 100x -timeout 2h . -args -benchusers 100000
func BenchmarkLDAP(b *testing.B) {
	// 10,000 users unless -benchusers asks for more (100,000 for the figures).
	users, groups := max(10_000, *benchUsersFlag), 20
	s := newTestStore(b)
	ctx := context.Background()
	ids := make([]string, users)
	for i := range users {
		u := &User{Attrs: map[string]any{"userName": fmt.Sprintf("user%05d@example.com", i), "active": true, "displayName": fmt.Sprintf("User %d", i),
			"emails": []any{map[string]any{"value": fmt.Sprintf("user%05d@example.com", i), "primary": true}}}}
		if err := s.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
		ids[i] = u.ID
	}
	per := users / groups
	for g := range groups {
		if err := s.CreateGroup(ctx, &Group{Attrs: map[string]any{"displayName": fmt.Sprintf("Group %d", g)}}, ids[g*per:(g+1)*per]); err != nil {
			b.Fatal(err)
		}
	}
	key, _, err := s.CreateScopedAppKey(ctx, "bench", scopeLDAP)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := newLDAPServer(s, ldapConfig{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv.serve(ln, false)
	b.Cleanup(srv.stop)
	c, err := ldap.DialURL("ldap://" + ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	bindDN := "cn=bench,ou=apps,dc=example,dc=com"
	var bind, uid, memberOf []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := c.Bind(bindDN, key); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		res, err := c.Search(ldap.NewSearchRequest("dc=example,dc=com", ldap.ScopeWholeSubtree, 0, 0, 0, false,
			fmt.Sprintf("(&(objectClass=inetOrgPerson)(uid=user%05d@example.com))", (i*7919)%users), nil, nil))
		if err != nil || len(res.Entries) != 1 {
			b.Fatal(err)
		}
		t2 := time.Now()
		res, err = c.Search(ldap.NewSearchRequest("ou=people,dc=example,dc=com", ldap.ScopeWholeSubtree, 0, 0, 0, false,
			fmt.Sprintf("(memberOf=cn=Group %d,ou=groups,dc=example,dc=com)", i%groups), []string{"uid"}, nil))
		if err != nil || len(res.Entries) != per {
			b.Fatal(err, len(res.Entries))
		}
		t3 := time.Now()
		bind, uid, memberOf = append(bind, t1.Sub(t0)), append(uid, t2.Sub(t1)), append(memberOf, t3.Sub(t2))
	}
	b.StopTimer()
	t0 := time.Now()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest("ou=people,dc=example,dc=com", ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil), 500)
	if err != nil || len(res.Entries) != users+1 {
		b.Fatal(err)
	}
	dump := time.Since(t0)
	pct := func(d []time.Duration, p float64) float64 {
		slices.Sort(d)
		return float64(d[min(len(d)-1, int(float64(len(d))*p))].Microseconds()) / 1000
	}
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"bind", bind}, {"uid", uid}, {"memberOf", memberOf}} {
		b.ReportMetric(pct(m.d, 0.50), m.name+"-p50-ms")
		b.ReportMetric(pct(m.d, 0.99), m.name+"-p99-ms")
	}
	b.ReportMetric(dump.Seconds(), "paged-dump-s")
}

// Command scimload plays Microsoft Entra ID's provisioning request mix against
// any SCIM 2.0 server and reports per-operation throughput and latency.
//
// It talks only SCIM (RFC 7644) to the base URL it is given and uses only the
// ids the server returns, so the same run can be pointed at scimbox or at any
// other SCIM server on the same machine for a side-by-side comparison.
//
// Phases (-phase, comma-separated, run in this order):
//
//	initial      Entra's initial cycle: Test Connection probe; for each user
//	             GET /Users?filter=userName eq "…" then POST /Users (skipped if
//	             matched); then for each group GET /Groups?excludedAttributes=
//	             members&filter=displayName eq "…", POST /Groups, and PATCH Add
//	             members in batches of -member-batch.
//	incremental  -cycles incremental cycles: probe; for a -change-rate share of
//	             users a match then one of: attribute PATCH (both dialects:
//	             capitalised ops with string booleans, and the aadOptscim062020
//	             path-less value object), disable ("False"), re-enable ("True"),
//	             DELETE, or re-create of a deleted user; for a -group-change-rate
//	             share of groups a match then member adds and removes (Remove
//	             with a value array, and members[value eq "…"] paths).
//	all          initial then incremental.
//	read         read latencies on an existing directory, one operation kind at
//	             a time: filter by userName, by externalId, GET by id, a page of
//	             100 (random startIndex and first page), group match.
//	biggroup     one group grown to each of -big-sizes members; at each size,
//	             -samples × (remove one member, add it back, GET the group with
//	             excludedAttributes=members, match it by displayName).
//
// Users and groups are named from -prefix, so a later run with the same
// -prefix and -users finds the directory an earlier run created.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

const (
	userSchema   = "urn:ietf:params:scim:schemas:core:2.0:User"
	entSchema    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	groupSchema  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	adGroup      = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
	patchSchema  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	scimJSON     = "application/scim+json"
	emailDomain  = "scimload.example"
	maxErrSample = 3
)

type config struct {
	url, token           string
	users, groups        int
	groupSize            string
	memberBatch          int
	concurrency          int
	cycles               int
	changeRate           float64
	groupChangeRate      float64
	seed                 uint64
	prefix               string
	phases               []string
	pid                  int
	db                   string
	jsonOut              string
	timeout              time.Duration
	maxTime              time.Duration
	rps                  float64
	samples, listSamples int
	bigSizes             []int
	skipMatch            bool
	serverLog            string
	insecure             bool
	verbose              bool
	firstUser            int
	sizes                sizeDist
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "scimload:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.maxTime)
		defer cancel()
	}
	l := newLoad(cfg)
	rep, err := l.run(ctx)
	if rep != nil {
		rep.print(os.Stdout)
		if cfg.jsonOut != "" {
			if werr := rep.writeJSON(cfg.jsonOut); werr != nil {
				fmt.Fprintln(os.Stderr, "scimload:", werr)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scimload:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("scimload", flag.ContinueOnError)
	c := &config{}
	var phases, bigSizes string
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080/scim/v2", "SCIM base URL (the Tenant URL Entra would be given)")
	fs.StringVar(&c.token, "token", os.Getenv("SCIMLOAD_TOKEN"), "bearer token (or $SCIMLOAD_TOKEN)")
	fs.IntVar(&c.users, "users", 1000, "directory size: number of users")
	fs.IntVar(&c.firstUser, "first-user", 0, "index of the first user the initial phase creates (to grow a directory in steps)")
	fs.IntVar(&c.groups, "groups", 50, "number of groups")
	fs.StringVar(&c.groupSize, "group-size", "1-200", "members per group: N, MIN-MAX (uniform) or zipf:MAX (mostly small, a few large)")
	fs.IntVar(&c.memberBatch, "member-batch", 50, "members per PATCH Add request (Entra sends batches)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "requests in flight")
	fs.IntVar(&c.cycles, "cycles", 1, "incremental cycles")
	fs.Float64Var(&c.changeRate, "change-rate", 0.05, "share of users changed per incremental cycle")
	fs.Float64Var(&c.groupChangeRate, "group-change-rate", 0.2, "share of groups whose membership changes per incremental cycle")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed (attribute values, memberships, choices)")
	fs.StringVar(&c.prefix, "prefix", "scimload", "name prefix of users and groups")
	fs.StringVar(&phases, "phase", "all", "phases, comma-separated: initial, incremental, all, read, biggroup")
	fs.IntVar(&c.pid, "pid", 0, "server process id: sample its RSS from /proc/PID/status")
	fs.IntVar(&c.pid, "server-pid", 0, "same as -pid")
	fs.StringVar(&c.db, "db", "", "server database file: report its size (with -wal and -shm)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file (- for stdout)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "per-request timeout (Entra gives up after about 60s)")
	fs.DurationVar(&c.maxTime, "max-time", 0, "stop issuing requests after this long (0: no limit)")
	fs.Float64Var(&c.rps, "rps", 0, "cap on requests per second across all workers (0: as fast as the server answers; Entra sends ~25+)")
	fs.IntVar(&c.samples, "samples", 1000, "read and biggroup: samples per operation")
	fs.IntVar(&c.listSamples, "list-samples", 200, "read: samples of the list-page operations (slow on some servers)")
	fs.StringVar(&bigSizes, "big-sizes", "1000,10000,100000", "biggroup: group sizes to measure at (needs at least the largest -users)")
	fs.BoolVar(&c.skipMatch, "skip-match", false, "initial: POST without the filter query first (fast directory population, not Entra-like)")
	fs.StringVar(&c.serverLog, "server-log", "", "server log file (slog text or JSON lines with time= and ms=): report server-side latency per operation")
	fs.BoolVar(&c.insecure, "insecure", false, "skip TLS certificate verification")
	fs.BoolVar(&c.verbose, "v", false, "print progress")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: scimload -url BASE -token TOKEN [flags]\n\nPlays Microsoft Entra ID's SCIM provisioning traffic and reports latency per operation.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.url = strings.TrimRight(c.url, "/")
	if _, err := url.Parse(c.url); err != nil || !strings.HasPrefix(c.url, "http") {
		return nil, fmt.Errorf("-url %q: want an http(s) SCIM base URL", c.url)
	}
	if c.token == "" {
		return nil, errors.New("-token is required")
	}
	if c.concurrency < 1 || c.memberBatch < 1 || c.users < 0 || c.groups < 0 || c.samples < 1 {
		return nil, errors.New("-concurrency, -member-batch and -samples must be positive")
	}
	var err error
	if c.sizes, err = parseSizeDist(c.groupSize); err != nil {
		return nil, err
	}
	for _, p := range strings.Split(phases, ",") {
		switch p = strings.TrimSpace(p); p {
		case "all":
			c.phases = append(c.phases, "initial", "incremental")
		case "initial", "incremental", "read", "biggroup":
			c.phases = append(c.phases, p)
		default:
			return nil, fmt.Errorf("-phase: unknown phase %q", p)
		}
	}
	for _, s := range strings.Split(bigSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-big-sizes: bad size %q", s)
		}
		c.bigSizes = append(c.bigSizes, n)
	}
	slices.Sort(c.bigSizes)
	return c, nil
}

// ---- group size distribution ----

type sizeDist struct {
	kind     string // fixed, uniform, zipf
	min, max int
}

func parseSizeDist(s string) (sizeDist, error) {
	if rest, ok := strings.CutPrefix(s, "zipf:"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return sizeDist{}, fmt.Errorf("-group-size %q: want zipf:MAX", s)
		}
		return sizeDist{kind: "zipf", min: 1, max: n}, nil
	}
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return sizeDist{}, fmt.Errorf("-group-size %q: want MIN-MAX", s)
		}
		return sizeDist{kind: "uniform", min: lo, max: hi}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return sizeDist{}, fmt.Errorf("-group-size %q: want N, MIN-MAX or zipf:MAX", s)
	}
	return sizeDist{kind: "fixed", min: n, max: n}, nil
}

func (d sizeDist) draw(r *rand.Rand) int {
	switch d.kind {
	case "uniform":
		return d.min + r.IntN(d.max-d.min+1)
	case "zipf":
		z := rand.NewZipf(r, 1.2, 1, uint64(d.max-1))
		return int(z.Uint64()) + 1
	}
	return d.min
}

// ---- statistics ----

type opStats struct {
	name        string
	order       int
	durs        []time.Duration
	status      map[int]int
	errs        int
	netErrs     int
	misses      int // filter queries that found nothing where a hit was expected
	first, last time.Time
	samples     []string
}

type recorder struct {
	mu  sync.Mutex
	ops map[string]*opStats
}

func (r *recorder) op(name string) *opStats {
	s := r.ops[name]
	if s == nil {
		s = &opStats{name: name, order: len(r.ops), status: map[int]int{}}
		r.ops[name] = s
	}
	return s
}

func (r *recorder) add(name string, start time.Time, d time.Duration, status int, failed bool, sample string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.op(name)
	s.durs = append(s.durs, d)
	if s.first.IsZero() || start.Before(s.first) {
		s.first = start
	}
	if end := start.Add(d); end.After(s.last) {
		s.last = end
	}
	if status > 0 {
		s.status[status]++
	} else {
		s.netErrs++
	}
	if failed {
		s.errs++
		if len(s.samples) < maxErrSample {
			s.samples = append(s.samples, sample)
		}
	}
}

func (r *recorder) miss(name string) {
	r.mu.Lock()
	r.op(name).misses++
	r.mu.Unlock()
}

// ---- the load ----

type load struct {
	cfg    *config
	client *http.Client
	rec    *recorder
	tick   <-chan time.Time
	done   atomic.Int64

	mu         sync.Mutex
	userIDs    map[int]string // user index → server id
	userState  map[int]uint8  // 0 active, 1 disabled, 2 deleted
	groupIDs   map[int]string
	members    map[int]map[int]struct{} // group index → member user indices
	groupsGone map[int]bool

	blocks []block // time windows for attributing server log lines
	rss    rssSampler
}

const (
	userActive uint8 = iota
	userDisabled
	userDeleted
)

type block struct {
	label      string
	start, end time.Time
}

func newLoad(cfg *config) *load {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = cfg.concurrency * 4
	tr.MaxIdleConnsPerHost = cfg.concurrency * 4
	if cfg.insecure {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	l := &load{
		cfg:        cfg,
		client:     &http.Client{Transport: tr, Timeout: cfg.timeout},
		rec:        &recorder{ops: map[string]*opStats{}},
		userIDs:    map[int]string{},
		userState:  map[int]uint8{},
		groupIDs:   map[int]string{},
		members:    map[int]map[int]struct{}{},
		groupsGone: map[int]bool{},
	}
	if cfg.rps > 0 {
		l.tick = time.NewTicker(time.Duration(float64(time.Second) / cfg.rps)).C
	}
	return l
}

func (l *load) logf(format string, args ...any) {
	if l.cfg.verbose {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// rng returns a deterministic generator for one purpose and index.
func (l *load) rng(purpose, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(l.cfg.seed^purpose*0x9E3779B97F4A7C15, i))
}

// do sends one SCIM request and records it under op. expect lists the statuses
// that count as success. It returns the status and body (status 0 on a transport error).
func (l *load) do(ctx context.Context, op, method, path string, body any, expect ...int) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	if l.tick != nil {
		select {
		case <-l.tick:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, l.cfg.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+l.cfg.token)
	req.Header.Set("Accept", scimJSON)
	if body != nil {
		req.Header.Set("Content-Type", scimJSON+"; charset=utf-8")
	}
	start := time.Now()
	resp, err := l.client.Do(req)
	var out []byte
	status := 0
	if err == nil {
		out, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
	}
	d := time.Since(start)
	if ctx.Err() != nil && status == 0 {
		return 0, nil, ctx.Err() // stopped by -max-time or ^C: not a server error
	}
	failed := err != nil || !slices.Contains(expect, status)
	sample := ""
	if failed {
		if err != nil {
			sample = err.Error()
		} else {
			sample = fmt.Sprintf("%s %s → %d %s", method, path, status, truncate(string(out), 300))
		}
	}
	l.rec.add(op, start, d, status, failed, sample)
	l.done.Add(1)
	if err != nil {
		return 0, nil, err
	}
	return status, out, nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// parallel runs fn(i) for i in [0,n) on the configured number of workers.
func (l *load) parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(ctx, i)
			}
		}()
	}
	wg.Wait()
}

func (l *load) block(label string, fn func()) {
	time.Sleep(5 * time.Millisecond) // keeps server log lines of adjacent blocks apart
	b := block{label: label, start: time.Now()}
	fn()
	b.end = time.Now()
	l.blocks = append(l.blocks, b)
}

// ---- names and bodies ----

func (l *load) userName(i int) string {
	return fmt.Sprintf("%s.u%07d@%s", l.cfg.prefix, i, emailDomain)
}
func (l *load) userExt(i int) string { return fmt.Sprintf("%s.u%07d", l.cfg.prefix, i) }
func (l *load) groupName(g int) string {
	return fmt.Sprintf("%s group %05d", l.cfg.prefix, g)
}

// guid is a deterministic version-4-shaped UUID.
func guid(parts ...any) string {
	h := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

var (
	givenNames  = []string{"Ada", "Björn", "Chioma", "Dmitri", "Elena", "Farah", "Gustavo", "Hana", "Ivan", "Jun", "Kofi", "Lena", "Mateo", "Nia", "Oskar", "Priya"}
	familyNames = []string{"Okafor", "Lindqvist", "García", "Nakamura", "Müller", "Smith", "Kowalski", "Haddad", "Rossi", "Nguyen", "Dubois", "Khan"}
	departments = []string{"Sales", "Engineering", "Finance", "Support", "Marketing", "Legal", "Operations", "HR"}
	titles      = []string{"Engineer", "Manager", "Analyst", "Director", "Consultant", "Specialist"}
	cities      = []string{"Seattle", "Dublin", "Berlin", "Singapore", "Lagos", "São Paulo", "Toronto"}
)

func pick(r *rand.Rand, list []string) string { return list[r.IntN(len(list))] }

func phone(r *rand.Rand) string { return fmt.Sprintf("+1 425 555 %04d", r.IntN(10000)) }

// userBody is the POST /Users body Entra sends with the default mappings.
func (l *load) userBody(i int) map[string]any {
	r := l.rng(1, uint64(i))
	given, family := pick(r, givenNames), pick(r, familyNames)
	var active any = true
	if i%10 == 3 {
		active = "True" // Entra also sends string booleans
	}
	return map[string]any{
		"schemas":           []string{userSchema, entSchema},
		"externalId":        l.userExt(i),
		"userName":          l.userName(i),
		"active":            active,
		"displayName":       given + " " + family,
		"title":             pick(r, titles),
		"preferredLanguage": "en-US",
		"emails":            []any{map[string]any{"primary": true, "type": "work", "value": fmt.Sprintf("%s.%s.%d@%s", strings.ToLower(given), strings.ToLower(family), i, emailDomain)}},
		"meta":              map[string]any{"resourceType": "User"},
		"name":              map[string]any{"formatted": given + " " + family, "familyName": family, "givenName": given},
		"addresses": []any{map[string]any{"type": "work", "formatted": fmt.Sprintf("Building %d", r.IntN(50)),
			"streetAddress": fmt.Sprintf("%d Main Street", r.IntN(999)+1), "locality": pick(r, cities), "region": "WA",
			"postalCode": fmt.Sprintf("%05d", r.IntN(99999)), "country": "US", "primary": false}},
		"phoneNumbers": []any{map[string]any{"type": "work", "value": phone(r)}, map[string]any{"type": "mobile", "value": phone(r)}},
		entSchema:      map[string]any{"employeeNumber": strconv.Itoa(100000 + i), "department": pick(r, departments)},
		"roles":        []any{},
	}
}

func (l *load) groupBody(g int) map[string]any {
	return map[string]any{
		"schemas":     []string{groupSchema, adGroup},
		"externalId":  guid(l.cfg.prefix, "group", g),
		"displayName": l.groupName(g),
		"meta":        map[string]any{"resourceType": "Group"},
	}
}

func patchOps(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{patchSchema}, "Operations": ops}
}

func memberValues(ids []string, withRef bool) []any {
	v := make([]any, len(ids))
	for i, id := range ids {
		if withRef {
			v[i] = map[string]any{"$ref": nil, "value": id}
		} else {
			v[i] = map[string]any{"value": id}
		}
	}
	return v
}

func filterQuery(attr, value string, excludeMembers bool) string {
	q := "filter=" + url.QueryEscape(attr+` eq "`+strings.ReplaceAll(value, `"`, `\"`)+`"`)
	if excludeMembers {
		return "?excludedAttributes=members&" + q
	}
	return "?" + q
}

// listResponse is the part of a ListResponse scimload reads.
type listResponse struct {
	TotalResults int `json:"totalResults"`
	ItemsPerPage int `json:"itemsPerPage"`
	Resources    []struct {
		ID       string `json:"id"`
		UserName string `json:"userName"`
	} `json:"Resources"`
}

// match runs Entra's matching query and returns the id it finds ("" if none).
func (l *load) match(ctx context.Context, op, resource, attr, value string) (string, bool) {
	status, body, err := l.do(ctx, op, "GET", "/"+resource+filterQuery(attr, value, resource == "Groups"), nil, 200)
	if err != nil || status != 200 {
		return "", false
	}
	var lr listResponse
	if err := json.Unmarshal(body, &lr); err != nil {
		return "", false
	}
	if len(lr.Resources) == 0 {
		return "", true
	}
	return lr.Resources[0].ID, true
}

func idOf(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	json.Unmarshal(body, &v)
	return v.ID
}

func (l *load) probe(ctx context.Context) {
	l.do(ctx, "probe.users", "GET", "/Users"+filterQuery("userName", guid(time.Now().UnixNano()), false), nil, 200)
	l.do(ctx, "probe.groups", "GET", "/Groups"+filterQuery("displayName", guid(time.Now().UnixNano(), "g"), true), nil, 200)
}

// ---- initial cycle ----

func (l *load) createUser(ctx context.Context, i int, matchFirst bool) {
	if matchFirst {
		id, ok := l.match(ctx, "user.match", "Users", "userName", l.userName(i))
		if !ok {
			return
		}
		if id != "" {
			l.setUser(i, id, userActive)
			return
		}
	}
	status, body, err := l.do(ctx, "user.create", "POST", "/Users", l.userBody(i), 201)
	if err == nil && status == 201 {
		l.setUser(i, idOf(body), userActive)
	}
}

func (l *load) setUser(i int, id string, state uint8) {
	l.mu.Lock()
	l.userIDs[i], l.userState[i] = id, state
	l.mu.Unlock()
}

// plannedMembers is group g's membership after the initial cycle.
func (l *load) plannedMembers(g int) []int {
	r := l.rng(2, uint64(g))
	n := min(l.cfg.sizes.draw(r), l.cfg.users)
	if n <= 0 {
		return nil
	}
	if n > l.cfg.users/2 {
		return r.Perm(l.cfg.users)[:n]
	}
	seen := make(map[int]struct{}, n)
	out := make([]int, 0, n)
	for len(out) < n {
		u := r.IntN(l.cfg.users)
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			out = append(out, u)
		}
	}
	return out
}

func (l *load) createGroup(ctx context.Context, g int) {
	id, ok := l.match(ctx, "group.match", "Groups", "displayName", l.groupName(g))
	if !ok {
		return
	}
	if id == "" {
		status, body, err := l.do(ctx, "group.create", "POST", "/Groups", l.groupBody(g), 201)
		if err != nil || status != 201 {
			return
		}
		id = idOf(body)
	}
	l.mu.Lock()
	l.groupIDs[g] = id
	l.mu.Unlock()
	planned := l.plannedMembers(g)
	set := make(map[int]struct{}, len(planned))
	for start := 0; start < len(planned); start += l.cfg.memberBatch {
		batch := planned[start:min(start+l.cfg.memberBatch, len(planned))]
		ids, idx := l.idsOf(batch)
		if len(ids) == 0 {
			continue
		}
		status, _, err := l.do(ctx, "group.members.add", "PATCH", "/Groups/"+id,
			patchOps(map[string]any{"op": "Add", "path": "members", "value": memberValues(ids, true)}), 204, 200)
		if err == nil && status < 300 {
			for _, u := range idx {
				set[u] = struct{}{}
			}
		}
	}
	l.mu.Lock()
	l.members[g] = set
	l.mu.Unlock()
}

// idsOf returns the server ids of the users that exist, with their indices.
func (l *load) idsOf(users []int) ([]string, []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	var idx []int
	for _, u := range users {
		if id := l.userIDs[u]; id != "" && l.userState[u] != userDeleted {
			ids = append(ids, id)
			idx = append(idx, u)
		}
	}
	return ids, idx
}

func (l *load) initial(ctx context.Context) {
	l.probe(ctx)
	n := l.cfg.users - l.cfg.firstUser
	l.logf("initial: %d users", n)
	l.block("initial.users", func() {
		l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, i int) {
			l.createUser(ctx, l.cfg.firstUser+i, !l.cfg.skipMatch)
			if d := l.done.Load(); l.cfg.verbose && d%10000 == 0 {
				l.logf("%d requests", d)
			}
		})
	})
	if l.cfg.firstUser > 0 && l.cfg.groups > 0 {
		l.resolveUsers(ctx) // groups draw members from the whole directory
	}
	l.logf("initial: %d groups", l.cfg.groups)
	l.block("initial.groups", func() {
		l.parallel(ctx, l.cfg.groups, l.cfg.concurrency, l.createGroup)
	})
}

// resolveUsers learns the ids of all users by paging through GET /Users.
func (l *load) resolveUsers(ctx context.Context) {
	const page = 1000
	start := 1
	for ctx.Err() == nil {
		q := fmt.Sprintf("/Users?startIndex=%d&count=%d&attributes=userName", start, page)
		status, body, err := l.do(ctx, "user.list.ids", "GET", q, nil, 200)
		if err != nil || status != 200 {
			return
		}
		var lr listResponse
		if json.Unmarshal(body, &lr) != nil || len(lr.Resources) == 0 {
			return
		}
		l.mu.Lock()
		for _, r := range lr.Resources {
			var i int
			want := l.cfg.prefix + ".u"
			if s, ok := strings.CutPrefix(r.UserName, want); ok {
				if _, err := fmt.Sscanf(s, "%07d@", &i); err == nil && l.userIDs[i] == "" {
					l.userIDs[i] = r.ID
				}
			}
		}
		l.mu.Unlock()
		start += len(lr.Resources)
		if start > lr.TotalResults {
			return
		}
	}
}

// ---- incremental cycles ----

func (l *load) ensureUser(ctx context.Context, i int) (string, bool) {
	// Entra's import step: query by the matching attribute before deciding.
	id, ok := l.match(ctx, "user.match", "Users", "userName", l.userName(i))
	if !ok {
		return "", false
	}
	if id == "" {
		l.mu.Lock()
		deleted := l.userState[i] == userDeleted
		l.mu.Unlock()
		if !deleted {
			l.rec.miss("user.match")
		}
		status, body, err := l.do(ctx, "user.create", "POST", "/Users", l.userBody(i), 201)
		if err == nil && status == 201 {
			l.setUser(i, idOf(body), userActive)
		}
		return "", false
	}
	l.mu.Lock()
	if l.userIDs[i] == "" {
		l.userIDs[i] = id
	}
	l.mu.Unlock()
	return id, true
}

func (l *load) changeUser(ctx context.Context, cycle, i int) {
	id, ok := l.ensureUser(ctx, i)
	if !ok {
		return
	}
	r := l.rng(3, uint64(cycle)<<32|uint64(i))
	l.mu.Lock()
	state := l.userState[i]
	l.mu.Unlock()
	path := "/Users/" + id
	if state == userDisabled {
		if r.IntN(10) < 7 {
			if st, _, err := l.do(ctx, "user.enable", "PATCH", path, patchOps(map[string]any{"op": "Replace", "path": "active", "value": "True"}), 200, 204); err == nil && st < 300 {
				l.setUser(i, id, userActive)
			}
		} else {
			l.deleteUser(ctx, i, id)
		}
		return
	}
	switch x := r.IntN(100); {
	case x < 45:
		// Without aadOptscim062020: one capitalised op per changed attribute.
		all := []map[string]any{
			{"op": "Replace", "path": "displayName", "value": pick(r, givenNames) + " " + pick(r, familyNames)},
			{"op": "Replace", "path": "title", "value": pick(r, titles)},
			{"op": "Replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("u%d.c%d@%s", i, cycle, emailDomain)},
			{"op": "Replace", "path": "name.familyName", "value": pick(r, familyNames)},
			{"op": "Add", "path": entSchema + ":department", "value": pick(r, departments)},
			{"op": "Replace", "path": `addresses[type eq "work"].locality`, "value": pick(r, cities)},
			{"op": "Replace", "path": `phoneNumbers[type eq "mobile"].value`, "value": phone(r)},
			{"op": "Add", "path": `phoneNumbers[type eq "fax"].value`, "value": phone(r)},
		}
		r.Shuffle(len(all), func(a, b int) { all[a], all[b] = all[b], all[a] })
		l.do(ctx, "user.patch", "PATCH", path, patchOps(all[:1+r.IntN(4)]...), 200, 204)
	case x < 75:
		// With aadOptscim062020: filtered paths stay, the rest is one path-less value object.
		given, family := pick(r, givenNames), pick(r, familyNames)
		l.do(ctx, "user.patch.pathless", "PATCH", path, patchOps(
			map[string]any{"op": "replace", "path": `emails[type eq "work"].value`, "value": fmt.Sprintf("u%d.c%d@%s", i, cycle, emailDomain)},
			map[string]any{"op": "replace", "value": map[string]any{
				"displayName": given + " " + family, "name.givenName": given, "name.familyName": family,
				entSchema + ":employeeNumber": strconv.Itoa(200000 + i), "title": pick(r, titles),
			}}), 200, 204)
	case x < 93:
		var op map[string]any
		if x%2 == 0 {
			op = map[string]any{"op": "Replace", "path": "active", "value": "False"}
		} else {
			op = map[string]any{"op": "replace", "path": "active", "value": false}
		}
		if st, _, err := l.do(ctx, "user.disable", "PATCH", path, patchOps(op), 200, 204); err == nil && st < 300 {
			l.setUser(i, id, userDisabled)
		}
	default:
		l.deleteUser(ctx, i, id)
	}
}

func (l *load) deleteUser(ctx context.Context, i int, id string) {
	if st, _, err := l.do(ctx, "user.delete", "DELETE", "/Users/"+id, nil, 204); err == nil && st == 204 {
		l.mu.Lock()
		l.userState[i] = userDeleted
		delete(l.userIDs, i)
		for _, set := range l.members {
			delete(set, i)
		}
		l.mu.Unlock()
	}
}

func (l *load) changeGroup(ctx context.Context, cycle, g int) {
	id, ok := l.match(ctx, "group.match", "Groups", "displayName", l.groupName(g))
	if !ok {
		return
	}
	if id == "" {
		if !l.groupsGone[g] {
			l.rec.miss("group.match")
		}
		return
	}
	r := l.rng(4, uint64(cycle)<<32|uint64(g))
	l.mu.Lock()
	set := l.members[g]
	if set == nil { // a standalone incremental run: assume the initial cycle's membership
		set = map[int]struct{}{}
		for _, u := range l.plannedMembers(g) {
			set[u] = struct{}{}
		}
		l.members[g] = set
	}
	var current []int
	for u := range set {
		current = append(current, u)
	}
	l.mu.Unlock()
	slices.Sort(current)
	// Adds: a few users not yet in the group.
	var add []int
	for range 1 + r.IntN(max(1, l.cfg.memberBatch/5)) {
		u := r.IntN(max(1, l.cfg.users))
		if _, in := set[u]; !in {
			add = append(add, u)
		}
	}
	if len(add) > 0 {
		ids, idx := l.idsOfResolving(ctx, add)
		if len(ids) > 0 {
			if st, _, err := l.do(ctx, "group.members.add", "PATCH", "/Groups/"+id,
				patchOps(map[string]any{"op": "Add", "path": "members", "value": memberValues(ids, true)}), 204, 200); err == nil && st < 300 {
				l.mu.Lock()
				for _, u := range idx {
					set[u] = struct{}{}
				}
				l.mu.Unlock()
			}
		}
	}
	// Removes: a few current members, in one of Entra's two dialects.
	if len(current) == 0 {
		return
	}
	var rm []int
	for range 1 + r.IntN(3) {
		rm = append(rm, current[r.IntN(len(current))])
	}
	slices.Sort(rm)
	rm = slices.Compact(rm)
	ids, idx := l.idsOfResolving(ctx, rm)
	if len(ids) == 0 {
		return
	}
	var body map[string]any
	op := "group.members.remove"
	if r.IntN(2) == 0 {
		body = patchOps(map[string]any{"op": "Remove", "path": "members", "value": memberValues(ids, false)})
	} else {
		op = "group.members.remove.filter"
		var ops []map[string]any
		for _, id := range ids {
			ops = append(ops, map[string]any{"op": "remove", "path": `members[value eq "` + id + `"]`})
		}
		body = patchOps(ops...)
	}
	if st, _, err := l.do(ctx, op, "PATCH", "/Groups/"+id, body, 204, 200); err == nil && st < 300 {
		l.mu.Lock()
		for _, u := range idx {
			delete(set, u)
		}
		l.mu.Unlock()
	}
}

// idsOfResolving is idsOf, matching users whose id this run has not seen yet.
func (l *load) idsOfResolving(ctx context.Context, users []int) ([]string, []int) {
	for _, u := range users {
		l.mu.Lock()
		known, deleted := l.userIDs[u] != "", l.userState[u] == userDeleted
		l.mu.Unlock()
		if !known && !deleted {
			if id, ok := l.match(ctx, "user.match", "Users", "userName", l.userName(u)); ok && id != "" {
				l.mu.Lock()
				l.userIDs[u] = id
				l.mu.Unlock()
			}
		}
	}
	return l.idsOf(users)
}

func (l *load) incremental(ctx context.Context) {
	for c := range l.cfg.cycles {
		if ctx.Err() != nil {
			return
		}
		l.probe(ctx)
		r := l.rng(5, uint64(c))
		nu := int(math.Round(l.cfg.changeRate * float64(l.cfg.users)))
		ng := int(math.Round(l.cfg.groupChangeRate * float64(l.cfg.groups)))
		users := r.Perm(max(l.cfg.users, 1))[:min(nu, l.cfg.users)]
		groups := r.Perm(max(l.cfg.groups, 1))[:min(ng, l.cfg.groups)]
		l.logf("incremental cycle %d: %d users, %d groups", c+1, len(users), len(groups))
		l.block(fmt.Sprintf("incremental.%d", c+1), func() {
			l.parallel(ctx, len(users)+len(groups), l.cfg.concurrency, func(ctx context.Context, k int) {
				if k < len(users) {
					l.changeUser(ctx, c, users[k])
				} else {
					l.changeGroup(ctx, c, groups[k-len(users)])
				}
			})
		})
	}
}

// ---- read latencies ----

func (l *load) read(ctx context.Context) {
	n := l.cfg.samples
	users := l.cfg.users
	if users == 0 {
		return
	}
	r := l.rng(6, 0)
	idx := make([]int, n)
	for k := range idx {
		idx[k] = r.IntN(users)
	}
	ids := make([]string, n)
	l.block("user.filter.userName", func() {
		l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, k int) {
			id, ok := l.match(ctx, "user.filter.userName", "Users", "userName", l.userName(idx[k]))
			if ok && id == "" {
				l.rec.miss("user.filter.userName")
			}
			ids[k] = id
		})
	})
	l.block("user.filter.externalId", func() {
		l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, k int) {
			if id, ok := l.match(ctx, "user.filter.externalId", "Users", "externalId", l.userExt(idx[(k+n/2)%n])); ok && id == "" {
				l.rec.miss("user.filter.externalId")
			}
		})
	})
	l.block("user.get", func() {
		l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, k int) {
			if ids[k] != "" {
				l.do(ctx, "user.get", "GET", "/Users/"+ids[k], nil, 200)
			}
		})
	})
	l.block("user.list100.random", func() {
		l.parallel(ctx, min(n, l.cfg.listSamples), l.cfg.concurrency, func(ctx context.Context, k int) {
			start := 1 + idx[k]/100*100
			if start+100 > users {
				start = max(1, users-99)
			}
			l.do(ctx, "user.list100.random", "GET", fmt.Sprintf("/Users?startIndex=%d&count=100", start), nil, 200)
		})
	})
	l.block("user.list100.first", func() {
		l.parallel(ctx, min(n, l.cfg.listSamples), l.cfg.concurrency, func(ctx context.Context, k int) {
			l.do(ctx, "user.list100.first", "GET", "/Users?startIndex=1&count=100", nil, 200)
		})
	})
	if l.cfg.groups > 0 {
		l.block("group.match", func() {
			l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, k int) {
				if id, ok := l.match(ctx, "group.match", "Groups", "displayName", l.groupName(idx[k]%l.cfg.groups)); ok && id == "" {
					l.rec.miss("group.match")
				}
			})
		})
	}
	l.block("probe", func() {
		l.parallel(ctx, n, l.cfg.concurrency, func(ctx context.Context, k int) {
			l.do(ctx, "probe.users", "GET", "/Users"+filterQuery("userName", guid("probe", k, time.Now().UnixNano()), false), nil, 200)
		})
	})
}

// ---- one big group ----

func (l *load) bigGroup(ctx context.Context) {
	biggest := l.cfg.bigSizes[len(l.cfg.bigSizes)-1]
	if l.cfg.users < biggest {
		l.logf("biggroup: -users %d is below the largest size %d; sizes above it are skipped", l.cfg.users, biggest)
	}
	l.block("biggroup.resolve", func() { l.resolveUsers(ctx) })
	// Members in user-index order: the first n users that exist.
	var order []int
	l.mu.Lock()
	for i := 0; i < l.cfg.users; i++ {
		if l.userIDs[i] != "" {
			order = append(order, i)
		}
	}
	l.mu.Unlock()
	name := fmt.Sprintf("%s big group", l.cfg.prefix)
	id, ok := l.match(ctx, "group.match", "Groups", "displayName", name)
	if !ok {
		return
	}
	if id != "" { // start from empty
		l.do(ctx, "group.delete", "DELETE", "/Groups/"+id, nil, 204)
	}
	status, body, err := l.do(ctx, "group.create", "POST", "/Groups", map[string]any{
		"schemas": []string{groupSchema, adGroup}, "externalId": guid(l.cfg.prefix, "big"), "displayName": name,
		"meta": map[string]any{"resourceType": "Group"}}, 201)
	if err != nil || status != 201 {
		return
	}
	id = idOf(body)
	have := 0
	for _, size := range l.cfg.bigSizes {
		if size > len(order) {
			break
		}
		label := fmt.Sprintf("group.%s", sizeLabel(size))
		l.logf("biggroup: filling to %d", size)
		batches := (size - have + l.cfg.memberBatch - 1) / l.cfg.memberBatch
		from := have
		l.block(label+".fill", func() {
			l.parallel(ctx, batches, l.cfg.concurrency, func(ctx context.Context, b int) {
				lo := from + b*l.cfg.memberBatch
				ids, _ := l.idsOf(order[lo:min(lo+l.cfg.memberBatch, size)])
				l.do(ctx, "group.members.add."+sizeLabel(size)+".fill", "PATCH", "/Groups/"+id,
					patchOps(map[string]any{"op": "Add", "path": "members", "value": memberValues(ids, true)}), 204, 200)
			})
		})
		have = size
		r := l.rng(7, uint64(size))
		l.block(label+".samples", func() {
			for k := 0; k < l.cfg.samples && ctx.Err() == nil; k++ {
				u := order[r.IntN(size)]
				uid, _ := l.idsOf([]int{u})
				if len(uid) == 0 {
					continue
				}
				if k%2 == 0 {
					l.do(ctx, label+".remove1", "PATCH", "/Groups/"+id,
						patchOps(map[string]any{"op": "Remove", "path": "members", "value": memberValues(uid, false)}), 204, 200)
				} else {
					l.do(ctx, label+".remove1.filter", "PATCH", "/Groups/"+id,
						patchOps(map[string]any{"op": "remove", "path": `members[value eq "` + uid[0] + `"]`}), 204, 200)
				}
				l.do(ctx, label+".add1", "PATCH", "/Groups/"+id,
					patchOps(map[string]any{"op": "Add", "path": "members", "value": memberValues(uid, true)}), 204, 200)
				l.do(ctx, label+".get.excludeMembers", "GET", "/Groups/"+id+"?excludedAttributes=members", nil, 200)
				l.match(ctx, label+".match.excludeMembers", "Groups", "displayName", name)
			}
		})
		// The full group once, to show what a member list of this size costs.
		l.do(ctx, label+".get.withMembers", "GET", "/Groups/"+id, nil, 200)
	}
}

func sizeLabel(n int) string {
	switch {
	case n%1000000 == 0:
		return fmt.Sprintf("%dM", n/1000000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// ---- run and report ----

func (l *load) run(ctx context.Context) (*report, error) {
	if l.cfg.pid > 0 {
		if err := l.rss.start(l.cfg.pid); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var phaseTimes []phaseTime
	for _, p := range l.cfg.phases {
		t0 := time.Now()
		before := l.done.Load()
		switch p {
		case "initial":
			l.initial(ctx)
		case "incremental":
			l.incremental(ctx)
		case "read":
			l.read(ctx)
		case "biggroup":
			l.bigGroup(ctx)
		}
		d := time.Since(t0)
		n := l.done.Load() - before
		phaseTimes = append(phaseTimes, phaseTime{Phase: p, WallSeconds: d.Seconds(), Requests: n, RPS: float64(n) / d.Seconds()})
	}
	wall := time.Since(start)
	rep := l.report(wall, phaseTimes)
	if ctx.Err() != nil {
		rep.Stopped = "stopped early: " + context.Cause(ctx).Error()
	}
	return rep, nil
}

type phaseTime struct {
	Phase       string  `json:"phase"`
	WallSeconds float64 `json:"wallSeconds"`
	Requests    int64   `json:"requests"`
	RPS         float64 `json:"requestsPerSecond"`
}

type opReport struct {
	Op       string         `json:"op"`
	Count    int            `json:"count"`
	Errors   int            `json:"errors"`
	Status   map[string]int `json:"status"`
	Misses   int            `json:"misses,omitempty"`
	RPS      float64        `json:"requestsPerSecond"`
	P50      float64        `json:"p50ms"`
	P95      float64        `json:"p95ms"`
	P99      float64        `json:"p99ms"`
	Max      float64        `json:"maxms"`
	Mean     float64        `json:"meanms"`
	Examples []string       `json:"errorExamples,omitempty"`
}

type report struct {
	Target      string      `json:"url"`
	Config      any         `json:"config"`
	WallSeconds float64     `json:"wallSeconds"`
	Requests    int64       `json:"requests"`
	Phases      []phaseTime `json:"phases"`
	Ops         []opReport  `json:"ops"`
	ServerOps   []opReport  `json:"serverOps,omitempty"`
	ServerNote  string      `json:"serverNote,omitempty"`
	RSSPeakKB   int64       `json:"serverPeakRSSKiB,omitempty"` // max of sampled VmRSS and VmHWM
	RSSHWMKB    int64       `json:"serverVmHWMKiB,omitempty"`
	RSSEndKB    int64       `json:"serverEndRSSKiB,omitempty"`
	DBBytes     int64       `json:"dbBytes,omitempty"`
	DBFiles     string      `json:"dbFiles,omitempty"`
	Stopped     string      `json:"stopped,omitempty"`
}

func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return ms(sorted[max(0, min(k, len(sorted)-1))])
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

func summarize(name string, durs []time.Duration) opReport {
	slices.Sort(durs)
	var sum time.Duration
	for _, d := range durs {
		sum += d
	}
	o := opReport{Op: name, Count: len(durs), Status: map[string]int{}}
	if len(durs) > 0 {
		o.P50, o.P95, o.P99, o.Max = percentile(durs, 50), percentile(durs, 95), percentile(durs, 99), ms(durs[len(durs)-1])
		o.Mean = ms(sum / time.Duration(len(durs)))
	}
	return o
}

func (l *load) report(wall time.Duration, phases []phaseTime) *report {
	rep := &report{Target: l.cfg.url, WallSeconds: wall.Seconds(), Requests: l.done.Load(), Phases: phases}
	rep.Config = map[string]any{"users": l.cfg.users, "groups": l.cfg.groups, "groupSize": l.cfg.groupSize,
		"memberBatch": l.cfg.memberBatch, "concurrency": l.cfg.concurrency, "cycles": l.cfg.cycles, "seed": l.cfg.seed,
		"phases": l.cfg.phases, "rps": l.cfg.rps, "samples": l.cfg.samples, "skipMatch": l.cfg.skipMatch}
	l.rec.mu.Lock()
	var ops []*opStats
	for _, s := range l.rec.ops {
		ops = append(ops, s)
	}
	l.rec.mu.Unlock()
	sort.Slice(ops, func(a, b int) bool { return ops[a].order < ops[b].order })
	for _, s := range ops {
		o := summarize(s.name, s.durs)
		o.Errors, o.Misses, o.Examples = s.errs, s.misses, s.samples
		for st, n := range s.status {
			o.Status[strconv.Itoa(st)] = n
		}
		if s.netErrs > 0 {
			o.Status["net"] = s.netErrs
		}
		if span := s.last.Sub(s.first).Seconds(); span > 0 {
			o.RPS = float64(o.Count) / span
		}
		rep.Ops = append(rep.Ops, o)
	}
	if l.cfg.pid > 0 {
		rep.RSSPeakKB, rep.RSSHWMKB, rep.RSSEndKB = l.rss.stop()
	}
	if l.cfg.db != "" {
		var parts []string
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(l.cfg.db + suffix); err == nil {
				rep.DBBytes += fi.Size()
				parts = append(parts, fmt.Sprintf("%s=%d", l.cfg.db+suffix, fi.Size()))
			}
		}
		rep.DBFiles = strings.Join(parts, " ")
	}
	if l.cfg.serverLog != "" {
		var err error
		rep.ServerOps, err = l.serverSide(l.cfg.serverLog)
		if err != nil {
			rep.ServerNote = "server log: " + err.Error()
		} else {
			rep.ServerNote = "server-side: the ms= the server logged per request, grouped by scimload block and the server's op name"
		}
	}
	return rep
}

// serverSide groups the server's own request durations (ms=) by the scimload
// block they fell in and the server's op name.
func (l *load) serverSide(path string) ([]opReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	by := map[string][]time.Duration{}
	var keys []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		t, msv, op, ok := parseLogLine(sc.Text())
		if !ok {
			continue
		}
		label := ""
		for _, b := range l.blocks {
			if !t.Before(b.start.Truncate(time.Millisecond)) && !t.After(b.end) {
				label = b.label
			}
		}
		if label == "" {
			continue
		}
		key := label + " | " + op
		if _, seen := by[key]; !seen {
			keys = append(keys, key)
		}
		by[key] = append(by[key], time.Duration(msv*float64(time.Millisecond)))
	}
	var out []opReport
	for _, k := range keys {
		out = append(out, summarize(k, by[k]))
	}
	return out, sc.Err()
}

// parseLogLine reads time, ms and op from an slog text or JSON request line.
func parseLogLine(line string) (time.Time, float64, string, bool) {
	if strings.HasPrefix(line, "{") {
		var v struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			MS   float64   `json:"ms"`
			Op   string    `json:"op"`
		}
		if json.Unmarshal([]byte(line), &v) != nil || v.Msg != "request" {
			return time.Time{}, 0, "", false
		}
		return v.Time, v.MS, v.Op, true
	}
	if !strings.Contains(line, "msg=request ") {
		return time.Time{}, 0, "", false
	}
	kv := logfmt(line)
	t, err := time.Parse(time.RFC3339Nano, kv["time"])
	if err != nil {
		return time.Time{}, 0, "", false
	}
	msv, err := strconv.ParseFloat(kv["ms"], 64)
	if err != nil {
		return time.Time{}, 0, "", false
	}
	return t, msv, kv["op"], true
}

// logfmt splits key=value pairs; values may be double-quoted.
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			end := 1
			for end < len(line) && (line[end] != '"' || line[end-1] == '\\') {
				end++
			}
			val, _ = strconv.Unquote(line[:min(end+1, len(line))])
			line = line[min(end+1, len(line)):]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			val, line = line[:sp], line[sp:]
		}
		kv[key] = val
	}
	return kv
}

func (rep *report) print(w io.Writer) {
	fmt.Fprintf(w, "scimload → %s\n", rep.Target)
	fmt.Fprintf(w, "wall %.1fs, %d requests (%.0f req/s)\n", rep.WallSeconds, rep.Requests, float64(rep.Requests)/rep.WallSeconds)
	for _, p := range rep.Phases {
		fmt.Fprintf(w, "  phase %-12s %8.1fs %8d requests %8.0f req/s\n", p.Phase, p.WallSeconds, p.Requests, p.RPS)
	}
	printOps := func(title string, ops []opReport, withErrors bool) {
		fmt.Fprintln(w)
		fmt.Fprintln(w, title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		if withErrors {
			fmt.Fprintln(tw, "op\tcount\terrors\treq/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\tstatus\t")
		} else {
			fmt.Fprintln(tw, "block | server op\tcount\tp50 ms\tp95 ms\tp99 ms\tmax ms\t")
		}
		for _, o := range ops {
			if withErrors {
				var st []string
				for k, v := range o.Status {
					st = append(st, fmt.Sprintf("%s:%d", k, v))
				}
				sort.Strings(st)
				status := strings.Join(st, " ")
				if o.Misses > 0 {
					status += fmt.Sprintf(" misses:%d", o.Misses)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t\n", o.Op, o.Count, o.Errors, o.RPS, o.P50, o.P95, o.P99, o.Max, status)
			} else {
				fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", o.Op, o.Count, o.P50, o.P95, o.P99, o.Max)
			}
		}
		tw.Flush()
	}
	printOps("client-side latency (request sent → response body read):", rep.Ops, true)
	for _, o := range rep.Ops {
		for _, e := range o.Examples {
			fmt.Fprintf(w, "  error %s: %s\n", o.Op, e)
		}
	}
	if len(rep.ServerOps) > 0 {
		printOps(rep.ServerNote+":", rep.ServerOps, false)
	} else if rep.ServerNote != "" {
		fmt.Fprintln(w, rep.ServerNote)
	}
	if rep.RSSPeakKB > 0 {
		fmt.Fprintf(w, "\nserver RSS: peak %.1f MiB (VmHWM %.1f MiB), at end %.1f MiB\n",
			float64(rep.RSSPeakKB)/1024, float64(rep.RSSHWMKB)/1024, float64(rep.RSSEndKB)/1024)
	}
	if rep.DBFiles != "" {
		fmt.Fprintf(w, "database: %.1f MiB (%s)\n", float64(rep.DBBytes)/(1<<20), rep.DBFiles)
	}
	if rep.Stopped != "" {
		fmt.Fprintln(w, rep.Stopped)
	}
}

func (rep *report) writeJSON(path string) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(raw)
		return err
	}
	return os.WriteFile(path, raw, 0o644)
}

// ---- server memory ----

type rssSampler struct {
	pid        int
	peak, last atomic.Int64
	stopc      chan struct{}
	done       chan struct{}
}

// readStatus returns VmRSS and VmHWM in KiB.
func readStatus(pid int) (rss, hwm int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = n
		case "VmHWM:":
			hwm = n
		}
	}
	return rss, hwm, nil
}

func (s *rssSampler) start(pid int) error {
	if _, _, err := readStatus(pid); err != nil {
		return fmt.Errorf("-pid %d: %w", pid, err)
	}
	s.pid, s.stopc, s.done = pid, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := readStatus(pid); err == nil {
				s.last.Store(rss)
				if rss > s.peak.Load() {
					s.peak.Store(rss)
				}
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

func (s *rssSampler) stop() (peak, hwm, last int64) {
	close(s.stopc)
	<-s.done
	_, hwm, _ = readStatus(s.pid)
	return max(s.peak.Load(), hwm), hwm, s.last.Load()
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPUpgradeUnderLoad replaces the binary on disk with one of another
// version and sends SIGHUP while Entra-like clients create, find and update
// users over kept-alive connections: no request may fail or be refused, the
// old process must exit, and the new binary must be the one serving.
func TestSIGHUPUpgradeUnderLoad(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds and upgrades a real server (Linux); skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimbox")
	buildVersioned(t, bin, "test-old")
	next := filepath.Join(dir, "scimbox-next")
	buildVersioned(t, next, "test-new")
	db := filepath.Join(dir, "scimbox.db")
	token := createToken(t, bin, db)

	port := freePort(t)
	logs := openLog(t, dir)
	old := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-backup-interval", "0")
	old.Stdout, old.Stderr = logs, logs
	if err := old.Start(); err != nil {
		t.Fatal(err)
	}
	oldExited := make(chan error, 1)
	go func() { oldExited <- old.Wait() }()
	t.Cleanup(func() { old.Process.Kill() })
	if !waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 20*time.Second) {
		t.Fatalf("server did not start:\n%s", readLog(t, logs))
	}

	load := startEntraLoad(fmt.Sprintf("http://127.0.0.1:%d%s", port, scimBase), token, 8)
	load.waitSent(300)
	// An upgrade: the new binary replaces the old one's file, then SIGHUP.
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	hup := time.Now()
	old.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-oldExited:
		if err != nil {
			t.Errorf("the old process exited with %v", err)
		}
	case <-time.After(90 * time.Second):
		load.stop()
		t.Fatalf("the old process did not exit after SIGHUP:\n%s", readLog(t, logs))
	}
	handedOver := time.Now()
	after := load.sentCount()
	load.waitSent(after + 300) // served by the new process alone
	res := load.stop()

	out := readLog(t, logs)
	newPID := servingPID(t, out, "test-new")
	t.Cleanup(func() { stopProcess(newPID) })
	if newPID == old.Process.Pid {
		t.Errorf("the new version logged the old process's pid %d", newPID)
	}
	if !processAlive(newPID) {
		t.Fatalf("the new process %d is not running:\n%s", newPID, out)
	}
	if res.failed != 0 || res.refused != 0 {
		t.Errorf("%d of %d requests failed and %d were refused across the upgrade; first failures:\n%s\nlog:\n%s",
			res.failed, res.sent, res.refused, strings.Join(res.failures, "\n"), out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("a clean upgrade logged: %s", line)
		}
	}
	if !strings.Contains(out, "upgrade: the new process serves") {
		t.Errorf("the old process did not log the hand-over:\n%s", out)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the upgrade /healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	t.Logf("upgrade gap: %s", res.gap(hup, handedOver))
}

// TestSocketActivatedRestart stands in for systemd: it holds the listening
// socket, passes it to scimbox as socket activation does (LISTEN_FDS with a
// FileDescriptorName), stops the process mid-load and starts the next one on
// the same socket. Connections made meanwhile wait in the kernel's queue: no
// request fails and none is refused.
func TestSocketActivatedRestart(t *testing.T) {
	if testing.Short() || runtime.GOOS != "linux" {
		t.Skip("builds and restarts a real server (Linux); skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimbox")
	buildVersioned(t, bin, "test-socket")
	db := filepath.Join(dir, "scimbox.db")
	token := createToken(t, bin, db)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	logs := openLog(t, dir)
	start := func() (*exec.Cmd, chan error) {
		// LISTEN_PID must be the pid of scimbox itself: the shell sets it to
		// its own and then becomes scimbox with exec.
		cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin, "serve", "-db", db,
			"-addr", "127.0.0.1:1", "-backup-interval", "0") // -addr is replaced by the socket
		cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES="+socketPlain, "INVOCATION_ID=test")
		cmd.ExtraFiles = []*os.File{sock} // fd 3, as systemd passes it
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, exited
	}
	first, firstExited := start()
	base := "http://" + ln.Addr().String()
	if !waitHealthy(base+"/healthz", 20*time.Second) {
		t.Fatalf("server did not start:\n%s", readLog(t, logs))
	}
	load := startEntraLoad(base+scimBase, token, 8)
	load.waitSent(300)
	stopped := time.Now()
	first.Process.Signal(syscall.SIGTERM) // systemctl restart: stop, then start
	if err := <-firstExited; err != nil {
		t.Errorf("the first process exited with %v", err)
	}
	second, secondExited := start()
	if !waitHealthy(base+"/healthz", 20*time.Second) { // queued until the second process serves
		t.Fatalf("the second process did not serve:\n%s", readLog(t, logs))
	}
	serving := time.Now()
	started := load.sentCount()
	load.waitSent(started + 300)
	res := load.stop()
	second.Process.Signal(syscall.SIGTERM)
	<-secondExited

	out := readLog(t, logs)
	if res.failed != 0 || res.refused != 0 {
		t.Errorf("%d of %d requests failed and %d were refused across the restart; first failures:\n%s\nlog:\n%s",
			res.failed, res.sent, res.refused, strings.Join(res.failures, "\n"), out)
	}
	if got := strings.Count(out, "listening on a socket passed by systemd"); got != 2 {
		t.Errorf("%d processes said they listen on the passed socket, want 2:\n%s", got, out)
	}
	t.Logf("restart gap: %s", res.gap(stopped, serving))
}

// TestHandoverSocketNames checks what serve makes of the sockets passed to
// it: each replaces the listener of its name, a socket the mode does not use
// is a configuration error, and no name binds the configured address.
func TestHandoverSocketNames(t *testing.T) {
	t.Parallel()
	listenerOn := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	local := serveConfig{Addr: "127.0.0.1:0"}
	withCert := serveConfig{TLSCert: "c", TLSKey: "k", HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	for _, tt := range []struct {
		name    string
		cfg     serveConfig
		passed  []string
		want    []string // the roles served by a passed socket
		wantErr string
	}{
		{name: "none passed binds the addresses", cfg: withCert},
		{name: "plain replaces -addr", cfg: local, passed: []string{socketPlain}, want: []string{socketPlain}},
		{name: "https and http", cfg: withCert, passed: []string{socketHTTPS, socketHTTP}, want: []string{socketHTTPS, socketHTTP}},
		{name: "https only, http bound", cfg: withCert, passed: []string{socketHTTPS}, want: []string{socketHTTPS}},
		{name: "unused socket", cfg: local, passed: []string{socketHTTPS}, wantErr: "named https, which scimbox does not use in mode local trial"},
		{name: "unnamed socket", cfg: withCert, passed: []string{socketHTTPS, "scimbox.socket"}, wantErr: "FileDescriptorName=https"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &handover{log: stDiscardLog(), systemd: map[string]net.Listener{}}
			passed := map[string]net.Listener{}
			for _, n := range tt.passed {
				passed[n] = listenerOn(t)
				h.systemd[n] = passed[n]
			}
			lns, err := listenAll(tt.cfg, h)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer lns.close()
			roles := map[string]net.Listener{socketPlain: lns.plain, socketHTTPS: lns.https, socketHTTP: lns.http}
			var got []string
			for role, ln := range roles {
				if ln != nil && passed[role] == ln {
					got = append(got, role)
				}
			}
			if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values(tt.want))) {
				t.Errorf("served by passed sockets: %v, want %v", got, tt.want)
			}
		})
	}
}

// buildVersioned builds scimbox into path with version as its version.
func buildVersioned(t *testing.T, path, version string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-ldflags", "-X main.buildVersion="+version, "-o", path, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// createToken creates a SCIM token with the binary and returns its secret.
func createToken(t *testing.T, bin, db string) string {
	t.Helper()
	out, err := exec.Command(bin, "token", "create", "-db", db, "-name", "entra").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// openLog opens the file both processes log to: a file, not a pipe, so
// waiting for the old process does not wait for the new one (which
// inherits the same descriptor) to close it.
func openLog(t *testing.T, dir string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "scimbox.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readLog(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var servingLine = regexp.MustCompile(`msg=serving .*version=(\S+) pid=(\d+)`)

// servingPID returns the pid that logged serving with version.
func servingPID(t *testing.T, log, version string) int {
	t.Helper()
	for _, m := range servingLine.FindAllStringSubmatch(log, -1) {
		if m[1] == version {
			pid, _ := strconv.Atoi(m[2])
			return pid
		}
	}
	t.Fatalf("no process logged serving with version %s:\n%s", version, log)
	return 0
}

// processAlive reports whether pid runs (a zombie does not: it has exited).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	_, rest, _ := strings.Cut(string(stat[bytes.LastIndexByte(stat, ')')+1:]), " ")
	return !strings.HasPrefix(rest, "Z")
}

// stopProcess stops a process that is not the test's child (the upgraded
// scimbox belongs to no one once the old one exits), waiting for it to exit.
func stopProcess(pid int) {
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 500 && processAlive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// entraLoad sends what Entra sends in a cycle, from several workers at once
// over kept-alive connections: create a user, find it by userName, update it.
type entraLoad struct {
	base, token string
	client      *http.Client
	done        chan struct{}
	wg          sync.WaitGroup

	mu       sync.Mutex
	sent     int
	failed   int
	refused  int
	failures []string
	timings  []timing
	progress *sync.Cond
}

type timing struct {
	start   time.Time
	latency time.Duration
}

type loadResult struct {
	sent, failed, refused int
	failures              []string
	timings               []timing
}

func startEntraLoad(base, token string, workers int) *entraLoad {
	l := &entraLoad{base: base, token: token, done: make(chan struct{}),
		client: &http.Client{Timeout: 60 * time.Second, // Entra's own timeout
			Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	l.progress = sync.NewCond(&l.mu)
	for w := range workers {
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.done:
					return
				default:
				}
				l.cycle(fmt.Sprintf("w%d-n%d-%d@example.com", w, n, time.Now().UnixNano()))
			}
		})
	}
	return l
}

// cycle creates, finds and updates one user, as Entra provisions one.
func (l *entraLoad) cycle(userName string) {
	var created struct{ ID string }
	if !l.send("POST", "/Users", newUserBody(userName), http.StatusCreated, &created) {
		return
	}
	filter := "/Users?filter=" + url.QueryEscape(fmt.Sprintf("userName eq %q", userName))
	var found struct{ TotalResults int }
	if l.send("GET", filter, nil, http.StatusOK, &found) && found.TotalResults != 1 {
		l.fail(fmt.Sprintf("GET %s: %d results, want 1", filter, found.TotalResults), false)
	}
	l.send("PATCH", "/Users/"+created.ID, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "Replace", "path": "displayName", "value": "Updated " + userName}},
	}, http.StatusOK, nil)
}

// send sends one request and reports whether it got the status wanted.
func (l *entraLoad) send(method, path string, body any, want int, into any) bool {
	var rd *bytes.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, l.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+l.token)
	req.Header.Set("Content-Type", "application/scim+json")
	start := time.Now()
	resp, err := l.client.Do(req)
	var raw []byte
	if err == nil {
		raw, err = readAll(resp)
	}
	l.mu.Lock()
	l.sent++
	l.timings = append(l.timings, timing{start, time.Since(start)})
	l.progress.Broadcast()
	l.mu.Unlock()
	switch {
	case err != nil:
		l.fail(fmt.Sprintf("%s %s: %v", method, path, err), errors.Is(err, syscall.ECONNREFUSED))
		return false
	case resp.StatusCode != want:
		l.fail(fmt.Sprintf("%s %s: %d %s", method, path, resp.StatusCode, raw), false)
		return false
	}
	if into != nil {
		if err := json.Unmarshal(raw, into); err != nil {
			l.fail(fmt.Sprintf("%s %s: %v", method, path, err), false)
			return false
		}
	}
	return true
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	return b.Bytes(), err
}

func (l *entraLoad) fail(msg string, refused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if refused {
		l.refused++
	} else {
		l.failed++
	}
	if len(l.failures) < 10 {
		l.failures = append(l.failures, msg)
	}
}

func (l *entraLoad) sentCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// waitSent returns once n requests have been answered (or failed), or
// once the load has failed more than a few times.
func (l *entraLoad) waitSent(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.sent < n && l.failed+l.refused < 20 {
		l.progress.Wait()
	}
}

// stop ends the load once each worker's request in flight is answered.
func (l *entraLoad) stop() loadResult {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadResult{l.sent, l.failed, l.refused, l.failures, l.timings}
}

// gap describes the requests sent while the processes changed hands
// (between from and to) against those sent before.
func (r loadResult) gap(from, to time.Time) string {
	var before, during []time.Duration
	for _, tm := range r.timings {
		switch {
		case tm.start.Before(from) && tm.start.Add(tm.latency).Before(from):
			before = append(before, tm.latency)
		case tm.start.Before(to):
			during = append(during, tm.latency)
		}
	}
	slices.Sort(before)
	slices.Sort(during)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[int(float64(len(d)-1)*p)]
	}
	slow := 0
	for _, d := range during {
		if d > 10*pct(before, 0.99) {
			slow++
		}
	}
	return fmt.Sprintf("%d requests in all; before: median %s, p99 %s; during the hand-over (%s): %d requests, median %s, max %s, %d slower than 10× the p99 before",
		r.sent, pct(before, 0.5), pct(before, 0.99), to.Sub(from).Round(time.Millisecond), len(during), pct(during, 0.5), pct(during, 1), slow)
}

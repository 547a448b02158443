package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// TestLDAPSearchCLI runs Debian's ldapsearch (ldap-utils) against the built
// binary: RootDSE, a bind with an ldap-scope key, a subtree search, a
// memberOf search, a paged search over more than one page, and a wrong key.
// It is a failure, never a skip, under CI: .ci/run installs ldap-utils.
func TestLDAPSearchCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a real server; skipped with -short")
	}
	ldapsearch, err := exec.LookPath("ldapsearch")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no ldapsearch on this machine; .ci/run must install it (apt-get install ldap-utils)")
		}
		t.Skip("no ldapsearch on this machine: apt-get install ldap-utils")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "scimbox")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	db := filepath.Join(dir, "scimbox.db")
	lastLine := func(args ...string) string {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1]
	}
	token := lastLine("token", "create", "-db", db, "-name", "entra")
	key := lastLine("app-key", "create", "-db", db, "-name", "nas", "-scope", "ldap")

	httpPort, ldapPort := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"-ldap-addr", fmt.Sprintf("127.0.0.1:%d", ldapPort), "-ldap-base-dn", "dc=example,dc=com", "-backup-interval", "0", "-log-level", "error")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !waitHealthy(fmt.Sprintf("http://127.0.0.1:%d/healthz", httpPort), 20*time.Second) {
		t.Fatalf("server did not start: %s", stderr.String())
	}
	scimURL := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	post := func(path string, body string) string {
		req, _ := http.NewRequest("POST", scimURL+"/scim/v2"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %v %v", path, err, resp)
		}
		defer resp.Body.Close()
		var id string
		buf := new(bytes.Buffer)
		buf.ReadFrom(resp.Body)
		if i := strings.Index(buf.String(), `"id":"`); i >= 0 {
			id = strings.SplitN(buf.String()[i+6:], `"`, 2)[0]
		}
		return id
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, post("/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"user%d@example.com","active":true,"displayName":"User %d"}`, i, i)))
	}
	post("/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Staff","members":[{"value":%q},{"value":%q}]}`, ids[0], ids[3]))

	uri := fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort)
	search := func(args ...string) (string, error) {
		out, err := exec.Command(ldapsearch, append([]string{"-x", "-LLL", "-H", uri}, args...)...).CombinedOutput()
		return string(out), err
	}
	bind := []string{"-D", "cn=nas,ou=apps,dc=example,dc=com", "-w", key}
	if out, err := search(append(bind, "-b", "", "-s", "base", "namingContexts")...); err != nil || !strings.Contains(out, "namingContexts: dc=example,dc=com") {
		t.Fatalf("RootDSE: %v\n%s", err, out)
	}
	out, err := search(append(bind, "-b", "dc=example,dc=com", "(objectClass=inetOrgPerson)", "uid")...)
	if err != nil || strings.Count(out, "uid: ") != 5 {
		t.Fatalf("subtree search: %v\n%s", err, out)
	}
	out, err = search(append(bind, "-b", "ou=people,dc=example,dc=com", "(memberOf=cn=Staff,ou=groups,dc=example,dc=com)", "uid")...)
	if err != nil || strings.Count(out, "dn: ") != 2 || !strings.Contains(out, "uid: user3@example.com") {
		t.Fatalf("memberOf search: %v\n%s", err, out)
	}
	// -E pr=2/noprompt pages through 5 users two at a time.
	out, err = search(append(bind, "-E", "pr=2/noprompt", "-b", "ou=people,dc=example,dc=com", "(uid=*)", "uid")...)
	if err != nil || strings.Count(out, "dn: ") != 5 || strings.Count(out, "pagedresults") < 2 {
		t.Fatalf("paged search: %v\n%s", err, out)
	}
	out, err = search("-D", "cn=nas,ou=apps,dc=example,dc=com", "-w", key+"x", "-b", "dc=example,dc=com", "(uid=*)")
	if err == nil || !strings.Contains(out, "Invalid credentials (49)") {
		t.Fatalf("wrong key: %v\n%s", err, out)
	}
}

// TestLDAPSIGHUPUpgrade: a SIGHUP upgrade hands the LDAP socket over like
// the HTTP one: a client bound to the old process is disconnected when it
// stops, and the new version answers on the same port.
func TestLDAPSIGHUPUpgrade(t *testing.T) {
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
	createToken(t, bin, db)
	out, err := exec.Command(bin, "app-key", "create", "-db", db, "-name", "nas", "-scope", "ldap").Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := lines[len(lines)-1]

	port, ldapPort := freePort(t), freePort(t)
	logs := openLog(t, dir)
	old := exec.Command(bin, "serve", "-db", db, "-addr", fmt.Sprintf("127.0.0.1:%d", port), "-backup-interval", "0",
		"-ldap-addr", fmt.Sprintf("127.0.0.1:%d", ldapPort), "-ldap-base-dn", "dc=example,dc=com")
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
	vendorVersion := func() (string, error) {
		c, err := ldap.DialURL(fmt.Sprintf("ldap://127.0.0.1:%d", ldapPort))
		if err != nil {
			return "", err
		}
		defer c.Close()
		if err := c.Bind("cn=nas,ou=apps,dc=example,dc=com", key); err != nil {
			return "", err
		}
		res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"vendorVersion"}, nil))
		if err != nil {
			return "", err
		}
		return res.Entries[0].GetAttributeValue("vendorVersion"), nil
	}
	if v, err := vendorVersion(); err != nil || v != "test-old" {
		t.Fatalf("before the upgrade: %q %v", v, err)
	}
	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	old.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-oldExited:
		if err != nil {
			t.Errorf("the old process exited with %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the old process did not exit after SIGHUP:\n%s", readLog(t, logs))
	}
	logText := readLog(t, logs)
	t.Cleanup(func() { stopProcess(servingPID(t, logText, "test-new")) })
	if v, err := vendorVersion(); err != nil || v != "test-new" {
		t.Fatalf("after the upgrade: %q %v\n%s", v, err, logText)
	}
}

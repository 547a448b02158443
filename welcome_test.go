package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPublicBaseURL checks the address printed for the Tenant URL and the
// setup links: the bound port is kept unless it is the scheme's default, a
// wildcard address becomes one a browser on the machine can open, and a
// host scimbox cannot know is a placeholder, never a broken URL.
func TestPublicBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   serveConfig
		host  string
		addrs boundAddrs
		want  string
	}{
		{"local, non-default port", serveConfig{}, "", boundAddrs{Plain: "127.0.0.1:9443"}, "http://127.0.0.1:9443"},
		{"local, every address", serveConfig{}, "", boundAddrs{Plain: "[::]:8080"}, "http://127.0.0.1:8080"},
		{"local, IPv6 loopback", serveConfig{}, "", boundAddrs{Plain: "[::1]:8080"}, "http://[::1]:8080"},
		{"local, unbound :8080", serveConfig{}, "", boundAddrs{Plain: ":8080"}, "http://127.0.0.1:8080"},
		{"automatic HTTPS on 443", serveConfig{Domain: "scim.example.com"}, "scim.example.com", boundAddrs{HTTPS: "[::]:443"}, "https://scim.example.com"},
		{"automatic HTTPS on 9443", serveConfig{Domain: "scim.example.com"}, "scim.example.com", boundAddrs{HTTPS: "[::]:9443"}, "https://scim.example.com:9443"},
		{"own certificate on 8443", serveConfig{TLSCert: "c.pem", TLSKey: "k.pem"}, "scim.example.com", boundAddrs{HTTPS: "0.0.0.0:8443"}, "https://scim.example.com:8443"},
		{"own certificate without a name", serveConfig{TLSCert: "c.pem", TLSKey: "k.pem"}, "", boundAddrs{HTTPS: "0.0.0.0:443"}, "https://<your host name>"},
		{"behind a proxy", serveConfig{BehindProxy: true}, "", boundAddrs{Plain: "127.0.0.1:9000"}, "https://<your host name>"},
	}
	for _, tt := range tests {
		if got := publicBaseURL(tt.cfg, tt.host, tt.addrs); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestWelcomeKeepsThePort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   serveConfig
		host  string
		addrs boundAddrs
		want  string
	}{
		{"local", serveConfig{DB: "s.db"}, "", boundAddrs{Plain: "127.0.0.1:9443"}, "SCIM base URL:  http://127.0.0.1:9443/scim/v2"},
		{"automatic HTTPS", serveConfig{DB: "s.db", Domain: "scim.example.com"}, "scim.example.com", boundAddrs{HTTPS: "[::]:9443"},
			"Tenant URL:     https://scim.example.com:9443/scim/v2"},
		{"own certificate", serveConfig{DB: "s.db", TLSCert: "c.pem", TLSKey: "k.pem"}, "scim.example.com", boundAddrs{HTTPS: "[::]:8443"},
			"Tenant URL:     https://scim.example.com:8443/scim/v2"},
		{"behind a proxy", serveConfig{DB: "s.db", BehindProxy: true}, "", boundAddrs{Plain: "127.0.0.1:9000"}, "Tenant URL:     https://<your host name>/scim/v2"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		printWelcome(&out, tt.cfg, tt.host, tt.addrs)
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("%s: welcome text without %q:\n%s", tt.name, tt.want, out.String())
		}
	}
}

// TestServePrintsTheSetupLinkOnce starts the server on a fresh database on a
// non-default port: standard output carries the setup link once, with the
// port, and the log says where to look without the code.
func TestServePrintsTheSetupLinkOnce(t *testing.T) {
	t.Parallel()
	cfg, err := parseServeConfigEnv([]string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "scimbox.db"), "-backup-interval", "0"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg, nil)
	waitForLog(t, s.log, 10*time.Second, "serving")
	out := s.out.String()
	link := regexp.MustCompile(`https?://\S+/setup\?code=(\S+)`)
	links := link.FindAllStringSubmatch(out, -1)
	if want := "http://" + s.addrs.Plain + "/setup?code="; len(links) != 1 || !strings.HasPrefix(links[0][0], want) {
		t.Fatalf("standard output has the setup links %q, want one starting %s:\n%s", links, want, out)
	}
	if code := links[0][1]; strings.Contains(s.log.String(), code) {
		t.Errorf("the log carries the setup code:\n%s", s.log)
	}
	if n := strings.Count(s.log.String(), "/setup?code="); n != 1 {
		t.Errorf("the log points at the setup link %d times, want once:\n%s", n, s.log)
	}
	resp, err := http.Get(links[0][0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the printed setup link answers %d, want 200", resp.StatusCode)
	}
}

// TestResetPasswordPrintsAFullLink runs `scimbox admin reset-password` with
// the flags the server runs with: the link has the scheme, host and port the
// server prints, and its code works.
func TestResetPasswordPrintsAFullLink(t *testing.T) {
	t.Parallel()
	certDir := t.TempDir()
	certFile, keyFile := filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem")
	writeCert(t, certFile, keyFile, true) // names localhost
	tests := []struct {
		name string
		args []string
		want string
		note bool // says how to get the right address
	}{
		{"defaults", nil, "http://127.0.0.1:8080/setup?code=", true},
		{"local trial on another port", []string{"-addr", "127.0.0.1:9443"}, "http://127.0.0.1:9443/setup?code=", false},
		{"local trial on every address", []string{"-addr", ":9000"}, "http://127.0.0.1:9000/setup?code=", false},
		{"automatic HTTPS", []string{"-domain", "scim.example.com"}, "https://scim.example.com/setup?code=", false},
		{"automatic HTTPS on another port", []string{"-domain", "scim.example.com", "-https-addr", ":9443"}, "https://scim.example.com:9443/setup?code=", false},
		{"own certificate", []string{"-tls-cert", certFile, "-https-addr", "0.0.0.0:8443"}, "https://localhost:8443/setup?code=", false},
		{"behind a proxy", []string{"-behind-proxy"}, "https://<your host name>/setup?code=", true},
		{"explicit URL", []string{"-url", "https://admin.example.com:444/", "-domain", "scim.example.com"}, "https://admin.example.com:444/setup?code=", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "scimbox.db")
			var stdout, stderr bytes.Buffer
			if err := adminCommand(context.Background(), append([]string{"reset-password", "-db", db}, tt.args...), &stdout, &stderr); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			m := regexp.MustCompile(`(?m)^(.+/setup\?code=)(\S+)$`).FindStringSubmatch(stdout.String())
			if m == nil || m[1] != tt.want {
				t.Fatalf("printed:\n%s\nwant a line with the link %s…", stdout.String(), tt.want)
			}
			if note := strings.Contains(stdout.String(), "-url"); note != tt.note {
				t.Errorf("a note about -url: %v, want %v:\n%s", note, tt.note, stdout.String())
			}
			s, err := OpenStore(context.Background(), db, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if ok, err := s.SetupCodeValid(context.Background(), m[2]); err != nil || !ok {
				t.Errorf("the printed code is not valid: %v %v", ok, err)
			}
		})
	}
}

// TestResetPasswordReadsTheServersEnvironment: the SCIMBOX_* variables that
// configure the server set the link too.
func TestResetPasswordReadsTheServersEnvironment(t *testing.T) {
	t.Setenv("SCIMBOX_DOMAIN", "scim.example.com")
	t.Setenv("SCIMBOX_HTTPS_ADDR", ":8443")
	var stdout bytes.Buffer
	if err := adminCommand(context.Background(), []string{"reset-password", "-db", filepath.Join(t.TempDir(), "scimbox.db")}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if want := "\nhttps://scim.example.com:8443/setup?code="; !strings.Contains(stdout.String(), want) {
		t.Errorf("printed:\n%s\nwant the link %s…", stdout.String(), want)
	}
}

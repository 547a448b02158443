package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

// serveConfig is the configuration of `scimbox serve`.
type serveConfig struct {
	DB        string
	Addr      string
	LogFormat string
	LogLevel  string
}

// newFlagSet returns a flag set whose flags fall back to SCIMBOX_* environment variables.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// envDefault applies SCIMBOX_<NAME> environment variables to flags not given on the command line.
func envDefault(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SCIMBOX_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && !given[f.Name] && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", "scimbox.db", "path of the SQLite database file (created if missing)")
}

func parseServeConfig(args []string, stderr io.Writer) (serveConfig, error) {
	fs := newFlagSet("serve", stderr)
	var cfg serveConfig
	db := dbFlag(fs)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to serve plain HTTP on")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := envDefault(fs); err != nil {
		return cfg, err
	}
	cfg.DB = *db
	return cfg, cfg.validate()
}

// validate checks the whole configuration at once, in words an admin understands.
func (c serveConfig) validate() error {
	var errs []error
	if c.DB == "" {
		errs = append(errs, errors.New("-db must name a database file"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("-addr %q is not HOST:PORT (for example 127.0.0.1:8080)", c.Addr))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format must be text or json, not %q", c.LogFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level must be debug, info, warn or error, not %q", c.LogLevel))
	}
	return errors.Join(errs...)
}

func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve opens the store, listens and serves until ctx ends, then shuts down
// gracefully: in-flight requests finish and the database closes cleanly.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) error {
	log := newLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	store, err := OpenStore(ctx, cfg.DB, log)
	if err != nil {
		return err
	}
	defer store.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (is another scimbox or program using that port?): %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           (&server{store: store, log: log}).handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	printWelcome(stdout, cfg, ln.Addr().String())
	log.Info("serving", "addr", ln.Addr().String(), "db", cfg.DB, "version", version())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

func printWelcome(w io.Writer, cfg serveConfig, addr string) {
	self := "scimbox"
	if exe, err := os.Executable(); err == nil && strings.Contains(exe, "go-build") {
		self = "go run ." // started with go run
	}
	db, _ := filepath.Abs(cfg.DB)
	fmt.Fprintf(w, `scimbox %s — local trial mode (plain HTTP)
  SCIM base URL:  http://%s%s
  Database:       %s
Microsoft Entra cannot reach this address: it needs a public HTTPS Tenant URL.
To try it locally, create a token and query it:
  %s token create -db %s -name trial
  curl -H "Authorization: Bearer <token>" 'http://%s%s/Users?filter=userName+eq+%%22nobody%%22'
`, version(), addr, scimBase, db, self, cfg.DB, addr, scimBase)
}

// version is the module version when built from a tagged module, else the VCS revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

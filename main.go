// Command scimbox is a SCIM 2.0 server that Microsoft Entra ID provisions
// users and groups into, keeping everything in one SQLite file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// main runs the command line until it ends or SIGINT/SIGTERM arrives.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runProcess(ctx, os.Args[1:], os.Stdout, os.Stderr, true)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "scimbox:", err)
		os.Exit(1)
	}
}

// run dispatches a command line; with no command it serves with the defaults.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runProcess(ctx, args, stdout, stderr, false)
}

// runProcess is run; ownsProcess says it runs as the scimbox process itself
// (from main), so serve may take inherited sockets and upgrade on SIGHUP.
func runProcess(ctx context.Context, args []string, stdout, stderr io.Writer, ownsProcess bool) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseServeConfig(args, stderr)
		if err != nil {
			return err
		}
		if cfg.Version {
			fmt.Fprintln(stdout, "scimbox", version())
			return nil
		}
		cfg.ownsProcess = ownsProcess
		return serve(ctx, cfg, stdout, stderr)
	case "token":
		return tokenCommand(ctx, args, stdout, stderr)
	case "admin":
		return adminCommand(ctx, args, stdout, stderr)
	case "backup":
		return backupCommand(ctx, args, stdout, stderr)
	case "restore":
		return restoreCommand(ctx, args, stdout, stderr)
	case "disconnect":
		return disconnectCommand(ctx, args, stdout, stderr)
	case "export":
		return exportCommand(ctx, args, stdout, stderr)
	case "migrate":
		return migrateCommand(ctx, args, stdout, stderr)
	case "holds":
		return holdsCommand(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "scimbox", version())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// usage is the help text of `scimbox help` and of an unknown command.
const usage = `usage:
  scimbox [serve] [-db PATH] [-addr HOST:PORT]   serve SCIM (default: ./scimbox.db on 127.0.0.1:8080, local trial)
  scimbox serve -domain scim.example.com         HTTPS on :443 with an automatic certificate, :80 redirects
        [-acme-email EMAIL] [-acme-ca URL] [-https-addr :443] [-http-addr :80]
  scimbox serve -tls-cert FILE -tls-key FILE     HTTPS with your own certificate
  scimbox serve -behind-proxy [-trusted-proxies 127.0.0.1,::1]   plain HTTP for your reverse proxy
  scimbox token create [-db PATH] -name NAME     create a Secret Token for Entra (printed once)
  scimbox token list [-db PATH]                  list tokens (never their secrets)
  scimbox token revoke [-db PATH] ID             revoke a token
  scimbox admin reset-password [-db PATH] [-domain NAME | -addr HOST:PORT | -url URL]
                                                 print a one-time link that sets the admin password
  scimbox backup [-db PATH] DEST                 consistent copy of the database, safe while serving
  scimbox restore [-db PATH] SRC                 replace the database with a checked backup (server stopped)
  scimbox disconnect [-db PATH] -yes             revoke all tokens; directory accounts become manual
  scimbox export [-db PATH] [-format csv|json] [-groups]   users (or groups) with effective values
  scimbox migrate [-db PATH]                     upgrade the database for this version (server stopped; serve does it too)
  scimbox holds list|approve|reject [-db PATH] [-all | ID…]   directory changes held by the mass-change hold
  scimbox version                                (or serve -version)
Every flag can also be set in the environment as SCIMBOX_<FLAG>, e.g. SCIMBOX_DB, SCIMBOX_DOMAIN.
See scimbox serve -h for all serve flags.
`

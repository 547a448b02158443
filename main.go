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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "scimbox:", err)
		os.Exit(1)
	}
}

// run dispatches a command line; with no command it serves with the defaults.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
		return serve(ctx, cfg, stdout, stderr)
	case "token":
		return tokenCommand(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "scimbox", version())
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage:
  scimbox [serve] [-db PATH] [-addr HOST:PORT]   serve SCIM (default: ./scimbox.db on 127.0.0.1:8080)
  scimbox token create [-db PATH] -name NAME     create a Secret Token for Entra (printed once)
  scimbox token list [-db PATH]                  list tokens (never their secrets)
  scimbox token revoke [-db PATH] ID             revoke a token
  scimbox version
Every flag can also be set in the environment as SCIMBOX_<FLAG>, e.g. SCIMBOX_DB, SCIMBOX_ADDR.
`

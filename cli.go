// The command-line tools beside the server: token, admin reset-password,
// backup, restore, disconnect, export and migrate. They open the database the
// server uses, never upgrade its schema, and print what an admin needs.

package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// tokenCommand runs `scimbox token create|list|revoke`.
func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("token: say create, list or revoke")
	}
	sub := args[0]
	fs := newFlagSet("token "+sub, stderr)
	db := dbFlag(fs)
	name := fs.String("name", "", "a name for the token, such as entra-production (create)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	store, err := openCLIStore(ctx, *db, stderr, sub == "create")
	if err != nil {
		return err
	}
	defer store.Close()
	switch sub {
	case "create":
		if *name == "" {
			return errors.New("token create: -name is required, e.g. -name entra")
		}
		plain, t, err := store.CreateToken(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created token %s (%q). Paste it into Entra as the Secret Token; it is shown only this once:\n%s\n", t.ID, t.Name, plain)
		return nil
	case "list":
		tokens, err := store.Tokens(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED")
		for _, t := range tokens {
			used := "never"
			if !t.LastUsed.IsZero() {
				used = t.LastUsed.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Created.Format(time.RFC3339), used)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("token revoke: give the token ID (see scimbox token list)")
		}
		if err := store.RevokeToken(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked token %s.\n", fs.Arg(0))
		return nil
	}
	return fmt.Errorf("token: unknown subcommand %q (create, list or revoke)", sub)
}

// appKeyCommand runs `scimbox app-key create|list|revoke`: keys for the
// read API (scope api) or for LDAP binds (scope ldap).
func appKeyCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("app-key: say create, list or revoke")
	}
	sub := args[0]
	fs := newFlagSet("app-key "+sub, stderr)
	db := dbFlag(fs)
	name := fs.String("name", "", "a name for the key, such as gitea (create); an LDAP client binds as cn=NAME,ou=apps,BASE")
	scope := fs.String("scope", scopeAPI, "what the key opens: api (/api/v1) or ldap (LDAP binds) (create)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	store, err := openCLIStore(ctx, *db, stderr, sub == "create")
	if err != nil {
		return err
	}
	defer store.Close()
	switch sub {
	case "create":
		if *name == "" {
			return errors.New("app-key create: -name is required, e.g. -name gitea")
		}
		plain, k, err := store.CreateScopedAppKey(ctx, *name, *scope)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created app key %s (%q, scope %s). It is shown only this once:\n%s\n", k.ID, k.Name, k.Scope, plain)
		return nil
	case "list":
		keys, err := store.AppKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tLAST USED")
		for _, k := range keys {
			used := "never"
			if !k.LastUsed.IsZero() {
				used = k.LastUsed.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Scope, k.Created.Format(time.RFC3339), used)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("app-key revoke: give the key's ID (see scimbox app-key list)")
		}
		if err := store.RevokeAppKey(ctx, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked app key %s.\n", fs.Arg(0))
		return nil
	}
	return fmt.Errorf("app-key: unknown subcommand %q (create, list or revoke)", sub)
}

// adminCommand runs `scimbox admin reset-password`: it prints a one-time link
// that sets the admin password (or creates the admin on a fresh database).
// The link's address comes from -url, or from the flags and SCIMBOX_*
// variables that say where the server listens, as the server prints it.
func adminCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reset-password" {
		return errors.New("admin: the command is reset-password")
	}
	fs := newFlagSet("admin reset-password", stderr)
	db := dbFlag(fs)
	var cfg serveConfig
	fs.StringVar(&cfg.Addr, "addr", defaultAddr, "the server's -addr (local trial mode, -behind-proxy)")
	fs.StringVar(&cfg.Domain, "domain", "", "the server's -domain")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", ":443", "the server's -https-addr (with -domain or -tls-cert)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "the server's -tls-cert: the host name is read from it")
	fs.BoolVar(&cfg.BehindProxy, "behind-proxy", false, "the server's -behind-proxy")
	base := fs.String("url", "", "the admin page's address as people open it, e.g. https://scim.example.com (default: from the flags above)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	store, err := openCLIStore(ctx, *db, stderr, true)
	if err != nil {
		return err
	}
	defer store.Close()
	code, err := store.NewSetupCode(ctx, setupCodeTTL)
	if err != nil {
		return err
	}
	link := strings.TrimRight(*base, "/")
	if link == "" {
		host := cfg.Domain
		if host == "" {
			host = certFileHost(cfg.TLSCert)
		}
		link = publicBaseURL(cfg, host, boundAddrs{Plain: cfg.Addr, HTTPS: cfg.HTTPSAddr})
	}
	fmt.Fprintf(stdout, "Open this link within 24 hours to set the (first local) owner's password (it works once; everyone is logged out):\n%s/setup?code=%s\n", link, code)
	switch {
	case *base != "":
	case strings.Contains(link, unknownHost):
		fmt.Fprintf(stdout, "Replace %s with the name the admin page is opened at, or give it with -url.\n", unknownHost)
	case cfg.mode() == modeLocal && cfg.Addr == defaultAddr:
		fmt.Fprintln(stdout, "This is the address of a server started without flags. If it runs with -domain, -tls-cert, -addr or -behind-proxy "+
			"(or their SCIMBOX_* variables), give the same here, or the address with -url.")
	}
	return nil
}

// certFileHost is the first DNS name, not a wildcard, of the certificate in
// file, as the server names itself with -tls-cert; "" if there is none or
// the file cannot be read.
func certFileHost(file string) string {
	if file == "" {
		return ""
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	for _, name := range cert.DNSNames {
		if !strings.HasPrefix(name, "*") {
			return name
		}
	}
	return ""
}

// backupCommand runs `scimbox backup [-db PATH] DEST`: a consistent copy of
// the database, safe while the server runs.
func backupCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	db := dbFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("backup: give the destination file, e.g. scimbox backup -db scimbox.db /mnt/backup/scimbox.db")
	}
	dest := fs.Arg(0)
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("backup: %s exists; choose a new file name", dest)
	}
	store, err := openCLIStore(ctx, *db, stderr, false)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Snapshot(ctx, dest); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Backed up %s to %s (checked with integrity_check).\n", *db, dest)
	return nil
}

// restoreCommand runs `scimbox restore [-db PATH] SRC` with the server stopped.
func restoreCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	db := dbFlag(fs)
	fromReplica := fs.String("from-replica", "", "restore from the replica at this URL (as given to serve -replica) instead of a file")
	timestamp := fs.String("timestamp", "", "with -from-replica: restore the state of this time (RFC 3339, e.g. 2026-12-03T14:05:00Z); default the latest")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *fromReplica != "" {
		return restoreFromReplicaCommand(ctx, *db, *fromReplica, *timestamp, fs.NArg(), stdout, stderr)
	}
	if *timestamp != "" {
		return errors.New("restore: -timestamp goes with -from-replica")
	}
	if fs.NArg() != 1 {
		return errors.New("restore: give the backup file to restore, e.g. scimbox restore -db scimbox.db backups/scimbox-20260101T000000Z.db")
	}
	kept, err := restoreDatabase(ctx, fs.Arg(0), *db, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Restored %s from %s.\n", *db, fs.Arg(0))
	if kept != "" {
		fmt.Fprintf(stdout, "The database it replaced is kept as %s.\n", kept)
	}
	fmt.Fprintln(stdout, restoreNextStep)
	return nil
}

// disconnectCommand runs `scimbox disconnect [-db PATH] -yes`: the same as the
// admin page's Disconnect, for an admin at the shell.
func disconnectCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("disconnect", stderr)
	db := dbFlag(fs)
	yes := fs.Bool("yes", false, "confirm: revoke every token and make every directory account manual")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !*yes {
		return errors.New("disconnect revokes every SCIM token and turns every directory-managed account into a manual one; run it again with -yes to do so")
	}
	store, err := openCLIStore(ctx, *db, stderr, false)
	if err != nil {
		return err
	}
	defer store.Close()
	p, err := store.Policy(ctx)
	if err != nil {
		return err
	}
	n, err := store.Disconnect(ctx, p)
	if err != nil {
		return err
	}
	store.Log(LogEntry{Op: "disconnect from the directory", Target: "all accounts", Outcome: "success", Status: 200,
		Detail: fmt.Sprintf("from the command line: tokens revoked, %d accounts are now manual", n)})
	fmt.Fprintf(stdout, "Disconnected: every token is revoked and %d accounts are now manual accounts.\n", n)
	return nil
}

// exportCommand runs `scimbox export [-db PATH] [-format csv|json] [-groups] [-columns a,b]`,
// streaming effective values to standard output.
func exportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", stderr)
	db := dbFlag(fs)
	format := fs.String("format", "csv", "csv or json (groups: json)")
	groups := fs.Bool("groups", false, "export groups with their members instead of users")
	columns := fs.String("columns", "", "CSV columns, comma-separated (default: "+strings.Join(exportColumns, ",")+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	store, err := openCLIStore(ctx, *db, stderr, false)
	if err != nil {
		return err
	}
	defer store.Close()
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	if *groups {
		return exportGroups(ctx, store, w)
	}
	var cols []string
	if *columns != "" {
		cols = strings.Split(*columns, ",")
	}
	return exportUsers(ctx, store, w, *format, cols)
}

// parseFlags parses a command's flags, then fills the ones not given from SCIMBOX_* variables.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return envDefault(fs)
}

// openCLIStore opens the database for a command, logging to stderr. Commands
// never upgrade a database: an older server may still be running on it, and
// would go on with the old schema (only the server and `scimbox migrate` do,
// with nothing else on the file). A database with an older or newer schema is
// refused. Commands that begin a new installation (create says so: token
// create, admin reset-password) set up a new database where none exists, the
// same way the server would; the others refuse a missing one, so a mistyped
// -db does not leave an empty database behind.
func openCLIStore(ctx context.Context, db string, stderr io.Writer, create bool) (*Store, error) {
	if fi, err := os.Stat(db); !create && (err != nil || fi.Size() == 0) {
		return nil, fmt.Errorf("there is no database at %s: give the server's database with -db (or SCIMBOX_DB)", db)
	}
	return openStore(ctx, db, slog.New(slog.NewTextHandler(stderr, nil)), storeOptions{})
}

// migrateCommand runs `scimbox migrate [-db PATH]`: it upgrades the database
// to this version's schema (keeping a copy of it as it was in backups/), and
// refuses while any other scimbox process, such as the old server, has it open.
func migrateCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	db := dbFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fi, err := os.Stat(*db); err != nil || fi.Size() == 0 {
		return fmt.Errorf("migrate: there is no database at %s", *db)
	}
	store, err := openStore(ctx, *db, slog.New(slog.NewTextHandler(stderr, nil)), storeOptions{migrate: true})
	if err != nil {
		return err
	}
	defer store.Close()
	if store.migratedFrom == len(migrations) {
		fmt.Fprintf(stdout, "%s already has schema version %d, the one this scimbox uses: nothing to do.\n", *db, len(migrations))
		return nil
	}
	fmt.Fprintf(stdout, "Upgraded %s from schema version %d to %d. Start this version's server on it.\n", *db, store.migratedFrom, len(migrations))
	return nil
}

// holdsCommand runs `scimbox holds list|approve|reject [-db PATH] [-all | ID…]`:
// the Holds page for an admin at the shell (holds.go). list shows what waits
// for review and what is kept against the directory; -all lists every
// decision too.
func holdsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("holds: say list, approve or reject")
	}
	sub := args[0]
	if sub != "list" && sub != "approve" && sub != "reject" {
		return fmt.Errorf("holds: unknown subcommand %q (list, approve or reject)", sub)
	}
	fs := newFlagSet("holds "+sub, stderr)
	db := dbFlag(fs)
	all := fs.Bool("all", false, "approve or reject every held change; list every decision too")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var ids []int64
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return fmt.Errorf("holds %s: %q is not a held change's ID (see scimbox holds list)", sub, a)
		}
		ids = append(ids, id)
	}
	if sub != "list" && *all == (len(ids) > 0) {
		return fmt.Errorf("holds %s: give the IDs of the changes (see scimbox holds list), or -all", sub)
	}
	store, err := openCLIStore(ctx, *db, stderr, false)
	if err != nil {
		return err
	}
	defer store.Close()
	var done []Hold
	switch sub {
	case "list":
		q := HoldQuery{States: []string{holdHeld, holdRejected, holdProtected}, Limit: 100_000}
		if *all {
			q.States = nil
		}
		holds, _, err := store.Holds(ctx, q)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tWHEN\tCHANGE\tREQUEST")
		for _, h := range holds {
			change := h.What()
			if h.Memberships > 0 {
				change += fmt.Sprintf(" (and %d memberships)", h.Memberships)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", h.ID, h.State, h.At.Format(time.RFC3339), change, h.Request)
		}
		return tw.Flush()
	case "approve":
		done, err = store.ApproveHolds(ctx, ids, *all, "command line")
	case "reject":
		done, err = store.RejectHolds(ctx, ids, *all, "command line")
	}
	if err != nil {
		return err
	}
	if err := logDecisions(ctx, store, done, "from the command line"); err != nil {
		return err
	}
	fmt.Fprintln(stdout, decisionText(done, sub))
	return nil
}

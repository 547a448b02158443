package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := envDefault(fs); err != nil {
		return err
	}
	store, err := OpenStore(ctx, *db, slog.New(slog.NewTextHandler(stderr, nil)))
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

package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// olderSchemaDatabase creates a database at path as the scimbox before the
// last migration left it: what an older server still running has open.
func olderSchemaDatabase(t *testing.T, path string, version int) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, m := range migrations[:version] {
		// A migration SQL cannot express runs its Go step, as Store.migrate does.
		if step, ok := goMigrations[m]; ok {
			tx, err := raw.Begin()
			if err == nil {
				err = step(&Store{}, context.Background(), tx)
			}
			if err == nil {
				err = tx.Commit()
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := raw.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
}

func schemaVersion(t *testing.T, path string) int {
	t.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Commands never upgrade the schema (an older server may still be running on
// the file) and refuse an older or newer one, saying what to do.
func TestCommandsRefuseOtherSchemaVersions(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"token", "create", "-name", "x"},
		{"token", "list"},
		{"token", "revoke", "some-id"},
		{"admin", "reset-password"},
		{"disconnect", "-yes"},
		{"export"},
		{"backup", "DEST"},
		{"holds", "list"},
		{"holds", "approve", "-all"},
	}
	versions := []struct {
		name    string
		version int
		want    []string
	}{
		{"older", len(migrations) - 1, []string{fmt.Sprintf("schema version %d", len(migrations)-1), "scimbox migrate -db", "start this version's server"}},
		{"newer", len(migrations) + 1, []string{fmt.Sprintf("schema version %d", len(migrations)+1), "newer"}},
	}
	for _, v := range versions {
		for _, cmd := range commands {
			t.Run(v.name+"/"+strings.Join(cmd[:min(2, len(cmd))], " "), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				db := filepath.Join(dir, "scimbox.db")
				olderSchemaDatabase(t, db, min(v.version, len(migrations)-1))
				if v.version > len(migrations) {
					raw, _ := sql.Open("sqlite", db)
					raw.Exec(fmt.Sprintf("PRAGMA user_version = %d", v.version))
					raw.Close()
				}
				args := append([]string{cmd[0], "-db", db}, cmd[1:]...)
				if cmd[0] == "token" || cmd[0] == "admin" || cmd[0] == "holds" {
					args = append([]string{cmd[0], cmd[1], "-db", db}, cmd[2:]...)
				}
				if args[len(args)-1] == "DEST" {
					args[len(args)-1] = filepath.Join(dir, "copy.db")
				}
				var stdout bytes.Buffer
				err := run(context.Background(), args, &stdout, io.Discard)
				if err == nil {
					t.Fatalf("%v on a database with schema version %d succeeded: %s", args, v.version, stdout.String())
				}
				for _, w := range v.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if got := schemaVersion(t, db); got != v.version {
					t.Errorf("schema version after the refusal: %d, want %d (unchanged)", got, v.version)
				}
				if copies, _ := backupFiles(filepath.Join(dir, backupDir)); len(copies) > 0 {
					t.Errorf("a refused command kept a pre-migration copy: %v", copies)
				}
			})
		}
	}
}

// `scimbox migrate` upgrades the schema, keeping a copy of the old file, but
// not while another scimbox process (the old server) has the file open.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "scimbox.db")
	old := len(migrations) - 1
	olderSchemaDatabase(t, db, old)

	// The old server, still running: it holds the shared lock every store holds.
	server, err := lockFile(db, false)
	if err != nil {
		t.Fatal(err)
	}
	err = run(ctx, []string{"migrate", "-db", db}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "another scimbox process has it open") {
		t.Errorf("migrate under a running server: %v, want a refusal", err)
	}
	if got := schemaVersion(t, db); got != old {
		t.Errorf("schema version after the refusal: %d, want %d", got, old)
	}
	server.Close()

	var out bytes.Buffer
	if err := run(ctx, []string{"migrate", "-db", db}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := schemaVersion(t, db); got != len(migrations) {
		t.Errorf("schema version after migrate: %d, want %d", got, len(migrations))
	}
	if want := fmt.Sprintf("from schema version %d to %d", old, len(migrations)); !strings.Contains(out.String(), want) {
		t.Errorf("migrate said %q, want %q", out.String(), want)
	}
	if copies, _ := backupFiles(filepath.Join(dir, backupDir)); len(copies) != 1 || !strings.Contains(copies[0].Path, fmt.Sprintf("pre-migration-v%d", old)) {
		t.Errorf("copies kept: %v, want the pre-migration one", copies)
	}
	out.Reset()
	if err := run(ctx, []string{"migrate", "-db", db}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "nothing to do") {
		t.Errorf("second migrate: %v %q", err, out.String())
	}
	// Now the commands use it.
	if err := run(ctx, []string{"token", "list", "-db", db}, io.Discard, io.Discard); err != nil {
		t.Errorf("token list after migrate: %v", err)
	}
	if err := run(ctx, []string{"migrate", "-db", filepath.Join(dir, "missing.db")}, io.Discard, io.Discard); err == nil {
		t.Error("migrate of a missing database succeeded")
	}
}

// A new installation starts with `scimbox token create` on a database that
// does not exist yet (../shared/scim-replay does): that command sets it up.
// Commands that only read or change an existing database refuse a missing
// one rather than leave an empty file behind.
func TestCommandsOnAMissingDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "new", "scimbox.db")
	os.MkdirAll(filepath.Dir(db), 0o700)
	var out bytes.Buffer
	if err := run(ctx, []string{"token", "create", "-db", db, "-name", "replay"}, &out, io.Discard); err != nil {
		t.Fatalf("token create on a new database: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if tok := lines[len(lines)-1]; !strings.HasPrefix(tok, "scimbox_") {
		t.Errorf("last line %q is not the token", tok)
	}
	if got := schemaVersion(t, db); got != len(migrations) {
		t.Errorf("new database has schema version %d, want %d", got, len(migrations))
	}
	missing := filepath.Join(dir, "typo.db")
	for _, args := range [][]string{
		{"token", "list", "-db", missing},
		{"export", "-db", missing},
		{"disconnect", "-db", missing, "-yes"},
		{"backup", "-db", missing, filepath.Join(dir, "copy.db")},
	} {
		err := run(ctx, args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "no database at") {
			t.Errorf("%v: %v, want a refusal", args, err)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v created %s", args, missing)
		}
	}
}

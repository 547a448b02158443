// Durability: checkpoints, integrity checks, snapshots, backups and restore.

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

const (
	backupDir = "backups" // beside the database: snapshots and copies kept before migrations and restores
	// checkpointIdle is how long the database must be idle before the WAL is
	// folded completely into the main file, so that a copy of it is complete.
	checkpointIdle = 3 * time.Second
)

// lockFile opens path (creating it) and takes a flock on it: shared for the
// store, exclusive for restore. flock does not interfere with SQLite's own
// POSIX locks.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if exclusive {
			return nil, fmt.Errorf("%s is in use by a running scimbox: stop it first", path)
		}
		return nil, fmt.Errorf("%s is being restored: try again when restore has finished", path)
	}
	return f, nil
}

// checkpoint copies the WAL into the database file (PASSIVE: what it can
// without waiting; TRUNCATE: everything, and empty the WAL), on the
// checkpointer's connection: the writer goes on committing during a PASSIVE
// one.
func (s *Store) checkpoint(ctx context.Context, mode string) error {
	var busy, logFrames, done int
	if err := s.cp.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// checkpointEvery is how often the checkpointer copies new WAL frames into
// the database file while writes go on: often enough that the automatic
// checkpoint a commit runs at 1,000 WAL pages (about 0.2 s of a burst) finds
// them copied, and only has the newest to copy before the WAL starts again.
const checkpointEvery = 100 * time.Millisecond

// checkpointer keeps the main database file current: a passive checkpoint
// every checkpointEvery after writes, and a full one once writes pause, until
// ctx ends.
func (s *Store) checkpointer(ctx context.Context) {
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	var seen, truncated int64
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s.CheckFile() != nil {
			continue // nothing to keep current any more; CheckFile has said why
		}
		if s.replicated.Load() {
			continue // Litestream checkpoints: one of ours would make it re-upload the whole file
		}
		n := s.writes.Load()
		switch {
		case n != seen:
			seen, lastWrite = n, time.Now()
			if err := s.checkpoint(context.Background(), "PASSIVE"); err != nil {
				s.log.Warn("checkpoint", "err", err)
			}
		case n != truncated && time.Since(lastWrite) >= checkpointIdle:
			if err := s.checkpoint(context.Background(), "TRUNCATE"); err != nil {
				s.log.Warn("checkpoint", "err", err)
				continue
			}
			truncated = n
		}
	}
}

// ErrDamaged reports a database that fails its integrity check.
var ErrDamaged = errors.New("the database is damaged")

// ErrDatabaseLost reports that the database file was removed or replaced
// while the store had it open: writes would go to a file nobody can open again.
var ErrDatabaseLost = errors.New("the database file was removed or replaced while scimbox was running")

// explainDamage turns SQLite's "malformed" errors into ErrDamaged with what to do.
func (s *Store) explainDamage(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_CORRUPT || se.Code()&0xff == sqlite3.SQLITE_NOTADB) {
		return fmt.Errorf("%w: %v. Stop scimbox and %s", ErrDamaged, err, restoreHint(s.path))
	}
	return err
}

// CheckFile returns ErrDatabaseLost (with what to do) once the file at the
// store's path is no longer the file it opened: deleted, or another file moved
// into its place. The first time, it says so in the log. It costs one stat.
func (s *Store) CheckFile() error {
	if lost := s.lost.Load(); lost != nil {
		return *lost
	}
	fi, err := os.Stat(s.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil // cannot tell (a permission change, say): the writes themselves will fail if it matters
	}
	if err == nil && os.SameFile(fi, s.identity) {
		return nil
	}
	lost := fmt.Errorf("%w: %s. Writes are refused from now on, since they would be lost. Stop scimbox and %s",
		ErrDatabaseLost, s.path, restoreHint(s.path))
	if s.lost.CompareAndSwap(nil, &lost) {
		s.log.Error("the database file was removed or replaced: refusing writes", "path", s.path, "what to do", restoreHint(s.path))
	}
	return *s.lost.Load()
}

// restoreHint says how to restore the database at path: with the newest
// copy in the backups folder beside it when there is one.
func restoreHint(path string) string {
	copies, _ := backupFiles(filepath.Join(filepath.Dir(path), backupDir))
	if len(copies) == 0 {
		return fmt.Sprintf("restore a backup with `scimbox restore -db %s BACKUP-FILE`", path)
	}
	return fmt.Sprintf("restore the newest snapshot with `scimbox restore -db %s %s`", path, copies[0].Path)
}

// checkFreshStart runs before a new database is created at path: it refuses
// when a database evidently existed there (a backups folder with copies or a
// certs folder beside it), since starting empty would silently lose it,
// unless allowFresh says that is the intent. A -wal left without its database
// is refused either way: SQLite would apply it to the new file.
func checkFreshStart(path string, allowFresh bool) error {
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("%s is missing or empty, but %s-wal, the log of its latest writes, is still there: the database file was deleted or moved. "+
			"Put it back, or %s; to start with an empty database on purpose, move %[2]s-wal and %[2]s-shm away first", path, path, restoreHint(path))
	}
	if allowFresh {
		return nil
	}
	dir := filepath.Dir(path)
	var signs []string
	if copies, _ := backupFiles(filepath.Join(dir, backupDir)); len(copies) > 0 {
		signs = append(signs, fmt.Sprintf("%d database copies in %s", len(copies), filepath.Join(dir, backupDir)))
	}
	if certs, _ := os.ReadDir(filepath.Join(dir, "certs")); len(certs) > 0 {
		signs = append(signs, "certificates in "+filepath.Join(dir, "certs"))
	}
	if len(signs) == 0 {
		return nil
	}
	return fmt.Errorf("there is no database at %s, but %s show that one was there: it may have been deleted or moved, and starting empty would lose it. "+
		"Put it back, or %s; to start with an empty database on purpose, start the server once with -allow-fresh-db (or SCIMBOX_ALLOW_FRESH_DB=true)",
		path, strings.Join(signs, " and "), restoreHint(path))
}

// checkLeftoverWAL runs when the store opens a file no other process has open
// and a -wal with content lies beside it: the server crashed, or a -wal from
// another copy of the database lies next to a restored file. A crash is
// recovered by SQLite; a foreign -wal would corrupt the file, so the
// combination must pass quick_check first. The check runs on a read-only
// connection: a read-write one folds the -wal into the file when it closes,
// so refusing there would already have damaged it.
func checkLeftoverWAL(ctx context.Context, path string, log *slog.Logger) error {
	fi, err := os.Stat(path + "-wal")
	if err != nil || fi.Size() == 0 {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := quickCheck(ctx, db); err != nil {
		return fmt.Errorf("%w: %s-wal does not belong to this database or the file is corrupt (%v); the file was left as it is. "+
			"If you copied the database file back, use `scimbox restore`, which removes stale -wal/-shm files; otherwise %s",
			ErrDamaged, path, err, restoreHint(path))
	}
	log.Info("recovering writes from the -wal file left by an unclean shutdown")
	return nil
}

// quickCheck runs PRAGMA quick_check and returns its findings as an error, nil when the file is sound.
func quickCheck(ctx context.Context, q queryer) error {
	rows, err := q.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return err
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Check runs SQLite's quick_check; the server refuses to start on a damaged file.
func (s *Store) Check(ctx context.Context) error {
	if err := quickCheck(ctx, s.r); err != nil {
		return fmt.Errorf("%w: %v. Stop scimbox and %s", ErrDamaged, err, restoreHint(s.path))
	}
	return nil
}

// Snapshot writes a consistent copy of the live database to dest (which must
// not exist) with VACUUM INTO on a connection of its own, so writes go on,
// then checks the copy and makes it durable.
func (s *Store) Snapshot(ctx context.Context, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o700); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// A lost file is not copied: opening its path would snapshot another file,
	// or create an empty one (mode=rw never creates).
	if err := s.CheckFile(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	tmp := dest + ".partial"
	os.Remove(tmp)
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.path}).EscapedPath()+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := verifyDatabase(ctx, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot: the copy does not check out: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return syncFile(filepath.Dir(dest))
}

// syncFile fsyncs the file (or directory) at path, so that a rename or copy survives a power cut.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// verifyDatabase checks a database file that no server uses: integrity_check
// passes, it is a scimbox database, and not from a newer scimbox.
func verifyDatabase(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&result); err != nil {
		return fmt.Errorf("not a readable SQLite database: %w", err)
	}
	if result != "ok" {
		return fmt.Errorf("integrity_check: %s", result)
	}
	var version, tables int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('users', 'groups', 'tokens')").Scan(&tables); err != nil {
		return err
	}
	switch {
	case tables != 3 || version == 0:
		return errors.New("it is not a scimbox database")
	case version > len(migrations):
		return fmt.Errorf("it is from a newer scimbox (schema version %d)", version)
	}
	return nil
}

// restoreDatabase replaces the database at dst with a verified copy of src.
// No server may be running on dst. The replaced file (and any -wal) is kept
// beside it as <dst>.before-restore-<time>, and stale -wal/-shm files are
// removed. The copy gets a restore marker whose point is src's modification
// time: a snapshot's or copy's is when it was taken.
func restoreDatabase(ctx context.Context, src, dst string, now time.Time) (kept string, err error) {
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return restoreDatabaseMarked(ctx, src, dst, RestoreMarker{Point: fi.ModTime(), RestoredAt: now, Source: src})
}

// restoreDatabaseMarked is restoreDatabase with the restore marker given:
// it is written into the copy before the copy takes dst's place.
func restoreDatabaseMarked(ctx context.Context, src, dst string, marker RestoreMarker) (kept string, err error) {
	now := marker.RestoredAt
	if err := verifyDatabase(ctx, src); err != nil {
		return "", fmt.Errorf("restore %s: %w", src, err)
	}
	if _, err := os.Stat(dst); err == nil {
		lock, err := lockFile(dst, true)
		if err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
		defer lock.Close()
	}
	tmp := dst + ".restoring"
	if err := copyFile(src, tmp); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := writeRestoreMarker(ctx, tmp, marker); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("restore: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		kept = fmt.Sprintf("%s.before-restore-%s", dst, now.UTC().Format("20060102T150405Z"))
		if err := os.Rename(dst, kept); err != nil {
			return "", fmt.Errorf("restore: keep the old database: %w", err)
		}
		if err := os.Rename(dst+"-wal", kept+"-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("restore: %w", err)
		}
	}
	// Litestream's local state (its position and transaction files) belongs to the replaced file.
	meta := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+"-litestream")
	if _, err := os.Stat(meta); err == nil {
		if err := os.Rename(meta, meta+".before-restore-"+now.UTC().Format("20060102T150405Z")); err != nil {
			return "", fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Remove(dst + "-shm"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Remove(dst + "-wal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("restore: %w", err)
	}
	return kept, syncFile(filepath.Dir(dst))
}

// copyFile copies src to dst (mode 0600) and fsyncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Snapshots lists the automatic snapshots, newest first.
func (s *Store) Snapshots() ([]SnapshotInfo, error) {
	copies, err := backupFiles(filepath.Join(filepath.Dir(s.path), backupDir))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return slices.DeleteFunc(copies, func(c SnapshotInfo) bool {
		return !strings.HasPrefix(filepath.Base(c.Path), snapshotPrefix)
	}), nil
}

// backupFiles lists the database copies in dir (automatic snapshots and the
// copies kept before migrations), newest first; none when dir is missing.
func backupFiles(dir string) ([]SnapshotInfo, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".db") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, SnapshotInfo{Path: filepath.Join(dir, e.Name()), Size: fi.Size(), Taken: fi.ModTime()})
	}
	slices.SortFunc(out, func(a, b SnapshotInfo) int { return b.Taken.Compare(a.Taken) })
	return out, nil
}

// SnapshotInfo describes one automatic snapshot.
type SnapshotInfo struct {
	Path  string
	Size  int64
	Taken time.Time
}

// snapshotPrefix tells automatic snapshots from the other copies in backups/.
const snapshotPrefix = "scimbox-"

// RunSnapshots takes a snapshot into backups/ every interval (the first one
// when the newest is older than interval) and keeps the newest keep of them,
// until ctx ends.
func (s *Store) RunSnapshots(ctx context.Context, interval time.Duration, keep int) {
	for {
		wait := time.Duration(0)
		if snaps, err := s.Snapshots(); err == nil && len(snaps) > 0 {
			wait = max(interval-time.Since(snaps[0].Taken), 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := s.takeSnapshot(ctx, keep); err != nil {
			if ctx.Err() != nil {
				return // stopped while copying: not a failure
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(interval, time.Hour)):
			}
		}
	}
}

// snapshotResult is the outcome of an automatic snapshot.
type snapshotResult struct {
	At  time.Time
	Err string // "" when it succeeded
}

// LastSnapshot returns the outcome of the last automatic snapshot taken
// since the store was opened; ok is false before the first one ends.
func (s *Store) LastSnapshot() (r snapshotResult, ok bool) {
	if p := s.snapshotResult.Load(); p != nil {
		return *p, true
	}
	return snapshotResult{}, false
}

// takeSnapshot takes one automatic snapshot, removes the copies beyond the
// newest keep, and records the outcome for LastSnapshot.
func (s *Store) takeSnapshot(ctx context.Context, keep int) error {
	dest := filepath.Join(filepath.Dir(s.path), backupDir, snapshotPrefix+time.Now().UTC().Format("20060102T150405Z")+".db")
	if err := s.Snapshot(ctx, dest); err != nil {
		if ctx.Err() == nil {
			s.log.Error("automatic snapshot failed", "err", err)
			s.snapshotResult.Store(&snapshotResult{At: s.now(), Err: err.Error()})
		}
		return err
	}
	s.snapshotResult.Store(&snapshotResult{At: s.now()})
	s.log.Info("snapshot taken", "path", dest)
	if snaps, err := s.Snapshots(); err == nil {
		for _, old := range snaps[min(keep, len(snaps)):] {
			if err := os.Remove(old.Path); err != nil {
				s.log.Warn("remove old snapshot", "path", old.Path, "err", err)
			}
		}
	}
	return nil
}

// SnapshotFailure is the latest automatic snapshot's failure.
type SnapshotFailure struct {
	At  time.Time
	Err error
}

// SnapshotFailure returns the failure of the latest automatic snapshot, or
// nil when it succeeded or none was tried since the server started. It is
// kept in memory only: the admin page's health line reads it on every page.
func (s *Store) SnapshotFailure() *SnapshotFailure {
	if r, ok := s.LastSnapshot(); ok && r.Err != "" {
		return &SnapshotFailure{At: r.At, Err: errors.New(r.Err)}
	}
	return nil
}

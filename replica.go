// Continuous replication: Litestream, embedded as a library, ships every
// committed transaction of the database to a replica (a directory, an
// S3-compatible bucket or an SFTP server), from which `scimbox restore
// -from-replica` restores the latest state or a point in time.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/benbjohnson/litestream"
	_ "github.com/benbjohnson/litestream/file" // registers file:// replicas
	_ "github.com/benbjohnson/litestream/s3"   // registers s3:// replicas
	_ "github.com/benbjohnson/litestream/sftp" // registers sftp:// replicas
)

const (
	// replicaStatusEvery is how often the replication position is sampled for the lag.
	replicaStatusEvery = 250 * time.Millisecond
	// replicaSizeEvery is how often the replica's size is read (a listing of the bucket).
	replicaSizeEvery = time.Minute
	// replicaLagAlert is the lag past which the replication alert fires.
	replicaLagAlert = 5 * time.Minute
	// replicaCheckpointInterval is how long the database file must go
	// unchanged before Litestream folds the WAL into it when writes pause: the
	// role scimbox's own idle checkpoint plays without a replica.
	replicaCheckpointInterval = checkpointIdle
	// replicaShutdownSync bounds the final upload when the server stops.
	replicaShutdownSync = 10 * time.Second
)

// replicaSchemes are the replica kinds scimbox accepts.
var replicaSchemes = []string{"file", "s3", "sftp"}

// replicaURLs is the repeatable -replica flag.
type replicaURLs []string

func (u *replicaURLs) String() string { return strings.Join(*u, ",") }

// Set adds one replica URL, checked for its scheme. Litestream 0.5 keeps one
// replica per database, and two Litestreams on one file would each take the
// other's checkpoints for a foreign one: a second URL is refused.
func (u *replicaURLs) Set(v string) error {
	if err := checkReplicaURL(v); err != nil {
		return err
	}
	if len(*u) > 0 {
		return fmt.Errorf("only one -replica: Litestream keeps one replica per database (have %s)", replicaDisplayURL((*u)[0]))
	}
	*u = append(*u, v)
	return nil
}

// checkReplicaURL refuses a URL Litestream would not replicate to, before anything starts.
func checkReplicaURL(raw string) error {
	p, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("replica URL: %w", err)
	}
	switch p.Scheme {
	case "file":
		if p.Host != "" || p.Path == "" || !filepath.IsAbs(p.Path) {
			return fmt.Errorf("replica URL %q: a file replica is file:///absolute/path", replicaDisplayURL(raw))
		}
	case "s3", "sftp":
		if p.Host == "" {
			return fmt.Errorf("replica URL %q: name the bucket or host, e.g. s3://bucket/scimbox or sftp://user@host/path", replicaDisplayURL(raw))
		}
	default:
		return fmt.Errorf("replica URL %q: the kinds are %s (e.g. s3://bucket/scimbox?endpoint=https://minio:9000&region=us-east-1)",
			replicaDisplayURL(raw), strings.Join(replicaSchemes, ", "))
	}
	return nil
}

// replicaDisplayURL removes a password from a replica URL, for logs and pages.
func replicaDisplayURL(raw string) string {
	p, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// replicaStatus is what the admin sees of the replication.
type replicaStatus struct {
	URL             string    `json:"url"`                       // password removed
	LocalPosition   string    `json:"localPosition"`             // the newest transaction in the database (Litestream TXID)
	ReplicaPosition string    `json:"replicaPosition"`           // the newest transaction in the replica
	LagSeconds      float64   `json:"lagSeconds"`                // how long the oldest transaction not yet in the replica has waited; 0 when caught up
	LastSync        time.Time `json:"lastSync,omitzero"`         // the last successful upload
	LastError       string    `json:"lastError,omitempty"`       // the last replication error, if any since the start
	LastErrorAt     time.Time `json:"lastErrorAt,omitzero"`      //
	SizeBytes       int64     `json:"sizeBytes"`                 // the replica's files (snapshots and transaction files)
	SizeAt          time.Time `json:"sizeAt,omitzero"`           // when SizeBytes was read
	Started         bool      `json:"started"`                   // Litestream is running
	StartError      string    `json:"startError,omitempty"`      // why it could not start
	CheckpointOwner string    `json:"checkpointOwner,omitempty"` // who folds the WAL into the file: "litestream"
}

// replicator runs Litestream on the server's database.
type replicator struct {
	rawURL string
	log    *slog.Logger
	db     *litestream.DB
	ls     *litestream.Store

	lastErr atomic.Pointer[replicaFailure]

	commits  func() int64  // the store's count of commits
	lagLimit time.Duration // the lag past which the alert fires: replicaLagAlert

	mu          sync.Mutex
	pending     []pendingTx // commits not yet known to be replicated, oldest first
	lastCommits int64
	lastLocal   uint64
	movedAt     time.Time // the last commit or move of the local position
	size        int64
	sizeAt      time.Time
	started     bool
	startError  string
}

// pendingTx is a commit seen and not yet known to be in the replica.
type pendingTx struct {
	local uint64    // Litestream's local position when the commit was seen
	seen  time.Time // when
}

// replicaFailure is a replication error as Litestream logged it.
type replicaFailure struct {
	At  time.Time
	Msg string
}

// newReplicator prepares replication of the database at path to rawURL;
// start runs it. Credentials for S3 come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (or a profile/role the AWS SDK finds); an SFTP
// password or key path comes in the URL's user info or ?key-path=.
func newReplicator(path, rawURL string, commits func() int64, log *slog.Logger) (*replicator, error) {
	if err := checkReplicaURL(rawURL); err != nil {
		return nil, err
	}
	client, err := litestream.NewReplicaClientFromURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), err)
	}
	r := &replicator{rawURL: rawURL, commits: commits, lagLimit: replicaLagAlert, log: log.With("replica", replicaDisplayURL(rawURL))}
	db := litestream.NewDB(path)
	db.CheckpointInterval = replicaCheckpointInterval
	replica := litestream.NewReplicaWithClient(db, client)
	db.Replica = replica
	r.db = db
	r.ls = litestream.NewStore([]*litestream.DB{db}, litestream.DefaultCompactionLevels)
	r.ls.SetShutdownSyncTimeout(replicaShutdownSync)
	r.ls.Logger = r.log.With("system", "litestream")
	// After NewStore, which gives each database the store's logger.
	db.SetLogger(slog.New(&failureRecorder{next: r.log.Handler(), r: r}))
	return r, nil
}

// failureRecorder passes Litestream's log records on and keeps the last
// error, which Litestream reports only in its log.
type failureRecorder struct {
	next slog.Handler
	r    *replicator
}

func (h *failureRecorder) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *failureRecorder) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		msg := rec.Message
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				msg += ": " + a.Value.String()
			}
			return true
		})
		h.r.lastErr.Store(&replicaFailure{At: rec.Time, Msg: msg})
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *failureRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &failureRecorder{next: h.next.WithAttrs(attrs), r: h.r}
}

func (h *failureRecorder) WithGroup(name string) slog.Handler {
	return &failureRecorder{next: h.next.WithGroup(name), r: h.r}
}

// run replicates until ctx ends, then uploads what is left (for up to
// replicaShutdownSync) and stops: a worker of the server, stopped before the
// store closes.
func (r *replicator) run(ctx context.Context) {
	if err := r.ls.Open(ctx); err != nil {
		msg := err.Error()
		if strings.Contains(msg, "RootCAs") && os.Getenv("AWS_CA_BUNDLE") != "" {
			// Litestream gives the AWS SDK an http.Client it cannot add a CA bundle to.
			msg += " (AWS_CA_BUNDLE is set: Litestream's S3 client cannot use it; unset it for scimbox)"
		}
		r.log.Error("replication could not start", "err", msg)
		r.mu.Lock()
		r.startError = msg
		r.mu.Unlock()
		return
	}
	// Litestream opens the database at its first sync, a second from now, and
	// its final sync on Close skips a database it has not opened: a server
	// stopped before then would leave its writes out of the replica.
	if err := r.db.Sync(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("replication: first sync", "err", err)
	}
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	r.log.Info("replicating the database continuously")
	tick := time.NewTicker(replicaStatusEvery)
	defer tick.Stop()
	var sizeRead time.Time
	for ctx.Err() == nil {
		r.sample(time.Now())
		if time.Since(sizeRead) >= replicaSizeEvery {
			sizeRead = time.Now()
			r.readSize(ctx)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), replicaShutdownSync+5*time.Second)
	defer cancel()
	if err := r.ls.Close(closeCtx); err != nil {
		r.log.Error("replication: the final upload failed; the replica may miss the last writes", "err", err)
	}
	r.mu.Lock()
	r.started = false
	r.mu.Unlock()
}

// sample notes the commits since the last sample and drops those the
// replica now has, so that the lag is the age of the oldest commit waiting.
// Litestream's own position trails the WAL by up to its monitor interval, so
// a commit is known to be replicated once the replica holds a transaction
// newer than the local position read after the commit, or, when writes have
// stopped, once the local position has settled and the replica holds it.
func (r *replicator) sample(now time.Time) {
	localPos, err := r.db.Pos()
	if err != nil {
		return
	}
	local, remote := uint64(localPos.TXID), uint64(r.db.Replica.Pos().TXID)
	commits := r.commits()
	r.mu.Lock()
	defer r.mu.Unlock()
	if commits != r.lastCommits {
		if len(r.pending) >= 4096 { // a replica down for hours: keep the oldest, which sets the lag
			r.pending = append(r.pending[:1], r.pending[2:]...)
		}
		r.pending = append(r.pending, pendingTx{local: local, seen: now})
		r.lastCommits, r.movedAt = commits, now
	}
	if local != r.lastLocal {
		r.lastLocal, r.movedAt = local, now
	}
	settled := now.Sub(r.movedAt) > 2*litestream.DefaultMonitorInterval
	i := 0
	for i < len(r.pending) && (remote > r.pending[i].local || settled && remote >= local) {
		i++
	}
	r.pending = r.pending[i:]
}

// readSize adds up the sizes of the replica's files.
func (r *replicator) readSize(ctx context.Context) {
	var total int64
	for level := 0; level <= litestream.SnapshotLevel; level++ {
		itr, err := r.db.Replica.Client.LTXFiles(ctx, level, 0, false)
		if err != nil {
			return
		}
		for itr.Next() {
			total += itr.Item().Size
		}
		if err := itr.Close(); err != nil {
			return
		}
	}
	r.mu.Lock()
	r.size, r.sizeAt = total, time.Now()
	r.mu.Unlock()
}

// Status reports the replication now.
func (r *replicator) Status() replicaStatus {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if started {
		r.sample(time.Now())
	}
	st := replicaStatus{URL: replicaDisplayURL(r.rawURL), CheckpointOwner: "litestream", LastSync: r.db.LastSuccessfulSyncAt()}
	if local, err := r.db.Pos(); err == nil {
		st.LocalPosition = local.TXID.String()
	}
	st.ReplicaPosition = r.db.Replica.Pos().TXID.String()
	if f := r.lastErr.Load(); f != nil {
		st.LastError, st.LastErrorAt = f.Msg, f.At
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) > 0 {
		st.LagSeconds = time.Since(r.pending[0].seen).Seconds()
	}
	st.SizeBytes, st.SizeAt = r.size, r.sizeAt
	st.Started, st.StartError = r.started, r.startError
	return st
}

// lagAlert is the replication alert's check: it fires while the replica
// lags more than replicaLagAlert behind the database or could not start.
func (r *replicator) lagAlert(context.Context) (bool, string, error) {
	st := r.Status()
	switch {
	case st.StartError != "":
		return true, fmt.Sprintf("Replication to %s could not start: %s.", st.URL, st.StartError), nil
	case !st.Started:
		return false, "", errAlertUnknown
	case st.LagSeconds > r.lagLimit.Seconds():
		detail := fmt.Sprintf("The replica %s is %s behind the database.", st.URL, (time.Duration(st.LagSeconds) * time.Second).String())
		if st.LastError != "" {
			detail += " Last error: " + st.LastError
		}
		return true, detail, nil
	}
	return false, fmt.Sprintf("The replica %s is caught up.", st.URL), nil
}

// restoreNextStep is what every restore tells the admin to do next.
const restoreNextStep = "Next: start the server, then run Restart provisioning in Entra; the admin page's Reconcile page shows what the directory has not confirmed yet."

// errNoReplicaBackup is returned when the replica holds nothing to restore at the time asked for.
var errNoReplicaBackup = errors.New("the replica holds no backup of a database at or before that time")

// restoreFromReplica restores the database from the replica at rawURL into
// out (which must not exist), as of at (the latest state when zero), and
// returns the time of the state restored: at, or the time of the replica's
// last upload.
func restoreFromReplica(ctx context.Context, rawURL, out string, at time.Time, log *slog.Logger) (time.Time, error) {
	if err := checkReplicaURL(rawURL); err != nil {
		return time.Time{}, err
	}
	client, err := litestream.NewReplicaClientFromURL(rawURL)
	if err != nil {
		return time.Time{}, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), err)
	}
	if err := client.Init(ctx); err != nil {
		return time.Time{}, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), err)
	}
	replica := litestream.NewReplicaWithClient(nil, client)
	point := at
	if point.IsZero() {
		if _, point, err = replica.TimeBounds(ctx); err != nil {
			return time.Time{}, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), err)
		}
	}
	opt := litestream.NewRestoreOptions()
	opt.OutputPath, opt.Timestamp = out, at
	opt.IntegrityCheck = litestream.IntegrityCheckFull
	if err := replica.Restore(ctx, opt); errors.Is(err, litestream.ErrTxNotAvailable) {
		return time.Time{}, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), errNoReplicaBackup)
	} else if err != nil {
		os.Remove(out)
		return time.Time{}, fmt.Errorf("replica %s: %w", replicaDisplayURL(rawURL), err)
	}
	os.Remove(litestream.TXIDPath(out))
	log.Debug("restored from replica", "replica", replicaDisplayURL(rawURL), "point", point)
	return point, nil
}

// restoreFromReplicaCommand runs `scimbox restore -db PATH -from-replica URL
// [-timestamp T]` with the server stopped: the replica is restored into a
// file beside PATH, which is then checked and swapped in as `restore` does.
func restoreFromReplicaCommand(ctx context.Context, dbPath, rawURL, timestamp string, nargs int, stdout, stderr io.Writer) error {
	if nargs != 0 {
		return errors.New("restore: give either a backup file or -from-replica, not both")
	}
	var at time.Time
	if timestamp != "" {
		var err error
		if at, err = time.Parse(time.RFC3339, timestamp); err != nil {
			return fmt.Errorf("restore: -timestamp must be RFC 3339, e.g. 2026-12-03T14:05:00Z: %w", err)
		}
	}
	// Refused before the download when a server runs on the file.
	if _, err := os.Stat(dbPath); err == nil {
		lock, err := lockFile(dbPath, true)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		lock.Close()
	}
	out := dbPath + ".from-replica"
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	defer os.Remove(out)
	point, err := restoreFromReplica(ctx, rawURL, out, at, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	kept, err := restoreDatabaseMarked(ctx, out, dbPath, RestoreMarker{Point: point, RestoredAt: time.Now(), Source: replicaDisplayURL(rawURL)})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Restored %s from the replica %s, as of %s.\n", dbPath, replicaDisplayURL(rawURL), point.UTC().Format(time.RFC3339))
	if kept != "" {
		fmt.Fprintf(stdout, "The database it replaced is kept as %s.\n", kept)
	}
	fmt.Fprintln(stdout, restoreNextStep)
	return nil
}

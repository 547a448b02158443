package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdWriter starts a write that holds the writer until release is called,
// so that the writes started next queue up and commit as one batch.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	holding, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		if err := s.write(context.Background(), func(context.Context, *sql.Tx, time.Time) error {
			close(holding)
			<-done
			return nil
		}); err != nil {
			t.Errorf("holding write: %v", err)
		}
	}()
	<-holding
	release = func() { once.Do(func() { done <- struct{}{}; <-done }) }
	t.Cleanup(release)
	return release
}

// waitQueued waits until n writes wait for the writer.
func waitQueued(t *testing.T, s *Store, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.stats.waiting.Load() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes wait for the writer, want %d", s.stats.waiting.Load(), n)
		}
	}
}

func commitCount(t *testing.T, s *Store) float64 {
	t.Helper()
	n, _ := sample(storeMetrics(t, s), "scimbox_writer_commit_duration_seconds")
	return n
}

// userRows counts what a created user leaves in the database: its row, its
// email index rows and its user.created events.
func userRows(t *testing.T, s *Store, userName string) (users, emails, events int) {
	t.Helper()
	ctx := context.Background()
	if err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum((SELECT count(*) FROM user_emails WHERE user_id = users.id)), 0),
		coalesce(sum((SELECT count(*) FROM events WHERE resource_id = users.id AND type = ?)), 0)
		FROM users WHERE user_name = ?`, evUserCreated, userName).Scan(&users, &emails, &events); err != nil {
		t.Fatal(err)
	}
	return users, emails, events
}

func emailUser(userName string) *User {
	return &User{Attrs: map[string]any{"userName": userName,
		"emails": []any{map[string]any{"type": "work", "value": userName, "primary": true}}}}
}

// TestGroupCommitIsolation: writes that wait together commit as one
// transaction, and the ones that fail in it (a userName taken before, a
// userName taken by another write of the same batch, a write that fails
// after its INSERTs) fail alone, with their own error, leaving nothing.
func TestGroupCommitIsolation(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	if err := s.CreateUser(ctx, emailUser("taken@example.com")); err != nil {
		t.Fatal(err)
	}
	errHalfway := errors.New("failed after its inserts")
	writes := map[string]func() error{
		"dup-earlier": func() error { return s.CreateUser(ctx, emailUser("Taken@example.com")) },
		"twin-1":      func() error { return s.CreateUser(ctx, emailUser("twin@example.com")) },
		"twin-2":      func() error { return s.CreateUser(ctx, emailUser("twin@example.com")) },
		"halfway": func() error {
			return s.write(ctx, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
				u := emailUser("halfway@example.com")
				u.ID, u.Created, u.Modified, u.Version = newID(), now, now, 1
				raw, _ := json.Marshal(u.Attrs)
				if err := writeUser(ctx, s.in(tx), u, raw, true, nil); err != nil {
					return err
				}
				if err := s.userEvents(ctx, tx, now, nil, u); err != nil {
					return err
				}
				return errHalfway
			})
		},
	}
	for i := range 8 {
		writes[fmt.Sprint("ok-", i)] = func() error { return s.CreateUser(ctx, emailUser(fmt.Sprintf("ok%d@example.com", i))) }
	}

	before := commitCount(t, s)
	release := holdWriter(t, s)
	var mu sync.Mutex
	results := map[string]error{}
	var wg sync.WaitGroup
	for name, w := range writes {
		wg.Go(func() {
			err := w()
			mu.Lock()
			results[name] = err
			mu.Unlock()
		})
	}
	waitQueued(t, s, int64(len(writes)))
	release()
	wg.Wait()

	if got := commitCount(t, s) - before; got != 2 {
		t.Errorf("%v commits for the holding write and %d writes queued behind it, want 2 (one batch)", got, len(writes))
	}
	for i := range 8 {
		if err := results[fmt.Sprint("ok-", i)]; err != nil {
			t.Errorf("ok-%d: %v", i, err)
		}
		if u, e, ev := userRows(t, s, fmt.Sprintf("ok%d@example.com", i)); u != 1 || e != 1 || ev != 1 {
			t.Errorf("ok-%d: %d users, %d email rows, %d events; want 1 of each", i, u, e, ev)
		}
	}
	if err := results["dup-earlier"]; !errors.Is(err, ErrConflict) {
		t.Errorf("userName taken before the batch: %v, want ErrConflict", err)
	}
	if u, e, ev := userRows(t, s, "taken@example.com"); u != 1 || e != 1 || ev != 1 {
		t.Errorf("the earlier user: %d users, %d email rows, %d events; want 1 of each", u, e, ev)
	}
	if e1, e2 := results["twin-1"], results["twin-2"]; (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), ErrConflict) {
		t.Errorf("two creations of one userName in a batch: %v and %v, want one success and one ErrConflict", e1, e2)
	}
	if u, e, ev := userRows(t, s, "twin@example.com"); u != 1 || e != 1 || ev != 1 {
		t.Errorf("twin: %d users, %d email rows, %d events; want 1 of each", u, e, ev)
	}
	if err := results["halfway"]; !errors.Is(err, errHalfway) {
		t.Errorf("halfway: %v, want its own error", err)
	}
	if u, e, ev := userRows(t, s, "halfway@example.com"); u != 0 || e != 0 || ev != 0 {
		t.Errorf("a failed write left %d users, %d email rows, %d events behind", u, e, ev)
	}
	var orphans int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM user_emails WHERE user_id NOT IN (SELECT id FROM users)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d email index rows without their user (%v)", orphans, err)
	}
	if got, _ := sample(storeMetrics(t, s), "scimbox_events_total", "type", evUserCreated); got != 10 {
		t.Errorf("scimbox_events_total{type=%q} = %v, want 10 (the rolled-back write's not counted)", evUserCreated, got)
	}
}

// TestGroupCommitCancelledCaller: a caller that gives up while its write
// runs in a batch neither stops its write halfway nor rolls back the others'
// (SQLite rolls back the whole transaction when a write is interrupted); a
// caller that gives up while it waits is never run, and returns at once.
func TestGroupCommitCancelledCaller(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	release := holdWriter(t, s)

	running, cancelled := make(chan struct{}), make(chan struct{})
	leaving, leave := context.WithCancel(ctx)
	var fnCtxCancellable bool
	var wg sync.WaitGroup
	var errLeaving, errFirst, errLast error
	wg.Go(func() { errFirst = s.CreateUser(ctx, emailUser("first@example.com")) })
	waitQueued(t, s, 1)
	wg.Go(func() {
		errLeaving = s.write(leaving, func(ctx context.Context, tx *sql.Tx, now time.Time) error {
			fnCtxCancellable = ctx.Done() != nil
			if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('leaving-1', 'x')`); err != nil {
				return err
			}
			close(running)
			<-cancelled
			_, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('leaving-2', 'x')`)
			return err
		})
	})
	waitQueued(t, s, 2)
	wg.Go(func() { errLast = s.CreateUser(ctx, emailUser("last@example.com")) })
	waitQueued(t, s, 3)

	// One more caller gives up while it waits: it returns while the writer
	// is still held, and its write never runs.
	gaveUp, giveUp := context.WithCancel(ctx)
	ran := false
	waited := make(chan error)
	go func() {
		waited <- s.write(gaveUp, func(context.Context, *sql.Tx, time.Time) error { ran = true; return nil })
	}()
	waitQueued(t, s, 4)
	giveUp()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Errorf("a caller that gave up waiting: %v, want context.Canceled", err)
	}
	waitQueued(t, s, 3)

	release()
	<-running
	leave()
	close(cancelled)
	wg.Wait()
	if ran {
		t.Error("the write of a caller that gave up before its turn ran")
	}
	if fnCtxCancellable {
		t.Error("a write's fn got a context that can be cancelled")
	}
	if errFirst != nil || errLast != nil || errLeaving != nil {
		t.Errorf("writes of the batch: first %v, cancelled %v, last %v; want all nil", errFirst, errLeaving, errLast)
	}
	for _, name := range []string{"first@example.com", "last@example.com"} {
		if u, e, ev := userRows(t, s, name); u != 1 || e != 1 || ev != 1 {
			t.Errorf("%s: %d users, %d email rows, %d events; want 1 of each", name, u, e, ev)
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM settings WHERE key LIKE 'leaving-%'`).Scan(&n); err != nil || n != 2 {
		t.Errorf("the cancelled caller's write left %d of its 2 rows (%v), want both", n, err)
	}
}

// TestGroupCommitLostTransactionFailsBatch: when a write ends the batch's
// transaction under it (SQLite rolls a transaction back on a full disk, an
// I/O error or an interrupt), no write of the batch is acknowledged, not even
// the ones that ran before it, and the next write works.
func TestGroupCommitLostTransactionFailsBatch(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	var errBefore, errLoser, errAfter error
	wg.Go(func() { errBefore = s.CreateUser(ctx, emailUser("before@example.com")) })
	waitQueued(t, s, 1)
	wg.Go(func() {
		errLoser = s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
			_, err := tx.ExecContext(ctx, "ROLLBACK")
			return err
		})
	})
	waitQueued(t, s, 2)
	wg.Go(func() { errAfter = s.CreateUser(ctx, emailUser("after@example.com")) })
	waitQueued(t, s, 3)
	release()
	wg.Wait()
	if errBefore == nil || errLoser == nil || errAfter == nil {
		t.Errorf("writes of a batch whose transaction was lost: %v, %v, %v; want three errors", errBefore, errLoser, errAfter)
	}
	for _, name := range []string{"before@example.com", "after@example.com"} {
		if u, e, ev := userRows(t, s, name); u+e+ev != 0 {
			t.Errorf("%s: %d users, %d email rows, %d events left by a failed batch", name, u, e, ev)
		}
	}
	if err := s.CreateUser(ctx, emailUser("next@example.com")); err != nil {
		t.Fatalf("the write after a lost batch: %v", err)
	}
	if u, e, ev := userRows(t, s, "next@example.com"); u != 1 || e != 1 || ev != 1 {
		t.Errorf("next: %d users, %d email rows, %d events; want 1 of each", u, e, ev)
	}
}

// BenchmarkConcurrentCreateUser: acknowledged user creations per second with
// 16 writers at once (8 goroutines per CPU on this 2-CPU machine); every
// acknowledgement is after an fsync (synchronous=FULL).
func BenchmarkConcurrentCreateUser(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.CreateUser(ctx, emailUser(fmt.Sprintf("u%d@example.com", n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// TestGroupCommitPanickingWrite: a write that panics in a batch panics in
// its own caller, as it did when each caller ran its own transaction; the
// other writes of the batch commit, and the writer goes on.
func TestGroupCommitPanickingWrite(t *testing.T) {
	t.Parallel()
	s := newTestStore(t)
	ctx := context.Background()
	release := holdWriter(t, s)
	var wg sync.WaitGroup
	var errBefore, errAfter error
	var recovered any
	wg.Go(func() { errBefore = s.CreateUser(ctx, emailUser("before@example.com")) })
	waitQueued(t, s, 1)
	wg.Go(func() {
		defer func() { recovered = recover() }()
		s.write(ctx, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES ('panicked', 'x')`); err != nil {
				return err
			}
			panic("boom")
		})
	})
	waitQueued(t, s, 2)
	wg.Go(func() { errAfter = s.CreateUser(ctx, emailUser("after@example.com")) })
	waitQueued(t, s, 3)
	release()
	wg.Wait()
	if recovered != "boom" {
		t.Errorf("the panicking write's caller recovered %v, want its panic", recovered)
	}
	if errBefore != nil || errAfter != nil {
		t.Errorf("the other writes of the batch: %v, %v; want nil", errBefore, errAfter)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM settings WHERE key = 'panicked'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the panicking write left %d rows (%v)", n, err)
	}
	if err := s.CreateUser(ctx, emailUser("next@example.com")); err != nil {
		t.Fatalf("the write after a panic: %v", err)
	}
	for _, name := range []string{"before@example.com", "after@example.com", "next@example.com"} {
		if u, e, ev := userRows(t, s, name); u != 1 || e != 1 || ev != 1 {
			t.Errorf("%s: %d users, %d email rows, %d events; want 1 of each", name, u, e, ev)
		}
	}
}

package main

import (
	"context"
	"database/sql"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit: SQLite has one writer and synchronous=FULL pays one fsync per
// commit, so writes that arrive together are run in one transaction, each in
// its own savepoint, and committed with one fsync. A write is acknowledged
// only after the commit that holds it, so an acknowledgement still means "on
// disk"; a write that fails rolls back only its own savepoint.
//
// There is no writer goroutine to start and stop: the first caller to find
// the writer free leads a batch, and hands the lead to the oldest waiting
// caller when it is done, so no caller waits behind more than its own batch
// and the one before it.

// Each write of a batch runs in its own savepoint (the two statements
// every write runs are prepared; the rollback is two statements, and rare).
const (
	savepointSQL  = "SAVEPOINT write"
	releaseSQL    = "RELEASE write"
	rollbackToSQL = "ROLLBACK TO write; RELEASE write"
)

// maxBatch bounds the writes of one transaction: a batch holds the writer,
// and its first caller waits for all of it.
const maxBatch = 64

// writeQueue holds the writes waiting for the writer. While leading is false
// pending is empty: the leader hands over to pending[0] or clears leading.
type writeQueue struct {
	mu      sync.Mutex
	pending []*writeCall
	leading bool
}

// a writeCall's state: queued until a leader takes it into a batch, or until
// its caller gives up waiting (abandoned, never run).
const (
	callQueued int32 = iota
	callTaken
	callAbandoned
)

// writeCall is one caller's write on its way through the queue.
type writeCall struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx *sql.Tx, now time.Time) error
	state atomic.Int32
	lead  bool          // set before done closes: the caller leads the next batch
	done  chan struct{} // closed once err is final, or to hand over the lead
	err   error
	// panicked is what fn panicked with: the batch goes on without it, and
	// its caller panics with it, as it would have running fn itself.
	panicked any
}

// write runs fn in a write transaction, possibly with other callers' writes,
// and returns once that transaction committed (nil) or fn's part of it was
// rolled back (fn's error, or the commit's). fn gets ctx without its
// cancellation: once it runs, it runs to its end, because SQLite answers an
// interrupted write by rolling back the whole transaction, the other callers'
// writes with it. A caller whose ctx ends while it waits is not run.
//
// Once the database file is known to be removed or replaced, writes are
// refused: they would go to a file nobody can open again. The file is checked
// after each commit (one stat, next to the commit's fsync), so no write to a
// lost file is acknowledged.
//
// fn must not call write itself (it would wait for its own batch).
func (s *Store) write(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx, now time.Time) error) error {
	if lost := s.lost.Load(); lost != nil {
		return *lost
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	call := &writeCall{ctx: ctx, fn: fn, done: make(chan struct{})}
	q := &s.queue
	q.mu.Lock()
	lead := !q.leading
	if lead {
		q.leading = true
		call.state.Store(callTaken)
	} else {
		s.stats.waiting.Add(1)
		q.pending = append(q.pending, call)
	}
	q.mu.Unlock()
	if !lead {
		select {
		case <-call.done:
		case <-ctx.Done():
			if call.state.CompareAndSwap(callQueued, callAbandoned) {
				s.stats.waiting.Add(-1)
				return fmt.Errorf("begin: %w", ctx.Err())
			}
			<-call.done // a leader took it: wait for its outcome
		}
		if !call.lead {
			return call.outcome()
		}
	}
	s.leadBatch(call)
	return call.outcome()
}

func (c *writeCall) outcome() error {
	if c.panicked != nil {
		panic(c.panicked)
	}
	return c.err
}

// run calls the call's fn. A panic is caught, so that the batch and the
// queue go on, and rethrown in the call's own goroutine by outcome.
func (c *writeCall) run(s *Store, tx *sql.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("a write panicked", "panic", r, "stack", string(debug.Stack()))
			c.panicked, err = r, fmt.Errorf("write panicked: %v", r)
		}
	}()
	return c.fn(context.WithoutCancel(c.ctx), tx, s.now().UTC().Truncate(time.Millisecond))
}

// leadBatch runs first and the writes queued behind it as one transaction,
// then hands the lead to the oldest write still waiting.
func (s *Store) leadBatch(first *writeCall) {
	q := &s.queue
	batch := []*writeCall{first}
	q.mu.Lock()
	for len(q.pending) > 0 && len(batch) < maxBatch {
		c := q.pending[0]
		q.pending = q.pending[1:]
		if c.state.CompareAndSwap(callQueued, callTaken) {
			s.stats.waiting.Add(-1)
			batch = append(batch, c)
		}
	}
	q.mu.Unlock()

	s.commitBatch(batch)
	for _, c := range batch[1:] {
		close(c.done)
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.pending) > 0 {
		next := q.pending[0]
		q.pending = q.pending[1:]
		if next.state.CompareAndSwap(callQueued, callTaken) {
			s.stats.waiting.Add(-1)
			next.lead = true
			close(next.done)
			return
		}
	}
	q.pending = nil
	q.leading = false
}

// commitBatch runs each call of batch in its own savepoint of one immediate
// transaction and commits it once, setting each call's err. The transaction's
// context is none of the callers': database/sql rolls a transaction back when
// the context it began with ends.
func (s *Store) commitBatch(batch []*writeCall) {
	bg := context.Background()
	fail := func(calls []*writeCall, err error) {
		for _, c := range calls {
			c.err = err
		}
	}
	tx, err := s.w.BeginTx(bg, nil)
	if err != nil {
		fail(batch, fmt.Errorf("begin: %w", err))
		return
	}
	defer tx.Rollback()

	events := map[string]int{}
	var ran []*writeCall // the calls whose writes the commit holds
	for i, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = fmt.Errorf("begin: %w", err) // gave up before its turn: never runs
			continue
		}
		if _, err := s.in(tx).ExecContext(bg, savepointSQL); err != nil {
			fail(ran, fmt.Errorf("rolled back with its batch: %w", err))
			fail(batch[i:], fmt.Errorf("savepoint: %w", err))
			return
		}
		s.stats.takeEvents() // a rolled-back savepoint's
		c.err = c.run(s, tx)
		if c.err == nil {
			_, err = s.in(tx).ExecContext(bg, releaseSQL)
		} else if _, why := unavailable(c.err); why {
			// The disk or the file failed under fn: SQLite may have
			// rolled back the statement or the whole transaction, so
			// nothing of this batch is trusted to commit.
			err = c.err
		} else {
			_, err = tx.ExecContext(bg, rollbackToSQL)
		}
		if err != nil {
			// The transaction is gone or unusable (SQLite rolled it back:
			// "no such savepoint"): every call of the batch fails with it.
			fail(ran, fmt.Errorf("rolled back with its batch: %w", err))
			if c.err == nil {
				c.err = fmt.Errorf("savepoint: %w", err)
			}
			fail(batch[i+1:], fmt.Errorf("rolled back with its batch: %w", err))
			return
		}
		if c.err == nil {
			for typ, n := range s.stats.takeEvents() {
				events[typ] += n
			}
			ran = append(ran, c)
		}
	}
	if len(ran) == 0 {
		return // nothing to commit: the deferred rollback ends the transaction
	}
	if s.searchDeferred.Load() {
		synced, err := s.syncUserSearch(bg, tx, s.searchSyncDue())
		if err != nil {
			fail(ran, fmt.Errorf("rolled back with its batch: %w", err))
			return
		}
		defer s.noteSearchSync(synced)
	}
	start := time.Now()
	if err := tx.Commit(); err != nil {
		fail(ran, fmt.Errorf("commit: %w", err))
		return
	}
	s.stats.committed(time.Since(start), events)
	s.writes.Add(int64(len(ran)))
	fail(ran, s.CheckFile())
}

// searchLag bounds how long the admin search may lag behind the writes while
// they keep coming.
const searchLag = time.Second

// searchSyncDue says whether this batch brings the search index up to date:
// when no write waits behind it (so the index is current whenever the writes
// pause), or when it has lagged for searchLag. Under a burst the index is
// then written once a second for every user the burst changed, not once per
// batch: re-indexing is a third of a user creation's cost.
func (s *Store) searchSyncDue() bool {
	s.queue.mu.Lock()
	idle := len(s.queue.pending) == 0
	s.queue.mu.Unlock()
	since := s.searchBehindSince.Load()
	return idle || since != 0 && time.Since(time.Unix(0, since)) >= searchLag
}

// noteSearchSync records, once the batch committed, whether the index is
// current or since when it lags.
func (s *Store) noteSearchSync(synced bool) {
	if synced {
		s.searchBehindSince.Store(0)
	} else {
		s.searchBehindSince.CompareAndSwap(0, time.Now().UnixNano())
	}
}

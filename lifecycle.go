// The server's lifecycle: what runs beside the HTTP server, and the order in
// which it all starts and stops, so that nothing runs after the store closes.

package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

const (
	// shutdownGrace is how long requests in flight may take to finish once
	// shutdown begins; the ones still running then are cancelled.
	shutdownGrace = 30 * time.Second
	// handlerExitWait is how long a cancelled request has to return before
	// the store closes under it anyway.
	handlerExitWait = 5 * time.Second
)

// workerGroup runs background loops under one context and joins them.
type workerGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
}

// newWorkerGroup returns a group whose workers stop when parent ends or Stop is called.
func newWorkerGroup(parent context.Context, log *slog.Logger) *workerGroup {
	ctx, cancel := context.WithCancel(parent)
	return &workerGroup{ctx: ctx, cancel: cancel, log: log}
}

// Go runs fn in a goroutine of its own; fn must return once its context ends.
func (g *workerGroup) Go(name string, fn func(ctx context.Context)) {
	g.wg.Go(func() {
		fn(g.ctx)
		g.log.Debug("worker stopped", "worker", name)
	})
}

// Stop ends the workers' context and returns when every one has returned.
func (g *workerGroup) Stop() {
	g.cancel()
	g.wg.Wait()
}

// app is one scimbox server: its store, its HTTP handler and the workers
// beside it (the store runs its own: the provisioning-log writer and the
// checkpointer). newApp builds it from the configuration; serve starts it,
// stops it and closes it.
type app struct {
	log     *slog.Logger
	store   *Store
	server  *server
	handler http.Handler

	workers []worker
	running *workerGroup
	checked chan error // the integrity check's verdict

	// requests is the parent context of every request: cancelled only when
	// requests outlive the shutdown grace period.
	requests       context.Context
	cancelRequests context.CancelFunc
	gate           requestGate
	grace          time.Duration // shutdownGrace, unless a test sets another

	closeOnce sync.Once
	closeErr  error
}

// worker is a background loop of the server.
type worker struct {
	name string
	run  func(ctx context.Context)
}

// newApp opens the store and builds the handler and the workers, none of
// them started yet.
func newApp(ctx context.Context, cfg serveConfig, log *slog.Logger) (*app, error) {
	store, err := openStore(ctx, cfg.DB, log, storeOptions{migrate: true, allowFresh: cfg.AllowFreshDB})
	if err != nil {
		return nil, err
	}
	a := &app{log: log, store: store, server: &server{store: store, log: log}, checked: make(chan error, 1),
		running: newWorkerGroup(context.WithoutCancel(ctx), log), grace: shutdownGrace}
	if cfg.hooks.shutdownGrace > 0 {
		a.grace = cfg.hooks.shutdownGrace
	}
	a.requests, a.cancelRequests = context.WithCancel(context.WithoutCancel(ctx))
	a.handler = a.gate.wrap(withHSTS(a.server.handler()))

	// The integrity check reads the whole file (seconds at a million users), so
	// it runs while serving; a damaged file stops the server. After an unclean
	// shutdown OpenStore has already checked the file before anything is served.
	a.workers = append(a.workers, worker{"integrity check", func(ctx context.Context) { a.checked <- store.Check(ctx) }})
	if cfg.BackupInterval > 0 {
		a.workers = append(a.workers, worker{"snapshots", func(ctx context.Context) {
			store.RunSnapshots(ctx, cfg.BackupInterval, cfg.BackupKeep)
		}})
	}
	a.workers = append(a.workers,
		worker{"webhook sender", newWebhookSender(store, log).Run},
		worker{"maintenance", func(ctx context.Context) { runMaintenance(ctx, store, log, maintenanceEvery) }})
	return a, nil
}

// startWorkers starts every worker.
func (a *app) startWorkers() {
	for _, w := range a.workers {
		a.running.Go(w.name, w.run)
	}
}

// configure makes srv's requests children of a.requests, so that stopHTTP
// can cancel the ones that outlive the grace period, and tells long polls
// when srv begins to shut down.
func (a *app) configure(srv *http.Server) {
	srv.BaseContext = func(net.Listener) context.Context { return a.requests }
	srv.RegisterOnShutdown(a.server.stopping.begin)
}

// stopHTTP shuts the servers down gracefully: they stop accepting
// connections, and requests in flight have shutdownGrace to finish. Those
// still running then are cancelled and their connections closed. It returns
// once every handler has returned, or handlerExitWait after that.
func (a *app) stopHTTP(servers []served) {
	ctx, cancel := context.WithTimeout(context.Background(), a.grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.srv.Shutdown(ctx); err != nil {
				a.log.Warn("requests still running after the shutdown grace period: cancelling them", "grace", a.grace, "err", err)
				a.cancelRequests()
				s.srv.Close()
			}
		})
	}
	wg.Wait()
	a.cancelRequests()
	if !a.gate.close(handlerExitWait) {
		a.log.Warn("a request did not return after it was cancelled: closing the database under it")
	}
}

// close stops and joins every worker, then closes the store, last. It is
// safe to call more than once and returns the store's Close error.
func (a *app) close() error {
	a.closeOnce.Do(func() {
		a.running.Stop()
		a.cancelRequests()
		a.closeErr = a.store.Close()
	})
	return a.closeErr
}

// requestGate lets requests in until the server stops, and then waits for
// those still running, so that none of them outlives the store.
type requestGate struct{ mu sync.RWMutex }

// wrap lets requests through to next while the gate is open, and refuses them with 503 after.
func (g *requestGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only a request read in the instant the listeners closed finds the gate shut.
		if !g.mu.TryRLock() {
			w.Header().Set("Connection", "close")
			http.Error(w, "scimbox is stopping", http.StatusServiceUnavailable)
			return
		}
		defer g.mu.RUnlock()
		next.ServeHTTP(w, r)
	})
}

// close shuts the gate and waits up to timeout for the requests inside to
// return; it reports whether they all did.
func (g *requestGate) close(timeout time.Duration) bool {
	shut := make(chan struct{})
	go func() {
		g.mu.Lock() // held for good: the gate never opens again
		close(shut)
	}()
	select {
	case <-shut:
		return true
	case <-time.After(timeout):
		return false
	}
}

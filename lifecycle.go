// The server's lifecycle: what runs beside the HTTP server, and the order in
// which it all starts and stops, so that nothing runs after the store closes.

package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
	metrics *metrics // nil unless -metrics-addr is set

	workers []worker
	running *workerGroup
	certs   *certHealth // what the TLS code reports of the certificate
	alerts  *alerter
	checked chan error // the integrity check's verdict

	// requests is the parent context of every request: cancelled only when
	// requests outlive the shutdown grace period.
	requests       context.Context
	cancelRequests context.CancelFunc
	gate           requestGate
	grace          time.Duration // shutdownGrace, unless a test sets another

	// conns counts the open client connections of every server.
	conns atomic.Int64
	// handingOver: the sockets now belong to a new process (or stay with
	// systemd); each response asks the client to close its connection.
	handingOver atomic.Bool

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
	certs := &certHealth{}
	alerts := newAlerter(store, log, cfg.Alerts, alertSources{certs: certs, tls: cfg.mode() == modeACME || cfg.mode() == modeCert, snapshots: cfg.BackupInterval > 0})
	// Features that watch something register their alert conditions here.
	alerts.register(quarantineRiskCondition(store.Health().quarantineAlert))
	alerts.register(massChangeHeldCondition(store.heldChangesAlert))
	a := &app{log: log, store: store, server: &server{store: store, log: log, alerts: alerts, tls: newTLSChecker(log), certs: certs, ssoFlags: cfg.SSO}, checked: make(chan error, 1),
		running: newWorkerGroup(context.WithoutCancel(ctx), log), grace: shutdownGrace, certs: certs, alerts: alerts}
	if cfg.hooks.shutdownGrace > 0 {
		a.grace = cfg.hooks.shutdownGrace
	}
	if len(cfg.Replicas) > 0 {
		rep, err := newReplicator(cfg.DB, cfg.Replicas[0], store.writes.Load, log)
		if err != nil {
			store.Close()
			return nil, err
		}
		store.handOverCheckpoints()
		a.server.replica = rep
		alerts.register(replicaLagCondition(rep.lagAlert))
		// First, so that it is uploading before the other workers write.
		a.workers = append(a.workers, worker{"replication", rep.run})
	}
	if cfg.MetricsAddr != "" {
		a.metrics = newMetrics(store, log)
		a.metrics.watchReplica(a.server.replica)
		a.metrics.cycleStatsFunc = store.Health().cycleMetrics
		a.server.metrics = a.metrics.requests
	}
	a.requests, a.cancelRequests = context.WithCancel(context.WithoutCancel(ctx))
	a.handler = a.gate.wrap(a.closeWhenHandingOver(withHSTS(a.server.handler())))

	// The integrity check reads the whole file (seconds at a million users), so
	// it runs while serving; a damaged file stops the server. After an unclean
	// shutdown OpenStore has already checked the file before anything is served.
	a.workers = append(a.workers, worker{"integrity check", func(ctx context.Context) { a.checked <- store.Check(ctx) }})
	if cfg.BackupInterval > 0 {
		a.workers = append(a.workers, worker{"snapshots", func(ctx context.Context) {
			store.RunSnapshots(ctx, cfg.BackupInterval, cfg.BackupKeep)
		}})
	}
	sender := newWebhookSender(store, log)
	if cfg.hooks.webhookTimeout > 0 {
		sender.client.Timeout = cfg.hooks.webhookTimeout
	}
	a.workers = append(a.workers,
		worker{"webhook sender", sender.Run},
		worker{"maintenance", func(ctx context.Context) { runMaintenance(ctx, store, log, maintenanceEvery) }},
		worker{"alerts", alerts.run})
	return a, nil
}

// startWorkers starts every worker.
func (a *app) startWorkers() {
	for _, w := range a.workers {
		a.running.Go(w.name, w.run)
	}
}

// configure makes srv's requests children of a.requests, so that stopHTTP
// can cancel the ones that outlive the grace period, tells long polls when
// srv begins to shut down, and counts srv's connections for handOver.
func (a *app) configure(srv *http.Server) {
	srv.BaseContext = func(net.Listener) context.Context { return a.requests }
	srv.RegisterOnShutdown(a.server.stopping.begin)
	srv.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			a.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			a.conns.Add(-1)
		}
	}
}

// closeWhenHandingOver adds Connection: close to every HTTP/1 response once
// the hand-over has begun (HTTP/2 clients get GOAWAY from Shutdown instead).
func (a *app) closeWhenHandingOver(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.handingOver.Load() && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// handOver moves clients to the process that now holds the listening
// sockets (or to the queue systemd keeps for the next one) before stopHTTP:
// the background workers stop, so two processes never run them at once;
// this process stops accepting; and for up to handOverLinger each response
// closes its connection, so clients reconnect between two requests rather
// than having an idle connection closed under a request they are sending.
// It returns when no connection is left or the linger has passed.
func (a *app) handOver(servers []served) {
	a.log.Info("handing over: no new connections here; open ones close after their next response", "connections", a.conns.Load())
	a.running.Stop()
	a.handingOver.Store(true)
	for _, s := range servers {
		s.ln.Close()
	}
	deadline := time.Now().Add(handOverLinger)
	for a.conns.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
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

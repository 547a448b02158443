// Restarts and upgrades that refuse no connection: listening sockets that
// outlive the process serving them, handed over by systemd (socket
// activation) or by the previous scimbox process (SIGHUP upgrade).

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/coreos/go-systemd/v22/activation"
)

// Socket names: a systemd socket unit says with FileDescriptorName= which of
// serve's listeners it replaces (contrib/scimbox.socket, scimbox-http.socket).
const (
	socketHTTPS = "https" // -https-addr
	socketHTTP  = "http"  // -http-addr: ACME HTTP-01 and the redirect
	socketPlain = "plain" // -addr: local trial and -behind-proxy
)

// upgradeTimeout is how long a new process started by SIGHUP has to open
// the database and start serving before the old one gives up on it and
// keeps serving.
const upgradeTimeout = time.Minute

// handOverLinger is how long the process being replaced keeps answering on
// the connections it already has, each response telling the client to close
// it (Connection: close), so that clients move to the new process between
// two requests instead of having an idle connection closed under a request
// they are sending (a POST or PATCH lost that way is not retried).
const handOverLinger = 3 * time.Second

// handover holds the listening sockets that outlive this process, and the
// means to pass them on. Without ownsProcess (tests calling serve in their
// own process) it binds every address itself and never upgrades.
type handover struct {
	log *slog.Logger
	// systemd are the sockets passed by systemd socket activation, by name.
	systemd map[string]net.Listener
	// upg passes the listeners to a new process on SIGHUP (nil when serve
	// does not own the process, or when systemd supervises it).
	upg *tableflip.Upgrader
	// underSystemd: the service manager tracks this process's PID, so a
	// SIGHUP upgrade (a new PID) would look like the service exiting.
	underSystemd bool
	// passedSockets: serve listens on sockets systemd passed, which stay
	// open in systemd after this process exits.
	passedSockets bool
}

// newHandover takes the sockets this process inherited: from systemd
// (LISTEN_FDS) or from the scimbox process it replaces (SIGHUP upgrade).
func newHandover(cfg serveConfig, log *slog.Logger) (*handover, error) {
	h := &handover{log: log, systemd: map[string]net.Listener{}}
	if !cfg.ownsProcess {
		return h, nil
	}
	// INVOCATION_ID is set by systemd (v232+) for each service it runs.
	h.underSystemd = os.Getenv("INVOCATION_ID") != ""
	byName, err := activation.ListenersWithNames() // also clears LISTEN_* so a child does not read them
	if err != nil {
		return nil, fmt.Errorf("systemd socket activation: %w", err)
	}
	for name, lns := range byName {
		if len(lns) > 1 {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, fmt.Errorf("systemd passed %d sockets named %q: scimbox serves one per name; give each socket unit one ListenStream= (ListenStream=443 alone covers IPv4 and IPv6)", len(lns), name)
		}
		h.systemd[name] = lns[0]
	}
	if h.underSystemd {
		return h, nil
	}
	h.upg, err = tableflip.New(tableflip.Options{UpgradeTimeout: upgradeTimeout})
	if err != nil {
		h.closeUnused()
		return nil, fmt.Errorf("prepare SIGHUP upgrades: %w", err)
	}
	if h.upg.HasParent() {
		log.Info("upgrade: this new process takes over the listening sockets of the one it replaces")
	}
	return h, nil
}

// listen returns the listener for a role of serve (flag names the address
// flag, name the systemd socket name): the socket handed over by the
// process being replaced, else the one systemd passed, else a new one bound
// to addr. Each is registered so that a SIGHUP upgrade passes it on.
func (h *handover) listen(flag, name, addr string) (net.Listener, error) {
	if ln, ok := h.systemd[name]; ok {
		delete(h.systemd, name)
		h.passedSockets = true
		h.log.Info("listening on a socket passed by systemd", "socket", name, "addr", ln.Addr().String(), "instead_of", "-"+flag+" "+addr)
		if err := h.register(addr, ln); err != nil {
			return nil, err
		}
		return ln, nil
	}
	if h.upg != nil {
		ln, err := h.upg.Listener("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("upgrade: take over the socket on %s (-%s): %w", addr, flag, err)
		}
		if ln != nil {
			return ln, nil // still registered: a later upgrade passes it on again
		}
	}
	ln, err := listen(flag, addr)
	if err != nil {
		return nil, err
	}
	if err := h.register(addr, ln); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// register makes ln one of the sockets a SIGHUP upgrade hands over.
func (h *handover) register(addr string, ln net.Listener) error {
	if h.upg == nil {
		return nil
	}
	tl, ok := ln.(tableflip.Listener)
	if !ok {
		return fmt.Errorf("cannot hand over a %T on SIGHUP", ln)
	}
	return h.upg.AddListener("tcp", addr, tl)
}

// unusedSockets reports the sockets systemd passed that serve's mode has no
// use for: a socket unit that does not match the configuration.
func (h *handover) unusedSockets(cfg serveConfig) error {
	if len(h.systemd) == 0 {
		return nil
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range h.systemd {
			if !yield(n) {
				return
			}
		}
	})
	h.closeUnused()
	return fmt.Errorf("systemd passed sockets named %s, which scimbox does not use %s: "+
		"name each socket unit's sockets with FileDescriptorName=https (for -https-addr), http (-http-addr) or plain (-addr), "+
		"and stop the socket units the configuration does not use (systemctl disable --now scimbox-http.socket, say)",
		strings.Join(names, ", "), "in mode "+cfg.mode())
}

func (h *handover) closeUnused() {
	for name, ln := range h.systemd {
		ln.Close()
		delete(h.systemd, name)
	}
}

// ready says that this process serves: the process it replaces, if any,
// may now stop accepting and finish its requests.
func (h *handover) ready() error {
	if h.upg == nil {
		return nil
	}
	if err := h.upg.Ready(); err != nil {
		return fmt.Errorf("upgrade: tell the previous process to stop: %w", err)
	}
	return nil
}

// replaced is closed once a new process has taken over the sockets; nil
// (never ready) when there is no such process.
func (h *handover) replaced() <-chan struct{} {
	if h.upg == nil {
		return nil
	}
	return h.upg.Exit()
}

// keepsSockets reports whether the listening sockets stay open after this
// process closes its copies: held by systemd, or by the new process that
// replaced this one. New connections then wait in the kernel's queue
// instead of being refused, and it is worth moving kept-alive connections
// over gracefully; otherwise it would only delay the exit.
func (h *handover) keepsSockets(replaced bool) bool {
	return replaced || h.passedSockets
}

// watchSIGHUP upgrades on each SIGHUP until ctx ends: it starts the binary
// now on disk at the same path, with the same arguments and environment,
// hands it the listening sockets, and returns once that process is serving
// (replaced() is then closed) or has failed (this one keeps serving).
func (h *handover) watchSIGHUP(ctx context.Context) {
	if h.upg == nil && !h.underSystemd {
		return // not the process's own serve: SIGHUP is not ours to take
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.replaced():
			return
		case <-hup:
		}
		if h.upg == nil {
			h.log.Warn("SIGHUP ignored: under systemd, upgrade by replacing the binary and running `systemctl restart scimbox`; " +
				"with the socket units (contrib/scimbox.socket) no connection is refused meanwhile")
			continue
		}
		exe, _ := os.Executable()
		h.log.Info("upgrade: SIGHUP received, starting the binary on disk", "binary", exe, "running_version", version())
		start := time.Now()
		if err := h.upg.Upgrade(); err != nil {
			h.log.Error("upgrade failed: this process keeps serving; the new process's own log lines above say why", "err", err)
			continue
		}
		h.log.Info("upgrade: the new process serves; this one finishes its requests and exits", "took", time.Since(start).Round(time.Millisecond))
		return
	}
}

// stop ends SIGHUP upgrades; a process that upgraded has already handed its
// sockets on, and one that did not closes them.
func (h *handover) stop() {
	h.closeUnused()
	if h.upg != nil {
		h.upg.Stop()
	}
}

// Command server is the MNIST training service: the REST API, Socket.IO
// progress events and the management page on one port.
//
//	go run ./cmd/server            # port 8000, models in ./models
//	PORT=9000 MODELS_DIR=/data go run ./cmd/server
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/live"
	"github.com/mnist-go/nnserver/pkg/metrics"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, strings.TrimPrefix(err.Error(), flag.ErrHelp.Error()+"\n"))
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends (SIGTERM or SIGINT in main), then shuts down in
// order. A signal during start-up stops it too, and is not an error.
func run(ctx context.Context, args []string, getenv func(string) string, logTo io.Writer) error {
	started := time.Now()
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: cfg.LogLevel}))

	// One more P than there are CPUs (and, by default, training workers):
	// with every CPU training, a spare P still waits in the network poller,
	// so a request is served at once, time-sliced by the OS, instead of
	// waiting up to 10 ms for Go's sysmon to notice it.
	runtime.GOMAXPROCS(cfg.CPUs + 1)

	// Load MNIST in the background: the server listens at once, and what
	// needs the data waits for it.
	data := sync.OnceValues(func() (*mnist.Dataset, error) {
		t := time.Now()
		var ds *mnist.Dataset
		var err error
		if cfg.MNISTDir != "" {
			ds, err = mnist.LoadDir(cfg.MNISTDir)
		} else {
			ds, err = mnist.LoadEmbedded()
		}
		if err != nil {
			return nil, err // stops the server, which reports it
		}
		log.Info("MNIST loaded", "seconds", time.Since(t).Seconds())
		return ds, nil
	})
	dataErr := make(chan error, 1)
	go func() {
		if _, err := data(); err != nil {
			dataErr <- err
		}
	}()

	// One memory budget for every request and job (pkg/budget); the Go
	// garbage collector is told the process's whole size unless GOMEMLIMIT
	// says otherwise, so that garbage does not pile up above it.
	mem := budget.New(cfg.MemoryBudget, budgetWait)
	if getenv("GOMEMLIMIT") == "" {
		limit := cfg.MemoryBudget + 8*int64(cfg.Limits.MaxParamsInMemory) + idleHeadroom
		debug.SetMemoryLimit(limit)
		log.Info("memory", "budget_mb", cfg.MemoryBudget>>20, "gc_limit_mb", limit>>20)
	}
	sio := live.New(live.Options{Logger: log, MaxSessionsPerAddr: cfg.MaxSessionsPerAddr})
	b, err := openBackends(ctx, cfg, log, sio)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	defer b.close()
	var (
		svc *service.Service
		m   *metrics.Metrics
	)
	svcCfg := service.Config{Data: data, Store: b.store, Events: b.events, Workers: cfg.Workers, Limits: cfg.Limits,
		Logger: log, Catalog: b.catalog, Queue: b.queue, Replicas: b.replicas, Budget: mem}
	apiOpts := api.Options{SocketIO: sio.Handler(), Static: web.Files, Logger: log, TrustedProxies: cfg.TrustedProxies,
		Budget: mem, Stopping: ctx}
	if cfg.Metrics {
		m = metrics.New(metrics.Sources{
			Service:       func() service.Gauges { return svc.Gauges(context.Background()) }, // scraped once svc is set; each database call has its DB_TIMEOUT
			SocketClients: sio.Clients,
			EventsEmitted: sio.Emitted,
			Budget:        mem.Stats,
		})
		svcCfg.Observer = m
		apiOpts.Metrics, apiOpts.Requests = m.Handler(), m
	}
	if svc, err = service.New(ctx, svcCfg); err != nil {
		if ctx.Err() != nil {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	apiOpts.Service = svc
	if b.relay != nil {
		b.relay.OnRemoved(svc.Forget) // a network deleted on another replica
	}
	var handler http.Handler
	if cfg.Role == "worker" {
		handler, err = api.NewWorker(apiOpts)
	} else {
		handler, err = api.New(apiOpts)
	}
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		svc.Close(context.Background())
		return err
	}
	relayCtx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	relayDone := make(chan struct{})
	if b.relay != nil {
		go func() {
			defer close(relayDone)
			if err := b.relay.Run(relayCtx); err != nil && relayCtx.Err() == nil {
				log.Error("event relay stopped", "err", err)
			}
		}()
	} else {
		close(relayDone)
	}
	mode := "single"
	if cfg.DatabaseURL != "" {
		mode = "scaled"
	}
	log.Info("serving", "addr", ln.Addr().String(), "mode", mode, "role", cfg.Role, "models", b.where,
		"workers", cfg.Workers, "startup_seconds", time.Since(started).Seconds())

	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	// Without MNIST nothing can train or give examples: a bad MNIST_DIR
	// stops the server rather than leave it answering "online".
	var failed error
	select {
	case err := <-serveErr:
		return err
	case err := <-dataErr:
		failed = fmt.Errorf("load MNIST: %w", err)
	case <-ctx.Done():
	}

	// Shut down in order: jobs end (their last epoch is saved) and no new
	// ones start; Socket.IO clients are let go, so no long-poll holds up
	// Shutdown; then the HTTP server drains.
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := svc.Close(shutCtx); err != nil {
		errs = append(errs, err)
	}
	// Emits are written asynchronously: the training_error events of the
	// jobs just stopped reach the clients before their sockets close.
	stopRelay()
	<-relayDone
	// A polling client that vanished never comes back for its events: do
	// not let it hold the shutdown for the whole timeout.
	flushCtx, cancelFlush := context.WithTimeout(shutCtx, flushWait)
	defer cancelFlush()
	if err := sio.Flush(flushCtx); err != nil {
		log.Warn("socket.io: not every event reached every client before shutdown", "err", err)
	}
	sio.Close()
	if err := srv.Shutdown(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := errors.Join(append(errs, failed)...); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// budgetWait is how long a request waits for room in the memory budget
// before it is answered 503.
const budgetWait = 2 * time.Second

// idleHeadroom is what the process holds besides the budget and the
// networks: MNIST, the runtime, Socket.IO sessions, buffers (about 70 MB
// idle), and room for the garbage collector to work in.
const idleHeadroom = 96 << 20

// flushWait bounds how long shutdown waits for the last events to reach
// Socket.IO clients: a live polling client comes back for them within
// milliseconds.
const flushWait = 2 * time.Second

// serveDebug serves pprof (goroutine counts, heap, CPU profiles) on its own
// address, meant to be loopback only: the load tests read it.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("debug server", "addr", addr)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("debug server stopped", "err", err)
	}
}

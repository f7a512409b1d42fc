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

	data, dataErr := loadData(cfg, log)
	a, err := start(ctx, cfg, log, getenv, data)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	defer a.backends.close()
	log.Info("serving", "addr", a.ln.Addr().String(), "mode", cfg.mode(), "role", cfg.Role, "models", a.backends.where, "jobs", a.backends.jobs,
		"workers", cfg.Workers, "startup_seconds", time.Since(started).Seconds())
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- a.srv.Serve(a.ln) }()
	// Without MNIST nothing can train or give examples: a bad MNIST_DIR
	// stops the server rather than leave it answering "online".
	var failed error
	select {
	case err := <-serveErr:
		a.stopRelay()
		return err
	case err := <-dataErr:
		failed = fmt.Errorf("load MNIST: %w", err)
	case <-ctx.Done():
	}
	return errors.Join(a.shutdown(), failed)
}

// loadData loads MNIST in the background: the server listens at once, and
// what needs the data waits for it. A failure is sent on the channel.
func loadData(cfg config, log *slog.Logger) (func() (*mnist.Dataset, error), <-chan error) {
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
	return data, dataErr
}

// app is the server once started: what shutdown stops, in order.
type app struct {
	log       *slog.Logger
	cfg       config
	backends  *backends
	svc       *service.Service
	sio       *live.Server
	srv       *http.Server
	ln        net.Listener
	stopRelay func() // stops the event relay and waits for it
}

// start opens the backends, starts the service, builds the handler and
// listens; the relay of scaled mode runs from here on.
func start(ctx context.Context, cfg config, log *slog.Logger, getenv func(string) string,
	data func() (*mnist.Dataset, error)) (*app, error) {
	// One memory budget for every request and job, one CPU budget for the
	// heavy work of requests (pkg/budget).
	mem := budget.New(cfg.MemoryBudget, api.BusyWait)
	cpu := budget.NewCPU(budget.DefaultCPUSlots(), api.BusyWait)
	a := &app{log: log, cfg: cfg, sio: live.New(live.Options{Logger: log, MaxSessionsPerAddr: cfg.MaxSessionsPerAddr})}
	b, err := openBackends(ctx, cfg, log, a.sio)
	if err != nil {
		return nil, err
	}
	a.backends = b
	var m *metrics.Metrics
	policy, err := service.NewPolicy(cfg.Access)
	if err != nil {
		b.close()
		return nil, err
	}
	logAccess(log, cfg)
	svcCfg := service.Config{Data: data, Store: b.store, Events: b.events, Workers: cfg.Workers, Limits: cfg.Limits,
		Logger: log, Catalog: b.catalog, Queue: b.queue, Replicas: b.replicas, Budget: mem, CPU: cpu, Policy: policy}
	apiOpts := api.Options{SocketIO: a.sio.Handler(), Static: web.Files, Logger: log, TrustedProxies: cfg.TrustedProxies,
		Budget: mem, CPU: cpu, Stopping: ctx, RateLimits: cfg.RateLimits}
	if cfg.Metrics {
		m = metrics.New(metrics.Sources{
			// Scraped once svc is set; each database call has its DB_TIMEOUT.
			Service:       func() service.Gauges { return a.svc.Gauges(context.Background()) },
			SocketClients: a.sio.Clients,
			EventsEmitted: a.sio.Emitted,
			Budget:        mem.Stats,
		})
		svcCfg.Observer = m
		apiOpts.Metrics, apiOpts.Requests = m.Handler(), m
	}
	if a.svc, err = service.New(ctx, svcCfg); err != nil {
		b.close()
		return nil, err
	}
	apiOpts.Service = a.svc
	// Unless GOMEMLIMIT says otherwise, the garbage collector keeps the
	// process within its idle size (measured once MNIST is loaded) + the
	// budget (networks in memory included), so that garbage does not pile
	// up above what may be live.
	if getenv("GOMEMLIMIT") == "" {
		go func() {
			if _, err := data(); err == nil {
				log.Info("memory", "budget_mb", cfg.MemoryBudget>>20, "idle_mb", budget.RuntimeMemory()>>20)
				mem.LimitGC(ctx)
			}
		}()
	}
	if b.relay != nil {
		b.relay.OnRemoved(a.svc.Forget) // a network deleted on another replica
	}
	var handler http.Handler
	if cfg.Role == "worker" {
		handler, err = api.NewWorker(apiOpts)
	} else {
		handler, err = api.New(apiOpts)
	}
	if err == nil {
		a.ln, err = net.Listen("tcp", cfg.Addr)
	}
	if err != nil {
		a.svc.Close(context.Background())
		b.close()
		return nil, err
	}
	a.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.stopRelay = a.runRelay()
	return a, nil
}

// logAccess says at start which access switches are on: whether each
// token is set, never the token.
func logAccess(log *slog.Logger, cfg config) {
	c := cfg.Access
	log.Info("access", "admin_token", c.AdminToken != "", "metrics_token", c.MetricsToken != "", "ownership", c.Ownership,
		"rate_limit_create", cfg.RateLimits.Create, "rate_limit_train", cfg.RateLimits.Train, "rate_limit_import", cfg.RateLimits.Import)
	if c.Ownership && c.AdminToken == "" {
		log.Warn("OWNERSHIP=on without ADMIN_TOKEN: networks saved without an owner token cannot be changed, and no one may delete every network")
	}
}

// runRelay runs scaled mode's event relay, if any, until the function it
// returns is called, which waits for it to stop.
func (a *app) runRelay() func() {
	if a.backends.relay == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.backends.relay.Run(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("event relay stopped", "err", err)
		}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// shutdown stops the server in order, within SHUTDOWN_TIMEOUT: jobs end
// (their last epoch is saved) and no new ones start; Socket.IO clients are
// let go, so no long-poll holds up Shutdown; then the HTTP server drains.
func (a *app) shutdown() error {
	a.log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := a.svc.Close(shutCtx); err != nil {
		errs = append(errs, err)
	}
	// A polling client that vanished never comes back for its events: do
	// not let it hold the shutdown for the whole timeout.
	flushCtx, cancelFlush := context.WithTimeout(shutCtx, flushWait)
	defer cancelFlush()
	// Scaled mode: the events of the shutdown (the jobs handed over) go
	// through Postgres; they reach this replica's clients too.
	if a.backends.relay != nil {
		if err := a.backends.relay.Sync(flushCtx); err != nil {
			a.log.Warn("event relay: not every event of the shutdown reached this replica's clients", "err", err)
		}
	}
	// Emits are written asynchronously: the training_error events of the
	// jobs just stopped reach the clients before their sockets close.
	a.stopRelay()
	if err := a.sio.Flush(flushCtx); err != nil {
		a.log.Warn("socket.io: not every event reached every client before shutdown", "err", err)
	}
	a.sio.Close()
	if err := a.srv.Shutdown(shutCtx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

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

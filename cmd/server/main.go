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
	"github.com/mnist-go/nnserver/pkg/live"
	"github.com/mnist-go/nnserver/pkg/metrics"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/store"
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

	st, err := store.Open(cfg.ModelsDir, store.Limits{MaxLayers: cfg.Limits.MaxLayers, MaxParams: cfg.Limits.MaxParams})
	if err != nil {
		return fmt.Errorf("models directory: %w", err)
	}
	sio := live.New(live.Options{Logger: log})
	var (
		svc *service.Service
		m   *metrics.Metrics
	)
	svcCfg := service.Config{Data: data, Store: st, Events: sio, Workers: cfg.Workers, Limits: cfg.Limits, Logger: log}
	apiOpts := api.Options{SocketIO: sio.Handler(), Static: web.Files, Logger: log, TrustedProxies: cfg.TrustedProxies}
	if cfg.Metrics {
		m = metrics.New(metrics.Sources{
			Service:       func() service.Gauges { return svc.Gauges() }, // scraped once svc is set
			SocketClients: sio.Clients,
			EventsEmitted: sio.Emitted,
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
	handler, err := api.New(apiOpts)
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
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "models_dir", cfg.ModelsDir, "workers", cfg.Workers,
		"startup_seconds", time.Since(started).Seconds())

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
	if err := sio.Flush(shutCtx); err != nil {
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

package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/store"
)

// config is the server's configuration. Every setting has a flag and an
// environment variable; the flag wins.
type config struct {
	Addr      string
	DebugAddr string // pprof, off when empty
	ModelsDir string
	MNISTDir  string
	Workers   int
	CPUs      int // CPUs this process may use (GOMAXPROCS at start)
	LogLevel  slog.Level
	Limits    service.Limits

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	lim := service.DefaultLimits()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	port := fs.String("port", env("PORT", "8000"), "HTTP port (env PORT)")
	models := fs.String("models-dir", env("MODELS_DIR", "models"), "directory of saved networks (env MODELS_DIR)")
	mnistDir := fs.String("mnist-dir", env("MNIST_DIR", ""), "directory with the MNIST .gz files; empty: the copy built in (env MNIST_DIR)")
	cpus := runtime.GOMAXPROCS(0)
	workers := fs.String("max-concurrent-jobs", env("MAX_CONCURRENT_JOBS", strconv.Itoa(cpus)), "training jobs run at once; default: the CPUs this process may use (env MAX_CONCURRENT_JOBS)")
	level := fs.String("log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	debugAddr := fs.String("debug-addr", env("DEBUG_ADDR", ""), "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; off when empty (env DEBUG_ADDR)")
	maxNets := fs.String("max-networks", env("MAX_NETWORKS", strconv.Itoa(lim.MaxNetworks)), "networks kept, in memory and on disk (env MAX_NETWORKS)")
	maxQueue := fs.String("max-queued-jobs", env("MAX_QUEUED_JOBS", strconv.Itoa(lim.MaxQueuedJobs)), "training jobs waiting at most (env MAX_QUEUED_JOBS)")
	maxParams := fs.String("max-params", env("MAX_PARAMS", strconv.Itoa(lim.MaxParams)), "weights and biases per network at most (env MAX_PARAMS)")
	maxMem := fs.String("max-params-in-memory", env("MAX_PARAMS_IN_MEMORY", strconv.Itoa(lim.MaxParamsInMemory)), "weights and biases held in memory; past it idle networks are unloaded (env MAX_PARAMS_IN_MEMORY)")
	maxEpochs := fs.String("max-epochs", env("MAX_EPOCHS", strconv.Itoa(lim.MaxEpochs)), "epochs per job at most (env MAX_EPOCHS)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return config{}, fmt.Errorf("%w\n%s", err, usage.String())
	} else if err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := config{
		ModelsDir: *models, MNISTDir: *mnistDir, Limits: lim, DebugAddr: *debugAddr, CPUs: cpus,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Above the 25 s ping interval, the longest a long-poll is held open.
		WriteTimeout:    60 * time.Second,
		IdleTimeout:     120 * time.Second,
		MaxHeaderBytes:  64 << 10,
		ShutdownTimeout: 5 * time.Second,
	}
	p, err := positive("port", *port, 65535)
	if err != nil {
		return config{}, err
	}
	cfg.Addr = ":" + strconv.Itoa(p)
	for _, s := range []struct {
		name, val string
		max       int
		dst       *int
	}{
		{"max-concurrent-jobs", *workers, 256, &cfg.Workers},
		{"max-networks", *maxNets, 1_000_000, &cfg.Limits.MaxNetworks},
		{"max-queued-jobs", *maxQueue, 1_000_000, &cfg.Limits.MaxQueuedJobs},
		{"max-params", *maxParams, store.MaxParams, &cfg.Limits.MaxParams},
		{"max-epochs", *maxEpochs, 1_000_000, &cfg.Limits.MaxEpochs},
		{"max-params-in-memory", *maxMem, 1 << 40, &cfg.Limits.MaxParamsInMemory},
	} {
		if *s.dst, err = positive(s.name, s.val, s.max); err != nil {
			return config{}, err
		}
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(strings.ToLower(*level))); err != nil {
		return config{}, fmt.Errorf("log level %q: want debug, info, warn or error", *level)
	}
	return cfg, nil
}

func positive(name, s string, limit int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > limit {
		return 0, fmt.Errorf("%s must be an integer between 1 and %d, got %q", name, limit, s)
	}
	return n, nil
}

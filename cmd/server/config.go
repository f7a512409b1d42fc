package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/live"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/postgres"
	"github.com/mnist-go/nnserver/pkg/s3store"
	"github.com/mnist-go/nnserver/pkg/service"
)

// config is the server's configuration. Every setting has a flag and an
// environment variable; the flag wins.
type config struct {
	Addr           string
	DebugAddr      string // pprof, off when empty
	ModelsDir      string
	MNISTDir       string
	Workers        int
	CPUs           int // CPUs this process may use (GOMAXPROCS at start)
	LogLevel       slog.Level
	Limits         service.Limits
	TrustedProxies []string
	Metrics        bool // serve /metrics
	// MemoryBudget is the bytes all requests and jobs together may hold
	// beyond the networks in memory (pkg/budget).
	MemoryBudget int64
	// MaxSessionsPerAddr bounds the Socket.IO sessions of one client address.
	MaxSessionsPerAddr int

	// Scaled mode: DatabaseURL set. Role says what this replica does.
	DatabaseURL   string
	Role          string // "all", "api" or "worker"
	TakeoverAfter time.Duration
	DBTimeout     time.Duration // each call to Postgres
	S3            s3store.Config
	UseS3         bool

	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration
}

// DefaultMemoryBudgetMB sizes the memory budget for a 512 MB container:
// about 70 MB idle (MNIST, the runtime), this budget, and the networks held
// in memory (MAX_PARAMS_IN_MEMORY: at most 200 MB, usually far less);
// docs/LIMITS.md works it out.
const DefaultMemoryBudgetMB = 192

// DB_TIMEOUT's bounds. Below 100 ms, an ordinary load spike (a
// checkpoint, a busy machine) would fail requests; beyond a minute, the
// answer could no longer be written (WriteTimeout is 60 s) and a client
// would have given up long before.
const (
	minDBTimeout = 100 * time.Millisecond
	maxDBTimeout = time.Minute
)

// mode names how the server runs, for logs.
func (c config) mode() string {
	if c.DatabaseURL != "" {
		return "scaled"
	}
	return "single"
}

// setting is one flag and the environment variable that sets its default.
type setting struct {
	flag, env string
	min, max  int64 // for integers; both 0: no bounds
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	lim := service.DefaultLimits()
	cpus := runtime.GOMAXPROCS(0)
	cfg := config{
		Limits: lim, CPUs: cpus,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Above the 25 s ping interval, the longest a long-poll is held open.
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	var (
		settings []setting
		port     int
		level    string
		proxies  string
		metrics  string
		dbURL    string
		scratch  int
		budgetMB int
	)
	intVar := func(dst *int, name, env string, def int, min, max int64, help string) {
		fs.IntVar(dst, name, def, fmt.Sprintf("%s (env %s)", help, env))
		settings = append(settings, setting{name, env, min, max})
	}
	strVar := func(dst *string, name, env, def, help string) {
		fs.StringVar(dst, name, def, fmt.Sprintf("%s (env %s)", help, env))
		settings = append(settings, setting{flag: name, env: env})
	}
	durVar := func(dst *time.Duration, name, env string, def time.Duration, help string) {
		fs.DurationVar(dst, name, def, fmt.Sprintf("%s (env %s)", help, env))
		settings = append(settings, setting{flag: name, env: env})
	}
	intVar(&port, "port", "PORT", 8000, 1, 65535, "HTTP port, all interfaces")
	strVar(&cfg.ModelsDir, "models-dir", "MODELS_DIR", dirstore.DefaultDir, "directory of saved networks")
	strVar(&cfg.MNISTDir, "mnist-dir", "MNIST_DIR", "", "directory with the four MNIST .gz files; empty: the copy built in")
	intVar(&cfg.Workers, "max-concurrent-jobs", "MAX_CONCURRENT_JOBS", cpus, 1, 256, "training jobs run at once; default: the CPUs this process may use")
	strVar(&level, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	strVar(&cfg.DebugAddr, "debug-addr", "DEBUG_ADDR", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; off when empty")
	strVar(&proxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed in logs; empty: none")
	strVar(&metrics, "metrics", "METRICS", "on", "serve Prometheus metrics at /metrics: on or off")
	intVar(&cfg.Limits.MaxNetworks, "max-networks", "MAX_NETWORKS", lim.MaxNetworks, 1, 1_000_000, "networks kept, in memory and on disk")
	intVar(&cfg.Limits.MaxQueuedJobs, "max-queued-jobs", "MAX_QUEUED_JOBS", lim.MaxQueuedJobs, 1, 1_000_000, "training jobs waiting at most")
	intVar(&cfg.Limits.MaxParams, "max-params", "MAX_PARAMS", lim.MaxParams, 1, modelfile.MaxParams, "weights and biases per network at most")
	intVar(&cfg.Limits.MaxParamsInMemory, "max-params-in-memory", "MAX_PARAMS_IN_MEMORY", lim.MaxParamsInMemory, 1, 1<<40, "weights and biases held in memory; past it idle networks are unloaded")
	intVar(&cfg.Limits.MaxEpochs, "max-epochs", "MAX_EPOCHS", lim.MaxEpochs, 1, 1_000_000, "epochs per job at most")
	intVar(&scratch, "job-scratch-mb", "JOB_SCRATCH_MB", lim.JobScratchBytes>>20, 1, 1<<20, "MiB of scratch memory per training job; larger mini-batches run in chunks")
	intVar(&cfg.Limits.MaxFinishedJobs, "max-finished-jobs", "MAX_FINISHED_JOBS", lim.MaxFinishedJobs, 1, 10_000_000, "finished jobs remembered at most")
	durVar(&cfg.Limits.JobRetention, "job-retention", "JOB_RETENTION", lim.JobRetention, "how long a finished job is remembered")
	intVar(&cfg.Limits.MaxAnalyses, "max-analyses", "MAX_ANALYSES", lim.MaxAnalyses, 1, 1024, "network versions analysed at once for examples; more get 503")
	intVar(&budgetMB, "memory-budget-mb", "MEMORY_BUDGET_MB", DefaultMemoryBudgetMB, 16, 1<<20, "MiB that requests and training jobs may hold together (bodies, image decodes, imports, analyses, encoded answers, training scratch); past it requests get 503 and jobs wait")
	intVar(&cfg.Limits.MaxQueuedJobsPerClient, "max-queued-jobs-per-client", "MAX_QUEUED_JOBS_PER_CLIENT", lim.MaxQueuedJobsPerClient, 0, 1_000_000, "training jobs one client address may have waiting; 0: no bound")
	intVar(&cfg.MaxSessionsPerAddr, "max-sessions-per-addr", "MAX_SESSIONS_PER_ADDR", live.DefaultMaxSessionsPerAddr, 1, 1_000_000, "Socket.IO sessions one client address may hold")
	durVar(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 10*time.Second, "how long shutdown waits for jobs and connections")
	strVar(&dbURL, "database-url", "DATABASE_URL", "", "postgres:// URL: run as one of many replicas sharing this database; empty: a single process")
	strVar(&cfg.Role, "role", "ROLE", "all", "all (API, Socket.IO and training), api (no training) or worker (training only; HTTP only for health); api and worker need DATABASE_URL")
	durVar(&cfg.TakeoverAfter, "takeover-after", "TAKEOVER_AFTER", postgres.DefaultTakeoverAfter, "scaled mode: a job whose replica died resumes on another within about this long (and half as long again for the check) once Postgres has dropped the dead replica's connection")
	durVar(&cfg.DBTimeout, "db-timeout", "DB_TIMEOUT", postgres.DefaultTimeout, fmt.Sprintf("scaled mode: each call to Postgres fails after this long (the request gets 503), and the server stops each statement a second later; from %v to %v", minDBTimeout, maxDBTimeout))

	// The environment sets defaults, through the flags' own parsers, so
	// that a bad value is reported the same way from either.
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := fs.Set(s.flag, strings.TrimSpace(v)); err != nil {
				return config{}, fmt.Errorf("%s=%q is not a valid value for -%s: %w", s.env, v, s.flag, err)
			}
		}
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return config{}, fmt.Errorf("%w\n%s", err, usage.String())
	} else if err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range settings {
		if s.min == 0 && s.max == 0 {
			continue
		}
		v := fs.Lookup(s.flag).Value.(flag.Getter).Get().(int)
		if int64(v) < s.min || int64(v) > s.max {
			return config{}, fmt.Errorf("%s must be an integer between %d and %d, got %d (flag -%s, env %s)", s.flag, s.min, s.max, v, s.flag, s.env)
		}
	}
	if cfg.Limits.JobRetention <= 0 || cfg.ShutdownTimeout <= 0 {
		return config{}, errors.New("job-retention and shutdown-timeout must be positive durations such as 24h or 10s")
	}
	cfg.Addr = fmt.Sprintf(":%d", port)
	cfg.Limits.JobScratchBytes = scratch << 20
	cfg.MemoryBudget = int64(budgetMB) << 20
	if err := cfg.LogLevel.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return config{}, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch strings.ToLower(metrics) {
	case "on", "true", "1":
		cfg.Metrics = true
	case "off", "false", "0":
	default:
		return config{}, fmt.Errorf("metrics %q: want on or off", metrics)
	}
	var err error
	if dbURL != "" {
		if cfg.DatabaseURL, err = postgres.ParseURL(dbURL); err != nil {
			return config{}, err
		}
	}
	switch cfg.Role {
	case "all":
	case "api", "worker":
		if cfg.DatabaseURL == "" {
			return config{}, fmt.Errorf("role %q needs DATABASE_URL: a single process must serve and train", cfg.Role)
		}
	default:
		return config{}, fmt.Errorf("role %q: want all, api or worker", cfg.Role)
	}
	if cfg.TakeoverAfter < time.Second {
		return config{}, errors.New("takeover-after must be at least 1s")
	}
	if cfg.DBTimeout < minDBTimeout || cfg.DBTimeout > maxDBTimeout {
		return config{}, fmt.Errorf("db-timeout must be a duration from %v to %v, got %v (flag -db-timeout, env DB_TIMEOUT)", minDBTimeout, maxDBTimeout, cfg.DBTimeout)
	}
	if cfg.S3, cfg.UseS3, err = s3store.ConfigFromEnv(getenv); err != nil {
		return config{}, err
	}
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}
	return cfg, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/mnist-go/nnserver/pkg/api"
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
	// Access is who may do what (ADMIN_TOKEN, METRICS_TOKEN, OWNERSHIP):
	// checked by finish, made a service.Policy by start. The tokens are
	// never logged.
	Access service.PolicyConfig
	// RateLimits bound the creates, trainings and imports of one client
	// address a minute.
	RateLimits api.RateLimits

	// JobsDB is single mode's job database (pkg/sqlite), by default
	// jobs.db in ModelsDir; "" keeps the jobs in memory (JOBS_DB=off), as
	// does scaled mode, whose jobs are in Postgres.
	JobsDB string

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
// about 70 MB idle (MNIST, the runtime), this budget (the networks held in
// memory included) and the garbage collector's slack; docs/LIMITS.md works
// it out.
const DefaultMemoryBudgetMB = 384

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

// raw holds the settings whose flags are not config fields as they are:
// they are checked and turned into config fields by finish.
type raw struct {
	host, level, proxies, metrics, dbURL, ownership, jobsDB string
	port, scratch, budgetMB                                 int
}

// parseConfig reads the settings: each flag's default comes from its
// environment variable if set, the flags from args win; then every value is
// checked and the config derived.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	var r raw
	settings := defineSettings(fs, &cfg, &r)
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
	if err := checkRanges(fs, settings); err != nil {
		return config{}, err
	}
	return finish(cfg, r, getenv)
}

// defaultConfig is the configuration before any setting is read: the
// fixed HTTP bounds and the service's default limits.
func defaultConfig() config {
	return config{
		Limits: service.DefaultLimits(), CPUs: runtime.GOMAXPROCS(0),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Above the 25 s ping interval, the longest a long-poll is held open.
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
	}
}

// defineSettings defines every setting's flag on fs, writing to cfg or r,
// and returns them with their environment variables and integer bounds.
func defineSettings(fs *flag.FlagSet, cfg *config, r *raw) []setting {
	var settings []setting
	lim, cpus := cfg.Limits, cfg.CPUs
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
	strVar(&r.host, "host", "HOST", "", "address to listen on, e.g. 127.0.0.1 or ::1; empty: all interfaces")
	intVar(&r.port, "port", "PORT", 8000, 1, 65535, "HTTP port")
	strVar(&cfg.ModelsDir, "models-dir", "MODELS_DIR", dirstore.DefaultDir, "directory of saved networks")
	strVar(&cfg.MNISTDir, "mnist-dir", "MNIST_DIR", "", "directory with the four MNIST .gz files; empty: the copy built in")
	intVar(&cfg.Workers, "max-concurrent-jobs", "MAX_CONCURRENT_JOBS", cpus, 1, 256, "training jobs run at once; default: the CPUs this process may use")
	strVar(&r.level, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	strVar(&cfg.DebugAddr, "debug-addr", "DEBUG_ADDR", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060; off when empty")
	strVar(&r.proxies, "trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed (logs, per-client bounds); empty: none")
	strVar(&r.metrics, "metrics", "METRICS", "on", "serve Prometheus metrics at /metrics: on or off")
	intVar(&cfg.Limits.MaxNetworks, "max-networks", "MAX_NETWORKS", lim.MaxNetworks, 1, 1_000_000, "networks kept, in memory and on disk")
	intVar(&cfg.Limits.MaxQueuedJobs, "max-queued-jobs", "MAX_QUEUED_JOBS", lim.MaxQueuedJobs, 1, 1_000_000, "training jobs waiting at most")
	intVar(&cfg.Limits.MaxParams, "max-params", "MAX_PARAMS", lim.MaxParams, 1, modelfile.MaxParams, "weights and biases per network at most")
	intVar(&cfg.Limits.MaxMACsPerImage, "max-macs-per-image", "MAX_MACS_PER_IMAGE", lim.MaxMACsPerImage, 1, modelfile.MaxMACs, "multiply-adds of one image's forward pass of a layers network at most")
	intVar(&cfg.Limits.MaxActivationsPerImage, "max-activations-per-image", "MAX_ACTIVATIONS_PER_IMAGE", lim.MaxActivationsPerImage, 1, modelfile.MaxActivations, "values all layers of a layers network output for one image at most")
	intVar(&cfg.Limits.MaxParamsInMemory, "max-params-in-memory", "MAX_PARAMS_IN_MEMORY", lim.MaxParamsInMemory, 1, 1<<40, "weights and biases held in memory; past it idle networks are unloaded")
	intVar(&cfg.Limits.MaxEpochs, "max-epochs", "MAX_EPOCHS", lim.MaxEpochs, 1, 1_000_000, "epochs per job at most")
	intVar(&r.scratch, "job-scratch-mb", "JOB_SCRATCH_MB", lim.JobScratchBytes>>20, 1, 1<<20, "MiB of scratch memory per training job; larger mini-batches run in chunks")
	intVar(&cfg.Limits.MaxFinishedJobs, "max-finished-jobs", "MAX_FINISHED_JOBS", lim.MaxFinishedJobs, 1, 10_000_000, "finished jobs remembered at most")
	durVar(&cfg.Limits.JobRetention, "job-retention", "JOB_RETENTION", lim.JobRetention, "how long a finished job is remembered")
	intVar(&cfg.Limits.MaxAnalyses, "max-analyses", "MAX_ANALYSES", lim.MaxAnalyses, 1, 1024, "network versions analysed at once for examples; more get 503")
	intVar(&cfg.Limits.SnapshotsKept, "snapshots-kept", "SNAPSHOTS_KEPT", lim.SnapshotsKept, 1, service.MaxSnapshotsKept, "latest epochs of each network whose weights are kept as snapshots (besides its best), where the network is saved")
	intVar(&r.budgetMB, "memory-budget-mb", "MEMORY_BUDGET_MB", DefaultMemoryBudgetMB, 16, 1<<20, "MiB that requests and training jobs may hold together (bodies, image decodes, imports, analyses, encoded answers, training scratch); past it requests get 503 and jobs wait")
	intVar(&cfg.Limits.MaxQueuedJobsPerClient, "max-queued-jobs-per-client", "MAX_QUEUED_JOBS_PER_CLIENT", lim.MaxQueuedJobsPerClient, 0, 1_000_000, "training jobs one client address may have waiting; 0: no bound")
	intVar(&cfg.MaxSessionsPerAddr, "max-sessions-per-addr", "MAX_SESSIONS_PER_ADDR", live.DefaultMaxSessionsPerAddr, 1, 1_000_000, "Socket.IO sessions one client address may hold")
	durVar(&cfg.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 10*time.Second, "how long shutdown waits for jobs and connections")
	strVar(&r.jobsDB, "jobs-db", "JOBS_DB", "", "single mode: the SQLite file that keeps the training jobs across restarts (running ones resume); off (or memory): in memory, lost at a restart; empty: jobs.db in the models directory")
	strVar(&r.dbURL, "database-url", "DATABASE_URL", "", "postgres:// URL: run as one of many replicas sharing this database; empty: a single process")
	strVar(&cfg.Role, "role", "ROLE", "all", "all (API, Socket.IO and training), api (no training) or worker (training only; HTTP only for health); api and worker need DATABASE_URL")
	durVar(&cfg.TakeoverAfter, "takeover-after", "TAKEOVER_AFTER", postgres.DefaultTakeoverAfter, "scaled mode: a job whose replica died resumes on another within about this long (and half as long again for the check) once Postgres has dropped the dead replica's connection")
	strVar(&cfg.Access.AdminToken, "admin-token", "ADMIN_TOKEN", "", fmt.Sprintf("a secret of at least %d characters: deleting every network then needs Authorization: Bearer with it, and it opens every network with -ownership on and the metrics; empty: none (prefer the environment: flags show in ps)", service.MinAdminTokenLength))
	strVar(&cfg.Access.MetricsToken, "metrics-token", "METRICS_TOKEN", "", fmt.Sprintf("a secret of at least %d characters: /metrics then needs Authorization: Bearer with it (or the admin token); empty: /metrics is open", service.MinAdminTokenLength))
	strVar(&r.ownership, "ownership", "OWNERSHIP", "off", "on: deleting or training a network, or cancelling its jobs, needs its owner token (given by create and import) or the admin token; off: anyone may")
	intVar(&cfg.RateLimits.Create, "rate-limit-create", "RATE_LIMIT_CREATE", api.DefaultRateLimits().Create, 0, 1_000_000, "networks one client address may create a minute (a burst of as many); 0: no limit")
	intVar(&cfg.RateLimits.Train, "rate-limit-train", "RATE_LIMIT_TRAIN", api.DefaultRateLimits().Train, 0, 1_000_000, "training jobs one client address may start a minute (a burst of as many); 0: no limit")
	intVar(&cfg.RateLimits.Import, "rate-limit-import", "RATE_LIMIT_IMPORT", api.DefaultRateLimits().Import, 0, 1_000_000, "networks one client address may import a minute (a burst of as many); 0: no limit")
	durVar(&cfg.DBTimeout, "db-timeout", "DB_TIMEOUT", postgres.DefaultTimeout, fmt.Sprintf("scaled mode: each call to Postgres fails after this long (the request gets 503), and the server stops each statement a second later; from %v to %v", minDBTimeout, maxDBTimeout))
	return settings
}

// checkRanges checks every integer setting against its bounds.
func checkRanges(fs *flag.FlagSet, settings []setting) error {
	for _, s := range settings {
		if s.min == 0 && s.max == 0 {
			continue
		}
		v := fs.Lookup(s.flag).Value.(flag.Getter).Get().(int)
		if int64(v) < s.min || int64(v) > s.max {
			return fmt.Errorf("%s must be an integer between %d and %d, got %d (flag -%s, env %s)", s.flag, s.min, s.max, v, s.flag, s.env)
		}
	}
	return nil
}

// finish checks what the flags could not and derives the rest of cfg.
func finish(cfg config, r raw, getenv func(string) string) (config, error) {
	if cfg.Limits.JobRetention <= 0 || cfg.ShutdownTimeout <= 0 {
		return config{}, errors.New("job-retention and shutdown-timeout must be positive durations such as 24h or 10s")
	}
	if r.host != "" && net.ParseIP(strings.Trim(r.host, "[]")) == nil && !validHostname(r.host) {
		return config{}, fmt.Errorf("host %q: want an IP address or a host name (flag -host, env HOST)", r.host)
	}
	cfg.Addr = net.JoinHostPort(strings.Trim(r.host, "[]"), strconv.Itoa(r.port))
	cfg.Limits.JobScratchBytes = r.scratch << 20
	cfg.MemoryBudget = int64(r.budgetMB) << 20
	if err := cfg.LogLevel.UnmarshalText([]byte(strings.ToLower(r.level))); err != nil {
		return config{}, fmt.Errorf("log level %q: want debug, info, warn or error", r.level)
	}
	switch strings.ToLower(r.metrics) {
	case "on", "true", "1":
		cfg.Metrics = true
	case "off", "false", "0":
	default:
		return config{}, fmt.Errorf("metrics %q: want on or off", r.metrics)
	}
	switch strings.ToLower(r.ownership) {
	case "on", "true", "1":
		cfg.Access.Ownership = true
	case "off", "false", "0":
	default:
		return config{}, fmt.Errorf("ownership %q: want on or off", r.ownership)
	}
	// The tokens' rules; the errors do not quote them.
	if _, err := service.NewPolicy(cfg.Access); err != nil {
		return config{}, err
	}
	var err error
	if r.dbURL != "" {
		if cfg.DatabaseURL, err = postgres.ParseURL(r.dbURL); err != nil {
			return config{}, err
		}
	}
	if cfg.JobsDB, err = jobsDB(r.jobsDB, cfg); err != nil {
		return config{}, err
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
	for _, p := range strings.Split(r.proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}
	return cfg, nil
}

// jobsDB is the job database's path for the JOBS_DB setting v: in single
// mode v, or by default jobs.db in the models directory; "" for off (or
// memory), and in scaled mode, whose jobs are in Postgres.
func jobsDB(v string, cfg config) (string, error) {
	switch strings.ToLower(v) {
	case "off", "memory", "false", "0":
		return "", nil
	case "":
		if cfg.DatabaseURL != "" {
			return "", nil
		}
		return filepath.Join(cfg.ModelsDir, "jobs.db"), nil
	}
	if cfg.DatabaseURL != "" {
		return "", errors.New("jobs-db is for single mode: with DATABASE_URL the jobs are kept in Postgres (flag -jobs-db, env JOBS_DB)")
	}
	return v, nil
}

// validHostname reports whether s could be a DNS host name (letters,
// digits, '-' and '.').
func validHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/api"
	"github.com/mnist-go/nnserver/pkg/postgres"
	"github.com/mnist-go/nnserver/pkg/service"
)

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	def := service.DefaultLimits()
	// Both switches off by default: existing clients send no credentials.
	if cfg.Access != (service.PolicyConfig{}) || cfg.RateLimits != api.DefaultRateLimits() {
		t.Errorf("access %+v, rate limits %+v; want none and the defaults", cfg.Access, cfg.RateLimits)
	}
	if cfg.Addr != ":8000" || cfg.ModelsDir != "models" || cfg.MNISTDir != "" || cfg.DebugAddr != "" ||
		cfg.Workers != runtime.GOMAXPROCS(0) || cfg.LogLevel != slog.LevelInfo || cfg.Limits != def {
		t.Errorf("defaults: %+v", cfg)
	}
	// A long-poll is held for up to the 25 s ping interval: the write
	// timeout must outlast it, or polling clients are cut off.
	if cfg.WriteTimeout <= 25*time.Second || cfg.ReadHeaderTimeout <= 0 || cfg.ReadTimeout <= 0 ||
		cfg.IdleTimeout <= 0 || cfg.MaxHeaderBytes <= 0 || cfg.ShutdownTimeout <= 0 {
		t.Errorf("timeouts: %+v", cfg)
	}
	// One source of truth: the package's defaults are the settings'.
	if cfg.DBTimeout != postgres.DefaultTimeout {
		t.Errorf("DBTimeout %v, want postgres.DefaultTimeout %v", cfg.DBTimeout, postgres.DefaultTimeout)
	}
	if cfg.TakeoverAfter != postgres.DefaultTakeoverAfter {
		t.Errorf("TakeoverAfter %v, want postgres.DefaultTakeoverAfter %v", cfg.TakeoverAfter, postgres.DefaultTakeoverAfter)
	}
	// Each call to Postgres must fail well before a request's answer can
	// no longer be written.
	if cfg.DBTimeout < minDBTimeout || cfg.DBTimeout > maxDBTimeout || maxDBTimeout > cfg.WriteTimeout {
		t.Errorf("DBTimeout %v, bounds %v to %v, WriteTimeout %v", cfg.DBTimeout, minDBTimeout, maxDBTimeout, cfg.WriteTimeout)
	}
}

func TestConfigEnvAndFlags(t *testing.T) {
	env := envOf(map[string]string{
		"PORT": "9000", "MODELS_DIR": "/data/models", "MAX_CONCURRENT_JOBS": "3", "LOG_LEVEL": "DEBUG",
		"MNIST_DIR": "/mnist", "MAX_NETWORKS": "7", "MAX_QUEUED_JOBS": "8", "MAX_PARAMS": "1000", "MAX_EPOCHS": "9", "MAX_PARAMS_IN_MEMORY": "123456",
		"DEBUG_ADDR": "127.0.0.1:6060", "JOB_SCRATCH_MB": "8", "MAX_FINISHED_JOBS": "50", "JOB_RETENTION": "90m",
		"TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16", "MAX_ANALYSES": "3", "SHUTDOWN_TIMEOUT": "3s",
		"DB_TIMEOUT": "2s",
	})
	cfg, err := parseConfig(nil, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9000" || cfg.ModelsDir != "/data/models" || cfg.Workers != 3 || cfg.LogLevel != slog.LevelDebug ||
		cfg.MNISTDir != "/mnist" || cfg.Limits.MaxNetworks != 7 || cfg.Limits.MaxQueuedJobs != 8 ||
		cfg.Limits.MaxParams != 1000 || cfg.Limits.MaxEpochs != 9 || cfg.Limits.MaxParamsInMemory != 123456 || cfg.DebugAddr != "127.0.0.1:6060" ||
		cfg.Limits.JobScratchBytes != 8<<20 || cfg.Limits.MaxFinishedJobs != 50 || cfg.Limits.JobRetention != 90*time.Minute ||
		!slices.Equal(cfg.TrustedProxies, []string{"10.0.0.1", "192.168.0.0/16"}) || cfg.Limits.MaxAnalyses != 3 ||
		cfg.ShutdownTimeout != 3*time.Second || cfg.DBTimeout != 2*time.Second {
		t.Errorf("from env: %+v", cfg)
	}
	cfg, err = parseConfig([]string{"--port", "9100", "--models-dir", "m2", "--log-level", "warn", "--db-timeout", "750ms"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9100" || cfg.ModelsDir != "m2" || cfg.LogLevel != slog.LevelWarn || cfg.Workers != 3 ||
		cfg.DBTimeout != 750*time.Millisecond {
		t.Errorf("flags over env: %+v", cfg)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"PORT": "http"}, `PORT="http" is not a valid value for -port`},
		{nil, map[string]string{"PORT": "70000"}, "port must be an integer between 1 and 65535, got 70000"},
		{nil, map[string]string{"JOB_RETENTION": "a day"}, `JOB_RETENTION="a day" is not a valid value for -job-retention`},
		{nil, map[string]string{"JOB_RETENTION": "-1h"}, "positive durations"},
		{nil, map[string]string{"JOB_SCRATCH_MB": "0"}, "job-scratch-mb must be an integer between 1"},
		{nil, map[string]string{"TRUSTED_PROXIES": ""}, ""},
		{nil, map[string]string{"PORT": "70000"}, "port must be"},
		{[]string{"--port", "0"}, nil, "port must be"},
		{nil, map[string]string{"MAX_CONCURRENT_JOBS": "0"}, "max-concurrent-jobs must be"},
		{nil, map[string]string{"MAX_NETWORKS": "-1"}, "max-networks must be"},
		{nil, map[string]string{"LOG_LEVEL": "loud"}, `log level "loud"`},
		{nil, map[string]string{"DB_TIMEOUT": "soon"}, `DB_TIMEOUT="soon" is not a valid value for -db-timeout`},
		{nil, map[string]string{"DB_TIMEOUT": "5"}, `DB_TIMEOUT="5" is not a valid value for -db-timeout`},
		{nil, map[string]string{"DB_TIMEOUT": "50ms"}, "db-timeout must be a duration from 100ms to 1m0s, got 50ms (flag -db-timeout, env DB_TIMEOUT)"},
		{nil, map[string]string{"DB_TIMEOUT": "-1s"}, "db-timeout must be a duration from 100ms to 1m0s"},
		{[]string{"--db-timeout", "2m"}, nil, "db-timeout must be a duration from 100ms to 1m0s, got 2m0s"},
		{nil, map[string]string{"DB_TIMEOUT": "100ms"}, ""},
		{nil, map[string]string{"DB_TIMEOUT": "1m"}, ""},
		{[]string{"--nope"}, nil, "flag provided but not defined"},
		{[]string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		_, err := parseConfig(tc.args, envOf(tc.env))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v %v: %v", tc.args, tc.env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: got %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// TestConfigJobsDB: single mode keeps its jobs in MODELS_DIR/jobs.db unless
// JOBS_DB names another file or turns it off; scaled mode keeps them in
// Postgres, and refuses a file.
func TestConfigJobsDB(t *testing.T) {
	const pg = "postgres://u@db.example:5432/nn"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // JobsDB
		err  string
	}{
		{"default: in the models directory", nil, nil, filepath.Join("models", "jobs.db"), ""},
		{"in MODELS_DIR", nil, map[string]string{"MODELS_DIR": "/data/models"}, "/data/models/jobs.db", ""},
		{"in -models-dir", []string{"-models-dir", "m2"}, map[string]string{"MODELS_DIR": "/data/models"}, filepath.Join("m2", "jobs.db"), ""},
		{"a file of its own", nil, map[string]string{"JOBS_DB": "/var/lib/nn/jobs.sqlite"}, "/var/lib/nn/jobs.sqlite", ""},
		{"off", nil, map[string]string{"JOBS_DB": "off"}, "", ""},
		{"memory", nil, map[string]string{"JOBS_DB": "Memory"}, "", ""},
		{"the flag wins", []string{"-jobs-db", "j.db"}, map[string]string{"JOBS_DB": "off"}, "j.db", ""},
		{"scaled mode: in Postgres", nil, map[string]string{"DATABASE_URL": pg}, "", ""},
		{"scaled mode, off", nil, map[string]string{"DATABASE_URL": pg, "JOBS_DB": "off"}, "", ""},
		{"scaled mode with a file", nil, map[string]string{"DATABASE_URL": pg, "JOBS_DB": "/x/jobs.db"}, "", "jobs-db is for single mode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, envOf(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "JOBS_DB") {
					t.Errorf("%v: want an error %q naming JOBS_DB", err, tc.err)
				}
				return
			}
			if err != nil || cfg.JobsDB != tc.want {
				t.Errorf("JobsDB %q, %v; want %q", cfg.JobsDB, err, tc.want)
			}
		})
	}
}

// TestConfigS3: the S3 settings, S3_TIMEOUT included, reach the store's
// configuration; without S3_TIMEOUT the store's default applies.
func TestConfigS3(t *testing.T) {
	env := map[string]string{"S3_ENDPOINT": "http://minio:9000", "S3_BUCKET": "models", "S3_TIMEOUT": "20s"}
	cfg, err := parseConfig(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.UseS3 || cfg.S3.Endpoint != "minio:9000" || cfg.S3.Bucket != "models" || cfg.S3.Timeout != 20*time.Second {
		t.Errorf("S3: %+v", cfg.S3)
	}
	env["S3_TIMEOUT"] = "2h"
	if _, err := parseConfig(nil, envOf(env)); err == nil || !strings.Contains(err.Error(), "S3_TIMEOUT") {
		t.Errorf("S3_TIMEOUT=2h: %v", err)
	}
}

// TestDocumentedDefaults: the documentation gives the defaults the code
// has.
func TestDocumentedDefaults(t *testing.T) {
	takeover := "`" + postgres.DefaultTakeoverAfter.String() + "`"
	for _, tc := range []struct{ file, row string }{
		{"../../README.md", "| `TAKEOVER_AFTER` |"},
		{"../../docs/SCALE.md", "| `TAKEOVER_AFTER` |"},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		var row string
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, tc.row) {
				row = line
			}
		}
		if !strings.Contains(row, takeover) {
			t.Errorf("%s: the TAKEOVER_AFTER row %q does not give the default, %s", tc.file, row, takeover)
		}
	}
}

// TestHelp: --help lists every setting with its type and exits 0 (main
// prints the usage and returns for flag.ErrHelp).
func TestHelp(t *testing.T) {
	_, err := parseConfig([]string{"--help"}, envOf(nil))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-port int", "-job-retention duration", "-models-dir string", "(env MAX_PARAMS)",
		"-db-timeout duration", "(env DB_TIMEOUT)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("usage lacks %q:\n%s", want, err)
		}
	}
}

// TestEverySetting: each environment variable, given a valid value, sets
// what it names; given an invalid one, stops the server with a message
// naming it. Every setting the flag set defines is in the table: a new
// setting without a test here fails.
func TestEverySetting(t *testing.T) {
	tests := []struct {
		env, good string
		check     func(config) bool
		bad       string // "" when any string is valid
	}{
		{"HOST", "127.0.0.1", func(c config) bool { return c.Addr == "127.0.0.1:8000" }, "not a host!"},
		{"PORT", "9001", func(c config) bool { return c.Addr == ":9001" }, "0"},
		{"MODELS_DIR", "/var/models", func(c config) bool { return c.ModelsDir == "/var/models" }, ""},
		{"MNIST_DIR", "/mnist", func(c config) bool { return c.MNISTDir == "/mnist" }, ""},
		{"MAX_CONCURRENT_JOBS", "5", func(c config) bool { return c.Workers == 5 }, "257"},
		{"LOG_LEVEL", "warn", func(c config) bool { return c.LogLevel == slog.LevelWarn }, "chatty"},
		{"DEBUG_ADDR", "127.0.0.1:6061", func(c config) bool { return c.DebugAddr == "127.0.0.1:6061" }, ""},
		{"TRUSTED_PROXIES", "10.1.2.3", func(c config) bool { return slices.Equal(c.TrustedProxies, []string{"10.1.2.3"}) }, ""},
		{"METRICS", "off", func(c config) bool { return !c.Metrics }, "maybe"},
		{"MAX_NETWORKS", "11", func(c config) bool { return c.Limits.MaxNetworks == 11 }, "0"},
		{"MAX_QUEUED_JOBS", "12", func(c config) bool { return c.Limits.MaxQueuedJobs == 12 }, "-3"},
		{"MAX_PARAMS", "13000", func(c config) bool { return c.Limits.MaxParams == 13000 }, "50000001"},
		{"MAX_MACS_PER_IMAGE", "2000000", func(c config) bool { return c.Limits.MaxMACsPerImage == 2_000_000 }, "0"},
		{"MAX_ACTIVATIONS_PER_IMAGE", "30000", func(c config) bool { return c.Limits.MaxActivationsPerImage == 30000 }, "50000001"},
		{"MAX_PARAMS_IN_MEMORY", "14000", func(c config) bool { return c.Limits.MaxParamsInMemory == 14000 }, "0"},
		{"MAX_EPOCHS", "15", func(c config) bool { return c.Limits.MaxEpochs == 15 }, "1000001"},
		{"JOB_SCRATCH_MB", "16", func(c config) bool { return c.Limits.JobScratchBytes == 16<<20 }, "0"},
		{"MAX_FINISHED_JOBS", "17", func(c config) bool { return c.Limits.MaxFinishedJobs == 17 }, "0"},
		{"JOB_RETENTION", "18h", func(c config) bool { return c.Limits.JobRetention == 18*time.Hour }, "0s"},
		{"MAX_ANALYSES", "19", func(c config) bool { return c.Limits.MaxAnalyses == 19 }, "1025"},
		{"SNAPSHOTS_KEPT", "7", func(c config) bool { return c.Limits.SnapshotsKept == 7 }, "0"},
		{"MEMORY_BUDGET_MB", "200", func(c config) bool { return c.MemoryBudget == 200<<20 }, "15"},
		{"MAX_QUEUED_JOBS_PER_CLIENT", "0", func(c config) bool { return c.Limits.MaxQueuedJobsPerClient == 0 }, "-1"},
		{"MAX_SESSIONS_PER_ADDR", "21", func(c config) bool { return c.MaxSessionsPerAddr == 21 }, "0"},
		{"SHUTDOWN_TIMEOUT", "22s", func(c config) bool { return c.ShutdownTimeout == 22*time.Second }, "-1s"},
		{"DATABASE_URL", "postgres://u@db.example:5432/nn", func(c config) bool { return strings.Contains(c.DatabaseURL, "db.example") }, "mysql://x"},
		{"ROLE", "all", func(c config) bool { return c.Role == "all" }, "boss"},
		{"TAKEOVER_AFTER", "25s", func(c config) bool { return c.TakeoverAfter == 25*time.Second }, "10ms"},
		{"DB_TIMEOUT", "3s", func(c config) bool { return c.DBTimeout == 3*time.Second }, "2m"},
		{"ADMIN_TOKEN", "0123456789abcdef", func(c config) bool { return c.Access.AdminToken == "0123456789abcdef" }, "0123456789abcde"},
		{"METRICS_TOKEN", "metrics-0123456789", func(c config) bool { return c.Access.MetricsToken == "metrics-0123456789" }, "short"},
		{"OWNERSHIP", "on", func(c config) bool { return c.Access.Ownership }, "sometimes"},
		{"RATE_LIMIT_CREATE", "7", func(c config) bool { return c.RateLimits.Create == 7 }, "-1"},
		{"RATE_LIMIT_TRAIN", "0", func(c config) bool { return c.RateLimits.Train == 0 }, "1000001"},
		{"RATE_LIMIT_IMPORT", "9", func(c config) bool { return c.RateLimits.Import == 9 }, "x"},
		{"JOBS_DB", "/var/jobs.db", func(c config) bool { return c.JobsDB == "/var/jobs.db" }, ""},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		covered[tc.env] = true
		t.Run(tc.env, func(t *testing.T) {
			cfg, err := parseConfig(nil, envOf(map[string]string{tc.env: tc.good}))
			if err != nil || !tc.check(cfg) {
				t.Errorf("%s=%s: %v, %+v", tc.env, tc.good, err, cfg)
			}
			if tc.bad == "" {
				return
			}
			if _, err := parseConfig(nil, envOf(map[string]string{tc.env: tc.bad})); err == nil ||
				!strings.Contains(err.Error(), tc.env) && !strings.Contains(err.Error(), strings.ReplaceAll(strings.ToLower(tc.env), "_", "-")) &&
					!strings.Contains(strings.ToLower(err.Error()), strings.ToLower(strings.ReplaceAll(tc.env, "_", " "))) {
				t.Errorf("%s=%s: %v, want an error naming it", tc.env, tc.bad, err)
			}
		})
	}
	var cfg config
	var r raw
	for _, s := range defineSettings(flag.NewFlagSet("x", flag.ContinueOnError), &cfg, &r) {
		if !covered[s.env] {
			t.Errorf("setting %s (flag -%s) has no case in TestEverySetting", s.env, s.flag)
		}
	}
}

// TestTokensAreNeverQuoted: a token refused at start (too short) is not in
// the error, whether it came from the environment or a flag.
func TestTokensAreNeverQuoted(t *testing.T) {
	const short = "s3cr3t-t0ken"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"ADMIN_TOKEN", nil, map[string]string{"ADMIN_TOKEN": short}},
		{"-admin-token", []string{"--admin-token", short}, nil},
		{"METRICS_TOKEN", nil, map[string]string{"METRICS_TOKEN": short}},
		{"--help with a token set", []string{"--help"}, map[string]string{"ADMIN_TOKEN": short + "-long-enough"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, envOf(tc.env))
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), short) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

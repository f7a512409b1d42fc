package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/postgres"
	"github.com/mnist-go/nnserver/pkg/s3store"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/sqlite"
)

// backends are the engines a mode runs on. Single mode (no DATABASE_URL):
// a directory of models, the jobs in a SQLite file (JOBS_DB) or in memory,
// the catalog in memory (the service builds it from the models), events
// straight to Socket.IO.
// Scaled mode: Postgres for the catalog, the queue (River) and the event
// relay, models in S3 or a directory shared by every replica.
type backends struct {
	store   service.Store
	where   string          // the models' location, for logs
	jobs    string          // the jobs' location, for logs: a file, "memory" or "postgres"
	catalog service.Catalog // nil in single mode: the service keeps it in memory
	queue   service.Queue
	events  service.Events
	// relay, in scaled mode, runs on every replica (Run): it delivers
	// events to this replica's Socket.IO clients (none on a worker) and
	// removals to the function set with OnRemoved (the service's Forget).
	relay    *postgres.Relay
	replicas service.Replicas // the relay in scaled mode (service.Config.Replicas), else nil
	pool     *pgxpool.Pool
	jobsDB   *sqlite.DB // single mode's job database; nil: none
	log      *slog.Logger
}

// openBackends opens the engines cfg names; local receives the events
// meant for this replica's Socket.IO clients.
func openBackends(ctx context.Context, cfg config, log *slog.Logger, local service.Events) (*backends, error) {
	lim := modelfile.Limits{MaxLayers: cfg.Limits.MaxLayers, MaxParams: cfg.Limits.MaxParams,
		MaxMACs: cfg.Limits.MaxMACsPerImage, MaxActivations: cfg.Limits.MaxActivationsPerImage}
	b := &backends{events: local, log: log}
	if cfg.UseS3 {
		s3, err := s3store.Open(ctx, cfg.S3, lim)
		if err != nil {
			return nil, fmt.Errorf("S3 model store: %w", err)
		}
		b.store, b.where = s3, s3.String()
	} else {
		dir, err := dirstore.Open(cfg.ModelsDir, lim)
		if err != nil {
			return nil, fmt.Errorf("models directory: %w", err)
		}
		b.store, b.where = dir, dir.Dir()
	}
	if cfg.DatabaseURL == "" {
		if cfg.JobsDB == "" {
			b.jobs = "memory"
			return b, nil
		}
		// Waits for another process that has the file (an overlapping
		// deploy on the same volume) until ctx ends.
		db, err := sqlite.Open(ctx, cfg.JobsDB, sqlite.Config{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("job database (JOBS_DB; JOBS_DB=off keeps the jobs in memory): %w", err)
		}
		b.jobsDB, b.queue, b.jobs = db, db.Queue(cfg.Workers, cfg.Limits, time.Now), db.Path()
		return b, nil
	}

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, cfg.DBTimeout)
	if err != nil {
		return nil, err // names DATABASE_URL, without its password
	}
	b.pool = pool
	if err := postgres.Migrate(ctx, pool, cfg.DBTimeout); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database migrations: %w", err)
	}
	workers := cfg.Workers
	if cfg.Role == "api" {
		workers = 0
	}
	q, err := postgres.NewQueue(ctx, pool, postgres.QueueConfig{
		Workers: workers, Limits: cfg.Limits, TakeoverAfter: cfg.TakeoverAfter, Logger: log, Now: time.Now,
		Timeout: cfg.DBTimeout,
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("job queue: %w", err)
	}
	b.catalog, b.queue, b.jobs = postgres.NewCatalog(pool, cfg.DBTimeout), q, "postgres"
	// Every event goes through Postgres once; each replica's relay hands
	// it to its own Socket.IO clients. A worker has none to hand it to:
	// its relay only listens for removals.
	rc := postgres.RelayConfig{Local: local, Logger: log, Timeout: cfg.DBTimeout}
	if cfg.Role == "worker" {
		rc.Local = nil
	}
	b.relay = postgres.NewRelay(pool, rc)
	b.events, b.replicas = b.relay, b.relay
	return b, nil
}

// close releases the database connections and the job database; call it
// after the service and the relay have stopped.
func (b *backends) close() {
	if b.pool != nil {
		b.pool.Close()
	}
	if b.jobsDB != nil {
		if err := b.jobsDB.Close(); err != nil {
			b.log.Error("closing the job database", "err", err)
		}
	}
}

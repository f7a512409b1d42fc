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
)

// backends are the engines a mode runs on. Single mode (no DATABASE_URL):
// a directory of models, state in memory, events straight to Socket.IO.
// Scaled mode: Postgres for the catalog, the queue (River) and the event
// relay, models in S3 or a directory shared by every replica.
type backends struct {
	store   service.Store
	where   string          // the models' location, for logs
	catalog service.Catalog // nil in single mode: the service keeps it in memory
	queue   service.Queue
	events  service.Events
	// relay, in scaled mode, runs on every replica (Run): it delivers
	// events to this replica's Socket.IO clients (none on a worker) and
	// removals to the function set with OnRemoved (the service's Forget).
	relay    *postgres.Relay
	replicas service.Replicas // the relay in scaled mode (service.Config.Replicas), else nil
	pool     *pgxpool.Pool
}

// openBackends opens the engines cfg names; local receives the events
// meant for this replica's Socket.IO clients.
func openBackends(ctx context.Context, cfg config, log *slog.Logger, local service.Events) (*backends, error) {
	lim := modelfile.Limits{MaxLayers: cfg.Limits.MaxLayers, MaxParams: cfg.Limits.MaxParams}
	b := &backends{events: local}
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
	b.catalog, b.queue = postgres.NewCatalog(pool, cfg.DBTimeout), q
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

// close releases the database connections; call it after the service and
// the relay have stopped.
func (b *backends) close() {
	if b.pool != nil {
		b.pool.Close()
	}
}

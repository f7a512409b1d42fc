package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// migration is one step of our schema. Applied steps are recorded in
// nnserver_migrations and never run again, so a step must never change once
// released: change the schema with a new step.
type migration struct {
	Version int    // 1, 2, 3...: its place in migrations
	Name    string // what it does, for people
	SQL     string // run in a transaction of its own
}

// migrations is our schema, in order. To change it, append a step with the
// next version. Steps must keep working for replicas of the previous release
// during a rolling deploy: add tables and columns, do not drop or rename
// what the running release uses.
var migrations = []migration{
	{1, "events table of the event relay", `
CREATE TABLE nnserver_events (
	id         bigserial PRIMARY KEY,
	-- Chosen by the publisher, so that a publish retried after a lost
	-- connection cannot insert the event twice.
	event_key  uuid NOT NULL UNIQUE,
	kind       text NOT NULL,
	job_id     text NOT NULL,
	payload    json NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
-- Pruning deletes by age.
CREATE INDEX nnserver_events_created_at ON nnserver_events (created_at);
`},
	{2, "networks table of the catalog", `
CREATE TABLE nnserver_networks (
	id             uuid PRIMARY KEY,
	sizes          int[] NOT NULL,
	init           text NOT NULL,             -- '' when unknown (imported)
	seed           bigint,                    -- a uint64's bits; NULL when unknown
	trained        boolean NOT NULL,
	accuracy       double precision,
	epochs_trained int NOT NULL,
	created_at     timestamptz NOT NULL,      -- microseconds: times are rounded on the way in
	updated_at     timestamptz NOT NULL,
	version        bigint NOT NULL            -- 1 when added, one more per save
);
`},
	{3, "training jobs table of the queue", `
CREATE TABLE nnserver_jobs (
	id          uuid PRIMARY KEY,
	-- The order of the queue. Adds take a lock around it, so seq values are
	-- committed in order.
	seq         bigserial NOT NULL UNIQUE,
	-- The River job that runs it now; replaced when the job is taken over
	-- from a replica that died.
	river_id    bigint NOT NULL,
	network_id  uuid NOT NULL,
	params      jsonb NOT NULL,               -- epochs, mini_batch_size, learning_rate, cost, lambda, seed
	status      text NOT NULL CHECK (status IN ('pending', 'training', 'completed', 'failed', 'cancelled')),
	epoch       int NOT NULL DEFAULT 0,       -- epochs finished
	accuracy    double precision,             -- after the last finished epoch
	elapsed     double precision NOT NULL DEFAULT 0,
	error       text NOT NULL DEFAULT '',
	history     jsonb NOT NULL DEFAULT '[]',  -- one object per finished epoch
	created_at  timestamptz NOT NULL,
	started_at  timestamptz,
	finished_at timestamptz,
	CHECK ((finished_at IS NULL) = (status IN ('pending', 'training')))
);
-- The queue: unfinished jobs by network, in order.
CREATE INDEX nnserver_jobs_unfinished ON nnserver_jobs (network_id, seq) WHERE finished_at IS NULL;
-- Retention: finished jobs, most recent last.
CREATE INDEX nnserver_jobs_finished ON nnserver_jobs (finished_at, seq) WHERE finished_at IS NOT NULL;
`},
	{4, "client address of each job, for the bound on one client's pending jobs", `
ALTER TABLE nnserver_jobs ADD COLUMN client text NOT NULL DEFAULT '';
CREATE INDEX nnserver_jobs_pending_client ON nnserver_jobs (client) WHERE status = 'pending';
`},
	{5, "owner token hash of each network, for OWNERSHIP=on", `
-- The SHA-256 (lowercase hex) of the network's owner token; NULL for the
-- networks added before this step, which belong to the admin. Set once,
-- by Add: Update leaves it alone, so a replica of the previous release
-- saving the network keeps it.
ALTER TABLE nnserver_networks ADD COLUMN owner_hash text;
`},
	{6, "name and notes of each network", `
-- Set by Add and by Label (PATCH), never by Update: a replica of the
-- previous release saving the network keeps them.
ALTER TABLE nnserver_networks ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE nnserver_networks ADD COLUMN notes text NOT NULL DEFAULT '';
`},
	{7, "the layers of a layers network", `
-- Set by Add, never changed: NULL for a layer_sizes network. The list as
-- created, as the model file's meta.json has it.
ALTER TABLE nnserver_networks ADD COLUMN layers jsonb;
`},
}

// migrateLockKey is the pg_advisory_lock key held while migrating: "nnsrvmig"
// in ASCII. Only Migrate uses it.
const migrateLockKey int64 = 0x6e6e7372766d6967

// migrateStepTimeout bounds each step of a migration (ours, and River's
// all together), on the client and on the server (statement_timeout): a
// step may rewrite a large table, which takes far longer than DB_TIMEOUT
// allows an ordinary statement.
const migrateStepTimeout = 10 * time.Minute

// Migrate brings the database's schema up to date: River's tables (through
// River's own migrator), then ours (migrations). Replicas starting at once
// may all call it: the whole run holds a session-level advisory lock, so
// they migrate one after another, and those after the first find nothing
// to do. Each step runs in a transaction of its own, recorded with it, so a
// step that fails leaves no trace and is retried by the next Migrate.
//
// A database that records steps this binary does not know (a newer release
// migrated it) is accepted: see migrations on keeping steps compatible.
//
// Migrate works on a pool of its own, of two connections, with pool's
// settings but for statement_timeout, which is migrateStepTimeout, like the
// deadline of each step: River's migrator uses one connection while
// Migrate holds the lock on the other. Its other statements take at most
// timeout (DB_TIMEOUT; 0: DefaultTimeout); it waits for the lock as long
// as ctx allows, in attempts of the timeout (see Deadlines in timeout.go).
func Migrate(ctx context.Context, pool *pgxpool.Pool, timeout time.Duration) error {
	if err := checkMigrations(migrations); err != nil {
		return err
	}
	timeout = orDefault(timeout)
	cfg := pool.Config()
	cfg.MaxConns, cfg.MinConns, cfg.MinIdleConns = 2, 0, 0
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms(statementTimeout(migrateStepTimeout))
	mpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer mpool.Close()

	actx, cancel := context.WithTimeout(ctx, timeout)
	pc, err := mpool.Acquire(actx)
	if err == nil {
		_, err = pc.Exec(actx, "SET lock_timeout = '"+ms(lockWait(timeout))+"'")
	}
	cancel()
	if err != nil {
		if pc != nil {
			pc.Release()
		}
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	conn := pc.Conn()
	// The pool is closed on return: the connection goes with it, and the
	// lock with the connection, unless it is released first.
	defer pc.Release()
	if err := waitLock(ctx, conn, timeout, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("postgres: migrate: taking the migration lock: %w", err)
	}
	defer func() {
		// Unlock even if ctx is done; closing the pool releases it anyway.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLockKey)
	}()
	// A step may wait for a table's lock while the running replicas use it.
	actx, cancel = context.WithTimeout(ctx, timeout)
	_, err = conn.Exec(actx, "RESET lock_timeout")
	cancel()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}

	migrator, err := rivermigrate.New(riverpgxv5.New(mpool), nil)
	if err != nil {
		return fmt.Errorf("postgres: migrate: River's migrator: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, migrateStepTimeout)
	_, err = migrator.Migrate(sctx, rivermigrate.DirectionUp, nil)
	cancel()
	if err != nil {
		return fmt.Errorf("postgres: migrate: River's tables: %w", err)
	}

	actx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := conn.Exec(actx, `CREATE TABLE IF NOT EXISTS nnserver_migrations (
	version    int PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("postgres: migrate: creating nnserver_migrations: %w", err)
	}
	rows, _ := conn.Query(actx, "SELECT version FROM nnserver_migrations")
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("postgres: migrate: reading nnserver_migrations: %w", err)
	}
	done := make(map[int]bool, len(applied))
	for _, v := range applied {
		done[v] = true
	}
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, migrateStepTimeout)
		err := pgx.BeginFunc(sctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(sctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(sctx, "INSERT INTO nnserver_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		cancel()
		if err != nil {
			return fmt.Errorf("postgres: migrate: step %d (%s): %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// checkMigrations checks that steps are numbered 1, 2, 3... in order.
func checkMigrations(ms []migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("postgres: migrate: step %d (%s) has version %d: versions must be 1, 2, 3... in order", i+1, m.Name, m.Version)
		}
		if m.SQL == "" {
			return errors.New("postgres: migrate: step " + fmt.Sprint(m.Version) + " has no SQL")
		}
	}
	return nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one step of the schema. Applied steps are recorded in
// migrations and never run again, so a step must never change once
// released: change the schema with a new step.
type migration struct {
	Version int    // 1, 2, 3...: its place in migrations
	Name    string // what it does, for people
	SQL     string // run in a transaction of its own, with its record
}

// migrations is the schema, in order. To change it, append a step with the
// next version. Keep steps additive (add tables and columns, with
// defaults): a release rolled back opens a file a newer one migrated, and
// Open accepts it (steps it does not know are left alone), so the older
// code must still work on the newer schema.
//
// Times are Unix nanoseconds (UTC), which keep a time.Time exactly; a
// uint64 seed is stored as the int64 of the same bits.
var migrations = []migration{
	{1, "training jobs and their epochs", `
CREATE TABLE jobs (
	-- The queue's order: the order of Add. AUTOINCREMENT: never reused,
	-- even after the newest job is pruned.
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	id            TEXT NOT NULL UNIQUE,
	network_id    TEXT NOT NULL,
	client        TEXT NOT NULL DEFAULT '',    -- for the bound on one client's pending jobs
	epochs        INTEGER NOT NULL,            -- the job's TrainParams
	mini_batch    INTEGER NOT NULL,
	learning_rate REAL NOT NULL,
	cost          TEXT NOT NULL,
	lambda        REAL NOT NULL,
	seed          INTEGER,                     -- NULL when unknown
	status        TEXT NOT NULL CHECK (status IN ('pending', 'training', 'completed', 'failed', 'cancelled')),
	epoch         INTEGER NOT NULL DEFAULT 0,  -- epochs finished
	accuracy      REAL,                        -- after the last finished epoch
	elapsed       REAL NOT NULL DEFAULT 0,     -- training seconds, evaluation excluded
	error         TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	started_at    INTEGER,
	finished_at   INTEGER,
	CHECK ((finished_at IS NULL) = (status IN ('pending', 'training')))
);
-- The queue: unfinished jobs, in order.
CREATE INDEX jobs_unfinished ON jobs (seq, network_id, status) WHERE finished_at IS NULL;
-- Retention: finished jobs, most recent last.
CREATE INDEX jobs_finished ON jobs (finished_at, seq) WHERE finished_at IS NOT NULL;
-- A network's jobs (EndNetwork, the bound on its lifetime epochs).
CREATE INDEX jobs_network ON jobs (network_id, seq);

-- One row per finished epoch of a job, in the order recorded (rowid).
CREATE TABLE job_epochs (
	job_seq  INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	epoch    INTEGER NOT NULL,                 -- 1-based, within the job
	correct  INTEGER NOT NULL,
	total    INTEGER NOT NULL,
	accuracy REAL NOT NULL,
	elapsed  REAL NOT NULL
);
CREATE INDEX job_epochs_job ON job_epochs (job_seq);
`},
	{2, "the validation accuracy and training cost of each epoch", `
ALTER TABLE job_epochs ADD COLUMN validation_accuracy REAL; -- NULL: not kept
ALTER TABLE job_epochs ADD COLUMN training_cost REAL;
`},
	{3, "early stopping and restoring the best epoch, options of a job", `
ALTER TABLE jobs ADD COLUMN stop_after_no_improvement INTEGER NOT NULL DEFAULT 0; -- 0: not asked for
ALTER TABLE jobs ADD COLUMN restore_best INTEGER NOT NULL DEFAULT 0;              -- 0 or 1
`},
	{4, "a layers network's job option expand", `
ALTER TABLE jobs ADD COLUMN expand INTEGER NOT NULL DEFAULT 0; -- 0 or 1: train on the shifted images too
`},
}

// migrate brings the schema up to date, each step in a transaction of its
// own with its record, so that a step that fails leaves no trace and is
// tried again by the next Open. Only one process has the file (Open's
// lock), so nothing else migrates meanwhile.
func migrate(ctx context.Context, db *sql.DB) error {
	if err := checkMigrations(migrations); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate: creating the migrations table: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SELECT version FROM migrations")
	if err != nil {
		return fmt.Errorf("migrate: reading the migrations table: %w", err)
	}
	done := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: reading the migrations table: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: reading the migrations table: %w", err)
	}
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: step %d (%s): %w", m.Version, m.Name, err)
		}
	}
	return nil
}

// checkMigrations checks that steps are numbered 1, 2, 3... in order.
func checkMigrations(ms []migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("migrate: step %d (%s) has version %d: versions must be 1, 2, 3... in order", i+1, m.Name, m.Version)
		}
		if m.SQL == "" {
			return fmt.Errorf("migrate: step %d has no SQL", m.Version)
		}
	}
	return nil
}

// inTx runs f in a transaction, committed if f returns nil, else rolled
// back.
func inTx(ctx context.Context, db *sql.DB, f func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

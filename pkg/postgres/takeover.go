package postgres

// The takeover sweep: replicas with workers give the jobs of a replica that
// is gone new River jobs. See Queue's doc.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// sweep looks for jobs to take over every sweepEvery until ctx ends. Its
// failures are logged once per outage.
func (q *Queue) sweep(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(q.sweepEvery)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := q.sweepOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			q.log.Warn("job queue: looking for jobs to take over", "err", err)
		case err == nil && failing:
			q.log.Info("job queue: looking for jobs to take over works again")
		}
		failing = err != nil
	}
}

// sweepBatch bounds the jobs looked at per sweep.
const sweepBatch = 1000

// sweepOnce takes over the unfinished jobs whose River job has been
// running for TakeoverAfter, or has ended, and whose network's training
// lock is free. Each of its calls to Postgres takes at most the timeout.
func (q *Queue) sweepOnce(ctx context.Context) error {
	type row struct {
		ID, Network string
		Ticket      int64
		Now         time.Time
	}
	var jobs []row
	err := q.call(ctx, func(ctx context.Context) error {
		rows, _ := q.pool.Query(ctx, `SELECT id::text, network_id::text, river_id, now() FROM nnserver_jobs
WHERE finished_at IS NULL ORDER BY seq LIMIT $1`, sweepBatch)
		var err error
		jobs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[row])
		return err
	})
	if err != nil || len(jobs) == 0 {
		return err
	}
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.Ticket
	}
	var res *river.JobListResult
	err = q.call(ctx, func(ctx context.Context) (err error) {
		res, err = q.client.JobList(ctx, river.NewJobListParams().IDs(ids...).First(len(ids)))
		return err
	})
	if err != nil {
		return err
	}
	tickets := make(map[int64]*rivertype.JobRow, len(res.Jobs))
	for _, t := range res.Jobs {
		tickets[t.ID] = t
	}
	horizon := jobs[0].Now.Add(-q.cfg.TakeoverAfter)
	for _, j := range jobs {
		t := tickets[j.Ticket]
		stale := t == nil || t.FinalizedAt != nil ||
			t.State == rivertype.JobStateRunning && t.AttemptedAt != nil && t.AttemptedAt.Before(horizon)
		if !stale {
			continue
		}
		q.mu.Lock()
		r := q.running[j.ID]
		q.mu.Unlock()
		if r != nil && r.ticket == j.Ticket {
			continue
		}
		if err := q.takeover(ctx, j.ID, j.Network, j.Ticket); err != nil {
			return fmt.Errorf("taking over job %s: %w", j.ID, err)
		}
	}
	return nil
}

// takeover gives job jobID a new River job in place of old, if it is still
// unfinished on old and its network's training lock is free: nobody runs
// it, nor can while the transaction holds the lock. The transaction, then
// the cancellation of old, each take at most the timeout.
func (q *Queue) takeover(ctx context.Context, jobID, networkID string, old int64) error {
	var ticket int64
	err := q.call(ctx, func(ctx context.Context) error { return q.takeoverTx(ctx, jobID, networkID, old, &ticket) })
	if err != nil || ticket == 0 {
		return err
	}
	q.log.Info("job queue: taking over a job whose worker is gone", "job_id", jobID, "network_id", networkID,
		"old_river_id", old, "river_id", ticket)
	// The old River job must never run it again: it is superseded anyway
	// (its runs check river_id); cancelling it lets River finalise it.
	err = q.call(ctx, func(ctx context.Context) error { _, err := q.client.JobCancel(ctx, old); return err })
	if err != nil && !errors.Is(err, river.ErrNotFound) {
		q.log.Warn("job queue: cancelling a superseded River job", "river_id", old, "err", err)
	}
	return nil
}

// takeoverTx is takeover's transaction: it sets *ticket to the new River
// job, if it makes one.
func (q *Queue) takeoverTx(ctx context.Context, jobID, networkID string, old int64, ticket *int64) error {
	return pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		st, err := readJobState(ctx, tx, jobID, true)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !st.heldBy(old) {
			return nil
		}
		if err != nil {
			return err
		}
		var free bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1, $2)", trainLockClass, lockObjID(networkID)).Scan(&free); err != nil || !free {
			return err
		}
		res, err := q.client.InsertTx(ctx, tx, trainArgs{JobID: jobID}, insertOpts())
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE nnserver_jobs SET river_id = $2 WHERE id = $1", jobID, res.Job.ID); err != nil {
			return err
		}
		*ticket = res.Job.ID
		return nil
	})
}

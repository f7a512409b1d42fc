package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
)

// jobColumns are what readJob reads of a row of jobs.
const jobColumns = `seq, id, network_id, client, epochs, mini_batch, learning_rate, cost, lambda, seed,
	stop_after_no_improvement, restore_best, expand, status, epoch, accuracy, elapsed, error, created_at, started_at, finished_at`

// readJob reads job id with its history, within tx, and returns its seq
// too: service.ErrUnknownJob if there is no such job, or it finished more
// than JobRetention ago (forgotten, though not yet pruned).
func (q *Queue) readJob(ctx context.Context, tx *sql.Tx, id string) (service.JobInfo, int64, error) {
	j, seq, err := scanJob(tx.QueryRowContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE id = ? AND (finished_at IS NULL OR finished_at >= ?)",
		id, q.now().Add(-q.lim.JobRetention).UnixNano()))
	if errors.Is(err, sql.ErrNoRows) {
		return service.JobInfo{}, 0, service.ErrUnknownJob
	}
	if err != nil {
		return service.JobInfo{}, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT epoch, correct, total, accuracy, elapsed, validation_accuracy, training_cost
FROM job_epochs WHERE job_seq = ? ORDER BY rowid`, seq)
	if err != nil {
		return service.JobInfo{}, 0, err
	}
	j.History, err = collect(rows, func(r *sql.Rows) (e service.EpochResult, err error) {
		var val, cost sql.NullFloat64
		err = r.Scan(&e.Epoch, &e.Correct, &e.Total, &e.Accuracy, &e.ElapsedTime, &val, &cost)
		if val.Valid {
			e.ValidationAccuracy = &val.Float64
		}
		if cost.Valid {
			e.TrainingCost = &cost.Float64
		}
		return e, err
	})
	if err != nil {
		return service.JobInfo{}, 0, err
	}
	if j.History == nil {
		j.History = []service.EpochResult{}
	}
	return j, seq, nil
}

// scanJob scans jobColumns, without the history, and returns the seq too.
func scanJob(row interface{ Scan(...any) error }) (service.JobInfo, int64, error) {
	var (
		j                 service.JobInfo
		seq               int64
		cost, status      string
		seed              sql.NullInt64
		acc               sql.NullFloat64
		created           int64
		started, finished sql.NullInt64
	)
	p := &j.Params
	err := row.Scan(&seq, &j.ID, &j.NetworkID, &j.Client, &p.Epochs, &p.MiniBatch, &p.LearningRate, &cost, &p.Lambda, &seed,
		&p.StopAfterNoImprovement, &p.RestoreBest, &p.Expand, &status, &j.Epoch, &acc, &j.ElapsedTime, &j.Error, &created, &started, &finished)
	if err != nil {
		return service.JobInfo{}, 0, err
	}
	p.Cost, j.Status = service.Cost(cost), service.JobStatus(status)
	if seed.Valid {
		s := uint64(seed.Int64)
		p.Seed = &s
	}
	if acc.Valid {
		a := acc.Float64
		j.Accuracy = &a
	}
	j.CreatedAt = fromNanos(created)
	if started.Valid {
		j.StartedAt = fromNanos(started.Int64)
	}
	if finished.Valid {
		j.FinishedAt = fromNanos(finished.Int64)
	}
	return j, seq, nil
}

// brief is what the scheduler and Active read of an unfinished job.
type brief struct {
	id, network string
	status      service.JobStatus
}

// scanBrief scans id, network_id, status.
func scanBrief(r *sql.Rows) (brief, error) {
	var b brief
	var status string
	err := r.Scan(&b.id, &b.network, &status)
	b.status = service.JobStatus(status)
	return b, err
}

// collect scans every row with scan, and closes rows.
func collect[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// fromNanos is the UTC time of Unix nanoseconds n.
func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

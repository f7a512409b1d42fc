package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mnist-go/nnserver/pkg/service"
)

// jobParams is a job's params column.
type jobParams struct {
	Epochs       int          `json:"epochs"`
	MiniBatch    int          `json:"mini_batch_size"`
	LearningRate float64      `json:"learning_rate"`
	Cost         service.Cost `json:"cost"`
	Lambda       float64      `json:"lambda"`
	Seed         *uint64      `json:"seed,omitempty"` // jsonb keeps all 64 bits (numeric)
	// Absent from the rows of older releases, and when not asked for.
	StopAfter   int  `json:"stop_after_no_improvement,omitempty"`
	RestoreBest bool `json:"restore_best,omitempty"`
	// Expand is a layers network's option (absent: false).
	Expand bool `json:"expand,omitempty"`
}

// epochJSON is an element of a job's history column.
type epochJSON struct {
	Epoch              int      `json:"epoch"`
	Correct            int      `json:"correct"`
	Total              int      `json:"total"`
	Accuracy           float64  `json:"accuracy"`
	ElapsedTime        float64  `json:"elapsed_time"`
	ValidationAccuracy *float64 `json:"validation_accuracy,omitempty"` // absent in rows of older releases
	TrainingCost       *float64 `json:"training_cost,omitempty"`
}

// jobColumns are what scanJob reads, from the table aliased j.
const jobColumns = `j.id::text, j.network_id::text, j.params, j.status, j.epoch, j.accuracy, j.elapsed, j.error,
	j.history, j.created_at, j.started_at, j.finished_at`

// scanJob scans pre, then jobColumns.
func scanJob(row pgx.Row, pre ...any) (service.JobInfo, error) {
	var (
		j                 service.JobInfo
		params, hist      []byte
		status            string
		started, finished *time.Time
		p                 jobParams
		history           []epochJSON
	)
	dest := append(pre, &j.ID, &j.NetworkID, &params, &status, &j.Epoch, &j.Accuracy, &j.ElapsedTime, &j.Error,
		&hist, &j.CreatedAt, &started, &finished)
	if err := row.Scan(dest...); err != nil {
		return service.JobInfo{}, err
	}
	if err := json.Unmarshal(params, &p); err != nil {
		return service.JobInfo{}, fmt.Errorf("job %s: params: %w", j.ID, err)
	}
	if err := json.Unmarshal(hist, &history); err != nil {
		return service.JobInfo{}, fmt.Errorf("job %s: history: %w", j.ID, err)
	}
	j.Params = service.TrainParams{Epochs: p.Epochs, MiniBatch: p.MiniBatch, LearningRate: p.LearningRate,
		Cost: p.Cost, Lambda: p.Lambda, Seed: p.Seed, StopAfterNoImprovement: p.StopAfter, RestoreBest: p.RestoreBest, Expand: p.Expand}
	j.Status = service.JobStatus(status)
	j.History = make([]service.EpochResult, len(history))
	for i, e := range history {
		j.History[i] = service.EpochResult{Epoch: e.Epoch, Correct: e.Correct, Total: e.Total,
			Accuracy: e.Accuracy, ElapsedTime: e.ElapsedTime, ValidationAccuracy: e.ValidationAccuracy, TrainingCost: e.TrainingCost}
	}
	j.CreatedAt = j.CreatedAt.UTC()
	if started != nil {
		j.StartedAt = started.UTC()
	}
	if finished != nil {
		j.FinishedAt = finished.UTC()
	}
	return j, nil
}

// jobState is what a job's row says of who may run it: its network and its
// place in the queue (seq), the River job that runs it now (river_id: a
// run's ticket), and whether it has finished.
type jobState struct {
	networkID string
	seq       int64
	ticket    int64
	finished  bool
}

// heldBy: is the job unfinished and still River job ticket's? If not, a run
// of ticket has nothing to do: the job ended, or was taken over and another
// River job runs it.
func (s jobState) heldBy(ticket int64) bool { return !s.finished && s.ticket == ticket }

// rowQuerier reads rows: the pool, a connection (a run's lock connection)
// or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// jobStateSQL reads a job's jobState.
const jobStateSQL = "SELECT network_id::text, seq, river_id, finished_at IS NOT NULL FROM nnserver_jobs WHERE id = $1"

// readJobState reads job id's jobState through db, within ctx; forUpdate
// also locks the row until db's transaction ends. pgx.ErrNoRows: there is
// no such job (never added, or finished and forgotten).
func readJobState(ctx context.Context, db rowQuerier, id string, forUpdate bool) (jobState, error) {
	query := jobStateSQL
	if forUpdate {
		query += " FOR UPDATE"
	}
	var s jobState
	err := db.QueryRow(ctx, query, id).Scan(&s.networkID, &s.seq, &s.ticket, &s.finished)
	return s, err
}

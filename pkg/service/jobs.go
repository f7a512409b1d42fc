package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// JobStatus is where a job is in its life.
type JobStatus string

// Job statuses. A job is pending, then training, then ends completed,
// failed or cancelled.
const (
	StatusPending   JobStatus = "pending"
	StatusTraining  JobStatus = "training"
	StatusCompleted JobStatus = "completed"
	StatusFailed    JobStatus = "failed"
	StatusCancelled JobStatus = "cancelled"
)

// Finished reports whether a job in this status has ended.
func (s JobStatus) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// BestEpoch is the job's epoch (1 for its first, as History numbers them)
// whose validation accuracy is the highest so far, the first of equals; 0
// while none of its epochs has one. It is read from the job's recorded
// epochs, whichever replica or process trained them.
func (j JobInfo) BestEpoch() int {
	best, bestAcc := 0, -1.0
	for _, r := range j.History {
		if r.ValidationAccuracy != nil && *r.ValidationAccuracy > bestAcc {
			best, bestAcc = r.Epoch, *r.ValidationAccuracy
		}
	}
	return best
}

// noImprovement reports whether the job's validation accuracy has not
// improved for its StopAfterNoImprovement epochs: early stopping stops it
// there. Like BestEpoch, it is read from the recorded epochs, so that a
// job resumed elsewhere stops where the uninterrupted one would have.
func (j JobInfo) noImprovement() bool {
	n := j.Params.StopAfterNoImprovement
	if n <= 0 || len(j.History) == 0 {
		return false
	}
	best := j.BestEpoch()
	return best > 0 && j.History[len(j.History)-1].Epoch-best >= n
}

// StoppedEarly reports whether the job stopped before its last epoch
// because its validation accuracy had stopped improving: it completed
// with fewer epochs than it asked for, which nothing else does (a cancel,
// a failure or a shutdown does not complete a job).
func (j JobInfo) StoppedEarly() bool {
	return j.Status == StatusCompleted && j.Params.StopAfterNoImprovement > 0 && j.Epoch < j.Params.Epochs
}

// Train queues a training job for a network and returns at once. Jobs of
// the same network run one after another, each continuing from the last.
//
// A LearningRate of 0 and a Cost of "" mean the network's defaults
// (TrainParams.ForArch).
func (s *Service) Train(ctx context.Context, networkID string, p TrainParams) (JobInfo, error) {
	if err := s.limits.ValidateTrain(p.WithDefaults()); err != nil {
		return JobInfo{}, err
	}
	if s.isDone() {
		return JobInfo{}, ErrShuttingDown
	}
	rec, err := s.catalog.Get(ctx, networkID)
	if err != nil {
		return JobInfo{}, stateError(err)
	}
	if err := s.authorize(ctx, rec); err != nil {
		return JobInfo{}, err
	}
	p, err = p.ForArch(rec.arch())
	if err != nil {
		return JobInfo{}, err
	}
	if err := s.limits.ValidateTrain(p); err != nil {
		return JobInfo{}, err
	}
	if c := s.budget.Capacity(); c > 0 {
		if need := jobBytes(rec.arch(), p.network(s.limits.JobScratchBytes, nil), p.Expand); need > c {
			return JobInfo{}, Errorf(Conflict, "training this network needs %d MB, more than the server's memory budget of %d MB (MEMORY_BUDGET_MB)",
				need>>20, c>>20)
		}
	}
	seed := drawSeed(p.Seed)
	p.Seed = &seed
	j := JobInfo{ID: uuid.NewString(), NetworkID: networkID, Client: ClientOf(ctx), Params: p, Status: StatusPending,
		CreatedAt: s.now().UTC()}
	err = s.queue.Add(ctx, j, Admission{MaxQueued: s.limits.MaxQueuedJobs, MaxQueuedPerClient: s.limits.MaxQueuedJobsPerClient,
		MaxNetworkEpochs: modelfile.MaxHistory, EpochsTrained: rec.EpochsTrained})
	switch {
	case errors.Is(err, ErrQueueIsFull):
		return JobInfo{}, ErrQueueFull
	case errors.Is(err, ErrClientQueueIsFull):
		return JobInfo{}, &Error{Code: Unavailable, RetryAfter: 10 * time.Second, Message: fmt.Sprintf(
			"you have %d training jobs waiting, the most one client may; try again when one has started", s.limits.MaxQueuedJobsPerClient)}
	case errors.Is(err, ErrLifetimeEpochs):
		return JobInfo{}, Errorf(Conflict, "a network trains at most %d epochs in its life, its jobs still to run included; this one has trained %d",
			modelfile.MaxHistory, rec.EpochsTrained)
	case err != nil:
		return JobInfo{}, stateError(err)
	}
	s.log.Debug("training queued", "job_id", j.ID, "network_id", networkID, "params", p.String())
	return j, nil
}

// clientKey is the context key of the client's address.
type clientKey struct{}

// WithClient returns ctx carrying the address of the client a request
// comes from: the service counts the pending jobs of each client.
func WithClient(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientKey{}, addr)
}

// ClientOf returns the client address WithClient put in ctx, or "".
func ClientOf(ctx context.Context) string {
	s, _ := ctx.Value(clientKey{}).(string)
	return s
}

// Job returns a job's state.
func (s *Service) Job(ctx context.Context, id string) (JobInfo, error) {
	j, err := s.queue.Get(ctx, id)
	if err != nil {
		return JobInfo{}, stateError(err)
	}
	return j, nil
}

// Cancel ends a job: a pending one leaves the queue at once, a running one
// stops at the next mini-batch boundary (the network keeps its last
// finished epoch). The job ends cancelled and one training_error goes out.
// Cancelling a finished job is a Conflict naming its status. With
// ownership on (Policy), it needs the owner token of the job's network or
// the admin token in ctx; a job whose network is gone has ended already.
func (s *Service) Cancel(ctx context.Context, id string) (JobInfo, error) {
	if s.policy.Ownership() {
		cur, err := s.queue.Get(ctx, id)
		if err != nil {
			return JobInfo{}, stateError(err)
		}
		rec, err := s.catalog.Get(ctx, cur.NetworkID)
		switch {
		case errors.Is(err, ErrUnknownNetwork): // deleted: its jobs ended with it
		case err != nil:
			return JobInfo{}, stateError(err)
		default:
			if err := s.authorize(ctx, rec); err != nil {
				return JobInfo{}, err
			}
		}
	}
	j, ended, err := s.queue.End(ctx, id, StatusCancelled, errCancelled)
	if err != nil {
		return JobInfo{}, stateError(err)
	}
	if !ended.Now {
		return j, Errorf(Conflict, "the job has already ended: it is %s", j.Status)
	}
	// The worker of a running job sends its training_error when it stops,
	// after any training_update it was sending: events of a job stay in
	// order. A pending job has no worker.
	if ended.WasPending {
		s.jobEnded(j)
		s.emitFailure(j)
	}
	s.log.Info("training cancelled", "job_id", j.ID, "network_id", j.NetworkID, "was_pending", ended.WasPending)
	return j, nil
}

// jobEnded tells the observer of a job's end.
func (s *Service) jobEnded(j JobInfo) {
	secs := 0.0
	if !j.StartedAt.IsZero() && !j.FinishedAt.IsZero() {
		secs = j.FinishedAt.Sub(j.StartedAt).Seconds()
	}
	s.obs.JobFinished(j.Status, secs)
}

// emitFailure sends a job's training_error, with the status and reason it
// ended with.
func (s *Service) emitFailure(j JobInfo) {
	status := j.Status
	if !status.Finished() {
		status = StatusFailed
	}
	s.log.Info("training ended", "job_id", j.ID, "network_id", j.NetworkID, "status", status, "reason", j.Error)
	s.events.TrainingError(Failure{JobID: j.ID, NetworkID: j.NetworkID, Status: status, Error: j.Error})
}

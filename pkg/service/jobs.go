package service

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/network"
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

// Job is one training request. Its mutable fields are guarded by the
// service's mutex.
type Job struct {
	ID        string
	NetworkID string
	Params    TrainParams

	status   JobStatus
	epoch    int
	accuracy *float64
	elapsed  float64 // training seconds so far, evaluation excluded
	err      string
}

// JobInfo is the answer to GET /api/training/{job_id}.
type JobInfo struct {
	JobID        string    `json:"job_id"`
	NetworkID    string    `json:"network_id"`
	Status       JobStatus `json:"status"`
	Progress     float64   `json:"progress"`
	Epochs       int       `json:"epochs"`
	Epoch        int       `json:"epoch"`
	TotalEpochs  int       `json:"total_epochs"`
	MiniBatch    int       `json:"mini_batch_size"`
	LearningRate float64   `json:"learning_rate"`
	ElapsedTime  float64   `json:"elapsed_time"`
	Accuracy     *float64  `json:"accuracy,omitempty"`
	Error        string    `json:"error,omitempty"`
}

func (j *Job) infoLocked() JobInfo {
	return JobInfo{
		JobID: j.ID, NetworkID: j.NetworkID, Status: j.status,
		Progress: progress(j.epoch, j.Params.Epochs), Epochs: j.Params.Epochs,
		Epoch: j.epoch, TotalEpochs: j.Params.Epochs,
		MiniBatch: j.Params.MiniBatch, LearningRate: j.Params.LearningRate,
		ElapsedTime: j.elapsed, Accuracy: j.accuracy, Error: j.err,
	}
}

func progress(epoch, total int) float64 { return float64(epoch) / float64(total) * 100 }

// TrainStarted is the answer to a train request.
type TrainStarted struct {
	JobID     string `json:"job_id"`
	NetworkID string `json:"network_id"`
	Status    string `json:"status"` // "training_started"
}

// Train queues a training job for a network and returns at once. Jobs of
// the same network run one after another, each continuing from the last.
func (s *Service) Train(networkID string, p TrainParams) (TrainStarted, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return TrainStarted{}, errShuttingDown
	}
	_, inMem := s.nets[networkID]
	_, onDisk := s.saved[networkID]
	if !inMem && !onDisk {
		return TrainStarted{}, errNetworkNotFound
	}
	if len(s.queue) >= s.limits.MaxQueuedJobs {
		return TrainStarted{}, &Error{Code: Unavailable, Message: "too many training jobs are waiting; try again later",
			Err: ErrQueueFull}
	}
	j := &Job{ID: uuid.NewString(), NetworkID: networkID, Params: p, status: StatusPending}
	s.jobs[j.ID] = j
	s.queue = append(s.queue, j)
	s.cond.Broadcast()
	s.log.Info("training queued", "job_id", j.ID, "network_id", networkID, "params", p.String())
	return TrainStarted{JobID: j.ID, NetworkID: networkID, Status: "training_started"}, nil
}

// ErrQueueFull is the cause of the error Train returns when MaxQueuedJobs
// jobs are waiting.
var ErrQueueFull = errors.New("job queue full")

// RetryAfter is how long clients are asked to wait when the queue is full.
const RetryAfter = 10 * time.Second

// Job returns a job's state.
func (s *Service) Job(id string) (JobInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return JobInfo{}, errJobNotFound
	}
	return j.infoLocked(), nil
}

// worker runs queued jobs until Close, taking the oldest job whose network
// is not already training.
func (s *Service) worker() {
	for {
		s.mu.Lock()
		j := s.nextLocked()
		if j == nil {
			s.mu.Unlock()
			return
		}
		j.status = StatusTraining
		s.busy[j.NetworkID] = true
		s.mu.Unlock()

		err := s.run(j)

		s.mu.Lock()
		delete(s.busy, j.NetworkID)
		if err != nil {
			s.finishLocked(j, err)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
		if err != nil {
			s.emitFailure(j, err)
		}
	}
}

// nextLocked waits for a runnable job and removes it from the queue; nil
// after Close.
func (s *Service) nextLocked() *Job {
	for {
		if s.done {
			return nil
		}
		for i, j := range s.queue {
			if !s.busy[j.NetworkID] {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				return j
			}
		}
		s.cond.Wait()
	}
}

// finishLocked records a job's end: failed with err, or completed.
func (s *Service) finishLocked(j *Job, err error) {
	if err != nil {
		j.status = StatusFailed
		j.err = ErrorMessage(err)
		return
	}
	j.status = StatusCompleted
}

func (s *Service) emitFailure(j *Job, err error) {
	log := s.log.With("job_id", j.ID, "network_id", j.NetworkID)
	if ErrorCode(err) == Internal || ErrorCode(err) == Storage {
		log.Error("training failed", "err", err)
	} else {
		log.Info("training failed", "err", err)
	}
	s.events.TrainingError(Failure{JobID: j.ID, NetworkID: j.NetworkID, Status: StatusFailed, Error: ErrorMessage(err)})
}

// run trains one job, publishing and saving a snapshot after every epoch.
func (s *Service) run(j *Job) error {
	ds, err := s.data()
	if err != nil {
		return &Error{Code: Internal, Message: "the MNIST data set is not available", Err: err}
	}
	e, err := s.lookup(j.NetworkID)
	if err != nil {
		return err
	}
	start := e.state.Load()
	log := s.log.With("job_id", j.ID, "network_id", j.NetworkID)
	log.Info("training started", "params", j.Params.String(), "from_epoch", start.epochs)
	began := time.Now()
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	var last *state
	_, err = network.SGD(e.ctx, start.net, ds.Training, ds.Test, j.Params.network(), rng, func(ep network.Epoch) error {
		acc := ep.Accuracy
		st := &state{net: ep.Network, trained: true, accuracy: &acc, epochs: start.epochs + ep.Epoch, updated: time.Now().UTC()}
		e.state.Store(st)
		last = st
		s.mu.Lock()
		j.epoch, j.accuracy = ep.Epoch, &acc
		j.elapsed += ep.Seconds
		s.mu.Unlock()
		s.events.TrainingUpdate(Update{
			JobID: j.ID, NetworkID: j.NetworkID, Epoch: ep.Epoch, TotalEpochs: ep.Epochs,
			Accuracy: acc, ElapsedTime: ep.Seconds, Progress: progress(ep.Epoch, ep.Epochs),
			Correct: ep.Correct, Total: ep.Total,
		})
		log.Debug("epoch done", "epoch", ep.Epoch, "accuracy", acc, "seconds", ep.Seconds)
		return s.save(e, st)
	})
	if err != nil {
		switch {
		case e.ctx.Err() != nil && s.ctx.Err() == nil:
			return errNetworkDeleted
		case s.ctx.Err() != nil:
			return errShuttingDown
		case errors.Is(err, network.ErrNotFinite):
			return &Error{Code: Invalid, Message: "training diverged (weights became NaN or infinite); the network keeps its last good state — try a smaller learning_rate", Err: err}
		}
		if _, ok := errors.AsType[*Error](err); ok {
			return err
		}
		return &Error{Code: Internal, Message: "training failed", Err: err}
	}
	// Every epoch ran and was saved; only a deletion meanwhile (not a
	// shutdown) undoes that.
	if e.ctx.Err() != nil && s.ctx.Err() == nil {
		return errNetworkDeleted
	}
	log.Info("training completed", "accuracy", *last.accuracy, "seconds", time.Since(began).Seconds())
	// Completed before the event goes out, so that a client asking on
	// receipt of it reads "completed".
	s.mu.Lock()
	s.finishLocked(j, nil)
	s.mu.Unlock()
	s.events.TrainingComplete(Complete{JobID: j.ID, NetworkID: j.NetworkID, Accuracy: *last.accuracy})
	return nil
}

package service

import (
	"context"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/store"
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

// Job is one training request. Its mutable fields are guarded by the
// service's mutex.
type Job struct {
	ID        string
	NetworkID string
	Params    TrainParams // Seed is always set: the one given or the one drawn

	status   JobStatus
	epoch    int
	accuracy *float64
	elapsed  float64 // training seconds so far, evaluation excluded
	err      string
	history  []epochRecord
	started  time.Time
	finished time.Time
	// cancel stops the job while it runs, with the reason as the cause.
	cancel context.CancelCauseFunc
}

// epochRecord is one finished epoch of a job, kept small: a job's history
// lives as long as the job.
type epochRecord struct {
	correct, total int32
	elapsed        float64
}

// EpochResult is one finished epoch of a job.
type EpochResult struct {
	Epoch       int // 1-based, within the job
	Correct     int
	Total       int
	Accuracy    float64
	ElapsedTime float64 // seconds of training, evaluation excluded
}

// JobInfo describes a job.
type JobInfo struct {
	ID          string
	NetworkID   string
	Status      JobStatus
	Params      TrainParams
	Epoch       int     // epochs finished
	Progress    float64 // 0–100
	ElapsedTime float64 // training seconds so far
	Accuracy    *float64
	Error       string // why it failed or was cancelled
	History     []EpochResult
}

func (j *Job) infoLocked() JobInfo {
	h := make([]EpochResult, len(j.history))
	for i, r := range j.history {
		h[i] = EpochResult{Epoch: i + 1, Correct: int(r.correct), Total: int(r.total),
			Accuracy: float64(r.correct) / float64(r.total), ElapsedTime: r.elapsed}
	}
	return JobInfo{
		ID: j.ID, NetworkID: j.NetworkID, Status: j.status, Params: j.Params,
		Epoch: j.epoch, Progress: progress(j.epoch, j.Params.Epochs), ElapsedTime: j.elapsed,
		Accuracy: j.accuracy, Error: j.err, History: h,
	}
}

func progress(epoch, total int) float64 { return float64(epoch) / float64(total) * 100 }

// jobTable holds every job the service remembers: pending ones in a FIFO
// queue, running ones by network, finished ones in the order they ended
// until the retention limits forget them. It is guarded by the service's
// mutex.
type jobTable struct {
	byID     map[string]*Job
	queue    []*Job          // pending, oldest first
	running  map[string]*Job // by network id
	finished []*Job          // oldest first
}

func newJobTable() jobTable {
	return jobTable{byID: map[string]*Job{}, running: map[string]*Job{}}
}

// active counts the jobs pending or training.
func (t *jobTable) active() int { return len(t.queue) + len(t.running) }

// uses reports whether a job is pending or running on the network.
func (t *jobTable) uses(networkID string) bool {
	if t.running[networkID] != nil {
		return true
	}
	return slices.ContainsFunc(t.queue, func(j *Job) bool { return j.NetworkID == networkID })
}

// current returns the job running on the network, or else the first one
// waiting for it, or "".
func (t *jobTable) current(networkID string) string {
	if j := t.running[networkID]; j != nil {
		return j.ID
	}
	for _, j := range t.queue {
		if j.NetworkID == networkID {
			return j.ID
		}
	}
	return ""
}

// next removes and returns the oldest pending job whose network is not
// training, or nil.
func (t *jobTable) next() *Job {
	for i, j := range t.queue {
		if t.running[j.NetworkID] == nil {
			t.queue = slices.Delete(t.queue, i, i+1)
			return j
		}
	}
	return nil
}

func (t *jobTable) takeQueue() []*Job {
	q := t.queue
	t.queue = nil
	return q
}

func (t *jobTable) dropQueued(networkID string) []*Job {
	var dropped []*Job
	t.queue = slices.DeleteFunc(t.queue, func(j *Job) bool {
		if j.NetworkID == networkID {
			dropped = append(dropped, j)
			return true
		}
		return false
	})
	return dropped
}

// finish records a job's end, unless it has ended already (a cancel and the
// job's own end can race: the first wins). It reports whether it did.
func (s *Service) finishLocked(j *Job, status JobStatus, cause error) bool {
	now := s.now()
	if !s.jobs.finish(j, status, cause, now, s.limits) {
		return false
	}
	secs := 0.0
	if !j.started.IsZero() {
		secs = now.Sub(j.started).Seconds()
	}
	s.obs.JobFinished(status, secs)
	return true
}

func (t *jobTable) finish(j *Job, status JobStatus, cause error, now time.Time, lim Limits) bool {
	if j.status.Finished() {
		return false
	}
	j.status = status
	if cause != nil {
		j.err = ErrorMessage(cause)
	}
	j.finished = now
	j.cancel = nil
	if t.running[j.NetworkID] == j {
		delete(t.running, j.NetworkID)
	}
	t.finished = append(t.finished, j)
	t.forget(now, lim)
	return true
}

// forget drops the finished jobs past the retention limits, oldest first.
func (t *jobTable) forget(now time.Time, lim Limits) {
	n := 0
	for n < len(t.finished) &&
		(len(t.finished)-n > lim.MaxFinishedJobs || now.Sub(t.finished[n].finished) > lim.JobRetention) {
		delete(t.byID, t.finished[n].ID)
		t.finished[n] = nil
		n++
	}
	if n > 0 {
		t.finished = t.finished[n:]
	}
}

// Train queues a training job for a network and returns at once. Jobs of
// the same network run one after another, each continuing from the last.
func (s *Service) Train(networkID string, p TrainParams) (JobInfo, error) {
	if err := s.limits.ValidateTrain(p); err != nil {
		return JobInfo{}, err
	}
	seed := drawSeed(p.Seed)
	p.Seed = &seed
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return JobInfo{}, errShuttingDown
	}
	epochs := 0
	if e, ok := s.nets[networkID]; ok {
		epochs = e.state.Load().epochs
	} else if m, ok := s.saved[networkID]; ok {
		epochs = m.EpochsTrained
	} else {
		return JobInfo{}, errNetworkNotFound
	}
	for _, q := range s.jobs.queue {
		if q.NetworkID == networkID {
			epochs += q.Params.Epochs
		}
	}
	if r := s.jobs.running[networkID]; r != nil {
		epochs += r.Params.Epochs - r.epoch
	}
	if epochs+p.Epochs > store.MaxHistory {
		return JobInfo{}, Errorf(Conflict, "a network trains at most %d epochs in its life; this one has %d trained or queued",
			store.MaxHistory, epochs)
	}
	if len(s.jobs.queue) >= s.limits.MaxQueuedJobs {
		return JobInfo{}, ErrQueueFull
	}
	j := &Job{ID: uuid.NewString(), NetworkID: networkID, Params: p, status: StatusPending}
	s.jobs.byID[j.ID] = j
	s.jobs.queue = append(s.jobs.queue, j)
	s.cond.Broadcast()
	s.log.Debug("training queued", "job_id", j.ID, "network_id", networkID, "params", p.String())
	return j.infoLocked(), nil
}

// ErrQueueFull is the error Train returns when MaxQueuedJobs jobs are
// waiting.
var ErrQueueFull = &Error{Code: Unavailable, Message: "too many training jobs are waiting; try again later",
	RetryAfter: 10 * time.Second}

// Job returns a job's state.
func (s *Service) Job(id string) (JobInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs.forget(s.now(), s.limits)
	j, ok := s.jobs.byID[id]
	if !ok {
		return JobInfo{}, errJobNotFound
	}
	return j.infoLocked(), nil
}

// Cancel ends a job: a pending one leaves the queue at once, a running one
// stops at the next mini-batch boundary (the network keeps its last
// finished epoch). The job ends cancelled and one training_error goes out.
// Cancelling a finished job is a Conflict naming its status.
func (s *Service) Cancel(id string) (JobInfo, error) {
	s.mu.Lock()
	s.jobs.forget(s.now(), s.limits)
	j, ok := s.jobs.byID[id]
	if !ok {
		s.mu.Unlock()
		return JobInfo{}, errJobNotFound
	}
	if j.status.Finished() {
		info := j.infoLocked()
		s.mu.Unlock()
		return info, Errorf(Conflict, "the job has already ended: it is %s", info.Status)
	}
	pending := j.status == StatusPending
	if pending {
		s.jobs.queue = slices.DeleteFunc(s.jobs.queue, func(q *Job) bool { return q == j })
		s.cond.Broadcast()
	} else if j.cancel != nil {
		j.cancel(errCancelled)
	}
	// The worker of a running job sends its training_error when it stops,
	// after any training_update it was sending: events of a job stay in
	// order.
	s.finishLocked(j, StatusCancelled, errCancelled)
	info := j.infoLocked()
	s.mu.Unlock()
	if pending {
		s.emitFailure(j, errCancelled)
	}
	s.log.Info("training cancelled", "job_id", j.ID, "network_id", j.NetworkID, "was", map[bool]string{true: "pending", false: "training"}[pending])
	return info, nil
}

// emitFailure sends a job's training_error, with the status it ended in.
func (s *Service) emitFailure(j *Job, cause error) {
	s.mu.Lock()
	status := j.status
	s.mu.Unlock()
	if !status.Finished() {
		status = StatusFailed
	}
	log := s.log.With("job_id", j.ID, "network_id", j.NetworkID)
	switch ErrorCode(cause) {
	case Internal, Storage:
		log.Error("training failed", "err", cause)
	default:
		log.Info("training ended", "status", status, "reason", ErrorMessage(cause))
	}
	s.events.TrainingError(Failure{JobID: j.ID, NetworkID: j.NetworkID, Status: status, Error: ErrorMessage(cause)})
}

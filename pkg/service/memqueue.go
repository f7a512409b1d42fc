package service

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// memQueue is the Queue of a single process: pending jobs in a FIFO, run
// by a fixed pool of workers, at most one job per network at a time;
// finished jobs kept until the retention limits forget them.
type memQueue struct {
	workers int
	lim     Limits
	now     func() time.Time

	mu       sync.Mutex
	cond     *sync.Cond // signalled when the queue or the running jobs change, or on Stop
	byID     map[string]*memJob
	queue    []*memJob          // pending, oldest first
	running  map[string]*memJob // by network
	finished []*memJob          // oldest first
	// order is every job added, oldest first (by seq), for List; those
	// forgotten since (dead of them) are dropped lazily.
	order   []*memJob
	dead    int
	lastSeq int64
	stopped bool
	wg      sync.WaitGroup
}

type memJob struct {
	seq    int64   // its place in the order of Add, from 1
	info   JobInfo // without History, kept compact in hist
	hist   []epochRecord
	cancel context.CancelCauseFunc // while it runs
}

// epochRecord is one finished epoch, kept small: a job's history lives as
// long as the job (MaxFinishedJobs × MaxEpochs × 32 bytes at most).
type epochRecord struct {
	correct, total int32
	elapsed        float64
	valAcc, cost   float64 // NaN: unknown
}

// optional is x, or nil for NaN (unknown).
func optional(x float64) *float64 {
	if math.IsNaN(x) {
		return nil
	}
	return &x
}

// orNaN is *p, or NaN for nil.
func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// snapshot returns a copy of the job with its history.
func (j *memJob) snapshot() JobInfo {
	info := j.info
	info.History = make([]EpochResult, len(j.hist))
	for i, r := range j.hist {
		info.History[i] = EpochResult{Epoch: i + 1, Correct: int(r.correct), Total: int(r.total),
			Accuracy: float64(r.correct) / float64(r.total), ElapsedTime: r.elapsed,
			ValidationAccuracy: optional(r.valAcc), TrainingCost: optional(r.cost)}
	}
	return info
}

// NewMemoryQueue returns an in-memory Queue with the given number of
// workers; finished jobs are kept within lim's MaxFinishedJobs and
// JobRetention, measured with now (nil: time.Now).
func NewMemoryQueue(workers int, lim Limits, now func() time.Time) Queue {
	if now == nil {
		now = time.Now
	}
	q := &memQueue{workers: max(1, workers), lim: lim, now: now, byID: map[string]*memJob{}, running: map[string]*memJob{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *memQueue) Add(_ context.Context, j JobInfo, a Admission) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return ErrShuttingDown
	}
	if len(q.queue) >= a.MaxQueued {
		return ErrQueueIsFull
	}
	if a.MaxQueuedPerClient > 0 && j.Client != "" {
		n := 0
		for _, p := range q.queue {
			if p.info.Client == j.Client {
				n++
			}
		}
		if n >= a.MaxQueuedPerClient {
			return ErrClientQueueIsFull
		}
	}
	if a.MaxNetworkEpochs > 0 {
		if a.EpochsTrained < 0 || a.EpochsTrained > a.MaxNetworkEpochs || j.Params.Epochs > a.MaxNetworkEpochs {
			return ErrLifetimeEpochs
		}
		left := a.MaxNetworkEpochs - a.EpochsTrained - j.Params.Epochs
		for _, p := range q.queue {
			if p.info.NetworkID == j.NetworkID {
				left -= p.info.Params.Epochs
			}
		}
		if r := q.running[j.NetworkID]; r != nil && !r.info.Status.Finished() {
			left -= r.info.Params.Epochs - r.info.Epoch
		}
		if left < 0 {
			return ErrLifetimeEpochs
		}
	}
	q.lastSeq++
	mj := &memJob{seq: q.lastSeq, info: j}
	mj.info.History = nil
	mj.info.Status = StatusPending
	q.byID[j.ID] = mj
	q.queue = append(q.queue, mj)
	q.order = append(q.order, mj)
	q.cond.Broadcast()
	return nil
}

func (q *memQueue) Get(_ context.Context, id string) (JobInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.forgetLocked()
	j, ok := q.byID[id]
	if !ok {
		return JobInfo{}, ErrUnknownJob
	}
	return j.snapshot(), nil
}

func (q *memQueue) End(_ context.Context, id string, status JobStatus, cause error) (JobInfo, Ended, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.forgetLocked()
	j, ok := q.byID[id]
	if !ok {
		return JobInfo{}, Ended{}, ErrUnknownJob
	}
	e := q.endLocked(j, status, cause)
	return j.snapshot(), e, nil
}

// endLocked ends j unless it has ended.
func (q *memQueue) endLocked(j *memJob, status JobStatus, cause error) Ended {
	if j.info.Status.Finished() {
		return Ended{}
	}
	e := Ended{Now: true, WasPending: j.info.Status == StatusPending}
	if e.WasPending {
		q.queue = slices.DeleteFunc(q.queue, func(p *memJob) bool { return p == j })
	}
	if j.cancel != nil {
		j.cancel(cause)
	}
	j.info.Status = status
	if cause != nil {
		j.info.Error = ErrorMessage(cause)
	}
	j.info.FinishedAt = q.now()
	q.finished = append(q.finished, j)
	q.forgetLocked()
	q.cond.Broadcast()
	return e
}

func (q *memQueue) EndNetwork(_ context.Context, networkID string, status JobStatus, cause error) ([]JobInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var pending []JobInfo
	for _, j := range slices.Clone(q.queue) {
		if j.info.NetworkID == networkID {
			q.endLocked(j, status, cause)
			pending = append(pending, j.snapshot())
		}
	}
	if j := q.running[networkID]; j != nil {
		q.endLocked(j, status, cause)
	}
	return pending, nil
}

func (q *memQueue) Active(context.Context) (ActiveJobs, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	a := ActiveJobs{Queued: len(q.queue), Current: map[string]string{}}
	for net, j := range q.running {
		if !j.info.Status.Finished() {
			a.Running++
			a.Current[net] = j.info.ID
		}
	}
	for _, j := range q.queue {
		if _, ok := a.Current[j.info.NetworkID]; !ok {
			a.Current[j.info.NetworkID] = j.info.ID
		}
	}
	return a, nil
}

func (q *memQueue) Epoch(_ context.Context, id string, r EpochResult) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	j, ok := q.byID[id]
	if !ok {
		return ErrUnknownJob
	}
	if j.info.Status != StatusTraining {
		return ErrJobEnded
	}
	acc := r.Accuracy
	j.info.Epoch, j.info.Accuracy = r.Epoch, &acc
	j.info.ElapsedTime += r.ElapsedTime
	j.hist = append(j.hist, epochRecord{correct: int32(r.Correct), total: int32(r.Total), elapsed: r.ElapsedTime,
		valAcc: orNaN(r.ValidationAccuracy), cost: orNaN(r.TrainingCost)})
	return nil
}

func (q *memQueue) Start(work Work) error {
	for range q.workers {
		q.wg.Go(func() { q.worker(work) })
	}
	return nil
}

// worker runs jobs until Stop, taking the oldest pending job whose network
// is not training.
func (q *memQueue) worker(work Work) {
	for {
		q.mu.Lock()
		j := q.nextLocked()
		if j == nil {
			q.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancelCause(context.Background())
		j.cancel = cancel
		j.info.Status = StatusTraining
		if j.info.StartedAt.IsZero() {
			j.info.StartedAt = q.now()
		}
		q.running[j.info.NetworkID] = j
		info := j.snapshot()
		q.mu.Unlock()

		work(ctx, info)

		q.mu.Lock()
		// Work ends its job; if it did not (a bug), do not leave it
		// training for ever.
		q.endLocked(j, StatusFailed, Errorf(Internal, "training stopped unexpectedly"))
		j.cancel = nil
		cancel(nil)
		if q.running[j.info.NetworkID] == j {
			delete(q.running, j.info.NetworkID)
		}
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// nextLocked waits for a runnable job and removes it from the queue; nil
// after Stop.
func (q *memQueue) nextLocked() *memJob {
	for {
		if q.stopped {
			return nil
		}
		for i, j := range q.queue {
			if q.running[j.info.NetworkID] == nil {
				q.queue = slices.Delete(q.queue, i, i+1)
				return j
			}
		}
		q.cond.Wait()
	}
}

// Stop fails the pending jobs (the server is shutting down: nothing would
// run them) and stops the running ones.
func (q *memQueue) Stop(ctx context.Context) ([]JobInfo, error) {
	q.mu.Lock()
	q.stopped = true
	var pending []JobInfo
	for _, j := range slices.Clone(q.queue) {
		q.endLocked(j, StatusFailed, ErrShuttingDown)
		pending = append(pending, j.snapshot())
	}
	for _, j := range q.running {
		if j.cancel != nil {
			j.cancel(ErrShuttingDown)
		}
	}
	q.cond.Broadcast()
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return pending, nil
	case <-ctx.Done():
		return pending, ctx.Err()
	}
}

// forgetLocked drops the finished jobs past the retention limits, oldest
// first. Pending and running jobs are never dropped.
func (q *memQueue) forgetLocked() {
	now := q.now()
	n := 0
	for n < len(q.finished) &&
		(len(q.finished)-n > q.lim.MaxFinishedJobs || now.Sub(q.finished[n].info.FinishedAt) > q.lim.JobRetention) {
		delete(q.byID, q.finished[n].info.ID)
		q.finished[n] = nil
		n++
	}
	if n > 0 {
		q.finished = q.finished[n:]
		// Compacted once half is dead: List walks order, and a forget
		// costs O(1) amortised.
		if q.dead += n; q.dead > len(q.order)/2 {
			q.order = slices.DeleteFunc(q.order, func(j *memJob) bool { return q.byID[j.info.ID] != j })
			q.dead = 0
		}
	}
}

// List walks the jobs from the newest (or from f.Before) to the oldest,
// until it has a page and knows whether another follows.
func (q *memQueue) List(_ context.Context, f JobFilter) (JobPage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.forgetLocked()
	hi := len(q.order)
	if f.Before > 0 {
		hi, _ = slices.BinarySearchFunc(q.order, f.Before, func(j *memJob, seq int64) int { return cmp.Compare(j.seq, seq) })
	}
	var (
		p     JobPage
		last  int64 // the seq of the last job of the page
		limit = max(f.Limit, 1)
	)
	for i := hi - 1; i >= 0; i-- {
		j := q.order[i]
		if q.byID[j.info.ID] != j || !f.Selects(j.info) {
			continue
		}
		if len(p.Jobs) == limit {
			p.Next = last
			break
		}
		p.Jobs = append(p.Jobs, j.info)
		last = j.seq
	}
	return p, nil
}

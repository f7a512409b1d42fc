package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mnist-go/nnserver/pkg/service"
)

// Queue is the service.Queue of single mode, kept in the DB: the rows of
// jobs are the whole state of the jobs, and memory holds only what lives
// and dies with the process (the Work running on each worker, and when a
// job handed over may run again).
//
// # Transactions
//
// Every change is one transaction, and the Queue makes them one at a time
// (its mutex), so that a check and the change it allows (Add's admission
// and insert, a worker's choice of a job and its start) are atomic, and no
// write waits on SQLite's busy handler. Reads (Get, Active) run beside
// them, each on a consistent snapshot.
//
// # Restart
//
// A job whose row says training but whose Work does not run in this
// process is an orphan: the process that ran it stopped (Stop hands its
// running jobs over and leaves them training) or died. Workers take
// orphans as they take pending jobs, oldest first, and give Work the job
// as recorded: its Epoch and History say what is done, and the service
// trains the rest from the network's last saved state. A network with a
// job training (running here or an orphan) starts no other job. Pending
// jobs stay pending, in their order.
//
// # Ends
//
// End and EndNetwork record the end, then cancel the job's Work if it runs
// here; its network starts its next job only once that Work has returned.
// An orphan that is ended has no Work to tell its end, so it is reported
// like a pending job (Ended.WasPending; EndNetwork returns it).
//
// A Work that returns while its job is still training, without Stop, was
// handed over (service.ErrHandOver: the service could not record an epoch,
// say the disk was full): the job is resumed after a pause, 1 s at first,
// doubling up to a minute. A Work that returns otherwise without ending its
// job fails it, as the in-memory queue does.
type Queue struct {
	db      *DB
	log     *slog.Logger
	workers int
	lim     service.Limits
	now     func() time.Time

	// retryFirst and retryMax shape the pauses before a job handed over
	// runs again, and before a worker tries again after the database
	// failed it. Tests shorten them.
	retryFirst, retryMax time.Duration

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a job may have become runnable, or on Stop
	started  bool
	stopped  bool
	running  map[string]*run  // jobs whose Work runs here, by id
	held     map[string]*hold // jobs handed over, by id: not to run again before their time
	failures int              // the workers' consecutive failures to read the database
	wakeAt   time.Time        // when timer fires; zero: no timer
	timer    *time.Timer
	wg       sync.WaitGroup
}

// run is a job whose Work runs here.
type run struct {
	network string
	cancel  context.CancelCauseFunc
}

// hold is a job handed over: it runs again from until.
type hold struct {
	until time.Time
	times int // hand-overs in a row
}

var _ service.Queue = (*Queue)(nil)

// Queue returns the DB's Queue, with workers workers (at least one);
// finished jobs are kept within lim's MaxFinishedJobs and JobRetention,
// measured with now (nil: time.Now), as are the jobs' times. A DB has one
// Queue: a second call panics. Its workers start with Start.
func (db *DB) Queue(workers int, lim service.Limits, now func() time.Time) *Queue {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.queued {
		panic(errQueueTwice)
	}
	db.queued = true
	if now == nil {
		now = time.Now
	}
	q := &Queue{db: db, log: db.log, workers: max(1, workers), lim: lim, now: now,
		retryFirst: time.Second, retryMax: time.Minute,
		running: map[string]*run{}, held: map[string]*hold{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// write runs f in a transaction; q.mu must be held.
func (q *Queue) write(ctx context.Context, f func(tx *sql.Tx) error) error {
	return inTx(ctx, q.db.sql, f)
}

// Add records a pending job, unless a admits it not; the checks and the
// insert are one transaction. After Stop the job is still recorded: it
// runs when the next process starts.
func (q *Queue) Add(ctx context.Context, j service.JobInfo, a service.Admission) error {
	created := j.CreatedAt
	if created.IsZero() {
		created = q.now()
	}
	p := j.Params
	var seed sql.NullInt64
	if p.Seed != nil {
		seed = sql.NullInt64{Int64: int64(*p.Seed), Valid: true}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.write(ctx, func(tx *sql.Tx) error {
		if err := admit(ctx, tx, j, a); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, network_id, client, epochs, mini_batch, learning_rate, cost, lambda, seed,
	stop_after_no_improvement, restore_best, expand, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
			j.ID, j.NetworkID, j.Client, p.Epochs, p.MiniBatch, p.LearningRate, string(p.Cost), p.Lambda, seed,
			p.StopAfterNoImprovement, p.RestoreBest, p.Expand, created.UnixNano())
		return err
	})
	if errors.Is(err, service.ErrQueueIsFull) || errors.Is(err, service.ErrClientQueueIsFull) || errors.Is(err, service.ErrLifetimeEpochs) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sqlite: adding job %s: %w", j.ID, err)
	}
	q.cond.Broadcast()
	return nil
}

// admit checks a's bounds for j, within Add's transaction.
func admit(ctx context.Context, tx *sql.Tx, j service.JobInfo, a service.Admission) error {
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM jobs WHERE finished_at IS NULL AND status = 'pending'").Scan(&n); err != nil {
		return err
	}
	if n >= a.MaxQueued {
		return service.ErrQueueIsFull
	}
	if a.MaxQueuedPerClient > 0 && j.Client != "" {
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM jobs WHERE finished_at IS NULL AND status = 'pending' AND client = ?",
			j.Client).Scan(&n); err != nil {
			return err
		}
		if n >= a.MaxQueuedPerClient {
			return service.ErrClientQueueIsFull
		}
	}
	if a.MaxNetworkEpochs > 0 {
		if a.EpochsTrained < 0 || a.EpochsTrained > a.MaxNetworkEpochs || j.Params.Epochs > a.MaxNetworkEpochs {
			return service.ErrLifetimeEpochs
		}
		// What the network's unfinished jobs have still to run.
		var left int64
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(sum(max(epochs - epoch, 0)), 0) FROM jobs WHERE network_id = ? AND finished_at IS NULL",
			j.NetworkID).Scan(&left); err != nil {
			return err
		}
		if int64(a.EpochsTrained)+left+int64(j.Params.Epochs) > int64(a.MaxNetworkEpochs) {
			return service.ErrLifetimeEpochs
		}
	}
	return nil
}

// Get returns a job not yet forgotten.
func (q *Queue) Get(ctx context.Context, id string) (service.JobInfo, error) {
	tx, err := q.db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return service.JobInfo{}, fmt.Errorf("sqlite: reading job %s: %w", id, err)
	}
	defer tx.Rollback()
	j, _, err := q.readJob(ctx, tx, id)
	if errors.Is(err, service.ErrUnknownJob) {
		return service.JobInfo{}, err
	}
	if err != nil {
		return service.JobInfo{}, fmt.Errorf("sqlite: reading job %s: %w", id, err)
	}
	return j, nil
}

// End ends a job unless it has ended, then stops its Work if it runs here.
func (q *Queue) End(ctx context.Context, id string, status service.JobStatus, cause error) (service.JobInfo, service.Ended, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var (
		j service.JobInfo
		e service.Ended
	)
	err := q.write(ctx, func(tx *sql.Tx) error {
		var seq int64
		var err error
		j, seq, err = q.readJob(ctx, tx, id)
		if err != nil || j.Status.Finished() {
			return err
		}
		e, err = q.endJob(ctx, tx, &j, seq, status, cause)
		if err != nil {
			return err
		}
		return q.prune(ctx, tx)
	})
	if errors.Is(err, service.ErrUnknownJob) {
		return service.JobInfo{}, service.Ended{}, err
	}
	if err != nil {
		return service.JobInfo{}, service.Ended{}, fmt.Errorf("sqlite: ending job %s: %w", id, err)
	}
	if e.Now {
		q.endedLocked(j.ID, cause)
	}
	return j, e, nil
}

// endJob ends j (unfinished, its row seq) in tx, and updates j to match.
func (q *Queue) endJob(ctx context.Context, tx *sql.Tx, j *service.JobInfo, seq int64, status service.JobStatus, cause error) (service.Ended, error) {
	now := q.now()
	msg := j.Error
	if cause != nil {
		msg = service.ErrorMessage(cause)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE jobs SET status = ?, error = ?, finished_at = ? WHERE seq = ?",
		string(status), msg, now.UnixNano(), seq); err != nil {
		return service.Ended{}, err
	}
	// An orphan has no Work to tell its end, like a pending job.
	e := service.Ended{Now: true, WasPending: j.Status == service.StatusPending || q.running[j.ID] == nil}
	j.Status, j.Error, j.FinishedAt = status, msg, fromNanos(now.UnixNano())
	return e, nil
}

// endedLocked acts on the end of job id, once recorded: its Work, if it
// runs here, is cancelled with cause; a hold on it is dropped.
func (q *Queue) endedLocked(id string, cause error) {
	if r := q.running[id]; r != nil {
		r.cancel(cause)
	}
	delete(q.held, id)
	q.cond.Broadcast()
}

// EndNetwork ends every unfinished job of a network in one transaction,
// and returns those no Work of which will tell the end (pending ones, and
// orphans), oldest first.
func (q *Queue) EndNetwork(ctx context.Context, networkID string, status service.JobStatus, cause error) ([]service.JobInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ended, pending []service.JobInfo
	err := q.write(ctx, func(tx *sql.Tx) error {
		ended, pending = nil, nil
		rows, err := tx.QueryContext(ctx, "SELECT id FROM jobs WHERE network_id = ? AND finished_at IS NULL ORDER BY seq", networkID)
		if err != nil {
			return err
		}
		ids, err := collect(rows, func(r *sql.Rows) (id string, err error) { return id, r.Scan(&id) })
		if err != nil {
			return err
		}
		for _, id := range ids {
			j, seq, err := q.readJob(ctx, tx, id)
			if err != nil {
				return err
			}
			e, err := q.endJob(ctx, tx, &j, seq, status, cause)
			if err != nil {
				return err
			}
			ended = append(ended, j)
			if e.WasPending {
				pending = append(pending, j)
			}
		}
		return q.prune(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: ending the jobs of network %s: %w", networkID, err)
	}
	for _, j := range ended {
		q.endedLocked(j.ID, cause)
	}
	return pending, nil
}

// Active counts the unfinished jobs. Orphans count as running: they are
// their networks' current jobs, and run as soon as a worker is free.
func (q *Queue) Active(ctx context.Context) (service.ActiveJobs, error) {
	rows, err := q.db.sql.QueryContext(ctx, "SELECT id, network_id, status FROM jobs WHERE finished_at IS NULL ORDER BY seq")
	if err != nil {
		return service.ActiveJobs{}, fmt.Errorf("sqlite: counting jobs: %w", err)
	}
	jobs, err := collect(rows, scanBrief)
	if err != nil {
		return service.ActiveJobs{}, fmt.Errorf("sqlite: counting jobs: %w", err)
	}
	a := service.ActiveJobs{Current: map[string]string{}}
	for _, j := range jobs {
		if j.status == service.StatusTraining {
			a.Running++
			a.Current[j.network] = j.id
		}
	}
	for _, j := range jobs {
		if j.status == service.StatusPending {
			a.Queued++
			if _, ok := a.Current[j.network]; !ok {
				a.Current[j.network] = j.id
			}
		}
	}
	return a, nil
}

// List reads a page of the jobs f selects, newest first, in one query
// (so on one snapshot); f.Before is a seq. It reads one job more than the
// page holds, to tell whether another page follows.
func (q *Queue) List(ctx context.Context, f service.JobFilter) (service.JobPage, error) {
	where := []string{"(finished_at IS NULL OR finished_at >= ?)"}
	args := []any{q.now().Add(-q.lim.JobRetention).UnixNano()}
	if f.Before > 0 {
		where, args = append(where, "seq < ?"), append(args, f.Before)
	}
	if f.NetworkID != "" {
		where, args = append(where, "network_id = ?"), append(args, f.NetworkID)
	}
	if len(f.Statuses) > 0 {
		where = append(where, "status IN (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, string(st))
		}
	}
	limit := max(f.Limit, 1)
	args = append(args, limit+1)
	rows, err := q.db.sql.QueryContext(ctx, "SELECT "+jobColumns+" FROM jobs WHERE "+strings.Join(where, " AND ")+
		" ORDER BY seq DESC LIMIT ?", args...)
	if err != nil {
		return service.JobPage{}, fmt.Errorf("sqlite: listing jobs: %w", err)
	}
	type listed struct {
		j   service.JobInfo
		seq int64
	}
	all, err := collect(rows, func(r *sql.Rows) (l listed, err error) {
		l.j, l.seq, err = scanJob(r)
		return l, err
	})
	if err != nil {
		return service.JobPage{}, fmt.Errorf("sqlite: listing jobs: %w", err)
	}
	var p service.JobPage
	for i, l := range all {
		if i == limit {
			p.Next = all[i-1].seq
			break
		}
		p.Jobs = append(p.Jobs, l.j)
	}
	return p, nil
}

// Epoch records a finished epoch of a training job: its row and the
// epoch's, in one transaction.
func (q *Queue) Epoch(ctx context.Context, id string, r service.EpochResult) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.write(ctx, func(tx *sql.Tx) error {
		var seq int64
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET epoch = ?, accuracy = ?, elapsed = elapsed + ?
WHERE id = ? AND status = 'training' RETURNING seq`, r.Epoch, r.Accuracy, r.ElapsedTime, id).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			err = tx.QueryRowContext(ctx, "SELECT seq FROM jobs WHERE id = ?", id).Scan(&seq)
			if errors.Is(err, sql.ErrNoRows) {
				return service.ErrUnknownJob
			}
			if err == nil {
				return service.ErrJobEnded
			}
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO job_epochs (job_seq, epoch, correct, total, accuracy, elapsed,
	validation_accuracy, training_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			seq, r.Epoch, r.Correct, r.Total, r.Accuracy, r.ElapsedTime, r.ValidationAccuracy, r.TrainingCost)
		return err
	})
	if errors.Is(err, service.ErrUnknownJob) || errors.Is(err, service.ErrJobEnded) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sqlite: recording an epoch of job %s: %w", id, err)
	}
	return nil
}

// Start forgets the finished jobs past the retention limits (which may be
// lower than the last process's), then starts the workers, which resume
// the orphans and run the pending jobs.
func (q *Queue) Start(work service.Work) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.stopped {
		return errors.New("sqlite: queue: started twice, or after Stop")
	}
	if err := q.write(context.Background(), func(tx *sql.Tx) error { return q.prune(context.Background(), tx) }); err != nil {
		return fmt.Errorf("sqlite: queue: forgetting old jobs: %w", err)
	}
	q.started = true
	for range q.workers {
		q.wg.Go(func() { q.worker(work) })
	}
	return nil
}

// Stop hands the running jobs over to the next process: their Work's
// context is cancelled with service.ErrHandOver, and each leaves its job
// training, to be resumed. Pending jobs stay pending. It ends no job, and
// waits for the workers until ctx ends.
func (q *Queue) Stop(ctx context.Context) ([]service.JobInfo, error) {
	q.mu.Lock()
	q.stopped = true
	for _, r := range q.running {
		r.cancel(service.ErrHandOver)
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.cond.Broadcast()
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("sqlite: queue: stopping: %w", ctx.Err())
	}
}

// worker runs jobs until Stop.
func (q *Queue) worker(work service.Work) {
	for {
		q.mu.Lock()
		j, ctx := q.nextLocked()
		q.mu.Unlock()
		if ctx == nil {
			return
		}
		err := work(ctx, j)
		q.mu.Lock()
		q.finishedLocked(j, err)
		q.mu.Unlock()
	}
}

// nextLocked waits for a job to run, marks it training and running here,
// and returns it with its Work's context; nil after Stop.
func (q *Queue) nextLocked() (service.JobInfo, context.Context) {
	for !q.stopped {
		j, wait, err := q.pickLocked()
		switch {
		case err != nil:
			// The database failed us (a full disk, an I/O error): try
			// again after a pause, as for a job handed over.
			q.failures++
			d := q.backoff(q.failures)
			q.log.Error("job queue: could not pick a job to run; trying again", "err", err, "in", d)
			q.wakeLocked(time.Now().Add(d))
		case j.ID != "":
			q.failures = 0
			ctx, cancel := context.WithCancelCause(context.Background())
			q.running[j.ID] = &run{network: j.NetworkID, cancel: cancel}
			return j, ctx
		default:
			q.failures = 0
			if !wait.IsZero() {
				q.wakeLocked(wait)
			}
		}
		q.cond.Wait()
	}
	return service.JobInfo{}, nil
}

// pickLocked chooses the oldest job that may run: an orphan not held, or a
// pending job whose network has no job training; it marks a pending one
// training. It returns no job and, if a held orphan is all there is, when
// the first hold ends.
func (q *Queue) pickLocked() (j service.JobInfo, wait time.Time, err error) {
	ctx := context.Background()
	err = q.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT id, network_id, status FROM jobs WHERE finished_at IS NULL ORDER BY seq")
		if err != nil {
			return err
		}
		jobs, err := collect(rows, scanBrief)
		if err != nil {
			return err
		}
		busy := map[string]bool{}
		for _, r := range q.running {
			busy[r.network] = true
		}
		for _, b := range jobs {
			if b.status == service.StatusTraining {
				busy[b.network] = true
			}
		}
		now := time.Now()
		for _, b := range jobs {
			switch {
			case b.status == service.StatusTraining && q.running[b.id] == nil:
				if h := q.held[b.id]; h != nil && now.Before(h.until) {
					if wait.IsZero() || h.until.Before(wait) {
						wait = h.until
					}
					continue
				}
			case b.status == service.StatusPending && !busy[b.network]:
				if _, err := tx.ExecContext(ctx, "UPDATE jobs SET status = 'training', started_at = coalesce(started_at, ?) WHERE id = ?",
					q.now().UnixNano(), b.id); err != nil {
					return err
				}
			default:
				continue
			}
			j, _, err = q.readJob(ctx, tx, b.id)
			return err
		}
		return nil
	})
	if err != nil {
		return service.JobInfo{}, time.Time{}, err
	}
	return j, wait, nil
}

// finishedLocked acts on the return of job j's Work (which returned err):
// the job's network may start its next job. Work ends its job, but when
// it hands it over (Stop, or service.ErrHandOver); a job handed over
// without Stop is held for a while, one left training otherwise is failed
// (as the in-memory queue does), or held if even that cannot be recorded.
func (q *Queue) finishedLocked(j service.JobInfo, err error) {
	if r := q.running[j.ID]; r != nil {
		r.cancel(nil)
		delete(q.running, j.ID)
	}
	defer q.cond.Broadcast()
	if q.stopped {
		return // handed over to the next process, or ended
	}
	ctx := context.Background()
	ended := false
	werr := q.write(ctx, func(tx *sql.Tx) error {
		cur, seq, rerr := q.readJob(ctx, tx, j.ID)
		if errors.Is(rerr, service.ErrUnknownJob) || rerr == nil && cur.Status.Finished() {
			ended = true
			return nil
		}
		if rerr != nil || errors.Is(err, service.ErrHandOver) {
			return rerr
		}
		q.log.Error("job queue: a job's Work returned without ending it; failing it", "job_id", j.ID, "err", err)
		if _, eerr := q.endJob(ctx, tx, &cur, seq, service.StatusFailed, service.Errorf(service.Internal, "training stopped unexpectedly")); eerr != nil {
			return eerr
		}
		ended = true
		return q.prune(ctx, tx)
	})
	if werr != nil {
		q.log.Error("job queue: could not read or end a job whose Work returned; it runs again later", "job_id", j.ID, "err", werr)
	}
	if ended {
		delete(q.held, j.ID)
		return
	}
	h := q.held[j.ID]
	if h == nil {
		h = &hold{}
		q.held[j.ID] = h
	}
	h.times++
	h.until = time.Now().Add(q.backoff(h.times))
	q.log.Warn("job queue: a job was handed over; it resumes later", "job_id", j.ID, "in", time.Until(h.until).Round(time.Millisecond))
}

// backoff is the pause after n failures in a row: retryFirst, doubling up
// to retryMax.
func (q *Queue) backoff(n int) time.Duration {
	d := q.retryFirst
	for i := 1; i < n && d < q.retryMax; i++ {
		d *= 2
	}
	return min(d, q.retryMax)
}

// wakeLocked makes sure the workers are woken at t.
func (q *Queue) wakeLocked(t time.Time) {
	if !q.wakeAt.IsZero() && !t.Before(q.wakeAt) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.wakeAt = t
	q.timer = time.AfterFunc(time.Until(t), func() {
		q.mu.Lock()
		q.wakeAt = time.Time{}
		q.cond.Broadcast()
		q.mu.Unlock()
	})
}

// prune deletes the finished jobs past the retention limits, with their
// epochs: those finished more than JobRetention ago, then the oldest
// beyond MaxFinishedJobs. Every job ends in a transaction that prunes, so
// the finished jobs never exceed MaxFinishedJobs between transactions;
// Get hides those past JobRetention until the next prune.
func (q *Queue) prune(ctx context.Context, tx *sql.Tx) error {
	before := q.now().Add(-q.lim.JobRetention).UnixNano()
	if _, err := tx.ExecContext(ctx, "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", before); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL").Scan(&n); err != nil {
		return err
	}
	if over := n - max(q.lim.MaxFinishedJobs, 0); over > 0 {
		_, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE seq IN (
	SELECT seq FROM jobs WHERE finished_at IS NOT NULL ORDER BY finished_at, seq LIMIT ?)`, over)
		return err
	}
	return nil
}

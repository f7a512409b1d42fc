package postgres

// The job runner: a River job's run of a training job (runTicket: claim,
// run, settle, release), the watch on a running job's row, and the wake of
// the next job of a network. See Queue's doc for the design.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mnist-go/nnserver/pkg/service"
)

// trainArgs are a River job's arguments: the job it runs.
type trainArgs struct {
	JobID string `json:"job_id"`
}

func (trainArgs) Kind() string { return "nnserver_train" }

// trainWorker is River's worker of training jobs: each run of a River job
// is a runTicket.
type trainWorker struct {
	river.WorkerDefaults[trainArgs]
	q *Queue
}

func (w *trainWorker) Work(ctx context.Context, job *river.Job[trainArgs]) error {
	var meta struct {
		Snoozes int `json:"snoozes"` // River counts them there
	}
	json.Unmarshal(job.Metadata, &meta)
	return w.q.runTicket(ctx, job.ID, job.Args.JobID, meta.Snoozes)
}

// olderSQL: is an older job of network $1 than seq $2 unfinished?
const olderSQL = `SELECT EXISTS (SELECT 1 FROM nnserver_jobs o
	WHERE o.network_id = $1 AND o.seq < $2 AND o.finished_at IS NULL)`

// waitSnooze is how long a job waits for an older one of its network, after
// it snoozed snoozes times.
func (q *Queue) waitSnooze(snoozes int) time.Duration {
	return min(q.busySnooze<<min(max(snoozes, 0), 3), q.maxWait)
}

// wakeNext makes the River job of network's oldest unfinished job
// available now, rather than at the end of its snooze. Failing that, it
// runs when its snooze ends. Each of its two calls takes at most the
// timeout, even if ctx is cancelled: the job before has ended.
func (q *Queue) wakeNext(ctx context.Context, networkID string) {
	ctx = context.WithoutCancel(ctx)
	var next int64
	err := q.call(ctx, func(ctx context.Context) error {
		return q.pool.QueryRow(ctx, "SELECT river_id FROM nnserver_jobs WHERE network_id = $1 AND finished_at IS NULL ORDER BY seq LIMIT 1",
			networkID).Scan(&next)
	})
	if err == nil {
		err = q.call(ctx, func(ctx context.Context) error {
			_, err := q.client.JobRetry(ctx, next)
			return err
		})
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		q.log.Debug("job queue: could not wake the next job of a network", "network_id", networkID, "err", err)
	}
}

// runTicket is a run of River job ticket, for job jobID, which River has
// snoozed snoozes times: see Queue's doc. It goes in three steps: claim
// (the training lock, a check that the ticket is current, the job marked
// training), run (the Work, watched), and settle (what the run's end means
// for the job and its River job); release then lets the job go. What it
// returns tells River what to do with the River job: nil to finalise it,
// river.JobSnooze to run it again later, an error to retry it.
func (q *Queue) runTicket(rctx context.Context, ticket int64, jobID string, snoozes int) error {
	if q.isStopping() {
		return river.JobSnooze(q.busySnooze)
	}
	// River's context ends when River cancels the job or stops (see the
	// Work's context in run); what this run does on its own behalf must run
	// to its end all the same, each call to Postgres within the timeout.
	bg := context.WithoutCancel(rctx)
	c, err := q.claim(bg, ticket, jobID, snoozes)
	if c == nil {
		return err // nothing to run now: see claim
	}
	defer q.release(bg, c)
	werr := q.run(rctx, bg, c)
	return q.settle(bg, c, werr)
}

// claimed is a job that a run has claimed, from claim to release.
type claimed struct {
	ticket int64           // the River job running it
	job    service.JobInfo // as it was marked training: what the Work is given
	conn   *pgx.Conn       // out of the pool, holding the network's training lock
	local  *localRun       // its entry in q.running, once run made one
	wake   bool            // it ended: release wakes the next job of its network
}

// markTrainingSQL marks job $1 training on River job $2 at $3 (its first
// start only), unless it ended, was taken over, or an older job of its
// network is unfinished; it returns jobColumns.
const markTrainingSQL = `UPDATE nnserver_jobs j SET status = 'training', started_at = coalesce(j.started_at, $3)
WHERE j.id = $1 AND j.river_id = $2 AND j.finished_at IS NULL AND NOT EXISTS (
	SELECT 1 FROM nnserver_jobs o WHERE o.network_id = j.network_id AND o.seq < j.seq AND o.finished_at IS NULL)
RETURNING ` + jobColumns

// claim is a run's first step: if job jobID is still River job ticket's,
// it takes the job's network's training lock (takeTrainingLock) and marks
// the job training. It returns nil and what River is to do when there is
// nothing to run now: nil when the job ended or was taken over, a snooze
// when it must wait (for an older job of its network, or for the lock),
// an error when Postgres failed.
func (q *Queue) claim(bg context.Context, ticket int64, jobID string, snoozes int) (*claimed, error) {
	st, err := q.jobState(bg, jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil // ended and forgotten
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %s: %w", jobID, err)
	}
	if !st.heldBy(ticket) {
		return nil, nil // ended, or taken over: another River job runs it
	}
	conn, err := q.takeTrainingLock(bg, jobID, st, snoozes)
	if conn == nil {
		return nil, err
	}
	claimedOK := false
	defer func() {
		if !claimedOK {
			unlockAndClose(conn, trainLockClass, lockObjID(st.networkID), q.timeout)
		}
	}()
	if err := q.call(bg, func(ctx context.Context) error { _, err := conn.Exec(ctx, keepaliveSQL); return err }); err != nil {
		return nil, fmt.Errorf("job %s: %w", jobID, err)
	}

	// Training, unless it ended, was taken over, or an older job came
	// meanwhile (it cannot: Adds commit in seq order; checked anyway).
	var info service.JobInfo
	err = q.call(bg, func(ctx context.Context) (err error) {
		info, err = scanJob(conn.QueryRow(ctx, markTrainingSQL, jobID, ticket, roundTime(q.now())))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		// Read again, the lock still held. A job gone meanwhile (finished,
		// then forgotten) snoozes: the next run finds it gone.
		now, err := q.jobState(bg, jobID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("reading job %s: %w", jobID, err)
		}
		if err == nil && !now.heldBy(ticket) {
			return nil, nil
		}
		return nil, river.JobSnooze(q.waitSnooze(snoozes))
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: marking it training: %w", jobID, err)
	}
	claimedOK = true
	return &claimed{ticket: ticket, job: info, conn: conn}, nil
}

// takeTrainingLock is claim's wait in line: unless an older job of st's
// network is unfinished, it takes the network's training lock, on a
// connection that leaves the pool only with the lock, and returns that
// connection. Else it returns nil and River's snooze (waitSnooze for an
// older job, busySnooze for a lock held elsewhere), or an error.
func (q *Queue) takeTrainingLock(bg context.Context, jobID string, st jobState, snoozes int) (*pgx.Conn, error) {
	// The order, then the network's training lock, on one connection; it
	// leaves the pool only with the lock.
	var pc *pgxpool.Conn
	if err := q.call(bg, func(ctx context.Context) (err error) { pc, err = q.pool.Acquire(ctx); return err }); err != nil {
		return nil, fmt.Errorf("job %s: %w", jobID, err)
	}
	var older bool
	if err := q.call(bg, func(ctx context.Context) error {
		return pc.QueryRow(ctx, olderSQL, st.networkID, st.seq).Scan(&older)
	}); err != nil {
		pc.Release()
		return nil, fmt.Errorf("job %s: %w", jobID, err)
	}
	if older {
		pc.Release()
		return nil, river.JobSnooze(q.waitSnooze(snoozes))
	}
	var locked bool
	if err := q.call(bg, func(ctx context.Context) error {
		return pc.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", trainLockClass, lockObjID(st.networkID)).Scan(&locked)
	}); err != nil {
		closeConn(pc.Hijack(), q.timeout) // it may hold the lock: never back to the pool
		return nil, fmt.Errorf("job %s: taking the training lock: %w", jobID, err)
	}
	if !locked {
		pc.Release()
		return nil, river.JobSnooze(q.busySnooze)
	}
	return pc.Hijack(), nil
}

// run is a run's second step: it calls the Work on the claimed job, with a
// context that ends when the job must stop, while watch reads the job's
// row on the lock connection, and returns what the Work returned. The job
// is in q.running (for End, Epoch, Stop and the sweep) until release. When
// the queue is stopping, it hands the job over without calling the Work.
func (q *Queue) run(rctx, bg context.Context, c *claimed) error {
	// The Work's context: not River's, whose end has two meanings (told
	// apart below), nor a request's; it ends when the job must stop, with
	// the reason as its cause.
	wctx, wcancel := context.WithCancelCause(context.Background())
	defer wcancel(nil)
	q.mu.Lock()
	if q.stopping {
		q.mu.Unlock()
		return service.ErrHandOver // it stays training, and resumes elsewhere
	}
	c.local = &localRun{ticket: c.ticket, cancel: wcancel}
	q.running[c.job.ID] = c.local
	work := q.work
	q.mu.Unlock()
	// River cancels the job when it was ended elsewhere (End's JobCancel),
	// or when it stops (after Stop has handed the job over).
	defer context.AfterFunc(rctx, func() {
		if errors.Is(context.Cause(rctx), rivertype.ErrJobCancelledRemotely) && !q.isStopping() {
			wcancel(service.ErrJobEnded)
		} else {
			wcancel(service.ErrHandOver)
		}
	})()
	watchDone, watchStopped := make(chan struct{}), make(chan struct{})
	go q.watch(bg, c.conn, c.job.ID, c.ticket, wcancel, watchDone, watchStopped)
	defer func() { close(watchDone); <-watchStopped }()
	return work(wctx, c.job)
}

// settle is a run's last step: it reads what became of the job once its
// Work returned werr, and returns what River is to do with the River job.
// A hand-over snoozes it: the job stays training, with its finished
// epochs, and the next run resumes from them. A job that ended (then
// release wakes the next job of its network) or was taken over finalises
// it. A job still this run's after an error of its Work's retries it.
func (q *Queue) settle(bg context.Context, c *claimed, werr error) error {
	if errors.Is(werr, service.ErrHandOver) {
		return river.JobSnooze(q.busySnooze)
	}
	// Work ends its job; it returns an error when it could not (Postgres
	// was unreachable): River then retries, and the next run resumes from
	// the job's last recorded epoch.
	st, err := q.jobState(bg, c.job.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return errors.Join(werr, fmt.Errorf("reading job %s: %w", c.job.ID, err))
	}
	if !st.heldBy(c.ticket) {
		c.wake = st.finished
		return nil
	}
	if werr != nil {
		return werr
	}
	// Work returned without ending its job (a bug): do not leave it
	// training for ever.
	q.log.Error("job queue: a job's Work returned without ending it", "job_id", c.job.ID)
	_, _, err = q.End(bg, c.job.ID, service.StatusFailed, service.Errorf(service.Internal, "training stopped unexpectedly"))
	c.wake = err == nil
	return err
}

// release lets a claimed job go, once settled: it leaves q.running, its
// training lock is freed (its connection closed), and then, if it ended,
// the next job of its network is woken, the lock being free for it.
func (q *Queue) release(bg context.Context, c *claimed) {
	if c.local != nil {
		q.mu.Lock()
		if q.running[c.job.ID] == c.local {
			delete(q.running, c.job.ID)
		}
		q.mu.Unlock()
	}
	unlockAndClose(c.conn, trainLockClass, lockObjID(c.job.NetworkID), q.timeout)
	if c.wake {
		q.wakeNext(bg, c.job.NetworkID)
	}
}

// jobState reads job jobID's jobState from the pool, within the timeout.
func (q *Queue) jobState(ctx context.Context, jobID string) (st jobState, err error) {
	err = q.call(ctx, func(ctx context.Context) error {
		st, err = readJobState(ctx, q.pool, jobID, false)
		return err
	})
	return st, err
}

// watch reads a running job's row on its lock connection every pingEvery,
// until done: it cancels the Work when the job ended elsewhere (in case
// River's signal was lost), and hands it over when the connection fails
// (the lock went with it, or the server stopped answering within
// pingTimeout) or the job was taken over. ctx is never cancelled: the
// watch ends with done.
func (q *Queue) watch(ctx context.Context, conn *pgx.Conn, jobID string, ticket int64, cancel context.CancelCauseFunc, done <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(q.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		pctx, c := context.WithTimeout(ctx, q.pingTimeout)
		st, err := readJobState(pctx, conn, jobID, false)
		c()
		switch {
		case errors.Is(err, pgx.ErrNoRows) || err == nil && st.finished:
			cancel(service.ErrJobEnded)
			return
		case err != nil:
			q.log.Warn("job queue: lost the connection holding a job's training lock; handing the job over",
				"job_id", jobID, "err", err)
			cancel(service.ErrHandOver)
			return
		case st.ticket != ticket:
			q.log.Warn("job queue: the job was taken over by another replica; stopping here", "job_id", jobID)
			cancel(service.ErrHandOver)
			return
		}
	}
}

package postgres

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
// snoozed snoozes times: see Queue's doc.
func (q *Queue) runTicket(rctx context.Context, ticket int64, jobID string, snoozes int) error {
	if q.isStopping() {
		return river.JobSnooze(q.busySnooze)
	}
	// River's context ends when River cancels the job or stops (see the
	// Work's context below); what this run does on its own behalf must run
	// to its end all the same, each call to Postgres within the timeout.
	bg := context.WithoutCancel(rctx)

	st, err := q.jobState(bg, jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // ended and forgotten
	}
	if err != nil {
		return fmt.Errorf("reading job %s: %w", jobID, err)
	}
	if !st.heldBy(ticket) {
		return nil // ended, or taken over: another River job runs it
	}
	networkID := st.networkID

	// The order, then the network's training lock, on one connection; it
	// leaves the pool only with the lock.
	key := lockObjID(networkID)
	var pc *pgxpool.Conn
	if err := q.call(bg, func(ctx context.Context) (err error) { pc, err = q.pool.Acquire(ctx); return err }); err != nil {
		return fmt.Errorf("job %s: %w", jobID, err)
	}
	var older bool
	if err := q.call(bg, func(ctx context.Context) error {
		return pc.QueryRow(ctx, olderSQL, networkID, st.seq).Scan(&older)
	}); err != nil {
		pc.Release()
		return fmt.Errorf("job %s: %w", jobID, err)
	}
	if older {
		pc.Release()
		return river.JobSnooze(q.waitSnooze(snoozes))
	}
	var locked bool
	if err := q.call(bg, func(ctx context.Context) error {
		return pc.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", trainLockClass, key).Scan(&locked)
	}); err != nil {
		closeConn(pc.Hijack(), q.timeout) // it may hold the lock: never back to the pool
		return fmt.Errorf("job %s: taking the training lock: %w", jobID, err)
	}
	if !locked {
		pc.Release()
		return river.JobSnooze(q.busySnooze)
	}
	conn := pc.Hijack()
	wake := false // the job ended: wake the next one, once the lock is free
	defer func() {
		if wake {
			q.wakeNext(bg, networkID)
		}
	}()
	defer unlockAndClose(conn, trainLockClass, key, q.timeout)
	if err := q.call(bg, func(ctx context.Context) error { _, err := conn.Exec(ctx, keepaliveSQL); return err }); err != nil {
		return fmt.Errorf("job %s: %w", jobID, err)
	}

	// Training, unless it ended, was taken over, or an older job came
	// meanwhile (it cannot: Adds commit in seq order; checked anyway).
	var info service.JobInfo
	err = q.call(bg, func(ctx context.Context) (err error) {
		info, err = scanJob(conn.QueryRow(ctx, `UPDATE nnserver_jobs j SET status = 'training', started_at = coalesce(j.started_at, $3)
WHERE j.id = $1 AND j.river_id = $2 AND j.finished_at IS NULL AND NOT EXISTS (
	SELECT 1 FROM nnserver_jobs o WHERE o.network_id = j.network_id AND o.seq < j.seq AND o.finished_at IS NULL)
RETURNING `+jobColumns, jobID, ticket, roundTime(q.now())))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		// (A job gone meanwhile was finished, then forgotten: the next run
		// finds it gone.)
		now, err := q.jobState(bg, jobID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("reading job %s: %w", jobID, err)
		}
		if err == nil && !now.heldBy(ticket) {
			return nil
		}
		return river.JobSnooze(q.waitSnooze(snoozes))
	}
	if err != nil {
		return fmt.Errorf("job %s: marking it training: %w", jobID, err)
	}

	// The Work's context: not River's, whose end has two meanings (told
	// apart below), nor a request's; it ends when the job must stop, with
	// the reason as its cause.
	wctx, wcancel := context.WithCancelCause(context.Background())
	defer wcancel(nil)
	q.mu.Lock()
	if q.stopping {
		q.mu.Unlock()
		return river.JobSnooze(q.busySnooze) // it stays training, and resumes elsewhere
	}
	run := &localRun{ticket: ticket, cancel: wcancel}
	q.running[jobID] = run
	work := q.work
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		if q.running[jobID] == run {
			delete(q.running, jobID)
		}
		q.mu.Unlock()
	}()
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
	go q.watch(bg, conn, jobID, ticket, wcancel, watchDone, watchStopped)
	werr := func() error {
		defer func() { close(watchDone); <-watchStopped }()
		return work(wctx, info)
	}()

	if errors.Is(werr, service.ErrHandOver) {
		return river.JobSnooze(q.busySnooze)
	}
	// Work ends its job; it returns an error when it could not (Postgres
	// was unreachable): River then retries, and the next run resumes from
	// the job's last recorded epoch.
	st, err = q.jobState(bg, jobID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return errors.Join(werr, fmt.Errorf("reading job %s: %w", jobID, err))
	}
	if !st.heldBy(ticket) {
		wake = st.finished
		return nil
	}
	if werr != nil {
		return werr
	}
	// Work returned without ending its job (a bug): do not leave it
	// training for ever.
	q.log.Error("job queue: a job's Work returned without ending it", "job_id", jobID)
	_, _, err = q.End(bg, jobID, service.StatusFailed, service.Errorf(service.Internal, "training stopped unexpectedly"))
	wake = err == nil
	return err
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

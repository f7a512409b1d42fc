package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/mnist-go/nnserver/pkg/service"
)

// DefaultTakeoverAfter is QueueConfig.TakeoverAfter's default, and
// TAKEOVER_AFTER's (cmd/server takes it from here): with it a job whose
// replica died resumes within about 10–15 s. It can be short because a job
// is only taken over once its network's training lock is free, which a
// live replica never lets go: waiting longer would only delay the
// resumption.
const DefaultTakeoverAfter = 10 * time.Second

// QueueConfig configures a Queue.
type QueueConfig struct {
	// Workers is how many jobs this replica trains at once. 0: none (an API
	// replica): the Queue only records and schedules jobs, and Start runs
	// nothing.
	Workers int
	// Limits gives MaxFinishedJobs and JobRetention, which bound the
	// finished jobs kept (the same for every replica, like the in-memory
	// queue's).
	Limits service.Limits
	// TakeoverAfter is how long a job's River job must have been running
	// before another replica may take the job over, which it does only if
	// the job's network's training lock is free: the replica running it is
	// gone (Postgres frees its locks at once when its process dies, since
	// its connections close; after about 25 s of TCP keepalive when its
	// machine or network vanished). Replicas with workers look every
	// TakeoverAfter/2, at most every 5 s. So a job that had run for
	// TakeoverAfter resumes elsewhere within one look plus a fetch of its
	// lock being freed; one younger within TakeoverAfter plus that. A job
	// whose replica is alive is never taken over, however long it runs.
	// 0: DefaultTakeoverAfter.
	TakeoverAfter time.Duration
	// Logger logs takeovers and failures; River's own lines go to it at
	// Warn and above. nil: slog.Default().
	Logger *slog.Logger
	// Now measures the jobs' times and the retention. nil: time.Now.
	Now func() time.Time
	// Timeout bounds each call to Postgres (see Deadlines in timeout.go),
	// of the methods and of the workers and the sweep alike; 0:
	// DefaultTimeout.
	Timeout time.Duration
}

// Queue is the service.Queue of scaled mode. Jobs are rows of
// nnserver_jobs, shared by every replica; River schedules them (a River job
// per training job, in the "training" queue) and runs them on the replicas
// with workers.
//
// # One job per network, in order
//
// River knows nothing of networks, so each run of a job first checks that
// no older job of its network is unfinished, then takes its network's
// training lock: a session advisory lock (trainLockClass, lockObjID) held,
// for the whole run, by a connection of its own. Either failing, the River
// job snoozes (a snooze is not an attempt) and is tried again: for a second
// when the lock is busy; when an older job is unfinished, for 1, 2, 4, then
// 5 seconds, since the run that ends a job makes the next one of its
// network available at once (River's JobRetry). Adds are serialised, so
// the queue's order (seq) is the order of commit.
//
// # Ends, hand-overs and takeovers
//
// End records the end in the row first, then stops the job: through the
// local Work's context when it runs on this replica, else through River
// (Client.JobCancel, which cancels a pending River job and signals the
// replica running one). A running Work also reads its row every few
// seconds, on its lock connection, so that it stops even if River's signal
// is lost, and hands over (service.ErrHandOver) if that connection fails:
// its lock is then gone (Postgres restarted, or the network failed), and
// the job may go on elsewhere. A Work that hands over leaves the job
// training, with its finished epochs; its River job snoozes, and the next
// run resumes from the row's epoch.
//
// A replica that dies leaves its River job "running" for ever (River
// rescues stuck jobs only when they have a timeout, and training has
// none): every replica with workers therefore looks, every
// TakeoverAfter/2, for unfinished jobs whose River job has been running
// for TakeoverAfter (or has ended) while their network's training lock is
// free, and gives each a new River job (river_id) in a transaction that
// holds that lock. A run whose River job is no longer its row's river_id
// does nothing, and a run's Epoch checks it too: a replica that lost its
// job to a takeover stops at its next epoch, handing over.
//
// Its times are kept to the microsecond, as Postgres keeps them.
type Queue struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	cfg     QueueConfig
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration // of each call to Postgres

	// Tests shorten these.
	pingEvery   time.Duration // a running job reads its row this often
	pingTimeout time.Duration // and hands over if that takes longer
	sweepEvery  time.Duration // takeovers are looked for this often
	busySnooze  time.Duration // a job whose network is busy waits this long
	maxWait     time.Duration // a job waiting for an older one snoozes at most this long
	pruneEvery  time.Duration // Add deletes forgotten jobs at most this often

	mu          sync.Mutex
	started     bool
	stopping    bool
	work        service.Work
	running     map[string]*localRun // jobs running here, by id
	lastPrune   time.Time
	sweepCancel context.CancelFunc
	sweepDone   chan struct{}
	riverCancel context.CancelFunc // ends the context River was started with
}

// localRun is a job running on this replica.
type localRun struct {
	ticket int64 // its River job
	cancel context.CancelCauseFunc
}

// trainQueue is the River queue of training jobs.
const trainQueue = "training"

// maxAttempts bounds a River job's failed runs (a run fails when it cannot
// record its job's end: Postgres is down). Snoozes are not attempts.
const maxAttempts = 1000

// queueAddLockKey serialises Queue.Add: "nnsrvjob".
const queueAddLockKey int64 = 0x6e6e7372766a6f62

// retryPolicy retries a failed run after 1, 2, 4, 8, then every 10
// seconds: failures are outages, and the job should resume soon after.
type retryPolicy struct{}

func (retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := min(time.Second<<min(len(job.Errors), 4), 10*time.Second)
	return time.Now().Add(d)
}

// NewQueue returns the Queue kept in pool's database (migrated with
// Migrate). Workers run once Start is called.
func NewQueue(ctx context.Context, pool *pgxpool.Pool, cfg QueueConfig) (*Queue, error) {
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("postgres: queue: %d workers", cfg.Workers)
	}
	if cfg.TakeoverAfter <= 0 {
		cfg.TakeoverAfter = DefaultTakeoverAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Timeout = orDefault(cfg.Timeout)
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := pool.Exec(cctx, "SELECT 1 FROM nnserver_jobs LIMIT 0"); err != nil {
		return nil, fmt.Errorf("postgres: queue: the jobs table (was the database migrated?): %w", err)
	}
	q := &Queue{
		pool: pool, cfg: cfg, log: cfg.Logger, now: cfg.Now, timeout: cfg.Timeout,
		pingEvery: 2 * time.Second, pingTimeout: cfg.Timeout,
		sweepEvery: min(max(cfg.TakeoverAfter/2, 100*time.Millisecond), 5*time.Second),
		busySnooze: time.Second, maxWait: 5 * time.Second, pruneEvery: time.Minute,
		running: map[string]*localRun{},
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &trainWorker{q: q})
	rc := &river.Config{
		// No timeout: training takes as long as it takes. River's rescuer
		// therefore leaves running jobs alone; takeovers are ours.
		JobTimeout:  -1,
		Logger:      slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn}).With("component", "river"),
		MaxAttempts: maxAttempts,
		RetryPolicy: retryPolicy{},
		Workers:     workers,
	}
	if cfg.Workers > 0 {
		rc.Queues = map[string]river.QueueConfig{trainQueue: {MaxWorkers: cfg.Workers}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("postgres: queue: River: %w", err)
	}
	q.client = client
	return q, nil
}

var _ service.Queue = (*Queue)(nil)

// visible is the condition, on the table aliased j, for a job not yet
// forgotten: unfinished, or finished no earlier than $2 and followed by
// fewer than $3 finished jobs (ordered by end, then by seq).
const visible = `(j.finished_at IS NULL OR (j.finished_at >= $2 AND (
	SELECT count(*) FROM (SELECT FROM nnserver_jobs f
		WHERE f.finished_at IS NOT NULL AND (f.finished_at, f.seq) > (j.finished_at, j.seq) LIMIT $3) newer
	) < $3))`

// retentionArgs are $2 and $3 of visible.
func (q *Queue) retentionArgs() (time.Time, int) {
	return q.now().Add(-q.cfg.Limits.JobRetention), max(q.cfg.Limits.MaxFinishedJobs, 0)
}

// Add records a pending job and its River job in one transaction, unless
// maxQueued jobs are pending in the whole deployment: Adds take turns on an
// advisory transaction lock, which also makes seq values commit in order.
func (q *Queue) Add(ctx context.Context, j service.JobInfo, a service.Admission) error {
	p := j.Params
	params, err := json.Marshal(jobParams{Epochs: p.Epochs, MiniBatch: p.MiniBatch, LearningRate: p.LearningRate,
		Cost: p.Cost, Lambda: p.Lambda, Seed: p.Seed, StopAfter: p.StopAfterNoImprovement, RestoreBest: p.RestoreBest, Expand: p.Expand})
	if err != nil {
		return fmt.Errorf("postgres: adding job %s: %w", j.ID, err)
	}
	created := j.CreatedAt
	if created.IsZero() {
		created = q.now()
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err = pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", queueAddLockKey); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM nnserver_jobs WHERE finished_at IS NULL AND status = 'pending'").Scan(&n); err != nil {
			return err
		}
		if n >= a.MaxQueued {
			return service.ErrQueueIsFull
		}
		if a.MaxQueuedPerClient > 0 && j.Client != "" {
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM nnserver_jobs WHERE status = 'pending' AND client = $1", j.Client).Scan(&n); err != nil {
				return err
			}
			if n >= a.MaxQueuedPerClient {
				return service.ErrClientQueueIsFull
			}
		}
		if a.MaxNetworkEpochs > 0 {
			// The catalog's count, read here under the lock, is never older
			// than the job rows': a save records its epoch in the catalog
			// before the job row, so an epoch is at worst counted twice.
			var trained, left int
			err := tx.QueryRow(ctx, `SELECT
	coalesce((SELECT epochs_trained FROM nnserver_networks WHERE id = $1), 0),
	coalesce((SELECT sum(greatest((params->>'epochs')::int - epoch, 0)) FROM nnserver_jobs
		WHERE network_id = $1 AND finished_at IS NULL), 0)`, j.NetworkID).Scan(&trained, &left)
			if err != nil {
				return err
			}
			if int64(max(trained, a.EpochsTrained))+int64(left)+int64(j.Params.Epochs) > int64(a.MaxNetworkEpochs) {
				return service.ErrLifetimeEpochs
			}
		}
		res, err := q.client.InsertTx(ctx, tx, trainArgs{JobID: j.ID}, insertOpts())
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO nnserver_jobs (id, river_id, network_id, params, status, created_at, client)
VALUES ($1, $2, $3, $4, 'pending', $5, $6)`, j.ID, res.Job.ID, j.NetworkID, params, roundTime(created), j.Client)
		return err
	})
	if errors.Is(err, service.ErrQueueIsFull) || errors.Is(err, service.ErrClientQueueIsFull) || errors.Is(err, service.ErrLifetimeEpochs) {
		return err
	}
	if err != nil {
		return fmt.Errorf("postgres: adding job %s: %w", j.ID, err)
	}
	q.maybePrune(ctx)
	return nil
}

func insertOpts() *river.InsertOpts {
	return &river.InsertOpts{Queue: trainQueue, MaxAttempts: maxAttempts}
}

// maybePrune deletes the finished jobs past the retention limits, at most
// once every pruneEvery on this replica, within the timeout even if ctx is
// cancelled (the client may leave once its job is added). Get hides them
// already; this keeps the table small.
func (q *Queue) maybePrune(ctx context.Context) {
	q.mu.Lock()
	due := time.Since(q.lastPrune) >= q.pruneEvery
	if due {
		q.lastPrune = time.Now()
	}
	q.mu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	defer cancel()
	before, keep := q.retentionArgs()
	_, err := q.pool.Exec(ctx, `DELETE FROM nnserver_jobs WHERE finished_at IS NOT NULL AND (finished_at < $1 OR
	(finished_at, seq) <= (SELECT finished_at, seq FROM nnserver_jobs WHERE finished_at IS NOT NULL
		ORDER BY finished_at DESC, seq DESC OFFSET $2 LIMIT 1))`, before, keep)
	if err != nil {
		q.log.Warn("job queue: deleting forgotten jobs", "err", err)
	}
}

// Get returns a job not yet forgotten.
func (q *Queue) Get(ctx context.Context, id string) (service.JobInfo, error) {
	if !canonicalUUID(id) {
		return service.JobInfo{}, service.ErrUnknownJob
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	before, keep := q.retentionArgs()
	j, err := scanJob(q.pool.QueryRow(ctx, "SELECT "+jobColumns+" FROM nnserver_jobs j WHERE j.id = $1 AND "+visible,
		id, before, keep))
	if errors.Is(err, pgx.ErrNoRows) {
		return service.JobInfo{}, service.ErrUnknownJob
	}
	if err != nil {
		return service.JobInfo{}, fmt.Errorf("postgres: reading job %s: %w", id, err)
	}
	return j, nil
}

// endSQL ends the unfinished jobs that $1 selects (a condition on the
// table aliased p), with status $2, error $3, at $4, and returns each
// one's prior status, river_id and seq, then jobColumns. Rows are locked before
// they are read, so of concurrent ends exactly one changes a job.
func endSQL(where string) string {
	return `WITH prior AS (
	SELECT p.id, p.status FROM nnserver_jobs p WHERE ` + where + ` AND p.finished_at IS NULL ORDER BY p.seq FOR UPDATE
)
UPDATE nnserver_jobs j SET status = $2, error = $3, finished_at = $4
FROM prior WHERE j.id = prior.id AND prior.status IN ('pending', 'training')
RETURNING prior.status, j.river_id, j.seq, ` + jobColumns
}

// End ends a job unless it has ended, in one statement; then it stops the
// job's Work, here or on the replica running it, or takes its River job
// out of the queue. Each of these calls takes at most the timeout.
func (q *Queue) End(ctx context.Context, id string, status service.JobStatus, cause error) (service.JobInfo, service.Ended, error) {
	if !canonicalUUID(id) {
		return service.JobInfo{}, service.Ended{}, service.ErrUnknownJob
	}
	var (
		prior       string
		ticket, seq int64
	)
	ectx, cancel := context.WithTimeout(ctx, q.timeout)
	j, err := scanJob(q.pool.QueryRow(ectx, endSQL("p.id = $1"), id, string(status), message(cause), roundTime(q.now())),
		&prior, &ticket, &seq)
	cancel()
	if errors.Is(err, pgx.ErrNoRows) {
		// Ended already, or unknown.
		j, err := q.Get(ctx, id)
		return j, service.Ended{}, err
	}
	if err != nil {
		return service.JobInfo{}, service.Ended{}, fmt.Errorf("postgres: ending job %s: %w", id, err)
	}
	q.stopEnded(ctx, j.ID, ticket, cause)
	e := service.Ended{Now: true, WasPending: prior == string(service.StatusPending)}
	if e.WasPending {
		q.wakeNext(ctx, j.NetworkID)
	}
	return j, e, nil
}

// message is a job's error column for cause.
func message(cause error) string {
	if cause == nil {
		return ""
	}
	return service.ErrorMessage(cause)
}

// stopEnded stops a job that was just ended: its Work, if it runs here;
// else its River job, wherever it is, within the timeout even if ctx is
// cancelled (the job has ended: it must stop).
func (q *Queue) stopEnded(ctx context.Context, id string, ticket int64, cause error) {
	q.mu.Lock()
	r := q.running[id]
	q.mu.Unlock()
	if r != nil && r.ticket == ticket {
		r.cancel(cause)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
	defer cancel()
	if _, err := q.client.JobCancel(ctx, ticket); err != nil && !errors.Is(err, river.ErrNotFound) {
		// A running Work notices within pingEvery anyway; a pending River
		// job, once run, finds its job ended and does nothing.
		q.log.Warn("job queue: could not cancel an ended job's River job", "job_id", id, "river_id", ticket, "err", err)
	}
}

// EndNetwork ends every unfinished job of a network in one statement, and
// returns those that were pending, oldest first.
func (q *Queue) EndNetwork(ctx context.Context, networkID string, status service.JobStatus, cause error) ([]service.JobInfo, error) {
	if !canonicalUUID(networkID) {
		return nil, nil
	}
	ectx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	rows, err := q.pool.Query(ectx, endSQL("p.network_id = $1"), networkID, string(status), message(cause), roundTime(q.now()))
	if err != nil {
		return nil, fmt.Errorf("postgres: ending the jobs of network %s: %w", networkID, err)
	}
	type ended struct {
		j           service.JobInfo
		prior       string
		ticket, seq int64
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ended, error) {
		var e ended
		var err error
		e.j, err = scanJob(row, &e.prior, &e.ticket, &e.seq)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: ending the jobs of network %s: %w", networkID, err)
	}
	slices.SortFunc(all, func(a, b ended) int { return cmp.Compare(a.seq, b.seq) })
	var pending []service.JobInfo
	for _, e := range all {
		q.stopEnded(ctx, e.j.ID, e.ticket, cause)
		if e.prior == string(service.StatusPending) {
			pending = append(pending, e.j)
		}
	}
	return pending, nil
}

// Active counts the unfinished jobs, in one query.
func (q *Queue) Active(ctx context.Context) (service.ActiveJobs, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	rows, err := q.pool.Query(ctx, "SELECT id::text, network_id::text, status FROM nnserver_jobs WHERE finished_at IS NULL ORDER BY seq")
	if err != nil {
		return service.ActiveJobs{}, fmt.Errorf("postgres: counting jobs: %w", err)
	}
	type job struct{ ID, Network, Status string }
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[job])
	if err != nil {
		return service.ActiveJobs{}, fmt.Errorf("postgres: counting jobs: %w", err)
	}
	a := service.ActiveJobs{Current: map[string]string{}}
	for _, j := range jobs {
		if j.Status == string(service.StatusTraining) {
			a.Running++
			a.Current[j.Network] = j.ID
		}
	}
	for _, j := range jobs {
		if j.Status == string(service.StatusPending) {
			a.Queued++
			if _, ok := a.Current[j.Network]; !ok {
				a.Current[j.Network] = j.ID
			}
		}
	}
	return a, nil
}

// listColumns are jobColumns without the history, which a list leaves out.
var listColumns = strings.Replace(jobColumns, "j.history", "'[]'::jsonb", 1)

// listSQL lists the jobs not yet forgotten ($1, $2: retentionArgs), newest
// first, at most $3, with more conditions in place of %s. The finished job
// the retention by count forgets first (cutoff) is found once, not for
// each row as in visible.
const listSQL = `WITH cutoff AS (
	SELECT finished_at, seq FROM nnserver_jobs WHERE finished_at IS NOT NULL
	ORDER BY finished_at DESC, seq DESC OFFSET $2 LIMIT 1
)
SELECT j.seq, %s FROM nnserver_jobs j
WHERE (j.finished_at IS NULL OR (j.finished_at >= $1 AND NOT EXISTS (
	SELECT 1 FROM cutoff c WHERE (j.finished_at, j.seq) <= (c.finished_at, c.seq))))%s
ORDER BY j.seq DESC LIMIT $3`

// List reads a page of the jobs f selects, newest first, in one query;
// f.Before is a seq. It reads one job more than the page holds, to tell
// whether another page follows.
func (q *Queue) List(ctx context.Context, f service.JobFilter) (service.JobPage, error) {
	if f.NetworkID != "" && !canonicalUUID(f.NetworkID) {
		return service.JobPage{}, nil // it names no network: no job has it
	}
	before, keep := q.retentionArgs()
	limit := max(f.Limit, 1)
	args := []any{before, keep, limit + 1}
	var where strings.Builder
	if f.Before > 0 {
		args = append(args, f.Before)
		fmt.Fprintf(&where, " AND j.seq < $%d", len(args))
	}
	if f.NetworkID != "" {
		args = append(args, f.NetworkID)
		fmt.Fprintf(&where, " AND j.network_id = $%d::uuid", len(args))
	}
	if len(f.Statuses) > 0 {
		ss := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			ss[i] = string(st)
		}
		args = append(args, ss)
		fmt.Fprintf(&where, " AND j.status = ANY($%d::text[])", len(args))
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	rows, err := q.pool.Query(ctx, fmt.Sprintf(listSQL, listColumns, where.String()), args...)
	if err != nil {
		return service.JobPage{}, fmt.Errorf("postgres: listing jobs: %w", err)
	}
	type listed struct {
		j   service.JobInfo
		seq int64
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (l listed, err error) {
		l.j, err = scanJob(row, &l.seq)
		return l, err
	})
	if err != nil {
		return service.JobPage{}, fmt.Errorf("postgres: listing jobs: %w", err)
	}
	var p service.JobPage
	for i, l := range all {
		if i == limit {
			p.Next = all[i-1].seq
			break
		}
		l.j.History = nil
		p.Jobs = append(p.Jobs, l.j)
	}
	return p, nil
}

// Epoch records a finished epoch of a training job. When the job runs
// here, it must still be this run's (not taken over): a run that lost its
// job is handed over (its context cancelled with service.ErrHandOver) and
// gets service.ErrJobEnded.
func (q *Queue) Epoch(ctx context.Context, id string, r service.EpochResult) error {
	if !canonicalUUID(id) {
		return service.ErrUnknownJob
	}
	q.mu.Lock()
	run := q.running[id]
	q.mu.Unlock()
	var ticket *int64
	if run != nil {
		ticket = &run.ticket
	}
	e, err := json.Marshal(epochJSON{Epoch: r.Epoch, Correct: r.Correct, Total: r.Total, Accuracy: r.Accuracy,
		ElapsedTime: r.ElapsedTime, ValidationAccuracy: r.ValidationAccuracy, TrainingCost: r.TrainingCost})
	if err != nil {
		return fmt.Errorf("postgres: recording an epoch of job %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	tag, err := q.pool.Exec(ctx, `UPDATE nnserver_jobs SET epoch = $2, accuracy = $3, elapsed = elapsed + $4,
	history = history || jsonb_build_array($5::jsonb)
WHERE id = $1 AND status = 'training' AND ($6::bigint IS NULL OR river_id = $6)`, id, r.Epoch, r.Accuracy, r.ElapsedTime, e, ticket)
	if err != nil {
		return fmt.Errorf("postgres: recording an epoch of job %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	st, err := readJobState(ctx, q.pool, id, false)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return service.ErrUnknownJob
	case err != nil:
		return fmt.Errorf("postgres: recording an epoch of job %s: %w", id, err)
	case run != nil && !st.finished && st.ticket != run.ticket:
		q.log.Warn("job queue: the job was taken over by another replica; stopping here", "job_id", id)
		run.cancel(service.ErrHandOver)
	}
	return service.ErrJobEnded
}

// Start starts this replica's workers (none if Workers is 0) and its
// search for jobs to take over.
func (q *Queue) Start(work service.Work) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started || q.stopping {
		return errors.New("postgres: queue: started twice, or after Stop")
	}
	if q.cfg.Workers > 0 {
		if err := q.startRiver(); err != nil {
			return fmt.Errorf("postgres: queue: starting River: %w", err)
		}
	}
	q.started, q.work = true, work
	if q.cfg.Workers == 0 {
		return nil
	}
	// The sweep's context: it runs until Stop, outliving any request; each
	// of its calls to Postgres has its own deadline.
	ctx, cancel := context.WithCancel(context.Background())
	q.sweepCancel, q.sweepDone = cancel, make(chan struct{})
	go q.sweep(ctx, q.sweepDone)
	return nil
}

// startRiver starts River's workers. River's Start takes the context of
// the client's whole life (ending it stops River), so it cannot carry a
// deadline; its first calls to Postgres (a ping) are bounded here instead:
// a Start still running after the timeout is abandoned, its context
// cancelled.
func (q *Queue) startRiver() error {
	life, cancel := context.WithCancel(context.Background())
	started := make(chan error, 1)
	go func() { started <- q.client.Start(life) }()
	var err error
	select {
	case err = <-started:
	case <-time.After(q.timeout):
		cancel()
		<-started // it returns once life has ended
		err = fmt.Errorf("no answer from Postgres within %v: %w", q.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return err
	}
	q.riverCancel = cancel
	return nil
}

// Stop hands this replica's jobs over: running ones have their Work's
// context cancelled with service.ErrHandOver (each leaves its job training,
// to be resumed, and its River job snoozes, for any replica to run), and
// pending ones stay queued for the other replicas. It ends no job, and
// waits for the workers until ctx ends.
func (q *Queue) Stop(ctx context.Context) ([]service.JobInfo, error) {
	q.mu.Lock()
	q.stopping = true
	for _, r := range q.running {
		r.cancel(service.ErrHandOver)
	}
	started := q.started && q.cfg.Workers > 0
	q.mu.Unlock()
	if !started {
		return nil, nil
	}
	q.sweepCancel()
	err := q.client.StopAndCancel(ctx)
	q.riverCancel()
	select {
	case <-q.sweepDone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: queue: stopping: %w", err)
	}
	return nil, nil
}

// call runs f with ctx bounded by the timeout: one call to Postgres (a
// statement, a transaction or a call to River) in code that makes several.
func (q *Queue) call(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	return f(ctx)
}

func (q *Queue) isStopping() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopping
}

// minLevel drops records below min: River's own lines below Warn are
// noise in the service's log.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

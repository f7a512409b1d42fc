package postgres

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// testWait bounds the waits of these tests.
const testWait = 30 * time.Second

func newJob(network string, epochs int) service.JobInfo {
	seed := uint64(1) << 60 // more bits than a float64 holds
	return service.JobInfo{ID: uuid.NewString(), NetworkID: network, Status: service.StatusPending,
		Params:    service.TrainParams{Epochs: epochs, MiniBatch: 10, LearningRate: 0.5, Cost: service.CostQuadratic, Lambda: 0.1, Seed: &seed},
		CreatedAt: time.Now().UTC()}
}

func addJob(t *testing.T, q service.Queue, j service.JobInfo) service.JobInfo {
	t.Helper()
	if err := q.Add(t.Context(), j, service.Admission{MaxQueued: 100}); err != nil {
		t.Fatal(err)
	}
	return j
}

// trainer is a Work that behaves like the service's: it records the
// epochs left, one after another, and ends the job; stopped, it hands over
// or ends the job as failed. Each epoch waits for epochDelay, or for the
// job's gate when gated.
type trainer struct {
	name       string
	q          service.Queue
	epochDelay time.Duration
	gated      bool

	mu      sync.Mutex
	started []service.JobInfo // as each run got it
	causes  map[string]error  // job → why its last run's context ended
	gates   map[string]chan struct{}
	startCh chan service.JobInfo
	before  func(j service.JobInfo) // called as each run starts
}

func newTrainer(name string, q service.Queue, epochDelay time.Duration) *trainer {
	return &trainer{name: name, q: q, epochDelay: epochDelay, causes: map[string]error{}, gates: map[string]chan struct{}{},
		startCh: make(chan service.JobInfo, 100)}
}

// gate returns the channel that lets job id's epochs run, when gated:
// each value sent lets one epoch finish.
func (w *trainer) gate(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gates[id] == nil {
		w.gates[id] = make(chan struct{}, 100)
	}
	return w.gates[id]
}

func (w *trainer) cause(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.causes[id]
}

func (w *trainer) work(ctx context.Context, j service.JobInfo) error {
	w.mu.Lock()
	w.started = append(w.started, j)
	before := w.before
	w.mu.Unlock()
	if before != nil {
		before(j)
	}
	w.startCh <- j
	bg := context.Background()
	for e := j.Epoch + 1; e <= j.Params.Epochs; e++ {
		w.mu.Lock()
		delay, gated := w.epochDelay, w.gated
		w.mu.Unlock()
		wait := time.After(delay)
		if gated {
			wait = nil
		}
		select {
		case <-wait:
		case <-w.gate(j.ID):
		case <-ctx.Done():
			cause := context.Cause(ctx)
			w.mu.Lock()
			w.causes[j.ID] = cause
			w.mu.Unlock()
			if errors.Is(cause, service.ErrHandOver) {
				return service.ErrHandOver
			}
			_, _, err := w.q.End(bg, j.ID, service.StatusFailed, cause)
			return err
		}
		err := w.q.Epoch(bg, j.ID, service.EpochResult{Epoch: e, Correct: 9000 + e, Total: 10000, Accuracy: float64(9000+e) / 10000, ElapsedTime: 0.5})
		if err != nil {
			if errors.Is(context.Cause(ctx), service.ErrHandOver) {
				w.mu.Lock()
				w.causes[j.ID] = context.Cause(ctx)
				w.mu.Unlock()
				return service.ErrHandOver
			}
			return err
		}
	}
	_, _, err := w.q.End(bg, j.ID, service.StatusCompleted, nil)
	return err
}

// waitStart waits for a run of job id to start on w.
func (w *trainer) waitStart(t *testing.T, id string, within time.Duration) service.JobInfo {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case j := <-w.startCh:
			if j.ID == id {
				return j
			}
		case <-deadline:
			t.Fatalf("job %s did not start on %s within %v", id, w.name, within)
		}
	}
}

// waitJob polls job id until it has status want, and returns it.
func waitJob(t *testing.T, q service.Queue, id string, want service.JobStatus) service.JobInfo {
	t.Helper()
	var j service.JobInfo
	var err error
	if !testutil.Poll(testWait, 20*time.Millisecond, func() bool {
		j, err = q.Get(t.Context(), id)
		return err == nil && j.Status == want
	}) {
		t.Fatalf("job %s: %+v, %v; want %s", id, j, err, want)
	}
	return j
}

// TestQueueTwoReplicas runs jobs of three networks on two queues ("replicas")
// sharing a database: never two jobs of a network at once, each network's
// jobs in the order they were added, and every job completes once.
func TestQueueTwoReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	poolA := connect(t, url)
	if err := Migrate(t.Context(), poolA, 0); err != nil {
		t.Fatal(err)
	}
	poolB := connect(t, url)
	qa := newTestQueue(t, poolA, QueueConfig{Workers: 2})
	qb := newTestQueue(t, poolB, QueueConfig{Workers: 2})

	type span struct {
		replica    string
		start, end time.Time
	}
	var (
		mu      sync.Mutex
		spans   = map[string]span{}
		running = map[string]int{}
		maxPar  = map[string]int{}
	)
	track := func(name string, w *trainer) service.Work {
		return func(ctx context.Context, j service.JobInfo) error {
			mu.Lock()
			running[j.NetworkID]++
			maxPar[j.NetworkID] = max(maxPar[j.NetworkID], running[j.NetworkID])
			start := time.Now()
			mu.Unlock()
			err := w.work(ctx, j)
			mu.Lock()
			running[j.NetworkID]--
			spans[j.ID] = span{name, start, time.Now()}
			mu.Unlock()
			return err
		}
	}
	wa, wb := newTrainer("a", qa, 50*time.Millisecond), newTrainer("b", qb, 50*time.Millisecond)

	nets := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	var order []service.JobInfo // as added
	for i := range 9 {
		q := service.Queue(qa)
		if i%2 == 1 {
			q = qb
		}
		order = append(order, addJob(t, q, newJob(nets[i%3], 2)))
	}
	if err := qa.Start(track("a", wa)); err != nil {
		t.Fatal(err)
	}
	if err := qb.Start(track("b", wb)); err != nil {
		t.Fatal(err)
	}
	for _, j := range order {
		done := waitJob(t, qa, j.ID, service.StatusCompleted)
		if done.Epoch != 2 || len(done.History) != 2 {
			t.Errorf("job %s: %+v", j.ID, done)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	ran := map[string]int{}
	for _, n := range nets {
		if maxPar[n] != 1 {
			t.Errorf("network %s: %d jobs at once", n, maxPar[n])
		}
		var prev *span
		for _, j := range order {
			if j.NetworkID != n {
				continue
			}
			s := spans[j.ID]
			ran[s.replica]++
			if prev != nil && s.start.Before(prev.end) {
				t.Errorf("network %s: job %s started at %v, before the one added before it ended (%v)", n, j.ID, s.start, prev.end)
			}
			prev = &s
		}
	}
	runs := len(wa.started) + len(wb.started)
	if runs != len(order) {
		t.Errorf("%d runs of %d jobs", runs, len(order))
	}
	t.Logf("jobs run by replica: %v", ran)
}

// killSwitch is a dialer whose connections can all be cut at once, after
// which it dials no more: a replica killed with kill -9, as its database
// sees it.
type killSwitch struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (k *killSwitch) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		c.Close()
		return nil, errors.New("killed")
	}
	k.conns = append(k.conns, c)
	return c, nil
}

func (k *killSwitch) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	for _, c := range k.conns {
		c.Close()
	}
}

// killablePool opens a pool on url whose connections k cuts.
func killablePool(t *testing.T, url string, k *killSwitch) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.DialFunc = k.dial
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Close waits for connections in use; a killed replica's River
		// may hold some a while.
		done := make(chan struct{})
		go func() { pool.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Log("the killed replica's pool did not close within 5 s")
		}
	})
	return pool
}

// TestQueueTakeover kills a replica in the middle of a job: another one
// takes the job over once the job's River job has run for TakeoverAfter,
// and resumes it from its last recorded epoch.
func TestQueueTakeover(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	k := &killSwitch{}
	poolA := killablePool(t, url, k)
	if err := Migrate(t.Context(), poolA, 0); err != nil {
		t.Fatal(err)
	}
	const takeoverAfter = 2 * time.Second
	qa := newTestQueue(t, poolA, QueueConfig{Workers: 1, TakeoverAfter: takeoverAfter})
	qb := newTestQueue(t, connect(t, url), QueueConfig{Workers: 1, TakeoverAfter: takeoverAfter})
	wa := newTrainer("a", qa, 0)
	wa.gated = true
	wb := newTrainer("b", qb, 20*time.Millisecond)

	j := addJob(t, qa, newJob(uuid.NewString(), 4))
	if err := qa.Start(wa.work); err != nil {
		t.Fatal(err)
	}
	first := wa.waitStart(t, j.ID, testWait)
	wa.gate(j.ID) <- struct{}{}
	testutil.Eventually(t, testWait, "epoch 1", func() bool { got, _ := qb.Get(t.Context(), j.ID); return got.Epoch == 1 })
	if err := qb.Start(wb.work); err != nil {
		t.Fatal(err)
	}
	// Killed once its River job has run for TakeoverAfter, as a long job's
	// has: the takeover then only waits for a sweep.
	time.Sleep(takeoverAfter + 200*time.Millisecond)
	before, err := readJobState(t.Context(), qb.pool, j.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	k.kill()

	// It resumes on the other replica (within testWait, or the test fails
	// as hung), under a new River job: a takeover, since River never
	// rescues a job without a timeout. How long that took is logged, not
	// checked: the design's bound (a sweep, plus the fetch of the freed
	// lock) is a wall-clock figure that a loaded machine stretches.
	resumed := wb.waitStart(t, j.ID, testWait)
	took := time.Since(killed)
	t.Logf("taken over %v after the kill (its River job had run for TakeoverAfter, %v; sweeps every %v: expected within about one)",
		took.Round(time.Millisecond), takeoverAfter, qb.sweepEvery)
	if after, err := readJobState(t.Context(), qb.pool, j.ID, false); err != nil || after.ticket == before.ticket {
		t.Errorf("resumed under River job %d (%v); it ran under %d before the kill: not taken over", after.ticket, err, before.ticket)
	}
	if resumed.Epoch != 1 || resumed.Status != service.StatusTraining || !resumed.StartedAt.Equal(first.StartedAt) || len(resumed.History) != 1 {
		t.Errorf("resumed as %+v; first run got %+v", resumed, first)
	}
	done := waitJob(t, qb, j.ID, service.StatusCompleted)
	if done.Epoch != 4 || len(done.History) != 4 || done.Error != "" {
		t.Errorf("completed as %+v", done)
	}
	for i, h := range done.History {
		if h.Epoch != i+1 {
			t.Errorf("history: %+v", done.History)
			break
		}
	}
	// The killed replica's Work was told to hand over: its lock's
	// connection was gone.
	testutil.Eventually(t, testWait, "the killed replica's Work to stop", func() bool { return wa.cause(j.ID) != nil })
	if c := wa.cause(j.ID); !errors.Is(c, service.ErrHandOver) {
		t.Errorf("the killed replica's Work stopped with %v", c)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	qa.Stop(ctx) // it cannot reach its database: do not wait long
}

// TestQueuePostgresRestart restarts Postgres while a job runs: its Work
// hands over (the training lock went with its connection), and the job
// resumes once Postgres is back, and completes.
func TestQueuePostgresRestart(t *testing.T) {
	t.Parallel()
	p := pgtest.Start(t)
	pool := connect(t, p.URL())
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	q := newTestQueue(t, pool, QueueConfig{Workers: 1, TakeoverAfter: 2 * time.Second})
	w := newTrainer("a", q, 0)
	w.gated = true
	j := addJob(t, q, newJob(uuid.NewString(), 3))
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.waitStart(t, j.ID, testWait)
	w.gate(j.ID) <- struct{}{}
	testutil.Eventually(t, testWait, "epoch 1", func() bool { got, _ := q.Get(t.Context(), j.ID); return got.Epoch == 1 })

	p.Restart(t)
	back := time.Now()
	testutil.Eventually(t, testWait, "the Work to stop", func() bool { return w.cause(j.ID) != nil })
	if c := w.cause(j.ID); !errors.Is(c, service.ErrHandOver) {
		t.Errorf("the Work stopped with %v, want a hand-over", c)
	}
	// Let the next run go through.
	w.mu.Lock()
	w.gated = false
	w.epochDelay = 10 * time.Millisecond
	w.mu.Unlock()
	resumed := w.waitStart(t, j.ID, testWait)
	t.Logf("resumed %v after Postgres was back", time.Since(back).Round(time.Millisecond))
	if resumed.Epoch != 1 {
		t.Errorf("resumed at epoch %d, want 1", resumed.Epoch)
	}
	done := waitJob(t, q, j.ID, service.StatusCompleted)
	if done.Epoch != 3 || len(done.History) != 3 {
		t.Errorf("completed as %+v", done)
	}
}

// TestQueueEndFromAnotherReplica cancels, from an API replica (no workers),
// a job running on a worker replica: River's signal stops its Work at
// once (the Work's own check of its row is made rare here).
func TestQueueEndFromAnotherReplica(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	pool := connect(t, url)
	if err := Migrate(t.Context(), pool, 0); err != nil {
		t.Fatal(err)
	}
	api := newTestQueue(t, pool, QueueConfig{Workers: 0})
	worker := newTestQueue(t, connect(t, url), QueueConfig{Workers: 1})
	worker.pingEvery = time.Hour
	if err := api.Start(func(context.Context, service.JobInfo) error {
		t.Error("the API replica ran a job")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w := newTrainer("worker", worker, 0)
	w.gated = true
	if err := worker.Start(w.work); err != nil {
		t.Fatal(err)
	}
	net := uuid.NewString()
	running := addJob(t, api, newJob(net, 2))
	pending := addJob(t, api, newJob(net, 2))
	w.waitStart(t, running.ID, testWait)

	ended := time.Now()
	got, e, err := api.End(t.Context(), running.ID, service.StatusCancelled, service.Errorf(service.Conflict, service.MsgCancelled))
	if err != nil || !e.Now || e.WasPending || got.Status != service.StatusCancelled {
		t.Fatalf("End: %+v %+v %v", got, e, err)
	}
	testutil.Eventually(t, testWait, "the Work to stop", func() bool { return w.cause(running.ID) != nil })
	t.Logf("the Work stopped %v after End on another replica", time.Since(ended).Round(time.Millisecond))
	if c := w.cause(running.ID); !errors.Is(c, service.ErrJobEnded) {
		t.Errorf("the Work stopped with %v", c)
	}
	if j, _ := api.Get(t.Context(), running.ID); j.Status != service.StatusCancelled || j.Error != service.MsgCancelled {
		t.Errorf("after its Work stopped: %+v", j)
	}
	// The next job of the network runs; ended from the API replica while
	// pending, it leaves River's queue.
	w.waitStart(t, pending.ID, testWait)
	pend := addJob(t, api, newJob(net, 1))
	got, e, err = api.End(t.Context(), pend.ID, service.StatusCancelled, nil)
	if err != nil || !e.Now || !e.WasPending || got.Error != "" {
		t.Errorf("End of a pending job: %+v %+v %v", got, e, err)
	}
	var state string
	if err := pool.QueryRow(t.Context(), "SELECT r.state FROM river_job r JOIN nnserver_jobs j ON j.river_id = r.id WHERE j.id = $1",
		pend.ID).Scan(&state); err != nil || state != "cancelled" {
		t.Errorf("the pending job's River job: %q, %v", state, err)
	}
	w.gate(pending.ID) <- struct{}{}
	w.gate(pending.ID) <- struct{}{}
	waitJob(t, api, pending.ID, service.StatusCompleted)
	a, err := api.Active(t.Context())
	if err != nil || a.Queued != 0 || a.Running != 0 {
		t.Errorf("Active: %+v %v", a, err)
	}
}

// TestQueueTakenOverRunStops: a run whose job was given to another River
// job (taken over, as a replica cut off from its database would find on
// its return) records no more epochs, and hands over.
func TestQueueTakenOverRunStops(t *testing.T) {
	t.Parallel()
	pool := migrated(t)
	q := newTestQueue(t, pool, QueueConfig{Workers: 1})
	q.pingEvery = time.Hour // Epoch finds out, not the Work's own check
	w := newTrainer("a", q, 0)
	w.gated = true
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	j := addJob(t, q, newJob(uuid.NewString(), 3))
	w.waitStart(t, j.ID, testWait)
	if _, err := pool.Exec(t.Context(), "UPDATE nnserver_jobs SET river_id = -1 WHERE id = $1", j.ID); err != nil {
		t.Fatal(err)
	}
	w.gate(j.ID) <- struct{}{}
	testutil.Eventually(t, testWait, "the Work to stop", func() bool { return w.cause(j.ID) != nil })
	if c := w.cause(j.ID); !errors.Is(c, service.ErrHandOver) {
		t.Errorf("the Work stopped with %v", c)
	}
	if got, _ := q.Get(t.Context(), j.ID); got.Epoch != 0 || got.Status != service.StatusTraining {
		t.Errorf("the job after a stale run's epoch: %+v", got)
	}
}

// TestQueueNames: what is not a canonical UUID names no job.
func TestQueueNames(t *testing.T) {
	t.Parallel()
	q := newTestQueue(t, migrated(t), QueueConfig{})
	id := uuid.NewString()
	for _, bad := range []string{"", "x", strings.ToUpper(id), "{" + id + "}"} {
		if _, err := q.Get(t.Context(), bad); !errors.Is(err, service.ErrUnknownJob) {
			t.Errorf("Get(%q): %v", bad, err)
		}
		if _, _, err := q.End(t.Context(), bad, service.StatusCancelled, nil); !errors.Is(err, service.ErrUnknownJob) {
			t.Errorf("End(%q): %v", bad, err)
		}
		if err := q.Epoch(t.Context(), bad, service.EpochResult{}); !errors.Is(err, service.ErrUnknownJob) {
			t.Errorf("Epoch(%q): %v", bad, err)
		}
	}
	j := addJob(t, q, newJob(uuid.NewString(), 1))
	got, err := q.Get(t.Context(), j.ID)
	if err != nil || *got.Params.Seed != *j.Params.Seed || got.Params != (service.TrainParams{Epochs: 1, MiniBatch: 10,
		LearningRate: 0.5, Cost: service.CostQuadratic, Lambda: 0.1, Seed: got.Params.Seed}) {
		t.Errorf("params: %+v %v", got.Params, err)
	}
	if !got.CreatedAt.Equal(j.CreatedAt.Round(time.Microsecond)) {
		t.Errorf("created %v, want %v rounded to the microsecond", got.CreatedAt, j.CreatedAt)
	}
}

// TestCatalogTwoReplicas: save locks hold across replicas, and a wait
// given up leaves nothing behind, neither in Postgres nor in the pool.
func TestCatalogTwoReplicas(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	poolA := connect(t, url)
	if err := Migrate(t.Context(), poolA, 0); err != nil {
		t.Fatal(err)
	}
	poolB := connect(t, url)
	a, b := NewCatalog(poolA, 0), NewCatalog(poolB, 0)
	id := uuid.NewString()
	unlock, err := a.LockSaves(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		if _, err := b.LockSaves(short, id); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a lock held by another replica was taken: %v", err)
		}
		cancel()
	}
	waiting := func() int {
		var n int
		if err := poolA.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	testutil.Eventually(t, testWait, "the given-up waits to leave Postgres", func() bool { return waiting() == 0 })
	got := make(chan error, 1)
	go func() {
		u, err := b.LockSaves(t.Context(), id)
		if err == nil {
			u()
		}
		got <- err
	}()
	testutil.Eventually(t, testWait, "the second replica to wait", func() bool { return waiting() == 1 })
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testWait):
		t.Fatal("the lock was not handed to the other replica")
	}
	if s := poolB.Stat(); s.AcquiredConns() != 0 {
		t.Errorf("%d connections still acquired from the pool", s.AcquiredConns())
	}

	// Times are kept to the microsecond.
	r := service.NetworkRecord{ID: uuid.NewString(), Sizes: []int{784, 10}, Init: service.InitNormal, Version: 1,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)}
	r.UpdatedAt = r.CreatedAt
	if err := a.Add(t.Context(), r, 10); err != nil {
		t.Fatal(err)
	}
	back, err := b.Get(t.Context(), r.ID)
	if want := r.CreatedAt.Round(time.Microsecond); err != nil || !back.CreatedAt.Equal(want) || back.Seed != nil || back.Accuracy != nil {
		t.Errorf("Get: %+v, %v; want created at %v", back, err, want)
	}
	if _, err := b.Get(t.Context(), strings.ToUpper(r.ID)); !errors.Is(err, service.ErrUnknownNetwork) {
		t.Errorf("Get of an upper-case id: %v", err)
	}
}

// TestQueueNextJobStartsPromptly: a job waiting for an older one of its
// network snoozes longer and longer, yet starts as soon as the older one
// ends, which makes it available at once.
func TestQueueNextJobStartsPromptly(t *testing.T) {
	t.Parallel()
	pool := migrated(t)
	q := newTestQueue(t, pool, QueueConfig{Workers: 2})
	q.busySnooze, q.maxWait = time.Second, 5*time.Second // as deployed
	w := newTrainer("a", q, 0)
	w.gated = true
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	net := uuid.NewString()
	first, second := addJob(t, q, newJob(net, 1)), addJob(t, q, newJob(net, 1))
	w.waitStart(t, first.ID, testWait)
	// The second one snoozes 1, 2, then 4 s: end the first once it is in
	// its 4-s snooze, with more than 3 s of it left.
	scheduledAt := func() (at time.Time, err error) {
		err = pool.QueryRow(t.Context(), `SELECT r.scheduled_at FROM river_job r JOIN nnserver_jobs j ON j.river_id = r.id
WHERE j.id = $1`, second.ID).Scan(&at)
		return at, err
	}
	var snoozedUntil time.Time
	testutil.Eventually(t, testWait, "a long snooze", func() bool {
		var snoozes int
		var left float64
		err := pool.QueryRow(t.Context(), `SELECT coalesce((r.metadata->>'snoozes')::int, 0), extract(epoch FROM r.scheduled_at - now()), r.scheduled_at
FROM river_job r JOIN nnserver_jobs j ON j.river_id = r.id WHERE j.id = $1 AND r.state = 'available'`, second.ID).Scan(&snoozes, &left, &snoozedUntil)
		return err == nil && snoozes >= 3 && left > 3
	})
	w.gate(first.ID) <- struct{}{}
	waitJob(t, q, first.ID, service.StatusCompleted)
	ended := time.Now()
	w.waitStart(t, second.ID, testWait)
	t.Logf("the next job started %v after the first ended", time.Since(ended).Round(time.Millisecond))
	// Woken, not left to its snooze: its River job was made available
	// (scheduled now, by the end of the first) before the snooze's end.
	// Postgres's times, compared in order: no bound on how long it took.
	if at, err := scheduledAt(); err != nil || !at.Before(snoozedUntil) {
		t.Errorf("the next job's River job ran as scheduled at %v (%v); its snooze ended at %v: not woken by the end of the first",
			at, err, snoozedUntil)
	}
	w.gate(second.ID) <- struct{}{}
	waitJob(t, q, second.ID, service.StatusCompleted)
}

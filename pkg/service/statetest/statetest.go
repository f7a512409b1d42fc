// Package statetest is the contract every implementation of service.Catalog
// and service.Queue passes: the in-memory ones of single mode and the
// Postgres ones of scaled mode run the same table of behaviours, so the two
// modes cannot drift apart.
package statetest

import (
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/deep"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// waitLimit bounds every wait of the suite: a guard against hangs.
const waitLimit = 30 * time.Second

func record(id string, version int64) service.NetworkRecord {
	acc := 0.9
	seed := uint64(7)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return service.NetworkRecord{
		ID: id, Sizes: []int{784, 30, 10}, Init: service.InitScaled, Seed: &seed, Trained: true, Accuracy: &acc,
		EpochsTrained: 3, CreatedAt: now, UpdatedAt: now.Add(time.Minute), Version: version,
		OwnerHash: service.OwnerHash(id), Name: "ch. 3 — η 0.5 " + id[:4], Notes: "scaled init\nλ 5",
	}
}

func sameRecord(a, b service.NetworkRecord) bool {
	return a.ID == b.ID && slices.Equal(a.Sizes, b.Sizes) && a.Init == b.Init &&
		(a.Seed == nil) == (b.Seed == nil) && (a.Seed == nil || *a.Seed == *b.Seed) &&
		a.Trained == b.Trained && (a.Accuracy == nil) == (b.Accuracy == nil) &&
		(a.Accuracy == nil || *a.Accuracy == *b.Accuracy) && a.EpochsTrained == b.EpochsTrained &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt) && a.Version == b.Version &&
		a.OwnerHash == b.OwnerHash && a.Name == b.Name && a.Notes == b.Notes && slices.Equal(a.Layers, b.Layers)
}

// RunCatalog runs the Catalog contract; newCatalog returns an empty one.
func RunCatalog(t *testing.T, newCatalog func(t *testing.T) service.Catalog) {
	ctx := context.Background()
	t.Run("AddGetList", func(t *testing.T) {
		c := newCatalog(t)
		a, b, d := record(uuid.NewString(), 1), record(uuid.NewString(), 1), record(uuid.NewString(), 1)
		b.Init, b.Seed, b.Accuracy, b.Trained, b.EpochsTrained, b.OwnerHash = "", nil, nil, false, 0, ""
		// A layers network: its list is kept as given.
		d.Sizes = []int{784, 1728, 432, 8, 10}
		d.Layers = []deep.Layer{{Kind: deep.Conv, Filters: 3, Size: 5, Activation: deep.ReLU}, {Kind: deep.Pool, Size: 2},
			{Kind: deep.Dense, Size: 8, Activation: deep.Tanh, Dropout: 0.25}, {Kind: deep.Softmax, Size: 10, Dropout: 0.1}}
		for _, r := range []service.NetworkRecord{a, b, d} {
			if err := c.Add(ctx, r, 10); err != nil {
				t.Fatal(err)
			}
		}
		a.Sizes[1] = 99 // the catalog keeps its own copy
		a.Sizes[1] = 30
		d.Layers[0].Filters = 99
		d.Layers[0].Filters = 3
		for _, want := range []service.NetworkRecord{a, b, d} {
			got, err := c.Get(ctx, want.ID)
			if err != nil || !sameRecord(got, want) {
				t.Errorf("Get(%s) = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		list, err := c.List(ctx)
		if err != nil || len(list) != 3 {
			t.Fatalf("List: %v, %v", list, err)
		}
		if _, err := c.Get(ctx, uuid.NewString()); !errors.Is(err, service.ErrUnknownNetwork) {
			t.Errorf("Get of an unknown id: %v", err)
		}
	})
	t.Run("AddRespectsMax", func(t *testing.T) {
		c := newCatalog(t)
		const max = 5
		var wg sync.WaitGroup
		var mu sync.Mutex
		added, full := 0, 0
		for range 3 * max {
			wg.Go(func() {
				err := c.Add(ctx, record(uuid.NewString(), 1), max)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					added++
				case errors.Is(err, service.ErrCatalogFull):
					full++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		list, _ := c.List(ctx)
		if added != max || full != 2*max || len(list) != max {
			t.Errorf("%d added, %d refused, %d listed; want %d, %d, %d", added, full, len(list), max, 2*max, max)
		}
	})
	t.Run("UpdateNeedsTheNextVersion", func(t *testing.T) {
		c := newCatalog(t)
		r := record(uuid.NewString(), 1)
		if err := c.Add(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
		r.Version, r.EpochsTrained = 2, 4
		if err := c.Update(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Get(ctx, r.ID); !sameRecord(got, r) {
			t.Errorf("after Update: %+v", got)
		}
		// The owner is set once, by Add: an Update without it keeps it.
		r.Version = 3
		noOwner := r
		noOwner.OwnerHash = ""
		if err := c.Update(ctx, noOwner); err != nil {
			t.Fatal(err)
		}
		if got, _ := c.Get(ctx, r.ID); !sameRecord(got, r) {
			t.Errorf("after an Update without the owner: %+v, want the owner kept", got)
		}
		r.Version = 2
		for _, v := range []int64{3, 5, 1} {
			stale := r
			stale.Version = v
			if err := c.Update(ctx, stale); !errors.Is(err, service.ErrVersionMoved) {
				t.Errorf("Update to version %d after 3: %v", v, err)
			}
		}
		if err := c.Remove(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		r.Version = 4
		if err := c.Update(ctx, r); !errors.Is(err, service.ErrUnknownNetwork) {
			t.Errorf("Update after Remove: %v", err)
		}
		if err := c.Remove(ctx, r.ID); !errors.Is(err, service.ErrUnknownNetwork) {
			t.Errorf("Remove twice: %v", err)
		}
		if _, err := c.Get(ctx, r.ID); !errors.Is(err, service.ErrUnknownNetwork) {
			t.Errorf("Get after Remove: %v", err)
		}
	})
	t.Run("Label", func(t *testing.T) {
		c := newCatalog(t)
		r := record(uuid.NewString(), 1)
		if err := c.Add(ctx, r, 10); err != nil {
			t.Fatal(err)
		}
		// Label changes the name and notes, not the version.
		r.Name, r.Notes = "renamed ✓", strings.Repeat("ü", 2000)
		if err := c.Label(ctx, r.ID, r.Name, r.Notes); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Get(ctx, r.ID); err != nil || !sameRecord(got, r) {
			t.Errorf("after Label: %+v, %v; want %+v", got, err, r)
		}
		// A save's Update keeps them, whatever its record says.
		saved := r
		saved.Version, saved.Name, saved.Notes = 2, "a stale name", ""
		if err := c.Update(ctx, saved); err != nil {
			t.Fatal(err)
		}
		r.Version = 2
		if got, _ := c.Get(ctx, r.ID); !sameRecord(got, r) {
			t.Errorf("after an Update: %+v, want the label kept", got)
		}
		if list, err := c.List(ctx); err != nil || len(list) != 1 || !sameRecord(list[0], r) {
			t.Errorf("List: %+v, %v", list, err)
		}
		if err := c.Label(ctx, r.ID, "", ""); err != nil {
			t.Fatal(err)
		}
		r.Name, r.Notes = "", ""
		if got, _ := c.Get(ctx, r.ID); !sameRecord(got, r) {
			t.Errorf("after a Label clearing both: %+v", got)
		}
		if err := c.Label(ctx, uuid.NewString(), "x", ""); !errors.Is(err, service.ErrUnknownNetwork) {
			t.Errorf("Label of an unknown network: %v", err)
		}
	})
	t.Run("LockSavesIsExclusivePerNetwork", func(t *testing.T) {
		c := newCatalog(t)
		a, b := uuid.NewString(), uuid.NewString()
		unlockA, err := c.LockSaves(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		// Another network's lock is free.
		unlockB, err := c.LockSaves(ctx, b)
		if err != nil {
			t.Fatalf("a second network's lock: %v", err)
		}
		unlockB()
		// a's lock waits until it is released, or until ctx ends.
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := c.LockSaves(short, a); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a held lock was taken: %v", err)
		}
		got := make(chan func(), 1)
		go func() {
			u, err := c.LockSaves(ctx, a)
			if err != nil {
				t.Error(err)
				u = func() {}
			}
			got <- u
		}()
		select {
		case <-got:
			t.Fatal("the lock was taken while held")
		case <-time.After(50 * time.Millisecond): // the behaviour under test is that nothing happens
		}
		unlockA()
		unlockA() // a second unlock is harmless
		select {
		case u := <-got:
			u()
		case <-time.After(waitLimit):
			t.Fatal("the lock was not handed on when released")
		}
	})
}

// QueueOptions say how a Queue implementation behaves where the contract
// leaves it a choice.
type QueueOptions struct {
	// HandsOver: Stop leaves pending jobs for other replicas and stops
	// running ones with service.ErrHandOver (scaled mode). Otherwise Stop
	// fails pending jobs and stops running ones as shutting down.
	HandsOver bool
}

// NewQueue returns an empty queue with the given workers and limits,
// measuring time with now.
type NewQueue func(t *testing.T, workers int, lim service.Limits, now func() time.Time) service.Queue

// worker is a Work that reports the jobs it runs and finishes them only
// when told, the way the service does: it records epochs and ends the job.
type worker struct {
	q       service.Queue
	mu      sync.Mutex
	running map[string]bool // job id → running now
	order   []string        // jobs in the order they started
	maxPar  map[string]int  // network → most jobs of it running at once
	release map[string]chan struct{}
	started chan string
	causes  map[string]error // job → the cause its ctx ended with
}

func newWorker(q service.Queue) *worker {
	return &worker{q: q, running: map[string]bool{}, maxPar: map[string]int{}, release: map[string]chan struct{}{},
		started: make(chan string, 100), causes: map[string]error{}}
}

func (w *worker) releaseCh(id string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.release[id]
	if ch == nil {
		ch = make(chan struct{})
		w.release[id] = ch
	}
	return ch
}

func (w *worker) work(ctx context.Context, j service.JobInfo) error {
	w.mu.Lock()
	w.running[j.ID] = true
	w.order = append(w.order, j.ID)
	n := 0
	for id := range w.running {
		if info, _ := w.q.Get(context.Background(), id); info.NetworkID == j.NetworkID {
			n++
		}
	}
	w.maxPar[j.NetworkID] = max(w.maxPar[j.NetworkID], n)
	w.mu.Unlock()
	w.started <- j.ID
	defer func() {
		w.mu.Lock()
		delete(w.running, j.ID)
		w.mu.Unlock()
	}()
	if j.Status != service.StatusTraining || j.StartedAt.IsZero() {
		return fmt.Errorf("work got job %s as %s, started %v", j.ID, j.Status, j.StartedAt)
	}
	select {
	case <-w.releaseCh(j.ID):
		if err := w.q.Epoch(context.Background(), j.ID, service.EpochResult{Epoch: j.Epoch + 1, Correct: 9000, Total: 10000, Accuracy: 0.9, ElapsedTime: 0.25,
			ValidationAccuracy: new(0.91), TrainingCost: new(0.0625)}); err != nil {
			return err
		}
		_, _, err := w.q.End(context.Background(), j.ID, service.StatusCompleted, nil)
		return err
	case <-ctx.Done():
		cause := context.Cause(ctx)
		w.mu.Lock()
		w.causes[j.ID] = cause
		w.mu.Unlock()
		if errors.Is(cause, service.ErrHandOver) {
			return service.ErrHandOver
		}
		_, _, err := w.q.End(context.Background(), j.ID, service.StatusFailed, cause)
		return err
	}
}

// waitStarted waits until job id has started (jobs may start in any
// order: w.order records every start, the channel says when to look).
func (w *worker) waitStarted(t *testing.T, id string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		w.mu.Lock()
		started := slices.Contains(w.order, id)
		w.mu.Unlock()
		if started {
			return
		}
		select {
		case <-w.started:
		case <-deadline:
			t.Fatalf("job %s did not start", id)
		}
	}
}

func waitStatus(t *testing.T, q service.Queue, id string, want service.JobStatus) service.JobInfo {
	t.Helper()
	var j service.JobInfo
	var err error
	if !testutil.Poll(waitLimit, testutil.Every, func() bool {
		j, err = q.Get(context.Background(), id)
		return err == nil && j.Status == want
	}) {
		t.Fatalf("job %s: %+v, %v; want status %s", id, j, err, want)
	}
	return j
}

func job(network string, epochs int) service.JobInfo {
	seed := uint64(5)
	return service.JobInfo{ID: uuid.NewString(), NetworkID: network, Status: service.StatusPending,
		Params:    service.TrainParams{Epochs: epochs, MiniBatch: 10, LearningRate: 3, Cost: service.CostQuadratic, Seed: &seed},
		CreatedAt: time.Now().UTC()}
}

// sameEpoch reports whether two epoch results say the same.
func sameEpoch(a, b service.EpochResult) bool {
	same := func(x, y *float64) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Epoch == b.Epoch && a.Correct == b.Correct && a.Total == b.Total && a.Accuracy == b.Accuracy &&
		a.ElapsedTime == b.ElapsedTime && same(a.ValidationAccuracy, b.ValidationAccuracy) && same(a.TrainingCost, b.TrainingCost)
}

// mustAdd adds j with room for maxQueued pending jobs, failing the test
// if the queue refuses it.
func mustAdd(t *testing.T, q service.Queue, j service.JobInfo, maxQueued int) {
	t.Helper()
	if err := q.Add(context.Background(), j, service.Admission{MaxQueued: maxQueued}); err != nil {
		t.Fatalf("Add %s: %v", j.ID, err)
	}
}

// clock is a settable now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// RunQueue runs the Queue contract, each part a subtest of its own.
func RunQueue(t *testing.T, opts QueueOptions, newQueue NewQueue) {
	env := queueEnv{opts: opts, newQueue: newQueue, lim: service.DefaultLimits()}
	for _, tc := range []struct {
		name string
		test func(*testing.T, queueEnv)
	}{
		{"AddGetAndTheLimit", queueAddGetAndTheLimit},
		{"Admission", queueAdmission},
		{"AdmissionLifetimeEpochs", queueAdmissionLifetimeEpochs},
		{"OneJobPerNetworkInOrder", queueOneJobPerNetworkInOrder},
		{"End", queueEnd},
		{"EndNetwork", queueEndNetwork},
		{"Retention", queueRetention},
		{"List", queueList},
		{"ListRetention", queueListRetention},
		{"Stop", queueStop},
		{"TrainOptions", queueTrainOptions},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, env) })
	}
}

// queueEnv is what every part of the Queue contract starts from.
type queueEnv struct {
	opts     QueueOptions
	newQueue NewQueue
	lim      service.Limits
}

// stop stops q when the test ends.
func stopAtEnd(t *testing.T, q service.Queue) {
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		q.Stop(c)
	})
}

func queueAddGetAndTheLimit(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	a := job(uuid.NewString(), 3)
	if err := q.Add(ctx, a, service.Admission{MaxQueued: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Get(ctx, a.ID)
	if err != nil || got.ID != a.ID || got.NetworkID != a.NetworkID || got.Status != service.StatusPending ||
		got.Params.Epochs != 3 || got.Params.Seed == nil || *got.Params.Seed != 5 || got.Epoch != 0 || len(got.History) != 0 {
		t.Errorf("Get: %+v, %v", got, err)
	}
	if err := q.Add(ctx, job(a.NetworkID, 1), service.Admission{MaxQueued: 2}); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, job(a.NetworkID, 1), service.Admission{MaxQueued: 2}); !errors.Is(err, service.ErrQueueIsFull) {
		t.Errorf("a third pending job with a limit of 2: %v", err)
	}
	if _, err := q.Get(ctx, uuid.NewString()); !errors.Is(err, service.ErrUnknownJob) {
		t.Errorf("Get of an unknown job: %v", err)
	}
	a2, err := q.Active(ctx)
	if err != nil || a2.Queued != 2 || a2.Running != 0 || a2.Current[a.NetworkID] != a.ID {
		t.Errorf("Active: %+v, %v", a2, err)
	}
}

func queueAdmission(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	from := func(client string, j service.JobInfo) service.JobInfo { j.Client = client; return j }
	perClient := service.Admission{MaxQueued: 10, MaxQueuedPerClient: 2}
	for i := range 2 {
		if err := q.Add(ctx, from("192.0.2.1", job(uuid.NewString(), 1)), perClient); err != nil {
			t.Fatalf("pending job %d of client 1: %v", i+1, err)
		}
	}
	if err := q.Add(ctx, from("192.0.2.1", job(uuid.NewString(), 1)), perClient); !errors.Is(err, service.ErrClientQueueIsFull) {
		t.Errorf("a third pending job of one client with a bound of 2: %v", err)
	}
	for _, c := range []string{"192.0.2.2", "", ""} {
		if err := q.Add(ctx, from(c, job(uuid.NewString(), 1)), perClient); err != nil {
			t.Errorf("a job of client %q while client 1 is at its bound: %v", c, err)
		}
	}
}

func queueAdmissionLifetimeEpochs(t *testing.T, env queueEnv) {
	ctx := context.Background()
	// A network's life: trained + what its unfinished jobs still have
	// to run + the new job, within MaxNetworkEpochs.
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	w := newWorker(q)
	net := uuid.NewString()
	life := func(trained int) service.Admission {
		return service.Admission{MaxQueued: 100, MaxNetworkEpochs: 10, EpochsTrained: trained}
	}
	running := job(net, 4)
	if err := q.Add(ctx, running, life(2)); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, job(net, 3), life(2)); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, job(net, 2), life(2)); !errors.Is(err, service.ErrLifetimeEpochs) {
		t.Errorf("2 trained + 4 + 3 queued, 2 more with a life of 10: %v", err)
	}
	if err := q.Add(ctx, job(uuid.NewString(), 8), life(2)); err != nil {
		t.Errorf("another network's job: %v", err)
	}
	// A job that runs counts only its epochs not yet done.
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.waitStarted(t, running.ID)
	if err := q.Epoch(ctx, running.ID, service.EpochResult{Epoch: 1, Correct: 1, Total: 2, Accuracy: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := q.Add(ctx, job(net, 1), life(3)); err != nil {
		t.Errorf("3 trained + 3 left of the running job + 3 queued + 1, with a life of 10: %v", err)
	}
	if err := q.Add(ctx, job(net, 1), life(3)); !errors.Is(err, service.ErrLifetimeEpochs) {
		t.Errorf("one more epoch than the life allows: %v", err)
	}
	close(w.releaseCh(running.ID))
}

func queueOneJobPerNetworkInOrder(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 2, env.lim, nil)
	stopAtEnd(t, q)
	w := newWorker(q)
	netA, netB := uuid.NewString(), uuid.NewString()
	a1, a2, b1 := job(netA, 1), job(netA, 1), job(netB, 1)
	for _, j := range []service.JobInfo{a1, a2, b1} {
		if err := q.Add(ctx, j, service.Admission{MaxQueued: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	// a1 and b1 run together on the two workers; a2 waits for a1.
	w.waitStarted(t, a1.ID)
	waitStatus(t, q, b1.ID, service.StatusTraining)
	if j, _ := q.Get(ctx, a2.ID); j.Status != service.StatusPending {
		t.Errorf("a2 is %s while a1 runs", j.Status)
	}
	act, _ := q.Active(ctx)
	if act.Running != 2 || act.Queued != 1 || act.Current[netA] != a1.ID || act.Current[netB] != b1.ID {
		t.Errorf("Active: %+v", act)
	}
	close(w.releaseCh(a1.ID))
	done := waitStatus(t, q, a1.ID, service.StatusCompleted)
	if done.Epoch != 1 || done.Accuracy == nil || *done.Accuracy != 0.9 || len(done.History) != 1 ||
		!sameEpoch(done.History[0], service.EpochResult{Epoch: 1, Correct: 9000, Total: 10000, Accuracy: 0.9, ElapsedTime: 0.25,
			ValidationAccuracy: new(0.91), TrainingCost: new(0.0625)}) ||
		done.ElapsedTime != 0.25 || done.FinishedAt.IsZero() || done.StartedAt.IsZero() {
		t.Errorf("completed job: %+v", done)
	}
	w.waitStarted(t, a2.ID)
	close(w.releaseCh(a2.ID))
	close(w.releaseCh(b1.ID))
	waitStatus(t, q, a2.ID, service.StatusCompleted)
	waitStatus(t, q, b1.ID, service.StatusCompleted)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.maxPar[netA] != 1 {
		t.Errorf("%d jobs of one network ran at once", w.maxPar[netA])
	}
	if ia, ib := slices.Index(w.order, a1.ID), slices.Index(w.order, a2.ID); ia < 0 || ib < ia {
		t.Errorf("order %v: a2 before a1", w.order)
	}
}

func queueEnd(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	w := newWorker(q)
	net := uuid.NewString()
	running, pending := job(net, 1), job(net, 1)
	mustAdd(t, q, running, 10)
	mustAdd(t, q, pending, 10)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.waitStarted(t, running.ID)

	//lint:ignore ST1005 the client's message, capitalised as the wire has it
	j, e, err := q.End(ctx, pending.ID, service.StatusCancelled, errors.New(service.MsgCancelled))
	if err != nil || !e.Now || !e.WasPending || j.Status != service.StatusCancelled || j.Error != "internal error" && j.Error != "Training cancelled" {
		t.Errorf("End of a pending job: %+v %+v %v", j, e, err)
	}
	j, e, err = q.End(ctx, running.ID, service.StatusCancelled, service.Errorf(service.Conflict, "Training cancelled"))
	if err != nil || !e.Now || e.WasPending || j.Status != service.StatusCancelled || j.Error != "Training cancelled" {
		t.Errorf("End of a running job: %+v %+v %v", j, e, err)
	}
	// The running job's Work stops; the job keeps the status it was
	// ended with.
	testutil.Eventually(t, waitLimit, "the running job's Work to stop", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		_, stopped := w.causes[running.ID]
		return stopped
	})
	if j, _ := q.Get(ctx, running.ID); j.Status != service.StatusCancelled || j.Error != "Training cancelled" {
		t.Errorf("after its Work stopped: %+v", j)
	}
	j, e, err = q.End(ctx, running.ID, service.StatusFailed, errors.New("x"))
	if err != nil || e.Now || j.Status != service.StatusCancelled {
		t.Errorf("End of an ended job: %+v %+v %v", j, e, err)
	}
	if _, _, err := q.End(ctx, uuid.NewString(), service.StatusCancelled, nil); !errors.Is(err, service.ErrUnknownJob) {
		t.Errorf("End of an unknown job: %v", err)
	}
	if err := q.Epoch(ctx, running.ID, service.EpochResult{Epoch: 1, Correct: 1, Total: 2, Accuracy: 0.5}); !errors.Is(err, service.ErrJobEnded) {
		t.Errorf("Epoch of an ended job: %v", err)
	}
}

func queueEndNetwork(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 2, env.lim, nil)
	stopAtEnd(t, q)
	w := newWorker(q)
	gone, other := uuid.NewString(), uuid.NewString()
	running, p1, p2, kept := job(gone, 1), job(gone, 1), job(gone, 1), job(other, 1)
	for _, j := range []service.JobInfo{running, p1, p2, kept} {
		mustAdd(t, q, j, 10)
	}
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.waitStarted(t, running.ID)
	w.waitStarted(t, kept.ID)
	deleted := service.Errorf(service.Conflict, "the network was deleted")
	pending, err := q.EndNetwork(ctx, gone, service.StatusFailed, deleted)
	if err != nil || len(pending) != 2 {
		t.Fatalf("EndNetwork: %+v, %v", pending, err)
	}
	for _, j := range pending {
		if (j.ID != p1.ID && j.ID != p2.ID) || j.Status != service.StatusFailed || j.Error != "the network was deleted" {
			t.Errorf("ended pending job %+v", j)
		}
	}
	waitStatus(t, q, running.ID, service.StatusFailed)
	if j, _ := q.Get(ctx, kept.ID); j.Status != service.StatusTraining {
		t.Errorf("another network's job: %+v", j)
	}
	close(w.releaseCh(kept.ID))
	waitStatus(t, q, kept.ID, service.StatusCompleted)
	act, _ := q.Active(ctx)
	if act.Queued != 0 || act.Running != 0 || len(act.Current) != 0 {
		t.Errorf("Active after everything ended: %+v", act)
	}
}

func queueRetention(t *testing.T, env queueEnv) {
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC()}
	l := env.lim
	l.MaxFinishedJobs, l.JobRetention = 3, time.Hour
	q := env.newQueue(t, 1, l, clk.now)
	stopAtEnd(t, q)
	var ids []string
	for range 5 {
		j := job(uuid.NewString(), 1)
		mustAdd(t, q, j, 100)
		if _, _, err := q.End(ctx, j.ID, service.StatusCancelled, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
		clk.add(time.Second)
	}
	waiting := job(uuid.NewString(), 1)
	mustAdd(t, q, waiting, 100)
	for i, id := range ids {
		_, err := q.Get(ctx, id)
		if forgotten := i < 2; forgotten != errors.Is(err, service.ErrUnknownJob) {
			t.Errorf("finished job %d of 5: %v (want forgotten=%v)", i+1, err, forgotten)
		}
	}
	clk.add(time.Hour)
	for _, id := range ids[2:] {
		if _, err := q.Get(ctx, id); !errors.Is(err, service.ErrUnknownJob) {
			t.Errorf("an hour later: %v", err)
		}
	}
	if j, err := q.Get(ctx, waiting.ID); err != nil || j.Status != service.StatusPending {
		t.Errorf("a pending job was forgotten: %+v %v", j, err)
	}
}

func queueStop(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	w := newWorker(q)
	net := uuid.NewString()
	running, pending := job(net, 1), job(net, 1)
	mustAdd(t, q, running, 10)
	mustAdd(t, q, pending, 10)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.waitStarted(t, running.ID)
	c, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	ended, err := q.Stop(c)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	cause := w.causes[running.ID]
	w.mu.Unlock()
	if env.opts.HandsOver {
		if len(ended) != 0 || !errors.Is(cause, service.ErrHandOver) {
			t.Errorf("Stop ended %+v; the running job's cause: %v; want none and a hand-over", ended, cause)
		}
		return
	}
	if len(ended) != 1 || ended[0].ID != pending.ID || ended[0].Status != service.StatusFailed {
		t.Errorf("Stop ended %+v, want the pending job, failed", ended)
	}
	if j, _ := q.Get(ctx, running.ID); cause == nil || j.Status != service.StatusFailed || j.Error != service.ErrorMessage(cause) {
		t.Errorf("the running job after Stop: %+v (cause %v)", j, cause)
	}
	if err := q.Add(ctx, job(net, 1), service.Admission{MaxQueued: 10}); err == nil {
		t.Error("a job was added after Stop")
	}
}

// queueTrainOptions: a job's early stopping options are kept with it and
// handed to its Work; its best epoch and whether it stopped early are read
// from the epochs the queue recorded.
func queueTrainOptions(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	early := job(uuid.NewString(), 10)
	early.Params.StopAfterNoImprovement, early.Params.RestoreBest = 2, true
	plain := job(uuid.NewString(), 2)
	mustAdd(t, q, early, 10)
	mustAdd(t, q, plain, 10)
	handed := make(chan service.JobInfo, 2)
	err := q.Start(func(_ context.Context, j service.JobInfo) error {
		handed <- j
		vals := []float64{0.9, 0.93, 0.93, 0.92}
		if j.Params.StopAfterNoImprovement == 0 {
			vals = vals[:j.Params.Epochs]
		}
		for i, v := range vals {
			if err := q.Epoch(ctx, j.ID, service.EpochResult{Epoch: i + 1, Correct: 9000, Total: 10000, Accuracy: 0.9,
				ElapsedTime: 0.1, ValidationAccuracy: new(v), TrainingCost: new(0.1)}); err != nil {
				return err
			}
		}
		_, _, err := q.End(ctx, j.ID, service.StatusCompleted, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case j := <-handed:
			want := plain.Params
			if j.ID == early.ID {
				want = early.Params
			}
			if j.Params.StopAfterNoImprovement != want.StopAfterNoImprovement || j.Params.RestoreBest != want.RestoreBest {
				t.Errorf("Work got job %s with %+v, want %+v", j.ID, j.Params, want)
			}
		case <-time.After(waitLimit):
			t.Fatal("the jobs did not run")
		}
	}
	got := waitStatus(t, q, early.ID, service.StatusCompleted)
	if got.Params.StopAfterNoImprovement != 2 || !got.Params.RestoreBest || got.Epoch != 4 ||
		got.BestEpoch() != 2 || !got.StoppedEarly() {
		t.Errorf("the job stopped early: %+v, best epoch %d, stopped early %v; want options kept, best epoch 2, stopped early",
			got.Params, got.BestEpoch(), got.StoppedEarly())
	}
	got = waitStatus(t, q, plain.ID, service.StatusCompleted)
	if got.Params.StopAfterNoImprovement != 0 || got.Params.RestoreBest || got.BestEpoch() != 2 || got.StoppedEarly() {
		t.Errorf("the job without options: %+v, best epoch %d, stopped early %v", got.Params, got.BestEpoch(), got.StoppedEarly())
	}
}

// ids are the ids of jobs, in order.
func ids(jobs []service.JobInfo) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// listAll follows the pages of f to the end, checking that each but the
// last is full, and returns the ids in order.
func listAll(t *testing.T, q service.Queue, f service.JobFilter) []string {
	t.Helper()
	var all []string
	for range 100 {
		p, err := q.List(context.Background(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		all = append(all, ids(p.Jobs)...)
		if p.Next == 0 {
			return all
		}
		if len(p.Jobs) != f.Limit {
			t.Fatalf("List(%+v): a page of %d jobs with a next page", f, len(p.Jobs))
		}
		if p.Next < 0 {
			t.Fatalf("List(%+v): next %d", f, p.Next)
		}
		f.Before = p.Next
	}
	t.Fatalf("List(%+v): more than 100 pages", f)
	return nil
}

func queueList(t *testing.T, env queueEnv) {
	ctx := context.Background()
	q := env.newQueue(t, 1, env.lim, nil)
	stopAtEnd(t, q)
	if p, err := q.List(ctx, service.JobFilter{Limit: 10}); err != nil || len(p.Jobs) != 0 || p.Next != 0 {
		t.Fatalf("List of an empty queue: %+v, %v", p, err)
	}
	netA, netB := uuid.NewString(), uuid.NewString()
	a1, b1, a2, b2, a3 := job(netA, 1), job(netB, 2), job(netA, 3), job(netB, 4), job(netA, 5)
	for _, j := range []service.JobInfo{a1, b1, a2, b2, a3} {
		mustAdd(t, q, j, 100)
	}
	if _, _, err := q.End(ctx, a1.ID, service.StatusCancelled, errors.New("x")); err != nil {
		t.Fatal(err)
	}
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	// The one worker takes the oldest pending job: b1.
	w.waitStarted(t, b1.ID)
	waitStatus(t, q, b1.ID, service.StatusTraining)

	st := func(s ...service.JobStatus) []service.JobStatus { return s }
	for _, tc := range []struct {
		name string
		f    service.JobFilter
		want []service.JobInfo
	}{
		{"every job, newest first", service.JobFilter{Limit: 100}, []service.JobInfo{a3, b2, a2, b1, a1}},
		{"pages of 2", service.JobFilter{Limit: 2}, []service.JobInfo{a3, b2, a2, b1, a1}},
		{"pages of 1", service.JobFilter{Limit: 1}, []service.JobInfo{a3, b2, a2, b1, a1}},
		{"a page of exactly all", service.JobFilter{Limit: 5}, []service.JobInfo{a3, b2, a2, b1, a1}},
		{"one network", service.JobFilter{NetworkID: netA, Limit: 2}, []service.JobInfo{a3, a2, a1}},
		{"another network", service.JobFilter{NetworkID: netB, Limit: 100}, []service.JobInfo{b2, b1}},
		{"a network without jobs", service.JobFilter{NetworkID: uuid.NewString(), Limit: 100}, nil},
		{"pending", service.JobFilter{Statuses: st(service.StatusPending), Limit: 100}, []service.JobInfo{a3, b2, a2}},
		{"training", service.JobFilter{Statuses: st(service.StatusTraining), Limit: 100}, []service.JobInfo{b1}},
		{"cancelled", service.JobFilter{Statuses: st(service.StatusCancelled), Limit: 100}, []service.JobInfo{a1}},
		{"completed", service.JobFilter{Statuses: st(service.StatusCompleted), Limit: 100}, nil},
		{"unfinished", service.JobFilter{Statuses: st(service.StatusPending, service.StatusTraining), Limit: 2}, []service.JobInfo{a3, b2, a2, b1}},
		{"network and status", service.JobFilter{NetworkID: netA, Statuses: st(service.StatusPending), Limit: 1}, []service.JobInfo{a3, a2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := listAll(t, q, tc.f), ids(tc.want); !slices.Equal(got, want) {
				t.Errorf("List(%+v) = %v, want %v", tc.f, got, want)
			}
		})
	}

	// What a listed job says: Get's fields, without the history.
	p, err := q.List(ctx, service.JobFilter{NetworkID: netB, Limit: 100})
	if err != nil || len(p.Jobs) != 2 {
		t.Fatalf("List: %+v, %v", p, err)
	}
	for _, got := range p.Jobs {
		want, err := q.Get(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.NetworkID != want.NetworkID || got.Status != want.Status || got.Epoch != want.Epoch ||
			got.Params.Epochs != want.Params.Epochs || got.Params.Seed == nil || *got.Params.Seed != *want.Params.Seed ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.StartedAt.Equal(want.StartedAt) || len(got.History) != 0 {
			t.Errorf("listed %+v\n   Get %+v", got, want)
		}
	}

	// A cursor stays good while newer jobs come: the next page is the same.
	first, err := q.List(ctx, service.JobFilter{Limit: 2})
	if err != nil || first.Next == 0 {
		t.Fatalf("List: %+v, %v", first, err)
	}
	mustAdd(t, q, job(netA, 1), 100)
	next, err := q.List(ctx, service.JobFilter{Limit: 2, Before: first.Next})
	if err != nil || !slices.Equal(ids(next.Jobs), []string{a2.ID, b1.ID}) {
		t.Errorf("the page after the first, once a job was added: %v, %v; want a2, b1", ids(next.Jobs), err)
	}
	close(w.releaseCh(b1.ID))
	waitStatus(t, q, b1.ID, service.StatusCompleted)
	if got := listAll(t, q, service.JobFilter{Statuses: st(service.StatusCompleted), Limit: 10}); !slices.Equal(got, []string{b1.ID}) {
		t.Errorf("completed after b1 completed: %v", got)
	}
}

func queueListRetention(t *testing.T, env queueEnv) {
	ctx := context.Background()
	clk := &clock{t: time.Now().UTC()}
	l := env.lim
	l.MaxFinishedJobs, l.JobRetention = 2, time.Hour
	q := env.newQueue(t, 1, l, clk.now)
	stopAtEnd(t, q)
	var ended []service.JobInfo
	for range 3 {
		j := job(uuid.NewString(), 1)
		mustAdd(t, q, j, 100)
		if _, _, err := q.End(ctx, j.ID, service.StatusFailed, errors.New("x")); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, j)
		clk.add(time.Second)
	}
	waiting := job(uuid.NewString(), 1)
	mustAdd(t, q, waiting, 100)
	// The first to end is forgotten (MaxFinishedJobs 2); the pending one never.
	if got, want := listAll(t, q, service.JobFilter{Limit: 1}), []string{waiting.ID, ended[2].ID, ended[1].ID}; !slices.Equal(got, want) {
		t.Errorf("List with 2 finished jobs kept: %v, want %v", got, want)
	}
	clk.add(time.Hour)
	if got, want := listAll(t, q, service.JobFilter{Limit: 10}), []string{waiting.ID}; !slices.Equal(got, want) {
		t.Errorf("List an hour later: %v, want %v", got, want)
	}
}

package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// tracker watches the jobs a training Work runs: never two of a network
// at once, and each network's jobs first started in the order they were
// added.
type tracker struct {
	mu       sync.Mutex
	running  map[string]string   // network → job running
	started  map[string][]string // network → jobs, in the order first started
	resumed  int                 // starts of a job started before
	waiting  int                 // Works waiting for a token
	problems []string
}

func (tr *tracker) begin(j service.JobInfo) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if other := tr.running[j.NetworkID]; other != "" {
		tr.problems = append(tr.problems, fmt.Sprintf("job %s started while %s of its network runs", j.ID, other))
	}
	tr.running[j.NetworkID] = j.ID
	if slices.Contains(tr.started[j.NetworkID], j.ID) {
		tr.resumed++
	} else {
		tr.started[j.NetworkID] = append(tr.started[j.NetworkID], j.ID)
	}
}

func (tr *tracker) end(j service.JobInfo) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	delete(tr.running, j.NetworkID)
}

// trainWork is a Work that trains as the service does: it records the
// epochs left one at a time, each when a token comes from tokens, then
// completes the job; it hands over or fails the job when its context ends.
func trainWork(q service.Queue, tr *tracker, tokens <-chan struct{}) service.Work {
	return func(ctx context.Context, j service.JobInfo) error {
		tr.begin(j)
		defer tr.end(j)
		for e := j.Epoch + 1; e <= j.Params.Epochs; e++ {
			tr.mu.Lock()
			tr.waiting++
			tr.mu.Unlock()
			var ended bool
			select {
			case <-tokens:
			case <-ctx.Done():
				ended = true
			}
			tr.mu.Lock()
			tr.waiting--
			tr.mu.Unlock()
			if ended {
				cause := context.Cause(ctx)
				if errors.Is(cause, service.ErrHandOver) {
					return service.ErrHandOver
				}
				_, _, err := q.End(context.Background(), j.ID, service.StatusFailed, cause)
				return err
			}
			err := q.Epoch(context.Background(), j.ID, service.EpochResult{Epoch: e, Correct: e, Total: 100,
				Accuracy: float64(e) / 100, ElapsedTime: 0.01})
			if errors.Is(err, service.ErrJobEnded) {
				return nil // ended meanwhile
			}
			if err != nil {
				return err
			}
		}
		_, _, err := q.End(context.Background(), j.ID, service.StatusCompleted, nil)
		return err
	}
}

// Jobs added, cancelled, read and run from many goroutines at once, with
// a restart in the middle (a Stop while every worker runs a job, the file
// reopened with another number of workers): no network runs two jobs at
// once, each network's jobs start in order, every job ends, and each one's
// history is its epochs, 1, 2, 3... without a gap or a repeat across the
// restart.
func TestConcurrentUseAndRestart(t *testing.T) {
	ctx := context.Background()
	const networks, jobsPerNetwork = 6, 8
	path := dbPath(t)
	tr := &tracker{running: map[string]string{}, started: map[string][]string{}}
	var (
		mu    sync.Mutex
		added = map[string][]string{}        // network → jobs in the order added
		all   = map[string]service.JobInfo{} // by id
	)

	// Phase 1: adds, cancels and reads race the workers, which train 20
	// epochs in all; then the queue stops, with jobs running.
	db := openDB(t, path)
	q := newQueue(t, db, 3, service.Limits{}, nil)
	tokens := make(chan struct{})
	if err := q.Start(trainWork(q, tr, tokens)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for n := range networks {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(1, uint64(n)))
			net := uuid.NewString()
			for range jobsPerNetwork {
				j := job(net, 1+rng.IntN(3))
				j.Client = fmt.Sprintf("192.0.2.%d", rng.IntN(3))
				if err := q.Add(ctx, j, service.Admission{MaxQueued: 1000, MaxQueuedPerClient: 1000}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				added[net] = append(added[net], j.ID)
				all[j.ID] = j
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(2, 0))
		for cancelled := 0; cancelled < 8; {
			mu.Lock()
			ids := make([]string, 0, len(all))
			for id := range all {
				ids = append(ids, id)
			}
			mu.Unlock()
			if len(ids) == 0 {
				runtime.Gosched()
				continue
			}
			slices.Sort(ids)
			_, e, err := q.End(ctx, ids[rng.IntN(len(ids))], service.StatusCancelled, service.Errorf(service.Conflict, service.MsgCancelled))
			if err != nil {
				t.Error(err)
				return
			}
			if e.Now {
				cancelled++
			}
		}
	})
	readsDone := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-readsDone:
					return
				default:
				}
				if _, err := q.Active(ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				var id string
				for id = range all {
					break
				}
				mu.Unlock()
				if id != "" {
					if _, err := q.Get(ctx, id); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for range 20 {
		tokens <- struct{}{}
	}
	wg.Wait()
	close(readsDone)
	readers.Wait()
	// Stop with every worker in the middle of a job.
	testutil.Eventually(t, waitLimit, "every worker to wait in the middle of a job", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.waiting == 3
	})
	stop(t, q)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Phase 2: reopened with 2 workers, which train without waiting; the
	// network of one of the jobs left training is deleted first.
	db2 := openDB(t, path)
	q2 := newQueue(t, db2, 2, service.Limits{}, nil)
	act, err := q2.Active(ctx)
	if err != nil || act.Running != 3 {
		t.Fatalf("after the restart: %+v, %v; want the 3 jobs running at Stop left training", act, err)
	}
	var gone string
	for _, net := range slices.Sorted(maps.Keys(added)) {
		if j, _ := q2.Get(ctx, act.Current[net]); j.Status == service.StatusTraining {
			gone = net
			break
		}
	}
	if _, err := q2.EndNetwork(ctx, gone, service.StatusFailed, service.Errorf(service.Conflict, "the network was deleted")); err != nil {
		t.Fatal(err)
	}
	free := make(chan struct{})
	close(free)
	if err := q2.Start(trainWork(q2, tr, free)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitLimit, "every job to end", func() bool {
		a, err := q2.Active(ctx)
		return err == nil && a.Queued == 0 && a.Running == 0
	})

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, p := range tr.problems {
		t.Error(p)
	}
	for net, ids := range added {
		if started := tr.started[net]; !isSubsequence(started, ids) {
			t.Errorf("network %s: jobs started in the order %v, added in the order %v", net, started, ids)
		}
	}
	counts := map[service.JobStatus]int{}
	for id, want := range all {
		j := mustGet(t, q2, id)
		counts[j.Status]++
		if !j.Status.Finished() {
			t.Errorf("job %s did not end: %+v", id, j)
		}
		if j.Status == service.StatusCompleted && j.Epoch != want.Params.Epochs {
			t.Errorf("job %s completed after %d of its %d epochs", id, j.Epoch, want.Params.Epochs)
		}
		if len(j.History) != j.Epoch {
			t.Errorf("job %s: epoch %d, history %+v", id, j.Epoch, j.History)
		}
		for i, e := range j.History {
			if e.Epoch != i+1 {
				t.Errorf("job %s: history %+v, not epochs 1, 2, 3...", id, j.History)
				break
			}
		}
	}
	t.Logf("jobs: %v; %d resumed after the restart", counts, tr.resumed)
	if tr.resumed != 2 {
		t.Errorf("%d jobs resumed after the restart, want the 2 left training whose network is kept", tr.resumed)
	}
	if counts[service.StatusCompleted] == 0 || counts[service.StatusCancelled] != 8 {
		t.Errorf("jobs: %v; want some completed and 8 cancelled", counts)
	}
}

// isSubsequence reports whether every element of sub is in seq, in the
// same order.
func isSubsequence(sub, seq []string) bool {
	i := 0
	for _, s := range seq {
		if i < len(sub) && sub[i] == s {
			i++
		}
	}
	return i == len(sub)
}

package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/dirstore"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/service"
)

// The service on this queue, wired as cmd/server wires single mode: models
// in a directory (pkg/dirstore), the job database beside them. Jobs outlive
// the process: one running when the service stops tells its clients it is
// interrupted and resumes in the next process from its last saved epoch,
// training exactly as the uninterrupted job would; pending ones stay
// pending; finished ones are still answered.

// events records the events of a service. block, if set, is called on the
// job's goroutine with each training_update, which waits for it.
type events struct {
	mu     sync.Mutex
	all    []any
	signal chan struct{}
	block  func(service.Update)
}

func newEvents() *events { return &events{signal: make(chan struct{}, 1)} }

func (e *events) add(v any) {
	e.mu.Lock()
	e.all = append(e.all, v)
	e.mu.Unlock()
	select {
	case e.signal <- struct{}{}:
	default:
	}
}

func (e *events) TrainingUpdate(u service.Update) {
	e.add(u)
	e.mu.Lock()
	block := e.block
	e.mu.Unlock()
	if block != nil {
		block(u)
	}
}

// blockWith sets block.
func (e *events) blockWith(f func(service.Update)) {
	e.mu.Lock()
	e.block = f
	e.mu.Unlock()
}
func (e *events) TrainingProgress(service.Progress)   {}
func (e *events) TrainingComplete(c service.Complete) { e.add(c) }
func (e *events) TrainingError(f service.Failure)     { e.add(f) }

// of returns the events of job id, in order, as strings such as
// "update 3 (network 3)", "complete", "error interrupted".
func (e *events) of(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, v := range e.all {
		switch v := v.(type) {
		case service.Update:
			if v.JobID == id {
				out = append(out, fmt.Sprintf("update %d (network %d)", v.Epoch, v.NetworkEpoch))
			}
		case service.Complete:
			if v.JobID == id {
				out = append(out, "complete")
			}
		case service.Failure:
			if v.JobID == id {
				out = append(out, "error "+string(v.Status))
			}
		}
	}
	return out
}

// trainLimit bounds a wait for jobs to train: a guard against hangs, long
// enough for a few epochs on a busy machine under the race detector.
const trainLimit = 3 * time.Minute

// wait waits until ok holds of job id's events.
func (e *events) wait(t *testing.T, id, what string, ok func([]string) bool) {
	t.Helper()
	deadline := time.After(trainLimit)
	for !ok(e.of(id)) {
		select {
		case <-e.signal:
		case <-deadline:
			t.Fatalf("job %s: no %s within %v; its events: %v", id, what, trainLimit, e.of(id))
		}
	}
}

// ended waits for job id's final event (complete or an error but
// interrupted).
func (e *events) ended(t *testing.T, id string) {
	t.Helper()
	e.wait(t, id, "end", func(evs []string) bool {
		if len(evs) == 0 {
			return false
		}
		last := evs[len(evs)-1]
		return last == "complete" || strings.HasPrefix(last, "error ") && last != "error interrupted"
	})
}

// life is one process's service on a models directory.
type life struct {
	svc  *service.Service
	db   *DB
	q    *Queue
	once sync.Once
}

// live starts a service on dir and its job database, with ev its events
// and data its MNIST; it is stopped when the test ends, unless the test
// stopped it.
func live(t *testing.T, dir string, ev service.Events, data func() (*mnist.Dataset, error)) *life {
	t.Helper()
	st, err := dirstore.Open(dir, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, filepath.Join(dir, "jobs.db"))
	q := db.Queue(2, service.DefaultLimits(), nil)
	svc, err := service.New(t.Context(), service.Config{Data: data, Store: st, Events: ev, Workers: 2,
		Logger: testLogger(t), Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	l := &life{svc: svc, db: db, q: q}
	t.Cleanup(func() { l.stop(t) })
	return l
}

// stop closes the service, then the database, as cmd/server does.
func (l *life) stop(t *testing.T) {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), trainLimit)
		defer cancel()
		if err := l.svc.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := l.db.Close(); err != nil {
			t.Errorf("closing the database: %v", err)
		}
	})
}

// stopping reports whether the queue's Stop has begun (and so cancelled
// the Work of every running job).
func (q *Queue) stopping() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stopped
}

// A service stopped (SIGTERM) while two jobs train, with a third pending:
// the running ones get a training_error "interrupted", the next process
// resumes them after their second epoch, the pending one runs after its
// network's, and each trains as its uninterrupted twin did, epoch for epoch
// and weight for weight. One of the two is resumed as a crash between the
// save of its second epoch and its record in the queue leaves it (the
// network ahead of the job): it trains that epoch once, not twice.
func TestServiceResumesJobsAcrossARestart(t *testing.T) {
	jobSeed := uint64(11)
	arch, err := service.DefaultLimits().NewArchitecture([]int{784, 10, 10})
	if err != nil {
		t.Fatal(err)
	}
	fc := service.CreateParams{Arch: arch, Init: service.InitNormal}
	t.Run("layer_sizes", func(t *testing.T) {
		resumesAcrossARestart(t, testutil.MNIST, fc, service.TrainParams{Epochs: 5, MiniBatch: 50, LearningRate: 3, Cost: service.CostQuadratic, Seed: &jobSeed})
	})
	// A layers network with dropout, L2 and expand: its masks and shifted
	// images are drawn from the job's seed, so the resumed job trains as
	// the uninterrupted one, bit for bit.
	layers := service.CreateParams{Init: service.InitScaled, Layers: []deep.Layer{
		{Kind: deep.Conv, Filters: 2, Size: 5, Activation: deep.ReLU}, {Kind: deep.Pool, Size: 4},
		{Kind: deep.Softmax, Size: 10, Dropout: 0.2}}}
	t.Run("layers", func(t *testing.T) {
		// A tenth of MNIST (5,000 training images, 25,000 expanded; 1,000
		// validation and test images): five expanded epochs of five jobs
		// on the full set took three minutes under -race. With -short,
		// without expand: pkg/deep's TestResume covers expand's
		// resumption bit for bit.
		resumesAcrossARestart(t, tenth, layers, service.TrainParams{Epochs: 5, MiniBatch: 50, Lambda: 0.1, Expand: !testing.Short(), Seed: &jobSeed})
	})
}

// tenth is the first tenth of each of MNIST's three parts.
func tenth() (*mnist.Dataset, error) {
	ds, err := testutil.MNIST()
	if err != nil {
		return nil, err
	}
	return &mnist.Dataset{Training: ds.Training.Slice(0, 5000), Validation: ds.Validation.Slice(0, 1000), Test: ds.Test.Slice(0, 1000)}, nil
}

func resumesAcrossARestart(t *testing.T, data func() (*mnist.Dataset, error), cp service.CreateParams, params service.TrainParams) {
	ctx := t.Context()
	dir := t.TempDir()
	first := newEvents()
	l := live(t, dir, first, data)
	netSeed := uint64(7)
	create := func() string {
		p := cp
		p.Seed = &netSeed
		c, err := l.svc.Create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	epochs := params.Epochs
	train := func(netID string, p service.TrainParams) string {
		j, err := l.svc.Train(ctx, netID, p)
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	}

	// The twin: the same network and job, uninterrupted.
	twinNet := create()
	twin := train(twinNet, params)
	first.ended(t, twin)
	twinJob, err := l.svc.Job(ctx, twin)
	if err != nil || twinJob.Status != service.StatusCompleted || len(twinJob.History) != epochs {
		t.Fatalf("the twin: %+v, %v", twinJob, err)
	}

	// Two jobs stopped after their second epoch: each waits in its
	// training_update until the shutdown has begun.
	stopped, unrecorded := create(), create()
	blocked := make(chan string, 2)
	release := make(chan struct{})
	first.blockWith(func(u service.Update) {
		if u.Epoch == 2 && u.JobID != twin {
			blocked <- u.JobID
			<-release
		}
	})
	jobA, jobB := train(stopped, params), train(unrecorded, params)
	one := params
	one.Epochs = 1
	pending := train(stopped, one) // behind jobA, on the same network
	for range 2 {
		select {
		case <-blocked:
		case <-time.After(trainLimit):
			t.Fatal("the jobs did not reach their second epoch")
		}
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		l.stop(t)
	}()
	if !testutil.Poll(waitLimit, testutil.Every, l.q.stopping) {
		t.Fatal("the queue did not begin to stop")
	}
	close(release)
	<-closed
	for _, id := range []string{jobA, jobB} {
		if got, want := first.of(id), []string{"update 1 (network 1)", "update 2 (network 2)", "error interrupted"}; !slices.Equal(got, want) {
			t.Errorf("job %s before the restart: %v, want %v", id, got, want)
		}
	}
	if got := first.of(pending); len(got) != 0 {
		t.Errorf("the pending job had events: %v", got)
	}

	// jobB as a kill between the save of epoch 2 and its record leaves it.
	db := openDB(t, filepath.Join(dir, "jobs.db"))
	for _, stmt := range []string{
		`UPDATE jobs SET epoch = 1, accuracy = (SELECT e.accuracy FROM job_epochs e WHERE e.job_seq = jobs.seq AND e.epoch = 1),
	elapsed = (SELECT e.elapsed FROM job_epochs e WHERE e.job_seq = jobs.seq AND e.epoch = 1) WHERE id = ?`,
		`DELETE FROM job_epochs WHERE epoch = 2 AND job_seq = (SELECT seq FROM jobs WHERE id = ?)`,
	} {
		if _, err := db.sql.ExecContext(ctx, stmt, jobB); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// The next process.
	second := newEvents()
	l = live(t, dir, second, data)
	for _, id := range []string{jobA, jobB, pending} {
		second.ended(t, id)
	}
	for id, want := range map[string][]string{
		jobA:    {"update 3 (network 3)", "update 4 (network 4)", "update 5 (network 5)", "complete"},
		jobB:    {"update 2 (network 2)", "update 3 (network 3)", "update 4 (network 4)", "update 5 (network 5)", "complete"},
		pending: {"update 1 (network 6)", "complete"},
	} {
		if got := second.of(id); !slices.Equal(got, want) {
			t.Errorf("job %s after the restart: %v, want %v", id, got, want)
		}
	}
	if j, err := l.svc.Job(ctx, twin); err != nil || j.Status != service.StatusCompleted || len(j.History) != epochs {
		t.Errorf("the twin, finished before the restart, after it: %+v, %v", j, err)
	}
	same := func(a, b *float64) bool { return a != nil && b != nil && *a == *b }
	for _, id := range []string{jobA, jobB} {
		j, err := l.svc.Job(ctx, id)
		if err != nil || j.Status != service.StatusCompleted || j.Epoch != epochs || len(j.History) != epochs {
			t.Fatalf("job %s: %+v, %v", id, j, err)
		}
		for i, e := range j.History {
			w := twinJob.History[i]
			if e.Epoch != i+1 || e.Correct != w.Correct || !same(e.ValidationAccuracy, w.ValidationAccuracy) || !same(e.TrainingCost, w.TrainingCost) {
				t.Errorf("job %s, epoch %d of its history: %+v; the twin's: %+v", id, i+1, e, w)
			}
		}
	}
	twinHist, err := l.svc.History(ctx, twinNet)
	if err != nil {
		t.Fatal(err)
	}
	for net, job := range map[string]string{stopped: jobA, unrecorded: jobB} {
		h, err := l.svc.History(ctx, net)
		if err != nil {
			t.Fatal(err)
		}
		var mine []modelfile.EpochRecord
		for _, r := range h.Records {
			if r.JobID == job {
				mine = append(mine, r)
			}
		}
		if len(mine) != epochs {
			t.Fatalf("network %s has %d epochs of job %s, want %d: %+v", net, len(mine), job, epochs, h.Records)
		}
		for i, r := range mine {
			w := twinHist.Records[i]
			if r.Epoch != i+1 || r.Correct != w.Correct || !same(r.TrainingCost, w.TrainingCost) {
				t.Errorf("network %s, epoch %d: %+v; the twin's: %+v", net, i+1, r, w)
			}
		}
	}
	// Weight for weight: the network resumed twice (jobB's) and its twin.
	st, err := dirstore.Open(dir, modelfile.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, gotM, err := st.Load(ctx, unrecorded)
	if err != nil {
		t.Fatal(err)
	}
	_, wantM, err := st.Load(ctx, twinNet)
	if err != nil {
		t.Fatal(err)
	}
	if gd, ok := gotM.(*deep.Network); ok {
		gw, gb, _ := gd.Params()
		ww, wb, _ := wantM.(*deep.Network).Params()
		for i := range ww {
			if !slices.Equal(gw[i], ww[i]) || !slices.Equal(gb[i], wb[i]) {
				t.Errorf("layer %d: the resumed network's weights differ from its uninterrupted twin's", i)
			}
		}
		return
	}
	got, want := gotM.(*network.Network), wantM.(*network.Network)
	for layer := range want.NumLayers() {
		if !mat.Equal(got.Weights(layer), want.Weights(layer)) || !mat.Equal(got.Biases(layer), want.Biases(layer)) {
			t.Errorf("layer %d: the resumed network's weights differ from its uninterrupted twin's", layer)
		}
	}
}

package service

import (
	"context"
	"errors"
	"github.com/mnist-go/nnserver/pkg/model"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"

	"github.com/google/uuid"
	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

var loadMNIST = testutil.MNIST // loaded once for every test of the package

// faultyStore is a Store (memStore: a model file a network, in memory) that
// can be told to fail, and counts what it is asked to do.
type faultyStore struct {
	*memStore
	mu      sync.Mutex
	failing bool   // Save fails
	noDel   bool   // Delete fails
	noDelID string // Delete of this id fails
	loads   int
}

func newFaultyStore(t testing.TB) *faultyStore {
	t.Helper()
	// The store accepts the [100,10] network some tests plant, which the
	// service must refuse itself.
	return &faultyStore{memStore: newMemStore()}
}

func (m *faultyStore) Save(ctx context.Context, meta modelfile.Meta, n model.Model) error {
	m.mu.Lock()
	failing := m.failing
	m.mu.Unlock()
	if failing {
		return errors.New("disk full")
	}
	return m.memStore.Save(ctx, meta, n)
}

func (m *faultyStore) Load(ctx context.Context, id string) (modelfile.Meta, model.Model, error) {
	m.mu.Lock()
	m.loads++
	m.mu.Unlock()
	return m.memStore.Load(ctx, id)
}

func (m *faultyStore) Delete(ctx context.Context, id string) (DeleteResult, error) {
	m.mu.Lock()
	fail := m.noDel || id == m.noDelID
	m.mu.Unlock()
	if fail {
		return DeleteFailed, errors.New("read-only file system")
	}
	return m.memStore.Delete(ctx, id)
}

// put saves a network directly, as an earlier run of the server would have.
func (m *faultyStore) put(t *testing.T, meta modelfile.Meta, n model.Model) {
	t.Helper()
	if meta.CreatedAt.IsZero() {
		meta.CreatedAt = time.Now()
		meta.UpdatedAt = meta.CreatedAt
	}
	if err := m.memStore.Save(context.Background(), meta, n); err != nil {
		t.Fatal(err)
	}
}

// saved is a network as the store holds it.
type saved struct {
	meta modelfile.Meta
	net  model.Model
}

func (m *faultyStore) get(id string) (saved, bool) {
	meta, n, err := m.memStore.Load(context.Background(), id)
	return saved{meta, n}, err == nil
}

// count returns how many networks are saved.
func (m *faultyStore) count(t *testing.T) int {
	t.Helper()
	entries, errs := m.memStore.List(context.Background())
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return len(entries)
}

// recorder is an Events that keeps every event, in order.
type recorder struct {
	mu     sync.Mutex
	events []any
	signal chan struct{}
	// onComplete, if set, runs as the complete event is delivered.
	onComplete func(Complete)
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1000)} }

func (r *recorder) add(e any) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.signal <- struct{}{}
}

func (r *recorder) TrainingUpdate(u Update) { r.add(u) }
func (r *recorder) TrainingComplete(c Complete) {
	if r.onComplete != nil {
		r.onComplete(c)
	}
	r.add(c)
}
func (r *recorder) TrainingError(f Failure)     { r.add(f) }
func (r *recorder) TrainingProgress(p Progress) { r.add(p) }

// forJob returns the events of one job.
func (r *recorder) forJob(id string) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []any
	for _, e := range r.events {
		switch e := e.(type) {
		case Update:
			if e.JobID == id {
				out = append(out, e)
			}
		case Complete:
			if e.JobID == id {
				out = append(out, e)
			}
		case Failure:
			if e.JobID == id {
				out = append(out, e)
			}
		}
	}
	return out
}

// waitEnd waits until the job's last event (complete or error) arrives.
func (r *recorder) waitEnd(t testing.TB, id string) []any {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		evs := r.forJob(id)
		if n := len(evs); n > 0 {
			switch evs[n-1].(type) {
			case Complete, Failure:
				return evs
			}
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("job %s did not end; events so far: %v", id, evs)
		}
	}
}

type fixture struct {
	svc    *Service
	store  *faultyStore
	events *recorder
}

func newFixture(t testing.TB, workers int, lim Limits, st *faultyStore, data func() (*mnist.Dataset, error)) *fixture {
	t.Helper()
	if st == nil {
		st = newFaultyStore(t)
	}
	if data == nil {
		data = loadMNIST
	}
	rec := newRecorder()
	svc, err := New(context.Background(), Config{Data: data, Store: st, Events: rec, Workers: workers, Limits: lim, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return &fixture{svc: svc, store: st, events: rec}
}

func (f *fixture) create(t *testing.T, sizes ...int) string {
	t.Helper()
	if len(sizes) == 0 {
		sizes = []int{784, 30, 10}
	}
	arch, err := f.svc.Limits().NewArchitecture(sizes)
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(3)
	c, err := f.svc.Create(context.Background(), CreateParams{Arch: arch, Init: InitNormal, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func (f *fixture) train(t *testing.T, id string, epochs int) string {
	t.Helper()
	seed := uint64(1)
	p := TrainParams{Epochs: epochs, MiniBatch: 10, LearningRate: 3.0, Cost: CostQuadratic, Seed: &seed}
	out, err := f.svc.Train(context.Background(), id, p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Status != StatusPending || out.NetworkID != id || uuid.Validate(out.ID) != nil || *out.Params.Seed != 1 {
		t.Fatalf("Train: %+v", out)
	}
	return out.ID
}

func TestCreateListTrain(t *testing.T) {
	f := newFixture(t, 2, DefaultLimits(), nil, nil)
	id := f.create(t)
	if _, ok := f.store.get(id); !ok {
		t.Fatal("a created network is not saved")
	}
	list := f.list(t)
	if len(list) != 1 || list[0].ID != id || list[0].Trained || list[0].Accuracy != nil ||
		!list[0].Loaded || !slices.Equal(list[0].Sizes, []int{784, 30, 10}) {
		t.Fatalf("List after create: %+v", list)
	}
	if st := f.status(t); st.ActiveNetworks != 1 || false {
		t.Errorf("Status: %+v", st)
	}

	statusAtComplete := make(chan JobStatus, 1)
	f.events.onComplete = func(c Complete) {
		info, _ := f.svc.Job(context.Background(), c.JobID)
		statusAtComplete <- info.Status
	}
	job := f.train(t, id, 2)
	evs := f.events.waitEnd(t, job)
	select {
	case st := <-statusAtComplete:
		if st != StatusCompleted {
			t.Errorf("job status %q when training_complete went out, want completed", st)
		}
	default:
		t.Error("no training_complete was delivered")
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 2 updates and 1 complete: %+v", len(evs), evs)
	}
	for i, want := range []float64{50, 100} {
		u, ok := evs[i].(Update)
		if !ok || u.Epoch != i+1 || u.TotalEpochs != 2 || u.Progress != want || u.Total != 10000 ||
			u.Accuracy != float64(u.Correct)/10000 || u.ElapsedTime <= 0 || u.NetworkID != id {
			t.Errorf("event %d: %+v", i, evs[i])
		}
	}
	c, ok := evs[2].(Complete)
	// Seeded: this network and these shuffles reach this accuracy on
	// every run (0.8 is far below it; a broken trainer stays near 0.1).
	if !ok || c.Accuracy < 0.8 {
		t.Errorf("complete: %+v", evs[2])
	}

	info, err := f.svc.Job(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != StatusCompleted || info.Progress() != 100 || info.Params.Epochs != 2 || info.Accuracy == nil ||
		*info.Accuracy != c.Accuracy || info.Error != "" || len(info.History) != 2 || info.History[1].Accuracy != c.Accuracy {
		t.Errorf("Job: %+v", info)
	}
	list = f.list(t)
	if !list[0].Trained || list[0].Accuracy == nil || *list[0].Accuracy != c.Accuracy || list[0].EpochsTrained != 2 {
		t.Errorf("List after training: %+v", list[0])
	}
	sv, _ := f.store.get(id)
	if !sv.meta.Trained || sv.meta.EpochsTrained != 2 || *sv.meta.Accuracy != c.Accuracy {
		t.Errorf("saved meta after training: %+v", sv.meta)
	}
	if got, err := sv.net.Evaluate(mustData(t).Test); err != nil || float64(got)/10000 != c.Accuracy {
		t.Errorf("saved network scores %d, the job reported %v", got, c.Accuracy)
	}
	if st := f.status(t); st.TrainingJobs != 0 {
		t.Errorf("Status after training: %+v", st)
	}
}

func mustData(t *testing.T) *mnist.Dataset {
	t.Helper()
	ds, err := loadMNIST()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// A second job for the same network waits for the first and continues from
// its result.
func TestJobsOfOneNetworkRunInTurn(t *testing.T) {
	f := newFixture(t, 2, DefaultLimits(), nil, nil)
	id := f.create(t)
	first := f.train(t, id, 2)
	second := f.train(t, id, 1)
	if info, _ := f.svc.Job(context.Background(), second); info.Status != StatusPending {
		t.Errorf("second job is %q while the first runs, want pending", info.Status)
	}
	f.events.waitEnd(t, first)
	f.events.waitEnd(t, second)
	// Every event of the first job precedes every event of the second.
	f.events.mu.Lock()
	lastFirst, firstSecond := -1, -1
	for i, e := range f.events.events {
		switch e := e.(type) {
		case Update:
			if e.JobID == first {
				lastFirst = i
			} else if firstSecond < 0 {
				firstSecond = i
			}
		case Complete:
			if e.JobID == first {
				lastFirst = i
			}
		}
	}
	f.events.mu.Unlock()
	if firstSecond < lastFirst {
		t.Errorf("the second job started (event %d) before the first ended (event %d)", firstSecond, lastFirst)
	}
	if l := f.list(t); l[0].EpochsTrained != 3 {
		t.Errorf("epochs trained %d, want 3", l[0].EpochsTrained)
	}
}

func TestDeleteCancelsJobs(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	running := f.train(t, id, 50)
	pending := f.train(t, id, 1)
	// Wait for the first epoch, so the job is surely running.
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	d, err := f.svc.Delete(context.Background(), id)
	if err != nil || !d.FromMemory || !d.FromDisk || d.NetworkID != id {
		t.Fatalf("Delete: %+v, %v", d, err)
	}
	for _, job := range []string{running, pending} {
		evs := f.events.waitEnd(t, job)
		fail, ok := evs[len(evs)-1].(Failure)
		if !ok || fail.Status != StatusFailed || !strings.Contains(fail.Error, "deleted") {
			t.Errorf("job %s ended with %+v", job, evs[len(evs)-1])
		}
		info, _ := f.svc.Job(context.Background(), job)
		if info.Status != StatusFailed || info.Error == "" {
			t.Errorf("job %s: %+v", job, info)
		}
	}
	// The file went before Delete returned, and the running job could not
	// write it back: its last save found the network deleted.
	if _, ok := f.store.get(id); ok {
		t.Error("the deleted network's file came back")
	}
	if _, err := f.svc.Delete(context.Background(), id); ErrorCode(err) != NotFound {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := f.svc.Train(context.Background(), id, DefaultTrainParams()); ErrorCode(err) != NotFound {
		t.Errorf("Train after Delete: %v", err)
	}
}

func TestLimits(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxNetworks = 2
	lim.MaxQueuedJobs = 1
	f := newFixture(t, 1, lim, nil, nil)
	a := f.create(t)
	f.create(t)
	if _, err := f.svc.Create(context.Background(), DefaultCreateParams()); ErrorCode(err) != Conflict {
		t.Errorf("third network: got %v, want a conflict", err)
	}
	running := f.train(t, a, 20)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	f.train(t, a, 1) // waits
	_, err := f.svc.Train(context.Background(), a, DefaultTrainParams())
	if ErrorCode(err) != Unavailable || !errors.Is(err, ErrQueueFull) {
		t.Errorf("queue full: got %v", err)
	}
}

// constantNet always answers digit d.
func constantNet(t *testing.T, d int) *network.Network {
	t.Helper()
	b := make([]float64, 10)
	for i := range b {
		b[i] = -10
	}
	b[d] = 10
	n, err := network.FromParams([]int{784, 1, 10},
		[]*mat.Dense{mat.NewDense(1, 784, nil), mat.NewDense(10, 1, nil)},
		[]*mat.VecDense{mat.NewVecDense(1, nil), mat.NewVecDense(10, b)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSavedNetworksAreUsable(t *testing.T) {
	st := newFaultyStore(t)
	id := uuid.NewString()
	acc := 0.098
	st.put(t, modelfile.Meta{ID: id, Sizes: []int{784, 1, 10}, Trained: true, Accuracy: &acc, EpochsTrained: 4}, constantNet(t, 0))
	f := newFixture(t, 1, DefaultLimits(), st, nil)

	list := f.list(t)
	if len(list) != 1 || list[0].Loaded || list[0].ID != id || !list[0].Trained || list[0].EpochsTrained != 4 {
		t.Fatalf("List: %+v", list)
	}
	if s := f.status(t); s.ActiveNetworks != 0 {
		t.Errorf("active networks %d before first use, want 0", s.ActiveNetworks)
	}
	ex, err := f.svc.Example(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	if ex.PredictedDigit != 0 || ex.ActualDigit != 0 || mustData(t).Test.Label(ex.Index) != 0 {
		t.Errorf("successful example of an all-zeros network: %+v", ex)
	}
	ex, err = f.svc.Example(context.Background(), id, false)
	if err != nil || ex.PredictedDigit != 0 || ex.ActualDigit == 0 {
		t.Errorf("unsuccessful example: %+v, %v", ex, err)
	}
	if r, c := ex.OutputWeights.Dims(); len(ex.NetworkOutput) != 10 || ex.NetworkOutput[0] < 0.99 || r != 10 || c != 1 {
		t.Errorf("outputs %v, weights %v", ex.NetworkOutput, ex.OutputWeights)
	}
	if len(ex.Pixels) != 784 || !slices.Equal(ex.Pixels, mustData(t).Test.Image(ex.Index, nil)) {
		t.Error("the example's pixels are not its test image")
	}
	list = f.list(t)
	if len(list) != 1 || !list[0].Loaded {
		t.Errorf("List after first use: %+v", list)
	}
	job := f.train(t, id, 1)
	if _, ok := f.events.waitEnd(t, job)[1].(Complete); !ok {
		t.Error("training a network loaded from disk did not complete")
	}
	if l := f.list(t); l[0].EpochsTrained != 5 {
		t.Errorf("epochs trained %d, want 5", l[0].EpochsTrained)
	}
}

func TestNoSuchExample(t *testing.T) {
	ds := mustData(t)
	one := &mnist.Dataset{Training: ds.Training, Validation: ds.Validation, Test: ds.Test.Slice(0, 1)} // a 7
	st := newFaultyStore(t)
	id := uuid.NewString()
	st.put(t, modelfile.Meta{ID: id, Sizes: []int{784, 1, 10}}, constantNet(t, 3))
	f := newFixture(t, 1, DefaultLimits(), st, func() (*mnist.Dataset, error) { return one, nil })
	_, err := f.svc.Example(context.Background(), id, true)
	if ErrorCode(err) != NotFound || ErrorMessage(err) != "No successful example found after multiple attempts" {
		t.Errorf("got %v", err)
	}
	ex, err := f.svc.Example(context.Background(), id, false)
	if err != nil || ex.Index != 0 || ex.ActualDigit != 7 || ex.PredictedDigit != 3 {
		t.Errorf("unsuccessful: %+v, %v", ex, err)
	}
	if _, err := f.svc.Example(context.Background(), uuid.NewString(), true); ErrorMessage(err) != "Network not found" {
		t.Errorf("unknown network: %v", err)
	}
}

func TestSaveFailureFailsLoudly(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	before, _ := f.store.get(id)
	f.store.mu.Lock()
	f.store.failing = true
	f.store.mu.Unlock()
	if _, err := f.svc.Create(context.Background(), DefaultCreateParams()); ErrorCode(err) != Storage {
		t.Errorf("Create with a failing disk: %v", err)
	}
	job := f.train(t, id, 2)
	evs := f.events.waitEnd(t, job)
	fail, ok := evs[len(evs)-1].(Failure)
	if !ok || !strings.Contains(fail.Error, "could not save") {
		t.Errorf("ended with %+v", evs[len(evs)-1])
	}
	if after, _ := f.store.get(id); !mat.Equal(after.net.(*network.Network).Weights(0), before.net.(*network.Network).Weights(0)) || after.meta.UpdatedAt != before.meta.UpdatedAt {
		t.Error("the saved network changed although saving failed")
	}
}

func TestCloseFailsPendingJobs(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	a, b := f.create(t), f.create(t)
	running := f.train(t, a, 100)
	pending := f.train(t, b, 1)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{running, pending} {
		info, _ := f.svc.Job(context.Background(), job)
		if info.Status != StatusFailed || !strings.Contains(info.Error, "shutting down") {
			t.Errorf("job after Close: %+v", info)
		}
	}
	if _, err := f.svc.Create(context.Background(), DefaultCreateParams()); ErrorCode(err) != Unavailable {
		t.Errorf("Create after Close: %v", err)
	}
	if sv, _ := f.store.get(a); sv.meta.EpochsTrained < 1 {
		t.Errorf("the running job's finished epochs were not saved: %+v", sv.meta)
	}
}

func TestDeleteAll(t *testing.T) {
	st := newFaultyStore(t)
	onDisk := uuid.NewString()
	st.put(t, modelfile.Meta{ID: onDisk, Sizes: []int{784, 1, 10}}, constantNet(t, 1))
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	f.create(t)
	f.create(t)
	out, err := f.svc.DeleteAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mem, disk := 0, 0
	for _, d := range out.Deleted {
		if d.FromMemory {
			mem++
		}
		if d.FromDisk {
			disk++
		}
	}
	if len(out.Deleted) != 3 || mem != 2 || disk != 3 || len(out.Failed) != 0 {
		t.Errorf("DeleteAll: %+v", out)
	}
	if len(f.list(t)) != 0 || st.count(t) != 0 {
		t.Error("networks left after DeleteAll")
	}
}

func TestValidation(t *testing.T) {
	l := DefaultLimits()
	archs := []struct {
		sizes []int
		msg   string
	}{
		{[]int{784, 30, 10}, ""},
		{[]int{784, 10}, ""},
		{nil, "at least 2 layers"},
		{[]int{784}, "at least 2 layers"},
		{[]int{100, 10}, "must start with 784"},
		{[]int{784, 30, 9}, "must end with 10"},
		{[]int{784, 0, 10}, "layer_sizes[1] must be an integer between 1 and"},
		{[]int{784, -5, 10}, "layer_sizes[1] must be an integer between 1 and"},
		{[]int{784, 10000, 10}, "more than 5000000 weights"},
		{[]int{784, 1, 1, 1, 1, 1, 1, 1, 1, 1, 10}, "at most 10 layers"},
	}
	for _, a := range archs {
		_, err := l.NewArchitecture(a.sizes)
		if a.msg == "" && err != nil || a.msg != "" && (err == nil || !strings.Contains(err.Error(), a.msg) || ErrorCode(err) != Invalid) {
			t.Errorf("NewArchitecture(%v) = %v, want %q", a.sizes, err, a.msg)
		}
	}
	params := []struct {
		epochs, batch int
		eta           float64
		msg           string
	}{
		{5, 10, 3, ""},
		{1000, 50000, 1000, ""},
		{0, 10, 3, "epochs must be an integer between 1 and 1000"},
		{1001, 10, 3, "epochs must be an integer between 1 and 1000"},
		{5, 0, 3, "mini_batch_size must be an integer between 1 and 50000"},
		{5, 50001, 3, "mini_batch_size must be an integer between 1 and 50000"},
		{5, 10, 0, "learning_rate must be a number greater than 0 and at most 1000"},
		{5, 10, -1, "learning_rate"},
		{5, 10, 1000.5, "learning_rate"},
	}
	for _, p := range params {
		err := l.ValidateTrain(TrainParams{Epochs: p.epochs, MiniBatch: p.batch, LearningRate: p.eta, Cost: CostQuadratic})
		if p.msg == "" && err != nil || p.msg != "" && (err == nil || !strings.Contains(err.Error(), p.msg)) {
			t.Errorf("ValidateTrain(%d, %d, %v) = %v, want %q", p.epochs, p.batch, p.eta, err, p.msg)
		}
	}
}

func TestUnloadsIdleNetworksBeyondTheMemoryLimit(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxParamsInMemory = 2 * 23860 // two [784,30,10] networks
	f := newFixture(t, 1, lim, nil, nil)
	status := func() map[string]string {
		out := map[string]string{}
		for _, n := range f.list(t) {
			out[n.ID] = statusOf(n)
		}
		return out
	}
	a := f.create(t)
	job := f.train(t, a, 200) // busy: must stay in memory
	for len(f.events.forJob(job)) == 0 {
		<-f.events.signal
	}
	b := f.create(t)
	c := f.create(t) // over the limit: b, idle, goes
	if st := status(); st[a] != "in_memory" || st[b] != "saved" || st[c] != "in_memory" {
		t.Fatalf("after creating c: %v", st)
	}
	for _, n := range f.list(t) {
		if n.ID == b && !slices.Equal(n.Sizes, []int{784, 30, 10}) {
			t.Errorf("unloaded network listed as %+v", n)
		}
	}
	if f.status(t).ActiveNetworks != 2 {
		t.Errorf("active networks %d, want 2", f.status(t).ActiveNetworks)
	}
	// Using b loads it back, and c, now the least recently used, goes.
	if _, err := f.svc.Example(context.Background(), b, true); err != nil {
		t.Fatal(err)
	}
	if st := status(); st[a] != "in_memory" || st[b] != "in_memory" || st[c] != "saved" {
		t.Fatalf("after using b: %v", st)
	}
	if _, err := f.svc.Delete(context.Background(), c); err != nil {
		t.Errorf("deleting an unloaded network: %v", err)
	}
	if _, err := f.svc.Delete(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	f.events.waitEnd(t, job)
}

func TestSavedNetworksThatDoNotFitMNISTAreSkipped(t *testing.T) {
	st := newFaultyStore(t)
	good, bad := uuid.NewString(), uuid.NewString()
	st.put(t, modelfile.Meta{ID: good, Sizes: []int{784, 1, 10}}, constantNet(t, 0))
	n, err := network.FromParams([]int{100, 10}, []*mat.Dense{mat.NewDense(10, 100, nil)}, []*mat.VecDense{mat.NewVecDense(10, nil)})
	if err != nil {
		t.Fatal(err)
	}
	st.put(t, modelfile.Meta{ID: bad, Sizes: []int{100, 10}}, n)
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	if l := f.list(t); len(l) != 1 || l[0].ID != good {
		t.Errorf("listed %+v, want only the [784,1,10] network", l)
	}
	if _, err := f.svc.Train(context.Background(), bad, DefaultTrainParams()); ErrorCode(err) != NotFound {
		t.Errorf("training the [100,10] network: %v", err)
	}
}

func TestConcurrentFirstUsesLoadOnce(t *testing.T) {
	st := newFaultyStore(t)
	id := uuid.NewString()
	st.put(t, modelfile.Meta{ID: id, Sizes: []int{784, 1, 10}}, constantNet(t, 0))
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := f.svc.Example(context.Background(), id, true); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st.loads != 1 {
		t.Errorf("16 concurrent first uses read the file %d times, want 1", st.loads)
	}
}

func TestFailedDeleteKeepsTheNetwork(t *testing.T) {
	st := newFaultyStore(t)
	onDisk := uuid.NewString()
	st.put(t, modelfile.Meta{ID: onDisk, Sizes: []int{784, 1, 10}}, constantNet(t, 1))
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	inMem := f.create(t)
	st.mu.Lock()
	st.noDel = true
	st.mu.Unlock()
	for _, id := range []string{inMem, onDisk} {
		if _, err := f.svc.Delete(context.Background(), id); ErrorCode(err) != Storage {
			t.Errorf("Delete with a failing disk: %v", err)
		}
	}
	status := map[string]string{}
	for _, n := range f.list(t) {
		status[n.ID] = statusOf(n)
	}
	if status[inMem] != "in_memory" || status[onDisk] != "saved" {
		t.Fatalf("after failed deletes: %v", status)
	}
	if _, err := f.svc.Example(context.Background(), inMem, false); err != nil {
		t.Errorf("the kept network does not work: %v", err)
	}
	st.mu.Lock()
	st.noDel = false
	st.mu.Unlock()
	for _, id := range []string{inMem, onDisk} {
		if d, err := f.svc.Delete(context.Background(), id); err != nil || !d.FromDisk {
			t.Errorf("Delete once the disk works: %+v, %v", d, err)
		}
	}
}

func statusOf(n NetworkInfo) string {
	if n.Loaded {
		return "in_memory"
	}
	return "saved"
}

// testLogger writes to the test's output, shown only when it fails.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (f *fixture) list(t *testing.T) []NetworkInfo {
	t.Helper()
	l, err := f.svc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) status(t *testing.T) Status {
	t.Helper()
	return f.svc.Status(context.Background())
}

// A create or import waiting for a maker slot gives up when its request
// ends, with an Unavailable error, and nothing is made.
func TestMakerSlotFollowsTheRequest(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	for range cap(f.svc.makers) {
		f.svc.makers <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.Create(ctx, DefaultCreateParams())
		done <- err
	}()
	cancel()
	err := <-done
	if ErrorCode(err) != Unavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with its request gone: %v (code %s), want Unavailable wrapping context.Canceled", err, ErrorCode(err))
	}
	for range cap(f.svc.makers) {
		<-f.svc.makers
	}
	if n := len(f.list(t)); n != 0 {
		t.Fatalf("%d networks listed after a create that gave up", n)
	}
}

// replicasRecorder is the Replicas of a test: it records the networks
// removed.
type replicasRecorder struct {
	mu      sync.Mutex
	removed []string
}

func (r *replicasRecorder) NetworkRemoved(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, id)
	return nil
}

// TestDeleteTellsTheOtherReplicas: a delete tells the other replicas, and
// Forget (what a replica does when told) drops its copy at once: a job
// running it stops.
func TestDeleteTellsTheOtherReplicas(t *testing.T) {
	rec := &replicasRecorder{}
	svc, err := New(context.Background(), Config{Data: loadMNIST, Store: newFaultyStore(t), Workers: 1,
		Logger: testLogger(t), Replicas: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	f := &fixture{svc: svc}
	id, kept := f.create(t), f.create(t)
	if _, err := svc.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	if !slices.Equal(rec.removed, []string{id}) {
		t.Errorf("replicas told of %v, want [%s]", rec.removed, id)
	}
	rec.mu.Unlock()

	// Told by another replica that kept was deleted there: dropped here.
	e, err := svc.lookup(context.Background(), kept)
	if err != nil {
		t.Fatal(err)
	}
	svc.Forget(kept)
	if st := svc.Status(context.Background()); st.ActiveNetworks != 0 {
		t.Errorf("%d networks in memory after Forget", st.ActiveNetworks)
	}
	if e.ctx.Err() == nil || !errors.Is(context.Cause(e.ctx), errNetworkDeleted) {
		t.Errorf("the forgotten copy's context: %v", context.Cause(e.ctx))
	}
	svc.Forget(kept) // again, and of a network not loaded: nothing
}

// TestNetworksHoldTheirShare: a network in memory holds its share of the
// memory budget; when other work needs the room, idle networks are
// unloaded (they stay saved, and load again on their next use), and a
// network that goes gives its share back.
func TestNetworksHoldTheirShare(t *testing.T) {
	b := budget.New(4<<20, 0)
	svc, err := New(context.Background(), Config{Data: loadMNIST, Store: newFaultyStore(t), Workers: 1,
		Logger: testLogger(t), Budget: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	f := &fixture{svc: svc}
	ids := []string{f.create(t), f.create(t), f.create(t)}
	share := heldBytes(model.Arch{Sizes: []int{784, 30, 10}}, 0)
	if st := b.Stats(); st.Used != 3*share {
		t.Fatalf("%d bytes reserved with three networks in memory, want 3 × %d", st.Used, share)
	}
	// Work that needs more than is free: the least recently used idle
	// networks give way.
	h, ok := b.TryReserve(4<<20 - share)
	if !ok {
		t.Fatal("the reservation did not fit although the networks in memory were idle")
	}
	if st := svc.Status(context.Background()); st.ActiveNetworks != 1 {
		t.Errorf("%d networks still in memory, want the one the room allowed", st.ActiveNetworks)
	}
	h.Release()
	if n := len(f.list(t)); n != 3 {
		t.Fatalf("%d networks listed after they were unloaded, want 3", n)
	}
	if _, err := svc.Predict(context.Background(), ids[0], make([]float64, 784)); err != nil {
		t.Fatalf("a network unloaded for room, used again: %v", err)
	}
	if st := b.Stats(); st.Used != 2*share {
		t.Errorf("%d bytes reserved with two networks in memory, want %d", st.Used, 2*share)
	}
	if _, err := svc.Delete(context.Background(), ids[0]); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Used != share {
		t.Errorf("%d bytes reserved after a network was deleted, want %d", st.Used, share)
	}
}

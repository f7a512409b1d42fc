package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/network"
)

// clock is a settable Now for tests of retention.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestFinishedJobsAreForgotten: a finished job is readable until
// JobRetention has passed or MaxFinishedJobs newer jobs have finished, then
// it is a 404 like any unknown job; pending and running jobs are never
// dropped, however many finish around them.
func TestFinishedJobsAreForgotten(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxFinishedJobs = 3
	lim.JobRetention = time.Hour
	lim.MaxQueuedJobs = 1000
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := newFaultyStore(t)
	rec := newRecorder()
	svc, err := New(context.Background(), Config{Data: loadMNIST, Store: st, Events: rec, Workers: 1, Limits: lim, Now: clk.Now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	f := &fixture{svc: svc, store: st, events: rec}

	a, b := f.create(t), f.create(t)
	running := f.train(t, a, 1000)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	pending := f.train(t, a, 1) // waits behind the running job
	// Five jobs of b end at once (cancelled while pending): only the last
	// three are remembered.
	var ended []string
	for range 5 {
		j := f.train(t, b, 1)
		if _, err := f.svc.Cancel(context.Background(), j); err != nil {
			t.Fatal(err)
		}
		ended = append(ended, j)
	}
	for i, j := range ended {
		_, err := f.svc.Job(context.Background(), j)
		if forgotten := i < 2; forgotten != (ErrorCode(err) == NotFound) {
			t.Errorf("job %d of 5: %v (want forgotten=%v)", i+1, err, forgotten)
		}
	}
	for _, j := range []string{running, pending} {
		if info, err := f.svc.Job(context.Background(), j); err != nil || info.Status.Finished() {
			t.Errorf("an active job was dropped: %+v, %v", info, err)
		}
	}
	clk.advance(59 * time.Minute)
	if _, err := f.svc.Job(context.Background(), ended[4]); err != nil {
		t.Errorf("after 59 minutes: %v", err)
	}
	clk.advance(2 * time.Minute)
	for _, j := range ended[2:] {
		if _, err := f.svc.Job(context.Background(), j); ErrorCode(err) != NotFound || ErrorMessage(err) != MsgJobNotFound {
			t.Errorf("after 61 minutes: %v, want %q", err, MsgJobNotFound)
		}
	}
	if info, err := f.svc.Job(context.Background(), running); err != nil || info.Status != StatusTraining {
		t.Errorf("the running job after 61 minutes: %+v, %v", info, err)
	}
	if _, err := f.svc.Cancel(context.Background(), running); err != nil {
		t.Fatal(err)
	}
	f.events.waitEnd(t, running)
}

func TestCancel(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	running := f.train(t, id, 1000)
	pending := f.train(t, id, 1)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}

	info, err := f.svc.Cancel(context.Background(), pending)
	if err != nil || info.Status != StatusCancelled {
		t.Fatalf("cancel pending: %+v, %v", info, err)
	}
	evs := f.events.waitEnd(t, pending)
	if fail, ok := evs[0].(Failure); len(evs) != 1 || !ok || fail.Status != StatusCancelled || fail.Error != MsgCancelled {
		t.Errorf("pending job's events: %+v", evs)
	}

	info, err = f.svc.Cancel(context.Background(), running)
	if err != nil || info.Status != StatusCancelled {
		t.Fatalf("cancel running: %+v, %v", info, err)
	}
	evs = f.events.waitEnd(t, running)
	last, ok := evs[len(evs)-1].(Failure)
	if !ok || last.Status != StatusCancelled || last.Error != MsgCancelled {
		t.Errorf("running job ended with %+v", evs[len(evs)-1])
	}
	updates := 0
	for _, e := range evs {
		if _, ok := e.(Update); ok {
			updates++
		}
	}
	// The network keeps the epochs that finished, every one saved; no
	// half-epoch.
	saved, _ := f.store.get(id)
	if saved.meta.EpochsTrained != updates {
		t.Errorf("saved %d epochs, the job reported %d", saved.meta.EpochsTrained, updates)
	}
	if info, _ := f.svc.Job(context.Background(), running); info.Status != StatusCancelled || info.Epoch != updates {
		t.Errorf("job after cancel: %+v", info)
	}

	// Finished jobs cannot be cancelled; unknown ones are not found.
	if info, err := f.svc.Cancel(context.Background(), running); ErrorCode(err) != Conflict || info.Status != StatusCancelled ||
		!strings.Contains(ErrorMessage(err), "cancelled") {
		t.Errorf("cancel twice: %+v, %v", info, err)
	}
	if _, err := f.svc.Cancel(context.Background(), "9b2c6f1e-4a7d-4c3e-8f5a-1d2e3f4a5b6c"); ErrorCode(err) != NotFound {
		t.Errorf("cancel unknown: %v", err)
	}
	// The network trains on.
	job := f.train(t, id, 1)
	if _, ok := f.events.waitEnd(t, job)[1].(Complete); !ok {
		t.Error("the network did not train after a cancel")
	}
}

// TestFailedDeleteLeavesJobsAlone: when the file cannot be removed, the
// network is kept and so are its jobs, running and pending.
func TestFailedDeleteLeavesJobsAlone(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	running := f.train(t, id, 3)
	pending := f.train(t, id, 1)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	f.store.mu.Lock()
	f.store.noDel = true
	f.store.mu.Unlock()
	if _, err := f.svc.Delete(context.Background(), id); ErrorCode(err) != Storage {
		t.Fatalf("Delete with a read-only directory: %v", err)
	}
	for _, j := range []string{running, pending} {
		evs := f.events.waitEnd(t, j)
		if _, ok := evs[len(evs)-1].(Complete); !ok {
			t.Errorf("job %s ended with %+v after a failed delete", j, evs[len(evs)-1])
		}
	}
	if l := f.list(t); len(l) != 1 || l[0].EpochsTrained != 4 {
		t.Errorf("after the failed delete: %+v", l)
	}
}

func TestDeleteAllReportsFailures(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	a, b := f.create(t), f.create(t)
	f.store.mu.Lock()
	f.store.noDelID = b
	f.store.mu.Unlock()
	out, err := f.svc.DeleteAll(context.Background())
	if ErrorCode(err) != Storage || len(out.Deleted) != 1 || out.Deleted[0].NetworkID != a ||
		len(out.Failed) != 1 || out.Failed[0].NetworkID != b || ErrorCode(out.Failed[0].Err) != Storage {
		t.Fatalf("DeleteAll: %+v, %v", out, err)
	}
	if l := f.list(t); len(l) != 1 || l[0].ID != b {
		t.Errorf("left: %+v", l)
	}
}

// TestAnalysesAreBounded: a new network version needs its 10,000 test
// images classified; with MaxAnalyses of them under way, another is refused
// at once with a hint to retry, and a request whose client has gone stops.
func TestAnalysesAreBounded(t *testing.T) {
	lim := DefaultLimits()
	lim.MaxAnalyses = 1
	f := newFixture(t, 1, lim, nil, nil)
	id := f.create(t)
	f.svc.analyses <- struct{}{} // one analysis under way elsewhere
	_, err := f.svc.Example(context.Background(), id, true)
	if ErrorCode(err) != Unavailable || RetryAfter(err) <= 0 {
		t.Fatalf("with the analyses busy: %v (retry after %v)", err, RetryAfter(err))
	}
	<-f.svc.analyses

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.svc.Example(gone, id, true); !errors.Is(err, context.Canceled) {
		t.Errorf("for a client that left: %v", err)
	}
	if len(f.svc.analyses) != 0 {
		t.Error("an abandoned analysis kept its slot")
	}
	if _, err := f.svc.Example(context.Background(), id, true); err != nil {
		t.Errorf("afterwards: %v", err)
	}
}

// TestCurrentJobAndNetworkEpochs: the list names the job training a
// network (or the first waiting), and updates count epochs from the
// network's creation too.
func TestCurrentJobAndNetworkEpochs(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	a, b := f.create(t), f.create(t)
	first := f.train(t, a, 1)
	f.events.waitEnd(t, first)
	running := f.train(t, a, 1000)
	for len(f.events.forJob(running)) == 0 {
		<-f.events.signal
	}
	waiting := f.train(t, b, 1) // the only worker is busy
	current := map[string]string{}
	for _, n := range f.list(t) {
		current[n.ID] = n.CurrentJob
	}
	if current[a] != running || current[b] != waiting {
		t.Errorf("current jobs %v, want %s for a and %s for b", current, running, waiting)
	}
	if u := f.events.forJob(running)[0].(Update); u.Epoch != 1 || u.NetworkEpoch != 2 {
		t.Errorf("first update of the second job: epoch %d, network epoch %d; want 1 and 2", u.Epoch, u.NetworkEpoch)
	}
	f.svc.Cancel(context.Background(), running)
	f.events.waitEnd(t, waiting)
	for _, n := range f.list(t) {
		if n.CurrentJob != "" {
			t.Errorf("network %s still has job %s", n.ID, n.CurrentJob)
		}
	}
}

// TestStaleCopyDoesNotSave: when the catalog says another replica saved
// the network after this copy was loaded (the job was taken over there),
// a save from this copy is refused before it writes anything.
func TestStaleCopyDoesNotSave(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	id := f.create(t)
	e, err := f.svc.lookup(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := f.store.get(id)
	rec, _ := f.svc.catalog.Get(context.Background(), id)
	rec.Version++
	rec.EpochsTrained = 7 // what the other replica saved
	if err := f.svc.catalog.Update(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	st := *e.state.Load()
	st.epochs = 1
	if err := f.svc.save(e, e.state.Load(), &st, saveOpts{}); !errors.Is(err, ErrVersionMoved) {
		t.Fatalf("a stale save: %v, want ErrVersionMoved", err)
	}
	after, _ := f.store.get(id)
	if after.meta.UpdatedAt != before.meta.UpdatedAt || after.meta.EpochsTrained != before.meta.EpochsTrained {
		t.Error("the stale copy wrote its model")
	}
	if got, _ := f.svc.catalog.Get(context.Background(), id); got.EpochsTrained != 7 || got.Version != rec.Version {
		t.Errorf("the catalog after a refused save: %+v", got)
	}
}

func TestProgressGate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := &progressGate{every: 250 * time.Millisecond, after: time.Second}
	g.epoch(t0)
	var sent []time.Duration
	for ms := 0; ms <= 3000; ms += 10 { // a mini-batch every 10 ms
		if g.allow(t0.Add(time.Duration(ms) * time.Millisecond)) {
			sent = append(sent, time.Duration(ms)*time.Millisecond)
		}
	}
	// Nothing in the first second of the epoch, then one every 250 ms.
	want := []time.Duration{1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000}
	if len(sent) != len(want) {
		t.Fatalf("sent at %v", sent)
	}
	for i := range want {
		if sent[i] != want[i]*time.Millisecond {
			t.Errorf("progress %d at %v, want %v", i, sent[i], want[i]*time.Millisecond)
		}
	}
	// A new epoch waits its own second again.
	g.epoch(t0.Add(4 * time.Second))
	if g.allow(t0.Add(4*time.Second + 999*time.Millisecond)) {
		t.Error("progress within the first second of a new epoch")
	}
}

// TestProgressEvents: with every mini-batch allowed through, a job sends
// progress within each epoch, numbered and ordered, between its updates.
func TestProgressEvents(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	f.svc.progressEvery, f.svc.progressAfter = 0, 0
	id := f.create(t)
	seed := uint64(1)
	info, err := f.svc.Train(context.Background(), id, TrainParams{Epochs: 2, MiniBatch: 25000, LearningRate: 3, Cost: CostQuadratic, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	f.events.waitEnd(t, info.ID)
	f.events.mu.Lock()
	defer f.events.mu.Unlock()
	var got []string
	for _, e := range f.events.events {
		switch e := e.(type) {
		case Progress:
			if e.JobID == info.ID {
				got = append(got, fmt.Sprintf("p%d/%d %d/%d %.0f", e.Epoch, e.TotalEpochs, e.Batch, e.Batches, e.Progress))
			}
		case Update:
			if e.JobID == info.ID {
				got = append(got, fmt.Sprintf("u%d", e.Epoch))
			}
		}
	}
	want := []string{"p1/2 1/2 25", "p1/2 2/2 50", "u1", "p2/2 1/2 75", "p2/2 2/2 100", "u2"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestSeedsReproduce: the same seeds give the same weights, bit for bit,
// and the same accuracies.
func TestSeedsReproduce(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	var nets []*network.Network
	var accs []float64
	for range 2 {
		id := f.create(t) // seed 3
		job := f.train(t, id, 2)
		evs := f.events.waitEnd(t, job)
		accs = append(accs, evs[len(evs)-1].(Complete).Accuracy)
		sv, _ := f.store.get(id)
		nets = append(nets, sv.net.(*network.Network))
	}
	if accs[0] != accs[1] {
		t.Errorf("accuracies %v differ", accs)
	}
	for l := range nets[0].NumLayers() {
		if !mat.Equal(nets[0].Weights(l), nets[1].Weights(l)) || !mat.Equal(nets[0].Biases(l), nets[1].Biases(l)) {
			t.Errorf("layer %d differs between two runs with the same seeds", l)
		}
	}
}

package service

import (
	"bytes"
	"context"
	"errors"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// createNamed creates a [784, 10] network (the fastest to train) with a
// name and notes.
func (f *fixture) createNamed(t *testing.T, name, notes string) NetworkInfo {
	t.Helper()
	arch, err := f.svc.Limits().NewArchitecture([]int{784, 10})
	if err != nil {
		t.Fatal(err)
	}
	seed := uint64(11)
	n, err := f.svc.Create(context.Background(), CreateParams{Arch: arch, Init: InitNormal, Seed: &seed, Name: name, Notes: notes})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// trainWith queues a job of p (seeded) and waits for its end.
func (f *fixture) trainWith(t *testing.T, id string, p TrainParams) JobInfo {
	t.Helper()
	seed := uint64(1)
	p.MiniBatch, p.Cost, p.Seed = 10, CostQuadratic, &seed
	if p.LearningRate == 0 {
		p.LearningRate = 3
	}
	j, err := f.svc.Train(context.Background(), id, p)
	if err != nil {
		t.Fatal(err)
	}
	f.events.waitEnd(t, j.ID)
	j, err = f.svc.Job(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func sameWeights(am, bm model.Model) bool {
	a, b := am.(*network.Network), bm.(*network.Network)
	if !slices.Equal(a.Sizes(), b.Sizes()) {
		return false
	}
	for l := range a.NumLayers() {
		ar, br := a.Weights(l).RawMatrix(), b.Weights(l).RawMatrix()
		if !slices.Equal(ar.Data, br.Data) || !slices.Equal(a.Biases(l).RawVector().Data, b.Biases(l).RawVector().Data) {
			return false
		}
	}
	return true
}

// TestNamesAndNotes: a network's name and notes, given at creation or by
// Label (either or both), are in every listing, in its model file and its
// downloads, survive a restart and an import (which may give others), and
// are refused past their bounds.
func TestNamesAndNotes(t *testing.T) {
	st := newFaultyStore(t)
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	ctx := context.Background()
	n := f.createNamed(t, "ch. 1 — η 3", "first try\nquadratic cost")
	if n.Name != "ch. 1 — η 3" || n.Notes != "first try\nquadratic cost" {
		t.Errorf("Create answered name %q notes %q", n.Name, n.Notes)
	}
	if l := f.list(t); len(l) != 1 || l[0].Name != n.Name || l[0].Notes != n.Notes {
		t.Errorf("List: %+v", l)
	}
	// Either one alone; the other stays.
	got, err := f.svc.Label(ctx, n.ID, new("renamed ✓"), nil)
	if err != nil || got.Name != "renamed ✓" || got.Notes != n.Notes {
		t.Fatalf("Label(name): %+v, %v", got, err)
	}
	if got, err = f.svc.Label(ctx, n.ID, nil, new("")); err != nil || got.Name != "renamed ✓" || got.Notes != "" {
		t.Fatalf("Label(notes): %+v, %v", got, err)
	}
	sv, _ := st.get(n.ID)
	if sv.meta.Name != "renamed ✓" || sv.meta.Notes != "" {
		t.Errorf("model file: name %q notes %q", sv.meta.Name, sv.meta.Notes)
	}
	// A job's saves keep the label: it is the catalog's.
	f.trainWith(t, n.ID, TrainParams{Epochs: 1})
	if sv, _ := st.get(n.ID); sv.meta.Name != "renamed ✓" || sv.meta.EpochsTrained != 1 {
		t.Errorf("after an epoch, the model file says name %q, epoch %d", sv.meta.Name, sv.meta.EpochsTrained)
	}
	if d, err := f.svc.Network(ctx, n.ID); err != nil || d.Name != "renamed ✓" {
		t.Errorf("Network: %+v, %v", d.NetworkInfo, err)
	}

	for _, bad := range []struct {
		name, notes *string
		want        string
	}{
		{new(strings.Repeat("n", modelfile.MaxNameLength+1)), nil, "name must be a string of at most 100 characters on one line"},
		{new("two\nlines"), nil, "name must be"},
		{nil, new(strings.Repeat("n", modelfile.MaxNotesLength+1)), "notes must be a string of at most 2000 characters"},
		{nil, new("nul\x00"), "notes must be"},
	} {
		if _, err := f.svc.Label(ctx, n.ID, bad.name, bad.notes); ErrorCode(err) != Invalid || !strings.HasPrefix(ErrorMessage(err), bad.want) {
			t.Errorf("Label(%v, %v): %v, want Invalid %q", bad.name, bad.notes, err, bad.want)
		}
	}
	if _, err := f.svc.Label(ctx, n.ID, new(strings.Repeat("é", modelfile.MaxNameLength)), nil); err != nil {
		t.Errorf("a name of exactly 100 characters: %v", err)
	}
	// A model file that cannot be written: nothing changes.
	st.mu.Lock()
	st.failing = true
	st.mu.Unlock()
	if _, err := f.svc.Label(ctx, n.ID, new("not saved"), nil); ErrorCode(err) != Storage {
		t.Errorf("Label with a failing store: %v, want Storage", err)
	}
	st.mu.Lock()
	st.failing = false
	st.mu.Unlock()
	if l := f.list(t); l[0].Name != strings.Repeat("é", modelfile.MaxNameLength) {
		t.Errorf("after a failed Label the network is named %q", l[0].Name)
	}
	if _, err := f.svc.Label(ctx, "00000000-0000-4000-8000-000000000000", new("x"), nil); ErrorCode(err) != NotFound {
		t.Errorf("Label of an unknown network: %v", err)
	}
	arch, _ := f.svc.Limits().NewArchitecture([]int{784, 10})
	if _, err := f.svc.Create(ctx, CreateParams{Arch: arch, Init: InitNormal, Name: strings.Repeat("x", 101)}); ErrorCode(err) != Invalid {
		t.Errorf("Create with a name of 101 characters: %v", err)
	}

	// Imports keep the file's, or take those given.
	rc, size, err := f.svc.Download(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := io.ReadAll(rc)
	rc.Close()
	kept, err := f.svc.Import(ctx, bytes.NewReader(file), size, ImportOptions{})
	if err != nil || kept.Name != strings.Repeat("é", modelfile.MaxNameLength) {
		t.Errorf("import keeping the file's name: %q, %v", kept.Name, err)
	}
	given, err := f.svc.Import(ctx, bytes.NewReader(file), size, ImportOptions{Name: new("imported"), Notes: new("from a file")})
	if err != nil || given.Name != "imported" || given.Notes != "from a file" {
		t.Errorf("import with a name: %+v, %v", given, err)
	}
	if _, err := f.svc.Import(ctx, bytes.NewReader(file), size, ImportOptions{Notes: new(strings.Repeat("x", 2001))}); ErrorCode(err) != Invalid {
		t.Errorf("import with notes of 2001 characters: %v", err)
	}

	// A restart (a new service on the same store) lists them again.
	g := newFixture(t, 1, DefaultLimits(), st, nil)
	for _, l := range g.list(t) {
		want := map[string]string{n.ID: strings.Repeat("é", 100), kept.ID: strings.Repeat("é", 100), given.ID: "imported"}[l.ID]
		if l.Name != want {
			t.Errorf("after a restart, %s is named %q, want %q", l.ID, l.Name, want)
		}
	}
}

// TestLabelAndRestoreNeedTheOwner: with ownership on, renaming and
// restoring are changes, which need the owner token.
func TestLabelAndRestoreNeedTheOwner(t *testing.T) {
	f := newPolicyFixture(t, newFaultyStore(t), PolicyConfig{Ownership: true})
	n := f.createOwned(t)
	ctx := context.Background()
	if _, err := f.svc.Label(ctx, n.ID, new("mine"), nil); ErrorCode(err) != Unauthenticated {
		t.Errorf("Label without credentials: %v", err)
	}
	if _, err := f.svc.Restore(ctx, n.ID, 1, false); ErrorCode(err) != Unauthenticated {
		t.Errorf("Restore without credentials: %v", err)
	}
	owner := WithCredentials(ctx, Credentials{Owner: n.OwnerToken})
	if got, err := f.svc.Label(owner, n.ID, new("mine"), nil); err != nil || got.Name != "mine" {
		t.Errorf("Label with the owner token: %+v, %v", got, err)
	}
	if _, err := f.svc.Restore(owner, n.ID, 1, false); ErrorCode(err) != NotFound {
		t.Errorf("Restore of a snapshot not kept, with the owner token: %v", err)
	}
}

// TestSnapshotsAndRestore: every epoch leaves a snapshot; the network keeps
// its last SnapshotsKept and its best by validation accuracy; a restore
// gives it the weights of one, as a version of its own that the history
// records, and is refused while a job trains it; snapshots go with the
// network.
func TestSnapshotsAndRestore(t *testing.T) {
	lim := DefaultLimits()
	lim.SnapshotsKept = 2
	st := newFaultyStore(t)
	f := newFixture(t, 1, lim, st, nil)
	ctx := context.Background()
	n := f.createNamed(t, "", "")
	job := f.trainWith(t, n.ID, TrainParams{Epochs: 5, LearningRate: 20}) // a rate that makes the curve wander
	if job.Status != StatusCompleted || job.Epoch != 5 {
		t.Fatalf("job: %+v", job)
	}
	hist, err := f.svc.History(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	best := bestSnapshot([]int{1, 2, 3, 4, 5}, hist.Records, "")
	want := []int{4, 5}
	if best < 4 {
		want = []int{best, 4, 5}
	}
	if got, _ := st.Snapshots(ctx, n.ID); !slices.Equal(got, want) {
		t.Fatalf("snapshots %v, want %v (validation accuracies %v)", got, want, valAccs(hist.Records))
	}
	infos, err := f.svc.Snapshots(ctx, n.ID)
	if err != nil || len(infos) != len(want) {
		t.Fatalf("Snapshots: %+v, %v", infos, err)
	}
	for i, s := range infos {
		if s.Epoch != want[i] || s.Best != (s.Epoch == best) || s.Record.Epoch != s.Epoch || s.Record.JobID != job.ID {
			t.Errorf("snapshot %d: %+v", i, s)
		}
	}
	if job.BestEpoch() != best {
		t.Errorf("the job's best epoch %d, the network's best snapshot %d", job.BestEpoch(), best)
	}
	d, err := f.svc.Network(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Jobs, []string{job.ID}) || len(d.Snapshots) != len(want) || d.Summary.Epochs != 5 ||
		d.Summary.BestValidationEpoch != best || *d.Summary.LastAccuracy != hist.Records[4].Accuracy {
		t.Errorf("Network: jobs %v, %d snapshots, summary %+v", d.Jobs, len(d.Snapshots), d.Summary)
	}

	// Restore the best: epoch 6 is its restore.
	if _, err := f.svc.Restore(ctx, n.ID, 1, false); best != 1 && ErrorCode(err) != NotFound {
		t.Errorf("Restore of epoch 1, which is not kept: %v", err)
	}
	r, err := f.svc.Restore(ctx, n.ID, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.Record.Epoch != 6 || r.Record.RestoredFrom != best || r.Record.Accuracy != hist.Records[best-1].Accuracy || r.Record.ElapsedTime != 0 {
		t.Errorf("restore record %+v, want epoch 6 restoring %d", r.Record, best)
	}
	_, snap, err := st.LoadSnapshot(ctx, n.ID, best)
	if err != nil {
		t.Fatal(err)
	}
	sv, _ := st.get(n.ID)
	if !sameWeights(sv.net, snap) || sv.meta.EpochsTrained != 6 || len(sv.meta.History) != 6 || !sv.meta.History[5].Restore() ||
		*sv.meta.Accuracy != r.Record.Accuracy {
		t.Errorf("the saved network after the restore: epochs %d, accuracy %v, last record %+v", sv.meta.EpochsTrained, *sv.meta.Accuracy,
			sv.meta.History[len(sv.meta.History)-1])
	}
	if l := f.list(t); l[0].EpochsTrained != 6 || *l[0].Accuracy != r.Record.Accuracy {
		t.Errorf("List after the restore: %+v", l[0])
	}
	// The next job trains on from the restored weights, epoch 7 on.
	next := f.trainWith(t, n.ID, TrainParams{Epochs: 1})
	if h, _ := f.svc.History(ctx, n.ID); next.Status != StatusCompleted || len(h.Records) != 7 || h.Records[6].Epoch != 7 {
		t.Errorf("the job after a restore: %+v; history of %d", next, len(h.Records))
	}

	// Refused while a job trains it.
	p := TrainParams{Epochs: 1000, MiniBatch: 10, LearningRate: 3, Cost: CostQuadratic}
	long, err := f.svc.Train(ctx, n.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	for len(f.events.forJob(long.ID)) == 0 { // its first epoch is saved: it trains
		<-f.events.signal
	}
	if _, err := f.svc.Restore(ctx, n.ID, 0, true); ErrorCode(err) != Conflict {
		t.Errorf("Restore while a job trains: %v, want Conflict", err)
	}
	if _, err := f.svc.Cancel(ctx, long.ID); err != nil {
		t.Fatal(err)
	}
	f.events.waitEnd(t, long.ID)

	// Deleted with the network.
	if _, err := f.svc.Delete(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Snapshots(ctx, n.ID); len(got) != 0 {
		t.Errorf("snapshots after Delete: %v", got)
	}
}

func valAccs(h []modelfile.EpochRecord) []float64 {
	var out []float64
	for _, r := range h {
		if r.ValidationAccuracy != nil {
			out = append(out, *r.ValidationAccuracy)
		}
	}
	return out
}

// TestEarlyStoppingAndRestoreBest: a job with stop_after_no_improvement n
// stops n epochs after its best, completed; with restore_best the network
// then has its best epoch's weights, recorded as a restore.
func TestEarlyStoppingAndRestoreBest(t *testing.T) {
	st := newFaultyStore(t)
	f := newFixture(t, 1, DefaultLimits(), st, nil)
	ctx := context.Background()
	n := f.createNamed(t, "", "")
	const patience = 1
	job := f.trainWith(t, n.ID, TrainParams{Epochs: 40, LearningRate: 20, StopAfterNoImprovement: patience, RestoreBest: true})
	hist, _ := f.svc.History(ctx, n.ID)
	best := job.BestEpoch()
	if job.Status != StatusCompleted || !job.StoppedEarly() || job.Epoch != best+patience || job.Epoch >= 40 {
		t.Fatalf("job: %s after %d epochs, best %d, stopped early %v; validation accuracies %v",
			job.Status, job.Epoch, best, job.StoppedEarly(), valAccs(hist.Records))
	}
	if len(hist.Records) != job.Epoch+1 {
		t.Fatalf("history of %d records after %d epochs, want one more for the restore", len(hist.Records), job.Epoch)
	}
	last := hist.Records[len(hist.Records)-1]
	if !last.Restore() || last.RestoredFrom != best || last.JobID != job.ID {
		t.Errorf("last record %+v, want a restore of epoch %d", last, best)
	}
	_, snap, err := st.LoadSnapshot(ctx, n.ID, best)
	if err != nil {
		t.Fatal(err)
	}
	if sv, _ := st.get(n.ID); !sameWeights(sv.net, snap) {
		t.Error("the network does not have its best epoch's weights")
	}
	// Without restore_best, the network keeps its last epoch.
	plain := f.createNamed(t, "", "")
	j2 := f.trainWith(t, plain.ID, TrainParams{Epochs: 40, LearningRate: 20, StopAfterNoImprovement: patience})
	if h, _ := f.svc.History(ctx, plain.ID); !j2.StoppedEarly() || len(h.Records) != j2.Epoch || h.Records[len(h.Records)-1].Restore() {
		t.Errorf("without restore_best: %d records after %d epochs", len(h.Records), j2.Epoch)
	}
}

// resumingQueue is a memQueue whose jobs, when a worker takes them, already
// have the epochs preset recorded: as a job does that another replica (or
// an earlier process) trained, then lost.
type resumingQueue struct {
	Queue
	preset []EpochResult
}

func (q *resumingQueue) Start(work Work) error {
	return q.Queue.Start(func(ctx context.Context, j JobInfo) error {
		for _, r := range q.preset {
			if err := q.Epoch(ctx, j.ID, r); err != nil {
				return err
			}
		}
		j, err := q.Get(ctx, j.ID)
		if err != nil {
			return err
		}
		return work(ctx, j)
	})
}

// TestResumedJobStopsWhereItWould: a resumed job reads its early stopping
// state from its recorded epochs, not from the run that recorded them: it
// trains only the epochs the uninterrupted job would have.
func TestResumedJobStopsWhereItWould(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vals   []float64 // the validation accuracies recorded before
		epochs int       // it then trains
	}{
		// Its best is epoch 2 (no fresh network reaches 0.99): with
		// patience 2, one more epoch and it stops.
		{"one epoch left", []float64{0.5, 0.99, 0.6}, 1},
		// Two epochs without improvement already: it stopped when its
		// replica died, and trains none.
		{"stopped already", []float64{0.99, 0.5, 0.6}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := DefaultLimits()
			q := &resumingQueue{Queue: NewMemoryQueue(1, lim, nil)}
			for i, v := range tc.vals {
				q.preset = append(q.preset, EpochResult{Epoch: i + 1, Correct: 5000, Total: 10000, Accuracy: 0.5, ElapsedTime: 0.1,
					ValidationAccuracy: new(v), TrainingCost: new(0.1)})
			}
			st := newFaultyStore(t)
			rec := newRecorder()
			svc, err := New(context.Background(), Config{Data: loadMNIST, Store: st, Events: rec, Workers: 1, Limits: lim,
				Logger: testLogger(t), Catalog: NewMemoryCatalog(), Queue: q})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				svc.Close(ctx)
			})
			f := &fixture{svc: svc, store: st, events: rec}
			n := f.createNamed(t, "", "")
			job := f.trainWith(t, n.ID, TrainParams{Epochs: 10, StopAfterNoImprovement: 2})
			h, _ := f.svc.History(context.Background(), n.ID)
			if job.Status != StatusCompleted || job.Epoch != len(tc.vals)+tc.epochs || len(h.Records) != tc.epochs ||
				!job.StoppedEarly() || job.BestEpoch() != 2 && tc.epochs == 1 {
				t.Errorf("job %s at epoch %d (best %d), the network trained %d epochs; want %d more epochs",
					job.Status, job.Epoch, job.BestEpoch(), len(h.Records), tc.epochs)
			}
		})
	}
}

// TestRestoreDuringAJobFailsIt: a job whose network is restored under it
// (the restore won a race with the job's start) is refused its next save,
// rather than saving epochs built on weights the network no longer has.
func TestRestoreDuringAJobFailsIt(t *testing.T) {
	f := newFixture(t, 1, DefaultLimits(), nil, nil)
	ctx := context.Background()
	n := f.createNamed(t, "", "")
	f.trainWith(t, n.ID, TrainParams{Epochs: 1})
	e, err := f.svc.lookup(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	from := e.state.Load()
	if _, err := f.svc.restore(ctx, e, from, 1, false); err != nil {
		t.Fatal(err)
	}
	// A save built on the state before the restore is refused.
	stale := *from
	stale.epochs++
	if err := f.svc.save(e, from, &stale, saveOpts{}); !errors.Is(err, errNetworkChanged) {
		t.Errorf("a save over a restore: %v, want errNetworkChanged", err)
	}
	if h, _ := f.svc.History(ctx, n.ID); len(h.Records) != 2 || !h.Records[1].Restore() {
		t.Errorf("history after the refused save: %+v", h.Records)
	}
}

func TestSnapshotsToKeep(t *testing.T) {
	rec := func(epoch int, job string, val float64) modelfile.EpochRecord {
		return modelfile.EpochRecord{Epoch: epoch, JobID: job, ValidationAccuracy: &val}
	}
	h := []modelfile.EpochRecord{rec(1, "a", 0.5), rec(2, "a", 0.9), rec(3, "b", 0.7), rec(4, "b", 0.8), rec(5, "b", 0.6),
		{Epoch: 6, JobID: "a", RestoredFrom: 2, ValidationAccuracy: new(0.9)}, rec(7, "c", 0.9), rec(8, "c", 0.1)}
	for _, tc := range []struct {
		epochs []int
		kept   int
		job    string
		want   []int
	}{
		{[]int{1, 2, 3, 4, 5}, 2, "", []int{2, 4, 5}},
		{[]int{1, 2, 3, 4, 5}, 2, "b", []int{2, 4, 5}},
		{[]int{1, 2, 3, 4, 5}, 1, "b", []int{2, 4, 5}},
		{[]int{1, 2, 3, 5}, 1, "b", []int{2, 3, 5}},
		{[]int{1, 2, 3, 4, 5, 7, 8}, 1, "c", []int{2, 7, 8}}, // 7 ties 2: the first is the best, 7 the job's
		{[]int{3, 4, 5}, 5, "", []int{3, 4, 5}},
		{[]int{}, 5, "", nil},
	} {
		keep := snapshotsToKeep(tc.epochs, h, tc.kept, tc.job)
		var got []int
		for ep := range keep {
			got = append(got, ep)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("snapshotsToKeep(%v, %d, %q) = %v, want %v", tc.epochs, tc.kept, tc.job, got, tc.want)
		}
	}
}

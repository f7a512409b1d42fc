package service

import (
	"context"
	"fmt"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// MaxNetworkJobs bounds the jobs Network lists: the newest.
const MaxNetworkJobs = 100

// NetworkDetail is all that is known of one network.
type NetworkDetail struct {
	NetworkInfo
	// Jobs are the ids of its jobs, newest first, at most MaxNetworkJobs:
	// the one running or next to run, then those that trained it, as its
	// history records them (they outlive the jobs' own retention).
	Jobs []string
	// Snapshots are those it keeps, oldest first.
	Snapshots []SnapshotInfo
	Summary   HistorySummary
}

// HistorySummary sums up a network's history. The epochs are the
// network's; restores are not epochs of training and are left out of the
// bests.
type HistorySummary struct {
	Epochs   int // epochs trained, restores included (EpochsTrained)
	Records  int // records in the history
	Restores int // of which restores
	// The best test accuracy, its epoch; the best validation accuracy, its
	// epoch (nil, 0 without); the accuracies after the last record.
	BestAccuracy, BestValidationAccuracy *float64
	BestEpoch, BestValidationEpoch       int
	LastAccuracy, LastValidationAccuracy *float64
}

func summarise(st *state) HistorySummary {
	sum := HistorySummary{Epochs: st.epochs, Records: len(st.history), LastAccuracy: st.accuracy}
	for _, r := range st.history {
		if r.Restore() {
			sum.Restores++
			continue
		}
		if sum.BestAccuracy == nil || r.Accuracy > *sum.BestAccuracy {
			sum.BestAccuracy, sum.BestEpoch = &r.Accuracy, r.Epoch
		}
		if v := r.ValidationAccuracy; v != nil && (sum.BestValidationAccuracy == nil || *v > *sum.BestValidationAccuracy) {
			sum.BestValidationAccuracy, sum.BestValidationEpoch = v, r.Epoch
		}
	}
	if n := len(st.history); n > 0 {
		sum.LastValidationAccuracy = st.history[n-1].ValidationAccuracy
	}
	return sum
}

// Network returns all that is known of one network: what the list says,
// its jobs, its snapshots and a summary of its history. A network only
// saved is loaded (its history is in its model file).
func (s *Service) Network(ctx context.Context, id string) (NetworkDetail, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return NetworkDetail{}, err
	}
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		return NetworkDetail{}, stateError(err)
	}
	active, err := s.queue.Active(ctx)
	if err != nil {
		return NetworkDetail{}, stateError(err)
	}
	st := e.state.Load()
	d := NetworkDetail{NetworkInfo: e.info(), Summary: summarise(st)}
	// The copy's figures are current: lookup returned the newest.
	d.Name, d.Notes, d.CurrentJob = rec.Name, rec.Notes, active.Current[id]
	if d.Jobs, err = s.networkJobs(ctx, id, st.history); err != nil {
		return NetworkDetail{}, err
	}
	if d.Snapshots, err = s.snapshotsOf(ctx, e, st); err != nil {
		return NetworkDetail{}, err
	}
	return d, nil
}

// networkJobs returns a network's job ids, newest first, at most
// MaxNetworkJobs: those the queue remembers (pending, running, and ended
// within the retention rules), then the older ones its history records
// (latest epoch first), which outlive the queue's retention.
func (s *Service) networkJobs(ctx context.Context, id string, h []modelfile.EpochRecord) ([]string, error) {
	p, err := s.queue.List(ctx, JobFilter{NetworkID: id, Limit: MaxNetworkJobs})
	if err != nil {
		return nil, stateError(err)
	}
	jobs, seen := []string{}, map[string]bool{"": true}
	add := func(id string) {
		if !seen[id] && len(jobs) < MaxNetworkJobs {
			seen[id] = true
			jobs = append(jobs, id)
		}
	}
	for _, j := range p.Jobs {
		add(j.ID)
	}
	for i := len(h) - 1; i >= 0 && len(jobs) < MaxNetworkJobs; i-- {
		if !h[i].Restore() { // a restore repeats the job of the epoch it restores
			add(h[i].JobID)
		}
	}
	return jobs, nil
}

// Label sets a network's name, its notes, or both (nil: left as it is), in
// the catalog and in its model file (a download, an import, a restart of a
// single server keep them). It changes no weights: the network's version
// stays. With ownership on it needs the network's owner token or the admin
// token.
func (s *Service) Label(ctx context.Context, id string, name, notes *string) (NetworkInfo, error) {
	if name != nil {
		if err := s.limits.CheckName(*name); err != nil {
			return NetworkInfo{}, err
		}
	}
	if notes != nil {
		if err := s.limits.CheckNotes(*notes); err != nil {
			return NetworkInfo{}, err
		}
	}
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		return NetworkInfo{}, stateError(err)
	}
	if err := s.authorize(ctx, rec); err != nil {
		return NetworkInfo{}, err
	}
	// The model is read before the lock: loading it may wait for the
	// budget. Under the lock the copy is checked to be the newest.
	e, err := s.lookup(ctx, id)
	if err != nil {
		return NetworkInfo{}, err
	}
	unlock, err := s.catalog.LockSaves(ctx, id)
	if err != nil {
		return NetworkInfo{}, stateError(err)
	}
	defer unlock()
	// From here the steps run to the end even if the client leaves: the
	// model and the catalog must agree.
	ctx = context.WithoutCancel(ctx)
	cur, err := s.catalog.Get(ctx, id)
	if err != nil {
		return NetworkInfo{}, stateError(err)
	}
	if e.version.Load() != cur.Version {
		// Saved meanwhile on another replica: the newest, which the lock
		// keeps until the label is written.
		if e, err = s.lookup(ctx, id); err != nil {
			return NetworkInfo{}, err
		}
		if v := e.version.Load(); v != cur.Version {
			return NetworkInfo{}, &Error{Code: Internal, Message: "internal error",
				Err: fmt.Errorf("label network %s: loaded version %d, the catalog has %d", id, v, cur.Version)}
		}
	}
	l := labelOf(cur)
	if name != nil {
		l.name = *name
	}
	if notes != nil {
		l.notes = *notes
	}
	st := e.state.Load()
	// The state saved before: a failure leaves the model file as it was.
	if err := s.store.Save(ctx, e.meta(st, l), st.net); err != nil {
		s.obs.ModelSaveFailed()
		return NetworkInfo{}, &Error{Code: Storage, Message: "could not save the network to the models directory",
			Err: fmt.Errorf("save network %s: %w", id, err)}
	}
	if err := s.catalog.Label(ctx, id, l.name, l.notes); err != nil {
		return NetworkInfo{}, stateError(err)
	}
	s.log.Info("network labelled", "network_id", id, "name", l.name)
	info := e.info()
	info.Name, info.Notes = l.name, l.notes
	if active, err := s.queue.Active(ctx); err == nil {
		info.CurrentJob = active.Current[id]
	}
	return info, nil
}

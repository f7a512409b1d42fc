package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"slices"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// Snapshots: after every epoch a job trains, the model just saved is kept
// as the snapshot of that epoch (Store.Snapshot: a hard link or a copy
// inside the bucket, no bytes through memory), and the snapshots the policy
// no longer keeps are removed: a network keeps its last SnapshotsKept
// epochs, its best epoch by validation accuracy and, while a job trains
// it, the job's best, so that restore_best can restore it. Everything the
// policy needs is in the network's history, which the model file keeps:
// the snapshots survive restarts and follow a job resumed on another
// replica.

// SnapshotInfo describes one snapshot of a network.
type SnapshotInfo struct {
	// Epoch is the network's epoch the snapshot was taken after; Record is
	// that epoch's record in the network's history (its test and
	// validation accuracy, when it finished, the job that trained it).
	Epoch  int
	Record modelfile.EpochRecord
	// Best: its validation accuracy is the highest of the network's
	// snapshots (the first of equals).
	Best bool
}

// recordOfEpoch returns the record of epoch in h (epochs increasing).
func recordOfEpoch(h []modelfile.EpochRecord, epoch int) (modelfile.EpochRecord, bool) {
	i, ok := slices.BinarySearchFunc(h, epoch, func(r modelfile.EpochRecord, e int) int { return cmp.Compare(r.Epoch, e) })
	if !ok {
		return modelfile.EpochRecord{}, false
	}
	return h[i], true
}

// bestSnapshot returns, of epochs (ascending), the one whose record in h
// has the highest validation accuracy, the first of equals, considering
// only the records of job jobID unless it is ""; 0 when none has one.
func bestSnapshot(epochs []int, h []modelfile.EpochRecord, jobID string) int {
	best, bestAcc := 0, -1.0
	for _, ep := range epochs {
		r, ok := recordOfEpoch(h, ep)
		if !ok || r.Restore() || r.ValidationAccuracy == nil || jobID != "" && r.JobID != jobID {
			continue
		}
		if *r.ValidationAccuracy > bestAcc {
			best, bestAcc = ep, *r.ValidationAccuracy
		}
	}
	return best
}

// snapshotsToKeep returns which of epochs (ascending) the policy keeps:
// the last kept, the best by validation accuracy, and job jobID's best.
func snapshotsToKeep(epochs []int, h []modelfile.EpochRecord, kept int, jobID string) map[int]bool {
	keep := map[int]bool{}
	for _, ep := range epochs[max(0, len(epochs)-kept):] {
		keep[ep] = true
	}
	keep[bestSnapshot(epochs, h, "")] = true
	if jobID != "" {
		keep[bestSnapshot(epochs, h, jobID)] = true
	}
	delete(keep, 0)
	return keep
}

// snapshot keeps the model just saved for st as the snapshot of its epoch
// and removes those the policy no longer keeps. It runs under the
// network's save lock. A failure is logged, not returned: the epoch is
// saved, and a snapshot missing is one fewer to restore (restore_best then
// says so).
func (s *Service) snapshot(ctx context.Context, e *entry, st *state, jobID string) {
	if err := s.store.Snapshot(ctx, e.id, st.epochs); err != nil {
		s.log.Warn("could not keep the snapshot of an epoch", "network_id", e.id, "epoch", st.epochs, "err", err)
		return
	}
	epochs, err := s.store.Snapshots(ctx, e.id)
	if err != nil {
		s.log.Warn("could not list the snapshots of a network", "network_id", e.id, "err", err)
		return
	}
	keep := snapshotsToKeep(epochs, st.history, s.limits.snapshotsKept(), jobID)
	for _, ep := range epochs {
		if keep[ep] {
			continue
		}
		if err := s.store.DeleteSnapshot(ctx, e.id, ep); err != nil {
			s.log.Warn("could not remove a snapshot the network no longer keeps", "network_id", e.id, "epoch", ep, "err", err)
		}
	}
}

// snapshotsOf describes the snapshots of e in state st.
func (s *Service) snapshotsOf(ctx context.Context, e *entry, st *state) ([]SnapshotInfo, error) {
	epochs, err := s.store.Snapshots(ctx, e.id)
	if err != nil {
		return nil, &Error{Code: Internal, Message: "could not list the network's snapshots", Err: fmt.Errorf("snapshots of %s: %w", e.id, err)}
	}
	best := bestSnapshot(epochs, st.history, "")
	out := make([]SnapshotInfo, 0, len(epochs))
	for _, ep := range epochs {
		r, ok := recordOfEpoch(st.history, ep)
		if !ok {
			continue // of an epoch this version has not reached: a snapshot being taken
		}
		out = append(out, SnapshotInfo{Epoch: ep, Record: r, Best: ep == best})
	}
	return out, nil
}

// Snapshots returns the snapshots a network keeps, oldest first.
func (s *Service) Snapshots(ctx context.Context, id string) ([]SnapshotInfo, error) {
	e, err := s.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.snapshotsOf(ctx, e, e.state.Load())
}

// errNoSnapshot answers a snapshot that is not kept.
func errNoSnapshot(epoch int) error {
	return Errorf(NotFound, "the network keeps no snapshot of epoch %d; GET /api/networks/{id}/snapshots lists those it keeps", epoch)
}

var errNoSnapshots = Errorf(NotFound, "the network keeps no snapshot with a validation accuracy to restore")

// DownloadSnapshot returns the model file of a network's snapshot after
// epoch, as stored, and its size.
func (s *Service) DownloadSnapshot(ctx context.Context, id string, epoch int) (io.ReadCloser, int64, error) {
	if _, err := s.catalog.Get(ctx, id); err != nil {
		return nil, 0, stateError(err)
	}
	rc, size, err := s.store.OpenSnapshot(ctx, id, epoch)
	if errors.Is(err, ErrSnapshotNotFound) {
		return nil, 0, errNoSnapshot(epoch)
	}
	if err != nil {
		return nil, 0, &Error{Code: Internal, Message: "could not read the snapshot's file", Err: fmt.Errorf("open snapshot %d of %s: %w", epoch, id, err)}
	}
	return rc, size, nil
}

// Restored is what a restore did.
type Restored struct {
	NetworkID string
	// Record is the restore's record in the network's history: the
	// epoch it is (the next), the epoch restored (RestoredFrom) and that
	// epoch's figures.
	Record modelfile.EpochRecord
}

// Restore gives a network the weights of one of its snapshots: that after
// epoch, or, with best, the one of the highest validation accuracy. It is
// a version of its own, which the history records (a record with
// restored_from), saved like an epoch. It is refused (Conflict) while a
// job trains the network; with ownership on it needs the network's owner
// token or the admin token.
func (s *Service) Restore(ctx context.Context, id string, epoch int, best bool) (Restored, error) {
	rec, err := s.catalog.Get(ctx, id)
	if err != nil {
		return Restored{}, stateError(err)
	}
	if err := s.authorize(ctx, rec); err != nil {
		return Restored{}, err
	}
	if err := s.training(ctx, id); err != nil {
		return Restored{}, err
	}
	e, err := s.lookup(ctx, id)
	if err != nil {
		return Restored{}, err
	}
	from := e.state.Load()
	if best {
		epochs, err := s.store.Snapshots(ctx, id)
		if err != nil {
			return Restored{}, &Error{Code: Internal, Message: "could not list the network's snapshots", Err: err}
		}
		if epoch = bestSnapshot(epochs, from.history, ""); epoch == 0 {
			return Restored{}, errNoSnapshots
		}
	}
	r, err := s.restore(ctx, e, from, epoch, false)
	if err != nil {
		return Restored{}, err
	}
	s.log.Info("network restored", "network_id", id, "epoch", r.Epoch, "restored_from", r.RestoredFrom)
	return Restored{NetworkID: id, Record: r}, nil
}

// training refuses (Conflict) while a job trains the network, here or on
// another replica.
func (s *Service) training(ctx context.Context, id string) error {
	s.mu.Lock()
	busy := s.busy[id] > 0
	s.mu.Unlock()
	if !busy {
		active, err := s.queue.Active(ctx)
		if err != nil {
			return stateError(err)
		}
		if cur := active.Current[id]; cur != "" {
			j, err := s.queue.Get(ctx, cur)
			if err != nil && !errors.Is(err, ErrUnknownJob) {
				return stateError(err)
			}
			busy = err == nil && j.Status == StatusTraining
		}
	}
	if busy {
		return Errorf(Conflict, "a job is training this network; restore it once the job has ended (or cancel the job)")
	}
	return nil
}

// restore makes e's weights those of its snapshot after epoch, as the next
// version of from (e's state), saved and published, and returns the
// restore's history record. The memory budget holds the snapshot while it
// is read and the new history: a request waits for room briefly, a job
// (queued work, wait) as long as its ctx lets it.
func (s *Service) restore(ctx context.Context, e *entry, from *state, epoch int, wait bool) (modelfile.EpochRecord, error) {
	if from.epochs >= modelfile.MaxHistory {
		return modelfile.EpochRecord{}, Errorf(Conflict, "a network's history holds at most %d epochs and restores; this one's is full", modelfile.MaxHistory)
	}
	need := restoreBytes(e.arch(), epoch, len(from.history))
	var hold *budget.Hold
	var err error
	if wait {
		hold, err = s.budget.ReserveWait(ctx, need)
		err = memoryError(ctx, err)
	} else {
		hold, err = s.reserve(ctx, need)
	}
	if err != nil {
		return modelfile.EpochRecord{}, err
	}
	defer hold.Release()
	m, net, err := s.store.LoadSnapshot(ctx, e.id, epoch)
	switch {
	case errors.Is(err, ErrSnapshotNotFound):
		return modelfile.EpochRecord{}, errNoSnapshot(epoch)
	case err != nil:
		return modelfile.EpochRecord{}, &Error{Code: Internal, Message: "the snapshot could not be loaded", Err: fmt.Errorf("load snapshot %d of %s: %w", epoch, e.id, err)}
	case !slices.Equal(net.Sizes(), e.sizes) || !slices.Equal(model.Layers(net), e.layers):
		return modelfile.EpochRecord{}, &Error{Code: Internal, Message: "the snapshot could not be loaded",
			Err: fmt.Errorf("snapshot %d of %s has layer sizes %v, the network %v", epoch, e.id, net.Sizes(), e.sizes)}
	}
	r, ok := recordOfEpoch(from.history, epoch)
	if !ok { // the network's history should have it; the snapshot's own does
		if r, ok = recordOfEpoch(m.History, epoch); !ok {
			return modelfile.EpochRecord{}, &Error{Code: Internal, Message: "the snapshot could not be loaded",
				Err: fmt.Errorf("snapshot %d of %s: no record of its epoch", epoch, e.id)}
		}
	}
	now := s.now().UTC()
	r.Epoch, r.RestoredFrom, r.ElapsedTime, r.FinishedAt = from.epochs+1, epoch, 0, now
	acc := r.Accuracy
	st := &state{net: net, version: s.versions.next(), trained: true, accuracy: &acc, epochs: from.epochs + 1, updated: now,
		history: restoredHistory(from.history, r)}
	if err := s.save(e, from, st, saveOpts{}); err != nil {
		if errors.Is(err, errNetworkChanged) || errors.Is(err, ErrVersionMoved) {
			return modelfile.EpochRecord{}, Errorf(Conflict, "the network changed while it was restored; try again")
		}
		return modelfile.EpochRecord{}, err
	}
	return r, nil
}

// restoredHistory is h followed by the restore's record r, in an array of
// its own, exactly as long (a job's appends to h's array must not show in
// it, and the budget counts historyRecordHeld a record).
func restoredHistory(h []modelfile.EpochRecord, r modelfile.EpochRecord) []modelfile.EpochRecord {
	out := make([]modelfile.EpochRecord, len(h)+1)
	copy(out, h)
	out[len(h)] = r
	return out
}

// restoreBytes bounds a restore of a network of these sizes whose history
// holds records records, from a snapshot after epoch: the snapshot read as
// a load, and the new history.
func restoreBytes(a model.Arch, epoch, records int) int64 {
	return loadBytes(a, epoch) + historyRecordHeld*int64(records+1)
}

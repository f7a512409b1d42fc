package service

import (
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"slices"
	"time"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// progressEvery and progressAfter shape training_progress: at most one
// every progressEvery per job, and none until an epoch has run for
// progressAfter (short epochs need no progress inside them).
const (
	progressEvery = 250 * time.Millisecond
	progressAfter = time.Second
)

// progressGate decides when a job sends training_progress.
type progressGate struct {
	every, after time.Duration
	epochStart   time.Time // when the epoch under way began
	last         time.Time // the last progress sent
}

// epoch notes that an epoch begins at now.
func (g *progressGate) epoch(now time.Time) { g.epochStart = now }

// allow reports whether a progress event may go out at now, and if so
// counts it as sent.
func (g *progressGate) allow(now time.Time) bool {
	if now.Sub(g.epochStart) < g.after || now.Sub(g.last) < g.every {
		return false
	}
	g.last = now
	return true
}

// runJob is the Queue's Work: it trains job j's remaining epochs (all of
// them, unless it is resumed after its replica died), saving and
// publishing a snapshot after every epoch, and ends the job with its
// event. It returns ErrHandOver, leaving the job as it is, when the queue
// hands it to another replica.
func (s *Service) runJob(qctx context.Context, j JobInfo) error {
	err := s.train(qctx, j)
	// Handed over: this replica stops, another has taken the job over (it
	// saved the network meanwhile), or the database is out of reach: the
	// job goes on later, from its last saved epoch, as it is.
	if handedOver := errors.Is(context.Cause(qctx), ErrHandOver); handedOver || errors.Is(err, ErrVersionMoved) || errors.Is(err, errStateUnavailable) {
		s.log.Info("training handed over", "job_id", j.ID, "network_id", j.NetworkID, "reason", err)
		if handedOver && s.isDone() {
			// Stopped by the shutdown, to be resumed: its clients are told
			// (the job has not ended: its updates come again later).
			s.log.Info("training interrupted", "job_id", j.ID, "network_id", j.NetworkID)
			s.events.TrainingError(Failure{JobID: j.ID, NetworkID: j.NetworkID, Status: StatusInterrupted, Error: MsgInterrupted})
		}
		return ErrHandOver
	}
	// The job ran on this worker, not for a request: its end is recorded
	// whatever became of the queue's context.
	ctx := context.Background()
	if err == nil {
		done, ended, err := s.queue.End(ctx, j.ID, StatusCompleted, nil)
		if err != nil {
			s.log.Error("could not record a completed job", "job_id", j.ID, "err", err)
			return err
		}
		if ended.Now {
			s.jobEnded(done)
			acc := 0.0
			if done.Accuracy != nil {
				acc = *done.Accuracy
			}
			s.log.Info("training completed", "job_id", j.ID, "network_id", j.NetworkID, "accuracy", acc)
			s.events.TrainingComplete(Complete{JobID: j.ID, NetworkID: j.NetworkID, Accuracy: acc})
			return nil
		}
		// Ended meanwhile (cancelled after its last epoch was saved): the
		// network has every epoch, and the client asked for a
		// training_error.
		s.emitFailure(done)
		return nil
	}
	// Ended by someone else (cancel, delete, shutdown), the job's record
	// says how; otherwise it failed here, for err.
	status := StatusFailed
	if errors.Is(err, errCancelled) {
		status = StatusCancelled
	}
	done, ended, endErr := s.queue.End(ctx, j.ID, status, err)
	if endErr != nil {
		s.log.Error("could not record a job's end", "job_id", j.ID, "err", endErr, "cause", err)
		return endErr
	}
	if ended.Now {
		s.jobEnded(done)
		if c := ErrorCode(err); c == Internal || c == Storage {
			s.log.Error("training failed", "job_id", j.ID, "network_id", j.NetworkID, "err", err)
		}
	}
	s.emitFailure(done)
	return nil
}

// train runs the epochs of j not yet done. It returns nil once every epoch
// ran and was saved, or why it stopped.
func (s *Service) train(qctx context.Context, j JobInfo) error {
	ds, err := s.dataset()
	if err != nil {
		return err
	}
	e, err := s.lookup(qctx, j.NetworkID)
	if ErrorCode(err) == NotFound {
		return errNetworkDeleted // it was when the job was queued
	}
	if err != nil {
		return err
	}
	defer s.markBusy(j.NetworkID)()
	// The job stops when the queue says (cancel, shutdown, hand-over) or
	// the network goes (deleted, here or elsewhere).
	ctx, cancel := context.WithCancelCause(qctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.ctx, func() { cancel(context.Cause(e.ctx)) })
	defer stop()

	start := e.state.Load()
	if j, err = s.catchUp(j, start.history); err != nil {
		return err
	}
	r := &jobRun{s: s, j: j, e: e, done: j.Epoch, base: start, hist: slices.Clone(j.History), netEpochs: map[int]int{},
		gate: &progressGate{every: s.progressEvery, after: s.progressAfter, epochStart: time.Now()}}
	// A job resumed after its last epoch was saved, or after its
	// validation accuracy had stopped improving, has no epoch left: its
	// recorded epochs say so, whichever replica trained them.
	if remaining := j.Params.Epochs - j.Epoch; remaining > 0 && !r.info().noImprovement() {
		s.log.Info("training started", "job_id", j.ID, "network_id", j.NetworkID, "params", j.Params.String(),
			"seed", *j.Params.Seed, "from_epoch", start.epochs, "epochs_done", j.Epoch)
		p := j.Params
		p.Epochs = remaining
		np := p.network(s.limits.JobScratchBytes, r.onBatch)
		np.Done = j.Epoch // a resumed job draws the shuffles it would have: the same run as without the interruption
		np.Validation = ds.Validation
		// The job's memory comes from the budget; it waits for room (it is
		// queued work, no client waits on it), or until it is cancelled.
		hold, err := s.budget.ReserveWait(ctx, jobBytes(e.arch(), np, p.Expand))
		if err != nil {
			if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
				return cause
			}
			return memoryError(ctx, err)
		}
		err = model.Train(ctx, start.net, ds.Training, ds.Test, np, model.TrainOptions{Expand: p.Expand}, newRand(*j.Params.Seed), r.onEpoch)
		hold.Release()
		if errors.Is(err, errStopEarly) {
			s.log.Info("training stopped early: validation accuracy did not improve", "job_id", j.ID, "network_id", j.NetworkID,
				"epochs", r.done, "best_epoch", r.info().BestEpoch(), "stop_after_no_improvement", j.Params.StopAfterNoImprovement)
			err = nil
		}
		if err := trainError(ctx, j, err); err != nil {
			return err
		}
	}
	if j.Params.RestoreBest {
		return r.restoreBest(ctx)
	}
	return nil
}

// errStopEarly is what onEpoch returns to stop SGD once the job's
// validation accuracy has not improved for StopAfterNoImprovement epochs:
// the job then completes.
var errStopEarly = errors.New("validation accuracy stopped improving")

// catchUp brings a resumed job up to its network: the epochs of j that the
// network's history records (its entries carrying j's id) but the queue
// does not are recorded in the queue, and their training_updates sent (no
// client had them). A run that stopped between saving an epoch and
// recording it (the process was killed, the database unreachable) leaves
// the network one epoch ahead of its job; without this the job would train
// that epoch again, and not as the uninterrupted job would. It returns j as
// the queue now has it. Both modes resume through here.
func (s *Service) catchUp(j JobInfo, history []modelfile.EpochRecord) (JobInfo, error) {
	var saved []modelfile.EpochRecord // the network's epochs trained by j, in order
	for _, r := range history {
		if r.JobID == j.ID && !r.Restore() { // a restore_best of j is not an epoch
			saved = append(saved, r)
		}
	}
	if len(saved) < j.Epoch {
		// The queue is ahead of the network: its model was replaced (by
		// hand, say). Go on from what the network is.
		s.log.Warn("resuming a job whose network has fewer of its epochs than the job records", "job_id", j.ID,
			"network_id", j.NetworkID, "job_epochs", j.Epoch, "network_epochs_of_job", len(saved))
		return j, nil
	}
	for _, r := range saved[j.Epoch:min(len(saved), j.Params.Epochs)] {
		epoch := j.Epoch + 1
		res := EpochResult{Epoch: epoch, Correct: r.Correct, Total: r.Total, Accuracy: r.Accuracy, ElapsedTime: r.ElapsedTime,
			ValidationAccuracy: r.ValidationAccuracy, TrainingCost: r.TrainingCost}
		if err := s.queue.Epoch(context.Background(), j.ID, res); err != nil {
			if errors.Is(err, ErrJobEnded) {
				return j, err
			}
			return j, stateError(err)
		}
		s.log.Info("resumed job caught up with its saved epoch", "job_id", j.ID, "network_id", j.NetworkID, "epoch", epoch,
			"network_epoch", r.Epoch)
		acc := r.Accuracy
		j.Epoch, j.Accuracy, j.ElapsedTime = epoch, &acc, j.ElapsedTime+r.ElapsedTime
		j.History = append(j.History, res)
		u := Update{JobID: j.ID, NetworkID: j.NetworkID, Epoch: epoch, TotalEpochs: j.Params.Epochs, NetworkEpoch: r.Epoch,
			Accuracy: r.Accuracy, ElapsedTime: r.ElapsedTime, Progress: progress(epoch, j.Params.Epochs), Correct: r.Correct, Total: r.Total}
		if r.ValidationAccuracy != nil {
			u.ValidationAccuracy = *r.ValidationAccuracy
		}
		if r.TrainingCost != nil {
			u.TrainingCost = *r.TrainingCost
		}
		s.events.TrainingUpdate(u)
	}
	return j, nil
}

// markBusy notes that a job of the network runs here (a copy with a job
// running is the newest: it is neither reloaded nor unloaded), until the
// function it returns is called.
func (s *Service) markBusy(networkID string) (done func()) {
	s.mu.Lock()
	s.busy[networkID]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		if s.busy[networkID]--; s.busy[networkID] == 0 {
			delete(s.busy, networkID)
		}
		s.mu.Unlock()
	}
}

// trainError is why SGD stopped, as the job's end: the cause of a
// cancelled context (cancel, delete, shutdown, hand-over), a divergence, an
// error of onEpoch, or an internal failure.
func trainError(ctx context.Context, j JobInfo, err error) error {
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
		return cause // cancelled, deleted, shutting down or handed over
	}
	switch {
	case errors.Is(err, network.ErrNotFinite):
		return &Error{Code: Invalid, Message: "training diverged (weights became NaN or infinite); the network keeps its last good state — try a smaller learning_rate", Err: err}
	case ErrorCode(err) != Internal:
		return err // one of ours, from onEpoch
	}
	return &Error{Code: Internal, Message: "training failed", Err: fmt.Errorf("train network %s: %w", j.NetworkID, err)}
}

// jobRun is one run of a job on this replica: what its callbacks share.
// OnBatch and onEpoch run on SGD's goroutine, one after another, so they
// share these fields without a lock.
type jobRun struct {
	s    *Service
	j    JobInfo
	e    *entry
	done int // epochs of the job finished, counting those before a resumption
	gate *progressGate
	// base is the network's state the next epoch builds on: the one the
	// job started from, then the one it published last. A save refuses to
	// publish over another (errNetworkChanged).
	base *state
	// hist is the job's epochs as recorded (those before a resumption
	// included): early stopping and the best epoch are read from it.
	hist []EpochResult
	// netEpochs maps the job's epochs trained in this run to the network's
	// epochs they became.
	netEpochs map[int]int
}

// info is the job as its recorded epochs leave it.
func (r *jobRun) info() JobInfo {
	j := r.j
	j.History, j.Epoch = r.hist, r.done
	return j
}

// onBatch sends training_progress inside an epoch, as the gate allows.
func (r *jobRun) onBatch(batch, batches int) {
	if !r.gate.allow(time.Now()) {
		return
	}
	j := r.j
	r.s.events.TrainingProgress(Progress{
		JobID: j.ID, NetworkID: j.NetworkID, Epoch: r.done + 1, TotalEpochs: j.Params.Epochs,
		Batch: batch, Batches: batches,
		Progress: (float64(r.done) + float64(batch)/float64(batches)) / float64(j.Params.Epochs) * 100,
	})
}

// onEpoch saves the epoch's network, publishes it as the network's state,
// records the epoch in the job and tells the clients: in that order, so
// that what clients are told and what memory holds is never ahead of the
// store.
func (r *jobRun) onEpoch(ep model.Epoch) error {
	s, j, e := r.s, r.j, r.e
	epoch := j.Epoch + ep.Epoch // within the job, counting epochs done before a resumption
	acc := ep.Accuracy
	valAcc, cost := 0.0, ep.TrainingCost
	if ep.ValidationTotal > 0 {
		valAcc = float64(ep.ValidationCorrect) / float64(ep.ValidationTotal)
	}
	now := s.now().UTC()
	prev := r.base
	st := &state{net: ep.Network, version: s.versions.next(), trained: true, accuracy: &acc,
		epochs: prev.epochs + 1, updated: now,
		history: append(prev.history, modelfile.EpochRecord{
			Epoch: prev.epochs + 1, JobID: j.ID, Accuracy: acc, Correct: ep.Correct, Total: ep.Total,
			ElapsedTime: ep.Seconds, LearningRate: j.Params.LearningRate, MiniBatchSize: j.Params.MiniBatch,
			Cost: string(j.Params.Cost), Lambda: j.Params.Lambda, Seed: *j.Params.Seed, FinishedAt: now,
			ValidationAccuracy: &valAcc, TrainingCost: &cost,
		})}
	if err := s.save(e, prev, st, saveOpts{snapshot: true, jobID: j.ID}); err != nil {
		return err
	}
	r.base = st
	r.netEpochs[epoch] = st.epochs
	// Recorded even if the job was cancelled meanwhile: the epoch is saved.
	result := EpochResult{
		Epoch: epoch, Correct: ep.Correct, Total: ep.Total, Accuracy: acc, ElapsedTime: ep.Seconds,
		ValidationAccuracy: &valAcc, TrainingCost: &cost,
	}
	err := s.queue.Epoch(context.Background(), j.ID, result)
	if errors.Is(err, ErrJobEnded) {
		return err // ended meanwhile: no more events but its training_error
	}
	if err != nil {
		return stateError(err)
	}
	s.obs.EpochTrained(ep.Seconds)
	s.events.TrainingUpdate(Update{
		JobID: j.ID, NetworkID: j.NetworkID, Epoch: epoch, TotalEpochs: j.Params.Epochs, NetworkEpoch: st.epochs,
		Accuracy: acc, ElapsedTime: ep.Seconds, Progress: progress(epoch, j.Params.Epochs),
		Correct: ep.Correct, Total: ep.Total, ValidationAccuracy: valAcc, TrainingCost: cost,
	})
	s.log.Debug("epoch done", "job_id", j.ID, "network_id", j.NetworkID, "epoch", epoch, "accuracy", acc, "seconds", ep.Seconds)
	r.done = epoch
	r.hist = append(r.hist, result)
	r.gate.epoch(time.Now())
	if r.info().noImprovement() && epoch < j.Params.Epochs {
		return errStopEarly
	}
	return nil
}

// restoreBest gives the network the weights of the job's best epoch by
// validation accuracy, as a restore (a version of its own), unless they
// are its weights already: the best epoch is its last, or the job was
// resumed after it had restored them.
func (r *jobRun) restoreBest(ctx context.Context) error {
	best := r.info().BestEpoch()
	if best == 0 {
		return nil // no epoch of the job has a validation accuracy
	}
	cur := r.e.state.Load()
	netEpoch, ok := r.netEpochs[best]
	if !ok {
		netEpoch, ok = jobEpochOf(cur.history, r.j.ID, best)
	}
	if !ok {
		return &Error{Code: Internal, Message: "could not restore the job's best epoch: the network's history does not have it",
			Err: fmt.Errorf("job %s epoch %d: no record of network %s", r.j.ID, best, r.j.NetworkID)}
	}
	if n := len(cur.history); n > 0 {
		last := cur.history[n-1]
		if last.Epoch == netEpoch || last.Restore() && last.RestoredFrom == netEpoch && last.JobID == r.j.ID {
			return nil
		}
	}
	if _, err := r.s.restore(ctx, r.e, r.base, netEpoch, true); err != nil {
		if ErrorCode(err) == Internal || ErrorCode(err) == NotFound {
			return &Error{Code: Internal, Message: "could not restore the job's best epoch: " + ErrorMessage(err), Err: err}
		}
		return err
	}
	r.s.log.Info("restored the job's best epoch", "job_id", r.j.ID, "network_id", r.j.NetworkID, "job_epoch", best, "epoch", netEpoch)
	return nil
}

// jobEpochOf returns the network's epoch that the job's epoch n (1 for its
// first) became: the n-th record of the job in the history, restores left
// out.
func jobEpochOf(h []modelfile.EpochRecord, jobID string, n int) (int, bool) {
	for _, rec := range h {
		if rec.JobID == jobID && !rec.Restore() {
			if n--; n == 0 {
				return rec.Epoch, true
			}
		}
	}
	return 0, false
}

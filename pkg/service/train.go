package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mnist-go/nnserver/pkg/network"
	"github.com/mnist-go/nnserver/pkg/store"
)

// worker runs queued jobs until Close, taking the oldest job whose network
// is not already training.
func (s *Service) worker() {
	for {
		s.mu.Lock()
		j := s.nextLocked()
		if j == nil {
			s.mu.Unlock()
			return
		}
		j.status = StatusTraining
		j.started = s.now()
		s.jobs.running[j.NetworkID] = j
		s.mu.Unlock()

		err := s.run(j)

		s.mu.Lock()
		ended := false
		if err != nil {
			status := StatusFailed
			if errors.Is(err, errCancelled) {
				status = StatusCancelled
			}
			s.finishLocked(j, status, err)
			ended = true
		} else if j.status == StatusCancelled {
			// Cancelled after its last epoch was saved: the network has
			// every epoch, and the client asked for a training_error.
			err, ended = errCancelled, true
		}
		if s.jobs.running[j.NetworkID] == j {
			delete(s.jobs.running, j.NetworkID)
		}
		s.cond.Broadcast()
		s.mu.Unlock()
		if ended {
			s.emitFailure(j, err)
		}
	}
}

// nextLocked waits for a runnable job and removes it from the queue; nil
// after Close.
func (s *Service) nextLocked() *Job {
	for {
		if s.done {
			return nil
		}
		if j := s.jobs.next(); j != nil {
			return j
		}
		s.cond.Wait()
	}
}

// progressEvery and progressAfter shape training_progress: at most one
// every progressEvery per job, and none until an epoch has run for
// progressAfter (short epochs need no progress inside them).
const (
	progressEvery = 250 * time.Millisecond
	progressAfter = time.Second
)

// run trains one job, saving and publishing a snapshot after every epoch.
// It returns nil once every epoch ran and training_complete went out, or
// the reason the job ended early.
func (s *Service) run(j *Job) error {
	ds, err := s.dataset()
	if err != nil {
		return err
	}
	e, err := s.lookup(j.NetworkID)
	if ErrorCode(err) == NotFound {
		return errNetworkDeleted // it was when the job was queued
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(e.ctx)
	defer cancel(nil)
	s.mu.Lock()
	if j.status.Finished() { // cancelled while the network loaded
		s.mu.Unlock()
		return errCancelled
	}
	j.cancel = cancel
	s.mu.Unlock()

	start := e.state.Load()
	log := s.log.With("job_id", j.ID, "network_id", j.NetworkID)
	log.Info("training started", "params", j.Params.String(), "seed", *j.Params.Seed, "from_epoch", start.epochs)
	began := time.Now()
	var last *state
	onEpoch := func(ep network.Epoch) error {
		acc := ep.Accuracy
		now := s.now().UTC()
		prev := e.state.Load()
		st := &state{net: ep.Network, version: s.versions.next(), trained: true, accuracy: &acc,
			epochs: start.epochs + ep.Epoch, updated: now,
			history: append(prev.history, store.EpochRecord{
				Epoch: start.epochs + ep.Epoch, JobID: j.ID, Accuracy: acc, Correct: ep.Correct, Total: ep.Total,
				ElapsedTime: ep.Seconds, LearningRate: j.Params.LearningRate, MiniBatchSize: j.Params.MiniBatch,
				Cost: string(j.Params.Cost), Lambda: j.Params.Lambda, Seed: *j.Params.Seed, FinishedAt: now,
			})}
		// Saved first: what clients are told and what memory holds is
		// never ahead of the disk.
		if err := s.save(e, st); err != nil {
			return err
		}
		e.state.Store(st)
		last = st
		s.mu.Lock()
		if j.status.Finished() { // cancelled: no more events but its training_error
			s.mu.Unlock()
			return errCancelled
		}
		j.epoch, j.accuracy = ep.Epoch, &acc
		j.elapsed += ep.Seconds
		j.history = append(j.history, epochRecord{correct: int32(ep.Correct), total: int32(ep.Total), elapsed: ep.Seconds})
		s.mu.Unlock()
		s.obs.EpochTrained(ep.Seconds)
		s.events.TrainingUpdate(Update{
			JobID: j.ID, NetworkID: j.NetworkID, Epoch: ep.Epoch, TotalEpochs: ep.Epochs, NetworkEpoch: st.epochs,
			Accuracy: acc, ElapsedTime: ep.Seconds, Progress: progress(ep.Epoch, ep.Epochs),
			Correct: ep.Correct, Total: ep.Total,
		})
		log.Debug("epoch done", "epoch", ep.Epoch, "accuracy", acc, "seconds", ep.Seconds)
		return nil
	}
	// Progress inside an epoch: OnBatch runs on this goroutine after every
	// mini-batch, as onEpoch does after every epoch, so they share these
	// variables without a lock.
	done, epochStart, lastProgress := 0, time.Now(), time.Time{}
	onBatch := func(batch, batches int) {
		now := time.Now()
		if now.Sub(epochStart) < progressAfter || now.Sub(lastProgress) < progressEvery {
			return
		}
		lastProgress = now
		s.events.TrainingProgress(Progress{
			JobID: j.ID, NetworkID: j.NetworkID, Epoch: done + 1, TotalEpochs: j.Params.Epochs,
			Batch: batch, Batches: batches,
			Progress: (float64(done) + float64(batch)/float64(batches)) / float64(j.Params.Epochs) * 100,
		})
	}
	trainEpoch := onEpoch
	onEpoch = func(ep network.Epoch) error {
		err := trainEpoch(ep)
		done, epochStart = ep.Epoch, time.Now()
		return err
	}
	_, err = network.SGD(ctx, start.net, ds.Training, ds.Test, j.Params.network(s.limits.JobScratchBytes, onBatch),
		newRand(*j.Params.Seed), onEpoch)
	if err != nil {
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
			return cause // cancelled, deleted or shutting down
		}
		switch {
		case errors.Is(err, network.ErrNotFinite):
			return &Error{Code: Invalid, Message: "training diverged (weights became NaN or infinite); the network keeps its last good state — try a smaller learning_rate", Err: err}
		case ErrorCode(err) != Internal:
			return err // one of ours, from onEpoch
		}
		return &Error{Code: Internal, Message: "training failed", Err: fmt.Errorf("train network %s: %w", j.NetworkID, err)}
	}
	// Completed before the event goes out, so that a client asking on
	// receipt of it reads "completed"; unless a cancel came first.
	s.mu.Lock()
	completed := s.finishLocked(j, StatusCompleted, nil)
	s.mu.Unlock()
	if !completed {
		return nil // the worker sends the cancellation
	}
	log.Info("training completed", "accuracy", *last.accuracy, "seconds", time.Since(began).Seconds())
	s.events.TrainingComplete(Complete{JobID: j.ID, NetworkID: j.NetworkID, Accuracy: *last.accuracy})
	return nil
}

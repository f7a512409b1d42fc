package sqlite

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/service"
)

// sameJob reports what differs between a job read back and the one
// expected, in what a restart must keep.
func sameJob(t *testing.T, what string, got, want service.JobInfo) {
	t.Helper()
	if got.ID != want.ID || got.NetworkID != want.NetworkID || got.Client != want.Client || got.Status != want.Status ||
		got.Epoch != want.Epoch || got.ElapsedTime != want.ElapsedTime || got.Error != want.Error ||
		(got.Accuracy == nil) != (want.Accuracy == nil) || got.Accuracy != nil && *got.Accuracy != *want.Accuracy ||
		!slices.Equal(got.History, want.History) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.StartedAt.Equal(want.StartedAt) || !got.FinishedAt.Equal(want.FinishedAt) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
	gp, wp := got.Params, want.Params
	if gp.Epochs != wp.Epochs || gp.MiniBatch != wp.MiniBatch || gp.LearningRate != wp.LearningRate || gp.Cost != wp.Cost ||
		gp.Lambda != wp.Lambda || (gp.Seed == nil) != (wp.Seed == nil) || gp.Seed != nil && *gp.Seed != *wp.Seed {
		t.Errorf("%s: params %+v, want %+v", what, gp, wp)
	}
}

// waitStatus waits until job id has status want, and returns it.
func waitStatus(t testing.TB, q service.Queue, id string, want service.JobStatus) service.JobInfo {
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

// A job running when the process stops (Stop: a hand-over) or dies (no
// Stop) is resumed by the next one, handed to Work with its Epoch and
// history as recorded; the pending jobs follow in their order.
func TestResume(t *testing.T) {
	for _, how := range []string{"Stop", "crash"} {
		t.Run("after"+how, func(t *testing.T) {
			ctx := context.Background()
			path := dbPath(t)
			netA, netB := uuid.NewString(), uuid.NewString()
			a1, b1, a2 := job(netA, 3), job(netB, 1), job(netA, 2)
			a2.Client = "192.0.2.7"

			db := openDB(t, path)
			q := newQueue(t, db, 1, service.Limits{}, nil)
			mustAdd(t, q, a1, b1, a2)
			w := newWorker(q)
			if err := q.Start(w.work); err != nil {
				t.Fatal(err)
			}
			run := w.nextIs(t, a1)
			e1 := service.EpochResult{Epoch: 1, Correct: 9123, Total: 10000, Accuracy: 0.9123, ElapsedTime: 1.25}
			if err := q.Epoch(ctx, a1.ID, e1); err != nil {
				t.Fatal(err)
			}
			want := run
			want.Epoch, want.Accuracy, want.ElapsedTime, want.History = 1, &e1.Accuracy, e1.ElapsedTime, []service.EpochResult{e1}
			if how == "Stop" {
				stop(t, q)
				if cause := w.cause(a1.ID); !errors.Is(cause, service.ErrHandOver) {
					t.Errorf("the running job's cause: %v, want a hand-over", cause)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				abandon(db, q)
			}

			db2 := openDB(t, path)
			q2 := newQueue(t, db2, 1, service.Limits{}, nil)
			// Before Start, everything reads as it was left.
			sameJob(t, "the running job after a restart", mustGet(t, q2, a1.ID), want)
			for _, j := range []service.JobInfo{b1, a2} {
				sameJob(t, "a pending job after a restart", mustGet(t, q2, j.ID), j)
			}
			act, err := q2.Active(ctx)
			if err != nil || act.Running != 1 || act.Queued != 2 || act.Current[netA] != a1.ID || act.Current[netB] != b1.ID {
				t.Errorf("Active after a restart: %+v, %v", act, err)
			}

			w2 := newWorker(q2)
			if err := q2.Start(w2.work); err != nil {
				t.Fatal(err)
			}
			sameJob(t, "the job resumed", w2.nextIs(t, a1), want)
			w2.complete(a1.ID)
			done := waitStatus(t, q2, a1.ID, service.StatusCompleted)
			if len(done.History) != 2 || done.History[0] != e1 || done.History[1].Epoch != 2 || done.Epoch != 2 ||
				done.ElapsedTime != e1.ElapsedTime+0.5 || !done.StartedAt.Equal(run.StartedAt) || done.FinishedAt.IsZero() {
				t.Errorf("the resumed job, completed: %+v", done)
			}
			for _, j := range []service.JobInfo{b1, a2} {
				got := w2.nextIs(t, j)
				if got.Epoch != 0 || len(got.History) != 0 || got.Client != j.Client {
					t.Errorf("pending job %s handed to Work as %+v", j.ID, got)
				}
				w2.complete(j.ID)
			}
			waitStatus(t, q2, a2.ID, service.StatusCompleted)
			if act, _ := q2.Active(ctx); act.Running != 0 || act.Queued != 0 {
				t.Errorf("Active once every job is done: %+v", act)
			}
		})
	}
}

// Finished jobs are answered after a restart, until the retention limits
// forget them: JobRetention after their end, or at Start once
// MaxFinishedJobs newer ones have finished, even when the limit was lowered.
func TestFinishedJobsAfterRestart(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	clk := testutil.NewClock(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))
	lim := service.DefaultLimits()
	lim.MaxFinishedJobs, lim.JobRetention = 10, time.Hour
	net := uuid.NewString()
	done, cancelled := job(net, 1), job(net, 1)

	db := openDB(t, path)
	q := newQueue(t, db, 1, lim, clk.Now)
	mustAdd(t, q, done, cancelled)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.nextIs(t, done)
	w.complete(done.ID)
	gotDone := waitStatus(t, q, done.ID, service.StatusCompleted)
	clk.Advance(time.Second)
	// It may have started: either way it ends cancelled.
	gotCancelled, e, err := q.End(ctx, cancelled.ID, service.StatusCancelled, service.Errorf(service.Conflict, service.MsgCancelled))
	if err != nil || !e.Now || gotCancelled.Error != service.MsgCancelled {
		t.Fatalf("End: %+v %+v %v", gotCancelled, e, err)
	}
	stop(t, q)
	db.Close()

	reopen := func(lim service.Limits) *Queue {
		db := openDB(t, path)
		q := newQueue(t, db, 1, lim, clk.Now)
		if err := q.Start(newWorker(q).work); err != nil {
			t.Fatal(err)
		}
		return q
	}
	q = reopen(lim)
	sameJob(t, "a completed job after a restart", mustGet(t, q, done.ID), gotDone)
	sameJob(t, "a cancelled job after a restart", mustGet(t, q, cancelled.ID), gotCancelled)
	stop(t, q)
	q.db.Close()

	lim.MaxFinishedJobs = 1
	q = reopen(lim)
	if _, err := q.Get(ctx, done.ID); !errors.Is(err, service.ErrUnknownJob) {
		t.Errorf("the older of two finished jobs, with a limit of 1: %v", err)
	}
	sameJob(t, "the newer of two finished jobs, with a limit of 1", mustGet(t, q, cancelled.ID), gotCancelled)
	clk.Advance(time.Hour + time.Second)
	if _, err := q.Get(ctx, cancelled.ID); !errors.Is(err, service.ErrUnknownJob) {
		t.Errorf("a finished job past JobRetention: %v", err)
	}
}

// A job ended while it runs is not resumed, even if the process dies
// before its Work returns: the next job of its network runs instead.
func TestEndedWhileRunningIsNotResumed(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	net := uuid.NewString()
	a1, a2 := job(net, 1), job(net, 1)

	db := openDB(t, path)
	q := newQueue(t, db, 1, service.Limits{}, nil)
	mustAdd(t, q, a1, a2)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.nextIs(t, a1)
	j, e, err := q.End(ctx, a1.ID, service.StatusCancelled, service.Errorf(service.Conflict, service.MsgCancelled))
	if err != nil || !e.Now || e.WasPending || j.Status != service.StatusCancelled {
		t.Fatalf("End of a running job: %+v %+v %v", j, e, err)
	}
	abandon(db, q)

	db2 := openDB(t, path)
	q2 := newQueue(t, db2, 1, service.Limits{}, nil)
	w2 := newWorker(q2)
	if err := q2.Start(w2.work); err != nil {
		t.Fatal(err)
	}
	w2.nextIs(t, a2)
	if j := mustGet(t, q2, a1.ID); j.Status != service.StatusCancelled || j.Error != service.MsgCancelled {
		t.Errorf("the job ended while it ran, after a restart: %+v", j)
	}
	w2.complete(a2.ID)
	waitStatus(t, q2, a2.ID, service.StatusCompleted)
	w2.none(t)
}

// After a restart, EndNetwork ends a network's job left training (which no
// Work runs yet, so it is returned with the pending ones: the caller tells
// their ends), and End of such a job says it was waiting. The other
// networks' jobs run.
func TestEndAfterRestart(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	netA, netB := uuid.NewString(), uuid.NewString()
	a1, b1, a2, b2 := job(netA, 2), job(netB, 2), job(netA, 1), job(netB, 1)

	db := openDB(t, path)
	q := newQueue(t, db, 2, service.Limits{}, nil)
	mustAdd(t, q, a1, b1, a2, b2)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	started := []string{w.next(t).ID, w.next(t).ID}
	slices.Sort(started)
	if want := []string{a1.ID, b1.ID}; !slices.Equal(started, slices.Sorted(slices.Values(want))) {
		t.Fatalf("started %v, want %v", started, want)
	}
	stop(t, q)
	db.Close()

	db2 := openDB(t, path)
	q2 := newQueue(t, db2, 1, service.Limits{}, nil)
	deleted := service.Errorf(service.Conflict, "the network was deleted")
	pending, err := q2.EndNetwork(ctx, netA, service.StatusFailed, deleted)
	if err != nil || len(pending) != 2 || pending[0].ID != a1.ID || pending[1].ID != a2.ID {
		t.Fatalf("EndNetwork after a restart: %+v, %v", pending, err)
	}
	for _, j := range pending {
		if j.Status != service.StatusFailed || j.Error != "the network was deleted" || j.FinishedAt.IsZero() {
			t.Errorf("ended by EndNetwork: %+v", j)
		}
	}
	j, e, err := q2.End(ctx, b1.ID, service.StatusCancelled, service.Errorf(service.Conflict, service.MsgCancelled))
	if err != nil || !e.Now || !e.WasPending || j.Status != service.StatusCancelled {
		t.Errorf("End of a job left training, after a restart: %+v %+v %v", j, e, err)
	}
	w2 := newWorker(q2)
	if err := q2.Start(w2.work); err != nil {
		t.Fatal(err)
	}
	w2.nextIs(t, b2)
	w2.complete(b2.ID)
	waitStatus(t, q2, b2.ID, service.StatusCompleted)
	w2.none(t)
	if act, _ := q2.Active(ctx); act.Running != 0 || act.Queued != 0 || len(act.Current) != 0 {
		t.Errorf("Active: %+v", act)
	}
}

// A Work that hands its job over without Stop (the service could not
// record an epoch) has it resumed after a pause, as recorded; one that
// returns without ending its job otherwise fails it, as the in-memory
// queue does, and the network's next job runs.
func TestWorkReturnsWithoutEnding(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, dbPath(t))
	q := newQueue(t, db, 1, service.Limits{}, nil)
	net := uuid.NewString()
	a1, a2 := job(net, 2), job(net, 1)
	mustAdd(t, q, a1, a2)
	w := newWorker(q)
	if err := q.Start(w.work); err != nil {
		t.Fatal(err)
	}
	w.nextIs(t, a1)
	e1 := service.EpochResult{Epoch: 1, Correct: 5, Total: 10, Accuracy: 0.5, ElapsedTime: 2}
	if err := q.Epoch(ctx, a1.ID, e1); err != nil {
		t.Fatal(err)
	}
	w.giveBack(a1.ID, service.ErrHandOver)
	again := w.nextIs(t, a1)
	if again.Status != service.StatusTraining || again.Epoch != 1 || !slices.Equal(again.History, []service.EpochResult{e1}) {
		t.Errorf("the job handed over, run again: %+v", again)
	}
	w.giveBack(a1.ID, nil)
	w.nextIs(t, a2)
	if j := mustGet(t, q, a1.ID); j.Status != service.StatusFailed || j.Error != "training stopped unexpectedly" {
		t.Errorf("a job whose Work returned without ending it: %+v", j)
	}
	w.complete(a2.ID)
	waitStatus(t, q, a2.ID, service.StatusCompleted)
}

// Open waits for the process holding the file to close it, until ctx
// ends.
func TestOpenWaitsForTheLock(t *testing.T) {
	path := dbPath(t)
	db := openDB(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if db2, err := Open(ctx, path, Config{Logger: testLogger(t)}); err == nil {
		db2.Close()
		t.Fatal("a second Open while the first holds the file")
	}
	opened := make(chan error, 1)
	go func() {
		db2, err := Open(context.Background(), path, Config{Logger: testLogger(t)})
		if err == nil {
			err = db2.Close()
		}
		opened <- err
	}()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Open did not go on once the file was closed")
	}
}

// A job added after Stop (a request that raced the shutdown) is kept
// pending, and runs when the next process starts.
func TestAddAfterStopRunsAtNextStart(t *testing.T) {
	path := dbPath(t)
	db := openDB(t, path)
	q := newQueue(t, db, 1, service.Limits{}, nil)
	if err := q.Start(newWorker(q).work); err != nil {
		t.Fatal(err)
	}
	stop(t, q)
	if err := q.Start(newWorker(q).work); err == nil {
		t.Error("Start after Stop")
	}
	late := job(uuid.NewString(), 1)
	mustAdd(t, q, late)
	if j := mustGet(t, q, late.ID); j.Status != service.StatusPending {
		t.Errorf("added after Stop: %+v", j)
	}
	db.Close()

	db2 := openDB(t, path)
	q2 := newQueue(t, db2, 1, service.Limits{}, nil)
	w2 := newWorker(q2)
	if err := q2.Start(w2.work); err != nil {
		t.Fatal(err)
	}
	w2.nextIs(t, late)
}

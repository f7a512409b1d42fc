package sqlite

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/service"
)

// waitLimit bounds every wait of these tests: a guard against hangs, not a
// timing assertion.
const waitLimit = 30 * time.Second

// openDB opens the database at path with the test's logger, closed when
// the test ends (unless the test closed it).
func openDB(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dbPath is a new database file's path in the test's directory.
func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "models", "jobs.db") }

// newQueue returns db's queue, its retries shortened, stopped when the
// test ends (before db closes) unless the test stopped it.
func newQueue(t testing.TB, db *DB, workers int, lim service.Limits, now func() time.Time) *Queue {
	t.Helper()
	if lim == (service.Limits{}) {
		lim = service.DefaultLimits()
	}
	q := db.Queue(workers, lim, now)
	q.retryFirst, q.retryMax = time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		q.Stop(ctx)
	})
	return q
}

// logBuffer collects a logger's lines, shown if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t testing.TB) *slog.Logger {
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", b)
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// job is a new pending job of network with epochs epochs.
func job(network string, epochs int) service.JobInfo {
	seed := uint64(1<<63 + 5) // all 64 bits kept
	return service.JobInfo{ID: uuid.NewString(), NetworkID: network, Status: service.StatusPending,
		Params: service.TrainParams{Epochs: epochs, MiniBatch: 10, LearningRate: 3, Cost: service.CostCrossEntropy,
			Lambda: 0.5, Seed: &seed},
		CreatedAt: time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)}
}

func mustAdd(t testing.TB, q service.Queue, jobs ...service.JobInfo) {
	t.Helper()
	for _, j := range jobs {
		if err := q.Add(context.Background(), j, service.Admission{MaxQueued: 100}); err != nil {
			t.Fatalf("Add %s: %v", j.ID, err)
		}
	}
}

func mustGet(t testing.TB, q service.Queue, id string) service.JobInfo {
	t.Helper()
	j, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return j
}

// worker is a Work that reports each job it is given, and returns when
// the test says (finish: it records an epoch and completes the job; back:
// it returns what it is told without ending the job) or when its context
// ends: a hand-over returns service.ErrHandOver, leaving the job as it is,
// any other cause ends the job failed, as the service does.
type worker struct {
	q       service.Queue
	started chan service.JobInfo
	mu      sync.Mutex
	finish  map[string]chan error // job → what to do: errComplete finishes it, else Work returns that error
	causes  map[string]error      // job → the cause its context ended with
}

func newWorker(q service.Queue) *worker {
	return &worker{q: q, started: make(chan service.JobInfo, 100), finish: map[string]chan error{}, causes: map[string]error{}}
}

func (w *worker) ch(id string) chan error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.finish[id]
	if c == nil {
		c = make(chan error, 1)
		w.finish[id] = c
	}
	return c
}

func (w *worker) work(ctx context.Context, j service.JobInfo) error {
	w.started <- j
	select {
	case err := <-w.ch(j.ID):
		if err != errComplete {
			return err
		}
		r := service.EpochResult{Epoch: j.Epoch + 1, Correct: 9500, Total: 10000, Accuracy: 0.95, ElapsedTime: 0.5}
		if err := w.q.Epoch(context.Background(), j.ID, r); err != nil {
			return err
		}
		_, _, err = w.q.End(context.Background(), j.ID, service.StatusCompleted, nil)
		return err
	case <-ctx.Done():
		cause := context.Cause(ctx)
		w.mu.Lock()
		w.causes[j.ID] = cause
		w.mu.Unlock()
		if errors.Is(cause, service.ErrHandOver) {
			return service.ErrHandOver
		}
		_, _, err := w.q.End(context.Background(), j.ID, service.StatusFailed, cause)
		return err
	}
}

// errComplete tells a Work to record an epoch and complete its job.
var errComplete = errors.New("complete the job")

// complete lets job id's Work record an epoch and complete it.
func (w *worker) complete(id string) { w.ch(id) <- errComplete }

// giveBack makes job id's Work return err without ending it.
func (w *worker) giveBack(id string, err error) { w.ch(id) <- err }

func (w *worker) cause(id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.causes[id]
}

// next waits for the next job Work is given.
func (w *worker) next(t testing.TB) service.JobInfo {
	t.Helper()
	select {
	case j := <-w.started:
		return j
	case <-time.After(waitLimit):
		t.Fatal("no job started")
		return service.JobInfo{}
	}
}

// nextIs waits for the next job Work is given, and checks it is want.
func (w *worker) nextIs(t testing.TB, want service.JobInfo) service.JobInfo {
	t.Helper()
	j := w.next(t)
	if j.ID != want.ID {
		t.Fatalf("job %s started, want %s", j.ID, want.ID)
	}
	return j
}

// none checks that no job has been started (beyond those taken already).
func (w *worker) none(t testing.TB) {
	t.Helper()
	select {
	case j := <-w.started:
		t.Fatalf("job %s started", j.ID)
	default:
	}
}

// stop stops q, checking it ended no job.
func stop(t testing.TB, q service.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ended, err := q.Stop(ctx)
	if err != nil || len(ended) != 0 {
		t.Fatalf("Stop: %+v, %v", ended, err)
	}
}

// abandon leaves q's file as a process killed at this point leaves it:
// no Stop, nothing more written (q's idle workers exit, its busy ones stay
// in Work until the test's cleanup stops q, which hands over and so writes
// nothing), and db's lock released. (TestResumeAfterKill9 kills a process
// for real.)
func abandon(db *DB, q *Queue) {
	q.mu.Lock()
	q.stopped = true
	q.cond.Broadcast()
	q.mu.Unlock()
	db.mu.Lock()
	unlock := db.unlock
	db.unlock = nil
	db.mu.Unlock()
	unlock()
}

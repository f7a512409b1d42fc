package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/pkg/service"
)

// The cost of what the service does per epoch and per request, each a
// transaction committed to disk (synchronous=FULL: an fsync of the WAL).

// BenchmarkEpoch records epochs of a running job: what a job does once
// per epoch, after saving the network.
func BenchmarkEpoch(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, dbPath(b))
	q := newQueue(b, db, 1, service.Limits{}, nil)
	w := newWorker(q)
	j := job(uuid.NewString(), 1)
	mustAdd(b, q, j)
	if err := q.Start(w.work); err != nil {
		b.Fatal(err)
	}
	w.nextIs(b, j)
	e := 0
	for b.Loop() {
		e++
		if err := q.Epoch(ctx, j.ID, service.EpochResult{Epoch: e, Correct: 9000, Total: 10000, Accuracy: 0.9, ElapsedTime: 1.5}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdd adds jobs with the service's admission (every bound
// checked) to a queue holding 50 pending jobs of 10 networks and 10
// clients; each is ended (cancelled) again, outside the timing.
func BenchmarkAdd(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, dbPath(b))
	q := newQueue(b, db, 1, service.Limits{}, nil) // not started: jobs stay pending
	nets := make([]string, 10)
	for i := range nets {
		nets[i] = uuid.NewString()
	}
	adm := service.Admission{MaxQueued: 100, MaxQueuedPerClient: 100, MaxNetworkEpochs: 1_000_000, EpochsTrained: 10}
	add := func(i int) string {
		j := job(nets[i%len(nets)], 3)
		j.Client = fmt.Sprintf("192.0.2.%d", i%10)
		if err := q.Add(ctx, j, adm); err != nil {
			b.Fatal(err)
		}
		return j.ID
	}
	var ids []string
	for i := range 50 {
		ids = append(ids, add(i))
	}
	i := 0
	for b.Loop() {
		ids = append(ids, add(i))
		i++
		b.StopTimer()
		if _, _, err := q.End(ctx, ids[0], service.StatusCancelled, nil); err != nil {
			b.Fatal(err)
		}
		ids = ids[1:]
		b.StartTimer()
	}
}

// BenchmarkEnd ends (cancels) pending jobs, pruning included, with 1000
// finished jobs kept.
func BenchmarkEnd(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, dbPath(b))
	lim := service.DefaultLimits()
	lim.MaxFinishedJobs = 1000
	q := newQueue(b, db, 1, lim, nil)
	adm := service.Admission{MaxQueued: 1 << 30}
	for i := 0; i < 1000; i++ {
		j := job(uuid.NewString(), 1)
		if err := q.Add(ctx, j, adm); err != nil {
			b.Fatal(err)
		}
		if _, _, err := q.End(ctx, j.ID, service.StatusCancelled, nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		b.StopTimer()
		j := job(uuid.NewString(), 1)
		if err := q.Add(ctx, j, adm); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, _, err := q.End(ctx, j.ID, service.StatusCancelled, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads a finished job of 30 epochs: GET /api/training/{id}.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, dbPath(b))
	q := newQueue(b, db, 1, service.Limits{}, nil)
	w := newWorker(q)
	j := job(uuid.NewString(), 30)
	mustAdd(b, q, j)
	if err := q.Start(w.work); err != nil {
		b.Fatal(err)
	}
	w.nextIs(b, j)
	for e := 1; e < 30; e++ {
		if err := q.Epoch(ctx, j.ID, service.EpochResult{Epoch: e, Correct: 9000, Total: 10000, Accuracy: 0.9, ElapsedTime: 1.5}); err != nil {
			b.Fatal(err)
		}
	}
	w.complete(j.ID)
	waitStatus(b, q, j.ID, service.StatusCompleted)
	for b.Loop() {
		if got, err := q.Get(ctx, j.ID); err != nil || len(got.History) != 30 {
			b.Fatal(got, err)
		}
	}
}

// BenchmarkList reads a page of 20 of the job list (GET /api/training)
// with 10,000 finished jobs of 100 networks kept (MAX_FINISHED_JOBS): the
// newest, one network's, and a status no job has (every row looked at).
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	db := openDB(b, dbPath(b))
	q := newQueue(b, db, 1, service.Limits{}, nil)
	nets := make([]string, 100)
	for i := range nets {
		nets[i] = uuid.NewString()
	}
	now := time.Now().UnixNano()
	err := inTx(ctx, db.sql, func(tx *sql.Tx) error {
		for i := range 10_000 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, network_id, epochs, mini_batch, learning_rate, cost, lambda, seed,
	status, epoch, accuracy, created_at, started_at, finished_at) VALUES (?, ?, 30, 10, 3, 'quadratic', 0, 1, 'completed', 30, 0.95, ?, ?, ?)`,
				uuid.NewString(), nets[i%len(nets)], now, now, now+int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    service.JobFilter
		want int
	}{
		{"newest", service.JobFilter{Limit: 20}, 20},
		{"network", service.JobFilter{NetworkID: nets[7], Limit: 20}, 20},
		{"none", service.JobFilter{Statuses: []service.JobStatus{service.StatusPending}, Limit: 20}, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if p, err := q.List(ctx, tc.f); err != nil || len(p.Jobs) != tc.want {
					b.Fatal(len(p.Jobs), err)
				}
			}
		})
	}
}

package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/service/statetest"
)

// The contract of every Catalog and Queue, each case on a database of its
// own.

func TestCatalogContract(t *testing.T) {
	statetest.RunCatalog(t, func(t *testing.T) service.Catalog { return NewCatalog(migrated(t), 0) })
}

func TestQueueContract(t *testing.T) {
	statetest.RunQueue(t, statetest.QueueOptions{HandsOver: true},
		func(t *testing.T, workers int, lim service.Limits, now func() time.Time) service.Queue {
			return newTestQueue(t, migrated(t), QueueConfig{Workers: workers, Limits: lim, Now: now})
		})
}

// newTestQueue returns a Queue with the test's logger and short intervals.
// It is stopped when the test ends, unless the test stopped it.
func newTestQueue(t *testing.T, pool *pgxpool.Pool, cfg QueueConfig) *Queue {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = newLogger(t)
	}
	if cfg.TakeoverAfter == 0 {
		cfg.TakeoverAfter = 2 * time.Second
	}
	if cfg.Limits == (service.Limits{}) {
		cfg.Limits = service.DefaultLimits()
	}
	q, err := NewQueue(t.Context(), pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	q.pingEvery = 200 * time.Millisecond
	q.pingTimeout = 2 * time.Second
	q.busySnooze = 250 * time.Millisecond
	q.maxWait = time.Second
	t.Cleanup(func() {
		if q.isStopping() {
			return // the test stopped it
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Stop(ctx)
	})
	return q
}

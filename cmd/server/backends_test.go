package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/pkg/service"
	"github.com/mnist-go/nnserver/pkg/sqlite"
)

// The scaled-mode tests share one Postgres server, started on first use.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestScaledBackends: in scaled mode every replica, a worker included, has
// a relay that tells the others of a removal and hears theirs; the
// database is a Pinger for readiness.
func TestScaledBackends(t *testing.T) {
	url := pgtest.NewDatabase(t)
	open := func(role string) *backends {
		t.Helper()
		cfg, err := parseConfig(nil, envOf(map[string]string{"DATABASE_URL": url, "ROLE": role,
			"MODELS_DIR": t.TempDir(), "DB_TIMEOUT": "2s"}))
		if err != nil {
			t.Fatal(err)
		}
		b, err := openBackends(t.Context(), cfg, slog.New(slog.DiscardHandler), service.NopEvents{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.close)
		if b.relay == nil || b.replicas != service.Replicas(b.relay) || b.events != service.Events(b.relay) {
			t.Fatalf("role %s: relay %v, replicas %v, events %v; want the relay for all three", role, b.relay, b.replicas, b.events)
		}
		p, ok := b.catalog.(service.Pinger)
		if !ok {
			t.Fatalf("role %s: the catalog is no Pinger", role)
		}
		if err := p.Ping(t.Context()); err != nil {
			t.Fatalf("role %s: Ping: %v", role, err)
		}
		return b
	}
	api, worker := open("api"), open("worker")
	got := make(chan string, 10)
	worker.relay.OnRemoved(func(id string) { got <- id })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done }) // before the pools close
	select {
	case <-worker.relay.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the worker's relay is not listening within 30 s")
	}
	id := uuid.NewString()
	if err := api.replicas.NetworkRemoved(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case g := <-got:
		if g != id {
			t.Errorf("the worker was told of %s, want %s", g, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker was not told of the removal within 30 s")
	}
}

// TestSingleBackends: single mode keeps its jobs in a SQLite file (by
// default jobs.db in the models directory), or in memory with JOBS_DB=off;
// the file is one process's at a time, until close.
func TestSingleBackends(t *testing.T) {
	models, elsewhere := t.TempDir(), filepath.Join(t.TempDir(), "state", "jobs.sqlite")
	for _, tc := range []struct {
		name string
		env  map[string]string
		file string // "": jobs in memory
	}{
		{"default", map[string]string{"MODELS_DIR": models}, filepath.Join(models, "jobs.db")},
		{"elsewhere", map[string]string{"MODELS_DIR": t.TempDir(), "JOBS_DB": elsewhere}, elsewhere},
		{"off", map[string]string{"MODELS_DIR": t.TempDir(), "JOBS_DB": "off"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(nil, envOf(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			open := func(ctx context.Context) (*backends, error) {
				return openBackends(ctx, cfg, slog.New(slog.DiscardHandler), service.NopEvents{})
			}
			b, err := open(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			if b.catalog != nil || b.relay != nil {
				t.Errorf("single mode with a catalog %v or a relay %v", b.catalog, b.relay)
			}
			if tc.file == "" {
				if b.queue != nil || b.jobsDB != nil || b.jobs != "memory" {
					t.Errorf("JOBS_DB=off: queue %v, database %v, jobs %q; want none, in memory", b.queue, b.jobsDB, b.jobs)
				}
				return
			}
			if _, ok := b.queue.(*sqlite.Queue); !ok || b.jobsDB == nil || b.jobsDB.Path() != tc.file || b.jobs != tc.file {
				t.Fatalf("queue %T, jobs %q; want the SQLite queue of %s", b.queue, b.jobs, tc.file)
			}
			if _, err := os.Stat(tc.file); err != nil {
				t.Errorf("the job database: %v", err)
			}
			// A second process on the same file waits for the first.
			short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if b2, err := open(short); err == nil || !strings.Contains(err.Error(), "JOBS_DB") {
				if b2 != nil {
					b2.close()
				}
				t.Errorf("a second open of the same job database: %v, want a wait that ends with ctx, naming JOBS_DB", err)
			}
			b.close()
			b.jobsDB = nil // closed
			b3, err := open(t.Context())
			if err != nil {
				t.Fatalf("after close: %v", err)
			}
			b3.close()
		})
	}
}

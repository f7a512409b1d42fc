package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mnist-go/nnserver/internal/pgtest"
	"github.com/mnist-go/nnserver/pkg/service"
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

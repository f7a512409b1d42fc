package service

import (
	"context"
	"testing"
)

// TestNewWiring: single mode takes a Queue without a Catalog (pkg/sqlite's:
// the catalog is still built from the store) and uses it; a Catalog
// without a Queue is refused.
func TestNewWiring(t *testing.T) {
	st := newFaultyStore(t)
	if _, err := New(context.Background(), Config{Data: loadMNIST, Store: st, Catalog: NewMemoryCatalog(), Logger: testLogger(t)}); err == nil {
		t.Error("New took a Catalog without a Queue")
	}
	q := NewMemoryQueue(1, DefaultLimits(), nil)
	svc, err := New(context.Background(), Config{Data: loadMNIST, Store: st, Queue: q, Workers: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	f := &fixture{svc: svc, store: st, events: newRecorder()}
	id := f.create(t)
	job := f.train(t, id, 1)
	if j, err := q.Get(context.Background(), job); err != nil || j.NetworkID != id {
		t.Errorf("the job is not in the queue given: %+v, %v", j, err)
	}
	if recs, err := svc.catalog.List(context.Background()); err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Errorf("the catalog built from the store: %+v, %v", recs, err)
	}
}

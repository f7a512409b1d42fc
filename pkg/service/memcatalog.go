package service

import (
	"context"
	"slices"
	"sync"
)

// memCatalog is the Catalog of a single process.
type memCatalog struct {
	mu    sync.Mutex
	recs  map[string]NetworkRecord
	locks map[string]*saveLock // held or waited for
}

type saveLock struct {
	ch    chan struct{} // holds a token while the lock is free
	users int           // holders and waiters, for cleanup
}

// NewMemoryCatalog returns an empty in-memory Catalog.
func NewMemoryCatalog() Catalog {
	return &memCatalog{recs: map[string]NetworkRecord{}, locks: map[string]*saveLock{}}
}

func cloneRecord(r NetworkRecord) NetworkRecord {
	r.Sizes = slices.Clone(r.Sizes)
	r.Layers = slices.Clone(r.Layers)
	return r
}

func (c *memCatalog) Add(_ context.Context, rec NetworkRecord, max int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recs) >= max {
		return ErrCatalogFull
	}
	c.recs[rec.ID] = cloneRecord(rec)
	return nil
}

func (c *memCatalog) Get(_ context.Context, id string) (NetworkRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recs[id]
	if !ok {
		return NetworkRecord{}, ErrUnknownNetwork
	}
	return cloneRecord(r), nil
}

func (c *memCatalog) List(context.Context) ([]NetworkRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NetworkRecord, 0, len(c.recs))
	for _, r := range c.recs {
		out = append(out, cloneRecord(r))
	}
	return out, nil
}

func (c *memCatalog) Update(_ context.Context, rec NetworkRecord) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.recs[rec.ID]
	if !ok {
		return ErrUnknownNetwork
	}
	if rec.Version != old.Version+1 {
		return ErrVersionMoved
	}
	rec.OwnerHash = old.OwnerHash // set once, by Add
	rec.Name, rec.Notes = old.Name, old.Notes
	c.recs[rec.ID] = cloneRecord(rec)
	return nil
}

func (c *memCatalog) Label(_ context.Context, id, name, notes string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recs[id]
	if !ok {
		return ErrUnknownNetwork
	}
	r.Name, r.Notes = name, notes
	c.recs[id] = r
	return nil
}

func (c *memCatalog) Remove(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recs[id]; !ok {
		return ErrUnknownNetwork
	}
	delete(c.recs, id)
	return nil
}

func (c *memCatalog) LockSaves(ctx context.Context, id string) (func(), error) {
	c.mu.Lock()
	l := c.locks[id]
	if l == nil {
		l = &saveLock{ch: make(chan struct{}, 1)}
		l.ch <- struct{}{}
		c.locks[id] = l
	}
	l.users++
	c.mu.Unlock()
	release := func() {
		c.mu.Lock()
		if l.users--; l.users == 0 {
			delete(c.locks, id)
		}
		c.mu.Unlock()
	}
	select {
	case <-l.ch:
		var once sync.Once
		return func() {
			once.Do(func() {
				l.ch <- struct{}{}
				release()
			})
		}, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

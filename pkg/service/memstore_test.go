package service

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mnist-go/nnserver/pkg/modelfile"
)

// memStore is a Store in memory for this package's tests, which cannot use
// an adapter: pkg/dirstore and pkg/s3store import this package. It keeps
// each network as the bytes of its model file, written and read with the
// default limits as the adapters write and read theirs (modelfile's
// EncodeWithin, DecodeAs and DecodeEntryAs), so that what the service saves
// goes through the format, and checks ctx and the id first, as they do.
// Its behaviour is the contract's (pkg/service/storetest), which it cannot
// run for the same reason; the adapters run it.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
	snaps map[string]map[int][]byte // by network, then epoch: the model's bytes when snapshot
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{files: map[string][]byte{}, snaps: map[string]map[int][]byte{}}
}

// begin checks what every call checks first: ctx, then id.
func begin(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%.40q: %w", id, err)
	}
	return modelfile.CheckID(id)
}

func (s *memStore) Save(ctx context.Context, m modelfile.Meta, n model.Model) error {
	if err := begin(ctx, m.ID); err != nil {
		return fmt.Errorf("memstore: save: %w", err)
	}
	var b bytes.Buffer
	if err := modelfile.EncodeWithin(&b, m, n, modelfile.Limits{}); err != nil {
		return fmt.Errorf("memstore: save: %w", err)
	}
	s.mu.Lock()
	s.files[m.ID] = b.Bytes()
	s.mu.Unlock()
	return nil
}

// file returns the bytes saved under id.
func (s *memStore) file(ctx context.Context, id string) (*bytes.Reader, error) {
	if err := begin(ctx, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	b, ok := s.files[id]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", id, ErrModelNotFound)
	}
	return bytes.NewReader(b), nil
}

func (s *memStore) Load(ctx context.Context, id string) (modelfile.Meta, model.Model, error) {
	r, err := s.file(ctx, id)
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("memstore: load: %w", err)
	}
	m, n, err := modelfile.DecodeAs(r, r.Size(), modelfile.Limits{}, id)
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("memstore: load %s: %w", id, err)
	}
	return m, n, nil
}

func (s *memStore) List(ctx context.Context) ([]modelfile.Entry, []error) {
	if err := ctx.Err(); err != nil {
		return nil, []error{fmt.Errorf("memstore: list: %w", err)}
	}
	s.mu.Lock()
	files := make(map[string][]byte, len(s.files))
	for id, b := range s.files {
		files[id] = b
	}
	s.mu.Unlock()
	var (
		entries []modelfile.Entry
		errs    []error
	)
	for id, b := range files {
		e, err := modelfile.DecodeEntryAs(bytes.NewReader(b), int64(len(b)), modelfile.Limits{}, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("memstore: %s: %w", id, err))
			continue
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b modelfile.Entry) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return entries, errs
}

func (s *memStore) Delete(ctx context.Context, id string) (DeleteResult, error) {
	if err := begin(ctx, id); err != nil {
		return DeleteFailed, fmt.Errorf("memstore: delete: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.snaps, id)
	if _, ok := s.files[id]; !ok {
		return DeleteNotFound, nil
	}
	delete(s.files, id)
	return DeleteRemoved, nil
}

func (s *memStore) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	r, err := s.file(ctx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("memstore: open: %w", err)
	}
	if _, err := modelfile.DecodeEntryAs(r, r.Size(), modelfile.Limits{}, id); err != nil {
		return nil, 0, fmt.Errorf("memstore: open %s: %w", id, err)
	}
	return io.NopCloser(r), r.Size(), nil
}

func (s *memStore) Snapshot(ctx context.Context, id string, epoch int) error {
	if err := begin(ctx, id); err != nil {
		return fmt.Errorf("memstore: snapshot: %w", err)
	}
	if err := CheckSnapshotEpoch(epoch); err != nil {
		return fmt.Errorf("memstore: snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[id]
	if !ok {
		return fmt.Errorf("memstore: snapshot %s: %w", id, ErrModelNotFound)
	}
	if s.snaps[id] == nil {
		s.snaps[id] = map[int][]byte{}
	}
	s.snaps[id][epoch] = b // saves replace the slice, never its bytes
	return nil
}

func (s *memStore) Snapshots(ctx context.Context, id string) ([]int, error) {
	if err := begin(ctx, id); err != nil {
		return nil, fmt.Errorf("memstore: snapshots: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.snaps[id])), nil
}

// snapshot returns the bytes of a snapshot.
func (s *memStore) snapshot(ctx context.Context, id string, epoch int) (*bytes.Reader, error) {
	if err := begin(ctx, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	b, ok := s.snaps[id][epoch]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s after epoch %d: %w", id, epoch, ErrSnapshotNotFound)
	}
	return bytes.NewReader(b), nil
}

func (s *memStore) LoadSnapshot(ctx context.Context, id string, epoch int) (modelfile.Meta, model.Model, error) {
	r, err := s.snapshot(ctx, id, epoch)
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("memstore: load snapshot: %w", err)
	}
	m, n, err := modelfile.DecodeAs(r, r.Size(), modelfile.Limits{}, id)
	if err == nil && m.EpochsTrained != epoch {
		err = fmt.Errorf("the snapshot holds epoch %d", m.EpochsTrained)
	}
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("memstore: load snapshot %s after epoch %d: %w", id, epoch, err)
	}
	return m, n, nil
}

func (s *memStore) OpenSnapshot(ctx context.Context, id string, epoch int) (io.ReadCloser, int64, error) {
	r, err := s.snapshot(ctx, id, epoch)
	if err != nil {
		return nil, 0, fmt.Errorf("memstore: open snapshot: %w", err)
	}
	return io.NopCloser(r), r.Size(), nil
}

func (s *memStore) DeleteSnapshot(ctx context.Context, id string, epoch int) error {
	if err := begin(ctx, id); err != nil {
		return fmt.Errorf("memstore: delete snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.snaps[id], epoch)
	return nil
}

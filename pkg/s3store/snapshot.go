package s3store

import (
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

// A network's snapshots are objects under <prefix>snapshots/<id>/, named
// <epoch>.npz. List lists the prefix without recursion: they appear to it
// as the one common prefix <prefix>snapshots/, which names no network.

// snapshotsKey is the prefix of network id's snapshots; id must have passed
// modelfile.CheckID.
func (s *Store) snapshotsKey(id string) string { return s.prefix + "snapshots/" + id + "/" }

// snapshotKey is a snapshot's key; epoch must have passed
// service.CheckSnapshotEpoch.
func (s *Store) snapshotKey(id string, epoch int) string {
	return s.snapshotsKey(id) + strconv.Itoa(epoch) + fileExt
}

// Snapshot copies the object of id, inside the bucket (no byte goes
// through this process), to its snapshot after epoch, replacing any: one
// request, which S3 makes visible atomically. The copy's source is the
// object as it is when S3 serves the request: the caller must not save the
// network meanwhile (in scaled mode, its save lock is held).
func (s *Store) Snapshot(ctx context.Context, id string, epoch int) error {
	if err := begin(ctx, id); err != nil {
		return fmt.Errorf("s3store: snapshot: %w", err)
	}
	if err := service.CheckSnapshotEpoch(epoch); err != nil {
		return fmt.Errorf("s3store: snapshot: %w", err)
	}
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := s.client.CopyObject(ctx,
			minio.CopyDestOptions{Bucket: s.bucket, Object: s.snapshotKey(id, epoch)},
			minio.CopySrcOptions{Bucket: s.bucket, Object: s.key(id)})
		return err
	})
	if notFound(err) {
		return fmt.Errorf("s3store: snapshot %s: %w", id, service.ErrModelNotFound)
	}
	if err != nil {
		return fmt.Errorf("s3store: snapshot %s after epoch %d in %s: %w", id, epoch, s.where, err)
	}
	return nil
}

// snapshotKeys lists the keys of network id's snapshots and their epochs.
func (s *Store) snapshotKeys(ctx context.Context, id string) (map[int]string, error) {
	prefix := s.snapshotsKey(id)
	keys := map[int]string{}
	w := s.watch(ctx)
	defer w.stop()
	for o := range s.client.ListObjects(w.ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		w.progress()
		if o.Err != nil {
			return nil, w.err(o.Err)
		}
		digits, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, prefix), fileExt)
		if !ok {
			continue
		}
		e, err := strconv.Atoi(digits)
		if err != nil || strconv.Itoa(e) != digits || service.CheckSnapshotEpoch(e) != nil {
			continue
		}
		keys[e] = o.Key
	}
	return keys, nil
}

// Snapshots returns the epochs of network id's snapshots, ascending.
func (s *Store) Snapshots(ctx context.Context, id string) ([]int, error) {
	if err := begin(ctx, id); err != nil {
		return nil, fmt.Errorf("s3store: snapshots: %w", err)
	}
	keys, err := s.snapshotKeys(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("s3store: listing the snapshots of %s in %s: %w", id, s.where, err)
	}
	epochs := make([]int, 0, len(keys))
	for e := range keys {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	return epochs, nil
}

// readSnapshot runs f on a reader of a snapshot, as read does; errors wrap
// service.ErrSnapshotNotFound when there is no such snapshot.
func (s *Store) readSnapshot(ctx context.Context, id string, epoch int, f func(*objectReader) error) error {
	if err := begin(ctx, id); err != nil {
		return err
	}
	if service.CheckSnapshotEpoch(epoch) != nil {
		return fmt.Errorf("%s after epoch %d: %w", id, epoch, service.ErrSnapshotNotFound)
	}
	err := s.read(ctx, s.snapshotKey(id, epoch), f)
	if errors.Is(err, service.ErrModelNotFound) {
		return fmt.Errorf("%s after epoch %d: %w", id, epoch, service.ErrSnapshotNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.snapshotKey(id, epoch), err)
	}
	return nil
}

// checkEpoch checks that a snapshot's model is the network id after epoch.
func checkEpoch(m modelfile.Meta, id string, epoch int) error {
	switch {
	case m.ID != id:
		return fmt.Errorf("meta.json describes network %.40q", m.ID)
	case m.EpochsTrained != epoch:
		return fmt.Errorf("the object holds the network after epoch %d", m.EpochsTrained)
	}
	return nil
}

// LoadSnapshot reads a snapshot as Load reads a model; it must hold the
// network after epoch.
func (s *Store) LoadSnapshot(ctx context.Context, id string, epoch int) (modelfile.Meta, model.Model, error) {
	var (
		m modelfile.Meta
		n model.Model
	)
	err := s.readSnapshot(ctx, id, epoch, func(r *objectReader) error {
		var err error
		if m, n, err = modelfile.Decode(r, r.size, s.lim); err != nil {
			return err
		}
		return checkEpoch(m, id, epoch)
	})
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("s3store: load snapshot: %w", err)
	}
	return m, n, nil
}

// OpenSnapshot returns a snapshot's bytes as Open returns a model's, after
// the same checks; it must hold the network after epoch.
func (s *Store) OpenSnapshot(ctx context.Context, id string, epoch int) (io.ReadCloser, int64, error) {
	var (
		body io.ReadCloser
		size int64
	)
	err := s.readSnapshot(ctx, id, epoch, func(r *objectReader) error {
		e, err := modelfile.DecodeEntry(r, r.size, s.lim)
		if err == nil {
			err = checkEpoch(e.Meta, id, epoch)
		}
		if err != nil {
			return err
		}
		body, err = r.stream()
		size = r.size
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("s3store: open snapshot: %w", err)
	}
	return body, size, nil
}

// DeleteSnapshot removes a snapshot; S3 removes a missing key without
// complaint.
func (s *Store) DeleteSnapshot(ctx context.Context, id string, epoch int) error {
	if err := begin(ctx, id); err != nil {
		return fmt.Errorf("s3store: delete snapshot: %w", err)
	}
	if service.CheckSnapshotEpoch(epoch) != nil {
		return nil
	}
	err := s.call(ctx, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.bucket, s.snapshotKey(id, epoch), minio.RemoveObjectOptions{})
	})
	if err != nil {
		return fmt.Errorf("s3store: delete snapshot %s: %w", s.snapshotKey(id, epoch), err)
	}
	return nil
}

// deleteSnapshots removes every snapshot of network id, one request each
// (a network keeps a few).
func (s *Store) deleteSnapshots(ctx context.Context, id string) error {
	keys, err := s.snapshotKeys(ctx, id)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := s.call(ctx, func(ctx context.Context) error {
			return s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
		}); err != nil {
			return err
		}
	}
	return nil
}

// Package s3store keeps networks in an S3-compatible object store (Amazon
// S3, MinIO, Ceph, R2...), for the scaled mode, where replicas share their
// models. It stores exactly the bytes the directory store (package dirstore)
// writes, one object per network under <prefix><id>.npz, and its snapshots
// under <prefix>snapshots/<id>/<epoch>.npz (copies made inside the bucket,
// which send no bytes), and meets the same contract (package
// service/storetest): the same ids, limits, errors and results.
//
// Reads go through ranged GETs, so List reads only the zip directory and the
// headers of each archive, never its weights. Every response of a read must
// carry the ETag the read began with (and asks for it with If-Match): if a
// Save replaces the object meanwhile, the read starts again on the new
// version, so a reader never sees a mix of two versions.
//
// Writes are single PUTs of the whole archive, which S3 makes visible
// atomically: a reader sees the old object or the new one, and a PUT that
// fails (the server errs, the connection drops, ctx is cancelled) leaves the
// old object as it was, unless it failed waiting for the answer once S3
// had the whole body: S3 may then store it all the same (a timeout cannot
// tell), never a part of it. Of two concurrent Saves of one network the later
// PUT wins, whatever the order of the models, and S3 has no rename or
// compare-and-swap to prevent it here: the caller must not save one network
// from two places at once. In the scaled mode, each network is guarded by a
// lock the replicas share (one writer per network), so that an older model
// never overwrites a newer one.
package s3store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/mnist-go/nnserver/pkg/model"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/service"
)

const fileExt = ".npz"

// maxRetries is how many times the client tries a request that failed in a
// way worth retrying (a 5xx, a reset connection), with backoff: few, so
// that a server that is down is reported in about a second. Tests lower it.
var maxRetries = 3

// changeRetries bounds how often a read starts again because the object
// changed under it. A network is saved once an epoch, so one retry is
// almost always enough; the contract test saves in a tight loop.
const changeRetries = 10

// listWorkers bounds the objects List reads at once: each takes a few round
// trips, which add up on a remote server.
const listWorkers = 8

// Store keeps networks in a bucket. It is safe for concurrent use. No
// request of its calls waits for S3 longer than the timeout: see Deadlines
// in watch.go.
type Store struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	prefix    string
	where     string // s3://bucket/prefix, for messages
	lim       modelfile.Limits
	timeout   time.Duration // how long S3 may keep a request waiting
}

// Open returns a Store keeping networks in cfg's bucket, after checking that
// the bucket exists. The Store saves and reads only networks within lim (a
// zero field means the default; see modelfile.Limits).
func Open(ctx context.Context, cfg Config, lim modelfile.Limits) (*Store, error) {
	lim, err := lim.Resolve()
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	transport, err := minio.DefaultTransport(cfg.UseSSL)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.UseSSL,
		Region:     cfg.Region,
		MaxRetries: maxRetries,
		Transport:  transport,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: S3_ENDPOINT %s: %w", cfg.Endpoint, err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	s := &Store{client: client, transport: transport, bucket: cfg.Bucket, prefix: cfg.Prefix, where: "s3://" + cfg.Bucket + "/" + cfg.Prefix,
		lim: lim, timeout: timeout}
	ok, err := s.bucketExists(ctx)
	if err != nil {
		return nil, fmt.Errorf("s3store: checking bucket %q at %s: %w", cfg.Bucket, endpointURL(cfg), err)
	}
	if !ok {
		return nil, fmt.Errorf("s3store: bucket %q does not exist at %s: create it, or set S3_BUCKET to one that does", cfg.Bucket, endpointURL(cfg))
	}
	return s, nil
}

// bucketExists asks S3 whether the bucket exists.
func (s *Store) bucketExists(ctx context.Context) (ok bool, err error) {
	err = s.call(ctx, func(ctx context.Context) error {
		ok, err = s.client.BucketExists(ctx, s.bucket)
		return err
	})
	return ok, err
}

// Ping checks that the bucket can be reached, within the timeout: the
// service's readiness (service.Pinger).
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.bucketExists(ctx)
	if err != nil {
		return fmt.Errorf("s3store: reaching %s: %w", s.where, err)
	}
	if !ok {
		return fmt.Errorf("s3store: bucket %q does not exist", s.bucket)
	}
	return nil
}

func endpointURL(cfg Config) string {
	if cfg.UseSSL {
		return "https://" + cfg.Endpoint
	}
	return "http://" + cfg.Endpoint
}

// Limits returns the limits the Store holds networks to, defaults filled in.
func (s *Store) Limits() modelfile.Limits { return s.lim }

// String returns where the Store keeps networks: s3://bucket/prefix.
func (s *Store) String() string { return s.where }

// Close releases idle connections. The Store must not be used afterwards.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

func (s *Store) key(id string) string { return s.prefix + id + fileExt }

// begin checks what every call checks first: ctx, then id.
func begin(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%.40q: %w", id, err)
	}
	return modelfile.CheckID(id)
}

// Save writes n with its description m to <prefix><m.ID>.npz, replacing any
// network saved under that id, in one PUT: see the package doc on
// atomicity and concurrent Saves. m.ID must be a canonical UUID, m.Sizes
// must equal n.Sizes() and be within the Store's limits (else the error
// wraps modelfile.ErrTooLarge).
//
// The archive is built in memory first (it is as large as the network's
// parameters), so that its length is known and it goes in a single request.
// If ctx is cancelled during the PUT, the PUT is abandoned and the previous
// object stays.
func (s *Store) Save(ctx context.Context, m modelfile.Meta, n model.Model) error {
	if err := begin(ctx, m.ID); err != nil {
		return fmt.Errorf("s3store: save: %w", err)
	}
	// Refuse a network beyond the limits before encoding it: it may be
	// hundreds of megabytes.
	if err := s.lim.Check(m.Sizes); err != nil {
		return fmt.Errorf("s3store: save %s: %w", m.ID, err)
	}
	var buf bytes.Buffer
	if err := modelfile.Encode(&buf, m, n); err != nil {
		return fmt.Errorf("s3store: save: %w", err)
	}
	// Never store what List and Load would refuse: the readers' own checks,
	// on the headers, against the Store's limits.
	if _, err := modelfile.DecodeEntry(bytes.NewReader(buf.Bytes()), int64(buf.Len()), s.lim); err != nil {
		return fmt.Errorf("s3store: save %s: %w", m.ID, err)
	}
	// The PUT makes progress as the connection takes the body's bytes.
	w := s.watch(ctx)
	defer w.stop()
	body := &watchedUpload{bytes.NewReader(buf.Bytes()), w}
	_, err := s.client.PutObject(w.ctx, s.bucket, s.key(m.ID), body, int64(buf.Len()), minio.PutObjectOptions{
		ContentType: "application/zip",
		// One request, so one atomic replacement, and nothing left behind
		// by a failed upload (a multipart upload would leave parts). Our
		// archives are far below a single PUT's 5 GiB.
		DisableMultipart: true,
		// The server checks the body against it.
		SendContentMd5: true,
	})
	if err != nil {
		return fmt.Errorf("s3store: save %s to %s: %w", m.ID, s.where, w.err(err))
	}
	return nil
}

// Load reads the network saved under id. Its errors wrap what the directory
// store's do: modelfile.ErrInvalidID, service.ErrModelNotFound,
// modelfile.ErrTooLarge, or describe a corrupt object. See modelfile.Decode
// for what is checked.
func (s *Store) Load(ctx context.Context, id string) (modelfile.Meta, model.Model, error) {
	if err := begin(ctx, id); err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("s3store: load: %w", err)
	}
	var (
		m modelfile.Meta
		n model.Model
	)
	err := s.read(ctx, s.key(id), func(r *objectReader) error {
		var err error
		m, n, err = modelfile.Decode(r, r.size, s.lim)
		if err == nil && m.ID != id {
			err = fmt.Errorf("meta.json describes network %.40q", m.ID)
		}
		return err
	})
	if err != nil {
		return modelfile.Meta{}, nil, fmt.Errorf("s3store: load %s: %w", s.key(id), err)
	}
	return m, n, nil
}

// read runs f on a reader of the object under key, pinned to the version
// its first request finds, and starts again if the object changes while f
// reads it.
func (s *Store) read(ctx context.Context, key string, f func(*objectReader) error) error {
	var err error
	for attempt := range changeRetries {
		if attempt > 0 {
			// Back off a little: a read that keeps meeting new versions
			// is racing a writer.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
			}
		}
		var r *objectReader
		r, err = s.probe(ctx, key)
		if err != nil {
			return err
		}
		err = f(r)
		if !errors.Is(err, errChanged) {
			return err
		}
	}
	return err
}

// notFound reports whether err says that there is no such object.
func notFound(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	return r.Code == minio.NoSuchKey || r.StatusCode == http.StatusNotFound && r.Code != minio.NoSuchBucket
}

// Open returns the bytes saved under id, exactly as Save wrote them, and
// their length, for a download. The object is checked as List checks it
// (meta.json and every header, not the parameters) before it is handed out,
// and the reader streams that same version of it, whatever Saves happen
// meanwhile. The caller must close it; it reads through ctx, so it fails
// once ctx is done.
//
// Unlike the directory store's, the reader is a plain io.ReadCloser (no
// ReaderAt or Seeker). Errors are as Load's.
func (s *Store) Open(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	if err := begin(ctx, id); err != nil {
		return nil, 0, fmt.Errorf("s3store: open: %w", err)
	}
	var (
		body io.ReadCloser
		size int64
	)
	err := s.read(ctx, s.key(id), func(r *objectReader) error {
		if _, err := s.decodeEntry(r, id); err != nil {
			return err
		}
		var err error
		body, err = r.stream()
		size = r.size
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("s3store: open %s: %w", s.key(id), err)
	}
	return body, size, nil
}

// decodeEntry checks and describes the object r reads, which must describe
// network id.
func (s *Store) decodeEntry(r *objectReader, id string) (modelfile.Entry, error) {
	e, err := modelfile.DecodeEntry(r, r.size, s.lim)
	if err == nil && e.ID != id {
		err = fmt.Errorf("meta.json describes network %.40q", e.ID)
	}
	return e, err
}

// List describes every network saved under the prefix, ordered by
// CreatedAt, then ID, reading only each object's zip directory and headers.
//
// Keys that are not <prefix><canonical-uuid>.npz are ignored. An object that
// is corrupt or unreadable is left out and reported by one of the returned
// errors, which names it; the others are still listed. If the listing
// itself fails, or ctx is done before every object is read, List returns no
// entries and that error: a partial list would look like a list of fewer
// networks.
func (s *Store) List(ctx context.Context) ([]modelfile.Entry, []error) {
	if err := ctx.Err(); err != nil {
		return nil, []error{fmt.Errorf("s3store: listing %s: %w", s.where, err)}
	}
	var ids []string
	// Each object listed is progress: S3 answers a page at a time.
	w := s.watch(ctx)
	defer w.stop()
	for o := range s.client.ListObjects(w.ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix}) {
		w.progress()
		if o.Err != nil {
			return nil, []error{fmt.Errorf("s3store: listing %s: %w", s.where, w.err(o.Err))}
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, s.prefix), fileExt)
		if !ok || modelfile.CheckID(id) != nil {
			continue
		}
		ids = append(ids, id)
	}
	w.stop()

	type result struct {
		e   modelfile.Entry
		err error
	}
	results := make([]result, len(ids))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(listWorkers, len(ids)) {
		wg.Go(func() {
			for i := range work {
				res := &results[i]
				res.err = s.read(ctx, s.key(ids[i]), func(r *objectReader) error {
					var err error
					res.e, err = s.decodeEntry(r, ids[i])
					return err
				})
			}
		})
	}
	for i := range ids {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, []error{fmt.Errorf("s3store: listing %s: %w", s.where, err)}
	}

	var (
		entries []modelfile.Entry
		errs    []error
	)
	for i, res := range results {
		switch {
		case errors.Is(res.err, service.ErrModelNotFound):
			// Deleted since it was listed.
		case res.err != nil:
			errs = append(errs, fmt.Errorf("s3store: %s: %w", s.key(ids[i]), res.err))
		default:
			entries = append(entries, res.e)
		}
	}
	slices.SortFunc(entries, func(a, b modelfile.Entry) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return entries, errs
}

// Delete removes the network saved under id and says what it did:
// service.DeleteRemoved, service.DeleteNotFound if nothing was saved under
// id, or service.DeleteFailed with an error (an invalid id, a done ctx, an
// S3 error), in which case the object, if any, is still there. A removal
// acknowledged by S3 is durable: DeleteRemovedNotFlushed never happens.
func (s *Store) Delete(ctx context.Context, id string) (service.DeleteResult, error) {
	if err := begin(ctx, id); err != nil {
		return service.DeleteFailed, fmt.Errorf("s3store: delete: %w", err)
	}
	// The snapshots first: a failure leaves the model, never snapshots
	// without their network.
	if err := s.deleteSnapshots(ctx, id); err != nil {
		return service.DeleteFailed, fmt.Errorf("s3store: delete the snapshots of %s: %w", id, err)
	}
	// S3 deletes a missing key without complaint: ask first, to tell "not
	// found" from "removed".
	err := s.call(ctx, func(ctx context.Context) error {
		_, err := s.client.StatObject(ctx, s.bucket, s.key(id), minio.StatObjectOptions{})
		return err
	})
	if notFound(err) {
		return service.DeleteNotFound, nil
	}
	if err != nil {
		return service.DeleteFailed, fmt.Errorf("s3store: delete %s: %w", s.key(id), err)
	}
	err = s.call(ctx, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.bucket, s.key(id), minio.RemoveObjectOptions{})
	})
	if err != nil {
		return service.DeleteFailed, fmt.Errorf("s3store: delete %s: %w", s.key(id), err)
	}
	return service.DeleteRemoved, nil
}

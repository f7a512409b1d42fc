package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Deadlines
//
// S3 must never keep a call waiting longer than the Store's timeout
// (Config.Timeout, S3_TIMEOUT; DefaultTimeout unless set), so that a
// replica whose object store hangs (a frozen server, a network that drops
// packets without resetting connections) answers with an error instead of
// waiting for it. The objects vary in size, from kilobytes to hundreds of
// megabytes, so a fixed deadline per call would be too short for the
// largest on a slow link, or too long for a stat. The timeout is therefore
// a stall timeout: every request to S3 has a watch, which fails it once S3
// has kept it waiting for the timeout, for an answer or for the next bytes
// of a body, sent or received. A request that makes progress goes on; one
// that stops fails within the timeout. The wait between two reads of a
// download that the caller makes (Open's reader, read as fast as the
// client downloads) is not S3's, and is not counted.
//
// The caller's context still applies on top: its deadline or cancellation
// ends a call too.

// DefaultTimeout is Config.Timeout's default: S3 may keep a request
// waiting ten seconds, for an answer or for the next bytes of a body. A
// healthy object store answers within tens of milliseconds, and its slow
// first bytes rarely take more than a second or two; the store is often
// remote and shared, so it gets twice the database's default (DB_TIMEOUT,
// 5 s), while a client still hears of a hung store well before a load
// balancer's patience ends (nginx waits 60 s).
const DefaultTimeout = 10 * time.Second

// S3_TIMEOUT's bounds: below 100 ms, ordinary latency would fail requests;
// beyond ten minutes, nobody is waiting any more.
const (
	MinTimeout = 100 * time.Millisecond
	MaxTimeout = 10 * time.Minute
)

// stalledError is the cause of a watch's context when S3 kept the request
// waiting for the timeout. It is a context.DeadlineExceeded.
type stalledError struct{ timeout time.Duration }

func (e *stalledError) Error() string {
	return fmt.Sprintf("S3 kept the request waiting for %v", e.timeout)
}

func (e *stalledError) Unwrap() error { return context.DeadlineExceeded }

// A watch bounds one request to S3: its context ends, with a stalledError
// as its cause, once the request has waited for the timeout since it
// began, or since its last progress. It is not safe for concurrent use,
// which a request does not need.
type watch struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
}

// watch starts a watch of a request made with ctx: the request must use
// the watch's context.
func (s *Store) watch(ctx context.Context) *watch {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watch{ctx: ctx, cancel: cancel, timeout: s.timeout}
	w.timer = time.AfterFunc(s.timeout, func() { cancel(&stalledError{s.timeout}) })
	return w
}

// progress says that S3 answered or took bytes: the wait starts again.
func (w *watch) progress() { w.timer.Reset(w.timeout) }

// pause stops counting until the next progress: the request waits for its
// caller, not for S3.
func (w *watch) pause() { w.timer.Stop() }

// stop ends the watch, and its context.
func (w *watch) stop() {
	w.timer.Stop()
	w.cancel(context.Canceled)
}

// err returns err, with the watch's cause if its context has ended.
func (w *watch) err(err error) error { return ctxErr(w.ctx, err) }

// call makes one request to S3, f, under a watch of its own.
func (s *Store) call(ctx context.Context, f func(ctx context.Context) error) error {
	w := s.watch(ctx)
	defer w.stop()
	return w.err(f(w.ctx))
}

// watchedBody is the body of a response to a request under watch w, which
// it stops when closed. Each Read must get bytes within the timeout;
// between Reads the watch is paused (the caller may take its time).
type watchedBody struct {
	body io.ReadCloser
	w    *watch
}

// watchBody returns body, which answers a request under w, watched by w
// from its first Read on.
func watchBody(body io.ReadCloser, w *watch) *watchedBody {
	w.pause()
	return &watchedBody{body, w}
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.progress()
	n, err := b.body.Read(p)
	b.w.pause()
	if err != nil && err != io.EOF {
		err = b.w.err(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.body.Close()
	b.w.stop()
	return err
}

// watchedUpload is the body of an upload under watch w: each read of it,
// which the HTTP client makes as the connection takes the bytes, is
// progress. It keeps the ReaderAt and Seeker of the bytes.Reader it wraps,
// so that minio-go reads it in place (and re-reads it to retry).
type watchedUpload struct {
	r interface {
		io.Reader
		io.ReaderAt
		io.Seeker
	}
	w *watch
}

func (u *watchedUpload) Read(p []byte) (int, error) {
	u.w.progress()
	return u.r.Read(p)
}

func (u *watchedUpload) ReadAt(p []byte, off int64) (int, error) {
	u.w.progress()
	return u.r.ReadAt(p, off)
}

func (u *watchedUpload) Seek(off int64, whence int) (int64, error) { return u.r.Seek(off, whence) }

// ctxErr returns err, or, if ctx is done, an error wrapping ctx's cause
// (the caller's cancellation or deadline, or a watch's stalledError): the
// client may report the last failed attempt instead, or a bare "context
// canceled".
func ctxErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	if errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (%v)", cause, err)
}

// Package budget is the process's one memory budget: every piece of work
// that can make the server hold more than a few kilobytes for a client
// (a request body being decoded, an image decode, an import, an analysis,
// an encoded answer, a training job's scratch) reserves an honest upper
// bound of its peak bytes before it starts, and gives them back when done.
// The sum of what is reserved never exceeds the budget's capacity, whatever
// the number of requests: beyond it, work waits briefly (requests) or until
// there is room (training jobs), never past the capacity.
//
// Estimates are the caller's: each is an upper bound of what that work
// allocates, checked by a test that measures the worst input of its kind.
package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy is the error of a reservation that did not fit in the time it
// could wait: the budget is held by other work.
var ErrBusy = errors.New("budget: the memory budget is held by other work")

// ErrTooLarge is the error of a reservation larger than the whole budget:
// it could never fit.
var ErrTooLarge = errors.New("budget: more than the whole memory budget")

// Budget is a capacity in bytes shared by all reservations. The zero value
// is not usable; a nil *Budget is unlimited (every reservation succeeds at
// once), for tests and tools that need no bound. It is safe for concurrent
// use.
type Budget struct {
	capacity int64
	wait     time.Duration
	sem      *semaphore.Weighted

	used    atomic.Int64
	peak    atomic.Int64
	refused atomic.Int64

	reclaimMu  sync.Mutex
	reclaimers []func(need int64) // AddReclaimer's, in the order added
}

// AddReclaimer adds what the budget calls when a reservation does not fit
// at once: something that holds reservations it can give up (a cache of
// encoded answers, networks kept in memory while idle), asked to release
// about need bytes, synchronously. Reclaimers are called in the order they
// were added, until the reservation fits, without any lock of the
// budget's held; they must not reserve.
func (b *Budget) AddReclaimer(f func(need int64)) {
	if b != nil {
		b.reclaimMu.Lock()
		b.reclaimers = append(b.reclaimers, f)
		b.reclaimMu.Unlock()
	}
}

// reclaimFor asks the reclaimers for room for n bytes, and reports whether
// n was then taken.
func (b *Budget) reclaimFor(n int64) bool {
	b.reclaimMu.Lock()
	fs := b.reclaimers
	b.reclaimMu.Unlock()
	for _, f := range fs {
		f(n - (b.capacity - b.used.Load()))
		if b.sem.TryAcquire(n) {
			return true
		}
	}
	return false
}

// New returns a budget of capacity bytes. Reserve waits at most wait for
// room before giving up with ErrBusy.
func New(capacity int64, wait time.Duration) *Budget {
	return &Budget{capacity: capacity, wait: wait, sem: semaphore.NewWeighted(capacity)}
}

// Capacity returns the budget's size in bytes (0 for a nil Budget).
func (b *Budget) Capacity() int64 {
	if b == nil {
		return 0
	}
	return b.capacity
}

// Stats are a budget's figures, for metrics and logs.
type Stats struct {
	Capacity int64 // bytes
	Used     int64 // bytes reserved now
	Peak     int64 // the most ever reserved at once
	Refused  int64 // reservations that did not fit in time
}

// Stats returns the budget's figures now.
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	return Stats{Capacity: b.capacity, Used: b.used.Load(), Peak: b.peak.Load(), Refused: b.refused.Load()}
}

// Reserve takes n bytes, waiting for room at most the budget's wait, or
// until ctx ends. It fails with ErrTooLarge at once if n is more than the
// whole budget, with ErrBusy if there was no room in time, or with ctx's
// error. The Hold must be released.
func (b *Budget) Reserve(ctx context.Context, n int64) (*Hold, error) {
	return b.reserve(ctx, n, b.waitTime())
}

// ReserveWait takes n bytes, waiting as long as ctx lets it: for work that
// is queued anyway (a training job), not for a client waiting for an answer.
func (b *Budget) ReserveWait(ctx context.Context, n int64) (*Hold, error) {
	return b.reserve(ctx, n, -1)
}

// TryReserve takes n bytes if they are free now.
func (b *Budget) TryReserve(n int64) (*Hold, bool) {
	h, err := b.reserve(context.Background(), n, 0)
	return h, err == nil
}

func (b *Budget) waitTime() time.Duration {
	if b == nil {
		return 0
	}
	return b.wait
}

func (b *Budget) reserve(ctx context.Context, n int64, wait time.Duration) (*Hold, error) {
	if n < 0 {
		return nil, fmt.Errorf("budget: a reservation of %d bytes", n)
	}
	h := &Hold{b: b}
	if b == nil || n == 0 {
		h.n = n
		return h, nil
	}
	if err := b.acquire(ctx, n, wait); err != nil {
		return nil, err
	}
	h.n = n
	return h, nil
}

// acquire takes n from the semaphore within wait (forever if negative).
func (b *Budget) acquire(ctx context.Context, n int64, wait time.Duration) error {
	if n > b.capacity {
		b.refused.Add(1)
		return fmt.Errorf("%w: %d bytes asked, the budget is %d", ErrTooLarge, n, b.capacity)
	}
	if !b.sem.TryAcquire(n) && !b.reclaimFor(n) {
		if wait == 0 {
			b.refused.Add(1)
			return fmt.Errorf("%w: %d bytes asked, %d of %d in use", ErrBusy, n, b.used.Load(), b.capacity)
		}
		actx := ctx
		if wait > 0 {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(ctx, wait)
			defer cancel()
		}
		if err := b.sem.Acquire(actx, n); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.refused.Add(1)
			return fmt.Errorf("%w: %d bytes asked, %d of %d in use after waiting %v", ErrBusy, n, b.used.Load(), b.capacity, wait)
		}
	}
	used := b.used.Add(n)
	for p := b.peak.Load(); used > p && !b.peak.CompareAndSwap(p, used); p = b.peak.Load() {
	}
	return nil
}

func (b *Budget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.used.Add(-n)
	b.sem.Release(n)
}

// A Hold is bytes reserved from a Budget, until Release. Its methods are
// safe for concurrent use.
type Hold struct {
	b  *Budget
	mu sync.Mutex
	n  int64
}

// Size returns the bytes held.
func (h *Hold) Size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Grow takes n more bytes, waiting as Reserve does.
func (h *Hold) Grow(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	if h.b != nil {
		if size := h.Size(); size+n > h.b.capacity {
			h.b.refused.Add(1)
			return fmt.Errorf("%w: %d bytes held and %d more asked, the budget is %d", ErrTooLarge, size, n, h.b.capacity)
		}
		if err := h.b.acquire(ctx, n, h.b.wait); err != nil {
			return err
		}
	}
	h.mu.Lock()
	h.n += n
	h.mu.Unlock()
	return nil
}

// Shrink gives back what is held beyond n bytes.
func (h *Hold) Shrink(n int64) {
	h.mu.Lock()
	give := h.n - max(n, 0)
	if give <= 0 {
		h.mu.Unlock()
		return
	}
	h.n -= give
	h.mu.Unlock()
	h.b.release(give)
}

// Release gives back everything held; later calls do nothing. A nil Hold
// may be released.
func (h *Hold) Release() {
	if h != nil {
		h.Shrink(0)
	}
}

package budget

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// CPU is the process's budget of CPU for the heavy work of requests:
// decoding an image or a large JSON body, encoding a large answer,
// analysing a network version (10,000 test images), measuring an imported
// network, running a wide network. At most its slots run at once; the rest
// wait briefly, then are refused (ErrBusy). Training jobs are not counted:
// their workers are bounded on their own (MAX_CONCURRENT_JOBS) and yield the
// processor about every millisecond. With heavy work bounded below the
// processors Go schedules on, a small request (/api/status) always finds
// one free instead of waiting for a time slice.
//
// Take must not be called while holding a slot: with one slot, a nested
// Take would wait for itself. A nil *CPU is unlimited.
type CPU struct {
	slots chan struct{}
	wait  time.Duration
}

// NewCPU returns a CPU budget of n slots (at least 1), whose Take waits at
// most wait for one.
func NewCPU(n int, wait time.Duration) *CPU {
	return &CPU{slots: make(chan struct{}, max(1, n)), wait: wait}
}

// DefaultCPUSlots is half the processors the process may use, at least
// one: the rest stay for training and for answering everyone else.
func DefaultCPUSlots() int { return max(1, runtime.NumCPU()/2, runtime.GOMAXPROCS(0)/2-1) }

// Take waits for a slot, at most the CPU budget's wait or until ctx ends,
// and returns the function that gives it back (which may be called more
// than once).
func (c *CPU) Take(ctx context.Context) (release func(), err error) {
	if c == nil {
		return func() {}, nil
	}
	select {
	case c.slots <- struct{}{}:
		return sync.OnceFunc(func() { <-c.slots }), nil
	default:
	}
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return sync.OnceFunc(func() { <-c.slots }), nil
	case <-t.C:
		return nil, fmt.Errorf("%w: every CPU slot for heavy work (%d) is taken", ErrBusy, cap(c.slots))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

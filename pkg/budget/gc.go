package budget

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// GCSlack is what LimitGC allows beyond the baseline, the budget and the
// other memory held: room for the runtime's own bookkeeping, so that the
// collector is not made to run without end.
const GCSlack = 16 << 20

// LimitGC keeps the Go garbage collector's soft memory limit
// (debug.SetMemoryLimit) at what the process may hold: its baseline (the
// memory the runtime holds when LimitGC starts: call it once the process
// is idle and loaded) + the budget's capacity + held() (what is held
// outside the budget, such as the networks in memory) + GCSlack, updated
// every interval until ctx ends. Garbage then never piles up far above
// what is live: at the default GOGC, a heap may otherwise grow to twice its
// live size before a collection. The previous limit is restored at the end.
func (b *Budget) LimitGC(ctx context.Context, held func() int64, every time.Duration) {
	base := RuntimeMemory()
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		debug.SetMemoryLimit(base + b.Capacity() + held() + GCSlack)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RuntimeMemory is the memory the Go runtime holds from the OS now (heap,
// stacks, its metadata), less what it has given back.
func RuntimeMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64())
}

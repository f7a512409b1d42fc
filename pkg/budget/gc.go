package budget

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
)

// GCSlack is what LimitGC allows beyond the baseline, the budget and the
// other memory held: room for the runtime's own bookkeeping, so that the
// collector is not made to run without end.
const GCSlack = 16 << 20

// LimitGC sets the Go garbage collector's soft memory limit
// (debug.SetMemoryLimit) to what the process may hold: its baseline (the
// memory the runtime holds when LimitGC is called: call it once the process
// is idle and loaded) + the budget's capacity + GCSlack, until ctx ends,
// when the previous limit comes back. Garbage then never piles up far above
// what may be live: at the default GOGC, a heap may otherwise grow to twice
// its live size before a collection.
func (b *Budget) LimitGC(ctx context.Context) {
	prev := debug.SetMemoryLimit(RuntimeMemory() + b.Capacity() + GCSlack)
	<-ctx.Done()
	debug.SetMemoryLimit(prev)
}

// RuntimeMemory is the memory the Go runtime holds from the OS now (heap,
// stacks, its metadata), less what it has given back.
func RuntimeMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64())
}

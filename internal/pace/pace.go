// Package pace lets a long computation on a goroutine of its own give the
// processor to others about every millisecond. With as many training jobs
// as cores, Go would otherwise preempt a job only after 10 ms, and that is
// how long a request could wait for a core.
package pace

import (
	"runtime"
	"time"
)

// Every is how long a computation runs before it yields the processor.
const Every = time.Millisecond

// Pacer yields the processor when Every has passed since it last did. The
// zero Pacer never yields: Start it.
type Pacer struct {
	last time.Time
}

// Start begins pacing from now.
func (p *Pacer) Start(now time.Time) { p.last = now }

// Tick yields the processor if the Pacer was started and Every has passed
// since it last yielded (or started). It allocates nothing.
func (p *Pacer) Tick() {
	if p.last.IsZero() {
		return
	}
	if now := time.Now(); now.Sub(p.last) > Every {
		runtime.Gosched()
		p.last = now
	}
}

// Pause reports false if done is closed, and otherwise ticks: call it
// between units of work (mini-batches, chunks) that may stop there.
func (p *Pacer) Pause(done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
	}
	p.Tick()
	return true
}

package budget_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mnist-go/nnserver/internal/testutil"
	"github.com/mnist-go/nnserver/pkg/budget"
)

func TestReserve(t *testing.T) {
	for _, tc := range []struct {
		name     string
		held     int64 // reserved before
		ask      int64
		want     error
		usedThen int64
	}{
		{"fits", 0, 60, nil, 60},
		{"fits exactly", 40, 60, nil, 100},
		{"all of it", 0, 100, nil, 100},
		{"nothing", 100, 0, nil, 100},
		{"no room now", 50, 60, budget.ErrBusy, 50},
		{"more than the budget", 0, 101, budget.ErrTooLarge, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := budget.New(100, 0)
			before, err := b.Reserve(t.Context(), tc.held)
			if err != nil {
				t.Fatal(err)
			}
			h, err := b.Reserve(t.Context(), tc.ask)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("Reserve(%d) with %d held: %v, want %v", tc.ask, tc.held, err, tc.want)
			}
			if st := b.Stats(); st.Used != tc.usedThen || st.Capacity != 100 {
				t.Errorf("stats %+v, want %d used", st, tc.usedThen)
			}
			if err == nil {
				if h.Size() != tc.ask {
					t.Errorf("hold of %d bytes, want %d", h.Size(), tc.ask)
				}
				h.Release()
				h.Release() // twice: nothing more
			}
			before.Release()
			if st := b.Stats(); st.Used != 0 {
				t.Errorf("%d bytes used after every release", st.Used)
			}
		})
	}
	if _, err := budget.New(10, 0).Reserve(t.Context(), -1); err == nil {
		t.Error("a negative reservation was accepted")
	}
}

// TestWaiters: a reservation that does not fit waits for room (not for a
// time), and gives up when its context ends; ReserveWait waits as long as
// its context lets it.
func TestWaiters(t *testing.T) {
	b := budget.New(100, time.Hour)
	first, err := b.Reserve(t.Context(), 80)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 2)
	go func() {
		h, err := b.Reserve(t.Context(), 50)
		if err == nil {
			defer h.Release()
		}
		got <- err
	}()
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		_, err := b.ReserveWait(ctx, 100)
		got <- err
	}()
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiting reservation whose context ended: %v", err)
	}
	first.Release()
	if err := <-got; err != nil {
		t.Fatalf("the reservation waiting for room once it was freed: %v", err)
	}
	if st := b.Stats(); st.Peak != 80 || st.Refused != 0 {
		t.Errorf("stats %+v, want a peak of 80 and nothing refused", st)
	}
}

func TestGrowShrink(t *testing.T) {
	b := budget.New(100, 0)
	h, err := b.Reserve(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Grow(t.Context(), 80); err != nil || h.Size() != 90 {
		t.Fatalf("Grow by 80: %v, holds %d", err, h.Size())
	}
	if err := h.Grow(t.Context(), 20); !errors.Is(err, budget.ErrTooLarge) || h.Size() != 90 {
		t.Fatalf("Grow past the whole budget: %v, holds %d", err, h.Size())
	}
	other, err := b.Reserve(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Grow(t.Context(), 8); !errors.Is(err, budget.ErrBusy) || h.Size() != 90 {
		t.Fatalf("Grow past what is free: %v, holds %d", err, h.Size())
	}
	other.Release()
	h.Shrink(30)
	if h.Size() != 30 || b.Stats().Used != 30 {
		t.Fatalf("after Shrink(30): holds %d, budget used %d", h.Size(), b.Stats().Used)
	}
	h.Shrink(50) // not a grow
	if h.Size() != 30 {
		t.Fatalf("Shrink to more than held changed the hold to %d", h.Size())
	}
	h.Release()
	if st := b.Stats(); st.Used != 0 || st.Peak != 95 || st.Refused != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestNilIsUnlimited: a nil budget takes every reservation.
func TestNilIsUnlimited(t *testing.T) {
	var b *budget.Budget
	h, err := b.Reserve(t.Context(), 1<<60)
	if err != nil || h.Size() != 1<<60 {
		t.Fatalf("nil budget: %v", err)
	}
	if err := h.Grow(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if _, ok := b.TryReserve(7); !ok {
		t.Error("TryReserve of a nil budget")
	}
}

// TestNeverPastCapacity: whatever many goroutines reserve, grow and
// release, what they hold together never exceeds the capacity.
func TestNeverPastCapacity(t *testing.T) {
	const capacity = 1000
	b := budget.New(capacity, time.Millisecond)
	var held, worst atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 500 {
				n := rng.Int64N(300)
				h, err := b.Reserve(context.Background(), n)
				if err != nil {
					continue
				}
				if h.Grow(context.Background(), rng.Int64N(100)) != nil && rng.IntN(2) == 0 {
					h.Shrink(n / 2)
				}
				now := held.Add(h.Size())
				for w := worst.Load(); now > w && !worst.CompareAndSwap(w, now); w = worst.Load() {
				}
				held.Add(-h.Size())
				h.Release()
			}
		})
	}
	wg.Wait()
	if w := worst.Load(); w > capacity {
		t.Errorf("%d bytes held at once, more than the capacity %d", w, capacity)
	}
	if st := b.Stats(); st.Used != 0 || st.Peak > capacity {
		t.Errorf("stats after all released: %+v", st)
	}
}

// TestLimitGC: the collector's limit is the baseline, the budget and the
// slack while LimitGC runs, and the previous limit comes back at the end.
func TestLimitGC(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	b := budget.New(100<<20, 0)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		b.LimitGC(ctx)
		close(done)
	}()
	want := budget.RuntimeMemory() + 100<<20 + budget.GCSlack
	limit := func() int64 { return debug.SetMemoryLimit(-1) }
	testutil.Eventually(t, 10*time.Second, "LimitGC to set a limit", func() bool { return limit() != before })
	if d := limit() - want; d < -(64<<20) || d > 64<<20 {
		t.Errorf("limit %d, want about %d (the runtime's memory + the budget + the slack)", limit(), want)
	}
	cancel()
	<-done
	if got := limit(); got != before {
		t.Errorf("limit after LimitGC ended: %d, want the previous %d", got, before)
	}
}

package network

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// lit is a data set whose every example has every third input lit: its
// Nonzero allocates nothing, so a measurement sees only the trainer's.
type lit struct {
	n, inputs int
	idx       []uint16
	val       []uint8
}

func newLit(n, inputs int) *lit {
	d := &lit{n: n, inputs: inputs}
	for p := 0; p < inputs; p += 3 {
		d.idx = append(d.idx, uint16(p))
		d.val = append(d.val, uint8(1+p%255))
	}
	return d
}

func (d *lit) Len() int                          { return d.n }
func (d *lit) Inputs() int                       { return d.inputs }
func (d *lit) Label(i int) int                   { return i % 10 }
func (d *lit) Nonzero(i int) ([]uint16, []uint8) { return d.idx, d.val }

// TestTrainerBytesBoundsWhatIsAllocated measures the heap a new Trainer and
// its first mini-batch allocate: TrainerBytes must be at least that, and not
// wildly more, or a server sizing its memory by it would waste it. It also
// checks that only a chunked trainer has a gradient accumulator.
func TestTrainerBytesBoundsWhatIsAllocated(t *testing.T) {
	tests := []struct {
		name    string
		sizes   []int
		p       Params
		chunked bool
	}{
		{"nielsen", []int{784, 30, 10}, Params{BatchSize: 10, Eta: 3}, false},
		{"bound above the batch", []int{784, 100, 10}, Params{BatchSize: 50, Eta: 3, ScratchBytes: 1 << 20}, false},
		{"chunked", []int{784, 100, 10}, Params{BatchSize: 1000, Eta: 3, ScratchBytes: 64 << 10}, true},
		{"narrow waist, chunked", []int{784, 1, 20000, 1, 10}, Params{BatchSize: 100, Eta: 3, ScratchBytes: 1 << 20}, true},
		{"wide, unbounded", []int{784, 2000, 10}, Params{BatchSize: 100, Eta: 3}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.sizes, InitNormal, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			data := newLit(tc.p.BatchSize, tc.sizes[0])
			batch := make([]int32, tc.p.BatchSize)
			for i := range batch {
				batch[i] = int32(i)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tr, err := NewTrainer(n, tc.p, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			tr.step(data, batch, nil)
			runtime.ReadMemStats(&after)
			got := int(after.TotalAlloc - before.TotalAlloc)
			bound := TrainerBytes(tc.sizes, tc.p)
			t.Logf("allocated %d bytes, TrainerBytes %d (%.0f%%)", got, bound, 100*float64(got)/float64(bound))
			if got > bound {
				t.Errorf("allocated %d bytes, more than TrainerBytes %d", got, bound)
			}
			if float64(got) < 0.8*float64(bound) {
				t.Errorf("allocated %d bytes, TrainerBytes %d overestimates by more than a quarter", got, bound)
			}
			if (tr.grad != nil) != tc.chunked {
				t.Errorf("gradient accumulator: %v, want %v", tr.grad != nil, tc.chunked)
			}
			if tc.p.ScratchBytes > 0 && tr.rows*bytesPerRow(tc.sizes) > tc.p.ScratchBytes && tr.rows > 1 {
				t.Errorf("%d rows of %d bytes exceed the bound %d", tr.rows, bytesPerRow(tc.sizes), tc.p.ScratchBytes)
			}
		})
	}
}

package network

import (
	"context"
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

// varied is a data set of n examples with different inputs lit.
type varied struct {
	inputs int
	idx    [][]uint16
	val    [][]uint8
}

func newVaried(n, inputs int) *varied {
	d := &varied{inputs: inputs}
	for i := range n {
		var idx []uint16
		var val []uint8
		for p := i % 5; p < inputs; p += 2 + i%5 {
			idx = append(idx, uint16(p))
			val = append(val, uint8(1+(p*7+i)%255))
		}
		d.idx = append(d.idx, idx)
		d.val = append(d.val, val)
	}
	return d
}

func (d *varied) Len() int                          { return len(d.idx) }
func (d *varied) Inputs() int                       { return d.inputs }
func (d *varied) Label(i int) int                   { return i % 10 }
func (d *varied) Nonzero(i int) ([]uint16, []uint8) { return d.idx[i], d.val[i] }

// TestWeightScale: with L2 regularisation the trainer's kernel keeps its
// weights as ws·w; its outputs, its snapshot's and those of a kernel made
// from the snapshot (ws = 1) must agree, before and after ws is folded into
// the weights.
func TestWeightScale(t *testing.T) {
	sizes := []int{784, 30, 20, 10}
	n, err := New(sizes, InitScaled, rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	data := newVaried(40, sizes[0])
	// Each mini-batch of 10 shrinks the weights by 1 - 0.5·24/40 = 0.7:
	// after 4 mini-batches ws = 0.24, after 20 it is folded (0.7^20 < 1/1024).
	tr, err := NewTrainer(n, Params{BatchSize: 10, Eta: 0.5, Cost: CrossEntropy, Lambda: 24}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for epoch := 1; epoch <= 5; epoch++ {
		if _, err := tr.TrainEpoch(context.Background(), data); err != nil {
			t.Fatal(err)
		}
		k := tr.k
		if epoch == 1 && !(k.ws > 0.2 && k.ws < 0.3) {
			t.Fatalf("after 4 mini-batches ws = %v, want 0.7⁴", k.ws)
		}
		if epoch == 5 && k.ws < 0.7 {
			t.Fatalf("after 20 mini-batches ws = %v: not folded", k.ws)
		}
		snap := newKernel(tr.Network())
		a, b := k.newActivations(1), snap.newActivations(1)
		for i := range data.Len() {
			got, want := k.output(data, i, &a), snap.output(data, i, &b)
			if d := maxAbsDiff(got, want); d > 1e-12 {
				t.Fatalf("epoch %d, example %d: trainer outputs %v, snapshot %v", epoch, i, got, want)
			}
		}
		want, _ := snap.evaluate(data, nil)
		if got, _ := tr.Evaluate(data); got != want {
			t.Errorf("epoch %d: the trainer classifies %d correctly, its snapshot %d", epoch, got, want)
		}
	}
}

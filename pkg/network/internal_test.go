package network

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/mnist"
)

type oneHot struct{ n int }

func (o oneHot) Len() int                          { return o.n }
func (o oneHot) Label(i int) int                   { return i % 2 }
func (o oneHot) Inputs() int                       { return 3 }
func (o oneHot) Nonzero(i int) ([]uint16, []uint8) { return []uint16{uint16(i % 3)}, []uint8{200} }

// Sigmoid networks with a bounded learning rate do not blow up from finite
// weights, so a NaN is planted (FromParams would refuse it) to check that a
// non-finite state is reported rather than saved.
func TestNonFiniteWeightsEndTraining(t *testing.T) {
	n, err := New([]int{3, 4, 2}, InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	n.weights[0] = mat.DenseCopyOf(n.weights[0])
	n.weights[0].Set(0, 0, math.NaN())
	called := false
	_, err = SGD(context.Background(), n, oneHot{10}, oneHot{10}, Params{Epochs: 2, BatchSize: 2, Eta: 1},
		rand.New(rand.NewPCG(1, 1)), func(Epoch) error { called = true; return nil })
	if !errors.Is(err, ErrNotFinite) {
		t.Errorf("got %v, want ErrNotFinite", err)
	}
	if called {
		t.Error("a non-finite epoch was reported as finished")
	}
}

// TestSparseKernels compares the vector kernels with the plain Go loops for
// every width class they handle (blocks of 32, 16 and 4 doubles).
func TestSparseKernels(t *testing.T) { ForEachKernel(t, testSparseKernels) }

func testSparseKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for _, n := range []int{4, 8, 12, 16, 20, 28, 32, 36, 48, 52, 64, 100, 128, 132} {
		rows := 50
		w := make([]float64, rows*n)
		for i := range w {
			w[i] = rng.NormFloat64()
		}
		var idx []uint16
		var val []uint8
		for p := range rows {
			if rng.IntN(2) == 0 {
				idx = append(idx, uint16(p))
				val = append(val, uint8(1+rng.IntN(255)))
			}
		}
		src := make([]float64, n)
		for i := range src {
			src[i] = rng.NormFloat64()
		}

		want := append([]float64(nil), src...)
		got := append([]float64(nil), src...)
		gatherGeneric(want, w, idx, val, &scale)
		gather(got, w, idx, val, &scale)
		if d := maxAbsDiff(got, want); d > 1e-12 {
			t.Errorf("gather n=%d: differs by %g", n, d)
		}

		wantW := append([]float64(nil), w...)
		gotW := append([]float64(nil), w...)
		scatterGeneric(wantW, src, idx, val, &scale, -0.3)
		scatter(gotW, src, idx, val, &scale, -0.3)
		if d := maxAbsDiff(gotW, wantW); d > 1e-12 {
			t.Errorf("scatter n=%d: differs by %g", n, d)
		}
		if maxAbsDiff(gotW, w) == 0 {
			t.Errorf("scatter n=%d changed nothing", n)
		}
	}
}

// TestDenseKernels compares the dense vector kernels with the Go loops,
// for widths with and without a remainder of 4.
func TestDenseKernels(t *testing.T) { ForEachKernel(t, testDenseKernels) }

func testDenseKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 12))
	norm := func(n int) []float64 {
		x := make([]float64, n)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		return x
	}
	for _, n := range []int{1, 3, 4, 5, 10, 16, 17, 30, 32, 33, 64, 100, 128, 131} {
		for _, m := range []int{1, 2, 7, 10} {
			stride := n + rng.IntN(3)
			rows := norm((m-1)*stride + n)
			coef := norm(m)
			want, got := norm(n), make([]float64, n)
			copy(got, want)
			axpyRowsGeneric(want, rows, stride, coef)
			axpyRows(got, rows, stride, coef)
			if d := maxAbsDiff(got, want); d > 1e-12 {
				t.Errorf("axpyRows n=%d m=%d: differs by %g", n, m, d)
			}
		}
		x, y := norm(n), norm(n+2)
		if d := math.Abs(dot(x, y) - dotGeneric(x, y[:n])); d > 1e-12 {
			t.Errorf("dot n=%d: differs by %g", n, d)
		}
	}
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// stepCases are network.py's and network2.py's training.
var stepCases = []struct {
	name string
	p    Params
}{
	{"quadratic", Params{BatchSize: 10, Eta: 3.0}},
	{"cross-entropy+L2", Params{BatchSize: 10, Eta: 0.5, Cost: CrossEntropy, Lambda: 5}},
}

// BenchmarkMiniBatch times one mini-batch update of [784,30,10] on MNIST. It
// must not allocate (TestTrainingAllocatesNothing checks).
func BenchmarkMiniBatch(b *testing.B) {
	ds, err := mnist.LoadEmbedded()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range stepCases {
		b.Run(tc.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			n, _ := New([]int{784, 30, 10}, InitNormal, rng)
			tr, err := NewTrainer(n, tc.p, rng)
			if err != nil {
				b.Fatal(err)
			}
			batch := make([]int32, tc.p.BatchSize)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				for j := range batch {
					batch[j] = int32((i*len(batch) + j) % ds.Training.Len())
				}
				tr.step(ds.Training, batch, nil)
			}
		})
	}
}

// Examples of another width must never reach the vector kernels, which
// index rows by input.
func TestRefusesExamplesOfAnotherWidth(t *testing.T) {
	n, err := New([]int{4, 3, 2}, InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	data := oneHot{10} // 3 inputs
	if _, err := n.Evaluate(data); err == nil {
		t.Error("Evaluate accepted 3-input examples for a 4-input network")
	}
	if _, err := n.Classify(data); err == nil {
		t.Error("Classify accepted them")
	}
	tr, err := NewTrainer(n, Params{BatchSize: 2, Eta: 1}, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.TrainEpoch(context.Background(), data); err == nil {
		t.Error("TrainEpoch accepted them")
	}
	if _, err := SGD(context.Background(), n, data, data, Params{Epochs: 1, BatchSize: 2, Eta: 1}, rand.New(rand.NewPCG(1, 1)), nil); err == nil {
		t.Error("SGD accepted them")
	}
}

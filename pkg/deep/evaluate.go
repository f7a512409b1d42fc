package deep

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/mnist-go/nnserver/pkg/network"
)

// evalRows is the most examples a goroutine runs through the engine at a
// time when evaluating (what memory estimates count); evalCache is how many
// bytes of scratch a chunk should fit in, so that a layer's output is still
// in the core's cache when the next layer reads it.
const (
	evalRows  = 16
	evalCache = 1280 << 10
)

// chunkRows returns how many examples e evaluates at a time: as many as
// fit evalCache (a multiple of 4, the dense kernels' tile, from 4 on),
// between 1 and evalRows. A conv network's examples are large (the example
// network's scratch is 276 KB an example, its im2col matrices most: 4 at a
// time), a dense network's small (11 KB: 16 at a time, each weight read
// once per 16 examples). Measured on 2 cores with 2 MiB of L2 each,
// evaluating 10,000 images (BenchmarkEvaluate*): the example network
// 606 ms with 16 rows, 412 ms with 8, 379 ms with 4, 424 ms with 1;
// Nielsen's final network 874, 726 and 721 ms; a dense 784-1000-1000-10
// network 328, 342 and 366 ms.
func chunkRows(e *engine) int {
	r := evalCache / max(1, e.workBytes(1, false))
	if r >= 4 {
		r -= r % 4
	}
	return min(max(r, 1), evalRows)
}

// EvalChunk returns how many examples at a time Evaluate and Outputs run
// through a network of these layers on each goroutine (0 if the layers do
// not plan): what their scratch, counted as the engine counts it, is made
// for.
func EvalChunk(layers []Layer) int {
	shapes, err := Plan(layers, Limits{})
	if err != nil {
		return 0
	}
	return chunkRows(shapeEngine(layers, shapes))
}

// evaluator runs inference for an engine, keeping one scratch per
// goroutine between calls.
type evaluator struct {
	e     *engine
	rows  int // examples per chunk: chunkRows
	works []*work
}

func newEvaluator(e *engine) *evaluator { return &evaluator{e: e, rows: chunkRows(e)} }

// run computes the outputs of data's examples and hands each chunk's to
// visit (from several goroutines, each with its own range of examples):
// out holds examples lo to hi−1, 10 values each.
func (ev *evaluator) run(data network.Examples, visit func(lo, hi int, out []float32)) error {
	if err := fits(data); err != nil {
		return err
	}
	n := data.Len()
	rows := ev.rows
	workers := min(runtime.GOMAXPROCS(0), (n+rows-1)/rows)
	for len(ev.works) < workers {
		ev.works = append(ev.works, ev.e.newWork(rows, false))
	}
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			wk := ev.works[g]
			src := source{data: data}
			// Worker g takes chunks g, g+workers, ...
			for lo := g * rows; lo < n; lo += workers * rows {
				hi := min(lo+rows, n)
				for r := range hi - lo {
					wk.y[r] = src.load(lo+r, wk.x[r*inputShape.Len():(r+1)*inputShape.Len()])
				}
				ev.e.forward(wk, hi-lo, false)
				visit(lo, hi, wk.act[len(wk.act)-1][:(hi-lo)*Classes])
			}
		})
	}
	wg.Wait()
	return nil
}

// evaluate returns how many of data's examples the network classifies
// correctly, or an error wrapping ErrNotFinite if an output is NaN.
func (ev *evaluator) evaluate(data network.Examples) (int, error) {
	var mu sync.Mutex
	correct, nan := 0, false
	err := ev.run(data, func(lo, hi int, out []float32) {
		c, bad := 0, false
		for r := range hi - lo {
			o := out[r*Classes : (r+1)*Classes]
			if hasNaN32(o) {
				bad = true
			}
			if argmax32(o) == data.Label(lo+r) {
				c++
			}
		}
		mu.Lock()
		correct += c
		nan = nan || bad
		mu.Unlock()
	})
	if err != nil {
		return 0, err
	}
	if nan {
		return 0, fmt.Errorf("deep: an output is not a number: %w", ErrNotFinite)
	}
	return correct, nil
}

func hasNaN32(xs []float32) bool {
	for _, x := range xs {
		if x != x {
			return true
		}
	}
	return false
}

// argmax32 returns the index of the largest of out, the first if tied.
func argmax32(out []float32) int {
	best := 0
	for i, v := range out {
		if v > out[best] {
			best = i
		}
	}
	return best
}

// Evaluate returns how many examples of data the network classifies
// correctly (its most active output is the label). The examples are
// split across GOMAXPROCS goroutines.
func (n *Network) Evaluate(data network.Examples) (int, error) {
	return newEvaluator(newEngine(n)).evaluate(data)
}

// Outputs returns the output layer's activations for every example of data,
// row-major: example i's are out[i*10 : (i+1)*10]. An output that is NaN
// gives an error wrapping ErrNotFinite.
func (n *Network) Outputs(data network.Examples) ([]float64, error) {
	if err := fits(data); err != nil {
		return nil, err
	}
	out := make([]float64, data.Len()*Classes)
	err := newEvaluator(newEngine(n)).run(data, func(lo, hi int, o []float32) {
		for j, v := range o {
			out[lo*Classes+j] = float64(v)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, v := range out {
		if math.IsNaN(v) {
			return nil, fmt.Errorf("deep: an output is not a number: %w", ErrNotFinite)
		}
	}
	return out, nil
}

// FeedForward returns the network's 10 outputs for one image of 784 values
// in [0, 1], row-major.
func (n *Network) FeedForward(x []float64) ([]float64, error) {
	if len(x) != inputShape.Len() {
		return nil, fmt.Errorf("deep: an input has %d values, want %d", len(x), inputShape.Len())
	}
	e := newEngine(n)
	wk := e.newWork(1, false)
	for i, v := range x {
		if !(v >= 0 && v <= 1) {
			return nil, fmt.Errorf("deep: input %d is %v, want a number from 0 to 1", i, v)
		}
		wk.x[i] = float32(v)
	}
	e.forward(wk, 1, false)
	out := make([]float64, Classes)
	for j, v := range wk.act[len(wk.act)-1][:Classes] {
		if math.IsNaN(float64(v)) {
			return nil, fmt.Errorf("deep: an output is not a number: %w", ErrNotFinite)
		}
		out[j] = float64(v)
	}
	return out, nil
}

package network

import (
	"fmt"
	"runtime"
	"sync"
)

// Evaluate returns how many examples of data the network classifies
// correctly (its most active output neuron is the label), like network.py's
// evaluate. The examples are split across GOMAXPROCS goroutines.
func (n *Network) Evaluate(data Examples) (int, error) {
	k := newKernel(n)
	if err := k.fits(data); err != nil {
		return 0, err
	}
	return k.checkedEvaluate(data, nil)
}

// Classify returns the predicted class of every example of data.
func (n *Network) Classify(data Examples) ([]int, error) {
	k := newKernel(n)
	if err := k.fits(data); err != nil {
		return nil, err
	}
	pred := make([]int, data.Len())
	if _, err := k.checkedEvaluate(data, pred); err != nil {
		return nil, err
	}
	return pred, nil
}

// Outputs returns the output layer's activations for every example of data,
// row-major: example i's are out[i*o : (i+1)*o], o = Sizes()[len-1]. They
// are computed in parallel as Evaluate's are; from them a caller can tell
// more than right or wrong (a confusion matrix, how confident a mistake).
// An output that is NaN gives an error wrapping ErrNotFinite.
func (n *Network) Outputs(data Examples) ([]float64, error) { return newKernel(n).outputs(data, nil) }

// outputs computes the outputs of data; acts, if not nil, holds the
// activations of each worker, kept for the next call.
func (k *kernel) outputs(data Examples, acts []activations) ([]float64, error) {
	if err := k.fits(data); err != nil {
		return nil, err
	}
	o := k.sizes[len(k.sizes)-1]
	out := make([]float64, data.Len()*o)
	n := workers(data.Len())
	work := func(w, lo, hi int, a *activations) {
		for i := lo; i < hi; i++ {
			copy(out[i*o:(i+1)*o], k.output(data, i, a))
		}
	}
	if acts == nil {
		k.parallel(data.Len(), n, work)
	} else {
		var wg sync.WaitGroup
		for w := range min(n, len(acts)) {
			wg.Go(func() { work(w, data.Len()*w/min(n, len(acts)), data.Len()*(w+1)/min(n, len(acts)), &acts[w]) })
		}
		wg.Wait()
	}
	if hasNaN(out) {
		return nil, fmt.Errorf("network: outputs that are not numbers: %w", ErrNotFinite)
	}
	return out, nil
}

// A Runner runs one network on many sets of examples with one copy of its
// weights in the kernel's layout, made once: for a caller that works
// through a data set in blocks (to check for cancellation between them).
// It keeps each worker's activations too. It is not safe for concurrent
// use.
type Runner struct {
	k    *kernel
	acts []activations
}

// Runner returns a Runner of n.
func (n *Network) Runner() *Runner {
	r := &Runner{k: newKernel(n), acts: make([]activations, runtime.GOMAXPROCS(0))}
	for i := range r.acts {
		r.acts[i] = r.k.newActivations(1)
	}
	return r
}

// Outputs is Network.Outputs.
func (r *Runner) Outputs(data Examples) ([]float64, error) { return r.k.outputs(data, r.acts) }

// Evaluate returns how many examples of data the trainer's current weights
// classify correctly.
func (t *Trainer) Evaluate(data Examples) (int, error) {
	if err := t.k.fits(data); err != nil {
		return 0, err
	}
	return t.k.checkedEvaluate(data, nil)
}

// checkedEvaluate is evaluate, with an error wrapping ErrNotFinite if an
// output is NaN: finite weights can still be large enough for a neuron's sum
// to be ∞ − ∞ (an imported network, or training on the edge of diverging).
func (k *kernel) checkedEvaluate(data Examples, pred []int) (int, error) {
	correct, nan := k.evaluate(data, pred)
	if nan > 0 {
		return correct, fmt.Errorf("network: %d of %d examples give outputs that are not numbers: %w", nan, data.Len(), ErrNotFinite)
	}
	return correct, nil
}

// evaluate counts the correctly classified examples of data, and those
// whose outputs hold a NaN. If pred is not nil it receives every prediction.
func (k *kernel) evaluate(data Examples, pred []int) (correct, nan int) {
	return k.evaluateWith(data, pred, workers(data.Len()))
}

// evaluateWith is evaluate on n goroutines.
func (k *kernel) evaluateWith(data Examples, pred []int, n int) (correct, nan int) {
	counts := make([][2]int, n)
	k.parallel(data.Len(), n, func(w, lo, hi int, acts *activations) {
		var right, nans int
		for i := lo; i < hi; i++ {
			out := k.output(data, i, acts)
			if hasNaN(out) {
				nans++
			}
			c := argmax(out)
			if c == data.Label(i) {
				right++
			}
			if pred != nil {
				pred[i] = c
			}
		}
		counts[w] = [2]int{right, nans}
	})
	for _, c := range counts {
		correct += c[0]
		nan += c[1]
	}
	return correct, nan
}

func hasNaN(xs []float64) bool {
	for _, x := range xs {
		if x != x {
			return true
		}
	}
	return false
}

// workers is how many goroutines to spread n examples over: up to
// GOMAXPROCS, at least 500 examples each. Those goroutines run on at most
// GOMAXPROCS threads, so concurrent evaluations share the cores rather than
// oversubscribe them.
func workers(n int) int { return min(runtime.GOMAXPROCS(0), max(1, n/500)) }

// parallel splits examples 0 to n-1 into that many contiguous ranges and
// calls work(w, lo, hi, acts) for range w on a goroutine of its own, with
// activations for one example, returning when all have.
func (k *kernel) parallel(n, workers int, work func(w, lo, hi int, acts *activations)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			acts := k.newActivations(1)
			work(w, n*w/workers, n*(w+1)/workers, &acts)
		})
	}
	wg.Wait()
}

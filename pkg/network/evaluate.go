package network

import (
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
	return k.evaluate(data, nil), nil
}

// Classify returns the predicted class of every example of data.
func (n *Network) Classify(data Examples) ([]int, error) {
	k := newKernel(n)
	if err := k.fits(data); err != nil {
		return nil, err
	}
	pred := make([]int, data.Len())
	k.evaluate(data, pred)
	return pred, nil
}

// Outputs returns the output layer's activations for every example of data,
// row-major: example i's are out[i*o : (i+1)*o], o = Sizes()[len-1]. They
// are computed in parallel as Evaluate's are; from them a caller can tell
// more than right or wrong (a confusion matrix, how confident a mistake).
func (n *Network) Outputs(data Examples) ([]float64, error) {
	k := newKernel(n)
	if err := k.fits(data); err != nil {
		return nil, err
	}
	o := k.sizes[len(k.sizes)-1]
	out := make([]float64, data.Len()*o)
	k.parallel(data.Len(), workers(data.Len()), func(_, lo, hi int, acts *activations) {
		for i := lo; i < hi; i++ {
			copy(out[i*o:(i+1)*o], k.output(data, i, acts))
		}
	})
	return out, nil
}

// Evaluate returns how many examples of data the trainer's current weights
// classify correctly.
func (t *Trainer) Evaluate(data Examples) (int, error) {
	if err := t.k.fits(data); err != nil {
		return 0, err
	}
	return t.k.evaluate(data, nil), nil
}

// evaluate counts the correctly classified examples of data. If pred is not
// nil it receives every prediction.
func (k *kernel) evaluate(data Examples, pred []int) int {
	n := workers(data.Len())
	counts := make([]int, n)
	k.parallel(data.Len(), n, func(w, lo, hi int, acts *activations) {
		correct := 0
		for i := lo; i < hi; i++ {
			c := argmax(k.output(data, i, acts))
			if c == data.Label(i) {
				correct++
			}
			if pred != nil {
				pred[i] = c
			}
		}
		counts[w] = correct
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
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

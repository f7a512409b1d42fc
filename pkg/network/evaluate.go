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

// Evaluate returns how many examples of data the trainer's current weights
// classify correctly.
func (t *Trainer) Evaluate(data Examples) (int, error) {
	if err := t.k.fits(data); err != nil {
		return 0, err
	}
	return t.k.evaluate(data, nil), nil
}

// evaluate counts the correctly classified examples of data, spreading them
// over GOMAXPROCS goroutines. Those are scheduled on at most GOMAXPROCS
// threads, so concurrent evaluations share the cores rather than
// oversubscribe them. If pred is not nil it receives every prediction.
func (k *kernel) evaluate(data Examples, pred []int) int {
	n := data.Len()
	workers := min(runtime.GOMAXPROCS(0), max(1, n/500))
	counts := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() {
			acts := k.newActivations(1)
			correct := 0
			for i := lo; i < hi; i++ {
				c := k.classify(data, i, &acts, 0)
				if c == data.Label(i) {
					correct++
				}
				if pred != nil {
					pred[i] = c
				}
			}
			counts[w] = correct
		})
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	return total
}

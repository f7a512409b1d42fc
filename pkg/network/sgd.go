package network

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"gonum.org/v1/gonum/floats"
)

// Params are the hyper-parameters of stochastic gradient descent. The zero
// values of the options after Eta give network.py's training.
type Params struct {
	Epochs    int     // passes over the training data
	BatchSize int     // examples per mini-batch (the last one may be smaller)
	Eta       float64 // learning rate

	// Cost is the cost minimised: Quadratic (network.py's) or CrossEntropy
	// (network2.py's).
	Cost Cost
	// Lambda is network2.py's L2 regularisation parameter λ (lmbda): every
	// mini-batch of m examples updates the weights as
	// w ← (1 − Eta·λ/n)·w − (Eta/m)·∇w, n the number of training examples;
	// biases are not decayed. 0 turns it off; at most MaxLambda.
	Lambda float64
}

// MaxLambda is the largest L2 regularisation parameter Params accepts.
// network2.py's examples use 0.1 to 5 for 50,000 images.
const MaxLambda = 1000

// Validate reports whether p can be used to train.
func (p Params) Validate() error {
	if p.Epochs < 1 {
		return fmt.Errorf("network: epochs must be at least 1, got %d", p.Epochs)
	}
	return p.validateStep()
}

// validateStep checks the fields a Trainer uses: all but Epochs.
func (p Params) validateStep() error {
	switch {
	case p.BatchSize < 1:
		return fmt.Errorf("network: mini-batch size must be at least 1, got %d", p.BatchSize)
	case !(p.Eta > 0) || !finite([]float64{p.Eta}):
		return fmt.Errorf("network: learning rate must be a finite positive number, got %v", p.Eta)
	case !p.Cost.valid():
		return fmt.Errorf("network: unknown cost %d", int(p.Cost))
	case !(p.Lambda >= 0 && p.Lambda <= MaxLambda): // false for NaN too
		return fmt.Errorf("network: L2 regularisation parameter must be a number from 0 to %d, got %v", MaxLambda, p.Lambda)
	}
	return nil
}

// Epoch reports one finished epoch of SGD.
type Epoch struct {
	Epoch    int     // 1-based
	Epochs   int     // total epochs of this run
	Correct  int     // test examples classified correctly after this epoch
	Total    int     // test examples
	Accuracy float64 // Correct / Total
	Seconds  float64 // time this epoch's training took, evaluation excluded
	// Network is a snapshot of the weights after this epoch. It belongs to
	// the receiver and is never modified.
	Network *Network
}

// SGD trains a copy of start with mini-batch stochastic gradient descent,
// network.py's way: every epoch shuffles the training examples, cuts them into
// mini-batches and moves every weight by -eta/len(batch) times the summed
// gradient of the cost (after shrinking it, if p.Lambda is set, as
// network2.py does); then it evaluates on test. start is not modified.
//
// After every epoch onEpoch (if not nil) receives the epoch's figures and a
// snapshot of the network; if it returns an error, training stops with that
// error. Cancelling ctx stops training within one mini-batch and returns
// ctx's error; the last snapshot handed to onEpoch is then the latest good
// state. If the weights stop being finite numbers, SGD returns an error
// wrapping ErrNotFinite.
//
// The shuffles come from rng: the same start, data, params and rng state give
// the same run, bit for bit.
func SGD(ctx context.Context, start *Network, train, test Examples, p Params, rng *rand.Rand,
	onEpoch func(Epoch) error) (*Network, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	t, err := NewTrainer(start, p, rng)
	if err != nil {
		return nil, err
	}
	if err := t.k.fits(test); err != nil {
		return nil, err
	}
	for e := 1; e <= p.Epochs; e++ {
		secs, err := t.TrainEpoch(ctx, train)
		if err != nil {
			return nil, fmt.Errorf("epoch %d: %w", e, err)
		}
		if !t.k.finite() {
			return nil, fmt.Errorf("epoch %d: training diverged: %w", e, ErrNotFinite)
		}
		correct, err := t.Evaluate(test)
		if err != nil {
			return nil, err
		}
		ep := Epoch{
			Epoch: e, Epochs: p.Epochs, Correct: correct, Total: test.Len(),
			Seconds: secs, Network: t.Network(),
		}
		if ep.Total > 0 {
			ep.Accuracy = float64(correct) / float64(ep.Total)
		}
		if onEpoch != nil {
			if err := onEpoch(ep); err != nil {
				return nil, err
			}
		}
	}
	return t.Network(), nil
}

// yieldEvery is how long training runs before it yields the processor.
const yieldEvery = time.Millisecond

// Trainer runs SGD epoch by epoch on its own copy of a network. It is not
// safe for concurrent use; Network hands out independent snapshots.
type Trainer struct {
	k   *kernel
	p   Params
	rng *rand.Rand

	perm  []int32     // training order, reshuffled every epoch
	acts  activations // one row per example of a mini-batch
	delta activations // errors, same shape as acts
	back  []float64   // scratch for one example's back-propagated error
	coef  []float64   // scratch: one neuron's scaled errors across a mini-batch
}

// NewTrainer prepares to train a copy of n with p's mini-batch size,
// learning rate, cost and regularisation, shuffling with rng. p.Epochs is
// not used: every TrainEpoch is one epoch. It fails if p is not valid.
func NewTrainer(n *Network, p Params, rng *rand.Rand) (*Trainer, error) {
	if err := p.validateStep(); err != nil {
		return nil, err
	}
	k := newKernel(n)
	widest := 0
	for _, s := range k.sizes {
		widest = max(widest, s)
	}
	return &Trainer{
		k: k, p: p, rng: rng,
		acts:  k.newActivations(p.BatchSize),
		delta: k.newActivations(p.BatchSize),
		back:  make([]float64, widest),
		coef:  make([]float64, p.BatchSize),
	}, nil
}

// Network returns a snapshot of the trainer's current weights.
func (t *Trainer) Network() *Network { return t.k.network() }

// TrainEpoch shuffles train and runs one pass of mini-batch updates over it,
// returning the seconds it took. It checks ctx before every mini-batch; if ctx
// is cancelled the weights are left mid-epoch and ctx's error is returned.
func (t *Trainer) TrainEpoch(ctx context.Context, train Examples) (float64, error) {
	if err := t.k.fits(train); err != nil {
		return 0, err
	}
	start := time.Now()
	n := train.Len()
	if len(t.perm) != n {
		t.perm = make([]int32, n)
		for i := range t.perm {
			t.perm[i] = int32(i)
		}
	}
	t.rng.Shuffle(n, func(i, j int) { t.perm[i], t.perm[j] = t.perm[j], t.perm[i] })
	done := ctx.Done()
	lastYield := start
	batch := t.p.BatchSize
	for lo := 0; lo < n; lo += batch {
		select {
		case <-done:
			return time.Since(start).Seconds(), ctx.Err()
		default:
		}
		t.step(train, t.perm[lo:min(lo+batch, n)])
		// Let other goroutines in about every millisecond: with as many
		// training jobs as cores, Go would otherwise preempt a job only
		// after 10 ms, and that is how long a request could wait.
		if now := time.Now(); now.Sub(lastYield) > yieldEvery {
			runtime.Gosched()
			lastYield = now
		}
	}
	return time.Since(start).Seconds(), nil
}

// step applies one mini-batch update of data's examples batch, out of
// data.Len() training examples. It allocates nothing.
func (t *Trainer) step(data Examples, batch []int32) {
	k := t.k
	sizes := k.sizes
	last := len(k.w) - 1
	out := sizes[len(sizes)-1]

	// Forward pass and output error: (a - y) ⊙ σ'(z) for the quadratic
	// cost, with σ'(z) = a(1 - a); a - y for the cross-entropy.
	crossEntropy := t.p.Cost == CrossEntropy
	for r, ex := range batch {
		k.forward(data, int(ex), &t.acts, r)
		a := t.acts.row(last, r, out)
		d := t.delta.row(last, r, out)
		y := data.Label(int(ex))
		for i, ai := range a {
			target := 0.0
			if i == y {
				target = 1
			}
			if crossEntropy {
				d[i] = ai - target
			} else {
				d[i] = (ai - target) * ai * (1 - ai)
			}
		}
	}

	// Back-propagate the errors with the weights as they were for the
	// forward pass: δ(l-1) = (W(l)ᵀ δ(l)) ⊙ σ'(z(l-1)), W(l) = ws·w(l).
	ws := k.ws
	for l := last; l >= 1; l-- {
		in, outW := sizes[l], sizes[l+1]
		w := k.w[l]
		back := t.back[:in]
		for r := range batch {
			clear(back)
			axpyRows(back, w, in, t.delta.row(l, r, outW))
			a := t.acts.row(l-1, r, in)
			dPrev := t.delta.row(l-1, r, in)
			for i, ai := range a {
				dPrev[i] = back[i] * ws * ai * (1 - ai)
			}
		}
	}

	// L2 regularisation: w ← (1 − η·λ/n)·w, before the gradient step (it
	// changes ws, which the forward and backward passes have used).
	if t.p.Lambda != 0 {
		k.shrinkWeights(1 - t.p.Eta*t.p.Lambda/float64(data.Len()))
	}

	// Update: w -= eta/len(batch) · Σ δ aᵀ and b -= eta/len(batch) · Σ δ,
	// straight into the weights, one neuron's row at a time. The weights
	// are stored divided by ws, and so is their step.
	c := t.p.Eta / float64(len(batch))
	cw := -c / k.ws
	coef := t.coef[:len(batch)]
	for l := last; l >= 1; l-- {
		in, outW := sizes[l], sizes[l+1]
		w, b := k.w[l], k.b[l]
		for i := range outW {
			for r := range batch {
				coef[r] = cw * t.delta.row(l, r, outW)[i]
			}
			axpyRows(w[i*in:(i+1)*in], t.acts.a[l-1], t.acts.stride[l-1], coef)
		}
		for r := range batch {
			floats.AddScaled(b, -c, t.delta.row(l, r, outW))
		}
	}
	// The first layer, padded: the padding of δ is 0, so the padding of the
	// weights and biases stays 0.
	for r, ex := range batch {
		d := t.delta.row(0, r, k.h0)
		idx, val := data.Nonzero(int(ex))
		scatter(k.w[0], d, idx, val, &scale, cw)
		floats.AddScaled(k.b[0], -c, d)
	}
}

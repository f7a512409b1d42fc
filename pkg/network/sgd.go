package network

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/mnist-go/nnserver/internal/pace"
	"github.com/mnist-go/nnserver/internal/sat"
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

	// ScratchBytes bounds the trainer's scratch memory for a mini-batch's
	// activations and errors, which otherwise grows with BatchSize times
	// the neurons of the network (a wide layer and a large mini-batch ask
	// for gigabytes). With a bound the trainer holds ScratchRows examples'
	// worth and works through a larger mini-batch in chunks of that many,
	// summing their gradient (computed, as always, with the weights as
	// they were at the start of the mini-batch) into an accumulator the
	// size of the weights and biases, then updating once: the same maths,
	// equal to rounding. A cancel takes effect between chunks. 0 means no
	// bound: scratch for a whole mini-batch, updated in place.
	// TrainerBytes tells the memory a Trainer holds.
	ScratchBytes int

	// OnBatch, if not nil, is called on the training goroutine after every
	// mini-batch with the number of mini-batches done in this epoch (1 to
	// batches) and the epoch's total. Training waits for it, so it should
	// be quick: a counter, a rate-limited message.
	OnBatch func(batch, batches int)

	// Done is how many epochs of this run were trained before, in another
	// run that stopped (a job resumed after its server went away): SGD
	// draws and discards their shuffles, so that given the network as
	// those epochs left it, the remaining Epochs train exactly as the
	// uninterrupted run would have (bit for bit without Lambda; with it,
	// to rounding: the decay's running factor starts afresh). Epochs
	// counts the epochs still to train.
	Done int

	// Validation, if not nil, is evaluated after every epoch besides the
	// test set (Epoch.ValidationCorrect): examples never trained on, to
	// choose between epochs without looking at the test set.
	Validation Examples
}

// MaxLambda is the largest L2 regularisation parameter Params accepts.
// network2.py's examples use 0.1 to 5 for 50,000 images.
const MaxLambda = 1000

// Validate reports whether p can be used to train.
func (p Params) Validate() error {
	if p.Epochs < 1 {
		return fmt.Errorf("network: epochs must be at least 1, got %d", p.Epochs)
	}
	if p.Done < 0 {
		return fmt.Errorf("network: epochs done before must not be negative, got %d", p.Done)
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
	case p.ScratchBytes < 0:
		return fmt.Errorf("network: scratch bound must not be negative, got %d", p.ScratchBytes)
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

	// TrainingCost is the mean cost of the epoch's training examples under
	// Params.Cost, each taken with the weights of its mini-batch (summed
	// while training: no extra pass over the data), plus the L2 term
	// λ/(2n)·Σw² with the weights at the epoch's end, as network2.py's
	// total_cost.
	TrainingCost float64
	// ValidationCorrect and ValidationTotal are Params.Validation's figures
	// (0 and 0 without it).
	ValidationCorrect, ValidationTotal int
}

// SGD trains a copy of start with mini-batch stochastic gradient descent,
// network.py's way: every epoch shuffles the training examples, cuts them into
// mini-batches and moves every weight by -eta/len(batch) times the summed
// gradient of the cost (after shrinking it, if p.Lambda is set, as
// network2.py does); then it evaluates on test. start is not modified.
//
// After every epoch onEpoch (if not nil) receives the epoch's figures and a
// snapshot of the network; if it returns an error, training stops with that
// error. Cancelling ctx stops training within one mini-batch (or one chunk
// of one, see Params.ScratchBytes) and returns ctx's error; the last
// snapshot handed to onEpoch is then the latest good state. If the weights
// stop being finite numbers, or grow so large that a neuron's sum could
// overflow (CheckBounded), SGD returns an error wrapping ErrNotFinite.
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
	for range p.Done {
		t.shuffle(train.Len())
	}
	// The validation pass of epoch e runs while epoch e+1 trains (see
	// overlap); onEpoch(e) is called when it is done, between two
	// mini-batches of epoch e+1, and no OnBatch of epoch e+1 is called
	// before it.
	run, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	o := &overlap{onEpoch: onEpoch, stop: stop}
	if t.p.OnBatch != nil || p.Validation != nil {
		onBatch := t.p.OnBatch
		t.p.OnBatch = func(b, batches int) {
			if o.deliver(false) && onBatch != nil {
				onBatch(b, batches)
			}
		}
		defer func() { t.p.OnBatch = onBatch }()
	}
	var last *Network // the snapshot of the last epoch, handed out once
	for e := 1; e <= p.Epochs; e++ {
		secs, err := t.TrainEpoch(run, train)
		// The previous epoch is delivered first, as it would have been
		// before this one began.
		if !o.deliver(true) {
			return nil, o.err
		}
		if err == nil {
			// Cancelled while the previous epoch was delivered: this one is
			// not, as if the cancel had come before its last mini-batch.
			err = ctx.Err()
		}
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
			Seconds: secs, Network: t.Network(), TrainingCost: t.epochCost(train.Len()),
		}
		if err := ep.Network.CheckBounded(); err != nil {
			return nil, fmt.Errorf("epoch %d: training diverged: %w", e, err)
		}
		last = ep.Network
		if ep.Total > 0 {
			ep.Accuracy = float64(correct) / float64(ep.Total)
		}
		switch {
		case p.Validation == nil:
			o.ep = &ep
		case e < p.Epochs:
			// While the next epoch trains on one core, the validation
			// pass runs on another, on a copy of the weights.
			o.vk = t.k.copyOf(o.vk)
			o.start(&ep, p.Validation)
			continue
		default: // the last epoch: nothing to overlap with
			if ep.ValidationCorrect, err = t.Evaluate(p.Validation); err != nil {
				return nil, err
			}
			ep.ValidationTotal = p.Validation.Len()
			o.ep = &ep
		}
		if !o.deliver(true) {
			return nil, o.err
		}
	}
	if last == nil {
		return t.Network(), nil
	}
	return last, nil
}

// overlap holds an epoch whose validation pass runs while the next epoch
// trains, until onEpoch has it. Training with mini-batches runs on one
// goroutine, so on a machine with two cores or more the validation pass
// (10,000 images: about 8% of an epoch of [784, 30, 10]) costs the epoch
// next to no time; on one core it costs what it did.
type overlap struct {
	onEpoch func(Epoch) error
	stop    context.CancelCauseFunc // stops the epoch training meanwhile
	vk      *kernel                 // the copy of the weights the pass reads

	ep      *Epoch        // the epoch to deliver, nil if none
	done    chan struct{} // closed when ep's validation pass is done; nil if none runs
	passErr error         // the pass's error, read once done is closed
	err     error         // the pass's or onEpoch's error: SGD stops with it
}

// start runs the validation pass of ep on o.vk, on a goroutine of its own
// with one worker.
func (o *overlap) start(ep *Epoch, validation Examples) {
	o.ep, o.done = ep, make(chan struct{})
	go func() {
		defer close(o.done)
		correct, nan := o.vk.evaluateWith(validation, nil, 1)
		if nan > 0 {
			o.passErr = fmt.Errorf("network: %d of %d examples give outputs that are not numbers: %w", nan, validation.Len(), ErrNotFinite)
			return
		}
		ep.ValidationCorrect, ep.ValidationTotal = correct, validation.Len()
	}()
}

// deliver hands the pending epoch, if any, to onEpoch once its validation
// pass is done, waiting for it if wait is set. It reports whether nothing
// is pending any more and training may go on; false when the epoch is
// still pending (and wait is not set) or failed: then o.err says why, and
// the epoch training meanwhile is stopped with it.
func (o *overlap) deliver(wait bool) bool {
	if o.err != nil {
		return false
	}
	if o.ep == nil {
		return true
	}
	if o.done != nil {
		if wait {
			<-o.done
		} else {
			select {
			case <-o.done:
			default:
				return false
			}
		}
		o.done, o.err = nil, o.passErr
	}
	ep := *o.ep
	o.ep = nil
	if o.err == nil && o.onEpoch != nil {
		o.err = o.onEpoch(ep)
	}
	if o.err != nil {
		o.stop(o.err)
		return false
	}
	return true
}

// Trainer runs SGD epoch by epoch on its own copy of a network. It is not
// safe for concurrent use; Network hands out independent snapshots.
type Trainer struct {
	k    *kernel
	p    Params
	rng  *rand.Rand
	rows int // examples the scratch holds: ScratchRows

	perm    []int32     // training order, reshuffled every epoch
	costSum float64     // the costs of this epoch's examples so far
	acts    activations // one row per example of a mini-batch (or chunk)
	delta   activations // errors, same shape as acts
	back    []float64   // scratch for one example's back-propagated error
	coef    []float64   // scratch: one neuron's scaled errors across a mini-batch
	// grad sums the gradient of a mini-batch larger than rows, chunk by
	// chunk, in the kernel's layout; nil if no mini-batch is.
	grad *params

	pacer pace.Pacer // lets other goroutines in between mini-batches and chunks
}

// NewTrainer prepares to train a copy of n with p's mini-batch size,
// learning rate, cost, regularisation and scratch bound, shuffling with rng.
// p.Epochs is not used: every TrainEpoch is one epoch. It fails if p is not
// valid, or if the trainer would need more memory than an int can count.
func NewTrainer(n *Network, p Params, rng *rand.Rand) (*Trainer, error) {
	if err := p.validateStep(); err != nil {
		return nil, err
	}
	if TrainerBytes(n.sizes, p) == math.MaxInt {
		return nil, fmt.Errorf("network: a trainer of %v for mini-batches of %d would need more memory than can be addressed", n.sizes, p.BatchSize)
	}
	k := newKernel(n)
	rows := ScratchRows(k.sizes, p)
	t := &Trainer{
		k: k, p: p, rng: rng, rows: rows,
		acts:  k.newActivations(rows),
		delta: k.newActivations(rows),
		back:  make([]float64, slices.Max(k.sizes)),
		coef:  make([]float64, rows),
	}
	if p.BatchSize > rows {
		t.grad = k.newParams()
	}
	return t, nil
}

// ScratchRows returns how many examples' activations and errors a Trainer
// of a network of these sizes holds with p: p.BatchSize, or fewer if
// p.ScratchBytes bounds them, but at least one. A mini-batch larger than
// that is worked through in chunks. The sizes and p must be valid.
func ScratchRows(sizes []int, p Params) int {
	rows := p.BatchSize
	if p.ScratchBytes > 0 && len(sizes) >= 2 {
		rows = min(rows, p.ScratchBytes/bytesPerRow(sizes))
	}
	return max(rows, 1)
}

// TrainerBytes returns an upper estimate of the memory a Trainer of a
// network of these sizes holds with p: its copy of the weights, its scratch
// (ScratchRows examples), the gradient accumulator if p.BatchSize exceeds
// that, with p.Validation the copy of the weights SGD's validation pass
// reads while the next epoch trains, and smaller buffers, each rounded up
// as the Go allocator does. To
// it TrainEpoch adds 4 bytes per training example for the shuffle order on
// its first call, and SGD every epoch a snapshot of the weights for its
// callback (8 bytes per ParamCount, the receiver's to keep or drop).
// The sizes and p must be valid; if the bytes do not fit an int the result
// is math.MaxInt.
func TrainerBytes(sizes []int, p Params) int {
	if len(sizes) < 2 {
		return 0
	}
	rows := ScratchRows(sizes, p)
	h0 := pad4sat(sizes[1])
	// The weights and biases, in the kernel's layout: one allocation each
	// per layer.
	params := sat.Add(allocBytes(sat.Mul(8, sat.Mul(sizes[0], h0))), allocBytes(sat.Mul(8, h0)))
	for l := 2; l < len(sizes); l++ {
		params = sat.Add(params, allocBytes(sat.Mul(8, sat.Mul(sizes[l], sizes[l-1]))))
		params = sat.Add(params, allocBytes(sat.Mul(8, sizes[l])))
	}
	// Activations and errors: one allocation each per layer.
	scratch := sat.Mul(2, allocBytes(sat.Mul(8, sat.Mul(rows, h0))))
	for l := 2; l < len(sizes); l++ {
		scratch = sat.Add(scratch, sat.Mul(2, allocBytes(sat.Mul(8, sat.Mul(rows, sizes[l])))))
	}
	total := sat.Add(params, scratch)
	if p.BatchSize > rows {
		total = sat.Add(total, params)
	}
	if p.Validation != nil {
		total = sat.Add(total, params) // SGD's copy for the validation pass
	}
	total = sat.Add(total, allocBytes(sat.Mul(8, rows)))              // coef
	total = sat.Add(total, allocBytes(sat.Mul(8, slices.Max(sizes)))) // back
	// The Trainer and kernel (with its 2 KiB intensity table), slice
	// headers per layer, and newKernel's temporary matrix headers.
	return sat.Add(total, 8<<10+sat.Mul(256, len(sizes)))
}

// bytesPerRow is the scratch one example of a mini-batch needs: its
// activations and errors in every layer after the input (the first padded
// to a multiple of 4), and its coefficient.
func bytesPerRow(sizes []int) int {
	n := pad4sat(sizes[1])
	for _, s := range sizes[2:] {
		n = sat.Add(n, s)
	}
	return sat.Add(sat.Mul(16, n), 8)
}

func pad4sat(n int) int { return sat.Add(n, 3) &^ 3 }

// allocBytes bounds the memory the Go allocator takes for an object of b
// bytes: small objects are rounded up to a size class (well within a
// quarter more), large ones to whole 8 KiB pages.
func allocBytes(b int) int {
	if b <= 32<<10 {
		return b + b/4 + 16
	}
	if b > math.MaxInt-(8<<10) {
		return math.MaxInt
	}
	return (b + 8<<10 - 1) &^ (8<<10 - 1)
}

// Network returns a snapshot of the trainer's current weights.
func (t *Trainer) Network() *Network { return t.k.network() }

// shuffle draws an epoch's training order: the one use of the trainer's
// generator, so that skipping an epoch's shuffle skips the epoch's draws.
func (t *Trainer) shuffle(n int) {
	if len(t.perm) != n {
		t.perm = make([]int32, n)
		for i := range t.perm {
			t.perm[i] = int32(i)
		}
	}
	t.rng.Shuffle(n, func(i, j int) { t.perm[i], t.perm[j] = t.perm[j], t.perm[i] })
}

// TrainEpoch shuffles train and runs one pass of mini-batch updates over it,
// returning the seconds it took. It checks ctx before every mini-batch (and
// every chunk of one, see Params.ScratchBytes); if ctx is cancelled the
// weights are left as the last complete mini-batch left them, mid-epoch, and
// ctx's error is returned.
func (t *Trainer) TrainEpoch(ctx context.Context, train Examples) (float64, error) {
	if err := t.k.fits(train); err != nil {
		return 0, err
	}
	start := time.Now()
	n := train.Len()
	t.shuffle(n)
	t.costSum = 0
	done := ctx.Done()
	t.pacer.Start(start)
	batch := t.p.BatchSize
	batches := n / batch
	if n%batch != 0 {
		batches++
	}
	for b, lo := 1, 0; lo < n; b, lo = b+1, lo+batch {
		if !t.pacer.Pause(done) || !t.step(train, t.perm[lo:min(lo+batch, n)], done) {
			return time.Since(start).Seconds(), ctx.Err()
		}
		if t.p.OnBatch != nil {
			t.p.OnBatch(b, batches)
		}
	}
	return time.Since(start).Seconds(), nil
}

// step applies one mini-batch update of data's examples batch, out of
// data.Len() training examples. It allocates nothing. A mini-batch larger
// than the scratch is worked through in chunks, checking done between them:
// if it is closed, step reports false and leaves the weights as they were.
func (t *Trainer) step(data Examples, batch []int32, done <-chan struct{}) bool {
	k := t.k
	c := t.p.Eta / float64(len(batch))
	if len(batch) <= t.rows {
		t.backprop(data, batch)
		t.shrinkWeights(data.Len())
		// Straight into the weights, which are stored divided by ws, and
		// so is their step.
		t.addGradient(k.params, data, batch, -c/k.ws, -c)
		return true
	}
	g := t.grad
	g.clear()
	for lo := 0; lo < len(batch); lo += t.rows {
		if lo > 0 && !t.pacer.Pause(done) {
			return false
		}
		chunk := batch[lo:min(lo+t.rows, len(batch))]
		t.backprop(data, chunk)
		t.addGradient(*g, data, chunk, -c, -c)
	}
	t.shrinkWeights(data.Len())
	for l := range k.w {
		floats.AddScaled(k.w[l], 1/k.ws, g.w[l])
		floats.Add(k.b[l], g.b[l])
	}
	return true
}

// crossEntropyCost is −[y ln a + (1 − y) ln(1 − a)], network2.py's
// CrossEntropyCost with its np.nan_to_num: a saturated output that is
// wrong costs the largest float64 rather than +Inf.
func crossEntropyCost(a, y float64) float64 {
	var c float64
	if y == 1 {
		c = -math.Log(a)
	} else {
		c = -math.Log(1 - a)
	}
	if math.IsInf(c, 0) || math.IsNaN(c) {
		return math.MaxFloat64 / 1e6 // large, and a sum of many stays finite
	}
	return c
}

// epochCost is the mean of the costs summed during the epoch just trained
// on n examples, plus the L2 term λ/(2n)·Σw².
func (t *Trainer) epochCost(n int) float64 {
	if n == 0 {
		return 0
	}
	c := t.costSum / float64(n)
	if t.p.Lambda != 0 {
		c += t.p.Lambda / (2 * float64(n)) * t.k.squaredWeights()
	}
	return c
}

// shrinkWeights applies L2 regularisation's w ← (1 − η·λ/n)·w, if any, for
// n training examples. It changes ws, so it comes after the backward pass
// and before the gradient step.
func (t *Trainer) shrinkWeights(n int) {
	if t.p.Lambda != 0 {
		t.k.shrinkWeights(1 - t.p.Eta*t.p.Lambda/float64(n))
	}
}

// backprop runs the forward and backward passes of the examples of batch
// (at most t.rows), leaving their activations and errors in t.acts and
// t.delta, row r for batch[r].
func (t *Trainer) backprop(data Examples, batch []int32) {
	k := t.k
	sizes := k.sizes
	last := len(k.w) - 1
	out := sizes[len(sizes)-1]

	// Forward pass and output error: (a - y) ⊙ σ'(z) for the quadratic
	// cost, with σ'(z) = a(1 - a); a - y for the cross-entropy.
	// The cost of each example is summed for Epoch.TrainingCost.
	crossEntropy := t.p.Cost == CrossEntropy
	cost := 0.0
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
				cost += crossEntropyCost(ai, target)
			} else {
				d[i] = (ai - target) * ai * (1 - ai)
				cost += 0.5 * (ai - target) * (ai - target)
			}
		}
	}
	t.costSum += cost

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
}

// addGradient adds cw·Σ δ aᵀ to dst's weights and cb·Σ δ to its biases,
// summed over the examples of batch that backprop has just run, one
// neuron's row at a time.
func (t *Trainer) addGradient(dst params, data Examples, batch []int32, cw, cb float64) {
	sizes := t.k.sizes
	coef := t.coef[:len(batch)]
	for l := len(dst.w) - 1; l >= 1; l-- {
		in, outW := sizes[l], sizes[l+1]
		w, b := dst.w[l], dst.b[l]
		for i := range outW {
			for r := range batch {
				coef[r] = cw * t.delta.row(l, r, outW)[i]
			}
			axpyRows(w[i*in:(i+1)*in], t.acts.a[l-1], t.acts.stride[l-1], coef)
		}
		for r := range batch {
			floats.AddScaled(b, cb, t.delta.row(l, r, outW))
		}
	}
	// The first layer, padded: the padding of δ is 0, so the padding of the
	// weights and biases stays 0.
	for r, ex := range batch {
		d := t.delta.row(0, r, t.k.h0)
		idx, val := data.Nonzero(int(ex))
		scatter(dst.w[0], d, idx, val, &scale, cw)
		floats.AddScaled(dst.b[0], cb, d)
	}
}

package deep

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/mnist-go/nnserver/internal/pace"
	"github.com/mnist-go/nnserver/internal/sat"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Params are the hyper-parameters of stochastic gradient descent.
type Params struct {
	Epochs    int     // passes over the training data
	BatchSize int     // examples per mini-batch (the last one may be smaller)
	Eta       float64 // learning rate

	// Lambda is network3.py's L2 regularisation parameter λ (lmbda): the
	// cost gains 0.5·λ·Σw²/(n/BatchSize) over the weights of every layer
	// (not the biases), n being the number of training examples (250,000
	// with Expand): every mini-batch shrinks the weights as
	// w ← (1 − Eta·λ·BatchSize/n)·w before its gradient step. That is
	// network2.py's λ times BatchSize. 0 turns it off; at most MaxLambda.
	Lambda float64

	// Cost is the cost of a sigmoid output layer: network.Quadratic or
	// network.CrossEntropy. A softmax output layer always has the
	// log-likelihood cost and ignores it.
	Cost network.Cost

	// ScratchBytes bounds the trainer's scratch for a mini-batch's
	// activations and errors, which otherwise grows with BatchSize (a
	// mini-batch of 50,000 images of the example network asks for 24 GB).
	// With a bound the trainer holds as many examples' worth as fit and
	// works through a larger mini-batch in chunks of that many, summing
	// their gradients (all with the weights as they were at the start of
	// the mini-batch), then updating once: the same maths, equal to
	// rounding. A cancel takes effect between chunks. 0 means no bound.
	ScratchBytes int

	// OnBatch, if not nil, is called on the training goroutine after every
	// mini-batch with the number of mini-batches done in this epoch (1 to
	// batches) and the epoch's total. Training waits for it.
	OnBatch func(batch, batches int)

	// Done is how many epochs of this run were trained before, in a run
	// that stopped. Given the network those epochs left and the generator
	// in the state the interrupted run was started with, SGD trains
	// epochs Done+1 to Done+Epochs exactly, bit for bit, as the
	// uninterrupted run did: every epoch's shuffle and dropout draws come
	// from a generator seeded by the epoch's number and two values SGD
	// draws from rng when it starts, so they can be skipped to.
	Done int

	// Expand trains on every training image and its four one-pixel shifts
	// (up, down, left, right, the row or column shifted in being blank),
	// as Nielsen's expand_mnist.py does: 250,000 examples from 50,000,
	// made on the fly, never stored.
	Expand bool

	// Validation, if not nil, is evaluated after every epoch besides the
	// test set (Epoch.ValidationCorrect): examples never trained on, to
	// choose between epochs without looking at the test set.
	Validation network.Examples
}

// MaxLambda is the largest L2 regularisation parameter Params accepts.
const MaxLambda = 1000

// Validate reports whether p can be used to train.
func (p Params) Validate() error {
	switch {
	case p.Epochs < 1:
		return fmt.Errorf("deep: epochs must be at least 1, got %d", p.Epochs)
	case p.Done < 0:
		return fmt.Errorf("deep: epochs done before must not be negative, got %d", p.Done)
	}
	return p.validateStep()
}

func (p Params) validateStep() error {
	switch {
	case p.BatchSize < 1:
		return fmt.Errorf("deep: mini-batch size must be at least 1, got %d", p.BatchSize)
	case !(p.Eta > 0) || math.IsInf(p.Eta, 0):
		return fmt.Errorf("deep: learning rate must be a finite positive number, got %v", p.Eta)
	case p.Cost != network.Quadratic && p.Cost != network.CrossEntropy:
		return fmt.Errorf("deep: unknown cost %d", int(p.Cost))
	case !(p.Lambda >= 0 && p.Lambda <= MaxLambda):
		return fmt.Errorf("deep: L2 regularisation parameter must be a number from 0 to %d, got %v", MaxLambda, p.Lambda)
	case p.ScratchBytes < 0:
		return fmt.Errorf("deep: scratch bound must not be negative, got %d", p.ScratchBytes)
	}
	return nil
}

// Epoch reports one finished epoch of SGD.
type Epoch struct {
	Epoch    int     // 1-based, within this run
	Epochs   int     // epochs of this run
	Correct  int     // test examples classified correctly after this epoch
	Total    int     // test examples
	Accuracy float64 // Correct / Total
	Seconds  float64 // this epoch's training, evaluation excluded
	// Network is a snapshot of the weights after this epoch. It belongs to
	// the receiver and is never modified.
	Network *Network

	// TrainingCost is the mean cost of the epoch's training examples (the
	// log-likelihood for a softmax output, else Params.Cost), each taken
	// with the weights of its mini-batch and its dropout mask (summed while
	// training: no extra pass over the data), plus network3.py's L2 term
	// 0.5·λ·Σw²/(n/BatchSize) with the weights at the epoch's end.
	TrainingCost float64
	// ValidationCorrect and ValidationTotal are Params.Validation's figures
	// (0 and 0 without it).
	ValidationCorrect, ValidationTotal int
}

// shards is the number of parts every chunk of a mini-batch is split into,
// each worked on by its own goroutine when GOMAXPROCS allows (the parts
// are the same whatever it is, so the result is too).
const shards = 2

// SGD trains a copy of start with mini-batch stochastic gradient descent:
// every epoch shuffles the training examples (see Params.Expand), cuts
// them into mini-batches and moves every weight and bias by −Eta/m times
// its gradient summed over the mini-batch's m examples, after the L2
// shrinking (Params.Lambda); then it evaluates on test. start is not
// modified.
//
// After every epoch onEpoch (if not nil) receives the epoch's figures and a
// snapshot; if it returns an error, training stops with that error.
// Cancelling ctx stops training within one mini-batch (or one chunk of one,
// see Params.ScratchBytes) and returns ctx's error. If the weights stop
// being finite, or grow so large that a sum could overflow
// (CheckBounded), SGD returns an error wrapping ErrNotFinite. Training
// yields the processor about every millisecond.
//
// SGD draws two numbers from rng when it starts, and nothing after: the
// same start, data, params and rng state give the same run, bit for bit,
// on any machine and with any GOMAXPROCS.
func SGD(ctx context.Context, start *Network, train, test network.Examples, p Params, rng *rand.Rand,
	onEpoch func(Epoch) error) (*Network, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if start == nil || rng == nil {
		return nil, errors.New("deep: SGD needs a network and a random number generator")
	}
	if err := fits(train); err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	if err := fits(test); err != nil {
		return nil, fmt.Errorf("test data: %w", err)
	}
	if p.Validation != nil {
		if err := fits(p.Validation); err != nil {
			return nil, fmt.Errorf("validation data: %w", err)
		}
	}
	if train.Len() == 0 {
		return nil, errors.New("deep: no training examples")
	}
	key := [2]uint64{rng.Uint64(), rng.Uint64()}
	src := source{data: train, expand: p.Expand}
	t, err := newTrainer(start, p, key, src.Len())
	if err != nil {
		return nil, err
	}
	defer t.close()
	var last *Network
	for e := 1; e <= p.Epochs; e++ {
		secs, err := t.trainEpoch(ctx, src, p.Done+e)
		if err != nil {
			return nil, fmt.Errorf("epoch %d: %w", e, err)
		}
		ep := Epoch{Epoch: e, Epochs: p.Epochs, Total: test.Len(), Seconds: secs, Network: t.network()}
		if !finiteAll(ep.Network.w) || !finiteAll(ep.Network.b) {
			return nil, fmt.Errorf("epoch %d: training diverged: %w", e, ErrNotFinite)
		}
		if err := ep.Network.CheckBounded(); err != nil {
			return nil, fmt.Errorf("epoch %d: training diverged: %w", e, err)
		}
		ep.Correct, err = t.eval.evaluate(test)
		if err != nil {
			return nil, fmt.Errorf("epoch %d: %w", e, err)
		}
		ep.TrainingCost = t.epochCost(ep.Network, src.Len())
		if p.Validation != nil {
			if ep.ValidationCorrect, err = t.eval.evaluate(p.Validation); err != nil {
				return nil, fmt.Errorf("epoch %d: validation: %w", e, err)
			}
			ep.ValidationTotal = p.Validation.Len()
		}
		if ep.Total > 0 {
			ep.Accuracy = float64(ep.Correct) / float64(ep.Total)
		}
		last = ep.Network
		if onEpoch != nil {
			if err := onEpoch(ep); err != nil {
				return nil, err
			}
		}
	}
	return last, nil
}

func finiteAll(xs [][]float64) bool {
	for _, x := range xs {
		if !finite(x) {
			return false
		}
	}
	return true
}

// fits reports whether data's examples are 784-pixel images.
func fits(data network.Examples) error {
	if data == nil {
		return errors.New("deep: no examples")
	}
	if data.Inputs() != inputShape.Len() {
		return fmt.Errorf("deep: examples have %d inputs, the network %d", data.Inputs(), inputShape.Len())
	}
	return nil
}

// source is the training set as SGD sees it: the examples, or with expand
// five times as many, example v being image v mod n shifted as v/n says
// (0 none, then down, up, right and left by one pixel, as expand_mnist.py
// makes them).
type source struct {
	data   network.Examples
	expand bool
}

func (s source) Len() int {
	if s.expand {
		return 5 * s.data.Len()
	}
	return s.data.Len()
}

// load writes example v's pixels, scaled to [0, 1], into x (784 values)
// and returns its label.
func (s source) load(v int, x []float32) int32 {
	n := s.data.Len()
	img, shift := v%n, v/n
	loadShifted(x, s.data, img, shift)
	return int32(s.data.Label(img))
}

// shiftRows and shiftCols are each shift's move of a pixel: none, down, up,
// right, left.
var (
	shiftRows = [5]int{0, 1, -1, 0, 0}
	shiftCols = [5]int{0, 0, 0, 1, -1}
)

func loadShifted(x []float32, data network.Examples, img, shift int) {
	x = x[:inputShape.Len()]
	clear(x)
	idx, val := data.Nonzero(img)
	idx = idx[:min(len(idx), len(val))]
	dr, dc := shiftRows[shift], shiftCols[shift]
	const side = 28
	for j, p := range idx {
		r, c := int(p)/side+dr, int(p)%side+dc
		if int(p) < len(x) && r >= 0 && r < side && c >= 0 && c < side {
			x[r*side+c] = float32(val[j]) / 255
		}
	}
}

// trainer runs SGD on its own copy of a network. The engine's float32
// weights and biases are the parameters: updated in place, as PyTorch does.
type trainer struct {
	e      *engine
	p      Params
	key    [2]uint64
	pcg    rand.PCG
	rng    *rand.Rand
	perShd int // examples each shard's scratch holds
	works  [shards]*work
	count  [shards]int // examples of the current chunk in each shard
	thresh []uint32    // per layer: a 32-bit draw below it drops an input
	perm   []int32
	eval   *evaluator

	// The update of the current mini-batch, read by both goroutines.
	decay, coef float32 // w ← decay·w − coef·Σ∂w
	direct      bool    // the mini-batch was one chunk: dense layers update from δ and X

	start, done chan int // the helper goroutine's: a phase to run, its end; nil without one
	pacer       pace.Pacer
}

// The phases the helper goroutine runs: part 1 of a chunk's passes, or
// part 1 of the update.
const (
	phasePasses = iota
	phaseUpdate
)

// rowsPerShard returns how many examples each shard's scratch holds for
// p: half the mini-batch, or fewer if p.ScratchBytes bounds it, but at
// least one.
func rowsPerShard(e *engine, p Params) int {
	r := (p.BatchSize + shards - 1) / shards
	if p.ScratchBytes > 0 {
		r = min(r, p.ScratchBytes/shards/max(1, e.workBytes(1, true)))
	}
	return max(r, 1)
}

// newTrainer prepares to train a copy of n on a training set of examples
// examples (which bounds the scratch a huge mini-batch would ask for).
func newTrainer(n *Network, p Params, key [2]uint64, examples int) (*trainer, error) {
	if err := p.validateStep(); err != nil {
		return nil, err
	}
	if TrainerBytes(n.layers, p) == math.MaxInt {
		return nil, fmt.Errorf("deep: a trainer for mini-batches of %d would need more memory than can be addressed", p.BatchSize)
	}
	e := newEngine(n)
	e.cost = p.Cost
	t := &trainer{e: e, p: p, key: key}
	t.rng = rand.New(&t.pcg)
	t.perShd = min(rowsPerShard(e, p), max(1, (examples+shards-1)/shards))
	for s := range t.works {
		t.works[s] = e.newWork(t.perShd, true)
		t.works[s].pacer.Start(time.Now())
	}
	t.thresh = make([]uint32, len(n.layers))
	for i, l := range n.layers {
		t.thresh[i] = dropThreshold(l.Dropout)
	}
	t.eval = newEvaluator(e)
	if runtime.GOMAXPROCS(0) > 1 {
		start, done := make(chan int), make(chan int)
		t.start, t.done = start, done
		go func() {
			for phase := range start {
				t.run(phase, 1)
				done <- phase
			}
		}()
	}
	return t, nil
}

// dropThreshold returns the threshold of a 32-bit uniform draw below which
// an input is dropped: p·2³², rounded (p is then within 2⁻³³ of the
// probability drawn).
func dropThreshold(p float64) uint32 {
	return uint32(min(math.Round(p*(1<<32)), math.MaxUint32))
}

// close stops the helper goroutine.
func (t *trainer) close() {
	if t.start != nil {
		close(t.start)
		t.start = nil
	}
}

// network returns a snapshot of the trainer's parameters.
func (t *trainer) network() *Network {
	n := &Network{layers: t.e.layers, shapes: t.e.out, w: make([][]float64, len(t.e.w)), b: make([][]float64, len(t.e.b))}
	for i := range t.e.w {
		if t.e.w[i] != nil {
			n.w[i] = to64(t.e.w[i])
			n.b[i] = to64(t.e.b[i])
		}
	}
	return n
}

func to64(src []float32) []float64 {
	dst := make([]float64, len(src))
	for i, v := range src {
		dst[i] = float64(v)
	}
	return dst
}

// seedEpoch seeds the generator of absolute epoch e (1-based, counting
// the epochs done before): its shuffle and then its dropout draws.
func (t *trainer) seedEpoch(e int) {
	t.pcg.Seed(mix(t.key[0]^uint64(e)), mix(t.key[1]+uint64(e)))
}

// mix is SplitMix64's finaliser: neighbouring epochs get unrelated seeds.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// trainEpoch runs absolute epoch e over src, returning the seconds it took.
// It checks ctx before every mini-batch and chunk; if cancelled, the
// weights are left as the last complete mini-batch left them.
func (t *trainer) trainEpoch(ctx context.Context, src source, e int) (float64, error) {
	start := time.Now()
	t.pacer.Start(start)
	n := src.Len()
	if len(t.perm) != n {
		t.perm = make([]int32, n)
	}
	for i := range t.perm {
		t.perm[i] = int32(i)
	}
	for _, wk := range t.works {
		wk.cost = 0
	}
	t.seedEpoch(e)
	t.rng.Shuffle(n, func(i, j int) { t.perm[i], t.perm[j] = t.perm[j], t.perm[i] })
	done := ctx.Done()
	batch := t.p.BatchSize
	batches := (n + batch - 1) / batch
	for b, lo := 1, 0; lo < n; b, lo = b+1, lo+batch {
		if !t.step(src, t.perm[lo:min(lo+batch, n)], done) {
			return time.Since(start).Seconds(), ctx.Err()
		}
		if t.p.OnBatch != nil {
			t.p.OnBatch(b, batches)
		}
	}
	return time.Since(start).Seconds(), nil
}

// epochCost is the mean of the costs the shards summed during the epoch
// just trained on n examples, plus network3.py's L2 term
// 0.5·λ·Σw²·BatchSize/n with net's weights (all layers', not the biases).
func (t *trainer) epochCost(net *Network, n int) float64 {
	if n == 0 {
		return 0
	}
	sum := 0.0
	for _, wk := range t.works {
		sum += wk.cost
	}
	c := sum / float64(n)
	if t.p.Lambda != 0 {
		sq := 0.0
		for _, w := range net.w {
			for _, v := range w {
				sq += v * v
			}
		}
		c += 0.5 * t.p.Lambda * sq * float64(t.p.BatchSize) / float64(n)
	}
	return c
}

// step applies one mini-batch update of src's examples batch, out of
// src.Len() training examples: w ← (1 − η·λ·BatchSize/n)·w − (η/m)·Σ∂w,
// b ← b − (η/m)·Σ∂b for m = len(batch). It allocates nothing.
//
// A mini-batch of at most shards·perShd examples is one chunk: the shards
// run their passes, the conv layers' gradients summed per shard, and then
// the update, split by rows between the goroutines, applies the dense
// layers' gradients δᵀX straight from each shard's δ and input into the
// weights (no gradient matrix is written). A larger mini-batch is worked
// through in chunks, every gradient summed per shard; if done is closed
// before a chunk, step reports false and leaves the weights as they were.
func (t *trainer) step(src source, batch []int32, done <-chan struct{}) bool {
	chunk := shards * t.perShd
	t.direct = len(batch) <= chunk
	for _, wk := range t.works {
		for i, l := range t.e.layers {
			if wk.gw[i] != nil && (l.Kind == Conv || !t.direct) {
				clear(wk.gw[i])
				clear(wk.gb[i])
			}
		}
	}
	for lo := 0; lo < len(batch); lo += chunk {
		if !t.pacer.Pause(done) {
			return false
		}
		t.load(src, batch[lo:min(lo+chunk, len(batch))])
		t.parallel(phasePasses)
	}
	t.decay = float32(1 - t.p.Eta*t.p.Lambda*float64(t.p.BatchSize)/float64(src.Len()))
	t.coef = float32(t.p.Eta / float64(len(batch)))
	t.parallel(phaseUpdate)
	return true
}

// parallel runs phase's part 0 on this goroutine and part 1 on the helper,
// or both here without one.
func (t *trainer) parallel(phase int) {
	if t.start != nil {
		t.start <- phase
		t.run(phase, 0)
		<-t.done
		return
	}
	t.run(phase, 0)
	t.run(phase, 1)
}

// load puts the examples of part (at most shards·perShd) into the shards
// and draws their dropout masks, in order.
func (t *trainer) load(src source, part []int32) {
	per := (len(part) + shards - 1) / shards
	for s := range shards {
		lo, hi := min(s*per, len(part)), min((s+1)*per, len(part))
		wk := t.works[s]
		t.count[s] = hi - lo
		for r, v := range part[lo:hi] {
			wk.y[r] = src.load(int(v), wk.x[r*inputShape.Len():(r+1)*inputShape.Len()])
			for i, th := range t.thresh {
				if th > 0 {
					nin := t.e.in[i].Len()
					drawMask(wk.mask[i][r*nin:(r+1)*nin], th, t.rng)
				}
			}
		}
	}
}

// drawMask sets each of mask to 0 (dropped) or 1, two draws per Uint64.
func drawMask(mask []float32, th uint32, rng *rand.Rand) {
	for j := 0; j < len(mask); j += 2 {
		u := rng.Uint64()
		mask[j] = keep(uint32(u), th)
		if j+1 < len(mask) {
			mask[j+1] = keep(uint32(u>>32), th)
		}
	}
}

func keep(u, th uint32) float32 {
	if u < th {
		return 0
	}
	return 1
}

// run runs part s (0 or 1) of phase: shard s's passes, or the update of
// each parameterised layer's rows in half s.
func (t *trainer) run(phase, s int) {
	if phase == phasePasses {
		if n := t.count[s]; n > 0 {
			t.e.forward(t.works[s], n, true)
			t.e.backward(t.works[s], n, !t.direct)
		}
		return
	}
	for i, l := range t.e.layers {
		if !l.hasParams() {
			continue
		}
		rows := len(t.e.b[i])
		lo, hi := s*rows/shards, (s+1)*rows/shards
		if t.direct && l.Kind != Conv {
			t.updateDense(i, lo, hi)
		} else {
			t.updateSums(i, lo, hi)
		}
	}
}

// updateSums updates rows lo to hi−1 of layer i from the shards' gradient
// sums, added in shard order.
func (t *trainer) updateSums(i, lo, hi int) {
	fan := len(t.e.w[i]) / len(t.e.b[i])
	w := t.e.w[i][lo*fan : hi*fan]
	g0, g1 := t.works[0].gw[i][lo*fan:hi*fan], t.works[1].gw[i][lo*fan:hi*fan]
	g0, g1 = g0[:len(w)], g1[:len(w)]
	decay, c := t.decay, t.coef
	for j, v := range w {
		w[j] = decay*v - c*(g0[j]+g1[j])
	}
	b := t.e.b[i][lo:hi]
	h0, h1 := t.works[0].gb[i][lo:hi], t.works[1].gb[i][lo:hi]
	h0, h1 = h0[:len(b)], h1[:len(b)]
	for j, v := range b {
		b[j] = v - c*(h0[j]+h1[j])
	}
}

// updateDense updates rows (neurons) lo to hi−1 of dense layer i from each
// shard's δ (scaled in place by −η/m, columns lo to hi−1, which no one
// reads after) and input: b += Σ δ', W = decay·W + δ'₀ᵀX₀ + δ'₁ᵀX₁.
func (t *trainer) updateDense(i, lo, hi int) {
	if lo >= hi {
		return
	}
	out := len(t.e.b[i])
	nin := t.e.in[i].Len()
	w := t.e.w[i][lo*nin : hi*nin]
	if t.decay != 1 {
		for j, v := range w {
			w[j] = t.decay * v
		}
	}
	b := t.e.b[i][lo:hi]
	var d, x [shards][]float32 // δ' from column lo, and X, of each shard
	for s, wk := range t.works {
		n := t.count[s]
		if n == 0 {
			continue
		}
		ds := wk.d[i][:n*out]
		for r := range n {
			row := ds[r*out+lo : r*out+hi]
			for j, v := range row {
				v *= -t.coef
				row[j] = v
				b[j] += v
			}
		}
		d[s], x[s] = ds[lo:], t.e.denseX(wk, i, n)
	}
	gemmTN2(hi-lo, nin, t.count[0], d[0], x[0], t.count[1], d[1], x[1], out, nin, w, nin)
}

// TrainerBytes returns an upper estimate of the memory SGD's trainer of a
// network of these layers holds with p: the parameters (float32), each of
// the two parts' scratch and gradient sums, and the evaluation scratch (one
// per GOMAXPROCS goroutine), each rounded up as the Go allocator does. To
// it an epoch adds 4 bytes per training example (×5 with Expand) for the
// shuffle, and SGD a snapshot of the parameters (8 bytes each) per epoch
// for its callback. A mini-batch larger than the training set takes less
// than this says. The layers must plan and p be valid (else the result is
// 0); if the bytes do not fit an int the result is math.MaxInt.
func TrainerBytes(layers []Layer, p Params) int {
	shapes, err := Plan(layers, Limits{})
	if err != nil || p.BatchSize < 1 || p.ScratchBytes < 0 {
		return 0
	}
	e := shapeEngine(layers, shapes)
	total := 0
	paramsTotal := 0
	for i, l := range layers {
		ws, nb := paramShape(l, e.in[i])
		if ws == nil {
			continue
		}
		nw := 1
		for _, d := range ws {
			nw = sat.Mul(nw, d)
		}
		paramsTotal = sat.Add(paramsTotal, sat.Add(nw, nb))
		// The float32 parameters and the gradient sums of each shard.
		total = sat.Add(total, sat.Mul(1+shards, sat.Add(allocBytes(sat.Mul(4, nw)), allocBytes(sat.Mul(4, nb)))))
	}
	if paramsTotal == math.MaxInt {
		return math.MaxInt
	}
	e.w = make([][]float32, len(layers)) // workBytes reads only shapes
	rows := rowsPerShard(e, p)
	total = sat.Add(total, sat.Mul(shards, workAlloc(e, rows, true)))
	total = sat.Add(total, sat.Mul(runtime.GOMAXPROCS(0), workAlloc(e, chunkRows(e), false)))
	// Structures, slice headers, goroutine stacks.
	return sat.Add(total, 16<<10+sat.Mul(512, len(layers)))
}

// shapeEngine returns an engine that knows only layers' shapes (planned):
// enough for workBytes, colLen and chunkRows, not to run.
func shapeEngine(layers []Layer, shapes []Shape) *engine {
	e := &engine{layers: layers, out: shapes}
	for i := range layers {
		e.in = append(e.in, inShape(shapes, i))
	}
	return e
}

// workAlloc bounds the allocation of a work of rows examples: its buffers
// as workBytes counts them, each rounded up, plus the gradient sums
// (counted with the parameters).
func workAlloc(e *engine, rows int, train bool) int {
	b := e.workBytes(rows, train)
	// Each buffer may round up to a page: at most 6 buffers per layer + 2.
	return sat.Add(b, sat.Mul(8<<10+16, 6*len(e.layers)+2))
}

// allocBytes bounds the memory the Go allocator takes for an object of b
// bytes: small objects are rounded up to a size class (within a quarter
// more), large ones to whole 8 KiB pages.
func allocBytes(b int) int {
	if b <= 32<<10 {
		return b + b/4 + 16
	}
	if b > math.MaxInt-(8<<10) {
		return math.MaxInt
	}
	return (b + 8<<10 - 1) &^ (8<<10 - 1)
}

package network_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/network"
)

// examples is a small in-memory data set of 8-bit inputs.
type examples struct {
	pixels [][]uint8
	labels []int
	idx    [][]uint16 // the non-zero pixels of each image, made by add
	val    [][]uint8
}

func (e *examples) add(px []uint8, label int) {
	var idx []uint16
	var val []uint8
	for p, v := range px {
		if v != 0 {
			idx = append(idx, uint16(p))
			val = append(val, v)
		}
	}
	e.pixels = append(e.pixels, px)
	e.labels = append(e.labels, label)
	e.idx = append(e.idx, idx)
	e.val = append(e.val, val)
}

func (e *examples) Len() int                          { return len(e.labels) }
func (e *examples) Inputs() int                       { return len(e.pixels[0]) }
func (e *examples) Label(i int) int                   { return e.labels[i] }
func (e *examples) Nonzero(i int) ([]uint16, []uint8) { return e.idx[i], e.val[i] }

func (e *examples) input(i int) []float64 {
	x := make([]float64, len(e.pixels[i]))
	for p, v := range e.pixels[i] {
		x[p] = float64(v) / 255
	}
	return x
}

// randomExamples makes n examples of size inputs, about a third of them
// zero, with labels below classes.
func randomExamples(rng *rand.Rand, n, size, classes int) *examples {
	e := &examples{}
	for range n {
		px := make([]uint8, size)
		for p := range px {
			if rng.IntN(3) > 0 {
				px[p] = uint8(rng.IntN(256))
			}
		}
		e.add(px, rng.IntN(classes))
	}
	return e
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// reference is network.py's update_mini_batch (network2.py's, with a cost
// and λ), written example by example with plain gonum matrices: the
// specification the fast code must match.
type reference struct {
	w      []*mat.Dense
	b      []*mat.VecDense
	cost   network.Cost
	lambda float64
}

func referenceOf(n *network.Network) *reference {
	r := &reference{}
	for l := range n.NumLayers() {
		r.w = append(r.w, mat.DenseCopyOf(n.Weights(l)))
		r.b = append(r.b, mat.VecDenseCopyOf(n.Biases(l)))
	}
	return r
}

// backprop returns the gradient of r.cost for one example.
func (r *reference) backprop(x []float64, y int) ([]*mat.Dense, []*mat.VecDense) {
	acts := []*mat.VecDense{mat.NewVecDense(len(x), x)}
	for l := range r.w {
		rows, _ := r.w[l].Dims()
		z := mat.NewVecDense(rows, nil)
		z.MulVec(r.w[l], acts[l])
		z.AddVec(z, r.b[l])
		a := mat.NewVecDense(rows, nil)
		for i := range rows {
			a.SetVec(i, sigmoid(z.AtVec(i)))
		}
		acts = append(acts, a)
	}
	L := len(r.w)
	nw := make([]*mat.Dense, L)
	nb := make([]*mat.VecDense, L)
	out := acts[L]
	delta := mat.NewVecDense(out.Len(), nil)
	for i := range out.Len() {
		a, t := out.AtVec(i), 0.0
		if i == y {
			t = 1
		}
		switch r.cost {
		case network.Quadratic:
			delta.SetVec(i, (a-t)*a*(1-a))
		case network.CrossEntropy:
			delta.SetVec(i, a-t)
		default:
			panic("reference: unknown cost")
		}
	}
	for l := L - 1; l >= 0; l-- {
		nb[l] = delta
		g := &mat.Dense{}
		g.Outer(1, delta, acts[l])
		nw[l] = g
		if l > 0 {
			prev := mat.NewVecDense(acts[l].Len(), nil)
			prev.MulVec(r.w[l].T(), delta)
			for i := range prev.Len() {
				a := acts[l].AtVec(i)
				prev.SetVec(i, prev.AtVec(i)*a*(1-a))
			}
			delta = prev
		}
	}
	return nw, nb
}

// update applies one mini-batch out of n training examples.
func (r *reference) update(data *examples, batch []int, eta float64, n int) {
	L := len(r.w)
	sw := make([]*mat.Dense, L)
	sb := make([]*mat.VecDense, L)
	for l := range L {
		sw[l] = mat.NewDense(r.w[l].RawMatrix().Rows, r.w[l].RawMatrix().Cols, nil)
		sb[l] = mat.NewVecDense(r.b[l].Len(), nil)
	}
	for _, i := range batch {
		gw, gb := r.backprop(data.input(i), data.Label(i))
		for l := range L {
			sw[l].Add(sw[l], gw[l])
			sb[l].AddVec(sb[l], gb[l])
		}
	}
	c := eta / float64(len(batch))
	decay := 1 - eta*r.lambda/float64(n)
	for l := range L {
		r.w[l].Scale(decay, r.w[l])
		r.w[l].Sub(r.w[l], scaled(c, sw[l]))
		r.b[l].AddScaledVec(r.b[l], -c, sb[l])
	}
}

func scaled(c float64, m *mat.Dense) *mat.Dense {
	var s mat.Dense
	s.Scale(c, m)
	return &s
}

func maxDiff(t *testing.T, n *network.Network, r *reference) float64 {
	t.Helper()
	d := 0.0
	for l := range n.NumLayers() {
		var w mat.Dense
		w.Sub(n.Weights(l), r.w[l])
		d = max(d, mat.Norm(&w, math.Inf(1)))
		var b mat.VecDense
		b.SubVec(n.Biases(l), r.b[l])
		d = max(d, mat.Norm(&b, math.Inf(1)))
	}
	return d
}

// newTrainer is NewTrainer for parameters the test knows are valid.
func newTrainer(t testing.TB, n *network.Network, p network.Params, rng *rand.Rand) *network.Trainer {
	t.Helper()
	tr, err := network.NewTrainer(n, p, rng)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestEquivalence checks that one epoch of the batched, sparse trainer
// equals the per-example reference applied to the same mini-batches in the
// same order, including a smaller last batch, for both costs, with and
// without L2 regularisation, with the assembly kernels and with the Go
// loops.
func TestEquivalence(t *testing.T) { network.ForEachKernel(t, testEquivalence) }

func testEquivalence(t *testing.T) {
	const (
		ce = network.CrossEntropy
		q  = network.Quadratic
	)
	tests := []struct {
		name      string
		sizes     []int
		n, batch  int
		inputSize int
		cost      network.Cost
		eta       float64
		lambda    float64
	}{
		{"one full batch", []int{784, 30, 10}, 10, 10, 784, q, 3, 0},
		{"last batch smaller", []int{784, 30, 10}, 25, 10, 784, q, 3, 0},
		{"batch of one", []int{784, 30, 10}, 4, 1, 784, q, 3, 0},
		{"odd widths, three layers", []int{784, 17, 5, 10}, 12, 5, 784, q, 3, 0},
		{"wide hidden layer", []int{784, 100, 10}, 10, 10, 784, q, 3, 0},
		{"tiny", []int{3, 1, 2}, 6, 4, 3, q, 3, 0},
		{"cross-entropy", []int{784, 30, 10}, 25, 10, 784, ce, 0.5, 0},
		{"cross-entropy, batch of one", []int{784, 30, 10}, 4, 1, 784, ce, 0.5, 0},
		{"quadratic, L2", []int{784, 30, 10}, 25, 10, 784, q, 3, 5},
		{"cross-entropy, L2, three layers", []int{784, 17, 5, 10}, 12, 5, 784, ce, 0.5, 5},
		{"cross-entropy, L2, tiny", []int{3, 1, 2}, 6, 4, 3, ce, 0.5, 1},
		// Weights shrink by 0.1 per mini-batch: the kernel's weight scale
		// passes its minimum at the fourth and is folded into the weights.
		{"L2 folding the weight scale", []int{784, 17, 5, 10}, 25, 5, 784, ce, 3, 7.5},
		// η·λ/n = 1 and 2: each mini-batch zeroes or negates the weights
		// before its step.
		{"L2 shrink factor 0", []int{784, 17, 5, 10}, 25, 5, 784, ce, 0.5, 50},
		{"L2 shrink factor -1", []int{784, 17, 5, 10}, 25, 5, 784, q, 0.5, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			data := randomExamples(rng, tc.n, tc.inputSize, tc.sizes[len(tc.sizes)-1])
			net, err := network.New(tc.sizes, network.InitNormal, rng)
			if err != nil {
				t.Fatal(err)
			}
			ref := referenceOf(net)
			ref.cost, ref.lambda = tc.cost, tc.lambda
			p := network.Params{BatchSize: tc.batch, Eta: tc.eta, Cost: tc.cost, Lambda: tc.lambda}
			tr := newTrainer(t, net, p, rand.New(rand.NewPCG(1, 2)))
			if _, err := tr.TrainEpoch(context.Background(), data); err != nil {
				t.Fatal(err)
			}
			// The trainer shuffles a 0..n-1 permutation with its rng; do the same.
			perm := make([]int, tc.n)
			for i := range perm {
				perm[i] = i
			}
			rand.New(rand.NewPCG(1, 2)).Shuffle(tc.n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
			for lo := 0; lo < tc.n; lo += tc.batch {
				ref.update(data, perm[lo:min(lo+tc.batch, tc.n)], tc.eta, tc.n)
			}
			got := tr.Network()
			if d := maxDiff(t, got, ref); d > 1e-9 {
				t.Errorf("max |fast - reference| = %g, want <= 1e-9", d)
			}
			if d := maxDiff(t, net, referenceOf(got)); d == 0 {
				t.Errorf("training left the weights unchanged, or modified the start network")
			}
		})
	}
}

// TestGradient checks back-propagation against finite differences of
// C = Σ_x C_x + λ/2·Σw², n times network2.py's regularised cost, for each
// cost C_x, with and without λ, over a tiny data set: one full-batch step
// moves every parameter p by −eta/n · ∂C/∂p.
func TestGradient(t *testing.T) {
	tests := []struct {
		cost   network.Cost
		lambda float64
	}{
		{network.Quadratic, 0},
		{network.CrossEntropy, 0},
		{network.Quadratic, 0.7},
		{network.CrossEntropy, 0.7},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v λ=%v", tc.cost, tc.lambda), func(t *testing.T) {
			testGradient(t, tc.cost, tc.lambda)
		})
	}
}

func testGradient(t *testing.T, cost network.Cost, lambda float64) {
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := []int{5, 4, 3, 2}
	data := randomExamples(rng, 6, sizes[0], 2)
	net, err := network.New(sizes, network.InitNormal, rng)
	if err != nil {
		t.Fatal(err)
	}
	costOf := func(ws []*mat.Dense, bs []*mat.VecDense) float64 {
		n, err := network.FromParams(sizes, ws, bs)
		if err != nil {
			t.Fatal(err)
		}
		c := 0.0
		for i := range data.Len() {
			out, err := n.FeedForward(data.input(i))
			if err != nil {
				t.Fatal(err)
			}
			for j, a := range out {
				y := 0.0
				if j == data.Label(i) {
					y = 1
				}
				switch cost {
				case network.Quadratic:
					c += 0.5 * (a - y) * (a - y)
				case network.CrossEntropy:
					c -= y*math.Log(a) + (1-y)*math.Log(1-a)
				}
			}
		}
		for _, w := range ws {
			c += lambda / 2 * mat.Sum(squares(w))
		}
		return c
	}
	ref := referenceOf(net)
	const eta = 0.5
	tr := newTrainer(t, net, network.Params{BatchSize: data.Len(), Eta: eta, Cost: cost, Lambda: lambda}, rng)
	if _, err := tr.TrainEpoch(context.Background(), data); err != nil {
		t.Fatal(err)
	}
	after := tr.Network()
	const h = 1e-6
	scale := float64(data.Len()) / eta
	check := func(what string, get func() float64, set func(float64), stepped float64) {
		t.Helper()
		orig := get()
		set(orig + h)
		up := costOf(ref.w, ref.b)
		set(orig - h)
		down := costOf(ref.w, ref.b)
		set(orig)
		numeric := (up - down) / (2 * h)
		backprop := (orig - stepped) * scale
		if math.Abs(numeric-backprop) > 1e-6*max(1, math.Abs(numeric)) {
			t.Errorf("%s: backprop %g, finite difference %g", what, backprop, numeric)
		}
	}
	checked := 0
	for l := range net.NumLayers() {
		rows, cols := ref.w[l].Dims()
		for i := range rows {
			for j := range cols {
				check(fmt.Sprintf("layer %d w[%d][%d]", l, i, j),
					func() float64 { return ref.w[l].At(i, j) }, func(v float64) { ref.w[l].Set(i, j, v) },
					after.Weights(l).At(i, j))
				checked++
			}
			check(fmt.Sprintf("layer %d b[%d]", l, i),
				func() float64 { return ref.b[l].AtVec(i) }, func(v float64) { ref.b[l].SetVec(i, v) },
				after.Biases(l).AtVec(i))
			checked++
		}
	}
	if checked != 4*5+4+3*4+3+2*3+2 {
		t.Errorf("checked %d parameters", checked)
	}
}

// squares returns the matrix of the squares of w's elements.
func squares(w *mat.Dense) *mat.Dense {
	var sq mat.Dense
	sq.MulElem(w, w)
	return &sq
}

func TestSameSeedSameRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := randomExamples(rng, 40, 784, 10)
	run := func() *network.Network {
		r := rand.New(rand.NewPCG(42, 42))
		n, err := network.New([]int{784, 30, 10}, network.InitNormal, r)
		if err != nil {
			t.Fatal(err)
		}
		out, err := network.SGD(context.Background(), n, data, data, network.Params{Epochs: 2, BatchSize: 7, Eta: 3}, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := run(), run()
	if d := maxDiff(t, a, referenceOf(b)); d != 0 {
		t.Errorf("two runs with the same seed differ by %g", d)
	}
	r := rand.New(rand.NewPCG(43, 43))
	c, _ := network.New([]int{784, 30, 10}, network.InitNormal, r)
	if d := maxDiff(t, a, referenceOf(c)); d == 0 {
		t.Error("a different seed gave the same network")
	}
}

// TestNewDrawsInNielsensOrder rebuilds New's networks from the same
// random stream: all biases first, then all weights, layer by layer, as
// network.py and network2.py draw them. InitNormal is therefore the network
// New gave before Init existed, bit for bit, and InitScaled the same draws
// with the weights divided by √(inputs).
func TestNewDrawsInNielsensOrder(t *testing.T) {
	sizes := []int{5, 4, 3, 2}
	for _, init := range []network.Init{network.InitNormal, network.InitScaled} {
		t.Run(init.String(), func(t *testing.T) {
			n, err := network.New(sizes, init, rand.New(rand.NewPCG(8, 9)))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(8, 9))
			for l := range n.NumLayers() {
				for i := range sizes[l+1] {
					if got, want := n.Biases(l).AtVec(i), rng.NormFloat64(); got != want {
						t.Fatalf("b%d[%d] = %v, want %v", l, i, got, want)
					}
				}
			}
			for l := range n.NumLayers() {
				div := 1.0
				if init == network.InitScaled {
					div = math.Sqrt(float64(sizes[l]))
				}
				for i := range sizes[l+1] {
					for j := range sizes[l] {
						if got, want := n.Weights(l).At(i, j), rng.NormFloat64()/div; got != want {
							t.Fatalf("w%d[%d][%d] = %v, want %v", l, i, j, got, want)
						}
					}
				}
			}
		})
	}
}

// TestNewDistributions checks the spread of each layer's parameters: N(0, 1)
// for every bias and InitNormal weight, N(0, 1/inputs) for InitScaled
// weights.
func TestNewDistributions(t *testing.T) {
	sizes := []int{784, 400, 300}
	stats := func(xs []float64) (mean, std float64) {
		sq := 0.0
		for _, v := range xs {
			mean += v
			sq += v * v
		}
		mean /= float64(len(xs))
		return mean, math.Sqrt(sq/float64(len(xs)) - mean*mean)
	}
	for _, init := range []network.Init{network.InitNormal, network.InitScaled} {
		t.Run(init.String(), func(t *testing.T) {
			n, err := network.New(sizes, init, rand.New(rand.NewPCG(1, 1)))
			if err != nil {
				t.Fatal(err)
			}
			var biases []float64
			for l := range n.NumLayers() {
				if r, c := n.Weights(l).Dims(); r != sizes[l+1] || c != sizes[l] {
					t.Errorf("weights %d are %d×%d, want %d×%d", l, r, c, sizes[l+1], sizes[l])
				}
				want := 1.0
				if init == network.InitScaled {
					want = 1 / math.Sqrt(float64(sizes[l]))
				}
				// 120,000 or more draws: the standard errors of mean and
				// spread are below 0.3% of want, the bounds 2%.
				mean, std := stats(n.Weights(l).RawMatrix().Data)
				if math.Abs(mean) > 0.02*want || math.Abs(std/want-1) > 0.02 {
					t.Errorf("weights %d: mean %.4f, std %.4f; want 0 and %.4f", l, mean, std, want)
				}
				biases = append(biases, n.Biases(l).RawVector().Data...)
			}
			// 700 draws: standard errors of 0.04 (mean) and 3% (spread),
			// the bounds about four times that.
			if mean, std := stats(biases); math.Abs(mean) > 0.15 || math.Abs(std-1) > 0.1 {
				t.Errorf("biases: mean %.4f, std %.4f; want 0 and 1", mean, std)
			}
		})
	}
}

func TestInitNames(t *testing.T) {
	tests := []struct {
		init network.Init
		name string
	}{{network.InitNormal, "normal"}, {network.InitScaled, "scaled"}}
	for _, tc := range tests {
		if got := tc.init.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
		if got, err := network.ParseInit(tc.name); err != nil || got != tc.init {
			t.Errorf("ParseInit(%q) = %v, %v", tc.name, got, err)
		}
		var back network.Init
		if text, err := tc.init.MarshalText(); err != nil || back.UnmarshalText(text) != nil || back != tc.init {
			t.Errorf("%v does not survive MarshalText and UnmarshalText", tc.init)
		}
	}
	for _, bad := range []string{"", "Normal", "xavier", "scaled "} {
		if _, err := network.ParseInit(bad); err == nil {
			t.Errorf("ParseInit(%q) succeeded", bad)
		}
	}
	for _, bad := range []network.Init{-1, 2} {
		if _, err := bad.MarshalText(); err == nil {
			t.Errorf("%v.MarshalText() succeeded", bad)
		}
		if _, err := network.New([]int{2, 2}, bad, rand.New(rand.NewPCG(1, 1))); err == nil {
			t.Errorf("New with %v succeeded", bad)
		}
	}
}

func TestSGDCallbackAndCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	data := randomExamples(rng, 50, 784, 10)
	n, _ := network.New([]int{784, 8, 10}, network.InitNormal, rng)

	var epochs []network.Epoch
	_, err := network.SGD(context.Background(), n, data, data, network.Params{Epochs: 3, BatchSize: 10, Eta: 1}, rng,
		func(e network.Epoch) error { epochs = append(epochs, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(epochs) != 3 {
		t.Fatalf("got %d callbacks, want 3", len(epochs))
	}
	for i, e := range epochs {
		if e.Epoch != i+1 || e.Epochs != 3 || e.Total != 50 || e.Correct < 0 || e.Correct > 50 ||
			e.Accuracy != float64(e.Correct)/50 || e.Seconds <= 0 || e.Network == nil {
			t.Errorf("epoch %d: %+v", i+1, e)
		}
		if got, err := e.Network.Evaluate(data); err != nil || got != e.Correct {
			t.Errorf("epoch %d: snapshot classifies %d correctly, callback said %d", i+1, got, e.Correct)
		}
	}

	stop := errors.New("stop")
	_, err = network.SGD(context.Background(), n, data, data, network.Params{Epochs: 3, BatchSize: 10, Eta: 1}, rng,
		func(e network.Epoch) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("callback error: got %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = network.SGD(ctx, n, data, data, network.Params{Epochs: 3, BatchSize: 10, Eta: 1}, rng, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	ok := network.Params{Epochs: 1, BatchSize: 1, Eta: 0.1}
	with := func(f func(p *network.Params)) network.Params {
		p := ok
		f(&p)
		return p
	}
	tests := []struct {
		name string
		p    network.Params
		ok   bool
	}{
		{"minimal", ok, true},
		{"no epochs", with(func(p *network.Params) { p.Epochs = 0 }), false},
		{"no batch", with(func(p *network.Params) { p.BatchSize = 0 }), false},
		{"zero eta", with(func(p *network.Params) { p.Eta = 0 }), false},
		{"negative eta", with(func(p *network.Params) { p.Eta = -1 }), false},
		{"NaN eta", with(func(p *network.Params) { p.Eta = math.NaN() }), false},
		{"infinite eta", with(func(p *network.Params) { p.Eta = math.Inf(1) }), false},
		{"cross-entropy", with(func(p *network.Params) { p.Cost = network.CrossEntropy }), true},
		{"unknown cost", with(func(p *network.Params) { p.Cost = 2 }), false},
		{"negative cost", with(func(p *network.Params) { p.Cost = -1 }), false},
		{"lambda", with(func(p *network.Params) { p.Lambda = 5 }), true},
		{"max lambda", with(func(p *network.Params) { p.Lambda = network.MaxLambda }), true},
		{"lambda too large", with(func(p *network.Params) { p.Lambda = math.Nextafter(network.MaxLambda, 2000) }), false},
		{"negative lambda", with(func(p *network.Params) { p.Lambda = -0.1 }), false},
		{"NaN lambda", with(func(p *network.Params) { p.Lambda = math.NaN() }), false},
		{"infinite lambda", with(func(p *network.Params) { p.Lambda = math.Inf(1) }), false},
		{"scratch bound", with(func(p *network.Params) { p.ScratchBytes = 1 }), true},
		{"negative scratch bound", with(func(p *network.Params) { p.ScratchBytes = -1 }), false},
	}
	net, err := network.New([]int{3, 2}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			// A Trainer runs epoch by epoch: it checks all but Epochs.
			_, err := network.NewTrainer(net, tc.p, rand.New(rand.NewPCG(1, 1)))
			if (err == nil) != (tc.ok || tc.p.Epochs == 0) {
				t.Errorf("NewTrainer: %v", err)
			}
		})
	}
}

func TestCostNames(t *testing.T) {
	tests := []struct {
		cost network.Cost
		name string
	}{{network.Quadratic, "quadratic"}, {network.CrossEntropy, "cross-entropy"}}
	for _, tc := range tests {
		if got := tc.cost.String(); got != tc.name {
			t.Errorf("String() = %q, want %q", got, tc.name)
		}
		if got, err := network.ParseCost(tc.name); err != nil || got != tc.cost {
			t.Errorf("ParseCost(%q) = %v, %v", tc.name, got, err)
		}
		var back network.Cost
		if text, err := tc.cost.MarshalText(); err != nil || back.UnmarshalText(text) != nil || back != tc.cost {
			t.Errorf("%v does not survive MarshalText and UnmarshalText", tc.cost)
		}
	}
	for _, bad := range []string{"", "Quadratic", "crossentropy", "log-likelihood"} {
		if _, err := network.ParseCost(bad); err == nil {
			t.Errorf("ParseCost(%q) succeeded", bad)
		}
	}
	for _, bad := range []network.Cost{-1, 2} {
		if _, err := bad.MarshalText(); err == nil {
			t.Errorf("%v.MarshalText() succeeded", bad)
		}
	}
}

func TestNewAndFromParamsReject(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sizes := range [][]int{nil, {784}, {784, 0, 10}, {784, -3, 10}} {
		if _, err := network.New(sizes, network.InitNormal, rng); err == nil {
			t.Errorf("New(%v) succeeded", sizes)
		}
	}
	good, _ := network.New([]int{4, 3, 2}, network.InitNormal, rng)
	ws := []*mat.Dense{good.Weights(0), good.Weights(1)}
	bs := []*mat.VecDense{good.Biases(0), good.Biases(1)}
	nan := mat.DenseCopyOf(good.Weights(1))
	nan.Set(0, 0, math.NaN())
	tests := []struct {
		name  string
		sizes []int
		ws    []*mat.Dense
		bs    []*mat.VecDense
	}{
		{"wrong sizes", []int{4, 2, 2}, ws, bs},
		{"missing layer", []int{4, 3, 2}, ws[:1], bs[:1]},
		{"swapped", []int{4, 3, 2}, []*mat.Dense{ws[1], ws[0]}, bs},
		{"nil", []int{4, 3, 2}, []*mat.Dense{ws[0], nil}, bs},
		{"NaN", []int{4, 3, 2}, []*mat.Dense{ws[0], nan}, bs},
	}
	for _, tc := range tests {
		if _, err := network.FromParams(tc.sizes, tc.ws, tc.bs); err == nil {
			t.Errorf("%s: FromParams succeeded", tc.name)
		}
	}
	if _, err := network.FromParams([]int{4, 3, 2}, ws, bs); err != nil {
		t.Errorf("FromParams of a good network: %v", err)
	}
}

// TestTrainingAllocatesNothing: after its first epoch, which makes the
// shuffle order, a Trainer allocates nothing, whatever its options.
func TestTrainingAllocatesNothing(t *testing.T) {
	tests := []struct {
		name string
		p    network.Params
	}{
		{"quadratic", network.Params{BatchSize: 10, Eta: 3.0}},
		{"cross-entropy+L2", network.Params{BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 5}},
		{"chunked", network.Params{BatchSize: 20, Eta: 3, ScratchBytes: 3 * network.BytesPerRow([]int{784, 30, 10})}},
		{"progress", network.Params{BatchSize: 10, Eta: 3, OnBatch: func(int, int) {}}},
	}
	rng := rand.New(rand.NewPCG(2, 2))
	data := randomExamples(rng, 55, 784, 10)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			net, err := network.New([]int{784, 30, 10}, network.InitNormal, rng)
			if err != nil {
				t.Fatal(err)
			}
			tr := newTrainer(t, net, tc.p, rng)
			allocs := testing.AllocsPerRun(10, func() {
				if _, err := tr.TrainEpoch(context.Background(), data); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per epoch, want 0", allocs)
			}
		})
	}
}

// TestOnBatch: every epoch reports its mini-batches 1 to batches in order,
// each after it is applied, whether the mini-batches fit the scratch or
// are chunked.
func TestOnBatch(t *testing.T) {
	sizes := []int{784, 8, 10}
	tests := []struct {
		name         string
		n, batch     int
		scratchRows  int
		wantPerEpoch int
	}{
		{"last batch smaller", 25, 10, 0, 3},
		{"exact batches", 30, 10, 0, 3},
		{"one batch", 7, 10, 0, 1},
		{"batches of one", 5, 1, 0, 5},
		{"chunked", 25, 10, 3, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(6, 6))
			data := randomExamples(rng, tc.n, sizes[0], 10)
			net, err := network.New(sizes, network.InitNormal, rng)
			if err != nil {
				t.Fatal(err)
			}
			type call struct{ batch, batches int }
			var calls []call
			var trainer *network.Trainer
			var last *network.Network
			p := network.Params{Epochs: 2, BatchSize: tc.batch, Eta: 1, ScratchBytes: tc.scratchRows * network.BytesPerRow(sizes),
				OnBatch: func(b, bs int) { calls = append(calls, call{b, bs}) }}
			// Through SGD, and through a Trainer to see the weights move
			// before each call.
			if _, err := network.SGD(context.Background(), net, data, data, p, rng, nil); err != nil {
				t.Fatal(err)
			}
			var want []call
			for range 2 {
				for b := 1; b <= tc.wantPerEpoch; b++ {
					want = append(want, call{b, tc.wantPerEpoch})
				}
			}
			if !slices.Equal(calls, want) {
				t.Errorf("SGD: calls %v, want %v", calls, want)
			}

			calls = nil
			p.OnBatch = func(b, bs int) {
				now := trainer.Network()
				if d := maxDiff(t, now, referenceOf(last)); d == 0 {
					t.Errorf("mini-batch %d of %d reported before it changed the weights", b, bs)
				}
				last = now
				calls = append(calls, call{b, bs})
			}
			trainer = newTrainer(t, net, p, rng)
			last = net
			if _, err := trainer.TrainEpoch(context.Background(), data); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(calls, want[:tc.wantPerEpoch]) {
				t.Errorf("TrainEpoch: calls %v, want %v", calls, want[:tc.wantPerEpoch])
			}
		})
	}
}

// TestOutputs compares Outputs, computed in parallel, with FeedForward, one
// example at a time, and its argmax with Classify; enough examples that
// every worker gets some.
func TestOutputs(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
		n     int
	}{
		{"one example", []int{784, 30, 10}, 1},
		{"several workers", []int{784, 30, 10}, 1200},
		{"three layers, odd widths", []int{784, 17, 5, 10}, 50},
		{"tiny", []int{3, 1, 2}, 7},
		{"no examples", []int{784, 30, 10}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(10, 10))
			outputs := tc.sizes[len(tc.sizes)-1]
			data := &examples{}
			if tc.n > 0 {
				data = randomExamples(rng, tc.n, tc.sizes[0], outputs)
			} else {
				data.pixels = [][]uint8{make([]uint8, tc.sizes[0])} // Inputs() reads the first
			}
			net, err := network.New(tc.sizes, network.InitScaled, rng)
			if err != nil {
				t.Fatal(err)
			}
			got, err := net.Outputs(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != data.Len()*outputs {
				t.Fatalf("%d outputs, want %d", len(got), data.Len()*outputs)
			}
			pred, err := net.Classify(data)
			if err != nil {
				t.Fatal(err)
			}
			for i := range data.Len() {
				want, err := net.FeedForward(data.input(i))
				if err != nil {
					t.Fatal(err)
				}
				row := got[i*outputs : (i+1)*outputs]
				if d := maxAbsDiff(row, want); d > 1e-12 {
					t.Errorf("example %d: outputs %v, FeedForward %v", i, row, want)
				}
				if best := slices.Index(row, slices.Max(row)); best != pred[i] {
					t.Errorf("example %d: most active output %d, Classify says %d", i, best, pred[i])
				}
			}
		})
	}
	net, _ := network.New([]int{4, 3, 2}, network.InitNormal, rand.New(rand.NewPCG(1, 1)))
	if _, err := net.Outputs(randomExamples(rand.New(rand.NewPCG(1, 1)), 3, 3, 2)); err == nil {
		t.Error("Outputs accepted 3-input examples for a 4-input network")
	}
}

func maxAbsDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestResumedRunIsTheUninterruptedOne: a run stopped after an epoch and
// resumed from its snapshot with Done set trains exactly as if it had not
// stopped.
func TestResumedRunIsTheUninterruptedOne(t *testing.T) {
	ds := dataset(t)
	train, test := ds.Training.Slice(0, 2000), ds.Test.Slice(0, 500)
	start, err := network.New([]int{784, 20, 10}, network.InitNormal, rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	p := network.Params{Epochs: 3, BatchSize: 10, Eta: 3}
	whole, err := network.SGD(context.Background(), start, train, test, p, rand.New(rand.NewPCG(9, 9)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var first *network.Network
	p1 := p
	p1.Epochs = 1
	if _, err := network.SGD(context.Background(), start, train, test, p1, rand.New(rand.NewPCG(9, 9)),
		func(e network.Epoch) error { first = e.Network; return nil }); err != nil {
		t.Fatal(err)
	}
	rest := p
	rest.Epochs, rest.Done = 2, 1
	resumed, err := network.SGD(context.Background(), first, train, test, rest, rand.New(rand.NewPCG(9, 9)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for l := range whole.NumLayers() {
		if !mat.Equal(whole.Weights(l), resumed.Weights(l)) || !mat.Equal(whole.Biases(l), resumed.Biases(l)) {
			t.Fatalf("layer %d: the resumed run differs from the uninterrupted one", l)
		}
	}
	bad := p
	bad.Done = -1
	if err := bad.Validate(); err == nil {
		t.Error("Done -1 was accepted")
	}
}

// TestOutputsThatAreNotNumbers: finite weights can be large enough for a
// neuron's sum to be ∞ − ∞, depending on the order a kernel adds in
// (several accumulators: +∞ in one, −∞ in another). CheckBounded finds
// such networks whatever the order; every way of running one either
// answers numbers or says ErrNotFinite, never NaN (which JSON cannot carry).
func TestOutputsThatAreNotNumbers(t *testing.T) {
	const m = math.MaxFloat64
	// Lanes of 2 or 4 accumulators see +m+m in one and −m−m in another; a
	// single accumulator sees m−m+0+0+m−m = 0.
	w0 := mat.NewDense(1, 8, []float64{m, -m, 0, 0, m, -m, 0, 0})
	w1 := mat.NewDense(2, 1, []float64{1, -1})
	net, err := network.FromParams([]int{8, 1, 2}, []*mat.Dense{w0, w1},
		[]*mat.VecDense{mat.NewVecDense(1, nil), mat.NewVecDense(2, nil)})
	if err != nil {
		t.Fatalf("FromParams with finite weights: %v", err)
	}
	if err := net.CheckBounded(); !errors.Is(err, network.ErrNotFinite) || !strings.Contains(err.Error(), "neuron 0 of layer 1") {
		t.Errorf("CheckBounded: %v, want ErrNotFinite naming neuron 0 of layer 1", err)
	}
	ones := []uint8{255, 255, 255, 255, 255, 255, 255, 255}
	data := &examples{}
	data.add(ones, 0)
	numbers := func(xs []float64) bool { return !slices.ContainsFunc(xs, math.IsNaN) }
	if out, err := net.FeedForward([]float64{1, 1, 1, 1, 1, 1, 1, 1}); err == nil && !numbers(out) || err != nil && !errors.Is(err, network.ErrNotFinite) {
		t.Errorf("FeedForward: %v, %v", out, err)
	}
	if out, err := net.Outputs(data); err == nil && !numbers(out) || err != nil && !errors.Is(err, network.ErrNotFinite) {
		t.Errorf("Outputs: %v, %v", out, err)
	}
	if _, err := net.Evaluate(data); err != nil && !errors.Is(err, network.ErrNotFinite) {
		t.Errorf("Evaluate: %v", err)
	}

	// Weights whose magnitudes sum to less than half the largest float64
	// are bounded.
	ok, err := network.FromParams([]int{2, 1, 2}, []*mat.Dense{mat.NewDense(1, 2, []float64{m / 8, -m / 8}), w1},
		[]*mat.VecDense{mat.NewVecDense(1, []float64{-m / 16}), mat.NewVecDense(2, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.CheckBounded(); err != nil {
		t.Errorf("CheckBounded of weights and bias summing to 5m/16: %v", err)
	}
}

// TestTrainingCostAndValidation: an epoch's training cost is the mean cost
// of its examples with the weights of their mini-batch (one mini-batch
// here: the starting weights) plus, with λ, λ/(2n)·Σw² with the epoch's
// final weights; the validation figures are the snapshot's on the
// validation examples.
func TestTrainingCostAndValidation(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	sizes := []int{16, 5, 3}
	train := randomExamples(rng, 40, 16, 3)
	val := randomExamples(rng, 25, 16, 3)
	for _, tc := range []struct {
		name   string
		cost   network.Cost
		lambda float64
	}{
		{"quadratic", network.Quadratic, 0},
		{"cross-entropy", network.CrossEntropy, 0},
		{"cross-entropy with λ", network.CrossEntropy, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, err := network.New(sizes, network.InitScaled, rand.New(rand.NewPCG(7, 7)))
			if err != nil {
				t.Fatal(err)
			}
			want := 0.0
			for i := range train.Len() {
				out, err := start.FeedForward(train.input(i))
				if err != nil {
					t.Fatal(err)
				}
				for j, a := range out {
					y := 0.0
					if j == train.Label(i) {
						y = 1
					}
					if tc.cost == network.CrossEntropy {
						want += -y*math.Log(a) - (1-y)*math.Log(1-a)
					} else {
						want += 0.5 * (a - y) * (a - y)
					}
				}
			}
			want /= float64(train.Len())
			p := network.Params{Epochs: 1, BatchSize: train.Len(), Eta: 0.5, Cost: tc.cost, Lambda: tc.lambda, Validation: val}
			var ep network.Epoch
			_, err = network.SGD(context.Background(), start, train, train, p, rand.New(rand.NewPCG(1, 1)), func(e network.Epoch) error {
				ep = e
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.lambda != 0 {
				sq := 0.0
				for l := range ep.Network.NumLayers() {
					w := ep.Network.Weights(l)
					r, c := w.Dims()
					for i := range r {
						for j := range c {
							sq += w.At(i, j) * w.At(i, j)
						}
					}
				}
				want += tc.lambda / (2 * float64(train.Len())) * sq
			}
			if d := math.Abs(ep.TrainingCost - want); d > 1e-9*math.Max(1, want) {
				t.Errorf("TrainingCost %v, want %v", ep.TrainingCost, want)
			}
			vc, err := ep.Network.Evaluate(val)
			if err != nil {
				t.Fatal(err)
			}
			if ep.ValidationCorrect != vc || ep.ValidationTotal != val.Len() {
				t.Errorf("validation %d of %d, want %d of %d", ep.ValidationCorrect, ep.ValidationTotal, vc, val.Len())
			}
		})
	}
}

// TestValidationOverlapsTheNextEpoch: SGD runs epoch e's validation pass
// while epoch e+1 trains. What onEpoch receives is what training epoch by
// epoch and evaluating in between gives (weights, test and validation
// figures, cost), epochs are delivered in order, no OnBatch of epoch e+1
// comes before onEpoch(e), and an error of onEpoch, or a cancel, stops
// training as before: at the epoch onEpoch refused, after every epoch
// trained before the cancel was delivered.
func TestValidationOverlapsTheNextEpoch(t *testing.T) {
	data := rand.New(rand.NewPCG(3, 4))
	train := randomExamples(data, 3000, 20, 4)
	test := randomExamples(data, 300, 20, 4)
	val := randomExamples(data, 4000, 20, 4) // a pass long enough to overlap many mini-batches
	sizes := []int{20, 12, 4}
	start, err := network.New(sizes, network.InitScaled, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	const epochs = 4
	base := network.Params{Epochs: epochs, BatchSize: 10, Eta: 0.5, Cost: network.CrossEntropy, Lambda: 0.5}

	// The reference: a Trainer, evaluated after every epoch.
	type figures struct {
		correct, valCorrect int
		weights             []float64
	}
	flat := func(n *network.Network) []float64 {
		var out []float64
		for l := range len(sizes) - 1 {
			out = append(out, n.Weights(l).RawMatrix().Data...)
		}
		return out
	}
	tr, err := network.NewTrainer(start, base, rand.New(rand.NewPCG(9, 9)))
	if err != nil {
		t.Fatal(err)
	}
	var want []figures
	for range epochs {
		if _, err := tr.TrainEpoch(context.Background(), train); err != nil {
			t.Fatal(err)
		}
		c, _ := tr.Evaluate(test)
		vc, _ := tr.Evaluate(val)
		n := tr.Network()
		want = append(want, figures{correct: c, valCorrect: vc, weights: flat(n)})
	}

	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("GOMAXPROCS %d", procs), func(t *testing.T) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			var log []string // "b<batch>" and "e<epoch>"
			p := base
			p.Validation = val
			p.OnBatch = func(b, batches int) { log = append(log, fmt.Sprintf("b%d", b)) }
			var got []network.Epoch
			_, err := network.SGD(context.Background(), start, train, test, p, rand.New(rand.NewPCG(9, 9)), func(ep network.Epoch) error {
				got = append(got, ep)
				log = append(log, fmt.Sprintf("e%d", ep.Epoch))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != epochs {
				t.Fatalf("%d epochs delivered, want %d", len(got), epochs)
			}
			for i, ep := range got {
				w := want[i]
				if ep.Epoch != i+1 || ep.Correct != w.correct || ep.ValidationCorrect != w.valCorrect || ep.ValidationTotal != val.Len() ||
					!slices.Equal(flat(ep.Network), w.weights) {
					t.Errorf("epoch %d: %d, test %d, validation %d of %d; want %d, %d, %d of %d, and the reference's weights",
						i+1, ep.Epoch, ep.Correct, ep.ValidationCorrect, ep.ValidationTotal, i+1, w.correct, w.valCorrect, val.Len())
				}
			}
			// Between two calls of onEpoch (and before the first) the
			// batch numbers only grow: epoch e's mini-batches come after
			// onEpoch(e-1) (some of its first ones held back until then),
			// never those of two epochs.
			delivered, last := 0, 0
			for _, entry := range log {
				var e, b int
				if _, err := fmt.Sscanf(entry, "e%d", &e); err == nil {
					if e != delivered+1 {
						t.Fatalf("log %v: onEpoch(%d) after onEpoch(%d)", log, e, delivered)
					}
					delivered, last = e, 0
				} else if _, err := fmt.Sscanf(entry, "b%d", &b); err == nil {
					if b <= last || delivered == 0 && b != last+1 {
						t.Fatalf("log %v: mini-batch %d after %d, with %d epochs delivered", log, b, last, delivered)
					}
					last = b
				}
			}
		})
	}

	t.Run("onEpoch refuses", func(t *testing.T) {
		stopErr := errors.New("stop here")
		p := base
		p.Validation = val
		calls := 0
		_, err := network.SGD(context.Background(), start, train, test, p, rand.New(rand.NewPCG(9, 9)), func(ep network.Epoch) error {
			calls++
			if ep.Epoch == 2 {
				return stopErr
			}
			return nil
		})
		if !errors.Is(err, stopErr) || calls != 2 {
			t.Errorf("SGD: %v after %d calls of onEpoch; want %v after 2", err, calls, stopErr)
		}
	})
	t.Run("cancelled in onEpoch", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := base
		p.Validation = val
		calls := 0
		_, err := network.SGD(ctx, start, train, test, p, rand.New(rand.NewPCG(9, 9)), func(ep network.Epoch) error {
			calls++
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("SGD: %v after %d calls of onEpoch; want context.Canceled after 1", err, calls)
		}
	})
}

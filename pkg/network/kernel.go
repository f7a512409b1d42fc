package network

import (
	"fmt"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// Examples is a labelled data set of sparse inputs with intensities 0–255,
// scaled to [0, 1] by /255 on the way in. *mnist.Set implements it.
type Examples interface {
	Len() int
	// Inputs returns how many inputs every example has: every index
	// Nonzero returns is below it. It must equal the network's input layer.
	Inputs() int
	// Label returns the class of example i, the index of the output neuron
	// that should fire.
	Label(i int) int
	// Nonzero returns the positions and intensities of example i's non-zero
	// inputs, positions strictly ascending and as many intensities as
	// positions. All other inputs are zero. (The vector kernels rely on the
	// order: they check only the last position against the weights.)
	Nonzero(i int) (idx []uint16, val []uint8)
}

// scale maps an 8-bit intensity to its input value in [0, 1].
var scale = func() (t [256]float64) {
	for i := range t {
		t[i] = float64(i) / 255
	}
	return t
}()

// kernel holds a network's parameters in the layout the hot loops want.
//
// The first layer is stored transposed (one row per input), so that an
// example's pre-activations are a sum of the rows of its non-zero inputs and
// its weight gradient touches only those rows: with ~150 of 784 MNIST pixels
// non-zero, that is a fifth of the dense work. Later layers are dense in
// Nielsen's orientation (one row per neuron).
//
// The first layer's rows are padded with zeros to h0 = sizes[1] rounded up to
// a multiple of 4, the width of the vector kernels (see kernels.go); its
// biases and activation rows are padded the same way and the padding stays 0.
//
// The weights are ws·w: L2 regularisation shrinks every weight by the same
// factor every mini-batch, and multiplying ws instead costs nothing, where
// multiplying the weights is a pass over all of them (for [784,30,10] as
// much work again as the mini-batch's sparse update). ws is exactly 1 unless
// regularising, so the default path multiplies by 1 and is unchanged.
type kernel struct {
	sizes []int
	h0    int // padded width of the first hidden layer
	params
	ws float64 // the weights are ws·w; see minWeightScale

	// table maps an intensity to its input value times ws, for the sparse
	// kernels: &scale while ws is 1, else &scaled.
	table  *[256]float64
	scaled [256]float64
}

// minWeightScale is the least ws is let fall to before it is folded into the
// weights (w *= ws, ws = 1): the stored weights grow as 1/ws, and must stay
// far from overflow. With Nielsen's λ = 5, η = 0.5, 50,000 examples and
// mini-batches of 10 that is a pass over the weights every 28 epochs (where
// shrinking the weights themselves would be one every mini-batch: 5,000 an
// epoch); a shrink factor at or below 0
// (η·λ ≥ n, legal if silly) folds every mini-batch.
const minWeightScale = 1.0 / 1024

// params are weights and biases (or their gradient) in the kernel's layout.
type params struct {
	w [][]float64 // w[0]: sizes[0]×h0 (transposed, padded); w[l>0]: sizes[l+1]×sizes[l]
	b [][]float64 // b[0]: h0 (padded); b[l>0]: sizes[l+1]
}

// newParams returns zero weights and biases shaped like k's.
func (k *kernel) newParams() *params {
	p := &params{}
	for l := range k.w {
		p.w = append(p.w, make([]float64, len(k.w[l])))
		p.b = append(p.b, make([]float64, len(k.b[l])))
	}
	return p
}

// copyOf returns a kernel computing exactly as k does (the same stored
// weights, weight scale and intensity table), reusing dst's memory if dst
// was made by an earlier copyOf of a kernel of the same network.
func (k *kernel) copyOf(dst *kernel) *kernel {
	if dst == nil {
		dst = &kernel{sizes: k.sizes, h0: k.h0, params: *k.newParams()}
	}
	for l := range k.w {
		copy(dst.w[l], k.w[l])
		copy(dst.b[l], k.b[l])
	}
	dst.setWeightScale(k.ws)
	return dst
}

func (p *params) clear() {
	for l := range p.w {
		clear(p.w[l])
		clear(p.b[l])
	}
}

func pad4(n int) int { return (n + 3) &^ 3 }

// fits reports whether data's examples have as many inputs as the network:
// the vector kernels read and write rows by input index, so a mismatch must
// never reach them.
func (k *kernel) fits(data Examples) error {
	if data.Inputs() != k.sizes[0] {
		return fmt.Errorf("network: examples have %d inputs, the network %d", data.Inputs(), k.sizes[0])
	}
	return nil
}

func newKernel(n *Network) *kernel {
	k := &kernel{sizes: n.Sizes(), h0: pad4(n.sizes[1]), ws: 1, table: &scale}
	in, h := k.sizes[0], k.sizes[1]
	w0 := make([]float64, in*k.h0)
	wt := mat.NewDense(in, k.h0, w0).Slice(0, in, 0, h).(*mat.Dense)
	wt.Copy(n.weights[0].T())
	b0 := make([]float64, k.h0)
	copy(b0, n.biases[0].RawVector().Data)
	k.w = append(k.w, w0)
	k.b = append(k.b, b0)
	for l := 1; l < len(n.weights); l++ {
		k.w = append(k.w, append([]float64(nil), n.weights[l].RawMatrix().Data...))
		k.b = append(k.b, append([]float64(nil), n.biases[l].RawVector().Data...))
	}
	return k
}

// network returns a new Network holding a copy of k's parameters.
func (k *kernel) network() *Network {
	n := &Network{sizes: append([]int(nil), k.sizes...)}
	for l := range k.w {
		var w *mat.Dense
		if l == 0 {
			wt := mat.NewDense(k.sizes[0], k.h0, k.w[0]).Slice(0, k.sizes[0], 0, k.sizes[1])
			w = mat.DenseCopyOf(wt.T())
		} else {
			w = mat.NewDense(k.sizes[l+1], k.sizes[l], append([]float64(nil), k.w[l]...))
		}
		if k.ws != 1 {
			w.Scale(k.ws, w)
		}
		n.weights = append(n.weights, w)
		b := append([]float64(nil), k.b[l][:k.sizes[l+1]]...)
		n.biases = append(n.biases, mat.NewVecDense(k.sizes[l+1], b))
	}
	return n
}

// shrinkWeights multiplies every weight by f, normally through ws alone.
func (k *kernel) shrinkWeights(f float64) {
	ws := k.ws * f
	if ws >= minWeightScale {
		k.setWeightScale(ws)
		return
	}
	for l := range k.w {
		floats.Scale(ws, k.w[l])
	}
	k.setWeightScale(1)
}

// squaredWeights is the sum of the squares of the weights (not the biases),
// as they stand: the first layer's padding is zeros and adds nothing.
func (k *kernel) squaredWeights() float64 {
	sum := 0.0
	for _, w := range k.w {
		sum += floats.Dot(w, w)
	}
	return sum * k.ws * k.ws
}

func (k *kernel) setWeightScale(ws float64) {
	k.ws = ws
	if ws == 1 {
		k.table = &scale
		return
	}
	for i, v := range scale {
		k.scaled[i] = ws * v
	}
	k.table = &k.scaled
}

func (k *kernel) finite() bool {
	for l := range k.w {
		if !finite(k.w[l]) || !finite(k.b[l]) {
			return false
		}
	}
	return true
}

// activations holds one row per layer for each of up to rows examples.
// a[l] is rows×stride[l], row-major; row r of layer l is a[l][r*stride[l]:]
// and holds sizes[l+1] values (plus zero padding in layer 0).
type activations struct {
	a      [][]float64
	stride []int
}

func (k *kernel) newActivations(rows int) activations {
	var acts activations
	for l := 1; l < len(k.sizes); l++ {
		s := k.sizes[l]
		if l == 1 {
			s = k.h0
		}
		acts.a = append(acts.a, make([]float64, rows*s))
		acts.stride = append(acts.stride, s)
	}
	return acts
}

// row returns example r's values of weight layer l, n of them.
func (acts *activations) row(l, r, n int) []float64 {
	off := r * acts.stride[l]
	return acts.a[l][off : off+n]
}

// forward computes every layer's activations for example ex, stored in row r.
func (k *kernel) forward(data Examples, ex int, acts *activations, r int) {
	sizes := k.sizes
	z := acts.row(0, r, k.h0)
	copy(z, k.b[0])
	idx, val := data.Nonzero(ex)
	gather(z, k.w[0], idx, val, k.table)
	sigmoidInPlace(z[:sizes[1]])
	ws := k.ws
	for l := 1; l < len(k.w); l++ {
		in, out := sizes[l], sizes[l+1]
		prev := acts.row(l-1, r, in)
		a := acts.row(l, r, out)
		w, b := k.w[l], k.b[l]
		for i := range a {
			a[i] = b[i] + ws*dot(w[i*in:(i+1)*in], prev)
		}
		sigmoidInPlace(a)
	}
}

// output computes example ex's activations in row 0 of acts and returns its
// output layer's.
func (k *kernel) output(data Examples, ex int, acts *activations) []float64 {
	k.forward(data, ex, acts, 0)
	return acts.row(len(k.w)-1, 0, k.sizes[len(k.sizes)-1])
}

// argmax returns the index of the largest of out, the first if tied: the
// most active output neuron, the predicted class.
func argmax(out []float64) int {
	best := 0
	for i, v := range out {
		if v > out[best] {
			best = i
		}
	}
	return best
}

func sigmoidInPlace(z []float64) {
	for i, v := range z {
		z[i] = sigmoid(v)
	}
}

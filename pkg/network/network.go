// Package network is the numeric core of the service: fully connected
// feed-forward networks of sigmoid neurons, trained with mini-batch stochastic
// gradient descent on the quadratic cost, exactly as in Michael Nielsen's
// network.py, or optionally with network2.py's scaled initialisation,
// cross-entropy cost and L2 regularisation; batched, allocation-free in the
// hot loop, sparse in the first layer, and in bounded memory if asked.
//
// It knows nothing of HTTP, files or logging: it trains and evaluates, and
// reports each epoch through a callback.
package network

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// Network is a fully connected feed-forward network of sigmoid neurons.
//
// A Network is never modified after it is returned by this package (training
// works on its own copy and hands out new Networks), so it is safe for
// concurrent use by any number of readers.
type Network struct {
	sizes   []int
	weights []*mat.Dense    // weights[l] is sizes[l+1]×sizes[l]: row j holds neuron j's input weights
	biases  []*mat.VecDense // biases[l] has sizes[l+1] entries
}

// New returns a network with the given layer sizes (inputs first), its
// weights and biases drawn with rng as init says. As network.py does, it
// draws all biases first, then all weights, layer by layer, so the same rng
// state gives the same network (and InitScaled the same draws as
// InitNormal, the weights divided by √inputs). The sizes are checked by
// CheckSizes without limits: callers apply their own.
func New(sizes []int, init Init, rng *rand.Rand) (*Network, error) {
	if err := CheckSizes(sizes, 0, 0); err != nil {
		return nil, err
	}
	if !init.valid() {
		return nil, fmt.Errorf("network: unknown initialisation %d", int(init))
	}
	n := &Network{sizes: append([]int(nil), sizes...)}
	for l := 1; l < len(sizes); l++ {
		b := make([]float64, sizes[l])
		for i := range b {
			b[i] = rng.NormFloat64()
		}
		n.biases = append(n.biases, mat.NewVecDense(sizes[l], b))
	}
	for l := 1; l < len(sizes); l++ {
		// Dividing by exactly 1 keeps InitNormal's draws bit for bit.
		div := 1.0
		if init == InitScaled {
			div = math.Sqrt(float64(sizes[l-1]))
		}
		w := make([]float64, sizes[l]*sizes[l-1])
		for i := range w {
			w[i] = rng.NormFloat64() / div
		}
		n.weights = append(n.weights, mat.NewDense(sizes[l], sizes[l-1], w))
	}
	return n, nil
}

// FromParams builds a network from existing weights and biases, in the
// orientation New uses. The matrices are copied. It fails if any shape does
// not match sizes or any value is not finite.
func FromParams(sizes []int, weights []*mat.Dense, biases []*mat.VecDense) (*Network, error) {
	if err := CheckSizes(sizes, 0, 0); err != nil {
		return nil, err
	}
	if len(weights) != len(sizes)-1 || len(biases) != len(sizes)-1 {
		return nil, fmt.Errorf("network: %d layers need %d weight matrices and bias vectors, got %d and %d",
			len(sizes), len(sizes)-1, len(weights), len(biases))
	}
	n := &Network{sizes: append([]int(nil), sizes...)}
	for l := range weights {
		if weights[l] == nil || biases[l] == nil {
			return nil, fmt.Errorf("network: layer %d: missing weights or biases", l+1)
		}
		r, c := weights[l].Dims()
		if r != sizes[l+1] || c != sizes[l] {
			return nil, fmt.Errorf("network: layer %d: weights are %d×%d, want %d×%d", l+1, r, c, sizes[l+1], sizes[l])
		}
		if biases[l].Len() != sizes[l+1] {
			return nil, fmt.Errorf("network: layer %d: %d biases, want %d", l+1, biases[l].Len(), sizes[l+1])
		}
		w := mat.DenseCopyOf(weights[l])
		b := mat.VecDenseCopyOf(biases[l])
		if !finite(w.RawMatrix().Data) || !finite(b.RawVector().Data) {
			return nil, fmt.Errorf("network: layer %d: %w", l+1, ErrNotFinite)
		}
		n.weights = append(n.weights, w)
		n.biases = append(n.biases, b)
	}
	return n, nil
}

// ErrNotFinite reports a weight or bias that is NaN or infinite: training has
// diverged, or stored parameters are corrupt.
var ErrNotFinite = errors.New("weights or biases are not finite numbers")

// CheckBounded returns an error wrapping ErrNotFinite if some neuron's
// weights and bias are so large that its sum could overflow for inputs and
// activations in [0, 1]: the sum of their magnitudes exceeds half the
// largest float64. Such a network has finite weights, yet its outputs may
// be NaN (∞ − ∞), depending on the order a kernel sums in. A bounded
// network's sums never overflow, whatever the order.
func (n *Network) CheckBounded() error {
	for l, w := range n.weights {
		rows, _ := w.Dims()
		for j := range rows {
			sum := math.Abs(n.biases[l].AtVec(j))
			for _, x := range w.RawRowView(j) {
				sum += math.Abs(x)
			}
			if !(sum <= math.MaxFloat64/2) {
				return fmt.Errorf("network: neuron %d of layer %d: its weights and bias sum to %.3g in magnitude, more than %.3g: %w",
					j, l+1, sum, math.MaxFloat64/2, ErrNotFinite)
			}
		}
	}
	return nil
}

func finite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Sizes returns the number of neurons in each layer, inputs first.
func (n *Network) Sizes() []int { return append([]int(nil), n.sizes...) }

// NumLayers returns the number of weight layers (one less than len(Sizes())).
func (n *Network) NumLayers() int { return len(n.weights) }

// Weights returns layer l's weight matrix (l from 0, the first hidden
// layer): sizes[l+1] rows, one per neuron, of sizes[l] input weights.
// The matrix is shared: callers must not modify it.
func (n *Network) Weights(l int) *mat.Dense { return n.weights[l] }

// Biases returns layer l's bias vector. It is shared: callers must not
// modify it.
func (n *Network) Biases(l int) *mat.VecDense { return n.biases[l] }

// FeedForward returns the output layer's activations for a dense input of
// Sizes()[0] values, or an error wrapping ErrNotFinite if one is NaN.
func (n *Network) FeedForward(x []float64) ([]float64, error) {
	if len(x) != n.sizes[0] {
		return nil, fmt.Errorf("network: input has %d values, want %d", len(x), n.sizes[0])
	}
	a := mat.NewVecDense(len(x), append([]float64(nil), x...))
	for l, w := range n.weights {
		z := mat.NewVecDense(n.sizes[l+1], nil)
		z.MulVec(w, a)
		z.AddVec(z, n.biases[l])
		for i := range z.Len() {
			z.SetVec(i, sigmoid(z.AtVec(i)))
		}
		a = z
	}
	out := a.RawVector().Data
	if hasNaN(out) {
		return nil, fmt.Errorf("network: the outputs for this input are not numbers: %w", ErrNotFinite)
	}
	return out, nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

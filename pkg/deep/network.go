package deep

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/mnist-go/nnserver/pkg/network"
)

// Network is a layered network and its parameters. It is never modified
// after this package returns it (training works on its own copy and hands
// out new Networks), so it is safe for concurrent use.
type Network struct {
	layers []Layer
	shapes []Shape
	// w[i], b[i]: layer i's weights and biases, nil for a pool layer.
	// conv: w is [filters][channels][k][k], C order; dense and softmax:
	// [out][in], the input flattened in C order (channel, row, column).
	w, b [][]float64
}

// ErrNotFinite reports weights or biases that are NaN or infinite, or so
// large that a sum could overflow: training diverged, or stored parameters
// are corrupt. It is pkg/network's, so callers test for one error.
var ErrNotFinite = network.ErrNotFinite

// fanIn returns the number of inputs of one neuron of layer i.
func fanIn(l Layer, in Shape) int {
	if l.Kind == Conv {
		return in.Channels * l.Size * l.Size
	}
	return in.Len()
}

// inShape returns the shape of layer i's input.
func inShape(shapes []Shape, i int) Shape {
	if i == 0 {
		return inputShape
	}
	return shapes[i-1]
}

// paramShape returns the shape of layer i's weights (nil for a pool layer)
// and its number of biases.
func paramShape(l Layer, in Shape) ([]int, int) {
	switch l.Kind {
	case Conv:
		return []int{l.Filters, in.Channels, l.Size, l.Size}, l.Filters
	case Dense, Softmax:
		return []int{l.Size, in.Len()}, l.Size
	}
	return nil, 0
}

// New returns a network of these layers, checked by Plan without limits
// (callers apply their own), with weights and biases drawn from rng. As
// pkg/network does, it draws all biases first, layer by layer, then all
// weights: network.InitNormal draws every weight and bias from N(0, 1);
// network.InitScaled draws a layer's weights from N(0, 1/fan_in), fan_in
// being its inputs per neuron (channels·k·k for a conv layer), and the
// biases from N(0, 1).
func New(layers []Layer, init network.Init, rng *rand.Rand) (*Network, error) {
	shapes, err := Plan(layers, Limits{})
	if err != nil {
		return nil, err
	}
	if init != network.InitNormal && init != network.InitScaled {
		return nil, fmt.Errorf("deep: unknown initialisation %d", int(init))
	}
	if rng == nil {
		return nil, errors.New("deep: New needs a random number generator")
	}
	n := &Network{layers: append([]Layer(nil), layers...), shapes: shapes,
		w: make([][]float64, len(layers)), b: make([][]float64, len(layers))}
	for i, l := range layers {
		if _, nb := paramShape(l, inShape(shapes, i)); nb > 0 {
			n.b[i] = make([]float64, nb)
			for j := range n.b[i] {
				n.b[i][j] = rng.NormFloat64()
			}
		}
	}
	for i, l := range layers {
		ws, _ := paramShape(l, inShape(shapes, i))
		if ws == nil {
			continue
		}
		div := 1.0
		if init == network.InitScaled {
			div = math.Sqrt(float64(fanIn(l, inShape(shapes, i))))
		}
		n.w[i] = make([]float64, prod(ws))
		for j := range n.w[i] {
			n.w[i][j] = rng.NormFloat64() / div
		}
	}
	return n, nil
}

func prod(xs []int) int {
	p := 1
	for _, x := range xs {
		p *= x
	}
	return p
}

// FromParams builds a network of these layers from weights and biases, one
// of each per parameterised (non-pool) layer in order: conv weights shaped
// [filters][channels][k][k] in C order (as PyTorch and Theano store them;
// the layer computes PyTorch's cross-correlation, so Theano's conv2d
// filters, which it flips, are to be flipped first), dense and softmax
// weights [out][in]. The values are copied. It fails if the layers do not
// plan, if any length differs or any value is not finite.
func FromParams(layers []Layer, weights, biases [][]float64) (*Network, error) {
	shapes, err := Plan(layers, Limits{})
	if err != nil {
		return nil, err
	}
	n := &Network{layers: append([]Layer(nil), layers...), shapes: shapes,
		w: make([][]float64, len(layers)), b: make([][]float64, len(layers))}
	want := 0
	for _, l := range layers {
		if l.hasParams() {
			want++
		}
	}
	if len(weights) != want || len(biases) != want {
		return nil, fmt.Errorf("deep: %d parameterised layers need %d weight and bias arrays, got %d and %d", want, want, len(weights), len(biases))
	}
	p := 0
	for i, l := range layers {
		ws, nb := paramShape(l, inShape(shapes, i))
		if ws == nil {
			continue
		}
		w, b := weights[p], biases[p]
		if len(w) != prod(ws) {
			return nil, &LayerError{Index: i, Msg: fmt.Sprintf("(%s) needs %d weights %v, got %d", l, prod(ws), ws, len(w))}
		}
		if len(b) != nb {
			return nil, &LayerError{Index: i, Msg: fmt.Sprintf("(%s) needs %d biases, got %d", l, nb, len(b))}
		}
		if !finite(w) || !finite(b) {
			return nil, fmt.Errorf("deep: layers[%d] (%s): %w", i, l, ErrNotFinite)
		}
		n.w[i] = append([]float64(nil), w...)
		n.b[i] = append([]float64(nil), b...)
		p++
	}
	return n, nil
}

func finite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// Layers returns a copy of the network's layers.
func (n *Network) Layers() []Layer { return append([]Layer(nil), n.layers...) }

// Shapes returns a copy of each layer's output shape.
func (n *Network) Shapes() []Shape { return append([]Shape(nil), n.shapes...) }

// Sizes returns 784, then each layer's output length:
// [784 11520 2880 2560 640 100 10] for the example network of
// docs/DEEP.md.
func (n *Network) Sizes() []int {
	s := []int{inputShape.Len()}
	for _, sh := range n.shapes {
		s = append(s, sh.Len())
	}
	return s
}

// ParamCount returns the number of weights and biases.
func (n *Network) ParamCount() int {
	c := 0
	for i := range n.w {
		c += len(n.w[i]) + len(n.b[i])
	}
	return c
}

// Params returns copies of the weights and biases of each parameterised
// layer, as FromParams takes them, and the weights' shapes ([filters,
// channels, k, k] or [out, in]).
func (n *Network) Params() (weights, biases [][]float64, shapes [][]int) {
	for i, l := range n.layers {
		ws, _ := paramShape(l, inShape(n.shapes, i))
		if ws == nil {
			continue
		}
		weights = append(weights, append([]float64(nil), n.w[i]...))
		biases = append(biases, append([]float64(nil), n.b[i]...))
		shapes = append(shapes, ws)
	}
	return weights, biases, shapes
}

// CheckBounded returns an error wrapping ErrNotFinite if some neuron's
// weights and bias are so large that its weighted input could overflow a
// float32 (the engine's arithmetic) for inputs of magnitude at most 1 — or,
// after an unbounded activation (ReLU), at most the largest value the
// layers before it can produce. A bounded network's outputs are never NaN,
// whatever the order of the sums.
func (n *Network) CheckBounded() error {
	bound := 1.0 // the largest magnitude of the layer's inputs
	for i, l := range n.layers {
		if !l.hasParams() {
			continue
		}
		fan := fanIn(l, inShape(n.shapes, i))
		rows := len(n.b[i])
		worst := 0.0
		for j := range rows {
			sum := math.Abs(n.b[i][j])
			for _, x := range n.w[i][j*fan : (j+1)*fan] {
				sum += math.Abs(x) * bound
			}
			if !(sum <= math.MaxFloat32/4) {
				return fmt.Errorf("deep: neuron %d of layers[%d] (%s): its weighted input could reach %.3g in magnitude, more than %.3g: %w",
					j, i, l, sum, math.MaxFloat32/4, ErrNotFinite)
			}
			worst = max(worst, sum)
		}
		if l.Activation == ReLU {
			bound = worst
		} else {
			bound = 1
		}
	}
	return nil
}

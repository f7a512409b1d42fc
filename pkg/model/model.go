// Package model is what the service, the stores and the API see of a
// network, whichever engine runs it: a fully connected sigmoid network of
// pkg/network (made with layer_sizes) or a layered network of pkg/deep
// (made with layers: convolution, pooling, dense, softmax). Both engines'
// networks are Models as they are; the few things that differ by kind are
// functions here, so that nothing above the engines grows a second code
// path per kind.
package model

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Model is a network, immutable and safe for concurrent use: a
// *network.Network or a *deep.Network.
type Model interface {
	// Sizes returns the flattened size of the input and of every layer's
	// output: [784, 30, 10], or [784, 11520, 2880, 2560, 640, 100, 10] for
	// the conv network of docs/DEEP.md.
	Sizes() []int
	// FeedForward returns the 10 outputs for one image of 784 values in
	// [0, 1].
	FeedForward(x []float64) ([]float64, error)
	// Outputs returns the 10 outputs of every example, row-major.
	Outputs(data network.Examples) ([]float64, error)
	// Evaluate returns how many examples the network classifies correctly.
	Evaluate(data network.Examples) (int, error)
	// CheckBounded returns an error wrapping network.ErrNotFinite if a sum
	// could overflow.
	CheckBounded() error
}

var (
	_ Model = (*network.Network)(nil)
	_ Model = (*deep.Network)(nil)
)

// Arch is a network's architecture before the network exists: Sizes for
// a layer_sizes network, Layers (and Sizes, their flattened outputs) for a
// layers one.
type Arch struct {
	Sizes  []int
	Layers []deep.Layer // nil for a layer_sizes network
}

// ArchOf returns m's architecture.
func ArchOf(m Model) Arch { return Arch{Sizes: m.Sizes(), Layers: Layers(m)} }

// Layers returns m's layers, or nil for a layer_sizes network.
func Layers(m Model) []deep.Layer {
	if d, ok := m.(*deep.Network); ok {
		return d.Layers()
	}
	return nil
}

// ParamCount returns m's number of weights and biases.
func ParamCount(m Model) int {
	if d, ok := m.(*deep.Network); ok {
		return d.ParamCount()
	}
	return network.ParamCount(m.Sizes())
}

// ParamCount returns the number of weights and biases of a network of a,
// which must be valid.
func (a Arch) ParamCount() int {
	if a.Layers != nil {
		s, err := deep.Count(a.Layers)
		if err != nil {
			return 0
		}
		return s.Params
	}
	return network.ParamCount(a.Sizes)
}

// IsDeep reports whether a is a layers network.
func (a Arch) IsDeep() bool { return a.Layers != nil }

// OutputWeights returns the weights of m's output layer, one row per
// output (10) and one column per input of that layer: for a layers
// network, its last layer's (softmax or dense 10) inputs, the previous
// layer's output flattened in C order.
func OutputWeights(m Model) *mat.Dense {
	switch n := m.(type) {
	case *network.Network:
		return n.Weights(n.NumLayers() - 1)
	case *deep.Network:
		ws, _, shapes := n.Params()
		last := len(ws) - 1
		return mat.NewDense(shapes[last][0], shapes[last][1], ws[last])
	}
	return nil
}

// Runner runs many batches through one network, reusing its scratch where
// the engine has any.
type Runner interface {
	Outputs(data network.Examples) ([]float64, error)
}

// RunnerOf returns a Runner for m.
func RunnerOf(m Model) Runner {
	if n, ok := m.(*network.Network); ok {
		return n.Runner()
	}
	return m
}

// Kernels are the kernels of a network's first convolutional layer.
type Kernels struct {
	Layer                   int // its index in the layers
	Filters, Channels, Size int
	// Weights are [Filters][Channels][Size][Size], C order.
	Weights []float64
}

// FirstKernels returns the kernels of m's first conv layer; false if it
// has none (layer_sizes networks have none).
func FirstKernels(m Model) (Kernels, bool) {
	d, ok := m.(*deep.Network)
	if !ok {
		return Kernels{}, false
	}
	ws, _, shapes := d.Params()
	p := 0
	for i, l := range d.Layers() {
		switch l.Kind {
		case deep.Pool:
			continue
		case deep.Conv:
			s := shapes[p]
			return Kernels{Layer: i, Filters: s[0], Channels: s[1], Size: s[2], Weights: ws[p]}, true
		}
		p++
	}
	return Kernels{}, false
}

// DefaultEta is the default learning rate of a layers network: 0.03 when
// any layer's activation is ReLU (Nielsen's for his ReLU networks), else
// 0.1.
func DefaultEta(layers []deep.Layer) float64 {
	for _, l := range layers {
		if l.Activation == deep.ReLU {
			return 0.03
		}
	}
	return 0.1
}

// SoftmaxOutput reports whether a layers network's output is softmax
// (trained with the log-likelihood cost).
func SoftmaxOutput(layers []deep.Layer) bool {
	return len(layers) > 0 && layers[len(layers)-1].Kind == deep.Softmax
}

// String formats a layer list briefly, for logs.
func String(layers []deep.Layer) string {
	s := ""
	for i, l := range layers {
		if i > 0 {
			s += ", "
		}
		s += l.String()
		if l.Activation != "" {
			s += " " + string(l.Activation)
		}
		if l.Dropout > 0 {
			s += fmt.Sprintf(" dropout %g", l.Dropout)
		}
	}
	return s
}

// LayerJSON is a layer as the API and the model file write it: the list as
// created (type, filters for conv, size, activation for conv and dense,
// dropout for dense and softmax, 0 when none), and in answers each layer's
// output shape ([channels, height, width] for conv and pool, [size] for
// dense and softmax).
type LayerJSON struct {
	Type        string   `json:"type"`
	Filters     *int     `json:"filters,omitempty"`
	Size        int      `json:"size"`
	Activation  string   `json:"activation,omitempty"`
	Dropout     *float64 `json:"dropout,omitempty"`
	OutputShape []int    `json:"output_shape,omitempty"`
}

// ToJSON returns layers as LayerJSON; with shapes (Plan's), each with its
// output shape.
func ToJSON(layers []deep.Layer, shapes []deep.Shape) []LayerJSON {
	out := make([]LayerJSON, len(layers))
	for i, l := range layers {
		j := LayerJSON{Type: string(l.Kind), Size: l.Size, Activation: string(l.Activation)}
		switch l.Kind {
		case deep.Conv:
			f := l.Filters
			j.Filters = &f
		case deep.Dense, deep.Softmax:
			d := l.Dropout
			j.Dropout = &d
		}
		if shapes != nil {
			s := shapes[i]
			if l.Kind == deep.Conv || l.Kind == deep.Pool {
				j.OutputShape = []int{s.Channels, s.Height, s.Width}
			} else {
				j.OutputShape = []int{s.Len()}
			}
		}
		out[i] = j
	}
	return out
}

// FromJSON returns the layers LayerJSON describe, unchecked (deep.Plan
// checks them); output shapes are ignored.
func FromJSON(js []LayerJSON) []deep.Layer {
	out := make([]deep.Layer, len(js))
	for i, j := range js {
		l := deep.Layer{Kind: deep.Kind(j.Type), Size: j.Size, Activation: deep.Activation(j.Activation)}
		if j.Filters != nil {
			l.Filters = *j.Filters
		}
		if j.Dropout != nil {
			l.Dropout = *j.Dropout
		}
		out[i] = l
	}
	return out
}

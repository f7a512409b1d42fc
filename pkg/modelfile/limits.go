package modelfile

import (
	"errors"
	"fmt"

	"github.com/mnist-go/nnserver/pkg/deep"

	"github.com/mnist-go/nnserver/pkg/network"
)

// The file format's absolute caps. No Limits may exceed them, so they bound
// what any file can make a reader allocate, whatever the operator configured.
const (
	// MaxLayers is the most layers (inputs and output included) a saved
	// network may have.
	MaxLayers = 64
	// MaxParams is the most weights and biases, all layers together, a saved
	// network may have: 400 MB of float64.
	MaxParams = 50_000_000
	// MaxMACs is the most multiply-adds of one image's forward pass a saved
	// layers network may have (deep.Count's MACs).
	MaxMACs = 10_000_000_000
	// MaxActivations is the most values all layers of a saved layers
	// network output for one image (deep.Count's Activations): what its
	// evaluation scratch grows with.
	MaxActivations = 50_000_000
)

// Default limits: what the server accepts in requests unless configured
// otherwise.
const (
	DefaultMaxLayers = 10
	DefaultMaxParams = 5_000_000
	// DefaultMaxMACs and DefaultMaxActivations bound a layers network's
	// work and activations per image (the server's MAX_MACS_PER_IMAGE and
	// MAX_ACTIVATIONS_PER_IMAGE).
	DefaultMaxMACs        = 100_000_000
	DefaultMaxActivations = 1_000_000
)

// ErrTooLarge reports a network, or a file, larger than the limits allow. Every
// refusal on size wraps it, so that a caller can tell "too large" from
// "corrupt".
var ErrTooLarge = errors.New("too large")

// Limits are the operator's: the largest network the server accepts. A store
// applies them to everything it writes and to every file it reads, from the
// shapes a file declares, before allocating or inflating anything, so a file
// can never make the server hold a network it would have refused to create.
//
// A zero field means the default (DefaultMaxLayers, DefaultMaxParams); no
// field may exceed the format's caps (MaxLayers, MaxParams).
type Limits struct {
	// MaxLayers is the most layers, inputs and output included.
	MaxLayers int
	// MaxParams is the most weights and biases, all layers together.
	MaxParams int
	// MaxMACs and MaxActivations bound a layers network (format version
	// 3): multiply-adds and activations of one image's forward pass. For
	// such a network MaxLayers bounds the number of layers in its list.
	MaxMACs, MaxActivations int
}

// Resolve fills zero fields with the defaults and checks the result against
// the format's caps. Every model store (the directory, S3) uses it.
func (l Limits) Resolve() (Limits, error) {
	if l.MaxLayers == 0 {
		l.MaxLayers = DefaultMaxLayers
	}
	if l.MaxParams == 0 {
		l.MaxParams = DefaultMaxParams
	}
	if l.MaxMACs == 0 {
		l.MaxMACs = DefaultMaxMACs
	}
	if l.MaxActivations == 0 {
		l.MaxActivations = DefaultMaxActivations
	}
	if l.MaxMACs < 1 || l.MaxMACs > MaxMACs {
		return Limits{}, fmt.Errorf("limits: MaxMACs %d, want 1 to %d", l.MaxMACs, MaxMACs)
	}
	if l.MaxActivations < 1 || l.MaxActivations > MaxActivations {
		return Limits{}, fmt.Errorf("limits: MaxActivations %d, want 1 to %d", l.MaxActivations, MaxActivations)
	}
	if l.MaxLayers < 2 || l.MaxLayers > MaxLayers {
		return Limits{}, fmt.Errorf("limits: MaxLayers %d, want 2 to %d", l.MaxLayers, MaxLayers)
	}
	if l.MaxParams < 1 || l.MaxParams > MaxParams {
		return Limits{}, fmt.Errorf("limits: MaxParams %d, want 1 to %d", l.MaxParams, MaxParams)
	}
	return l, nil
}

// Check checks layer sizes against l (resolved): network.CheckSizes's rules
// with these limits, in the format's words; too many wraps ErrTooLarge.
func (l Limits) Check(sizes []int) error { return checkSizes(sizes, l) }

// checkSizes checks layer sizes against lim (already resolved). Each size is
// bounded before any product is taken, and the products are taken in int64,
// so no value overflows, even where int has 32 bits.
func checkSizes(sizes []int, lim Limits) error {
	err := network.CheckSizes(sizes, lim.MaxLayers, lim.MaxParams)
	se, ok := errors.AsType[*network.SizeError](err)
	if !ok {
		return err
	}
	switch se.Rule {
	case network.TooFewLayers:
		return fmt.Errorf("%d layers, want at least 2", len(sizes))
	case network.TooManyLayers:
		return fmt.Errorf("%w: %d layers, more than the limit of %d (MaxLayers)", ErrTooLarge, len(sizes), lim.MaxLayers)
	case network.BadLayerSize:
		if n := sizes[se.Layer]; n > se.Limit {
			return fmt.Errorf("%w: layer %d has %d neurons, more than the limit of %d weights and biases (MaxParams)",
				ErrTooLarge, se.Layer, n, lim.MaxParams)
		}
		return fmt.Errorf("layer %d has %d neurons, want at least 1", se.Layer, sizes[se.Layer])
	default:
		return fmt.Errorf("%w: layer sizes %v need %d weights and biases, more than the limit of %d (MaxParams)",
			ErrTooLarge, sizes, network.ParamCount(sizes), lim.MaxParams)
	}
}

// checkLayers checks a layers network's list against lim (resolved): the
// list's length against MaxLayers, then deep.Plan with MaxParams, MaxMACs
// and MaxActivations; a bound passed wraps ErrTooLarge. It returns the
// flattened sizes of the input and every layer's output.
func checkLayers(layers []deep.Layer, lim Limits) ([]int, error) {
	if len(layers) > lim.MaxLayers {
		return nil, fmt.Errorf("%w: %d layers, more than the limit of %d (MaxLayers)", ErrTooLarge, len(layers), lim.MaxLayers)
	}
	shapes, err := deep.Plan(layers, deep.Limits{MaxParams: lim.MaxParams, MaxMACs: lim.MaxMACs, MaxActivations: lim.MaxActivations})
	if err != nil {
		if le, ok := errors.AsType[*deep.LayerError](err); ok && le.TooLarge {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, err
	}
	sizes := []int{784}
	for _, s := range shapes {
		sizes = append(sizes, s.Len())
	}
	return sizes, nil
}

package network

import (
	"fmt"
	"math"

	"github.com/mnist-go/nnserver/internal/sat"
)

// SizeRule names the rule on layer sizes that a SizeError reports broken.
type SizeRule int

// The rules CheckSizes enforces, in the order it checks them.
const (
	// TooFewLayers: a network needs an input and an output layer.
	TooFewLayers SizeRule = iota + 1
	// TooManyLayers: more layers than the caller's maximum.
	TooManyLayers
	// BadLayerSize: a layer has fewer than 1 neuron, or more than the
	// caller's parameter maximum (a layer that large alone would exceed it).
	BadLayerSize
	// TooManyParams: the weights and biases together exceed the caller's
	// maximum, or the number an int can hold.
	TooManyParams
)

// SizeError reports layer sizes that break a rule of CheckSizes. It carries
// the rule and the numbers involved rather than wording for an end user, so
// that an API can phrase the rule in its own terms (its field names, its
// limits); its Error message names no such field.
type SizeError struct {
	Rule SizeRule
	// Layer is the index into Sizes of the offending layer for BadLayerSize,
	// and -1 for the other rules.
	Layer int
	// Limit is the bound that was broken: 2 (the least number of layers) for
	// TooFewLayers, the maximum number of layers for TooManyLayers, the
	// largest allowed layer for BadLayerSize (whose least is always 1) and
	// the maximum number of weights and biases for TooManyParams. Where the
	// caller set no maximum it is math.MaxInt: the bound that keeps counts
	// from overflowing.
	Limit int
	// Sizes are the layer sizes checked, inputs first (a copy).
	Sizes []int
}

func (e *SizeError) Error() string {
	switch e.Rule {
	case TooFewLayers:
		return fmt.Sprintf("network: %d layers, want at least %d (inputs and outputs)", len(e.Sizes), e.Limit)
	case TooManyLayers:
		return fmt.Sprintf("network: %d layers, want at most %d", len(e.Sizes), e.Limit)
	case BadLayerSize:
		if e.Limit == math.MaxInt {
			return fmt.Sprintf("network: layer %d has %d neurons, want at least 1", e.Layer, e.Sizes[e.Layer])
		}
		return fmt.Sprintf("network: layer %d has %d neurons, want 1 to %d", e.Layer, e.Sizes[e.Layer], e.Limit)
	case TooManyParams:
		if e.Limit == math.MaxInt {
			return fmt.Sprintf("network: layer sizes %v have more weights and biases than an int can count", e.Sizes)
		}
		return fmt.Sprintf("network: layer sizes %v have more than %d weights and biases", e.Sizes, e.Limit)
	}
	return fmt.Sprintf("network: layer sizes %v are invalid", e.Sizes)
}

// CheckSizes is the one place layer sizes are validated. It returns nil or a
// *SizeError for the first rule broken: at least 2 layers, at most maxLayers,
// every layer between 1 and maxParams neurons, and at most maxParams weights
// and biases in all (see ParamCount). maxLayers <= 0 and maxParams <= 0 mean
// no limit, except that the count of weights and biases must fit an int:
// every size is bounded before any product is taken, so no size, however
// large, makes it overflow.
func CheckSizes(sizes []int, maxLayers, maxParams int) error {
	fail := func(rule SizeRule, layer, limit int) error {
		return &SizeError{Rule: rule, Layer: layer, Limit: limit, Sizes: append([]int(nil), sizes...)}
	}
	if len(sizes) < 2 {
		return fail(TooFewLayers, -1, 2)
	}
	if maxLayers > 0 && len(sizes) > maxLayers {
		return fail(TooManyLayers, -1, maxLayers)
	}
	limit := math.MaxInt
	if maxParams > 0 {
		limit = maxParams
	}
	for i, s := range sizes {
		if s < 1 || s > limit {
			return fail(BadLayerSize, i, limit)
		}
	}
	// A saturated count, math.MaxInt, stands for any count too large for
	// an int, so it fails even where there is no limit.
	if n := ParamCount(sizes); n > limit || n == math.MaxInt {
		return fail(TooManyParams, -1, limit)
	}
	return nil
}

// ParamCount returns the number of weights and biases of a network with these
// layer sizes: Σ sizes[l]·(sizes[l-1]+1). If that does not fit an int it
// returns math.MaxInt, so a count compared with a limit never wraps around.
// Sizes below 1 give a meaningless count; CheckSizes refuses them.
func ParamCount(sizes []int) int {
	n := 0
	for l := 1; l < len(sizes); l++ {
		n = sat.Add(n, sat.Mul(sizes[l], sat.Add(sizes[l-1], 1)))
	}
	return n
}

package model

import (
	"context"
	"errors"
	"math/rand/v2"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Epoch reports one finished epoch of training, whichever the engine.
type Epoch struct {
	Epoch, Epochs                      int
	Correct, Total                     int
	Accuracy, Seconds                  float64
	TrainingCost                       float64
	ValidationCorrect, ValidationTotal int
	// Network is the snapshot after this epoch, never modified.
	Network Model
}

// TrainOptions are what only a layers network's training takes.
type TrainOptions struct {
	// Expand trains on the images and their four one-pixel shifts.
	Expand bool
}

// ErrExpand refuses Expand for a layer_sizes network.
var ErrExpand = errors.New("model: expand is for layers networks only")

// Train trains a copy of start with its engine's SGD: network.SGD for a
// layer_sizes network, deep.SGD for a layers one (p's fields mean the
// same; Lambda is network2's λ for the one and network3's for the other,
// Cost is ignored by a softmax output). Both are deterministic given rng
// and resume exactly with p.Done. onEpoch receives every epoch.
func Train(ctx context.Context, start Model, train, test network.Examples, p network.Params, o TrainOptions,
	rng *rand.Rand, onEpoch func(Epoch) error) error {
	switch n := start.(type) {
	case *deep.Network:
		dp := deep.Params{Epochs: p.Epochs, BatchSize: p.BatchSize, Eta: p.Eta, Lambda: p.Lambda, Cost: p.Cost,
			ScratchBytes: p.ScratchBytes, OnBatch: p.OnBatch, Done: p.Done, Expand: o.Expand, Validation: p.Validation}
		_, err := deep.SGD(ctx, n, train, test, dp, rng, func(e deep.Epoch) error {
			return onEpoch(Epoch{Epoch: e.Epoch, Epochs: e.Epochs, Correct: e.Correct, Total: e.Total, Accuracy: e.Accuracy,
				Seconds: e.Seconds, TrainingCost: e.TrainingCost, ValidationCorrect: e.ValidationCorrect,
				ValidationTotal: e.ValidationTotal, Network: e.Network})
		})
		return err
	case *network.Network:
		if o.Expand {
			return ErrExpand
		}
		_, err := network.SGD(ctx, n, train, test, p, rng, func(e network.Epoch) error {
			return onEpoch(Epoch{Epoch: e.Epoch, Epochs: e.Epochs, Correct: e.Correct, Total: e.Total, Accuracy: e.Accuracy,
				Seconds: e.Seconds, TrainingCost: e.TrainingCost, ValidationCorrect: e.ValidationCorrect,
				ValidationTotal: e.ValidationTotal, Network: e.Network})
		})
		return err
	}
	return errors.New("model: unknown kind of network")
}

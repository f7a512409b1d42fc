package service

import (
	"fmt"
	"math"

	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Limits protect the machine from requests that would exhaust it.
type Limits struct {
	MaxLayers       int     // layers, inputs and outputs included
	MaxParams       int     // weights and biases of one network
	MaxEpochs       int     // epochs of one training job
	MaxBatchSize    int     // mini-batch size
	MaxLearningRate float64 // learning rate
	MaxNetworks     int     // networks in memory and on disk together
	// MaxParamsInMemory bounds the weights and biases of the networks held in
	// memory together; past it, the least recently used idle networks are
	// unloaded (they stay on disk, listed as "saved", and load on next use).
	MaxParamsInMemory int
	MaxQueuedJobs     int // jobs waiting for a worker
}

// DefaultLimits returns the limits used unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxLayers:         10,
		MaxParams:         5_000_000,
		MaxEpochs:         1000,
		MaxBatchSize:      mnist.TrainSize,
		MaxLearningRate:   1000,
		MaxNetworks:       100,
		MaxParamsInMemory: 25_000_000, // 200 MB of float64
		MaxQueuedJobs:     100,
	}
}

// Architecture is a validated list of layer sizes: 784 inputs, 10 outputs,
// within the limits.
type Architecture []int

// DefaultArchitecture is used when a create request names none.
func DefaultArchitecture() Architecture { return Architecture{784, 30, 10} }

// NewArchitecture validates layer sizes against l.
func (l Limits) NewArchitecture(sizes []int) (Architecture, error) {
	switch {
	case len(sizes) < 2:
		return nil, Errorf(Invalid, "layer_sizes must list at least 2 layers (784 inputs, 10 outputs), got %d", len(sizes))
	case len(sizes) > l.MaxLayers:
		return nil, Errorf(Invalid, "layer_sizes may list at most %d layers, got %d", l.MaxLayers, len(sizes))
	case sizes[0] != mnist.Pixels:
		return nil, Errorf(Invalid, "layer_sizes must start with %d (one input per MNIST pixel), got %d", mnist.Pixels, sizes[0])
	case sizes[len(sizes)-1] != mnist.Classes:
		return nil, Errorf(Invalid, "layer_sizes must end with %d (one output per digit), got %d", mnist.Classes, sizes[len(sizes)-1])
	}
	for i, s := range sizes {
		if s < 1 || s > l.MaxParams {
			return nil, Errorf(Invalid, "layer_sizes[%d] must be an integer between 1 and %d, got %d", i, l.MaxParams, s)
		}
		if i > 0 && paramCount(sizes[:i+1]) > l.MaxParams {
			return nil, Errorf(Invalid, "layer_sizes %v would need more than %d weights and biases", sizes, l.MaxParams)
		}
	}
	return Architecture(append([]int(nil), sizes...)), nil
}

// paramCount returns the weights and biases of a network of these sizes,
// each at least 1.
func paramCount(sizes []int) int {
	n := 0
	for i := 1; i < len(sizes); i++ {
		n += sizes[i] * (sizes[i-1] + 1)
	}
	return n
}

// TrainParams are validated training hyper-parameters.
type TrainParams struct {
	Epochs       int
	MiniBatch    int
	LearningRate float64
}

// DefaultTrainParams are used for fields a train request leaves out.
func DefaultTrainParams() TrainParams {
	return TrainParams{Epochs: 5, MiniBatch: 10, LearningRate: 3.0}
}

// Request fields with rules of their own.
const (
	FieldLayerSizes   = "layer_sizes"
	FieldEpochs       = "epochs"
	FieldMiniBatch    = "mini_batch_size"
	FieldLearningRate = "learning_rate"
)

// FieldError returns the error for a request field that breaks its rule,
// naming the field and the rule. The API uses it for values of the wrong
// JSON type, so that every message about a field reads the same.
func (l Limits) FieldError(field string) *Error {
	switch field {
	case FieldEpochs:
		return Errorf(Invalid, "epochs must be an integer between 1 and %d", l.MaxEpochs)
	case FieldMiniBatch:
		return Errorf(Invalid, "mini_batch_size must be an integer between 1 and %d", l.MaxBatchSize)
	case FieldLearningRate:
		return Errorf(Invalid, "learning_rate must be a number greater than 0 and at most %g", l.MaxLearningRate)
	case FieldLayerSizes:
		return Errorf(Invalid, "layer_sizes must be a list of integers such as [784, 30, 10]")
	}
	return Errorf(Invalid, "%s is not valid", field)
}

// NewTrainParams validates hyper-parameters against l.
func (l Limits) NewTrainParams(epochs, miniBatch int, eta float64) (TrainParams, error) {
	if epochs < 1 || epochs > l.MaxEpochs {
		return TrainParams{}, l.FieldError(FieldEpochs)
	}
	if miniBatch < 1 || miniBatch > l.MaxBatchSize {
		return TrainParams{}, l.FieldError(FieldMiniBatch)
	}
	if math.IsNaN(eta) || eta <= 0 || eta > l.MaxLearningRate {
		return TrainParams{}, l.FieldError(FieldLearningRate)
	}
	return TrainParams{Epochs: epochs, MiniBatch: miniBatch, LearningRate: eta}, nil
}

func (p TrainParams) network() network.Params {
	return network.Params{Epochs: p.Epochs, BatchSize: p.MiniBatch, Eta: p.LearningRate}
}

func (p TrainParams) String() string {
	return fmt.Sprintf("epochs=%d mini_batch_size=%d learning_rate=%g", p.Epochs, p.MiniBatch, p.LearningRate)
}

package service

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// Limits protect the machine from requests that would exhaust it. Each
// bounds something a client controls; docs/LIMITS.md says what each costs.
type Limits struct {
	MaxLayers int // layers, inputs and outputs included; for a layers network, the layers listed
	MaxParams int // weights and biases of one network
	// MaxMACsPerImage and MaxActivationsPerImage bound a layers network:
	// the multiply-adds of one image's forward pass and the values all its
	// layers output for one image (deep.Count's).
	MaxMACsPerImage        int
	MaxActivationsPerImage int
	MaxOutputFanIn         int     // neurons of the layer before the output: bounds output_weights in examples
	MaxEpochs              int     // epochs of one training job
	MaxBatchSize           int     // mini-batch size
	MaxLearningRate        float64 // learning rate
	MaxLambda              float64 // L2 regularisation
	MaxNetworks            int     // networks in memory and on disk together
	// MaxParamsInMemory bounds the weights and biases of the networks held in
	// memory together; past it, the least recently used idle networks are
	// unloaded (they stay on disk, listed as "saved", and load on next use).
	MaxParamsInMemory int
	MaxQueuedJobs     int // jobs waiting for a worker
	// MaxQueuedJobsPerClient bounds the jobs waiting that one client address
	// asked for, so that one client cannot fill the queue; 0: no bound.
	MaxQueuedJobsPerClient int
	// JobScratchBytes bounds the scratch memory of one training job's
	// mini-batch; larger mini-batches are processed in chunks (same maths).
	JobScratchBytes int
	// MaxFinishedJobs and JobRetention bound the finished jobs kept for
	// GET /api/training/{id}: a finished job is forgotten JobRetention after
	// it ended, or sooner once MaxFinishedJobs jobs have finished after it.
	MaxFinishedJobs int
	JobRetention    time.Duration
	// MaxAnalyses bounds the examples and evaluations computed at once for
	// network versions not seen yet (each classifies the 10,000 test
	// images); past it, requests get 503 with Retry-After.
	MaxAnalyses int
	// SnapshotsKept is how many of a network's latest epochs keep a
	// snapshot of its weights, besides its best epoch by validation
	// accuracy (and, while a job trains it, the job's best): at most
	// SnapshotsKept+2 snapshots a network. 0: DefaultSnapshotsKept.
	SnapshotsKept int
}

// DefaultSnapshotsKept is SnapshotsKept unless configured otherwise;
// MaxSnapshotsKept is the most it may be.
const (
	DefaultSnapshotsKept = 5
	MaxSnapshotsKept     = 1000
)

// snapshotsKept is l.SnapshotsKept, or its default.
func (l Limits) snapshotsKept() int {
	if l.SnapshotsKept <= 0 {
		return DefaultSnapshotsKept
	}
	return l.SnapshotsKept
}

// DefaultLimits returns the limits used unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxLayers:              modelfile.DefaultMaxLayers, // the format's defaults: one home for both
		MaxParams:              modelfile.DefaultMaxParams,
		MaxMACsPerImage:        modelfile.DefaultMaxMACs,
		MaxActivationsPerImage: modelfile.DefaultMaxActivations,
		MaxOutputFanIn:         20_000,
		MaxEpochs:              1000,
		MaxBatchSize:           mnist.TrainSize,
		MaxLearningRate:        1000,
		MaxLambda:              1000,
		MaxNetworks:            100,
		MaxParamsInMemory:      25_000_000, // 200 MB of float64
		MaxQueuedJobs:          100,
		MaxQueuedJobsPerClient: 50,
		JobScratchBytes:        32 << 20,
		MaxFinishedJobs:        10_000,
		JobRetention:           24 * time.Hour,
		MaxAnalyses:            2,
		SnapshotsKept:          DefaultSnapshotsKept,
	}
}

// Architecture is a validated list of layer sizes: 784 inputs, 10 outputs,
// within the limits.
type Architecture []int

// DefaultArchitecture is used when a create request names none.
func DefaultArchitecture() Architecture { return Architecture{784, 30, 10} }

// NewArchitecture validates layer sizes against l: network.CheckSizes's
// rules with the operator's limits, then what this service needs (MNIST's
// 784 inputs and 10 outputs, and a bounded fan-in to the output layer). It
// is the one check for requests and for files read back alike.
func (l Limits) NewArchitecture(sizes []int) (Architecture, error) {
	if err := network.CheckSizes(sizes, l.MaxLayers, l.MaxParams); err != nil {
		se, ok := errors.AsType[*network.SizeError](err)
		if !ok {
			return nil, &Error{Code: Invalid, Message: "layer_sizes are invalid", Err: err}
		}
		switch se.Rule {
		case network.TooFewLayers:
			return nil, Errorf(Invalid, "layer_sizes must list at least 2 layers (784 inputs, 10 outputs), got %d", len(sizes))
		case network.TooManyLayers:
			return nil, l.TooManyLayers(len(sizes))
		case network.BadLayerSize:
			return nil, Errorf(Invalid, "layer_sizes[%d] must be an integer between 1 and %d, got %d", se.Layer, l.MaxParams, sizes[se.Layer])
		default:
			return nil, Errorf(Invalid, "layer_sizes %v would need more than %d weights and biases", sizes, l.MaxParams)
		}
	}
	switch {
	case sizes[0] != mnist.Pixels:
		return nil, Errorf(Invalid, "layer_sizes must start with %d (one input per MNIST pixel), got %d", mnist.Pixels, sizes[0])
	case sizes[len(sizes)-1] != mnist.Classes:
		return nil, Errorf(Invalid, "layer_sizes must end with %d (one output per digit), got %d", mnist.Classes, sizes[len(sizes)-1])
	}
	if fanIn := sizes[len(sizes)-2]; fanIn > l.MaxOutputFanIn {
		return nil, Errorf(Invalid, "layer_sizes[%d] feeds the output layer and may have at most %d neurons, got %d",
			len(sizes)-2, l.MaxOutputFanIn, fanIn)
	}
	return Architecture(append([]int(nil), sizes...)), nil
}

// NewLayers validates a layers network's list against l: at most
// MaxLayers layers, deep.Plan's rules (the message names the layer and the
// shapes) within MaxParams, MaxMACsPerImage and MaxActivationsPerImage. It
// is the one check for requests and for files read back alike, and returns
// the network's architecture.
func (l Limits) NewLayers(layers []deep.Layer) (model.Arch, error) {
	if len(layers) == 0 {
		return model.Arch{}, Errorf(Invalid, "layers must list at least one layer")
	}
	if len(layers) > l.MaxLayers {
		return model.Arch{}, Errorf(Invalid, "layers may list at most %d layers, got %d", l.MaxLayers, len(layers))
	}
	shapes, err := deep.Plan(layers, deep.Limits{MaxParams: l.MaxParams, MaxMACs: l.MaxMACsPerImage, MaxActivations: l.MaxActivationsPerImage})
	if err != nil {
		return model.Arch{}, &Error{Code: Invalid, Message: err.Error(), Err: err}
	}
	sizes := []int{mnist.Pixels}
	for _, sh := range shapes {
		sizes = append(sizes, sh.Len())
	}
	return model.Arch{Sizes: sizes, Layers: slices.Clone(layers)}, nil
}

// CheckArch checks a network's architecture, of either kind, against l:
// NewLayers or NewArchitecture.
func (l Limits) CheckArch(a model.Arch) error {
	if a.Layers != nil {
		_, err := l.NewLayers(a.Layers)
		return err
	}
	_, err := l.NewArchitecture(a.Sizes)
	return err
}

// TooManyLayers is the error for layer_sizes listing n layers, more than
// MaxLayers.
func (l Limits) TooManyLayers(n int) error {
	return Errorf(Invalid, "layer_sizes may list at most %d layers, got %d", l.MaxLayers, n)
}

// Init names how a new network's weights are drawn.
type Init string

// Initialisations.
const (
	InitNormal Init = "normal" // N(0, 1), as network.py
	InitScaled Init = "scaled" // weights N(0, 1/n_in), biases N(0, 1), as network2.py
)

// Cost names the cost function a job minimises.
type Cost string

// Costs.
const (
	CostQuadratic    Cost = "quadratic"     // as network.py
	CostCrossEntropy Cost = "cross_entropy" // as network2.py
	// CostLogLikelihood is a softmax output's, and only its (network3.py).
	CostLogLikelihood Cost = "log_likelihood"
)

// CreateParams are validated options for a new network.
type CreateParams struct {
	Arch Architecture
	// Layers, if not nil, makes a layers network instead (Arch is then
	// ignored); it must come from NewLayers.
	Layers []deep.Layer
	Init   Init
	Seed   *uint64 // nil: drawn at random (and reported)
	// Name and Notes: what people call the network and note of it; ""
	// when none (CheckName, CheckNotes).
	Name, Notes string
}

// DefaultCreateParams are used for fields a create request leaves out.
func DefaultCreateParams() CreateParams {
	return CreateParams{Arch: DefaultArchitecture(), Init: InitNormal}
}

// TrainParams are validated training hyper-parameters.
type TrainParams struct {
	Epochs       int
	MiniBatch    int
	LearningRate float64
	Cost         Cost
	Lambda       float64
	Seed         *uint64 // nil: drawn at random (and reported)
	// StopAfterNoImprovement, when not 0, stops the job once its
	// validation accuracy has not improved for that many epochs (network2's
	// early stopping); 1 to MaxEpochs.
	StopAfterNoImprovement int
	// RestoreBest: when the job ends (all its epochs, or stopped early),
	// the network's weights become those of the job's best epoch by
	// validation accuracy (a restore, Service.Restore).
	RestoreBest bool
	// Expand trains a layers network on the training images and their
	// four one-pixel shifts (deep.Params.Expand).
	Expand bool
}

// DefaultTrainParams are used for fields a train request leaves out.
func DefaultTrainParams() TrainParams {
	return TrainParams{Epochs: 5, MiniBatch: 10, LearningRate: 3.0, Cost: CostQuadratic}
}

// Request fields with rules of their own.
const (
	FieldLayerSizes   = "layer_sizes"
	FieldLayers       = "layers"
	FieldExpand       = "expand"
	FieldEpochs       = "epochs"
	FieldMiniBatch    = "mini_batch_size"
	FieldLearningRate = "learning_rate"
	FieldInit         = "init"
	FieldCost         = "cost"
	FieldLambda       = "lambda"
	FieldSeed         = "seed"
	FieldName         = "name"
	FieldNotes        = "notes"
	FieldStopAfter    = "stop_after_no_improvement"
	FieldRestoreBest  = "restore_best"
	FieldEpoch        = "epoch"
	FieldBest         = "best"
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
	case FieldInit:
		return Errorf(Invalid, "init must be %q or %q", InitNormal, InitScaled)
	case FieldCost:
		return Errorf(Invalid, "cost must be %q, %q or (for a softmax output) %q", CostQuadratic, CostCrossEntropy, CostLogLikelihood)
	case FieldLambda:
		return Errorf(Invalid, "lambda must be a number between 0 and %g", l.MaxLambda)
	case FieldSeed:
		return Errorf(Invalid, "seed must be an integer between 0 and %d", MaxSeed)
	case FieldName:
		return Errorf(Invalid, "name must be a string of at most %d characters on one line", modelfile.MaxNameLength)
	case FieldNotes:
		return Errorf(Invalid, "notes must be a string of at most %d characters", modelfile.MaxNotesLength)
	case FieldStopAfter:
		return Errorf(Invalid, "stop_after_no_improvement must be an integer between 1 and %d", l.MaxEpochs)
	case FieldRestoreBest:
		return Errorf(Invalid, "restore_best must be true or false")
	case FieldExpand:
		return Errorf(Invalid, "expand must be true or false")
	case FieldLayers:
		return Errorf(Invalid, "layers must be a list of at most %d layer objects such as {\"type\": \"conv\", \"filters\": 20, \"size\": 5, \"activation\": \"relu\"}", l.MaxLayers)
	case FieldEpoch:
		return Errorf(Invalid, "epoch must be an integer between 1 and %d", modelfile.MaxHistory)
	case FieldBest:
		return Errorf(Invalid, "best must be true")
	}
	return Errorf(Invalid, "%s is not valid", field)
}

// MaxSeed is the largest seed accepted: JSON numbers are exact integers up
// to 2^53 in JavaScript, so a seed a browser shows is the seed it sends.
const MaxSeed = 1<<53 - 1

// ValidateTrain checks training parameters against l. Service.Train
// takes a LearningRate of 0 and a Cost of "" for the network's defaults,
// which ForArch fills before this check.
func (l Limits) ValidateTrain(p TrainParams) error {
	switch {
	case p.Epochs < 1 || p.Epochs > l.MaxEpochs:
		return l.FieldError(FieldEpochs)
	case p.MiniBatch < 1 || p.MiniBatch > l.MaxBatchSize:
		return l.FieldError(FieldMiniBatch)
	case math.IsNaN(p.LearningRate) || p.LearningRate <= 0 || p.LearningRate > l.MaxLearningRate:
		return l.FieldError(FieldLearningRate)
	case p.Cost != CostQuadratic && p.Cost != CostCrossEntropy && p.Cost != CostLogLikelihood:
		return l.FieldError(FieldCost)
	case math.IsNaN(p.Lambda) || p.Lambda < 0 || p.Lambda > l.MaxLambda:
		return l.FieldError(FieldLambda)
	case p.Seed != nil && *p.Seed > MaxSeed:
		return l.FieldError(FieldSeed)
	case p.StopAfterNoImprovement < 0 || p.StopAfterNoImprovement > l.MaxEpochs:
		return l.FieldError(FieldStopAfter)
	}
	return nil
}

// CheckName checks a network's name: at most modelfile.MaxNameLength
// characters of UTF-8 on one line.
func (l Limits) CheckName(name string) error {
	if modelfile.CheckName(name) != nil {
		return l.FieldError(FieldName)
	}
	return nil
}

// CheckNotes checks a network's notes: at most modelfile.MaxNotesLength
// characters of UTF-8, no control characters but line breaks and tabs.
func (l Limits) CheckNotes(notes string) error {
	if modelfile.CheckNotes(notes) != nil {
		return l.FieldError(FieldNotes)
	}
	return nil
}

// ValidateCreate checks p against l; p.Arch must come from NewArchitecture.
func (l Limits) ValidateCreate(p CreateParams) error {
	switch {
	case p.Init != InitNormal && p.Init != InitScaled:
		return l.FieldError(FieldInit)
	case p.Seed != nil && *p.Seed > MaxSeed:
		return l.FieldError(FieldSeed)
	case len(p.Arch) == 0 && p.Layers == nil:
		return l.FieldError(FieldLayerSizes)
	}
	if err := l.CheckName(p.Name); err != nil {
		return err
	}
	return l.CheckNotes(p.Notes)
}

// network returns the numeric core's parameters for p, with the scratch
// memory bound and a callback after every mini-batch (nil: none).
func (p TrainParams) network(scratch int, onBatch func(batch, batches int)) network.Params {
	cost := network.Quadratic
	if p.Cost == CostCrossEntropy {
		cost = network.CrossEntropy
	}
	return network.Params{Epochs: p.Epochs, BatchSize: p.MiniBatch, Eta: p.LearningRate, Cost: cost, Lambda: p.Lambda,
		ScratchBytes: scratch, OnBatch: onBatch}
}

// deep returns pkg/deep's parameters for p.
func (p TrainParams) deep(scratch int, onBatch func(batch, batches int), validation network.Examples) deep.Params {
	cost := network.Quadratic
	if p.Cost == CostCrossEntropy {
		cost = network.CrossEntropy
	}
	return deep.Params{Epochs: p.Epochs, BatchSize: p.MiniBatch, Eta: p.LearningRate, Cost: cost, Lambda: p.Lambda,
		ScratchBytes: scratch, OnBatch: onBatch, Expand: p.Expand, Validation: validation}
}

// WithDefaults is p with a layer_sizes network's defaults where it leaves
// the network's to ForArch: for checks that come before the network is
// known.
func (p TrainParams) WithDefaults() TrainParams {
	def := DefaultTrainParams()
	if p.LearningRate == 0 {
		p.LearningRate = def.LearningRate
	}
	if p.Cost == "" {
		p.Cost = def.Cost
	}
	return p
}

// ForArch fills what p leaves to the network's kind and checks p against
// it. A LearningRate of 0 and a Cost of "" mean "not given": a layer_sizes
// network then trains at DefaultTrainParams' rate with the quadratic cost;
// a layers network at model.DefaultEta (0.03 with a ReLU layer, else 0.1),
// a softmax output always with the log-likelihood cost (quadratic and
// cross_entropy are refused for it). expand and log_likelihood are for
// layers networks only.
func (p TrainParams) ForArch(a model.Arch) (TrainParams, error) {
	def := DefaultTrainParams()
	if a.Layers == nil {
		switch {
		case p.Expand:
			return p, Errorf(Invalid, "expand is for networks made with layers")
		case p.Cost == CostLogLikelihood:
			return p, Errorf(Invalid, "cost %q is for networks with a softmax output", CostLogLikelihood)
		}
		if p.LearningRate == 0 {
			p.LearningRate = def.LearningRate
		}
		if p.Cost == "" {
			p.Cost = def.Cost
		}
		return p, nil
	}
	if p.LearningRate == 0 {
		p.LearningRate = model.DefaultEta(a.Layers)
	}
	switch {
	case model.SoftmaxOutput(a.Layers):
		if p.Cost != "" && p.Cost != CostLogLikelihood {
			return p, Errorf(Invalid, "a softmax output trains with the log-likelihood cost: cost must be %q or left out, got %q", CostLogLikelihood, p.Cost)
		}
		p.Cost = CostLogLikelihood
	case p.Cost == CostLogLikelihood:
		return p, Errorf(Invalid, "cost %q is for networks with a softmax output", CostLogLikelihood)
	case p.Cost == "":
		p.Cost = def.Cost
	}
	return p, nil
}

func (i Init) network() network.Init {
	if i == InitScaled {
		return network.InitScaled
	}
	return network.InitNormal
}

func (p TrainParams) String() string {
	return fmt.Sprintf("epochs=%d mini_batch_size=%d learning_rate=%g cost=%s lambda=%g stop_after_no_improvement=%d restore_best=%t expand=%t",
		p.Epochs, p.MiniBatch, p.LearningRate, p.Cost, p.Lambda, p.StopAfterNoImprovement, p.RestoreBest, p.Expand)
}

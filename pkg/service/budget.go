package service

import (
	"context"
	"runtime"

	"github.com/mnist-go/nnserver/pkg/budget"
	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/mnist"
	"github.com/mnist-go/nnserver/pkg/model"
	"github.com/mnist-go/nnserver/pkg/modelfile"
	"github.com/mnist-go/nnserver/pkg/network"
)

// The service's work reserves from the process's memory budget (Config.
// Budget) what it will allocate beyond the networks held in memory (which
// MaxParamsInMemory bounds): a training job, an analysis, running a
// network on one input, a load, an import. Each estimate below is an upper
// bound of the heap that work allocates, measured by TestBudgetEstimates
// on the largest networks of each shape.

// slack covers the fixed allocations of any of these (slice headers,
// closures, small buffers).
const slack = 64 << 10

// jobBytes bounds a training job: its Trainer, the snapshot it makes after
// each epoch (the one before it is the network's state, counted under
// MaxParamsInMemory until the new one replaces it), the shuffle order, and
// the evaluation after each epoch (one example's activations per evaluating
// goroutine). For a layers network: deep.TrainerBytes (parameters, the
// two parts' scratch within JobScratchBytes, gradient sums, evaluation
// scratch), the snapshot, and the shuffle order (×5 with expand).
func jobBytes(a model.Arch, p network.Params, expand bool) int64 {
	params := int64(a.ParamCount())
	if a.Layers != nil {
		order := int64(mnist.TrainSize)
		if expand {
			order *= 5
		}
		tb := deep.TrainerBytes(a.Layers, deep.Params{BatchSize: p.BatchSize, Eta: p.Eta, ScratchBytes: p.ScratchBytes})
		return int64(tb) + 8*params + 4*order + slack
	}
	sizes := a.Sizes
	return int64(network.TrainerBytes(sizes, p)) + 8*params + 4*int64(mnist.TrainSize) +
		int64(runtime.GOMAXPROCS(0))*activationBytes(sizes) + slack
}

// activationBytes is one example's activations through a network.
func activationBytes(sizes []int) int64 {
	n := int64(0)
	for _, s := range sizes[1:] {
		n += 8 * int64(s+3) // the first layer is padded to 4
	}
	return n
}

// kernelBytes is a copy of a network's weights and biases in the kernel's
// layout (the first layer transposed and padded to 4 neurons).
func kernelBytes(sizes []int) int64 {
	if len(sizes) < 2 {
		return 0
	}
	h0 := int64(sizes[1]+3) &^ 3
	n := 8 * (int64(sizes[0])*h0 + h0)
	for l := 2; l < len(sizes); l++ {
		n += 8 * int64(sizes[l]) * int64(sizes[l-1]+1)
	}
	return n
}

// deepRunBytes bounds running a layers network on rows examples at a time
// on each of goroutines goroutines: the float32 copy of its parameters
// (the engine) and each goroutine's scratch (images, every layer's output,
// im2col matrices, pooling positions), each buffer rounded up to a page.
func deepRunBytes(layers []deep.Layer, rows, goroutines int) int64 {
	shapes, err := deep.Plan(layers, deep.Limits{})
	if err != nil {
		return 0
	}
	st, _ := deep.Count(layers)
	per := int64(784 + 1)
	in := deep.Shape{Channels: 1, Height: 28, Width: 28}
	for i, l := range layers {
		out := int64(shapes[i].Len())
		per += 2 * out // output; pool positions
		switch l.Kind {
		case deep.Conv:
			per += int64(in.Channels*l.Size*l.Size) * int64(shapes[i].Height*shapes[i].Width)
		case deep.Dense, deep.Softmax:
			per += int64(in.Len())
		}
		in = shapes[i]
	}
	scratch := 4*int64(rows)*per + int64(4*len(layers)+2)*(8<<10+16)
	return 2*4*int64(st.Params) + int64(goroutines)*scratch + slack
}

// analysisBytes bounds an analysis: a kernel copy of the weights for each
// block of analysisBlock test images, their outputs, one example's
// activations per goroutine, and the predictions and confidences kept.
func analysisBytes(a model.Arch) int64 {
	sizes := a.Sizes
	out := int64(sizes[len(sizes)-1])
	if a.Layers != nil {
		return deepRunBytes(a.Layers, deep.EvalChunk(a.Layers), runtime.GOMAXPROCS(0)) + 8*analysisBlock*out + 5*int64(mnist.TestSize) + slack
	}
	return kernelBytes(sizes) + 8*analysisBlock*out + int64(runtime.GOMAXPROCS(0))*activationBytes(sizes) +
		5*int64(mnist.TestSize) + slack
}

// runBytes bounds running a network on one input (FeedForward): two
// vectors per layer and the input.
func runBytes(a model.Arch) int64 {
	if a.Layers != nil {
		return deepRunBytes(a.Layers, 1, 1)
	}
	n := int64(0)
	for _, s := range a.Sizes {
		n += 2 * 8 * int64(s)
	}
	return n + slack
}

// historyRecordBytes bounds one history record decoded from JSON: the
// record (about 180 bytes, its slice grown as it is read), its job id and
// cost strings, and the JSON read (measured under the race detector: 1,130
// bytes a record).
const historyRecordBytes = 1280

// loadBytes bounds reading a saved network: its arrays as read and the
// network made of them, and its history.
func loadBytes(a model.Arch, records int) int64 {
	return 2*8*int64(a.ParamCount()) + historyRecordBytes*int64(records) + 1<<20
}

// importBytes bounds an import beyond the file itself (which the API has
// reserved): the arrays, the network, the kernel copy that measures its
// accuracy and the history.
func importBytes(shape modelfile.ImportShape) int64 {
	a := model.Arch{Sizes: shape.Sizes, Layers: shape.Layers}
	return loadBytes(a, shape.HistoryRecords) + analysisBytes(a)
}

// reserve takes n bytes of the budget for a request, waiting briefly.
func (s *Service) reserve(ctx context.Context, n int64) (*budget.Hold, error) {
	h, err := s.budget.Reserve(ctx, n)
	return h, memoryError(ctx, err)
}

// wideRun is the size of network (weights and biases) from which running it
// on one input is heavy work, taking a CPU slot: about a millisecond of
// arithmetic.
const wideRun = 1_000_000

// takeCPU takes a slot of the CPU budget for heavy work, waiting briefly.
func (s *Service) takeCPU(ctx context.Context) (release func(), err error) {
	release, err = s.cpu.Take(ctx)
	return release, memoryError(ctx, err)
}

// takeCPUFor takes a CPU slot to run a network of this many parameters on
// one input if it is wide, else nothing.
func (s *Service) takeCPUFor(ctx context.Context, params int) (release func(), err error) {
	if params < wideRun {
		return func() {}, nil
	}
	return s.takeCPU(ctx)
}

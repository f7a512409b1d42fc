package deep

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkStep times one mini-batch step of the example network (batch
// 10, dropout, L2) on MNIST images: an epoch is 5,000 of them.
func BenchmarkStep(b *testing.B) { benchmarkStep(b, exampleLayers) }

// BenchmarkStepSigmoid and BenchmarkStepTanh time a mini-batch of the
// example network with every activation sigmoid or tanh (Nielsen's first
// chapter 6 networks), without dropout.
func BenchmarkStepSigmoid(b *testing.B) { benchmarkStep(b, allActivation(Sigmoid)) }
func BenchmarkStepTanh(b *testing.B)    { benchmarkStep(b, allActivation(Tanh)) }

// BenchmarkStepNielsen times a mini-batch of Nielsen's final network
// (two dense layers of 1,000 with dropout, 1.67 M parameters).
func BenchmarkStepNielsen(b *testing.B) { benchmarkStep(b, nielsenLayers) }

var nielsenLayers = []Layer{
	{Kind: Conv, Filters: 20, Size: 5, Activation: ReLU},
	{Kind: Pool, Size: 2},
	{Kind: Conv, Filters: 40, Size: 5, Activation: ReLU},
	{Kind: Pool, Size: 2},
	{Kind: Dense, Size: 1000, Activation: ReLU, Dropout: 0.5},
	{Kind: Dense, Size: 1000, Activation: ReLU, Dropout: 0.5},
	{Kind: Softmax, Size: 10, Dropout: 0.5},
}

// allActivation returns the example network with activation f in every
// layer and no dropout: conv 20×5×5 f, pool 2, conv 40×5×5 f, pool 2,
// dense 100 f, softmax 10.
func allActivation(f Activation) []Layer {
	return []Layer{
		{Kind: Conv, Filters: 20, Size: 5, Activation: f},
		{Kind: Pool, Size: 2},
		{Kind: Conv, Filters: 40, Size: 5, Activation: f},
		{Kind: Pool, Size: 2},
		{Kind: Dense, Size: 100, Activation: f},
		{Kind: Softmax, Size: 10},
	}
}

func benchmarkStep(b *testing.B, layers []Layer) {
	ds := dataset(b)
	n := newTestNet(b, layers, 1)
	tr, err := newTrainer(n, Params{BatchSize: 10, Eta: 0.03, Lambda: 0.1}, [2]uint64{1, 2}, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.close()
	src := source{data: ds.Training}
	rng := rand.New(rand.NewPCG(1, 1))
	batch := make([]int32, 10)
	b.ReportAllocs()
	for b.Loop() {
		for i := range batch {
			batch[i] = int32(rng.IntN(src.Len()))
		}
		tr.step(src, batch, nil)
	}
}

// BenchmarkEvaluate times the evaluation of the 10,000 test images by the
// example network; BenchmarkEvaluateSigmoid and BenchmarkEvaluateTanh by
// allActivation's networks.
func BenchmarkEvaluate(b *testing.B)        { benchmarkEvaluate(b, exampleLayers) }
func BenchmarkEvaluateSigmoid(b *testing.B) { benchmarkEvaluate(b, allActivation(Sigmoid)) }
func BenchmarkEvaluateTanh(b *testing.B)    { benchmarkEvaluate(b, allActivation(Tanh)) }

// BenchmarkEvaluateNielsen evaluates Nielsen's final network (two dense
// layers of 1,000 after the convolutions), BenchmarkEvaluateDense a network
// of dense layers only (784 → 1,000 → 1,000 → 10): their weights, not their
// activations, are what a chunk of examples reads most.
func BenchmarkEvaluateNielsen(b *testing.B) { benchmarkEvaluate(b, nielsenLayers) }
func BenchmarkEvaluateDense(b *testing.B)   { benchmarkEvaluate(b, denseLayers) }

var denseLayers = []Layer{
	{Kind: Dense, Size: 1000, Activation: ReLU},
	{Kind: Dense, Size: 1000, Activation: ReLU},
	{Kind: Softmax, Size: 10},
}

func benchmarkEvaluate(b *testing.B, layers []Layer) {
	ds := dataset(b)
	n := newTestNet(b, layers, 1)
	ev := newEvaluator(newEngine(n))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ev.evaluate(ds.Test); err != nil {
			b.Fatal(err)
		}
	}
}

package service

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/mnist-go/nnserver/pkg/deep"
	"github.com/mnist-go/nnserver/pkg/network"
)

// chapter6 is the example network of issue 18 and docs/DEEP.md.
var chapter6 = []deep.Layer{
	{Kind: deep.Conv, Filters: 20, Size: 5, Activation: deep.ReLU}, {Kind: deep.Pool, Size: 2},
	{Kind: deep.Conv, Filters: 40, Size: 5, Activation: deep.ReLU}, {Kind: deep.Pool, Size: 2},
	{Kind: deep.Dense, Size: 100, Activation: deep.ReLU, Dropout: 0.5}, {Kind: deep.Softmax, Size: 10},
}

// BenchmarkLayersEpochService is one epoch of the chapter 6 network
// (batch 10, η 0.03, λ 0.1, the 50,000 images, evaluated on the test and
// validation sets) as a job of the service: queue, budget, saves, events.
// Compare with BenchmarkLayersEpochDirect. Run with -benchtime 1x.
func BenchmarkLayersEpochService(b *testing.B) {
	f := newFixture(b, 1, DefaultLimits(), nil, nil)
	arch, err := f.svc.Limits().NewLayers(chapter6)
	if err != nil {
		b.Fatal(err)
	}
	seed := uint64(1)
	info, err := f.svc.Create(context.Background(), CreateParams{Layers: arch.Layers, Init: InitScaled, Seed: &seed})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		j, err := f.svc.Train(context.Background(), info.ID, TrainParams{Epochs: 1, MiniBatch: 10, Lambda: 0.1, Seed: &seed})
		if err != nil {
			b.Fatal(err)
		}
		f.events.waitEnd(b, j.ID)
	}
}

// BenchmarkLayersEpochDirect is the same epoch through deep.SGD alone.
func BenchmarkLayersEpochDirect(b *testing.B) {
	ds, err := loadMNIST()
	if err != nil {
		b.Fatal(err)
	}
	net, err := deep.New(chapter6, network.InitScaled, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		b.Fatal(err)
	}
	p := deep.Params{Epochs: 1, BatchSize: 10, Eta: 0.03, Lambda: 0.1, ScratchBytes: DefaultLimits().JobScratchBytes, Validation: ds.Validation}
	b.ResetTimer()
	for range b.N {
		if _, err := deep.SGD(context.Background(), net, ds.Training, ds.Test, p, newRand(1), nil); err != nil {
			b.Fatal(err)
		}
	}
}
